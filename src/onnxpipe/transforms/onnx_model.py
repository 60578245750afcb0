"""``apply_onnx_model``: score a pretrained ONNX model inside a pipeline.

Column names are the model's tensor names (as in ML.NET); ``copy_columns`` renames around it.

Shapes. A model dimension that is symbolic, unnamed or negative is unknown (0 is a size). A row's tensor has the
model's shape with an unknown first dimension set to 1 (so ResNet's ``data [N,3,224,224]`` is a
``float32[1,3,224,224]`` column); a row may also be given without that leading 1, as a flat
array of the right size, or with any other unknown dimensions resolved from its own shape.
``shape_dictionary`` replaces unknown dimensions only.

Batching. When every input's first dimension is unknown and every output keeps it, rows are
stacked along it and scored ``batch_size`` at a time (rows whose resolved shapes differ go in
separate calls), which gives the same results as scoring row by row. Otherwise rows are scored
one at a time.

Untrusted models. The model is checked before ONNX Runtime opens it (see
:mod:`onnxpipe.runtime._guard`): external data only from regular files inside the model's folder,
no external data at all from ``model_bytes``, and at most ``max_bytes`` (default
:data:`~onnxpipe._limits.DEFAULT_MAX_BYTES`, 4 GiB) of declared tensors, of tensors constant
folding would produce, and of synthetic inputs. A model with loops (``Loop``, ``Scan``, anywhere)
is run once on a synthetic row at construction under a deadline of ``verify_timeout`` seconds
(default :data:`~onnxpipe._limits.DEFAULT_VERIFY_TIMEOUT`, 10 s; None: not run), so that one
that never ends is a ``ModelLoadError`` at once rather than a hang at the first batch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from onnxpipe import _validation
from onnxpipe._display import shown
from onnxpipe._limits import MAX_BATCH_ROWS, current_load_limits
from onnxpipe.core import TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.errors import (
    ColumnTypeError,
    ExecutionError,
    ExportError,
    InvalidArgumentError,
    ModelError,
    ModelLoadError,
    OnnxPipeWarning,
    SchemaError,
    ShapeError,
    TensorNotFoundError,
)
from onnxpipe.export import COLUMNS_METADATA_KEY, ExportContext
from onnxpipe.runtime._custom_ops import check_library_names
from onnxpipe.runtime._guard import (
    DEFAULT_MAX_BYTES,
    DEFAULT_VERIFY_TIMEOUT,
    check_feed,
    check_max_bytes,
    check_verify_timeout,
    quoted,
)
from onnxpipe.runtime._model import (
    ONNX_ELEMENT,
    BatchAxis,
    LoadedModel,
    ModelInfo,
    TensorInfo,
    batch_axes,
    describe_model,
    load_model,
    model_with_data,
    tensor_info,
)
from onnxpipe.runtime._session import (
    SCORING_RUN_OPTIONS,
    RunFunction,
    SessionSettings,
    create_session,
    run_function,
    run_with_deadline,
)
from onnxpipe.schema import (
    AnyRankTensorType,
    Column,
    ColumnType,
    DType,
    MapType,
    OptionalType,
    Schema,
    SequenceType,
    TensorType,
    column_type_from_json,
)

__all__ = ["OnnxTransformer"]

Shape = tuple[int | None, ...]
_BATCH_BYTES = 16 << 20  # default rows per ONNX Runtime call: about this many input bytes
_MAX_BATCH = 65536
_MLNET_UNUSED = (".unusedInput", ".unusedOutput")
_PROBE_BYTES = 64 << 20  # a synthetic row larger than this is not run just to learn output shapes


def _fmt(shape: Sequence[int | None]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _matches(given: Sequence[int | None], want: Sequence[int | None]) -> bool:
    return len(given) == len(want) and all(g is None or w is None or g == w for g, w in zip(given, want, strict=True))


def _column_map(mapping: Mapping[str, str] | None, parameter: str) -> dict[str, str] | None:
    """A {tensor: column} argument, checked and copied."""
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in mapping.items()
    ):
        raise _validation.invalid(
            "apply_onnx_model", parameter, "a mapping of tensor names to non-empty column names", mapping
        )
    return dict(mapping)


def _is_mlnet_unused(name: str) -> bool:
    return name.startswith("mlnet.") and name.endswith(_MLNET_UNUSED)


@dataclasses.dataclass(frozen=True)
class _Input:
    tensor: str
    column: str  # the column that feeds it (its own name unless input_columns maps it)
    info: TensorInfo
    row_shape: Shape  # per-row tensor shape (unknown first dimension set to 1)
    batch_axis: bool  # the first dimension is free: rows can be stacked along it


@dataclasses.dataclass(frozen=True)
class _Output:
    column: str
    tensor: str
    type: ColumnType  # the column type of one row
    row_shape: Shape | None  # None for sequences and maps
    known: bool  # a tensor whose dimensions are all known
    restored: bool = False  # the column type comes from onnxpipe's export metadata
    slot_names: tuple[str, ...] | None = None
    padding: str | int | None = None  # an onnxpipe export's pad value for ragged rows (set_padded_value)


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """What scoring needs for one input schema, worked out once: per input its fixed feed shape
    (None: resolved per row) and the dtype to cast to (None: none); rows per ONNX Runtime call."""

    schema: Schema
    feeds: tuple[tuple[_Input, tuple[int, ...] | None, np.dtype[Any] | None], ...]
    uniform: bool  # batched, and every input's feed shape is fixed
    rows_per_call: int
    fixed: bool = False  # every input's feed shape is fixed (batched or not)


def _resolve_row_shape(given: tuple[int, ...], want: Shape) -> tuple[int, ...] | None:
    """The concrete per-row feed shape for a value of shape ``given``, or None if it cannot fit."""
    if _matches(given, want):
        return given
    if want and want[0] == 1 and _matches(given, want[1:]):
        return (1, *given)
    size = math.prod(given)
    unknown = [i for i, d in enumerate(want) if d is None]
    known = math.prod(d for d in want if d is not None)
    if not unknown:
        return tuple(d for d in want if d is not None) if size == known else None
    if len(unknown) == 1 and known and size % known == 0 and len(given) == 1:
        return tuple(size // known if d is None else d for d in want)
    return None


@component("apply_onnx_model", catalog="transforms")
class OnnxTransformer(TrivialEstimator["OnnxTransformer"]):
    """Score a pretrained ONNX model (from ``model_file`` or ``model_bytes``): reads its input
    columns, adds its output columns (``ctx.transforms.apply_onnx_model``).

    Column names are the model's tensor names; all inputs / outputs are used when the names
    are omitted. ``shape_dictionary`` ({tensor: dims}, -1 for unknown) overrides unknown
    dimensions, and may restate an output declared with the wrong rank. ``gpu_device_id``
    (default: the context's) runs on that CUDA device; without ``fallback_to_cpu`` (default: the
    context's) a GPU that cannot be used is an error.
    ``batch_size`` rows are scored per ONNX Runtime call when the model's batch axis is free
    (default: about 16 MiB of input per call). ``model_label`` names the model in step names
    and messages when it comes from bytes.

    Columns are named after the tensors unless ``input_columns`` ({tensor: column}) says which
    column feeds a tensor and ``output_columns`` ({tensor: column}, or a prefix for every output)
    where an output goes; so two models whose tensors share names chain without ``copy_columns``.

    Rows are stacked along an input's first dimension when it is the batch: ``batch_dimension``
    states it (True / False for every input, or {tensor: bool}); by default it is inferred from
    the declared shapes (see :func:`onnxpipe.runtime.batch_axes`; ``onnxpipe inspect`` shows the
    decision and why). An input whose first dimension is not the batch takes one whole tensor per
    row, e.g. a ``[T, 576]`` sequence of frames.

    ``custom_op_libraries`` names ONNX Runtime custom-operator libraries the model needs:
    ``"onnxruntime-extensions"`` (string ops and tokenizers; ``pip install 'onnxpipe[extensions]'``)
    or one registered with :func:`onnxpipe.runtime.register_custom_op_library`. A saved model keeps
    the names, never paths.

    Sequence, map and optional inputs and outputs are columns of those kinds (a list, dict or
    None per row); a model with such an input scores one row per call. The model is run once on
    a synthetic row when opened: an output whose rank (or fixed size) contradicts the declared
    one is held as ONNX Runtime returns it, with a warning, or a ModelError under
    ``strict_shapes``.

    The model may come from anyone: it is checked before ONNX Runtime opens it. External data
    must be regular files inside the model's folder (none with ``model_bytes``); the tensors it
    declares, those constant folding would produce and the synthetic inputs used to check it
    must fit in ``max_bytes`` (default 4 GiB); a model with loops is run once on a synthetic row
    and must finish within ``verify_timeout`` seconds (default 10; None: not run). Refusals are
    ``ModelLoadError``. The model is parsed and opened at construction, so a bad model, name or
    shape fails at once; each process opens its own session on first use.
    """

    def __init__(
        self,
        model_file: str | Path | None = None,
        *,
        model_bytes: bytes | None = None,
        output_column_names: Sequence[str] | str | None = None,
        input_column_names: Sequence[str] | str | None = None,
        shape_dictionary: Mapping[str, Sequence[int | None]] | None = None,
        gpu_device_id: int | None = None,
        fallback_to_cpu: bool | None = None,
        inter_op_num_threads: int | None = None,
        intra_op_num_threads: int | None = None,
        batch_size: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify_timeout: float | None = DEFAULT_VERIFY_TIMEOUT,
        model_label: str | None = None,
        input_columns: Mapping[str, str] | None = None,
        output_columns: Mapping[str, str] | str | None = None,
        batch_dimension: bool | Mapping[str, bool] | None = None,
        custom_op_libraries: Sequence[str] = (),
        strict_shapes: bool = False,
    ) -> None:
        if isinstance(output_column_names, str):
            output_column_names = [output_column_names]
        if isinstance(input_column_names, str):
            input_column_names = [input_column_names]
        fallback_to_cpu = bool(fallback_to_cpu)  # None: the context's default, which is False outside a context
        self.max_bytes = check_max_bytes(max_bytes)
        self.verify_timeout = check_verify_timeout(verify_timeout)
        who = "apply_onnx_model"
        self.strict_shapes = _validation.boolean(strict_shapes, "strict_shapes", who)
        batch_size = _validation.integer(
            batch_size, "batch_size", who, low=1, high=MAX_BATCH_ROWS, unit="rows", optional=True
        )
        inter_op_num_threads = _validation.thread_count(inter_op_num_threads, "inter_op_num_threads", who)
        intra_op_num_threads = _validation.thread_count(intra_op_num_threads, "intra_op_num_threads", who)
        if model_label is not None and (not isinstance(model_label, str) or not 0 < len(model_label) <= 4096):
            raise _validation.invalid(who, "model_label", "a non-empty string of at most 4096 characters", model_label)
        self._arguments = {
            "output_column_names": None if output_column_names is None else list(output_column_names),
            "input_column_names": None if input_column_names is None else list(input_column_names),
            "shape_dictionary": None if shape_dictionary is None else {k: list(v) for k, v in shape_dictionary.items()},
            "inter_op_num_threads": inter_op_num_threads,
            "intra_op_num_threads": intra_op_num_threads,
            "batch_size": batch_size,
        }
        self._input_map = _column_map(input_columns, "input_columns")
        if batch_dimension is not None and not isinstance(batch_dimension, bool):
            if not isinstance(batch_dimension, Mapping) or not all(
                isinstance(k, str) and isinstance(v, bool) for k, v in batch_dimension.items()
            ):
                raise _validation.invalid(
                    who,
                    "batch_dimension",
                    "True, False, None (inferred) or a {input tensor: bool} mapping",
                    batch_dimension,
                )
            batch_dimension = dict(batch_dimension)
        self._batch_dimension = batch_dimension
        self._output_map = (
            output_columns if isinstance(output_columns, str) else _column_map(output_columns, "output_columns")
        )
        if isinstance(output_columns, str) and not output_columns:
            raise _validation.invalid(who, "output_columns", "a non-empty prefix or a {tensor: column} mapping", "")
        self._model: LoadedModel = load_model(model_file, model_bytes, max_bytes=self.max_bytes)
        if model_label is not None:
            self._model = dataclasses.replace(self._model, label=model_label)
        self.info: ModelInfo = describe_model(self._model.proto, str(model_file) if model_file else None)
        self._exported = _export_metadata(self.info.metadata)
        self.custom_op_libraries = check_library_names(custom_op_libraries, who)
        self.settings = SessionSettings(
            gpu_device_id, fallback_to_cpu, inter_op_num_threads, intra_op_num_threads, self.custom_op_libraries
        )
        self.batch_size = batch_size
        self.shape_dictionary = {k: _dims(k, v) for k, v in (shape_dictionary or {}).items()}
        overrides = self._check_shape_dictionary(self.shape_dictionary)
        self._check_tensor_names()
        self.batch_axes: dict[str, BatchAxis] = batch_axes(self.info, self._batch_dimension)
        self._inputs = self._plan_inputs(input_column_names, overrides)
        self._dummy_feeds = self._mlnet_dummy_feeds()
        self._batched = self._inputs != () and all(i.batch_axis for i in self._inputs)
        outputs = self._select_outputs(output_column_names)
        self._batched = (
            self._batched
            and all(
                (isinstance(t.column_type, SequenceType) and isinstance(t.column_type.element, MapType))  # ZipMap
                or (
                    isinstance(t.column_type, TensorType)
                    and t.dims is not None  # an output of unknown rank may not keep the batch axis
                    and t.shape[:1] == (None,)
                    and t.name not in overrides
                )
                for t in outputs
            )
        )
        inferred = {} if self._batched else self._infer_output_shapes()
        self._outputs = tuple(self._plan_output(t, overrides, inferred) for t in outputs)
        columns = [o.column for o in self._outputs]
        if len(set(columns)) != len(columns):
            raise InvalidArgumentError(f"{self.step_name}: two outputs would be written to one column: {columns}")
        self._lock = threading.Lock()
        self._session: ort.InferenceSession | None = None
        self._run_fn: RunFunction | None = None
        self._plans: dict[tuple[str, ColumnType], tuple[int, ...] | None] = {}
        # The plan for the latest input schema; a one-slot list, since the component itself is
        # frozen after construction and the plan is made at the first batch.
        self._prepared: list[_Prepared | None] = [None]
        self._output_tensors = [o.tensor for o in self._outputs]
        probed = self._verify(self._get_session())  # fail now, not at the first batch
        if probed is not None:
            self._outputs = self._reconcile(probed, overrides)

    # ---------------------------------------------------------------- construction helpers

    @property
    def step_name(self) -> str:
        return f"apply_onnx_model({shown(self._model.label)})"

    def _tensor_names(self) -> str:
        return f"inputs {[t.name for t in self.info.inputs]}, outputs {[t.name for t in self.info.outputs]}"

    def _check_shape_dictionary(self, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
        out: dict[str, Shape] = {}
        for name, shape in shapes.items():
            t = self.info.input(name) or self.info.output(name)
            if t is None:
                raise TensorNotFoundError(
                    f"{self.step_name}: shape_dictionary names tensor {name!r}, which the model does not "
                    f"have; the model's {self._tensor_names()}"
                )
            if not isinstance(t.column_type, TensorType):
                raise ShapeError(f"{self.step_name}: tensor {name!r} is a {t.type_text}, it has no shape to override")
            model = t.shape
            if self.info.input(name) is None and len(shape) != len(model):
                # An output declared with the wrong rank (some exporters write one): the stated
                # shape replaces it, and ONNX Runtime's actual output is checked against it.
                out[name] = tuple(shape)
                continue
            ok = len(shape) == len(model) and all(
                m is None or s is None or m == s for m, s in zip(model, shape, strict=True)
            )
            if not ok:
                raise ShapeError(
                    f"{self.step_name}: shape_dictionary gives tensor {name!r} the shape {_fmt(shape)}, which is "
                    f"not compatible with the model's shape {_fmt(model)}: only unknown dimensions may be "
                    "replaced (an output's rank may be restated)"
                )
            out[name] = tuple(s if s is not None else m for m, s in zip(model, shape, strict=True))
        return out

    def _plan_inputs(self, names: Sequence[str] | None, overrides: Mapping[str, Shape]) -> tuple[_Input, ...]:
        if names is None:
            names = [t.name for t in self.info.inputs if not _is_mlnet_unused(t.name)]
        if isinstance(names, str):
            names = [names]
        plans = []
        for name in names:
            t = self.info.input(name)
            if t is None:
                raise TensorNotFoundError(
                    f"{self.step_name}: input tensor {name!r} is not in the model; available inputs: "
                    f"{[i.name for i in self.info.inputs]}"
                    + (
                        f", initializers listed as inputs: {list(self.info.initializers_as_inputs)}"
                        if self.info.initializers_as_inputs
                        else ""
                    )
                )
            if t.column_type is None:
                raise ModelError(
                    f"{self.step_name}: input {name!r} has type {t.type_text}, which no onnxpipe column type holds"
                )
            shape = overrides.get(name, t.shape)
            free_batch = self.batch_axes[name].is_batch and len(shape) >= 1 and shape[0] is None
            row_shape = (1, *shape[1:]) if free_batch else shape
            plans.append(_Input(name, self._input_column(name), t, row_shape, free_batch))
        missing = [t.name for t in self.info.inputs if t.name not in names and not _is_mlnet_unused(t.name)]
        if missing:
            raise TensorNotFoundError(
                f"{self.step_name}: the model needs inputs {missing} too; name every input in "
                f"input_column_names (given {list(names)})"
            )
        columns = [p.column for p in plans]
        if len(set(columns)) != len(columns):
            raise InvalidArgumentError(f"{self.step_name}: input_columns feeds two tensors from one column: {columns}")
        if not all(p.batch_axis for p in plans):  # one call scores one row: no first dimension is pinned to 1
            plans = [
                dataclasses.replace(p, row_shape=overrides.get(p.tensor, p.info.shape), batch_axis=False) for p in plans
            ]
        return tuple(plans)

    def _input_column(self, tensor: str) -> str:
        return self._input_map.get(tensor, tensor) if self._input_map is not None else tensor

    def _mlnet_dummy_feeds(self) -> dict[str, np.ndarray]:
        return {
            t.name: self._synthetic(t.name, t.column_type, t.shape)
            for t in self.info.inputs
            if _is_mlnet_unused(t.name) and isinstance(t.column_type, TensorType)
        }

    def _synthetic(self, name: str, ct: TensorType, shape: Shape) -> np.ndarray:
        """Zeros (empty strings) of a shape the model declares, unknown dimensions 1; never more than max_bytes."""
        dims = tuple(1 if d is None else d for d in shape)
        check_feed(dims, _item_bytes(ct.dtype), self.max_bytes, f"{self.step_name}: input {quoted(name)}")
        value = np.zeros(dims, dtype=ct.dtype.numpy)
        if ct.dtype is DType.STRING:
            value[...] = ""
        return value

    def _verify(self, session: ort.InferenceSession) -> list[Any] | None:
        """Run the model once on a synthetic row under ``verify_timeout``; its outputs, or None.

        A model without Loop or Scan does work bounded by its size (checked against max_bytes);
        one with loops can run for as long as its trip counts say, so it must prove it ends. The
        outputs show the shapes ONNX Runtime really returns (:meth:`_reconcile`). A model may fail
        on made-up values (scoring real rows reports that), so ONNX Runtime's errors other than
        the deadline are ignored here; ONNX Runtime logs nothing.
        """
        tensors = all(isinstance(i.info.column_type, TensorType) for i in self._inputs)
        if self.verify_timeout is None or not (tensors or self._model.loops):
            return None
        if not self._model.loops and self._synthetic_bytes() > _PROBE_BYTES:
            return None  # only the shapes would be learnt: not worth the memory
        feeds = {
            i.tensor: self._synthetic(i.tensor, i.info.column_type, i.row_shape)
            for i in self._inputs
            if isinstance(i.info.column_type, TensorType)
        }
        total = sum(v.nbytes for v in feeds.values())
        check_feed((total,), 1, self.max_bytes, f"{self.step_name}: the synthetic row")
        try:
            results = run_with_deadline(
                session, self._output_tensors, {**self._dummy_feeds, **feeds}, self.verify_timeout, label=self.step_name
            )
        except ExecutionError:
            return None
        return results if tensors else None

    def _synthetic_bytes(self) -> int:
        total = 0
        for i in self._inputs:
            if isinstance(i.info.column_type, TensorType):
                total += _item_bytes(i.info.column_type.dtype) * math.prod(1 if d is None else d for d in i.row_shape)
        return total

    def _reconcile(self, probed: Sequence[Any], overrides: Mapping[str, Shape]) -> tuple[_Output, ...]:
        """The outputs, with the shapes ONNX Runtime returned on the synthetic row where they
        contradict the declared ones. Only what made-up values cannot change is trusted: with
        floating-point inputs only (integer inputs are often axes, counts or indices, whose
        values decide shapes), the rank; a fixed dimension only when every input's row shape was
        fully known too. One warning names each such output; under ``strict_shapes`` it is a
        ModelError. ``shape_dictionary`` wins."""
        if not all(
            isinstance(i.info.column_type, TensorType) and i.info.column_type.dtype.is_float for i in self._inputs
        ):
            return self._outputs
        exact = all(None not in i.row_shape for i in self._inputs)
        outputs = []
        for o, value in zip(self._outputs, probed, strict=True):
            declared, info = o.row_shape, self.info.output(o.tensor)
            if (
                o.restored
                or declared is None
                or o.tensor in overrides
                or not isinstance(value, np.ndarray)
                or not isinstance(o.type, TensorType)
                or info is None
                or info.dims is None  # declared without a rank: held flat, nothing to contradict
            ):
                outputs.append(o)
                continue
            actual = value.shape[1:] if self._batched else value.shape
            mine = declared[1:] if self._batched else declared
            if len(actual) == len(mine) and (not exact or _matches(actual, mine)):
                outputs.append(o)
                continue
            # The dimensions that agree are kept; after a change of rank none is known.
            if len(actual) == len(mine):
                kept = tuple(d if d == a else None for d, a in zip(mine, actual, strict=True))
            else:
                kept = (None,) * len(actual)
            shape = ((1,) if self._batched else ()) + kept
            message = (
                f"{self.step_name}: output {o.tensor!r} is declared {_fmt(declared)} per row, but ONNX Runtime "
                f"returns {_fmt(((1,) if self._batched else ()) + actual)} for a synthetic row"
            )
            stated = [-1, *actual] if self._batched else list(actual)
            fix = f"; state the real shape with shape_dictionary={{{o.tensor!r}: {stated}}}"
            if self.strict_shapes:
                raise ModelError(message + fix + " (strict_shapes=True)")
            warnings.warn(OnnxPipeWarning(f"{message}: using {_fmt(shape)}{fix}"), stacklevel=4)
            ct = TensorType(o.type.dtype, shape)
            outputs.append(dataclasses.replace(o, type=ct, row_shape=shape, known=ct.is_known_shape))
        return tuple(outputs)

    def _column_name(self, tensor: str) -> str:
        """The column an output tensor is written to: as ``output_columns`` says, else its name
        (without the suffix an export adds to names it shares with an input)."""
        chosen = self._output_map
        if isinstance(chosen, dict) and tensor in chosen:
            return chosen[tensor]
        if tensor in self._exported:
            name = self._exported[tensor].name
        elif tensor.endswith(".output"):
            name = tensor[: -len(".output")]
        elif self.info.producer_name == "ML.NET" and tensor.endswith(".onnx"):
            name = tensor[: -len(".onnx")]  # older ML.NET exports
        else:
            name = tensor
        return chosen + name if isinstance(chosen, str) else name

    def _check_tensor_names(self) -> None:
        """Every tensor that input_columns, output_columns and batch_dimension name exists."""
        inputs, outputs = [t.name for t in self.info.inputs], [t.name for t in self.info.outputs]
        for parameter, mapping, kind, tensors in (
            ("input_columns", self._input_map, "input", inputs),
            ("output_columns", self._output_map, "output", outputs),
            ("batch_dimension", self._batch_dimension, "input", inputs),
        ):
            unknown = [t for t in mapping if t not in tensors] if isinstance(mapping, dict) else []
            if unknown:
                raise TensorNotFoundError(
                    f"{self.step_name}: {parameter} names tensors {unknown} the model does not have; its "
                    f"{kind} tensors are {tensors}"
                )

    def _select_outputs(self, names: Sequence[str] | None) -> list[TensorInfo]:
        usable = [t for t in self.info.outputs if not _is_mlnet_unused(t.name)]
        if names is None:
            chosen = usable
        else:
            if isinstance(names, str):
                names = [names]
            chosen = []
            for name in names:
                t = next((o for o in usable if o.name == name or self._column_name(o.name) == name), None)
                if t is None:
                    raise TensorNotFoundError(
                        f"{self.step_name}: output {name!r} is not in the model; available outputs: "
                        f"{[self._column_name(o.name) for o in usable]}"
                    )
                chosen.append(t)
        for t in chosen:
            if t.column_type is None:
                raise ModelError(
                    f"{self.step_name}: output {t.name!r} has type {t.type_text}, which onnxpipe cannot hold; "
                    "select the other outputs with output_column_names"
                )
        return chosen

    def _infer_output_shapes(self) -> dict[str, Shape]:
        """Output shapes given the per-row input shapes, by ONNX shape inference (best effort)."""
        import onnx  # loaded already: the model was parsed (imported here to keep import onnxpipe light)

        proto = onnx.ModelProto()
        proto.CopyFrom(self._model.proto)
        del proto.graph.initializer[:]  # shapes only: weights are not needed
        rows = {i.tensor: i.row_shape for i in self._inputs}
        for vi in [*proto.graph.input, *proto.graph.output]:
            if not vi.type.HasField("tensor_type"):
                continue
            sizes = rows.get(vi.name, ())
            for k, dim in enumerate(vi.type.tensor_type.shape.dim):
                size = sizes[k] if k < len(sizes) else None
                if size is not None:
                    dim.Clear()
                    dim.dim_value = size
                elif dim.HasField("dim_value") and dim.dim_value < 0:
                    dim.Clear()  # ML.NET writes -1 for unknown: make it unknown for inference
            if vi in proto.graph.output:
                for dim in vi.type.tensor_type.shape.dim:
                    if not dim.HasField("dim_param"):
                        dim.Clear()
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
        except Exception:  # inference is an optimisation of the declared types, never required
            return {}
        return {o.name: tensor_info(o).shape for o in inferred.graph.output}

    def _plan_output(self, t: TensorInfo, overrides: Mapping[str, Shape], inferred: Mapping[str, Shape]) -> _Output:
        ct = t.column_type
        assert ct is not None
        if isinstance(ct, TensorType):
            shape = overrides.get(t.name, t.shape)
            if self._batched:
                shape = (1, *shape[1:])
            elif t.name in inferred and len(inferred[t.name]) == len(shape):
                shape = tuple(s if s is not None else i for s, i in zip(shape, inferred[t.name], strict=True))
            ct = TensorType(ct.dtype, shape)
        exported = self._exported.get(t.name)
        et = exported.type if exported is not None else None
        if (
            exported is not None
            and isinstance(et, TensorType)
            and isinstance(ct, TensorType)
            and self._batched
            and et.dtype is ct.dtype
            and (et.is_known_shape or len(ct.shape) == et.rank + 1)  # [N, *shape], unknown dims included
        ):
            return _Output(
                self._column_name(t.name),
                t.name,
                et,
                et.shape,
                et.is_known_shape,
                True,
                exported.slot_names,
                exported.padding,
            )
        if isinstance(ct, TensorType):
            return _Output(self._column_name(t.name), t.name, ct, ct.shape, ct.is_known_shape)
        return _Output(self._column_name(t.name), t.name, ct, None, False)

    # ---------------------------------------------------------------- session

    def _get_session(self) -> ort.InferenceSession:
        session = self._session
        if session is None:
            with self._lock:
                if self._session is None:
                    created = create_session(self._model.source, self.settings, self._model.label)
                    self._run_fn = run_function(created, self.settings)
                    self._session = created
                session = self._session
        return session

    def on_device(self, gpu_device_id: int | None, fallback_to_cpu: bool = False) -> OnnxTransformer:
        """The same step opened on another device (``None``: the CPU), e.g. after loading a saved model."""
        return self.reopened(gpu_device_id, fallback_to_cpu)

    def reopened(
        self, gpu_device_id: int | None, fallback_to_cpu: bool = False, intra_op_num_threads: int | None = None
    ) -> OnnxTransformer:
        """The same step opened on another device (``None``: the CPU) and, when given, with another
        number of ONNX Runtime intra-op threads."""
        state = {**self.get_state(), "gpu_device_id": gpu_device_id, "fallback_to_cpu": fallback_to_cpu}
        if intra_op_num_threads is not None:
            state["intra_op_num_threads"] = intra_op_num_threads
        return OnnxTransformer(**state)

    @property
    def providers(self) -> list[str]:
        """The ONNX Runtime execution providers in use (e.g. after a GPU fell back to CPU)."""
        return list(self._get_session().get_providers())

    @property
    def batched(self) -> bool:
        """Whether rows are stacked along the model's batch axis (else scored one by one)."""
        return self._batched

    @property
    def input_column_names(self) -> list[str]:
        return [i.column for i in self._inputs]

    @property
    def output_column_names(self) -> list[str]:
        return [o.column for o in self._outputs]

    @property
    def model_bytes(self) -> bytes:
        """The serialized model (with external data inlined when it was loaded from a path).

        External data is read by :func:`~onnxpipe.runtime._model.model_with_data`, which checks
        every location again (inside the model's folder, a regular file, within max_bytes).
        """
        if isinstance(self._model.source, bytes):
            return self._model.source
        proto = model_with_data(self._model, self.max_bytes)
        try:
            data: bytes = proto.SerializeToString()
        except ValueError as exc:  # protobuf refuses to serialize 2 GiB or more
            raise ModelLoadError(f"{self.step_name}: the model cannot be held as bytes: {shown(exc)}") from None
        return data

    def get_state(self) -> dict[str, Any]:
        # The model bytes and the arguments, not the parsed model or the session: rebuilding runs
        # the constructor, so a saved or pickled transformer is validated like a new one. The
        # device settings stay with the process that loads it; the model's label is kept aside.
        return {
            "model_file": None,
            "model_bytes": self.model_bytes,
            **self._arguments,
            "input_columns": self._input_map,
            "output_columns": self._output_map,
            "batch_dimension": self._batch_dimension,
            "custom_op_libraries": self.custom_op_libraries,
            "strict_shapes": self.strict_shapes,
            "gpu_device_id": None,
            "fallback_to_cpu": False,
            "max_bytes": self.max_bytes,
            "verify_timeout": self.verify_timeout,
            "model_label": self._model.label,
        }

    # version 2 added input_columns, output_columns, batch_dimension, custom_op_libraries; 3 strict_shapes
    state_version = 3

    @classmethod
    def upgrade_state(cls, state: dict[str, Any], version: int) -> dict[str, Any]:
        if version == 1:
            state = {
                **state,
                "input_columns": None,
                "output_columns": None,
                "batch_dimension": None,
                "custom_op_libraries": (),
            }
            version = 2
        if version == 2:
            return {**state, "strict_shapes": False}
        return super().upgrade_state(state, version)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], version: int | None = None) -> OnnxTransformer:
        if state.get("model_file") is not None:  # a saved model never opens another file
            raise ModelLoadError("apply_onnx_model: the state refers to a model file instead of holding its bytes")
        limits = current_load_limits()
        if limits is not None:  # a file may lower the loader's limits, never raise or lift them
            saved = check_max_bytes(state.get("max_bytes", limits.max_bytes))
            state = {**state, "max_bytes": min(saved, limits.max_bytes), "verify_timeout": limits.verify_timeout}
        return super().from_state(state, version)

    @classmethod
    def from_legacy_attributes(cls, attributes: dict[str, Any]) -> OnnxTransformer:
        # Format 1 kept the constructor's arguments and the label, not attributes.
        arguments = dict(attributes)
        arguments["model_label"] = arguments.pop("label", None)
        defaults = {
            "model_file": None,
            "gpu_device_id": None,
            "fallback_to_cpu": False,
            "max_bytes": DEFAULT_MAX_BYTES,
            "verify_timeout": DEFAULT_VERIFY_TIMEOUT,
        }
        return cls.from_state({**defaults, **arguments}, 1)

    def __repr__(self) -> str:
        return (
            f"OnnxTransformer({self._model.label!r}, inputs={self.input_column_names}, "
            f"outputs={self.output_column_names}, batched={self._batched})"
        )

    # ---------------------------------------------------------------- schema

    def _feed_shape(self, inp: _Input, col: Column) -> tuple[int, ...] | None:
        """Check a column against an input; return its fixed per-row feed shape if known."""
        key = (col.name, col.type)
        if key in self._plans:
            return self._plans[key]
        ct = col.type
        where = f"{self.step_name}: column {col.name!r} feeds input tensor {inp.tensor!r}"
        want = inp.info.column_type
        if not isinstance(want, TensorType):  # a sequence, map or optional: fed as it is, row by row
            assert want is not None  # _plan_inputs refused inputs of other types
            if not _accepts(want, ct):
                raise ColumnTypeError(f"{where}, which expects {inp.info.type_text}; the column is {ct}")
            self._plans[key] = None
            return None
        if not isinstance(ct, TensorType):
            raise ColumnTypeError(f"{where}, which expects {want.dtype.value}{_fmt(inp.row_shape)}; the column is {ct}")
        if not ct.dtype.converts_safely_to(want.dtype):
            raise ColumnTypeError(
                f"{where}, which expects element type {want.dtype.value}; the column is {ct.dtype.value} "
                f"({ct}). Convert the column first "
                "(automatic conversions: numbers into floats, integers into wider integers)"
            )
        plan: tuple[int, ...] | None = None
        if ct.is_known_shape:
            plan = _resolve_row_shape(ct.shape, inp.row_shape)  # type: ignore[arg-type]
            if plan is None:
                raise ShapeError(
                    f"{where}, which expects a row of shape {_fmt(inp.row_shape)} (a leading 1 is optional); "
                    f"the column's rows have shape {_fmt(ct.shape)}"
                )
        elif not (ct.rank == 1 or ct.rank == len(inp.row_shape) or ct.rank + 1 == len(inp.row_shape)):
            raise ShapeError(
                f"{where}, which expects a row of shape {_fmt(inp.row_shape)}; "
                f"the column's rows have shape {_fmt(ct.shape)}"
            )
        self._plans[key] = plan
        return plan

    def output_schema(self, input_schema: Schema) -> Schema:
        for inp in self._inputs:
            self._feed_shape(inp, input_schema.require(inp.column, self.step_name))
        return input_schema.with_columns(
            *(Column(o.column, o.type, o.slot_names or self._slot_names(o.column)) for o in self._outputs)
        )

    def _slot_names(self, column: str) -> tuple[str, ...] | None:
        node = next((n for n in self._model.proto.graph.node if n.name == f"mlnet.{column}.SlotNames"), None)
        if node is None:
            return None
        attr = next((a for a in node.attribute if a.name == "keys_strings"), None)
        if attr is None:
            return None
        try:
            return tuple(s.decode() for s in attr.strings)
        except UnicodeDecodeError:
            raise ModelLoadError(
                f"{self.step_name}: the slot names of column {quoted(column)} (node {quoted(node.name)}) are not "
                "valid UTF-8 text"
            ) from None

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [i.column for i in self._inputs]

    # ---------------------------------------------------------------- ONNX export

    @property
    def onnx_min_opset(self) -> int:  # type: ignore[override]
        return max(13, self.info.opsets.get("ai.onnx", 13))

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        """Inline the pretrained graph (names prefixed, opset converted up to the export's).

        A model with a free batch axis takes whole columns; one that scores a row at a time (a
        fixed batch of 1, no batch axis) runs in an ONNX Loop over the rows, each row reshaped to
        its input as scoring does and each result stacked back into ``[N, *row_shape]``.
        """
        import onnx
        import onnx.version_converter

        proto = onnx.load_model_from_string(self.model_bytes)
        if self.info.opsets.get("ai.onnx", ctx.opset) < ctx.opset:
            try:
                proto = onnx.version_converter.convert_version(proto, ctx.opset)
            except Exception as exc:
                raise ExportError(
                    f"{self.step_name}: cannot convert the model from opset {self.info.opsets['ai.onnx']} to "
                    f"{ctx.opset}: {exc}"
                ) from None
        for domain, version in self.info.opsets.items():
            if domain != "ai.onnx":
                ctx.require_opset(domain, version)
        plans = self._prepare(input_schema).feeds
        for inp, _, _ in plans:
            if not isinstance(inp.info.column_type, TensorType):
                raise ExportError(
                    f"{self.step_name} cannot be exported to ONNX: input tensor {inp.tensor!r} is a "
                    f"{inp.info.type_text}; only tensor inputs are exported"
                )
        if not self._batched:
            self._export_rows(ctx, input_schema, proto.graph, plans)
            return
        feeds = {
            inp.tensor: self._export_feed(ctx, inp, input_schema[inp.column].type, shape, cast, ctx.value(inp.column))
            for inp, shape, cast in plans
        }
        for name, dummy in self._dummy_feeds.items():
            feeds[name] = ctx.add_initializer(dummy, name)
        produced = ctx.add_graph(proto.graph, ctx.unique("pretrained") + "/", feeds)
        for o in self._outputs:
            value = produced[o.tensor]
            if o.row_shape is not None and not o.restored:  # [N, *shape[1:]] -> rows of (1, *shape[1:])
                assert isinstance(o.type, TensorType)
                value = _with_row_axis(ctx, value, o.type.dtype)
            elif o.row_shape is not None and o.known:  # an onnxpipe export: its own [N, *shape], scalars [N, 1]
                dims = np.array([0, *(o.row_shape or (1,))], np.int64)
                (value,) = ctx.add_node("Reshape", [value, ctx.add_initializer(dims, "shape")])
            ctx.set_value(o.column, value)

    def _export_feed(
        self,
        ctx: ExportContext,
        inp: _Input,
        given: ColumnType,
        fixed: tuple[int, ...] | None,
        cast: np.dtype[Any] | None,
        value: str,
        *,
        batched: bool = True,
    ) -> str:
        """The nodes that make a column's value the input tensor's, as scoring reshapes each row
        (:func:`_resolve_row_shape`): ``value`` is the whole ``[N, *S]`` column when ``batched``
        (the batch axis stands for the input's leading 1), one row ``[*S]`` inside the row loop."""
        want = inp.row_shape
        assert isinstance(given, TensorType)
        rank = len(given.shape or (1,))  # a scalar column is [N, 1]
        lead = [0] if batched else []  # Reshape's 0 keeps the batch axis N
        inner = want[1:] if batched else want
        known = (fixed[1:] if batched else fixed) if fixed is not None else None
        if known is None and None not in inner:
            known = tuple(d for d in inner if d is not None)
        if known is not None:  # the row's size decides: any shape of that size, as scoring
            target = ctx.add_initializer(np.array([*lead, *known], np.int64), "shape")
            (value,) = ctx.add_node("Reshape", [value, target])
        elif batched and rank == len(want):  # rows (1, *rest): the batch axis replaces the 1
            (value,) = ctx.add_node("Squeeze", [value, ctx.add_initializer(np.array([1], np.int64), "axes")])
        elif not batched and rank == len(want) - 1 and want[:1] == (1,):  # a row without the leading 1
            (value,) = ctx.add_node("Unsqueeze", [value, ctx.add_initializer(np.array([0], np.int64), "axes")])
        elif rank == len(inner):
            pass  # the input's own shape: fed as it is
        elif rank == 1 and inner.count(None) == 1:  # a flat row: the unknown dimension follows from its size
            target = ctx.add_initializer(np.array([*lead, *(-1 if d is None else d for d in inner)], np.int64))
            (value,) = ctx.add_node("Reshape", [value, target])
        else:
            raise ExportError(
                f"{self.step_name} cannot be exported to ONNX: column {inp.column!r} ({given}) feeds input tensor "
                f"{inp.tensor!r}, whose rows are {_fmt(want)}: with several unknown dimensions a graph can only "
                f"feed a column of the input's rank ({len(want)} dimensions, or {len(want) - 1} without its "
                "leading 1) or a flat one when a single dimension is unknown"
            )
        if cast is not None:
            (value,) = ctx.add_node("Cast", [value], to=ONNX_ELEMENT[DType.from_numpy(cast)])
        return value

    def _export_rows(
        self,
        ctx: ExportContext,
        input_schema: Schema,
        graph: Any,  # an onnx.GraphProto (onnx is imported when needed)
        plans: Sequence[tuple[_Input, tuple[int, ...] | None, np.dtype[Any] | None]],
    ) -> None:
        """A model that scores one row at a time, exported as ONNX Runtime scores it: in a Loop over
        the N rows (:meth:`ExportContext.add_row_loop`), one call of the pretrained graph per row.

        A Loop stacks tensors only. A ZipMap output (one map per row) is made after the Loop, from
        its stacked input; any other sequence or map output cannot be exported.
        """
        import onnx

        if not plans:
            raise ExportError(
                f"{self.step_name} cannot be exported to ONNX: the model has no inputs, so a graph cannot tell "
                "how many rows it scores"
            )
        producers = {o: node for node in graph.node for o in node.output}
        results: list[tuple[_Output, str, TensorType, Any]] = []  # output, tensor, its type, its ZipMap node
        for o in self._outputs:
            node = producers.get(o.tensor)
            if isinstance(o.type, TensorType):
                results.append((o, o.tensor, o.type, None))
            elif node is not None and node.op_type == "ZipMap" and node.domain == "ai.onnx.ml":
                labels = next(a for a in node.attribute if a.name.startswith("classlabels_"))
                count = len(labels.ints) or len(labels.strings)
                results.append((o, node.input[0], TensorType(DType.FLOAT32, (count,)), node))
            else:
                raise ExportError(
                    f"{self.step_name} cannot be exported to ONNX: the model scores one row at a time, which "
                    f"the export runs in a Loop over the rows, and a Loop can only stack tensors: output "
                    f"{o.tensor!r} is a {o.type} (leave it out with output_column_names)"
                )

        def body(rows: list[str]) -> list[str]:
            feeds = {
                inp.tensor: self._export_feed(ctx, inp, input_schema[inp.column].type, shape, cast, row, batched=False)
                for (inp, shape, cast), row in zip(plans, rows, strict=True)
            }
            for name, dummy in self._dummy_feeds.items():
                feeds[name] = ctx.add_initializer(dummy, name)
            tensors = [tensor for _, tensor, _, _ in results]
            produced = ctx.add_graph(graph, ctx.unique("pretrained") + "/", feeds, tensors)
            values = []
            for _, tensor, ct, zipmap in results:
                value = produced[tensor]
                # ZipMap's input is this row's [1, C] probabilities (a row giving several fails rather than
                # mixing rows); a vector of unknown length is how scoring holds an output of unknown rank.
                if zipmap is not None or ct.shape == (None,):
                    target = np.array([-1 if d is None else d for d in ct.shape], np.int64)
                    (value,) = ctx.add_node("Reshape", [value, ctx.add_initializer(target, "shape")])
                values.append(value)
            return values

        stacked = ctx.add_row_loop(
            [ctx.value(inp.column) for inp, _, _ in plans], body, [ct for _, _, ct, _ in results], "pretrained_rows"
        )
        for (o, _, ct, zipmap), value in zip(results, stacked, strict=True):
            if zipmap is not None:
                attributes = {a.name: onnx.helper.get_attribute_value(a) for a in zipmap.attribute}
                (value,) = ctx.add_node("ZipMap", [value], domain="ai.onnx.ml", **attributes)
            elif ct.is_scalar:  # a scalar column is [N, 1]
                (value,) = ctx.add_node("Unsqueeze", [value, ctx.add_initializer(np.array([1], np.int64), "axes")])
            ctx.set_value(o.column, value)

    # ---------------------------------------------------------------- scoring

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        session = self._session or self._get_session()
        if n_rows == 0:
            return {o.column: _empty(o.type) for o in self._outputs}
        prepared = self._prepared[0]
        if prepared is None or prepared.schema is not input_schema:
            prepared = self._prepared[0] = self._prepare(input_schema)  # once per input schema
        if prepared.uniform:
            if n_rows == 1:
                return self._score_one(session, prepared, columns)
            return self._score_uniform(session, prepared, columns, n_rows)
        if n_rows == 1 and prepared.fixed:  # the engine's single row, on a model without a batch axis
            return self._score_fixed_row(session, prepared, columns)
        plans = [(inp, shape, columns[inp.column]) for inp, shape, _ in prepared.feeds]
        return self._score_grouped(session, plans, n_rows, prepared.rows_per_call)

    def _prepare(self, input_schema: Schema) -> _Prepared:
        feeds: list[tuple[_Input, tuple[int, ...] | None, np.dtype[Any] | None]] = []
        row_bytes = 0
        for inp in self._inputs:
            shape = self._feed_shape(inp, input_schema[inp.column])
            want = inp.info.column_type
            given = input_schema[inp.column].type
            if not isinstance(want, TensorType) or not isinstance(given, TensorType):
                feeds.append((inp, None, None))  # converted row by row (_feed_value)
                row_bytes += 1024
                continue
            cast = None if given.dtype is want.dtype else want.dtype.numpy
            feeds.append((inp, shape, cast))
            row_bytes += _item_bytes(want.dtype) * math.prod(shape or (256,))
        step = self.batch_size or max(1, min(_MAX_BATCH, _BATCH_BYTES // max(row_bytes, 1)))
        fixed = all(shape is not None for _, shape, _ in feeds)
        return _Prepared(input_schema, tuple(feeds), self._batched and fixed, step, fixed)

    def _score_one(
        self, session: ort.InferenceSession, prepared: _Prepared, columns: Mapping[str, ColumnValues]
    ) -> dict[str, ColumnValues]:
        """The prediction engine's path: one row, fixed feed shapes."""
        feeds = {}
        for inp, shape, cast in prepared.feeds:
            arr: np.ndarray = columns[inp.column]  # type: ignore[assignment]  # known shapes are arrays
            if arr.shape != shape:  # the engine's one-row views mostly have the feed's shape already
                arr = arr.reshape(shape)
            feeds[inp.tensor] = arr if cast is None else _astype(arr, cast)
        results = self._run_one(session, feeds)
        out: dict[str, ColumnValues] = {}
        for o, value in zip(self._outputs, results):  # noqa: B905 - ORT returns one value per output
            if not o.known or o.restored or value.shape != o.row_shape:
                return self._split_batch(results, 1)  # the general path checks, restores and reports
            out[o.column] = value[np.newaxis]
        return out

    def _score_fixed_row(
        self, session: ort.InferenceSession, prepared: _Prepared, columns: Mapping[str, ColumnValues]
    ) -> dict[str, ColumnValues]:
        """The prediction engine's path on a model without a batch axis (e.g. a ZipMap
        classifier): one row, fixed feed shapes, ``_collect_row`` only when an output needs it."""
        feeds = {}
        for inp, shape, cast in prepared.feeds:
            arr = columns[inp.column][0]  # fixed shapes: rows of an array (numpy scalars for rank 0)
            if type(arr) is not np.ndarray:
                feeds[inp.tensor] = _cast(np.asarray(arr).reshape(shape), inp)
                continue
            if arr.shape != shape:
                arr = arr.reshape(shape)
            feeds[inp.tensor] = arr if cast is None else _astype(arr, cast)
        results = self._run_one(session, feeds)
        out: dict[str, ColumnValues] = {}
        for o, value in zip(self._outputs, results):  # noqa: B905 - ORT returns one value per output
            if o.row_shape is None:  # a sequence, map or optional: the value is the row
                out[o.column] = [value]
            elif o.known and not o.restored and value.shape == o.row_shape:
                out[o.column] = value[np.newaxis]
            else:
                return self._collect_row(results)  # checks and reports shapes
        return out

    def _score_uniform(
        self, session: ort.InferenceSession, prepared: _Prepared, columns: Mapping[str, ColumnValues], n: int
    ) -> dict[str, ColumnValues]:
        """Every row has the same feed shape: reshape whole columns, no per-row work."""
        feeds = {}
        for inp, shape, cast in prepared.feeds:
            arr = np.asarray(columns[inp.column]).reshape((n, *shape[1:]))  # type: ignore[index, arg-type]
            feeds[inp.tensor] = arr if cast is None else _astype(arr, cast)
        step = prepared.rows_per_call
        if n <= step:
            return self._split_batch(self._run(session, feeds), n)
        parts = [
            self._split_batch(self._run(session, {k: v[s : s + step] for k, v in feeds.items()}), min(step, n - s))
            for s in range(0, n, step)
        ]
        return _concat_parts(parts, self._outputs)

    def _score_grouped(
        self,
        session: ort.InferenceSession,
        plans: Sequence[tuple[_Input, tuple[int, ...] | None, ColumnValues]],
        n: int,
        step: int,
    ) -> dict[str, ColumnValues]:
        """Resolve each row's shapes; score runs of equal shapes together (or one by one)."""
        rows: list[dict[str, np.ndarray]] = []
        for r in range(n):
            row = {}
            for inp, shape, values in plans:
                want = inp.info.column_type
                if not isinstance(want, TensorType):
                    assert want is not None  # _plan_inputs refused inputs of other types
                    row[inp.tensor] = _feed_value(values[r], want)
                    continue
                value = np.asarray(values[r])
                target = shape or _resolve_row_shape(value.shape, inp.row_shape)
                if target is None:
                    raise ShapeError(
                        f"{self.step_name}: row {r} of column {inp.column!r} has shape {_fmt(value.shape)}, input "
                        f"tensor {inp.tensor!r} expects {_fmt(inp.row_shape)} (a leading 1 is optional)"
                    )
                row[inp.tensor] = _cast(value.reshape(target), inp)
            rows.append(row)
        if not self._batched:
            return _concat_parts([self._collect_row(self._run(session, row)) for row in rows], self._outputs)
        parts = []
        start = 0
        while start < n:
            shapes = {k: v.shape for k, v in rows[start].items()}
            end = start + 1
            while end < n and end - start < step and all(rows[end][k].shape == s for k, s in shapes.items()):
                end += 1
            feeds = {k: np.concatenate([rows[i][k] for i in range(start, end)]) for k in shapes}
            parts.append(self._split_batch(self._run(session, feeds), end - start))
            start = end
        return _concat_parts(parts, self._outputs)

    def _run_one(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[Any]:
        """:meth:`_run` without its per-call lookups: the engine's single-row paths."""
        run = self._run_fn
        if run is None or self._dummy_feeds:
            return self._run(session, feeds)
        try:
            results: list[Any] = run(self._output_tensors, feeds, SCORING_RUN_OPTIONS)
            return results
        except Exception as exc:
            raise self._run_failed(exc, feeds) from None

    def _run(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[Any]:
        if self._dummy_feeds:
            feeds = {**self._dummy_feeds, **feeds}
        try:
            run = self._run_fn or session.run
            results: list[Any] = run(self._output_tensors, feeds, SCORING_RUN_OPTIONS)
            return results
        except Exception as exc:
            raise self._run_failed(exc, feeds) from None

    def _run_failed(self, exc: Exception, feeds: Mapping[str, Any]) -> ExecutionError:
        shapes = {k: _describe(v) for k, v in feeds.items()}
        return ExecutionError(f"{self.step_name}: ONNX Runtime failed on inputs with shapes {shapes}: {exc}")

    def _split_batch(self, results: list[Any], n: int) -> dict[str, ColumnValues]:
        """Per-row column values from the outputs of one call over ``n`` stacked rows."""
        out: dict[str, ColumnValues] = {}
        for o, value in zip(self._outputs, results):  # noqa: B905 - ORT returns one value per output
            if o.row_shape is None:  # a sequence: one element per row
                if len(value) != n:
                    raise self._lost_batch(o, len(value), n)
                out[o.column] = [[v] for v in value]
                continue
            shape = value.shape
            if not shape or shape[0] != n:
                raise self._lost_batch(o, shape[0] if shape else 0, n)
            if o.restored and not o.known:  # e.g. an image column: per-row arrays of the batch's shape
                self._check_output_shape(o, shape[1:])
                out[o.column] = list(value) if o.padding is None else [_unpadded(r, o.padding) for r in value]
                continue
            if o.restored:  # an onnxpipe export: [N, *shape] (scalars [N, 1]) back to the column type
                if value.size != n * math.prod(o.row_shape):  # type: ignore[arg-type]
                    self._check_output_shape(o, shape[1:])
                out[o.column] = value.reshape((n, *o.row_shape))
                continue
            rows = value.reshape((n, 1, *shape[1:]))
            if rows.shape[1:] != o.row_shape:
                self._check_output_shape(o, rows.shape[1:])
            out[o.column] = rows if o.known else list(rows)
        return out

    def _collect_row(self, results: list[Any]) -> dict[str, ColumnValues]:
        out: dict[str, ColumnValues] = {}
        for o, value in zip(self._outputs, results, strict=True):
            if isinstance(o.type, TensorType):
                arr = np.asarray(value)
                if o.type.is_known_shape:
                    if arr.shape != o.type.shape:
                        self._check_output_shape(o, arr.shape)
                    out[o.column] = arr[np.newaxis]
                elif arr.ndim == o.type.rank:
                    out[o.column] = [arr]
                elif o.type.shape == (None,):  # declared with unknown rank: held flat
                    out[o.column] = [arr.reshape(-1)]
                else:
                    self._check_output_shape(o, arr.shape)
            else:
                out[o.column] = [value]
        return out

    def _check_output_shape(self, o: _Output, shape: tuple[int, ...]) -> None:
        assert isinstance(o.type, TensorType)
        if not _matches(shape, o.type.shape):
            stated = [-1, *shape[1:]] if shape and shape[0] == 1 else list(shape)
            raise ExecutionError(
                f"{self.step_name}: output {o.tensor!r} came back with shape {_fmt(shape)} per row, but the model "
                f"declares {_fmt(o.type.shape)}; state the real shape with shape_dictionary={{{o.tensor!r}: "
                f"{stated}}} (or fix the model's declared output shape)"
            )

    def _lost_batch(self, o: _Output, got: int, n: int) -> ExecutionError:
        return ExecutionError(
            f"{self.step_name}: output {o.tensor!r} has {got} rows for a batch of {n}: the model does not keep "
            "the batch axis, so its rows cannot be stacked; pass batch_size=1 to score row by row"
        )


@dataclasses.dataclass(frozen=True)
class _ExportedColumn:
    name: str
    type: ColumnType
    slot_names: tuple[str, ...] | None
    padding: str | int | None = None


def _unpadded(row: np.ndarray, pad: str | int) -> np.ndarray:
    """A ragged row an onnxpipe export padded to the batch's longest: without its trailing ``pad``."""
    if row.ndim != 1:
        return row
    kept = np.flatnonzero(row != pad)
    return row[: kept[-1] + 1 if kept.size else 0]


def _export_metadata(metadata: Mapping[str, str]) -> dict[str, _ExportedColumn]:
    """Output tensor -> column, from the metadata onnxpipe writes into its exports."""
    raw = metadata.get(COLUMNS_METADATA_KEY)
    if raw is None:
        return {}
    try:
        entries = json.loads(raw)
        return {
            e["tensor"]: _ExportedColumn(
                e["name"],
                column_type_from_json(e["type"]),
                tuple(e["slot_names"]) if "slot_names" in e else None,
                e["padding"] if isinstance(e.get("padding"), str | int) else None,
            )
            for e in entries
        }
    except (ValueError, KeyError, TypeError, SchemaError, RecursionError):
        return {}  # metadata from elsewhere or damaged: fall back to the model's own types


def _dims(name: str, dims: Sequence[int | None]) -> Shape:
    if isinstance(dims, str | bytes) or not all(
        d is None or (isinstance(d, int | np.integer) and d != 0) for d in dims
    ):
        raise InvalidArgumentError(
            f"shape_dictionary[{name!r}] = {dims!r}: give a list of dimensions, each a positive size or "
            "-1 / None for unknown"
        )
    return tuple(None if d is None or d < 0 else int(d) for d in dims)


def _item_bytes(dtype: DType) -> int:
    """Bytes per value, for sizing batches and synthetic rows (a string counts as 64)."""
    return 64 if dtype is DType.STRING else dtype.numpy.itemsize


def _describe(value: Any) -> Any:
    """A feed's shape for messages: an array's shape, a sequence's length, a map's size."""
    if isinstance(value, np.ndarray):
        return value.shape
    if isinstance(value, list | dict):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def _accepts(want: ColumnType, given: ColumnType) -> bool:
    """Whether a column of type ``given`` can feed a model input of the non-scalar kind ``want``
    (sequence, map, optional): same structure, element types equal or safely converted, shapes
    compatible where both are declared (ONNX Runtime checks each value's shape)."""
    if isinstance(want, TensorType):
        if not isinstance(given, TensorType) or not given.dtype.converts_safely_to(want.dtype):
            return False
        if isinstance(want, AnyRankTensorType) or isinstance(given, AnyRankTensorType):
            return True
        return _matches(given.shape, want.shape)
    if isinstance(want, OptionalType):  # a present value feeds an optional too
        return _accepts(want.element, given.element if isinstance(given, OptionalType) else given)
    if isinstance(want, SequenceType):
        return isinstance(given, SequenceType) and _accepts(want.element, given.element)
    return isinstance(given, MapType) and given.key is want.key and _accepts(want.value, given.value)


def _feed_value(value: Any, want: ColumnType) -> Any:
    """One row's value of a sequence, map or optional input, its tensors in the input's element type."""
    if value is None:
        return None
    if isinstance(want, TensorType):
        if want.dtype is DType.STRING:
            return np.asarray(value, dtype=object)
        arr = np.asarray(value)
        return arr if arr.dtype == want.dtype.numpy else _astype(arr, want.dtype.numpy)
    if isinstance(want, OptionalType):
        return _feed_value(value, want.element)
    if isinstance(want, SequenceType):
        return [_feed_value(x, want.element) for x in value]
    return dict(value)


def _empty(ct: ColumnType) -> ColumnValues:
    if isinstance(ct, TensorType) and ct.is_known_shape:
        return np.zeros((0, *ct.fixed_shape), dtype=ct.dtype.numpy)
    return []


def _cast(arr: np.ndarray, inp: _Input) -> np.ndarray:
    want = inp.info.column_type
    assert isinstance(want, TensorType)
    dtype = want.dtype.numpy
    return arr if arr.dtype == dtype else _astype(arr, dtype)


def _with_row_axis(ctx: ExportContext, value: str, dtype: DType) -> str:
    """``value`` [N, ...] as [N, 1, ...]. ONNX Runtime's CPU provider has no Unsqueeze for the
    low-precision types but bfloat16: float8 is reshaped (Shape and Reshape take it), the 4- and
    2-bit integers go through an exact Cast to 8 bits and back."""
    axes = ctx.add_initializer(np.array([1], np.int64), "axes")
    if dtype.value.startswith("float8") and dtype is not DType.FLOAT8E8M0:
        (first,) = ctx.add_node("Shape", [value], end=1)
        (rest,) = ctx.add_node("Shape", [value], start=1)
        one = ctx.add_initializer(np.array([1], np.int64), "one")
        (shape,) = ctx.add_node("Concat", [first, one, rest], axis=0)
        return ctx.add_node("Reshape", [value, shape])[0]
    if dtype in (DType.INT4, DType.UINT4, DType.INT2, DType.UINT2):
        (wide,) = ctx.add_node("Cast", [value], to=ONNX_ELEMENT[DType.INT8 if dtype.value[0] == "i" else DType.UINT8])
        (wide,) = ctx.add_node("Unsqueeze", [wide, axes])
        return ctx.add_node("Cast", [wide], to=ONNX_ELEMENT[dtype])[0]
    return ctx.add_node("Unsqueeze", [value, axes])[0]


def _astype(arr: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    # The automatic float64 -> float32 (or int -> float16) conversion rounds as ONNX's Cast and a C
    # cast do: values beyond the target's range become +-inf, without numpy's overflow warning
    # (and float32 -> bfloat16 keeps signalling NaNs' bits as ONNX Runtime does, without ml_dtypes' one).
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(dtype)


def _concat_parts(parts: list[dict[str, ColumnValues]], outputs: Sequence[_Output]) -> dict[str, ColumnValues]:
    if len(parts) == 1:
        return parts[0]
    out: dict[str, ColumnValues] = {}
    for o in outputs:
        values = [p[o.column] for p in parts]
        if isinstance(values[0], np.ndarray):
            out[o.column] = np.concatenate(values)
        else:
            out[o.column] = [v for part in values for v in part]
    return out
