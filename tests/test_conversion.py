"""Conversions: map_value_to_key, map_key_to_value, map_value, convert_type, hash (and MurmurHash3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from sklearn.preprocessing import OrdinalEncoder

import onnxpipe as op
from onnxpipe import KeyType, VectorType
from onnxpipe._hashing import murmur_round
from onnxpipe.core import Estimator, Transformer
from onnxpipe.errors import ColumnNotFoundError, ColumnTypeError, DataError, ExportError, InvalidArgumentError
from onnxpipe.export import convert_to_onnx
from onnxpipe.schema import DType, Schema, TensorType
from onnxpipe.testing import check_component
from onnxpipe.transforms.conversion import (
    HashingTransformer,
    KeyToValueMappingTransformer,
    TypeConvertingTransformer,
    ValueMappingTransformer,
    ValueToKeyMappingEstimator,
    ValueToKeyMappingTransformer,
    murmur3_32,
)
from onnxpipe.transforms.onnx_model import OnnxTransformer

ctx = op.MLContext(seed=0)
NAN = float("nan")


def _key_of(ct: object) -> tuple[object, object]:
    """The shape and key count of a key column type."""
    assert isinstance(ct, KeyType), ct
    return ct.shape, ct.count


@dataclass
class Row:
    text: str
    x32: float
    x64: np.float64
    n: int
    flag: bool
    vec: Annotated[npt.NDArray[np.float32], VectorType(3)]
    words: Annotated[list[str], VectorType(2)]


# Scalar float32 columns hold no NaN here: check_component compares numpy float32 scalars with ==
# (see _parity below, which covers them).
ROWS = [
    Row("b", 1.5, np.float64(0.1), 3, True, np.array([1, NAN, 2], np.float32), ["x", ""]),
    Row("", 7.0, np.float64(NAN), -4, False, np.array([0, -0.0, 2], np.float32), ["y", "x"]),
    Row("a", -0.0, np.float64(0.1), 3, True, np.array([5, 5, NAN], np.float32), ["", ""]),
    Row("b", 2.0, np.float64(1e300), 10**12, False, np.array([1, 1, 1], np.float32), ["z", "x"]),
    Row("a", 0.0, np.float64(-2.5), 3, True, np.array([2, 0, 1], np.float32), ["x", "y"]),
]
UNSEEN = [
    Row("c", 3.0, np.float64(0.2), 5, True, np.array([9, 1, NAN], np.float32), ["w", "x"]),
    Row("a", 1.5, np.float64(NAN), -4, False, np.array([NAN, 2, 5], np.float32), ["", "q"]),
]
COLUMNS = ["text", "x32", "x64", "n", "flag", "vec", "words"]


def _data(rows: list[Row] = ROWS) -> op.DataView:
    return ctx.data.load_from_enumerable(rows, Row)


class Fitted(Estimator):
    """A fitted transformer seen as an estimator, for check_component on learned schemas (the
    estimator's own promise leaves the key count to fit; tests check that promise separately)."""

    def __init__(self, model: Transformer) -> None:
        self.model = model

    @property
    def step_name(self) -> str:
        return self.model.step_name

    def output_schema(self, input_schema: Schema) -> Schema:
        return self.model.output_schema(input_schema)

    def fit(self, data: op.DataView) -> Transformer:
        return self.model


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))
    return bool(np.array_equal(a, b))


def _column(view: op.DataView, name: str) -> list[Any]:
    return list(view.column(name))


def _parity(
    model: Transformer, fit_data: op.DataView, data: op.DataView, columns: list[str], opset: int | None = None
) -> None:
    """Export ``model`` for ``fit_data``'s schema, run it with ONNX Runtime on ``data`` and compare
    ``columns`` with ``model.transform(data)`` (NaN-aware, any column kind)."""
    proto = convert_to_onnx(model, fit_data.schema, output_columns=columns, opset=opset)
    onnx_view = OnnxTransformer(model_bytes=proto.SerializeToString()).transform(data)
    expected = model.transform(data)
    for name in columns:
        assert onnx_view.schema[name] == expected.schema[name]
        got, want = _column(onnx_view, name), _column(expected, name)
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert _same(g, w), f"{name} row {i}: ONNX {g!r} vs Python {w!r}"


