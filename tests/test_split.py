"""train_test_split and cross-validation folds: deterministic, streaming, grouped by a column."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import onnxpipe as op
from onnxpipe.data import cross_validation_folds
from onnxpipe.errors import ColumnNotFoundError, InvalidArgumentError

ctx = op.MLContext(seed=3)


@dataclass
class Row:
    id: int
    user: str
    x: float


def _data(n: int = 2000) -> op.DataView:
    return ctx.data.load_from_enumerable([Row(i, f"u{i % 37}", i * 0.5) for i in range(n)], Row, batch_size=300)


def test_split_is_a_deterministic_partition_near_the_fraction() -> None:
    data = _data()
    split = ctx.data.train_test_split(data, test_fraction=0.2)
    train, test = split.train_set.column("id").tolist(), split.test_set.column("id").tolist()
    assert sorted(train + test) == list(range(2000))
    assert 0.17 < len(test) / 2000 < 0.23
    again = ctx.data.train_test_split(data, test_fraction=0.2)
    assert again.test_set.column("id").tolist() == test
    other = ctx.data.train_test_split(data, test_fraction=0.2, seed=99)
    assert other.test_set.column("id").tolist() != test
    assert split.test_set.schema == data.schema


def test_rows_sharing_a_stratification_value_stay_together() -> None:
    split = ctx.data.train_test_split(_data(), test_fraction=0.3, stratification_column="user")
    train_users = set(split.train_set.column("user").tolist())
    test_users = set(split.test_set.column("user").tolist())
    assert train_users and test_users and not train_users & test_users


def test_folds_partition_the_data() -> None:
    data = _data(500)
    folds = cross_validation_folds(data, 4, seed=1)
    tests = [f.test_set.column("id").tolist() for f in folds]
    assert sorted(i for t in tests for i in t) == list(range(500))
    for fold, t in zip(folds, tests, strict=True):
        assert sorted(fold.train_set.column("id").tolist() + t) == list(range(500))
        assert 80 < len(t) < 170


def test_split_errors() -> None:
    with pytest.raises(InvalidArgumentError, match=r"test_fraction must be between 0 and 1 \(exclusive\), got 1.5"):
        ctx.data.train_test_split(_data(10), test_fraction=1.5)
    with pytest.raises(ColumnNotFoundError, match="train_test_split: input column 'nope'"):
        ctx.data.train_test_split(_data(10), stratification_column="nope")
    with pytest.raises(InvalidArgumentError, match="at least 2 folds"):
        cross_validation_folds(_data(10), 1)
