"""Binary classification metrics (ML.NET's ``BinaryClassifierEvaluator``)."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe._display import RichDisplay
from onnxpipe.data._loaders import as_data_view
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError
from onnxpipe.evaluation._columns import check_scalar, read_columns
from onnxpipe.evaluation._confusion import ConfusionMatrix, ratio
from onnxpipe.evaluation._tables import metrics_table, render
from onnxpipe.schema import DType, Schema, TensorType

if TYPE_CHECKING:
    from rich.console import Group

__all__ = ["BinaryClassificationMetrics", "evaluate_binary"]

_CLIP = 1e-15


@dataclasses.dataclass(frozen=True)
class BinaryClassificationMetrics(RichDisplay):
    """Binary classification metrics (ML.NET's ``CalibratedBinaryClassificationMetrics``; see
    :func:`evaluate_binary` for their definitions).

    ``log_loss`` and ``log_loss_reduction`` are NaN when the data has no probability column.
    """

    accuracy: float
    area_under_roc_curve: float
    area_under_precision_recall_curve: float
    f1_score: float
    positive_precision: float
    positive_recall: float
    negative_precision: float
    negative_recall: float
    log_loss: float
    log_loss_reduction: float
    entropy: float
    confusion_matrix: ConfusionMatrix

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "confusion_matrix"
        }
        out["confusion_matrix"] = self.confusion_matrix.to_dict()
        return out

    def __rich__(self) -> Group:
        from rich.console import Group

        rows = [
            (f.name, float(getattr(self, f.name))) for f in dataclasses.fields(self) if f.name != "confusion_matrix"
        ]
        return Group(metrics_table("Binary classification metrics", rows), self.confusion_matrix)

    def __str__(self) -> str:
        return render(self)


def _optional(schema: Schema, name: str | None, default: str, step: str) -> str | None:
    """``name`` if the data has it; None when it is omitted or the default name is absent."""
    if name is None or (name == default and name not in schema):
        return None
    schema.require(name, step)  # a name the caller chose must exist
    return name


def _binary_labels(values: np.ndarray, name: str, step: str) -> tuple[np.ndarray, np.ndarray]:
    """(is positive, is usable) per row; NaN labels are unusable, anything but 0/1/bool is an error."""
    if values.dtype == np.bool_:
        return values, np.ones(len(values), dtype=bool)
    y = values.astype(np.float64)
    usable = ~np.isnan(y)
    bad = usable & (y != 0) & (y != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{step}: label column {name!r} has the value {values[i].item()!r} (row {i}); binary labels must be bool "
            "or the numbers 0 and 1"
        )
    return y == 1, usable


def _entropy(p: float) -> float:
    """Entropy in bits of a Bernoulli(p) variable."""
    if p <= 0 or p >= 1:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)  # average ranks: a tie between a positive and a negative counts 1/2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _auprc(scores: np.ndarray, positive: np.ndarray) -> float:
    n_pos = int(positive.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")  # descending; ties keep data order, like LINQ's OrderByDescending
    is_pos = positive[order]
    precision = np.cumsum(is_pos) / np.arange(1, len(is_pos) + 1)
    before = np.concatenate([[1.0], precision[:-1]])
    return float(((before + precision) / 2)[is_pos].sum() / n_pos)


def evaluate_binary(
    data: DataView | Any,
    label_column_name: str = "Label",
    score_column_name: str = "Score",
    probability_column_name: str | None = "Probability",
    predicted_label_column_name: str | None = "PredictedLabel",
) -> BinaryClassificationMetrics:
    """Binary classification metrics of scored ``data``, with ML.NET's names and definitions.

    ``probability_column_name`` and ``predicted_label_column_name`` are used when the data has
    them (pass None to ignore them); a name other than the default must exist.

    Definitions (ML.NET's, with the differences stated):

    * Rows with a NaN label or a non-finite score are skipped.
    * Confusion counts use ``PredictedLabel`` when the column exists, else ``Score > 0`` (ML.NET's
      evaluator thresholds the raw score at 0; every ML.NET and onnxpipe binary trainer writes
      ``PredictedLabel = Score > 0``, so both agree on their output).
    * Precision / recall with an empty denominator are 0 (as ML.NET); ``f1_score`` is then NaN (0/0).
    * ``area_under_roc_curve``: the probability that a random positive scores above a random
      negative, ties counting one half (exact, on every row; ML.NET's default is also exact). It is
      NaN when one class is absent. Equals ``sklearn.metrics.roc_auc_score``.
    * ``area_under_precision_recall_curve``: ML.NET's "lower trapezoid" estimator. Rows are sorted by
      descending score (ties keep their order in the data); with ``P`` positives and ``prec_k`` the
      precision of the first ``k`` rows (``prec_0 = 1``)::

          AUPRC = 1/P * sum over positive rows k of (prec_{k-1} + prec_k) / 2

      It is not scikit-learn's ``average_precision_score`` (``1/P * sum prec_k``, ties grouped): the
      trapezoid averages each step's precision with the (never higher) one before it, so it is
      slightly lower.
      ML.NET samples at most 100,000 rows for it; onnxpipe uses every row. 0 when there is no positive.
    * ``log_loss``: mean of ``-log2(p)`` for positives and ``-log2(1 - p)`` for negatives, in bits as
      ML.NET (``sklearn.metrics.log_loss / ln 2``). ML.NET does not clip, so a float32 probability
      that rounds to exactly 0 or 1 on the wrong side gives +inf; onnxpipe clips ``p`` to
      ``[1e-15, 1 - 1e-15]`` (scikit-learn's classic eps) so one such row costs about 50 bits instead.
    * ``entropy``: the label prior's entropy in bits, ``H(p) = -p log2 p - (1-p) log2 (1-p)``;
      ``log_loss_reduction = (H - log_loss) / H`` (a fraction, as ML.NET 1.x; NaN when H is 0).
      Without a probability column, ``log_loss`` and ``log_loss_reduction`` are NaN.
    """
    step = "evaluate_binary"
    data = as_data_view(data, step)
    schema = data.schema
    check_scalar(schema, label_column_name, step, "label", bool_ok=True)
    check_scalar(schema, score_column_name, step, "score", floats=True)
    prob_name = _optional(schema, probability_column_name, "Probability", step)
    if prob_name is not None:
        check_scalar(schema, prob_name, step, "probability", floats=True)
    pred_name = _optional(schema, predicted_label_column_name, "PredictedLabel", step)
    if pred_name is not None:
        ct = schema[pred_name].type
        if not (isinstance(ct, TensorType) and ct.is_scalar and ct.dtype is DType.BOOL):
            raise ColumnTypeError(f"{step}: predicted label column {pred_name!r} is {ct}; a bool scalar is expected")

    names = list(dict.fromkeys(n for n in (label_column_name, score_column_name, prob_name, pred_name) if n))
    cols = read_columns(data, names, step)
    positive, usable = _binary_labels(cols[label_column_name], label_column_name, step)
    scores = cols[score_column_name].astype(np.float64)
    usable &= np.isfinite(scores)
    if not usable.any():
        raise DataError(
            f"{step}: no row has both a label and a finite score in {score_column_name!r}; nothing to evaluate"
        )
    positive, scores = positive[usable], scores[usable]
    predicted = cols[pred_name][usable] if pred_name else scores > 0

    tp = int((positive & predicted).sum())
    fn = int((positive & ~predicted).sum())
    fp = int((~positive & predicted).sum())
    tn = int((~positive & ~predicted).sum())
    n = tp + fn + fp + tn
    pos_precision, pos_recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    pos_sum = pos_precision + pos_recall
    f1 = 2 * pos_precision * pos_recall / pos_sum if pos_sum > 0 else math.nan
    prior = _entropy((tp + fn) / n)

    log_loss = log_loss_reduction = math.nan
    if prob_name is not None:
        prob = cols[prob_name][usable].astype(np.float64)
        if not np.isnan(prob).any():  # ML.NET: one NaN probability makes the log-loss NaN
            p = np.clip(prob, _CLIP, 1 - _CLIP)
            log_loss = float(np.mean(-np.log2(np.where(positive, p, 1 - p))))
            log_loss_reduction = (prior - log_loss) / prior if prior > 0 else math.nan

    return BinaryClassificationMetrics(
        accuracy=(tp + tn) / n,
        area_under_roc_curve=_auc(scores, positive),
        area_under_precision_recall_curve=_auprc(scores, positive),
        f1_score=f1,
        positive_precision=pos_precision,
        positive_recall=pos_recall,
        negative_precision=ratio(tn, tn + fn),
        negative_recall=ratio(tn, tn + fp),
        log_loss=log_loss,
        log_loss_reduction=log_loss_reduction,
        entropy=prior,
        confusion_matrix=ConfusionMatrix(((tp, fn), (fp, tn))),
    )
