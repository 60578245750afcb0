"""Progress shown on a terminal: the row-counting bar of a stream of record batches and the
one-line status of multi-step work (rich, imported only when something is drawn).

Both show on stderr only when it is a terminal, unless the environment variable
``ONNXPIPE_PROGRESS`` says otherwise (``0`` never, ``1`` always), and only one at a time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console

__all__ = ["PROGRESS_DELAY", "StepStatus", "read_with_progress"]

_SETTINGS = {"0": False, "false": False, "off": False, "no": False, "1": True, "true": True, "on": True, "yes": True}

_active_bars: list[Any] = []  # the bars and statuses shown now (one at a time), process-wide

PROGRESS_DELAY = 2.0
"""Seconds of work after which a sink that reads a whole view starts showing progress."""


def _progress_bar(console: Console, description: str, total: int | None, *, transient: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
    progress.start()
    progress.add_task(description, total=total)
    return progress


def _progress_enabled(enabled: bool | None, console: Console | None) -> bool:
    """``enabled``, else ``ONNXPIPE_PROGRESS``, else whether the console (default: stderr) is a terminal."""
    if enabled is None:
        enabled = _SETTINGS.get(os.environ.get("ONNXPIPE_PROGRESS", "").strip().lower())
    if enabled is None:
        # rich counts FORCE_COLOR (set in many CI systems) as a terminal; logs must stay clean.
        enabled = console.is_terminal if console is not None else sys.stderr.isatty()
    return enabled


class StepStatus:
    """A one-line status of long multi-step work ("fitting step 2/4: normalize_min_max(x)"),
    shown with a spinner once the work has taken ``delay`` seconds, under the same rules as the
    progress bars (a terminal, ``ONNXPIPE_PROGRESS``, one at a time). Use as a context manager."""

    def __init__(self, verb: str, total: int, *, delay: float = PROGRESS_DELAY, console: Console | None = None) -> None:
        self._verb, self._total, self._delay, self._console = verb, total, delay, console
        self._text = verb
        self._lock = threading.Lock()
        self._status: Any = None
        self._timer: threading.Timer | None = None
        self._closed = False

    def __enter__(self) -> StepStatus:
        if _progress_enabled(None, self._console):
            self._timer = threading.Timer(self._delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def step(self, index: int, name: str) -> None:
        with self._lock:
            self._text = f"{self._verb} step {index + 1}/{self._total}: {name}"
            if self._status is not None:
                self._status.update(self._text)

    def _show(self) -> None:
        with self._lock:
            if self._closed or _active_bars:
                return
            from rich.console import Console

            console = self._console if self._console is not None else Console(stderr=True)
            self._status = console.status(self._text)
            self._status.start()
            _active_bars.append(self._status)

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True
            if self._status is not None:
                self._status.stop()
                _active_bars.remove(self._status)


def read_with_progress(
    batches: Iterator[pa.RecordBatch],
    total: int | None,
    description: str,
    *,
    delay: float = PROGRESS_DELAY,
    console: Console | None = None,
    enabled: bool | None = None,
) -> Iterator[pa.RecordBatch]:
    """``batches`` unchanged; after ``delay`` seconds a progress bar counts the rows.

    ``enabled`` True or False decides; None follows ``ONNXPIPE_PROGRESS`` and otherwise shows
    the bar only when the console (default: stderr) is a terminal. A bar that appeared after a
    delay disappears when done; one shown from the start (``delay=0``) stays.
    """
    if not _progress_enabled(enabled, console):
        yield from batches
        return
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    start, done, bar = time.perf_counter(), 0, None
    try:
        for batch in batches:
            done += batch.num_rows
            # One bar at a time: a delayed bar does not start while another one is shown.
            if bar is None and time.perf_counter() - start >= delay and not (delay > 0 and _active_bars):
                bar = _progress_bar(console, description, total, transient=delay > 0)
                _active_bars.append(bar)
            if bar is not None:
                bar.update(bar.task_ids[0], completed=done)
            yield batch
    finally:
        if bar is not None:
            bar.stop()
            _active_bars.remove(bar)
