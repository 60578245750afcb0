"""Throughput of ``apply_onnx_model(...).transform`` on a ResNet50-v2-shaped model vs plain ONNX Runtime.

Both sides score the same random images in the same batches on CPUExecutionProvider with ONNX
Runtime's default SessionOptions (session creation is not timed):

* plain ORT: ``session.run`` over numpy arrays of shape (B, 3, 224, 224) stacked in advance;
* onnxpipe: ``apply_onnx_model(model_bytes=..., batch_size=B).transform(ctx.data.load_from_arrow(table))``
  consumed fully (every output record batch built); ``table`` holds the images as a metadata-free,
  zero-copy ``fixed_size_list<float>[150528]`` column, in record batches of B rows. Building the
  view and the lazy transform is timed too ("setup").

The two sides run in lockstep, one batch each in turn (see ``_common.lockstep``): this host's
speed swings by 2-3x within seconds, and pairing the batches in time is what makes the ratio
meaningful. The model (``resnet50v2.py``) is built once and cached in ``bench/models/``.
Target: onnxpipe / plain >= 0.97 (images/s).

    .venv/bin/python bench/bench_resnet_transform.py [--quick] [--images N] [--rounds R] [--profile]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pyarrow as pa

import onnxpipe as op
from _common import (
    MODELS_DIR,
    LockstepRound,
    RunTimer,
    attach_run_timer,
    console,
    lockstep,
    lockstep_row,
    print_table,
    profile,
    write_results,
)
from resnet50v2 import IMAGE_SHAPE, INPUT_NAME, MODEL_VERSION, OUTPUT_NAME, cached_model_bytes

TARGET = 0.97
IMAGE_SIZE = math.prod(IMAGE_SHAPE)  # 150528


def images_table(images: np.ndarray) -> pa.Table:
    """The images as one zero-copy ``fixed_size_list<float>[150528]`` column, no metadata."""
    flat = pa.array(images.reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(flat, IMAGE_SIZE)
    return pa.Table.from_arrays([column], names=[INPUT_NAME])


def chunked(table: pa.Table, rows: int) -> pa.Table:
    """The same table as record batches of ``rows`` rows (zero-copy slices)."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), schema=table.schema)


def check_same_scores(
    ctx: op.MLContext, model: op.Transformer, session: ort.InferenceSession, images: np.ndarray
) -> float:
    """Max abs difference between onnxpipe's and plain ORT's scores on a few images."""
    got = np.asarray(model.transform(ctx.data.load_from_arrow(images_table(images))).column(OUTPUT_NAME))
    want = session.run(None, {INPUT_NAME: images})[0]
    return float(np.abs(got.reshape(want.shape) - want).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 images instead of 32")
    parser.add_argument("--images", type=int, default=None, help="number of images (default 32, quick 16)")
    parser.add_argument("--rounds", type=int, default=None, help="lockstep rounds over all images (default 6, quick 4)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shared-session",
        action="store_true",
        help="plain ORT calls run on the session onnxpipe opened (removes session-to-session effects)",
    )
    parser.add_argument("--profile", action="store_true", help="also cProfile onnxpipe's pass (largest batch size)")
    args = parser.parse_args()
    n_images: int = args.images or (16 if args.quick else 32)
    rounds: int = args.rounds or (4 if args.quick else 6)
    batch_sizes: list[int] = args.batch_sizes
    if n_images < max(batch_sizes):
        parser.error(f"--images ({n_images}) must be at least the largest batch size ({max(batch_sizes)})")

    with console.status("building / loading the model"):
        model_bytes, model_path, built = cached_model_bytes(MODELS_DIR)
    console.print(f"model: {model_path.name} ({len(model_bytes) / 1e6:.0f} MB, {'built now' if built else 'cached'})")

    rng = np.random.default_rng(args.seed)
    images = rng.random((n_images, *IMAGE_SHAPE), dtype=np.float32)
    table = images_table(images)
    assert table.schema.metadata is None

    ctx = op.MLContext()
    session = ort.InferenceSession(model_bytes, ort.SessionOptions(), providers=["CPUExecutionProvider"])
    models = {b: ctx.transforms.apply_onnx_model(model_bytes=model_bytes, batch_size=b) for b in batch_sizes}

    diff = check_same_scores(ctx, models[batch_sizes[0]], session, images[:2])
    console.print(f"max |onnxpipe - plain| on 2 images: {diff:.3g}")

    # Time spent inside session.run on each side, to split onnxpipe's own cost from ORT's.
    plain_timer = RunTimer(session)
    rows = []
    results: dict[str, list[LockstepRound]] = {}
    for b in batch_sizes:
        model = models[b]
        piped_timer = attach_run_timer(model)
        plain_session = session
        if args.shared_session:
            if piped_timer is None:
                parser.error("--shared-session: cannot reach onnxpipe's session")
            plain_session = piped_timer.session
        table_b = chunked(table, b)
        stacked = [np.ascontiguousarray(images[s : s + b]) for s in range(0, n_images, b)]
        units = [functools.partial(plain_session.run, None, {INPUT_NAME: x}) for x in stacked]

        def start_piped(model: op.Transformer = model, table_b: pa.Table = table_b) -> Iterator[pa.RecordBatch]:
            return model.transform(ctx.data.load_from_arrow(table_b)).batches()

        # Warm-up: one batch each way (allocations, ORT's per-shape caches, lazy imports).
        units[0]()
        next(start_piped(model, chunked(images_table(images[:b]), b)))
        # One session serves both sides with --shared-session: its timer cannot tell them apart.
        timers = (None, None) if args.shared_session else (plain_timer, piped_timer)
        with console.status(f"batch {b}: {rounds} rounds of {n_images} images"):
            results[str(b)] = lockstep(units, start_piped, rounds, *timers)
        rows.append(lockstep_row(f"batch {b}", "images/s", n_images, results[str(b)], TARGET))
    print_table(f"ResNet50-v2 (random weights) transform, {n_images} images, {rounds} lockstep rounds", rows)
    params = {
        "images": n_images,
        "batch_sizes": batch_sizes,
        "rounds": rounds,
        "quick": args.quick,
        "model": model_path.name,
        "model_version": MODEL_VERSION,
        "max_abs_diff_vs_plain": diff,
        "shared_session": args.shared_session,
    }
    if args.profile:
        b = max(batch_sizes)
        table_b = chunked(table, b)
        profile(lambda: sum(1 for _ in models[b].transform(ctx.data.load_from_arrow(table_b)).batches()), 1)
    per_unit = {b: [dataclasses.asdict(r) for r in rs] for b, rs in results.items()}
    write_results("bench_resnet_transform" + ("-quick" if args.quick else ""), params, rows, {"rounds": per_unit})


if __name__ == "__main__":
    main()
