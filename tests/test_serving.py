"""``onnxpipe serve``: the real server on an ephemeral loopback port, called with the unmodified
``tritonclient.http`` client (binary and JSON tensors) and plain HTTP for the error cases."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("orjson", reason="the serve extra (orjson) is not installed")
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")

import uvicorn  # noqa: E402

from onnxpipe import MLContext, Transformer  # noqa: E402
from onnxpipe.serving import ModelRepository, ServerSettings, create_app  # noqa: E402
from tests import models  # noqa: E402

ctx = MLContext(seed=0)


def _training_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    age = rng.uniform(18, 80, 200).astype(np.float32)
    hours = rng.uniform(10, 60, 200).astype(np.float32)
    label = (age / 80 + hours / 60 + rng.normal(0, 0.2, 200)) > 1.0
    return {"age": age, "hours": hours, "Label": label}


@pytest.fixture(scope="module")
def trained() -> Transformer:
    data = ctx.data.load_from_dict(_training_data())
    est = ctx.transforms.concatenate("Features", "age", "hours").append(
        ctx.binary_classification.trainers.lbfgs_logistic_regression()
    )
    model: Transformer = est.fit(data)
    return model


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, trained: Transformer) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for version in ("1", "2"):
        (root / "income" / version).mkdir(parents=True)
        ctx.model.save(trained, ctx.data.load_from_dict(_training_data()), root / "income" / version / "model.zip")
    (root / "half" / "1").mkdir(parents=True)
    (root / "half" / "1" / "model.onnx").write_bytes(models.float16_scale())
    (root / "words" / "1").mkdir(parents=True)
    (root / "words" / "1" / "model.onnx").write_bytes(models.string_lookup())
    return root


class _Server:
    """The real server (uvicorn) on an ephemeral loopback port, in a thread."""

    def __init__(self, repository: Path | ModelRepository, settings: ServerSettings) -> None:
        repo = repository if isinstance(repository, ModelRepository) else ModelRepository.open(repository)
        self.app = create_app(repo, settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(self.app, ws="none", log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[_Server]:
    settings = ServerSettings(max_batch_size=32, max_batch_delay_ms=5.0, max_body_bytes=1 << 20, max_rows=1000)
    with _Server(repository, settings) as s:
        yield s


@pytest.fixture()
def client(server: _Server) -> Iterator[Any]:
    c = httpclient.InferenceServerClient(server.url, concurrency=8)
    yield c
    c.close()


def _post(server: _Server, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _get(server: _Server, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(18, 80, n).astype(np.float32), rng.uniform(10, 60, n).astype(np.float32)


def _expected(model: Transformer, age: np.ndarray, hours: np.ndarray) -> dict[str, Any]:
    scored = model.transform(ctx.data.load_from_dict({"age": age, "hours": hours}))
    return scored.columns(["Score", "Probability", "PredictedLabel"])


def _income_inputs(age: np.ndarray, hours: np.ndarray, binary: bool) -> list[Any]:
    inputs = []
    for name, values in (("age", age), ("hours", hours)):
        i = httpclient.InferInput(name, list(values.shape), "FP32")
        i.set_data_from_numpy(values, binary_data=binary)
        inputs.append(i)
    return inputs


def test_health_and_server_metadata(client: Any, server: _Server) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "onnxpipe"
    assert "binary_tensor_data" in meta["extensions"]
    assert client.is_model_ready("income")
    assert client.is_model_ready("income", "1")
    assert not client.is_model_ready("nope")


def test_model_metadata_comes_from_the_schema(client: Any) -> None:
    meta = client.get_model_metadata("income")
    assert meta["name"] == "income"
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [
        {"name": "age", "datatype": "FP32", "shape": [-1]},
        {"name": "hours", "datatype": "FP32", "shape": [-1]},
    ]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("Score", "FP32"),
        ("Probability", "FP32"),
        ("PredictedLabel", "BOOL"),
    ]
    half = client.get_model_metadata("half", "1")
    assert half["inputs"] == [{"name": "h", "datatype": "FP16", "shape": [-1, 3]}]
    assert half["outputs"] == [{"name": "y", "datatype": "FP16", "shape": [-1, 3]}]


@pytest.mark.parametrize("binary", [True, False])
def test_saved_pipeline_predictions_equal_transform(client: Any, trained: Transformer, binary: bool) -> None:
    age, hours = _rows(7, seed=1)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("Score", "PredictedLabel")]
    result = client.infer("income", _income_inputs(age, hours, binary), outputs=outputs, request_id="r-1")
    expected = _expected(trained, age, hours)
    np.testing.assert_array_equal(result.as_numpy("Score"), expected["Score"])
    np.testing.assert_array_equal(result.as_numpy("PredictedLabel"), expected["PredictedLabel"])
    assert result.as_numpy("Probability") is None  # not requested
    response = result.get_response()
    assert response["id"] == "r-1"
    assert response["model_version"] == "2"


def test_default_outputs_are_the_result_columns(client: Any, trained: Transformer) -> None:
    age, hours = _rows(3, seed=2)
    result = client.infer("income", _income_inputs(age, hours, True), model_version="1")
    expected = _expected(trained, age, hours)
    for name in ("Score", "Probability", "PredictedLabel"):
        np.testing.assert_array_equal(result.as_numpy(name), expected[name])


@pytest.mark.parametrize("binary", [True, False])
def test_bare_onnx_models(client: Any, repository: Path, binary: bool) -> None:
    h = np.array([[1, 2, 3], [0.5, -4, 65504]], dtype=np.float16)
    i = httpclient.InferInput("h", [2, 3], "FP16")
    i.set_data_from_numpy(h, binary_data=binary)
    result = client.infer("half", [i], outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)])
    expected = ctx.transforms.apply_onnx_model(model_file=str(repository / "half" / "1" / "model.onnx"))
    want = expected.transform(ctx.data.load_from_dict({"h": h})).column("y")
    assert isinstance(want, np.ndarray)
    want = want.reshape(2, 3)  # each row's [1, 3] output is served without its batch dimension
    np.testing.assert_array_equal(result.as_numpy("y"), want)
    assert result.as_numpy("y").dtype == np.float16

    words = np.array([b"hotdog", b"salad", b"tomato"], dtype=object)
    w = httpclient.InferInput("word", [3], "BYTES")
    w.set_data_from_numpy(words, binary_data=binary)
    result = client.infer("words", [w], outputs=[httpclient.InferRequestedOutput("code", binary_data=binary)])
    np.testing.assert_array_equal(result.as_numpy("code"), np.array([1, -1, 2], dtype=np.int64))


def test_bare_model_tensors_keep_the_shapes_the_model_declares(tmp_path: Path) -> None:
    """``Y float[N, 1]`` comes back as ``[rows, 1]``, as bare ONNX Runtime (and Triton) give it,
    though onnxpipe reads ``[N, 1]`` as one value per row."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[1.0], [2.0], [-1.0], [0.5]], dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "logit",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    (tmp_path / "logit" / "1").mkdir(parents=True)
    (tmp_path / "logit" / "1" / "model.onnx").write_bytes(model.SerializeToString())
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    (want,) = ort.InferenceSession(model.SerializeToString()).run(None, {"X": x})
    with _Server(tmp_path, ServerSettings()) as s:
        c = httpclient.InferenceServerClient(s.url)
        metadata = c.get_model_metadata("logit")
        assert [t["shape"] for t in (*metadata["inputs"], *metadata["outputs"])] == [[-1, 4], [-1, 1]]
        i = httpclient.InferInput("X", [2, 4], "FP32")
        i.set_data_from_numpy(x)
        got = c.infer("logit", [i]).as_numpy("Y")
        c.close()
    assert got.shape == want.shape == (2, 1)
    np.testing.assert_array_equal(got, want)