# --------------------------------------------------------------------------------------------
# map_value_to_key


@pytest.mark.parametrize("ordinality", ["by_occurrence", "by_value"])
@pytest.mark.parametrize("column", COLUMNS)
def test_map_value_to_key_conformance(column: str, ordinality: str) -> None:
    data = _data()
    estimator = ValueToKeyMappingEstimator("key", column, key_ordinality=ordinality)  # type: ignore[arg-type]
    model = estimator.fit(data)
    check_component(Fitted(model), data, exportable=True)
    promised = estimator.output_schema(data.schema)["key"].type
    delivered = model.output_schema(data.schema)["key"].type
    assert isinstance(promised, KeyType) and isinstance(delivered, KeyType)
    assert promised.count is None and promised.values is None  # fit decides the keys
    assert promised.value_dtype is delivered.value_dtype is data.schema[column].type.dtype  # type: ignore[union-attr]
    assert (promised.dtype, promised.shape) == (delivered.dtype, delivered.shape) == (DType.UINT32, promised.shape)
    assert delivered.count == model.key_count == len(model.keys)
    assert delivered.values is not None and delivered.values.items == tuple(model.keys.tolist())
    _parity(model, data, _data(UNSEEN), ["key"])


def test_map_value_to_key_orders_and_missing_values() -> None:
    data = _data()
    by_occurrence = ValueToKeyMappingEstimator("k", "text").fit(data)
    assert by_occurrence.keys.tolist() == ["b", "a"]  # "" is missing: never a key
    assert _column(by_occurrence.transform(data), "k") == [1, 0, 2, 1, 2]
    by_value = ValueToKeyMappingEstimator("k", "text", key_ordinality="by_value").fit(data)
    assert by_value.keys.tolist() == ["a", "b"]
    assert _column(by_value.transform(data), "k") == [2, 0, 1, 2, 1]

    floats = ValueToKeyMappingEstimator("k", "vec").fit(data)
    assert floats.keys.tolist() == [1.0, 2.0, 0.0, 5.0]  # NaN is missing; -0.0 and 0.0 are one key
    keys = np.stack(_column(floats.transform(data), "k"))
    assert keys.tolist() == [[1, 0, 2], [3, 3, 2], [4, 4, 0], [1, 1, 1], [2, 3, 1]]
    assert _key_of(floats.output_schema(data.schema)["k"].type) == ((3,), 4)


def test_map_value_to_key_by_value_agrees_with_scikit_learn_on_unseen_data() -> None:
    train, test = _data(), _data(UNSEEN)
    model = ValueToKeyMappingEstimator("k", "n", key_ordinality="by_value").fit(train)
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    encoder.fit(np.asarray(train.column("n")).reshape(-1, 1))
    expected = encoder.transform(np.asarray(test.column("n")).reshape(-1, 1)).reshape(-1) + 1
    assert _column(model.transform(test), "k") == expected.astype(int).tolist()  # unseen 5 -> 0
    _parity(model, train, test, ["k"])


def test_map_value_to_key_doubles_stay_exact_in_onnx() -> None:
    @dataclass
    class D:
        d: np.float64

    values = [0.1, 0.1 + 2**-55, 1e300, -0.0, 0.0, NAN, 0.1]
    data = ctx.data.load_from_enumerable([D(np.float64(v)) for v in values], D)
    model = ValueToKeyMappingEstimator("k", "d").fit(data)
    assert model.key_count == 4  # 0.1 and its neighbour differ; -0.0 == 0.0
    assert _column(model.transform(data), "k") == [1, 2, 3, 4, 4, 0, 1]
    check_component(Fitted(model), data, exportable=True)
    proto = convert_to_onnx(model, data.schema)
    assert {(o.domain, o.version) for o in proto.opset_import} >= {("ai.onnx.ml", 4)}  # LabelEncoder keys_tensor


def test_map_value_to_key_limits_the_number_of_keys() -> None:
    data = _data()
    first = ValueToKeyMappingEstimator("k", "vec", maximum_number_of_keys=2).fit(data)
    assert first.keys.tolist() == [1.0, 2.0]  # the first two values seen
    sorted_first = ValueToKeyMappingEstimator("k", "vec", maximum_number_of_keys=3, key_ordinality="by_value").fit(data)
    assert sorted_first.keys.tolist() == [0.0, 1.0, 2.0]


