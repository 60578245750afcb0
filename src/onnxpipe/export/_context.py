"""Converting fitted pipelines to ONNX: the one export context every component writes through.

Graph conventions (so that ``apply_onnx_model`` on the export gives back the same columns):

* a column of row shape ``S`` is a tensor ``[N, *S]``; a scalar column is ``[N, 1]`` (as ML.NET
  writes it), a key column is its uint32 values; the batch ``N`` and the unknown dimensions of
  ``S`` are symbolic (``<column>_d<axis>``, see :func:`tensor_dims`), so the graph takes rows of
  any size, the rows of one call sharing their shape;
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from onnxpipe.errors import ExportError
from onnxpipe.runtime._model import ONNX_ELEMENT
from onnxpipe.schema import ColumnType, OptionalType, Schema, SequenceType, TensorType

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


def tensor_dims(ct: TensorType, column: str | None = None) -> list[int | str | None]:
    """ONNX dimensions of a column: ``[N, *shape]``, scalars as ``[N, 1]``.

    With ``column``, an unknown dimension is the symbolic ``<column>_d<i>`` (``i`` its axis, the
    batch ``N`` being axis 0), so that the graph states which dimensions vary and tools can bind
    them by name (e.g. ONNX Runtime's free dimension overrides); without it, unnamed.
    """
    dims = ct.shape or (1,)
    if column is None:
        return ["N", *dims]
    return ["N", *(f"{column}_d{i}" if d is None else d for i, d in enumerate(dims, 1))]


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
        self.padding: dict[str, str | int] = {}  # column -> the value padding its rows (set_padded_value)
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
        self.inputs.append(helper.make_tensor_value_info(column, ONNX_ELEMENT[ct.dtype], tensor_dims(ct, column)))
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
        self.padding.pop(column, None)

    def set_padded_value(self, column: str, value: str, pad: str | int) -> None:
        """:meth:`set_value` for a variable-length vector column (row shape ``(None,)``) whose rows
        ``value`` holds padded at their end with ``pad`` to the batch's longest row (ONNX tensors
        are not ragged). The padding is recorded in ``onnxpipe.columns`` and ``apply_onnx_model``
        drops each row's trailing ``pad`` values, giving back the exact rows; ``pad`` must be a
        value the step never puts at the end of a row (``""`` for tokens, key 0)."""
        self.set_value(column, value)
        self.padding[column] = pad

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

    def add_graph(
        self, graph: onnx.GraphProto, prefix: str, feeds: dict[str, str], outputs: Sequence[str] | None = None
    ) -> dict[str, str]:
        """Inline ``graph`` with every name prefixed; ``feeds`` maps its inputs to our values.

        Returns the value names of the graph's outputs, or of the values named in ``outputs`` (any
        of the graph's values), by original name. Nodes with subgraphs (Loop, Scan, If) are inlined
        too, the names inside renamed alike.
        """
        import onnx

        rename: dict[str, str] = dict(feeds)

        def renamed(name: str) -> str:
            if not name:
                return name  # an omitted optional input
            if name not in rename:
                rename[name] = self.unique(prefix + name)
            return rename[name]

        def rename_node(node: onnx.NodeProto) -> None:
            node.input[:] = [renamed(i) for i in node.input]
            node.output[:] = [renamed(o) for o in node.output]
            node.name = self.unique(prefix + (node.name or node.op_type))
            for a in node.attribute:
                for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs:
                    rename_subgraph(sub)

        def rename_subgraph(sub: onnx.GraphProto) -> None:
            # A subgraph (Loop, Scan, If) reads outer values by name: one renaming for every scope
            # keeps those references, and names unique across scopes as ONNX requires (a name that
            # sibling branches both define legitimately maps to one new name).
            for value in [*sub.input, *sub.output, *sub.value_info]:
                value.name = renamed(value.name)
            for tensor in sub.initializer:
                tensor.name = renamed(tensor.name)
            for sparse in sub.sparse_initializer:
                sparse.values.name = renamed(sparse.values.name)
            for node in sub.node:
                rename_node(node)

        for init in graph.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = renamed(init.name)
            self.initializers.append(copy)
        if graph.sparse_initializer:
            raise ExportError(f"{self.step}: the model has sparse initializers, which onnxpipe cannot inline yet")
        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            rename_node(copy)
            self.nodes.append(copy)
        return {name: renamed(name) for name in (outputs if outputs is not None else [o.name for o in graph.output])}

    def add_row_loop(
        self,
        values: Sequence[str],
        body: Callable[[list[str]], Sequence[str]],
        output_types: Sequence[TensorType],
        hint: str = "rows",
    ) -> list[str]:
        """Compute something one row at a time: an ONNX ``Loop`` over the N rows of ``values``.

        ``values`` are ``[N, *S]`` tensors (at least one). ``body`` receives each one's row (``[*S]``)
        and adds the nodes and initializers that compute one row's results, which go into the
        Loop's body (it may also read any value of the main graph). It returns one value per
        ``output_types`` entry, a tensor of that element type and shape (``None`` dimensions:
        unknown); the Loop stacks them into ``[N, *shape]``, which is returned.

        A Loop rather than a Scan: a Scan over zero rows fails in ONNX Runtime, while a Loop gives
        ``[0, *shape]`` when the shape is known. The initializers stay in the body rather than in
        the outer scope so that ONNX Runtime treats them as constants there, as in the model alone
        (it prepacks constant Conv weights, for one: results stay bit-identical to scoring).
        """
        from onnx import TensorProto, helper

        if not values:
            raise ExportError(f"{self.step}: a loop over the rows needs at least one input value")
        index, cond_in = self.unique(f"{hint}_index"), self.unique(f"{hint}_cond_in")
        outer, self.nodes = self.nodes, []
        first_initializer = len(self.initializers)
        try:
            rows = [
                self.add_node("Gather", [v, index], axis=0, name=f"{hint}_row")[0]  # the iteration's row: [*S]
                for v in values
            ]
            results = list(body(rows))
            if len(results) != len(output_types):
                raise ExportError(
                    f"{self.step}: the loop body gave {len(results)} values for {len(output_types)} types"
                )
            # Body outputs get values of their own: a body output may not be a body input or an outer value.
            (cond_out,) = self.add_node("Identity", [cond_in], name=f"{hint}_cond")
            outs = [self.add_node("Identity", [r], name=f"{hint}_result")[0] for r in results]
            nodes = self.nodes
        finally:
            self.nodes = outer
        body_initializers = self.initializers[first_initializer:]
        del self.initializers[first_initializer:]
        graph = helper.make_graph(
            nodes,
            self.unique(f"{hint}_body"),
            [
                helper.make_tensor_value_info(index, TensorProto.INT64, []),
                helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
            ],
            [
                helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
                *(
                    helper.make_tensor_value_info(o, ONNX_ELEMENT[t.dtype], list(t.shape))
                    for o, t in zip(outs, output_types, strict=True)
                ),
            ],
            body_initializers,
        )
        zero = self.add_initializer(np.array(0, np.int64), "zero")
        (count,) = self.add_node("Gather", [self.add_node("Shape", [values[0]])[0], zero], axis=0)  # N, a scalar
        return self.add_node("Loop", [count, ""], len(output_types), name=f"{hint}_loop", body=graph)

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
                needed.update(_subgraph_reads(node))
        kept.reverse()
        inputs = [i for i in self.inputs if i.name in needed]
        initializers = [t for t in self.initializers if t.name in needed]
        return kept, inputs, initializers

    def _rename(self, old: str, new: str) -> None:
        self.reserve(new)
        for node in _all_nodes(self.nodes):
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
            graph_outputs.append(helper.make_value_info(name, _type_proto(ct, top=column)))
            entry: dict[str, Any] = {"name": column, "tensor": name, "type": _type_json(ct)}
            if slots is not None:
                entry["slot_names"] = list(slots)
            if column in self.padding:
                entry["padding"] = self.padding[column]
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


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    from onnx import AttributeProto

    return [g for a in node.attribute for g in ([a.g] if a.type == AttributeProto.GRAPH else a.graphs)]


def _all_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    """``nodes`` and the nodes of their subgraphs, at any depth."""
    for node in nodes:
        yield node
        for sub in _subgraphs(node):
            yield from _all_nodes(sub.node)


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Every name the nodes of ``node``'s subgraphs read: outer values a body uses (a superset:
    the body's own values too, whose names no outer node has)."""
    return {i for sub in _subgraphs(node) for n in _all_nodes(sub.node) for i in n.input if i}


