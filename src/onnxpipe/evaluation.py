"""Evaluation metrics for scored data (ML.NET's ``BinaryClassifierEvaluator`` and ``RegressionEvaluator``).

:func:`evaluate_binary` and :func:`evaluate_regression` read the label and the columns a trainer
wrote (``Score``, ``Probability``, ``PredictedLabel``) and return frozen metrics objects with
ML.NET's metric names in snake_case. Each prints as a table (``print(metrics)``) and has
``to_dict()``.

Definitions (ML.NET's, with the differences stated):

* Rows with a NaN label or a non-finite score are skipped (binary; regression skips NaN scores).
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
* Regression: ``mean_absolute_error``, ``mean_squared_error``, ``root_mean_squared_error``,
  ``r_squared = 1 - SSE / SST`` (NaN when the labels are constant) and ``loss_function``, the mean
  of ML.NET's default squared loss (so equal to ``mean_squared_error``).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError
from onnxpipe.schema import DType, Schema, TensorType

__all__ = [
    "BinaryClassificationMetrics",
    "ConfusionMatrix",
    "RegressionMetrics",
    "evaluate_binary",
    "evaluate_regression",
]

_CLIP = 1e-15


def _fmt(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.4f}"


def _render(renderable: Any) -> str:
    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().rstrip()


def _metrics_table(title: str, rows: Sequence[tuple[str, float]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for name, value in rows:
        table.add_row(name, _fmt(value))
    return table


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (true class, predicted class): ``counts[i][j]`` rows whose truth is class ``i``
    were predicted as class ``j``. Binary matrices list ``("positive", "negative")`` as ML.NET."""

    counts: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...] = ("positive", "negative")

    def __post_init__(self) -> None:
        k = len(self.class_names)
        if k < 2 or len(self.counts) != k or any(len(row) != k for row in self.counts):
            raise DataError(
                f"a confusion matrix needs a {k}x{k} table of counts for classes {list(self.class_names)}, "
                f"got {self.counts!r}"
            )

    @property
    def number_of_classes(self) -> int:
        return len(self.class_names)

    @property
    def per_class_precision(self) -> tuple[float, ...]:
        """For each class: the fraction of rows predicted as it that truly are (0 if none predicted)."""
        k = self.number_of_classes
        return tuple(_ratio(self.counts[j][j], sum(self.counts[i][j] for i in range(k))) for j in range(k))

    @property
    def per_class_recall(self) -> tuple[float, ...]:
        """For each class: the fraction of its rows predicted as it (0 if it has no rows)."""
        return tuple(_ratio(row[i], sum(row)) for i, row in enumerate(self.counts))

    def to_numpy(self) -> np.ndarray:
        return np.array(self.counts, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "counts": [list(row) for row in self.counts],
            "per_class_precision": list(self.per_class_precision),
            "per_class_recall": list(self.per_class_recall),
        }

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title="Confusion table", title_justify="left")
        table.add_column("truth \\ predicted")
        for name in self.class_names:
            table.add_column(name, justify="right")
        table.add_column("Recall", justify="right")
        for name, row, recall in zip(self.class_names, self.counts, self.per_class_recall, strict=True):
            table.add_row(name, *(str(c) for c in row), _fmt(recall))
        table.add_section()
        table.add_row("Precision", *(_fmt(p) for p in self.per_class_precision), "")
        return table

    def __str__(self) -> str:
        return _render(self)


