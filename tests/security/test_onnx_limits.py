"""Crafted ONNX models never make onnxpipe allocate without bound or run forever while loading.

A few hundred bytes of ONNX can ask for terabytes: an initializer declaring huge dimensions, a
sparse tensor whose dense form is huge, or a ``ConstantOfShape`` / ``Expand`` / ``Tile`` /
``Range`` / ``Resize`` / ``OneHot`` whose sizes are constants (ONNX Runtime folds constants when it
opens the model, or allocates at the first run). A ``Loop`` with a huge trip count runs forever.
Each model is opened in a child process with an address-space limit and a timeout: it must be
refused with a ``ModelLoadError`` naming the tensor or node, quickly, without touching the limit.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxpipe as op
from onnxpipe.errors import InvalidArgumentError, ModelLoadError
from onnxpipe.runtime._guard import DEFAULT_MAX_BYTES, DEFAULT_VERIFY_TIMEOUT
from onnxpipe.transforms.onnx_model import OnnxTransformer
from tests.security.conftest import Outcome

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
MEMORY = 3 << 30  # the child's address space: far below any bomb, above onnxruntime's own needs


def vi(name: str, elem: int = FLOAT, dims: list[int | str] | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [1] if dims is None else dims)


def model(
    nodes: list[onnx.NodeProto],
    inits: list[TensorProto] | None = None,
    *,
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
    sparse: list[onnx.SparseTensorProto] | None = None,
) -> bytes:
    graph = helper.make_graph(
        nodes, "g", inputs if inputs is not None else [vi("x")], outputs or [vi("y")], inits or []
    )
    graph.sparse_initializer.extend(sparse or [])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def ints(name: str, values: list[int]) -> TensorProto:
    return helper.make_tensor(name, INT64, [len(values)], values)


def reduce_to_y(big: str) -> list[onnx.NodeProto]:
    """y = x + sum(big): the big tensor is needed for the output."""
    return [helper.make_node("ReduceSum", [big], ["r"], keepdims=0), helper.make_node("Add", ["x", "r"], ["y"])]


def bombs() -> dict[str, tuple[bytes, str]]:
    """{attack: (model bytes, what the error must say)}."""
    huge = [100_000, 100_000, 100]  # 10**12 elements
    shape_of_w = helper.make_tensor("w", FLOAT, [1000], np.zeros(1000, np.float32))
    chain = [
        helper.make_node("Shape", ["w"], ["s"]),
        helper.make_node("Concat", ["s", "s", "s", "s"], ["s4"], axis=0),  # [1000]*4 = 10**12 elements
        helper.make_node("ConstantOfShape", ["s4"], ["big"], name="chained"),
    ]
    return {
        "ConstantOfShape from an initializer": (
            model(
                [helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos"), *reduce_to_y("big")],
                [ints("shape", huge)],
            ),
            "node 'cos' (ConstantOfShape) would produce a tensor of shape [100000,100000,100]",
        ),
        "ConstantOfShape from a Constant node": (
            model(
                [
                    helper.make_node("Constant", [], ["shape"], value_ints=huge),
                    helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos2"),
                    *reduce_to_y("big"),
                ]
            ),
            "node 'cos2' (ConstantOfShape) would produce",
        ),
        "ConstantOfShape from Shape and Concat": (model([*chain, *reduce_to_y("big")], [shape_of_w]), "node 'chained'"),
        "ConstantOfShape from Neg": (  # what expanded layer normalizations do, with a bomb's sizes
            model(
                [
                    helper.make_node("Neg", ["negative"], ["shape"]),
                    helper.make_node("ConstantOfShape", ["shape"], ["big"], name="negated"),
                    *reduce_to_y("big"),
                ],
                [ints("negative", [-d for d in huge])],
            ),
            "node 'negated' (ConstantOfShape) would produce a tensor of shape [100000,100000,100]",
        ),
        "Expand": (
            model(
                [helper.make_node("Expand", ["x", "shape"], ["big"], name="expand"), *reduce_to_y("big")],
                [ints("shape", huge)],
            ),
            "node 'expand' (Expand) would produce",
        ),
        "Tile": (
            model(
                [helper.make_node("Tile", ["x", "reps"], ["big"], name="tile"), *reduce_to_y("big")],
                [ints("reps", [10**12])],
            ),
            "node 'tile' (Tile) would produce a tensor of shape [1000000000000]",
        ),
        "Range": (
            model(
                [helper.make_node("Range", ["a", "b", "d"], ["big"], name="range"), *reduce_to_y("big")],
                [helper.make_tensor(n, INT64, [], [v]) for n, v in (("a", 0), ("b", 10**13), ("d", 1))],
                outputs=[vi("y", INT64)],
                inputs=[vi("x", INT64)],
            ),
            "node 'range' (Range) would produce",
        ),
        "Resize to constant sizes": (
            model(
                [helper.make_node("Resize", ["x4", "", "", "sizes"], ["big"], name="resize"), *reduce_to_y("big")],
                [ints("sizes", [1, 1, 10**6, 10**6])],
                inputs=[vi("x", FLOAT, [1]), vi("x4", FLOAT, [1, 1, 2, 2])],
            ),
            "node 'resize' (Resize) would produce",
        ),
        "OneHot": (
            model(
                [helper.make_node("OneHot", ["idx", "depth", "vals"], ["big"], name="onehot"), *reduce_to_y("big")],
                [helper.make_tensor("depth", INT64, [], [10**12]), helper.make_tensor("vals", FLOAT, [2], [0, 1])],
                inputs=[vi("x"), vi("idx", INT64, [1])],
            ),
            "node 'onehot' (OneHot) would produce",
        ),
        "initializer with huge dims": (
            model([helper.make_node("Add", ["x", "W"], ["y"])], [_declared("W", [1 << 20, 1 << 20])]),
            "tensor 'W' (initializer) declares the shape [1048576,1048576]: 4,398,046,511,104 bytes",
        ),
        "initializer with a negative dim": (
            model([helper.make_node("Add", ["x", "W"], ["y"])], [_declared("W", [-1, 4])]),
            "tensor 'W' (initializer) has a negative dimension [-1, 4]",
        ),
        "sparse initializer with a huge dense shape": (
            model(
                [helper.make_node("Add", ["x", "S"], ["y"])],
                sparse=[
                    helper.make_sparse_tensor(
                        helper.make_tensor("S", FLOAT, [1], [1.0]), ints("S_idx", [0]), [1 << 20, 1 << 20]
                    )
                ],
            ),
            "sparse tensor 'S' (sparse initializer) has the dense shape [1048576,1048576]",
        ),
        "Constant with huge declared dims": (
            model(
                [
                    helper.make_node("Constant", [], ["W"], value=_declared("c", [1 << 40])),
                    helper.make_node("Add", ["x", "W"], ["y"]),
                ]
            ),
            "tensor 'c' (attribute 'value' of an unnamed Constant node) declares the shape [1099511627776]",
        ),
        "huge declared input dims for a synthetic feed": (
            model(
                [helper.make_node("Identity", ["x"], ["y"])],
                inputs=[vi("x"), vi("mlnet.F.unusedInput", FLOAT, [1 << 20, 1 << 20])],
            ),
            "input 'mlnet.F.unusedInput': the model declares dimensions [1048576,1048576]",
        ),
    }


def _declared(name: str, dims: list[int]) -> TensorProto:
    """A tensor that declares ``dims`` but holds (almost) no data."""
    t = TensorProto()
    t.name, t.data_type = name, FLOAT
    t.dims.extend(dims)
    t.raw_data = b"\0" * 4
    return t


OPEN = """
import json
import onnxpipe as op
from onnxpipe.errors import OnnxPipeError
for name, path in json.loads(CASES):
    try:
        op.MLContext().transforms.apply_onnx_model(path, verify_timeout=1)
        print(json.dumps([name, "loaded", ""]))
    except OnnxPipeError as exc:
        print(json.dumps([name, type(exc).__name__, str(exc)]))
