"""Converting fitted pipelines to ONNX: the one export context every component writes through.

Graph conventions (so that ``apply_onnx_model`` on the export gives back the same columns):

* a column of row shape ``S`` is a tensor ``[N, *S]``; a scalar column is ``[N, 1]`` (as ML.NET
  writes it), a key column is its uint32 values;
* every graph input is a column of the input schema that some step reads;
* every output keeps its column's name, unless that collides with an input name, when it gets
  ML.NET's ``.output`` suffix;
* ``onnxpipe.columns`` in the model's metadata records each output column's type and slot names.

A component exports itself by implementing ``export_onnx(ctx, input_schema)`` (see
:class:`OnnxExportable`): it reads its input columns' current values with
:meth:`ExportContext.value`, adds nodes, and points its output columns at new values with
:meth:`ExportContext.set_value`. A component that cannot be exported makes the whole export fail
with an :class:`~onnxpipe.errors.ExportError` naming the step and why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from onnxpipe.errors import ExportError
from onnxpipe.runtime._model import ONNX_ELEMENT
from onnxpipe.schema import ColumnType, Schema, SequenceType, TensorType

# onnx (most of a second to import) is imported by the methods that build protos, so that
# importing onnxpipe, and every component module that imports this one, does not load it.
if TYPE_CHECKING:
    import onnx

__all__ = [
    "COLUMNS_METADATA_KEY",
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportContext",
    "OnnxExportable",
    "convert_to_onnx",
    "tensor_dims",
]

COLUMNS_METADATA_KEY = "onnxpipe.columns"
MIN_OPSET = 13
MAX_OPSET = 21
DEFAULT_OPSET = 17
ML_OPSET = 3
IR_VERSION = 8  # loaded by every onnxruntime release since 1.14


@runtime_checkable
class OnnxExportable(Protocol):
    """What a component implements to export itself."""

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        """Add this step's nodes; ``input_schema`` is the schema the step receives."""


def tensor_dims(ct: TensorType) -> list[int | str | None]:
    """ONNX dimensions of a column: ``[N, *shape]``, scalars as ``[N, 1]``."""
    return ["N", *(ct.shape or (1,))]


