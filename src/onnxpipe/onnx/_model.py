"""Reading ONNX models: type mapping, tensor descriptions and safe loading.

One place maps ONNX types to column types, and one place loads model files (refusing external
data that lives outside the model's folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

from onnxpipe.errors import DataFileNotFoundError, ModelLoadError
from onnxpipe.schema import ColumnType, DType, MapType, SequenceType, TensorType

__all__ = ["LoadedModel", "ModelInfo", "TensorInfo", "describe_model", "load_model"]

_ELEM: dict[int, DType] = {
    TensorProto.BOOL: DType.BOOL,
    TensorProto.INT8: DType.INT8,
    TensorProto.INT16: DType.INT16,
    TensorProto.INT32: DType.INT32,
    TensorProto.INT64: DType.INT64,
    TensorProto.UINT8: DType.UINT8,
    TensorProto.UINT16: DType.UINT16,
    TensorProto.UINT32: DType.UINT32,
    TensorProto.UINT64: DType.UINT64,
    TensorProto.FLOAT16: DType.FLOAT16,
    TensorProto.FLOAT: DType.FLOAT32,
    TensorProto.DOUBLE: DType.FLOAT64,
    TensorProto.STRING: DType.STRING,
}
ONNX_ELEMENT: dict[DType, int] = {v: k for k, v in _ELEM.items()}

RawDim = int | str | None  # a size, a symbolic name, or nothing (unnamed unknown)


def _elem_name(code: int) -> str:
    if code in _ELEM:
        return _ELEM[code].value
    return TensorProto.DataType.Name(code).lower() if code in TensorProto.DataType.values() else f"type{code}"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """An input or output of a model, as stored in the file."""

    name: str
    type_text: str  # e.g. "float32", "seq(map(int64,float32))", "bfloat16"
    dims: tuple[RawDim, ...] | None  # None when the value is not a tensor or its rank is unknown
    column_type: ColumnType | None  # None when onnxpipe cannot represent the type
    doc: str = ""

    @property
    def shape(self) -> tuple[int | None, ...]:
        """Dimensions with every unknown one (symbolic, unnamed, or <= 0) as None; ``(None,)``
        for a tensor of unknown rank (held as a flat vector)."""
        if self.dims is None:
            return self.column_type.shape if isinstance(self.column_type, TensorType) else ()
        return tuple(d if isinstance(d, int) and d > 0 else None for d in self.dims)

    def dims_text(self) -> str:
        if self.dims is None:
            return "(unknown rank)" if isinstance(self.column_type, TensorType) else ""
        return "[" + ",".join("?" if d is None else str(d) for d in self.dims) + "]"


def _convert_type(tp: onnx.TypeProto, nested: bool = False) -> tuple[str, tuple[RawDim, ...] | None, ColumnType | None]:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        tt = tp.tensor_type
        elem = _ELEM.get(tt.elem_type)
        if nested and not tt.HasField("shape"):
            return _elem_name(tt.elem_type), (), TensorType(elem) if elem else None  # ZipMap's map values
        if not tt.HasField("shape"):
            # Unknown rank: held as a flat vector of unknown length.
            return _elem_name(tt.elem_type), None, TensorType(elem, (None,)) if elem else None
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in dims)
        return _elem_name(tt.elem_type), dims, TensorType(elem, shape) if elem else None
    if kind == "sequence_type":
        text, _, inner = _convert_type(tp.sequence_type.elem_type, nested=True)
        return f"seq({text})", None, SequenceType(inner) if inner else None
    if kind == "map_type":
        mt = tp.map_type
        key = _ELEM.get(mt.key_type)
        vtext, _, value = _convert_type(mt.value_type, nested=True)
        ct = MapType(key, value) if key and value else None
        return f"map({_elem_name(mt.key_type)},{vtext})", None, ct
    return kind or "unknown", None, None


def tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    text, dims, ct = _convert_type(vi.type)
    return TensorInfo(vi.name, text, dims, ct, vi.doc_string)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What Netron's Model Properties shows about a model."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    ir_version: int
    opsets: dict[str, int]
    producer_name: str
    producer_version: str
    domain: str
    model_version: int
    graph_name: str
    doc_string: str
    metadata: dict[str, str]
    initializers_as_inputs: tuple[str, ...] = ()  # IR < 4 models list weights as inputs
    path: str | None = None

    def input(self, name: str) -> TensorInfo | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorInfo | None:
        return next((t for t in self.outputs if t.name == name), None)

    def to_json(self) -> dict[str, Any]:
        def tensor(t: TensorInfo) -> dict[str, Any]:
            return {"name": t.name, "type": t.type_text, "dims": list(t.dims) if t.dims is not None else None}

        return {
            "path": self.path,
            "inputs": [tensor(t) for t in self.inputs],
            "outputs": [tensor(t) for t in self.outputs],
            "ir_version": self.ir_version,
            "opsets": self.opsets,
            "producer_name": self.producer_name,
            "producer_version": self.producer_version,
            "domain": self.domain,
            "model_version": self.model_version,
            "graph_name": self.graph_name,
            "doc_string": self.doc_string,
            "metadata": self.metadata,
        }


def describe_model(model: onnx.ModelProto, path: str | None = None) -> ModelInfo:
    g = model.graph
    init = {i.name for i in g.initializer}
    return ModelInfo(
        inputs=tuple(tensor_info(v) for v in g.input if v.name not in init),
        outputs=tuple(tensor_info(v) for v in g.output),
        ir_version=model.ir_version,
        opsets={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        domain=model.domain,
        model_version=model.model_version,
        graph_name=g.name,
        doc_string=model.doc_string,
        metadata={p.key: p.value for p in model.metadata_props},
        initializers_as_inputs=tuple(v.name for v in g.input if v.name in init),
        path=path,
    )


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A parsed model and how ONNX Runtime should open it (bytes, or a path for external data)."""

    proto: onnx.ModelProto  # without external tensor data
    source: bytes | str
    label: str  # file name, or "<bytes>", for messages


