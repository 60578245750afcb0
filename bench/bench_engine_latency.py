"""Single-row latency of ``PredictionEngine.predict`` on a tiny tabular model vs plain ONNX Runtime.

* plain ORT: ``session.run(None, {"X": x})`` with ``x`` a (1, 4) float32 array prepared in advance;
* onnxpipe: ``engine.predict(InRow(x=...))`` returning an ``OutRow`` dataclass, the ``InRow``
  (a flat float32[4] array, the class declares ``VectorType(1, 4)``) prepared in advance.

Also ``engine.predict_batch`` of 64 rows (µs per row) against what a user would write by hand
for the same rows: ``np.stack`` of the rows' arrays, ``session.run``, and one ``OutRow`` per row
of the output.

Calls are timed in blocks (``time.perf_counter_ns`` around a loop), blocks of the two sides
interleaved; the figure is the median over blocks of the mean per call. Targets: onnxpipe /
plain <= 1.2 for ``predict``, <= 1.3 for ``predict_batch`` (µs per call, per row).

    .venv/bin/python bench/bench_engine_latency.py [--quick] [--calls N] [--profile]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

import onnxpipe as op
from _common import Row, console, median, per_call_blocks, print_table, profile, write_results
from tiny_model import FEATURES, INPUT_NAME, build_tiny_model

TARGET = 1.2
ZIPMAP_TARGET = 1.3
BATCH_TARGET = 1.3
BATCH = 64
BLOCK = 250  # calls per timed block


@dataclass
class InRow:
    x: Annotated[npt.NDArray[np.float32], op.ColumnName("X"), op.VectorType(1, FEATURES)]


@dataclass
class IrisIn:
    x: Annotated[npt.NDArray[np.float32], op.ColumnName("float_input"), op.VectorType(3, 2)]


@dataclass
class IrisOut:
    label: Annotated[npt.NDArray[np.int64], op.ColumnName("label"), op.VectorType(3)]
    probabilities: Annotated[list[dict[int, float]], op.ColumnName("probabilities")]


# onnxruntime's own sample model (shipped in its wheel): a ZipMap output, seq(map(int64, float)).
IRIS = Path(ort.__file__).parent / "datasets" / "logreg_iris.onnx"


@dataclass
class OutRow:
    y: Annotated[npt.NDArray[np.float32], op.ColumnName("Y"), op.VectorType(1, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3000 calls instead of 20000")
    parser.add_argument("--calls", type=int, default=None, help="single-row calls per side (default 20000, quick 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile 20000 engine.predict and 2000 predict_batch calls"
    )
    args = parser.parse_args()
    calls: int = args.calls or (3000 if args.quick else 20_000)
    blocks = max(4, calls // BLOCK)

    model_bytes = build_tiny_model(args.seed)
    rng = np.random.default_rng(args.seed)
    features = rng.standard_normal((BATCH, FEATURES), dtype=np.float32)

    ctx = op.MLContext()
    # One intra-op thread on both sides: with two sessions on two cores, each session's spinning
    # thread pool would slow whichever runs next, which measures the alternation, not the code.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    model = ctx.transforms.apply_onnx_model(model_bytes=model_bytes, intra_op_num_threads=1).fit(
        ctx.data.load_from_enumerable([], InRow)
    )
    engine = ctx.model.create_prediction_engine(model, InRow, OutRow)

    x1 = np.ascontiguousarray(features[:1])  # (1, 4)
    row = InRow(x=np.array(features[0], np.float32))  # flat float32[4]
    rows = [InRow(x=np.array(f, np.float32)) for f in features]
    out = engine.predict(row)
    assert isinstance(out, OutRow)
    want = session.run(None, {INPUT_NAME: x1})[0]
    diff = float(np.abs(np.asarray(out.y).reshape(-1) - want.reshape(-1)).max())
    batch_out = engine.predict_batch(rows)
    want_batch = session.run(None, {INPUT_NAME: features})[0]
    diff = max(diff, float(np.abs(np.stack([o.y for o in batch_out]).reshape(-1) - want_batch.reshape(-1)).max()))
    console.print(f"max |onnxpipe - plain| = {diff:.3g}; OutRow.y shape {np.asarray(out.y).shape}")

    single = {
        "plain": lambda: session.run(None, {INPUT_NAME: x1}),
        "onnxpipe": lambda: engine.predict(row),
    }

    def by_hand() -> list[OutRow]:
        (y,) = session.run(None, {INPUT_NAME: np.stack([r.x for r in rows])})
        return [OutRow(y=v) for v in y]

    batched: dict[str, Callable[[], object]] = {
        "plain": by_hand,
        "onnxpipe": lambda: engine.predict_batch(rows),
    }
    iris_options = ort.SessionOptions()
    iris_options.intra_op_num_threads = 1
    iris_session = ort.InferenceSession(str(IRIS), iris_options, providers=["CPUExecutionProvider"])
    iris_model = ctx.transforms.apply_onnx_model(IRIS, intra_op_num_threads=1).fit(
        ctx.data.load_from_enumerable([], IrisIn)
    )
    iris_engine = ctx.model.create_prediction_engine(iris_model, IrisIn, IrisOut)
    iris_x = rng.random((3, 2), dtype=np.float32)
    iris_row = IrisIn(x=iris_x)
    assert iris_engine.predict(iris_row).probabilities == iris_session.run(None, {"float_input": iris_x})[1]
    zipmap = {
        "plain": lambda: iris_session.run(None, {"float_input": iris_x}),
        "onnxpipe": lambda: iris_engine.predict(iris_row),
    }
    per_call_blocks(single, 500, 2)  # warm-up
    per_call_blocks(zipmap, 500, 2)
    per_call_blocks(batched, 50, 2, BATCH)
    with console.status(f"{calls:,} single-row calls per side"):
        t1 = per_call_blocks(single, calls, blocks)
    with console.status(f"{calls:,} single-row calls per side, ZipMap model"):
        tz = per_call_blocks(zipmap, calls, blocks)
    batch_calls = max(40, calls // 16)
    with console.status(f"{batch_calls:,} calls of {BATCH} rows per side"):
        t64 = per_call_blocks(batched, batch_calls, max(4, batch_calls // 25), BATCH)

    def us(values: list[float]) -> tuple[float, ...]:
        return tuple(v * 1e6 for v in values)

    rows_out = [
        Row(
            "predict, 1 row",
            "µs",
            median(us(t1["plain"])),
            median(us(t1["onnxpipe"])),
            False,
            TARGET,
            us(t1["plain"]),
            us(t1["onnxpipe"]),
            extra={"onnxpipe_overhead_us": median(us(t1["onnxpipe"])) - median(us(t1["plain"]))},
        ),
        Row(
            f"predict_batch, per row of {BATCH}",
            "µs",
            median(us(t64["plain"])),
            median(us(t64["onnxpipe"])),
            False,
            BATCH_TARGET,
            us(t64["plain"]),
            us(t64["onnxpipe"]),
            note="plain: np.stack of the rows' arrays, session.run, one OutRow per output row",
            extra={"onnxpipe_overhead_us": median(us(t64["onnxpipe"])) - median(us(t64["plain"]))},
        ),
        Row(
            "predict, 1 row, ZipMap output",
            "µs",
            median(us(tz["plain"])),
            median(us(tz["onnxpipe"])),
            False,
            ZIPMAP_TARGET,
            us(tz["plain"]),
            us(tz["onnxpipe"]),
            note="onnxruntime's logreg_iris.onnx: label int64[3] and probabilities seq(map(int64, float))",
            extra={"onnxpipe_overhead_us": median(us(tz["onnxpipe"])) - median(us(tz["plain"]))},
        ),
    ]
    print_table(f"Prediction engine latency, tiny model, {calls:,} calls in blocks of {calls // blocks}", rows_out)
    if args.profile:
        profile(lambda: engine.predict(row), 20_000)
        profile(lambda: engine.predict_batch(rows), 2_000)
    params = {
        "calls": calls,
        "blocks": blocks,
        "batch": BATCH,
        "batch_calls": batch_calls,
        "quick": args.quick,
        "max_abs_diff_vs_plain": diff,
    }
    write_results("bench_engine_latency" + ("-quick" if args.quick else ""), params, rows_out)


if __name__ == "__main__":
    main()
