"""convert_to_onnx of pipelines around pretrained models that have unknown dimensions or no free
batch axis: the export, run in bare ONNX Runtime, equals ``transform`` bit for bit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpipe as op
from onnxpipe import VectorType
from onnxpipe.errors import ExportError
from onnxpipe.testing import assert_views_equal

from . import models
from .test_pretrained_models import _classes, _model

ctx = op.MLContext(seed=0)
RNG = np.random.default_rng(11)


def _weights(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.normal(size=shape).astype(np.float32), name)


def _run_export(model: op.Transformer, data: op.DataView, columns: Sequence[str]) -> onnx.ModelProto:
    """Export ``model``, run the export in bare ONNX Runtime on all of ``data`` in one call (its rows
    share their shapes), and compare ``columns`` with ``model.transform(data)`` bit for bit."""
    proto = ctx.model.convert_to_onnx(model, data, output_columns="all")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    n = data.row_count
    assert n is not None
    feeds = {}
    for i in session.get_inputs():
        ct = data.schema[i.name].type
        assert isinstance(ct, op.TensorType)
        feeds[i.name] = np.asarray(data.column(i.name)).reshape(n, *(np.shape(data.column(i.name)[0]) or (1,)))
    names = {o.name.removesuffix(".output"): o.name for o in session.get_outputs()}
    got = dict(zip(columns, session.run([names[c] for c in columns], feeds), strict=True))
    scored = model.transform(data)
    for c in columns:
        expected = scored.column(c)
        if isinstance(expected, np.ndarray):
            np.testing.assert_array_equal(got[c].reshape(expected.shape), expected, err_msg=c)
        else:  # sequences: one value per row
            assert list(got[c]) == [row[0] for row in expected], c
    return proto


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _reapplied_equals_transform(model: op.Transformer, data: op.DataView) -> None:
    """The export applied with apply_onnx_model (rows of any shapes, grouped by shape) gives the same view."""
    proto = ctx.model.convert_to_onnx(model, data)
    expected = model.transform(data)
    reapplied = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(data)
    selected = ctx.transforms.select_columns(*expected.schema.names).transform(reapplied)
    assert_views_equal(selected, expected, "re-applied export")


# ----------------------------------------------------------------------------- fixed batch of 1


def _fixed_batch_matmul() -> bytes:
    """``x float[1,4] -> y = relu(x @ W + B) float[1,3]``: a batch fixed at 1."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "fixed_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [_weights("W", 4, 3), _weights("B", 3)],
    )
    return models.serialized(graph)


