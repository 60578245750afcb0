"""ONNX's low-precision element types through ONNX Runtime: bfloat16, float8, float4, int4, int2.

ONNX Runtime's ``session.run`` takes and returns arrays of numpy's own dtypes only: it refuses an
``ml_dtypes`` array ("Numpy_type 256 can't be converted to MLDataType") and cannot return such an
output ("No corresponding Numpy type for Tensor Type"). A session with an input or output of such
a type therefore runs with OrtValues (:func:`ort_value_runner`, ``run_with_ort_values``): a
low-precision feed becomes a CPU OrtValue holding its bits, and a low-precision output's bytes
are copied into an ml_dtypes array. ONNX stores the 4-bit and 2-bit types packed, two or four
elements to a byte with the first in the low bits, where ml_dtypes keeps one element per byte
(in its low bits): :func:`pack` and :func:`unpack` convert. Every other session keeps the plain
``session.run`` (see :func:`onnxpipe.runtime._session.run_function`).

Limits of ONNX Runtime's Python API on this path: it makes no OrtValue from a string array and
returns sequences and maps only from ``session.run``, so a model that has a low-precision input
or output and also a string input, or a sequence or map output, cannot be run (a ``TypeError``
saying so, which the caller reports as an ExecutionError).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from onnxpipe.runtime._elem_type import ElemType
from onnxpipe.schema import DType

__all__ = ["LOW_PRECISION_ORT_TYPES", "needs_ort_values", "ort_value", "ort_value_runner", "pack", "read", "unpack"]

# ONNX Runtime's type text of each low-precision tensor type ("tensor(" + the DType's value + ")").
LOW_PRECISION_ORT_TYPES: dict[str, DType] = {f"tensor({t.value})": t for t in DType if t.is_low_precision}
_BY_CODE: dict[int, DType] = {int(ElemType[t.name]): t for t in DType if t.is_low_precision}


def needs_ort_values(session: ort.InferenceSession) -> bool:
    """Whether a model input or output has a low-precision type (then ``session.run`` cannot run it)."""
    return any(m.type in LOW_PRECISION_ORT_TYPES for m in (*session.get_inputs(), *session.get_outputs()))


def pack(values: np.ndarray, bits: int) -> np.ndarray:
    """The elements' low ``bits`` bits, ``8 // bits`` to a byte, the first element in the lowest
    bits (ONNX's layout of int4, uint4, float4e2m1, int2 and uint2); the last byte zero-padded."""
    per = 8 // bits
    codes = np.ascontiguousarray(values).reshape(-1).view(np.uint8) & np.uint8((1 << bits) - 1)
    if codes.size % per:
        codes = np.concatenate([codes, np.zeros(per - codes.size % per, np.uint8)])
    groups = codes.reshape(-1, per)
    packed = groups[:, 0].copy()
    for k in range(1, per):
        packed |= groups[:, k] << np.uint8(bits * k)
    return packed


def unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """``count`` elements of ``bits`` bits from bytes laid out as :func:`pack` writes them, one
    per byte in its low bits (ml_dtypes' layout: view the result as the ml_dtypes dtype)."""
    per = 8 // bits
    mask = np.uint8((1 << bits) - 1)
    codes = np.empty((packed.size, per), np.uint8)
    for k in range(per):
        codes[:, k] = (packed >> np.uint8(bits * k)) & mask
    return codes.reshape(-1)[:count]


def ort_value(value: np.ndarray, dtype: DType) -> ort.OrtValue:
    """A CPU OrtValue of the low-precision type ``dtype`` holding ``value`` (an ml_dtypes array of
    that type) bit for bit."""
    value = np.asarray(value)  # a numpy scalar has no buffer to lend
    code = int(ElemType[dtype.name])
    bits = dtype.bits
    if bits >= 8:  # one element per byte (two for bfloat16) in both layouts: no copy
        raw = _contiguous(value).view(np.uint16 if bits == 16 else np.uint8)
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, code)
    out = ort.OrtValue.ortvalue_from_shape_and_type(list(value.shape), code, "cpu", 0)
    packed = pack(value, bits)
    if out.tensor_size_in_bytes() != packed.nbytes:  # not ONNX's packing: never write past the buffer
        raise TypeError(
            f"ONNX Runtime holds a {dtype.value} tensor of shape {list(value.shape)} in "
            f"{out.tensor_size_in_bytes()} bytes, not the {packed.nbytes} that ONNX's packing takes"
        )
    if packed.nbytes:
        ctypes.memmove(out.data_ptr(), packed.ctypes.data, packed.nbytes)
    return out


def read(value: ort.OrtValue) -> Any:
    """An output OrtValue as ``session.run`` would return it, low-precision tensors as ml_dtypes
    arrays (copied: the array outlives the OrtValue); None for an empty optional."""
    if not value.has_value():
        return None
    if not value.is_tensor():
        raise TypeError(
            f"an output is a {value.data_type()}, which ONNX Runtime's Python API returns only from session.run; "
            "a model with low-precision (bfloat16, float8, int4...) inputs or outputs runs with OrtValues instead"
        )
    dtype = _BY_CODE.get(value.element_type())
    if dtype is None:
        return value.numpy()
    if value.device_name().lower() != "cpu":  # its data pointer is device memory
        raise TypeError(f"a {dtype.value} output came back on {value.device_name()}, not in CPU memory")
    shape = tuple(value.shape())
    raw = np.empty(value.tensor_size_in_bytes(), np.uint8)
    if raw.size:
        ctypes.memmove(raw.ctypes.data, value.data_ptr(), raw.size)
    if dtype.bits < 8:
        raw = unpack(raw, dtype.bits, math.prod(shape))
    return raw.view(dtype.numpy).reshape(shape)


def _feed(name: str, value: Any, dtype: DType | None) -> ort.OrtValue:
    arr = np.asarray(value)
    if dtype is not None:
        if arr.dtype != dtype.numpy:  # the bits of another type would be misread
            raise TypeError(f"input {name!r} takes {dtype.value} values (ml_dtypes), not {arr.dtype}")
        return ort_value(arr, dtype)
    if arr.dtype.kind in "OUS":
        raise TypeError(
            f"input {name!r} is a string tensor, which ONNX Runtime's Python API cannot make an OrtValue of; a "
            "model with low-precision (bfloat16, float8, int4...) inputs or outputs runs with OrtValues"
        )
    return ort.OrtValue.ortvalue_from_numpy(_contiguous(arr))


def _contiguous(arr: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray, which makes a scalar (shape ()) a vector of shape (1,).
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


OrtValueRun = Callable[[Sequence[str] | None, Mapping[str, Any], ort.RunOptions | None], list[Any]]


def ort_value_runner(session: ort.InferenceSession) -> OrtValueRun:
    """``run(output_names, feeds, run_options)`` as ``session.run``, through OrtValues: feeds are
    numpy (ml_dtypes for the low-precision inputs) and so are the outputs."""
    low: Mapping[str, DType] = {
        m.name: LOW_PRECISION_ORT_TYPES[m.type] for m in session.get_inputs() if m.type in LOW_PRECISION_ORT_TYPES
    }

    def run(
        output_names: Sequence[str] | None, feeds: Mapping[str, Any], options: ort.RunOptions | None = None
    ) -> list[Any]:
        values = {name: _feed(name, v, low.get(name)) for name, v in feeds.items()}
        names = list(output_names) if output_names else None  # None: every output, as session.run
        return [read(v) for v in session.run_with_ort_values(names, values, options)]

    return run
