"""K-means and clustering metrics: conformance (incl. ONNX parity), determinism, quality vs
scikit-learn, ML.NET's metric definitions, errors."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, load_iris
from sklearn.metrics import davies_bouldin_score, mutual_info_score, normalized_mutual_info_score

import onnxpipe as op
from onnxpipe import LoadColumn
from onnxpipe.data._convert import ColumnValues, arrow_schema, to_arrow
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataError,
    InvalidArgumentError,
    OnnxPipeWarning,
    ShapeError,
)
from onnxpipe.evaluation import ClusteringMetrics, evaluate_clustering
from onnxpipe.export import convert_to_onnx
from onnxpipe.schema import Column, ColumnType, DType, KeyType, Schema, TensorType
from onnxpipe.testing import check_component
from onnxpipe.trainers.clustering import KMeansModel, KMeansTrainer, kmeans_plus_plus, lloyd
from onnxpipe.transforms.onnx_model import OnnxTransformer

ctx = op.MLContext(seed=0)
F32 = DType.FLOAT32


def view(x: np.ndarray, extra: Mapping[str, tuple[ColumnType, ColumnValues]] | None = None) -> op.DataView:
    columns: dict[str, tuple[ColumnType, ColumnValues]] = {
        "Features": (TensorType(F32, (x.shape[1],)), x.astype(np.float32)),
        **(extra or {}),
    }
    schema = Schema(Column(n, t) for n, (t, _) in columns.items())
    arrays = [to_arrow(v, t, n) for n, (t, v) in columns.items()]
    return ctx.data.load_from_arrow(pa.Table.from_arrays(arrays, schema=arrow_schema(schema)))


def blobs(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[0.0, 0.0, 5.0], [6.0, 1.0, 0.0], [0.0, 7.0, 1.0]])
    return (centres[y] + rng.normal(size=(n, 3))).astype(np.float32), y


def iris() -> np.ndarray:
    return np.asarray(load_iris().data, dtype=np.float32)


def inertia(model: KMeansModel, data: op.DataView) -> float:
    return float(np.sum(np.min(np.asarray(model.transform(data).column("Score"), np.float64), axis=1)))


# --------------------------------------------------------------------------------------------
# The conformance suite and the outputs


@pytest.mark.parametrize("init", ["kmeans_plus_plus", "random"])
def test_kmeans_conforms(init: str) -> None:
    x, _ = blobs()
    extra = {"Weight": (TensorType(F32), np.linspace(0.5, 2, len(x)).astype(np.float32))}
    trainer = KMeansTrainer(
        number_of_clusters=3, initialization_algorithm=init, example_weight_column_name="Weight", seed=3
    )
    model = check_component(trainer, view(x, extra), exportable=True)
    out = model.transform(view(x, extra))
    assert out.schema["Score"] == Column("Score", TensorType(F32, (3,)))
    assert out.schema["PredictedLabel"].type == KeyType(3)
    assert sorted(set(out.column("PredictedLabel").tolist())) == [1, 2, 3]


def test_scores_are_squared_distances_and_labels_the_nearest_key() -> None:
    x, _ = blobs()
    model = KMeansTrainer(number_of_clusters=3, seed=0).fit(view(x))
    out = model.transform(view(x))
    expected = ((x.astype(np.float64)[:, None, :] - model.centroids[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(out.column("Score"), expected, rtol=1e-5, atol=1e-5)
    assert out.column("PredictedLabel").tolist() == (np.argmin(expected, axis=1) + 1).tolist()


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_export_at_every_opset(opset: int) -> None:
    data = view(iris()[::5])
    model = KMeansTrainer(number_of_clusters=4, seed=0).fit(data)
    proto = convert_to_onnx(model, data.schema, opset=opset)
    ops = {n.op_type for n in proto.graph.node}
    assert {"ReduceSumSquare", "Gemm", "Add", "ArgMin"} <= ops
    out = OnnxTransformer(model_bytes=proto.SerializeToString()).transform(data)
    np.testing.assert_allclose(out.column("Score"), model.transform(data).column("Score"), rtol=1e-6)
    assert out.column("PredictedLabel").tolist() == model.transform(data).column("PredictedLabel").tolist()


def test_nan_features_are_skipped_in_training_and_get_the_missing_key() -> None:
    x, _ = blobs()
    x[0, 2] = np.nan
    with pytest.warns(OnnxPipeWarning, match=r"kmeans\(Features, k=3\): skipped 1 of 24 training rows"):
        model = KMeansTrainer(number_of_clusters=3, seed=0).fit(view(x))
    assert model == KMeansTrainer(number_of_clusters=3, seed=0).fit(view(x[1:]))
    out = model.transform(view(x[:3]))
    assert np.isnan(out.column("Score")[0]).all()
    assert out.column("PredictedLabel").tolist()[0] == 0
    proto = convert_to_onnx(model, view(x[:3]).schema)
    exported = OnnxTransformer(model_bytes=proto.SerializeToString()).transform(view(x[:3]))
    assert exported.column("PredictedLabel").tolist() == out.column("PredictedLabel").tolist()


# --------------------------------------------------------------------------------------------
# Determinism and quality


def test_same_seed_same_model_and_assignment() -> None:
    data = view(iris())
    trainer = KMeansTrainer(number_of_clusters=5, seed=11)
    a, b = trainer.fit(data), trainer.fit(data)
    assert a == b and hash(a) == hash(b)
    assert a.transform(data).column("PredictedLabel").tolist() == b.transform(data).column("PredictedLabel").tolist()
    for init in ("kmeans_plus_plus", "random"):
        t = KMeansTrainer(number_of_clusters=5, initialization_algorithm=init, seed=2)
        np.testing.assert_array_equal(t.fit(data).centroids, t.fit(data).centroids)
    assert repr(a) == "KMeansModel(features='Features', number_of_clusters=5, dimension=4)"
    assert "seed=11" in repr(trainer)
    with pytest.raises(AttributeError, match="immutable"):
        trainer.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("seed", range(10))
def test_iris_inertia_within_one_percent_of_scikit_learn(seed: int) -> None:
    x = iris()
    ours = inertia(KMeansTrainer(number_of_clusters=3, seed=seed).fit(view(x)), view(x))
    sk = KMeans(3, n_init=1, init="k-means++", random_state=seed).fit(x.astype(np.float64)).inertia_
    assert ours == pytest.approx(sk, rel=0.01)


def test_digits_inertia_within_one_percent_of_scikit_learn() -> None:
    x = np.asarray(load_digits().data, dtype=np.float32)
    data = view(x)
    for seed in range(3):
        ours = inertia(KMeansTrainer(number_of_clusters=10, seed=seed).fit(data), data)
        sk = KMeans(10, n_init=1, init="k-means++", random_state=seed).fit(x.astype(np.float64)).inertia_
        assert ours == pytest.approx(sk, rel=0.01)


def test_lloyd_from_the_same_start_is_scikit_learns() -> None:
    x = np.asarray(load_digits().data[:500], dtype=np.float64)
    w = np.ones(len(x))
    start = kmeans_plus_plus(x, w, 8, np.random.default_rng(0), "test")
    ours = lloyd(x, w, start, 1e-12, 1000)
    sk = KMeans(8, init=start, n_init=1, algorithm="lloyd", tol=0.0, max_iter=1000).fit(x)
    np.testing.assert_allclose(ours, sk.cluster_centers_, rtol=1e-9, atol=1e-9)


def test_weights_act_as_repetitions() -> None:
    x, _ = blobs(12)
    w = np.array([1.0, 2.0, 3.0] * 4)
    start = x[:3].astype(np.float64)
    weighted = lloyd(x.astype(np.float64), w, start, 1e-12, 100)
    repeated = lloyd(np.repeat(x, w.astype(int), axis=0).astype(np.float64), np.ones(24), start, 1e-12, 100)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-12)
    sk = KMeans(3, init=start, n_init=1, tol=0.0).fit(x.astype(np.float64), sample_weight=w)
    np.testing.assert_allclose(weighted, sk.cluster_centers_, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Errors


def test_errors_name_the_step_the_column_and_the_fix() -> None:
    x, _ = blobs(6)
    with pytest.raises(DataError, match=r"kmeans\(Features, k=10\): number_of_clusters=10 is more than the 6 usable"):
        KMeansTrainer(number_of_clusters=10).fit(view(x))
    twins = view(np.repeat(x[:2], 3, axis=0))
    for init in ("kmeans_plus_plus", "random"):
        with pytest.raises(DataError, match=r"not enough distinct training rows to place 3 clusters \(only found 2\)"):
            KMeansTrainer(number_of_clusters=3, initialization_algorithm=init, seed=0).fit(twins)
    text = ctx.data.load_from_arrow(pa.table({"Features": pa.array(["a", "b"])}))
    with pytest.raises(ColumnTypeError, match=r"feature column 'Features' must hold numbers .* got string"):
        KMeansTrainer(number_of_clusters=2).fit(text)
    with pytest.raises(ColumnNotFoundError, match=r"kmeans\(X, k=2\): input column 'X' is not in the data"):
        KMeansTrainer(feature_column_name="X", number_of_clusters=2).fit(view(x))
    with pytest.raises(ColumnNotFoundError, match=r"input column 'W' is not in the data"):
        KMeansTrainer(example_weight_column_name="W").fit(view(x))
    model = KMeansTrainer(number_of_clusters=2, seed=0).fit(view(x))
    with pytest.raises(ShapeError, match=r"feature column 'Features' has 6 values per row .* trained on 3"):
        model.transform(view(np.hstack([x, x])))
    negative = view(x, {"W": (TensorType(F32), np.array([1, -1, 1, 1, 1, 1], np.float32))})
    with pytest.raises(DataError, match=r"example weight column 'W' has negative weights \(first at row 1\)"):
        KMeansTrainer(number_of_clusters=2, example_weight_column_name="W").fit(negative)
    with pytest.raises(DataError, match="has no rows"):
        KMeansTrainer(number_of_clusters=2).fit(view(x[:0]))


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(
        InvalidArgumentError,
        match=r"^kmeans: initialization_algorithm must be one of 'kmeans_plus_plus', 'random', got 'kmeans\+\+'$",
    ):
        KMeansTrainer(initialization_algorithm="kmeans++")
    with pytest.raises(
        InvalidArgumentError, match=r"got 'kmeans_yinyang'; ML.NET's k-means\|\| initialisation is not implemented"
    ):
        KMeansTrainer(initialization_algorithm="kmeans_yinyang")
    with pytest.raises(InvalidArgumentError, match=r"number_of_clusters must be a positive integer, got 0"):
        KMeansTrainer(number_of_clusters=0)
    with pytest.raises(InvalidArgumentError, match=r"number_of_clusters must be a positive integer, got 2\.0"):
        KMeansTrainer(number_of_clusters=2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"optimization_tolerance must be a finite number > 0, got 0\.0"):
        KMeansTrainer(optimization_tolerance=0.0)
    with pytest.raises(InvalidArgumentError, match=r"seed must be an integer >= 0 or None, got -1"):
        KMeansTrainer(seed=-1)


# --------------------------------------------------------------------------------------------
# evaluate_clustering against scikit-learn


def test_clustering_metrics_match_scikit_learn() -> None:
    x = iris()
    y = load_iris().target
    data = view(x, {"Label": (TensorType(DType.INT64), y.astype(np.int64))})
    scored = KMeansTrainer(number_of_clusters=3, seed=1).fit(data).transform(data)
    assigned = np.asarray(scored.column("PredictedLabel")) - 1
    m = evaluate_clustering(scored, label_column_name="Label")
    assert isinstance(m, ClusteringMetrics)
    sk = KMeans(3, n_init=1, random_state=1).fit(x.astype(np.float64))
    assert m.average_distance == pytest.approx(sk.inertia_ / len(x), rel=1e-4)
    assert m.davies_bouldin_index == pytest.approx(davies_bouldin_score(x, assigned), rel=1e-5)
    prior = np.bincount(y) / len(y)
    entropy = -np.sum(prior * np.log(prior))
    # ML.NET normalises the mutual information by the label entropy; scikit-learn by the mean entropy
    assert m.normalized_mutual_information == pytest.approx(mutual_info_score(y, assigned) / entropy, rel=1e-9)
    assert m.normalized_mutual_information != pytest.approx(normalized_mutual_info_score(y, assigned), rel=1e-3)
    assert evaluate_clustering(scored).normalized_mutual_information is None
    assert evaluate_clustering(scored, feature_column_name=None).davies_bouldin_index is None
    text = str(m)
    assert "average_distance" in text and "davies_bouldin_index" in text
    assert json.loads(json.dumps(m.to_dict()))["average_distance"] == pytest.approx(m.average_distance)


def _scored(scores: np.ndarray, features: np.ndarray, labels: np.ndarray | None = None) -> op.DataView:
    extra: dict[str, tuple[ColumnType, ColumnValues]] = {
        "Score": (TensorType(F32, (scores.shape[1],)), scores.astype(np.float32))
    }
    if labels is not None:
        extra["Label"] = (TensorType(DType.STRING), labels)
    return view(features, extra)


def test_davies_bouldin_divides_by_all_clusters_as_mlnet() -> None:
    features = np.array([[0, 0], [0, 1], [5, 5], [5, 6]], dtype=np.float32)
    scores = np.array([[0, 9, 9], [0, 9, 9], [9, 0, 9], [9, 0, 9]], dtype=np.float32)  # cluster 3 is empty
    m = evaluate_clustering(_scored(scores, features))
    two = davies_bouldin_score(features, [0, 0, 1, 1])
    assert m.davies_bouldin_index == pytest.approx(two * 2 / 3, rel=1e-6)
    assert m.average_distance == 0.0
    labels = np.array(["a", "a", "a", "a"], dtype=object)
    assert math.isnan(evaluate_clustering(_scored(scores, features, labels), "Label").normalized_mutual_information)


def test_clustering_metric_errors() -> None:
    features = np.zeros((2, 2), np.float32)
    scores = np.array([[1, np.nan], [0.5, 1]], np.float32)
    with pytest.warns(OnnxPipeWarning, match="skipped 1 rows with a non-finite score"):
        assert evaluate_clustering(_scored(scores, features)).average_distance == 0.5
    with pytest.raises(ColumnNotFoundError, match=r"evaluate_clustering: input column 'Score' is not in the data"):
        evaluate_clustering(view(features))
    with pytest.raises(ColumnNotFoundError, match=r"input column 'Feats'"):
        evaluate_clustering(_scored(scores, features), feature_column_name="Feats")
    labelled = _scored(scores, features, np.array(["a", "b"], dtype=object))
    with pytest.raises(ColumnTypeError, match=r"score column 'Label' must be a vector of floats"):
        evaluate_clustering(labelled, score_column_name="Label")
    with pytest.raises(DataError, match=r"no row has finite scores to evaluate \(2 rows with non-finite scores\)"):
        evaluate_clustering(_scored(np.full((2, 2), np.inf), features))


# --------------------------------------------------------------------------------------------
# ML.NET's iris data


def test_mlnet_iris(mlnet_data: Path) -> None:
    @dataclass
    class IrisRow:
        Label: Annotated[int, LoadColumn(0)]
        Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 4)]

    data = ctx.data.load_from_text_file(mlnet_data / "iris.txt", IrisRow, has_header=True)
    model = KMeansTrainer(number_of_clusters=3, seed=0).fit(data)
    metrics = evaluate_clustering(model.transform(data), label_column_name="Label")
    assert metrics.average_distance == pytest.approx(78.85 / 150, rel=0.01)
    assert metrics.normalized_mutual_information is not None and metrics.normalized_mutual_information > 0.7
    assert metrics.davies_bouldin_index is not None and metrics.davies_bouldin_index < 0.8
