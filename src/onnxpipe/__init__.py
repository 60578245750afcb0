"""onnxpipe: typed ML pipelines that speak ONNX both ways.

Start with :class:`MLContext`; declare schemas with annotated classes (:class:`ColumnName`,
:class:`VectorType`, :class:`LoadColumn`, :class:`KeyType`, :class:`ImageType`); inspect models with
:func:`inspect_model`.
"""

from onnxpipe import errors
from onnxpipe.context import MLContext
from onnxpipe.core import Estimator, EstimatorChain, Transformer, TransformerChain
from onnxpipe.data import DataView
from onnxpipe.engine import PredictionEngine
from onnxpipe.errors import OnnxPipeWarning, SkippedRowWarning
from onnxpipe.runtime import ModelInfo, TensorInfo, draw_model, generate_schema_code, inspect_model
from onnxpipe.schema import (
    Column,
    ColumnName,
    DType,
    ImageType,
    KeyType,
    LoadColumn,
    MapType,
    Schema,
    SequenceType,
    TensorType,
    VectorType,
    schema_of,
)
from onnxpipe.transforms.custom import register_custom_mapping

__version__ = "0.1.0"


def render(obj: object, *, width: int = 120) -> str:
    """What ``onnxpipe inspect`` (or a notebook) shows of ``obj`` as plain text: a
    :class:`ModelInfo` (``render(inspect_model("model.onnx"))``), a :class:`Schema`, a
    :class:`DataView` (its first rows), a fitted pipeline (its steps) or evaluation metrics."""
    from onnxpipe._display import render_text

    if not hasattr(obj, "__rich__"):
        raise errors.InvalidArgumentError(
            f"render shows ModelInfo, Schema, DataView, fitted pipelines and metrics; got {type(obj).__name__}"
        )
    return render_text(obj, width)


__all__ = [
    "Column",
    "ColumnName",
    "DType",
    "DataView",
    "Estimator",
    "EstimatorChain",
    "ImageType",
    "KeyType",
    "LoadColumn",
    "MLContext",
    "MapType",
    "ModelInfo",
    "OnnxPipeWarning",
    "PredictionEngine",
    "Schema",
    "SequenceType",
    "SkippedRowWarning",
    "TensorInfo",
    "TensorType",
    "Transformer",
    "TransformerChain",
    "VectorType",
    "draw_model",
    "errors",
    "generate_schema_code",
    "inspect_model",
    "register_custom_mapping",
    "render",
    "schema_of",
]