def test_map_value_to_key_with_given_keys_promises_its_schema() -> None:
    data = _data()
    estimator = ValueToKeyMappingEstimator("k", "words", keys=["y", "x", "", "y"], key_ordinality="by_occurrence")
    assert _key_of(estimator.output_schema(data.schema)["k"].type) == ((2,), 2)
    model = check_component(estimator, data, exportable=True)
    assert isinstance(model, ValueToKeyMappingTransformer)
    assert model.keys.tolist() == ["y", "x"]
    with pytest.raises(ValueError, match="read-only"):
        model.keys[0] = "changed"


def test_map_value_to_key_text_key_values_and_repr() -> None:
    data = _data()
    model = ValueToKeyMappingEstimator("k", "n", add_key_value_annotations_as_text=True).fit(data)
    assert model.keys.tolist() == [3, -4, 10**12]
    assert model.key_values.tolist() == ["3", "-4", "1000000000000"]
    assert model.value_type is DType.STRING
    assert model.step_name == "map_value_to_key(k <- n)"
    assert "ValueToKeyMappingTransformer('k', 'n'" in repr(model)
    again = ValueToKeyMappingEstimator("k", "n", add_key_value_annotations_as_text=True).fit(data)
    assert model == again and hash(model) == hash(again)


def test_map_value_to_key_errors() -> None:
    data = _data()
    with pytest.raises(
        InvalidArgumentError, match="key_ordinality must be one of 'by_occurrence', 'by_value', got 'alphabetical'"
    ):
        ValueToKeyMappingEstimator("k", "text", key_ordinality="alphabetical")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="maximum_number_of_keys must be a positive integer, got 0"):
        ValueToKeyMappingEstimator("k", "text", maximum_number_of_keys=0)
    with pytest.raises(InvalidArgumentError, match="keys is empty"):
        ValueToKeyMappingEstimator("k", "text", keys=[])
    with pytest.raises(ColumnTypeError, match="the column holds strings, but 3 is a int"):
        ValueToKeyMappingEstimator("k", "text", keys=["a", 3]).output_schema(data.schema)
    with pytest.raises(InvalidArgumentError, match=r"1\.5 cannot be represented exactly as int64"):
        ValueToKeyMappingEstimator("k", "n", keys=[1, 1.5]).fit(data)
    with pytest.raises(InvalidArgumentError, match="more than maximum_number_of_keys=1"):
        ValueToKeyMappingEstimator("k", "text", keys=["a", "b"], maximum_number_of_keys=1).fit(data)
    with pytest.raises(ColumnNotFoundError, match=r"map_value_to_key\(k <- nope\): input column 'nope'"):
        ValueToKeyMappingEstimator("k", "nope").fit(data)
    empty = _data([Row("", NAN, np.float64(NAN), 0, False, np.full(3, NAN, np.float32), ["", ""])])
    with pytest.raises(DataError, match="no non-missing values to learn keys from; fit on data with values, or pass"):
        ValueToKeyMappingEstimator("k", "vec").fit(empty)
    model = ValueToKeyMappingEstimator("k", "text").fit(data)
    with pytest.raises(ColumnTypeError, match="keys were learned from string values; refit"):
        model.output_schema(Schema.of(text=TensorType(DType.INT64)))


# --------------------------------------------------------------------------------------------
# map_key_to_value


@pytest.mark.parametrize("column", COLUMNS)
def test_map_key_to_value_round_trip(column: str) -> None:
    data = _data()
    to_key = ValueToKeyMappingEstimator("k", column).fit(data)
    back = KeyToValueMappingTransformer("back", "k", key_values=to_key)
    keyed = to_key.transform(data)
    check_component(back, keyed, exportable=True)
    restored = _column(back.transform(keyed), "back")
    for got, original in zip(restored, _column(data, column), strict=True):
        original = np.asarray(original)
        expected = np.where(original == "", "", original) if original.dtype == object else original
        assert _same(got, expected)  # missing values come back missing
    chain = to_key.append(back)
    _parity(chain, data, _data(UNSEEN), ["back"])  # unseen values come back as missing


