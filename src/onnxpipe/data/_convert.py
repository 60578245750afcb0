"""Arrow storage of column types, and conversion between Arrow arrays and numpy values.

Storage (one Arrow type per column type, so any Arrow sink keeps the data):

* scalar             -> the element's Arrow type; for the low-precision types (bfloat16, float8,
  float4, int4, int2: ml_dtypes arrays in memory) their raw bits, ``uint16`` for bfloat16 and
  ``uint8`` for the others (one element per byte, in its low bits), the field's ``onnxpipe.type``
  metadata saying which type they are
* tensor, known shape -> ``fixed_size_list<elem>[size]`` (row-major; the shape is in the schema);
  ``list<elem>`` of empty lists when a dimension is 0 (Arrow has no fixed-size list of size 0)
* tensor, one unknown dimension -> ``list<elem>`` (the unknown size follows from the length)
* tensor, several unknown dimensions -> ``struct<shape: fixed_size_list<int64>[rank], values: list<elem>>``
* tensor of any rank -> ``struct<shape: list<int64>, values: list<elem>>``
* sparse vector -> ``struct<indices: list<int32>, values: list<elem>>``: each row's non-zero slots
  in increasing order and their values (the vector's size is in the schema)
* map -> ``map<key, value>``; sequence -> ``list<element>`` (the element stored as above)
* optional -> ``list<element>`` holding 0 (empty) or 1 value (Arrow nulls are not data here)

In-memory values of one batch (``ColumnValues``): a numpy array of shape ``(rows, *shape)`` for
tensors of known shape, a ``scipy.sparse.csr_matrix`` ``(rows, size)`` for sparse vectors, a
list of per-row numpy arrays when a dimension or the rank is unknown, and a list of Python
objects for the others: a ``list`` per row for sequences (of numpy arrays when the elements are
tensors), a ``dict`` for maps, the value or None for optionals.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, TypeAlias, cast

import numpy as np
import pyarrow as pa

from onnxpipe.errors import ColumnTypeError, SchemaError, ShapeError
from onnxpipe.schema import (
    AnyRankTensorType,
    Column,
    ColumnType,
    DType,
    MapType,
    OptionalType,
    Schema,
    SequenceType,
    SparseVectorType,
    TensorType,
    column_type_from_json,
    column_type_to_json,
)

__all__ = [
    "ColumnValues",
    "arrow_schema",
    "arrow_type",
    "as_csr",
    "fixed_size_lists",
    "is_sparse",
    "from_arrow",
    "schema_from_arrow",
    "to_arrow",
    "value_count",
]

ColumnValues: TypeAlias = np.ndarray | list[Any]

_TYPE_KEY = b"onnxpipe.type"
_SLOTS_KEY = b"onnxpipe.slot_names"


def arrow_type(ct: ColumnType) -> pa.DataType:
    if isinstance(ct, SparseVectorType):
        return pa.struct([("indices", pa.list_(pa.int32())), ("values", pa.list_(ct.dtype.arrow))])
    if isinstance(ct, AnyRankTensorType):
        return pa.struct([("shape", pa.list_(pa.int64())), ("values", pa.list_(ct.dtype.arrow))])
    if isinstance(ct, TensorType):
        elem = ct.dtype.arrow
        if ct.is_scalar:
            return elem
        if ct.is_known_shape and ct.size == 0:  # Arrow has no fixed-size list of size 0
            return pa.list_(elem)
        if ct.is_known_shape:
            return pa.list_(elem, ct.size)
        if ct.shape.count(None) == 1:
            return pa.list_(elem)
        return pa.struct([("shape", pa.list_(pa.int64(), ct.rank)), ("values", pa.list_(elem))])
    if isinstance(ct, MapType):
        return pa.map_(ct.key.arrow, arrow_type(ct.value))
    return pa.list_(arrow_type(ct.element))  # a sequence, or an optional of 0 or 1 values


def arrow_field(column: Column) -> pa.Field:
    meta = {_TYPE_KEY: json.dumps(column_type_to_json(column.type)).encode()}
    if column.slot_names is not None:
        meta[_SLOTS_KEY] = json.dumps(list(column.slot_names)).encode()
    return pa.field(column.name, arrow_type(column.type), nullable=False, metadata=meta)


@functools.lru_cache(maxsize=512)
def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema storing ``schema`` (cached: schemas are immutable and hash once)."""
    return pa.schema([arrow_field(c) for c in schema.columns])


