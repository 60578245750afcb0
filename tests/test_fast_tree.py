"""FastTree trainers on LightGBM: conformance, the same trees as ``lightgbm.train``, FastTree's
calibration and Tweedie output, exact ONNX export, ML.NET's baselines and quality on its data sets,
options and errors."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pyarrow as pa
import pytest

import onnxpipe as op
from onnxpipe import LoadColumn
from onnxpipe.core import Estimator
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError
from onnxpipe.export import convert_to_onnx
from onnxpipe.testing import check_component
from onnxpipe.trainers.fast_tree import FastTreeBinaryTrainer, FastTreeRegressionTrainer, FastTreeTweedieTrainer
from onnxpipe.trainers.trees import LightGbmModel

lgb = pytest.importorskip("lightgbm")  # the optional extra onnxpipe[lightgbm]

ctx = op.MLContext(seed=0)

# Small models on one thread (OpenMP's spinning teams are slow on small data on shared cores).
SMALL: dict[str, Any] = {
    "number_of_trees": 12,
    "number_of_leaves": 6,
    "minimum_example_count_per_leaf": 5,
    "number_of_threads": 1,
}
# ML.NET's FastTree baselines: tr=FastTree{nl=5 mil=5 lr=0.25 iter=20 mb=255}.
BASELINE: dict[str, Any] = {
    "number_of_leaves": 5,
    "minimum_example_count_per_leaf": 5,
    "learning_rate": 0.25,
    "number_of_trees": 20,
    "maximum_bin_count_per_feature": 255,
    "number_of_threads": 1,
}


def view(x: np.ndarray, label: np.ndarray, *, weight: np.ndarray | None = None) -> op.DataView:
    columns: dict[str, pa.Array] = {
        "Features": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]),
        "Label": pa.array(label),
    }
    if weight is not None:
        columns["Weight"] = pa.array(weight)
    return ctx.data.load_from_arrow(pa.table(columns))


def features(n: int = 90, f: int = 4, seed: int = 0, dtype: type = np.float32, nan: float = 0.1) -> np.ndarray:
    """Centred features with NaN in the first two columns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[:, :2][rng.random((n, 2)) < nan] = np.nan
    return x.astype(dtype)


def binary_labels(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) + 0.5 * x[:, 2] > 0)


def regression_labels(x: np.ndarray) -> np.ndarray:
    return np.asarray(2 * np.nan_to_num(x[:, 0]) - x[:, 2] + 0.1 * x[:, 3], dtype=np.float32)