def _graph_tensors(graph: onnx.GraphProto) -> list[TensorProto]:
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            tensors.extend([attr.t] if attr.HasField("t") else [])
            tensors.extend(attr.tensors)
            for sub in [attr.g] if attr.HasField("g") else []:
                tensors.extend(_graph_tensors(sub))
            for sub in attr.graphs:
                tensors.extend(_graph_tensors(sub))
    return tensors


def _has_external_data(model: onnx.ModelProto) -> list[str]:
    return [
        next((e.value for e in t.external_data if e.key == "location"), "")
        for t in _graph_tensors(model.graph)
        if t.data_location == TensorProto.EXTERNAL
    ]


def load_model(model_file: str | Path | None = None, model_bytes: bytes | None = None) -> LoadedModel:
    """Parse a model from a file or from bytes, without executing anything from it.

    Models with external data are opened by path and every data file must lie inside the
    model's folder.
    """
    if (model_file is None) == (model_bytes is None):
        raise ModelLoadError("give exactly one of model_file= or model_bytes=")
    if model_bytes is not None:
        if not isinstance(model_bytes, bytes | bytearray | memoryview):
            raise ModelLoadError(f"model_bytes must be bytes, got {type(model_bytes).__name__}")
        data = bytes(model_bytes)
        proto = _parse(data, "<bytes>")
        if _has_external_data(proto):
            raise ModelLoadError(
                "the model keeps its weights in external data files, which cannot be found from "
                "bytes; pass model_file= with the model's path instead"
            )
        return LoadedModel(proto, data, "<bytes>")
    path = Path(model_file)  # type: ignore[arg-type]
    if not path.is_file():
        raise DataFileNotFoundError(f"ONNX model file {str(path)!r} does not exist")
    data = path.read_bytes()
    proto = _parse(data, path.name)
    external = _has_external_data(proto)
    if not external:
        return LoadedModel(proto, data, path.name)
    folder = path.resolve().parent
    for loc in external:
        target = (folder / loc).resolve()
        if Path(loc).is_absolute() or not target.is_relative_to(folder):
            raise ModelLoadError(
                f"model {path.name!r} refers to external data {loc!r} outside its folder "
                f"{str(folder)!r}; refusing to load it"
            )
        if not target.is_file():
            raise DataFileNotFoundError(
                f"model {path.name!r} needs external data file {str(target)!r}, which is missing"
            )
    return LoadedModel(proto, str(path.resolve()), path.name)


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelLoadError(f"{label} is not a valid ONNX model: {exc}") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{label} is not a valid ONNX model: it has no graph")
    return proto
