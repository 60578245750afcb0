"""Saved models: one zip file that is safe to open from an untrusted source.

Layout of a saved model (``ctx.model.save`` / :func:`save_model`)::

    manifest.json           format name and version, onnxpipe version, input and output schema,
                            the step names, and the model itself as a JSON value tree
    data/0000-<hint>.npy    numpy arrays, loaded with ``allow_pickle=False``
    data/0001-<hint>.onnx   the ONNX model of an ``apply_onnx_model`` step
    data/0002-<hint>.txt    long texts, e.g. a LightGBM model in LightGBM's own text format
    data/0003-<hint>.arrow  Arrow arrays (IPC stream) and numpy arrays of strings

A component is written as its registered type name, its type's ``state_version`` and its state:
the arguments that rebuild it through its constructor (:meth:`onnxpipe.core.Component.get_state`),
encoded value by value. The value kinds are fixed: JSON scalars, lists, tuples, dicts, numpy
arrays and scalars, bytes, texts, flat Arrow arrays, column types, schemas, registered enums and
registered components. Nothing else can be written, and loading builds objects only from
:data:`component registry <registered_components>` entries, each through its constructor
(:meth:`~onnxpipe.core.Component.from_state`: exactly the constructor's parameters, typed as its
annotations say, then the constructor's own checks): a file never makes onnxpipe unpickle,
evaluate or import anything, nor sets an attribute the constructor did not. Format 1 (before
constructor states) is read through :meth:`~onnxpipe.core.Component.from_legacy_attributes`.

Loading checks the archive before reading it (entry names, sizes against a budget, compression
methods, duplicates, unexpected entries such as a planted pickle), reads each entry at most once and
never past its declared size, checks every array against the type and shape the manifest records
(Arrow entries: no compressed batches, full validation, a bound on their length), checks the states
that native code trusts (a LightGBM model text is checked before LightGBM parses it), and then runs
the rebuilt model on one synthetic row of its input schema, so a tampered state fails at load time
with :class:`~onnxpipe.errors.ModelLoadError` rather than at the first prediction.

Components pickle as their constructor states (:meth:`onnxpipe.core.Component.__reduce__`), so
sending a model to ``multiprocessing`` workers never pickles internals or ONNX Runtime sessions;
:func:`reduce_transformer` (pickling through this format) remains for pickles made by onnxpipe 0.1.
"""

from __future__ import annotations

import enum
import functools
import io
import json
import math
import re
import struct
import types
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ClassVar, NoReturn, TypeVar

import numpy as np
import pyarrow as pa

from onnxpipe._display import quoted, shown
from onnxpipe._files import write_file
from onnxpipe._limits import DEFAULT_MAX_BYTES, DEFAULT_VERIFY_TIMEOUT, LoadLimits, loading_limits
from onnxpipe.core import Component, Transformer, register_type
from onnxpipe.core import registered_components as core_registry
from onnxpipe.data._convert import ColumnValues, to_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataFileNotFoundError, InvalidArgumentError, ModelLoadError, ModelSaveError, OnnxPipeError
from onnxpipe.schema import (
    Column,
    DType,
    KeyType,
    MapType,
    OptionalType,
    Schema,
    SequenceType,
    TensorType,
    column_type_from_json,
    column_type_to_json,
    schema_of,
)

__all__ = [
    "FORMAT_VERSION",
    "load_model",
    "model_from_bytes",
    "model_to_bytes",
    "reduce_transformer",
    "register_component",
    "registered_components",
    "save_model",
]

FORMAT_NAME = "onnxpipe.model"
FORMAT_VERSION = 2
"""The version :func:`save_model` writes; :func:`load_model` reads versions 1 to this one.

Version 2 stores each component as its constructor's arguments and its type's state version;
version 1 stored its attributes, which loading turns into constructor arguments
(:meth:`onnxpipe.core.Component.from_legacy_attributes`)."""


_MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 64 << 20
_PARSED_VALUE_BYTES = 72  # a Python dict, list, int or short str, and its slot in its container
_EOCD = b"PK\x05\x06"  # zip's end of central directory record
_ZIP64_LOCATOR = b"PK\x06\x07"
_MAX_ENTRIES = 100_000
_MAX_DEPTH = 64
_INLINE_TEXT = 1024  # longer strings get their own entry, so the manifest stays readable
_MIN_ARROW_ROWS = 1 << 20  # rows an Arrow entry may hold beyond 8 per byte (null arrays take no bytes)
_MAX_ROW_VALUES = 1 << 22  # values per row of a column while verifying (a 1024x1024 RGB image is 3M)
_SCALAR_KINDS = "biufSU"  # numpy scalars the writer produces: no object, void, datetime
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # the writer's; bzip2 and lzma expand unbounded
_ENTRY = re.compile(r"data/\d{4,6}-[A-Za-z0-9_]{0,64}\.(npy|onnx|bin|txt|arrow)")
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # same model, same bytes

PathOrStream = str | Path | IO[bytes]
T = TypeVar("T", bound=type)


# --------------------------------------------------------------------------- the registry

_enums: dict[str, type[enum.Enum]] = {}


