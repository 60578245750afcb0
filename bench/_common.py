"""Shared helpers for the onnxpipe benchmarks: timing, environment, tables and JSON results.

The benchmark scripts import this module as ``_common`` (they are run as scripts, so their own
folder is on ``sys.path``).
"""

from __future__ import annotations

import cProfile
import dataclasses
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
from rich.console import Console
from rich.table import Table

import onnxpipe

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MODELS_DIR = BENCH_DIR / "models"

console = Console(width=None if sys.stdout.isatty() else 150)


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a result table: a case measured both ways.

    ``higher_is_better`` says whether the figures are throughputs (ratio = onnxpipe / plain,
    the target is a minimum) or latencies (ratio = onnxpipe / plain, the target is a maximum).
    ``limit`` is a bound on onnxpipe's own figure (in ``unit``; a maximum for latencies), for
    cases judged in absolute terms, alone or with the ratio's ``target``.
    """

    case: str
    unit: str
    plain: float
    onnxpipe: float
    higher_is_better: bool
    target: float | None = None
    plain_samples: tuple[float, ...] = ()
    onnxpipe_samples: tuple[float, ...] = ()
    note: str = ""
    extra: dict[str, float] = dataclasses.field(default_factory=dict)  # more figures, printed as columns
    limit: float | None = None

    @property
    def ratio(self) -> float:
        return self.onnxpipe / self.plain if self.plain else float("nan")

    @property
    def target_text(self) -> str | None:
        sign = ">=" if self.higher_is_better else "<="
        parts = [] if self.target is None else [f"{sign} {self.target}"]
        if self.limit is not None:
            parts.append(f"{sign} {self.limit} {self.unit}")
        return ", ".join(parts) or None

    @property
    def passed(self) -> bool | None:
        checks = [] if self.target is None else [(self.ratio, self.target)]
        if self.limit is not None:
            checks.append((self.onnxpipe, self.limit))
        if not checks:
            return None
        return all(v >= t if self.higher_is_better else v <= t for v, t in checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "unit": self.unit,
            "plain_ort": self.plain,
            "onnxpipe": self.onnxpipe,
            "ratio": self.ratio,
            "ratio_definition": "onnxpipe / plain_ort",
            "target": self.target_text,
            "passed": self.passed,
            "plain_ort_samples": list(self.plain_samples),
            "onnxpipe_samples": list(self.onnxpipe_samples),
            "note": self.note,
            **self.extra,
        }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class RunTimer:
    """Adds up the wall time spent inside one session's runs: ``InferenceSession.run``, or the
    callable ``owner.attribute`` through which onnxpipe runs it (the attribute is wrapped).

    Used to split a pass into "inside ONNX Runtime" and "everything else" (onnxpipe's own work,
    or the numpy preparation of the plain loop). The wrapper costs well under a microsecond a call.
    """

    def __init__(self, session: ort.InferenceSession, owner: object | None = None, attribute: str = "run") -> None:
        self.session = session
        self.ns = 0
        self.calls = 0
        owner = session if owner is None else owner
        original = getattr(owner, attribute)

        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return original(*args, **kwargs)
            finally:
                self.ns += time.perf_counter_ns() - start
                self.calls += 1

        object.__setattr__(owner, attribute, run)  # onnxpipe's components refuse plain assignment

    def take(self) -> float:
        """Seconds spent in ``run`` since the last ``take``."""
        seconds, self.ns, self.calls = self.ns / 1e9, 0, 0
        return seconds


@dataclasses.dataclass
class LockstepRound:
    """One round of :func:`lockstep`: seconds per unit of work on each side."""

    plain: list[float]  # one entry per unit (a batch run by plain ORT)
    piped: list[float]  # one entry per unit (one output record batch of onnxpipe)
    piped_setup: float  # onnxpipe's work before the first unit (load_from_arrow, transform, iterator)
    piped_tail: float  # the final next() that ends onnxpipe's stream
    plain_in_ort: float = 0.0
    piped_in_ort: float = 0.0
    interleave: str = "unit"

    @property
    def plain_total(self) -> float:
        return sum(self.plain)

    @property
    def piped_total(self) -> float:
        return self.piped_setup + sum(self.piped) + self.piped_tail


def lockstep(
    plain_units: Sequence[Callable[[], object]],
    start_piped: Callable[[], Iterator[object]],
    rounds: int,
    plain_timer: RunTimer | None = None,
    piped_timer: RunTimer | None = None,
    interleave: Literal["unit", "pass"] = "unit",
) -> list[LockstepRound]:
    """Time plain ORT and onnxpipe on the same batches, ``rounds`` times, paired in time.

    ``plain_units[i]`` scores batch ``i`` with plain ORT; ``start_piped()`` builds onnxpipe's
    lazy stream (timed as setup) whose ``i``-th item is the same batch scored by onnxpipe.

    * ``interleave="unit"``: the two sides alternate batch by batch (P Q | Q P | P Q ...). For
      long batches (ResNet) on a host whose speed swings within seconds, this pairs the two
      sides far better than timing whole passes one after the other.
    * ``interleave="pass"``: each round runs a whole plain pass and a whole onnxpipe pass, the
      order alternating between rounds. For short passes (the tiny model: ~10 ms per 1M rows);
      it keeps each session's thread pool to itself for a whole pass, as in real use, instead of
      two sessions' ORT worker threads fighting over 2 cores at every batch.
    """
    out = []
    for r in range(rounds):
        gc.collect()
        for t in (plain_timer, piped_timer):
            if t is not None:
                t.take()
        one = _Round(plain_units, start_piped)
        if interleave == "unit":
            one.start_stream()
            for i in range(len(plain_units)):
                for side in ("plain", "piped") if (r + i) % 2 == 0 else ("piped", "plain"):
                    one.run_unit(side, i)
            one.end_stream()
        else:
            for side in ("plain", "piped") if r % 2 == 0 else ("piped", "plain"):
                if side == "piped":
                    one.start_stream()
                for i in range(len(plain_units)):
                    one.run_unit(side, i)
                if side == "piped":
                    one.end_stream()
        out.append(
            LockstepRound(
                one.plain,
                one.piped,
                one.setup,
                one.tail,
                plain_timer.take() if plain_timer else 0.0,
                piped_timer.take() if piped_timer else 0.0,
                interleave,
            )
        )
    return out


class _Round:
    """The timings of one round of :func:`lockstep`."""

    def __init__(self, plain_units: Sequence[Callable[[], object]], start_piped: Callable[[], Iterator[object]]):
        self._plain_units = plain_units
        self._start_piped = start_piped
        self._stream: Iterator[object] = iter(())
        self.plain: list[float] = []
        self.piped: list[float] = []
        self.setup = 0.0
        self.tail = 0.0

    def run_unit(self, side: str, i: int) -> None:
        start = time.perf_counter_ns()
        if side == "plain":
            self._plain_units[i]()
        else:
            next(self._stream)
        (self.plain if side == "plain" else self.piped).append((time.perf_counter_ns() - start) / 1e9)

    def start_stream(self) -> None:
        start = time.perf_counter_ns()
        self._stream = self._start_piped()
        self.setup = (time.perf_counter_ns() - start) / 1e9

    def end_stream(self) -> None:
        start = time.perf_counter_ns()
        left = sum(1 for _ in self._stream)
        self.tail = (time.perf_counter_ns() - start) / 1e9
        if left:
            raise RuntimeError(f"onnxpipe produced {left} more batches than plain ORT ran")


def lockstep_row(
    case: str, unit: str, items: int, rounds: Sequence[LockstepRound], target: float | None, note: str = ""
) -> Row:
    """A throughput row (``items`` per round) from lockstep rounds.

    The throughputs are over all rounds (items / total time); the extra figures: the median
    paired ratio (of balanced quads of units, or of rounds; see below), each side's time outside
    ``session.run`` per round (median; onnxpipe's includes its setup) and onnxpipe's setup time
    per round (median).
    """
    plain_rate = [items / r.plain_total for r in rounds]
    piped_rate = [items / r.piped_total for r in rounds]
    if rounds[0].interleave == "unit":
        # Units run P Q | Q P | P Q ...: each side goes first in every other pair, and the one that
        # goes second pays for switching sessions (caches, ORT's spinning worker threads). A
        # "quad" of two consecutive pairs is balanced, so its time ratio is the fairest small
        # sample. Pairs are taken in run order across rounds (an even number of rounds keeps every
        # quad balanced even with one unit per round).
        plain_units = [t for r in rounds for t in r.plain]
        piped_units = [t for r in rounds for t in r.piped]
        paired = [
            sum(plain_units[i : i + 2]) / sum(piped_units[i : i + 2]) for i in range(0, len(plain_units) - 1, 2)
        ] or [plain_units[0] / piped_units[0]]
    else:  # whole passes, P Q then Q P: each round's ratio
        paired = [r.plain_total / r.piped_total for r in rounds]
    piped_total = sum(r.piped_total for r in rounds)
    extra = {"median_paired_ratio": median(paired)}
    if all(r.piped_in_ort and r.plain_in_ort for r in rounds):  # both sides' session.run were timed
        extra["onnxpipe_non_ort_ms"] = 1e3 * median([r.piped_total - r.piped_in_ort for r in rounds])
        extra["plain_non_ort_ms"] = 1e3 * median([r.plain_total - r.plain_in_ort for r in rounds])
        extra["onnxpipe_non_ort_pct"] = 100 * (1 - sum(r.piped_in_ort for r in rounds) / piped_total)
    extra["onnxpipe_setup_ms"] = 1e3 * median([r.piped_setup for r in rounds])
    return Row(
        case,
        unit,
        plain=items * len(rounds) / sum(r.plain_total for r in rounds),
        onnxpipe=items * len(rounds) / piped_total,
        higher_is_better=True,
        target=target,
        plain_samples=tuple(plain_rate),
        onnxpipe_samples=tuple(piped_rate),
        note=note,
        extra=extra,
    )


def per_call_blocks(
    cases: dict[str, Callable[[], object]], calls: int, blocks: int, calls_per_item: int = 1
) -> dict[str, list[float]]:
    """Per-call seconds of each case, one figure per block of ``calls // blocks`` calls.

    Blocks of the cases are interleaved (A B, B A, ...); the figure of a block is its total time
    divided by the number of calls (times ``calls_per_item``, e.g. rows per call).
    """
    per_block = max(1, calls // blocks)
    out: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for b in range(blocks):
        order = names if b % 2 == 0 else names[::-1]
        for name in order:
            fn = cases[name]
            loop = range(per_block)
            start = time.perf_counter_ns()
            for _ in loop:
                fn()
            elapsed = time.perf_counter_ns() - start
            out[name].append(elapsed / 1e9 / (per_block * calls_per_item))
    return out


def attach_run_timer(transformer: object) -> RunTimer | None:
    """A :class:`RunTimer` on an ``apply_onnx_model`` transformer's session, if it can be reached.

    The session is private to onnxpipe (``_get_session``), and onnxpipe calls it through its
    ``_run_fn`` (ONNX Runtime's binding, without ``session.run``'s per-call checks), which is what
    is timed. A benchmark-only diagnostic, skipped (None) when the internals change.
    """
    get_session = getattr(transformer, "_get_session", None)
    if get_session is None:
        return None
    session = get_session()
    if not isinstance(session, ort.InferenceSession):
        return None
    if callable(getattr(transformer, "_run_fn", None)):
        return RunTimer(session, transformer, "_run_fn")
    return RunTimer(session)


def profile(fn: Callable[[], object], iterations: int, top: int = 30) -> None:
    """Run ``fn`` ``iterations`` times under cProfile and print the top functions (own time, then
    cumulative), paths shortened to ``src/onnxpipe/...``. cProfile inflates small, frequent calls;
    read the figures as a ranking, not as absolute costs."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(iterations):
        fn()
    prof.disable()
    for key in ("tottime", "cumulative"):
        stream = io.StringIO()
        stats = pstats.Stats(prof, stream=stream)
        stats.sort_stats(key).print_stats(top)
        text = stream.getvalue().replace(str(BENCH_DIR.parent) + "/", "").replace(sys.prefix + "/", "")
        console.rule(f"cProfile, {iterations} iterations, sorted by {key}")
        console.print(text, markup=False, highlight=False, soft_wrap=True)


def environment() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(load) if load else None,
        "onnxpipe": onnxpipe.__version__,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "ort_providers": ["CPUExecutionProvider"],
    }


