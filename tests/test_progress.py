"""Progress bars: ``DataView.with_progress``, and the delayed bar of sinks that read a whole view."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from rich.console import Console

import onnxpipe as op
from onnxpipe import VectorType, _progress
from onnxpipe.errors import InvalidArgumentError

ctx = op.MLContext(seed=0)


@dataclass
class Scores:
    Score: Annotated[npt.NDArray[np.float32], VectorType(4)]


def scores(rows: int, batch_size: int) -> op.DataView:
    return ctx.data.load_from_enumerable(
        [Scores(np.full(4, i, np.float32)) for i in range(rows)], Scores, batch_size=batch_size
    )


def recording_console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=100, force_terminal=terminal, color_system=None), buffer


def test_with_progress_counts_rows_and_keeps_the_data() -> None:
    data = scores(10, 3)
    console, buffer = recording_console()
    shown = data.with_progress("scoring photos", enabled=True, console=console)
    assert buffer.getvalue() == ""  # lazy: nothing drawn before a sink reads
    assert shown.row_count == 10 and shown.schema == data.schema
    np.testing.assert_array_equal(shown.column("Score"), data.column("Score"))
    text = buffer.getvalue()
    assert "scoring photos" in text and "10/10 rows" in text


def test_with_progress_unknown_total_and_early_stop() -> None:
    data = scores(10, 4)
    unknown = op.DataView(data.schema, data.batches)  # no row_count
    console, buffer = recording_console()
    assert unknown.with_progress(enabled=True, console=console).count_rows() == 10
    assert "scoring" in buffer.getvalue() and "10/? rows" in buffer.getvalue()
    console, buffer = recording_console()
    assert len(data.with_progress(enabled=True, console=console).take(2).column("Score")) == 2
    assert "4/10 rows" in buffer.getvalue()  # one batch read, then the stream was closed


def test_with_progress_is_off_when_the_console_is_not_a_terminal() -> None:
    data = scores(5, 2)
    console, buffer = recording_console()
    assert data.with_progress(console=console).count_rows() == 5
    assert buffer.getvalue() == ""
    with pytest.raises(InvalidArgumentError, match=r"enabled must be True, False or None, got 'yes'"):
        data.with_progress(enabled="yes")  # type: ignore[arg-type]


def slow_batches(n: int, pause: float) -> Iterator[pa.RecordBatch]:
    for i in range(n):
        time.sleep(pause)
        yield pa.record_batch({"x": pa.array([i, i], pa.int64())})


def test_sink_progress_appears_only_after_the_delay_on_a_terminal() -> None:
    console, buffer = recording_console(terminal=True)
    quick = list(_progress.read_with_progress(slow_batches(3, 0.0), 6, "reading", delay=60.0, console=console))
    assert [b.num_rows for b in quick] == [2, 2, 2] and buffer.getvalue() == ""  # a short run shows nothing
    console, buffer = recording_console(terminal=True)
    slow = list(_progress.read_with_progress(slow_batches(3, 0.02), 6, "reading", delay=0.01, console=console))
    assert [b.column(0).to_pylist() for b in slow] == [[0, 0], [1, 1], [2, 2]]
    assert "reading" in buffer.getvalue()


def test_sink_progress_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    console, buffer = recording_console(terminal=True)
    monkeypatch.setenv("ONNXPIPE_PROGRESS", "0")
    list(_progress.read_with_progress(slow_batches(2, 0.02), 4, "reading", delay=0.0, console=console))
    assert buffer.getvalue() == ""  # off even on a terminal
    console, buffer = recording_console(terminal=False)
    monkeypatch.setenv("ONNXPIPE_PROGRESS", "1")
    list(_progress.read_with_progress(slow_batches(2, 0.02), 4, "reading", delay=0.0, console=console))
    assert "reading" in buffer.getvalue()  # on even in a pipe


def test_to_pandas_runs_a_lazy_pipeline_once() -> None:
    reads = 0
    data = scores(5, 2)

    def source() -> Iterator[pa.RecordBatch]:
        nonlocal reads
        reads += 1
        return data.batches()

    view = ctx.transforms.copy_columns("Other", "Score").transform(op.DataView(data.schema, source, 5))
    pytest.importorskip("pandas")
    frame = view.to_pandas()
    assert list(frame.columns) == ["Score", "Other"] and reads == 1  # one pass for every column


def test_force_color_is_not_a_terminal_and_one_bar_shows_at_a_time(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich would call stderr a terminal; a log is not one
    monkeypatch.delenv("ONNXPIPE_PROGRESS", raising=False)
    list(_progress.read_with_progress(slow_batches(2, 0.01), 4, "reading", delay=0.0))
    assert capsys.readouterr().err == ""
    console, buffer = recording_console(terminal=True)
    outer = _progress.read_with_progress(slow_batches(3, 0.02), 6, "outer", delay=0.0, console=console)
    inner_console, inner_buffer = recording_console(terminal=True)
    assert len(list(_progress.read_with_progress(outer, 6, "inner", delay=0.01, console=inner_console))) == 3
    assert "outer" in buffer.getvalue() and inner_buffer.getvalue() == ""  # the delayed bar stayed away


def shows(buffer: io.StringIO, text: str, within: float = 10.0) -> bool:
    """Whether ``text`` is drawn within ``within`` seconds (the spinner redraws on its own thread)."""
    deadline = time.monotonic() + within
    while text not in buffer.getvalue():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_step_status_appears_after_the_delay_and_names_the_step() -> None:
    console, buffer = recording_console(terminal=True)
    with _progress.StepStatus("fitting", 2, delay=60.0, console=console) as status:
        status.step(0, "quick")
    assert buffer.getvalue() == ""  # short work shows nothing
    console, buffer = recording_console(terminal=True)
    with _progress.StepStatus("fitting", 2, delay=0.01, console=console) as status:
        status.step(0, "normalize_min_max(x)")
        assert shows(buffer, "fitting step 1/2: normalize_min_max(x)")
        status.step(1, "lbfgs_logistic_regression(Features)")
        assert shows(buffer, "fitting step 2/2: lbfgs_logistic_regression(Features)")
    assert not _progress._active_bars


def test_estimator_chain_fit_reports_each_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxpipe import core

    seen: list[tuple[int, str]] = []

    class Recorder:
        def __init__(self, verb: str, total: int) -> None:
            assert (verb, total) == ("fitting", 2)

        def __enter__(self) -> Recorder:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def step(self, index: int, name: str) -> None:
            seen.append((index, name))

    monkeypatch.setattr(core, "StepStatus", Recorder)
    data = scores(6, 3)
    chain = ctx.transforms.concatenate("F", "Score").append(ctx.transforms.normalize_min_max("F"))
    chain.fit(data)
    assert seen == [(0, "concatenate(F <- Score)"), (1, "normalize_min_max(F)")]
