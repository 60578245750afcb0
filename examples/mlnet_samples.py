"""ML.NET's canonical samples, ported as an ML.NET user writes them, with ML.NET's published metrics.

Each sample loads one of ML.NET's own test data sets, builds the pipeline with ML.NET's steps and
options (key idiom included: ``map_value_to_key("Label")`` ... ``map_key_to_value("PredictedLabel")``),
evaluates it on the training data as ML.NET's baseline runs do, converts it to ONNX and checks that
bare ONNX Runtime gives the same outputs. ``SAMPLES`` lists them with ML.NET's figure for the same
data and options (from dotnet/machinelearning ``test/BaselineOutput``; see the README);
``tests/test_mlnet_samples.py`` runs every one and checks the tolerance.

Run:  python examples/mlnet_samples.py [DATA_FOLDER]   (default: ../shared/data/mlnet)
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

import onnxpipe as op
from onnxpipe import LoadColumn

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mlnet"


# ------------------------------------------------------------------------------ data classes


@dataclasses.dataclass
class IrisData:
    Label: Annotated[float, LoadColumn(0)]
    SepalLength: Annotated[float, LoadColumn(1)]
    SepalWidth: Annotated[float, LoadColumn(2)]
    PetalLength: Annotated[float, LoadColumn(3)]
    PetalWidth: Annotated[float, LoadColumn(4)]


@dataclasses.dataclass
class BreastCancerData:
    Label: Annotated[bool, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]


@dataclasses.dataclass
class HousingData:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 13)]


@dataclasses.dataclass
class GeneratedRegressionData:
    Label: Annotated[float, LoadColumn(11)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(0, 10)]


@dataclasses.dataclass
class AdultData:
    Label: Annotated[bool, LoadColumn(0)]
    Categories: Annotated[npt.NDArray[np.str_], LoadColumn(1, 8)]
    NumericFeatures: Annotated[npt.NDArray[np.float32], LoadColumn(9, 14)]


IRIS_FEATURES = ("SepalLength", "SepalWidth", "PetalLength", "PetalWidth")


def _iris(ctx: op.MLContext, folder: Path) -> op.DataView:
    return ctx.data.load_from_text_file(folder / "iris.txt", IrisData, has_header=True)


def _breast_cancer(ctx: op.MLContext, folder: Path) -> op.DataView:
    return ctx.data.load_from_text_file(folder / "breast-cancer.txt", BreastCancerData)


# ------------------------------------------------------------------------------ the samples


@dataclasses.dataclass
class SampleResult:
    name: str
    metrics: Any
    onnx_max_difference: float  # the largest |ONNX Runtime - transform| over the numeric outputs


def iris_sdca_maximum_entropy(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """IrisPlantClassificationTests: Concatenate -> NormalizeMinMax -> MapValueToKey -> SdcaMaximumEntropy."""
    data = _iris(ctx, folder)
    pipeline = (
        ctx.transforms.concatenate("Features", *IRIS_FEATURES)
        .append(ctx.transforms.normalize_min_max("Features"))
        .append(ctx.transforms.conversion.map_value_to_key("Label"))
        .append(ctx.multiclass_classification.trainers.sdca_maximum_entropy(number_of_threads=1))
        .append(ctx.transforms.conversion.map_key_to_value("PredictedLabel"))
    )
    model = pipeline.fit(data)
    scored = model.transform(data)
    return model, data, ctx.multiclass_classification.evaluate(scored, top_k_prediction_count=3)


def iris_lbfgs_maximum_entropy(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml MulticlassLogisticRegression{l1=0.001 l2=0.1 ot=1e-3 nt=1} norm=No xf=Term{col=Label}."""
    data = _iris(ctx, folder)
    pipeline = (
        ctx.transforms.conversion.map_value_to_key("Label")
        .append(ctx.transforms.concatenate("Features", *IRIS_FEATURES))
        .append(
            ctx.multiclass_classification.trainers.lbfgs_maximum_entropy(
                l1_regularization=0.001, l2_regularization=0.1, optimization_tolerance=1e-3
            )
        )
        .append(ctx.transforms.conversion.map_key_to_value("PredictedLabel"))
    )
    model = pipeline.fit(data)
    return model, data, ctx.multiclass_classification.evaluate(model.transform(data))