def tweedie_labels(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Compound Poisson-gamma labels (many exact zeros) with mean ``exp(0.8 x0 - 0.5 x2)``."""
    rng = np.random.default_rng(seed)
    mean = np.exp(0.8 * np.nan_to_num(x[:, 0]) - 0.5 * x[:, 2])
    counts = rng.poisson(mean)
    return np.array([rng.gamma(2.0, 0.5, size=c).sum() for c in counts], dtype=np.float32)


def scored(model: Any, data: op.DataView) -> dict[str, Any]:
    out = model.transform(data)
    return {n: out.column(n) for n in out.schema.names}


def ort_run(model: Any, data: op.DataView) -> tuple[dict[str, np.ndarray], list[str]]:
    """The export of ``model`` run by ONNX Runtime on ``data``'s features, and the graph's op types."""
    outputs = [n for n in model.output_schema(data.schema).names if n not in data.schema]
    proto = convert_to_onnx(model, data.schema, output_columns=outputs)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(data.column(i.name)) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True)), [n.op_type for n in proto.graph.node]


# --------------------------------------------------------------------------------------------
# The conformance suite


def _conformance_cases() -> list[Any]:
    x32, x64 = features(), features(dtype=np.float64)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(x32))
    return [
        pytest.param(FastTreeBinaryTrainer(**SMALL), view(x32, binary_labels(x32)), id="binary-bool-f32"),
        pytest.param(
            FastTreeBinaryTrainer(learning_rate=0.25, **SMALL),
            view(x64, binary_labels(x64).astype(np.float32)),
            id="binary-01-f64",
        ),
        pytest.param(
            FastTreeBinaryTrainer(example_weight_column_name="Weight", unbalanced_sets=True, **SMALL),
            view(x32, binary_labels(x32), weight=w),
            id="binary-weighted-unbalanced",
        ),
        pytest.param(FastTreeRegressionTrainer(**SMALL), view(x32, regression_labels(x32)), id="regression-f32"),
        pytest.param(FastTreeRegressionTrainer(**SMALL), view(x64, regression_labels(x64)), id="regression-f64"),
        pytest.param(FastTreeTweedieTrainer(**SMALL), view(x32, tweedie_labels(x32)), id="tweedie-f32"),
        pytest.param(FastTreeTweedieTrainer(index=1.0, **SMALL), view(x64, tweedie_labels(x64)), id="tweedie-poisson"),
        pytest.param(
            FastTreeTweedieTrainer(index=2.0, **SMALL), view(x32, tweedie_labels(x32) + 0.1), id="tweedie-gamma"
        ),
    ]


@pytest.mark.parametrize(("trainer", "data"), _conformance_cases())
def test_trainers_conform(trainer: Estimator, data: op.DataView) -> None:
    model = check_component(trainer, data, exportable=True)
    assert isinstance(model, LightGbmModel)
    assert model.number_of_trees == 12
    assert model.step_name == trainer.step_name


# --------------------------------------------------------------------------------------------
# The trees are LightGBM's own: same model text, same predictions


def _direct(trainer: Any, x: np.ndarray, y: np.ndarray) -> Any:
    return lgb.train(trainer.lightgbm_params(), lgb.Dataset(x, label=y), num_boost_round=trainer.number_of_trees)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_trees_equal_lightgbm(dtype: type) -> None:
    x = features(n=300, dtype=dtype)
    y = binary_labels(x)
    trainer = FastTreeBinaryTrainer(**BASELINE)
    model = trainer.fit(view(x, y))
    booster = _direct(trainer, x, y.astype(np.float64))
    assert booster.model_to_string(num_iteration=-1) == model.model_text
    out = scored(model, view(x, y))
    raw = booster.predict(x, raw_score=True)
    np.testing.assert_allclose(out["Score"], raw, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(out["Probability"], booster.predict(x), rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(out["PredictedLabel"], raw > 0)
    # FastTree's Platt calibrator: slope -2 * learning rate, offset 0.
    expected = 1 / (1 + np.exp(-2 * 0.25 * out["Score"].astype(np.float64)))
    np.testing.assert_array_equal(out["Probability"], expected.astype(np.float32))
    assert "sigmoid:0.5" in model.model_text


@pytest.mark.parametrize(
    "trainer",
    [
        FastTreeRegressionTrainer(**SMALL),
        FastTreeTweedieTrainer(**SMALL),
        FastTreeTweedieTrainer(index=1.0, **SMALL),
        FastTreeTweedieTrainer(index=2.0, **SMALL),
    ],
    ids=["regression", "tweedie", "tweedie-poisson", "tweedie-gamma"],
)
def test_regression_trees_equal_lightgbm(trainer: Any) -> None:
    x = features(n=300)
    y = regression_labels(x) if isinstance(trainer, FastTreeRegressionTrainer) else tweedie_labels(x) + 0.05
    model = trainer.fit(view(x, y))
    booster = _direct(trainer, x, y.astype(np.float64))
    assert booster.model_to_string(num_iteration=-1) == model.model_text
    score = scored(model, view(x, y))["Score"]
    # LightGBM's predict; for Tweedie that is exp of the trees' sum, as ML.NET's FastTreeTweedie scores.
    np.testing.assert_allclose(score, booster.predict(x), rtol=1e-6, atol=1e-12)
    if isinstance(trainer, FastTreeTweedieTrainer):
        np.testing.assert_allclose(score, np.exp(booster.predict(x, raw_score=True)), rtol=1e-6)
        objective = "tweedie" if trainer.index < 2 else "gamma"
        assert f"\nobjective={objective}" in model.model_text


def test_lightgbm_parameters_are_fasttrees() -> None:
    binary = FastTreeBinaryTrainer(learning_rate=0.25, unbalanced_sets=True).lightgbm_params()
    assert binary["objective"] == "binary" and binary["boosting"] == "gbdt"
    assert binary["sigmoid"] == 0.5 and binary["is_unbalance"] is True
    assert binary["max_delta_step"] == 400  # FastTree's MaximumTreeOutput 100, after shrinkage
    assert binary["boost_from_average"] is False  # FastTree starts every score at 0
    assert binary["lambda_l1"] == binary["lambda_l2"] == binary["min_sum_hessian_in_leaf"] == 0
    assert (binary["num_leaves"], binary["min_data_in_leaf"], binary["max_bin"]) == (20, 10, 255)
    assert binary["seed"] == 123  # FastTree's default seed
    assert binary["bagging_freq"] == 0 and binary["feature_fraction"] == 1
    regression = FastTreeRegressionTrainer(seed=7, bagging_size=2, bagging_example_fraction=0.5).lightgbm_params()
    assert regression["objective"] == "regression" and regression["max_delta_step"] == 0  # no clamp
    assert (regression["seed"], regression["bagging_freq"], regression["bagging_fraction"]) == (7, 2, 0.5)
    tweedie = FastTreeTweedieTrainer(index=1.2).lightgbm_params()
    assert (tweedie["objective"], tweedie["tweedie_variance_power"], tweedie["max_delta_step"]) == ("tweedie", 1.2, 500)
    assert FastTreeTweedieTrainer(index=2).lightgbm_params()["objective"] == "gamma"


# --------------------------------------------------------------------------------------------
# ONNX export: the same values as transform, bit for bit


def test_tweedie_onnx_parity() -> None:
    x = features(n=400, nan=0.2)
    y = tweedie_labels(x)
    model = FastTreeTweedieTrainer(number_of_trees=40, number_of_threads=1).fit(view(x, y))
    probes = np.concatenate([x, 4 * features(n=200, seed=3, nan=0.3)])  # far out: large and tiny scores
    data = view(probes, np.resize(y, len(probes)))
    ours = scored(model, data)["Score"]
    onnx, ops = ort_run(model, data)
    assert "Exp" in ops
    np.testing.assert_array_equal(onnx["Score"][:, 0], ours)
    assert ours.dtype == np.float32 and (ours > 0).all() and ours.max() / ours.min() > 100


def test_binary_and_regression_onnx_parity() -> None:
    x = features(n=400, nan=0.2)
    data_b, data_r = view(x, binary_labels(x)), view(x, regression_labels(x))
    for model, data in (
        (FastTreeBinaryTrainer(number_of_threads=1).fit(data_b), data_b),
        (FastTreeRegressionTrainer(number_of_threads=1).fit(data_r), data_r),
    ):
        ours = scored(model, data)
        onnx, _ = ort_run(model, data)
        for name in [n for n in onnx if n != "Features"]:
            np.testing.assert_array_equal(onnx[name][:, 0], ours[name])


# --------------------------------------------------------------------------------------------
# ML.NET's baselines and data sets


@dataclass
class BreastCancerRow:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]


def test_mlnet_breast_cancer_baseline(mlnet_data: Path) -> None:
    """ML.NET's ``FastTree-TrainTest-breast-cancer`` (train == test): AUC 0.995370, accuracy
    0.979971, log-loss 0.092572. LightGBM's gbdt grows different trees than FastTree's managed
    MART (second-order split gain, its own bins, NaN rows kept), and fits this data a little
    better: AUC 0.998727, accuracy 0.985694, log-loss 0.072639."""
    data = ctx.data.load_from_text_file(mlnet_data / "breast-cancer.txt", BreastCancerRow)
    assert np.isnan(data.column("Features")).sum() == 16  # the '?' cells
    model = ctx.binary_classification.trainers.fast_tree(**BASELINE).fit(data)
    metrics = ctx.binary_classification.evaluate(model.transform(data))
    assert metrics.area_under_roc_curve == pytest.approx(0.995370, abs=0.005)
    assert metrics.accuracy == pytest.approx(0.979971, abs=0.01)
    assert metrics.log_loss == pytest.approx(0.092572, abs=0.025)
    onnx, _ = ort_run(model, data)
    np.testing.assert_array_equal(onnx["Probability"][:, 0], model.transform(data).column("Probability"))


@dataclass
class AdultRow:
    Label: Annotated[float, LoadColumn(0)]
    Cat: Annotated[list[str], LoadColumn(1, 8)]
    Num: Annotated[npt.NDArray[np.float32], LoadColumn(9, 14)]


def test_mlnet_adult_census(mlnet_data: Path) -> None:
    """ML.NET's ``FastTree-TrainTest-Census.Cat`` (one-hot categories, train == test): AUC 0.958893,
    accuracy 0.908000. Here AUC 0.9545 and accuracy 0.884: different trees (see the module docstring)."""
    data = ctx.data.load_from_text_file(mlnet_data / "adult.tiny.with-schema.txt", AdultRow, has_header=True)
    t = ctx.transforms
    pipeline = (
        t.categorical.one_hot_encoding("Cat")
        .append(t.concatenate("Features", "Num", "Cat"))
        .append(ctx.binary_classification.trainers.fast_tree(**BASELINE))
    )
    model = pipeline.fit(data)
    metrics = ctx.binary_classification.evaluate(model.transform(data))
    assert metrics.area_under_roc_curve == pytest.approx(0.958893, abs=0.01)
    assert metrics.accuracy == pytest.approx(0.908, abs=0.03)


@dataclass
class HouseRow:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 13)]


@dataclass
class GeneratedRow:
    Label: Annotated[float, LoadColumn(11)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(0, 10)]


@pytest.mark.parametrize(
    ("file", "row", "separator", "test_r2"),
    [("housing.txt", HouseRow, "\t", 0.8), ("generated_regression_dataset.csv", GeneratedRow, ";", 0.9)],
    ids=["housing", "generated"],
)
def test_mlnet_regression_data(mlnet_data: Path, file: str, row: type, separator: str, test_r2: float) -> None:
    """ML.NET has no FastTree regression baseline (its tests are skipped, "Need CoreTLC specific
    baseline update"), so these are sanity bounds, with ML.NET's learner options: R² on a 30% test
    split is 0.866 (housing) and 0.931 (generated) here; on the training data 0.934 and 0.969."""
    data = ctx.data.load_from_text_file(mlnet_data / file, row, has_header=True, separator=separator)
    trainer = ctx.regression.trainers.fast_tree(**BASELINE)
    split = ctx.data.train_test_split(data, test_fraction=0.3, seed=0)
    model = trainer.fit(split.train_set)
    assert ctx.regression.evaluate(model.transform(split.test_set)).r_squared > test_r2
    assert ctx.regression.evaluate(trainer.fit(data).transform(data)).r_squared > 0.92
    onnx, _ = ort_run(model, split.test_set)
    np.testing.assert_array_equal(onnx["Score"][:, 0], model.transform(split.test_set).column("Score"))


def _tweedie_deviance(y: np.ndarray, mu: np.ndarray, p: float) -> float:
    y, mu = y.astype(np.float64), mu.astype(np.float64)
    d = y ** (2 - p) / ((1 - p) * (2 - p)) - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p)
    return float(2 * d.mean())


def test_tweedie_quality() -> None:
    x = features(n=3000, nan=0.05, seed=4)
    y = tweedie_labels(x, seed=5)
    assert (y == 0).mean() > 0.2  # many exact zeros: least squares is the wrong model here
    train, test = slice(0, 2000), slice(2000, None)
    # ML.NET's Tweedie learner options: FastTreeTweedieRegression{nl=5 mil=5 lr=0.25 iter=10 mb=255 index=1.5}.
    trainer = ctx.regression.trainers.fast_tree_tweedie(**{**BASELINE, "number_of_trees": 10}, index=1.5)
    model = trainer.fit(view(x[train], y[train]))
    mu = scored(model, view(x[test], y[test]))["Score"]
    assert (mu > 0).all()
    constant = _tweedie_deviance(y[test], np.full(len(mu), y[train].mean()), 1.5)
    assert _tweedie_deviance(y[test], mu, 1.5) < 0.75 * constant  # 1.92 against 2.84 (the truth: 1.82)
    # The trees learned the log of the mean: exp(0.8 x0 - 0.5 x2).
    truth = np.exp(0.8 * np.nan_to_num(x[test, 0]) - 0.5 * x[test, 2])
    assert np.corrcoef(np.log(mu), np.log(truth))[0, 1] > 0.95  # 0.969


# --------------------------------------------------------------------------------------------
# Options, catalogs, errors


def test_catalog_signature_is_mlnets() -> None:
    for build in (ctx.binary_classification.trainers.fast_tree, ctx.regression.trainers.fast_tree):
        parameters = inspect.signature(build).parameters
        positional = [n for n, p in parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert positional == [
            "label_column_name",
            "feature_column_name",
            "example_weight_column_name",
            "number_of_leaves",
            "number_of_trees",
            "minimum_example_count_per_leaf",
            "learning_rate",
        ]
        defaults = {n: p.default for n, p in parameters.items()}
        assert defaults["number_of_leaves"] == 20 and defaults["number_of_trees"] == 100
        assert defaults["minimum_example_count_per_leaf"] == 10 and defaults["learning_rate"] == 0.2
        assert defaults["maximum_bin_count_per_feature"] == 255 and defaults["bagging_size"] == 0
        assert defaults["bagging_example_fraction"] == 0.7 and defaults["feature_fraction"] == 1
    assert inspect.signature(FastTreeBinaryTrainer).parameters["unbalanced_sets"].default is False
    assert inspect.signature(FastTreeTweedieTrainer).parameters["index"].default == 1.5
    trainer = FastTreeBinaryTrainer("y", "x", "w", 5, 20, 5, 0.25)
    assert (trainer.label_column_name, trainer.example_weight_column_name, trainer.number_of_trees) == ("y", "w", 20)
    assert op.MLContext(seed=9).binary_classification.trainers.fast_tree().seed == 9  # the context's seed
    assert op.MLContext().regression.trainers.fast_tree_tweedie().lightgbm_params()["seed"] == 123


def test_names_and_equality() -> None:
    trainer = FastTreeTweedieTrainer(number_of_leaves=8)
    assert trainer.step_name == "fast_tree_tweedie(Label, Features)"
    assert FastTreeBinaryTrainer().step_name == "fast_tree_binary(Label, Features)"
    assert FastTreeRegressionTrainer().step_name == "fast_tree_regression(Label, Features)"
    assert trainer == FastTreeTweedieTrainer(number_of_leaves=8) != FastTreeTweedieTrainer(number_of_leaves=9)
    assert hash(trainer) == hash(FastTreeTweedieTrainer(number_of_leaves=8))
    assert FastTreeRegressionTrainer() != FastTreeTweedieTrainer()
    assert repr(trainer).startswith("FastTreeTweedieTrainer(") and "index=1.5" in repr(trainer)
    with pytest.raises(AttributeError, match="immutable"):
        trainer.index = 2.0
    assert trainer.with_parameters(index=1.1).index == 1.1


@pytest.mark.parametrize("option", ["dropout_rate", "best_step_ranking_regression_trees", "enable_pruning"])
def test_fasttree_only_options_are_not_offered(option: str) -> None:
    with pytest.raises(TypeError, match=option):
        options: dict[str, Any] = {option: True}
        FastTreeBinaryTrainer(**options)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FastTreeTweedieTrainer(index=0.5), r"index must be a number in \[1, 2\], got 0.5"),
        (lambda: FastTreeTweedieTrainer(index=2.5), r"index must be a number in \[1, 2\]"),
        (lambda: FastTreeBinaryTrainer(learning_rate=0), "learning_rate must be a finite number > 0"),
        (lambda: FastTreeRegressionTrainer(number_of_trees=0), "number_of_trees must be"),
        (lambda: FastTreeRegressionTrainer(number_of_leaves=1), "number_of_leaves must be"),
        (lambda: FastTreeRegressionTrainer(bagging_example_fraction=0.0), r"bagging_example_fraction must be"),
        (lambda: FastTreeRegressionTrainer(feature_fraction=1.5), r"feature_fraction must be a number in \(0, 1\]"),
        (lambda: FastTreeBinaryTrainer(unbalanced_sets=1), "unbalanced_sets must be True or False"),  # type: ignore[arg-type]
        (lambda: FastTreeBinaryTrainer(seed=-1), "seed must be"),
    ],
)
def test_invalid_options(make: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        make()


def test_label_errors() -> None:
    x = features()
    y = tweedie_labels(x)
    with pytest.raises(DataError, match=r"fast_tree_tweedie\(Label, Features\): label column 'Label' is negative"):
        FastTreeTweedieTrainer(**SMALL).fit(view(x, np.where(np.arange(len(y)) == 7, -1.0, y)))
    with pytest.raises(DataError, match="is 0 in every row"):
        FastTreeTweedieTrainer(**SMALL).fit(view(x, np.zeros(len(y))))
    with pytest.raises(DataError, match="must hold only 0/1 or false/true"):
        FastTreeBinaryTrainer(**SMALL).fit(view(x, np.arange(len(y)) % 3))
    with pytest.raises(ColumnTypeError, match="must be numeric for regression"):
        FastTreeRegressionTrainer(**SMALL).fit(view(x, np.array(["a"] * len(y), dtype=object)))


def test_unbalanced_sets_weighs_the_classes() -> None:
    x = features(n=400, nan=0.0)
    y = np.nan_to_num(x[:, 0]) + 0.3 * x[:, 1] > 1.0  # about 1 in 6 positive
    plain = FastTreeBinaryTrainer(**SMALL).fit(view(x, y))
    balanced = FastTreeBinaryTrainer(unbalanced_sets=True, **SMALL).fit(view(x, y))
    # Positives weigh more: more rows are predicted positive.
    assert scored(balanced, view(x, y))["PredictedLabel"].sum() > scored(plain, view(x, y))["PredictedLabel"].sum()


def test_bagging_is_seeded() -> None:
    x = features(n=300)
    data = view(x, regression_labels(x))
    bagged = FastTreeRegressionTrainer(bagging_size=1, bagging_example_fraction=0.5, **SMALL)
    assert bagged.fit(data).model_text == bagged.fit(data).model_text
    assert bagged.fit(data).model_text != bagged.with_parameters(seed=5).fit(data).model_text
    assert bagged.fit(data).model_text != FastTreeRegressionTrainer(**SMALL).fit(data).model_text