class ExportContext:
    """Column name → current ONNX value, unique names, initializers and opset bookkeeping."""

    def __init__(self, input_schema: Schema, opset: int = DEFAULT_OPSET) -> None:
        if not MIN_OPSET <= opset <= MAX_OPSET:
            raise ExportError(f"opset {opset} is not supported: choose one from {MIN_OPSET} to {MAX_OPSET}")
        self.opset = opset
        self.input_schema = input_schema
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.functions: list[onnx.FunctionProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []
        self.domains: dict[str, int] = {"": opset}
        self._values: dict[str, str] = {}  # column -> current value name
        self._names: set[str] = set()
        self._needed_by: dict[str, str] = {}  # domain -> step that needs it (for messages)
        self._dropped: set[str] = set()
        self.step = "?"  # the step being exported, for messages

    # ---------------------------------------------------------------- names and values

    def unique(self, hint: str) -> str:
        """A value or node name not used yet, based on ``hint``."""
        name, k = hint, 1
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._names.add(name)
        return name

    def reserve(self, name: str) -> None:
        self._names.add(name)

    def add_input(self, column: str, ct: TensorType) -> None:
        """Declare a graph input for ``column``."""
        from onnx import helper

        self.reserve(column)
        self.inputs.append(helper.make_tensor_value_info(column, ONNX_ELEMENT[ct.dtype], tensor_dims(ct)))
        self._values[column] = column

    def has_value(self, column: str) -> bool:
        return column in self._values

    def value(self, column: str) -> str:
        """The ONNX value currently holding ``column`` (as ``[N, *shape]``); a column of the input
        schema read for the first time becomes a graph input."""
        if column not in self._values and column in self.input_schema and column not in self._dropped:
            ct = self.input_schema[column].type
            if not isinstance(ct, TensorType):
                raise ExportError(
                    f"{self.step}: input column {column!r} is a {ct}; only tensor columns can be ONNX inputs"
                )
            self.add_input(column, ct)
        try:
            return self._values[column]
        except KeyError:
            raise ExportError(f"{self.step}: column {column!r} has no ONNX value to read") from None

    def set_value(self, column: str, value: str) -> None:
        """From now on, ``column`` is held by ``value``."""
        self._values[column] = value
        self._dropped.discard(column)

    def drop_value(self, column: str) -> None:
        self._values.pop(column, None)
        self._dropped.add(column)

    # ---------------------------------------------------------------- graph building

    def add_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: int | Sequence[str] = 1,
        *,
        domain: str = "",
        name: str | None = None,
        **attributes: Any,
    ) -> list[str]:
        """Add a node; ``outputs`` is a count (fresh names) or explicit names. Returns the outputs."""
        from onnx import helper

        if domain not in self.domains:
            self.require_opset(domain, ML_OPSET if domain == "ai.onnx.ml" else 1)
        if isinstance(outputs, int):
            outputs = [self.unique(f"{op_type}_out") for _ in range(outputs)]
        else:
            for o in outputs:
                self.reserve(o)
        node = helper.make_node(
            op_type, list(inputs), list(outputs), name=self.unique(name or op_type), domain=domain or None, **attributes
        )
        self.nodes.append(node)
        return list(outputs)

    def add_initializer(self, array: np.ndarray | float | int, hint: str = "const") -> str:
        """A constant tensor; returns its value name."""
        from onnx import TensorProto, helper, numpy_helper

        name = self.unique(hint)
        arr = np.asarray(array)
        if arr.dtype.kind in "OUS":
            strings: list[Any] = [str(x).encode() for x in arr.reshape(-1)]
            tensor = helper.make_tensor(name, TensorProto.STRING, arr.shape, strings)
        else:
            tensor = numpy_helper.from_array(arr, name)
        self.initializers.append(tensor)
        return name

    def require_opset(self, domain: str, version: int) -> None:
        """Record that the current step needs ``domain`` at ``version`` or later."""
        if domain == "" and version > self.opset:
            raise ExportError(
                f"{self.step} needs ONNX opset {version} or later, but the export was asked for opset {self.opset}; "
                f"pass opset={version} or higher"
            )
        if self.domains.get(domain, 0) < version:
            self.domains[domain] = version
            self._needed_by[domain] = self.step

    def add_graph(self, graph: onnx.GraphProto, prefix: str, feeds: dict[str, str]) -> dict[str, str]:
        """Inline ``graph`` with every name prefixed; ``feeds`` maps its inputs to our values.

        Returns the value names of the graph's outputs (by original output name).
        """
        import onnx

        rename: dict[str, str] = dict(feeds)

        def renamed(name: str) -> str:
            if not name:
                return name  # an omitted optional input
            if name not in rename:
                rename[name] = self.unique(prefix + name)
            return rename[name]

        for init in graph.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = renamed(init.name)
            self.initializers.append(copy)
        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            del copy.input[:]
            copy.input.extend(renamed(i) for i in node.input)
            del copy.output[:]
            copy.output.extend(renamed(o) for o in node.output)
            copy.name = self.unique(prefix + (node.name or node.op_type))
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
                raise ExportError(
                    f"{self.step}: the model has control-flow nodes ({node.op_type}) with subgraphs, which "
                    "onnxpipe cannot inline yet"
                )
            self.nodes.append(copy)
        return {o.name: renamed(o.name) for o in graph.output}

    def _pruned(
        self, outputs: list[str]
    ) -> tuple[list[onnx.NodeProto], list[onnx.ValueInfoProto], list[onnx.TensorProto]]:
        """Only the nodes, inputs and initializers that the outputs depend on."""
        needed = set(outputs)
        kept: list[onnx.NodeProto] = []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(i for i in node.input if i)
        kept.reverse()
        inputs = [i for i in self.inputs if i.name in needed]
        initializers = [t for t in self.initializers if t.name in needed]
        return kept, inputs, initializers

    def _rename(self, old: str, new: str) -> None:
        self.reserve(new)
        for node in self.nodes:
            for field in (node.input, node.output):
                for k, name in enumerate(field):
                    if name == old:
                        field[k] = new
        self._values = {c: (new if v == old else v) for c, v in self._values.items()}

    # ---------------------------------------------------------------- the model

    def build(
        self, outputs: Sequence[tuple[str, ColumnType, tuple[str, ...] | None]], producer_version: str
    ) -> onnx.ModelProto:
        """The finished model, with ``outputs`` as (column, type, slot names)."""
        from onnx import helper

        input_names = {i.name for i in self.inputs}
        graph_outputs = []
        described = []
        for column, ct, slots in outputs:
            name = column if column not in input_names else f"{column}.output"
            value = self.value(column)
            if value != name and isinstance(ct, TensorType):
                self.reserve(name)
                self.nodes.append(helper.make_node("Identity", [value], [name], name=self.unique(f"output_{column}")))
            elif value != name:  # Identity does not take sequences of maps: rename the value instead
                self._rename(value, name)
            graph_outputs.append(helper.make_value_info(name, _type_proto(ct, top=True)))
            entry: dict[str, Any] = {"name": column, "tensor": name, "type": _type_json(ct)}
            if slots is not None:
                entry["slot_names"] = list(slots)
            described.append(entry)
        nodes, inputs, initializers = self._pruned([o.name for o in graph_outputs])
        graph = helper.make_graph(nodes, "onnxpipe", inputs, graph_outputs, initializers)
        opsets = [helper.make_opsetid(d, v) for d, v in sorted(self.domains.items())]
        model = helper.make_model(
            graph, opset_imports=opsets, producer_name="onnxpipe", producer_version=producer_version
        )
        model.ir_version = IR_VERSION
        helper.set_model_props(model, {COLUMNS_METADATA_KEY: json.dumps(described)})
        return model


