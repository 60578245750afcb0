"""apply_onnx_model maps tensor names to column names both ways, so models chain without copies."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
import onnx
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpipe as op
from onnxpipe.errors import InvalidArgumentError, ModelError, OnnxPipeWarning, TensorNotFoundError
from onnxpipe.persistence import model_from_bytes, model_to_bytes
from onnxpipe.runtime import describe_model
from tests.models import serialized

ctx = op.MLContext()


def _model(op_type: str, constant: float) -> bytes:
    """``Y = X <op> constant`` over float[N, 2]: both models use the tensor names X and Y."""
    graph = helper.make_graph(
        [helper.make_node(op_type, ["X", "C"], ["Y"])],
        op_type.lower(),
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.array(constant, np.float32), "C")],
    )
    return serialized(graph)


DOUBLE, PLUS_ONE = _model("Mul", 2.0), _model("Add", 1.0)
X = np.arange(6, dtype=np.float32).reshape(3, 2)
DATA = ctx.data.load_from_arrow(pa.table({"Raw": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), 2)}))


def _chain() -> op.Transformer:
    first = ctx.transforms.apply_onnx_model(
        model_bytes=DOUBLE, input_columns={"X": "Raw"}, output_columns={"Y": "Doubled"}
    )
    second = ctx.transforms.apply_onnx_model(model_bytes=PLUS_ONE, input_columns={"X": "Doubled"}, output_columns="b_")
    return first.append(second).fit(DATA)


def test_two_models_with_the_same_tensor_names_chain() -> None:
    model = _chain()
    scored = model.transform(DATA)  # an output [N, 2] gives rows of shape (1, 2)
    assert scored.schema.names == ["Raw", "Doubled", "b_Y"]
    np.testing.assert_array_equal(np.asarray(scored.column("b_Y")).reshape(3, 2), X * 2 + 1)


def test_the_mapping_survives_save_load_and_export() -> None:
    model = _chain()
    loaded, _ = model_from_bytes(model_to_bytes(model, DATA.schema))
    np.testing.assert_array_equal(np.asarray(loaded.transform(DATA).column("b_Y")).reshape(3, 2), X * 2 + 1)
    exported = ctx.model.convert_to_onnx(model, DATA)
    again = ctx.transforms.apply_onnx_model(model_bytes=exported.SerializeToString()).fit(DATA)
    np.testing.assert_array_equal(np.asarray(again.transform(DATA).column("b_Y")).reshape(3, 2), X * 2 + 1)


@dataclass
class In:
    raw: Annotated[npt.NDArray[np.float32], op.ColumnName("Raw"), op.VectorType(2)]


@dataclass
class Out:
    y: Annotated[npt.NDArray[np.float32], op.ColumnName("b_Y"), op.VectorType(1, 2)]  # [N, 2] outputs rows of [1, 2]


def test_the_engine_reads_and_writes_the_mapped_columns() -> None:
    engine = ctx.model.create_prediction_engine(_chain(), In, Out)
    np.testing.assert_array_equal(engine.predict(In(X[1])).y.reshape(2), X[1] * 2 + 1)


def test_unknown_tensors_and_clashing_columns_are_refused() -> None:
    with pytest.raises(TensorNotFoundError, match=r"input_columns names tensors \['x'\].*input tensors are \['X'\]"):
        ctx.transforms.apply_onnx_model(model_bytes=DOUBLE, input_columns={"x": "Raw"})
    with pytest.raises(TensorNotFoundError, match=r"output_columns names tensors \['Z'\]"):
        ctx.transforms.apply_onnx_model(model_bytes=DOUBLE, output_columns={"Z": "Out"})
    with pytest.raises(InvalidArgumentError, match=r"output_columns must be a non-empty prefix"):
        ctx.transforms.apply_onnx_model(model_bytes=DOUBLE, output_columns="")
    with pytest.raises(InvalidArgumentError, match=r"input_columns must be a mapping of tensor names"):
        ctx.transforms.apply_onnx_model(model_bytes=DOUBLE, input_columns={"X": ""})


def _constant_model() -> bytes:
    """No inputs; ``Y`` = the constant [1.5, 2.5]."""
    value = numpy_helper.from_array(np.array([1.5, 2.5], np.float32))
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["Y"], value=value)],
        "constant",
        [],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
    )
    return serialized(graph)


def test_a_model_without_inputs_scores_one_row_per_input_row_and_in_the_engine() -> None:
    step = ctx.transforms.apply_onnx_model(model_bytes=_constant_model())
    scored = step.transform(DATA)
    np.testing.assert_array_equal(np.asarray(scored.column("Y")), np.tile([1.5, 2.5], (3, 1)))
    module = types.ModuleType("constant_model_schema")  # our own generated code, as an importable module
    sys.modules[module.__name__] = module
    exec(op.generate_schema_code(describe_model(onnx.load_from_string(_constant_model()))), vars(module))
    empty, output = module.OnnxInput, module.OnnxOutput
    model = step.fit(ctx.data.load_from_enumerable([], empty))  # type: ignore[arg-type]
    engine = ctx.model.create_prediction_engine(model, empty, output)  # type: ignore[arg-type]
    np.testing.assert_array_equal(engine.predict(empty()).y, [1.5, 2.5])  # type: ignore[operator, attr-defined]
    assert len(engine.predict_batch([empty(), empty()])) == 2  # type: ignore[operator]


def _wrong_rank_model() -> bytes:
    """Declares ``Y`` as [N, 4] but reshapes each row to [2, 2]: an output declared with the wrong
    rank, as some exporters write (an OCR model declares rank 2 and returns rank 3)."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["X", "shape"], ["Y"])],
        "wrong_rank",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.array([-1, 2, 2], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # not serialized(): onnx's checker rightly refuses the declared shape
    return model.SerializeToString()


def test_an_output_declared_with_the_wrong_rank_is_restated_with_shape_dictionary() -> None:
    values = np.arange(8, dtype=np.float32)
    data = ctx.data.load_from_arrow(pa.table({"X": pa.FixedSizeListArray.from_arrays(pa.array(values), 4)}))
    # ONNX Runtime's shape is taken, with one warning that says how to state it.
    with pytest.warns(
        OnnxPipeWarning,
        match=r"returns \[1,2,2\] for a synthetic row: using \[1,\?,\?\]; "
        r"state the real shape with shape_dictionary=\{'Y': \[-1, 2, 2\]\}",
    ):
        taken = ctx.transforms.apply_onnx_model(model_bytes=_wrong_rank_model())
    assert str(taken.output_schema(data.schema)["Y"].type) == "float32[1,?,?]"
    np.testing.assert_array_equal(taken.transform(data).column("Y"), values.reshape(2, 1, 2, 2))
    with pytest.raises(
        ModelError,
        match=r"output 'Y' is declared \[1,4\] per row, but ONNX Runtime returns \[1,2,2\].*strict_shapes=True",
    ):
        ctx.transforms.apply_onnx_model(model_bytes=_wrong_rank_model(), strict_shapes=True)
    stated = ctx.transforms.apply_onnx_model(model_bytes=_wrong_rank_model(), shape_dictionary={"Y": [-1, 2, 2]})
    scored = stated.transform(data)
    assert str(scored.schema["Y"].type) == "float32[?,2,2]"
    np.testing.assert_array_equal(np.stack(scored.column("Y")), values.reshape(2, 1, 2, 2))
