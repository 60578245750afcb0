"""Peak memory of streaming a large CSV through a fitted onnxpipe pipeline (target: peak RSS < 500 MB).

The data: a CSV of at least ``--gigabytes`` GiB (default 2.0; 2^30 bytes each) with a header, a bool
``Label``, 20 float columns ``f00`` .. ``f19`` (different scales and offsets, 4 decimals) and two
categorical text columns, ``Color`` (12 values) and ``Region`` (50 values); labels drawn from a fixed
logistic model of all of them. It is generated once, in chunks of rows with numpy and Arrow's CSV
writer, and cached under ``--data-dir`` (default ``/tmp/onnxpipe-bench``); ``--delete-data`` removes
it at the end (the next run regenerates it).

The pipeline, fitted on the first 100k rows (read from the CSV by onnxpipe, then held in memory):
``concatenate(Numeric, f00..f19)`` -> ``normalize_mean_variance(Numeric)`` ->
``one_hot_encoding(ColorVec, Color)`` -> ``one_hot_encoding(RegionVec, Region)`` ->
``concatenate(Features, Numeric, ColorVec, RegionVec)`` -> ``lbfgs_logistic_regression``.

Each case then reads the whole file once, in a fresh process (``multiprocessing`` "spawn": a new
interpreter that receives the fitted model pickled, the way multiprocessing sends models), so that
neither the generation nor the fitting counts in its peak RSS:

* ``pyarrow open_csv`` (the raw reader onnxpipe uses, same 1 MiB blocks): count rows, sum ``f00``;
* ``onnxpipe load_from_text_file``: the loader alone, every batch consumed, rows counted;
* ``onnxpipe pipeline -> count``: ``model.transform(ctx.data.load_from_text_file(...))``, rows
  counted, ``Probability`` summed, correct ``PredictedLabel`` counted (nothing kept);
* ``onnxpipe pipeline -> Parquet``: the same, ``Label``, ``Score``, ``Probability`` and
  ``PredictedLabel`` of every batch written with ``pyarrow.parquet.ParquetWriter`` (then deleted).

Peak RSS is the child's ``VmHWM`` (``/proc/self/status``) at its end: the high-water mark of its whole
life, imports included. Not ``ru_maxrss``, which Linux carries over ``execve`` from the parent's RSS
at the fork (recorded in the JSON as ``ru_maxrss_mb`` all the same). "RSS after imports" is the
child's RSS when the case starts (interpreter, imports, the unpickled model), so ``peak - imports``
is what streaming adds.
The child also samples its RSS during the pass (the JSON holds the trace: a flat line means nothing
accumulates). Target: peak RSS < 500 MB (10^6 bytes) for the onnxpipe cases; the raw reader is the
reference. Throughput in MB/s is file bytes / seconds of the pass.

    .venv/bin/python bench/bench_memory.py [--gigabytes 2.0] [--data-dir /tmp/onnxpipe-bench] [--delete-data]
"""

from __future__ import annotations

# Only light imports at module level: each case runs in a spawned child that imports this module,
# and the raw-reader case should not pay for onnxpipe's imports in its RSS.
import argparse
import dataclasses
import multiprocessing
import os
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

TARGET_MB = 500.0
GIB = 1 << 30
MB = 1e6
N_FLOATS = 20
FLOAT_NAMES = [f"f{i:02d}" for i in range(N_FLOATS)]
COLORS = [f"color_{i:02d}" for i in range(12)]
REGIONS = [f"region_{i:02d}" for i in range(50)]
CHUNK_ROWS = 250_000  # rows generated and written per step
TRAIN_ROWS = 100_000
BLOCK_SIZE = 1 << 20  # the raw reader's block size, the same as load_from_text_file's default
DATA_VERSION = 1  # bump when the generator changes (the cached file's name holds it)
RSS_SAMPLE_SECONDS = 0.25
OUTPUT_COLUMNS = ["Label", "Score", "Probability", "PredictedLabel"]


# ------------------------------------------------------------------------------------------------
# data


def csv_path(data_dir: Path, gigabytes: float, seed: int) -> Path:
    return data_dir / f"memory-v{DATA_VERSION}-seed{seed}-{gigabytes:g}GiB.csv"


