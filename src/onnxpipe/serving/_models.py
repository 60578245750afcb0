"""The models a server serves: saved pipelines and bare ONNX models, one file or a repository
laid out ``<name>/<version>/model.zip|model.onnx`` (as Triton and KServe lay theirs out).

Only onnxpipe's public API is used: ``ctx.model.load`` for saved pipelines,
``ctx.transforms.apply_onnx_model`` and :func:`onnxpipe.inspect_model` for bare ONNX models,
and each step's ``step_columns`` to score (as the prediction engine does: no Arrow round trip).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxpipe import Column, DType, KeyType, MLContext, Schema, SequenceType, TensorType, Transformer, TransformerChain
from onnxpipe import inspect_model as _inspect_model
from onnxpipe.errors import InvalidArgumentError, OnnxPipeError, SchemaError

__all__ = ["ModelRepository", "ServedModel", "v2_datatype"]

_log = logging.getLogger("onnxpipe.serving")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_MODEL_FILES = ("model.zip", "model.onnx")
_MAX_PLANS = 64  # scoring plans kept per model (one per distinct request schema)

# V2 datatype <-> onnxpipe element type
_V2_OF_DTYPE: dict[DType, str] = {
    DType.BOOL: "BOOL",
    DType.INT8: "INT8",
    DType.INT16: "INT16",
    DType.INT32: "INT32",
    DType.INT64: "INT64",
    DType.UINT8: "UINT8",
    DType.UINT16: "UINT16",
    DType.UINT32: "UINT32",
    DType.UINT64: "UINT64",
    DType.FLOAT16: "FP16",
    DType.FLOAT32: "FP32",
    DType.FLOAT64: "FP64",
    DType.STRING: "BYTES",
}
DTYPE_OF_V2: dict[str, DType] = {v: k for k, v in _V2_OF_DTYPE.items()}


def v2_datatype(dtype: DType) -> str | None:
    """The Open Inference Protocol datatype of an element type (None: none fits)."""
    return _V2_OF_DTYPE.get(dtype)


class RepositoryError(Exception):
    """A model repository that cannot be served (the CLI reports it and exits)."""


def _row_shape(ct: Any) -> tuple[int | None, ...]:
    return ct.shape if isinstance(ct, TensorType) else ()


@dataclasses.dataclass
class ServedModel:
    """One version of one model, ready to score."""

    name: str
    version: str
    path: Path
    platform: str  # "onnxpipe" (a saved pipeline) or "onnxruntime_onnx" (a bare ONNX model)
    model: Transformer
    inputs: list[Column]  # the columns the model needs
    optional_inputs: list[Column]  # columns of the saved input schema it can do without
    outputs: list[Column]  # the result columns
    ctx: MLContext
    squeezed: frozenset[str] = frozenset()  # a bare model's outputs served without their leading 1
    # a bare model's tensors as it declares them after the batch dimension ([N, 1] stays [N, 1] on
    # the wire, as Triton serves it, though onnxpipe reads it as one value per row)
    declared_row_shapes: Mapping[str, tuple[int | None, ...]] = dataclasses.field(default_factory=dict)
    # rows merged into one scoring call at most (None: the server's max_batch_size); 1 when an ONNX
    # model in it has a fixed first dimension (a fixed batch of 1): onnxpipe scores it row by row,
    # so merging requests would gain nothing
    max_batch_size: int | None = None
    _plans: dict[Schema, list[tuple[Transformer, Schema]]] = dataclasses.field(default_factory=dict, repr=False)
    _schemas: dict[tuple[Any, ...], Schema] = dataclasses.field(default_factory=dict, repr=False)

    def input_column(self, name: str) -> Column | None:
        return next((c for c in (*self.inputs, *self.optional_inputs) if c.name == name), None)

    def wire_shape(self, column: Column) -> list[int]:
        """The V2 shape of ``column``'s tensors: ``-1`` rows, then each row's shape (``-1`` unknown)."""
        shape = self.declared_row_shapes.get(column.name, _row_shape(column.type))
        return [-1, *(-1 if d is None else d for d in shape)]

    def describe(self, column: Column) -> dict[str, Any]:
        """``column`` as V2 metadata describes a tensor: name, datatype and shape."""
        ct = column.type
        datatype = v2_datatype(ct.dtype) if isinstance(ct, TensorType) else None
        return {"name": column.name, "datatype": datatype or str(ct), "shape": self.wire_shape(column)}

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [self.describe(c) for c in self.inputs],
            "outputs": [self.describe(c) for c in self.outputs],
        }

    def schema_of(self, columns: Mapping[str, np.ndarray]) -> Schema:
        """The schema of a request's columns (each ``[rows, *row_shape]``), checked against the model:
        onnxpipe's own error when the model does not take it."""
        key = tuple((n, a.dtype, a.shape[1:]) for n, a in columns.items())
        schema = self._schemas.get(key)
        if schema is None:
            schema = Schema.of(
                **{n: TensorType(DType.from_numpy(a.dtype), tuple(a.shape[1:])) for n, a in columns.items()}
            )
            self._plan(schema)  # onnxpipe's own error when the model does not take it
            if len(self._schemas) >= _MAX_PLANS:
                self._schemas.clear()
            self._schemas[key] = schema
        return schema

    def _plan(self, schema: Schema) -> list[tuple[Transformer, Schema]]:
        """Each step with the schema it reads, for data of ``schema`` (kept for the few schemas a
        model's requests have: the inputs given, their element types and shapes)."""
        plan = self._plans.get(schema)
        if plan is None:
            steps = self.model.steps
            plan = list(zip(steps, TransformerChain(list(steps)).schemas(schema), strict=False))
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[schema] = plan
        return plan

    def score(self, schema: Schema, columns: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """The result columns for a batch of ``rows`` rows of ``schema`` (each array ``[rows, *row_shape]``)."""
        values: dict[str, Any] = dict(columns)
        for step, step_schema in self._plan(schema):
            values.update(step.step_columns(values, step_schema, rows))
        out = {c.name: _as_array(values[c.name], c.name) for c in self.outputs}
        for c in self.outputs:
            a = out[c.name]
            declared = self.declared_row_shapes.get(c.name)
            static = [d for d in declared or () if d is not None]
            if declared is not None and len(static) == len(declared) and a.size == rows * math.prod(static):
                out[c.name] = a.reshape(rows, *static)
            elif c.name in self.squeezed:  # [rows, 1, ...] -> [rows, ...]; [rows, 1, 1] -> [rows]
                scalar = isinstance(c.type, TensorType) and c.type.is_scalar
                out[c.name] = a.reshape(len(a)) if scalar else a.reshape(len(a), *a.shape[2:])
        return out


def _as_array(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "toarray"):  # a sparse vector column
        return np.asarray(values.toarray())
    if isinstance(values, np.ndarray):
        return values
    try:
        return np.stack([np.asarray(v) for v in values])
    except ValueError:
        raise SchemaError(f"output {name!r} has rows of different shapes, which one tensor cannot hold") from None


def _onnx_input_type(ct: Any, shape: tuple[int | None, ...], has_dims: bool) -> TensorType:
    """The column type a bare model's input is read as (as ``onnxpipe predict`` reads it): its
    shape without the batch dimension; ``[N, 1]`` is one value per row."""
    if not isinstance(ct, TensorType) or isinstance(ct, KeyType):
        raise RepositoryError(f"input type {ct} cannot be served yet (tensor inputs only)")
    if has_dims and shape and (shape[0] is None or shape[0] == 1):
        shape = shape[1:]
    if all(d == 1 for d in shape):
        shape = ()
    return TensorType(ct.dtype, shape)


def _required(model: Transformer, schema: Schema) -> tuple[list[Column], list[Column]]:
    model.output_schema(schema)
    required: list[Column] = []
    optional: list[Column] = []
    for c in schema.columns:
        try:
            model.output_schema(schema.without(c.name))
        except SchemaError:
            required.append(c)
        else:
            optional.append(c)
    return required, optional


def load_served_model(ctx: MLContext, name: str, version: str, path: Path) -> ServedModel:
    """Open one model file (a saved pipeline ``.zip`` or a bare ``.onnx``)."""
    squeezed: set[str] = set()
    declared: dict[str, tuple[int | None, ...]] = {}
    max_batch_size: int | None = None
    try:
        if path.suffix.lower() == ".zip":
            model, schema = ctx.model.load(path)
            required, optional = _required(model, schema)
            result_names = TransformerChain(list(model.steps)).result_columns(schema)
            out_schema = model.output_schema(Schema(required))
            outputs = [out_schema[n] for n in result_names if n in out_schema]
            platform = "onnxpipe"
        else:
            info = _inspect_model(str(path))
            onnx_model = ctx.transforms.apply_onnx_model(model_file=str(path))
            required = []
            for n in onnx_model.input_column_names:
                tensor = info.input(n)
                if tensor is None:
                    raise RepositoryError(f"input {n!r} is not in the model")
                required.append(Column(n, _onnx_input_type(tensor.column_type, tensor.shape, tensor.dims is not None)))
            for t in (*info.inputs, *info.outputs):
                if t.dims and (t.shape[0] is None or t.shape[0] == 1):  # the batch, or a fixed batch of 1
                    declared[t.name] = tuple(t.shape[1:])
            optional = []
            model = onnx_model
            out_schema = model.output_schema(Schema(required))
            outputs = []
            for n in onnx_model.output_column_names:
                c = out_schema[n]
                if isinstance(c.type, TensorType) and c.type.shape[:1] == (1,):
                    rest = c.type.shape[1:]
                    c = Column(n, c.type.with_shape(() if all(d == 1 for d in rest) else rest))
                    squeezed.add(n)
                outputs.append(c)
            platform = "onnxruntime_onnx"
    except (OnnxPipeError, OSError) as exc:
        raise RepositoryError(f"model {name!r} version {version} ({path}): {exc}") from exc
    if any(getattr(step, "batched", True) is False for step in model.steps):
        max_batch_size = 1  # an ONNX model scored row by row (a fixed batch): merging gains nothing
    for c in (*required, *outputs):
        if not isinstance(c.type, TensorType) or isinstance(c.type, SequenceType) or v2_datatype(c.type.dtype) is None:
            raise RepositoryError(
                f"model {name!r} version {version} ({path}): column {c.name!r} is {c.type}, which the "
                "Open Inference Protocol cannot carry yet"
            )
    return ServedModel(
        name,
        version,
        path,
        platform,
        model,
        required,
        optional,
        outputs,
        ctx,
        squeezed=frozenset(squeezed),
        declared_row_shapes=declared,
        max_batch_size=max_batch_size,
    )


def _version_key(version: str) -> tuple[int, int, str]:
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


def _checked_name(name: str, what: str, where: Path) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise RepositoryError(
            f"{what} {name!r} in {where} is not a valid name (letters, digits, '_', '.', '-'; at most 128)"
        )
    return name


def _regular_file_inside(path: Path, root: Path) -> bool:
    """``path`` is a regular file, not a link, and really inside ``root``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise RepositoryError(f"{path} is not a regular file (links are not followed)")
    if not path.resolve().is_relative_to(root):
        raise RepositoryError(f"{path} is outside the repository {root}")
    return True


_Key = tuple[str, str]  # (model name, version)
_Stamp = tuple[Path, int, int]  # the file, its mtime (ns) and size


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_mtime_ns, st.st_size)


def _single_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", path.stem).lstrip("._-") or "model"
    return name[:128]


def _scan(location: Path, strict: bool) -> tuple[dict[_Key, Path], dict[_Key, str]]:
    """The model files at ``location`` (a file or a repository folder), and, when not ``strict``,
    the version folders that cannot be served as they are (strict: RepositoryError)."""
    found: dict[_Key, Path] = {}
    problems: dict[_Key, str] = {}
    if location.is_file():
        if location.suffix.lower() not in (".zip", ".onnx"):
            raise RepositoryError(f"{location} is neither a saved pipeline (.zip) nor an ONNX model (.onnx)")
        found[(_single_name(location), "1")] = location
        return found, problems
    root = location
    for model_dir in sorted(root.iterdir()):
        if model_dir.name.startswith("."):
            continue
        try:
            if model_dir.is_symlink() or not model_dir.is_dir():
                raise RepositoryError(f"{model_dir} is not a model folder (links are not followed)")
            name = _checked_name(model_dir.name, "model", root)
        except RepositoryError:
            if strict:
                raise
            continue
        for version_dir in sorted(model_dir.iterdir()):
            if version_dir.name.startswith("."):
                continue
            key = (name, version_dir.name)
            try:
                if version_dir.is_symlink() or not version_dir.is_dir():
                    raise RepositoryError(f"{version_dir} is not a version folder (links are not followed)")
                _checked_name(version_dir.name, "version", model_dir)
                files = [version_dir / f for f in _MODEL_FILES if _regular_file_inside(version_dir / f, root)]
                if len(files) != 1:
                    if not files and not strict:
                        continue  # a version folder being made: not a version yet
                    raise RepositoryError(f"{version_dir} must hold exactly one of {', '.join(_MODEL_FILES)}")
            except RepositoryError as exc:
                if strict:
                    raise
                problems[key] = str(exc)
                continue
            found[key] = files[0]
    return found, problems


class ModelRepository:
    """The models served: ``{name: {version: ServedModel}}``. One opened from a location can be
    reloaded (:meth:`reload`): changed, new and removed model files are noticed by their
    modification times and sizes."""

    def __init__(self, models: Sequence[ServedModel]) -> None:
        self._models: dict[str, dict[str, ServedModel]] = {}
        for m in models:
            self._models.setdefault(m.name, {})[m.version] = m
        self.location: Path | None = None  # what reload() scans (None: not reloadable)
        self._ctx: MLContext | None = None
        self._seen: dict[_Key, _Stamp | None] = {}  # the file last loaded (or tried) per version
        self.reload_errors: dict[_Key, str] = {}  # versions whose last reload failed: why
        self.generation = 0  # bumped by each reload that changes what is served
        self._logged: dict[_Key, str] = {}

    @classmethod
    def open(cls, location: str | Path, ctx: MLContext | None = None) -> ModelRepository:
        """A model file (served as its file name without the extension, version 1) or a folder
        ``<name>/<version>/model.zip|model.onnx``."""
        ctx = ctx or MLContext()
        path = Path(location)
        if not path.exists():
            raise RepositoryError(f"{path} does not exist")
        if path.is_dir():
            if os.path.islink(path):
                raise RepositoryError(f"{path} is a link; give the repository folder itself")
            path = path.resolve()
        found, _ = _scan(path, strict=True)
        if not found:
            raise RepositoryError(f"{path} holds no model (<name>/<version>/model.zip or model.onnx)")
        stamps = {key: _stamp(file) for key, file in found.items()}
        repository = cls([load_served_model(ctx, name, version, file) for (name, version), file in found.items()])
        repository.location = path
        repository._ctx = ctx
        repository._seen = stamps
        return repository

    def reload(self) -> bool:
        """Bring the served models in line with the files (blocking: run it in a worker thread;
        each swap is one assignment, so requests see the old model or the new, never half).
        A file that fails to load leaves its old version served and its error in
        ``reload_errors`` (and the log); a removed version folder stops being served. True when
        what is served changed."""
        if self.location is None or self._ctx is None:
            return False
        try:
            found, problems = _scan(self.location, strict=False)
        except (RepositoryError, OSError) as exc:
            self._fail(("", ""), f"cannot read {self.location}: {exc}")
            return False
        changed = False
        for key, message in problems.items():
            self._fail(key, message)
        for key, file in found.items():
            stamp = _stamp(file)
            if stamp is None or self._seen.get(key) == stamp:
                continue
            self._seen[key] = stamp
            name, version = key
            try:
                model = load_served_model(self._ctx, name, version, file)
            except Exception as exc:  # RepositoryError, or a file that is no model at all
                still = "the old version is still served" if self._served(key) else "not served"
                self._fail(key, f"reloading {file} failed ({still}): {exc}")
                continue
            models = dict(self._models)
            models[name] = {**models.get(name, {}), version: model}
            self._models = models  # the swap
            self.reload_errors.pop(key, None)
            self._logged.pop(key, None)
            _log.info("model %r version %s (re)loaded from %s", name, version, file)
            changed = True
        gone = [k for k in {*self._seen, *self._served_keys()} if k not in found and k not in problems]
        for key in gone:
            name, version = key
            self._seen.pop(key, None)
            self.reload_errors.pop(key, None)
            self._logged.pop(key, None)
            if self._served(key):
                models = dict(self._models)
                versions = {v: m for v, m in models[name].items() if v != version}
                if versions:
                    models[name] = versions
                else:
                    del models[name]
                self._models = models
                _log.info("model %r version %s removed: no longer served", name, version)
                changed = True
        if ("", "") in self.reload_errors:  # the location is readable again
            self.reload_errors.pop(("", ""), None)
            self._logged.pop(("", ""), None)
        if changed:
            self.generation += 1
        return changed

    def _served_keys(self) -> list[_Key]:
        return [(m.name, m.version) for m in self.all()]

    def _served(self, key: _Key) -> bool:
        return key[1] in self._models.get(key[0], {})

    def _fail(self, key: _Key, message: str) -> None:
        self.reload_errors[key] = message
        if self._logged.get(key) != message:
            self._logged[key] = message
            _log.error("%s", message)

    def errors_of(self, name: str, version: str | None = None) -> dict[str, str]:
        """``{version: why its last reload failed}`` for one model (one version of it)."""
        errors = dict(self.reload_errors)  # one copy: reload() may change it in its thread
        return {v: e for (n, v), e in errors.items() if n == name and version in (None, v)}

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def all(self) -> list[ServedModel]:
        return [m for versions in self._models.values() for m in versions.values()]

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model (its latest version unless given); InvalidArgumentError names what is unknown."""
        versions = self._models.get(name)
        if versions is None:
            raise InvalidArgumentError(f"unknown model {name!r}; served: {', '.join(self._models)}")
        if version is None:
            return versions[max(versions, key=_version_key)]
        model = versions.get(version)
        if model is None:
            raise InvalidArgumentError(
                f"model {name!r} has no version {version!r}; versions: {', '.join(sorted(versions, key=_version_key))}"
            )
        return model
