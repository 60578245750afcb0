"""Conversion between instances of a schema class and per-column numpy values.

A :class:`RowConverter` is compiled once per class (one small function per field), so that the
prediction engine's single-row path does no schema work per call.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._images import as_image_array, pillow
from onnxpipe.errors import ColumnNotFoundError, ColumnTypeError, DataError, SchemaError, ShapeError
from onnxpipe.schema import DType, FieldBinding, ImageType, RowBinding, Schema, TensorType, row_binding

__all__ = ["RowConverter", "coerce_array"]


def coerce_array(value: Any, ct: TensorType, where: str) -> np.ndarray:
    """``value`` as a numpy array of the column's element type and row shape.

    Applies only the documented safe conversions; a flat array of the right size is reshaped;
    unknown dimensions are resolved from the value's own shape.
    """
    is_numpy = isinstance(value, np.ndarray | np.generic)
    expected = ct.dtype
    if value is None and expected is not DType.STRING:
        raise ColumnTypeError(
            f"{where}: the value is None; onnxpipe has no missing value for {expected.value} "
            "(floats use NaN): fill it or drop the row"
        )
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise ShapeError(f"{where}: cannot read {type(value).__name__} as a tensor: {exc}") from None
    if arr.dtype.kind == "O" and expected is not DType.STRING:
        big = next((x for x in arr.reshape(-1) if isinstance(x, int) and not isinstance(x, bool)), None)
        if big is not None:  # numpy keeps ints beyond 64 bits as Python objects
            raise ColumnTypeError(f"{where}: the value {big} does not fit in {expected.value}")
    if arr.dtype.kind in "OUS":
        if expected is not DType.STRING:
            raise ColumnTypeError(f"{where}: expected {expected.value} values, got strings ({arr.dtype})")
        arr = arr.astype(object)
        if not all(isinstance(x, str) for x in arr.reshape(-1)):
            bad = next(x for x in arr.reshape(-1) if not isinstance(x, str))
            raise ColumnTypeError(f"{where}: expected strings, got a {type(bad).__name__} value {bad!r}")
        for x in arr.reshape(-1):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                raise DataError(
                    f"{where}: the string is not valid Unicode (a lone surrogate, e.g. from bytes decoded with "
                    "errors='surrogateescape'); decode the bytes with their real encoding"
                ) from None
    elif arr.dtype != expected.numpy:
        given = DType.from_numpy(arr.dtype)
        ok = given.converts_safely_to(expected)
        if not ok and not is_numpy and given is DType.INT64 and expected.is_integer and arr.size:
            info = np.iinfo(expected.numpy)  # plain Python ints: accept when every value fits
            ok = bool(arr.min() >= info.min and arr.max() <= info.max)
        if not ok and not is_numpy and arr.size == 0:
            ok = True  # an empty Python list has no values to convert (numpy reads [] as float64)
        if not ok and (expected.is_low_precision or given.is_low_precision):
            hint = f"ml_dtypes.{expected.ml_dtypes_name}" if expected.ml_dtypes_name else f"np.{expected.value}"
            raise ColumnTypeError(
                f"{where}: expected {expected.value} values, got {given.value}; low-precision types are exact: "
                f"convert to {hint} first (only float32 and float16 are rounded into bfloat16 automatically)"
            )
        if not ok:
            raise ColumnTypeError(
                f"{where}: expected {expected.value} values, got {given.value}; convert the data "
                f"first (only numbers into floats and integers into wider integers are automatic)"
            )
        # float64 beyond float32's range becomes +-inf, as ONNX's Cast does; float32 signalling NaNs
        # into bfloat16 keep their bits, as there, without ml_dtypes' warning.
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(expected.numpy)
    if ct.is_scalar:
        if arr.ndim and arr.size == 1:
            return arr.reshape(())
        if arr.ndim:
            raise ShapeError(f"{where}: expected a single value, got an array of shape {arr.shape}")
        return arr
    shape = ct.shape
    if arr.shape == shape:
        return arr
    if ct.is_known_shape:
        if arr.size != ct.size:
            raise ShapeError(
                f"{where}: expected shape {_fmt(shape)} ({ct.size} values), got shape {arr.shape} ({arr.size} values)"
            )
        return arr.reshape(shape)  # type: ignore[arg-type]
    if arr.ndim == len(shape) and all(d is None or d == g for d, g in zip(shape, arr.shape, strict=True)):
        return arr
    if shape.count(None) == 1 and arr.ndim == 1:
        known = math.prod(d for d in shape if d is not None)
        if known and arr.size % known == 0:
            return arr.reshape(tuple(arr.size // known if d is None else d for d in shape))
    raise ShapeError(f"{where}: expected shape {_fmt(shape)}, got shape {arr.shape}")


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _concat_exact(values: Sequence[Any], dtype: np.dtype[Any], size: int) -> np.ndarray | None:
    """The values one after the other in a new flat array, when every one is a plain ndarray of
    exactly ``dtype`` and all have one shape of ``size`` elements (what :func:`coerce_array` would
    only reshape); None otherwise, and the caller converts value by value.

    This is the prediction engine's batch path: a few C-level passes instead of Python work per row.
    """
    types = set(map(type, values))
    if len(types) != 1 or types.pop() is not np.ndarray:  # subclasses and array-likes: the general path
        return None
    shapes = {v.shape for v in values}
    if len(shapes) != 1 or math.prod(shapes.pop()) != size:
        return None
    try:
        return np.concatenate(values, axis=None, dtype=dtype, casting="no")
    except TypeError:  # some value has another dtype (or byte order)
        return None


class RowConverter:
    """Turns rows of one schema class into column values and back."""

    def __init__(self, cls: type) -> None:
        self.binding: RowBinding = row_binding(cls)
        self.cls = cls
        self.schema: Schema = self.binding.schema
        self._readers = [(f.attribute, f.column.name, self._reader(f)) for f in self.binding.fields]
        # Single-row fast path: (attribute, column, dtype, batch shape) for fields of known shape.
        self._direct = [
            (f.attribute, f.column.name, f.column.type.dtype.numpy, (1, *f.column.type.fixed_shape))
            for f in self.binding.fields
            if isinstance(f.column.type, TensorType) and f.column.type.is_known_shape and not f.column.type.is_scalar
        ]
        self._all_direct = len(self._direct) == len(self._readers)
        self._writers: list[tuple[str, str, Callable[[ColumnValues], Any]]] | None = None
        self._direct_out = False
        self._out_names: list[str] = []
        # Building instances with positional arguments skips a kwargs dict per row.
        self._positional = _positional_init(cls, [f.attribute for f in self.binding.fields])

    @staticmethod
    def _reader(f: FieldBinding) -> Callable[[Sequence[Any], str], ColumnValues]:
        ct = f.column.type
        if not isinstance(ct, TensorType):
            return lambda values, where: list(values)
        if isinstance(ct, ImageType):
            return lambda values, where: [_image_row(v, ct, f"{where}, row {i}") for i, v in enumerate(values)]

        # The bulk path's row shape. Strings are checked value by value (str, valid Unicode), so
        # they never take it.
        bulk = ct.fixed_shape if ct.is_known_shape and not ct.is_scalar and ct.dtype is not DType.STRING else None
        dtype, size = ct.dtype.numpy, math.prod(bulk or ())

        def read(values: Sequence[Any], where: str) -> ColumnValues:
            if bulk is not None and values:
                flat = _concat_exact(values, dtype, size)
                if flat is not None:
                    return flat.reshape((len(values), *bulk))
            arrays = [coerce_array(v, ct, f"{where}, row {i}") for i, v in enumerate(values)]
            if not ct.is_known_shape:
                return arrays
            if not arrays:
                return np.zeros((0, *ct.shape), dtype=ct.dtype.numpy)  # type: ignore[arg-type]
            return np.stack(arrays)

        return read

    def to_columns(self, rows: Sequence[Any]) -> dict[str, ColumnValues]:
        """Column values (new arrays: later changes to the rows do not show through)."""
        cols: dict[str, ColumnValues] = {}
        for attr, name, read in self._readers:
            where = f"column {name!r} (field {self.cls.__name__}.{attr})"
            try:
                values = [getattr(r, attr) for r in rows]
            except AttributeError:
                bad = next(r for r in rows if not hasattr(r, attr))
                raise SchemaError(
                    f"{where}: a row of type {type(bad).__name__} has no attribute {attr!r}; "
                    f"rows must be {self.cls.__name__} instances"
                ) from None
            cols[name] = read(values, where)
        return cols

    def one_row_view(self, row: Any) -> dict[str, ColumnValues] | None:
        """Columns of one row whose fields all hold arrays of the declared type and size, as
        views of those arrays (for immediate use); None when the general path must convert."""
        if not self._all_direct:
            return None
        cols: dict[str, ColumnValues] = {}
        for attr, name, dtype, shape in self._direct:
            value = getattr(row, attr, None)
            if type(value) is not np.ndarray or value.dtype != dtype:
                return None
            try:
                cols[name] = value.reshape(shape)
            except ValueError:
                return None
        return cols

    def check_source(self, source: Schema) -> None:
        """Raise unless every field can be read from a column of ``source``; prepares
        :meth:`from_columns` for columns of these types."""
        writers = []
        for f in self.binding.fields:
            if f.column.name not in source:
                raise ColumnNotFoundError(
                    f"{self.cls.__name__}.{f.attribute} reads column {f.column.name!r}, which the data "
                    f"does not have; available columns: {source.names}"
                )
            check_readable(source[f.column.name].type, f, self.cls.__name__)
            writers.append((f.attribute, f.column.name, _writer(f, source[f.column.name].type)))
        self._writers = writers
        self._direct_out = all(w is _identity for _, _, w in writers)
        self._out_names = [name for _, name, _ in writers]

    def from_one(self, cols: Mapping[str, ColumnValues]) -> Any:
        """The instance for a single row (see :meth:`from_columns`)."""
        if self._writers is None:
            raise SchemaError("RowConverter.check_source(schema) must be called before from_one")
        if self._direct_out:
            values = [cols[name][0] for name in self._out_names]
        else:
            values = [write(cols[name])[0] for _, name, write in self._writers]
        if self._positional:
            return self.cls(*values)
        return self.cls(**{attr: v for (attr, _, _), v in zip(self._writers, values, strict=True)})

    def from_columns(self, cols: Mapping[str, ColumnValues], n: int) -> list[Any]:
        """Build ``n`` instances from column values (checked beforehand by :meth:`check_source`)."""
        if self._writers is None:
            raise SchemaError("RowConverter.check_source(schema) must be called before from_columns")
        if n == 1:
            return [self.from_one(cols)]
        per_field = [write(cols[name]) for _, name, write in self._writers]
        if any(len(values) != n for values in per_field):
            raise DataError(f"{self.cls.__name__}: the columns do not all have {n} values")  # a step's bug
        if self._positional:
            return list(map(self.cls, *per_field))
        attrs = [attr for attr, _, _ in self._writers]
        return [self.cls(**dict(zip(attrs, values, strict=True))) for values in zip(*per_field, strict=True)]


def _positional_init(cls: type, attributes: Sequence[str]) -> bool:
    """Whether ``cls(*values)`` means the same as ``cls(**dict(zip(attributes, values)))``: the
    constructor's first parameters are these names in this order, positional-or-keyword, and any
    other has a default (a dataclass of these fields, say; not a pydantic model, whose fields are
    keyword-only)."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # no readable signature (some builtins, C extensions)
        return False
    head, rest = params[: len(attributes)], params[len(attributes) :]
    return (
        [p.name for p in head] == list(attributes)
        and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in head)
        and all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in rest)
    )