def test_concurrent_clients_get_unbatched_results(server: _Server, trained: Transformer) -> None:
    requests = [_rows(1 + k % 3, seed=100 + k) for k in range(40)]

    def call(k: int) -> dict[str, np.ndarray]:
        c = httpclient.InferenceServerClient(server.url)
        try:
            age, hours = requests[k]
            r = c.infer("income", _income_inputs(age, hours, True))
            return {n: r.as_numpy(n) for n in ("Score", "Probability", "PredictedLabel")}
        finally:
            c.close()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(len(requests))))
    for (age, hours), got in zip(requests, results, strict=True):
        expected = _expected(trained, age, hours)
        for name, values in got.items():
            np.testing.assert_array_equal(values, expected[name])


def test_unknown_model_and_version_are_404(server: _Server) -> None:
    status, doc = _get(server, "/v2/models/nope")
    assert status == 404
    assert "unknown model 'nope'" in doc["error"]
    status, doc = _get(server, "/v2/models/income/versions/9")
    assert status == 404
    assert "no version '9'" in doc["error"]
    status, doc = _post(server, "/v2/models/nope/infer", b"{}")
    assert status == 404


def _income_json(**changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "FP32", "data": [30.0, 40.0]},
            {"name": "hours", "shape": [2], "datatype": "FP32", "data": [20.0, 50.0]},
        ]
    }
    doc.update(changes)
    return json.dumps(doc).encode()