def list_values(arr: pa.Array) -> pa.Array:
    """The values of a (fixed-size) list array, for its rows only (``.flatten()`` without the
    compute-kernel call)."""
    values = arr.values
    if pa.types.is_fixed_size_list(arr.type):
        start, stop = arr.offset * arr.type.list_size, (arr.offset + len(arr)) * arr.type.list_size
    else:
        offsets = arr.offsets
        start, stop = offsets[0].as_py(), offsets[len(arr)].as_py()
    return values if (start, stop) == (0, len(values)) else values.slice(start, stop - start)


def _infer_type(name: str, t: pa.DataType) -> ColumnType:
    if pa.types.is_fixed_size_list(t):
        inner = _infer_type(name, t.value_type)
        if isinstance(inner, TensorType) and inner.is_scalar:
            return TensorType(inner.dtype, (t.list_size,))
        return SequenceType(inner)
    if isinstance(t, pa.FixedShapeTensorType):
        return TensorType(DType.from_arrow(t.value_type), tuple(t.shape))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _infer_type(name, t.value_type)
        if isinstance(inner, TensorType) and inner.is_scalar:
            return TensorType(inner.dtype, (None,))
        return SequenceType(inner)
    if pa.types.is_map(t):
        return MapType(DType.from_arrow(t.key_type), _infer_type(name, t.item_type))
    if pa.types.is_dictionary(t):
        return _infer_type(name, t.value_type)
    try:
        return TensorType(DType.from_arrow(t))
    except ColumnTypeError:
        raise ColumnTypeError(
            f"column {name!r}: Arrow type {t} is not supported; supported are numbers, bool, "
            "strings, fixed-size and variable lists of them, maps and lists of maps"
        ) from None


def schema_from_arrow(schema: pa.Schema) -> Schema:
    """Read a Schema from an Arrow schema, using onnxpipe's field metadata where present."""
    cols = []
    for f in schema:
        meta = f.metadata or {}
        try:
            ct = (
                column_type_from_json(json.loads(meta[_TYPE_KEY])) if _TYPE_KEY in meta else _infer_type(f.name, f.type)
            )
            slots = json.loads(meta[_SLOTS_KEY]) if _SLOTS_KEY in meta else None
            cols.append(Column(f.name, ct, tuple(slots) if slots is not None else None))
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, SchemaError) and _TYPE_KEY not in meta:
                raise
            raise SchemaError(
                f"column {f.name!r}: its onnxpipe.type metadata is damaged ({exc}); drop the field metadata to "
                "infer the type from the Arrow type"
            ) from None
    return Schema(cols)


def is_sparse(values: Any) -> bool:
    """Whether ``values`` is a batch of a sparse vector column (a scipy CSR matrix)."""
    return getattr(values, "format", None) == "csr"


def value_count(values: ColumnValues) -> int:
    """Rows in one batch of a column (a sparse batch is a matrix, whose len() is ambiguous)."""
    shape = getattr(values, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) else len(values)


# --------------------------------------------------------------------------------------------
# Arrow -> numpy


def _flat_numpy(arr: pa.Array, dtype: DType) -> np.ndarray:
    if dtype is DType.STRING:
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
    if arr.null_count:
        raise SchemaError("unexpected missing values in a numeric Arrow array")
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    if dtype.is_low_precision:  # stored as raw bits: the same bytes, read as the ml_dtypes type
        return out.view(dtype.numpy)
    return out


