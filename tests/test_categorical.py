"""Categorical encodings: one_hot_encoding and one_hot_hash_encoding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from sklearn.preprocessing import OneHotEncoder

import onnxpipe as op
from onnxpipe import VectorType
from onnxpipe.core import Estimator, Transformer
from onnxpipe.errors import ColumnTypeError, InvalidArgumentError
from onnxpipe.export import convert_to_onnx
from onnxpipe.schema import DType, KeyType, Schema, SparseVectorType, TensorType
from onnxpipe.testing import check_component
from onnxpipe.transforms.categorical import (
    OneHotEncodingEstimator,
    OneHotEncodingTransformer,
    OneHotHashEncodingTransformer,
)
from onnxpipe.transforms.conversion import HashingTransformer, ValueToKeyMappingEstimator
from onnxpipe.transforms.onnx_model import OnnxTransformer

ctx = op.MLContext(seed=0)
NAN = float("nan")
KINDS = ["indicator", "bag", "key", "binary"]


def _key_of(ct: object) -> tuple[object, object]:
    """The shape and key count of a key column type."""
    assert isinstance(ct, KeyType), ct
    return ct.shape, ct.count


@dataclass
class Row:
    color: str
    size: np.float64
    count: int
    pair: Annotated[list[str], VectorType(2)]
    grid: Annotated[npt.NDArray[np.float32], VectorType(2, 2)]


ROWS = [
    Row("red", np.float64(1.0), 3, ["a", "b"], np.array([[1, 2], [NAN, 1]], np.float32)),
    Row("blue", np.float64(NAN), 1, ["b", ""], np.array([[2, 2], [1, 1]], np.float32)),
    Row("", np.float64(2.5), 3, ["c", "a"], np.array([[0, NAN], [1, 2]], np.float32)),
    Row("red", np.float64(1.0), 7, ["a", "a"], np.array([[1, 1], [1, 1]], np.float32)),
    Row("green", np.float64(2.5), 1, ["b", "c"], np.array([[2, 0], [0, 2]], np.float32)),
]
UNSEEN = [
    Row("purple", np.float64(9.0), 3, ["z", "a"], np.array([[5, 1], [NAN, 2]], np.float32)),
    Row("blue", np.float64(1.0), 8, ["", "q"], np.array([[1, 7], [0, 0]], np.float32)),
]
COLUMNS = ["color", "size", "count", "pair", "grid"]


def _data(rows: list[Row] = ROWS) -> op.DataView:
    return ctx.data.load_from_enumerable(rows, Row)


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


def _matrix(view: op.DataView, name: str) -> np.ndarray:
    return np.stack([np.asarray(v) for v in view.column(name)])


def _onnx_column(model: Transformer, fit_data: op.DataView, data: op.DataView, name: str) -> list[np.ndarray]:
    proto = convert_to_onnx(model, fit_data.schema, output_columns=[name])
    return [np.asarray(v) for v in OnnxTransformer(model_bytes=proto.SerializeToString()).transform(data).column(name)]


def _assert_onnx_matches(model: Transformer, fit_data: op.DataView, data: op.DataView, name: str) -> None:
    expected = [np.asarray(v) for v in model.transform(data).column(name)]
    got = _onnx_column(model, fit_data, data, name)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g.reshape(e.shape), e)


# --------------------------------------------------------------------------------------------
# one_hot_encoding


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("column", COLUMNS)
def test_one_hot_encoding_conformance(column: str, kind: str) -> None:
    data = _data()
    estimator = OneHotEncodingEstimator("out", column, output_kind=kind)  # type: ignore[arg-type]
    model = estimator.fit(data)
    check_component(Fitted(model), data, exportable=True)
    _assert_onnx_matches(model, data, _data(UNSEEN), "out")
    promised = estimator.output_schema(data.schema)["out"].type
    delivered = model.output_schema(data.schema)["out"].type
    assert isinstance(promised, TensorType) and isinstance(delivered, TensorType)
    if kind == "key":
        assert isinstance(promised, KeyType) and isinstance(delivered, KeyType)
        assert promised.count is None and delivered.count == model.key_count
    else:
        assert (promised.dtype, promised.shape) == (DType.FLOAT32, (None,))  # the width is learned by fit
        assert delivered.dtype is DType.FLOAT32 and delivered.is_known_shape


@pytest.mark.parametrize("kind", KINDS)
def test_one_hot_encoding_with_given_keys_is_checked_as_an_estimator(kind: str) -> None:
    data = _data()
    estimator = OneHotEncodingEstimator("out", "pair", output_kind=kind, keys=["b", "a"])  # type: ignore[arg-type]
    model = check_component(estimator, data, exportable=True)
    assert isinstance(model, OneHotEncodingTransformer)
    assert model.keys.tolist() == ["b", "a"]


def test_indicator_matches_scikit_learn_on_unseen_categories() -> None:
    train, test = _data(), _data(UNSEEN)
    model = OneHotEncodingEstimator("out", "color", key_ordinality="by_value").fit(train)
    assert model.keys.tolist() == ["blue", "green", "red"]  # "" is missing, not a category
    colors = np.array(train.column("color"), dtype=object)
    encoder = OneHotEncoder(categories=[model.keys.tolist()], handle_unknown="ignore", sparse_output=False)
    encoder.fit(colors[colors != ""].reshape(-1, 1))
    for data in (train, test):
        expected = encoder.transform(np.array(data.column("color"), dtype=object).reshape(-1, 1))
        np.testing.assert_array_equal(_matrix(model.transform(data), "out"), expected)
    assert model.output_schema(train.schema)["out"].slot_names == ("blue", "green", "red")


def test_vector_kinds_agree_with_an_independent_encoding() -> None:
    train, test = _data(), _data(UNSEEN)
    models = {kind: OneHotEncodingEstimator("out", "pair", output_kind=kind).fit(train) for kind in KINDS}  # type: ignore[arg-type]
    keys = models["indicator"].keys.tolist()
    assert keys == ["a", "b", "c"]
    encoder = OneHotEncoder(categories=[keys, keys], handle_unknown="ignore", sparse_output=False)
    encoder.fit(np.array([["a", "a"]], dtype=object))
    for data in (train, test):
        pairs = np.array([list(p) for p in data.column("pair")], dtype=object)
        indicator = encoder.transform(pairs)  # unseen "z", "q" and missing "" are all zeros
        np.testing.assert_array_equal(_matrix(models["indicator"].transform(data), "out"), indicator)
        np.testing.assert_array_equal(
            _matrix(models["bag"].transform(data), "out"), indicator.reshape(-1, 2, 3).sum(axis=1)
        )
        codes = np.array([[keys.index(v) + 1 if v in keys else 0 for v in row] for row in pairs])
        np.testing.assert_array_equal(_matrix(models["key"].transform(data), "out"), codes)
        bits = np.array([[int(b) for v in row for b in format(v, "02b")] for row in codes])
        np.testing.assert_array_equal(_matrix(models["binary"].transform(data), "out"), bits)
    schema = train.schema
    assert models["indicator"].output_schema(schema)["out"].slot_names == (
        "[0].a",
        "[0].b",
        "[0].c",
        "[1].a",
        "[1].b",
        "[1].c",
    )
    assert models["bag"].output_schema(schema)["out"].slot_names == ("a", "b", "c")
    assert models["binary"].output_schema(schema)["out"].slot_names == ("[0].Bit1", "[0].Bit0", "[1].Bit1", "[1].Bit0")
    assert _key_of(models["key"].output_schema(schema)["out"].type) == ((2,), 3)


def test_binary_codes_of_keys() -> None:
    data = _data()
    model = OneHotEncodingEstimator("out", "count", output_kind="binary").fit(data)
    assert model.keys.tolist() == [3, 1, 7]  # keys 1..3 need 2 bits; key 0 (unseen) is 00
    np.testing.assert_array_equal(_matrix(model.transform(data), "out"), [[0, 1], [1, 0], [0, 1], [1, 1], [1, 0]])
    np.testing.assert_array_equal(_matrix(model.transform(_data(UNSEEN)), "out"), [[0, 1], [0, 0]])


def test_one_hot_of_a_multi_dimensional_column_flattens_it() -> None:
    data = _data()
    model = OneHotEncodingEstimator("out", "grid").fit(data)
    assert model.keys.tolist() == [1.0, 2.0, 0.0]
    out = model.output_schema(data.schema)["out"]
    assert out.type == TensorType(DType.FLOAT32, (12,))
    assert out.slot_names is not None and out.slot_names[:3] == ("[0].1.0", "[0].2.0", "[0].0.0")
    first = _matrix(model.transform(data), "out")[0].reshape(4, 3)
    np.testing.assert_array_equal(first, [[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]])  # NaN -> zeros


def test_one_hot_of_variable_length_vectors() -> None:
    @dataclass
    class Tags:
        tags: Annotated[list[str], VectorType(-1)]

    data = ctx.data.load_from_enumerable([Tags(["a", "b"]), Tags(["c"]), Tags(["a", "", "zz"])], Tags)
    for kind in KINDS:
        model = OneHotEncodingEstimator("out", "tags", output_kind=kind).fit(data)  # type: ignore[arg-type]
        values = [np.asarray(v) for v in model.transform(data).column("out")]
        if kind == "bag":
            np.testing.assert_array_equal(np.stack(values), [[1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
        elif kind == "indicator":
            assert [v.size for v in values] == [8, 4, 12]
        # ONNX agrees on the values (the re-applied model gives variable-size columns a leading 1).
        for got, want in zip(_onnx_column(model, data, data, "out"), values, strict=True):
            np.testing.assert_array_equal(got.reshape(want.shape), want)


@dataclass
class Adult:
    cats: Annotated[list[str], VectorType(6)]


def test_one_hot_encoding_on_real_data(mlnet_data: Path) -> None:
    frame = pd.read_csv(mlnet_data / "adult.tiny.with-schema.txt", sep="\t", comment="#")
    categories = ["education", "marital-status", "occupation", "relationship", "ethnicity", "sex"]
    rows = [Adult(list(r)) for r in frame[categories].astype(str).itertuples(index=False)]
    data = ctx.data.load_from_enumerable(rows, Adult)
    train = ctx.data.load_from_enumerable(rows[:300], Adult)
    model = OneHotEncodingEstimator("out", "cats", key_ordinality="by_value").fit(train)
    keys = model.keys.tolist()
    encoder = OneHotEncoder(categories=[keys] * len(categories), handle_unknown="ignore", sparse_output=False)
    encoder.fit(np.array([[keys[0]] * len(categories)], dtype=object))
    expected = encoder.transform(np.array([r.cats for r in rows], dtype=object))
    np.testing.assert_array_equal(_matrix(model.transform(data), "out"), expected)
    _assert_onnx_matches(model, train, data, "out")


def test_one_hot_encoding_errors() -> None:
    data = _data()
    with pytest.raises(
        InvalidArgumentError, match="output_kind must be one of 'indicator', 'bag', 'key', 'binary', got 'onehot'"
    ):
        OneHotEncodingEstimator("out", "color", output_kind="onehot")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="maximum_number_of_keys must be a positive integer"):
        OneHotEncodingEstimator("out", "color", maximum_number_of_keys=-1)
    with pytest.raises(
        InvalidArgumentError,
        match=r"one_hot_encoding: keys must be a fitted map_value_to_key transformer, got 'not keys'; pass",
    ):
        OneHotEncodingTransformer("out", "indicator", "not keys")  # type: ignore[arg-type]
    model = OneHotEncodingEstimator("out", "color").fit(data)
    with pytest.raises(ColumnTypeError, match="keys were learned from string values"):
        model.output_schema(Schema.of(color=TensorType(DType.FLOAT32)))
    assert model.step_name == "one_hot_encoding(out <- color)"
    assert model == OneHotEncodingEstimator("out", "color").fit(data)
    assert model != OneHotEncodingEstimator("out", "color", output_kind="bag").fit(data)


# --------------------------------------------------------------------------------------------
# one_hot_hash_encoding


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("column", COLUMNS)
def test_one_hot_hash_encoding_conformance(column: str, kind: str, ordered: bool) -> None:
    data = _data()
    model = OneHotHashEncodingTransformer(
        "out", column, output_kind=kind, number_of_bits=3, use_ordered_hashing=ordered
    )  # type: ignore[arg-type]
    check_component(model, data, exportable=True)
    _assert_onnx_matches(model, data, _data(UNSEEN), "out")


def test_one_hot_hash_encoding_is_one_hot_of_the_hash() -> None:
    data = _data()
    bits = 4
    keys = _matrix(HashingTransformer("k", "pair", number_of_bits=bits).transform(data), "k")
    indicator = _matrix(OneHotHashEncodingTransformer("out", "pair", number_of_bits=bits).transform(data), "out")
    expected = np.zeros((len(keys), 2, 2**bits), dtype=np.float32)
    for r, row in enumerate(keys):
        for s, k in enumerate(row):
            if k:
                expected[r, s, k - 1] = 1
    np.testing.assert_array_equal(indicator, expected.reshape(len(keys), -1))
    assert not indicator[1, 2**bits :].any()  # the missing "" is all zeros
    bag = _matrix(
        OneHotHashEncodingTransformer("out", "pair", output_kind="bag", number_of_bits=bits).transform(data), "out"
    )
    np.testing.assert_array_equal(bag, expected.sum(axis=1))
    schema = OneHotHashEncodingTransformer("out", "pair", number_of_bits=bits).output_schema(data.schema)
    assert schema["out"].type == TensorType(DType.FLOAT32, (2 * 2**bits,))
    default_step = OneHotHashEncodingTransformer("out", "color")
    assert default_step.output_schema(data.schema)["out"].type == SparseVectorType(DType.FLOAT32, 2**16)
    sparse_codes = default_step.transform(data).column("out")  # a CSR matrix: 65,536 slots, one set per row
    hashed = _matrix(HashingTransformer("k", "color", number_of_bits=16).transform(data), "k").reshape(-1)
    assert sparse_codes.shape == (len(hashed), 2**16) and sparse_codes.nnz == int((hashed > 0).sum())
    rows, columns = sparse_codes.nonzero()
    np.testing.assert_array_equal(columns, hashed[rows].astype(np.int64) - 1)


def test_one_hot_hash_encoding_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="number_of_bits must be an integer from 1 to 30, got 31"):
        OneHotHashEncodingTransformer("out", "color", number_of_bits=31)
    with pytest.raises(
        InvalidArgumentError, match=r"one_hot_hash_encoding\(out <- color\): output_kind must be one of .*, got 'dense'"
    ):
        OneHotHashEncodingTransformer("out", "color", output_kind="dense")  # type: ignore[arg-type]
    model = OneHotHashEncodingTransformer("out", "color", seed=7)
    assert (model.number_of_bits, model.seed, model.use_ordered_hashing) == (16, 7, False)
    assert repr(model) == "OneHotHashEncodingTransformer('out', 'color', 'indicator', 16, 7, False)"


def test_one_hot_in_a_pipeline_exports_once() -> None:
    data = _data()
    pipeline = (
        OneHotEncodingEstimator("c", "color")
        .append(OneHotHashEncodingTransformer("p", "pair", number_of_bits=2))
        .append(ValueToKeyMappingEstimator("k", "count"))
    )
    model = pipeline.fit(data)
    proto = convert_to_onnx(model, data.schema, output_columns=["c", "p", "k"])
    reapplied = OnnxTransformer(model_bytes=proto.SerializeToString()).transform(_data(UNSEEN))
    expected = model.transform(_data(UNSEEN))
    for name in ("c", "p", "k"):
        assert reapplied.schema[name] == expected.schema[name]
        np.testing.assert_array_equal(_matrix(reapplied, name), _matrix(expected, name))
