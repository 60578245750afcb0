"""Images end to end: JPEG files -> decode -> resize -> pixels -> ResNet50-v2, onnxpipe vs a hand-written loop.

N JPEG photos of a realistic size (640x480, cut from the three ML.NET test photos: rotated,
cropped, resized; synthetic pictures when ../shared/data is absent) are written to a temporary
folder. Both sides score them in batches of B with the same ResNet50-v2-shaped model (random
weights, ``resnet50v2.py``) on CPUExecutionProvider:

* plain: the loop everyone writes: for each file, Pillow ``open`` + ``convert("RGB")`` +
  ``resize((224, 224), BILINEAR)`` + ``np.asarray`` + transpose to CHW + float32 / 255; stack B of
  them and call ``session.run``;
* onnxpipe: ``load_images -> resize_images(224, 224, resizing="fill") -> extract_pixels(scale=1/255)
  -> apply_onnx_model(batch_size=B)`` over a view of the file paths in batches of B, consumed
  batch by batch.

The same decode/resize is done both ways (Pillow's bilinear resize of the whole photo), so the
pixels agree (checked). The two sides run in lockstep, batch by batch (``_common.lockstep``).
Preprocessing alone (decode + resize + pixels, no model) is timed too, whole passes alternating,
with the CPU utilisation of each side: process CPU time / wall time (``time.process_time`` over
``time.perf_counter``), which approaches the number of cores when decoding runs in parallel.
Target: onnxpipe / plain >= 0.95 (images/s, with the model).

    .venv/bin/python bench/bench_images.py [--quick] [--images N] [--batch-size B] [--rounds R] [--preprocess-only]
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
from PIL import Image

import onnxpipe as op
from _common import (
    MODELS_DIR,
    Row,
    RunTimer,
    attach_run_timer,
    console,
    lockstep,
    lockstep_row,
    median,
    print_table,
    write_results,
)
from resnet50v2 import INPUT_NAME, MODEL_VERSION, OUTPUT_NAME, cached_model_bytes

TARGET = 0.95
PHOTO_SIZE = (640, 480)  # width, height of the generated JPEG files
SIDE = 224
SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlnet" / "images"
ROTATIONS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


def _synthetic(rng: np.random.Generator) -> Image.Image:
    """A smooth colour picture with noise (JPEG-compresses like a photo, unlike pure noise)."""
    h, w = PHOTO_SIZE[1], PHOTO_SIZE[0]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.random(3) * 6.28
    planes = [127 + 100 * np.sin(x / (40 + 20 * k) + y / (60 + 10 * k) + phase[k]) for k in range(3)]
    pixels = np.stack(planes, axis=-1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_photos(folder: Path, count: int, seed: int) -> tuple[list[Path], str]:
    """``count`` JPEG files of PHOTO_SIZE in ``folder``; returns the paths and where they came from."""
    rng = np.random.default_rng(seed)
    sources: list[Image.Image] = []
    if SHARED_PHOTOS.is_dir():
        for name in ("banana.jpg", "hotdog.jpg", "tomato.jpg"):
            with Image.open(SHARED_PHOTOS / name) as im:
                sources.append(im.convert("RGB"))
    origin = "ML.NET test photos (rotated, cropped, resized)" if sources else "synthetic"
    paths = []
    for i in range(count):
        im = sources[i % len(sources)] if sources else _synthetic(rng)
        rotation = ROTATIONS[int(rng.integers(len(ROTATIONS)))]
        if rotation is not None:
            im = im.transpose(rotation)
        w, h = im.size
        keep = rng.uniform(0.7, 1.0)
        cw, ch = int(w * keep), int(h * keep)
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = im.crop((left, top, left + cw, top + ch)).resize(PHOTO_SIZE, Image.Resampling.BICUBIC)
        path = folder / f"photo_{i:04d}.jpg"
        im.save(path, quality=90)
        paths.append(path)
    return paths, origin


def plain_pixels(paths: list[Path]) -> np.ndarray:
    """The hand-written preprocessing of one batch: (B, 3, 224, 224) float32 in [0, 1]."""
    images = []
    for path in paths:
        with Image.open(path) as im:
            rgb = im.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        images.append(np.asarray(rgb).transpose(2, 0, 1).astype(np.float32) / 255)
    return np.stack(images)


def preprocessing(ctx: op.MLContext, data: op.DataView) -> op.TransformerChain:
    """onnxpipe's decode + resize + pixels (nothing to learn: fitting only checks the schema)."""
    chain: op.TransformerChain = (
        ctx.transforms.load_images("image", input_column_name="path")
        .append(ctx.transforms.resize_images("image", SIDE, SIDE, resizing="fill"))
        .append(ctx.transforms.extract_pixels(INPUT_NAME, "image", scale=1 / 255))
        .fit(data)
    )
    return chain


def paths_view(ctx: op.MLContext, paths: list[Path], batch_size: int) -> op.DataView:
    return ctx.data.load_from_arrow(pa.table({"path": [str(p) for p in paths]}), batch_size=batch_size)


