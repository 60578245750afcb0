"""Score a Ray Dataset with a fitted pipeline: Ray Data's batch-inference pattern, a callable
class in ``map_batches`` that loads the model once per actor.

    import ray
    from onnxpipe.distributed.ray import Scorer, score

    ds = ray.data.read_parquet("data/")
    scored = score(ds, "model.zip", concurrency=2)             # the one-call helper
    scored = ds.map_batches(Scorer, fn_constructor_kwargs={"model": "model.zip"},
                            batch_format="pyarrow", concurrency=2, num_cpus=1)  # the same by hand

Ray Data keeps row order only with ``DataContext.get_current().execution_options.preserve_order
= True``. Needs ``pip install 'onnxpipe[ray]'``.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from onnxpipe.distributed._shipped import ModelLike, ShippedModel
from onnxpipe.errors import require

__all__ = ["Scorer", "score"]


class Scorer:
    """``transform`` on each ``pyarrow`` batch; the model is loaded when the actor starts.

    ``model``: a path to a saved .zip or an .onnx file every worker can read, its bytes, or a
    :class:`~onnxpipe.distributed.ShippedModel`. ``columns``: the output columns (default: all).
    ``intra_op_num_threads``: ONNX Runtime threads (default: the model's own setting; :func:`score`
    sets it to the actor's ``num_cpus``)."""

    def __init__(
        self, model: ModelLike, columns: list[str] | None = None, intra_op_num_threads: int | None = None
    ) -> None:
        self._shipped = ShippedModel.of(model, intra_op_num_threads=intra_op_num_threads)
        self._columns = columns
        self._shipped.load()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self._shipped.score(batch, self._columns)


def score(
    ds: Any,
    model: ModelLike,
    *,
    columns: list[str] | None = None,
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float = 1.0,
    batch_size: int | None = 4096,
    intra_op_num_threads: int | None = None,
    input_schema: Any = None,
) -> Any:
    """``ds.map_batches(Scorer, ...)`` with ``concurrency`` actors of ``num_cpus`` CPUs each (a
    lazy Ray Dataset). ONNX Runtime gets ``num_cpus`` threads per actor (at least 1) unless
    ``intra_op_num_threads`` says otherwise, so that actors x threads <= the CPUs Ray hands out.
    A fitted Transformer as ``model`` is saved first, with ``input_schema``; the model's bytes
    then travel with each actor's constructor arguments."""
    ray_data: Any = require("ray.data", "ray")
    if not isinstance(ds, ray_data.Dataset):
        raise TypeError(f"score needs a ray.data.Dataset, got {type(ds).__name__}")
    threads = intra_op_num_threads if intra_op_num_threads is not None else max(1, math.floor(num_cpus))
    shipped = ShippedModel.of(model, input_schema=input_schema, intra_op_num_threads=threads)
    return ds.map_batches(
        Scorer,
        fn_constructor_kwargs={"model": shipped, "columns": columns},
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=concurrency,
        num_cpus=num_cpus,
    )