def _fixed_batch_conv() -> bytes:
    """``image float[1,3,8,8] -> features float[1,2,6,6]`` (Conv 3x3) and ``pooled float[1,2]``."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "K", "KB"], ["features"], kernel_shape=[3, 3]),
            helper.make_node("GlobalAveragePool", ["features"], ["gap"]),
            helper.make_node("Flatten", ["gap"], ["pooled"]),
        ],
        "fixed_conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 2, 6, 6]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 2]),
        ],
        [_weights("K", 2, 3, 3, 3), _weights("KB", 2)],
    )
    return models.serialized(graph)


@dataclass
class Vec4:
    x: Annotated[npt.NDArray[np.float32], VectorType(4)]


@dataclass
class Image:
    image: Annotated[npt.NDArray[np.float32], VectorType(3, 8, 8)]


def test_a_fixed_batch_of_one_is_exported_as_a_loop_over_the_rows() -> None:
    data = ctx.data.load_from_enumerable([Vec4(RNG.normal(size=4).astype(np.float32)) for _ in range(5)], Vec4)
    model = ctx.transforms.apply_onnx_model(model_bytes=_fixed_batch_matmul()).fit(data)
    assert not model.batched  # type: ignore[attr-defined]
    proto = _run_export(model, data, ["y"])
    assert [n.op_type for n in proto.graph.node].count("Loop") == 1
    assert _dims(proto.graph.input[0]) == ["N", 4]
    assert _dims(proto.graph.output[-1]) == ["N", 1, 3]
    _reapplied_equals_transform(model, data)
    # Zero rows: the Loop gives [0, 1, 3] (a Scan would fail in ONNX Runtime).
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(["y"], {"x": np.zeros((0, 4), np.float32)})
    assert y.shape == (0, 1, 3)


def test_a_fixed_batch_conv_model_with_two_outputs() -> None:
    rows = [Image(RNG.normal(size=(3, 8, 8)).astype(np.float32)) for _ in range(4)]
    data = ctx.data.load_from_enumerable(rows, Image)
    model = ctx.transforms.apply_onnx_model(model_bytes=_fixed_batch_conv()).fit(data)
    _run_export(model, data, ["features", "pooled"])
    _reapplied_equals_transform(model, data)


def test_a_fixed_batch_model_in_a_pipeline_with_other_steps() -> None:
    data = ctx.data.load_from_enumerable([Vec4(RNG.normal(size=4).astype(np.float32)) for _ in range(6)], Vec4)
    pipeline = (
        ctx.transforms.normalize_min_max("x")
        .append(ctx.transforms.apply_onnx_model(model_bytes=_fixed_batch_matmul()))
        .append(ctx.transforms.top_k_labels("Top", "y", labels=["a", "b", "c"], k=2))
    )
    model = pipeline.fit(data)
    _run_export(model, data, ["y", "Top"])


# ----------------------------------------------------------------------------- a length, not a batch


def _frames_model() -> bytes:
    """``frames float[T,3]`` (T frames, no batch axis) -> ``per_frame float[T,2]`` and ``summary float[2]``."""
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["frames", "W"], ["per_frame"]),
            helper.make_node("ReduceMean", ["per_frame", "axes"], ["summary"], keepdims=0),
        ],
        "frames",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["T", 3])],
        [
            helper.make_tensor_value_info("per_frame", TensorProto.FLOAT, ["T", 2]),
            helper.make_tensor_value_info("summary", TensorProto.FLOAT, [2]),
        ],
        [_weights("W", 3, 2), axes],
    )
    return models.serialized(graph, [helper.make_opsetid("", 18)])


@dataclass
class Frames:
    frames: Annotated[npt.NDArray[np.float32], VectorType(-1, 3)]


@pytest.mark.parametrize("length", [1, 4, 7])
def test_a_length_first_model_takes_one_sequence_per_row(length: int) -> None:
    rows = [Frames(RNG.normal(size=(length, 3)).astype(np.float32)) for _ in range(3)]
    data = ctx.data.load_from_enumerable(rows, Frames)
    model = ctx.transforms.apply_onnx_model(model_bytes=_frames_model()).fit(data)
    assert not model.batched  # type: ignore[attr-defined]
    proto = _run_export(model, data, ["per_frame", "summary"])
    assert _dims(proto.graph.input[0]) == ["N", "frames_d1", 3]  # the frame count is symbolic


def test_rows_of_different_lengths_through_the_reapplied_export() -> None:
    rows = [Frames(RNG.normal(size=(n, 3)).astype(np.float32)) for n in (2, 5, 5, 1)]
    data = ctx.data.load_from_enumerable(rows, Frames)
    _reapplied_equals_transform(ctx.transforms.apply_onnx_model(model_bytes=_frames_model()).fit(data), data)


# ----------------------------------------------------------------------------- several unknown dimensions


def _image_model() -> bytes:
    """``pixels float[N,3,H,W]`` -> ``scaled`` (2x, same shape) and ``mean float[N,3]``."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["pixels", "two"], ["scaled"]),
            helper.make_node("GlobalAveragePool", ["pixels"], ["gap"]),
            helper.make_node("Flatten", ["gap"], ["mean"]),
        ],
        "images",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["N", 3, "H", "W"]),
            helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 3]),
        ],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    return models.serialized(graph)


@dataclass
class Pixels:
    pixels: Annotated[npt.NDArray[np.float32], VectorType(3, -1, -1)]


@dataclass
class PixelsWithBatch:
    pixels: Annotated[npt.NDArray[np.float32], VectorType(1, 3, -1, -1)]


@pytest.mark.parametrize("row_type", [Pixels, PixelsWithBatch])
@pytest.mark.parametrize("size", [(2, 3), (5, 4)])
def test_symbolic_height_and_width(row_type: type, size: tuple[int, int]) -> None:
    lead = (1,) if row_type is PixelsWithBatch else ()
    rows = [row_type(RNG.normal(size=(*lead, 3, *size)).astype(np.float32)) for _ in range(3)]
    data = ctx.data.load_from_enumerable(rows, row_type)
    model = ctx.transforms.apply_onnx_model(model_bytes=_image_model()).fit(data)
    assert model.batched  # type: ignore[attr-defined]
    proto = _run_export(model, data, ["scaled", "mean"])
    axes = len(lead) + 1
    assert _dims(proto.graph.input[0]) == ["N", *lead, 3, f"pixels_d{axes + 1}", f"pixels_d{axes + 2}"]
    assert _dims(next(o for o in proto.graph.output if o.name == "scaled")) == ["N", 1, 3, "scaled_d3", "scaled_d4"]