def check_readable(given: Any, f: FieldBinding, cls_name: str) -> None:
    """Raise unless a column of type ``given`` can be read into field ``f``."""
    want = f.column.type
    where = f"{cls_name}.{f.attribute} (column {f.column.name!r})"
    if isinstance(want, ImageType) and not isinstance(given, ImageType):
        raise ColumnTypeError(
            f"{where}: the field is an image, the column is {given}; read it into an npt.NDArray field instead"
        )
    if isinstance(want, TensorType) and isinstance(given, TensorType):
        if not given.dtype.converts_safely_to(want.dtype):
            raise ColumnTypeError(f"{where}: the field holds {want.dtype.value}, the column is {given}")
        if want.is_scalar != given.is_scalar and not (
            (want.is_scalar and given.size == 1) or (given.is_scalar and want.size == 1)
        ):
            raise ShapeError(f"{where}: the field is {want}, the column is {given}")
        return
    if type(want) is not type(given):
        raise ColumnTypeError(f"{where}: the field is {want}, the column is {given}")


def _image_row(value: Any, ct: ImageType, where: str) -> np.ndarray:
    arr = as_image_array(value, where)
    if (ct.height is not None and arr.shape[0] != ct.height) or (ct.width is not None and arr.shape[1] != ct.width):
        raise ShapeError(
            f"{where}: the image is {arr.shape[0]}x{arr.shape[1]} (height x width), the field declares {ct}; "
            "resize it, or declare ImageType() for images of any size"
        )
    return arr