def from_arrow(arr: pa.Array | pa.ChunkedArray, ct: ColumnType) -> ColumnValues:
    """The numpy values of an Arrow column of type ``ct``."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if isinstance(ct, SparseVectorType):
        return cast("ColumnValues", _csr_from_arrow(arr, ct))  # a scipy CSR matrix (scipy is untyped)
    if isinstance(ct, TensorType):
        if ct.is_scalar:
            return _flat_numpy(arr, ct.dtype)
        n = len(arr)
        if ct.is_known_shape:
            flat = _flat_numpy(list_values(arr), ct.dtype)
            return flat.reshape((n, *ct.fixed_shape))
        shapes: list[tuple[int, ...]] | None = None
        if isinstance(ct, AnyRankTensorType):
            shape_lists = arr.field("shape")
            dims, ends = list_values(shape_lists).to_numpy(), shape_lists.offsets.to_numpy()
            shapes = [tuple(dims[ends[i] - ends[0] : ends[i + 1] - ends[0]].tolist()) for i in range(n)]
            values_arr = arr.field("values")
        elif pa.types.is_struct(arr.type):
            shapes = [tuple(s) for s in list_values(arr.field("shape")).to_numpy().reshape(n, ct.rank).tolist()]
            values_arr = arr.field("values")
        else:
            values_arr = arr
        offsets = values_arr.offsets.to_numpy()
        flat = _flat_numpy(list_values(values_arr), ct.dtype)
        rows: list[np.ndarray] = []
        for i in range(n):
            chunk = flat[offsets[i] - offsets[0] : offsets[i + 1] - offsets[0]]
            shape = shapes[i] if shapes is not None else _resolve_one(ct, len(chunk))
            rows.append(chunk.reshape(shape))
        return rows
    if isinstance(ct, OptionalType):
        return [row[0] if row else None for row in from_arrow(arr, SequenceType(ct.element))]
    if isinstance(ct, SequenceType) and _holds_tensors(ct.element):
        # The elements of every row through the element's own storage, then regrouped by row.
        elements = from_arrow(list_values(arr), ct.element)
        ends = arr.offsets.to_numpy() - arr.offsets[0].as_py()
        return [list(elements[ends[i] : ends[i + 1]]) for i in range(len(arr))]
    return [_python_value(v, ct) for v in arr.to_pylist()]


def _csr_from_arrow(arr: pa.Array, ct: SparseVectorType) -> Any:
    """A sparse column's rows as one CSR matrix (indices and values read without a copy where Arrow allows)."""
    from scipy import sparse  # ~50 ms: only when sparse data flows

    indices_lists, values_lists = arr.field("indices"), arr.field("values")
    offsets = indices_lists.offsets.to_numpy()
    indptr = (offsets - offsets[0]).astype(np.int64)
    indices = list_values(indices_lists).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    values = _flat_numpy(list_values(values_lists), ct.dtype)
    if len(values) != len(indices):
        raise SchemaError(f"a sparse vector row has {len(indices)} indices but {len(values)} values")
    if len(indices) and (indices.min() < 0 or indices.max() >= ct.vector_size):
        raise SchemaError(f"a sparse vector's slot index is outside 0..{ct.vector_size - 1}")
    return sparse.csr_matrix((values, indices, indptr), shape=(len(arr), ct.vector_size))


def as_csr(values: Any, ct: SparseVectorType, column: str = "?") -> Any:
    """``values`` (a scipy sparse matrix, or dense rows) as a canonical CSR matrix ``(rows, size)``
    of the column's element type: sorted indices, no explicit zeros."""
    from scipy import sparse

    matrix = values if sparse.issparse(values) else sparse.csr_matrix(np.asarray(values).reshape(len(values), -1))
    matrix = sparse.csr_matrix(matrix, dtype=ct.dtype.numpy)
    if matrix.shape[1] != ct.vector_size:
        raise ShapeError(
            f"column {column!r}: a sparse batch of {matrix.shape[1]} slots does not fit the column type {ct}"
        )
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _holds_tensors(ct: ColumnType) -> bool:
    """Whether values of ``ct`` are (or contain) numpy arrays or optionals, which go through the
    element's own storage; maps hold Python values (ZipMap's probabilities)."""
    if isinstance(ct, TensorType | OptionalType):
        return True
    return isinstance(ct, SequenceType) and _holds_tensors(ct.element)


