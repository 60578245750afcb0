"""Checks on an untrusted ONNX model before anything reads its external data or allocates its tensors.

A bare ``.onnx`` file can be written by anyone. Parsing it runs no code, but what happens next
can hurt: ONNX Runtime (and ``onnx.load``) read the files its tensors name as external data,
allocate every tensor at the size it declares, fold constants (a 1 KB ``ConstantOfShape`` can ask
for 100 GB) and run loops as many times as the model says. This module is the one place that
looks at all of that, on the parsed ``ModelProto`` and before any of it happens:

- :func:`check_strings` - every string field of the model is valid UTF-8 (protobuf hands back
  ``bytes`` for invalid text in ONNX's proto2 messages);
- :func:`external_data` - every tensor that points at external data (initializers, sparse
  initializers, tensor attributes of any node such as Constant's ``value`` / ``sparse_value``,
  subgraphs of If / Loop / Scan at any depth, functions, training graphs) names a regular file
  inside the model's folder (symlinks resolved), by a relative, normalized path, with ``offset``
  and ``length`` inside the file; a model given as bytes may use no external data at all;
- :func:`check_sizes` - the bytes the model declares (every tensor, sparse tensors at their dense
  size) and what constant folding of ``ConstantOfShape``, ``Expand``, ``Tile``, ``Range``,
  ``Resize`` and ``OneHot`` with constant sizes would produce stay within ``max_bytes``;
- :func:`check_model` - all three, as :func:`onnxpipe.runtime._model.load_model` runs them;
- :func:`read_external_data` - a self-contained copy of a model, reading only checked locations.

Every refusal is a :class:`~onnxpipe.errors.ModelLoadError` naming the tensor or node and, for
external data, the location.
"""

from __future__ import annotations

import dataclasses
import math
import os
import posixpath
import re
import stat
from collections import ChainMap
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe._display import quoted, shown
from onnxpipe._limits import DEFAULT_MAX_BYTES, DEFAULT_VERIFY_TIMEOUT
from onnxpipe.errors import InvalidArgumentError, ModelLoadError
from onnxpipe.runtime._elem_type import ElemType

if TYPE_CHECKING:  # the functions that need onnx at run time import it (see _elem_type for why)
    import onnx
    from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_VERIFY_TIMEOUT",
    "ExternalData",
    "ModelCheck",
    "check_feed",
    "check_max_bytes",
    "check_model",
    "check_sizes",
    "check_strings",
    "check_verify_timeout",
    "external_data",
    "quoted",
    "read_external_data",
]

# DEFAULT_MAX_BYTES (4 GiB) bounds what a model may make ONNX Runtime allocate before it runs: the
# bytes of all its tensors (external data included, sparse tensors at their dense size), of each
# tensor constant folding would produce, and of the synthetic inputs onnxpipe feeds it while
# checking it. DEFAULT_VERIFY_TIMEOUT (10 s) bounds running a model on synthetic inputs while
# loading it (onnxpipe does so for models with loops, whose run time their size does not bound).
# Both are onnxpipe._limits' defaults, shared with saved pipelines.

_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum"})  # what ONNX Runtime reads
_MAX_LOCATION = 4096
_DIGITS = re.compile(r"[0-9]{1,20}")
_SMALL = 4096  # elements of a constant evaluated while looking for folding bombs (shapes are tiny)
_LOOPS = frozenset({"Loop", "Scan"})
_HUGE = float(1 << 62)  # a dimension no model can have: what an overflowing size computation gives

# Bytes per element as ONNX Runtime holds them (4-bit types rounded up; a string is a std::string).
_ITEMSIZE: dict[int, int] = {
    ElemType.FLOAT: 4,
    ElemType.UINT8: 1,
    ElemType.INT8: 1,
    ElemType.UINT16: 2,
    ElemType.INT16: 2,
    ElemType.INT32: 4,
    ElemType.INT64: 8,
    ElemType.STRING: 32,
    ElemType.BOOL: 1,
    ElemType.FLOAT16: 2,
    ElemType.DOUBLE: 8,
    ElemType.UINT32: 4,
    ElemType.UINT64: 8,
    ElemType.COMPLEX64: 8,
    ElemType.COMPLEX128: 16,
    ElemType.BFLOAT16: 2,
}
_UNKNOWN_ITEMSIZE = 16  # undefined or future types: an upper bound


def itemsize(data_type: int) -> int:
    """Bytes per element of an ONNX element type (an upper bound for exotic types)."""
    return _ITEMSIZE.get(data_type, 1 if 17 <= data_type <= 24 else _UNKNOWN_ITEMSIZE)  # float8, 4-bit: 1


def check_max_bytes(value: object, what: str = "max_bytes") -> int:
    """``value`` as a byte limit, or :class:`~onnxpipe.errors.InvalidArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise InvalidArgumentError(f"{what} must be a positive number of bytes, got {quoted(value)}")
    return int(value)


def check_verify_timeout(value: object, what: str = "verify_timeout") -> float | None:
    """``value`` as a deadline in seconds (None: no deadline), or InvalidArgumentError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(
            f"{what} must be a positive number of seconds or None (no deadline), got {quoted(value)}"
        )
    return float(value)


# ------------------------------------------------------------------------------------------------
# Strings


def _is_repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return bool(field.label == field.LABEL_REPEATED)  # protobuf < 5


_TEXT_FIELDS: dict[str, tuple[tuple[str, bool, bool], ...]] = {}


