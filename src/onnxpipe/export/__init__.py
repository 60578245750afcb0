"""Exporting fitted pipelines to ONNX, and the contract a component implements to export itself.

``convert_to_onnx(model, input_schema)`` (also ``ctx.model.convert_to_onnx``) walks the
pipeline's steps and lets each one add its nodes to one :class:`ExportContext`. A component of
your own becomes exportable by implementing :class:`OnnxExportable`'s ``export_onnx``:

.. code-block:: python

    import numpy as np
    from onnxpipe.export import ExportContext

    class Doubling(TrivialEstimator["Doubling"]):   # output = 2 * input, a float column
        ...
        def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
            two = ctx.add_initializer(np.array(2, np.float32), "two")
            (doubled,) = ctx.add_node("Mul", [ctx.value(self.input_column_name), two])
            ctx.set_value(self.output_column_name, doubled)

It reads the current tensor of each input column with :meth:`ExportContext.value`, adds nodes
and initializers (:class:`ElemType` names ONNX's element types, e.g. for ``Cast``), and points
each output column at its new tensor with :meth:`ExportContext.set_value`; a step that needs a
newer opset than 13 says so in ``onnx_min_opset``. :meth:`ExportContext.add_graph` inlines a
whole ONNX graph (subgraphs included) and :meth:`ExportContext.add_row_loop` computes something
one row at a time (an ONNX ``Loop`` over the N rows). The README's "Adding a component" section has
the whole example, and ``tests/test_conformance.py`` runs it through the conformance checks.
"""

from onnxpipe.export._context import (
    COLUMNS_METADATA_KEY,
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
    ExportContext,
    OnnxExportable,
    convert_to_onnx,
    tensor_dims,
)
from onnxpipe.runtime._elem_type import ElemType

__all__ = [
    "COLUMNS_METADATA_KEY",
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ElemType",
    "ExportContext",
    "OnnxExportable",
    "convert_to_onnx",
    "tensor_dims",
]
