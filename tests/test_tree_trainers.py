"""LightGBM tree trainers: conformance, equality with LightGBM's own predictions, exact ONNX export,
quality on real data sets, and errors."""

from __future__ import annotations

import pickle
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

import onnxpipe as op
from onnxpipe import KeyType, LoadColumn, VectorType
from onnxpipe.core import Estimator
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataError,
    ExportError,
    InvalidArgumentError,
    MissingDependencyError,
    ShapeError,
)
from onnxpipe.export import convert_to_onnx
from onnxpipe.schema import DType, TensorType
from onnxpipe.testing import check_component
from onnxpipe.trainers.trees import (
    FastForestBinaryTrainer,
    FastForestRegressionTrainer,
    LightGbmBinaryTrainer,
    LightGbmModel,
    LightGbmMulticlassTrainer,
    LightGbmRegressionTrainer,
)

lgb = pytest.importorskip("lightgbm")  # the optional extra onnxpipe[lightgbm]

ctx = op.MLContext(seed=0)

# Small models on small data: the conformance suite scores every row on its own. One thread:
# OpenMP's spinning teams are slow on small data when other processes share the cores.
ONE = {"minimum_example_count_per_leaf": 5, "number_of_threads": 1}
GBDT: dict[str, Any] = {"number_of_iterations": 12, "number_of_leaves": 6, **ONE}
FOREST: dict[str, Any] = {"number_of_trees": 12, "number_of_leaves": 6, **ONE}


def _key_of(ct: object) -> tuple[object, object]:
    """The shape and key count of a key column type."""
    assert isinstance(ct, KeyType), ct
    return ct.shape, ct.count


def view(
    x: np.ndarray,
    label: np.ndarray | list[Any],
    *,
    weight: np.ndarray | None = None,
    label_name: str = "Label",
    feature_name: str = "Features",
) -> op.DataView:
    columns: dict[str, pa.Array] = {
        feature_name: pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]),
        label_name: pa.array(label),
    }
    if weight is not None:
        columns["Weight"] = pa.array(weight)
    return ctx.data.load_from_arrow(pa.table(columns))


def features(n: int = 90, f: int = 4, seed: int = 0, dtype: type = np.float32, nan: float = 0.1) -> np.ndarray:
    """Centred features (thresholds of both signs) with NaN in the first two columns only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[:, :2][rng.random((n, 2)) < nan] = np.nan
    return x.astype(dtype)


def binary_labels(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) + 0.5 * x[:, 2] > 0)


def class_index(x: np.ndarray) -> np.ndarray:
    s = np.nan_to_num(x[:, 0]) + 0.5 * x[:, 2]
    return np.digitize(s, [-0.5, 0.5])  # 0, 1, 2


def regression_labels(x: np.ndarray) -> np.ndarray:
    return (2 * np.nan_to_num(x[:, 0]) - x[:, 2] + 0.1 * x[:, 3]).astype(np.float32)


def ort_run(model: Any, data: op.DataView) -> dict[str, np.ndarray]:
    """Export ``model`` and run it with ONNX Runtime directly on ``data``'s features."""
    outputs = [n for n in model.output_schema(data.schema).names if n not in data.schema]
    proto = convert_to_onnx(model, data.schema, output_columns=outputs)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(data.column(i.name)) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def scored(model: Any, data: op.DataView) -> dict[str, Any]:
    out = model.transform(data)
    return {n: out.column(n) for n in out.schema.names}


# --------------------------------------------------------------------------------------------
# The conformance suite


@dataclass
class KeyRow:
    Label: Annotated[int, KeyType(4)]
    Features: Annotated[npt.NDArray[np.float32], VectorType(4)]


def key_view(x: np.ndarray) -> op.DataView:
    return ctx.data.load_from_enumerable(
        [KeyRow(int(c) + 1, r) for c, r in zip(class_index(x), x, strict=True)], KeyRow
    )


