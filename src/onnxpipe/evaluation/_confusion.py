"""The confusion matrix of binary and multiclass metrics."""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe.errors import DataError
from onnxpipe.evaluation._tables import format_value, render

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["ConfusionMatrix", "ratio"]


def ratio(num: float, den: float) -> float:
    """``num / den``, 0 for an empty denominator (ML.NET's precision and recall of no rows)."""
    return num / den if den > 0 else 0.0


def _all_text(values: object) -> bool:
    return isinstance(values, tuple | list) and bool(values) and all(isinstance(v, str) for v in values)


@dataclasses.dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of rows by true class and predicted class: ``counts[i][j]`` rows whose truth is class
    ``i`` were predicted as class ``j``. Binary matrices list ``("positive", "negative")`` as ML.NET;
    multiclass ones the model's classes in score-slot order.

    Per-class precision and recall with an empty denominator (a class never predicted, a class
    without rows) are 0, as ML.NET.
    """

    counts: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...] = ("positive", "negative")

    def __post_init__(self) -> None:
        if _all_text(self.counts) and not _all_text(self.class_names):
            # onnxpipe.evaluation_multiclass's ConfusionMatrix took (class_names, counts).
            warnings.warn(
                "ConfusionMatrix(class_names, counts) is deprecated and will stop working in onnxpipe 0.3; "
                "pass ConfusionMatrix(counts, class_names)",
                DeprecationWarning,
                stacklevel=3,
            )
            names, counts = self.counts, self.class_names
            object.__setattr__(self, "counts", counts)
            object.__setattr__(self, "class_names", names)
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
        return tuple(ratio(self.counts[j][j], sum(self.counts[i][j] for i in range(k))) for j in range(k))

    @property
    def per_class_recall(self) -> tuple[float, ...]:
        """For each class: the fraction of its rows predicted as it (0 if it has no rows)."""
        return tuple(ratio(row[i], sum(row)) for i, row in enumerate(self.counts))

    def to_numpy(self) -> np.ndarray:
        return np.array(self.counts, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "counts": [list(row) for row in self.counts],
            "per_class_precision": list(self.per_class_precision),
            "per_class_recall": list(self.per_class_recall),
        }

    def __rich__(self) -> Table:
        from rich.table import Table

        table = Table(title="Confusion matrix", title_justify="left")
        table.add_column("truth \\ predicted")
        for name in self.class_names:
            table.add_column(name, justify="right")
        table.add_column("Recall", justify="right")
        for name, row, recall in zip(self.class_names, self.counts, self.per_class_recall, strict=True):
            table.add_row(name, *(str(c) for c in row), format_value(recall))
        table.add_section()
        table.add_row("Precision", *(format_value(p) for p in self.per_class_precision), "")
        return table

    def __str__(self) -> str:
        return render(self)