def _text_fields(descriptor: Any) -> tuple[tuple[str, bool, bool], ...]:
    """(name, is a message, is repeated) of the string and message fields of a message type."""
    fields = _TEXT_FIELDS.get(descriptor.full_name)
    if fields is None:
        fields = _TEXT_FIELDS[descriptor.full_name] = tuple(
            (f.name, f.type == f.TYPE_MESSAGE, _is_repeated(f))
            for f in descriptor.fields
            if f.type in (f.TYPE_STRING, f.TYPE_MESSAGE)
        )
    return fields


_Where = tuple[Any, str, int | None] | None  # (the parent's, field, index): formatted only for messages


def _where_text(where: _Where, root: str) -> str:
    parts: list[str] = []
    while where is not None:
        where, field, index = where
        parts.append(f".{field}" if index is None else f".{field}[{index}]")
    return root + "".join(reversed(parts))


def check_strings(message: Any, label: str, path: str = "model") -> None:
    """Every string field of ``message`` and of the messages inside it is text.

    ONNX's messages are proto2, where protobuf keeps invalid UTF-8 as it is and hands it back as
    ``bytes`` (or, in some implementations, raises on access). Bytes fields (tensor data) are
    never touched, so a model's weights are not copied.
    """
    stack: list[tuple[Any, _Where]] = [(message, None)]
    push = stack.append
    while stack:
        msg, where = stack.pop()
        name = ""
        try:
            for name, is_message, repeated in _text_fields(msg.DESCRIPTOR):
                if is_message:
                    if repeated:
                        for i, v in enumerate(getattr(msg, name)):
                            push((v, (where, name, i)))
                    elif msg.HasField(name):
                        push((getattr(msg, name), (where, name, None)))
                    continue
                values = getattr(msg, name)
                for v in values if repeated else (values,):
                    if type(v) is not str:
                        raise _NotTextError(v)
        except _NotTextError as bad:
            raise ModelLoadError(
                f"model {quoted(label)} is not a valid ONNX model: {_where_text((where, name, None), path)} holds "
                f"{quoted(bytes(bad.value)[:200])}, which is not valid UTF-8 text"
            ) from None
        except Exception as exc:  # an implementation that decodes on access
            raise ModelLoadError(
                f"model {quoted(label)} is not a valid ONNX model: {_where_text((where, name, None), path)} "
                f"cannot be read ({type(exc).__name__}: {shown(exc)})"
            ) from None


class _NotTextError(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


# ------------------------------------------------------------------------------------------------
# Walking every tensor of a model


@dataclasses.dataclass
class _Graph:
    """A list of nodes that runs in one scope: a graph, a subgraph or a function body."""

    where: str  # "" for the main graph, else e.g. " in attribute 'body' of node 'loop' (Loop)"
    nodes: Sequence[NodeProto]
    initializers: Sequence[TensorProto]
    outer: _Graph | None  # the scope whose values a subgraph sees


@dataclasses.dataclass
class _Walk:
    tensors: list[tuple[TensorProto, str]] = dataclasses.field(default_factory=list)  # dense tensors
    sparse: list[tuple[SparseTensorProto, str]] = dataclasses.field(default_factory=list)
    graphs: list[_Graph] = dataclasses.field(default_factory=list)
    loops: bool = False


def _node_text(node: NodeProto) -> str:
    return (
        f"node {quoted(node.name)} ({shown(node.op_type)})" if node.name else f"an unnamed {shown(node.op_type)} node"
    )


def _walk(model: ModelProto) -> _Walk:
    """Every tensor, sparse tensor and node list in the model, with where each one is."""
    from onnx import GraphProto

    out = _Walk()
    pending: list[tuple[GraphProto | onnx.FunctionProto, str, _Graph | None]] = [(model.graph, "", None)]
    for function in model.functions:
        pending.append((function, f" in function {quoted(function.name)} (domain {quoted(function.domain)})", None))
    for k, training in enumerate(model.training_info):
        for field in ("initialization", "algorithm"):
            if training.HasField(field):
                pending.append((getattr(training, field), f" in training_info[{k}].{field}", None))
    while pending:
        graph, where, outer = pending.pop()
        if isinstance(graph, GraphProto):
            scope = _Graph(where, graph.node, graph.initializer, outer)
            out.tensors.extend((t, f"initializer{where}") for t in graph.initializer)
            out.sparse.extend((s, f"sparse initializer{where}") for s in graph.sparse_initializer)
        else:
            scope = _Graph(where, graph.node, (), None)
            for attr in graph.attribute_proto:  # default attribute values
                _attribute(out, pending, attr, f"default of attribute {quoted(attr.name)}{where}", scope)
        out.graphs.append(scope)
        for node in graph.node:
            out.loops |= node.op_type in _LOOPS
            for attr in node.attribute:
                if _holds_tensors(attr):  # the description is built only for these (most attributes are numbers)
                    _attribute(out, pending, attr, f"attribute {quoted(attr.name)} of {_node_text(node)}{where}", scope)
    return out


def _holds_tensors(attr: AttributeProto) -> bool:
    return bool(
        attr.HasField("t")
        or attr.tensors
        or attr.HasField("sparse_tensor")
        or attr.sparse_tensors
        or attr.HasField("g")
        or attr.graphs
    )


def _attribute(out: _Walk, pending: list[Any], attr: AttributeProto, where: str, scope: _Graph) -> None:
    if attr.HasField("t"):
        out.tensors.append((attr.t, where))
    out.tensors.extend((t, where) for t in attr.tensors)
    if attr.HasField("sparse_tensor"):
        out.sparse.append((attr.sparse_tensor, where))
    out.sparse.extend((s, where) for s in attr.sparse_tensors)
    if attr.HasField("g"):
        pending.append((attr.g, " in " + where, scope))
    pending.extend((g, " in " + where, scope) for g in attr.graphs)


def _all_tensors(walk: _Walk) -> Iterator[tuple[TensorProto, str]]:
    yield from walk.tensors
    for sparse, where in walk.sparse:
        yield sparse.values, f"values of {where}"
        yield sparse.indices, f"indices of {where}"


def _tensor_label(tensor: TensorProto, where: str) -> str:
    return f"tensor {quoted(tensor.name)} ({where})" if tensor.name else f"an unnamed tensor ({where})"


# ------------------------------------------------------------------------------------------------
# External data


@dataclasses.dataclass(frozen=True)
class ExternalData:
    """A checked external-data reference of one tensor."""

    tensor: str  # the tensor's name
    where: str  # e.g. "initializer", "attribute 'value' of node 'c' (Constant)"
    location: str  # as written in the model
    path: Path  # resolved; a regular file inside the model's folder
    offset: int
    length: int | None  # None: to the end of the file
    flagged: bool  # data_location is EXTERNAL (else the entries are there but unused)


def _refuse_external(label: str, location: str, problem: str, tensor: TensorProto, where: str) -> ModelLoadError:
    return ModelLoadError(
        f"model {quoted(label)} refers to external data {quoted(location)} {problem} "
        f"({_tensor_label(tensor, where)}); refusing to load it"
    )


def _location_problem(location: str) -> str | None:
    """Why ``location`` is not a plain relative path below the model's folder, or None."""
    if not location:
        return "that is empty"
    if len(location) > _MAX_LOCATION:
        return f"longer than {_MAX_LOCATION} characters"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in location):
        return "containing control characters"
    if "\\" in location:
        return "containing a backslash"
    windows = PureWindowsPath(location)
    if windows.drive or windows.root:
        return "outside its folder (a drive or root)"
    if os.name == "nt" and ":" in location:
        return "containing a colon (an alternate data stream)"
    if PurePosixPath(location).is_absolute():
        return "outside its folder (an absolute path)"
    parts = location.split("/")
    if ".." in parts:
        return "outside its folder"
    if posixpath.normpath(location) != location or "." in parts:
        return "that is not a normalized path"
    return None


