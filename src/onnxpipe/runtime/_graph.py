"""A picture of an ONNX model's graph: inputs, operator nodes and outputs, with each edge labelled
by its tensor's element type and shape (from the model's own value infos and ONNX's shape
inference), laid out by Graphviz (``pip install 'onnxpipe[graph]'`` and the ``dot`` program,
Debian's package ``graphviz``).

Names come from the file: each goes through :func:`onnxpipe._display.shown` and Graphviz's own
escaping, so a crafted name cannot inject DOT. Layout runs ``dot`` under a deadline, on a graph
of at most :data:`MAX_DRAWN_NODES` nodes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from onnxpipe._display import shown
from onnxpipe.errors import InvalidArgumentError, MissingDependencyError, require

__all__ = ["GRAPH_FORMATS", "MAX_DRAWN_NODES", "draw_model"]

GRAPH_FORMATS = ("svg", "png", "pdf", "dot")
MAX_DRAWN_NODES = 20_000  # ResNet-50 has ~180; a graph past this is no longer a picture anyone reads
_LABEL_CHARS = 80
_LAYOUT_SECONDS = 120.0


def _label(*lines: object) -> str:
    """Lines of a label: each escaped (a name's backslashes cannot make DOT escapes), joined by
    DOT's own line break."""
    from graphviz import escape

    return "\\n".join(str(escape(shown(line, _LABEL_CHARS))) for line in lines if line != "")


def _tensor_types(model: Any) -> dict[str, str]:
    """``name -> "float32[N,3,224,224]"`` for every tensor whose type the model declares or ONNX's
    shape inference finds."""
    import onnx
    from onnx import helper

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
    except Exception:  # inference is a nicety here: draw with the declared types only
        inferred = model
    graph = inferred.graph
    out: dict[str, str] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        t = info.type.tensor_type
        if not info.type.HasField("tensor_type"):
            continue
        elem = helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
        dims = (
            ",".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in t.shape.dim)
            if t.HasField("shape")
            else "…"
        )
        out[info.name] = f"{elem}[{dims}]"
    for init in graph.initializer:
        out.setdefault(
            init.name, f"{helper.tensor_dtype_to_np_dtype(init.data_type).name}[{','.join(map(str, init.dims))}]"
        )
    return out


def graph_source(model: Any, title: str = "") -> str:
    """The DOT text of ``model``'s main graph (a ModelProto)."""
    graphviz: Any = require("graphviz", "graph")
    graph = model.graph
    if len(graph.node) > MAX_DRAWN_NODES:
        raise InvalidArgumentError(
            f"the graph has {len(graph.node):,} nodes, more than the {MAX_DRAWN_NODES:,} drawn at most"
        )
    types = _tensor_types(model)
    initializers = {i.name for i in graph.initializer}
    dot = graphviz.Digraph(
        graph_attr={"rankdir": "TB", "label": _label(title), "labelloc": "t", "fontname": "Helvetica"},
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "8", "color": "#555555"},
    )
    producer: dict[str, str] = {}
    for k, inp in enumerate(i for i in graph.input if i.name not in initializers):
        node_id = f"in{k}"
        dot.node(
            node_id,
            _label(inp.name, types.get(inp.name, "")),
            shape="ellipse",
            style="filled",
            fillcolor="#d9ead3",
        )
        producer[inp.name] = node_id
    for k, node in enumerate(graph.node):
        node_id = f"n{k}"
        weights = sum(1 for name in node.input if name in initializers)
        name = node.name if node.name and node.name != node.op_type else ""
        extra = f"({weights} weight{'s' if weights > 1 else ''})" if weights else ""
        dot.node(node_id, _label(node.op_type, name, extra), shape="box", style="rounded,filled", fillcolor="#dde7f6")
        for name in node.input:
            if name and name in producer:
                dot.edge(producer[name], node_id, label=_label(types.get(name, "")))
        for name in node.output:
            if name:
                producer[name] = node_id
    for k, out in enumerate(graph.output):
        node_id = f"out{k}"
        dot.node(
            node_id,
            _label(out.name, types.get(out.name, "")),
            shape="ellipse",
            style="filled",
            fillcolor="#fce5cd",
        )
        if out.name in producer:
            dot.edge(producer[out.name], node_id)
    return str(dot.source)


def draw_model(model_file: str | Path, output: str | Path) -> Path:
    """Draw the ONNX model at ``model_file`` into ``output``; the format is the file's suffix
    (``.svg``, ``.png``, ``.pdf``, or ``.dot`` for the Graphviz text). Returns ``output``."""
    from onnxpipe.runtime._model import load_model

    out = Path(output)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in GRAPH_FORMATS:
        raise InvalidArgumentError(
            f"draw_model: the output's suffix says the format: one of {', '.join('.' + f for f in GRAPH_FORMATS)}; "
            f"got {out.name!r}"
        )
    loaded = load_model(model_file=model_file, max_bytes=None)  # drawing allocates no tensor data
    source = graph_source(loaded.proto, Path(model_file).name)
    if fmt == "dot":
        out.write_text(source, encoding="utf-8")
        return out
    dot = shutil.which("dot")
    if dot is None:
        raise MissingDependencyError(
            "drawing needs Graphviz's dot program: apt-get install graphviz (or brew install graphviz)"
        )
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}", "-o", str(out)],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=_LAYOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise InvalidArgumentError(f"Graphviz took longer than {_LAYOUT_SECONDS:g} s to lay the graph out") from None
    if done.returncode != 0:
        raise InvalidArgumentError(f"Graphviz failed: {shown(done.stderr.decode('utf-8', 'replace'), 300)}")
    return out