def chunk_table(rng: np.random.Generator, rows: int) -> pa.Table:
    """``rows`` rows of the synthetic data set (see the module docstring)."""
    truth = np.random.default_rng(4321)  # the same true model for every chunk and size
    scales, offsets = truth.uniform(0.5, 20.0, N_FLOATS), truth.uniform(-10.0, 10.0, N_FLOATS)
    w_num = truth.standard_normal(N_FLOATS) / scales
    w_color, w_region = truth.standard_normal(len(COLORS)), 0.5 * truth.standard_normal(len(REGIONS))
    num = np.round(rng.standard_normal((rows, N_FLOATS)) * scales + offsets, 4)
    color, region = rng.integers(0, len(COLORS), rows), rng.integers(0, len(REGIONS), rows)
    margin = (num - offsets) @ w_num + w_color[color] + w_region[region]
    label = rng.random(rows) < 1.0 / (1.0 + np.exp(-margin))
    columns: dict[str, pa.Array] = {"Label": pa.array(label)}
    for i, name in enumerate(FLOAT_NAMES):
        columns[name] = pa.array(num[:, i].astype(np.float32))
    columns["Color"] = pa.DictionaryArray.from_arrays(pa.array(color, pa.int32()), pa.array(COLORS)).cast(pa.string())
    columns["Region"] = pa.DictionaryArray.from_arrays(pa.array(region, pa.int32()), pa.array(REGIONS)).cast(
        pa.string()
    )
    return pa.table(columns)


def ensure_csv(path: Path, gigabytes: float, seed: int) -> tuple[int, float]:
    """Generate the CSV unless it is cached; returns (bytes, seconds spent generating)."""
    if path.is_file():
        return path.stat().st_size, 0.0
    target = int(gigabytes * GIB)
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    needed = int(target * 1.2) + 512 * 1024 * 1024  # the CSV, slack, and the Parquet output of one case
    if free < needed:
        raise SystemExit(
            f"not enough free disk space in {path.parent}: {free / GIB:.1f} GiB free, about "
            f"{needed / GIB:.1f} GiB needed; free some space, pass a smaller --gigabytes or another --data-dir"
        )
    from _common import console

    partial = path.with_suffix(".csv.partial")  # renamed when complete: an interrupted run leaves no "cached" file
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with console.status(f"generating {path} ({gigabytes:g} GiB)"), partial.open("wb") as sink:
        first = chunk_table(rng, CHUNK_ROWS)
        with pacsv.CSVWriter(sink, first.schema, write_options=pacsv.WriteOptions(quoting_style="needed")) as writer:
            writer.write_table(first)
            while sink.tell() < target:
                writer.write_table(chunk_table(rng, CHUNK_ROWS))
    partial.rename(path)
    seconds = time.perf_counter() - start
    console.print(f"generated {path} ({path.stat().st_size / GIB:.2f} GiB) in {seconds:.0f} s")
    return path.stat().st_size, seconds


# ------------------------------------------------------------------------------------------------
# the cases, each run in a fresh child process


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory figure (``VmRSS``, ``VmHWM``), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB  # kB there
    raise RuntimeError(f"no {field} in /proc/self/status (this benchmark needs Linux)")


def rss_mb() -> float:
    """The current resident set size."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The peak resident set size of this process image (VmHWM).

    Not ``getrusage().ru_maxrss``: Linux keeps that across ``execve``, so in a spawned child
    (fork + exec) it starts at the parent's RSS at the fork -- here the parent holds the data
    sample and the fitted model. VmHWM is the high-water mark of the child's own address space.
    """
    return _status_mb("VmHWM")


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux


