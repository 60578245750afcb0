"""A fitted pipeline on its way to worker processes: the saved model's bytes (or a path every
worker reads), the modules that register its custom mappings, and its threads (ONNX Runtime's
intra-op threads, the image steps' decoding threads and Arrow's CPU pool, in the worker). Each
worker process loads it once (:meth:`ShippedModel.load` keeps it per process) through the same
``ctx.model.load`` as everyone else: nothing is unpickled from a file."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from onnxpipe import DataView, MLContext, Schema, Transformer
from onnxpipe.errors import InvalidArgumentError, ModelLoadError
from onnxpipe.transforms.custom import CustomMappingTransformer
from onnxpipe.transforms.images import set_image_threads

__all__ = ["ModelLike", "ShippedModel", "threads_per_task"]

ModelLike = Any  # a ShippedModel, a path to a saved .zip or an .onnx file, the bytes of one, or a fitted Transformer

_loaded: dict[tuple[str, int | None], tuple[Transformer, Schema]] = {}  # per process, newest last
_LOADED_KEPT = 8  # models a worker process keeps loaded (jobs with other models evict the oldest)
_loading = threading.Lock()


def threads_per_task(tasks_at_once: int, cores: int | None = None) -> int:
    """ONNX Runtime threads for each of ``tasks_at_once`` tasks sharing ``cores`` (default: this
    machine's), so that tasks x threads <= cores."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, tasks_at_once))


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """What a worker needs to score with a fitted pipeline; small to pickle when ``path`` is set,
    otherwise it carries the saved model's bytes (sent once per worker by the engines)."""

    data: bytes | None
    path: str | None
    suffix: str  # ".zip" (a saved pipeline) or ".onnx" (a bare model)
    imports: tuple[str, ...] = ()  # modules that register the model's custom mappings
    intra_op_num_threads: int | None = None
    digest: str = ""

    @classmethod
    def of(
        cls, model: ModelLike, *, input_schema: Schema | None = None, intra_op_num_threads: int | None = None
    ) -> ShippedModel:
        """``model`` as a worker can load it. A fitted Transformer is saved (with ``input_schema``);
        a path is read by each worker (so it must be where every worker sees it); bytes are a
        saved .zip or an .onnx file's contents. A saved pipeline is loaded here once, to check it
        and to find the modules defining its custom mappings, which each worker imports before
        loading it (so they must be importable there, and registered here)."""
        if isinstance(model, ShippedModel):
            if intra_op_num_threads is None:
                return model
            return dataclasses.replace(model, intra_op_num_threads=intra_op_num_threads)
        imports: tuple[str, ...] = ()
        if isinstance(model, Transformer):
            if input_schema is None:
                raise InvalidArgumentError(
                    "shipping a fitted Transformer to workers needs its input schema (input_schema=...)"
                )
            imports = _custom_mapping_modules(model)
            buffer = io.BytesIO()
            MLContext().model.save(model, input_schema, buffer)
            data, suffix = buffer.getvalue(), ".zip"
        elif isinstance(model, bytes | bytearray | memoryview):
            data = bytes(model)
            suffix = ".zip" if data[:2] == b"PK" else ".onnx"
            imports = _modules_of_saved(io.BytesIO(data), suffix)
        elif isinstance(model, str | os.PathLike):
            p = Path(model)
            if p.suffix.lower() not in (".zip", ".onnx"):
                raise InvalidArgumentError(
                    f"model {str(p)!r}: expected a saved pipeline (.zip) or an ONNX model (.onnx)"
                )
            path, suffix = str(p.resolve()), p.suffix.lower()
            digest = hashlib.sha256(f"{path}:{p.stat().st_mtime_ns}:{p.stat().st_size}".encode()).hexdigest()
            return cls(None, path, suffix, _modules_of_saved(path, suffix), intra_op_num_threads, digest)
        else:
            raise InvalidArgumentError(
                "model must be a fitted Transformer, a path to a saved .zip or an .onnx file, or the bytes of one; "
                f"got {type(model).__name__}"
            )
        return cls(data, None, suffix, imports, intra_op_num_threads, hashlib.sha256(data).hexdigest())

    def load(self) -> tuple[Transformer, Schema]:
        """The model and its input schema, loaded once per process (and per thread count)."""
        key = (self.digest, self.intra_op_num_threads)
        found = _loaded.get(key)
        if found is not None:
            return found
        with _loading:
            found = _loaded.get(key)
            if found is None:
                found = _loaded[key] = self._load()
                while len(_loaded) > _LOADED_KEPT:
                    del _loaded[next(iter(_loaded))]
        return found

    def _load(self) -> tuple[Transformer, Schema]:
        for module in self.imports:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ModelLoadError(
                    f"this worker cannot import {module!r}, which registers the model's custom mapping "
                    f"({exc}); install it where the workers run, or put it on their PYTHONPATH"
                ) from exc
        if self.intra_op_num_threads is not None:  # every pool of the worker: tasks x threads <= cores
            set_image_threads(self.intra_op_num_threads)
            pa.set_cpu_count(self.intra_op_num_threads)  # Arrow's: Parquet decoding, casts
        ctx = MLContext()
        source: Any = self.path if self.data is None else io.BytesIO(self.data)
        if self.suffix == ".zip":
            return ctx.model.load(source, intra_op_num_threads=self.intra_op_num_threads)
        kwargs: dict[str, Any] = {"intra_op_num_threads": self.intra_op_num_threads}
        if self.data is None:
            step = ctx.transforms.apply_onnx_model(model_file=self.path, **kwargs)
        else:
            step = ctx.transforms.apply_onnx_model(model_bytes=self.data, **kwargs)
        return step, Schema([])

    def output_schema(self, input_schema: pa.Schema, columns: list[str] | None = None) -> pa.Schema:
        """The Arrow schema of the scored data for input data of ``input_schema`` (on the driver:
        loaded without the workers' thread settings, which would shrink this process's pools)."""
        model, _ = dataclasses.replace(self, intra_op_num_threads=None).load()
        schema = model.transform(MLContext().data.load_from_arrow(input_schema.empty_table())).arrow_schema
        return schema if columns is None else pa.schema([schema.field(n) for n in columns])

    def score(self, table: pa.Table | pa.RecordBatch, columns: list[str] | None = None) -> pa.Table:
        """``transform`` on one part of the data: every column (or ``columns``, in this order)."""
        model, _ = self.load()
        scored: DataView = model.transform(MLContext().data.load_from_arrow(table))
        out = scored.to_arrow()
        return out if columns is None else out.select(columns)


def _modules_of_saved(source: Any, suffix: str) -> tuple[str, ...]:
    """The custom-mapping modules of a saved pipeline, read by loading it here (which also checks
    the file before any worker does; its mappings must be registered in this process too)."""
    if suffix != ".zip":
        return ()
    model, _ = MLContext().model.load(source)
    return _custom_mapping_modules(model)


def _custom_mapping_modules(model: Transformer) -> tuple[str, ...]:
    """The modules defining the model's custom mapping functions, which a worker imports (their
    import registers the mappings): a function defined in ``__main__`` cannot be shipped."""
    modules: list[str] = []
    for step in model.steps:
        if not isinstance(step, CustomMappingTransformer):
            continue
        module = getattr(step.fn, "__module__", None)
        if module is None or module == "__main__":
            raise InvalidArgumentError(
                f"{step.step_name}: its function {getattr(step.fn, '__qualname__', step.fn)!r} is defined in "
                "__main__, which workers cannot import; define it (and its register_custom_mapping call) in a "
                "module importable on the workers"
            )
        modules.append(module)
    return tuple(dict.fromkeys(modules))
