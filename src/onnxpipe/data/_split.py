"""Deterministic, streaming train/test splits and cross-validation folds."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from onnxpipe.data._convert import from_arrow
from onnxpipe.data._loaders import as_data_view
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, InvalidArgumentError
from onnxpipe.schema import DType, TensorType

__all__ = ["TrainTestData", "cross_validation_folds", "train_test_split"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each value."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(keys: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per key, fixed by ``seed``."""
    with np.errstate(over="ignore"):
        mixed = _mix(keys ^ _mix(np.array([seed], dtype=np.uint64))[0])
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _group_keys(batch: pa.RecordBatch, view: DataView, column: str) -> np.ndarray:
    """A 64-bit key per row such that equal values of ``column`` have equal keys."""
    ct = view.schema[column].type
    assert isinstance(ct, TensorType)
    values = from_arrow(batch.column(column), ct)
    if ct.dtype is not DType.STRING:
        return np.ascontiguousarray(np.asarray(values).astype(np.float64)).view(np.uint64)
    # strings: hash their UTF-8 bytes (stable across processes, unlike Python's hash())
    return np.array([int.from_bytes(_fnv1a(str(v).encode()), "little") for v in values], dtype=np.uint64)


def _fnv1a(data: bytes) -> bytes:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h.to_bytes(8, "little")


def fold_of_rows(view: DataView, batch: pa.RecordBatch, first_row: int, seed: int, column: str | None) -> np.ndarray:
    """A number in [0, 1) per row of ``batch``: by row position, or by the value of ``column``."""
    if column is None:
        keys = np.arange(first_row, first_row + batch.num_rows, dtype=np.uint64)
    else:
        keys = _group_keys(batch, view, column)
    return _unit(keys, seed)


def _filtered(view: DataView, seed: int, column: str | None, low: float, high: float, inside: bool) -> DataView:
    """The rows whose number falls in [low, high) (``inside``) or outside it."""

    def batches() -> Iterator[pa.RecordBatch]:
        first = 0
        for batch in view.batches():
            u = fold_of_rows(view, batch, first, seed, column)
            first += batch.num_rows
            mask = (u >= low) & (u < high)
            if not inside:
                mask = ~mask
            if mask.all():
                yield batch
            elif mask.any():
                yield batch.filter(pa.array(mask))

    return DataView(view.schema, batches)


@dataclasses.dataclass(frozen=True)
class TrainTestData:
    train_set: DataView
    test_set: DataView


def train_test_split(
    data: DataView | Any,
    test_fraction: float = 0.1,
    *,
    seed: int | None = None,
    stratification_column: str | None = None,
) -> TrainTestData:
    """Split ``data`` lazily into train and test views.

    Each row lands in the test set with probability ``test_fraction``, decided by a hash of its
    position and ``seed`` (so the split is the same every time). With ``stratification_column``
    (ML.NET's sampling key), rows with equal values in that column always land on the same side,
    so related rows (e.g. one user's) never straddle the split.
    """
    number = isinstance(test_fraction, int | float | np.integer | np.floating) and not isinstance(test_fraction, bool)
    if not number or not 0.0 < test_fraction < 1.0:
        raise InvalidArgumentError(
            f"train_test_split: test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}"
        )
    data = as_data_view(data, "train_test_split")
    if stratification_column is not None:
        data.schema.require(stratification_column, "train_test_split")
        _check_key_column(data, stratification_column)
    seed = 0 if seed is None else seed
    test = _filtered(data, seed, stratification_column, 0.0, test_fraction, inside=True)
    train = _filtered(data, seed, stratification_column, 0.0, test_fraction, inside=False)
    return TrainTestData(train, test)


def cross_validation_folds(
    data: DataView | Any, number_of_folds: int = 5, *, seed: int | None = None, stratification_column: str | None = None
) -> list[TrainTestData]:
    """``number_of_folds`` (train, test) pairs whose test sets partition ``data``."""
    if isinstance(number_of_folds, bool) or not isinstance(number_of_folds, int) or number_of_folds < 2:
        raise InvalidArgumentError(f"cross-validation needs at least 2 folds (an integer), got {number_of_folds!r}")
    data = as_data_view(data, "cross_validate")
    if stratification_column is not None:
        data.schema.require(stratification_column, "cross_validate")
        _check_key_column(data, stratification_column)
    seed = 0 if seed is None else seed
    k = number_of_folds
    return [
        TrainTestData(
            _filtered(data, seed, stratification_column, i / k, (i + 1) / k, inside=False),
            _filtered(data, seed, stratification_column, i / k, (i + 1) / k, inside=True),
        )
        for i in range(k)
    ]


def _check_key_column(data: DataView, column: str) -> None:
    ct = data.schema[column].type
    if not isinstance(ct, TensorType) or not ct.is_scalar:
        raise ColumnTypeError(f"train_test_split: stratification column {column!r} must be a scalar column, got {ct}")