def _resolve_one(ct: TensorType, count: int) -> tuple[int, ...]:
    known = math.prod(d for d in ct.shape if d is not None)
    return tuple(count // known if d is None else d for d in ct.shape) if known else (0,) * ct.rank


def _python_value(v: Any, ct: ColumnType) -> Any:
    if isinstance(ct, MapType):
        return {k: _python_value(x, ct.value) for k, x in v}
    if isinstance(ct, SequenceType):
        return [_python_value(x, ct.element) for x in v]
    return v


# --------------------------------------------------------------------------------------------
# numpy -> Arrow


def _flat_arrow(flat: np.ndarray, dtype: DType) -> pa.Array:
    if dtype is DType.STRING:
        return pa.array(flat.astype(object, copy=False), type=pa.string())
    if dtype.is_low_precision:
        # The raw bits, one element per byte (uint16 for bfloat16); the bits above a 4- or 2-bit
        # element, which ml_dtypes ignores, are cleared so that equal values store equal bytes.
        raw: np.ndarray = np.ascontiguousarray(flat, dtype=dtype.numpy).view(dtype.arrow.to_pandas_dtype())
        if dtype.bits < 8:
            raw = np.bitwise_and(raw, np.uint8((1 << dtype.bits) - 1))
        return pa.array(raw, type=dtype.arrow)
    return pa.array(np.ascontiguousarray(flat, dtype=dtype.numpy), type=dtype.arrow)


def to_arrow(values: ColumnValues, ct: ColumnType, column: str = "?") -> pa.Array:
    """Arrow storage for the numpy values of a column of type ``ct``."""
    if isinstance(ct, SparseVectorType):
        matrix = as_csr(values, ct, column)
        if matrix.nnz > np.iinfo(np.int32).max:
            raise ShapeError(
                f"column {column!r}: a batch holds {matrix.nnz:,} non-zero values, more than an Arrow list can; "
                "use smaller batches (batch_size)"
            )
        offsets = pa.array(matrix.indptr.astype(np.int32))
        indices = pa.ListArray.from_arrays(offsets, pa.array(matrix.indices.astype(np.int32)))
        data = pa.ListArray.from_arrays(offsets, _flat_arrow(matrix.data, ct.dtype))
        return pa.StructArray.from_arrays([indices, data], names=["indices", "values"])
    if isinstance(ct, TensorType):
        if ct.is_scalar:
            return _flat_arrow(np.asarray(values).reshape(-1), ct.dtype)
        if ct.is_known_shape:
            arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
            if arr.ndim == 1 and arr.dtype == object and len(arr) and isinstance(arr[0], np.ndarray):
                arr = np.stack(list(arr))
            n, size = len(arr), math.prod(ct.fixed_shape)
            if arr.size != n * size:
                raise ShapeError(f"column {column!r}: values of shape {arr.shape} do not fit the column type {ct}")
            return fixed_size_lists(_flat_arrow(arr.reshape(-1), ct.dtype), size, n)
        rows = [np.asarray(r) for r in values]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([r.size for r in rows], out=offsets[1:])
        if offsets[-1] > np.iinfo(np.int32).max:
            raise ShapeError(
                f"column {column!r}: a batch holds {offsets[-1]:,} values, more than an Arrow list can; "
                "use smaller batches (batch_size)"
            )
        # One copy per row straight into its place (also for non-contiguous rows such as crops).
        flat = np.empty(int(offsets[-1]), dtype=ct.dtype.numpy)
        for r, start, stop in zip(rows, offsets[:-1], offsets[1:], strict=True):
            flat[start:stop].reshape(r.shape)[...] = r
        lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), _flat_arrow(flat, ct.dtype))
        if isinstance(ct, AnyRankTensorType):  # each row's shape, of its own rank
            ranks = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum([r.ndim for r in rows], out=ranks[1:])
            dims = np.fromiter((d for r in rows for d in r.shape), dtype=np.int64, count=int(ranks[-1]))
            shape_arr: pa.Array = pa.ListArray.from_arrays(pa.array(ranks.astype(np.int32)), pa.array(dims))
        elif ct.shape.count(None) == 1:
            return lists
        else:
            shapes = np.array([r.shape for r in rows], dtype=np.int64).reshape(-1, ct.rank)
            shape_arr = pa.FixedSizeListArray.from_arrays(pa.array(shapes.reshape(-1)), ct.rank)
        return pa.StructArray.from_arrays([shape_arr, lists], names=["shape", "values"])
    if isinstance(ct, OptionalType):
        return to_arrow([[] if v is None else [v] for v in values], SequenceType(ct.element), column)
    if isinstance(ct, SequenceType) and _holds_tensors(ct.element):
        counts = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        elements = [x for v in values for x in v]
        if isinstance(ct.element, TensorType):
            elements = [_element_array(x, ct.element, column) for x in elements]
        child = to_arrow(elements, ct.element, column)
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), child)
    typ = arrow_type(ct)
    return pa.array([_arrow_python(v, ct) for v in values], type=typ)


def _element_array(value: Any, ct: TensorType, column: str) -> np.ndarray:
    """A sequence element as an array of the element type (its shape checked where declared)."""
    arr = np.asarray(value, dtype=None if ct.dtype is DType.STRING else ct.dtype.numpy)
    if not isinstance(ct, AnyRankTensorType) and (arr.ndim != ct.rank or not _fits(arr.shape, ct.shape)):
        raise ShapeError(f"column {column!r}: a sequence element of shape {arr.shape} is not a {ct}")
    return arr


def _fits(shape: tuple[int, ...], declared: tuple[int | None, ...]) -> bool:
    return all(d is None or d == s for s, d in zip(shape, declared, strict=True))


def fixed_size_lists(values: pa.Array, size: int, n: int) -> pa.Array:
    """``n`` rows of ``size`` values each, as a known-shape tensor column stores them: a
    fixed-size list, or empty variable-size lists when ``size`` is 0 (which Arrow cannot fix)."""
    if size == 0:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), values)
    return pa.FixedSizeListArray.from_arrays(values, size)


def _arrow_python(v: Any, ct: ColumnType) -> Any:
    if isinstance(ct, MapType):
        return [(k, _arrow_python(x, ct.value)) for k, x in v.items()]
    if isinstance(ct, SequenceType):
        return [_arrow_python(x, ct.element) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v
