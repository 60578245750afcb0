"""apply_onnx_model against plain onnxruntime, on real and test-built models."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest

import onnxpipe as op
from onnxpipe import ColumnName, VectorType
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataFileNotFoundError,
    DeviceError,
    ExecutionError,
    InvalidArgumentError,
    ModelLoadError,
    SchemaError,
    ShapeError,
    TensorNotFoundError,
)
from onnxpipe.testing import TOLERANCES, check_component
from onnxpipe.transforms.onnx_model import OnnxTransformer

from . import models

ctx = op.MLContext(seed=0)


def plain_ort(model: bytes | str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)


# ----------------------------------------------------------------------------- ResNet I/O


@dataclass
class ResNetInput:
    data: Annotated[npt.NDArray[np.float32], ColumnName("data"), VectorType(1, 3, 224, 224)]


@dataclass
class ResNetInputNoBatch:
    data: Annotated[npt.NDArray[np.float32], VectorType(3, 224, 224)]


@dataclass
class ResNetOutput:
    scores: Annotated[npt.NDArray[np.float32], ColumnName("resnetv24_dense0_fwd"), VectorType(1, 1000)]


@pytest.fixture(scope="module")
def resnet() -> bytes:
    return models.resnet_io()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).random((5, 3, 224, 224), dtype=np.float32)


def test_design_journey_part1(resnet: bytes, images: np.ndarray) -> None:
    pipeline = ctx.transforms.apply_onnx_model(
        model_bytes=resnet, output_column_names=["resnetv24_dense0_fwd"], input_column_names=["data"]
    )
    model = pipeline.fit(ctx.data.load_from_enumerable([], ResNetInput))
    engine = ctx.model.create_prediction_engine(model, ResNetInput, ResNetOutput)
    expected = plain_ort(resnet, {"data": images})[0]

    one = engine.predict(ResNetInput(data=images[0:1]))
    assert one.scores.shape == (1, 1000)
    np.testing.assert_allclose(one.scores, expected[0:1], **TOLERANCES)
    many = engine.predict_batch([ResNetInput(data=im) for im in images])
    np.testing.assert_allclose(np.concatenate([m.scores for m in many]), expected, **TOLERANCES)

    view = ctx.data.load_from_enumerable([ResNetInputNoBatch(data=im) for im in images], ResNetInputNoBatch)
    scored = model.transform(view)
    assert str(scored.schema["resnetv24_dense0_fwd"].type) == "float32[1,1000]"
    column = scored.column("resnetv24_dense0_fwd")
    assert column.shape == (5, 1, 1000)
    np.testing.assert_allclose(column[:, 0], expected, **TOLERANCES)
    rows = list(ctx.data.create_enumerable(scored, ResNetOutput))
    np.testing.assert_allclose(rows[3].scores, expected[3:4], **TOLERANCES)


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_batch_size_gives_row_by_row_results(resnet: bytes, images: np.ndarray, batch_size: int) -> None:
    t = ctx.transforms.apply_onnx_model(model_bytes=resnet, batch_size=batch_size)
    view = ctx.data.load_from_enumerable([ResNetInput(data=im.reshape(-1)) for im in images], ResNetInput)
    got = t.transform(view).column("resnetv24_dense0_fwd")
    expected = np.concatenate([plain_ort(resnet, {"data": im[None]})[0] for im in images])
    np.testing.assert_allclose(got[:, 0], expected, **TOLERANCES)


def test_resnet_conformance(resnet: bytes, images: np.ndarray) -> None:
    view = ctx.data.load_from_enumerable([ResNetInput(data=im) for im in images[:3]], ResNetInput)
    check_component(ctx.transforms.apply_onnx_model(model_bytes=resnet), view, exportable=True)


# ----------------------------------------------------------------------------- unknown dimensions


@dataclass
class Sequence4:
    x: Annotated[npt.NDArray[np.float32], VectorType(-1, -1, 4)]


def test_two_unknown_dimensions_resolved_per_row() -> None:
    model = models.two_unknown_dims()
    rng = np.random.default_rng(2)
    arrays = [rng.random((1, n, 4), dtype=np.float32) for n in (2, 2, 5, 1, 5)]
    t = ctx.transforms.apply_onnx_model(model_bytes=model)
    assert t.batched
    scored = t.transform(ctx.data.load_from_enumerable([Sequence4(a) for a in arrays], Sequence4))
    assert str(scored.schema["total"].type) == "float32[1,4]"
    assert str(scored.schema["doubled"].type) == "float32[1,?,4]"
    doubled = scored.column("doubled")
    for a, d, tot in zip(arrays, doubled, scored.column("total"), strict=True):
        exp_total, exp_doubled = plain_ort(model, {"x": a})
        np.testing.assert_allclose(d, exp_doubled, **TOLERANCES)
        np.testing.assert_allclose(tot, exp_total, **TOLERANCES)
    check_component(t, ctx.data.load_from_enumerable([Sequence4(a) for a in arrays], Sequence4), exportable=True)


def test_rows_without_leading_batch_and_unknown_dims() -> None:
    @dataclass
    class NoBatch:
        x: Annotated[npt.NDArray[np.float32], VectorType(-1, 4)]

    model = models.two_unknown_dims()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = ctx.transforms.apply_onnx_model(model_bytes=model).transform(
        ctx.data.load_from_enumerable([NoBatch(a)], NoBatch)
    )
    np.testing.assert_array_equal(out.column("total")[0], a.sum(axis=0, keepdims=True))


def test_unknown_dimensions_model_and_shape_dictionary(mlnet_data: Path) -> None:
    path = mlnet_data / "onnx" / "test_unknowndimensions_float.onnx"

    @dataclass
    class Row:
        input: Annotated[npt.NDArray[np.float32], VectorType(3)]

    @dataclass
    class Packed:
        input: Annotated[npt.NDArray[np.float32], VectorType(3, 3)]

    data = np.array([[1.1, 1.3, 1.2], [-1.1, -1.3, -1.2], [-1.1, -1.3, 1.2]], np.float32)
    per_row = ctx.transforms.apply_onnx_model(path).transform(
        ctx.data.load_from_enumerable([Row(r) for r in data], Row)
    )
    np.testing.assert_array_equal(per_row.column("argmax"), [[1], [0], [2]])
    # ML.NET's TestOnnxTransformWithCustomShapes: [-1,3] overridden to [3,3], three rows in one.
    packed = ctx.transforms.apply_onnx_model(path, shape_dictionary={"input": [3, 3]})
    scored = packed.transform(ctx.data.load_from_enumerable([Packed(data)], Packed))
    assert str(scored.schema["argmax"].type) == "int64[3]"
    np.testing.assert_array_equal(scored.column("argmax"), [[1, 0, 2]])


def test_none_dim_value_model(mlnet_data: Path) -> None:
    path = mlnet_data / "onnx" / "linear_regression.onnx"

    @dataclass
    class Row:
        features: Annotated[npt.NDArray[np.float32], VectorType(4)]

    @dataclass
    class Out:
        variable: float

    x = np.array([[1, 2, 3, 4], [0.5, 0, -1, 2]], np.float32)
    model = ctx.transforms.apply_onnx_model(path)
    engine = ctx.model.create_prediction_engine(model, Row, Out)
    expected = plain_ort(str(path), {"features": x})[0]
    got = [engine.predict(Row(r)).variable for r in x]
    np.testing.assert_allclose(got, expected[:, 0], rtol=1e-6)


def test_shape_dictionary_errors(mlnet_data: Path) -> None:
    path = mlnet_data / "onnx" / "twoinput.onnx"
    with pytest.raises(ShapeError, match=r"tensor 'ina' the shape \[2,3\].*model's shape \[1,1,1,5\]"):
        ctx.transforms.apply_onnx_model(path, shape_dictionary={"ina": [2, 3]})
    with pytest.raises(ShapeError, match=r"tensor 'outb' the shape \[5,6,1,5\].*\[1,1,1,5\]"):
        ctx.transforms.apply_onnx_model(path, shape_dictionary={"outb": [5, 6, 1, 5]})
    with pytest.raises(TensorNotFoundError, match=r"tensor 'nope'.*inputs \['ina', 'inb'\]"):
        ctx.transforms.apply_onnx_model(path, shape_dictionary={"nope": [1]})
    with pytest.raises(InvalidArgumentError, match=r"shape_dictionary\['ina'\]"):
        ctx.transforms.apply_onnx_model(path, shape_dictionary={"ina": [1, 0, 1, 5]})
    # Compatible overrides (ML.NET's SpecifyOnnxShapes) are accepted.
    ctx.transforms.apply_onnx_model(path, shape_dictionary={"ina": [1, 1, -1, 5], "inb": [-1, -1, -1, -1]})


# ----------------------------------------------------------------------------- ML.NET test models


def test_two_inputs_two_outputs_any_order(mlnet_data: Path) -> None:
    path = mlnet_data / "onnx" / "twoinput.onnx"

    @dataclass
    class Two:
        ina: Annotated[npt.NDArray[np.float32], VectorType(5)]
        inb: Annotated[npt.NDArray[np.float32], VectorType(5)]

    rows = [Two(np.arange(5, dtype=np.float32), np.arange(5, dtype=np.float32)) for _ in range(3)]
    view = ctx.data.load_from_enumerable(rows, Two)
    t = ctx.transforms.apply_onnx_model(path, output_column_names=["outb", "outa"])
    scored = check_component(t, view, exportable=True).transform(view)  # a fixed batch: exported in a Loop
    assert scored.schema.names == ["ina", "inb", "outb", "outa"]
    # As ML.NET's OnnxModelMultiInput: outa = ina - inb, outb = ina + inb.
    assert scored.column("outa").sum() == 0 and scored.column("outb").sum() == 60
    assert scored.column("outa").shape == (3, 1, 1, 1, 5)
    only_b = ctx.transforms.apply_onnx_model(path, output_column_names="outb").transform(view)
    assert only_b.schema.names == ["ina", "inb", "outb"]


@pytest.mark.parametrize(
    ("file", "key_type", "keys"),
    [("TestZipMapInt64.onnx", int, [94, 17, 36]), ("TestZipMapString.onnx", str, ["A", "B", "C"])],
)
def test_zipmap_outputs(mlnet_data: Path, file: str, key_type: type, keys: list[object]) -> None:
    @dataclass
    class In:
        input: Annotated[npt.NDArray[np.float32], VectorType(1, 3)]

    @dataclass
    class OutInt:
        output: list[dict[int, float]]

    @dataclass
    class OutStr:
        output: list[dict[str, float]]

    out_class = OutInt if key_type is int else OutStr
    path = mlnet_data / "onnx" / file
    rows = [In(np.array([1, 2, 3], np.float32)), In(np.array([[3, 2, 1]], np.float32))]
    view = ctx.data.load_from_enumerable(rows, In)
    scored = check_component(ctx.transforms.apply_onnx_model(path), view, exportable=True).transform(view)
    got = [r.output for r in ctx.data.create_enumerable(scored, out_class)]
    assert got == [[dict(zip(keys, [1.0, 2.0, 3.0], strict=True))], [dict(zip(keys, [3.0, 2.0, 1.0], strict=True))]]
    engine = ctx.model.create_prediction_engine(ctx.transforms.apply_onnx_model(path), In, out_class)
    assert engine.predict(rows[0]).output == got[0]


def test_mlnet_exported_model_suffixes(mlnet_data: Path) -> None:
    path = mlnet_data / "onnx" / "mlnet_exported_multiclass_lr.onnx"
    t = ctx.transforms.apply_onnx_model(path)
    assert t.output_column_names == ["Label", "Features", "PredictedLabel", "Score"]

    @dataclass
    class Row:
        Label: Annotated[npt.NDArray[np.str_], VectorType(1, 1)]
        Features: Annotated[npt.NDArray[np.float32], VectorType(8)]

    @dataclass
    class Out:
        PredictedLabel: Annotated[npt.NDArray[np.uint32], VectorType(1, 1)]
        Score: Annotated[npt.NDArray[np.float32], VectorType(1, 10)]

    features = np.array([5, 1, 1, 1, 2, 1, 3, 1], np.float32)
    engine = ctx.model.create_prediction_engine(t, Row, Out)
    out = engine.predict(Row(np.array([["4"]]), features))
    exp = plain_ort(str(path), {"Label": np.array([["4"]], dtype=object), "Features": features[None]})
    np.testing.assert_array_equal(out.PredictedLabel, exp[2])
    np.testing.assert_allclose(out.Score, exp[3], **TOLERANCES)


def test_mlnet_style_names_slots_and_unused_tensors() -> None:
    @dataclass
    class Row:
        Features: Annotated[npt.NDArray[np.float32], VectorType(3)]

    t = ctx.transforms.apply_onnx_model(model_bytes=models.mlnet_style_export())
    assert t.input_column_names == ["Features"] and t.output_column_names == ["Features", "Score"]
    x = np.array([[1, 2, 3], [0, 0, 1], [2, 0, 0]], np.float32)
    view = ctx.data.load_from_enumerable([Row(r) for r in x], Row)
    scored = check_component(t, view, exportable=True).transform(view)
    assert scored.schema["Score"].slot_names == ("benign", "malignant")
    np.testing.assert_allclose(scored.column("Score")[:, 0], x @ np.array([[1, -1], [2, 0.5], [0, 1]], np.float32))


# ----------------------------------------------------------------------------- element types


def test_float16_string_and_rank0() -> None:
    @dataclass
    class Half:
        h: Annotated[npt.NDArray[np.float16], VectorType(3)]

    half = ctx.transforms.apply_onnx_model(model_bytes=models.float16_scale())
    view = ctx.data.load_from_enumerable(
        [Half(np.array([1, 2, 3], np.float16)), Half(np.array([4, 5, 6], np.float16))], Half
    )
    scored = check_component(half, view, exportable=True).transform(view)
    assert scored.column("y").dtype == np.float16
    np.testing.assert_array_equal(scored.column("y")[:, 0], [[0.5, 1, 1.5], [2, 2.5, 3]])

    @dataclass
    class Word:
        word: str

    words = ctx.transforms.apply_onnx_model(model_bytes=models.string_lookup())
    view = ctx.data.load_from_enumerable([Word("tomato"), Word("kiwi"), Word("banana")], Word)
    scored = check_component(words, view, exportable=True).transform(view)
    np.testing.assert_array_equal(scored.column("code"), [[2], [-1], [0]])

    @dataclass
    class Count:
        n: int

    @dataclass
    class Next:
        m: int

    inc = ctx.transforms.apply_onnx_model(model_bytes=models.rank0_increment())
    assert not inc.batched
    view = ctx.data.load_from_enumerable([Count(1), Count(41)], Count)
    scored = check_component(inc, view, exportable=True).transform(view)
    assert str(scored.schema["m"].type) == "int64"
    assert scored.column("m").tolist() == [2, 42]
    assert ctx.model.create_prediction_engine(inc, Count, Next).predict(Count(9)) == Next(10)


def test_safe_conversion_float64_into_float32(resnet: bytes) -> None:
    @dataclass
    class Doubles:
        data: Annotated[npt.NDArray[np.float64], VectorType(3, 224, 224)]

    img = np.random.default_rng(3).random((3, 224, 224))
    out = ctx.transforms.apply_onnx_model(model_bytes=resnet).transform(
        ctx.data.load_from_enumerable([Doubles(img)], Doubles)
    )
    expected = plain_ort(resnet, {"data": img[None].astype(np.float32)})[0]
    np.testing.assert_allclose(out.column("resnetv24_dense0_fwd")[0], expected, **TOLERANCES)


# ----------------------------------------------------------------------------- scikit-learn models


def test_sklearn_mixed_inputs_with_zipmap() -> None:
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(4)
    n = 200
    df = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "colour": rng.choice(["red", "green", "blue"], n)}
    )
    y = (df.a + (df.colour == "red") > 0.5).astype(int)
    pipe = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(), [2])]), LogisticRegression()
    )
    pipe.fit(df.to_numpy(), y)
    onx = convert_sklearn(
        pipe,
        initial_types=[("num", FloatTensorType([None, 2])), ("cat", StringTensorType([None, 1]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    # skl2onnx's converter needs one input per ColumnTransformer branch; rewire it by position.
    model_bytes = onx.SerializeToString()

    @dataclass
    class Row:
        num: Annotated[npt.NDArray[np.float64], VectorType(2)]
        cat: Annotated[npt.NDArray[np.str_], VectorType(1)]

    @dataclass
    class Out:
        output_label: Annotated[npt.NDArray[np.int64], VectorType(1)]
        output_probability: list[dict[int, float]]

    rows = [Row(np.array([a, b]), np.array([c])) for a, b, c in df.head(20).itertuples(index=False)]
    t = ctx.transforms.apply_onnx_model(model_bytes=model_bytes)
    view = ctx.data.load_from_enumerable(rows, Row)
    check_component(t, view.take(4), exportable=True)
    preds = list(ctx.data.create_enumerable(t.transform(view), Out))
    feeds = {"num": df[["a", "b"]].head(20).to_numpy(np.float32), "cat": df[["colour"]].head(20).to_numpy(object)}
    labels, probs = plain_ort(model_bytes, feeds)
    assert [p.output_label[0] for p in preds] == labels.tolist()
    for p, q in zip(preds, probs, strict=True):
        assert p.output_probability[0].keys() == q.keys()
        np.testing.assert_allclose(list(p.output_probability[0].values()), list(q.values()), rtol=1e-6)
    np.testing.assert_array_equal([p.output_label[0] for p in preds], pipe.predict(df.head(20).to_numpy()))


def test_sklearn_float64_model() -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    reg = Ridge().fit(x, y)
    onx = convert_sklearn(reg, initial_types=[("X", DoubleTensorType([None, 10]))], target_opset=17)

    @dataclass
    class Row:
        X: Annotated[npt.NDArray[np.float64], VectorType(10)]

    @dataclass
    class Out:
        variable: np.float64

    engine = ctx.model.create_prediction_engine(
        ctx.transforms.apply_onnx_model(model_bytes=onx.SerializeToString()), Row, Out
    )
    got = [p.variable for p in engine.predict_batch([Row(r) for r in x[:50]])]
    np.testing.assert_allclose(got, reg.predict(x[:50]), rtol=1e-10)


def test_onnxruntime_bundled_logreg_iris() -> None:
    path = Path(ort.__file__).parent / "datasets" / "logreg_iris.onnx"

    @dataclass
    class Three:
        float_input: Annotated[npt.NDArray[np.float32], VectorType(3, 2)]

    @dataclass
    class Out:
        label: Annotated[npt.NDArray[np.int64], VectorType(3)]
        probabilities: list[dict[int, float]]

    x = np.array([[5.9, 3.0], [6.0, 2.2], [4.6, 3.4]], np.float32)
    t = ctx.transforms.apply_onnx_model(path)
    assert not t.batched  # fixed batch of 3: each row holds three examples
    out = ctx.model.create_prediction_engine(t, Three, Out).predict(Three(x))
    label, probs = plain_ort(str(path), {"float_input": x})
    np.testing.assert_array_equal(out.label, label)
    assert [d.keys() for d in out.probabilities] == [d.keys() for d in probs]
    assert [pytest.approx(d) for d in probs] == out.probabilities


# ----------------------------------------------------------------------------- errors


def test_schema_errors_name_column_expected_and_given(resnet: bytes) -> None:
    t = ctx.transforms.apply_onnx_model(model_bytes=resnet)

    @dataclass
    class Wrong:
        data: Annotated[npt.NDArray[np.float32], VectorType(3, 224)]

    @dataclass
    class Text:
        data: str

    @dataclass
    class Other:
        pixels: Annotated[npt.NDArray[np.float32], VectorType(3, 224, 224)]

    with pytest.raises(ShapeError, match=r"column 'data' feeds input tensor 'data'.*\[1,3,224,224\].*\[3,224\]"):
        t.fit(ctx.data.load_from_enumerable([], Wrong))
    with pytest.raises(
        ColumnTypeError,
        match=r"column 'data' feeds input tensor 'data', which expects element type float32; the column is string",
    ):
        t.fit(ctx.data.load_from_enumerable([], Text))
    with pytest.raises(
        ColumnNotFoundError, match=r"input column 'data' is not in the data; available columns: \['pixels'\]"
    ):
        t.fit(ctx.data.load_from_enumerable([], Other))
    with pytest.raises(SchemaError):
        ctx.model.create_prediction_engine(t, Other, ResNetOutput)


def test_integer_data_into_float_is_converted_but_float_into_int_is_not() -> None:
    @dataclass
    class Ints:
        h: Annotated[npt.NDArray[np.int32], VectorType(3)]

    @dataclass
    class Floats:
        n: float

    out = ctx.transforms.apply_onnx_model(model_bytes=models.float16_scale()).transform(
        ctx.data.load_from_enumerable([Ints(np.array([2, 4, 6], np.int32))], Ints)
    )
    np.testing.assert_array_equal(out.column("y"), [[[1, 2, 3]]])
    with pytest.raises(ColumnTypeError, match=r"expects element type int64; the column is float32"):
        ctx.transforms.apply_onnx_model(model_bytes=models.rank0_increment()).fit(
            ctx.data.load_from_enumerable([], Floats)
        )


def test_tensor_name_errors_list_what_exists(resnet: bytes) -> None:
    with pytest.raises(
        TensorNotFoundError, match=r"input tensor 'image' is not in the model; available inputs: \['data'\]"
    ):
        ctx.transforms.apply_onnx_model(model_bytes=resnet, input_column_names=["image"])
    with pytest.raises(
        TensorNotFoundError, match=r"output 'probs' is not in the model; available outputs: \['resnetv24_dense0_fwd'\]"
    ):
        ctx.transforms.apply_onnx_model(model_bytes=resnet, output_column_names=["probs"])


def test_bad_model_sources(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="does not exist") as info:
        ctx.transforms.apply_onnx_model(tmp_path / "missing.onnx")
    assert isinstance(info.value, FileNotFoundError)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07this is not a model" * 10)
    with pytest.raises(ModelLoadError, match=r"junk\.onnx is not a valid ONNX model"):
        ctx.transforms.apply_onnx_model(junk)
    with pytest.raises(ModelLoadError, match="exactly one of"):
        ctx.transforms.apply_onnx_model()
    with pytest.raises(InvalidArgumentError, match="batch_size must be a number of rows from 1"):
        ctx.transforms.apply_onnx_model(model_bytes=models.rank0_increment(), batch_size=0)


def test_model_that_drops_the_batch_axis_is_reported() -> None:
    @dataclass
    class Pair:
        x: Annotated[npt.NDArray[np.float32], VectorType(2)]

    t = ctx.transforms.apply_onnx_model(model_bytes=models.batch_reducing())
    view = ctx.data.load_from_enumerable([Pair(np.ones(2, np.float32))] * 3, Pair)
    with pytest.raises(ExecutionError, match=r"output 's' has 2 rows for a batch of 3.*batch_size=1"):
        t.transform(view).column("s")
    one = ctx.transforms.apply_onnx_model(model_bytes=models.batch_reducing(), batch_size=1)
    with pytest.raises(ExecutionError, match=r"has 2 rows for a batch of 1"):
        one.transform(view).column("s")


def test_external_data_by_path_and_escape_refused(tmp_path: Path) -> None:
    proto = onnx.load_from_string(models.resnet_io())
    path = tmp_path / "model.onnx"
    onnx.save_model(
        proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0
    )
    t = ctx.transforms.apply_onnx_model(path)
    x = np.ones((1, 3, 224, 224), np.float32)
    out = ctx.model.create_prediction_engine(t, ResNetInput, ResNetOutput).predict(ResNetInput(x))
    np.testing.assert_allclose(out.scores, plain_ort(models.resnet_io(), {"data": x})[0], **TOLERANCES)
    with pytest.raises(ModelLoadError, match="external data files"):
        ctx.transforms.apply_onnx_model(model_bytes=path.read_bytes())
    evil = onnx.load(path, load_external_data=False)
    for init in evil.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../outside.bin"
    evil_path = tmp_path / "evil.onnx"
    evil_path.write_bytes(evil.SerializeToString())
    with pytest.raises(ModelLoadError, match=r"external data '../outside.bin' outside its folder"):
        ctx.transforms.apply_onnx_model(evil_path)


def test_gpu_request_fails_loudly_or_falls_back(resnet: bytes) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA provider is installed: the CPU-only behaviour cannot be observed here")
    with pytest.raises(DeviceError, match=r"GPU 0 was requested .* no CUDA provider.*fallback_to_cpu=True"):
        ctx.transforms.apply_onnx_model(model_bytes=resnet, gpu_device_id=0)
    with pytest.warns(op.OnnxPipeWarning, match=r"running on CPU with providers \['CPUExecutionProvider'\]"):
        t = ctx.transforms.apply_onnx_model(model_bytes=resnet, gpu_device_id=0, fallback_to_cpu=True)
    assert t.providers == ["CPUExecutionProvider"]
    gpu_ctx = op.MLContext(gpu_device_id=0, fallback_to_cpu=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gpu_ctx.transforms.apply_onnx_model(model_bytes=resnet)
    assert any(issubclass(w.category, op.OnnxPipeWarning) for w in caught)


def test_loaded_model_opens_its_onnx_steps_on_the_requested_device(resnet: bytes, tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA provider is installed: the CPU-only behaviour cannot be observed here")
    step = ctx.transforms.apply_onnx_model(model_bytes=resnet)
    schema = op.Schema([op.Column(step.input_column_names[0], op.TensorType(op.DType.FLOAT32, (1, 3, 224, 224)))])
    path = tmp_path / "resnet.zip"
    ctx.model.save(step, schema, path)
    loaded, _ = ctx.model.load(path)  # a saved model records no device: the CPU
    assert loaded.providers == ["CPUExecutionProvider"]  # type: ignore[attr-defined]
    with pytest.raises(DeviceError, match=r"GPU 0 was requested .* fallback_to_cpu=True"):
        ctx.model.load(path, gpu_device_id=0)
    gpu_ctx = op.MLContext(gpu_device_id=0, fallback_to_cpu=True)  # the context's defaults apply
    with pytest.warns(op.OnnxPipeWarning, match=r"running on CPU"):
        moved, _ = gpu_ctx.model.load(path)
    assert isinstance(moved, OnnxTransformer) and moved.step_name == loaded.step_name
    assert moved.settings.gpu_device_id == 0 and moved.providers == ["CPUExecutionProvider"]


def test_output_of_unknown_rank_is_a_flat_vector() -> None:
    @dataclass
    class Row:
        x: Annotated[npt.NDArray[np.float32], VectorType(3)]

    t = ctx.transforms.apply_onnx_model(model_bytes=models.unknown_rank_output())
    assert not t.batched
    view = ctx.data.load_from_enumerable([Row(np.array([1, 2, 3], np.float32)), Row(np.ones(3, np.float32))], Row)
    scored = check_component(t, view, exportable=True).transform(view)
    assert str(scored.schema["y"].type) == "float32[?]"
    np.testing.assert_array_equal(np.stack(scored.column("y")), [[2, 4, 6], [2, 2, 2]])


def test_engine_rejects_bad_rows_with_the_field_named(resnet: bytes) -> None:
    engine = ctx.model.create_prediction_engine(
        ctx.transforms.apply_onnx_model(model_bytes=resnet), ResNetInput, ResNetOutput
    )
    with pytest.raises(
        ColumnTypeError, match=r"column 'data' \(field ResNetInput.data\), row 0: expected float32 values, got strings"
    ):
        engine.predict(ResNetInput(data=np.array(["a"] * 150528)))  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"expected shape \(1, 3, 224, 224\) \(150528 values\), got shape \(3, 224\)"):
        engine.predict(ResNetInput(data=np.ones((3, 224), np.float32)))
