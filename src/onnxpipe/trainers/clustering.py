"""K-means clustering (ML.NET's ``KMeansTrainer``): estimator, fitted model and ONNX export.

Outputs, as ML.NET names them: ``Score`` is a float32 vector of the *squared* Euclidean distances
to the ``k`` centroids, and ``PredictedLabel`` the key (uint32, ``1..k``) of the nearest centroid
(the first on ties; the missing key 0 for a row whose distances are NaN, i.e. NaN features).

Training: the initial centroids come from greedy k-means++ (see :func:`kmeans_plus_plus`) or
from ``k`` distinct rows drawn uniformly ("random"); then Lloyd iterations assign
every row to its nearest centroid and move each centroid to the (weighted) mean of its rows,
until the mean squared distance to the nearest centroid changes by less than
``optimization_tolerance`` (ML.NET's criterion), the assignment stops changing, or
``maximum_number_of_iterations`` passes. A centroid that loses all its rows stays where it was.
The same ``seed`` gives the same model. Rows with non-finite features or weights are skipped.

Differences from ML.NET: ML.NET's default initialisation is k-means|| ("kmeans_yinyang"), not
implemented here (k-means++ is the sequential algorithm it approximates); ML.NET's k-means++
draws one row per centroid, where the greedy variant here (scikit-learn's too) keeps the best of
``2 + log(k)`` draws, which lands in a poor local optimum far less often; ML.NET uses example
weights only to draw the k-means++ centroids and averages rows unweighted in its Lloyd steps,
where this trainer uses the weighted mean (the minimiser of the weighted objective, as
scikit-learn's ``sample_weight``); ML.NET moves an emptied centroid to the origin.

Export: ``Score = max(0, ||x||^2 - 2 x.c + ||c||^2)`` with ML.NET's ops (ReduceSumSquare, Gemm,
Add) computed in float64 so the cancellation in that sum stays far below float32 rounding, then
ArgMin + 1 cast to uint32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues, value_count
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError
from onnxpipe.schema import Column, DType, KeyType, Schema, TensorType
from onnxpipe.trainers._features import finite_rows, is_sparse
from onnxpipe.trainers.multiclass import (
    PREDICTED_LABEL,
    SCORE,
    _readonly,
    as_matrix,
    check_feature_column,
    check_scoring_features,
    check_weight_column,
    onnx_features,
    read_columns,
    training_weights,
    warn_skipped,
)

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["INITIALIZATION_ALGORITHMS", "KMeansModel", "KMeansTrainer"]

INITIALIZATION_ALGORITHMS = ("kmeans_plus_plus", "random")
_EPSILON = 1e-15  # ML.NET's k-means++: a row this close to a chosen centroid is never drawn again


def _output_columns(k: int) -> tuple[Column, Column]:
    return (
        Column(SCORE, TensorType(DType.FLOAT32, (k,))),
        Column(PREDICTED_LABEL, KeyType(k)),
    )


def squared_distances(x: Any, centroids: np.ndarray) -> np.ndarray:
    """``max(0, ||x||^2 - 2 x.c + ||c||^2)`` for every row and centroid, in float64 (``x`` dense
    or a CSR matrix)."""
    xx = np.asarray(x.multiply(x).sum(axis=1)) if is_sparse(x) else np.einsum("ij,ij->i", x, x)[:, None]
    cc = np.einsum("ij,ij->i", centroids, centroids)[None, :]
    return np.asarray(np.maximum(xx - 2.0 * (x @ centroids.T) + cc, 0.0))


@component("kmeans")
class KMeansModel(Transformer):
    """Fitted k-means: ``Score`` (squared distances to the centroids) and ``PredictedLabel``."""

    accepts_sparse = True  # distances from a CSR matrix's stored values

    def __init__(self, *, feature_column_name: str, feature_type: TensorType, centroids: np.ndarray) -> None:
        self.feature_column_name = feature_column_name
        self.feature_type = feature_type
        self.centroids = _readonly(np.asarray(centroids, dtype=np.float64))  # (k, features)

    @property
    def number_of_clusters(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def step_name(self) -> str:
        return f"kmeans({self.feature_column_name}, k={self.number_of_clusters})"

    def output_schema(self, input_schema: Schema) -> Schema:
        check_scoring_features(input_schema, self.feature_column_name, self.feature_type, self.step_name)
        return input_schema.with_columns(*_output_columns(self.number_of_clusters))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.feature_column_name]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        x = as_matrix(columns[self.feature_column_name], n_rows, keep_sparse=True)
        score = squared_distances(x, self.centroids).astype(np.float32)
        label = np.zeros(n_rows, dtype=np.uint32)
        if n_rows:
            label = (np.argmin(score, axis=1) + 1).astype(np.uint32)
            label[np.isnan(score).any(axis=1)] = 0
        return {SCORE: score, PREDICTED_LABEL: label}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        from onnx import TensorProto  # exporting: not loaded by import onnxpipe

        x = onnx_features(ctx, self.feature_column_name)  # float64 [N, d]
        if ctx.opset >= 18:
            axes = ctx.add_initializer(np.array([1], np.int64), "axes")
            (xx,) = ctx.add_node("ReduceSumSquare", [x, axes], keepdims=1)  # [N, 1]
        else:
            (xx,) = ctx.add_node("ReduceSumSquare", [x], axes=[1], keepdims=1)
        centroids_t = ctx.add_initializer(np.ascontiguousarray(self.centroids.T), "centroids_t")  # [d, k]
        norms = ctx.add_initializer(np.einsum("ij,ij->i", self.centroids, self.centroids), "centroid_norms")  # [k]
        (cross,) = ctx.add_node("Gemm", [x, centroids_t, norms], alpha=-2.0, beta=1.0)  # -2 x.c + ||c||^2
        (dist,) = ctx.add_node("Add", [cross, xx])
        (dist,) = ctx.add_node("Max", [dist, ctx.add_initializer(np.array(0.0), "zero")])
        (score,) = ctx.add_node("Cast", [dist], to=TensorProto.FLOAT)
        (nearest,) = ctx.add_node("ArgMin", [score], axis=1, keepdims=1)  # int64 [N, 1], the first minimum
        (key,) = ctx.add_node("Add", [nearest, ctx.add_initializer(np.array(1, np.int64), "one")])
        # A NaN distance (NaN features) gives the missing key 0, as map_columns does.
        axes1 = ctx.add_initializer(np.array([1], np.int64), "axes")
        (total,) = ctx.add_node("ReduceSum", [score, axes1], keepdims=1)
        (missing,) = ctx.add_node("IsNaN", [total])
        (key,) = ctx.add_node("Where", [missing, ctx.add_initializer(np.array(0, np.int64), "missing_key"), key])
        (label,) = ctx.add_node("Cast", [key], to=TensorProto.UINT32)
        ctx.set_value(SCORE, score)
        ctx.set_value(PREDICTED_LABEL, label)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KMeansModel):
            return NotImplemented
        return (
            self.feature_column_name == other.feature_column_name
            and self.feature_type == other.feature_type
            and self.centroids.shape == other.centroids.shape
            and bool(np.array_equal(self.centroids, other.centroids))
        )

    def __hash__(self) -> int:
        return hash((type(self), self.feature_column_name, self.centroids.shape))

    def __repr__(self) -> str:
        return (
            f"KMeansModel(features={self.feature_column_name!r}, number_of_clusters={self.number_of_clusters}, "
            f"dimension={self.centroids.shape[1]})"
        )


@component("kmeans", catalog="clustering.trainers")
class KMeansTrainer(Estimator[KMeansModel]):
    """ML.NET's ``KMeans`` clustering trainer (see the module docstring)."""

    def __init__(
        self,
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_clusters: int = 5,
        initialization_algorithm: str = "kmeans_plus_plus",
        optimization_tolerance: float = 1e-7,
        maximum_number_of_iterations: int = 1000,
        seed: int | None = None,
    ) -> None:
        step = "kmeans"
        self.feature_column_name = _validation.column_name(feature_column_name, "feature_column_name", step)
        self.example_weight_column_name = _validation.column_name(
            example_weight_column_name, "example_weight_column_name", step, optional=True
        )
        self.number_of_clusters = _validation.integer(number_of_clusters, "number_of_clusters", step, low=1)
        self.initialization_algorithm = _validation.choice(
            initialization_algorithm,
            "initialization_algorithm",
            step,
            INITIALIZATION_ALGORITHMS,
            fix=(
                "ML.NET's k-means|| initialisation is not implemented; kmeans_plus_plus is its sequential form"
                if initialization_algorithm == "kmeans_yinyang"
                else None
            ),
        )
        self.optimization_tolerance = _validation.number(
            optimization_tolerance, "optimization_tolerance", step, low=0, low_open=True
        )
        self.maximum_number_of_iterations = _validation.integer(
            maximum_number_of_iterations, "maximum_number_of_iterations", step, low=1
        )
        self.seed = _validation.integer(seed, "seed", step, low=0, optional=True)

    @property
    def step_name(self) -> str:
        return f"kmeans({self.feature_column_name}, k={self.number_of_clusters})"

    def output_schema(self, input_schema: Schema) -> Schema:
        check_feature_column(input_schema, self.feature_column_name, self.step_name, promise=True)
        check_weight_column(input_schema, self.example_weight_column_name, self.step_name)
        return input_schema.with_columns(*_output_columns(self.number_of_clusters))

    def fit(self, data: DataView) -> KMeansModel:
        self.output_schema(data.schema)
        step = self.step_name
        feature_type = check_feature_column(data.schema, self.feature_column_name, step)
        weight = self.example_weight_column_name
        cols = read_columns(data, [self.feature_column_name, *([weight] if weight else [])], step)
        n = value_count(cols[self.feature_column_name])
        x = as_matrix(cols[self.feature_column_name], n, keep_sparse=True)
        w = training_weights(cols[weight] if weight else None, n, step, weight)
        keep = finite_rows(x) & np.isfinite(w)
        warn_skipped(step, int(n - keep.sum()), n, "non-finite features or weight")
        x, w = x[keep], w[keep]
        k = self.number_of_clusters
        if x.shape[0] < k:
            raise DataError(
                f"{step}: number_of_clusters={k} is more than the {x.shape[0]} usable training rows; "
                "lower number_of_clusters or train on more data"
            )
        if not np.any(w > 0):
            raise DataError(f"{step}: every training row has example weight 0")
        rng = np.random.default_rng(self.seed)
        if self.initialization_algorithm == "kmeans_plus_plus":
            initial = kmeans_plus_plus(x, w, k, rng, step)
        else:
            initial = _random_rows(x, w, k, rng, step)
        centroids = lloyd(x, w, initial, self.optimization_tolerance, self.maximum_number_of_iterations)
        return KMeansModel(feature_column_name=self.feature_column_name, feature_type=feature_type, centroids=centroids)

    def _args(self) -> dict[str, Any]:
        return {
            "feature_column_name": self.feature_column_name,
            "example_weight_column_name": self.example_weight_column_name,
            "number_of_clusters": self.number_of_clusters,
            "initialization_algorithm": self.initialization_algorithm,
            "optimization_tolerance": self.optimization_tolerance,
            "maximum_number_of_iterations": self.maximum_number_of_iterations,
            "seed": self.seed,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KMeansTrainer):
            return NotImplemented
        return self._args() == other._args()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._args().items())))

    def __repr__(self) -> str:
        return "KMeansTrainer(" + ", ".join(f"{k}={v!r}" for k, v in self._args().items()) + ")"