def fmt(value: float, unit: str) -> str:
    if unit == "µs":
        return f"{value:,.2f}"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def print_table(title: str, rows: Sequence[Row]) -> None:
    table = Table(title=title)
    table.add_column("case")
    table.add_column("unit")
    table.add_column("plain ORT", justify="right")
    table.add_column("onnxpipe", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="center")
    extras = list(dict.fromkeys(k for r in rows for k in r.extra))
    for key in extras:
        table.add_column(key.replace("_", " "), justify="right")
    for r in rows:
        target = (r.target_text or "").replace(">=", "≥").replace("<=", "≤")
        mark = {True: "[green]OK[/]", False: "[red]MISS[/]", None: ""}[r.passed]
        more = [f"{r.extra[k]:.3g}" if k in r.extra else "" for k in extras]
        figures = [fmt(r.plain, r.unit), fmt(r.onnxpipe, r.unit), f"{r.ratio:.3f}"]
        table.add_row(r.case, r.unit, *figures, target, mark, *more)
    console.print(table)


def write_results(name: str, params: dict[str, Any], rows: Sequence[Row], extra: dict[str, Any] | None = None) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload: dict[str, Any] = {
        "benchmark": name,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "params": params,
        "environment": environment(),
        "results": [r.to_json() for r in rows],
        "all_targets_met": all(r.passed is not False for r in rows),
    }
    if extra:
        payload.update(extra)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"results written to [bold]{path.relative_to(BENCH_DIR.parent)}[/]")
    return path
