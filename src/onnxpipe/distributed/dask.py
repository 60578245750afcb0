"""Score a Dask DataFrame with a fitted pipeline: ``map_partitions``, one model load per worker
process, ``meta`` from the pipeline's output schema (Arrow-backed dtypes: vectors stay lists).

    import dask.dataframe as dd
    from onnxpipe.distributed import dask as op_dask

    scored = op_dask.score(dd.read_parquet("data/*.parquet", dtype_backend="pyarrow"), "model.zip")
    scored.to_parquet("out/")

Needs ``pip install 'onnxpipe[dask]'``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from onnxpipe.distributed._shipped import ModelLike, ShippedModel, threads_per_task
from onnxpipe.errors import require

__all__ = ["score"]


def _import_dask() -> Any:
    require("pandas", "dask")
    return require("dask.dataframe", "dask")


def _as_arrow(frame: Any) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _to_pandas(table: pa.Table, index: Any) -> Any:
    import pandas as pd

    out = table.to_pandas(types_mapper=pd.ArrowDtype)
    out.index = index  # rows stay where they were: the partition's own index
    return out


def _score_partition(frame: Any, shipped: ShippedModel, columns: list[str] | None) -> Any:
    return _to_pandas(shipped.score(_as_arrow(frame), columns), frame.index)


def score(
    ddf: Any,
    model: ModelLike,
    *,
    columns: list[str] | None = None,
    intra_op_num_threads: int | None = None,
    input_schema: Any = None,
) -> Any:
    """``transform`` on every partition of ``ddf`` (lazily: a Dask DataFrame).

    ``model``: a path to a saved .zip or an .onnx file every worker can read, its bytes, or a
    fitted Transformer (then ``input_schema``, its onnxpipe input Schema, is needed to save it).
    ``columns``: the output columns (default: all, as ``transform``). ``intra_op_num_threads``:
    ONNX Runtime threads per task, by default each machine's cores divided by the tasks the
    distributed client's workers run at once there (the fewest over the machines), so that
    tasks x threads <= cores.
    """
    dd = _import_dask()
    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(f"score needs a dask.dataframe.DataFrame, got {type(ddf).__name__}")
    if intra_op_num_threads is None:
        intra_op_num_threads = _default_threads()
    shipped = ShippedModel.of(model, input_schema=input_schema, intra_op_num_threads=intra_op_num_threads)
    meta_in = _as_arrow(ddf._meta)
    meta = _to_pandas(shipped.output_schema(meta_in.schema, columns).empty_table(), ddf._meta.index[:0])
    return ddf.map_partitions(_score_partition, shipped, columns, meta=meta, align_dataframes=False)


def _default_threads() -> int:
    """ONNX Runtime threads per task so that, on every machine of the current distributed client,
    the tasks it runs at once (its workers' threads there) x threads <= that machine's cores; this
    machine's cores alone without a client."""
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        return threads_per_task(1)
    import os
    from urllib.parse import urlsplit

    cores = client.run(os.cpu_count)  # worker address -> its machine's cores
    tasks_per_host: dict[str, int] = {}
    for address, threads in client.nthreads().items():  # type: ignore[no-untyped-call]
        host = urlsplit(address).hostname or address
        tasks_per_host[host] = tasks_per_host.get(host, 0) + threads
    return min(
        (threads_per_task(tasks_per_host[urlsplit(a).hostname or a], c) for a, c in cores.items()),
        default=threads_per_task(1),
    )
