"""Metrics as text: rich tables, with rich imported only when something is rendered."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

__all__ = ["format_value", "metrics_table", "render"]


def format_value(value: float | None) -> str:
    """A metric in a table: 4 decimals, ``NaN``, or ``-`` for a metric that was not computed."""
    if value is None:
        return "-"
    return "NaN" if math.isnan(value) else f"{value:.4f}"


def render(renderable: RenderableType) -> str:
    """What ``print`` shows of a metrics object: its table as plain text, 120 columns wide."""
    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().rstrip()


def metrics_table(title: str, rows: Sequence[tuple[str, float | None]]) -> Table:
    """A two-column table of (metric name, value) rows."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for name, value in rows:
        table.add_row(name, format_value(value))
    return table