def test_map_key_to_value_missing_and_out_of_range_keys() -> None:
    @dataclass
    class K:
        key: Annotated[int, KeyType(3)]

    data = ctx.data.load_from_enumerable([K(0), K(1), K(3), K(7)], K)
    back = KeyToValueMappingTransformer("v", "key", key_values=np.array([0.5, 1.5, 2.5]))
    assert _same(_column(back.transform(data), "v"), [NAN, 0.5, 2.5, NAN])
    assert back.output_schema(data.schema)["v"].type == TensorType(DType.FLOAT64)
    _parity(back, data, data, ["v"])
    strings = KeyToValueMappingTransformer("v", "key", key_values=["a", "b", "c"])
    assert _column(strings.transform(data), "v") == ["", "a", "c", ""]
    check_component(strings, data, exportable=True)


def test_map_key_to_value_errors() -> None:
    data = _data()
    hashed = HashingTransformer("k", "text", number_of_bits=3).transform(data)
    with pytest.raises(ColumnTypeError, match=r"'k' is key<uint32,8>, a key column without key values; make it"):
        KeyToValueMappingTransformer("v", "k").output_schema(hashed.schema)
    with pytest.raises(InvalidArgumentError, match="key_values is empty"):
        KeyToValueMappingTransformer("v", "k", key_values=[])
    with pytest.raises(ColumnTypeError, match="is int64; expected a key column"):
        KeyToValueMappingTransformer("v", "n", key_values=["a"]).output_schema(data.schema)
    keyed = ValueToKeyMappingEstimator("k", "text").fit(data).transform(data)
    with pytest.raises(ColumnTypeError, match="with 2 keys, but 3 key values were given"):
        KeyToValueMappingTransformer("v", "k", key_values=["a", "b", "c"]).output_schema(keyed.schema)


# --------------------------------------------------------------------------------------------
# map_value


def test_map_value_types_and_unseen_values() -> None:
    data, unseen = _data(), _data(UNSEEN)
    to_float = ValueMappingTransformer("m", {"a": np.float64(1.5), "b": np.float64(-2)}, "text")
    assert to_float.output_schema(data.schema)["m"].type == TensorType(DType.FLOAT64)
    assert _same(_column(to_float.transform(data), "m"), [-2.0, NAN, 1.5, -2.0, 1.5])
    check_component(to_float, data, exportable=True)
    _parity(to_float, data, unseen, ["m"])

    to_text = ValueMappingTransformer("m", {3: "three", -4: "minus four"}, "n")
    assert _column(to_text.transform(data), "m") == ["three", "minus four", "three", "", "three"]
    check_component(to_text, data, exportable=True)

    to_bool = ValueMappingTransformer("m", {0.1: True, -2.5: False}, "x64")
    assert _column(to_bool.transform(data), "m") == [True, False, True, False, False]
    check_component(to_bool, data, exportable=True)

    ints = ValueMappingTransformer("m", {1.0: 10, 5.0: 50}, "vec")
    assert ints.output_schema(data.schema)["m"].type == TensorType(DType.INT64, (3,))
    assert np.stack(_column(ints.transform(data), "m")).tolist()[2] == [50, 50, 0]
    check_component(ints, data, exportable=True)
    _parity(ints, data, unseen, ["m"])


def test_map_value_as_keys() -> None:
    data = _data()
    model = ValueMappingTransformer("m", {"x": "X", "y": "Y", "z": "X"}, "words", treat_values_as_key_type=True)
    assert _key_of(model.output_schema(data.schema)["m"].type) == ((2,), 2)
    assert model.key_values.tolist() == ["X", "Y"]
    assert np.stack(_column(model.transform(data), "m")).tolist() == [[1, 0], [2, 1], [0, 0], [1, 1], [1, 2]]
    check_component(model, data, exportable=True)
    back = KeyToValueMappingTransformer("back", "m", key_values=model)
    assert _column(back.transform(model.transform(data)), "back")[1].tolist() == ["Y", "X"]


