"""``onnxpipe serve``: models with a fixed batch of 1 are not merged, and hot reload (changed,
corrupt, new and removed model files) on the real server, polling every 0.2 s."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("orjson", reason="the serve extra (orjson) is not installed")
pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")

from onnx import TensorProto, helper, numpy_helper

from onnxpipe import MLContext, Schema, Transformer
from onnxpipe.serving import ModelRepository, ServerSettings
from onnxpipe.serving._batching import Batcher
from tests import models
from tests.test_serving import _expected, _get, _post, _Server, _training_data

ctx = MLContext(seed=0)


def _fixed_batch_one() -> bytes:
    """``x float[1,3] -> y float[1,3] = x * 2``: a model exported with a fixed batch of 1."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "fixed1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [two],
    )
    return models.serialized(graph)


def _train(flip: bool) -> Transformer:
    data = _training_data()
    if flip:
        data = {**data, "Label": ~data["Label"]}
    est = ctx.transforms.concatenate("Features", "age", "hours").append(
        ctx.binary_classification.trainers.lbfgs_logistic_regression()
    )
    model: Transformer = est.fit(ctx.data.load_from_dict(data))
    return model


def _write(path: Path, write: Callable[[Path], object]) -> None:
    """Replace ``path`` atomically (write beside it, then rename), as the README recommends."""
    tmp = path.parent / f".{path.name}.tmp"
    write(tmp)
    os.replace(tmp, path)


def _save(model: Transformer) -> Callable[[Path], None]:
    return lambda p: ctx.model.save(model, ctx.data.load_from_dict(_training_data()), p)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


_AGE = np.array([30, 40], np.float32)
_HOURS = np.array([20, 50], np.float32)
_BODY = json.dumps(
    {
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "FP32", "data": _AGE.tolist()},
            {"name": "hours", "shape": [2], "datatype": "FP32", "data": _HOURS.tolist()},
        ]
    }
).encode()


def _scores(server: _Server, path: str) -> np.ndarray | None:
    status, doc = _post(server, path, _BODY)
    if status != 200:
        return None
    return np.array(next(o for o in doc["outputs"] if o["name"] == "Score")["data"], np.float32)


def _same(got: np.ndarray | None, expected: np.ndarray) -> bool:
    return got is not None and bool(np.array_equal(got, expected))


# --- a fixed batch of 1 ---------------------------------------------------------------------------


def test_fixed_batch_of_one_is_not_merged(tmp_path: Path) -> None:
    (tmp_path / "fixed" / "1").mkdir(parents=True)
    (tmp_path / "fixed" / "1" / "model.onnx").write_bytes(_fixed_batch_one())
    (tmp_path / "free" / "1").mkdir(parents=True)
    (tmp_path / "free" / "1" / "model.onnx").write_bytes(models.float16_scale())
    # the same model inside a saved pipeline (after a step of its own) is not merged either
    onnx_step = ctx.transforms.apply_onnx_model(model_file=str(tmp_path / "fixed" / "1" / "model.onnx"))
    pipeline = ctx.transforms.copy_columns("x", "raw").append(onnx_step)
    data = ctx.data.load_from_dict({"raw": np.ones((2, 3), np.float32)})
    (tmp_path / "wrapped" / "1").mkdir(parents=True)
    ctx.model.save(pipeline.fit(data), data.schema, tmp_path / "wrapped" / "1" / "model.zip")
    repo = ModelRepository.open(tmp_path, ctx)
    fixed, free, wrapped = repo.get("fixed"), repo.get("free"), repo.get("wrapped")
    assert fixed.max_batch_size == 1
    assert wrapped.max_batch_size == 1
    assert free.max_batch_size is None
    assert Batcher(fixed, 32, 5.0).max_batch_size == 1
    assert Batcher(free, 32, 5.0).max_batch_size == 32

    async def concurrent(model: Any, columns: list[dict[str, np.ndarray]]) -> tuple[int, list[dict[str, np.ndarray]]]:
        batcher = Batcher(model, 32, 20.0)
        schema = Schema(model.inputs)
        try:
            results = await asyncio.gather(*(batcher.score(schema, c, len(c[model.inputs[0].name])) for c in columns))
        finally:
            await batcher.close()
        return batcher.scoring_calls, list(results)

    rng = np.random.default_rng(0)
    requests = [{"x": rng.normal(size=(n, 3)).astype(np.float32)} for n in (1, 1, 2, 1, 3)]
    calls, results = asyncio.run(concurrent(fixed, requests))
    assert calls == len(requests)  # one scoring call per request, never merged
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["y"], request["x"] * 2)  # several rows: scored row by row

    halves = [{"h": rng.normal(size=(1, 3)).astype(np.float16)} for _ in range(6)]
    calls, _ = asyncio.run(concurrent(free, halves))
    assert calls < len(halves)  # a free batch dimension is merged