def _entries(tensor: TensorProto) -> dict[str, str] | str:
    """The tensor's external-data entries, or why they are unusable."""
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key not in _EXTERNAL_KEYS:
            return f"with an unknown key {quoted(entry.key)}"
        if entry.key in entries:
            return f"with the key {quoted(entry.key)} given twice"
        entries[entry.key] = entry.value
    return entries


def _number(entries: dict[str, str], key: str) -> int | str | None:
    value = entries.get(key)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value):
        return f"with {key} {quoted(value)}, which is not a non-negative integer"
    return int(value)


def external_data(
    model: ModelProto, folder: Path | None, label: str, walk: _Walk | None = None
) -> list[tuple[TensorProto, ExternalData]]:
    """Every external-data reference in ``model``, checked; ``folder`` None: the model came as bytes.

    A reference is allowed only as a relative, normalized path (no ``..``, no absolute path, no
    drive, no backslash, no control characters) that resolves, symlinks followed, to a regular
    file inside ``folder``, with a decimal ``offset`` and ``length`` inside that file. Tensors
    that carry external-data entries without being marked external are checked the same way.
    """
    from onnx import TensorProto

    found: list[tuple[TensorProto, ExternalData]] = []
    root = folder.resolve() if folder is not None else None
    for tensor, where in _all_tensors(walk or _walk(model)):
        flagged = tensor.data_location == TensorProto.EXTERNAL
        if tensor.data_location not in (TensorProto.DEFAULT, TensorProto.EXTERNAL):
            raise ModelLoadError(
                f"model {quoted(label)}: {_tensor_label(tensor, where)} has an unknown data_location "
                f"{tensor.data_location}; refusing to load it"
            )
        if not flagged and not tensor.external_data:
            continue
        entries = _entries(tensor)
        location = entries.get("location", "") if isinstance(entries, dict) else ""
        if root is None:
            raise ModelLoadError(
                f"model {quoted(label)} keeps its weights in external data files, which cannot be found from "
                f"bytes; pass model_file= with the model's path instead ({_tensor_label(tensor, where)}, "
                f"location {quoted(location)})"
            )
        if isinstance(entries, str):
            raise _refuse_external(label, location, entries, tensor, where)
        problem = _location_problem(location)
        if problem is not None:
            raise _refuse_external(label, location, problem, tensor, where)
        offset, length = _number(entries, "offset"), _number(entries, "length")
        for value in (offset, length):
            if isinstance(value, str):
                raise _refuse_external(label, location, value, tensor, where)
        assert not isinstance(offset, str) and not isinstance(length, str)
        target = Path(os.path.realpath(root / location))
        if not target.is_relative_to(root):
            raise _refuse_external(label, location, f"outside its folder {quoted(str(root))}", tensor, where)
        try:
            info = os.stat(target)
        except OSError:
            raise _refuse_external(label, location, "that does not exist", tensor, where) from None
        if not stat.S_ISREG(info.st_mode):
            raise _refuse_external(label, location, "that is not a regular file", tensor, where)
        start = offset or 0
        if start > info.st_size or (length is not None and start + length > info.st_size):
            raise _refuse_external(
                label,
                location,
                f"at offset {start} length {length if length is not None else 'to the end'}, beyond the end of "
                f"the file ({info.st_size} bytes)",
                tensor,
                where,
            )
        found.append((tensor, ExternalData(tensor.name, where, location, target, start, length, flagged)))
    return found


