"""Reading ONNX models: type mapping, tensor descriptions and safe loading.

One place maps ONNX types to column types, and one place loads model files, after the checks of
:mod:`onnxpipe.runtime._guard` (external data inside the model's folder, sizes within a limit, text
that is text).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnxpipe._display import RichDisplay, shown
from onnxpipe.errors import DataFileNotFoundError, ModelLoadError
from onnxpipe.runtime._elem_type import ElemType
from onnxpipe.runtime._guard import DEFAULT_MAX_BYTES, check_model, check_strings, quoted, read_external_data
from onnxpipe.schema import AnyRankTensorType, ColumnType, DType, MapType, OptionalType, SequenceType, TensorType

if TYPE_CHECKING:  # onnx is imported where a model is parsed (see _elem_type for why)
    import onnx

__all__ = ["LoadedModel", "ModelInfo", "TensorInfo", "describe_model", "load_model", "model_with_data"]

_ELEM: dict[int, DType] = {
    ElemType.BOOL: DType.BOOL,
    ElemType.INT8: DType.INT8,
    ElemType.INT16: DType.INT16,
    ElemType.INT32: DType.INT32,
    ElemType.INT64: DType.INT64,
    ElemType.UINT8: DType.UINT8,
    ElemType.UINT16: DType.UINT16,
    ElemType.UINT32: DType.UINT32,
    ElemType.UINT64: DType.UINT64,
    ElemType.FLOAT16: DType.FLOAT16,
    ElemType.FLOAT: DType.FLOAT32,
    ElemType.DOUBLE: DType.FLOAT64,
    ElemType.STRING: DType.STRING,
    ElemType.BFLOAT16: DType.BFLOAT16,
    ElemType.FLOAT8E4M3FN: DType.FLOAT8E4M3FN,
    ElemType.FLOAT8E4M3FNUZ: DType.FLOAT8E4M3FNUZ,
    ElemType.FLOAT8E5M2: DType.FLOAT8E5M2,
    ElemType.FLOAT8E5M2FNUZ: DType.FLOAT8E5M2FNUZ,
    ElemType.FLOAT8E8M0: DType.FLOAT8E8M0,
    ElemType.FLOAT4E2M1: DType.FLOAT4E2M1,
    ElemType.INT4: DType.INT4,
    ElemType.UINT4: DType.UINT4,
    ElemType.INT2: DType.INT2,
    ElemType.UINT2: DType.UINT2,
}
ONNX_ELEMENT: dict[DType, int] = {v: k for k, v in _ELEM.items()}

RawDim = int | str | None  # a size, a symbolic name, or nothing (unnamed unknown)


def _elem_name(code: int) -> str:
    if code in _ELEM:
        return _ELEM[code].value
    from onnx import TensorProto  # a model is being read: onnx is loaded already

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
        """Dimensions with every unknown one (symbolic, unnamed, or negative) as None; ``(None,)``
        for a tensor of unknown rank (held as a flat vector)."""
        if self.dims is None:
            return self.column_type.shape if isinstance(self.column_type, TensorType) else ()
        return tuple(d if isinstance(d, int) and d >= 0 else None for d in self.dims)

    def dims_text(self) -> str:
        if self.dims is None:
            return "(unknown rank)" if isinstance(self.column_type, TensorType) else ""
        return _bracketed(self.dims)


def _convert_type(
    tp: onnx.TypeProto, nested: str | None = None
) -> tuple[str, tuple[RawDim, ...] | None, ColumnType | None]:
    """The type's text, its dims (tensors) and column type; ``nested`` says inside what ("map"
    values, "sequence" or "optional" elements), which decides what a tensor without a shape is."""
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        tt = tp.tensor_type
        elem = _ELEM.get(tt.elem_type)
        if nested == "map" and not tt.HasField("shape"):
            return _elem_name(tt.elem_type), (), TensorType(elem) if elem else None  # ZipMap's map values
        if nested and not tt.HasField("shape"):  # each element has its own rank
            return _elem_name(tt.elem_type), None, AnyRankTensorType(elem) if elem else None
        if not tt.HasField("shape"):
            # Unknown rank: held as a flat vector of unknown length.
            return _elem_name(tt.elem_type), None, TensorType(elem, (None,)) if elem else None
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in dims)  # 0 is a size; ML.NET's -1 is not
        return _elem_name(tt.elem_type), dims, TensorType(elem, shape) if elem else None
    if kind == "sequence_type":
        text, inner_dims, inner = _convert_type(tp.sequence_type.elem_type, nested="sequence")
        return f"seq({text}{_dims_text(inner_dims)})", None, SequenceType(inner) if inner else None
    if kind == "map_type":
        mt = tp.map_type
        key = _ELEM.get(mt.key_type)
        vtext, inner_dims, value = _convert_type(mt.value_type, nested="map")
        ct = MapType(key, value) if key and value else None
        return f"map({_elem_name(mt.key_type)},{vtext}{_dims_text(inner_dims)})", None, ct
    if kind == "optional_type":
        text, inner_dims, inner = _convert_type(tp.optional_type.elem_type, nested="optional")
        return f"optional({text}{_dims_text(inner_dims)})", None, OptionalType(inner) if inner else None
    return kind or "unknown", None, None


def _dims_text(dims: tuple[RawDim, ...] | None) -> str:
    """An element's dims as the type text shows them (nothing for a scalar or an unknown rank)."""
    return _bracketed(dims) if dims else ""


