"""The ONNX layer: model loading and type mapping, ONNX Runtime sessions, inspection."""

from onnxpipe.onnx._inspect import generate_schema_code, inspect_model, render_model_info
from onnxpipe.onnx._model import ModelInfo, TensorInfo, describe_model, load_model
from onnxpipe.onnx._session import SessionSettings, create_session

__all__ = [
    "ModelInfo",
    "SessionSettings",
    "TensorInfo",
    "create_session",
    "describe_model",
    "generate_schema_code",
    "inspect_model",
    "load_model",
    "render_model_info",
]
