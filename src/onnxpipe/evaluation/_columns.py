"""Reading and checking the columns of scored data, for the evaluators."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from onnxpipe.data._convert import from_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, ShapeError
from onnxpipe.schema import DType, KeyType, Schema, TensorType

__all__ = [
    "check_scalar",
    "column_batches",
    "label_type",
    "missing_labels",
    "read_columns",
    "score_matrix",
    "score_type",
]


def check_scalar(
    schema: Schema, name: str, step: str, role: str, *, floats: bool = False, bool_ok: bool = False
) -> None:
    """Raise unless column ``name`` is a numeric (``floats``: a float) scalar, or a bool with ``bool_ok``."""
    ct = schema.require(name, step).type
    if isinstance(ct, TensorType) and ct.is_scalar and not isinstance(ct, KeyType):
        if ct.dtype.is_float if floats else ct.dtype.is_numeric:
            return
        if bool_ok and ct.dtype is DType.BOOL:
            return
    expected = "a float scalar" if floats else "a numeric scalar" + (" or bool" if bool_ok else "")
    raise ColumnTypeError(f"{step}: {role} column {name!r} is {ct}; {expected} is expected")


def read_columns(data: DataView, names: Sequence[str], step: str) -> dict[str, np.ndarray]:
    """Columns ``names`` (scalars) as arrays; the data must have rows."""
    cols = data.arrays(names)
    if not len(cols[names[0]]):
        raise DataError(f"{step}: the data has no rows; metrics need at least one scored row")
    return cols


def score_type(schema: Schema, name: str, step: str) -> TensorType:
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.dtype.is_float or ct.rank != 1:
        raise ColumnTypeError(
            f"{step}: score column {name!r} must be a vector of floats (one score per class or cluster), got {ct}"
        )
    return ct


def label_type(schema: Schema, name: str, step: str) -> TensorType:
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.is_scalar:
        raise ColumnTypeError(f"{step}: label column {name!r} must be a scalar column (any type, or a key), got {ct}")
    return ct


def missing_labels(values: np.ndarray, ct: TensorType) -> np.ndarray:
    """Where a label is missing: key 0, NaN (no other type has a missing value)."""
    if isinstance(ct, KeyType):
        return np.asarray(values == 0)
    if ct.dtype.is_float:
        return np.asarray(np.isnan(values))
    return np.zeros(len(values), dtype=bool)


def score_matrix(values: Any, n: int, name: str, step: str, width: int | None) -> np.ndarray:
    """One batch of a score column as a float64 matrix (rows, slots)."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64).reshape(n, -1)
    rows = [np.asarray(v, dtype=np.float64).reshape(-1) for v in values]
    sizes = {len(r) for r in rows}
    if width is not None:
        sizes.add(width)
    if len(sizes) > 1:
        raise ShapeError(f"{step}: score column {name!r} has rows of different sizes {sorted(sizes)}")
    return np.stack(rows) if rows else np.zeros((0, width or 0))


def column_batches(data: DataView, names: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(rows, {name: values}) per record batch of ``data``."""
    for batch in data.batches():
        yield batch.num_rows, {n: from_arrow(batch.column(n), data.schema[n].type) for n in names}