def _type_proto(ct: ColumnType, top: str | None = None) -> onnx.TypeProto:
    """ONNX type of a column: tensors as ``[N, *shape]`` at the top level (``top``: the column,
    which names the unknown dimensions), plain inside sequences and maps."""
    from onnx import helper

    if isinstance(ct, TensorType):
        return helper.make_tensor_type_proto(ONNX_ELEMENT[ct.dtype], tensor_dims(ct, top) if top else None)
    if isinstance(ct, SequenceType):
        return helper.make_sequence_type_proto(_type_proto(ct.element))
    if isinstance(ct, OptionalType):
        return helper.make_optional_type_proto(_type_proto(ct.element))
    return helper.make_map_type_proto(ONNX_ELEMENT[ct.key], _type_proto(ct.value))


def _type_json(ct: ColumnType) -> dict[str, Any]:
    from onnxpipe.schema import column_type_to_json

    return column_type_to_json(ct)


def convert_to_onnx(
    model: Any,
    input_schema: Schema,
    *,
    opset: int | None = None,
    output_columns: Sequence[str] | Literal["all"] | None = None,
) -> onnx.ModelProto:
    """Export the fitted ``model`` (a Transformer) for data of ``input_schema``.

    Every step exports itself through one :class:`ExportContext`; the first step that cannot
    makes the whole export fail with an ExportError naming it. ``opset`` defaults to the lowest
    version every step needs (at least 13).

    The outputs are, by default (``output_columns=None``), the pipeline's results: the columns a
    step writes and no later step reads (a trainer's ``Score`` and ``PredictedLabel``, not the
    ``Features`` it reads), as ``onnxpipe convert`` and ``onnxpipe predict`` choose them; the
    inputs are only the columns those need, so a label the scoring path does not read is not an
    input. ``output_columns="all"`` exports every column, input columns passed through (ML.NET's
    choice, which makes every input column, the label included, an input); a list names them.
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
    if output_columns is None:
        names = TransformerChain(steps).result_columns(input_schema)
    elif isinstance(output_columns, str):
        if output_columns != "all":
            raise ExportError(
                f"output_columns={output_columns!r}: give a list of column names, 'all' or None (the results)"
            )
        names = final.names
    else:
        names = list(output_columns)
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