def test_fixed_batch_of_one_served(tmp_path: Path) -> None:
    (tmp_path / "fixed" / "1").mkdir(parents=True)
    (tmp_path / "fixed" / "1" / "model.onnx").write_bytes(_fixed_batch_one())
    with _Server(tmp_path, ServerSettings(max_batch_size=32, max_batch_delay_ms=5.0)) as server:
        x = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
        body = json.dumps({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": x}]}).encode()
        status, doc = _post(server, "/v2/models/fixed/infer", body)
        assert status == 200, doc
        assert doc["outputs"][0]["shape"] == [2, 3]
        np.testing.assert_array_equal(np.array(doc["outputs"][0]["data"], np.float32).reshape(2, 3), np.array(x) * 2)


# --- hot reload ------------------------------------------------------------------------------------


@pytest.fixture()
def reloading(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    root = tmp_path / "repo"
    for version in ("1", "2"):
        (root / "income" / version).mkdir(parents=True)
        _save(_train(flip=False))(root / "income" / version / "model.zip")
    with _Server(root, ServerSettings(max_batch_size=32, max_batch_delay_ms=1.0, reload_interval_s=0.2)) as server:
        yield server, root


def test_reload_swaps_in_a_retrained_model(reloading: tuple[_Server, Path]) -> None:
    server, root = reloading
    old = _scores(server, "/v2/models/income/versions/1/infer")
    assert old is not None
    retrained = _train(flip=True)
    new = _expected(retrained, _AGE, _HOURS)["Score"]
    assert not np.allclose(old, new)
    _write(root / "income" / "1" / "model.zip", _save(retrained))
    _wait_for(lambda: _same(_scores(server, "/v2/models/income/versions/1/infer"), new), "the retrained model")
    np.testing.assert_array_equal(_scores(server, "/v2/models/income/versions/2/infer"), old)  # untouched
    status, doc = _get(server, "/v2/models/income/versions/1/ready")
    assert status == 200 and doc["ready"] is True and "reload_errors" not in doc


def test_corrupt_file_keeps_the_old_model(reloading: tuple[_Server, Path], caplog: pytest.LogCaptureFixture) -> None:
    server, root = reloading
    old = _scores(server, "/v2/models/income/versions/1/infer")
    with caplog.at_level(logging.ERROR, logger="onnxpipe.serving"):
        _write(root / "income" / "1" / "model.zip", lambda p: p.write_bytes(b"this is no zip file"))
        _wait_for(lambda: "reload_errors" in _get(server, "/v2/models/income/versions/1/ready")[1], "the error")
    status, doc = _get(server, "/v2/models/income/versions/1/ready")
    assert status == 200 and doc["ready"] is True
    assert "old version is still served" in doc["reload_errors"]["1"]
    status, meta = _get(server, "/v2/models/income")
    assert status == 200 and set(meta["reload_errors"]) == {"1"}
    assert "reload_errors" not in _get(server, "/v2/models/income/versions/2/ready")[1]
    np.testing.assert_array_equal(_scores(server, "/v2/models/income/versions/1/infer"), old)
    assert any("model.zip" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    # a good file again: the error goes away
    _write(root / "income" / "1" / "model.zip", _save(_train(flip=False)))
    _wait_for(lambda: "reload_errors" not in _get(server, "/v2/models/income/versions/1/ready")[1], "recovery")
    np.testing.assert_array_equal(_scores(server, "/v2/models/income/versions/1/infer"), old)


def test_new_and_removed_versions(reloading: tuple[_Server, Path]) -> None:
    server, root = reloading
    assert _get(server, "/v2/models/income/versions/3/ready")[0] == 404
    retrained = _train(flip=True)
    version3 = root / "income" / "3"
    version3.mkdir()
    _write(version3 / "model.zip", _save(retrained))
    _wait_for(lambda: _get(server, "/v2/models/income/versions/3/ready")[0] == 200, "version 3")
    expected = _expected(retrained, _AGE, _HOURS)["Score"]
    np.testing.assert_array_equal(_scores(server, "/v2/models/income/versions/3/infer"), expected)
    np.testing.assert_array_equal(_scores(server, "/v2/models/income/infer"), expected)  # now the latest
    assert _get(server, "/v2/models/income")[1]["versions"] == ["1", "2", "3"]
    shutil.rmtree(version3)
    _wait_for(lambda: _get(server, "/v2/models/income/versions/3/ready")[0] == 404, "version 3 to go")
    status, _ = _post(server, "/v2/models/income/versions/3/infer", _BODY)
    assert status == 404
    assert _get(server, "/v2/models/income")[1]["versions"] == ["1", "2"]
    assert _scores(server, "/v2/models/income/infer") is not None


def test_reload_off(tmp_path: Path) -> None:
    (tmp_path / "income" / "1").mkdir(parents=True)
    _save(_train(flip=False))(tmp_path / "income" / "1" / "model.zip")
    with _Server(tmp_path, ServerSettings(reload_interval_s=0)) as server:
        (tmp_path / "income" / "2").mkdir()
        _save(_train(flip=False))(tmp_path / "income" / "2" / "model.zip")
        time.sleep(0.5)
        assert _get(server, "/v2/models/income/versions/2/ready")[0] == 404
