"""Whether an input's first dimension is the batch: inferred from the declared shapes, or stated."""

from __future__ import annotations

import numpy as np
import onnx
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpipe as op
from onnxpipe.errors import InvalidArgumentError, TensorNotFoundError
from onnxpipe.runtime import batch_axes, describe_model
from tests.models import serialized

ctx = op.MLContext()


def _frames_model(first: str) -> bytes:
    """``X [first, 4]`` -> ``Act = Relu(X)`` of the same shape and ``Total = sum over axis 0`` [4]:
    a voice-activity-like model whose first dimension may be a number of frames."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["Act"]), helper.make_node("ReduceSum", ["X", "axes"], ["Total"], keepdims=0)],
        "frames",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [first, 4])],
        [
            helper.make_tensor_value_info("Act", TensorProto.FLOAT, [first, 4]),
            helper.make_tensor_value_info("Total", TensorProto.FLOAT, [4]),
        ],
        [numpy_helper.from_array(np.array([0], np.int64), "axes")],
    )
    return serialized(graph)


SEQUENCES = [np.arange(12, dtype=np.float32).reshape(3, 4) - 5, np.ones((2, 4), np.float32)]


def _sequences() -> op.DataView:
    return ctx.data.load_from_arrow(
        pa.table({"X": pa.array([s.reshape(-1) for s in SEQUENCES], pa.list_(pa.float32()))})
    )


def test_a_length_named_first_dimension_takes_one_whole_sequence_per_row() -> None:
    step = ctx.transforms.apply_onnx_model(model_bytes=_frames_model("T"))
    assert not step.batch_axes["X"].is_batch and "length (T)" in step.batch_axes["X"].reason
    scored = step.transform(_sequences())
    assert str(scored.schema) == "Schema(X: float32[?], Act: float32[?,4], Total: float32[4])"
    np.testing.assert_array_equal(np.asarray(scored.column("Total")), np.stack([s.sum(axis=0) for s in SEQUENCES]))
    for got, given in zip(scored.column("Act"), SEQUENCES, strict=True):
        np.testing.assert_array_equal(got, np.maximum(given, 0))


def test_batch_names_and_statements() -> None:
    info = describe_model(onnx.load_from_string(_frames_model("batch_size")))
    assert batch_axes(info)["X"].is_batch
    assert not batch_axes(info, False)["X"].is_batch and batch_axes(info, {"X": False})["X"].reason == (
        "stated by batch_dimension"
    )
    stated = ctx.transforms.apply_onnx_model(model_bytes=_frames_model("T"), batch_dimension=True)
    assert stated.batch_axes["X"].is_batch  # rows of X are along the T axis again, as before inference


def test_generated_classes_follow_the_decision() -> None:
    info = describe_model(onnx.load_from_string(_frames_model("T")))
    code = op.generate_schema_code(info)
    assert 'ColumnName("X"), VectorType(-1, 4)' in code and 'ColumnName("Act"), VectorType(-1, 4)' in code
    assert 'ColumnName("X"), VectorType(1, 4)' in op.generate_schema_code(info, batch_dimension=True)


def test_bad_statements_are_refused() -> None:
    with pytest.raises(TensorNotFoundError, match=r"batch_dimension names tensors \['Y'\].*input tensors are \['X'\]"):
        ctx.transforms.apply_onnx_model(model_bytes=_frames_model("T"), batch_dimension={"Y": True})
    with pytest.raises(InvalidArgumentError, match=r"batch_dimension must be True, False, None \(inferred\)"):
        ctx.transforms.apply_onnx_model(model_bytes=_frames_model("T"), batch_dimension="yes")  # type: ignore[arg-type]
