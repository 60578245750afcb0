"""Column types, schemas, and schemas declared by annotated classes.

This module is the data contract: it knows nothing of ONNX or of learning.

* :class:`DType` is an element type (every ONNX tensor element type onnxpipe supports; the
  low-precision ones, bfloat16, float8, float4, int4, int2, as ``ml_dtypes`` arrays).
* A column's type is a :class:`TensorType` (a scalar is a tensor of shape ``()``; unknown
  dimensions are ``None``; a :class:`KeyType` is a key column, with its key count and
  :class:`KeyValues`; :class:`AnyRankTensorType` when
  even the rank is unknown), a :class:`SequenceType`, a :class:`MapType` (ONNX sequences and
  maps, e.g. scikit-learn's ZipMap) or an :class:`OptionalType` (ONNX optionals: None per row
  when empty).
* A :class:`SparseVectorType` is a vector column stored sparse (scipy CSR in memory).
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
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from onnxpipe.errors import ColumnNotFoundError, ColumnTypeError, SchemaError

__all__ = [
    "AnyRankTensorType",
    "Column",
    "ColumnName",
    "ColumnType",
    "DType",
    "FieldBinding",
    "ImageType",
    "KeyType",
    "KeyValues",
    "LoadColumn",
    "MapType",
    "OptionalType",
    "RowBinding",
    "Schema",
    "SequenceType",
    "SparseVectorType",
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
    # ONNX's low-precision types (is_low_precision): ml_dtypes arrays in memory, raw bits in Arrow.
    BFLOAT16 = "bfloat16"
    FLOAT8E4M3FN = "float8e4m3fn"
    FLOAT8E4M3FNUZ = "float8e4m3fnuz"
    FLOAT8E5M2 = "float8e5m2"
    FLOAT8E5M2FNUZ = "float8e5m2fnuz"
    FLOAT8E8M0 = "float8e8m0"
    FLOAT4E2M1 = "float4e2m1"
    INT4 = "int4"
    UINT4 = "uint4"
    INT2 = "int2"
    UINT2 = "uint2"

    @property
    def numpy(self) -> np.dtype[Any]:
        """The numpy dtype holding values of this type (``object`` for strings; an ml_dtypes
        dtype, one element per byte, for the low-precision types)."""
        try:
            return _NUMPY[self]
        except KeyError:  # a low-precision type: ml_dtypes is imported on first use (it is slow to import)
            _load_ml_dtypes()
            return _NUMPY[self]

    @property
    def arrow(self) -> pa.DataType:
        """The Arrow type storing the values: for a low-precision type the raw bit pattern (uint16
        for bfloat16, uint8 for the others), the column's metadata saying what it is."""
        return _ARROW[self]

    @property
    def is_float(self) -> bool:
        """float16, float32 or float64. Like is_integer and is_numeric, this names the types numpy
        computes with, which onnxpipe's steps take; the low-precision types answer False (see
        :attr:`is_low_precision`)."""
        return self in (DType.FLOAT16, DType.FLOAT32, DType.FLOAT64)

    @property
    def is_integer(self) -> bool:
        """int8-64 or uint8-64 (not int4, uint4, int2, uint2: see :attr:`is_low_precision`)."""
        return self.value.startswith(("int", "uint")) and self not in _ML_DTYPES

    @property
    def is_numeric(self) -> bool:
        return self.is_float or self.is_integer

    @property
    def is_low_precision(self) -> bool:
        """One of ONNX's narrow types numpy has no dtype of its own for: bfloat16, the float8
        types, float4e2m1, int4, uint4, int2, uint2. Values are ``ml_dtypes`` arrays; they are
        fed to and read from ONNX Runtime exactly, but only ONNX models compute with them, and
        nothing converts into or out of them automatically (:meth:`converts_safely_to`)."""
        return self in _ML_DTYPES

    @property
    def ml_dtypes_name(self) -> str | None:
        """The ``ml_dtypes`` attribute of a low-precision type (``"float8_e4m3fn"``); None for the others."""
        low = _ML_DTYPES.get(self)
        return None if low is None else low[0]

    @property
    def bits(self) -> int:
        """Bits per element as ONNX stores it (ONNX packs the 4-bit and 2-bit types 2 or 4 to a
        byte, low bits first; ml_dtypes keeps one per byte); 0 for strings."""
        low = _ML_DTYPES.get(self)
        if low is not None:
            return low[1]
        return 0 if self is DType.STRING else _NUMPY[self].itemsize * 8

    @classmethod
    def from_numpy(cls, dtype: np.dtype[Any] | type) -> DType:
        """The DType of a numpy dtype; strings (``U``, ``S``, ``object``) map to STRING."""
        dt = np.dtype(dtype)
        if dt.kind in "OUS":
            return DType.STRING
        if dt not in _FROM_NUMPY and dt.name in _ML_NAMES:  # an ml_dtypes dtype: ml_dtypes is loaded already
            _load_ml_dtypes()
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
        integer type that holds every value. Of the low-precision types, only float32 and
        float16 round into bfloat16 automatically: ml_dtypes rounds every one of their values
        (NaNs included) to the same bits as ONNX Runtime's Cast, so the converted feed and an
        exported Cast agree; float64 and integers do not (ONNX Runtime rounds twice, through
        float32). Everything else low-precision must match exactly: a float8 or int4 model input
        takes exactly its type, and none converts into another type automatically.
        """
        if self is target:
            return True
        if target is DType.BFLOAT16 and self in (DType.FLOAT32, DType.FLOAT16):
            return True
        if self in _ML_DTYPES or target in _ML_DTYPES:
            return False
        if target.is_float:
            return self.is_numeric or self is DType.BOOL
        if target.is_integer and (self.is_integer or self is DType.BOOL):
            if self is DType.BOOL:
                return True
            src, dst = np.iinfo(self.numpy), np.iinfo(target.numpy)
            return src.min >= dst.min and src.max <= dst.max
        return False


# The low-precision types: their ml_dtypes name and bits per element as ONNX stores them.
_ML_DTYPES: dict[DType, tuple[str, int]] = {
    DType.BFLOAT16: ("bfloat16", 16),
    DType.FLOAT8E4M3FN: ("float8_e4m3fn", 8),
    DType.FLOAT8E4M3FNUZ: ("float8_e4m3fnuz", 8),
    DType.FLOAT8E5M2: ("float8_e5m2", 8),
    DType.FLOAT8E5M2FNUZ: ("float8_e5m2fnuz", 8),
    DType.FLOAT8E8M0: ("float8_e8m0fnu", 8),
    DType.FLOAT4E2M1: ("float4_e2m1fn", 4),
    DType.INT4: ("int4", 4),
    DType.UINT4: ("uint4", 4),
    DType.INT2: ("int2", 2),
    DType.UINT2: ("uint2", 2),
}
_ML_NAMES = {name for name, _ in _ML_DTYPES.values()}
_NUMPY: dict[DType, np.dtype[Any]] = {
    t: np.dtype(object if t is DType.STRING else t.value) for t in DType if t not in _ML_DTYPES
}
_FROM_NUMPY: dict[np.dtype[Any], DType] = {v: k for k, v in _NUMPY.items() if k is not DType.STRING}
_ARROW: dict[DType, pa.DataType] = {
    t: pa.string() if t is DType.STRING else pa.from_numpy_dtype(_NUMPY[t]) for t in _NUMPY
} | {t: pa.uint16() if bits == 16 else pa.uint8() for t, (_, bits) in _ML_DTYPES.items()}


def _load_ml_dtypes() -> None:
    """Add the low-precision types' ml_dtypes dtypes to the tables (``import onnxpipe`` does not
    import ml_dtypes: a tenth of a second that only these types need)."""
    import ml_dtypes

    for t, (name, _) in _ML_DTYPES.items():
        dt = np.dtype(getattr(ml_dtypes, name))
        _NUMPY[t] = dt
        _FROM_NUMPY[dt] = t


Dim: TypeAlias = int | None


def _format_dims(shape: Sequence[Dim]) -> str:
    return ",".join("?" if d is None else str(d) for d in shape)


@dataclasses.dataclass(frozen=True)
class TensorType:
    """A tensor per row. ``shape == ()`` is a scalar; ``None`` marks an unknown dimension."""

    dtype: DType
    shape: tuple[Dim, ...] = ()

    def __post_init__(self) -> None:
        for d in self.shape:
            if d is not None and (not isinstance(d, int) or d < 0):
                raise SchemaError(
                    f"dimension {d!r} in shape ({_format_dims(self.shape)}) is invalid: "
                    "use a size (0 or more), or -1 / None for an unknown dimension"
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

    def with_shape(self, shape: tuple[Dim, ...]) -> TensorType:
        """A tensor type of the same kind and elements (keys stay keys) with another shape."""
        return TensorType(self.dtype, shape)

    def __str__(self) -> str:
        return self.dtype.value if self.is_scalar else f"{self.dtype.value}[{_format_dims(self.shape)}]"


_SHOWN_KEY_VALUES = 5  # how many key values a key type's text shows before "..."


_C1_NAMES: tuple[str, ...] = (
    "PAD",
    "HOP",
    "BPH",
    "NBH",
    "IND",
    "NEL",
    "SSA",
    "ESA",
    "HTS",
    "HTJ",
    "VTS",
    "PLD",
    "PLU",
    "RI",
    "SS2",
    "SS3",
    "DCS",
    "PU1",
    "PU2",
    "STS",
    "CCH",
    "MW",
    "SPA",
    "EPA",
    "SOS",
    "SGCI",
    "SCI",
    "CSI",
    "ST",
    "OSC",
    "PM",
    "APC",
)


def _char_repr(code: int) -> str:
    """ML.NET's ``AppendCharRepr``: how a character shows in KeyValues and slot names."""
    if code <= 0x20:
        return f"<{chr(code + 0x2400)}>"
    if 0xD800 <= code <= 0xDFFF:
        return "\\u4X"  # ML.NET formats with "{0:4X}", which .NET prints as the literal "4X"
    if code == 0x7F:
        return "<\u2421>"
    if 0x80 <= code <= 0x9F:
        return f"<{_C1_NAMES[code - 0x80]}>"
    if code == 0x2028:
        return "<LSEP>"
    if code == 0x2029:
        return "<PSEP>"
    return chr(code)