def _writer(f: FieldBinding, given: Any) -> Callable[[ColumnValues], list[Any]]:
    """How to turn column values of type ``given`` into field values for ``f``."""
    want = f.column.type
    if f.as_pil_image:
        return _to_pil_images
    if (
        isinstance(want, TensorType)
        and isinstance(given, TensorType)
        and want == given
        and want.is_known_shape
        and not want.is_scalar
        and not f.as_list
    ):
        return _identity  # the rows of the array are the field values
    return lambda values: _to_python(values, f)


def _to_pil_images(values: ColumnValues) -> list[Any]:
    image_module = pillow()
    out = []
    for v in values:
        arr = np.asarray(v)
        out.append(image_module.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr)))
    return out


def _identity(values: ColumnValues) -> Any:
    return values


def _to_python(values: ColumnValues, f: FieldBinding) -> list[Any]:
    ct = f.column.type
    if not isinstance(ct, TensorType):
        return list(values)
    if ct.is_scalar:
        arr = np.asarray(values).astype(ct.dtype.numpy, copy=False).reshape(len(values))
        return list(arr) if f.numpy_scalar else arr.tolist()  # np.float32 fields get numpy scalars
    rows = [np.asarray(v).astype(ct.dtype.numpy, copy=False) for v in values]
    if ct.is_known_shape:
        rows = [r.reshape(ct.shape) for r in rows]  # type: ignore[arg-type]
    return [r.tolist() for r in rows] if f.as_list else rows