def test_plain_json_request(server: _Server, trained: Transformer) -> None:
    status, doc = _post(server, "/v2/models/income/infer", _income_json(id="x"))
    assert status == 200, doc
    assert doc["id"] == "x"
    expected = _expected(trained, np.array([30, 40], np.float32), np.array([20, 50], np.float32))
    scores = next(o for o in doc["outputs"] if o["name"] == "Score")
    assert scores["shape"] == [2]
    np.testing.assert_array_equal(np.array(scores["data"], np.float32), expected["Score"])


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{not json", {}, "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, {}, "not valid JSON"),
        (_income_json(inputs=[{"name": "age", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]), {}, "'hours'"),
        (
            _income_json(inputs=[{"name": "height", "shape": [1], "datatype": "FP32", "data": [1.0]}]),
            {},
            "'height' is not an input",
        ),
        (
            _income_json(
                inputs=[
                    {"name": "age", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
                    {"name": "hours", "shape": [2], "datatype": "FP32", "data": [20.0, 50.0]},
                ]
            ),
            {},
            "'age'",
        ),
        (
            _income_json(
                inputs=[
                    {"name": "age", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0]},
                    {"name": "hours", "shape": [2], "datatype": "FP32", "data": [20.0, 50.0]},
                ]
            ),
            {},
            "2 values in 'data' for a shape of 3",
        ),
        (_income_json(), {"Inference-Header-Content-Length": "999999"}, "Inference-Header-Content-Length"),
        (_income_json(), {"Inference-Header-Content-Length": "-1"}, "Inference-Header-Content-Length"),
        (
            _income_json(
                inputs=[
                    {"name": "age", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 7}},
                    {"name": "hours", "shape": [2], "datatype": "FP32", "data": [20.0, 50.0]},
                ]
            ),
            {},
            "binary_data_size",
        ),
        (_income_json(outputs=[{"name": "Features"}]), {}, "'Features' is not an output"),
    ],
)
def test_bad_requests_are_400_with_a_message(
    server: _Server, body: bytes, headers: dict[str, str], message: str
) -> None:
    status, doc = _post(server, "/v2/models/income/infer", body, headers)
    assert status == 400, doc
    assert message in doc["error"]


def test_wrong_binary_data_size(server: _Server) -> None:
    head = json.dumps(
        {
            "inputs": [
                {"name": "age", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 4}},
                {"name": "hours", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
            ]
        }
    ).encode()
    body = head + np.zeros(4, np.float32).tobytes()
    status, doc = _post(server, "/v2/models/income/infer", body, {"Inference-Header-Content-Length": str(len(head))})
    assert status == 400
    assert "binary_data_size is 4 bytes" in doc["error"]