@dataclasses.dataclass(frozen=True, eq=False)
class KeyValues:
    """The values behind keys ``1..n`` (ML.NET's ``KeyValues`` annotation): ``items[k - 1]`` is
    the value of key ``k``, all of element type ``dtype`` (the type of the column the keys were
    made from: text, numbers or bools).

    Immutable and hashable; :attr:`array` gives them as a read-only numpy array.
    """

    dtype: DType
    items: tuple[Any, ...]
    name: str | None = None
    """A built-in table's name (saved as the name, not the values): ``"characters"``."""

    @classmethod
    def characters(cls) -> KeyValues:
        """The values of character keys (``tokenize_into_characters_as_keys``, ML.NET's
        ``TokenizeIntoCharactersAsKeys``): key ``k`` is the UTF-16 code unit ``k`` (1..65535) as
        ML.NET shows it, control characters as ``<`` + their Unicode control picture + ``>``."""
        return _characters()

    @classmethod
    def of(cls, values: np.ndarray | Sequence[Any], dtype: DType | None = None) -> KeyValues:
        """Key values from an array (of its element type) or a sequence of Python values (of
        ``dtype``, else as in schema classes: str is text, bool, int is int64, float is float32)."""
        if dtype is None and not isinstance(values, np.ndarray):
            items = list(values)
            if all(isinstance(v, str) for v in items):
                dtype = DType.STRING
            elif all(isinstance(v, bool) for v in items):
                dtype = DType.BOOL
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                dtype = DType.INT64
            elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
                dtype = DType.FLOAT32
        array = np.asarray(values, dtype=None if dtype is None else dtype.numpy).reshape(-1)
        kind = DType.from_numpy(array.dtype) if dtype is None else dtype
        if not (kind.is_numeric or kind in (DType.STRING, DType.BOOL)):
            raise SchemaError(f"key values must be text, numbers or bools, got {kind.value}")
        return cls(kind, tuple(array.tolist()))

    def __post_init__(self) -> None:
        if not self.items:
            raise SchemaError("key values cannot be empty: a key column has at least one key")

    @functools.cached_property
    def array(self) -> np.ndarray:
        out = np.array(self.items, dtype=self.dtype.numpy)
        out.setflags(write=False)
        return out

    @functools.cached_property
    def texts(self) -> tuple[str, ...]:
        """The values as text (slot names; numbers in their shortest round-trip form)."""
        if self.dtype is DType.STRING:
            return tuple(str(v) for v in self.items)
        return tuple(str(v) for v in self.array)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyValues):
            return False
        if self.name is not None and self.name == other.name:
            return True
        return (self.dtype, self.items) == (other.dtype, other.items)

    def __hash__(self) -> int:
        known: int | None = self.__dict__.get("_hash")
        if known is None:  # the hash of a million values is computed once
            known = hash((self.dtype, self.items))
            object.__setattr__(self, "_hash", known)
        return known

    def __str__(self) -> str:
        shown = ", ".join(repr(t) if self.dtype is DType.STRING else t for t in self.texts[:_SHOWN_KEY_VALUES])
        return "{" + shown + (", ...}" if len(self) > _SHOWN_KEY_VALUES else "}")

    def __repr__(self) -> str:
        return f"KeyValues({self.dtype.value}, {self})"


