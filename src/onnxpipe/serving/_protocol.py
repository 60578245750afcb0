"""The Open Inference Protocol (KServe V2) REST inference request and response, with the binary
tensor extension (``Inference-Header-Content-Length``, ``binary_data_size``, 4-byte
little-endian length-prefixed BYTES elements, ``binary_data`` outputs)."""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from onnxpipe import DType, Schema, TensorType
from onnxpipe.errors import OnnxPipeError
from onnxpipe.serving._models import DTYPE_OF_V2, ServedModel, v2_datatype

__all__ = ["HEADER_LENGTH", "ParsedRequest", "ProtocolError", "encode_response", "parse_request"]

HEADER_LENGTH = "inference-header-content-length"


class ProtocolError(Exception):
    """A request the protocol answers with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class RequestedOutput:
    name: str
    binary: bool


@dataclasses.dataclass
class ParsedRequest:
    id: str | None
    columns: dict[str, np.ndarray]  # input column -> [rows, *row_shape]
    rows: int
    outputs: list[RequestedOutput]
    schema: Schema


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"the request is not valid JSON: {exc}") from None


def _shape(tensor: Mapping[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)
    ):
        raise ProtocolError(
            f"input {name!r}: 'shape' must be a list of sizes [batch, ...] (non-negative integers), got {shape!r}"
        )
    return shape


def _from_binary(raw: bytes, datatype: str, count: int, name: str) -> np.ndarray:
    if datatype == "BYTES":
        items: list[str] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise ProtocolError(f"input {name!r}: BYTES data ends inside an element's 4-byte length")
            (n,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + n > len(raw):
                raise ProtocolError(f"input {name!r}: a BYTES element of {n} bytes runs past the data's end")
            items.append(_text(raw[pos : pos + n], name))
            pos += n
        if len(items) != count:
            raise ProtocolError(f"input {name!r}: {len(items)} BYTES elements for a shape of {count} values")
        return np.array(items, dtype=object)
    dtype = DTYPE_OF_V2[datatype].numpy.newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(
            f"input {name!r}: binary_data_size is {len(raw)} bytes; its shape and datatype {datatype} need "
            f"{count * dtype.itemsize}"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise ProtocolError(f"input {name!r}: BOOL values must be bytes 0 or 1")
    return array.astype(dtype.newbyteorder("="), copy=False)


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"input {name!r}: BYTES values must be UTF-8 text for a text column") from None


def _flat(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r}: 'data' must be a list, got {type(data).__name__}")
    if all(not isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:  # no recursion: nesting depth is bounded by the JSON parser
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _from_json(data: Any, datatype: str, count: int, name: str) -> np.ndarray:
    values = _flat(data, name)
    if len(values) != count:
        raise ProtocolError(f"input {name!r}: {len(values)} values in 'data' for a shape of {count} values")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            raise ProtocolError(f"input {name!r}: BYTES values in JSON must be strings")
        return np.array(values, dtype=object)
    dtype = DTYPE_OF_V2[datatype]
    if dtype is DType.BOOL:
        ok = all(isinstance(v, bool) for v in values)
    elif dtype.is_integer:
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    else:
        ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not ok:
        raise ProtocolError(f"input {name!r}: {datatype} data must hold only {_kind(dtype)}")
    try:
        array = np.array(values, dtype=dtype.numpy)
    except OverflowError:
        raise ProtocolError(f"input {name!r}: a value is out of the range of {datatype}") from None
    return array


def _kind(dtype: DType) -> str:
    return "true/false" if dtype is DType.BOOL else "integers" if dtype.is_integer else "numbers"


def _is_true(parameters: Any, key: str) -> bool:
    return isinstance(parameters, dict) and parameters.get(key) is True


def parse_request(
    model: ServedModel, body: bytes, header_length: str | None, max_rows: int, max_values: int
) -> ParsedRequest:
    """Decode one ``infer`` request for ``model`` (ProtocolError says what is wrong)."""
    if header_length is not None:
        try:
            json_length = int(header_length)
        except ValueError:
            raise ProtocolError(
                f"Inference-Header-Content-Length must be a number, got {header_length[:40]!r}"
            ) from None
        if not 0 <= json_length <= len(body):
            raise ProtocolError(f"Inference-Header-Content-Length is {json_length}, but the body has {len(body)} bytes")
    else:
        json_length = len(body)
    doc = _json(body[:json_length])
    binary = memoryview(body)[json_length:]
    if not isinstance(doc, dict):
        raise ProtocolError("the request must be a JSON object with 'inputs'")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    columns: dict[str, np.ndarray] = {}
    rows: int | None = None
    offset = 0
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise ProtocolError("each input must be an object with a 'name'")
        name: str = tensor["name"]
        column = model.input_column(name)
        if column is None:
            expected = ", ".join(f"{c.name!r}" for c in model.inputs)
            raise ProtocolError(f"input {name!r} is not an input of model {model.name!r}; its inputs: {expected}")
        if name in columns:
            raise ProtocolError(f"input {name!r} is given twice")
        ct = column.type
        assert isinstance(ct, TensorType)
        expected_type = v2_datatype(ct.dtype)
        datatype = tensor.get("datatype")
        if datatype not in DTYPE_OF_V2:
            raise ProtocolError(f"input {name!r}: datatype {datatype!r} is not supported; expected {expected_type}")
        if datatype != expected_type:
            raise ProtocolError(f"input {name!r}: datatype {datatype}, but the model expects {expected_type} ({ct})")
        shape = _shape(tensor, name)
        count = math.prod(shape)
        if count > max_values:
            raise ProtocolError(f"input {name!r}: shape {shape} has more than {max_values:,} values", 413)
        parameters = tensor.get("parameters")
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise ProtocolError(
                    f"input {name!r}: binary_data_size {size!r} does not fit the {len(binary) - offset} bytes "
                    "of binary data left in the body"
                )
            array = _from_binary(bytes(binary[offset : offset + size]), datatype, count, name)
            offset += size
        else:
            if "data" not in tensor:
                raise ProtocolError(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
            array = _from_json(tensor["data"], datatype, count, name)
        array = array.reshape(shape)
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise ProtocolError(f"input {name!r} has {shape[0]} rows (its first dimension), other inputs {rows}")
        if ct.is_scalar and array.ndim == 2 and array.shape[1] == 1:
            array = array.reshape(shape[0])  # [batch, 1] for a column of one value per row
        columns[name] = array
    if offset != len(binary):
        raise ProtocolError(
            f"the body has {len(binary) - offset} bytes of binary data that no input's binary_data_size claims"
        )
    missing = [c for c in model.inputs if c.name not in columns]
    if missing:
        raise ProtocolError(
            f"input {missing[0].name!r} is missing; model {model.name!r} expects it as "
            f"{v2_datatype(missing[0].type.dtype) if isinstance(missing[0].type, TensorType) else missing[0].type} "
            f"with shape {[-1, *(-1 if d is None else d for d in getattr(missing[0].type, 'shape', ()))]}"
        )
    assert rows is not None
    if rows == 0:
        raise ProtocolError("the request has no rows (the inputs' first dimension is 0)")
    if rows > max_rows:
        raise ProtocolError(f"the request has {rows:,} rows, more than the server's limit of {max_rows:,}", 413)
    try:
        schema = model.schema_of(columns)
    except OnnxPipeError as exc:
        raise ProtocolError(f"model {model.name!r}: {exc}") from None
    return ParsedRequest(request_id, columns, rows, _outputs(model, doc), schema)


def _outputs(model: ServedModel, doc: dict[str, Any]) -> list[RequestedOutput]:
    binary_default = _is_true(doc.get("parameters"), "binary_data_output")
    requested = doc.get("outputs")
    known = [c.name for c in model.outputs]
    if requested is None:
        return [RequestedOutput(n, binary_default) for n in known]
    if not isinstance(requested, list):
        raise ProtocolError("'outputs' must be a list of {'name': ...}")
    out: list[RequestedOutput] = []
    for o in requested:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise ProtocolError("each requested output must be an object with a 'name'")
        if o["name"] not in known:
            raise ProtocolError(f"output {o['name']!r} is not an output of model {model.name!r}; its outputs: {known}")
        parameters = o.get("parameters")
        binary = parameters.get("binary_data") if isinstance(parameters, dict) else None
        out.append(RequestedOutput(o["name"], binary_default if binary is None else binary is True))
    return out


def _binary(array: np.ndarray) -> bytes:
    if array.dtype == object:
        parts: list[bytes] = []
        for v in array.ravel():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _json_data(array: np.ndarray) -> Any:
    flat = array.ravel()
    if flat.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    if flat.dtype.kind == "f":
        return [None if not math.isfinite(v) else v for v in flat.tolist()]
    return flat.tolist()


def encode_response(
    model: ServedModel, request: ParsedRequest, results: Mapping[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON part when binary outputs follow."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    types = {c.name: c.type for c in model.outputs}
    for o in request.outputs:
        array = results[o.name]
        ct = types[o.name]
        assert isinstance(ct, TensorType)
        tensor: dict[str, Any] = {"name": o.name, "datatype": v2_datatype(ct.dtype), "shape": list(array.shape)}
        if o.binary:
            blob = _binary(array)
            blobs.append(blob)
            tensor["parameters"] = {"binary_data_size": len(blob)}
        else:
            tensor["data"] = _json_data(array)
        outputs.append(tensor)
    doc: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    head = orjson.dumps(doc)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def split_rows(results: Mapping[str, np.ndarray], counts: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Batched results back to each request's rows."""
    out: list[dict[str, np.ndarray]] = []
    start = 0
    for n in counts:
        out.append({k: v[start : start + n] for k, v in results.items()})
        start += n
    return out
