"""DESIGN §1 part 3: load, split, train a pipeline, evaluate, export to ONNX, re-apply with parity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt

import onnxpipe as op
from onnxpipe import LoadColumn
from onnxpipe.testing import assert_views_equal


@dataclass
class BreastCancerRow:
    Label: Annotated[bool, LoadColumn(0)]
    Thickness: Annotated[float, LoadColumn(1)]
    Size: Annotated[float, LoadColumn(2)]
    Shape: Annotated[float, LoadColumn(3)]


@dataclass
class Prediction:
    PredictedLabel: bool
    Probability: float


def test_train_evaluate_export_reapply(mlnet_data: Path, tmp_path: Path) -> None:
    ctx = op.MLContext(seed=0)
    data = ctx.data.load_from_text_file(mlnet_data / "breast-cancer.txt", BreastCancerRow, separator="\t")
    split = ctx.data.train_test_split(data, test_fraction=0.2)
    est = (
        ctx.transforms.concatenate("Features", "Thickness", "Size", "Shape")
        .append(ctx.transforms.normalize_min_max("Features"))
        .append(ctx.binary_classification.trainers.lbfgs_logistic_regression())
    )
    model = est.fit(split.train_set)
    scored = model.transform(split.test_set)
    metrics = ctx.binary_classification.evaluate(scored)
    assert metrics.area_under_roc_curve > 0.97
    assert metrics.accuracy > 0.9
    assert "area_under_roc_curve" in metrics.to_dict()

    path = tmp_path / "model.onnx"
    onnx_model = ctx.model.convert_to_onnx(model, split.train_set, path, output_columns="all")
    assert [o.name for o in onnx_model.graph.output][-3:] == ["Score", "Probability", "PredictedLabel"]
    reapplied = ctx.transforms.apply_onnx_model(path).transform(split.test_set)
    names = scored.schema.names
    assert_views_equal(ctx.transforms.select_columns(*names).transform(reapplied), scored, "ONNX parity")
    again = ctx.binary_classification.evaluate(reapplied)
    assert again.area_under_roc_curve == metrics.area_under_roc_curve  # scalars come back as scalars

    engine = ctx.model.create_prediction_engine(ctx.transforms.apply_onnx_model(path), BreastCancerRow, Prediction)
    first = next(iter(ctx.data.create_enumerable(split.test_set, BreastCancerRow)))
    p = engine.predict(first)
    assert isinstance(p.PredictedLabel, bool) and 0 <= p.Probability <= 1

    folds = ctx.binary_classification.cross_validate(data, est, number_of_folds=3)
    assert len(folds) == 3 and all(f.metrics.area_under_roc_curve > 0.95 for f in folds)


@dataclass
class House:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 13)]


def test_regression_journey(mlnet_data: Path) -> None:
    ctx = op.MLContext(seed=1)
    data = ctx.data.load_from_text_file(mlnet_data / "housing.txt", House, has_header=True)
    split = ctx.data.train_test_split(data, test_fraction=0.25)
    est = ctx.transforms.normalize_mean_variance("Features").append(ctx.regression.trainers.ols())
    model = est.fit(split.train_set)
    metrics = ctx.regression.evaluate(model.transform(split.test_set))
    assert metrics.r_squared > 0.6 and metrics.root_mean_squared_error < 6
    proto = ctx.model.convert_to_onnx(model, data)
    reapplied = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(split.test_set)
    np.testing.assert_allclose(reapplied.column("Score"), model.transform(split.test_set).column("Score"), rtol=1e-5)


@dataclass
class IrisRow:
    Label: Annotated[int, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 4)]


def test_multiclass_and_clustering_journey(mlnet_data: Path) -> None:
    ctx = op.MLContext(seed=2)
    data = ctx.data.load_from_text_file(mlnet_data / "iris.txt", IrisRow, has_header=True)
    est = ctx.transforms.normalize_mean_variance("Features").append(
        ctx.multiclass_classification.trainers.lbfgs_maximum_entropy()
    )
    results = ctx.multiclass_classification.cross_validate(data, est, number_of_folds=3)
    assert all(r.metrics.micro_accuracy > 0.85 for r in results)
    model = est.fit(data)
    scored = model.transform(data)
    assert scored.schema["PredictedLabel"].type == data.schema["Label"].type  # original label type and values
    assert set(scored.column("PredictedLabel").tolist()) == {0, 1, 2}
    proto = ctx.model.convert_to_onnx(model, data)
    reapplied = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(data)
    assert reapplied.column("PredictedLabel").tolist() == scored.column("PredictedLabel").tolist()

    clusters = ctx.clustering.trainers.kmeans(number_of_clusters=3).fit(data).transform(data)
    metrics = ctx.clustering.evaluate(clusters, label_column_name="Label")
    assert metrics.normalized_mutual_information > 0.6


@dataclass
class Adultish:
    Label: bool
    age: float
    hours: float
    work: str


def test_one_hot_concatenate_and_trainer_fit_as_one_chain() -> None:
    """Sizes decided at fit (one-hot width) flow into later estimators in the same chain."""
    ctx = op.MLContext(seed=0)
    rng = np.random.default_rng(5)
    kinds = ["private", "state", "self", "federal"]
    rows = []
    for _ in range(300):
        work = kinds[int(rng.integers(4))]
        age, hours = float(rng.normal(40, 10)), float(rng.normal(40, 8))
        rows.append(Adultish(bool(age + 15 * (work == "self") + rng.normal(0, 5) > 45), age, hours, work))
    data = ctx.data.load_from_enumerable(rows, Adultish)
    est = (
        ctx.transforms.categorical.one_hot_encoding("work")
        .append(ctx.transforms.concatenate("Features", "age", "hours", "work"))
        .append(ctx.transforms.normalize_min_max("Features"))
        .append(ctx.binary_classification.trainers.lbfgs_logistic_regression())
    )
    assert str(est.output_schema(data.schema)["Features"].type) == "float32[?]"  # decided by fit
    model = est.fit(data)
    scored = model.transform(data)
    assert str(scored.schema["Features"].type) == "float32[6]"
    assert ctx.binary_classification.evaluate(scored).area_under_roc_curve > 0.85
    proto = ctx.model.convert_to_onnx(model, data)
    reapplied = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(data)
    np.testing.assert_allclose(reapplied.column("Probability"), scored.column("Probability"), rtol=1e-5, atol=1e-6)
