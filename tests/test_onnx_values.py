"""Every ONNX value kind is a column kind: sequences of tensors, maps and optionals as model inputs
and outputs, through ``apply_onnx_model``, the prediction engine with the classes
``generate_schema_code`` writes, Arrow storage and saved models; equal to bare ONNX Runtime."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pyarrow as pa
import pytest
from onnx import TensorProto, helper

import onnxpipe as op
from onnxpipe.errors import ColumnTypeError
from onnxpipe.schema import (
    AnyRankTensorType,
    ColumnName,
    DType,
    MapType,
    OptionalType,
    SequenceType,
    TensorType,
    schema_of,
)
from tests.models import serialized
from tests.test_inspect import import_code

F = TensorProto.FLOAT


def _seq(elem: int, shape: list[Any] | None = None) -> Any:
    return helper.make_sequence_type_proto(helper.make_tensor_type_proto(elem, shape))


def split_model() -> bytes:
    """x [N, 4] -> SplitToSequence into rows of 2 columns: a sequence of tensors of unknown rank."""
    node = helper.make_node("SplitToSequence", ["x"], ["pieces"], axis=1)
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.INT64, [], [2])), node],
        "split",
        [helper.make_tensor_value_info("x", F, ["N", 4])],
        [helper.make_value_info("pieces", _seq(F))],
    )
    graph.node[1].input.append("two")
    return serialized(graph)


def concat_model() -> bytes:
    """A sequence of [k, 3] tensors plus a tensor [3] -> insert it, concatenate along axis 0."""
    graph = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["row", "axes"], ["row2"]),
            helper.make_node("SequenceInsert", ["parts", "row2"], ["longer"]),
            helper.make_node("ConcatFromSequence", ["longer"], ["joined"], axis=0),
            helper.make_node("SequenceLength", ["longer"], ["count"]),
        ],
        "concat",
        [helper.make_value_info("parts", _seq(F, ["k", 3])), helper.make_tensor_value_info("row", F, [3])],
        [
            helper.make_tensor_value_info("joined", F, ["m", 3]),
            helper.make_tensor_value_info("count", TensorProto.INT64, []),
        ],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [0])],
    )
    return serialized(graph)


def optional_model() -> bytes:
    """cond -> an optional sequence: present (two tensors) when cond holds, else empty."""
    opt = helper.make_optional_type_proto(_seq(F, [2]))
    then = helper.make_graph(
        [
            helper.make_node("Constant", [], ["a"], value=helper.make_tensor("a", F, [2], [1, 2])),
            helper.make_node("SequenceConstruct", ["a", "a"], ["s"]),
            helper.make_node("Optional", ["s"], ["o"]),
        ],
        "then",
        [],
        [helper.make_value_info("o", opt)],
    )
    other = helper.make_graph(
        [helper.make_node("Optional", [], ["o"], type=_seq(F, [2]))], "else", [], [helper.make_value_info("o", opt)]
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["maybe"], then_branch=then, else_branch=other)],
        "optional",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_value_info("maybe", opt)],
    )
    return serialized(graph, [helper.make_opsetid("", 18)])


def optional_identity_model() -> bytes:
    opt = helper.make_optional_type_proto(_seq(F, [5]))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])],
        "opt",
        [helper.make_value_info("a", opt)],
        [helper.make_value_info("b", opt)],
    )
    return serialized(graph, [helper.make_opsetid("", 18)])


def dict_vectorizer_model() -> bytes:
    """scikit-learn's DictVectorizer as ONNX: a map(string, float) per row -> a dense [1, 3] vector."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "DictVectorizer", ["features"], ["dense"], domain="ai.onnx.ml", string_vocabulary=["a", "b", "c"]
            )
        ],
        "dict",
        [
            helper.make_value_info(
                "features", helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(F, []))
            )
        ],
        [helper.make_tensor_value_info("dense", F, [1, 3])],
    )
    return serialized(graph, [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])


def bare(model: bytes, feeds: dict[str, Any]) -> list[Any]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)  # type: ignore[no-any-return]


@pytest.fixture
def ctx() -> op.MLContext:
    return op.MLContext(seed=0)


def test_sequence_of_tensors_output_is_a_column_of_lists_of_arrays(ctx: op.MLContext) -> None:
    model = split_model()
    step = ctx.transforms.apply_onnx_model(model_bytes=model)
    out = step.output_schema(op.Schema.of(x=TensorType(DType.FLOAT32, (4,))))
    assert out["pieces"].type == SequenceType(AnyRankTensorType(DType.FLOAT32))
    assert not step.batched  # a sequence of pieces is not one element per row
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    view = ctx.data.load_from_arrow(pa.table({"x": pa.FixedSizeListArray.from_arrays(x.reshape(-1), 4)}))
    pieces = step.fit(view).transform(view).column("pieces")
    assert len(pieces) == 3
    for row, got in zip(x, pieces, strict=True):
        (want,) = [bare(model, {"x": row[np.newaxis]})]
        assert [p.tolist() for p in got] == [p.tolist() for p in want[0]]
        assert all(p.dtype == np.float32 and p.shape == (1, 2) for p in got)