"""


def open_all(
    isolated: Callable[..., Outcome], cases: dict[str, Path], timeout: float = 90
) -> dict[str, tuple[str, str]]:
    payload = json.dumps([[name, str(path)] for name, path in cases.items()])
    code = f"CASES = {payload!r}\n" + OPEN
    outcome = isolated(code, memory=MEMORY, timeout=timeout)
    assert not outcome.timed_out and outcome.returncode == 0 and outcome.clean, outcome
    assert "onnxruntime" not in outcome.stderr, outcome  # ONNX Runtime logs nothing of its own
    results = {}
    for line in outcome.stdout.splitlines():
        name, kind, message = json.loads(line)
        results[name] = (kind, message)
    assert set(results) == set(cases), outcome
    return results


def test_memory_bombs_are_refused_before_onnxruntime_allocates(
    isolated: Callable[..., Outcome], tmp_path: Path
) -> None:
    attacks = bombs()
    cases = {}
    for i, (name, (data, _)) in enumerate(attacks.items()):
        assert len(data) < 8192, name  # tiny files
        cases[name] = tmp_path / f"bomb{i}.onnx"
        cases[name].write_bytes(data)
    for name, (error, message) in open_all(isolated, cases).items():
        assert error == "ModelLoadError", (name, error, message)
        assert attacks[name][1] in message, (name, message)
        assert "max_bytes" in message or "negative dimension" in message, (name, message)


def test_max_bytes_is_the_limit(tmp_path: Path) -> None:
    weights = helper.make_tensor("W", FLOAT, [1000], np.ones(1000, np.float32))
    data = model(
        [helper.make_node("Add", ["x", "W"], ["y"])],
        [weights],
        inputs=[vi("x", FLOAT, [1000])],
        outputs=[vi("y", FLOAT, [1000])],
    )
    ctx = op.MLContext()
    ctx.transforms.apply_onnx_model(model_bytes=data)  # 4 KB of weights: fine by default
    with pytest.raises(ModelLoadError, match=r"more than max_bytes=3,000"):
        ctx.transforms.apply_onnx_model(model_bytes=data, max_bytes=3000)
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match=r"model 'm\.onnx' is [\d,]+ bytes, more than max_bytes=100"):
        ctx.transforms.apply_onnx_model(path, max_bytes=100)  # the file itself is not read
    cos = model(
        [helper.make_node("ConstantOfShape", ["s"], ["big"], name="c"), *reduce_to_y("big")], [ints("s", [1000, 1000])]
    )
    with pytest.raises(
        ModelLoadError, match=r"node 'c' \(ConstantOfShape\) would produce a tensor of shape \[1000,1000\]"
    ):
        ctx.transforms.apply_onnx_model(model_bytes=cos, max_bytes=1 << 20)
    ctx.transforms.apply_onnx_model(model_bytes=cos)  # 4 MB folded: fine by default


def test_limit_arguments_are_checked_and_documented() -> None:
    data = model([helper.make_node("Identity", ["x"], ["y"])])
    ctx = op.MLContext()
    for bad in (0, -1, True, 1.5, "4GB"):
        with pytest.raises(InvalidArgumentError, match="max_bytes must be a positive number of bytes"):
            ctx.transforms.apply_onnx_model(model_bytes=data, max_bytes=bad)  # type: ignore[arg-type]
    for bad_timeout in (0, -1, float("inf"), float("nan"), "10"):
        with pytest.raises(InvalidArgumentError, match="verify_timeout must be a positive number of seconds or None"):
            ctx.transforms.apply_onnx_model(model_bytes=data, verify_timeout=bad_timeout)  # type: ignore[arg-type]
    # The catalog method repeats the defaults of the module constants.
    for fn in (ctx.transforms.apply_onnx_model, OnnxTransformer):
        params = inspect.signature(fn).parameters
        assert params["max_bytes"].default == DEFAULT_MAX_BYTES == 4 << 30
        assert params["verify_timeout"].default == DEFAULT_VERIFY_TIMEOUT == 10.0


# ------------------------------------------------------------------------------------------------
# Time


def loop_model(trips: int, *, scan_output: bool = False) -> bytes:
    """y = x, after ``trips`` iterations of a Loop that does nothing (a constant trip count)."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [vi("i", INT64, []), vi("cond_in", TensorProto.BOOL, []), vi("c_in")],
        [vi("cond_out", TensorProto.BOOL, []), vi("c_out")],
    )
    return model(
        [helper.make_node("Loop", ["M", "", "x"], ["y"], body=body, name="forever")],
        [helper.make_tensor("M", INT64, [], [trips])],
    )