def _bracketed(dims: tuple[RawDim, ...]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    text, dims, ct = _convert_type(vi.type)
    return TensorInfo(vi.name, text, dims, ct, vi.doc_string)


_BATCH_NAMES = re.compile(r"(?i)^(n|b|bs|batch.*|.*_batch|.*batch_size|unk__\d+|none|\?|-1|dynamic.*|.*_dim_?0)$")
_NOT_BATCH_NAMES = re.compile(r"(?i)^(t|l|s|seq.*|.*_?len(gth)?|time.*|frames?|tokens?|steps?|height|width|h|w)$")


@dataclasses.dataclass(frozen=True)
class BatchAxis:
    """Whether an input's first dimension is taken as the batch (rows stacked along it), and why."""

    is_batch: bool
    reason: str


def batch_axes(info: ModelInfo, stated: bool | Mapping[str, bool] | None = None) -> dict[str, BatchAxis]:
    """For each tensor input, whether its first dimension is the batch: as ``stated`` (one bool
    for every input, or per input name), else inferred from the model's declared shapes.

    Inferred: a fixed first dimension is not a batch (rows are fed whole); an unnamed one is; a
    named one is, unless the name reads as a length (``T``, ``seq_len``, ``frames``...) or appears
    at another position too, while batch-like names (``N``, ``batch_size``...) and a name that is
    the first dimension of every output are batches.
    """
    first_of_outputs = {t.dims[0] for t in info.outputs if t.dims}
    # A sequence, map or optional input is one value per row, so one call scores one row.
    whole = next(
        (t for t in info.inputs if t.column_type is not None and not isinstance(t.column_type, TensorType)), None
    )
    decisions: dict[str, BatchAxis] = {}
    for t in info.inputs:
        given = stated.get(t.name) if isinstance(stated, Mapping) else stated
        if given is not None:
            decisions[t.name] = BatchAxis(bool(given), "stated by batch_dimension")
            continue
        if whole is not None:
            what = "this" if whole is t else f"input {whole.name!r}"
            decisions[t.name] = BatchAxis(False, f"{what} is a {whole.type_text}: one value per row")
            continue
        if not t.dims:
            decisions[t.name] = BatchAxis(False, "a scalar" if t.dims == () else "not a tensor of known rank")
            continue
        first = t.dims[0]
        if isinstance(first, int) and first >= 0:
            decisions[t.name] = BatchAxis(False, f"the first dimension is fixed at {first}")
        elif first is None:
            decisions[t.name] = BatchAxis(True, "the first dimension is unnamed")
        elif isinstance(first, int):
            decisions[t.name] = BatchAxis(True, f"the first dimension is unknown ({first})")
        elif _BATCH_NAMES.match(first):
            decisions[t.name] = BatchAxis(True, f"the first dimension is named like a batch ({first})")
        elif any(first in (o.dims or ())[1:] for o in (*info.inputs, *info.outputs)):
            decisions[t.name] = BatchAxis(False, f"{first} is also a dimension other than the first")
        elif len(info.outputs) > 0 and first_of_outputs == {first}:
            decisions[t.name] = BatchAxis(True, f"{first} is the first dimension of every output too")
        elif _NOT_BATCH_NAMES.match(first):
            decisions[t.name] = BatchAxis(False, f"the first dimension is named like a length ({first})")
        else:
            decisions[t.name] = BatchAxis(True, f"the first dimension is symbolic ({first})")
    # Rows are stacked only when every input has a batch axis; otherwise each call is one row.
    # (ML.NET's unused inputs are fed a constant, they do not count.)
    single = next((n for n, d in decisions.items() if not d.is_batch and not MLNET_UNUSED.match(n)), None)
    if single is not None:
        for name, d in decisions.items():
            given = stated.get(name) if isinstance(stated, Mapping) else stated
            if d.is_batch and given is None:
                decisions[name] = BatchAxis(False, f"{d.reason}, but input {single!r} has none: one row per call")
    return decisions


MLNET_UNUSED = re.compile(r"^mlnet\..+\.unused(Input|Output)$")  # ML.NET's placeholder tensors, fed / ignored


@dataclasses.dataclass(frozen=True)
class ModelInfo(RichDisplay):
    """What Netron's Model Properties shows about a model (``onnxpipe.render(info)`` or a
    notebook shows it as ``onnxpipe inspect`` does)."""

    def __rich__(self) -> Any:
        from onnxpipe.runtime._inspect import render_model_info

        return render_model_info(self)

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

        axes = batch_axes(self)

        def batched(t: TensorInfo) -> dict[str, Any]:
            axis = axes.get(t.name)
            batch = None if axis is None else {"is_batch": axis.is_batch, "reason": axis.reason}
            return {**tensor(t), "batch": batch}

        return {
            "path": self.path,
            "inputs": [batched(t) for t in self.inputs],
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


def _check_described(model: onnx.ModelProto, label: str) -> None:
    """The strings :func:`describe_model` reads are text (a model from :func:`load_model` is checked whole)."""
    g = model.graph
    parts: list[tuple[Any, str]] = [(vi, f"graph.input[{i}]") for i, vi in enumerate(g.input)]
    parts += [(vi, f"graph.output[{i}]") for i, vi in enumerate(g.output)]
    parts += [(o, f"opset_import[{i}]") for i, o in enumerate(model.opset_import)]
    parts += [(p, f"metadata_props[{i}]") for i, p in enumerate(model.metadata_props)]
    for message, where in parts:
        check_strings(message, label, where)
    texts = [model.producer_name, model.producer_version, model.domain, model.doc_string, g.name]
    texts += [t.name for t in g.initializer]
    if not all(isinstance(t, str) for t in texts):
        check_strings(model, label)  # names the field


def describe_model(model: onnx.ModelProto, path: str | None = None) -> ModelInfo:
    """What Netron's Model Properties shows about ``model``; ModelLoadError for text that is not UTF-8."""
    _check_described(model, Path(path).name if path else "<model>")
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
    loops: bool = False  # the model has Loop or Scan nodes: its run time is not bounded by its size


def load_model(
    model_file: str | Path | None = None,
    model_bytes: bytes | None = None,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> LoadedModel:
    """Parse a model from a file or from bytes, without executing or reading anything else.

    The model is checked by :func:`onnxpipe.runtime._guard.check_model` before anything uses it:
    every string is valid UTF-8; every external-data reference (any tensor, anywhere in the
    model) is a relative path to a regular file inside the model's folder, symlinks resolved,
    with its offset and length inside that file (a model given as bytes may have none); with
    ``max_bytes`` (None: not checked, for describing a model) the file, the tensors it declares
    and what constant folding would produce fit in that many bytes. Models with external data
    are opened by path. Every refusal is a :class:`~onnxpipe.errors.ModelLoadError`.
    """
    if (model_file is None) == (model_bytes is None):
        raise ModelLoadError("give exactly one of model_file= or model_bytes=")
    if model_bytes is not None:
        if not isinstance(model_bytes, bytes | bytearray | memoryview):
            raise ModelLoadError(f"model_bytes must be bytes, got {type(model_bytes).__name__}")
        data = bytes(model_bytes)
        _check_file_size(len(data), "<bytes>", max_bytes)
        proto = _parse(data, "<bytes>")
        check = check_model(proto, folder=None, label="<bytes>", max_bytes=max_bytes)
        return LoadedModel(proto, data, "<bytes>", check.loops)
    path = Path(model_file)  # type: ignore[arg-type]
    if not path.is_file():
        raise DataFileNotFoundError(f"ONNX model file {quoted(str(path))} does not exist")
    _check_file_size(path.stat().st_size, path.name, max_bytes)
    data = path.read_bytes()
    proto = _parse(data, path.name)
    folder = path.resolve().parent
    check = check_model(proto, folder=folder, label=path.name, max_bytes=max_bytes)
    if not any(ref.flagged for ref in check.external):
        return LoadedModel(proto, data, path.name, check.loops)
    return LoadedModel(proto, str(path.resolve()), path.name, check.loops)


def model_with_data(model: LoadedModel, max_bytes: int | None = DEFAULT_MAX_BYTES) -> onnx.ModelProto:
    """The model with its external data read in (checked again now, so a file swapped since is caught)."""
    if isinstance(model.source, bytes):
        return model.proto
    return read_external_data(model.proto, Path(model.source).parent, model.label, max_bytes)


_PROTOBUF_LIMIT = (2 << 30) - 1  # protobuf parses no message of 2 GiB or more


def _check_file_size(size: int, label: str, max_bytes: int | None) -> None:
    if size > _PROTOBUF_LIMIT:
        raise ModelLoadError(
            f"{shown(label)} is not a valid ONNX model: it is {size:,} bytes, and an ONNX file holds at most 2 GiB "
            "(larger models keep their weights in external data files)"
        )
    if max_bytes is not None and size > max_bytes:
        raise ModelLoadError(
            f"model {quoted(label)} is {size:,} bytes, more than max_bytes={max_bytes:,}; pass a larger max_bytes= "
            "if the model really needs that much memory"
        )


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    import onnx

    try:
        proto = onnx.load_model_from_string(data)
    except UnicodeDecodeError as exc:
        # protobuf's pure-Python implementation (used where its C extension cannot load) checks
        # text while parsing; the C one hands it back as bytes, which check_strings refuses.
        where = str(exc).rpartition(" in field: ")[2] or "a text field"
        text = exc.object[max(0, exc.start - 3) : exc.end + 3]
        raise ModelLoadError(
            f"model {quoted(label)} is not a valid ONNX model: {shown(where)} holds {quoted(bytes(text))}, "
            "which is not valid UTF-8 text"
        ) from None
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelLoadError(f"{shown(label)} is not a valid ONNX model: {shown(exc)}") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{shown(label)} is not a valid ONNX model: it has no graph")
    return proto