def test_wrong_column_type_uses_onnxpipe_message(server: _Server) -> None:
    body = _income_json(
        inputs=[
            {"name": "age", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]},
            {"name": "hours", "shape": [2], "datatype": "FP32", "data": [20.0, 50.0]},
        ]
    )
    status, doc = _post(server, "/v2/models/income/infer", body)
    assert status == 400
    assert doc["error"].startswith("model 'income': ")


def test_oversize_body_is_413(server: _Server) -> None:
    status, doc = _post(server, "/v2/models/income/infer", b" " * (2 << 20))
    assert status == 413
    assert "limit" in doc["error"]


def test_too_many_rows_is_413(server: _Server) -> None:
    n = 1001
    body = json.dumps(
        {
            "inputs": [
                {"name": "age", "shape": [n], "datatype": "FP32", "data": [1.0] * n},
                {"name": "hours", "shape": [n], "datatype": "FP32", "data": [1.0] * n},
            ]
        }
    ).encode()
    status, doc = _post(server, "/v2/models/income/infer", body)
    assert status == 413
    assert "1,001 rows" in doc["error"]


def test_repository_refuses_links_and_bad_names(tmp_path: Path, repository: Path) -> None:
    from onnxpipe.serving import RepositoryError

    (tmp_path / "evil" / "1").mkdir(parents=True)
    (tmp_path / "evil" / "1" / "model.onnx").symlink_to(repository / "half" / "1" / "model.onnx")
    with pytest.raises(RepositoryError, match="not a regular file"):
        ModelRepository.open(tmp_path)
    other = tmp_path / "other"
    (other / "bad name" / "1").mkdir(parents=True)
    with pytest.raises(RepositoryError, match="not a valid name"):
        ModelRepository.open(other)


def _wait_ready(proc: Any, client: Any, seconds: float) -> None:
    """Until ``client`` (tritonclient, HTTP or gRPC) says the server process ``proc`` is ready."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.is_server_ready():
                return
        except Exception:  # not listening yet
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serves_a_bare_model_and_stops_on_sigterm(tmp_path: Path, workers: int) -> None:
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "half.onnx"
    path.write_bytes(models.float16_scale())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "onnxpipe.cli", "serve", str(path), "--port", str(port), "--max-batch-size", "8"]
    command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        _wait_ready(proc, client, 60)
        h = np.array([[2, 4, 6]], dtype=np.float16)
        i = httpclient.InferInput("h", [1, 3], "FP16")
        i.set_data_from_numpy(h)
        for _ in range(4):
            np.testing.assert_array_equal(client.infer("half", [i]).as_numpy("y"), h / 2)
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stdout is not None
        logged = proc.stdout.read().decode()  # the buffered access log is written out at shutdown
        assert "onnxpipe.serving.access method=POST path=/v2/models/half/infer status=200" in logged
        assert logged.count("Application startup complete") == workers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_batcher_merges_concurrent_requests(repository: Path, trained: Transformer) -> None:
    import asyncio

    from onnxpipe import DType, Schema, TensorType
    from onnxpipe.serving._batching import Batcher

    model = ModelRepository.open(repository).get("income")
    batcher = Batcher(model, max_batch_size=16, max_batch_delay_ms=50.0)
    requests = [_rows(1 + k % 4, seed=200 + k) for k in range(10)]  # 25 rows: two batches of at most 16
    schema = Schema.of(age=TensorType(DType.FLOAT32), hours=TensorType(DType.FLOAT32))

    async def run() -> list[dict[str, np.ndarray]]:
        try:
            calls = [batcher.score(schema, {"age": a, "hours": h}, len(a)) for a, h in requests]
            return list(await asyncio.gather(*calls))
        finally:
            await batcher.close()

    results = asyncio.run(run())
    assert batcher.scoring_calls == 2
    for (age, hours), got in zip(requests, results, strict=True):
        expected = _expected(trained, age, hours)
        for name in ("Score", "Probability", "PredictedLabel"):
            np.testing.assert_array_equal(got[name], expected[name])
