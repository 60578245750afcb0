"""Scale-out on the engines users already run: Ray Data, Dask and Spark score with a fitted
pipeline (``onnxpipe.distributed.ray``, ``.dask``, ``.spark``; extras ``ray``, ``dask``,
``spark``). onnxpipe schedules nothing itself: each adapter hands the engine a small picklable
scorer (:class:`ShippedModel`) that every worker process loads once, and results equal
single-process ``transform``.
"""

from __future__ import annotations

from onnxpipe.distributed._files import ENGINES, score_parquet_files
from onnxpipe.distributed._shipped import ShippedModel, threads_per_task

__all__ = ["ENGINES", "ShippedModel", "score_parquet_files", "threads_per_task"]
