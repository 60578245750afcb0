"""convert_to_onnx: whole pipelines, the pretrained graph inlined, naming, metadata and errors."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest

import onnxpipe as op
from onnxpipe import VectorType
from onnxpipe.core import TrivialEstimator
from onnxpipe.data import ColumnValues
from onnxpipe.errors import ColumnNotFoundError, ExportError, InvalidArgumentError
from onnxpipe.schema import Schema
from onnxpipe.testing import TOLERANCES, assert_views_equal

from . import models

ctx = op.MLContext(seed=0)


@dataclass
class Raw:
    x0: float
    x1: float
    x2: float
    tag: str


def _data(n: int = 6) -> op.DataView:
    rng = np.random.default_rng(7)
    return ctx.data.load_from_enumerable([Raw(*rng.normal(size=3).tolist(), f"t{i}") for i in range(n)], Raw)


def _pipeline() -> op.Estimator:
    return (
        ctx.transforms.concatenate("Features", "x0", "x1", "x2")
        .append(ctx.transforms.apply_onnx_model(model_bytes=models.mlnet_style_export(), output_column_names=["Score"]))
        .append(ctx.transforms.copy_columns("Tag", "tag"))
        .append(ctx.transforms.drop_columns("x2"))
    )


def test_pipeline_with_pretrained_model_exports_and_reapplies(tmp_path: Path) -> None:
    data = _data()
    model = _pipeline().fit(data)
    path = tmp_path / "pipeline.onnx"
    proto = ctx.model.convert_to_onnx(model, data, path, output_columns="all")
    onnx.checker.check_model(proto, full_check=True)
    assert onnx.load(path) == proto
    assert [i.name for i in proto.graph.input] == ["x0", "x1", "x2", "tag"]
    results = ctx.model.convert_to_onnx(model, data)  # by default the pipeline's results only
    assert [o.name for o in results.graph.output] == ["Score", "Tag"]
    # Outputs keep the column names; those that are also inputs get ML.NET's ".output" suffix.
    assert [o.name for o in proto.graph.output] == ["x0.output", "x1.output", "tag.output", "Features", "Score", "Tag"]
    assert any(n.name.startswith("pretrained/") for n in proto.graph.node)

    expected = model.transform(data)
    reapplied = ctx.transforms.apply_onnx_model(path).transform(data)
    assert_views_equal(_select(reapplied, expected.schema.names), expected, "re-applied export")
    assert reapplied.schema["Features"].slot_names == ("x0", "x1", "x2")


def _select(view: op.DataView, names: list[str]) -> op.DataView:
    return ctx.transforms.select_columns(*names).transform(view)


def test_scalar_columns_come_back_as_scalars() -> None:
    data = _data()
    model = ctx.transforms.copy_columns("y", "x0").fit(data)
    proto = ctx.model.convert_to_onnx(model, data, output_columns=["y"])
    assert [o.name for o in proto.graph.output] == ["y"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1]  # a scalar column is [N, 1] in the graph, as ML.NET writes it
    out = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(data)
    assert str(out.schema["y"].type) == "float32"
    np.testing.assert_array_equal(out.column("y"), data.column("x0"))

    @dataclass
    class Y:
        y: float

    engine = ctx.model.create_prediction_engine(
        ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()), Raw, Y
    )
    assert engine.predict(Raw(1.5, 0, 0, "a")) == Y(1.5)


def test_export_to_stream_and_plain_onnxruntime() -> None:
    data = _data(3)
    model = _pipeline().fit(data)
    buffer = io.BytesIO()
    ctx.model.convert_to_onnx(model, data.schema, buffer, output_columns=["Score"])
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = np.stack([data.column(c) for c in ("x0", "x1", "x2")], axis=1).astype(np.float32)
    feeds = {"x0": x[:, :1], "x1": x[:, 1:2], "x2": x[:, 2:]}
    (score,) = session.run(None, feeds)
    np.testing.assert_allclose(score, model.transform(data).column("Score"), **TOLERANCES)


class _PythonStep(TrivialEstimator):
    """A user step that runs Python: cannot be exported."""

    onnx_unexportable_reason = "it runs user Python code"

    def output_schema(self, input_schema: Schema) -> Schema:
        return input_schema.with_columns(op.Column("z", input_schema["x0"].type))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return ["x0"]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        return {"z": np.asarray(columns["x0"]) * 2}


def test_unexportable_step_fails_the_whole_export_naming_it() -> None:
    data = _data(2)
    model = (
        ctx.transforms.concatenate("F", "x0", "x1")
        .append(_PythonStep())
        .append(ctx.transforms.drop_columns("F"))
        .fit(data)
    )
    with pytest.raises(
        ExportError, match=r"^step 1 \(_PythonStep\) cannot be exported to ONNX: it runs user Python code$"
    ):
        ctx.model.convert_to_onnx(model, data)


def test_row_by_row_models_export_and_bad_options_are_refused(mlnet_data: Path) -> None:
    @dataclass
    class Two:
        ina: Annotated[npt.NDArray[np.float32], VectorType(5)]
        inb: Annotated[npt.NDArray[np.float32], VectorType(5)]

    rows = [Two(np.arange(5, dtype=np.float32) * k, np.ones(5, np.float32)) for k in range(3)]
    data = ctx.data.load_from_enumerable(rows, Two)
    fixed = ctx.transforms.apply_onnx_model(mlnet_data / "onnx" / "twoinput.onnx").fit(data)
    # A fixed batch of 1 runs in a Loop over the rows (tests/test_export_pretrained.py has the cases).
    proto = ctx.model.convert_to_onnx(fixed, data)
    assert [n.op_type for n in proto.graph.node if n.op_type == "Loop"] == ["Loop"]
    reapplied = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(data)
    assert_views_equal(_select(reapplied, ["ina", "inb", "outa", "outb"]), fixed.transform(data), "twoinput")
    model = _pipeline().fit(_data(1))
    with pytest.raises(ExportError, match=r"opset 12 is not supported: choose one from 13 to 21"):
        ctx.model.convert_to_onnx(model, _data(1), opset=12)
    with pytest.raises(ColumnNotFoundError, match=r"output_columns.*'nope'"):
        ctx.model.convert_to_onnx(model, _data(1), output_columns=["nope"])
    with pytest.raises(InvalidArgumentError, match="needs a fitted model"):
        ctx.model.convert_to_onnx(_pipeline(), _data(1))  # type: ignore[arg-type]


def test_inlined_model_with_an_older_opset_is_converted() -> None:
    @dataclass
    class Row:
        input: Annotated[npt.NDArray[np.float32], VectorType(3)]

    # ML.NET's unknown-dimensions model is opset 8 (ArgMax); the export is opset 13 or later.
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ArgMax", ["input"], ["argmax"], axis=1, keepdims=0)],
        "old",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [-1, 3])],
        [helper.make_tensor_value_info("argmax", TensorProto.INT64, [-1])],
    )
    old = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    old.ir_version = 3
    data = ctx.data.load_from_enumerable([Row(np.array(r, np.float32)) for r in ([1, 5, 2], [9, 1, 2], [0, 1, 7])], Row)
    model = ctx.transforms.apply_onnx_model(model_bytes=old.SerializeToString()).fit(data)
    proto = ctx.model.convert_to_onnx(model, data, opset=15)
    assert {o.domain or "": o.version for o in proto.opset_import}[""] == 15
    out = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(data)
    np.testing.assert_array_equal(out.column("argmax"), [[1], [0], [2]])


def test_opset_lower_than_a_step_needs_names_the_step() -> None:
    @dataclass
    class Row:
        data: Annotated[npt.NDArray[np.float32], VectorType(3, 224, 224)]

    model = ctx.transforms.apply_onnx_model(model_bytes=models.resnet_io()).fit(ctx.data.load_from_enumerable([], Row))
    with pytest.raises(ExportError, match=r"opset 14 is too low: apply_onnx_model\(<bytes>\) needs opset 17"):
        ctx.model.convert_to_onnx(model, ctx.data.load_from_enumerable([], Row), opset=14)
