"""Column types, schemas, and schemas declared by annotated classes.

This module is the data contract: it knows nothing of ONNX or of learning.

* :class:`DType` is an element type (every ONNX tensor element type onnxpipe supports).
* A column's type is a :class:`TensorType` (a scalar is a tensor of shape ``()``; unknown
  dimensions are ``None``; a key column has a ``key_count``), a :class:`SequenceType` or a
  :class:`MapType` (for ONNX sequence / map outputs such as scikit-learn's ZipMap).
* An :class:`ImageType` is the tensor type of an image column: uint8 pixels of shape
  ``(height, width, channels)`` with 1 (gray), 3 (RGB) or 4 (RGBA) channels.
* A :class:`Schema` is an ordered, immutable list of :class:`Column`.
* :func:`schema_of` reads a schema from a dataclass, a pydantic model or a plain annotated class
  whose fields carry :class:`ColumnName`, :class:`VectorType`, :class:`LoadColumn`,
  :class:`KeyType` and :class:`ImageType` markers (a ``PIL.Image.Image`` field is an image column).

Type equality is strict; :meth:`DType.converts_safely_to` names the only automatic conversions.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import sys
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from onnxpipe.errors import ColumnNotFoundError, ColumnTypeError, SchemaError

__all__ = [
    "Column",
    "ColumnName",
    "ColumnType",
    "DType",
    "FieldBinding",
    "ImageType",
    "KeyType",
    "LoadColumn",
    "MapType",
    "RowBinding",
    "Schema",
    "SequenceType",
    "TensorType",
    "VectorType",
    "row_binding",
    "schema_of",
]


class DType(enum.Enum):
    """Element type of a column or tensor; the value is the canonical name."""

    BOOL = "bool"
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    FLOAT16 = "float16"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"

    @property
    def numpy(self) -> np.dtype[Any]:
        """The numpy dtype holding values of this type (``object`` for strings)."""
        return _NUMPY[self]

    @property
    def arrow(self) -> pa.DataType:
        return _ARROW[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT16, DType.FLOAT32, DType.FLOAT64)

    @property
    def is_integer(self) -> bool:
        return self.value.startswith(("int", "uint"))

    @property
    def is_numeric(self) -> bool:
        return self.is_float or self.is_integer

    @classmethod
    def from_numpy(cls, dtype: np.dtype[Any] | type) -> DType:
        """The DType of a numpy dtype; strings (``U``, ``S``, ``object``) map to STRING."""
        dt = np.dtype(dtype)
        if dt.kind in "OUS":
            return DType.STRING
        try:
            return _FROM_NUMPY[dt]
        except KeyError:
            raise ColumnTypeError(
                f"numpy dtype {dt} has no onnxpipe element type; supported: {', '.join(t.value for t in DType)}"
            ) from None

    @classmethod
    def from_arrow(cls, dtype: pa.DataType) -> DType:
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            return DType.STRING
        try:
            return _FROM_NUMPY[np.dtype(dtype.to_pandas_dtype())]
        except (NotImplementedError, KeyError, TypeError):
            raise ColumnTypeError(f"Arrow type {dtype} has no onnxpipe element type") from None

    def converts_safely_to(self, target: DType) -> bool:
        """Whether data of this type is converted automatically where ``target`` is expected.

        The documented safe conversions: any number or bool into a float type (float64 data
        into a float32 model input is the case everyone hits), and integers into a wider
        integer type that holds every value. Everything else must match exactly.
        """
        if self is target:
            return True
        if target.is_float:
            return self.is_numeric or self is DType.BOOL
        if target.is_integer and (self.is_integer or self is DType.BOOL):
            if self is DType.BOOL:
                return True
            src, dst = np.iinfo(self.numpy), np.iinfo(target.numpy)
            return src.min >= dst.min and src.max <= dst.max
        return False


_NUMPY: dict[DType, np.dtype[Any]] = {t: np.dtype(object if t is DType.STRING else t.value) for t in DType}
_FROM_NUMPY: dict[np.dtype[Any], DType] = {v: k for k, v in _NUMPY.items() if k is not DType.STRING}
_ARROW: dict[DType, pa.DataType] = {
    t: pa.string() if t is DType.STRING else pa.from_numpy_dtype(_NUMPY[t]) for t in DType
}

Dim: TypeAlias = int | None


def _format_dims(shape: Sequence[Dim]) -> str:
    return ",".join("?" if d is None else str(d) for d in shape)


@dataclasses.dataclass(frozen=True)
class TensorType:
    """A tensor per row. ``shape == ()`` is a scalar; ``None`` marks an unknown dimension."""

    dtype: DType
    shape: tuple[Dim, ...] = ()
    key_count: int | None = None  # a key column: values 1..key_count, 0 means missing

    def __post_init__(self) -> None:
        for d in self.shape:
            if d is not None and (not isinstance(d, int) or d <= 0):
                raise SchemaError(
                    f"dimension {d!r} in shape ({_format_dims(self.shape)}) is invalid: "
                    "use a positive size, or -1 / None for an unknown dimension"
                )

    @property
    def is_scalar(self) -> bool:
        return self.shape == ()

    @property
    def is_known_shape(self) -> bool:
        return None not in self.shape

    @functools.cached_property
    def fixed_shape(self) -> tuple[int, ...]:
        """The shape, for a type whose dimensions are all known (else SchemaError)."""
        dims = tuple(d for d in self.shape if d is not None)
        if len(dims) != len(self.shape):
            raise SchemaError(f"{self} has unknown dimensions")
        return dims

    @functools.cached_property
    def size(self) -> int | None:
        """Number of values per row, or None when a dimension is unknown."""
        return math.prod(self.fixed_shape) if self.is_known_shape else None

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        base = f"key<{self.dtype.value},{self.key_count}>" if self.key_count else self.dtype.value
        return base if self.is_scalar else f"{base}[{_format_dims(self.shape)}]"


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class ImageType(TensorType):
    """An image per row: uint8 pixels of shape ``(height, width, channels)``, row-major, channels
    last, with 1 (gray, Pillow's "L"), 3 (RGB) or 4 (RGBA) channels.

    ``ImageType(224, 224)`` declares the size (as ML.NET's ``[ImageType(height, width)]``);
    ``ImageType()`` leaves it unknown (images of any size, e.g. from ``load_images``). The number of
    channels is never part of the type. An ImageType is a :class:`TensorType` (so it is stored and
    exported as the uint8 tensor ``[N, height, width, channels]``) but not equal to one: steps that
    need an image (``resize_images``, ``extract_pixels``) accept only image columns.
    """

    def __init__(self, height: int | None = None, width: int | None = None) -> None:
        for what, size in (("height", height), ("width", width)):
            if size is not None and (isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0):
                raise SchemaError(
                    f"ImageType(height={height!r}, width={width!r}): the {what} must be a positive number of "
                    "pixels, or None when unknown"
                )
        dims = (None if height is None else int(height), None if width is None else int(width), None)
        object.__setattr__(self, "dtype", DType.UINT8)
        object.__setattr__(self, "shape", dims)
        object.__setattr__(self, "key_count", None)

    @property
    def height(self) -> int | None:
        return self.shape[0]

    @property
    def width(self) -> int | None:
        return self.shape[1]

    @property
    def has_known_size(self) -> bool:
        """Whether height and width are both declared."""
        return self.height is not None and self.width is not None

    def __str__(self) -> str:
        return f"image<{_format_dims(self.shape[:2]).replace(',', 'x')}>"

    def __repr__(self) -> str:
        return f"ImageType(height={self.height!r}, width={self.width!r})"


@dataclasses.dataclass(frozen=True)
class MapType:
    """A map per row (ONNX ``map(K, V)``)."""

    key: DType
    value: ColumnType

    def __str__(self) -> str:
        return f"map<{self.key.value},{self.value}>"


@dataclasses.dataclass(frozen=True)
class SequenceType:
    """A sequence per row (ONNX ``seq(T)``), e.g. ZipMap's ``seq(map(int64, float))``."""

    element: ColumnType

    def __str__(self) -> str:
        return f"seq<{self.element}>"


ColumnType: TypeAlias = TensorType | SequenceType | MapType


def column_type_to_json(ct: ColumnType) -> dict[str, Any]:
    if isinstance(ct, ImageType):
        return {"kind": "image", "height": ct.height, "width": ct.width}
    if isinstance(ct, TensorType):
        out: dict[str, Any] = {"kind": "tensor", "dtype": ct.dtype.value, "shape": list(ct.shape)}
        if ct.key_count is not None:
            out["key_count"] = ct.key_count
        return out
    if isinstance(ct, SequenceType):
        return {"kind": "sequence", "element": column_type_to_json(ct.element)}
    return {"kind": "map", "key": ct.key.value, "value": column_type_to_json(ct.value)}


def column_type_from_json(obj: Mapping[str, Any]) -> ColumnType:
    try:
        kind = obj["kind"]
        if kind == "tensor":
            return TensorType(DType(obj["dtype"]), tuple(obj["shape"]), obj.get("key_count"))
        if kind == "image":
            return ImageType(obj.get("height"), obj.get("width"))
        if kind == "sequence":
            return SequenceType(column_type_from_json(obj["element"]))
        if kind == "map":
            return MapType(DType(obj["key"]), column_type_from_json(obj["value"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise SchemaError(f"invalid column type description {dict(obj)!r}: {exc}") from None
    raise SchemaError(f"invalid column type kind {kind!r}: expected tensor, image, sequence or map")


@dataclasses.dataclass(frozen=True)
class Column:
    """A named column. ``slot_names`` names the values of a vector column (ML.NET's SlotNames)."""

    name: str
    type: ColumnType
    slot_names: tuple[str, ...] | None = None

    def __str__(self) -> str:
        return f"{self.name}: {self.type}"


class Schema(Mapping[str, Column]):
    """An ordered, immutable set of uniquely named columns."""

    __slots__ = ("_columns", "_hash")

    def __init__(self, columns: Iterable[Column] = ()) -> None:
        self._hash: int | None = None
        cols: dict[str, Column] = {}
        for c in columns:
            cols[c.name] = c  # a later column of the same name replaces the earlier one
        self._columns = cols

    @classmethod
    def of(cls, **types: ColumnType) -> Schema:
        return cls(Column(n, t) for n, t in types.items())

    def __getitem__(self, name: str) -> Column:
        try:
            return self._columns[name]
        except KeyError:
            raise ColumnNotFoundError(f"column {name!r} is not in the data; available columns: {self.names}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        return list(self._columns.values()) == list(other._columns.values())

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._columns.values()))
        return self._hash

    @property
    def names(self) -> list[str]:
        return list(self._columns)

    @property
    def columns(self) -> list[Column]:
        return list(self._columns.values())

    def require(self, name: str, step: str) -> Column:
        """The column ``name``, or a ColumnNotFoundError saying which step needs it."""
        if name not in self._columns:
            raise ColumnNotFoundError(
                f"{step}: input column {name!r} is not in the data; available columns: {self.names}"
            )
        return self._columns[name]

    def with_columns(self, *columns: Column) -> Schema:
        """A copy where ``columns`` are added at the end, replacing same-named columns."""
        replaced = {c.name for c in columns}
        return Schema([c for c in self._columns.values() if c.name not in replaced] + list(columns))

    def without(self, *names: str) -> Schema:
        return Schema(c for c in self._columns.values() if c.name not in names)

    def select(self, names: Iterable[str]) -> Schema:
        return Schema(self[n] for n in names)  # a missing name raises ColumnNotFoundError

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for c in self._columns.values():
            d: dict[str, Any] = {"name": c.name, "type": column_type_to_json(c.type)}
            if c.slot_names is not None:
                d["slot_names"] = list(c.slot_names)
            out.append(d)
        return out

    @classmethod
    def from_json(cls, obj: Iterable[Mapping[str, Any]]) -> Schema:
        cols = []
        for d in obj:
            slots = d.get("slot_names")
            cols.append(
                Column(
                    str(d["name"]),
                    column_type_from_json(d["type"]),
                    tuple(slots) if slots is not None else None,
                )
            )
        return cls(cols)

    def __repr__(self) -> str:
        return "Schema(" + ", ".join(str(c) for c in self._columns.values()) + ")"


# --------------------------------------------------------------------------------------------
# Annotation markers for schema classes


@dataclasses.dataclass(frozen=True)
class ColumnName:
    """Maps a field to a column (or ONNX tensor) of another name."""

    name: str


class VectorType:
    """Declares a field's tensor shape; ``-1`` or ``None`` is an unknown dimension."""

    __slots__ = ("dims",)

    def __init__(self, *dims: int | None) -> None:
        if not dims:
            raise SchemaError("VectorType needs at least one dimension, e.g. VectorType(3)")
        fixed: list[Dim] = []
        for d in dims:
            if d is None or d == -1:
                fixed.append(None)
            elif isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0:
                fixed.append(int(d))
            else:
                raise SchemaError(
                    f"VectorType{tuple(dims)}: dimension {d!r} is invalid; use a positive size, "
                    "or -1 / None for an unknown dimension"
                )
        self.dims: tuple[Dim, ...] = tuple(fixed)

    def __repr__(self) -> str:
        return "VectorType(" + ", ".join("-1" if d is None else str(d) for d in self.dims) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VectorType) and other.dims == self.dims

    def __hash__(self) -> int:
        return hash(self.dims)


@dataclasses.dataclass(frozen=True)
class LoadColumn:
    """Source position(s) in a text file: one index, or an inclusive range for a vector."""

    start: int
    end: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end < self.start):
            raise SchemaError(f"LoadColumn({self.start}, {self.end}): invalid column range")

    @property
    def count(self) -> int:
        return 1 if self.end is None else self.end - self.start + 1


@dataclasses.dataclass(frozen=True)
class KeyType:
    """Declares a categorical key column with values ``1..count`` (0 = missing), stored as uint32."""

    count: int

    def __post_init__(self) -> None:
        if self.count <= 0:
            raise SchemaError(f"KeyType({self.count}): the key count must be positive")


@dataclasses.dataclass(frozen=True)
class FieldBinding:
    """How one attribute of a schema class maps to a column."""

    attribute: str
    column: Column
    load_column: LoadColumn | None
    as_list: bool  # the attribute is a list (not a numpy array) for vector columns
    as_pil_image: bool = False  # the attribute is a PIL.Image.Image (an image column read back as Pillow images)
    numpy_scalar: bool = False  # the attribute is a numpy scalar type (np.float32...), not a Python scalar


@dataclasses.dataclass(frozen=True)
class RowBinding:
    """The schema read from a class, and how to build and read its instances."""

    cls: type
    fields: tuple[FieldBinding, ...]

    @property
    def schema(self) -> Schema:
        return Schema(f.column for f in self.fields)


_PY_SCALARS: dict[Any, DType] = {float: DType.FLOAT32, int: DType.INT64, bool: DType.BOOL, str: DType.STRING}


def _scalar_dtype(tp: Any, where: str) -> DType:
    if tp in _PY_SCALARS:
        return _PY_SCALARS[tp]
    if typing.get_origin(tp) is np.dtype:  # npt.NDArray[X] is np.ndarray[Any, np.dtype[X]]
        tp = typing.get_args(tp)[0]
    # A numpy scalar type; npt.NDArray without an element type (Any or a TypeVar) is rejected below
    # rather than read as np.dtype(object), which would silently make a string column.
    if isinstance(tp, type) and issubclass(tp, np.generic | np.dtype):
        try:
            return DType.from_numpy(tp)
        except (ColumnTypeError, TypeError):
            pass
    raise ColumnTypeError(
        f"{where}: element type {tp!r} is not supported; use float (float32), int (int64), "
        "bool, str, or a numpy scalar type such as np.float64 or np.int32"
    )


def is_pil_image_class(tp: Any) -> bool:
    """Whether ``tp`` is ``PIL.Image.Image`` (or a subclass); Pillow is not imported for this."""
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(tp, type) and issubclass(tp, pil.Image)


def _column_type(tp: Any, markers: list[Any], where: str) -> tuple[ColumnType, bool]:
    """The column type of an annotation and whether the attribute holds a Python list."""
    image = next((m for m in markers if isinstance(m, ImageType)), None)
    if image is not None or is_pil_image_class(tp):
        if image is None:
            image = ImageType()
        if not (is_pil_image_class(tp) or typing.get_origin(tp) is np.ndarray or tp is np.ndarray):
            raise ColumnTypeError(
                f"{where}: an ImageType field holds a numpy array (uint8, height x width x channels) or a "
                f"PIL.Image.Image, not {tp!r}"
            )
        return image, False
    vector = next((m for m in markers if isinstance(m, VectorType)), None)
    key = next((m for m in markers if isinstance(m, KeyType)), None)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is np.ndarray:
        dtype = DType.UINT32 if key else _scalar_dtype(args[1] if len(args) == 2 else np.float32, where)
        shape = vector.dims if vector else (None,)
        return TensorType(dtype, shape, key.count if key else None), False
    if origin is dict:
        return MapType(_scalar_dtype(args[0], where), _column_type(args[1], [], where)[0]), False
    if origin is list:
        if len(args) != 1:
            raise ColumnTypeError(f"{where}: {tp!r} is not supported; a list takes one element type, e.g. list[float]")
        (item,) = args
        if typing.get_origin(item) in (dict, list):
            return SequenceType(_column_type(item, [], where)[0]), True
        dtype = DType.UINT32 if key else _scalar_dtype(item, where)
        shape = vector.dims if vector else (None,)
        return TensorType(dtype, shape, key.count if key else None), True
    dtype = DType.UINT32 if key else _scalar_dtype(tp, where)
    if vector:
        return TensorType(dtype, vector.dims, key.count if key else None), False
    return TensorType(dtype, (), key.count if key else None), False


def row_binding(cls: type) -> RowBinding:
    """Read the schema of a dataclass, pydantic model or plain annotated class."""
    if not isinstance(cls, type):
        raise SchemaError(f"a schema class is expected, got {cls!r}")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # unresolvable forward references and the like
        raise SchemaError(f"cannot read the annotations of {cls.__name__}: {exc}") from None
    hints = {k: v for k, v in hints.items() if not k.startswith("_") and typing.get_origin(v) is not typing.ClassVar}
    if not hints and not (dataclasses.is_dataclass(cls) and not dataclasses.fields(cls)):
        # An empty dataclass is a model without inputs (generate_schema_code writes one); any
        # other class without fields is a mistake, e.g. attributes without annotations.
        raise SchemaError(f"{cls.__name__} declares no annotated fields")
    fields: list[FieldBinding] = []
    for attr, hint in hints.items():
        markers: list[Any] = []
        if typing.get_origin(hint) is typing.Annotated:
            hint, *markers = typing.get_args(hint)
        where = f"{cls.__name__}.{attr}"
        name = next((m.name for m in markers if isinstance(m, ColumnName)), attr)
        other = next((f.attribute for f in fields if f.column.name == name), None)
        if other is not None:  # a Schema keeps one column per name: the first field would be lost
            raise SchemaError(
                f"{where}: column name {name!r} is already used by {cls.__name__}.{other}; "
                "give each field its own ColumnName"
            )
        ctype, as_list = _column_type(hint, markers, where)
        load = next((m for m in markers if isinstance(m, LoadColumn)), None)
        if load is not None and isinstance(ctype, TensorType) and load.count > 1:
            if ctype.is_scalar or (ctype.size is not None and ctype.size != load.count):
                raise SchemaError(
                    f"{where}: LoadColumn({load.start}, {load.end}) reads {load.count} values "
                    f"but the field's type is {ctype}"
                )
            if not ctype.is_known_shape:
                ctype = TensorType(ctype.dtype, (load.count,), ctype.key_count)
        numpy_scalar = isinstance(hint, type) and issubclass(hint, np.generic)
        fields.append(FieldBinding(attr, Column(name, ctype), load, as_list, is_pil_image_class(hint), numpy_scalar))
    return RowBinding(cls, tuple(fields))


def schema_of(cls: type) -> Schema:
    """The :class:`Schema` declared by a schema class."""
    return row_binding(cls).schema