@dataclasses.dataclass(frozen=True)
class BinaryClassificationMetrics:
    """Binary classification metrics (ML.NET's ``CalibratedBinaryClassificationMetrics``).

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

    def __rich__(self) -> Any:
        from rich.console import Group

        rows = [
            (f.name, float(getattr(self, f.name))) for f in dataclasses.fields(self) if f.name != "confusion_matrix"
        ]
        return Group(_metrics_table("Binary classification metrics", rows), self.confusion_matrix)

    def __str__(self) -> str:
        return _render(self)


@dataclasses.dataclass(frozen=True)
class RegressionMetrics:
    """Regression metrics (ML.NET's ``RegressionMetrics``)."""

    mean_absolute_error: float
    mean_squared_error: float
    root_mean_squared_error: float
    r_squared: float
    loss_function: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __rich__(self) -> Any:
        return _metrics_table("Regression metrics", [(k, float(v)) for k, v in self.to_dict().items()])

    def __str__(self) -> str:
        return _render(self)


# --------------------------------------------------------------------------------------------
# Reading and checking the columns


def _scalar(schema: Schema, name: str, step: str, role: str, *, floats: bool = False, bool_ok: bool = False) -> None:
    ct = schema.require(name, step).type
    if isinstance(ct, TensorType) and ct.is_scalar and not ct.key_count:
        if ct.dtype.is_float if floats else ct.dtype.is_numeric:
            return
        if bool_ok and ct.dtype is DType.BOOL:
            return
    expected = "a float scalar" if floats else "a numeric scalar" + (" or bool" if bool_ok else "")
    raise ColumnTypeError(f"{step}: {role} column {name!r} is {ct}; {expected} is expected")


def _optional(schema: Schema, name: str | None, default: str, step: str) -> str | None:
    """``name`` if the data has it; None when it is omitted or the default name is absent."""
    if name is None or (name == default and name not in schema):
        return None
    schema.require(name, step)  # a name the caller chose must exist
    return name


def _read(data: DataView, names: Sequence[str], step: str) -> dict[str, np.ndarray]:
    cols = data.arrays(names)
    if not len(cols[names[0]]):
        raise DataError(f"{step}: the data has no rows; metrics need at least one scored row")
    return cols


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
    from scipy.stats import rankdata  # type: ignore[import-untyped]

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


# --------------------------------------------------------------------------------------------
# Evaluators


def evaluate_binary(
    data: DataView,
    label_column_name: str = "Label",
    score_column_name: str = "Score",
    probability_column_name: str | None = "Probability",
    predicted_label_column_name: str | None = "PredictedLabel",
) -> BinaryClassificationMetrics:
    """Binary classification metrics of scored ``data`` (see the module docstring for definitions).

    ``probability_column_name`` and ``predicted_label_column_name`` are used when the data has
    them (pass None to ignore them); a name other than the default must exist.
    """
    step = "evaluate_binary"
    schema = data.schema
    _scalar(schema, label_column_name, step, "label", bool_ok=True)
    _scalar(schema, score_column_name, step, "score", floats=True)
    prob_name = _optional(schema, probability_column_name, "Probability", step)
    if prob_name is not None:
        _scalar(schema, prob_name, step, "probability", floats=True)
    pred_name = _optional(schema, predicted_label_column_name, "PredictedLabel", step)
    if pred_name is not None:
        ct = schema[pred_name].type
        if not (isinstance(ct, TensorType) and ct.is_scalar and ct.dtype is DType.BOOL):
            raise ColumnTypeError(f"{step}: predicted label column {pred_name!r} is {ct}; a bool scalar is expected")

    names = list(dict.fromkeys(n for n in (label_column_name, score_column_name, prob_name, pred_name) if n))
    cols = _read(data, names, step)
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
    pos_precision, pos_recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
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
        negative_precision=_ratio(tn, tn + fn),
        negative_recall=_ratio(tn, tn + fp),
        log_loss=log_loss,
        log_loss_reduction=log_loss_reduction,
        entropy=prior,
        confusion_matrix=ConfusionMatrix(((tp, fn), (fp, tn))),
    )


def evaluate_regression(
    data: DataView, label_column_name: str = "Label", score_column_name: str = "Score"
) -> RegressionMetrics:
    """Regression metrics of scored ``data``; rows with a NaN label or NaN score are skipped."""
    step = "evaluate_regression"
    schema = data.schema
    _scalar(schema, label_column_name, step, "label")
    _scalar(schema, score_column_name, step, "score", floats=True)
    cols = _read(data, list(dict.fromkeys([label_column_name, score_column_name])), step)
    y = cols[label_column_name].astype(np.float64)
    s = cols[score_column_name].astype(np.float64)
    usable = ~np.isnan(y) & ~np.isnan(s)
    if not usable.any():
        raise DataError(f"{step}: no row has both a label and a score; nothing to evaluate")
    y, s = y[usable], s[usable]
    with np.errstate(all="ignore"):  # infinite scores give infinite errors, as in ML.NET
        err = s - y
        mse = float(np.mean(err**2))
        total = float(np.sum((y - y.mean()) ** 2))
        r2 = 1 - float(np.sum(err**2)) / total if total > 0 else math.nan
        return RegressionMetrics(
            mean_absolute_error=float(np.mean(np.abs(err))),
            mean_squared_error=mse,
            root_mean_squared_error=math.sqrt(mse),
            r_squared=r2,
            loss_function=mse,
        )
