"""The ONNX Runtime layer: model loading and type mapping, sessions, inspection.

(Named ``runtime``, not ``onnx``, so that it never shadows the ``onnx`` package.)
"""

from onnxpipe.runtime._custom_ops import register_custom_op_library, registered_custom_op_libraries
from onnxpipe.runtime._graph import draw_model
from onnxpipe.runtime._inspect import generate_schema_code, inspect_model, render_model_info
from onnxpipe.runtime._model import BatchAxis, ModelInfo, TensorInfo, batch_axes, describe_model, load_model
from onnxpipe.runtime._session import SessionSettings, create_session

__all__ = [
    "BatchAxis",
    "draw_model",
    "ModelInfo",
    "SessionSettings",
    "TensorInfo",
    "batch_axes",
    "create_session",
    "describe_model",
    "generate_schema_code",
    "inspect_model",
    "load_model",
    "register_custom_op_library",
    "registered_custom_op_libraries",
    "render_model_info",
]
