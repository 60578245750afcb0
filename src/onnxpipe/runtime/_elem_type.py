"""ONNX's tensor element type codes (``onnx.TensorProto.DataType``), without importing ``onnx``.

``import onnx`` takes most of a second (it loads ml_dtypes), and the type tables that onnxpipe
builds at import time only need these numbers; the ``onnx`` package itself is imported where a
model is parsed, checked or built. The codes are part of the ONNX file format and never change
(tests/test_imports.py compares them with ``onnx.TensorProto``).
"""

from __future__ import annotations

import enum

__all__ = ["ElemType"]


class ElemType(enum.IntEnum):
    """The element types of ONNX's ``TensorProto.DataType`` up to onnx 1.23 (its float6 types
    are left out: ONNX Runtime cannot hold them)."""

    UNDEFINED = 0
    FLOAT = 1
    UINT8 = 2
    INT8 = 3
    UINT16 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    STRING = 8
    BOOL = 9
    FLOAT16 = 10
    DOUBLE = 11
    UINT32 = 12
    UINT64 = 13
    COMPLEX64 = 14
    COMPLEX128 = 15
    BFLOAT16 = 16
    FLOAT8E4M3FN = 17
    FLOAT8E4M3FNUZ = 18
    FLOAT8E5M2 = 19
    FLOAT8E5M2FNUZ = 20
    UINT4 = 21
    INT4 = 22
    FLOAT4E2M1 = 23
    FLOAT8E8M0 = 24
    UINT2 = 25
    INT2 = 26
