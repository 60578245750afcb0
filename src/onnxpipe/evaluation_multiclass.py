"""Metrics of scored multiclass and clustering data, with ML.NET's definitions and names.

:func:`evaluate_multiclass` (ML.NET's ``MulticlassClassification.Evaluate``):

* The class of each ``Score`` slot comes from the score column's slot names (the fitted trainers
  write the class labels there); a key label's class ``k`` is slot ``k - 1``; without slot names,
  the classes are the sorted distinct values of the label and predicted label columns, which must
  then be as many as the score slots.
* The assigned class is the slot with the largest score (the first on ties), as in ML.NET; the
  predicted label column must be present (and of the label's type).
* Rows with a missing label (NaN, key 0) or a non-finite score are skipped; a label that is no
  class of the model counts as a wrong prediction with log-loss ``-ln(1e-15)``.
* ``micro_accuracy``: the fraction of rows whose assigned class is the label.
  ``macro_accuracy``: the mean over the classes present in the label of their recall
  (scikit-learn's ``balanced_accuracy_score``).
  ``log_loss``: the mean of ``-ln(p)``, ``p`` the score of the label's class clipped to
  ``[1e-15, 1]`` (scikit-learn's ``log_loss`` clips to float eps and renormalises each row to sum
  1; the scores are taken as they are here).
  ``log_loss_reduction``: ``(H - log_loss) / H`` with ``H`` the entropy (natural log) of the
  label distribution, i.e. the log-loss of always predicting the prior; 1 is perfect, 0 is no
  better than the prior (ML.NET's evaluator table shows it as a percentage, its metrics object
  as this ratio).
  ``top_k_accuracy``: the fraction of rows whose label's class is among the ``k`` largest scores
  (ties ordered by slot, as ML.NET; ``top_k_accuracy_for_all_k`` for each k up to
  ``top_k_prediction_count``).
  ``per_class_log_loss``: the log-loss of each class's rows (0 for a class without rows).
  ``confusion_matrix``: counts of rows by actual class (rows) and assigned class (columns).

:func:`evaluate_clustering` (ML.NET's ``Clustering.Evaluate``):

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

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.table import Table

from onnxpipe.data._convert import from_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError, OnnxPipeWarning, SchemaError, ShapeError
from onnxpipe.schema import Column, DType, Schema, TensorType

__all__ = [
    "ClusteringMetrics",
    "ConfusionMatrix",
    "MulticlassClassificationMetrics",
    "evaluate_clustering",
    "evaluate_multiclass",
]

_EPSILON = 1e-15  # ML.NET's floor on the probability of the true class in the log-loss


def _render(renderable: RenderableType) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().rstrip()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------------------------------
# Metric objects


@dataclasses.dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of rows by actual class (rows) and predicted class (columns)."""

    class_names: tuple[str, ...]
    counts: tuple[tuple[float, ...], ...]

    @property
    def number_of_classes(self) -> int:
        return len(self.class_names)

    @property
    def per_class_precision(self) -> tuple[float, ...]:
        """Correct / predicted, per class (NaN for a class never predicted)."""
        m = np.array(self.counts, dtype=np.float64).reshape(self.number_of_classes, -1)
        predicted = m.sum(axis=0)
        return tuple(float(m[i, i] / predicted[i]) if predicted[i] else math.nan for i in range(len(m)))

    @property
    def per_class_recall(self) -> tuple[float, ...]:
        """Correct / actual, per class (NaN for a class without rows)."""
        m = np.array(self.counts, dtype=np.float64).reshape(self.number_of_classes, -1)
        actual = m.sum(axis=1)
        return tuple(float(m[i, i] / actual[i]) if actual[i] else math.nan for i in range(len(m)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "counts": [list(r) for r in self.counts],
            "per_class_precision": list(self.per_class_precision),
            "per_class_recall": list(self.per_class_recall),
        }

    def __rich__(self) -> Table:
        table = Table(title="Confusion matrix (rows: actual, columns: predicted)")
        table.add_column("actual \\ predicted")
        for name in self.class_names:
            table.add_column(name, justify="right")
        table.add_column("recall", justify="right")
        for name, row, recall in zip(self.class_names, self.counts, self.per_class_recall, strict=True):
            table.add_row(name, *(f"{v:g}" for v in row), _fmt(recall))
        table.add_row("precision", *(_fmt(p) for p in self.per_class_precision), "")
        return table

    def __str__(self) -> str:
        return _render(self)


@dataclasses.dataclass(frozen=True)
class MulticlassClassificationMetrics:
    """ML.NET's multiclass metrics (see :mod:`onnxpipe.evaluation_multiclass` for definitions)."""

    micro_accuracy: float
    macro_accuracy: float
    log_loss: float
    log_loss_reduction: float
    top_k_prediction_count: int
    top_k_accuracy: float | None
    top_k_accuracy_for_all_k: tuple[float, ...] | None
    per_class_log_loss: tuple[float, ...]
    confusion_matrix: ConfusionMatrix

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["top_k_accuracy_for_all_k"] = (
            None if self.top_k_accuracy_for_all_k is None else list(self.top_k_accuracy_for_all_k)
        )
        out["per_class_log_loss"] = list(self.per_class_log_loss)
        out["confusion_matrix"] = self.confusion_matrix.to_dict()
        return out

    def __rich__(self) -> Group:
        table = Table(title="Multiclass classification metrics")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("micro_accuracy", _fmt(self.micro_accuracy))
        table.add_row("macro_accuracy", _fmt(self.macro_accuracy))
        table.add_row("log_loss", _fmt(self.log_loss))
        table.add_row("log_loss_reduction", _fmt(self.log_loss_reduction))
        if self.top_k_accuracy is not None:
            table.add_row(f"top_k_accuracy (k={self.top_k_prediction_count})", _fmt(self.top_k_accuracy))
        for name, loss in zip(self.confusion_matrix.class_names, self.per_class_log_loss, strict=True):
            table.add_row(f"log_loss (class {name})", _fmt(loss))
        return Group(table, self.confusion_matrix)

    def __str__(self) -> str:
        return _render(self)


@dataclasses.dataclass(frozen=True)
class ClusteringMetrics:
    """ML.NET's clustering metrics (see :mod:`onnxpipe.evaluation_multiclass` for definitions)."""

    average_distance: float
    davies_bouldin_index: float | None
    normalized_mutual_information: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __rich__(self) -> Table:
        table = Table(title="Clustering metrics")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("average_distance", _fmt(self.average_distance))
        table.add_row("davies_bouldin_index", _fmt(self.davies_bouldin_index))
        table.add_row("normalized_mutual_information", _fmt(self.normalized_mutual_information))
        return table

    def __str__(self) -> str:
        return _render(self)


# --------------------------------------------------------------------------------------------
# Column checks


def _score_type(schema: Schema, name: str, step: str) -> TensorType:
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.dtype.is_float or ct.rank != 1:
        raise ColumnTypeError(
            f"{step}: score column {name!r} must be a vector of floats (one score per class or cluster), got {ct}"
        )
    return ct


def _label_type(schema: Schema, name: str, step: str) -> TensorType:
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.is_scalar:
        raise ColumnTypeError(f"{step}: label column {name!r} must be a scalar column (any type, or a key), got {ct}")
    return ct


def _missing(values: np.ndarray, ct: TensorType) -> np.ndarray:
    if ct.key_count is not None:
        return np.asarray(values == 0)
    if ct.dtype.is_float:
        return np.asarray(np.isnan(values))
    return np.zeros(len(values), dtype=bool)


def _scores(values: Any, n: int, name: str, step: str, width: int | None) -> np.ndarray:
    """One batch of a score column as a float64 matrix (rows, slots)."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64).reshape(n, -1)
    rows = [np.asarray(v, dtype=np.float64).reshape(-1) for v in values]
    sizes = {len(r) for r in rows}
    if width is not None:
        sizes.add(width)
    if len(sizes) > 1:
        raise ShapeError(f"{step}: score column {name!r} has rows of different sizes {sorted(sizes)}")
    return np.stack(rows) if rows else np.zeros((0, width or 0))


def _batches(data: DataView, names: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for batch in data.batches():
        yield batch.num_rows, {n: from_arrow(batch.column(n), data.schema[n].type) for n in names}


def _values_of(data: DataView, name: str) -> np.ndarray:
    ct = data.schema[name].type
    parts = [np.asarray(from_arrow(b.column(name), ct)) for b in data.batches()]
    return np.concatenate(parts) if parts else np.zeros(0)


# --------------------------------------------------------------------------------------------
# Multiclass


@dataclasses.dataclass
class _ClassMap:
    names: tuple[str, ...]
    lookup: dict[Any, int] | None  # label value (or its text) -> slot; None for key labels
    by_text: bool


def _class_map(data: DataView, label: str, predicted: str, score: Column, width: int, step: str) -> _ClassMap:
    lt = data.schema[label].type
    assert isinstance(lt, TensorType)
    slots = score.slot_names if score.slot_names is not None and len(score.slot_names) == width else None
    if lt.key_count is not None:
        return _ClassMap(slots or tuple(str(k) for k in range(1, width + 1)), None, False)
    if slots is not None:
        return _ClassMap(slots, {s: i for i, s in enumerate(slots)}, True)
    values = np.concatenate([_values_of(data, label), _values_of(data, predicted)])
    values = values[~_missing(values, lt)]
    if lt.dtype is DType.STRING:
        values = values.astype(object)
    classes = np.unique(values)
    if len(classes) != width:
        raise SchemaError(
            f"{step}: score column {score.name!r} has {width} slots but no slot names to say which class each "
            f"scores, and the label and predicted label columns hold {len(classes)} distinct values; score the "
            "data with a model trained by onnxpipe (it names the slots), or use a key label"
        )
    names = tuple(str(c) for c in classes)
    return _ClassMap(names, {(c.item() if isinstance(c, np.generic) else c): i for i, c in enumerate(classes)}, False)


def _label_slots(values: np.ndarray, lt: TensorType, cmap: _ClassMap, width: int) -> np.ndarray:
    """Each label's score slot: -1 for a class the model does not have."""
    if cmap.lookup is None:
        slots = values.astype(np.int64) - 1
        return np.where(slots < width, slots, -1)
    lookup = cmap.lookup
    if cmap.by_text:
        return np.array([lookup.get(str(v), -1) for v in values], np.int64)  # the slot names' text form
    return np.array([lookup.get(v.item() if isinstance(v, np.generic) else v, -1) for v in values], np.int64)


def evaluate_multiclass(
    data: DataView,
    label_column_name: str = "Label",
    score_column_name: str = "Score",
    predicted_label_column_name: str = "PredictedLabel",
    top_k_prediction_count: int = 0,
) -> MulticlassClassificationMetrics:
    """ML.NET's multiclass metrics of scored ``data`` (see the module docstring)."""
    step = "evaluate_multiclass"
    if (
        isinstance(top_k_prediction_count, bool)
        or not isinstance(top_k_prediction_count, int)
        or top_k_prediction_count < 0
    ):
        raise InvalidArgumentError(
            f"{step}: top_k_prediction_count must be an integer >= 0 (0: no top-k accuracy), "
            f"got {top_k_prediction_count!r}"
        )
    schema = data.schema
    lt = _label_type(schema, label_column_name, step)
    st = _score_type(schema, score_column_name, step)
    pt = schema.require(predicted_label_column_name, step).type
    if not isinstance(pt, TensorType) or not pt.is_scalar or pt.dtype is not lt.dtype:
        raise ColumnTypeError(
            f"{step}: predicted label column {predicted_label_column_name!r} must have the label column's type "
            f"({lt}), got {pt}"
        )
    width = st.shape[0]
    if width is None:  # an unknown-size score vector: its size is the first row's
        first = next((b for b in data.batches() if b.num_rows), None)
        if first is None:
            raise DataError(f"{step}: the data has no rows")
        width = len(np.asarray(from_arrow(first.column(score_column_name), st)[0]))
    if width < 2:
        raise ShapeError(f"{step}: score column {score_column_name!r} must have 2 or more slots, got {width}")
    cmap = _class_map(data, label_column_name, predicted_label_column_name, schema[score_column_name], width, step)

    k = width
    top = min(top_k_prediction_count, k)
    confusion = np.zeros((k, k))
    class_loss = np.zeros(k)
    total = correct = loss = 0.0
    top_correct = np.zeros(max(top, 1))
    skipped_label = skipped_score = unknown = 0
    for n, cols in _batches(data, [label_column_name, score_column_name]):
        labels = np.asarray(cols[label_column_name])
        scores = _scores(cols[score_column_name], n, score_column_name, step, width)
        missing = _missing(labels, lt)
        bad = ~np.all(np.isfinite(scores), axis=1) & ~missing
        skipped_label += int(missing.sum())
        skipped_score += int(bad.sum())
        keep = ~(missing | bad)
        labels, scores = labels[keep], scores[keep]
        if not len(labels):
            continue
        slot = _label_slots(labels, lt, cmap, k)
        known = slot >= 0
        unknown += int((~known).sum())
        assigned = np.argmax(scores, axis=1)
        rows = np.arange(len(slot))
        p = np.where(known, scores[rows, np.maximum(slot, 0)], _EPSILON)
        row_loss = -np.log(np.clip(p, _EPSILON, 1.0))
        total += len(slot)
        loss += float(row_loss.sum())
        correct += float(np.sum(known & (assigned == slot)))
        np.add.at(confusion, (slot[known], assigned[known]), 1.0)
        np.add.at(class_loss, slot[known], row_loss[known])
        if top:
            own = scores[rows, np.maximum(slot, 0)][:, None]
            columns = np.arange(k)[None, :]
            # ML.NET's stable descending order: larger scores first, then lower slots among equal ones.
            rank = np.sum(scores > own, axis=1) + np.sum((scores == own) & (columns < slot[:, None]), axis=1)
            for j in range(top):
                top_correct[j] += float(np.sum(known & (rank <= j)))
    if total == 0:
        raise DataError(
            f"{step}: no row has a label and finite scores to evaluate ({skipped_label} rows without a label, "
            f"{skipped_score} with non-finite scores)"
        )
    if skipped_label or skipped_score or unknown:
        parts = []
        if skipped_label:
            parts.append(f"skipped {skipped_label} rows with a missing label")
        if skipped_score:
            parts.append(f"skipped {skipped_score} rows with a non-finite score")
        if unknown:
            parts.append(f"{unknown} rows have a label that is no class of the model (log-loss -ln(1e-15) each)")
        warnings.warn(f"{step}: " + "; ".join(parts), OnnxPipeWarning, stacklevel=2)

    counts = confusion.sum(axis=1)
    present = counts > 0
    macro = float(np.mean(np.diag(confusion)[present] / counts[present])) if present.any() else 0.0
    log_loss = loss / total
    prior = counts[present] / total
    entropy = float(-np.sum(prior * np.log(prior)))
    # With a single class there is no prior uncertainty to reduce (ML.NET divides by 0 there).
    single = -math.inf if log_loss > 0 else math.nan
    reduction = (entropy - log_loss) / entropy if entropy > 0 else single
    per_class = tuple(float(class_loss[i] / counts[i]) if counts[i] else 0.0 for i in range(k))
    all_k = tuple(float(c / total) for c in top_correct[:top]) if top_k_prediction_count else None
    return MulticlassClassificationMetrics(
        micro_accuracy=correct / total,
        macro_accuracy=macro,
        log_loss=log_loss,
        log_loss_reduction=reduction,
        top_k_prediction_count=top_k_prediction_count,
        top_k_accuracy=all_k[-1] if all_k else None,
        top_k_accuracy_for_all_k=all_k,
        per_class_log_loss=per_class,
        confusion_matrix=ConfusionMatrix(cmap.names, tuple(tuple(float(v) for v in row) for row in confusion)),
    )


# --------------------------------------------------------------------------------------------
# Clustering


def _feature_matrix(values: Any, n: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(n, -1)


def evaluate_clustering(
    data: DataView,
    label_column_name: str | None = None,
    score_column_name: str = "Score",
    feature_column_name: str | None = "Features",
) -> ClusteringMetrics:
    """ML.NET's clustering metrics of scored ``data`` (see the module docstring).

    ``feature_column_name=None`` skips the Davies-Bouldin index; ``label_column_name=None`` the
    normalised mutual information.
    """
    step = "evaluate_clustering"
    schema = data.schema
    st = _score_type(schema, score_column_name, step)
    lt = _label_type(schema, label_column_name, step) if label_column_name is not None else None
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
    for n, cols in _batches(data, names):
        scores = _scores(cols[score_column_name], n, score_column_name, step, width)
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
        for n, cols in _batches(data, [score_column_name, feature_column_name]):  # second pass
            scores = _scores(cols[score_column_name], n, score_column_name, step, width)
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
        keep = ~_missing(labels, lt)
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