def _too_few_distinct(step: str, k: int, found: int) -> DataError:
    return DataError(
        f"{step}: not enough distinct training rows to place {k} clusters (only found {found}); "
        "lower number_of_clusters or remove duplicate rows"
    )


def _row(x: Any, i: int) -> np.ndarray:
    """Row ``i`` of a dense or CSR matrix, dense."""
    return np.asarray(x[i].toarray()).reshape(-1) if is_sparse(x) else np.asarray(x[i])


def _squared_distances_to(x: Any, centre: np.ndarray) -> np.ndarray:
    """Squared distances of every row to one point, exactly 0 for a copy of it (no cancellation;
    a CSR matrix is subtracted from the point one row of stored values at a time)."""
    if is_sparse(x):
        # ||x - c||^2 = ||c||^2 + sum over stored slots of ((x_j - c_j)^2 - c_j^2): exact for a copy
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        c = centre[x.indices]
        per_slot = (x.data - c) ** 2 - c * c
        return np.asarray(float(centre @ centre) + np.bincount(rows, per_slot, minlength=x.shape[0]))
    diff = x - centre
    return np.asarray(np.einsum("ij,ij->i", diff, diff))


def kmeans_plus_plus(x: Any, w: np.ndarray, k: int, rng: np.random.Generator, step: str) -> np.ndarray:
    """Greedy k-means++: the first centroid is a row drawn with probability proportional to its
    weight; each next one is the best (lowest weighted sum of squared distances to the nearest
    centroid) of ``2 + log(k)`` rows drawn with probability proportional to weight * squared
    distance to the nearest centroid so far."""
    trials = 2 + int(np.log(k))
    chosen = [int(rng.choice(x.shape[0], p=w / w.sum()))]
    nearest = _squared_distances_to(x, _row(x, chosen[0]))
    for i in range(1, k):
        p = np.where(nearest > _EPSILON, nearest * w, 0.0)
        total = float(p.sum())
        if not total > 0:
            raise _too_few_distinct(step, k, i)
        candidates = rng.choice(x.shape[0], size=trials, p=p / total)
        # Each candidate's distances, as a new nearest-so-far; keep the one with the lowest cost.
        options = np.stack([np.minimum(nearest, _squared_distances_to(x, _row(x, c))) for c in candidates], axis=1)
        best = int(np.argmin(w @ options))
        chosen.append(int(candidates[best]))
        nearest = options[:, best]
    return np.stack([_row(x, c) for c in chosen])