_CHARACTER_KEYS = 65535  # ML.NET's CharsCount = ushort.MaxValue


@functools.cache
def _characters() -> KeyValues:
    texts = tuple(_char_repr(k) for k in range(1, _CHARACTER_KEYS + 1))
    return KeyValues(DType.STRING, texts, "characters")


_NAMED_KEY_VALUES = {"characters": _characters}


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class KeyType(TensorType):
    """A key column (ML.NET's key type): unsigned integers ``1..count`` standing for categories,
    0 for a missing value.

    * ``count`` is the number of keys, or None when it is not known (an estimator's promise
      before ``fit`` learns the keys; a column declared without one).
    * ``values`` are the values behind the keys (:class:`KeyValues`, ML.NET's ``KeyValues``
      annotation), when known: ``map_key_to_value`` reads them from here, multiclass trainers
      name their ``Score`` slots with them. Their number equals ``count``. ``value_dtype`` is
      their element type; an estimator that will learn them at ``fit`` promises only it.
    * ``shape`` is ``()`` for one key per row, or the shape of a vector of keys; ``dtype`` is
      the unsigned integer type holding them (uint32 by default, as ML.NET's).

    As an annotation marker, ``Annotated[int, KeyType(3)]`` declares a key column with 3 keys
    (``VectorType`` gives a vector of keys). A KeyType is stored and exported as its integer
    tensor, but it is not equal to a plain :class:`TensorType`.
    """

    count: int | None = None
    values: KeyValues | None = None
    value_dtype: DType | None = None

    def __init__(
        self,
        count: int | None = None,
        values: KeyValues | np.ndarray | Sequence[Any] | None = None,
        *,
        shape: tuple[Dim, ...] = (),
        dtype: DType = DType.UINT32,
        value_dtype: DType | str | None = None,
    ) -> None:
        if isinstance(value_dtype, str):
            value_dtype = DType(value_dtype)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int | np.integer) or count <= 0):
            raise SchemaError(f"KeyType({count!r}): the key count must be positive, or None when unknown")
        if not (dtype.is_integer and dtype.value.startswith("uint")):
            raise SchemaError(f"KeyType: keys are unsigned integers (uint8 to uint64), not {dtype.value}")
        if values is not None and not isinstance(values, KeyValues):
            values = KeyValues.of(values, value_dtype)
        if values is not None:
            if count is None:
                count = len(values)
            elif count != len(values):
                raise SchemaError(f"KeyType({count}): {len(values)} key values were given for {count} keys")
            if value_dtype not in (None, values.dtype):
                raise SchemaError(f"KeyType: the key values are {values.dtype.value}, not {value_dtype}")
            value_dtype = values.dtype
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "count", None if count is None else int(count))
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "value_dtype", value_dtype)
        self.__post_init__()

    def with_shape(self, shape: tuple[Dim, ...]) -> KeyType:
        return KeyType(self.count, self.values, shape=shape, dtype=self.dtype, value_dtype=self.value_dtype)

    def without_values(self) -> KeyType:
        """The same keys without their values (as onnxpipe 0.1 described a key column)."""
        return KeyType(self.count, shape=self.shape, dtype=self.dtype)

    def __str__(self) -> str:
        count = "?" if self.count is None else str(self.count)
        base = f"key<{self.dtype.value},{count}>"
        if not self.is_scalar:
            base += f"[{_format_dims(self.shape)}]"
        if self.values is not None:
            return base + str(self.values)
        return base + (f"{{{self.value_dtype.value} values}}" if self.value_dtype is not None else "")

    def __repr__(self) -> str:
        parts = [repr(self.count)]
        if self.values is not None:
            parts.append(f"values={list(self.values.items[:_SHOWN_KEY_VALUES])!r}")
        if self.shape:
            parts.append(f"shape={self.shape!r}")
        return f"KeyType({', '.join(parts)})"


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


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class AnyRankTensorType(TensorType):
    """A tensor of any shape per row (ONNX's tensor type without a shape, e.g. the elements of
    ``SplitToSequence``'s output): each row keeps its own rank and dimensions.

    Stored as a shape and the flat values; ``shape`` reads ``(None,)`` (a flat vector of unknown
    length) for code that only needs the element type, but the rows are arrays of any rank.
    """

    def __init__(self, dtype: DType) -> None:
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", (None,))

    def __str__(self) -> str:
        return f"{self.dtype.value}[*]"

    def __repr__(self) -> str:
        return f"AnyRankTensorType({self.dtype})"


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class SparseVectorType(TensorType):
    """A vector of ``size`` values per row of which few are non-zero (ML.NET's sparse VBuffer,
    scipy's CSR): bags of words, hashed n-grams, one-hot codes of many categories.

    In memory a batch of such a column is a ``scipy.sparse.csr_matrix`` of shape ``(rows, size)``;
    :meth:`DataView.column` gives the whole column as one. In Arrow each row is
    ``struct<indices: list<int32>, values: list<elem>>`` (its non-zero slots in increasing order
    and their values; the size is on the schema), so nothing is densified. At the ONNX boundary
    (export, ``apply_onnx_model``) it becomes the dense tensor ``[N, size]``. A SparseVectorType is
    a :class:`TensorType` of shape ``(size,)`` but not equal to the dense one.
    """

    def __init__(self, dtype: DType, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
            raise SchemaError(f"SparseVectorType({dtype}, {size!r}): the size must be a number of slots (0 or more)")
        if not (dtype.is_numeric or dtype is DType.BOOL):
            raise SchemaError(f"SparseVectorType: a sparse vector holds numbers or bools, not {dtype.value}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", (int(size),))

    @property
    def vector_size(self) -> int:
        return self.shape[0]  # type: ignore[return-value]

    def with_shape(self, shape: tuple[Dim, ...]) -> TensorType:
        return TensorType(self.dtype, shape)  # a reshaped sparse vector is dense

    def __str__(self) -> str:
        return f"{self.dtype.value}[{self.vector_size}] sparse"

    def __repr__(self) -> str:
        return f"SparseVectorType({self.dtype}, {self.vector_size})"


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


@dataclasses.dataclass(frozen=True)
class OptionalType:
    """A value that may be absent per row (ONNX ``optional(T)``): the element's value, or None."""

    element: ColumnType

    def __str__(self) -> str:
        return f"optional<{self.element}>"


ColumnType: TypeAlias = TensorType | SequenceType | MapType | OptionalType


def column_type_to_json(ct: ColumnType) -> dict[str, Any]:
    if isinstance(ct, ImageType):
        return {"kind": "image", "height": ct.height, "width": ct.width}
    if isinstance(ct, AnyRankTensorType):
        return {"kind": "tensor", "dtype": ct.dtype.value, "shape": None}
    if isinstance(ct, SparseVectorType):
        return {"kind": "sparse", "dtype": ct.dtype.value, "size": ct.vector_size}
    if isinstance(ct, OptionalType):
        return {"kind": "optional", "element": column_type_to_json(ct.element)}
    if isinstance(ct, KeyType):
        key: dict[str, Any] = {"kind": "key", "dtype": ct.dtype.value, "shape": list(ct.shape), "count": ct.count}
        if ct.values is not None and ct.values.name is not None:
            key["values"] = {"dtype": ct.values.dtype.value, "named": ct.values.name}
        elif ct.values is not None:
            key["values"] = {"dtype": ct.values.dtype.value, "items": list(ct.values.items)}
        elif ct.value_dtype is not None:
            key["value_dtype"] = ct.value_dtype.value
        return key
    if isinstance(ct, TensorType):
        return {"kind": "tensor", "dtype": ct.dtype.value, "shape": list(ct.shape)}
    if isinstance(ct, SequenceType):
        return {"kind": "sequence", "element": column_type_to_json(ct.element)}
    return {"kind": "map", "key": ct.key.value, "value": column_type_to_json(ct.value)}


def column_type_from_json(obj: Mapping[str, Any]) -> ColumnType:
    try:
        kind = obj["kind"]
        if kind == "tensor" and obj["shape"] is None:
            return AnyRankTensorType(DType(obj["dtype"]))
        if kind == "tensor" and obj.get("key_count") is not None:  # how onnxpipe 0.1 described a key column
            return KeyType(obj["key_count"] or None, shape=tuple(obj["shape"]), dtype=DType(obj["dtype"]))
        if kind == "tensor":
            return TensorType(DType(obj["dtype"]), tuple(obj["shape"]))
        if kind == "key":
            return KeyType(
                obj["count"],
                _key_values_from_json(obj.get("values")),
                shape=tuple(obj["shape"]),
                dtype=DType(obj["dtype"]),
                value_dtype=DType(obj["value_dtype"]) if obj.get("value_dtype") is not None else None,
            )
        if kind == "image":
            return ImageType(obj.get("height"), obj.get("width"))
        if kind == "sparse":
            return SparseVectorType(DType(obj["dtype"]), obj["size"])
        if kind == "sequence":
            return SequenceType(column_type_from_json(obj["element"]))
        if kind == "map":
            return MapType(DType(obj["key"]), column_type_from_json(obj["value"]))
        if kind == "optional":
            return OptionalType(column_type_from_json(obj["element"]))
    except (KeyError, ValueError, TypeError, SchemaError) as exc:
        raise SchemaError(f"invalid column type description {dict(obj)!r}: {exc}") from None
    raise SchemaError(
        f"invalid column type kind {kind!r}: expected tensor, key, image, sparse, sequence, map or optional"
    )


def _key_values_from_json(values: Mapping[str, Any] | None) -> KeyValues | None:
    if values is None:
        return None
    if "named" in values:
        factory = _NAMED_KEY_VALUES.get(values["named"])
        if factory is None:
            raise SchemaError(f"unknown key value table {values['named']!r}; known: {sorted(_NAMED_KEY_VALUES)}")
        return factory()
    return KeyValues(DType(values["dtype"]), tuple(values["items"]))


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

    def __rich__(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        from onnxpipe._display import shown

        table = Table(title="Schema", title_justify="left")
        table.add_column("Column")
        table.add_column("Type")
        for column in self.columns:
            table.add_row(Text(shown(column.name)), Text(shown(column.type)))
        return table

    def _repr_html_(self) -> str:
        from onnxpipe._display import render_html

        return render_html(self)

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
            elif isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0:  # 0 is a size, as in ONNX
                fixed.append(int(d))
            else:
                raise SchemaError(
                    f"VectorType{tuple(dims)}: dimension {d!r} is invalid; use a size (0 or more), "
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
        "bool, str, or a numpy scalar type such as np.float64 or np.int32 (ml_dtypes.bfloat16, "
        "ml_dtypes.float8_e4m3fn, ml_dtypes.int4... for ONNX's low-precision types)"
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
    if origin in (typing.Union, types.UnionType):  # X | None: an ONNX optional
        present = [a for a in args if a is not type(None)]
        if len(present) != 1 or len(present) == len(args):
            raise ColumnTypeError(
                f"{where}: {tp!r} is not supported; a union must be one type or None (an optional), e.g. "
                "list[npt.NDArray[np.float32]] | None"
            )
        return OptionalType(_column_type(present[0], markers, where)[0]), False
    if origin is np.ndarray:
        shape = vector.dims if vector else (None,)
        if key is not None:
            return key.with_shape(shape), False
        return TensorType(_scalar_dtype(args[1] if len(args) == 2 else np.float32, where), shape), False
    if origin is dict:
        return MapType(_scalar_dtype(args[0], where), _column_type(args[1], [], where)[0]), False
    if origin is list:
        if len(args) != 1:
            raise ColumnTypeError(f"{where}: {tp!r} is not supported; a list takes one element type, e.g. list[float]")
        (item,) = args
        if typing.get_origin(item) in (dict, list):
            return SequenceType(_column_type(item, [], where)[0]), True
        if typing.get_origin(item) is np.ndarray or item is np.ndarray:
            # A sequence of tensors; VectorType, if given, is the shape of every element.
            item_args = typing.get_args(item)
            dtype = _scalar_dtype(item_args[1] if len(item_args) == 2 else np.float32, where)
            element = TensorType(dtype, vector.dims) if vector else AnyRankTensorType(dtype)
            return SequenceType(element), True
        shape = vector.dims if vector else (None,)
        if key is not None:
            return key.with_shape(shape), True
        return TensorType(_scalar_dtype(item, where), shape), True
    shape = vector.dims if vector else ()
    if key is not None:
        return key.with_shape(shape), False
    return TensorType(_scalar_dtype(tp, where), shape), False


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
                ctype = (
                    ctype.with_shape((load.count,))
                    if isinstance(ctype, KeyType)
                    else TensorType(ctype.dtype, (load.count,))
                )
        numpy_scalar = isinstance(hint, type) and issubclass(hint, np.generic)
        fields.append(FieldBinding(attr, Column(name, ctype), load, as_list, is_pil_image_class(hint), numpy_scalar))
    return RowBinding(cls, tuple(fields))


def schema_of(cls: type) -> Schema:
    """The :class:`Schema` declared by a schema class."""
    return row_binding(cls).schema
