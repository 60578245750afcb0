"""Multiclass classification metrics (ML.NET's ``MulticlassClassification.Evaluate``)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe._display import RichDisplay
from onnxpipe.data._convert import from_arrow
from onnxpipe.data._loaders import as_data_view
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError, OnnxPipeWarning, SchemaError, ShapeError
from onnxpipe.evaluation._columns import column_batches, label_type, missing_labels, score_matrix, score_type
from onnxpipe.evaluation._confusion import ConfusionMatrix
from onnxpipe.evaluation._tables import metrics_table, render
from onnxpipe.schema import Column, DType, KeyType, TensorType

if TYPE_CHECKING:
    from rich.console import Group

__all__ = ["MulticlassClassificationMetrics", "evaluate_multiclass"]

_EPSILON = 1e-15  # ML.NET's floor on the probability of the true class in the log-loss


@dataclasses.dataclass(frozen=True)
class MulticlassClassificationMetrics(RichDisplay):
    """ML.NET's multiclass metrics (see :func:`evaluate_multiclass` for definitions)."""

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
        from rich.console import Group

        rows: list[tuple[str, float | None]] = [
            ("micro_accuracy", self.micro_accuracy),
            ("macro_accuracy", self.macro_accuracy),
            ("log_loss", self.log_loss),
            ("log_loss_reduction", self.log_loss_reduction),
        ]
        if self.top_k_accuracy is not None:
            rows.append((f"top_k_accuracy (k={self.top_k_prediction_count})", self.top_k_accuracy))
        for name, loss in zip(self.confusion_matrix.class_names, self.per_class_log_loss, strict=True):
            rows.append((f"log_loss (class {name})", loss))
        return Group(metrics_table("Multiclass classification metrics", rows), self.confusion_matrix)

    def __str__(self) -> str:
        return render(self)


def _values_of(data: DataView, name: str) -> np.ndarray:
    ct = data.schema[name].type
    parts = [np.asarray(from_arrow(b.column(name), ct)) for b in data.batches()]
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclasses.dataclass
class _ClassMap:
    names: tuple[str, ...]
    lookup: dict[Any, int] | None  # label value (or its text) -> slot; None for key labels
    by_text: bool


def _class_map(data: DataView, label: str, predicted: str, score: Column, width: int, step: str) -> _ClassMap:
    lt = data.schema[label].type
    assert isinstance(lt, TensorType)
    slots = score.slot_names if score.slot_names is not None and len(score.slot_names) == width else None
    if isinstance(lt, KeyType):
        return _ClassMap(slots or tuple(str(k) for k in range(1, width + 1)), None, False)
    if slots is not None:
        return _ClassMap(slots, {s: i for i, s in enumerate(slots)}, True)
    values = np.concatenate([_values_of(data, label), _values_of(data, predicted)])
    values = values[~missing_labels(values, lt)]
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


def _label_slots(values: np.ndarray, cmap: _ClassMap, width: int) -> np.ndarray:
    """Each label's score slot: -1 for a class the model does not have."""
    if cmap.lookup is None:
        slots = values.astype(np.int64) - 1
        return np.where(slots < width, slots, -1)
    lookup = cmap.lookup
    if cmap.by_text:
        return np.array([lookup.get(str(v), -1) for v in values], np.int64)  # the slot names' text form
    return np.array([lookup.get(v.item() if isinstance(v, np.generic) else v, -1) for v in values], np.int64)


def evaluate_multiclass(
    data: DataView | Any,
    label_column_name: str = "Label",
    score_column_name: str = "Score",
    predicted_label_column_name: str = "PredictedLabel",
    top_k_prediction_count: int = 0,
) -> MulticlassClassificationMetrics:
    """ML.NET's multiclass metrics of scored ``data``.

    * The class of each ``Score`` slot comes from the score column's slot names (the fitted trainers
      write the class labels there); a key label's class ``k`` is slot ``k - 1``; without slot names,
      the classes are the sorted distinct values of the label and predicted label columns, which must
      then be as many as the score slots.
    * The assigned class is the slot with the largest score (the first on ties), as in ML.NET; the
      predicted label column must be present (and of the label's type) unless the label is a key.
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
    """
    step = "evaluate_multiclass"
    data = as_data_view(data, step)
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
    lt = label_type(schema, label_column_name, step)
    st = score_type(schema, score_column_name, step)
    # A key label names its classes itself (key k is slot k - 1), so the predicted label column is
    # not read: as in ML.NET, it may already be mapped back to values (map_key_to_value).
    pt = lt if isinstance(lt, KeyType) else schema.require(predicted_label_column_name, step).type
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
    confusion = np.zeros((k, k), dtype=np.int64)
    class_loss = np.zeros(k)
    total = correct = loss = 0.0
    top_correct = np.zeros(max(top, 1))
    skipped_label = skipped_score = unknown = 0
    for n, cols in column_batches(data, [label_column_name, score_column_name]):
        labels = np.asarray(cols[label_column_name])
        scores = score_matrix(cols[score_column_name], n, score_column_name, step, width)
        missing = missing_labels(labels, lt)
        bad = ~np.all(np.isfinite(scores), axis=1) & ~missing
        skipped_label += int(missing.sum())
        skipped_score += int(bad.sum())
        keep = ~(missing | bad)
        labels, scores = labels[keep], scores[keep]
        if not len(labels):
            continue
        slot = _label_slots(labels, cmap, k)
        known = slot >= 0
        unknown += int((~known).sum())
        assigned = np.argmax(scores, axis=1)
        rows = np.arange(len(slot))
        p = np.where(known, scores[rows, np.maximum(slot, 0)], _EPSILON)
        row_loss = -np.log(np.clip(p, _EPSILON, 1.0))
        total += len(slot)
        loss += float(row_loss.sum())
        correct += float(np.sum(known & (assigned == slot)))
        np.add.at(confusion, (slot[known], assigned[known]), 1)
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

    counts = confusion.sum(axis=1).astype(np.float64)
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
        confusion_matrix=ConfusionMatrix(tuple(tuple(int(v) for v in row) for row in confusion), cmap.names),
    )