def test_map_value_errors() -> None:
    data = _data()
    with pytest.raises(InvalidArgumentError, match="key_value_pairs must be a non-empty mapping"):
        ValueMappingTransformer("m", {}, "text")
    with pytest.raises(InvalidArgumentError, match="values of mixed types"):
        ValueMappingTransformer("m", {"a": 1, "b": "x"}, "text")
    with pytest.raises(ColumnTypeError, match="the column holds int64 numbers, but 'a' is a str"):
        ValueMappingTransformer("m", {"a": 1}, "n").output_schema(data.schema)
    with pytest.raises(InvalidArgumentError, match="NaN is a key of key_value_pairs, but NaN never equals a value"):
        ValueMappingTransformer("m", {1: 1, NAN: 2}, "x64").output_schema(data.schema)
    with pytest.raises(ColumnTypeError, match="expected a tensor column of strings, numbers or bools"):
        keyed = ValueToKeyMappingEstimator("k", "text").fit(data).transform(data)
        ValueMappingTransformer("m", {1: 1}, "k").output_schema(keyed.schema)


# --------------------------------------------------------------------------------------------
# convert_type

NUMERIC = [t for t in DType if t.is_numeric or t is DType.BOOL]


@pytest.mark.parametrize("target", [*NUMERIC, DType.STRING])
@pytest.mark.parametrize("column", ["x32", "flag", "vec"])
def test_convert_type_numbers(column: str, target: DType) -> None:
    data = _data()
    if column == "vec" and not target.is_float and target is not DType.STRING:
        data = _data([Row(r.text, r.x32, r.x64, r.n, r.flag, np.nan_to_num(r.vec), r.words) for r in ROWS])
    model = TypeConvertingTransformer("c", column, output_kind=target)
    check_component(model, data, exportable=True)
    assert model.output_schema(data.schema)["c"].type.dtype is target  # type: ignore[union-attr]


def test_convert_type_values() -> None:
    data = _data()
    ints = _column(TypeConvertingTransformer("c", "x32", output_kind=DType.INT8).transform(data), "c")
    assert ints == [1, 7, 0, 2, 0]  # truncated toward zero
    text = _column(TypeConvertingTransformer("c", "vec", output_kind="string").transform(data), "c")
    assert text[0].tolist() == ["1", "NaN", "2"]
    assert _column(TypeConvertingTransformer("c", "flag", output_kind="string").transform(data), "c")[:2] == [
        "True",
        "False",
    ]

    @dataclass
    class F:
        f: Annotated[npt.NDArray[np.float64], VectorType(5)]

    floats = ctx.data.load_from_enumerable([F(np.array([0.1, 1 / 3, -0.0, -np.inf, 123456789.0]))], F)
    model = TypeConvertingTransformer("c", "f", output_kind=DType.STRING)
    assert _column(model.transform(floats), "c")[0].tolist() == ["0.1", "0.33333333", "-0", "-INF", "1.2345679e+08"]
    check_component(model, floats, exportable=True)  # ONNX Runtime's Cast writes the same text


@dataclass
class Text:
    s: Annotated[list[str], VectorType(4)]


def test_convert_type_parses_text() -> None:
    rows = [
        Text(["1.5", " -2e3 ", "inf", "NaN"]),
        Text(["1.5x", "", "?", "0x10"]),
        Text([".5", "+3", "-Infinity", "1_0"]),
    ]
    data = ctx.data.load_from_enumerable(rows, Text)
    for target in (DType.FLOAT32, DType.FLOAT64):
        model = TypeConvertingTransformer("c", "s", output_kind=target).fit(data)
        values = np.stack(_column(model.transform(data), "c"))
        assert values.dtype == target.numpy
        assert _same(values[0], [1.5, -2000.0, np.inf, NAN])
        assert np.isnan(values[1]).all()  # unparsable text (also what Cast would half-read) is NaN
        assert _same(values[2], [0.5, 3.0, -np.inf, NAN])
        assert model.onnx_min_opset == 20  # the export validates text with RegexFullMatch
        check_component(Fitted(model), data, exportable=True)

    ints = ctx.data.load_from_enumerable([Text(["12", " -3 ", "+0", "2147483647"])], Text)
    model = TypeConvertingTransformer("c", "s", output_kind=DType.INT32)
    assert _column(model.transform(ints), "c")[0].tolist() == [12, -3, 0, 2147483647]
    check_component(model, ints, exportable=True)
    bools = ctx.data.load_from_enumerable([Text(["true", "False", "1", "0"]), Text(["TRUE", "false", "0", "1"])], Text)
    model = TypeConvertingTransformer("c", "s", output_kind=DType.BOOL)
    assert np.stack(_column(model.transform(bools), "c")).tolist() == [
        [True, False, True, False],
        [True, False, False, True],
    ]
    check_component(model, bools, exportable=True)


