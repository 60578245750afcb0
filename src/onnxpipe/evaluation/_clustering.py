"""Clustering metrics (ML.NET's ``Clustering.Evaluate``)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe._display import RichDisplay
from onnxpipe.data._loaders import as_data_view
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, OnnxPipeWarning
from onnxpipe.evaluation._columns import column_batches, label_type, missing_labels, score_matrix, score_type
from onnxpipe.evaluation._tables import metrics_table, render
from onnxpipe.schema import DType, TensorType

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["ClusteringMetrics", "evaluate_clustering"]


@dataclasses.dataclass(frozen=True)
class ClusteringMetrics(RichDisplay):
    """ML.NET's clustering metrics (see :func:`evaluate_clustering` for definitions)."""

    average_distance: float
    davies_bouldin_index: float | None
    normalized_mutual_information: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __rich__(self) -> Table:
        return metrics_table("Clustering metrics", list(self.to_dict().items()))

    def __str__(self) -> str:
        return render(self)


def _feature_matrix(values: Any, n: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(n, -1)


def evaluate_clustering(
    data: DataView | Any,
    label_column_name: str | None = None,
    score_column_name: str = "Score",
    feature_column_name: str | None = "Features",
) -> ClusteringMetrics:
    """ML.NET's clustering metrics of scored ``data``.

    ``feature_column_name=None`` skips the Davies-Bouldin index; ``label_column_name=None`` the
    normalised mutual information.

    * The assigned cluster is the slot with the smallest ``Score`` (the first on ties); rows with a
      non-finite score are skipped.
    * ``average_distance``: the mean over rows of the smallest score (k-means scores are squared
      distances, so this is scikit-learn's ``inertia_`` divided by the number of rows).
    * ``davies_bouldin_index`` (with a feature column): the mean over the clusters of
      ``max over j != i of (s_i + s_j) / ||c_i - c_j||``, where ``c_i`` is the mean of the features
      of the rows assigned to cluster ``i`` and ``s_i`` their mean Euclidean distance to it. As
      ML.NET, the sum is divided by the number of score slots (an empty cluster adds 0), where
      scikit-learn's ``davies_bouldin_score`` divides by the number of non-empty clusters; a pair of
      clusters with the same centre is left out of the maximum (scikit-learn's choice; ML.NET divides
      by 0).
    * ``normalized_mutual_information`` (with a label column): ``I(label; cluster) / H(label)``,
      ML.NET's normalisation by the label entropy alone; scikit-learn's
      ``normalized_mutual_info_score`` divides by the mean of both entropies. NaN when the label has
      fewer than 2 values; rows with a missing label are left out of it.
    """
    step = "evaluate_clustering"
    data = as_data_view(data, step)
    schema = data.schema
    st = score_type(schema, score_column_name, step)
    lt = label_type(schema, label_column_name, step) if label_column_name is not None else None
    if feature_column_name is not None:
        ft = schema.require(feature_column_name, step).type
        if (
            not isinstance(ft, TensorType)
            or not ft.is_known_shape
            or not (ft.dtype.is_numeric or ft.dtype is DType.BOOL)
        ):
            raise ColumnTypeError(
                f"{step}: feature column {feature_column_name!r} must hold numbers of a known size, got {ft}; "
                "pass feature_column_name=None to skip the Davies-Bouldin index"
            )
    width = st.shape[0]
    names = [score_column_name, *([label_column_name] if label_column_name else [])]
    names += [feature_column_name] if feature_column_name else []

    total = min_sum = 0.0
    assigned_all: list[np.ndarray] = []
    labels_all: list[np.ndarray] = []
    sums: np.ndarray | None = None
    counts: np.ndarray | None = None
    skipped = 0
    for n, cols in column_batches(data, names):
        scores = score_matrix(cols[score_column_name], n, score_column_name, step, width)
        width = scores.shape[1] if width is None and n else width
        ok = np.all(np.isfinite(scores), axis=1)
        skipped += int((~ok).sum())
        scores = scores[ok]
        if not len(scores):
            continue
        assigned = np.argmin(scores, axis=1)
        total += len(scores)
        min_sum += float(scores[np.arange(len(scores)), assigned].sum())
        assigned_all.append(assigned)
        if label_column_name is not None:
            labels_all.append(np.asarray(cols[label_column_name])[ok])
        if feature_column_name is not None:
            x = _feature_matrix(cols[feature_column_name], n)[ok]
            assert width is not None
            if sums is None or counts is None:
                sums, counts = np.zeros((width, x.shape[1])), np.zeros(width)
            np.add.at(sums, assigned, x)
            counts += np.bincount(assigned, minlength=width)
    if total == 0:
        raise DataError(f"{step}: no row has finite scores to evaluate ({skipped} rows with non-finite scores)")
    if skipped:
        warnings.warn(f"{step}: skipped {skipped} rows with a non-finite score", OnnxPipeWarning, stacklevel=2)
    assert width is not None

    dbi: float | None = None
    if feature_column_name is not None and sums is not None and counts is not None:
        filled = counts > 0
        centroids = np.zeros_like(sums)
        centroids[filled] = sums[filled] / counts[filled, None]
        spread = np.zeros(width)
        for n, cols in column_batches(data, [score_column_name, feature_column_name]):  # second pass
            scores = score_matrix(cols[score_column_name], n, score_column_name, step, width)
            ok = np.all(np.isfinite(scores), axis=1)
            assigned = np.argmin(scores[ok], axis=1) if ok.any() else np.zeros(0, np.int64)
            x = _feature_matrix(cols[feature_column_name], n)[ok]
            np.add.at(spread, assigned, np.linalg.norm(x - centroids[assigned], axis=1))
        spread[filled] /= counts[filled]
        dbi = _davies_bouldin(centroids, spread, filled, width)

    nmi: float | None = None
    if lt is not None:
        labels = np.concatenate(labels_all)
        clusters = np.concatenate(assigned_all)
        keep = ~missing_labels(labels, lt)
        nmi = _nmi(labels[keep], clusters[keep], width, lt)
    return ClusteringMetrics(
        average_distance=min_sum / total, davies_bouldin_index=dbi, normalized_mutual_information=nmi
    )


def _davies_bouldin(centroids: np.ndarray, spread: np.ndarray, filled: np.ndarray, width: int) -> float:
    index = np.flatnonzero(filled)
    c, s = centroids[index], spread[index]
    distance = np.sqrt(np.maximum(np.sum((c[:, None, :] - c[None, :, :]) ** 2, axis=2), 0.0))
    ratio = np.zeros_like(distance)
    apart = distance > 0  # the diagonal and clusters with the same centre are left out
    ratio[apart] = ((s[:, None] + s[None, :]) / np.where(apart, distance, 1.0))[apart]
    return float(ratio.max(axis=1).sum() / width) if len(index) else 0.0


def _nmi(labels: np.ndarray, clusters: np.ndarray, width: int, lt: TensorType) -> float:
    if lt.dtype is DType.STRING:
        labels = labels.astype(object)
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return math.nan
    n = float(len(y))
    table = np.zeros((len(classes), width))
    np.add.at(table, (y.reshape(-1), clusters), 1.0)
    pxy = table / n
    px = pxy.sum(axis=1, keepdims=True)
    py = pxy.sum(axis=0, keepdims=True)
    nz = pxy > 0
    mutual = float(np.sum(pxy[nz] * np.log(pxy[nz] / (px @ py)[nz])))
    entropy = float(-np.sum(px[px > 0] * np.log(px[px > 0])))
    return mutual / entropy
