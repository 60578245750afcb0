"""Throughput of ``apply_onnx_model(...).transform`` on a tiny tabular model vs plain ONNX Runtime.

The data: N rows (1M; quick 200k) of 4 float features in an Arrow table, one
``fixed_size_list<float>[4]`` column named ``X`` (the model's input), in record batches of 65536
rows. The model: ``X -> MatMul -> Add -> Sigmoid -> Y`` (see ``tiny_model.py``), so the figures
measure the cost around ONNX Runtime, not the arithmetic.

* plain ORT, per record batch: ``batch.column(0).flatten().to_numpy().reshape(-1, 4)``, then
  ``session.run``; in the first row ("transform") it also builds the output record batch, as
  ``transform`` does (the input column plus ``Y`` as ``fixed_size_list<float>[1]``), in the second
  ("scores only", informational, the former target 0.8) it stops at the numpy scores;
* onnxpipe: ``apply_onnx_model(model_bytes=...).transform(ctx.data.load_from_arrow(table))``,
  every output record batch consumed (``for b in scored.batches(): pass``); ``load_from_arrow`` is
  timed too (as "setup").

Whole passes of the two sides alternate, P Q then Q P (``_common.lockstep(interleave="pass")``),
20 rounds. Session creation is not timed. Target: onnxpipe / plain >= 1.0 (rows/s) for the
same work (Arrow batches in, Arrow batches out).

    .venv/bin/python bench/bench_tabular_transform.py [--quick] [--rows N] [--rounds R]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pyarrow as pa

import onnxpipe as op
from _common import RunTimer, attach_run_timer, console, lockstep, lockstep_row, print_table, profile, write_results
from tiny_model import FEATURES, INPUT_NAME, OUTPUT_NAME, build_tiny_model

TARGET = 1.0
CHUNK = 65536


def features_table(x: np.ndarray, chunk: int) -> pa.Table:
    """``x`` (rows, 4) as a zero-copy ``fixed_size_list<float>[4]`` column, in record batches of ``chunk``."""
    column = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), FEATURES)
    table = pa.Table.from_arrays([column], names=[INPUT_NAME])
    return pa.Table.from_batches(table.to_batches(max_chunksize=chunk), schema=table.schema)


def plain_batch(session: ort.InferenceSession, batch: pa.RecordBatch) -> list[np.ndarray]:
    x = batch.column(0).flatten().to_numpy().reshape(-1, FEATURES)
    outputs: list[np.ndarray] = session.run(None, {INPUT_NAME: x})
    return outputs


def plain_transform_batch(session: ort.InferenceSession, batch: pa.RecordBatch) -> pa.RecordBatch:
    """What a hand-written Arrow-to-Arrow transform does: the batch plus the scores as a column."""
    (y,) = plain_batch(session, batch)
    scores = pa.FixedSizeListArray.from_arrays(pa.array(y.reshape(-1)), y.shape[1])
    return pa.RecordBatch.from_arrays([batch.column(0), scores], names=[INPUT_NAME, OUTPUT_NAME])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows instead of 1M")
    parser.add_argument("--rows", type=int, default=None, help="number of rows (default 1M, quick 200k)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds, one pass each way (default 20; even)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also cProfile 200 onnxpipe passes")
    args = parser.parse_args()
    n_rows: int = args.rows or (200_000 if args.quick else 1_000_000)
    rounds: int = args.rounds or 20

    model_bytes = build_tiny_model(args.seed)
    x = np.random.default_rng(args.seed).standard_normal((n_rows, FEATURES), dtype=np.float32)
    table = features_table(x, CHUNK)
    record_batches = table.to_batches()

    ctx = op.MLContext()
    session = ort.InferenceSession(model_bytes, ort.SessionOptions(), providers=["CPUExecutionProvider"])
    model = ctx.transforms.apply_onnx_model(model_bytes=model_bytes)

    scored = model.transform(ctx.data.load_from_arrow(table))
    got = np.asarray(scored.column(OUTPUT_NAME)).reshape(-1)
    want = np.concatenate([plain_batch(session, b)[0] for b in record_batches]).reshape(-1)
    diff = float(np.abs(got - want).max())
    console.print(f"{n_rows:,} rows in {len(record_batches)} record batches; max |onnxpipe - plain| = {diff:.3g}")

    # Time inside session.run on each side, to split onnxpipe's own cost from ORT's.
    plain_timer = RunTimer(session)
    piped_timer = attach_run_timer(model)
    units = [functools.partial(plain_transform_batch, session, b) for b in record_batches]
    score_units = [functools.partial(plain_batch, session, b) for b in record_batches]

    def start_piped() -> Iterator[pa.RecordBatch]:
        return model.transform(ctx.data.load_from_arrow(table)).batches()

    units[0]()  # warm-up
    for _ in start_piped():
        pass
    with console.status(f"{rounds} rounds of {n_rows:,} rows"):
        results = lockstep(units, start_piped, rounds, plain_timer, piped_timer, interleave="pass")
        score_results = lockstep(score_units, start_piped, rounds, plain_timer, piped_timer, interleave="pass")
    rows = [
        lockstep_row(f"transform, {n_rows:,} rows x {FEATURES}", "rows/s", n_rows, results, TARGET),
        lockstep_row(f"vs scores only (no output batch), {n_rows:,} rows", "rows/s", n_rows, score_results, None),
    ]
    print_table(f"Tiny tabular model transform, record batches of {CHUNK}, {rounds} rounds of alternating passes", rows)
    params = {
        "rows": n_rows,
        "features": FEATURES,
        "record_batch_rows": CHUNK,
        "record_batches": len(record_batches),
        "rounds": rounds,
        "quick": args.quick,
        "max_abs_diff_vs_plain": diff,
    }
    if args.profile:
        profile(lambda: sum(1 for _ in start_piped()), 200)
    extra = {
        "rounds": [dataclasses.asdict(r) for r in results],
        "score_only_rounds": [dataclasses.asdict(r) for r in score_results],
    }
    write_results("bench_tabular_transform" + ("-quick" if args.quick else ""), params, rows, extra)


if __name__ == "__main__":
    main()