def test_images_of_different_sizes_through_the_reapplied_export() -> None:
    rows = [Pixels(RNG.normal(size=(3, h, w)).astype(np.float32)) for h, w in ((2, 3), (4, 4), (4, 4), (1, 6))]
    data = ctx.data.load_from_enumerable(rows, Pixels)
    _reapplied_equals_transform(ctx.transforms.apply_onnx_model(model_bytes=_image_model()).fit(data), data)


@dataclass
class Flat:
    x: Annotated[npt.NDArray[np.float32], VectorType(-1)]


def test_a_flat_column_feeds_an_input_with_one_unknown_dimension() -> None:
    # x float[N, seq, 4] from rows of 4 * seq values: Reshape [N, -1, 4].
    rows = [Flat(RNG.normal(size=12).astype(np.float32)) for _ in range(3)]
    data = ctx.data.load_from_enumerable(rows, Flat)
    model = ctx.transforms.apply_onnx_model(model_bytes=models.two_unknown_dims()).fit(data)
    _run_export(model, data, ["total", "doubled"])


@dataclass
class Ragged:
    v: Annotated[npt.NDArray[np.float32], VectorType(-1, 2)]
    k: float


def test_other_steps_keep_symbolic_dimensions() -> None:
    rows = [Ragged(np.array([[1, np.nan], [3, 4], [5, 6]], np.float32), 1.0), Ragged(RNG.random((3, 2)), 2.0)]
    data = ctx.data.load_from_enumerable(rows, Ragged)
    pipeline = ctx.transforms.replace_missing_values("v", replacement_mode="mean", impute_by_slot=False).append(
        ctx.transforms.concatenate("All", "v", "k")
    )
    model = pipeline.fit(data)
    proto = _run_export(model, data, ["v", "All"])
    assert _dims(proto.graph.input[0]) == ["N", "v_d1", 2]
    assert _dims(next(o for o in proto.graph.output if o.name == "All")) == ["N", "All_d1"]


# ----------------------------------------------------------------------------- control flow, ZipMap