def test_loop_that_never_ends_is_stopped_at_the_deadline(isolated: Callable[..., Outcome], tmp_path: Path) -> None:
    path = tmp_path / "loop.onnx"
    path.write_bytes(loop_model(2**62))
    code = f"""
    import time
    import onnxpipe as op
    from onnxpipe.errors import ModelLoadError
    start = time.monotonic()
    try:
        op.MLContext().transforms.apply_onnx_model({str(path)!r}, verify_timeout=1)
    except ModelLoadError as exc:
        print("REFUSED", round(time.monotonic() - start, 1), exc)
    """
    outcome = isolated(code, memory=MEMORY, timeout=60)
    assert not outcome.timed_out and outcome.returncode == 0 and outcome.clean, outcome
    assert "REFUSED" in outcome.stdout, outcome
    assert "did not finish in 1 s" in outcome.stdout and "verify_timeout=" in outcome.stdout, outcome
    seconds = float(outcome.stdout.split()[1])
    assert seconds < 20, outcome
    assert "onnxruntime" not in outcome.stderr, outcome


def test_models_with_short_loops_load_and_the_deadline_can_be_lifted() -> None:
    ctx = op.MLContext()
    start = time.monotonic()
    t = ctx.transforms.apply_onnx_model(model_bytes=loop_model(10), verify_timeout=5)
    assert t.verify_timeout == 5.0 and t.max_bytes == DEFAULT_MAX_BYTES
    # With no deadline nothing is run at construction: even this model opens at once.
    ctx.transforms.apply_onnx_model(model_bytes=loop_model(2**62), verify_timeout=None)
    assert time.monotonic() - start < 10


def test_run_with_deadline_reports_other_failures_as_execution_errors() -> None:
    import onnxruntime as ort

    from onnxpipe.errors import ExecutionError
    from onnxpipe.runtime._session import run_with_deadline

    data = model([helper.make_node("Identity", ["x"], ["y"])])
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert run_with_deadline(session, None, {"x": np.ones(1, np.float32)}, 1.0)[0].tolist() == [1.0]
    with pytest.raises(ExecutionError, match="ONNX Runtime failed on a synthetic input"):
        run_with_deadline(session, None, {"x": np.ones(3, np.int64)}, 1.0, label="m")
    session = ort.InferenceSession(loop_model(2**62), providers=["CPUExecutionProvider"])
    with pytest.raises(ModelLoadError, match=r"^m did not finish in 0\.5 s"):
        run_with_deadline(session, None, {"x": np.ones(1, np.float32)}, 0.5, label="m")