def read_external_data(model: ModelProto, folder: Path, label: str, max_bytes: int | None) -> ModelProto:
    """A copy of ``model`` with its external data read in (only from checked locations, checked again now)."""
    from onnx import ModelProto, TensorProto

    copy = ModelProto()
    copy.CopyFrom(model)
    total = 0
    for tensor, ref in external_data(copy, folder, label):
        if ref.flagged:
            size = os.stat(ref.path).st_size
            count = (size - ref.offset) if ref.length is None else ref.length
            total += count
            if max_bytes is not None and total > max_bytes:
                raise ModelLoadError(
                    f"model {quoted(label)}: its external data is more than max_bytes={max_bytes} bytes "
                    f"(at {_tensor_label(tensor, ref.where)}); pass a larger max_bytes= if the model really needs it"
                )
            fd = os.open(ref.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise _refuse_external(label, ref.location, "that is not a regular file", tensor, ref.where)
                data = os.pread(fd, count, ref.offset) if hasattr(os, "pread") else _read_at(fd, count, ref.offset)
            finally:
                os.close(fd)
            if len(data) != count:
                raise _refuse_external(label, ref.location, "that changed while it was read", tensor, ref.where)
            tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT
    return copy


def _read_at(fd: int, count: int, offset: int) -> bytes:  # pragma: no cover - platforms without pread
    os.lseek(fd, offset, os.SEEK_SET)
    chunks = []
    while count > 0:
        chunk = os.read(fd, min(count, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------------------------------------
# Sizes


_CLAMP = 1 << 64  # element counts are exact below this, a lower bound above


def _size_text(size: int) -> str:
    return f"{size:,} bytes" if size < _CLAMP else f"more than {_CLAMP:,} bytes"


def _too_big(label: str, what: str, size: int, max_bytes: int) -> ModelLoadError:
    return ModelLoadError(
        f"model {quoted(label)}: {what}: {_size_text(size)}, more than max_bytes={max_bytes:,}; refusing to load it "
        "(pass a larger max_bytes= if the model really needs that much memory)"
    )


def _count(dims: Sequence[int], limit: int = _CLAMP) -> int:
    """The product of ``dims`` (all >= 0); past ``limit`` it stays at ``limit`` (never a huge integer)."""
    n = 1
    for d in dims:
        n *= d
        if n == 0:
            return 0
        n = min(n, limit)  # keep going for a zero
    return n


def _dense_bytes(tensor: TensorProto, where: str, label: str, max_bytes: int) -> int:
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ModelLoadError(
            f"model {quoted(label)}: {_tensor_label(tensor, where)} has a negative dimension {dims}; "
            "refusing to load it"
        )
    return _count(dims) * itemsize(tensor.data_type)


def check_sizes(model: ModelProto, label: str, max_bytes: int, walk: _Walk | None = None) -> int:
    """Refuse a model whose tensors, or whose constant-foldable nodes, need more than ``max_bytes``.

    Returns the bytes the model's tensors declare (sparse tensors at their dense size).
    """
    walk = walk or _walk(model)
    total = 0
    for tensor, where in walk.tensors:
        size = _dense_bytes(tensor, where, label, max_bytes)
        if size > max_bytes:
            text = f"{_tensor_label(tensor, where)} declares the shape {_dims_text(list(tensor.dims))}"
            raise _too_big(label, text, size, max_bytes)
        total += size
        if total > max_bytes:
            text = f"its tensors declare this much in all (counted up to {_tensor_label(tensor, where)})"
            raise _too_big(label, text, total, max_bytes)
    for sparse, where in walk.sparse:
        dims = list(sparse.dims)
        values = _dense_bytes(sparse.values, f"values of {where}", label, max_bytes)
        indices = _dense_bytes(sparse.indices, f"indices of {where}", label, max_bytes)
        if any(d < 0 for d in dims):
            raise ModelLoadError(
                f"model {quoted(label)}: sparse {_tensor_label(sparse.values, where)} has a negative dimension "
                f"{dims}; refusing to load it"
            )
        dense = _count(dims) * itemsize(sparse.values.data_type)
        if dense > max_bytes:
            text = f"sparse {_tensor_label(sparse.values, where)} has the dense shape {_dims_text(dims)}"
            raise _too_big(label, text, dense, max_bytes)
        total += values + indices + dense
        if total > max_bytes:
            text = f"its tensors declare this much in all (counted up to sparse {_tensor_label(sparse.values, where)})"
            raise _too_big(label, text, total, max_bytes)
    scopes: dict[int, _Known] = {}
    for graph in walk.graphs:  # an outer graph comes before its subgraphs
        outer = scopes.get(id(graph.outer)) if graph.outer is not None else None
        known = scopes[id(graph)] = _scope(graph, outer)
        total = _check_folding(graph, known, label, max_bytes, total)
    return total


def _dims_text(dims: Sequence[int]) -> str:
    text = "[" + ",".join(str(d) for d in dims[:16]) + (",…" if len(dims) > 16 else "") + "]"
    return shown(text)


def check_feed(shape: Sequence[int], item: int, max_bytes: int, what: str) -> None:
    """Refuse to allocate a synthetic input of ``shape`` (declared by a model) beyond ``max_bytes``."""
    if any(d < 0 for d in shape):
        raise ModelLoadError(f"{what}: the model declares a negative dimension {_dims_text(shape)}")
    size = _count(shape) * item
    if size > max_bytes:
        raise ModelLoadError(
            f"{what}: the model declares dimensions {_dims_text(shape)}, {_size_text(size)}, more than "
            f"max_bytes={max_bytes:,}; refusing to allocate it (pass a larger max_bytes= if the model really needs it)"
        )


# Constant folding: known values (small constants) and known shapes, propagated through the ops
# that compute shapes, so that ConstantOfShape(Concat(Shape(W), [100000])) is seen too.


@dataclasses.dataclass
class _Known:
    """What is known in one scope; a subgraph's maps are chained on its outer graph's."""

    values: ChainMap[str, np.ndarray | TensorProto | None]  # small constants (tensors read when first needed)
    shapes: ChainMap[str, tuple[int, ...]]  # static shapes
    types: ChainMap[str, int]  # element types
    folded: ChainMap[str, bool]  # values computed from constants only
    elements: ChainMap[str, int]  # an upper bound on the elements of a folded value of unknown shape

    def child(self) -> _Known:
        return _Known(
            self.values.new_child(),
            self.shapes.new_child(),
            self.types.new_child(),
            self.folded.new_child(),
            self.elements.new_child(),
        )


def _value(tensor: TensorProto) -> np.ndarray | None:
    from onnx import TensorProto, numpy_helper

    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        return None
    if tensor.data_type not in (ElemType.INT64, ElemType.INT32, ElemType.FLOAT, ElemType.DOUBLE):
        return None
    if any(d < 0 for d in tensor.dims) or _count(list(tensor.dims), _SMALL) > _SMALL:
        return None
    try:
        return np.asarray(numpy_helper.to_array(tensor))
    except Exception:  # inconsistent data: ONNX Runtime will refuse the model itself
        return None


def _scope(graph: _Graph, outer: _Known | None) -> _Known:
    known = _Known(ChainMap(), ChainMap(), ChainMap(), ChainMap(), ChainMap()) if outer is None else outer.child()
    for t in graph.initializers:
        known.shapes[t.name] = tuple(t.dims)
        known.types[t.name] = t.data_type
        known.folded[t.name] = True
        known.values[t.name] = t
    return known


def _get(known: _Known, name: str, *, ints: bool = False) -> np.ndarray | None:
    """The value of ``name`` if it is a small constant (of integers with ``ints``, what sizes are made of);
    an initializer is read the first time it is asked for."""
    from onnx import TensorProto

    v = known.values.get(name)
    if isinstance(v, TensorProto):
        if ints and v.data_type not in (ElemType.INT64, ElemType.INT32):
            return None
        v = known.values[name] = _value(v)
    if v is not None and ints and v.dtype.kind not in "iuO":
        return None
    return v


def _ints(known: _Known, name: str) -> list[int] | None:
    v = _get(known, name, ints=True)
    if v is None or v.ndim > 1:
        return None
    return [int(x) for x in v.reshape(-1)]


def _scalar(known: _Known, name: str) -> float | None:
    v = _get(known, name)
    if v is None or v.size != 1:
        return None
    return float(v.reshape(-1)[0])


def _attr(node: NodeProto, name: str) -> AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _propagate(node: NodeProto, known: _Known) -> None:
    """Record what ``node``'s outputs are, where cheap to know (small constant values, shapes)."""
    if node.domain not in ("", "ai.onnx") or not node.output:
        return
    op, out = node.op_type, node.output[0]
    inputs = list(node.input)
    if inputs and all(i == "" or i in known.folded for i in inputs):
        known.folded.update(dict.fromkeys(node.output, True))
    try:
        result: np.ndarray | None = None
        if op == "Constant":
            known.folded.update(dict.fromkeys(node.output, True))
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    known.shapes[out] = tuple(a.t.dims)
                    known.types[out] = a.t.data_type
                    result = _value(a.t)
                elif a.name == "sparse_value" and a.HasField("sparse_tensor"):
                    known.shapes[out] = tuple(a.sparse_tensor.dims)
                    known.types[out] = a.sparse_tensor.values.data_type
                elif a.name in ("value_int", "value_ints") and len(a.ints) <= _SMALL:
                    result = np.array(a.i if a.name == "value_int" else list(a.ints), np.int64)
                elif a.name in ("value_float", "value_floats") and len(a.floats) <= _SMALL:
                    result = np.array(a.f if a.name == "value_float" else list(a.floats), np.float32)
        elif op in ("Identity", "Cast", "Squeeze", "Unsqueeze", "Reshape", "Flatten") and inputs:
            src = _get(known, inputs[0], ints=True)
            if op in ("Identity", "Cast") and inputs[0] in known.shapes:
                known.shapes[out] = known.shapes[inputs[0]]
            if src is not None:
                result = src.reshape(-1) if src.ndim else src
                if op == "Cast":
                    to = _attr(node, "to")
                    if to is not None and to.i in (ElemType.INT64, ElemType.INT32):
                        result = result.astype(np.int64)
        elif op == "Shape" and inputs and inputs[0] in known.shapes:
            dims = known.shapes[inputs[0]]
            start, end = _attr(node, "start"), _attr(node, "end")
            result = np.array(dims[slice(start.i if start else None, end.i if end else None)], np.int64)
        elif op == "Concat" and inputs:
            parts = [_get(known, i, ints=True) for i in inputs]
            if all(p is not None and p.ndim <= 1 for p in parts):
                result = np.concatenate([p.reshape(-1) for p in parts if p is not None])
        elif op in ("Mul", "Add", "Sub", "Max", "Min") and len(inputs) == 2:
            a, b = _get(known, inputs[0], ints=True), _get(known, inputs[1], ints=True)
            if a is not None and b is not None and a.size <= _SMALL and b.size <= _SMALL:
                fn = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Max": np.maximum, "Min": np.minimum}[op]
                if a.dtype.kind in "iuO" and b.dtype.kind in "iuO":  # exact: sizes must not wrap around
                    result = np.asarray(fn(a.astype(object), b.astype(object)), dtype=object)
                else:
                    with np.errstate(all="ignore"):
                        result = np.asarray(fn(a, b))
        elif op in ("Neg", "Abs") and inputs:
            src = _get(known, inputs[0], ints=True)
            if src is not None:  # exact on Python ints: -(-2**63) does not wrap
                result = np.asarray(np.negative(src.astype(object)) if op == "Neg" else np.abs(src.astype(object)))
        elif op == "Gather" and len(inputs) == 2:
            data, idx = _get(known, inputs[0], ints=True), _get(known, inputs[1], ints=True)
            axis = _attr(node, "axis")
            if data is not None and idx is not None and data.ndim == 1 and (axis is None or axis.i == 0):
                result = data[idx.astype(np.int64)]
        if result is not None and result.size <= _SMALL:
            if result.dtype == object:
                result = np.array([int(x) for x in result.reshape(-1)], dtype=object).reshape(result.shape)
            known.values[out] = result
            known.shapes.setdefault(out, tuple(result.shape))
    except (ValueError, TypeError, IndexError, OverflowError):  # inconsistent constants: not a bomb we can see
        return


def _produced(node: NodeProto, known: _Known) -> tuple[tuple[int, ...], int, bool] | None:
    """The static shape (a lower bound where the data input is unknown), element size and whether all
    inputs are constants, of what ``node`` would produce from constant sizes; None when unknown."""
    op = node.op_type
    inputs = list(node.input) + [""] * 4

    def ints(name: str) -> list[int] | None:
        return _ints(known, name) if name else None

    def item_of(name: str, default: int = 1) -> int:
        return itemsize(known.types[name]) if name in known.types else default

    if op == "ConstantOfShape":
        dims = ints(inputs[0])
        if dims is None:
            return None
        value = _attr(node, "value")
        item = itemsize(value.t.data_type) if value is not None and value.HasField("t") else 4
        return tuple(dims), item, True
    if op == "Expand":
        shape = ints(inputs[1])
        if shape is None:
            return None
        data = known.shapes.get(inputs[0], ())
        rank = max(len(shape), len(data))
        a = [1] * (rank - len(data)) + list(data)
        b = [1] * (rank - len(shape)) + shape
        return tuple(y if x == 1 else x for x, y in zip(a, b, strict=True)), item_of(inputs[0]), False
    if op == "Tile":
        repeats = ints(inputs[1])
        if repeats is None:
            return None
        tiled = known.shapes.get(inputs[0])
        if tiled is None or len(tiled) != len(repeats):
            return tuple(repeats), item_of(inputs[0]), False
        return tuple(d * r for d, r in zip(tiled, repeats, strict=True)), item_of(inputs[0]), False
    if op == "Range":
        start, limit, delta = (_scalar(known, n) if n else None for n in inputs[:3])
        if (
            start is None
            or limit is None
            or delta is None
            or delta == 0
            or not all(math.isfinite(x) for x in (start, limit, delta))
        ):
            return None
        count = min(max((limit - start) / delta, 0.0), _HUGE)  # inf when the division overflows
        return (math.ceil(count),), item_of(inputs[0], 8), True
    if op == "Resize":
        sizes = ints(inputs[3])
        if sizes is not None:
            return tuple(sizes), item_of(inputs[0]), False
        scales = _get(known, inputs[2]) if inputs[2] else None
        resized = known.shapes.get(inputs[0])
        if scales is None or resized is None or scales.size != len(resized):
            return None
        factors = [float(s) for s in scales.reshape(-1)]
        if not all(math.isfinite(f) and f >= 0 for f in factors):
            return None
        out = tuple(math.floor(min(d * f, _HUGE)) for d, f in zip(resized, factors, strict=True))
        return out, item_of(inputs[0]), False
    if op == "Pad":  # opset 11+: pads is an input; earlier, an attribute
        pads_attr = _attr(node, "pads")
        pads = list(pads_attr.ints) if pads_attr is not None else ints(inputs[1])
        if pads is None or len(pads) % 2:
            return None
        rank = len(pads) // 2
        data = known.shapes.get(inputs[0]) or (1,) * rank
        if len(data) != rank:
            return None
        return tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(data)), item_of(inputs[0]), False
    if op in ("HannWindow", "HammingWindow", "BlackmanWindow"):
        size = _scalar(known, inputs[0]) if inputs[0] else None
        if size is None or not math.isfinite(size):
            return None
        return (int(size),), 4, True
    if op == "OneHot":
        depth = _scalar(known, inputs[1]) if inputs[1] else None
        if depth is None or not math.isfinite(depth):
            return None
        indices = known.shapes.get(inputs[0], ())
        return (*indices, int(depth)), item_of(inputs[2], 1), False
    return None


def _check_folding(graph: _Graph, known: _Known, label: str, max_bytes: int, total: int) -> int:
    for node in graph.nodes:
        produced = (
            _produced(node, known)
            if node.domain in ("", "ai.onnx") and node.op_type in _BOMBS and node.output
            else None
        )
        folded = _is_folded(node, known)
        _propagate(node, known)
        where = f"{_node_text(node)}{graph.where}"
        if produced is None:
            if folded and node.output:
                total = _check_folded(node, known, where, label, max_bytes, total)
            continue
        dims, item, constant = produced
        if any(d < 0 for d in dims):
            if node.op_type == "ConstantOfShape":
                raise ModelLoadError(
                    f"model {quoted(label)}: {where} asks for a negative dimension {_dims_text(dims)}; "
                    "refusing to load it"
                )
            continue  # -1 and the like: resolved at run time from the data, not a size we can bound
        size = _count(dims) * item
        if size > max_bytes:
            text = f"{where} would produce a tensor of shape {_dims_text(dims)} from constant sizes"
            raise _too_big(label, text, size, max_bytes)
        if constant and node.output[0] in known.folded:
            total += size
            if total > max_bytes:
                text = f"with the constants it folds, the model needs this much in all (counted up to {where})"
                raise _too_big(label, text, total, max_bytes)
        known.shapes[node.output[0]] = dims
    return total


# Constant folding: ONNX Runtime computes, when it opens a model, every node whose inputs are all
# constants (and a generator such as RandomNormal runs at the first call whatever its inputs). The
# size of what such a node makes must be bounded from what is known, else the model is refused:
# a chain the tracker above cannot evaluate (``Abs`` in front of ``ConstantOfShape``), a broadcast
# of two constants ([N, 1] + [1, N]) or an op that makes a tensor from a few numbers would
# otherwise allocate without a check.
_SAME_SIZE = frozenset(
    {
        "Identity",
        "Cast",
        "CastLike",
        "Abs",
        "Neg",
        "Floor",
        "Ceil",
        "Round",
        "Sqrt",
        "Exp",
        "Log",
        "Reciprocal",
        "Relu",
        "Sigmoid",
        "Tanh",
        "Sign",
        "Not",
        "Erf",
        "IsNaN",
        "IsInf",
        "Softmax",
        "LogSoftmax",
        "Hardmax",
        "Clip",
        "Dropout",
        "LeakyRelu",
        "Elu",
        "Selu",
        "Celu",
        "HardSigmoid",
        "HardSwish",
        "Softplus",
        "Softsign",
        "Sin",
        "Cos",
        "Tan",
        "Asin",
        "Acos",
        "Atan",
        "Sinh",
        "Cosh",
        "Asinh",
        "Acosh",
        "Atanh",
        "BitwiseNot",
        "CumSum",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "ScatterND",
        "ScatterElements",
        "Scatter",
        "Shrink",
        "Mish",
        "Gelu",
        "ThresholdedRelu",
        "Trilu",
        "EyeLike",
        "LpNormalization",
        "MeanVarianceNormalization",
        "QuantizeLinear",
        "DequantizeLinear",
        "LabelEncoder",
        "Normalizer",
        "Scaler",
        "Binarizer",
        "Imputer",
    }
)  # output 0 has as many elements as input 0
_NOT_LARGER = frozenset(
    {
        "Slice",
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
        "ArgMax",
        "ArgMin",
        "TopK",
        "Unique",
        "Compress",
        "Split",
        "Det",
        "Shape",
        "Size",
    }
)  # no output has more elements than input 0 (Shape: its rank)
_BROADCAST = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Mod",
        "Max",
        "Min",
        "Sum",
        "Mean",
        "Equal",
        "Less",
        "LessOrEqual",
        "Greater",
        "GreaterOrEqual",
        "And",
        "Or",
        "Xor",
        "Where",
        "BitShift",
        "BitwiseAnd",
        "BitwiseOr",
        "BitwiseXor",
        "PRelu",
    }
)