def test_convert_type_text_to_float_needs_opset_20() -> None:
    data = ctx.data.load_from_enumerable([Text(["1", "2", "x", ""])], Text)
    unfitted = TypeConvertingTransformer("c", "s", output_kind=DType.FLOAT32)
    with pytest.raises(ExportError, match="needs ONNX opset 20 or later, but the export was asked for opset 13"):
        convert_to_onnx(unfitted, data.schema)
    fitted = unfitted.fit(data)
    with pytest.raises(ExportError, match="opset 17 is too low"):
        convert_to_onnx(fitted, data.schema, opset=17)
    _parity(unfitted, data, data, ["c"], opset=20)


def test_convert_type_errors() -> None:
    data = _data()
    with pytest.raises(
        InvalidArgumentError,
        match=r"convert_type\(c <- x32\): output_kind must be one of 'bool', .*, 'string', got 'float'$",
    ):
        TypeConvertingTransformer("c", "x32", output_kind="float")
    with pytest.raises(
        DataError, match=r"cannot convert np.float32\(nan\) in column 'vec' from float32 to int32: a missing"
    ):
        TypeConvertingTransformer("c", "vec", output_kind=DType.INT32).transform(data).column("c")
    with pytest.raises(
        DataError, match=r"cannot convert np\.int64\(1000000000000\) in column 'n' from int64 to int32: it is "
    ):
        TypeConvertingTransformer("c", "n", output_kind=DType.INT32).transform(data).column("c")
    with pytest.raises(DataError, match=r"from int64 to uint8: it is outside uint8's range 0\.\.255"):
        TypeConvertingTransformer("c", "n", output_kind=DType.UINT8).transform(data).column("c")
    with pytest.raises(DataError, match=r"from float64 to int8: it is outside int8's range -128\.\.127"):
        TypeConvertingTransformer("c", "x64", output_kind=DType.INT8).transform(
            ctx.data.load_from_enumerable([ROWS[3]], Row)
        ).column("c")
    text = ctx.data.load_from_enumerable([Text(["1", "2.5", "x", ""])], Text)
    with pytest.raises(DataError, match="cannot convert '' in column 's' from string to int64: it is not an integer"):
        TypeConvertingTransformer("c", "s", output_kind=DType.INT64).transform(text).column("c")
    with pytest.raises(DataError, match="a bool is written as one of true, True, TRUE, 1, false"):
        TypeConvertingTransformer("c", "s", output_kind=DType.BOOL).transform(text).column("c")
    with pytest.raises(DataError, match="from string to uint8: it is outside uint8's range"):
        TypeConvertingTransformer("c", "s", output_kind=DType.UINT8).transform(
            ctx.data.load_from_enumerable([Text(["1", "256", "0", "0"])], Text)
        ).column("c")


# --------------------------------------------------------------------------------------------
# MurmurHash3 and hash