def _loop_model(batch: int | str) -> bytes:
    """``x float[batch,3] -> y = x * 2 ** 3``, doubling three times in a Loop whose body reads
    ``two`` from the outer scope."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond"], ["cond_out"]),
            helper.make_node("Mul", ["acc", "two"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["three", "", "x"], ["y"], body=body)],
        "looping",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        [
            numpy_helper.from_array(np.array(3, np.int64), "three"),
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        ],
    )
    return models.serialized(graph)


@dataclass
class Vec3:
    x: Annotated[npt.NDArray[np.float32], VectorType(3)]


@pytest.mark.parametrize("batch", ["N", 1])
def test_a_model_with_a_loop_inside(batch: int | str) -> None:
    data = ctx.data.load_from_enumerable([Vec3(RNG.normal(size=3).astype(np.float32)) for _ in range(4)], Vec3)
    model = ctx.transforms.apply_onnx_model(model_bytes=_loop_model(batch)).fit(data)
    assert model.batched == (batch == "N")  # type: ignore[attr-defined]
    proto = _run_export(model, data, ["y"])
    np.testing.assert_array_equal(np.asarray(model.transform(data).column("y")).reshape(4, 3), data.column("x") * 8)
    # The inlined Loop's body reads the model's "two" from its outer scope, renamed with the graph.
    inner = next(n for n in _nodes(proto.graph) if n.op_type == "Mul")
    assert inner.input[1].startswith("pretrained") and inner.input[1].endswith("two")


def _nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    out = []
    for node in graph.node:
        out.append(node)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out.extend(_nodes(a.g))
    return out


def _zipmap_model() -> bytes:
    """``input float[1,3] -> label int64[1]`` and ``probabilities`` (ZipMap: one map per row)."""
    graph = helper.make_graph(
        [
            helper.make_node("Softmax", ["input"], ["probs"], axis=1),
            helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
            helper.make_node(
                "ZipMap", ["probs"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[10, 20, 30]
            ),
        ],
        "zipmap",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [1]),
            helper.make_value_info(
                "probabilities",
                helper.make_sequence_type_proto(
                    helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
                ),
            ),
        ],
    )
    return models.serialized(graph, [*models.OPSET, helper.make_opsetid("ai.onnx.ml", 1)])


@dataclass
class Three:
    input: Annotated[npt.NDArray[np.float32], VectorType(3)]


def test_a_fixed_batch_zipmap_is_rebuilt_after_the_loop() -> None:
    data = ctx.data.load_from_enumerable([Three(RNG.normal(size=3).astype(np.float32)) for _ in range(4)], Three)
    model = ctx.transforms.apply_onnx_model(model_bytes=_zipmap_model()).fit(data)
    assert not model.batched  # type: ignore[attr-defined]
    proto = _run_export(model, data, ["label", "probabilities"])
    assert [n.op_type for n in proto.graph.node if n.domain == "ai.onnx.ml"] == ["ZipMap"]
    _reapplied_equals_transform(model, data)


def test_silero_vad_exports_with_its_if_branches_in_the_row_loop() -> None:
    """A real model: silero-vad (inputs ``[?, ?]``, ``[2, ?, 128]`` and a scalar, no batch axis,
    If nodes with subgraphs) runs in the row loop; the reapplied export equals transform."""
    path = _model("silero_vad", "data/silero_vad.onnx")
    classes = _classes(path)
    audio = (RNG.standard_normal((3, 1, 512)) * 0.1).astype(np.float32)
    rows = [classes.OnnxInput(a, np.zeros((2, 1, 128), np.float32), np.int64(16000)) for a in audio]
    data = ctx.data.load_from_enumerable(rows, classes.OnnxInput)
    model = ctx.transforms.apply_onnx_model(path).fit(data)
    assert not model.batched  # type: ignore[attr-defined]
    proto = ctx.model.convert_to_onnx(model, data)
    assert _dims(proto.graph.input[0]) == ["N", "input_d1", "input_d2"]
    _reapplied_equals_transform(model, data)


# ----------------------------------------------------------------------------- what cannot be exported


def test_unexportable_cases_name_the_step() -> None:
    # Two unknown dimensions cannot be recovered from a flat row.
    flat = ctx.data.load_from_enumerable([Flat(np.zeros(12, np.float32))], Flat)
    model = ctx.transforms.apply_onnx_model(model_bytes=_image_model(), input_columns={"pixels": "x"}).fit(flat)
    with pytest.raises(
        ExportError,
        match=r"^step 0 \(apply_onnx_model\(<bytes>\)\) cannot be exported to ONNX: column 'x' \(float32\[\?\]\) "
        r"feeds input tensor 'pixels', whose rows are \[1,3,\?,\?\]",
    ):
        ctx.model.convert_to_onnx(model, flat)
    # A model without inputs scores one row per input row: a graph cannot know how many.
    constant = helper.make_graph(
        [helper.make_node("Constant", [], ["Y"], value=numpy_helper.from_array(np.array([1.5], np.float32)))],
        "constant",
        [],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])],
    )
    model = (
        ctx.transforms.copy_columns("x2", "x")
        .append(ctx.transforms.apply_onnx_model(model_bytes=models.serialized(constant)))
        .fit(flat)
    )
    with pytest.raises(ExportError, match=r"^step 1 \(apply_onnx_model\(<bytes>\)\) cannot be exported.*no inputs"):
        ctx.model.convert_to_onnx(model, flat)
    # A row loop stacks tensors: a sequence output of a fixed-batch model (other than ZipMap's) cannot be.
    sequences = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x", "x"], ["pair"]), helper.make_node("Identity", ["x"], ["y"])],
        "sequences",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [
            helper.make_value_info(
                "pair", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [1, 3]))
            ),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3]),
        ],
    )
    data = ctx.data.load_from_enumerable([Vec3(np.ones(3, np.float32))], Vec3)
    model = ctx.transforms.apply_onnx_model(model_bytes=models.serialized(sequences)).fit(data)
    with pytest.raises(ExportError, match=r"^step 0 \(apply_onnx_model\(<bytes>\)\) .* output 'pair' is a seq<"):
        ctx.model.convert_to_onnx(model, data)
    only_y = ctx.transforms.apply_onnx_model(model_bytes=models.serialized(sequences), output_column_names="y")
    _run_export(only_y.fit(data), data, ["y"])  # as the message says: leave it out