def timed_passes(sides: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and process CPU seconds of whole passes, the order of the sides alternating by round."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in sides}
    names = list(sides)
    for r in range(rounds):
        gc.collect()
        for name in names if r % 2 == 0 else names[::-1]:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            sides[name]()
            out[name][0].append(time.perf_counter() - wall0)
            out[name][1].append(time.process_time() - cpu0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 images, 2 rounds")
    parser.add_argument("--images", type=int, default=None, help="number of photos (default 64, quick 16)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=None, help="lockstep rounds with the model (default 3, quick 2)")
    parser.add_argument("--preprocess-rounds", type=int, default=6, help="passes of preprocessing alone, each side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preprocess-only", action="store_true", help="time decode + resize + pixels only (no model: quick)"
    )
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    n_images: int = args.images or (16 if args.quick else 64)
    rounds: int = args.rounds or (2 if args.quick else 3)
    batch: int = args.batch_size
    if n_images < batch or n_images % batch:
        parser.error(f"--images ({n_images}) must be a multiple of --batch-size ({batch})")

    with console.status("building / loading the model"):
        model_bytes, model_path, built = cached_model_bytes(MODELS_DIR)
    console.print(f"model: {model_path.name} ({len(model_bytes) / 1e6:.0f} MB, {'built now' if built else 'cached'})")

    ctx = op.MLContext()
    with tempfile.TemporaryDirectory(prefix="onnxpipe-bench-images-") as tmp:
        with console.status(f"writing {n_images} JPEG photos"):
            paths, origin = make_photos(Path(tmp), n_images, args.seed)
        console.print(f"{n_images} JPEG photos {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} from {origin} in {tmp}")
        groups = [paths[s : s + batch] for s in range(0, n_images, batch)]
        view = paths_view(ctx, paths, batch)

        prep = preprocessing(ctx, view)
        pixels = np.asarray(prep.transform(view).column(INPUT_NAME))
        pixel_diff = float(np.abs(pixels - np.concatenate([plain_pixels(g) for g in groups])).max())
        console.print(f"max |onnxpipe pixels - plain pixels| over {n_images} photos: {pixel_diff:.3g}")

        # Preprocessing alone: whole passes, with CPU time.
        passes = timed_passes(
            {
                "plain": lambda: [plain_pixels(g) for g in groups],
                "onnxpipe": lambda: sum(1 for _ in prep.transform(view).batches()),
            },
            args.preprocess_rounds,
        )
        walls = {name: w for name, (w, _) in passes.items()}
        cpu_use = {name: sum(c) / sum(w) for name, (w, c) in passes.items()}
        prep_row = Row(
            "preprocessing only",
            "images/s",
            plain=n_images * len(walls["plain"]) / sum(walls["plain"]),
            onnxpipe=n_images * len(walls["onnxpipe"]) / sum(walls["onnxpipe"]),
            higher_is_better=True,
            plain_samples=tuple(n_images / w for w in walls["plain"]),
            onnxpipe_samples=tuple(n_images / w for w in walls["onnxpipe"]),
            note="whole passes, order alternating; cpu use = process CPU time / wall time",
            extra={
                "plain_cpu_use": cpu_use["plain"],
                "onnxpipe_cpu_use": cpu_use["onnxpipe"],
                "median_paired_ratio": median([p / q for p, q in zip(walls["plain"], walls["onnxpipe"], strict=True)]),
            },
        )

        rows = [prep_row]
        score_diff: float | None = None
        if not args.preprocess_only:
            # End to end with the model, batch by batch in lockstep.
            session = ort.InferenceSession(model_bytes, ort.SessionOptions(), providers=["CPUExecutionProvider"])
            scorer = ctx.transforms.apply_onnx_model(model_bytes=model_bytes, batch_size=batch)
            full = prep.append(scorer)
            plain_timer = RunTimer(session)
            piped_timer = attach_run_timer(scorer)

            def plain_unit(group: list[Path]) -> object:
                return session.run([OUTPUT_NAME], {INPUT_NAME: plain_pixels(group)})

            units = [functools.partial(plain_unit, g) for g in groups]

            def start_piped() -> Iterator[pa.RecordBatch]:
                return full.transform(view).batches()

            scores = np.asarray(full.transform(paths_view(ctx, paths[:batch], batch)).column(OUTPUT_NAME))
            want = session.run([OUTPUT_NAME], {INPUT_NAME: plain_pixels(groups[0])})[0]
            score_diff = float(np.abs(scores.reshape(want.shape) - want).max())
            console.print(f"max |onnxpipe scores - plain scores| on {batch} photos: {score_diff:.3g}")
            with console.status(f"{rounds} lockstep rounds of {n_images} photos, batch {batch}"):
                results = lockstep(units, start_piped, rounds, plain_timer, piped_timer)
            model_row = lockstep_row(f"end to end, batch {batch}", "images/s", n_images, results, TARGET)
            rows.insert(0, model_row)

    load = os.getloadavg()
    print_table(f"Images end to end: {n_images} JPEG {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, CPU, load {load[0]:.1f}", rows)
    console.print(
        "end to end: decode + resize + pixels + ResNet50-v2 (random weights), batch by batch in lockstep; "
        "preprocessing only: decode + resize + pixels, whole passes"
    )
    console.print(
        f"CPU use while preprocessing (process CPU s / wall s, {os.cpu_count()} cores): onnxpipe "
        f"{cpu_use['onnxpipe']:.2f}, plain loop {cpu_use['plain']:.2f}"
    )
    params = {
        "images": n_images,
        "photo_size": list(PHOTO_SIZE),
        "photos_from": origin,
        "batch_size": batch,
        "rounds": rounds,
        "preprocess_rounds": args.preprocess_rounds,
        "quick": args.quick,
        "model": model_path.name,
        "model_version": MODEL_VERSION,
        "max_abs_pixel_diff_vs_plain": pixel_diff,
        "max_abs_score_diff_vs_plain": score_diff,
        "load_average_at_start": list(load_at_start),  # the environment's figure is taken when writing
        "load_average_at_end": list(load),
    }
    suffix = ("-quick" if args.quick else "") + ("-preprocess" if args.preprocess_only else "")
    write_results("bench_images" + suffix, params, rows)


if __name__ == "__main__":
    main()
