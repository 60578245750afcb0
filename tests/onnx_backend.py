"""The ONNX project's own backend test data, scored by bare ONNX Runtime and through onnxpipe.

Sources (every case is a model file and one or more ``test_data_set_*`` folders of
``input_*.pb`` / ``output_*.pb`` protobufs):

* ``node/*``: the operator tests, generated once from the installed onnx
  (``onnx.backend.test.case.node.collect_testcases``, serialized as
  ``python -m onnx.backend.test.cmd_tools generate-data`` writes the model tests; the installed
  onnx ships no node data in its wheel) into :func:`cache_dir`;
* ``simple/*``, ``pytorch-converted/*``, ``pytorch-operator/*``: shipped in the onnx wheel
  (``onnx/backend/test/data``);
* ``light/*``: the wheel's small real networks (``light_*.onnx``, no inputs shipped); their input
  is made as onnx's own runner makes it (``arange(n) / n``) and cached with the node tests.
  ``real/*`` holds download links only and is not used.

A case runs three ways (:func:`run_case`): bare ONNX Runtime on the test's inputs;
``apply_onnx_model`` on a DataView built from the same inputs (one row, or one row per batch
entry when onnxpipe batches the model); and the typed prediction engine with the classes
:func:`onnxpipe.generate_schema_code` writes for the model. Both onnxpipe results must equal bare
ONNX Runtime's bit for bit (NaN-aware). A case bare ONNX Runtime cannot load or run, or whose
outputs differ between two runs of one session (random operators), is not counted.

Run as a script for the report over every case (``python tests/onnx_backend.py --help``).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import types
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

CACHE_ENV = "ONNXPIPE_ONNX_BACKEND_CACHE"  # overrides the cache folder of generated test data
WHEEL_DATA = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data"
WHEEL_KINDS = ("simple", "pytorch-converted", "pytorch-operator")
GENERATED_KINDS = ("node", "light")
_DONE = ".complete"
_THREADS = 1  # one thread everywhere: equal results need equal kernels, and the report runs a process per core


# ------------------------------------------------------------------------------------------------
# Test data


def cache_dir() -> Path:
    """Where the generated test data lives: ``$ONNXPIPE_ONNX_BACKEND_CACHE`` or
    ``~/.cache/onnxpipe-tests/onnx-backend-<onnx version>``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "onnxpipe-tests" / f"onnx-backend-{onnx.__version__}"


def _write_value(path: Path, value: Any, type_proto: onnx.TypeProto, name: str) -> None:
    """One input or output protobuf, as ``onnx.backend.test.cmd_tools generate-data`` writes it."""
    if type_proto.HasField("map_type"):
        proto: Any = numpy_helper.from_dict(value, name)
    elif type_proto.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, name)
    elif type_proto.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, name)
    elif isinstance(value, onnx.TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(value, name)
    path.write_bytes(proto.SerializeToString())


def _write_node_cases(root: Path) -> None:
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow on purpose (casts to narrow types)
        cases = node_cases.collect_testcases()
    for case in cases:
        assert case.model is not None and case.data_sets is not None
        folder = root / case.name
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(case.model.SerializeToString())
        graph = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets):
            data = folder / f"test_data_set_{i}"
            data.mkdir()
            for j, value in enumerate(inputs):
                _write_value(data / f"input_{j}.pb", value, graph.input[j].type, graph.input[j].name)
            for j, value in enumerate(outputs):
                _write_value(data / f"output_{j}.pb", value, graph.output[j].type, graph.output[j].name)


def _write_light_cases(root: Path) -> None:
    """The wheel's ``light_*.onnx`` networks with the input onnx's runner makes (no outputs:
    the reference here is ONNX Runtime itself)."""
    for path in sorted((WHEEL_DATA / "light").glob("light_*.onnx")):
        model = onnx.load(str(path))
        initializers = {t.name for t in model.graph.initializer}
        folder = root / ("test_" + path.stem.removeprefix("light_"))
        data = folder / "test_data_set_0"
        data.mkdir(parents=True)
        shutil.copyfile(path, folder / "model.onnx")
        inputs = [i for i in model.graph.input if i.name not in initializers]
        for j, vi in enumerate(inputs):
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
            n = int(np.prod(shape))
            value = (np.arange(n).reshape(shape) / n).astype(np.float32)
            _write_value(data / f"input_{j}.pb", value, vi.type, vi.name)


