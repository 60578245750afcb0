"""Data transforms; one module per component family (estimator, transformer, ONNX export)."""

from onnxpipe.transforms.columns import (
    ColumnConcatenatingTransformer,
    ColumnCopyingTransformer,
    ColumnSelectingTransformer,
)
from onnxpipe.transforms.onnx_model import OnnxTransformer

__all__ = [
    "ColumnConcatenatingTransformer",
    "ColumnCopyingTransformer",
    "ColumnSelectingTransformer",
    "OnnxTransformer",
]
