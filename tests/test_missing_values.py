"""Missing values (replace_missing_values, indicate_missing_values) and count feature selection
(select_features_based_on_count)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.impute import SimpleImputer

import onnxpipe as op
from onnxpipe import KeyType, LoadColumn, VectorType
from onnxpipe.core import Estimator, Transformer
from onnxpipe.data import DataView
from onnxpipe.data._convert import arrow_schema
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError, ShapeError
from onnxpipe.export import convert_to_onnx
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.testing import check_component
from onnxpipe.transforms.conversion import ValueToKeyMappingEstimator
from onnxpipe.transforms.feature_selection import CountFeatureSelectingEstimator, CountFeatureSelectingTransformer
from onnxpipe.transforms.missing_values import (
    MissingValueIndicatorTransformer,
    MissingValueReplacingEstimator,
    MissingValueReplacingTransformer,
)
from onnxpipe.transforms.onnx_model import OnnxTransformer

ctx = op.MLContext(seed=0)
NAN = float("nan")
MODES = ["default", "mean", "minimum", "maximum", "most_frequent"]


def _key_of(ct: object) -> tuple[object, object]:
    """The shape and key count of a key column type."""
    assert isinstance(ct, KeyType), ct
    return ct.shape, ct.count


@dataclass
class Row:
    v32: Annotated[npt.NDArray[np.float32], VectorType(4)]
    v64: Annotated[npt.NDArray[np.float64], VectorType(2, 2)]
    x64: np.float64
    h16: Annotated[npt.NDArray[np.float16], VectorType(2)]
    text: str
    n: int


# Slot 3 of v32 is always NaN: its statistic falls back to 0.
ROWS = [
    Row(
        np.array([1, NAN, 3, NAN], np.float32),
        np.array([[1, NAN], [2, 2]]),
        np.float64(4),
        np.array([1, NAN], np.float16),
        "a",
        0,
    ),
    Row(
        np.array([NAN, 2, 3, NAN], np.float32),
        np.array([[NAN, 5], [2, NAN]]),
        np.float64(NAN),
        np.array([2, 2], np.float16),
        "",
        3,
    ),
    Row(
        np.array([4, 2, NAN, NAN], np.float32),
        np.array([[3, 5], [NAN, 1]]),
        np.float64(1),
        np.array([NAN, 2], np.float16),
        "b",
        0,
    ),
    Row(
        np.array([4, 8, 1, NAN], np.float32),
        np.array([[3, 1], [0, 1]]),
        np.float64(1),
        np.array([2, 8], np.float16),
        "c",
        5,
    ),
]
UNSEEN = [
    Row(
        np.array([NAN, NAN, NAN, NAN], np.float32),
        np.full((2, 2), NAN),
        np.float64(NAN),
        np.full(2, NAN, np.float16),
        "",
        1,
    ),
    Row(
        np.array([9, NAN, 9, 9], np.float32),
        np.array([[NAN, 9], [9, NAN]]),
        np.float64(9),
        np.array([9, NAN], np.float16),
        "z",
        0,
    ),
]


def _data(rows: list[Row] = ROWS) -> op.DataView:
    return ctx.data.load_from_enumerable(rows, Row)


def _matrix(view: op.DataView, name: str) -> np.ndarray:
    return np.stack([np.asarray(v) for v in view.column(name)])


def _block(data: op.DataView, name: str) -> np.ndarray:
    return _matrix(data, name).reshape(data.count_rows(), -1).astype(np.float64)


class Fitted(Estimator):
    """A fitted transformer seen as an estimator (check_component on schemas learned by fit)."""

    def __init__(self, model: Transformer) -> None:
        self.model = model

    @property
    def step_name(self) -> str:
        return self.model.step_name

    def output_schema(self, input_schema: Schema) -> Schema:
        return self.model.output_schema(input_schema)

    def fit(self, data: op.DataView) -> Transformer:
        return self.model


def _assert_onnx_matches(model: Transformer, fit_data: op.DataView, data: op.DataView, name: str) -> None:
    proto = convert_to_onnx(model, fit_data.schema, output_columns=[name])
    onnx_view = OnnxTransformer(model_bytes=proto.SerializeToString()).transform(data)
    expected = model.transform(data)
    assert onnx_view.schema[name] == expected.schema[name]
    for got, want in zip(onnx_view.column(name), expected.column(name), strict=True):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# replace_missing_values


@pytest.mark.parametrize("by_slot", [True, False])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("column", ["v32", "v64", "x64", "h16"])
def test_replace_missing_values_conformance(column: str, mode: str, by_slot: bool) -> None:
    data = _data()
    estimator = MissingValueReplacingEstimator("out", column, replacement_mode=mode, impute_by_slot=by_slot)  # type: ignore[arg-type]
    model = check_component(estimator, data, exportable=True)  # the schema is the input's: nothing to learn about it
    assert not np.isnan(_block(model.transform(data), "out")).any()
    _assert_onnx_matches(model, data, _data(UNSEEN), "out")


@pytest.mark.parametrize(
    ("mode", "strategy"), [("mean", "mean"), ("most_frequent", "most_frequent"), ("default", "constant")]
)
def test_replace_by_slot_agrees_with_simple_imputer(mode: str, strategy: str) -> None:
    train, test = _data(), _data(UNSEEN)
    model = MissingValueReplacingEstimator("out", "v64", replacement_mode=mode).fit(train)  # type: ignore[arg-type]
    imputer = SimpleImputer(strategy=strategy, fill_value=0.0, keep_empty_features=True).fit(_block(train, "v64"))
    for data in (train, test):
        expected = imputer.transform(_block(data, "v64"))
        np.testing.assert_allclose(_block(model.transform(data), "out"), expected)


def test_replacement_statistics() -> None:
    data = _data()
    fitted = {m: MissingValueReplacingEstimator("out", "v32", replacement_mode=m).fit(data) for m in MODES}  # type: ignore[arg-type]
    assert fitted["default"].replacements.tolist() == [0.0]
    np.testing.assert_allclose(fitted["mean"].replacements, [3.0, 4.0, 7 / 3, 0.0], rtol=1e-6)
    assert fitted["minimum"].replacements.tolist() == [1.0, 2.0, 1.0, 0.0]
    assert fitted["maximum"].replacements.tolist() == [4.0, 8.0, 3.0, 0.0]
    assert fitted["most_frequent"].replacements.tolist() == [4.0, 2.0, 3.0, 0.0]
    assert fitted["mean"].replacements.dtype == np.float32
    pooled = MissingValueReplacingEstimator("out", "v32", replacement_mode="mean", impute_by_slot=False).fit(data)
    assert np.allclose(pooled.replacements, [(1 + 3 + 2 + 3 + 4 + 2 + 4 + 8 + 1) / 9])
    ties = MissingValueReplacingEstimator("out", "x64", replacement_mode="most_frequent").fit(
        _data([*ROWS, Row(ROWS[0].v32, ROWS[0].v64, np.float64(4), ROWS[0].h16, "", 0)])
    )
    assert ties.replacements.tolist() == [1.0]  # 1 and 4 appear twice each: the smallest wins
    with pytest.raises(ValueError, match="read-only"):
        fitted["mean"].replacements[0] = 1


def test_replace_missing_values_on_scalar_float32() -> None:
    @dataclass
    class S:
        x: float

    data = ctx.data.load_from_enumerable([S(1.0), S(NAN), S(3.0)], S)
    model = MissingValueReplacingEstimator("x", replacement_mode="mean").fit(data)
    assert list(model.transform(data).column("x")) == [1.0, 2.0, 3.0]
    _assert_onnx_matches(model, data, data, "x")  # Imputer on [N, 1]
    proto = convert_to_onnx(model, data.schema)
    assert [n.op_type for n in proto.graph.node if n.op_type == "Imputer"] == ["Imputer"]


def test_replace_missing_values_on_real_data(mlnet_data: Path) -> None:
    @dataclass
    class Cancer:
        features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9), VectorType(9)]

    data = ctx.data.load_from_text_file(mlnet_data / "breast-cancer.txt", Cancer)
    block = _block(data, "features")
    assert np.isnan(block).any()  # the file marks missing values with "?"
    model = MissingValueReplacingEstimator("features", replacement_mode="mean").fit(data)
    np.testing.assert_allclose(
        _block(model.transform(data), "features"), SimpleImputer().fit_transform(block), rtol=1e-6
    )
    _assert_onnx_matches(model, data, data, "features")


def test_replace_missing_values_errors() -> None:
    data = _data()
    with pytest.raises(
        InvalidArgumentError, match=r"replacement_mode must be one of 'default', 'mean', .*, got 'median'"
    ):
        MissingValueReplacingEstimator("out", "v32", replacement_mode="median")  # type: ignore[arg-type]
    with pytest.raises(ColumnTypeError, match=r"input column 'n' is int64; expected a float column"):
        MissingValueReplacingEstimator("out", "n").output_schema(data.schema)

    @dataclass
    class Ragged:
        r: Annotated[list[float], VectorType(-1)]

    ragged = ctx.data.load_from_enumerable([Ragged([1.0, NAN]), Ragged([NAN])], Ragged)
    with pytest.raises(
        ShapeError, match="impute_by_slot needs a known shape to number the slots; pass impute_by_slot=False"
    ):
        MissingValueReplacingEstimator("out", "r", replacement_mode="mean").fit(ragged)
    pooled = MissingValueReplacingEstimator("out", "r", replacement_mode="mean", impute_by_slot=False).fit(ragged)
    assert [v.tolist() for v in pooled.transform(ragged).column("out")] == [[1.0, 1.0], [1.0]]
    model = MissingValueReplacingEstimator("out", "v32", replacement_mode="mean").fit(data)
    with pytest.raises(ShapeError, match="but 4 per-slot replacements were learned; refit"):
        model.output_schema(Schema.of(v32=TensorType(DType.FLOAT32, (3,))))
    with pytest.raises(ShapeError, match="learned from float32 values; refit"):
        model.output_schema(Schema.of(v32=TensorType(DType.FLOAT64, (4,))))
    with pytest.raises(InvalidArgumentError, match="replacements must be one or more float values"):
        MissingValueReplacingTransformer("out", "v32", np.array([1, 2]))
    assert model.step_name == "replace_missing_values(out <- v32)"


# --------------------------------------------------------------------------------------------
# indicate_missing_values


@dataclass
class Keyed:
    key: Annotated[int, KeyType(4)]
    keys: Annotated[npt.NDArray[np.uint32], KeyType(4), VectorType(2)]


@pytest.mark.parametrize("column", ["v32", "v64", "x64", "h16", "text"])
def test_indicate_missing_values(column: str) -> None:
    data = _data()
    model = MissingValueIndicatorTransformer(f"{column}_missing", column)
    check_component(model, data, exportable=True)
    values = _matrix(data, column)
    expected = values == "" if column == "text" else np.isnan(values.astype(np.float64))
    np.testing.assert_array_equal(_matrix(model.transform(data), f"{column}_missing"), expected)
    assert model.output_schema(data.schema)[f"{column}_missing"].type == TensorType(
        DType.BOOL,
        data.schema[column].type.shape,  # type: ignore[union-attr]
    )


def test_indicate_missing_keys() -> None:
    data = ctx.data.load_from_enumerable(
        [Keyed(0, np.array([1, 0], np.uint32)), Keyed(3, np.array([0, 0], np.uint32))], Keyed
    )
    for column, expected in (("key", [[True], [False]]), ("keys", [[False, True], [True, True]])):
        model = MissingValueIndicatorTransformer("m", column)
        check_component(model, data, exportable=True)
        np.testing.assert_array_equal(_matrix(model.transform(data), "m").reshape(2, -1), expected)


def test_indicate_missing_values_keeps_slot_names_and_rejects_integers() -> None:
    schema = Schema([Column("v", TensorType(DType.FLOAT32, (2,)), ("a", "b")), Column("n", TensorType(DType.INT64))])
    out = MissingValueIndicatorTransformer("m", "v").output_schema(schema)["m"]
    assert out.slot_names == ("a", "b")
    with pytest.raises(ColumnTypeError, match=r"'n' is int64; expected a column with missing values: floats \(NaN\)"):
        MissingValueIndicatorTransformer("m", "n").output_schema(schema)


# --------------------------------------------------------------------------------------------
# select_features_based_on_count


@dataclass
class Sparse:
    f: Annotated[npt.NDArray[np.float32], VectorType(5)]
    words: Annotated[list[str], VectorType(3)]
    flags: Annotated[npt.NDArray[np.bool_], VectorType(3)]
    grid: Annotated[npt.NDArray[np.int32], VectorType(2, 2)]
    scalar: np.float64


SPARSE = [
    Sparse(
        np.array([0, 1, NAN, 0, 2], np.float32),
        ["a", "", ""],
        np.array([True, False, False]),
        np.array([[0, 1], [0, 0]], np.int32),
        np.float64(0),
    ),
    Sparse(
        np.array([0, 0, NAN, 3, 2], np.float32),
        ["b", "c", ""],
        np.array([True, True, False]),
        np.array([[0, 2], [0, 3]], np.int32),
        np.float64(1),
    ),
    Sparse(
        np.array([0, 5, NAN, 0, 2], np.float32),
        ["", "d", ""],
        np.array([False, False, False]),
        np.array([[0, 0], [4, 0]], np.int32),
        np.float64(NAN),
    ),
]


def _sparse() -> op.DataView:
    view = ctx.data.load_from_enumerable(SPARSE, Sparse)
    # "f" gets slot names, as a concatenate step would give it.
    names = ("s0", "s1", "s2", "s3", "s4")
    schema = Schema(Column(c.name, c.type, names if c.name == "f" else c.slot_names) for c in view.schema.columns)
    table = view.to_arrow().cast(arrow_schema(schema))
    return DataView(schema, lambda: iter(table.to_batches()), table.num_rows)


@pytest.mark.parametrize(("column", "count", "kept"), [
    ("f", 1, [1, 3, 4]),
    ("f", 2, [1, 4]),
    ("f", 3, [4]),
    ("words", 1, [0, 1]),
    ("words", 2, [0, 1]),
    ("flags", 1, [0, 1]),
    ("grid", 1, [1, 2, 3]),
    ("grid", 2, [1]),
    ("scalar", 1, [0]),
])  # fmt: skip
def test_select_features_based_on_count(column: str, count: int, kept: list[int]) -> None:
    data = _sparse()
    estimator = CountFeatureSelectingEstimator("out", column, count=count)
    model = estimator.fit(data)
    assert model.kept_slots.tolist() == kept
    check_component(Fitted(model), data, exportable=True)
    values = _matrix(data, column).reshape(3, -1)
    np.testing.assert_array_equal(_matrix(model.transform(data), "out").reshape(3, -1), values[:, kept])
    in_type = data.schema[column].type
    out_type = model.output_schema(data.schema)["out"].type
    assert isinstance(in_type, TensorType) and isinstance(out_type, TensorType)
    promised = estimator.output_schema(data.schema)["out"].type
    if in_type.is_scalar:
        assert out_type == promised == in_type
    else:
        assert out_type == TensorType(in_type.dtype, (len(kept),))
        assert promised == TensorType(in_type.dtype, (None,))  # fit decides how many slots stay


def test_selected_features_keep_slot_names_and_key_counts() -> None:
    data = _sparse()
    model = CountFeatureSelectingEstimator("out", "f", count=2).fit(data)
    assert model.output_schema(data.schema)["out"].slot_names == ("s1", "s4")
    keyed = ValueToKeyMappingEstimator("k", "words").fit(data).transform(data)
    on_keys = CountFeatureSelectingEstimator("out", "k").fit(keyed)
    assert _key_of(on_keys.output_schema(keyed.schema)["out"].type) == ((2,), 4)
    check_component(Fitted(on_keys), keyed, exportable=True)


def test_select_features_errors() -> None:
    data = _sparse()
    with pytest.raises(InvalidArgumentError, match="count must be a positive integer, got 0"):
        CountFeatureSelectingEstimator("out", "f", count=0)
    with pytest.raises(
        DataError,
        match=r"no slot of column 'f' has 4 or more non-default values \(the most any slot has is 3\); lower count",
    ):
        CountFeatureSelectingEstimator("out", "f", count=4).fit(data)
    model = CountFeatureSelectingEstimator("out", "f").fit(data)
    with pytest.raises(ShapeError, match="with 4 values per row, but the slots were selected from 5; refit"):
        model.output_schema(Schema.of(f=TensorType(DType.FLOAT32, (4,))))
    with pytest.raises(InvalidArgumentError, match=r"kept_slots must be increasing indices in 0\.\.4"):
        CountFeatureSelectingTransformer("out", "f", np.array([3, 1]), 5)

    @dataclass
    class Ragged:
        r: Annotated[list[float], VectorType(-1)]

    ragged = ctx.data.load_from_enumerable([Ragged([1.0])], Ragged)
    with pytest.raises(ColumnTypeError, match="expected a scalar or a vector of known shape"):
        CountFeatureSelectingEstimator("out", "r").fit(ragged)


def test_feature_selection_export_uses_gather() -> None:
    data = _sparse()
    model = CountFeatureSelectingEstimator("out", "grid").fit(data)
    proto = convert_to_onnx(model, data.schema, output_columns=["out"])
    assert [n.op_type for n in proto.graph.node][:2] == ["Flatten", "Gather"]
