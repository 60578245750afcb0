"""Score a Spark DataFrame with a fitted pipeline: ``mapInArrow`` (as SynapseML's ONNXModel does),
the Spark schema derived from the pipeline's output schema, one model load per Python worker.

    from onnxpipe.distributed import spark as op_spark

    scored = op_spark.score(spark.read.parquet("data/"), "model.zip")
    scored.write.parquet("out/")

Spark has no unsigned integers, half floats or fixed-size arrays: such output columns are widened
(uint8/16/32 to int16/32/64, float16 to float32) and vectors become arrays. Needs ``pip install
'onnxpipe[spark]'`` and a Java runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from onnxpipe.distributed._shipped import ModelLike, ShippedModel, threads_per_task
from onnxpipe.errors import SchemaError, require

__all__ = ["score", "spark_type"]

_WIDER = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.float16(): pa.float32()}


def spark_type(t: pa.DataType, column: str = "?") -> pa.DataType:
    """The Arrow type a column of type ``t`` takes in Spark (see the module's docstring)."""
    if t in _WIDER:
        return _WIDER[t]
    if pa.types.is_uint64(t):
        raise SchemaError(f"column {column!r} is uint64, which Spark cannot hold; convert it in the pipeline")
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(spark_type(t.value_type, column))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, spark_type(f.type, column)) for f in t])
    if pa.types.is_dictionary(t):
        return spark_type(t.value_type, column)
    return t


def _spark_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, spark_type(f.type, f.name)) for f in schema])


def score(
    df: Any,
    model: ModelLike,
    *,
    columns: list[str] | None = None,
    intra_op_num_threads: int | None = None,
    input_schema: Any = None,
) -> Any:
    """``transform`` on every partition of ``df`` through ``mapInArrow`` (a lazy DataFrame).

    ``model``: a path to a saved .zip or an .onnx file every executor can read, its bytes, or a
    fitted Transformer (then ``input_schema``). ONNX Runtime threads per task default to the
    driver machine's cores divided by Spark's default parallelism (``local[N]``: N), so that
    tasks x threads <= cores; on a cluster set ``intra_op_num_threads`` to
    ``spark.executor.cores / spark.task.cpus``'s share."""
    sql: Any = require("pyspark.sql", "spark")
    types: Any = require("pyspark.sql.pandas.types", "spark")
    if not isinstance(df, sql.DataFrame):
        raise TypeError(f"score needs a pyspark.sql.DataFrame, got {type(df).__name__}")
    if intra_op_num_threads is None:
        intra_op_num_threads = threads_per_task(df.sparkSession.sparkContext.defaultParallelism)
    shipped = ShippedModel.of(model, input_schema=input_schema, intra_op_num_threads=intra_op_num_threads)
    target = _spark_schema(shipped.output_schema(types.to_arrow_schema(df.schema), columns))

    def score_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from shipped.score(batch, columns).cast(target).to_batches()

    return df.mapInArrow(score_batches, types.from_arrow_schema(target))