def _is_folded(node: NodeProto, known: _Known) -> bool:
    """Whether ONNX Runtime computes ``node`` from constants alone (a Constant node is a tensor the
    size checks count already)."""
    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        return False
    return all(i == "" or i in known.folded for i in node.input)


def _elements(known: _Known, name: str) -> int | None:
    shape = known.shapes.get(name)
    if shape is not None:
        return _count(shape)
    return known.elements.get(name)


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    rank = max(len(s) for s in shapes)
    out: list[int] = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            return None  # not broadcastable: ONNX Runtime refuses the model
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _folded_shape(node: NodeProto, known: _Known) -> tuple[int, ...] | None:
    """The exact shape of ``node``'s first output from its constant inputs' shapes, for the ops that
    chain constants in real models (weights reshaped, transposed, multiplied); None when unknown."""
    op = node.op_type
    inputs = [i for i in node.input if i]
    shapes = [known.shapes.get(i) for i in inputs]
    first = shapes[0] if shapes else None
    try:
        if op in _SAME_SIZE and op not in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"):
            return first
        if op in _BROADCAST and shapes and all(sh is not None for sh in shapes):
            return _broadcast([sh for sh in shapes if sh is not None])
        if first is None:
            return None
        if op == "Transpose":
            perm = _attr(node, "perm")
            order = list(perm.ints) if perm is not None else list(range(len(first)))[::-1]
            return tuple(first[a] for a in order)
        if op == "Reshape" and len(inputs) == 2:
            target = _ints(known, inputs[1])
            if target is None or target.count(-1) > 1:
                return None
            dims = [first[i] if d == 0 and i < len(first) else d for i, d in enumerate(target)]
            if -1 in dims:
                rest = _count([d for d in dims if d != -1]) or 1
                dims[dims.index(-1)] = _count(first) // rest
            return tuple(dims) if _count(dims) == _count(first) else None
        if op == "Flatten":
            axis_attr = _attr(node, "axis")
            axis = axis_attr.i if axis_attr is not None else 1
            axis = axis + len(first) if axis < 0 else axis
            return (_count(first[:axis]), _count(first[axis:]))
        if op in ("MatMul", "Gemm") and len(shapes) >= 2 and shapes[1] is not None:
            a, b = list(first), list(shapes[1])
            if op == "Gemm":
                ta, tb = _attr(node, "transA"), _attr(node, "transB")
                if ta is not None and ta.i:
                    a = a[::-1]
                if tb is not None and tb.i:
                    b = b[::-1]
            if len(a) == 1:
                a = [1, *a]
            if len(b) == 1:
                b = [*b, 1]
            if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
                return None
            batch = _broadcast([tuple(a[:-2]), tuple(b[:-2])]) if len(a) > 2 or len(b) > 2 else ()
            return None if batch is None else (*batch, a[-2], b[-1])
    except (IndexError, ValueError, TypeError):
        return None
    return None