def test_sequence_input_through_transform_engine_and_save(ctx: op.MLContext, tmp_path: Path) -> None:
    model = concat_model()
    step = ctx.transforms.apply_onnx_model(model_bytes=model)
    assert step.info.input("parts").type_text == "seq(float32[k,3])"
    assert step.batch_axes["row"].is_batch is False  # one row per call: 'parts' is a sequence

    @dataclass
    class Row:
        parts: Annotated[list[npt.NDArray[np.float32]], op.VectorType(-1, 3)]
        row: Annotated[npt.NDArray[np.float32], op.VectorType(3)]

    rows = [
        Row([np.ones((2, 3), np.float32), np.zeros((1, 3), np.float32)], np.array([7, 8, 9], np.float32)),
        Row([], np.array([1, 2, 3], np.float32)),
        Row([np.full((1, 3), 5, np.float64)], np.array([4, 5, 6], np.float32)),  # float64 parts: converted
    ]
    view = ctx.data.load_from_enumerable(rows, Row)
    assert view.schema["parts"].type == SequenceType(TensorType(DType.FLOAT32, (None, 3)))
    fitted = step.fit(view)
    scored = fitted.transform(view)
    for r, joined, count in zip(rows, scored.column("joined"), scored.column("count"), strict=True):
        want_joined, want_count = bare(model, {"parts": [p.astype(np.float32) for p in r.parts], "row": r.row})
        np.testing.assert_array_equal(joined, want_joined)
        assert count == want_count

    # The prediction engine with the generated classes.
    module = import_code(op.generate_schema_code(step.info), tmp_path)
    assert schema_of(module.OnnxInput)["parts"].type == SequenceType(TensorType(DType.FLOAT32, (None, 3)))
    engine = ctx.model.create_prediction_engine(fitted, module.OnnxInput, module.OnnxOutput)
    got = engine.predict(module.OnnxInput(parts=rows[0].parts, row=rows[0].row))
    want_joined, want_count = bare(model, {"parts": rows[0].parts, "row": rows[0].row})
    np.testing.assert_array_equal(got.joined, want_joined)
    assert got.count == want_count

    # A saved pipeline keeps the sequence column type and the results.
    buffer = io.BytesIO()
    ctx.model.save(fitted, view.schema, buffer)
    loaded, schema = ctx.model.load(io.BytesIO(buffer.getvalue()))
    assert schema["parts"].type == view.schema["parts"].type
    np.testing.assert_array_equal(loaded.transform(view).column("joined")[0], scored.column("joined")[0])


def test_sequence_column_of_another_element_type_is_refused(ctx: op.MLContext) -> None:
    step = ctx.transforms.apply_onnx_model(model_bytes=concat_model())
    schema = op.Schema.of(parts=SequenceType(TensorType(DType.STRING, (None, 3))), row=TensorType(DType.FLOAT32, (3,)))
    with pytest.raises(
        ColumnTypeError,
        match=r"column 'parts' feeds input tensor 'parts', which expects seq\(float32\[k,3\]\); "
        r"the column is seq<string\[\?,3\]>",
    ):
        step.output_schema(schema)
    plain = op.Schema.of(parts=TensorType(DType.FLOAT32, (None, 3)), row=TensorType(DType.FLOAT32, (3,)))
    with pytest.raises(ColumnTypeError, match=r"the column is float32\[\?,3\]"):
        step.output_schema(plain)


def test_optional_output_is_none_when_empty(ctx: op.MLContext, tmp_path: Path) -> None:
    model = optional_model()
    step = ctx.transforms.apply_onnx_model(model_bytes=model)

    @dataclass
    class In:
        cond: bool

    view = ctx.data.load_from_enumerable([In(True), In(False), In(True)], In)
    fitted = step.fit(view)
    assert fitted.output_schema(view.schema)["maybe"].type == OptionalType(
        SequenceType(TensorType(DType.FLOAT32, (2,)))
    )
    got = fitted.transform(view).column("maybe")
    assert got[1] is None
    for value in (got[0], got[2]):
        assert [v.tolist() for v in value] == [[1.0, 2.0], [1.0, 2.0]]
    (want,) = bare(model, {"cond": np.array(True)})
    assert [w.tolist() for w in want] == [v.tolist() for v in got[0]]
    assert bare(model, {"cond": np.array(False)}) == [None]

    module = import_code(op.generate_schema_code(step.info), tmp_path)
    assert "maybe: Annotated[list[npt.NDArray[np.float32]] | None" in op.generate_schema_code(step.info)
    engine = ctx.model.create_prediction_engine(fitted, module.OnnxInput, module.OnnxOutput)
    assert engine.predict(module.OnnxInput(cond=np.bool_(False))).maybe is None
    assert len(engine.predict(module.OnnxInput(cond=np.bool_(True))).maybe) == 2