def _type_proto(ct: ColumnType, top: bool = False) -> onnx.TypeProto:
    """ONNX type of a column: tensors as ``[N, *shape]`` at the top level, plain inside maps."""
    from onnx import helper

    if isinstance(ct, TensorType):
        return helper.make_tensor_type_proto(ONNX_ELEMENT[ct.dtype], tensor_dims(ct) if top else None)
    if isinstance(ct, SequenceType):
        return helper.make_sequence_type_proto(_type_proto(ct.element))
    return helper.make_map_type_proto(ONNX_ELEMENT[ct.key], _type_proto(ct.value))


def _type_json(ct: ColumnType) -> dict[str, Any]:
    from onnxpipe.schema import column_type_to_json

    return column_type_to_json(ct)


def convert_to_onnx(
    model: Any, input_schema: Schema, *, opset: int | None = None, output_columns: Sequence[str] | None = None
) -> onnx.ModelProto:
    """Export the fitted ``model`` (a Transformer) for data of ``input_schema``.

    Every step exports itself through one :class:`ExportContext`; the first step that cannot
    makes the whole export fail with an ExportError naming it. ``opset`` defaults to the lowest
    version every step needs (at least 13); ``output_columns`` keeps only those columns.
    """
    import onnx

    from onnxpipe import __version__
    from onnxpipe.core import TransformerChain

    steps = model.steps
    schemas = TransformerChain(steps).schemas(input_schema)
    needed = max([MIN_OPSET, *(getattr(s, "onnx_min_opset", MIN_OPSET) for s in steps)])
    if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported: choose one from {MIN_OPSET} to {MAX_OPSET}")
    if opset is not None and opset < needed:
        names = [s.step_name for s in steps if getattr(s, "onnx_min_opset", MIN_OPSET) > opset]
        raise ExportError(
            f"opset {opset} is too low: {', '.join(names)} needs opset {needed}; pass opset={needed} or higher"
        )
    ctx = ExportContext(input_schema, opset if opset is not None else needed)
    for i, (step, schema, after) in enumerate(zip(steps, schemas, schemas[1:], strict=False)):
        ctx.step = f"step {i} ({step.step_name})"
        export = getattr(step, "export_onnx", None)
        if export is None:
            raise ExportError(f"{ctx.step} cannot be exported to ONNX: it has no ONNX export")
        try:
            export(ctx, schema)
        except ExportError as exc:
            message = str(exc)
            if message.startswith(step.step_name):  # "<step> cannot be exported..." -> "step i (<step>) cannot..."
                message = ctx.step + message[len(step.step_name) :]
            elif not message.startswith(ctx.step):
                message = f"{ctx.step}: {message}"
            raise ExportError(message) from None
        for name in schema.names:
            if name not in after:
                ctx.drop_value(name)
    final = schemas[-1]
    names = list(output_columns) if output_columns is not None else final.names
    for n in names:
        final.require(n, "convert_to_onnx(output_columns=...)")
    ctx.step = "outputs"
    outputs = [(n, final[n].type, final[n].slot_names) for n in names]
    for n in names:
        ctx.value(n)  # pass-through input columns become graph inputs too
    proto = ctx.build(outputs, __version__)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # a bug in a component's export: say which model part failed
        raise ExportError(
            f"the exported graph is invalid ({exc}); this is a bug in onnxpipe, please report it"
        ) from None
    return proto