def _reference_murmur(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32, written plainly from the algorithm's description."""

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF

    h = seed
    full = len(data) // 4 * 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = rotl((k * 0xCC9E2D51) & 0xFFFFFFFF, 15) * 0x1B873593 & 0xFFFFFFFF
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[full:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl((k * 0xCC9E2D51) & 0xFFFFFFFF, 15) * 0x1B873593 & 0xFFFFFFFF
    h ^= len(data)
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = ((h ^ (h >> shift)) * mult) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _ort_murmur(values: np.ndarray, element: int, seed: int) -> np.ndarray:
    node = helper.make_node("MurmurHash3", ["x"], ["y"], domain="com.microsoft", seed=seed, positive=1)
    graph = helper.make_graph(
        [node],
        "murmur",
        [helper.make_tensor_value_info("x", element, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.UINT32, ["N"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {"x": values})[0]
    return out


def test_murmur3_known_values() -> None:
    cases = [("", 0, 0), ("", 1, 0x514E28B7), ("hello", 0, 0x248BFA47), ("Hello, world!", 1234, 0xFAF6CDB3)]
    for text, seed, expected in cases:
        assert murmur3_32(np.array([text], dtype=object), seed)[0] == expected
        assert _reference_murmur(text.encode(), seed) == expected


@pytest.mark.parametrize("seed", [0, 1, 314489979, 2**32 - 1])
def test_murmur3_equals_onnx_runtime_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed % 1000)
    alphabet = list("abcxyz é日本\t")
    texts = ["", "a", "ab", "abc", "abcd", "abcde", "x" * 1001] + [
        "".join(rng.choice(alphabet, k)) for k in rng.integers(0, 40, 300)
    ]
    strings = np.array(texts, dtype=object)
    ours = murmur3_32(strings, seed)
    assert np.array_equal(ours, _ort_murmur(strings, TensorProto.STRING, seed))
    assert ours.tolist() == [_reference_murmur(t.encode(), seed) for t in texts]
    for dtype, element in [
        (np.int32, TensorProto.INT32),
        (np.uint32, TensorProto.UINT32),
        (np.int64, TensorProto.INT64),
        (np.uint64, TensorProto.UINT64),
        (np.float32, TensorProto.FLOAT),
        (np.float64, TensorProto.DOUBLE),
    ]:
        numbers = (rng.normal(size=200) * 1e6).astype(dtype)
        assert np.array_equal(murmur3_32(numbers, seed), _ort_murmur(numbers, element, seed)), dtype


def test_murmur_round_is_one_body_step() -> None:
    # One round on a 4-byte key, then the finaliser, is the whole hash of that key.
    value, seed = 123456789, 42
    h = murmur_round(seed, value) ^ 4
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = ((h ^ (h >> shift)) * mult) & 0xFFFFFFFF
    assert h ^ (h >> 16) == murmur3_32(np.array([value], np.uint32), seed)[0]


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("column", COLUMNS)
def test_hash_conformance(column: str, ordered: bool) -> None:
    data = _data()
    model = HashingTransformer("h", column, number_of_bits=6, use_ordered_hashing=ordered)
    check_component(model, data, exportable=True)
    out = model.output_schema(data.schema)["h"]
    assert out.type == KeyType(64, shape=data.schema[column].type.shape)  # type: ignore[union-attr]
    _parity(model, data, _data(UNSEEN), ["h"])


def test_hash_values() -> None:
    data = _data()
    bits, seed = 10, 314489979
    model = HashingTransformer("h", "text", number_of_bits=bits)
    mask = 2**bits - 1
    expected = [0 if t == "" else (_reference_murmur(t.encode(), seed) & mask) + 1 for t in _column(data, "text")]
    assert _column(model.transform(data), "h") == expected

    floats = np.stack(_column(HashingTransformer("h", "vec").transform(data), "h"))
    assert floats[0, 1] == 0 and floats[2, 2] == 0  # NaN is missing
    assert floats[1, 0] == floats[1, 1]  # -0.0 hashes as 0.0
    assert floats[0, 0] == (_reference_murmur(np.float32(1).tobytes(), seed) & (2**31 - 1)) + 1

    ordered = np.stack(_column(HashingTransformer("h", "vec", use_ordered_hashing=True).transform(data), "h"))
    assert ordered[3, 0] != ordered[3, 1]  # equal values, different slots
    slot1_seed = murmur_round(seed, 1)
    assert ordered[3, 1] == (_reference_murmur(np.float32(1).tobytes(), slot1_seed) & (2**31 - 1)) + 1

    small = _column(HashingTransformer("h", "n", number_of_bits=1).transform(data), "h")
    assert set(small) <= {1, 2}
    widened = _column(HashingTransformer("h", "flag").transform(data), "h")
    assert widened[0] == (_reference_murmur((1).to_bytes(4, "little"), seed) & (2**31 - 1)) + 1  # bool as uint32


def test_hash_of_keys_treats_key_zero_as_missing() -> None:
    @dataclass
    class K:
        key: Annotated[int, KeyType(5)]

    data = ctx.data.load_from_enumerable([K(0), K(1), K(5)], K)
    model = HashingTransformer("h", "key", number_of_bits=8)
    assert _column(model.transform(data), "h")[0] == 0
    check_component(model, data, exportable=True)


def test_hash_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="number_of_bits must be an integer from 1 to 31, got 32"):
        HashingTransformer("h", "text", number_of_bits=32)
    with pytest.raises(InvalidArgumentError, match="seed must be an integer from 0 to 4,294,967,295, got -1"):
        HashingTransformer("h", "text", seed=-1)

    @dataclass
    class V:
        v: Annotated[list[str], VectorType(-1)]

    data = ctx.data.load_from_enumerable([V(["a"]), V(["b", "c"])], V)
    with pytest.raises(ColumnTypeError, match=r"with a known shape \(ordered hashing numbers the slots\)"):
        HashingTransformer("h", "v", use_ordered_hashing=True).output_schema(data.schema)
    assert [v.tolist() for v in _column(HashingTransformer("h", "v", number_of_bits=4).transform(data), "h")] == [
        [(_reference_murmur(b"a", 314489979) & 15) + 1],
        [(_reference_murmur(b"b", 314489979) & 15) + 1, (_reference_murmur(b"c", 314489979) & 15) + 1],
    ]


def test_exported_hash_uses_the_com_microsoft_kernel() -> None:
    data = _data()
    proto = convert_to_onnx(HashingTransformer("h", "words"), data.schema)
    onnx.checker.check_model(proto, full_check=True)
    assert any(n.op_type == "MurmurHash3" and n.domain == "com.microsoft" for n in proto.graph.node)
    assert ("com.microsoft", 1) in {(o.domain, o.version) for o in proto.opset_import}


# --------------------------------------------------------------------------------------------
# scalar float32 columns with NaN (checked here because check_component compares float32 NaN
# scalars with ==)


def test_scalar_float32_missing_values() -> None:
    rows = [Row(r.text, NAN if i % 2 else r.x32, r.x64, r.n, r.flag, r.vec, r.words) for i, r in enumerate(ROWS)]
    data = _data(rows)
    keys = ValueToKeyMappingEstimator("k", "x32").fit(data)
    assert _column(keys.transform(data), "k") == [1, 0, 2, 0, 2]  # -0.0 and 0.0 share a key
    _parity(keys, data, data, ["k"])
    assert _column(HashingTransformer("h", "x32").transform(data), "h")[1] == 0
    _parity(HashingTransformer("h", "x32"), data, data, ["h"])
    mapped = ValueMappingTransformer("m", {"a": 1.0, "b": 2.0}, "text")  # float32 values, NaN for unmapped
    assert _same(_column(mapped.transform(data), "m"), np.array([2, NAN, 1, 2, 1], np.float32))
    _parity(mapped, data, data, ["m"])
    back = KeyToValueMappingTransformer("back", "k", key_values=keys)
    _parity(keys.append(back), data, data, ["back"])


def test_map_value_to_key_on_a_key_column_keeps_key_zero_missing() -> None:
    @dataclass
    class K:
        key: Annotated[npt.NDArray[np.uint32], KeyType(9), VectorType(2)]

    data = ctx.data.load_from_enumerable([K(np.array([0, 7], np.uint32)), K(np.array([2, 7], np.uint32))], K)
    model = ValueToKeyMappingEstimator("rekeyed", "key").fit(data)
    assert model.keys.tolist() == [7, 2]
    assert np.stack(_column(model.transform(data), "rekeyed")).tolist() == [[0, 1], [2, 1]]
    check_component(Fitted(model), data, exportable=True)
    given = ValueToKeyMappingEstimator("rekeyed", "key", keys=[0, 2])
    assert _key_of(given.output_schema(data.schema)["rekeyed"].type) == ((2,), 1)


def test_float_keys_mean_the_column_precision() -> None:
    data = _data()
    mapped = ValueMappingTransformer("m", {0.1: "tenth", 5: "five"}, "vec")  # 0.1 is float32(0.1) here
    assert np.stack(_column(mapped.transform(data), "m"))[2].tolist() == ["five", "five", ""]
    with pytest.raises(InvalidArgumentError, match=r"keys: 1e\+300 is out of range for float32"):
        ValueMappingTransformer("m", {1e300: "big"}, "vec").output_schema(data.schema)