def ensure_generated(root: Path | None = None) -> Path:
    """Generate the node and light test data under ``root`` (default :func:`cache_dir`) unless
    there already; safe when several processes do it at once (each writes a temporary folder and
    the first rename wins)."""
    root = root or cache_dir()
    for kind, write in (("node", _write_node_cases), ("light", _write_light_cases)):
        target = root / kind
        if (target / _DONE).exists():
            continue
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=root))
        try:
            write(tmp)
            (tmp / _DONE).write_text(f"onnx {onnx.__version__}\n")
            if target.exists() and not (target / _DONE).exists():
                shutil.rmtree(target, ignore_errors=True)  # an interrupted older attempt
            with contextlib.suppress(OSError):  # another process won the race
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


@dataclasses.dataclass(frozen=True)
class Case:
    """One backend test: ``name`` is ``<kind>/<test name>``, e.g. ``node/test_abs``; with
    ``batch``, ``<kind>/<test name>@batch``: the model with the first dimension of its inputs
    and outputs made symbolic, its inputs fed as one row per entry along it."""

    name: str
    model: Path
    data_sets: tuple[Path, ...]
    batch: bool = False

    @property
    def kind(self) -> str:
        return self.name.split("/", 1)[0]


BATCH_SUFFIX = "@batch"
_BATCH_DIM = "onnxpipe_backend_batch"


def _first_dim(vi: onnx.ValueInfoProto) -> int | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = vi.type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def _model_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def batchable(model: onnx.ModelProto) -> bool:
    """Every input and output a tensor whose declared first dimension is one size N >= 2: the
    model can be given a symbolic batch axis and its inputs split into N rows (scored in one
    call, they make the very same feed)."""
    inputs = _model_inputs(model)
    firsts = {_first_dim(vi) for vi in [*inputs, *model.graph.output]}
    size = firsts.pop() if len(firsts) == 1 else None
    return bool(inputs) and size is not None and size >= 2


