"""Score a partitioned Parquet data set into a partitioned output on Dask, Ray or Spark (what
``onnxpipe predict --engine`` runs): one engine task per input file, each streaming its file in
batches and writing ``part-NNNNN.parquet`` beside a temporary name, renamed when complete. A part
is written whole or not at all, and a task re-run by the engine after a failure writes the same
name again, so the output has every row once."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from onnxpipe.data import load_from_parquet, save_as_parquet
from onnxpipe.distributed._shipped import ModelLike, ShippedModel, threads_per_task
from onnxpipe.errors import InvalidArgumentError, require

__all__ = ["ENGINES", "score_parquet_files"]

ENGINES = ("dask", "ray", "spark")
_BATCH_ROWS = 8192


def _part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def score_file(shipped: ShippedModel, source: str, target: str, columns: list[str] | None) -> int:
    """Score one Parquet file into ``target``; the rows written. Read by onnxpipe's own Parquet
    loader (row groups checked against its size limit before they are read) and written by
    ``save_as_parquet`` (onnxpipe's column types kept, a temporary file renamed when complete),
    as single-process ``onnxpipe predict`` reads and writes."""
    model, _ = shipped.load()
    scored = model.transform(load_from_parquet(source, batch_size=_BATCH_ROWS))
    return save_as_parquet(scored, target, columns=columns)


def score_parquet_files(
    model: ModelLike,
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    engine: str,
    workers: int | None = None,
    columns: list[str] | None = None,
    on_part: Callable[[int], None] | None = None,
    intra_op_num_threads: int | None = None,
) -> int:
    """Score each of ``inputs`` (Parquet files) into ``output_dir/part-NNNNN.parquet`` (the
    same order) on ``engine``, with ``workers`` processes on this machine (default: its cores)
    unless the engine is pointed at a cluster (``DASK_SCHEDULER_ADDRESS``, ``RAY_ADDRESS``,
    ``spark-submit``'s master). ``on_part(rows)`` is called as each part is written, where the
    engine reports it. ONNX Runtime threads per task: ``intra_op_num_threads``, by default this
    machine's cores / ``workers``. Returns the rows written."""
    if engine not in ENGINES:
        raise InvalidArgumentError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if not inputs:
        raise InvalidArgumentError("no input files to score")
    workers = workers or os.cpu_count() or 1
    threads = intra_op_num_threads or threads_per_task(workers)
    shipped = ShippedModel.of(model, intra_op_num_threads=threads)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(str(Path(s).resolve()), str(out.resolve() / _part_name(i))) for i, s in enumerate(inputs)]
    run = {"dask": _on_dask, "ray": _on_ray, "spark": _on_spark}[engine]
    total = 0
    for rows in run(shipped, tasks, columns, workers):
        total += rows
        if on_part is not None:
            on_part(rows)
    return total


def _on_dask(
    shipped: ShippedModel, tasks: list[tuple[str, str]], columns: list[str] | None, workers: int
) -> Iterator[int]:
    distributed: Any = require("distributed", "dask")
    address = os.environ.get("DASK_SCHEDULER_ADDRESS")
    cluster: Any = None
    if address is None:
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port
            # Its workers' own logs (e.g. a heartbeat that meets the scheduler closing after the
            # last part) would print tracebacks after a job that succeeded; a failed part raises here.
            silence_logs=logging.CRITICAL,
        )
    try:
        with distributed.Client(address or cluster) as client:
            futures = [client.submit(score_file, shipped, s, t, columns, pure=False) for s, t in tasks]
            for future in distributed.as_completed(futures):
                yield future.result()
    finally:
        if cluster is not None:
            cluster.close()


def _on_ray(
    shipped: ShippedModel, tasks: list[tuple[str, str]], columns: list[str] | None, workers: int
) -> Iterator[int]:
    ray: Any = require("ray", "ray")
    started = not ray.is_initialized()
    if started:
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(score_file)
        model = ray.put(shipped)  # the model's bytes go to the object store once
        pending = [remote.remote(model, s, t, columns) for s, t in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def _on_spark(
    shipped: ShippedModel, tasks: list[tuple[str, str]], columns: list[str] | None, workers: int
) -> Iterator[int]:
    sql: Any = require("pyspark.sql", "spark")
    # local Python workers run this interpreter (where onnxpipe is), unless told otherwise
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = sql.SparkSession.getActiveSession()
    started = session is None
    if session is None:
        builder = sql.SparkSession.builder.appName("onnxpipe predict")
        if "SPARK_MASTER" in os.environ or os.environ.get("PYSPARK_SUBMIT_ARGS"):
            session = builder.getOrCreate()
        else:  # local: a failed task is tried up to 4 times, as on a cluster
            session = builder.master(f"local[{workers},4]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        model = session.sparkContext.broadcast(shipped)  # the model's bytes go to each executor once
        rdd = session.sparkContext.parallelize(tasks, len(tasks))
        counts = rdd.map(lambda task: score_file(model.value, task[0], task[1], columns)).collect()
        yield from counts
    finally:
        if started:
            session.stop()