def _folded_elements(node: NodeProto, known: _Known) -> int | None:
    """An upper bound on the elements of ``node``'s largest output when its inputs are constants."""
    op = node.op_type
    inputs = [i for i in node.input if i]
    sizes = [_elements(known, i) for i in inputs]
    if op in _SAME_SIZE or op in _NOT_LARGER:
        if not inputs or sizes[0] is None:
            return None
        return max(sizes[0], 64) if op == "Shape" else sizes[0]
    if op == "Concat":
        return None if None in sizes else sum(s for s in sizes if s is not None)
    if op in _BROADCAST or op in ("MatMul", "Gemm", "Gather", "GatherElements", "GatherND", "Einsum"):
        shapes = [known.shapes.get(i) for i in inputs]
        if op in _BROADCAST and shapes and all(s is not None for s in shapes):
            out = _broadcast([s for s in shapes if s is not None])
            return None if out is None else _count(out)
        if None in sizes:
            return None
        bound = 1  # every output element comes from a combination of input elements
        for s in sizes:
            bound = min(bound * max(s or 1, 1), _CLAMP)
        return bound
    # Sequences and optionals hold their inputs' elements, no more.
    if op == "SequenceEmpty":
        return 0
    if op in ("SequenceConstruct", "SequenceInsert", "Optional"):
        return None if None in sizes else sum(s for s in sizes if s is not None)
    if op in ("SequenceAt", "SequenceErase", "ConcatFromSequence", "SplitToSequence", "OptionalGetElement"):
        return sizes[0] if inputs else None
    if op in ("SequenceLength", "OptionalHasElement"):
        return 1
    if op in ("RandomNormal", "RandomUniform"):
        shape = _attr(node, "shape")
        return None if shape is None else _count([max(d, 0) for d in shape.ints])
    if op in ("RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial") and inputs:
        return sizes[0]
    return None


