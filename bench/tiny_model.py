"""A tiny tabular ONNX model: ``X float[N,4] -> MatMul -> Add -> Sigmoid -> Y float[N,1]``.

Built with ``onnx.helper`` only (opset 13, IR version 8), so that a benchmark on it measures the
cost around ONNX Runtime rather than the model's arithmetic.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_NAME = "X"
OUTPUT_NAME = "Y"
FEATURES = 4


def build_tiny_model(seed: int = 0) -> bytes:
    """The serialized model, with weights drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((FEATURES, 1)).astype(np.float32)
    b = rng.standard_normal(1).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [INPUT_NAME, "W"], ["XW"], name="matmul"),
            helper.make_node("Add", ["XW", "B"], ["logit"], name="add"),
            helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME], name="sigmoid"),
        ],
        "tiny_logistic",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnxpipe-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