def register_component(cls: T, name: str | None = None) -> T:
    """Allow instances of ``cls`` in saved models, under ``name`` (default: its qualified name).

    onnxpipe's own components are registered already. Your own components are registered by
    the :func:`onnxpipe.core.component` decorator (which also names them in the catalogs and the
    conformance suite); this function does the same without a catalog name, for a
    :class:`~onnxpipe.core.Component` subclass or an enum its state holds. A component is saved as
    its constructor's arguments: keep each one as an attribute of the same name (or with a
    leading underscore), or override ``get_state``; their values must be of the kinds listed in
    :mod:`onnxpipe.persistence`, and loading calls the constructor with them.
    """
    if not isinstance(cls, type):
        raise InvalidArgumentError(f"register_component takes a class, got {cls!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise InvalidArgumentError(f"the name of a registered component must be a non-empty string, got {name!r}")
    core_registry()  # so that a user's class cannot take the name of one of onnxpipe's
    _register_builtins()
    if issubclass(cls, enum.Enum):
        key = name or cls.__qualname__
        if _enums.get(key, cls) is not cls:
            raise InvalidArgumentError(
                f"the enum name {key!r} is already registered for {_enums[key]!r}; "
                f"register {cls.__module__}.{cls.__qualname__} under another name (register_component(cls, name=...))"
            )
        _enums[key] = cls
    elif issubclass(cls, Component):
        register_type(cls, name)
    else:
        raise InvalidArgumentError(
            f"register_component takes an onnxpipe Component subclass or an enum, got {cls.__qualname__}; "
            "subclass onnxpipe.core.Component so that its constructor's arguments are its state"
        )
    return cls


def registered_components() -> dict[str, type]:
    """Every type a saved model may contain, by the name written in the file."""
    _register_builtins()
    return {**{name: info.cls for name, info in core_registry().items()}, **_enums}


def _register_builtins() -> None:
    if not _enums:
        from onnxpipe.transforms.normalization import NormFunction

        _enums.update({DType.__qualname__: DType, NormFunction.__qualname__: NormFunction})


_FORMAT1_HELPERS = ("_KeyMapper", "_Statistic")
"""Helper objects format 1 saved inside components (read only to rebuild those components)."""


def _format1_helper(name: str) -> type:
    from onnxpipe.transforms import conversion, missing_values

    return {"_KeyMapper": conversion._KeyMapper, "_Statistic": missing_values._Statistic}[name]


def _type_name(cls: type) -> str | None:
    if issubclass(cls, enum.Enum):
        _register_builtins()
        return next((name for name, c in _enums.items() if c is cls), None)
    return next((name for name, info in core_registry().items() if info.cls is cls), None)


# --------------------------------------------------------------------------- writing


class _Writer:
    """Encodes values to JSON, collecting the binary entries they refer to."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.steps: list[str] = []  # the components being encoded, innermost last, for messages

    def _entry(self, hint: str, suffix: str, data: bytes) -> str:
        clean = re.sub(r"[^A-Za-z0-9_]", "_", hint)[-64:]
        name = f"data/{len(self.entries):04d}-{clean}.{suffix}"
        self.entries[name] = data
        return name

    def encode(self, value: Any, where: str, hint: str) -> Any:
        # Enums and numpy scalars first: they may also be str / int / float instances.
        if isinstance(value, enum.Enum):
            name = _type_name(type(value))
            if name is None:
                raise ModelSaveError(f"{where}: the enum {type(value).__qualname__} is not registered for saving")
            return {"$enum": name, "member": value.name}
        if isinstance(value, np.generic):
            return {"$scalar": value.dtype.str, "value": self.encode(value.item(), where, hint)}
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, str):
            if len(value) <= _INLINE_TEXT:
                return value
            return {"$text": self._entry(hint, "txt", value.encode("utf-8"))}
        if isinstance(value, bytes):
            suffix = "onnx" if "model" in hint else "bin"
            return {"$bytes": self._entry(hint, suffix, value)}
        if isinstance(value, list | tuple):
            items = [self.encode(v, f"{where}[{i}]", hint) for i, v in enumerate(value)]
            return items if isinstance(value, list) else {"$tuple": items}
        if isinstance(value, dict):
            return {
                "$dict": [
                    [self.encode(k, f"{where} key", hint), self.encode(v, f"{where}[{k!r}]", hint)]
                    for k, v in value.items()
                ]
            }
        if isinstance(value, np.ndarray):
            return self._array(value, hint)
        if isinstance(value, np.dtype):
            if value.hasobject and value != np.dtype(object):
                raise ModelSaveError(f"{where}: numpy dtype {value} cannot be saved")
            return {"$dtype": value.str}
        if isinstance(value, TensorType | SequenceType | MapType):
            return {"$column_type": column_type_to_json(value)}
        if isinstance(value, Schema):
            return {"$schema": value.to_json()}
        if isinstance(value, Column):
            return {"$column": Schema([value]).to_json()[0]}
        if isinstance(value, pa.Array | pa.ChunkedArray):
            return {"$arrow": self._arrow(pa.chunked_array([value]) if isinstance(value, pa.Array) else value, hint)}
        return self._object(value, where)

    def _array(self, arr: np.ndarray, hint: str) -> dict[str, Any]:
        meta = {"shape": list(arr.shape), "readonly": not arr.flags.writeable}
        if arr.dtype == np.dtype(object):
            flat = pa.chunked_array([pa.array(arr.reshape(-1).tolist())])
            return {"$object_array": self._arrow(flat, hint), **meta}
        buf = io.BytesIO()
        np.save(buf, arr if arr.flags.c_contiguous else arr.copy(order="C"), allow_pickle=False)  # 0-d stays 0-d
        return {"$array": self._entry(hint, "npy", buf.getvalue()), "dtype": arr.dtype.str, **meta}

    def _arrow(self, arr: pa.ChunkedArray, hint: str) -> str:
        sink = io.BytesIO()
        table = pa.table({"values": arr})
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return self._entry(hint, "arrow", sink.getvalue())

    def _object(self, obj: Any, where: str) -> dict[str, Any]:
        name = _type_name(type(obj))
        step = getattr(obj, "step_name", type(obj).__name__)
        if name is None and isinstance(obj, Transformer):
            cls = type(obj)
            raise ModelSaveError(
                f"{step}: its class {cls.__module__}.{cls.__qualname__} is not registered for saving; call "
                f"onnxpipe.persistence.register_component({cls.__qualname__}) once before saving (its state must "
                "be made of the value kinds listed in onnxpipe.persistence)"
            )
        if name is None:
            if isinstance(obj, types.FunctionType | types.BuiltinFunctionType | types.MethodType | functools.partial):
                what = "a Python function"
            elif isinstance(obj, type):
                what = f"the class {obj.__qualname__}"
            else:
                what = f"a {type(obj).__qualname__}"
            raise ModelSaveError(
                f"{self.steps[-1] if self.steps else step} holds {what} (attribute {where or 'model'!r}), which a "
                "saved model cannot contain; only onnxpipe's components and types registered with "
                "onnxpipe.persistence.register_component can be saved"
            )
        if not isinstance(obj, Component):
            raise ModelSaveError(
                f"{where or step}: {type(obj).__qualname__} is registered but is not an onnxpipe Component, so "
                "it cannot say which constructor arguments rebuild it (subclass onnxpipe.core.Component)"
            )
        state = obj.get_state()
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise ModelSaveError(f"{where}: {step}.get_state() did not return a dict of constructor arguments")
        self.steps.append(step)
        try:
            encoded = {k: self.encode(v, f"{where}.{k}" if where else k, k) for k, v in state.items()}
        finally:
            self.steps.pop()
        return {"$object": name, "version": type(obj).state_version, "state": encoded}


def _as_schema(input_schema: Schema | DataView | type) -> Schema:
    if isinstance(input_schema, Schema):
        return input_schema
    if isinstance(input_schema, DataView):
        return input_schema.schema
    if isinstance(input_schema, type):
        return schema_of(input_schema)
    raise InvalidArgumentError(
        f"input_schema must be a Schema, a DataView or a schema class, got {type(input_schema).__name__}"
    )


def model_to_bytes(model: Transformer, input_schema: Schema | DataView | type) -> bytes:
    """The saved-model zip of ``model`` as bytes (see :func:`save_model`)."""
    schema = _as_schema(input_schema)
    return _to_bytes(model, schema, model.output_schema(schema) if isinstance(model, Transformer) else schema)


def _to_bytes(model: Transformer, schema: Schema, output_schema: Schema) -> bytes:
    if not isinstance(model, Transformer):
        raise InvalidArgumentError(
            f"only fitted models (transformers) can be saved, got {type(model).__name__}; call fit(data) first"
        )
    writer = _Writer()
    try:
        encoded = writer.encode(model, "", "model")
    except UnicodeEncodeError as exc:  # a long text entry holding a lone surrogate
        raise ModelSaveError(f"{model.step_name}: its state holds text that is not valid Unicode ({exc})") from None
    if len(writer.entries) >= _MAX_ENTRIES:
        raise ModelSaveError(
            f"{model.step_name}: the model needs {len(writer.entries):,} entries; a saved model holds at most "
            f"{_MAX_ENTRIES:,}"
        )
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "onnxpipe_version": _version(),
        "steps": [s.step_name for s in model.steps],
        "input_schema": schema.to_json(),
        "output_schema": output_schema.to_json(),
        "model": encoded,
    }
    # Refuse here what load_model would refuse, so that every saved file loads.
    if _nesting(encoded) > _MAX_DEPTH:
        raise ModelSaveError(f"{model.step_name}: its state nests values more than {_MAX_DEPTH} levels deep")
    try:
        text = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
    except ValueError as exc:  # an integer of more than 4300 digits, a string with a lone surrogate
        raise ModelSaveError(f"{model.step_name}: its state cannot be written as JSON ({exc})") from None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(_MANIFEST, _FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, text)
        for name, data in writer.entries.items():
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED if name.endswith(".txt") else zipfile.ZIP_STORED
            zf.writestr(info, data)
    return buf.getvalue()


def _nesting(value: Any) -> int:
    """How deep a JSON value nests lists and objects, counted the way the reader counts them."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, depth = stack.pop()
        deepest = max(deepest, depth)
        children = v if isinstance(v, list) else v.values() if isinstance(v, dict) else ()
        stack.extend((c, depth + 1) for c in children)
    return deepest


def save_model(model: Transformer, input_schema: Schema | DataView | type, file: PathOrStream) -> None:
    """Save a fitted model and the schema of the data it reads to one zip file or binary stream.

    Raises :class:`~onnxpipe.errors.ModelSaveError` naming the step when a component holds what
    a saved model cannot contain (a ``custom_mapping`` function, an unregistered class).
    """
    data = model_to_bytes(model, input_schema)
    if isinstance(file, str | Path):
        write_file(file, data, "the saved model")
    else:
        file.write(data)


def _version() -> str:
    from onnxpipe import __version__

    return __version__


# --------------------------------------------------------------------------- reading


class _Reader:
    """Decodes a manifest's value tree, reading each binary entry at most once."""

    def __init__(self, zf: zipfile.ZipFile, label: str, max_bytes: int) -> None:
        self.zf = zf
        self.label = label
        self.format_version = FORMAT_VERSION
        self.max_bytes = max_bytes
        self.used: set[str] = set()
        names = zf.namelist()
        if len(names) > _MAX_ENTRIES:
            self.fail(f"it has {len(names)} entries; a saved model has at most {_MAX_ENTRIES}")
        if len(set(names)) != len(names):
            self.fail("it holds the same entry name twice")
        total = 0
        for info in zf.infolist():
            if info.filename != _MANIFEST and not _ENTRY.fullmatch(info.filename):
                self.fail(
                    f"unexpected entry {info.filename!r}: a saved model holds only {_MANIFEST} and data/NNNN-name.ext "
                    "files (nothing is ever executed or unpickled from it)"
                )
            if info.flag_bits & 0x1:
                self.fail(f"entry {info.filename!r} is encrypted")
            if info.compress_type not in _COMPRESSIONS:
                self.fail(
                    f"entry {info.filename!r} uses zip compression method {info.compress_type}; "
                    "a saved model uses only stored (0) and deflated (8) entries"
                )
            total += info.file_size
            if total > max_bytes:
                self.fail(
                    f"its entries would take more than {max_bytes:,} bytes once uncompressed (entry "
                    f"{info.filename!r} says {info.file_size:,}); pass a larger max_bytes if the model is that large"
                )
        self.names = set(names)

    def fail(self, why: str) -> NoReturn:
        raise ModelLoadError(f"cannot load saved model {self.label}: {why}")

    def read(self, name: object) -> bytes:
        if not isinstance(name, str) or name not in self.names or name == _MANIFEST:
            self.fail(f"the manifest refers to a missing entry {name!r}")
        assert isinstance(name, str)
        if name in self.used:  # each use would be another copy in memory
            self.fail(f"the manifest refers to entry {name!r} more than once")
        self.used.add(name)
        return self.read_entry(name)

    def read_entry(self, name: str) -> bytes:
        """The entry's bytes, never more than the size its header declares (checked against the budget).

        ``ZipFile.read`` would inflate a whole deflate stream (up to 2 GiB at once) before cutting
        it to the declared size; reading exactly that many bytes bounds memory, and the read of one
        more byte makes zipfile check the CRC even of an entry that claims to be empty.
        """
        info = self.zf.getinfo(name)
        try:
            with self.zf.open(info) as entry:
                data = entry.read(info.file_size)
                extra = entry.read(1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # bad CRC, bad deflate data, cut short
            self.fail(f"entry {name!r} is corrupted ({exc})")
        if len(data) != info.file_size or extra:
            self.fail(f"entry {name!r} does not hold the {info.file_size:,} bytes its header declares")
        return data

    def decode(self, value: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            self.fail(f"the manifest nests values more than {_MAX_DEPTH} levels deep")
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list):
            return [self.decode(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            self.fail(f"unexpected value {value!r} in the manifest")
        tags = [k for k in value if k.startswith("$")]
        if len(tags) != 1:
            self.fail(f"a manifest value must have exactly one $kind key, got {sorted(value)[:5]}")
        tag = tags[0]
        handler = self._handlers.get(tag)
        if handler is None:
            self.fail(f"unknown value kind {tag!r} (known: {', '.join(sorted(self._handlers))})")
        return handler(self, value, depth)

    def _float(self, v: dict[str, Any], depth: int) -> float:
        if v["$float"] not in ("nan", "inf", "-inf"):
            self.fail(f"invalid float {v['$float']!r}")
        return float(v["$float"])

    def _text(self, v: dict[str, Any], depth: int) -> str:
        try:
            return self.read(v["$text"]).decode("utf-8")
        except UnicodeDecodeError as exc:
            self.fail(f"entry {v['$text']!r} is not UTF-8 text ({exc})")

    def _bytes(self, v: dict[str, Any], depth: int) -> bytes:
        return self.read(v["$bytes"])

    def _tuple(self, v: dict[str, Any], depth: int) -> tuple[Any, ...]:
        return tuple(self.decode(v["$tuple"], depth + 1))

    def _dict(self, v: dict[str, Any], depth: int) -> dict[Any, Any]:
        out = {}
        pairs = v["$dict"]
        if not isinstance(pairs, list):
            self.fail("a $dict holds a list of [key, value] pairs")
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                self.fail("a $dict holds [key, value] pairs")
            key = self.decode(pair[0], depth + 1)
            value = self.decode(pair[1], depth + 1)
            try:
                out[key] = value
            except TypeError:
                self.fail(f"unhashable dict key {key!r}")
        return out

    def _shape(self, v: dict[str, Any]) -> tuple[int, ...]:
        shape = v.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            self.fail(f"invalid array shape {shape!r}")
        return tuple(shape)

    def _array(self, v: dict[str, Any], depth: int) -> np.ndarray:
        name = v["$array"]
        shape = self._shape(v)
        try:
            dtype = np.dtype(v["dtype"])
        except (TypeError, ValueError):
            self.fail(f"array {name!r} has an invalid dtype {v.get('dtype')!r}")
        if dtype.hasobject:
            self.fail(f"array {name!r} declares dtype {dtype}, which would need pickle")
        buf = io.BytesIO(self.read(name))
        try:
            version = np.lib.format.read_magic(buf)
            header_shape, fortran, header_dtype = (
                np.lib.format.read_array_header_1_0(buf)
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0(buf)
            )
        except (ValueError, SyntaxError, TypeError) as exc:
            self.fail(f"array entry {name!r} is not a valid .npy file ({exc})")
        if header_dtype != dtype or tuple(header_shape) != shape or fortran:
            self.fail(
                f"array entry {name!r} holds {header_dtype}{list(header_shape)}, "
                f"but the manifest says {dtype}{list(shape)}"
            )
        expected = math.prod(shape) * dtype.itemsize
        data = buf.read()
        if len(data) != expected:
            self.fail(f"array entry {name!r} has {len(data)} bytes of data; {dtype}{list(shape)} needs {expected}")
        arr = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
        arr.flags.writeable = not v.get("readonly", False)
        return arr

    def _object_array(self, v: dict[str, Any], depth: int) -> np.ndarray:
        shape = self._shape(v)
        column = self._arrow_values(v["$object_array"])
        if len(column) != math.prod(shape):  # before to_pylist: the shape may be absurd
            self.fail(
                f"object array {v['$object_array']!r} has {len(column)} values; shape {list(shape)} needs "
                f"{math.prod(shape)}"
            )
        values = column.to_pylist()
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        arr = arr.reshape(shape)
        arr.flags.writeable = not v.get("readonly", False)
        return arr

    def _arrow_values(self, name: object) -> pa.ChunkedArray:
        data = self.read(name)
        try:
            refused = _unsafe_arrow_stream(data)
            if refused:
                self.fail(f"entry {name!r} holds {refused}, which a saved model never does")
            table = pa.ipc.open_stream(data).read_all()
            # Offsets and lengths checked before any value is read: a bad one would read out of bounds.
            table.validate(full=True)
        except (pa.ArrowException, OSError, ValueError, struct.error) as exc:
            self.fail(f"entry {name!r} is not a valid Arrow stream ({exc})")
        if table.column_names != ["values"]:
            self.fail(f"entry {name!r} holds columns {table.column_names}, expected ['values']")
        kind = table.schema.field(0).type
        if not _flat_arrow_type(kind):
            # A dictionary (or run-end) array repeats one value without storing it again: a few
            # kilobytes that to_pylist would expand into terabytes. The writer never makes one.
            self.fail(f"entry {name!r} holds Arrow values of type {kind}; a saved model holds only flat values")
        if table.num_rows > max(_MIN_ARROW_ROWS, 8 * len(data)):
            self.fail(f"entry {name!r} declares {table.num_rows:,} values in {len(data):,} bytes")
        return table.column(0)

    def _arrow(self, v: dict[str, Any], depth: int) -> pa.Array:
        return self._arrow_values(v["$arrow"]).combine_chunks()

    def _scalar(self, v: dict[str, Any], depth: int) -> np.generic:
        try:
            dtype = np.dtype(v["$scalar"])
        except (TypeError, ValueError) as exc:
            self.fail(f"invalid numpy scalar type {v['$scalar']!r} ({exc})")
        if dtype.kind not in _SCALAR_KINDS:
            # Object scalars would need pickle, and np.void(n) allocates n bytes.
            self.fail(f"numpy scalars of dtype {dtype} cannot be loaded (only numbers, booleans and texts)")
        value = self.decode(v.get("value"), depth + 1)
        if not isinstance(value, bool | int | float | str | bytes):
            self.fail(f"invalid value {value!r} for a numpy {dtype} scalar")
        try:
            scalar = dtype.type(value)
        except (TypeError, ValueError, OverflowError) as exc:
            self.fail(f"invalid numpy {dtype} scalar {value!r} ({exc})")
        return scalar  # type: ignore[no-any-return]

    def _dtype(self, v: dict[str, Any], depth: int) -> np.dtype[Any]:
        try:
            dtype = np.dtype(v["$dtype"])
        except (TypeError, ValueError) as exc:
            self.fail(f"invalid dtype {v['$dtype']!r} ({exc})")
        if dtype.hasobject and dtype != np.dtype(object):
            self.fail(f"invalid dtype {dtype}")
        return dtype  # type: ignore[no-any-return]

    def _column_type(self, v: dict[str, Any], depth: int) -> Any:
        return column_type_from_json(v["$column_type"])

    def _schema(self, v: dict[str, Any], depth: int) -> Schema:
        return Schema.from_json(v["$schema"])

    def _column(self, v: dict[str, Any], depth: int) -> Column:
        return Schema.from_json([v["$column"]]).columns[0]

    def _enum(self, v: dict[str, Any], depth: int) -> enum.Enum:
        _register_builtins()
        cls = _enums.get(v["$enum"])
        if cls is None:
            self.fail(f"unknown enum type {v['$enum']!r}")
        try:
            return cls[v["member"]]
        except KeyError:
            self.fail(f"{v['$enum']} has no member {v.get('member')!r}")

    def _object(self, v: dict[str, Any], depth: int) -> Any:
        name = v["$object"]
        info = core_registry().get(name) if isinstance(name, str) else None
        cls = info.cls if info is not None else None
        if cls is None and self.format_version == 1 and name in _FORMAT1_HELPERS:
            cls = _format1_helper(name)
        if cls is None:
            self.fail(
                f"it contains a component of unknown type {name!r}; a saved model can only hold onnxpipe's "
                "components and types registered with onnxpipe.persistence.register_component"
            )
        raw = v.get("state")
        if not isinstance(raw, dict):
            self.fail(f"the state of {name} is not an object")
        state = {k: self.decode(x, depth + 1) for k, x in raw.items()}
        try:
            if self.format_version == 1:  # attributes, not constructor arguments: see from_legacy_attributes
                return self._legacy_object(cls, state)
            if not issubclass(cls, Component):
                self.fail(f"{name} is registered but is not an onnxpipe Component, so it cannot be rebuilt")
            version = v.get("version")
            if version is None:
                self.fail(f"the state of {name} has no version")
            return cls.from_state(state, version)
        except Exception as exc:  # the constructor's checks, or one that trusted its arguments' types
            self.fail(f"its {name} cannot be rebuilt from the saved state ({type(exc).__name__}: {exc})")

    def _legacy_object(self, cls: type, state: dict[str, Any]) -> Any:
        if issubclass(cls, Component):
            return cls.from_legacy_attributes(state)
        # A helper object format 1 saved inside a component (e.g. a key mapper); only the
        # component holding it reads it, to find its own constructor arguments.
        obj: Any = object.__new__(cls)
        obj.__dict__.update(state)
        return obj

    _handlers: ClassVar[dict[str, Callable[[_Reader, dict[str, Any], int], Any]]] = {
        "$float": _float,
        "$text": _text,
        "$bytes": _bytes,
        "$tuple": _tuple,
        "$dict": _dict,
        "$array": _array,
        "$object_array": _object_array,
        "$arrow": _arrow,
        "$scalar": _scalar,
        "$dtype": _dtype,
        "$column_type": _column_type,
        "$schema": _schema,
        "$column": _column,
        "$enum": _enum,
        "$object": _object,
    }


def _flat_arrow_type(kind: pa.DataType) -> bool:
    """Whether ``kind`` stores every value in its own buffers (what :class:`_Writer` produces)."""
    return bool(
        pa.types.is_null(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _unpack(fmt: str, buf: bytes, pos: int) -> int:
    if pos < 0 or pos + struct.calcsize(fmt) > len(buf):
        raise ValueError("a flatbuffer offset points outside the message")
    value: int = struct.unpack_from(fmt, buf, pos)[0]
    return value


def _flatbuffer_field(buf: bytes, table: int, index: int) -> int | None:
    """Where field ``index`` of the flatbuffer table at ``table`` lies in ``buf`` (None when absent)."""
    vtable = table - _unpack("<i", buf, table)
    slot = 4 + 2 * index
    if slot + 2 > _unpack("<H", buf, vtable):
        return None
    offset = _unpack("<H", buf, vtable + slot)
    return table + offset if offset else None


def _flatbuffer_target(buf: bytes, pos: int) -> int:
    return pos + _unpack("<I", buf, pos)


_DICTIONARY_BATCH, _RECORD_BATCH = 2, 3  # Arrow's MessageHeader union


def _unsafe_arrow_stream(data: bytes) -> str | None:
    """What makes an Arrow IPC stream unsafe to open, or None.

    A compressed record batch (LZ4 or ZSTD body, or the old ``ARROW:experimental_compression``
    metadata) expands a few kilobytes into gigabytes before anything can be checked. onnxpipe
    never writes one, so each batch message's flatbuffer header is read first
    (``Message.header -> RecordBatch.compression``, Arrow's ``Message.fbs``).
    """
    reader = pa.ipc.MessageReader.open_stream(data)
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return None
        meta = message.metadata.to_pybytes()
        root = _flatbuffer_target(meta, 0)
        kind_at, header_at = _flatbuffer_field(meta, root, 1), _flatbuffer_field(meta, root, 2)
        kind = 0 if kind_at is None else _unpack("<B", meta, kind_at)
        if kind not in (_DICTIONARY_BATCH, _RECORD_BATCH):
            continue
        if _flatbuffer_field(meta, root, 4) is not None:
            return "a batch with message metadata (a compression marker)"
        batch = None if header_at is None else _flatbuffer_target(meta, header_at)
        if kind == _DICTIONARY_BATCH and batch is not None:
            data_at = _flatbuffer_field(meta, batch, 1)
            batch = None if data_at is None else _flatbuffer_target(meta, data_at)
        if batch is not None and _flatbuffer_field(meta, batch, 3) is not None:
            return "a compressed Arrow batch"


def _read_manifest(reader: _Reader) -> dict[str, Any]:
    if _MANIFEST not in reader.names:
        reader.fail(f"it has no {_MANIFEST}; is it a model saved by onnxpipe?")
    if reader.zf.getinfo(_MANIFEST).file_size > min(_MAX_MANIFEST_BYTES, reader.max_bytes):
        reader.fail(f"its {_MANIFEST} is larger than {min(_MAX_MANIFEST_BYTES, reader.max_bytes):,} bytes")
    text = reader.read_entry(_MANIFEST)
    # Parsed, JSON takes far more memory than its text: "{}," is three bytes and a 64-byte dict.
    # Every value costs at most one of these characters, counted before parsing.
    parsed = _PARSED_VALUE_BYTES * sum(text.count(c) for c in (b"{", b"[", b",", b":")) + 2 * len(text)
    if parsed > reader.max_bytes:
        reader.fail(
            f"its {_MANIFEST} would take about {parsed:,} bytes once parsed, more than max_bytes ({reader.max_bytes:,})"
        )
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # ValueError: also bad UTF-8 and integers of > 4300 digits
        reader.fail(f"its {_MANIFEST} is not valid JSON ({type(exc).__name__}: {exc})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        reader.fail(f"its {_MANIFEST} does not describe an onnxpipe model (format {FORMAT_NAME!r} expected)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        reader.fail(f"its format version {quoted(version)} is invalid")
    if version > FORMAT_VERSION:
        reader.fail(
            f"it was saved in format version {version} by onnxpipe {shown(manifest.get('onnxpipe_version', '?'))}; "
            f"this onnxpipe ({_version()}) reads format versions 1 to {FORMAT_VERSION}: upgrade onnxpipe"
        )
    reader.format_version = version
    return manifest


def _declared_entries(data: bytes) -> int | None:
    """The entry count a zip's end records declare (zip64 included), read before ``zipfile`` builds
    an object per central-directory entry (millions of them fit in a few hundred megabytes)."""
    at = data.rfind(_EOCD, max(0, len(data) - (1 << 16) - 22))
    if at < 0 or at + 22 > len(data):
        return None  # not a zip: zipfile says so
    entries = struct.unpack_from("<H", data, at + 10)[0]
    locator = at - 20
    if locator >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR:
        record = struct.unpack_from("<Q", data, locator + 8)[0]
        if record + 56 <= len(data) and data[record : record + 4] == b"PK\x06\x06":
            entries = max(entries, struct.unpack_from("<Q", data, record + 32)[0])
    return int(entries)


def _decode_archive(
    data: bytes, label: str, max_bytes: int, verify_timeout: float | None
) -> tuple[Any, Schema, Schema | None]:
    declared = _declared_entries(data)
    if declared is not None and declared > _MAX_ENTRIES:
        raise ModelLoadError(
            f"cannot load saved model {label}: it declares {declared:,} entries; a saved model has at most "
            f"{_MAX_ENTRIES:,}"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as zf, loading_limits(LoadLimits(max_bytes, verify_timeout)):
        reader = _Reader(zf, label, max_bytes)
        manifest = _read_manifest(reader)
        try:
            schema = Schema.from_json(manifest["input_schema"])
            promised = manifest.get("output_schema")
            output_schema = None if promised is None else Schema.from_json(promised)
            model = reader.decode(manifest["model"])
        except ModelLoadError:
            raise
        except OnnxPipeError as exc:  # e.g. an embedded ONNX model that does not load
            reader.fail(f"{type(exc).__name__}: {exc}")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
            reader.fail(f"its manifest is malformed ({type(exc).__name__}: {exc})")
        unused = reader.names - reader.used - {_MANIFEST}
        if unused:
            reader.fail(f"it holds entries the manifest does not use: {sorted(unused)[:5]}")
        return model, schema, output_schema


def model_from_bytes(
    data: bytes,
    *,
    label: str = "<bytes>",
    max_bytes: int = DEFAULT_MAX_BYTES,
    verify: bool = True,
    verify_timeout: float | None = DEFAULT_VERIFY_TIMEOUT,
) -> tuple[Transformer, Schema]:
    """Load a model saved by :func:`model_to_bytes` (see :func:`load_model`)."""
    _register_builtins()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgumentError(f"a saved model is read from bytes, got {type(data).__name__}")
    try:
        model, schema, promised = _decode_archive(bytes(data), label, max_bytes, verify_timeout)
    except OnnxPipeError:
        raise
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"cannot load saved model {label}: it is not a valid zip file ({exc})") from None
    except Exception as exc:  # a corrupted archive also raises zlib.error, EOFError, OSError...
        raise ModelLoadError(
            f"cannot load saved model {label}: the archive is corrupted ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(model, Transformer):
        raise ModelLoadError(f"cannot load saved model {label}: it holds a {type(model).__name__}, not a fitted model")
    if verify:
        _verify(model, schema, label, promised)
    return model, schema


def load_model(
    file: PathOrStream,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    verify: bool = True,
    verify_timeout: float | None = DEFAULT_VERIFY_TIMEOUT,
) -> tuple[Transformer, Schema]:
    """Load a model saved by :func:`save_model`; returns the model and its input schema.

    Safe for files from untrusted sources: nothing in the file is executed, unpickled or imported
    (see the module docstring). ``max_bytes`` bounds the uncompressed size read and what its ONNX
    steps may allocate; a file cannot raise it. Every component is rebuilt through its
    constructor, so it is checked like a new one. With ``verify`` (the default) the model is run
    once on a synthetic row so that a tampered state fails here; ONNX steps with loops run theirs
    within ``verify_timeout`` seconds (None: no deadline, for a model you trust).
    Raises :class:`~onnxpipe.errors.ModelLoadError` naming the problem.
    """
    if isinstance(file, str | Path):
        path = Path(file)
        if not path.is_file():
            raise DataFileNotFoundError(f"saved model {str(path)!r} does not exist")
        size = path.stat().st_size
        if size > max_bytes:
            raise ModelLoadError(f"cannot load saved model {path}: it has {size:,} bytes, more than max_bytes")
        return model_from_bytes(
            path.read_bytes(), label=str(path), max_bytes=max_bytes, verify=verify, verify_timeout=verify_timeout
        )
    data = file.read(max_bytes + 1)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgumentError(
            f"a saved model is read from a binary stream, got one that returns {type(data).__name__}; "
            "open the file with mode 'rb'"
        )
    if len(data) > max_bytes:
        raise ModelLoadError(f"cannot load saved model <stream>: it has more than max_bytes ({max_bytes:,}) bytes")
    return model_from_bytes(data, label="<stream>", max_bytes=max_bytes, verify=verify, verify_timeout=verify_timeout)


# --------------------------------------------------------------------------- verification


def _probe_values(column: Column) -> ColumnValues:
    t = column.type
    if isinstance(t, SequenceType):
        return [[]]
    if isinstance(t, MapType):
        return [{}]
    if isinstance(t, OptionalType):
        return [None]
    shape = tuple(1 if d is None else d for d in t.shape)
    if t.dtype is DType.STRING:
        arr = np.empty((1, *shape), dtype=object)
        arr[...] = ""
        return arr if t.is_known_shape else [arr[0]]
    arr = np.zeros((1, *shape), dtype=t.dtype.numpy)
    if isinstance(t, KeyType):
        arr[...] = 1
    return arr if t.is_known_shape else [arr[0]]


def _check_row_sizes(schema: Schema, label: str) -> None:
    # Before the next step sees the schema: building its slot names or the probe's row would
    # take memory in proportion, so an absurd size must stop here.
    for column in schema.columns:
        size = _values_per_row(column)
        if size > _MAX_ROW_VALUES:
            raise ModelLoadError(
                f"cannot load saved model {label}: column {column.name!r} ({column.type}) holds {size:,} values "
                f"per row; a saved model's columns hold at most {_MAX_ROW_VALUES:,}"
            )


def _schemas(model: Transformer, schema: Schema, label: str) -> list[Schema]:
    """The schema before each step and after the last, each checked for absurd sizes."""
    _check_row_sizes(schema, label)
    out = [schema]
    for step in model.steps:
        try:
            # The saved input schema gave the saved output schema when the model was saved: any
            # error here, the library's included, means the state does not fit.
            out.append(step.output_schema(out[-1]))
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load saved model {label}: its state is inconsistent with its input schema "
                f"({type(exc).__name__}: {exc})"
            ) from None
        _check_row_sizes(out[-1], label)
    return out


def _values_per_row(column: Column) -> int:
    t = column.type
    while isinstance(t, SequenceType | MapType | OptionalType):
        t = t.value if isinstance(t, MapType) else t.element
    return math.prod(1 if d is None else d for d in t.shape) if isinstance(t, TensorType) else 1


def _as_saved_before_key_values(rebuilt: Schema, promised: Schema) -> Schema:
    """``rebuilt`` as a file saved before key types carried their values describes it: without
    the values of the key columns whose saved type has none (everything else must match)."""
    columns = []
    for column in rebuilt.columns:
        saved = promised.get(column.name)
        ct = column.type
        if (
            saved is not None
            and isinstance(ct, KeyType)
            and isinstance(saved.type, KeyType)
            and saved.type.values is None
        ):
            column = Column(column.name, ct.without_values(), column.slot_names)
        columns.append(column)
    return Schema(columns)


def _verify(model: Transformer, schema: Schema, label: str, promised: Schema | None) -> None:
    """Run the rebuilt model on one synthetic row; raw exceptions mean a tampered state."""
    try:
        schemas = _schemas(model, schema, label)
    except ModelLoadError:
        raise
    except Exception as exc:  # model.steps itself broken by a tampered state
        raise ModelLoadError(
            f"cannot load saved model {label}: its state is inconsistent ({type(exc).__name__}: {exc})"
        ) from None
    if promised is not None and promised != _as_saved_before_key_values(schemas[-1], promised):
        raise ModelLoadError(
            f"cannot load saved model {label}: the rebuilt model produces {schemas[-1]}, but the file says {promised}"
        )
    try:
        columns = [to_arrow(_probe_values(c), c.type, c.name) for c in schema.columns]
        batch = pa.RecordBatch.from_arrays(columns, names=list(schema.names)) if columns else None
        view = DataView(schema, lambda: iter([batch] if batch is not None else []), 1 if columns else 0)
        with warnings.catch_warnings():  # e.g. load_images(on_error="skip") reporting the made-up path
            warnings.simplefilter("ignore")
            for _ in model.transform(view).batches():
                pass
    except OnnxPipeError as exc:
        if isinstance(exc, ModelLoadError):
            raise
        # Library errors on made-up data (a path that is not a file, text that is not a number)
        # are expected: the probe only looks for states that break the code itself.
        return
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load saved model {label}: its state is inconsistent ({type(exc).__name__}: {exc})"
        ) from None


def reduce_transformer(model: Transformer) -> tuple[Callable[[bytes], Transformer], tuple[bytes]]:
    """Pickle ``model`` as the bytes of the saved-model format (what onnxpipe 0.1 did; components now
    pickle as their constructor states, and loading such a pickle still works)."""
    # The input schema is unknown here; an empty one is recorded and not verified on load.
    return _from_pickled_bytes, (_to_bytes(model, Schema([]), Schema([])),)


def _from_pickled_bytes(data: bytes) -> Transformer:
    return model_from_bytes(data, label="<pickled model>", verify=False)[0]