def iris_one_versus_all_averaged_perceptron(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml OVA{p=AvgPer{lr=0.8}} norm=No xf=Term{col=Label}."""
    data = _iris(ctx, folder)
    binary = ctx.binary_classification.trainers.averaged_perceptron(learning_rate=0.8)
    pipeline = (
        ctx.transforms.conversion.map_value_to_key("Label")
        .append(ctx.transforms.concatenate("Features", *IRIS_FEATURES))
        .append(ctx.multiclass_classification.trainers.one_versus_all(binary))
        .append(ctx.transforms.conversion.map_key_to_value("PredictedLabel"))
    )
    model = pipeline.fit(data)
    return model, data, ctx.multiclass_classification.evaluate(model.transform(data))


def iris_light_gbm(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml LightGBMMC{nt=1 iter=10 v=- lr=0.2 mil=10 nl=20} xf=Term{col=Label}."""
    data = _iris(ctx, folder)
    pipeline = (
        ctx.transforms.conversion.map_value_to_key("Label")
        .append(ctx.transforms.concatenate("Features", *IRIS_FEATURES))
        .append(
            ctx.multiclass_classification.trainers.light_gbm(
                number_of_iterations=10,
                learning_rate=0.2,
                minimum_example_count_per_leaf=10,
                number_of_leaves=20,
                number_of_threads=1,
            )
        )
        .append(ctx.transforms.conversion.map_key_to_value("PredictedLabel"))
    )
    model = pipeline.fit(data)
    return model, data, ctx.multiclass_classification.evaluate(model.transform(data))


def breast_cancer_sdca(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml SDCA{maxIterations=5 checkFreq=9 nt=1} (with its automatic MinMax normalization)."""
    data = _breast_cancer(ctx, folder)
    pipeline = ctx.transforms.normalize_min_max("Features").append(
        ctx.binary_classification.trainers.sdca_logistic_regression(
            maximum_number_of_iterations=5, convergence_check_frequency=9, number_of_threads=1
        )
    )
    model = pipeline.fit(data)
    return model, data, ctx.binary_classification.evaluate(model.transform(data))


def breast_cancer_fast_tree(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml FastTreeBinaryClassification{nl=5 mil=5 lr=0.25 iter=20 mb=255}."""
    data = _breast_cancer(ctx, folder)
    trainer = ctx.binary_classification.trainers.fast_tree(
        number_of_leaves=5, minimum_example_count_per_leaf=5, learning_rate=0.25, number_of_trees=20
    )
    model = trainer.fit(data)
    return model, data, ctx.binary_classification.evaluate(model.transform(data))


def housing_fast_forest(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml FastForestRegression{nl=5 mil=5 iter=20} on housing.txt."""
    data = ctx.data.load_from_text_file(folder / "housing.txt", HousingData, has_header=True)
    trainer = ctx.regression.trainers.fast_forest(
        number_of_leaves=5, minimum_example_count_per_leaf=5, number_of_trees=20
    )
    model = trainer.fit(data)
    return model, data, ctx.regression.evaluate(model.transform(data))


def _generated(ctx: op.MLContext, folder: Path) -> op.DataView:
    return ctx.data.load_from_text_file(
        folder / "generated_regression_dataset.csv", GeneratedRegressionData, separator=";", has_header=True
    )


def generated_light_gbm(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml LightGBMR{nt=1 iter=50 booster=gbdt{l1=0.2 l2=0.2} lr=0.2 mil=10 nl=20}."""
    data = _generated(ctx, folder)
    trainer = ctx.regression.trainers.light_gbm(
        number_of_iterations=50,
        l1_regularization=0.2,
        l2_regularization=0.2,
        learning_rate=0.2,
        minimum_example_count_per_leaf=10,
        number_of_leaves=20,
        number_of_threads=1,
    )
    model = trainer.fit(data)
    return model, data, ctx.regression.evaluate(model.transform(data))


def generated_ols(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml OLS norm=No."""
    data = _generated(ctx, folder)
    model = ctx.regression.trainers.ols().fit(data)
    return model, data, ctx.regression.evaluate(model.transform(data))


def generated_sdca(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """Regression.Trainers.Sdca after NormalizeMinMax (ML.NET publishes no metric for it)."""
    data = _generated(ctx, folder)
    pipeline = ctx.transforms.normalize_min_max("Features").append(ctx.regression.trainers.sdca())
    model = pipeline.fit(data)
    return model, data, ctx.regression.evaluate(model.transform(data))


def generated_fast_tree(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """FastTreeRegression{nl=5 mil=5 lr=0.25 iter=20 mb=255} (ML.NET publishes no metric for it)."""
    data = _generated(ctx, folder)
    trainer = ctx.regression.trainers.fast_tree(
        number_of_leaves=5, minimum_example_count_per_leaf=5, learning_rate=0.25, number_of_trees=20
    )
    model = trainer.fit(data)
    return model, data, ctx.regression.evaluate(model.transform(data))


def adult_fast_tree(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """maml FastTree on Census: xf=Cat{col=Cat} xf=Concat{col=Features:Num,Cat}, nl=5 mil=5 lr=0.25 iter=20."""
    data = ctx.data.load_from_text_file(folder / "adult.tiny.with-schema.txt", AdultData, has_header=True)
    pipeline = (
        ctx.transforms.categorical.one_hot_encoding("Categories")
        .append(ctx.transforms.concatenate("Features", "NumericFeatures", "Categories"))
        .append(
            ctx.binary_classification.trainers.fast_tree(
                number_of_leaves=5, minimum_example_count_per_leaf=5, learning_rate=0.25, number_of_trees=20
            )
        )
    )
    model = pipeline.fit(data)
    return model, data, ctx.binary_classification.evaluate(model.transform(data))


def iris_kmeans(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    """Evaluation.cs TrainAndEvaluateClustering: Concatenate -> KMeans (3 clusters) on iris."""
    data = _iris(ctx, folder)
    pipeline = ctx.transforms.concatenate("Features", *IRIS_FEATURES).append(
        ctx.clustering.trainers.kmeans(number_of_clusters=3)
    )
    model = pipeline.fit(data)
    return model, data, ctx.clustering.evaluate(model.transform(data), label_column_name="Label")


SampleFn = Callable[[op.MLContext, Path], tuple[op.Transformer, op.DataView, Any]]

# name -> (sample, metric, ML.NET's value for the same data and options, tolerance); a None value
# marks a sample ML.NET publishes no figure for (the bound is then a sanity floor).
SAMPLES: dict[str, tuple[SampleFn, str, float | None, float]] = {
    "iris_sdca_maximum_entropy": (iris_sdca_maximum_entropy, "macro_accuracy", 0.98, 0.01),
    "iris_lbfgs_maximum_entropy": (iris_lbfgs_maximum_entropy, "micro_accuracy", 0.98, 0.01),
    "iris_one_versus_all_averaged_perceptron": (iris_one_versus_all_averaged_perceptron, "micro_accuracy", 0.96, 0.03),
    "iris_light_gbm": (iris_light_gbm, "micro_accuracy", 0.98, 0.02),
    "breast_cancer_sdca": (breast_cancer_sdca, "area_under_roc_curve", 0.995458, 0.005),
    "breast_cancer_fast_tree": (breast_cancer_fast_tree, "area_under_roc_curve", 0.995370, 0.005),
    "housing_fast_forest": (housing_fast_forest, "r_squared", 0.789801, 0.05),
    "generated_light_gbm": (generated_light_gbm, "r_squared", 0.998571, 0.002),
    "generated_ols": (generated_ols, "r_squared", 0.999929, 0.0005),
    "generated_sdca": (generated_sdca, "r_squared", None, 0.95),
    "generated_fast_tree": (generated_fast_tree, "r_squared", None, 0.95),
    "adult_fast_tree": (adult_fast_tree, "area_under_roc_curve", 0.958893, 0.02),
    "iris_kmeans": (iris_kmeans, "normalized_mutual_information", None, 0.7),
}


# ------------------------------------------------------------------------------ ONNX parity


def onnx_max_difference(ctx: op.MLContext, model: op.Transformer, data: op.DataView) -> float:
    """Convert ``model`` to ONNX, run it in bare ONNX Runtime on ``data`` and return the largest
    difference from ``model.transform`` over its numeric outputs (non-numeric ones must be equal)."""
    proto = ctx.model.convert_to_onnx(model, data)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for graph_input in session.get_inputs():
        values = np.asarray(data.column(graph_input.name))
        rank = len(graph_input.shape)
        feeds[graph_input.name] = values.reshape(len(values), *([1] * (rank - values.ndim)), *values.shape[1:])
    outputs = session.run(None, feeds)
    expected = model.transform(data)
    worst = 0.0
    for info, got in zip(session.get_outputs(), outputs, strict=True):
        want = np.asarray(expected.column(info.name))
        got = np.asarray(got).reshape(want.shape)
        if want.dtype.kind in "fc":
            worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0)))
        elif not np.array_equal(got, want):
            raise AssertionError(f"ONNX Runtime's {info.name!r} differs from transform's")
    return worst


def run(name: str, folder: Path = DEFAULT_DATA) -> SampleResult:
    sample = SAMPLES[name][0]
    ctx = op.MLContext(seed=1)  # ML.NET's samples use MLContext(seed: 1)
    model, data, metrics = sample(ctx, folder)
    return SampleResult(name, metrics, onnx_max_difference(ctx, model, data))


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    if not folder.is_dir():
        sys.exit(f"ML.NET's data folder {folder} is absent; pass its path")
    print(f"{'sample':42} {'metric':30} {'onnxpipe':>9} {'ML.NET':>9} {'ONNX diff':>10}")
    for name, (_, metric, baseline, _) in SAMPLES.items():
        result = run(name, folder)
        value = getattr(result.metrics, metric)
        shown = f"{baseline:9.4f}" if baseline is not None else f"{'-':>9}"
        print(f"{name:42} {metric:30} {value:9.4f} {shown} {result.onnx_max_difference:10.2e}")


if __name__ == "__main__":
    main()