def with_batch_axis(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs' and outputs' first dimension is symbolic."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in [*_model_inputs(out), *out.graph.output]:
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = _BATCH_DIM
    return out


def _cases_in(folder: Path, kind: str) -> Iterator[Case]:
    for model in sorted(folder.glob("*/model.onnx")):
        data_sets = tuple(sorted(model.parent.glob("test_data_set_*")))
        if data_sets and glob.glob(str(data_sets[0] / "*.pb")):
            name = f"{kind}/{model.parent.name}"
            yield Case(name, model, data_sets)
            if batchable(onnx.load_model_from_string(model.read_bytes())):
                yield Case(name + BATCH_SUFFIX, model, data_sets, batch=True)


def list_cases(root: Path | None = None) -> list[Case]:
    """Every case: generated (node, light) and shipped in the onnx wheel, and the ``@batch``
    variant of each :func:`batchable` one; sorted by name."""
    root = ensure_generated(root)
    cases = [c for kind in GENERATED_KINDS for c in _cases_in(root / kind, kind)]
    cases += [c for kind in WHEEL_KINDS for c in _cases_in(WHEEL_DATA / kind, kind)]
    return sorted(cases, key=lambda c: c.name)


def load_value(path: Path, type_proto: onnx.TypeProto) -> Any:
    """A protobuf file as a Python value: numpy array (tensor), list (sequence), dict (map),
    or the optional's content / None."""
    content = path.read_bytes()
    if type_proto.HasField("sequence_type"):
        seq = onnx.SequenceProto()
        seq.ParseFromString(content)
        return numpy_helper.to_list(seq)
    if type_proto.HasField("map_type"):
        mp = onnx.MapProto()
        mp.ParseFromString(content)
        return numpy_helper.to_dict(mp)
    if type_proto.HasField("optional_type"):
        opt = onnx.OptionalProto()
        opt.ParseFromString(content)
        return numpy_helper.to_optional(opt)
    tensor = onnx.TensorProto()
    tensor.ParseFromString(content)
    return numpy_helper.to_array(tensor)


def load_data_set(model: onnx.ModelProto, folder: Path) -> dict[str, Any]:
    """The inputs of one data set, by graph input name (``input_i.pb`` feeds the i-th graph input
    that is not an initializer)."""
    feeds = {}
    inputs = _model_inputs(model)
    for i in range(len(glob.glob(str(folder / "input_*.pb")))):
        vi = inputs[i]
        feeds[vi.name] = load_value(folder / f"input_{i}.pb", vi.type)
    return feeds


# ------------------------------------------------------------------------------------------------
# Comparing results


class MismatchError(AssertionError):
    """onnxpipe's result differs from bare ONNX Runtime's (the message says how)."""


def _same_array(want: np.ndarray, got: Any, where: str) -> None:
    if isinstance(got, int | float | bool) and not isinstance(got, np.generic) and want.dtype.kind in "biuf":
        raise MismatchError(f"{where}: a Python {type(got).__name__}, ONNX Runtime gives a {want.dtype} {want.shape}")
    if isinstance(got, np.generic | str | bytes):
        got = np.asarray(got)
    if not isinstance(got, np.ndarray):
        raise MismatchError(f"{where}: ONNX Runtime gives an array, onnxpipe a {type(got).__name__}")
    if want.dtype.kind in "OSU" or got.dtype.kind in "OSU":
        if want.shape != got.shape:
            raise MismatchError(f"{where}: shape {got.shape}, ONNX Runtime's is {want.shape}")
        text = [x.decode() if isinstance(x, bytes) else x for x in want.reshape(-1).tolist()]
        if got.dtype.kind not in "OSU" or text != [str(x) for x in got.reshape(-1).tolist()]:
            raise MismatchError(f"{where}: string values differ")
        return
    if want.dtype != got.dtype:
        raise MismatchError(f"{where}: dtype {got.dtype}, ONNX Runtime's is {want.dtype}")
    if want.shape != got.shape:
        raise MismatchError(f"{where}: shape {got.shape}, ONNX Runtime's is {want.shape}")
    if want.dtype.name in _ML_DTYPES:  # bfloat16, float8, int4...: the bits that hold the values, NaNs included
        raw = np.dtype(f"u{want.dtype.itemsize}")
        mask = raw.type(_ML_DTYPES[want.dtype.name])
        if not np.array_equal(want.view(raw) & mask, got.view(raw) & mask):
            raise MismatchError(f"{where}: values differ")
        return
    if want.dtype.kind in "fc":
        nan_w, nan_g = np.isnan(want), np.isnan(got)
        if not np.array_equal(nan_w, nan_g):
            raise MismatchError(f"{where}: NaN at other positions")
        raw = np.dtype(f"u{want.dtype.itemsize}") if want.dtype.kind == "f" else None
        if raw is not None:
            w, g = want[~nan_w].view(raw), got[~nan_g].view(raw)
        else:
            w, g = want[~nan_w], got[~nan_g]
        if not np.array_equal(w, g):
            raise MismatchError(f"{where}: values differ")
        return
    if not np.array_equal(want, got):
        raise MismatchError(f"{where}: values differ")


def same(want: Any, got: Any, where: str) -> None:
    """Raise :class:`MismatchError` unless ``got`` equals ONNX Runtime's ``want`` bit for bit (NaN-aware)."""
    if want is None:
        if got is not None:
            raise MismatchError(f"{where}: ONNX Runtime gives None (an empty optional), onnxpipe {type(got).__name__}")
    elif isinstance(want, np.ndarray):
        _same_array(want, got, where)
    elif isinstance(want, list):
        if not isinstance(got, list | tuple) or len(got) != len(want):
            raise MismatchError(
                f"{where}: ONNX Runtime gives a sequence of {len(want)}, onnxpipe "
                + (f"a sequence of {len(got)}" if isinstance(got, list | tuple) else f"a {type(got).__name__}")
            )
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            same(w, g, f"{where}[{i}]")
    elif isinstance(want, dict):
        if not isinstance(got, dict) or set(want) != set(got):
            raise MismatchError(f"{where}: ONNX Runtime gives a map, onnxpipe {type(got).__name__} (or other keys)")
        for k in want:
            same(want[k], got[k], f"{where}[{k!r}]")
    else:
        _same_array(np.asarray(want), got, where)


# ------------------------------------------------------------------------------------------------
# The three ways


def ort_run(model_bytes: bytes, feeds: Mapping[str, Any]) -> list[Any]:
    """Bare ONNX Runtime: a new CPU session, every output, one thread. A model with a
    low-precision input or output (bfloat16, float8, int4...), which ``session.run`` refuses, runs
    with OrtValues (:func:`_run_ort_values`)."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = options.inter_op_num_threads = _THREADS
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    if any(m.type in _LOW_PRECISION_TYPES for m in (*session.get_inputs(), *session.get_outputs())):
        return [_run_ort_values(session, names, feeds), _run_ort_values(session, names, feeds)]
    return [session.run(names, dict(feeds)), session.run(names, dict(feeds))]  # type: ignore[list-item]


# ONNX Runtime's types that numpy has no dtype for (ml_dtypes arrays), with ONNX's element type codes.
_LOW_PRECISION_TYPES = {
    "tensor(bfloat16)": onnx.TensorProto.BFLOAT16,
    "tensor(float8e4m3fn)": onnx.TensorProto.FLOAT8E4M3FN,
    "tensor(float8e4m3fnuz)": onnx.TensorProto.FLOAT8E4M3FNUZ,
    "tensor(float8e5m2)": onnx.TensorProto.FLOAT8E5M2,
    "tensor(float8e5m2fnuz)": onnx.TensorProto.FLOAT8E5M2FNUZ,
    "tensor(float8e8m0)": onnx.TensorProto.FLOAT8E8M0,
    "tensor(float4e2m1)": onnx.TensorProto.FLOAT4E2M1,
    "tensor(int4)": onnx.TensorProto.INT4,
    "tensor(uint4)": onnx.TensorProto.UINT4,
    "tensor(int2)": onnx.TensorProto.INT2,
    "tensor(uint2)": onnx.TensorProto.UINT2,
}
_ML_DTYPES = {
    "bfloat16": 0xFFFF,  # name -> the bits of an element that hold its value (ml_dtypes ignores the others)
    "float8_e4m3fn": 0xFF,
    "float8_e4m3fnuz": 0xFF,
    "float8_e5m2": 0xFF,
    "float8_e5m2fnuz": 0xFF,
    "float8_e8m0fnu": 0xFF,
    "float4_e2m1fn": 0x0F,
    "int4": 0x0F,
    "uint4": 0x0F,
    "int2": 0x03,
    "uint2": 0x03,
}


def _run_ort_values(session: ort.InferenceSession, names: list[str], feeds: Mapping[str, Any]) -> list[Any]:
    """``session.run`` through OrtValues, the low-precision values converted by onnx's own
    serializer (so that onnxpipe's packing is checked against an independent one)."""
    values = {name: _ort_value(value) for name, value in feeds.items()}
    return [_from_ort_value(v) for v in session.run_with_ort_values(names, values)]


def _ort_value(value: Any) -> ort.OrtValue:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"a {type(value).__name__} input cannot be fed as an OrtValue")
    if value.dtype.name not in _ML_DTYPES:
        return ort.OrtValue.ortvalue_from_numpy(value if value.flags.c_contiguous else value.copy(order="C"))
    proto = numpy_helper.from_array(value)  # raw_data as ONNX stores it: 4- and 2-bit types packed
    out = ort.OrtValue.ortvalue_from_shape_and_type(list(value.shape), proto.data_type, "cpu", 0)
    if out.tensor_size_in_bytes() != len(proto.raw_data):
        raise TypeError(f"ONNX Runtime holds {out.tensor_size_in_bytes()} bytes, onnx {len(proto.raw_data)}")
    if proto.raw_data:
        ctypes.memmove(out.data_ptr(), proto.raw_data, len(proto.raw_data))
    return out


def _from_ort_value(value: ort.OrtValue) -> Any:
    if value.is_tensor() and value.element_type() in _LOW_PRECISION_TYPES.values():
        raw = ctypes.string_at(value.data_ptr(), value.tensor_size_in_bytes())
        return numpy_helper.to_array(onnx.TensorProto(data_type=value.element_type(), dims=value.shape(), raw_data=raw))
    return value.numpy()


def _context() -> Any:
    import onnxpipe

    return onnxpipe.MLContext(seed=0)


def _apply(ctx: Any, model_bytes: bytes) -> Any:
    return ctx.transforms.apply_onnx_model(
        model_bytes=model_bytes, intra_op_num_threads=_THREADS, inter_op_num_threads=_THREADS
    )


def output_columns(transformer: Any) -> dict[str, str]:
    """Output tensor -> the column ``apply_onnx_model`` writes it to."""
    tensors = [t.name for t in transformer.info.outputs if not re.fullmatch(r"mlnet\..+\.unused(Input|Output)", t.name)]
    return dict(zip(tensors, transformer.output_column_names, strict=True))


def _batch_rows(transformer: Any, feeds: Mapping[str, Any], batch: bool) -> int | None:
    """How many rows the inputs make: their common first dimension when onnxpipe stacks rows
    along the model's batch axis, else None (the whole tensors are one row). ``batch``: the
    model was given a batch axis (a ``@batch`` case), so onnxpipe must use it."""
    if batch and not transformer.batched:
        raise MismatchError("onnxpipe scores the model row by row, though its inputs and outputs share a batch axis")
    if not transformer.batched:
        return None
    sizes = {v.shape[0] for v in feeds.values() if isinstance(v, np.ndarray) and v.ndim}
    return sizes.pop() if len(sizes) == 1 and 0 not in sizes else None  # no rows would score nothing


def _rows_of(value: Any, n: int | None) -> list[Any]:
    return [value] if n is None else [value[i : i + 1] for i in range(n)]


def _unrow(values: Any, n: int | None, where: str) -> Any:
    """One output from its per-row column values: the single row's value, or the rows
    concatenated along the batch axis they were split on."""
    values = list(values)
    if n is None:
        if len(values) != 1:
            raise MismatchError(f"{where}: {len(values)} rows for one row in")
        return values[0]
    if len(values) != n:
        raise MismatchError(f"{where}: {len(values)} rows for {n} rows in")
    if not all(isinstance(v, np.ndarray) and v.ndim and v.shape[0] == 1 for v in values):
        shapes = [getattr(v, "shape", type(v).__name__) for v in values[:3]]
        raise MismatchError(f"{where}: rows of a batched output do not have a leading 1: {shapes}")
    if n == 0:
        raise MismatchError(f"{where}: no rows to compare")
    return np.concatenate(values)


def _text(value: Any) -> Any:
    """Strings as onnxpipe holds them (str, never bytes), also inside sequences."""
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return np.array([x.decode() if isinstance(x, bytes) else x for x in value.reshape(-1)], object).reshape(
            value.shape
        )
    return value


def transform_outputs(
    model_bytes: bytes, feeds: Mapping[str, Any], names: Sequence[str], batch: bool = False
) -> list[Any]:
    """``apply_onnx_model`` over a DataView holding the inputs (one column per input tensor,
    typed with the value's own shape; a zero-length dimension is unknown where column types refuse it)."""
    import pyarrow as pa

    from onnxpipe.data._convert import arrow_schema, to_arrow
    from onnxpipe.errors import SchemaError
    from onnxpipe.schema import Column, DType, Schema, TensorType

    ctx = _context()
    transformer = _apply(ctx, model_bytes)
    n = _batch_rows(transformer, feeds, batch)
    columns, arrays = [], []
    for name, value in feeds.items():
        if not isinstance(value, np.ndarray):  # a sequence, map or optional: a column of the input's own type
            declared = transformer.info.input(name).column_type
            if declared is None:
                raise MismatchError(f"input {name!r} is a {type(value).__name__}: no column type holds it")
            columns.append(Column(name, declared))
            arrays.append(to_arrow([_text(value)], declared, name))
            continue
        rows = [_text(r) for r in _rows_of(value, n)]
        shape = rows[0].shape if rows else value.shape[1:]
        dtype = DType.from_numpy(value.dtype)
        try:
            ct = TensorType(dtype, tuple(shape))
        except SchemaError:  # a zero-length dimension where column types cannot hold one: unknown
            ct = TensorType(dtype, tuple(d or None for d in shape))
        columns.append(Column(name, ct))
        arrays.append(to_arrow(np.stack(rows) if ct.is_known_shape else rows, ct, name))
    if not columns:  # a model without inputs: one row of an unrelated column
        columns.append(Column("onnxpipe_backend_row", TensorType(DType.INT64)))
        arrays.append(pa.array([0], pa.int64()))
    schema = Schema(columns)
    view = ctx.data.load_from_arrow(pa.Table.from_arrays(arrays, schema=arrow_schema(schema)))
    scored = transformer.fit(view).transform(view)
    results = []
    for name in names:
        column = output_columns(transformer)[name]
        values = scored.column(column)
        results.append(_unrow(values, n, f"output {name!r} (column {column!r})"))
    return results


def engine_outputs(
    model_path: Path, model_bytes: bytes, feeds: Mapping[str, Any], names: Sequence[str], batch: bool = False
) -> list[Any]:
    """The prediction engine, with the ``OnnxInput`` / ``OnnxOutput`` classes onnxpipe writes for the model."""
    import onnxpipe
    from onnxpipe.schema import TensorType, row_binding

    code = onnxpipe.generate_schema_code(onnxpipe.inspect_model(model_path))
    # Our own generated code, from a trusted test model, in a fresh module (dataclasses and type
    # hints look their module up in sys.modules).
    module = types.ModuleType("onnxpipe_backend_schema")
    sys.modules[module.__name__] = module
    exec(compile(code, f"<schema of {model_path}>", "exec"), module.__dict__)
    in_class, out_class = module.OnnxInput, module.OnnxOutput
    ctx = _context()
    transformer = _apply(ctx, model_bytes)
    model = transformer.fit(ctx.data.load_from_enumerable([], in_class))
    engine = ctx.model.create_prediction_engine(model, in_class, out_class)
    n = _batch_rows(transformer, feeds, batch)
    count = 1 if n is None else n
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for f in row_binding(in_class).fields:
        if f.column.name not in feeds:
            raise MismatchError(f"the input class has field {f.attribute!r} for {f.column.name!r}, not a test input")
        value = feeds[f.column.name]
        for row, part in zip(rows, _rows_of(value, n), strict=True):
            part = _text(part)
            ct = f.column.type
            if isinstance(ct, TensorType) and ct.is_scalar and isinstance(part, np.ndarray):
                part = part.reshape(())[()]
            row[f.attribute] = part
    inputs = [in_class(**row) for row in rows]
    predicted = [engine.predict(inputs[0])] if n is None else engine.predict_batch(inputs)
    by_column = {f.column.name: f.attribute for f in row_binding(out_class).fields}
    results = []
    for name in names:
        column = output_columns(transformer)[name]
        if column not in by_column:
            raise MismatchError(f"output {name!r} (column {column!r}) has no field in the generated output class")
        values = [getattr(p, by_column[column]) for p in predicted]
        results.append(_unrow(values, n, f"output {name!r}"))
    return results


@dataclasses.dataclass
class Result:
    """What happened to one case. ``ort`` is None when ONNX Runtime ran it (else why it is not
    counted); ``transform`` / ``engine`` are None on success, else ``(error class, message)``."""

    name: str
    ort: str | None = None
    transform: tuple[str, str] | None = None
    engine: tuple[str, str] | None = None
    seconds: float = 0.0

    @property
    def counted(self) -> bool:
        return self.ort is None

    @property
    def passed(self) -> bool:
        return self.counted and self.transform is None and self.engine is None

    def failure(self) -> tuple[str, str, str] | None:
        """``(stage, error class, message)`` of the first failing stage."""
        for stage in ("transform", "engine"):
            got = getattr(self, stage)
            if got is not None:
                return (stage, *got)
        return None


def _error(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, MismatchError):
        return "Mismatch", str(exc)
    text = str(exc) or traceback.format_exception_only(exc)[-1].strip()
    return type(exc).__name__, text[:2000]


def run_case(case: Case) -> Result:
    """Run ``case`` through bare ONNX Runtime, ``apply_onnx_model`` and the prediction engine."""
    start = time.perf_counter()
    result = Result(case.name)
    with tempfile.TemporaryDirectory(prefix="onnxpipe-backend-") as tmp:
        model_path = case.model
        model = onnx.load_model_from_string(case.model.read_bytes())
        if case.batch:
            model = with_batch_axis(model)
            model_path = Path(tmp) / "model.onnx"
            model_path.write_bytes(model.SerializeToString())
        _run_case(case, model, model_path, result)
    result.seconds = time.perf_counter() - start
    return result


def _run_case(case: Case, model: onnx.ModelProto, model_path: Path, result: Result) -> None:
    model_bytes = model_path.read_bytes()
    data = [load_data_set(model, d) for d in case.data_sets]
    expected = []
    for feeds in data:
        try:
            first, second = ort_run(model_bytes, feeds)
        except Exception as exc:
            result.ort = f"not ORT-runnable: {type(exc).__name__}: {str(exc)[:300]}"
            break
        try:
            same(first, second, "two runs")
        except MismatchError:
            result.ort = "not deterministic: two runs of one ONNX Runtime session differ"
            break
        expected.append(first)
    names = [o.name for o in model.graph.output]
    if result.counted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pytest turns warnings into errors; onnxpipe's are not failures here
            for stage, run in (
                ("transform", lambda feeds: transform_outputs(model_bytes, feeds, names, case.batch)),
                ("engine", lambda feeds: engine_outputs(model_path, model_bytes, feeds, names, case.batch)),
            ):
                try:
                    for feeds, want in zip(data, expected, strict=True):
                        got = run(feeds)
                        for name, w, g in zip(names, want, got, strict=True):
                            same(w, g, f"output {name!r}")
                except Exception as exc:
                    setattr(result, stage, _error(exc))


# ------------------------------------------------------------------------------------------------
# Failure causes

# (cause, stage regex, error class regex, message regex): the first match names a failure's cause.
# The causes are what the xfail lists of tests/test_onnx_backend.py are grouped by.
CAUSES: list[tuple[str, str, str, str]] = [
    (
        "load guard: a ConstantOfShape computed from constants cannot be sized",
        ".*",
        "ModelLoadError",
        r"ConstantOfShape node computes a tensor from constants alone",
    ),
    (
        "load guard: a sequence or optional built from constants cannot be sized",
        ".*",
        "ModelLoadError",
        r"(Sequence\w*|Optional) node .*computes a tensor from constants alone",
    ),
    ("non-tensor input (sequence, map or optional)", ".*", ".*", r"only tensor inputs|no column type holds it"),
    (
        "unsupported element type (float8, int4, bfloat16, complex)",
        ".*",
        ".*",
        r"(float8|bfloat16|u?int[24]|complex|float4)\w*, which onnxpipe cannot hold|has no onnxpipe element type",
    ),
    (
        "sequence-of-tensors output: a DataView cannot store it",
        "transform",
        "ArrowInvalid",
        r"Could not convert .* with type list",
    ),
    (
        "engine: a numpy-scalar output field (np.float32...) holds a Python scalar",
        "engine",
        "Mismatch",
        r"a Python (float|int|bool), ONNX Runtime gives",
    ),
    ("model without inputs: the engine refuses the empty input class", "engine", ".*", r"declares no annotated fields"),
    (
        "a model scored row by row fixes its unknown first dimension at 1",
        ".*",
        "ShapeError",
        r"expects \[1[,\]]|expected shape \(1[,)]",
    ),
    (
        "a declared dimension of 0 is treated as unknown (generated VectorType(1))",
        ".*",
        ".*",
        r"cannot reshape array of size 0 into|shape \[?\(?0\b",
    ),
    (
        "zero-size tensor column: Arrow has no fixed_size_list of size 0",
        ".*",
        ".*",
        r"list_size needs to be a strict positive integer",
    ),
    (
        "data-dependent output shape: an unknown first dimension is written as 1 (no batch axis)",
        "engine",
        "ValueError",
        r"cannot reshape array of size \d+ into shape \(1\b",
    ),
]


def cause_of(result: Result) -> str:
    failure = result.failure()
    if failure is None:
        return "passes"
    stage, cls, message = failure
    for cause, stage_re, cls_re, message_re in CAUSES:
        if re.fullmatch(stage_re, stage) and re.fullmatch(cls_re, cls) and re.search(message_re, message):
            return cause
    return f"{stage}: {cls}: {normalized(message)}"


def normalized(message: str) -> str:
    """A message with names, numbers and shapes blanked, to group failures of one kind."""
    text = message.splitlines()[0] if message else ""
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r'"[^"]*"', '"…"', text)
    text = re.sub(r"\([^()]*\)", "(…)", text)
    text = re.sub(r"\[[^\[\]]*\]", "[…]", text)
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", "N", text)
    return text[:200]