def _check_folded(node: NodeProto, known: _Known, where: str, label: str, max_bytes: int, total: int) -> int:
    if node.op_type in ("If", "Loop", "Scan"):
        # Their bodies are checked as graphs of their own; what they give back has no bound here,
        # so a size computed from it is refused.
        return total
    onnx_domain = node.domain in ("", "ai.onnx", "ai.onnx.ml")
    shape = _folded_shape(node, known) if onnx_domain and node.domain != "ai.onnx.ml" else None
    if shape is not None and all(d >= 0 for d in shape):
        known.shapes.setdefault(node.output[0], shape)
        elements: int | None = _count(shape)
    else:
        elements = _folded_elements(node, known) if onnx_domain else None
    if elements is None:
        raise ModelLoadError(
            f"model {quoted(label)}: {where} computes a tensor from constants alone, and onnxpipe cannot tell "
            "how large it would be (ONNX Runtime computes it when it opens the model); refusing to load it"
        )
    item = max([8, *(itemsize(known.types[i]) for i in node.input if i in known.types)])
    size = elements * item
    if size > max_bytes:
        raise _too_big(
            label, f"{where} would compute a tensor of {elements:,} elements from constants", size, max_bytes
        )
    total += size
    if total > max_bytes:
        text = f"with the constants it folds, the model needs this much in all (counted up to {where})"
        raise _too_big(label, text, total, max_bytes)
    for out in node.output:
        if out and out not in known.shapes:
            known.elements[out] = elements
    return total


_BOMBS = frozenset(
    {
        "ConstantOfShape",
        "Expand",
        "Tile",
        "Range",
        "Resize",
        "OneHot",
        "Pad",
        "HannWindow",
        "HammingWindow",
        "BlackmanWindow",
    }
)


# ------------------------------------------------------------------------------------------------
# Everything, as load_model runs it


@dataclasses.dataclass(frozen=True)
class ModelCheck:
    """What :func:`check_model` found out about a model that passed."""

    external: tuple[ExternalData, ...]  # checked external-data references
    declared_bytes: int | None  # bytes of the model's tensors (None when sizes were not checked)
    loops: bool  # the model has Loop or Scan nodes (its run time is not bounded by its size)


def check_model(model: ModelProto, *, folder: Path | None, label: str, max_bytes: int | None) -> ModelCheck:
    """All checks on an untrusted model: strings, external data (``folder`` None: from bytes), sizes.

    ``max_bytes`` None skips the size checks (describing a model allocates nothing).
    """
    check_strings(model, label)
    walk = _walk(model)
    refs = tuple(ref for _, ref in external_data(model, folder, label, walk))
    declared = None if max_bytes is None else check_sizes(model, label, max_bytes, walk)
    return ModelCheck(refs, declared, walk.loops)
