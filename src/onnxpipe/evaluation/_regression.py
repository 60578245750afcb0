"""Regression metrics (ML.NET's ``RegressionEvaluator``)."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe._display import RichDisplay
from onnxpipe.data._loaders import as_data_view
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError
from onnxpipe.evaluation._columns import check_scalar, read_columns
from onnxpipe.evaluation._tables import metrics_table, render

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["RegressionMetrics", "evaluate_regression"]


@dataclasses.dataclass(frozen=True)
class RegressionMetrics(RichDisplay):
    """Regression metrics (ML.NET's ``RegressionMetrics``; see :func:`evaluate_regression`)."""

    mean_absolute_error: float
    mean_squared_error: float
    root_mean_squared_error: float
    r_squared: float
    loss_function: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __rich__(self) -> Table:
        return metrics_table("Regression metrics", [(k, float(v)) for k, v in self.to_dict().items()])

    def __str__(self) -> str:
        return render(self)


def evaluate_regression(
    data: DataView | Any, label_column_name: str = "Label", score_column_name: str = "Score"
) -> RegressionMetrics:
    """Regression metrics of scored ``data``; rows with a NaN label or NaN score are skipped.

    ``mean_absolute_error``, ``mean_squared_error``, ``root_mean_squared_error``,
    ``r_squared = 1 - SSE / SST`` (NaN when the labels are constant) and ``loss_function``, the mean
    of ML.NET's default squared loss (so equal to ``mean_squared_error``).
    """
    step = "evaluate_regression"
    data = as_data_view(data, step)
    schema = data.schema
    check_scalar(schema, label_column_name, step, "label")
    check_scalar(schema, score_column_name, step, "score", floats=True)
    cols = read_columns(data, list(dict.fromkeys([label_column_name, score_column_name])), step)
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