# ------------------------------------------------------------------------------------------------
# The report


def _run_isolated(name: str, root: Path, timeout: float) -> Result:
    """One case in its own process (after a worker died): a crash or hang is the case's result."""
    command = [sys.executable, __file__, "--one", name, "--cache", str(root)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Result(name, transform=("Timeout", f"did not finish in {timeout:g} s"))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1][:300]
        return Result(name, transform=("Crash", f"the process ended with code {done.returncode}: {last}"))
    fields = json.loads(done.stdout)
    for stage in ("transform", "engine"):
        fields[stage] = tuple(fields[stage]) if fields[stage] is not None else None
    return Result(**fields)


def _tracked(case: Case, markers: str) -> Result:
    """``run_case`` in a pool worker, leaving the case's name where the parent finds it if the worker dies."""
    (Path(markers) / str(os.getpid())).write_text(case.name)
    return run_case(case)


def run_all(cases: Sequence[Case], root: Path, jobs: int, timeout: float) -> list[Result]:
    """Every case, ``jobs`` processes at a time. A case that kills its worker (a crash in ONNX
    Runtime or Arrow) breaks the pool: the cases the workers had started are rerun one process
    each (:func:`_run_isolated`, where a crash is the case's result) and a new pool takes the rest."""
    results: dict[str, Result] = {}
    pending = list(cases)
    with tempfile.TemporaryDirectory(prefix="onnxpipe-backend-") as markers:
        while pending:
            broken = False
            with concurrent.futures.ProcessPoolExecutor(max(jobs, 1)) as pool:
                futures = {}
                try:
                    for case in pending:
                        futures[pool.submit(_tracked, case, markers)] = case
                except concurrent.futures.process.BrokenProcessPool:
                    broken = True
                for future in concurrent.futures.as_completed(futures):
                    try:
                        results[futures[future].name] = future.result()
                    except concurrent.futures.process.BrokenProcessPool:
                        broken = True
            if not broken:
                break
            started = {p.read_text() for p in Path(markers).iterdir()}
            for p in Path(markers).iterdir():
                p.unlink()
            pending = [c for c in pending if c.name not in results]
            suspects = [c for c in pending if c.name in started] or pending[:1]
            for case in suspects:
                results[case.name] = _run_isolated(case.name, root, timeout)
            pending = [c for c in pending if c.name not in results]
    return [results[c.name] for c in cases]


