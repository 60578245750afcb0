"""The models a server serves: saved pipelines and bare ONNX models, one file or a repository
laid out ``<name>/<version>/model.zip|model.onnx`` (as Triton and KServe lay theirs out).

Only onnxpipe's public API is used: ``ctx.model.load`` for saved pipelines,
``ctx.transforms.apply_onnx_model`` and :func:`onnxpipe.inspect_model` for bare ONNX models,
``ctx.data.load_from_dict`` and ``transform`` to score.
"""

from __future__ import annotations

import dataclasses
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

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_MODEL_FILES = ("model.zip", "model.onnx")

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


def _v2_shape(ct: Any) -> list[int]:
    shape = ct.shape if isinstance(ct, TensorType) else ()
    return [-1, *(-1 if d is None else d for d in shape)]


def _describe(ct: Any) -> dict[str, Any]:
    datatype = v2_datatype(ct.dtype) if isinstance(ct, TensorType) else None
    return {"datatype": datatype or str(ct), "shape": _v2_shape(ct)}


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

    def input_column(self, name: str) -> Column | None:
        return next((c for c in (*self.inputs, *self.optional_inputs) if c.name == name), None)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [{"name": c.name, **_describe(c.type)} for c in self.inputs],
            "outputs": [{"name": c.name, **_describe(c.type)} for c in self.outputs],
        }

    def check_schema(self, schema: Schema) -> None:
        """Raise onnxpipe's own error when the model does not take data of ``schema``."""
        self.model.output_schema(schema)

    def score(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The result columns for a batch of rows (each array ``[rows, *row_shape]``)."""
        view = self.ctx.data.load_from_dict(dict(columns))
        scored = self.model.transform(view)
        names = [c.name for c in self.outputs]
        values = scored.columns(names)
        out = {n: _as_array(values[n], n) for n in names}
        for c in self.outputs:
            if c.name in self.squeezed:  # [rows, 1, ...] -> [rows, ...]; [rows, 1, 1] -> [rows]
                a = out[c.name]
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
    for c in (*required, *outputs):
        if not isinstance(c.type, TensorType) or isinstance(c.type, SequenceType) or v2_datatype(c.type.dtype) is None:
            raise RepositoryError(
                f"model {name!r} version {version} ({path}): column {c.name!r} is {c.type}, which the "
                "Open Inference Protocol cannot carry yet"
            )
    return ServedModel(name, version, path, platform, model, required, optional, outputs, ctx, frozenset(squeezed))


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


class ModelRepository:
    """The models served: ``{name: {version: ServedModel}}``."""

    def __init__(self, models: Sequence[ServedModel]) -> None:
        self._models: dict[str, dict[str, ServedModel]] = {}
        for m in models:
            self._models.setdefault(m.name, {})[m.version] = m

    @classmethod
    def open(cls, location: str | Path, ctx: MLContext | None = None) -> ModelRepository:
        """A model file (served as its file name without the extension, version 1) or a folder
        ``<name>/<version>/model.zip|model.onnx``."""
        ctx = ctx or MLContext()
        path = Path(location)
        if not path.exists():
            raise RepositoryError(f"{path} does not exist")
        if path.is_file():
            if path.suffix.lower() not in (".zip", ".onnx"):
                raise RepositoryError(f"{path} is neither a saved pipeline (.zip) nor an ONNX model (.onnx)")
            name = re.sub(r"[^A-Za-z0-9_.\-]", "_", path.stem).lstrip("._-") or "model"
            return cls([load_served_model(ctx, name[:128], "1", path)])
        if os.path.islink(path):
            raise RepositoryError(f"{path} is a link; give the repository folder itself")
        root = path.resolve()
        models: list[ServedModel] = []
        for model_dir in sorted(root.iterdir()):
            if model_dir.name.startswith("."):
                continue
            if model_dir.is_symlink() or not model_dir.is_dir():
                raise RepositoryError(f"{model_dir} is not a model folder (links are not followed)")
            name = _checked_name(model_dir.name, "model", root)
            for version_dir in sorted(model_dir.iterdir()):
                if version_dir.name.startswith("."):
                    continue
                if version_dir.is_symlink() or not version_dir.is_dir():
                    raise RepositoryError(f"{version_dir} is not a version folder (links are not followed)")
                version = _checked_name(version_dir.name, "version", model_dir)
                files = [version_dir / f for f in _MODEL_FILES if _regular_file_inside(version_dir / f, root)]
                if len(files) != 1:
                    raise RepositoryError(f"{version_dir} must hold exactly one of {', '.join(_MODEL_FILES)}")
                models.append(load_served_model(ctx, name, version, files[0]))
        if not models:
            raise RepositoryError(f"{root} holds no model (<name>/<version>/model.zip or model.onnx)")
        return cls(models)

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
