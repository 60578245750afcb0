"""A ResNet50-v2-shaped ONNX model with random weights, built with ``onnx.helper`` only.

Same graph shape as the ONNX model zoo's ``resnet50-v2-7.onnx`` (Gluon's pre-activation
ResNet50 v2): input ``data`` float[N,3,224,224], output ``resnetv24_dense0_fwd`` float[N,1000].

Layout: input BatchNorm (as in the zoo model), stem Conv 7x7/2 (64) + BN + ReLU + MaxPool 3x3/2,
then 4 stages of bottleneck blocks [3, 4, 6, 3] with 256/512/1024/2048 output channels. Each
block is pre-activation: BN -> ReLU -> Conv1x1 -> BN -> ReLU -> Conv3x3 (stride here) -> BN ->
ReLU -> Conv1x1, plus the shortcut (a projection Conv1x1 of the first activation in the first
block of each stage, the identity otherwise). Then BN + ReLU, GlobalAveragePool, Flatten and a
Gemm to 1000 classes. Conv weights are He-initialised, BN statistics are mean ~0, var ~1.
Opset 13, IR version 8. About 25.6 M parameters (~100 MB).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Bump when the graph or the weights change, so that cached files are rebuilt.
MODEL_VERSION = "v1"
INPUT_NAME = "data"
OUTPUT_NAME = "resnetv24_dense0_fwd"
IMAGE_SHAPE = (3, 224, 224)
STAGES = ((3, 256, 1), (4, 512, 2), (6, 1024, 2), (3, 2048, 2))  # (blocks, channels, stride)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counts: Counter[str] = Counter()

    def _name(self, kind: str) -> str:
        name = f"resnetv24_{kind}{self._counts[kind]}"
        self._counts[kind] += 1
        return name

    def _init(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value.astype(np.float32, copy=False), name))
        return name

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1) -> str:
        name = self._name("conv")
        std = math.sqrt(2.0 / (c_in * kernel * kernel))  # He (fan-in) initialisation
        w = self.rng.standard_normal((c_out, c_in, kernel, kernel), dtype=np.float32) * np.float32(std)
        out = f"{name}_fwd"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self._init(f"{name}_weight", w)],
                [out],
                name=name,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[kernel // 2] * 4,
                dilations=[1, 1],
                group=1,
            )
        )
        return out

    def bn(self, x: str, channels: int) -> str:
        name = self._name("batchnorm")
        r = self.rng
        gamma = 1.0 + 0.05 * r.standard_normal(channels)
        beta = 0.05 * r.standard_normal(channels)
        mean = 0.05 * r.standard_normal(channels)
        var = 1.0 + 0.05 * np.abs(r.standard_normal(channels))
        inputs = [x] + [
            self._init(f"{name}_{part}", value)
            for part, value in (("gamma", gamma), ("beta", beta), ("running_mean", mean), ("running_var", var))
        ]
        out = f"{name}_fwd"
        self.nodes.append(helper.make_node("BatchNormalization", inputs, [out], name=name, epsilon=1e-5))
        return out

    def relu(self, x: str) -> str:
        name = self._name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [f"{name}_fwd"], name=name))
        return f"{name}_fwd"

    def op(self, kind: str, op_type: str, inputs: list[str], **attrs: Any) -> str:
        name = self._name(kind)
        self.nodes.append(helper.make_node(op_type, inputs, [f"{name}_fwd"], name=name, **attrs))
        return f"{name}_fwd"

    def bottleneck(self, x: str, c_in: int, c_out: int, stride: int, project: bool) -> str:
        mid = c_out // 4
        act = self.relu(self.bn(x, c_in))
        shortcut = self.conv(act, c_in, c_out, 1, stride) if project else x
        y = self.conv(act, c_in, mid, 1)
        y = self.conv(self.relu(self.bn(y, mid)), mid, mid, 3, stride)
        y = self.conv(self.relu(self.bn(y, mid)), mid, c_out, 1)
        return self.op("plus", "Add", [y, shortcut])

    def dense(self, x: str, c_in: int, c_out: int) -> str:
        w = self.rng.standard_normal((c_out, c_in), dtype=np.float32) * np.float32(math.sqrt(1.0 / c_in))
        b = np.zeros(c_out, np.float32)
        name = "resnetv24_dense0"
        inputs = [x, self._init(f"{name}_weight", w), self._init(f"{name}_bias", b)]
        self.nodes.append(helper.make_node("Gemm", inputs, [OUTPUT_NAME], name=name, alpha=1.0, beta=1.0, transB=1))
        return OUTPUT_NAME


def build_resnet50_v2(seed: int = 0) -> onnx.ModelProto:
    """The model described in the module docstring, with weights drawn from ``seed``."""
    b = _Builder(seed)
    x = b.bn(INPUT_NAME, 3)
    x = b.relu(b.bn(b.conv(x, 3, 64, 7, 2), 64))
    x = b.op("pool", "MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels = 64
    for blocks, c_out, stride in STAGES:
        for i in range(blocks):
            x = b.bottleneck(x, channels, c_out, stride if i == 0 else 1, project=i == 0)
            channels = c_out
    x = b.relu(b.bn(x, channels))
    x = b.op("pool", "GlobalAveragePool", [x])
    x = b.op("flatten", "Flatten", [x], axis=1)
    b.dense(x, channels, 1000)
    graph = helper.make_graph(
        b.nodes,
        "resnet50_v2_random",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", *IMAGE_SHAPE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1000])],
        b.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="onnxpipe-bench",
        producer_version=MODEL_VERSION,
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def cached_model_bytes(models_dir: Path, seed: int = 0) -> tuple[bytes, Path, bool]:
    """The serialized model, built once and cached in ``models_dir``.

    Returns ``(bytes, path, built_now)``; the file name carries ``MODEL_VERSION`` and the seed.
    """
    path = models_dir / f"resnet50v2_random_{MODEL_VERSION}_seed{seed}.onnx"
    if path.is_file():
        return path.read_bytes(), path, False
    models_dir.mkdir(parents=True, exist_ok=True)
    data = build_resnet50_v2(seed).SerializeToString()
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data, path, True