def summary(results: Sequence[Result], examples: int = 3) -> dict[str, Any]:
    counted = [r for r in results if r.counted]
    not_counted = collections.Counter(r.ort.split(":")[0] for r in results if r.ort is not None)
    by_cause: dict[str, list[str]] = collections.defaultdict(list)
    for r in counted:
        if not r.passed:
            by_cause[cause_of(r)].append(r.name)
    by_error: dict[str, list[str]] = collections.defaultdict(list)
    for r in counted:
        for stage in ("transform", "engine"):
            error = getattr(r, stage)
            if error is not None:
                by_error[f"{stage}: {error[0]}: {normalized(error[1])}"].append(r.name)
    variants = {}
    for variant, chosen in (
        ("as shipped", [r for r in results if not r.name.endswith(BATCH_SUFFIX)]),
        (BATCH_SUFFIX, [r for r in results if r.name.endswith(BATCH_SUFFIX)]),
    ):
        runnable = [r for r in chosen if r.counted]
        variants[variant] = {
            "cases": len(chosen),
            "ort_runnable": len(runnable),
            "passed_transform": sum(r.transform is None for r in runnable),
            "passed_engine": sum(r.engine is None for r in runnable),
        }
    return {
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "cases": len(results),
        "not_counted": dict(not_counted),
        "ort_runnable": len(counted),
        "passed_transform": sum(r.transform is None for r in counted),
        "passed_engine": sum(r.engine is None for r in counted),
        "passed_both": sum(r.passed for r in counted),
        "variants": variants,
        "failures_by_cause": {
            k: {"count": len(v), "examples": v[:examples]}
            for k, v in sorted(by_cause.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        },
        "failures_by_error": {
            k: {"count": len(v), "examples": v[:examples]}
            for k, v in sorted(by_error.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        },
    }


def _print_summary(s: Mapping[str, Any], seconds: float) -> None:
    print(f"onnx {s['onnx']}, onnxruntime {s['onnxruntime']}: {s['cases']} cases in {seconds:.0f} s")
    print(f"  not counted: {s['not_counted']}")
    print(f"  ORT-runnable:                    {s['ort_runnable']}")
    print(f"  passed through apply_onnx_model: {s['passed_transform']}")
    print(f"  passed through the engine:       {s['passed_engine']}")
    print(f"  passed both:                     {s['passed_both']}")
    for variant, v in s["variants"].items():
        print(
            f"  {variant}: {v['cases']} cases, {v['ort_runnable']} ORT-runnable, {v['passed_transform']} through "
            f"apply_onnx_model, {v['passed_engine']} through the engine"
        )
    for title, key in (
        ("failures by cause (first failing stage)", "failures_by_cause"),
        ("failures by stage, error class and message (both stages)", "failures_by_error"),
    ):
        print(f"\n{title}:")
        for cause, info in s[key].items():
            print(f"  {info['count']:4d}  {cause}\n        e.g. {', '.join(info['examples'])}")


def xfail_literal(results: Sequence[Result]) -> str:
    """The XFAIL table of tests/test_onnx_backend.py for these results, as Python source."""
    by_cause: dict[str, list[str]] = collections.defaultdict(list)
    for r in results:
        if r.counted and not r.passed:
            by_cause[cause_of(r)].append(r.name)
    lines = ["XFAIL: dict[str, list[str]] = {"]
    for cause in sorted(by_cause):
        lines.append(f"    {json.dumps(cause)}: [")
        lines.extend(f"        {json.dumps(name)}," for name in sorted(by_cause[cause]))
        lines.append("    ],")
    lines.append("}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-k", "--filter", default="", help="only cases whose name contains this text")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--cache", type=Path, default=None, help=f"generated data folder (default: ${CACHE_ENV} or ~)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default: bench/results/onnx_backend.json; onnx_backend-filtered.json with -k)",
    )
    parser.add_argument("--xfail", type=Path, default=None, help="also write the XFAIL table (Python) here")
    parser.add_argument("--timeout", type=float, default=300.0, help="per case, for cases rerun alone after a crash")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # run one case, print its Result as JSON
    args = parser.parse_args(argv)
    root = ensure_generated(args.cache)
    cases = list_cases(root)
    if args.one is not None:
        print(json.dumps(dataclasses.asdict(run_case(next(c for c in cases if c.name == args.one)))))
        return 0
    cases = [c for c in cases if args.filter in c.name]
    results_dir = Path(__file__).resolve().parents[1] / "bench" / "results"
    if args.json is None:
        args.json = results_dir / ("onnx_backend-filtered.json" if args.filter else "onnx_backend.json")
    start = time.perf_counter()
    results = run_all(cases, root, args.jobs, args.timeout)
    seconds = time.perf_counter() - start
    s = summary(results)
    _print_summary(s, seconds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    full = {
        **s,
        "seconds": round(seconds, 1),
        "results": [{**dataclasses.asdict(r), "cause": cause_of(r) if r.counted else None} for r in results],
    }
    args.json.write_text(json.dumps(full, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    if args.xfail is not None:
        args.xfail.write_text(xfail_literal(results) + "\n")
        print(f"wrote {args.xfail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