def _conformance_cases() -> list[Any]:
    x32, x64 = features(), features(dtype=np.float64)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(x32))
    return [
        pytest.param(LightGbmBinaryTrainer(**GBDT), view(x32, binary_labels(x32)), id="binary-bool-f32"),
        pytest.param(
            LightGbmBinaryTrainer(sigmoid=1.0, **GBDT),
            view(x64, binary_labels(x64).astype(np.float32)),
            id="binary-01-f64",
        ),
        pytest.param(
            LightGbmBinaryTrainer(example_weight_column_name="Weight", **GBDT),
            view(x32, binary_labels(x32), weight=w),
            id="binary-weighted",
        ),
        pytest.param(LightGbmRegressionTrainer(**GBDT), view(x32, regression_labels(x32)), id="regression-f32"),
        pytest.param(LightGbmRegressionTrainer(**GBDT), view(x64, regression_labels(x64)), id="regression-f64"),
        pytest.param(LightGbmMulticlassTrainer(**GBDT), key_view(x32), id="multiclass-key"),
        pytest.param(FastForestBinaryTrainer(**FOREST), view(x32, binary_labels(x32)), id="forest-binary-f32"),
        pytest.param(FastForestBinaryTrainer(**FOREST), view(x64, binary_labels(x64)), id="forest-binary-f64"),
        pytest.param(
            FastForestRegressionTrainer(**FOREST), view(x32, regression_labels(x32)), id="forest-regression-f32"
        ),
    ]


@pytest.mark.parametrize(("trainer", "data"), _conformance_cases())
def test_trainers_conform(trainer: Estimator, data: op.DataView) -> None:
    model = check_component(trainer, data, exportable=True)
    assert isinstance(model, LightGbmModel)
    assert model.number_of_trees >= 12


def _multiclass_labels() -> list[Any]:
    idx = class_index(features())
    return [
        pytest.param(np.array(["iris-setosa", "iris-versicolor", "iris-virginica"], dtype=object)[idx], id="strings"),
        pytest.param(np.array([3, 7, 10], dtype=np.int64)[idx], id="ints"),
        pytest.param(np.array([0.5, 1.5, 2.5], dtype=np.float32)[idx], id="floats"),
        pytest.param(idx > 0, id="bools"),
    ]


@pytest.mark.parametrize("labels", _multiclass_labels())
def test_multiclass_conforms_with_plain_labels(labels: np.ndarray) -> None:
    check_component(LightGbmMulticlassTrainer(**GBDT), view(features(), labels), exportable=True)


def test_pipeline_with_concatenate_conforms() -> None:
    @dataclass
    class Parts:  # the suite drops the first column and expects the pipeline to miss it
        a: float
        b: Annotated[npt.NDArray[np.float32], VectorType(3)]
        Label: bool

    x = features()
    rows = [Parts(float(r[0]), r[1:], bool(y)) for y, r in zip(binary_labels(x), x, strict=True)]
    data = ctx.data.load_from_enumerable(rows, Parts)
    pipeline = ctx.transforms.concatenate("Features", "a", "b").append(LightGbmBinaryTrainer(**GBDT))
    check_component(pipeline, data, exportable=True)


# --------------------------------------------------------------------------------------------
# Predictions are LightGBM's own


