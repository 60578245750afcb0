"""ONNX models built by the tests with onnx.helper (no downloads)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def serialized(graph: onnx.GraphProto, opsets: list[onnx.OperatorSetIdProto] | None = None) -> bytes:
    """``graph`` as model bytes (IR 8, opset 17 unless given), checked by onnx."""
    model = helper.make_model(graph, opset_imports=opsets or OPSET, producer_name="onnxpipe-tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def resnet_io(seed: int = 0) -> bytes:
    """ResNet50-v2's I/O names and shapes: ``data [N,3,224,224] -> resnetv24_dense0_fwd [N,1000]``."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(0, 1, (3, 1000)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.normal(0, 1, (1000,)).astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "B"], ["resnetv24_dense0_fwd"]),
        ],
        "resnet_io",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("resnetv24_dense0_fwd", TensorProto.FLOAT, ["N", 1000])],
        [w, b],
    )
    return serialized(graph)


def two_unknown_dims() -> bytes:
    """``x float[N,seq,4]``: ``total = ReduceSum(x, axis 1) [N,4]`` and ``doubled = 2x [N,seq,4]``."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=0),
            helper.make_node("Mul", ["x", "two"], ["doubled"]),
        ],
        "two_unknown",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "seq", 4])],
        [
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["N", "seq", 4]),
        ],
        [two, axes],
    )
    return serialized(graph)


def float16_scale() -> bytes:
    """``h float16[N,3] -> y float16[N,3] = h * 0.5``."""
    half = numpy_helper.from_array(np.array(0.5, np.float16), "half")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["h", "half"], ["y"])],
        "f16",
        [helper.make_tensor_value_info("h", TensorProto.FLOAT16, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 3])],
        [half],
    )
    return serialized(graph)


def rank0_increment() -> bytes:
    """A scalar input: ``n int64[] -> m int64[] = n + 1``."""
    one = numpy_helper.from_array(np.array(1, np.int64), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["n", "one"], ["m"])],
        "rank0",
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("m", TensorProto.INT64, [])],
        [one],
    )
    return serialized(graph)


def string_lookup() -> bytes:
    """``word string[N] -> code int64[N]`` through an ai.onnx.ml LabelEncoder (unknown -> -1)."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "LabelEncoder",
                ["word"],
                ["code"],
                domain="ai.onnx.ml",
                keys_strings=["banana", "hotdog", "tomato"],
                values_int64s=[0, 1, 2],
                default_int64=-1,
            )
        ],
        "strings",
        [helper.make_tensor_value_info("word", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("code", TensorProto.INT64, ["N"])],
    )
    return serialized(graph, [*OPSET, helper.make_opsetid("ai.onnx.ml", 2)])


def mlnet_style_export() -> bytes:
    """What ML.NET's ConvertToOnnx writes: ``.output`` names, slot names and unused tensors."""
    w = numpy_helper.from_array(np.array([[1.0, -1.0], [2.0, 0.5], [0.0, 1.0]], np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["Features", "W"], ["Score"]),
            helper.make_node("Identity", ["Score"], ["Score.output"]),
            helper.make_node("Identity", ["Features"], ["Features.output"]),
            helper.make_node(
                "LabelEncoder",
                ["mlnet.Score.unusedInput"],
                ["mlnet.Score.unusedOutput"],
                name="mlnet.Score.SlotNames",
                domain="ai.onnx.ml",
                keys_strings=["benign", "malignant"],
                values_int64s=[0, 1],
            ),
        ],
        "mlnet",
        [
            helper.make_tensor_value_info("Features", TensorProto.FLOAT, [-1, 3]),
            helper.make_tensor_value_info("mlnet.Score.unusedInput", TensorProto.STRING, [-1, 1]),
        ],
        [
            helper.make_tensor_value_info("Features.output", TensorProto.FLOAT, [-1, 3]),
            helper.make_tensor_value_info("Score.output", TensorProto.FLOAT, [-1, 2]),
            helper.make_tensor_value_info("mlnet.Score.unusedOutput", TensorProto.INT64, [-1, 1]),
        ],
        [w],
    )
    model = helper.make_model(
        graph, opset_imports=[*OPSET, helper.make_opsetid("ai.onnx.ml", 2)], producer_name="ML.NET"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def batch_reducing() -> bytes:
    """Declares a free batch axis but sums over it: ``x float[N,2] -> s float[N] = sum over rows``."""
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)],
        "reduce_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["M"])],
        [axes],
    )
    return serialized(graph)


def unknown_rank_output() -> bytes:
    """``x float[N,3] -> y`` declared without a shape (unknown rank), ``y = x + x``."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "unknown_rank",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=OPSET)  # onnx.checker insists on output shapes
    model.ir_version = 8
    return model.SerializeToString()


# A tiny WordPiece vocabulary: BertTokenizer needs its five special tokens.
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "on", "##nx"]


def bert_tokenizer() -> bytes:
    """onnxruntime-extensions' ``BertTokenizer`` (domain ``ai.onnx.contrib``) over
    :data:`BERT_VOCAB`: ``text string[1] -> input_ids, token_type_ids, attention_mask int64[?]``
    (not checked by onnx, which does not know the domain)."""
    node = helper.make_node(
        "BertTokenizer",
        ["text"],
        ["input_ids", "token_type_ids", "attention_mask"],
        domain="ai.onnx.contrib",
        vocab_file="\n".join(BERT_VOCAB),
        do_lower_case=1,
    )
    outputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [None]) for n in node.output]
    text = helper.make_tensor_value_info("text", TensorProto.STRING, [1])
    graph = helper.make_graph([node], "tokenizer", [text], outputs)
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.contrib", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()