def _random_rows(x: Any, w: np.ndarray, k: int, rng: np.random.Generator, step: str) -> np.ndarray:
    """``k`` distinct rows drawn uniformly (among rows of positive weight)."""
    candidates = x[w > 0]
    distinct = np.unique(candidates.toarray() if is_sparse(candidates) else candidates, axis=0)
    if len(distinct) < k:
        raise _too_few_distinct(step, k, len(distinct))
    return np.array(distinct[rng.choice(len(distinct), size=k, replace=False)])


def lloyd(x: Any, w: np.ndarray, centroids: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """Lloyd iterations from ``centroids`` (see the module docstring for the stopping rules)."""
    centroids = np.array(centroids, dtype=np.float64)
    k = len(centroids)
    total = float(w.sum())
    previous_score = np.inf
    previous: np.ndarray | None = None
    rows = np.arange(x.shape[0])
    # (d, n): xt @ onehot is far faster than onehot.T @ x for tall x (a CSR x stays sparse)
    xt = x.T.tocsr() if is_sparse(x) else np.ascontiguousarray(x.T)
    for _ in range(max_iter):
        dist = squared_distances(x, centroids)
        assigned = np.argmin(dist, axis=1)
        score = float(w @ dist[rows, assigned]) / total
        if previous is not None and np.array_equal(assigned, previous):
            break  # a fixed point: the update below would not move any centroid
        onehot = np.zeros((x.shape[0], k))
        onehot[rows, assigned] = w
        mass = onehot.sum(axis=0)
        sums = (xt @ onehot).T
        filled = mass > 0
        centroids[filled] = sums[filled] / mass[filled, None]
        if abs(previous_score - score) < tol:
            break
        previous_score, previous = score, assigned
    return centroids