def _direct(trainer: Any, x: np.ndarray, y: np.ndarray, num_class: int | None = None) -> Any:
    rounds = getattr(trainer, "number_of_trees", None) or trainer.number_of_iterations
    return lgb.train(trainer.lightgbm_params(num_class), lgb.Dataset(x, label=y), num_boost_round=rounds)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "trainer", [LightGbmBinaryTrainer(**GBDT), FastForestBinaryTrainer(**FOREST)], ids=["light_gbm", "fast_forest"]
)
def test_binary_predictions_equal_lightgbm(trainer: Any, dtype: type) -> None:
    x = features(n=300, dtype=dtype)
    y = binary_labels(x)
    model = trainer.fit(view(x, y))
    booster = _direct(trainer, x, y.astype(np.float64))
    assert booster.model_to_string(num_iteration=-1) == model.model_text  # the wrapper trains what LightGBM trains
    out = scored(model, view(x, y))
    raw = booster.predict(x, raw_score=True)
    if isinstance(trainer, FastForestBinaryTrainer):
        raw = raw / booster.num_trees()  # raw_score=True sums a forest's trees; its margin is their average
    np.testing.assert_allclose(out["Score"], raw, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(out["Probability"], booster.predict(x), rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(out["PredictedLabel"], raw > 0)
    assert out["Score"].dtype == np.float32 and out["Probability"].dtype == np.float32


@pytest.mark.parametrize(
    "trainer",
    [LightGbmRegressionTrainer(**GBDT), FastForestRegressionTrainer(**FOREST)],
    ids=["light_gbm", "fast_forest"],
)
def test_regression_predictions_equal_lightgbm(trainer: Any) -> None:
    x = features(n=300)
    y = regression_labels(x)
    model = trainer.fit(view(x, y))
    booster = _direct(trainer, x, y.astype(np.float64))
    assert booster.model_to_string(num_iteration=-1) == model.model_text
    np.testing.assert_allclose(scored(model, view(x, y))["Score"], booster.predict(x), rtol=1e-6, atol=1e-12)


def test_multiclass_predictions_equal_lightgbm() -> None:
    x = features(n=300)
    idx = class_index(x)
    names = np.array(["b", "c", "a"], dtype=object)[idx]  # not in sorted order
    trainer = LightGbmMulticlassTrainer(**GBDT)
    model = trainer.fit(view(x, names))
    assert model.classes is not None and model.classes.tolist() == ["a", "b", "c"]
    booster = _direct(trainer, x, np.searchsorted(["a", "b", "c"], names).astype(np.float64), num_class=3)
    assert booster.model_to_string(num_iteration=-1) == model.model_text
    out = scored(model, view(x, names))
    np.testing.assert_allclose(np.stack(out["Score"]), booster.predict(x), rtol=1e-6, atol=1e-12)
    assert out["PredictedLabel"].tolist() == model.classes[np.argmax(booster.predict(x), axis=1)].tolist()


@pytest.mark.parametrize(
    ("labels", "dtype"),
    [
        (np.array(["setosa", "versicolor", "virginica"], dtype=object), DType.STRING),
        (np.array([30, 10, 20], dtype=np.int64), DType.INT64),
        (np.array([False, True, True]), DType.BOOL),
    ],
    ids=["strings", "ints", "bools"],
)
def test_multiclass_predicted_label_has_the_label_type(labels: np.ndarray, dtype: DType) -> None:
    x = features(n=150)
    y = labels[class_index(x)]
    model = LightGbmMulticlassTrainer(**GBDT).fit(view(x, y))
    assert model.classes is not None and model.classes.tolist() == sorted(set(y.tolist()))
    out = model.transform(view(x, y))
    assert out.schema["PredictedLabel"].type == TensorType(dtype)
    assert out.schema["Score"].type == TensorType(DType.FLOAT32, (len(model.classes),))
    assert out.schema["Score"].slot_names == tuple(str(c) for c in model.classes.tolist())
    predicted = out.column("PredictedLabel")
    assert predicted.dtype == dtype.numpy
    assert set(predicted.tolist()) <= set(y.tolist())
    assert np.mean(predicted == y) > 0.8
    assert all(s.shape == (len(model.classes),) for s in out.column("Score"))
    # the prediction engine path: one row at a time, typed values back
    one = model.map_columns({"Features": x[:1]}, out.schema, 1)
    assert type(one["PredictedLabel"][0]) is type(predicted[0])


def test_key_label_scores_have_slot_names() -> None:
    x = features()
    model = LightGbmMulticlassTrainer(**GBDT).fit(key_view(x))
    schema = model.output_schema(key_view(x).schema)
    assert schema["Score"].type == TensorType(DType.FLOAT32, (4,))
    assert schema["Score"].slot_names == ("1", "2", "3", "4")
    assert _key_of(schema["PredictedLabel"].type) == ((), 4)
    assert model.classes is not None and model.classes.tolist() == [1, 2, 3, 4]
    assert set(model.transform(key_view(x)).column("PredictedLabel").tolist()) <= {1, 2, 3}  # 4 never seen


def test_example_weights_are_used() -> None:
    x = features(n=200)
    y = binary_labels(x)
    w = np.where(y, 5.0, 1.0)
    trainer = LightGbmBinaryTrainer(example_weight_column_name="Weight", **GBDT)
    model = trainer.fit(view(x, y, weight=w))
    booster = lgb.train(trainer.lightgbm_params(), lgb.Dataset(x, label=y.astype(float), weight=w), 12)
    assert booster.model_to_string(num_iteration=-1) == model.model_text
    assert model.model_text != LightGbmBinaryTrainer(**GBDT).fit(view(x, y)).model_text


def test_custom_column_names() -> None:
    x = features()
    trainer = LightGbmRegressionTrainer(label_column_name="Target", feature_column_name="X", **GBDT)
    data = view(x, regression_labels(x), label_name="Target", feature_name="X")
    assert trainer.step_name == "light_gbm_regression(Target, X)"
    model = check_component(trainer, data, exportable=True)
    assert model.input_columns(data.schema) == ["X"]


# --------------------------------------------------------------------------------------------
# ONNX export: exact decisions


def _threshold_probes(model: LightGbmModel, base: np.ndarray, dtype: type) -> np.ndarray:
    """Rows equal to ``base`` except one feature set at, just below and just above each threshold."""
    rows = []
    for tree in model.to_lightgbm().dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_index" not in node:
                continue
            stack += [node["left_child"], node["right_child"]]
            t = np.float64(node["threshold"])
            if dtype is np.float32:
                nearest = np.float32(t)
                values = [
                    nearest,
                    np.nextafter(nearest, np.float32(-np.inf)),
                    np.nextafter(nearest, np.float32(np.inf)),
                ]
            else:
                values = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
            for v in values:
                row = base.copy()
                row[node["split_feature"]] = v
                rows.append(row)
    return np.asarray(rows, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_onnx_decides_exactly_as_lightgbm_at_thresholds(task: str, dtype: type) -> None:
    x = features(n=400, dtype=dtype)
    trainer: Any
    if task == "binary":
        trainer, y = LightGbmBinaryTrainer(number_of_iterations=30, **ONE), binary_labels(x)
    elif task == "regression":
        trainer, y = LightGbmRegressionTrainer(number_of_iterations=30, **ONE), (regression_labels(x))
    else:
        trainer, y = LightGbmMulticlassTrainer(number_of_iterations=10, **ONE), (class_index(x).astype(np.int64))
    model = trainer.fit(view(x, y))
    probes = np.concatenate([_threshold_probes(model, np.nan_to_num(x[i]), dtype) for i in range(3)])
    data = view(probes, np.resize(y, len(probes)))
    ours, onnx = scored(model, data), ort_run(model, data)
    if task == "multiclass":
        # The margins are bit-equal; the float32 softmax of ONNX Runtime may differ in the last bits.
        np.testing.assert_allclose(onnx["Score"], np.stack(ours["Score"]), rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(onnx["Score"][:, 0], ours["Score"])  # bit for bit
    if task == "binary":
        np.testing.assert_array_equal(onnx["Probability"][:, 0], ours["Probability"])
    if task != "regression":
        np.testing.assert_array_equal(onnx["PredictedLabel"][:, 0], ours["PredictedLabel"])
    assert len(probes) > 100


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onnx_scores_tiny_values_as_zero(dtype: type) -> None:
    x = features(n=400, dtype=dtype, nan=0.0)
    x[::3, 2:] = 0  # many zeros: LightGBM puts thresholds at +-1e-35 around them
    y = (x[:, 2] > 0) | (x[:, 3] < 0)
    model = LightGbmBinaryTrainer(number_of_iterations=10, **ONE).fit(view(x, y))
    tiny = float(np.float32(1e-35))  # LightGBM's kZeroThreshold: |x| <= tiny is scored as 0
    assert tiny in {abs(float(t)) for t in re.findall(r"[-0-9.e]+", _thresholds(model))}
    values = [0.0, tiny, -tiny, np.nextafter(tiny, 1), np.nextafter(-tiny, -1), 1e-36, -1e-36, 1e-30, -1e-30]
    probes = np.zeros((len(values) * 2, 4), dtype=dtype)
    probes[: len(values), 2] = values
    probes[len(values) :, 3] = values
    data = view(probes, np.resize(y, len(probes)))
    ours, onnx = scored(model, data), ort_run(model, data)
    np.testing.assert_array_equal(onnx["Score"][:, 0], ours["Score"])
    assert len(set(ours["Score"].tolist())) > 1  # the probes reach different leaves


def _thresholds(model: LightGbmModel) -> str:
    return " ".join(m.group(1) for m in re.finditer(r"^threshold=(.*)$", model.model_text, re.M))


def _missing_kinds(model: LightGbmModel) -> set[tuple[str, bool]]:
    kinds = set()
    for tree in model.to_lightgbm().dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_index" in node:
                stack += [node["left_child"], node["right_child"]]
                left = node["default_left"] if node["missing_type"] == "NaN" else node["threshold"] >= 0
                kinds.add((node["missing_type"], bool(left)))
    return kinds


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onnx_routes_missing_values_as_lightgbm(dtype: type) -> None:
    x = features(n=600, dtype=dtype, nan=0.25)
    y = binary_labels(x)
    model = LightGbmBinaryTrainer(number_of_iterations=40, **ONE).fit(view(x, y))
    # NaN seen in training (columns 0, 1: missing_type NaN) and not (2, 3: None, NaN scored as 0.0),
    # going left and right.
    assert _missing_kinds(model) == {("NaN", True), ("NaN", False), ("None", True), ("None", False)}
    rng = np.random.default_rng(5)
    probes = x[:200].copy()
    probes[rng.random(probes.shape) < 0.3] = np.nan
    data = view(probes, y[:200])
    ours, onnx = scored(model, data), ort_run(model, data)
    np.testing.assert_array_equal(onnx["Score"][:, 0], ours["Score"])
    np.testing.assert_array_equal(onnx["PredictedLabel"][:, 0], ours["PredictedLabel"])
    np.testing.assert_allclose(ours["Score"], model.to_lightgbm().predict(probes, raw_score=True), rtol=1e-6)


@pytest.mark.parametrize("labels", _multiclass_labels())
def test_multiclass_onnx_parity(labels: np.ndarray) -> None:
    x = features()
    model = LightGbmMulticlassTrainer(**GBDT).fit(view(x, labels))
    data = view(x, labels)
    ours, onnx = scored(model, data), ort_run(model, data)
    np.testing.assert_allclose(onnx["Score"], np.stack(ours["Score"]), rtol=1e-6, atol=1e-7)
    assert onnx["PredictedLabel"].shape == (len(x), 1)
    assert onnx["PredictedLabel"][:, 0].tolist() == ours["PredictedLabel"].tolist()


def test_forest_export_averages_the_trees() -> None:
    x = features(n=200)
    y = regression_labels(x)
    model = FastForestRegressionTrainer(**FOREST).fit(view(x, y))
    proto = convert_to_onnx(model, view(x, y).schema)
    (trees,) = [n for n in proto.graph.node if n.op_type == "TreeEnsembleRegressor"]
    assert {a.name: a for a in trees.attribute}["aggregate_function"].s == b"AVERAGE"
    onnx = ort_run(model, view(x, y))
    np.testing.assert_array_equal(onnx["Score"][:, 0], scored(model, view(x, y))["Score"])


def _raw_model(task: str, booster: Any, n_features: int) -> LightGbmModel:
    return LightGbmModel(
        task=task,
        model_text=booster.model_to_string(),
        label_column_name="Label",
        feature_column_name="Features",
        label_type=TensorType(DType.BOOL),
        num_features=n_features,
        trainer_name="light_gbm_binary",
    )


def test_model_with_categorical_splits_is_refused() -> None:
    """onnxpipe's trainers never make categorical splits, and the ONNX export has none: a model
    text holding one is refused when the model is built (so also when a saved model is loaded)."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 6, 300), rng.normal(size=300)]).astype(np.float32)
    y = np.isin(x[:, 0], [1, 4]).astype(float)
    params = {"objective": "binary", "verbosity": -1, "min_data_in_leaf": 5, "min_data_per_group": 5}
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[0]), 5)
    with pytest.raises(InvalidArgumentError, match=r"LightGbmModel: .*tree \d+ has categorical splits"):
        _raw_model("binary", booster, 2)


def test_export_refuses_zero_as_missing() -> None:
    x = features(n=300, nan=0.0)
    x[::4, 2] = 0
    y = binary_labels(x)
    params = {"objective": "binary", "verbosity": -1, "min_data_in_leaf": 5, "zero_as_missing": True}
    model = _raw_model("binary", lgb.train(params, lgb.Dataset(x, y.astype(float)), 5), 4)
    with pytest.raises(ExportError, match=r"light_gbm_binary\(Label, Features\).*zero as a missing value"):
        convert_to_onnx(model, view(x, y).schema)


# --------------------------------------------------------------------------------------------
# Quality on real data


def _split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(0.7 * n)
    return order[:cut], order[cut:]


@pytest.mark.parametrize(
    "trainer",
    [LightGbmBinaryTrainer(number_of_threads=1), FastForestBinaryTrainer(number_of_threads=1)],
    ids=["light_gbm", "fast_forest"],
)
def test_quality_breast_cancer(trainer: Estimator) -> None:
    bunch = load_breast_cancer()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(bool)
    train, test = _split(len(y))
    model = trainer.fit(view(x[train], y[train]))
    out = scored(model, view(x[test], y[test]))
    assert np.mean(out["PredictedLabel"] == y[test]) > 0.93
    assert np.all((out["Probability"] > 0.5) == out["PredictedLabel"])


@pytest.mark.parametrize("as_strings", [False, True])
def test_quality_iris(as_strings: bool) -> None:
    bunch = load_iris()
    labels = bunch.target_names[bunch.target].astype(object) if as_strings else bunch.target.astype(np.int64)
    train, test = _split(len(labels))
    x = bunch.data.astype(np.float32)
    model = LightGbmMulticlassTrainer(**ONE).fit(view(x[train], labels[train]))
    out = scored(model, view(x[test], labels[test]))
    assert np.mean(out["PredictedLabel"] == labels[test]) > 0.9
    np.testing.assert_allclose(np.stack(out["Score"]).sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize(
    "trainer",
    [LightGbmRegressionTrainer(number_of_threads=1), FastForestRegressionTrainer(number_of_threads=1)],
    ids=["light_gbm", "fast_forest"],
)
def test_quality_diabetes(trainer: Estimator) -> None:
    bunch = load_diabetes()
    x, y = bunch.data, bunch.target.astype(np.float32)
    train, test = _split(len(y))
    model = trainer.fit(view(x[train], y[train]))
    pred = scored(model, view(x[test], y[test]))["Score"]
    r2 = 1 - np.sum((y[test] - pred) ** 2) / np.sum((y[test] - y[test].mean()) ** 2)
    assert r2 > 0.3


@dataclass
class BreastCancerRow:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]


@pytest.mark.parametrize(
    "trainer",
    [LightGbmBinaryTrainer(number_of_threads=1), FastForestBinaryTrainer(number_of_threads=1)],
    ids=["light_gbm", "fast_forest"],
)
def test_mlnet_breast_cancer(mlnet_data: Path, trainer: Estimator) -> None:
    data = ctx.data.load_from_text_file(mlnet_data / "breast-cancer.txt", BreastCancerRow)
    assert np.isnan(data.column("Features")).sum() == 16  # the '?' cells
    split = ctx.data.train_test_split(data, test_fraction=0.3, seed=0)
    model = trainer.fit(split.train_set)
    out = scored(model, split.test_set)
    assert np.mean(out["PredictedLabel"] == (split.test_set.column("Label") == 1)) > 0.94
    onnx = ort_run(model, split.test_set)
    np.testing.assert_array_equal(onnx["Score"][:, 0], out["Score"])
    np.testing.assert_array_equal(onnx["PredictedLabel"][:, 0], out["PredictedLabel"])


# --------------------------------------------------------------------------------------------
# Frozen, comparable, picklable, reproducible, thread-safe


def test_trainer_is_an_immutable_spec() -> None:
    trainer = LightGbmBinaryTrainer(number_of_leaves=8)
    assert trainer.number_of_leaves == 8 and trainer.learning_rate is None and trainer.sigmoid == 0.5
    with pytest.raises(AttributeError, match="immutable"):
        trainer.number_of_leaves = 9  # type: ignore[misc]
    assert trainer == LightGbmBinaryTrainer(number_of_leaves=8)
    assert hash(trainer) == hash(LightGbmBinaryTrainer(number_of_leaves=8))
    assert trainer != LightGbmBinaryTrainer(number_of_leaves=9)
    assert trainer != LightGbmRegressionTrainer(number_of_leaves=8)
    assert "number_of_leaves=8" in repr(trainer) and repr(trainer).startswith("LightGbmBinaryTrainer(")
    assert trainer.step_name == "light_gbm_binary(Label, Features)"
    params = trainer.lightgbm_params()
    assert params["num_leaves"] == 8 and "learning_rate" not in params  # None keeps LightGBM's default
    assert params["deterministic"] is True and params["seed"] == 0 and params["num_threads"] >= 1
    forest = FastForestBinaryTrainer().lightgbm_params()
    assert forest["boosting"] == "rf" and forest["bagging_freq"] == 1 and forest["bagging_fraction"] == 0.7


def test_model_is_frozen_and_pickles() -> None:
    x = features()
    y = np.array(["x", "y", "z"], dtype=object)[class_index(x)]
    model = LightGbmMulticlassTrainer(**GBDT).fit(view(x, y))
    assert model.model_text.startswith("tree\nversion=")  # LightGBM's own text format
    with pytest.raises(AttributeError, match="immutable"):
        model.task = "binary"  # type: ignore[misc]
    assert model.classes is not None
    with pytest.raises(ValueError, match="read-only"):
        model.classes[0] = "w"
    clone = pickle.loads(pickle.dumps(model))
    assert clone == model and hash(clone) == hash(model)
    assert clone.classes is not None and not clone.classes.flags.writeable
    assert "_booster_cache" not in pickle.loads(pickle.dumps(model)).get_state()
    assert scored(clone, view(x, y))["PredictedLabel"].tolist() == scored(model, view(x, y))["PredictedLabel"].tolist()
    assert "light_gbm_multiclass(Label, Features)" in repr(model) and "classes=['x', 'y', 'z']" in repr(model)


def test_default_threads() -> None:
    x = features(n=200)
    y = binary_labels(x)
    trainer = LightGbmBinaryTrainer(number_of_iterations=5)
    assert trainer.number_of_threads is None and trainer.lightgbm_params()["num_threads"] >= 1  # all cores
    model = trainer.fit(view(x, y))
    assert model == trainer.fit(view(x, y))
    assert np.mean(scored(model, view(x, y))["PredictedLabel"] == y) > 0.8


def test_fits_are_reproducible_and_seeded() -> None:
    x = features(n=200)
    y = binary_labels(x)
    assert LightGbmBinaryTrainer(**GBDT).fit(view(x, y)) == LightGbmBinaryTrainer(**GBDT).fit(view(x, y))
    a = FastForestBinaryTrainer(seed=1, **FOREST).fit(view(x, y))
    assert a == FastForestBinaryTrainer(seed=1, **FOREST).fit(view(x, y))
    assert a != FastForestBinaryTrainer(seed=2, **FOREST).fit(view(x, y))  # other bags


def test_scoring_from_many_threads() -> None:
    x = features(n=200)
    y = binary_labels(x)
    model = LightGbmBinaryTrainer(**GBDT).fit(view(x, y))
    schema = view(x, y).schema
    expected = model.map_columns({"Features": x}, schema, len(x))["Score"]

    def one(i: int) -> float:
        return float(model.map_columns({"Features": x[i : i + 1]}, schema, 1)["Score"][0])

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(len(x))))
    np.testing.assert_array_equal(np.asarray(got, np.float32), expected)


def test_scoring_no_rows() -> None:
    x = features()
    y = np.array(["x", "y", "z"], dtype=object)[class_index(x)]
    model = LightGbmMulticlassTrainer(**GBDT).fit(view(x, y))
    out = model.map_columns({"Features": x[:0]}, view(x, y).schema, 0)
    assert len(out["Score"]) == 0 and out["PredictedLabel"].dtype == object and len(out["PredictedLabel"]) == 0
    binary = LightGbmBinaryTrainer(**GBDT).fit(view(x, binary_labels(x)))
    empty = binary.transform(view(x[:0], binary_labels(x)[:0]))
    assert empty.column("Score").shape == (0,) and empty.column("PredictedLabel").dtype == bool


# --------------------------------------------------------------------------------------------
# Errors


def test_string_features_are_rejected() -> None:
    data = ctx.data.load_from_arrow(pa.table({"Features": pa.array(["a", "b"]), "Label": pa.array([True, False])}))
    with pytest.raises(
        ColumnTypeError,
        match=r"light_gbm_binary\(Label, Features\): feature column 'Features' must "
        r"be a vector of numbers \(float32, float64, integers or bools\), got string; .*one-hot",
    ):
        LightGbmBinaryTrainer().fit(data)


def test_features_must_be_a_vector_of_known_size() -> None:
    scalar = ctx.data.load_from_arrow(pa.table({"Features": pa.array([1.0, 2.0]), "Label": pa.array([1.0, 2.0])}))
    with pytest.raises(ShapeError, match=r"must be a vector of known size, got float64; .*concatenate"):
        LightGbmRegressionTrainer().output_schema(scalar.schema)
    ragged = ctx.data.load_from_arrow(
        pa.table({"Features": pa.array([[1.0], [2.0, 3.0]]), "Label": pa.array([1.0, 2.0])})
    )
    with pytest.raises(ShapeError, match=r"got float64\[\?\]"):
        LightGbmRegressionTrainer().fit(ragged)
    texts = ctx.data.load_from_arrow(
        pa.table({"Features": pa.array([["a"], ["b"]], pa.list_(pa.string(), 1)), "Label": pa.array([1.0, 2.0])})
    )
    with pytest.raises(ColumnTypeError, match=r"got string\[1\]"):
        LightGbmRegressionTrainer().fit(texts)


def test_missing_label_column_is_named() -> None:
    x = features()
    data = ctx.data.load_from_arrow(pa.table({"Features": view(x, binary_labels(x)).to_arrow().column("Features")}))
    with pytest.raises(ColumnNotFoundError, match=r"light_gbm_binary\(Label, Features\): input column 'Label'"):
        LightGbmBinaryTrainer().fit(data)
    with pytest.raises(ColumnNotFoundError, match="'Weight'"):
        FastForestRegressionTrainer(example_weight_column_name="Weight").output_schema(view(x, x[:, 3]).schema)


def test_single_class_binary_labels() -> None:
    x = features()
    with pytest.raises(DataError, match=r"label column 'Label' has a single class \(True\) in the training data"):
        LightGbmBinaryTrainer().fit(view(x, np.ones(len(x), bool)))
    with pytest.raises(DataError, match=r"single class \(0\.0\)"):
        FastForestBinaryTrainer().fit(view(x, np.zeros(len(x), np.float32)))
    with pytest.raises(DataError, match=r"single class \('a'\).*at least two classes"):
        LightGbmMulticlassTrainer().fit(view(x, np.array(["a"] * len(x), dtype=object)))


def test_bad_labels() -> None:
    x = features()
    with pytest.raises(DataError, match=r"must hold only 0/1 or false/true .* got 2 at row 0"):
        LightGbmBinaryTrainer().fit(view(x, np.full(len(x), 2, np.int64)))
    y = regression_labels(x)
    y[3] = np.nan
    with pytest.raises(DataError, match=r"label column 'Label' is missing \(NaN\) at row 3"):
        LightGbmRegressionTrainer().fit(view(x, y))
    with pytest.raises(ColumnTypeError, match="must be bool or numbers 0/1 for binary classification, got string"):
        LightGbmBinaryTrainer().fit(view(x, np.array(["yes"] * len(x), dtype=object)))
    with pytest.raises(ColumnTypeError, match="must be numeric for regression, got bool"):
        LightGbmRegressionTrainer().fit(view(x, binary_labels(x)))
    with pytest.raises(ColumnTypeError, match=r"must be bool or numbers 0/1 .* got key<uint32,4>"):
        LightGbmBinaryTrainer().fit(key_view(x))


def test_bad_weights_and_empty_data() -> None:
    x = features()
    y = binary_labels(x)
    w = np.ones(len(x))
    w[5] = -1
    trainer = LightGbmBinaryTrainer(example_weight_column_name="Weight")
    with pytest.raises(DataError, match=r"example weight column 'Weight' must hold finite weights >= 0, got -1\.0 at"):
        trainer.fit(view(x, y, weight=w))
    with pytest.raises(DataError, match="is zero for every row"):
        trainer.fit(view(x, y, weight=np.zeros(len(x))))
    with pytest.raises(DataError, match="the training data has no rows"):
        LightGbmBinaryTrainer().fit(view(x[:0], y[:0]))


def test_scoring_other_features_is_rejected() -> None:
    x = features()
    model = LightGbmRegressionTrainer(**GBDT).fit(view(x, regression_labels(x)))
    with pytest.raises(ShapeError, match="has 3 values per row, but the model was trained on 4"):
        model.transform(view(x[:, :3], regression_labels(x)))
    assert model.output_schema(view(x.astype(np.float64), regression_labels(x)).schema)["Score"].type == TensorType(
        DType.FLOAT32
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: LightGbmBinaryTrainer(number_of_leaves=1),
            r"number_of_leaves must be an integer >= 2 or None \(LightGBM's default\), got 1$",
        ),
        (
            lambda: LightGbmBinaryTrainer(learning_rate=0),
            r"learning_rate must be a finite number > 0 or None .*, got 0$",
        ),
        (
            lambda: LightGbmRegressionTrainer(number_of_iterations=0),
            "number_of_iterations must be a positive integer, got 0",
        ),
        (
            lambda: LightGbmRegressionTrainer(number_of_iterations=True),
            "number_of_iterations must be a positive integer",
        ),
        (lambda: LightGbmMulticlassTrainer(feature_fraction=1.5), r"feature_fraction must be a number in \(0, 1\]"),
        (
            lambda: LightGbmMulticlassTrainer(l2_regularization=-1),
            r"l2_regularization must be a finite number >= 0, got -1",
        ),
        (lambda: LightGbmBinaryTrainer(sigmoid=float("nan")), "sigmoid must be a finite number > 0, got nan"),
        (lambda: LightGbmBinaryTrainer(label_column_name=""), "label_column_name must be a non-empty column name"),
        (
            lambda: FastForestBinaryTrainer(number_of_threads=0),
            r"fast_forest_binary: number_of_threads must be a number of threads from 1 to 256 or None",
        ),
        (
            lambda: FastForestRegressionTrainer(bagging_example_fraction=1.0, feature_fraction=1.0),
            r"fast_forest_regression: a random forest needs bagging .* or feature_fraction < 1",
        ),
    ],
)
def test_invalid_options(make: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        make()


def test_missing_lightgbm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    x = features()
    trainer = LightGbmBinaryTrainer(**GBDT)
    model = trainer.fit(view(x, binary_labels(x)))
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'onnxpipe\[lightgbm\]'"):
        trainer.fit(view(x, binary_labels(x)))
    with pytest.raises(MissingDependencyError, match="lightgbm"):
        pickle.loads(pickle.dumps(model)).transform(view(x, binary_labels(x))).column("Score")