class RssTrace:
    """Samples the RSS while a pass runs (at most every ``RSS_SAMPLE_SECONDS``), with the rows read so far."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.next = 0.0
        self.samples: list[tuple[float, int, float, float]] = []  # seconds, rows, RSS MB, Arrow MB
        self.arrow_peak_mb = 0.0

    def sample(self, rows: int, force: bool = False) -> None:
        # Arrow's live allocations after every batch (cheap): what the stream holds, as opposed to
        # what the allocators keep mapped (the RSS, sampled less often: it reads /proc)
        arrow_mb = pa.total_allocated_bytes() / MB
        self.arrow_peak_mb = max(self.arrow_peak_mb, arrow_mb)
        now = time.perf_counter() - self.start
        if force or now >= self.next:
            self.samples.append((round(now, 3), rows, round(rss_mb(), 1), round(arrow_mb, 1)))
            self.next = now + RSS_SAMPLE_SECONDS


def stream_case(case: str, path: str, model: Any, out_dir: str) -> dict[str, Any]:
    """Read the whole file once as ``case`` says; runs in a fresh child process."""
    if case != "raw":
        import onnxpipe  # noqa: F401  # before the baseline, so that "after imports" includes it in every onnxpipe case

    imports_rss, imports_peak = rss_mb(), peak_rss_mb()
    trace = RssTrace()
    stats: dict[str, Any] = {}
    rows = 0
    if case == "raw":
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE))
        total = 0.0
        for batch in reader:
            rows += batch.num_rows
            total += float(np.sum(batch.column("f00").to_numpy()))
            trace.sample(rows)
        stats["sum_f00"] = total
    else:
        import onnxpipe as op

        ctx = op.MLContext()
        view = ctx.data.load_from_text_file(path, separator=",", has_header=True)
        if case == "loader":
            for batch in view.batches():
                rows += batch.num_rows
                trace.sample(rows)
        elif case == "pipeline":
            probability, correct = 0.0, 0
            for batch in model.transform(view).batches():
                rows += batch.num_rows
                probability += float(np.sum(batch.column("Probability").to_numpy()))
                label = batch.column("Label").to_numpy(zero_copy_only=False)
                correct += int(np.count_nonzero(batch.column("PredictedLabel").to_numpy(zero_copy_only=False) == label))
                trace.sample(rows)
            stats.update(mean_probability=probability / max(rows, 1), accuracy=correct / max(rows, 1))
        elif case == "parquet":
            import pyarrow.parquet as pq

            out = Path(out_dir) / f"scored-{os.getpid()}.parquet"
            writer: pq.ParquetWriter | None = None
            try:
                for batch in model.transform(view).batches():
                    selected = batch.select(OUTPUT_COLUMNS)
                    if writer is None:
                        writer = pq.ParquetWriter(out, selected.schema)
                    writer.write_batch(selected)
                    rows += batch.num_rows
                    trace.sample(rows)
                if writer is not None:
                    writer.close()
                    writer = None
                stats.update(parquet_bytes=out.stat().st_size, parquet_rows=pq.ParquetFile(out).metadata.num_rows)
            finally:
                if writer is not None:
                    writer.close()
                out.unlink(missing_ok=True)
        else:
            raise ValueError(f"unknown case {case!r}")
    seconds = time.perf_counter() - trace.start
    trace.sample(rows, force=True)
    return {
        "rows": rows,
        "seconds": seconds,
        "rss_after_imports_mb": imports_rss,
        "peak_after_imports_mb": imports_peak,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),  # includes the parent's RSS at the fork (see peak_rss_mb)
        "rss_at_end_mb": rss_mb(),
        "arrow_allocated_peak_mb": trace.arrow_peak_mb,  # after each batch, with the batch still alive
        "arrow_memory_pool": pa.default_memory_pool().backend_name,
        "rss_trace": trace.samples,  # [seconds, rows, RSS MB, Arrow allocated MB]
        **stats,
    }


def run_in_child(case: str, path: Path, model: Any, out_dir: Path) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1) as pool:
        return pool.submit(stream_case, case, str(path), model, str(out_dir)).result()


# ------------------------------------------------------------------------------------------------
# fitting and reporting


def fit_pipeline(path: Path, l2: float) -> tuple[Any, dict[str, Any]]:
    """The pipeline of the module docstring, fitted on the first TRAIN_ROWS rows of the file."""
    import onnxpipe as op
    from onnxpipe.errors import ShapeError

    ctx = op.MLContext()
    sample = ctx.data.load_from_text_file(path, separator=",", has_header=True).take(TRAIN_ROWS).to_arrow()
    train = ctx.data.load_from_arrow(sample)
    featurize = (
        ctx.transforms.concatenate("Numeric", *FLOAT_NAMES)
        .append(ctx.transforms.normalize_mean_variance("Numeric"))
        .append(ctx.transforms.categorical.one_hot_encoding("ColorVec", "Color"))
        .append(ctx.transforms.categorical.one_hot_encoding("RegionVec", "Region"))
        .append(ctx.transforms.concatenate("Features", "Numeric", "ColorVec", "RegionVec"))
    )
    trainer = ctx.binary_classification.trainers.lbfgs_logistic_regression(l2_regularization=l2)
    start = time.perf_counter()
    try:
        model = featurize.append(trainer).fit(train)
        how = "one EstimatorChain.fit"
    except ShapeError as exc:  # the chain's up-front schema check may refuse one-hot's not-yet-known width
        features = featurize.fit(train)
        model = features.append(trainer.fit(features.transform(train)))
        how = f"featurizer, then trainer on its output (the one-chain fit raised ShapeError: {exc})"
    seconds = time.perf_counter() - start
    metrics = ctx.binary_classification.evaluate(model.transform(train))
    return model, {
        "train_rows": sample.num_rows,
        "fit": how,
        "fit_s": seconds,
        "train_auc": float(metrics.area_under_roc_curve),
        "input_schema": str(train.schema),
    }


@dataclasses.dataclass
class Measurement:
    """One row of the table; duck-types ``_common.Row`` for ``write_results`` (``to_json``, ``passed``)."""

    case: str
    description: str
    file_bytes: int
    result: dict[str, Any]
    target_mb: float | None

    @property
    def peak_mb(self) -> float:
        return float(self.result["peak_rss_mb"])

    @property
    def mb_per_s(self) -> float:
        return self.file_bytes / MB / self.result["seconds"]

    @property
    def passed(self) -> bool | None:
        return None if self.target_mb is None else self.peak_mb < self.target_mb

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "description": self.description,
            "file_bytes": self.file_bytes,
            "mb_per_s": self.mb_per_s,
            "peak_rss_added_mb": self.peak_mb - self.result["rss_after_imports_mb"],
            "target": None if self.target_mb is None else f"peak_rss_mb < {self.target_mb:g}",
            "passed": self.passed,
            **self.result,
        }


CASES = {
    "raw": "pyarrow open_csv (1 MiB blocks): count rows, sum f00",
    "loader": "onnxpipe load_from_text_file: count rows",
    "pipeline": "onnxpipe pipeline -> count rows, sum Probability",
    "parquet": "onnxpipe pipeline -> ParquetWriter (4 columns)",
}

PIPELINE_CASES = {"pipeline", "parquet"}


def print_table(title: str, rows: list[Measurement]) -> None:
    from rich.table import Table

    from _common import console

    table = Table(title=title)
    for name in ("case", "rows", "GB", "s", "MB/s", "RSS after imports MB", "peak RSS MB", "added MB", "target", ""):
        table.add_column(name, justify="left" if name == "case" else "right")
    for m in rows:
        r = m.result
        mark = {True: "[green]OK[/]", False: "[red]MISS[/]", None: ""}[m.passed]
        table.add_row(
            m.description,
            f"{r['rows']:,}",
            f"{m.file_bytes / 1e9:.2f}",
            f"{r['seconds']:.1f}",
            f"{m.mb_per_s:.1f}",
            f"{r['rss_after_imports_mb']:.0f}",
            f"{m.peak_mb:.0f}",
            f"{m.peak_mb - r['rss_after_imports_mb']:.0f}",
            "" if m.target_mb is None else f"< {m.target_mb:g}",
            mark,
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0, help="CSV size in GiB (default 2.0)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/onnxpipe-bench"), help="where the CSV is cached")
    parser.add_argument("--delete-data", action="store_true", help="delete the generated CSV at the end")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2", type=float, default=1.0, help="the trainer's l2_regularization")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")

    from _common import console, write_results

    path = csv_path(args.data_dir, args.gigabytes, args.seed)
    try:
        file_bytes, generate_s = ensure_csv(path, args.gigabytes, args.seed)
        model = None
        fit_info: dict[str, Any] = {}
        if PIPELINE_CASES & set(cases):
            with console.status(f"fitting the pipeline on the first {TRAIN_ROWS:,} rows"):
                model, fit_info = fit_pipeline(path, args.l2)
            console.print(
                f"fitted in {fit_info['fit_s']:.1f} s ({fit_info['fit']}); train AUC {fit_info['train_auc']:.3f}"
            )
        measurements = []
        for case in cases:
            with console.status(f"{CASES[case]}: streaming {file_bytes / 1e9:.2f} GB in a fresh process"):
                # the raw reader gets no model: unpickling it would import onnxpipe into its RSS
                result = run_in_child(case, path, model if case in PIPELINE_CASES else None, args.data_dir)
            target = None if case == "raw" else TARGET_MB
            measurements.append(Measurement(case, CASES[case], file_bytes, result, target))
            console.print(
                f"{CASES[case]}: {result['rows']:,} rows in {result['seconds']:.1f} s, peak RSS "
                f"{result['peak_rss_mb']:.0f} MB"
            )
    finally:
        if args.delete_data and path.exists():
            path.unlink()
            console.print(f"deleted {path}")
    print_table(f"Peak RSS streaming a {file_bytes / 1e9:.2f} GB CSV, each case in a fresh process", measurements)
    params = {
        "gigabytes_requested": args.gigabytes,
        "file_bytes": file_bytes,
        "csv": str(path),
        "generate_s": generate_s,
        "seed": args.seed,
        "l2": args.l2,
        "block_size_raw": BLOCK_SIZE,
        "target_peak_rss_mb": TARGET_MB,
        **fit_info,
    }
    write_results("bench_memory", params, measurements)


if __name__ == "__main__":
    main()