def test_optional_input_takes_none_or_a_value(ctx: op.MLContext) -> None:
    model = optional_identity_model()
    step = ctx.transforms.apply_onnx_model(model_bytes=model)

    @dataclass
    class In:
        a: Annotated[list[npt.NDArray[np.float32]] | None, op.VectorType(5)]

    rows = [In(None), In([np.arange(5, dtype=np.float32)]), In([])]
    view = ctx.data.load_from_enumerable(rows, In)
    got = step.fit(view).transform(view).column("b")
    assert got[0] is None
    assert [v.tolist() for v in got[1]] == [list(range(5))]
    assert got[2] == []
    assert [v.tolist() for v in bare(model, {"a": [np.arange(5, dtype=np.float32)]})[0]] == [list(range(5))]


def test_map_input_feeds_dict_vectorizer(ctx: op.MLContext, tmp_path: Path) -> None:
    model = dict_vectorizer_model()
    step = ctx.transforms.apply_onnx_model(model_bytes=model)

    @dataclass
    class In:
        features: Annotated[dict[str, float], ColumnName("features")]

    rows = [In({"a": 1.0, "c": 3.5}), In({"z": 1.0}), In({"b": -2.0})]  # "z": not in the vocabulary
    view = ctx.data.load_from_enumerable(rows, In)
    assert view.schema["features"].type == MapType(DType.STRING, TensorType(DType.FLOAT32))
    dense = step.fit(view).transform(view).column("dense")
    for r, got in zip(rows, dense, strict=True):
        np.testing.assert_array_equal(got, bare(model, {"features": r.features})[0])
    assert dense.tolist() == [[[1.0, 0.0, 3.5]], [[0.0, 0.0, 0.0]], [[0.0, -2.0, 0.0]]]
    code = op.generate_schema_code(step.info)
    assert 'features: Annotated[dict[str, float], ColumnName("features")]' in code
    module = import_code(code, tmp_path)
    engine = ctx.model.create_prediction_engine(step.fit(view), module.OnnxInput, module.OnnxOutput)
    np.testing.assert_array_equal(engine.predict(module.OnnxInput(features={"b": 4.0})).dense, [[0.0, 4.0, 0.0]])


def test_mixed_batch_and_fixed_inputs_score_one_row_per_call(ctx: op.MLContext) -> None:
    """X [n] (a batch-like name) with a fixed [3] input: the model cannot stack rows, so X keeps
    its unknown size instead of being pinned to 1 (ONNX's simple/test_sequence_model8)."""
    graph = helper.make_graph(
        [
            helper.make_node("SplitToSequence", ["X", "splits"], ["s"]),
            helper.make_node("SequenceLength", ["s"], ["n_parts"]),
        ],
        "mixed",
        [helper.make_tensor_value_info("X", F, ["n"]), helper.make_tensor_value_info("splits", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("n_parts", TensorProto.INT64, [])],
    )
    step = ctx.transforms.apply_onnx_model(model_bytes=serialized(graph))
    assert not step.batched
    assert "but input 'splits' has none" in step.batch_axes["X"].reason

    @dataclass
    class In:
        X: Annotated[npt.NDArray[np.float32], op.VectorType(-1)]
        splits: Annotated[npt.NDArray[np.int64], op.VectorType(3)]

    rows = [
        In(np.arange(6, dtype=np.float32), np.array([1, 2, 3])),
        In(np.arange(3, dtype=np.float32), np.array([1, 1, 1])),
    ]
    view = ctx.data.load_from_enumerable(rows, In)
    assert step.fit(view).transform(view).column("n_parts").tolist() == [3, 3]


def test_a_declared_dimension_of_zero_is_a_size(ctx: op.MLContext, tmp_path: Path) -> None:
    """ONNX says a dim_value of 0 is a fixed size (an empty tensor), not an unknown dimension."""
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "start", "end", "axes"], ["empty"])],
        "zero",
        [helper.make_tensor_value_info("x", F, ["N", 3])],
        [helper.make_tensor_value_info("empty", F, ["N", 0])],
        [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("start", 0), ("end", 0), ("axes", 1))],
    )
    model = serialized(graph)
    step = ctx.transforms.apply_onnx_model(model_bytes=model)
    assert step.info.output("empty").shape == (None, 0)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    view = ctx.data.load_from_arrow(pa.table({"x": pa.FixedSizeListArray.from_arrays(x.reshape(-1), 3)}))
    fitted = step.fit(view)
    scored = fitted.transform(view)
    assert scored.schema["empty"].type == TensorType(DType.FLOAT32, (1, 0))
    got = scored.column("empty")
    assert got.shape == (2, 1, 0) and got.dtype == np.float32
    assert bare(model, {"x": x})[0].shape == (2, 0)
    # Stored in Arrow (and Parquet) as empty lists; read back with the declared shape.
    table = scored.to_arrow()
    assert table.schema.field("empty").type == pa.list_(pa.float32())
    assert ctx.data.load_from_arrow(table).column("empty").shape == (2, 1, 0)
    code = op.generate_schema_code(step.info)
    assert 'ColumnName("empty"), VectorType(1, 0)]' in code
    module = import_code(code, tmp_path)
    engine = ctx.model.create_prediction_engine(fitted, module.OnnxInput, module.OnnxOutput)
    assert engine.predict(module.OnnxInput(x=x[:1])).empty.shape == (1, 0)
