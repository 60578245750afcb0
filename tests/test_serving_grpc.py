"""``onnxpipe serve --grpc-port``: the real gRPC server (KServe V2 ``inference.GRPCInferenceService``)
on an ephemeral loopback port, called with the unmodified ``tritonclient.grpc`` client, and with
its own protobuf stub for the typed ``contents`` tensors (tritonclient always sends raw bytes)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("orjson", reason="the serve extra (orjson) is not installed")
grpc = pytest.importorskip("grpc", reason="the serve extra (grpcio) is not installed")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")

from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from onnxpipe import Transformer  # noqa: E402
from onnxpipe.serving import ModelRepository, ServerSettings  # noqa: E402
from onnxpipe.serving._grpc import GrpcServer  # noqa: E402
from onnxpipe.serving._metrics import Metrics  # noqa: E402
from tests import models  # noqa: E402
from tests.test_serving import _expected, _rows, _wait_ready, ctx, repository, trained  # noqa: E402, F401


class _Server:
    """The gRPC server on its own event loop in a background thread."""

    def __init__(self, root: Path, settings: ServerSettings) -> None:
        self.metrics = Metrics()
        self.grpc = GrpcServer(ModelRepository.open(root), settings, host="127.0.0.1", port=0, metrics=self.metrics)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.grpc.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.grpc.stop(1.0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def grpc_repository(repository: Path) -> Path:  # noqa: F811
    (repository / "inc" / "1").mkdir(parents=True, exist_ok=True)
    (repository / "inc" / "1" / "model.onnx").write_bytes(models.rank0_increment())
    return repository


@pytest.fixture(scope="module")
def server(grpc_repository: Path) -> Iterator[_Server]:
    # tritonclient.http clients left by other modules close a gevent pool in __del__, which fails
    # when the collector happens to run on the server's thread: collect them here, on this one
    gc.collect()
    settings = ServerSettings(max_batch_size=32, max_batch_delay_ms=5.0, max_body_bytes=1 << 20, max_rows=1000)
    with _Server(grpc_repository, settings) as s:
        yield s


@pytest.fixture()
def client(server: _Server) -> Iterator[Any]:
    c = grpcclient.InferenceServerClient(server.url)
    yield c
    c.close()


def _income_inputs(age: np.ndarray, hours: np.ndarray) -> list[Any]:
    inputs = []
    for name, values in (("age", age), ("hours", hours)):
        i = grpcclient.InferInput(name, list(values.shape), "FP32")
        i.set_data_from_numpy(values)
        inputs.append(i)
    return inputs


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata().name == "onnxpipe"
    assert client.is_model_ready("income")
    assert client.is_model_ready("income", "1")
    meta = client.get_model_metadata("income", as_json=True)
    assert meta["name"] == "income"
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "onnxpipe"
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("age", "FP32", ["-1"]),  # int64 fields are strings in protobuf's JSON form
        ("hours", "FP32", ["-1"]),
    ]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("Score", "FP32"),
        ("Probability", "FP32"),
        ("PredictedLabel", "BOOL"),
    ]
    half = client.get_model_metadata("half", "1")
    assert [(t.name, t.datatype, list(t.shape)) for t in half.inputs] == [("h", "FP16", [-1, 3])]


def test_saved_pipeline_predictions_equal_transform(client: Any, trained: Transformer) -> None:  # noqa: F811
    age, hours = _rows(7, seed=1)
    outputs = [grpcclient.InferRequestedOutput(n) for n in ("Score", "PredictedLabel")]
    result = client.infer("income", _income_inputs(age, hours), outputs=outputs, request_id="r-1")
    expected = _expected(trained, age, hours)
    np.testing.assert_array_equal(result.as_numpy("Score"), expected["Score"])
    np.testing.assert_array_equal(result.as_numpy("PredictedLabel"), expected["PredictedLabel"])
    assert result.as_numpy("Probability") is None  # not requested
    response = result.get_response()
    assert response.id == "r-1"
    assert response.model_version == "2"

    result = client.infer("income", _income_inputs(age, hours), model_version="1")  # all outputs by default
    for name in ("Score", "Probability", "PredictedLabel"):
        np.testing.assert_array_equal(result.as_numpy(name), expected[name])


def test_bare_onnx_models_fp16_bytes_int64(client: Any, grpc_repository: Path) -> None:
    h = np.array([[1, 2, 3], [0.5, -4, 65504]], dtype=np.float16)
    i = grpcclient.InferInput("h", [2, 3], "FP16")
    i.set_data_from_numpy(h)
    result = client.infer("half", [i])
    half = ctx.transforms.apply_onnx_model(model_file=str(grpc_repository / "half" / "1" / "model.onnx"))
    want = half.transform(ctx.data.load_from_dict({"h": h})).column("y")
    assert isinstance(want, np.ndarray)
    np.testing.assert_array_equal(result.as_numpy("y"), want.reshape(2, 3))
    assert result.as_numpy("y").dtype == np.float16

    words = np.array([b"hotdog", b"salad", b"tomato"], dtype=object)
    w = grpcclient.InferInput("word", [3], "BYTES")
    w.set_data_from_numpy(words)
    result = client.infer("words", [w])
    np.testing.assert_array_equal(result.as_numpy("code"), np.array([1, -1, 2], dtype=np.int64))

    n = np.array([[4], [-7], [2**40]], dtype=np.int64)  # a scalar column sent as [batch, 1]
    k = grpcclient.InferInput("n", [3, 1], "INT64")
    k.set_data_from_numpy(n)
    result = client.infer("inc", [k])
    inc = ctx.transforms.apply_onnx_model(model_file=str(grpc_repository / "inc" / "1" / "model.onnx"))
    want = np.asarray(inc.transform(ctx.data.load_from_dict({"n": n.reshape(3)})).column("m"))
    np.testing.assert_array_equal(result.as_numpy("m").reshape(3), want.reshape(3))
    np.testing.assert_array_equal(want.reshape(3), [5, -6, 2**40 + 1])


def test_typed_contents(server: _Server, trained: Transformer) -> None:  # noqa: F811
    """``contents`` (typed fields) rather than ``raw_input_contents``, through tritonclient's stub."""
    age, hours = _rows(4, seed=3)
    channel = grpc.insecure_channel(server.url)
    try:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="income")
        for name, values in (("age", age), ("hours", hours)):
            tensor = request.inputs.add(name=name, datatype="FP32", shape=[4])
            tensor.contents.fp32_contents.extend(values.tolist())
        response = stub.ModelInfer(request, timeout=10)
        names = [o.name for o in response.outputs]
        score = np.frombuffer(response.raw_output_contents[names.index("Score")], dtype="<f4")
        np.testing.assert_array_equal(score, _expected(trained, age, hours)["Score"])

        request = service_pb2.ModelInferRequest(model_name="words")
        request.inputs.add(name="word", datatype="BYTES", shape=[2]).contents.bytes_contents.extend([b"tomato", b"x"])
        response = stub.ModelInfer(request, timeout=10)
        np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], dtype="<i8"), [2, -1])

        request = service_pb2.ModelInferRequest(model_name="inc")
        request.inputs.add(name="n", datatype="INT64", shape=[2]).contents.int64_contents.extend([1, 2])
        response = stub.ModelInfer(request, timeout=10)
        np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], dtype="<i8"), [2, 3])

        request = service_pb2.ModelInferRequest(model_name="inc")
        request.inputs.add(name="n", datatype="INT64", shape=[3]).contents.int64_contents.extend([1, 2])
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "input 'n': 2 values in contents.int64_contents for a shape of 3 values" in info.value.details()
    finally:
        channel.close()


def test_unknown_model_is_not_found(client: Any) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "unknown model 'nope'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.infer("income", _income_inputs(*_rows(2, seed=4)), model_version="9")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "no version '9'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.is_model_ready("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_bad_input_is_invalid_argument(client: Any) -> None:
    h = np.ones((2, 4), dtype=np.float16)  # the model takes rows of 3
    i = grpcclient.InferInput("h", [2, 4], "FP16")
    i.set_data_from_numpy(h)
    with pytest.raises(InferenceServerException) as info:
        client.infer("half", [i])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "column 'h' feeds input tensor 'h', which expects a row of shape [1,3]" in info.value.message()
    assert "the column's rows have shape [4]" in info.value.message()

    i = grpcclient.InferInput("h", [2, 3], "FP16")
    i.set_data_from_numpy(h[:, :3])
    i._raw_content = i._raw_content[:10]  # 5 values for a shape of 6
    with pytest.raises(InferenceServerException) as info:
        client.infer("half", [i])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'h': raw_input_contents[0] has 10 bytes; its shape [2, 3] and datatype FP16 need 12" in (
        info.value.message()
    )

    age, hours = _rows(3, seed=5)
    inputs = _income_inputs(age, hours[:2])  # 3 rows of age, 2 of hours
    with pytest.raises(InferenceServerException) as info:
        client.infer("income", inputs)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'hours' has 2 rows (its first dimension), other inputs 3" in info.value.message()

    wrong = grpcclient.InferInput("age", [3], "FP64")
    wrong.set_data_from_numpy(age.astype(np.float64))
    with pytest.raises(InferenceServerException) as info:
        client.infer("income", [wrong, _income_inputs(age, hours)[1]])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'age': datatype FP64, but the model expects FP32" in info.value.message()


def test_token_is_required_but_not_for_health(grpc_repository: Path) -> None:
    settings = ServerSettings(token="s3cret")
    with _Server(grpc_repository, settings) as s:
        c = grpcclient.InferenceServerClient(s.url)
        try:
            assert c.is_server_live()
            assert c.is_server_ready()
            with pytest.raises(InferenceServerException) as info:
                c.get_model_metadata("income")
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
            with pytest.raises(InferenceServerException) as info:
                c.infer("income", _income_inputs(*_rows(2, seed=6)), headers={"authorization": "Bearer wrong"})
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
            meta = c.get_model_metadata("income", headers={"authorization": "Bearer s3cret"})
            assert meta.name == "income"
            result = c.infer("income", _income_inputs(*_rows(2, seed=6)), headers={"authorization": "Bearer s3cret"})
            assert result.as_numpy("Score").shape == (2,)
        finally:
            c.close()


def test_cli_serves_grpc_alongside_rest_and_stops_on_sigterm(tmp_path: Path) -> None:
    import http.client
    import os
    import signal
    import socket
    import subprocess
    import sys

    path = tmp_path / "half.onnx"
    path.write_bytes(models.float16_scale())
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    command = [sys.executable, "-m", "onnxpipe.cli", "serve", str(path), "--port", str(ports[0])]
    command += ["--grpc-port", str(ports[1])]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        c = grpcclient.InferenceServerClient(f"127.0.0.1:{ports[1]}")
        _wait_ready(proc, c, 30)
        rest = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=10)  # REST too, same process
        try:
            rest.request("GET", "/v2/health/ready")
            assert rest.getresponse().status == 200
        finally:
            rest.close()
        h = np.array([[2, 4, 6]], dtype=np.float16)
        i = grpcclient.InferInput("h", [1, 3], "FP16")
        i.set_data_from_numpy(h)
        np.testing.assert_array_equal(c.infer("half", [i]).as_numpy("y"), h / 2)
        c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_limits_are_resource_exhausted(client: Any) -> None:
    age, hours = _rows(2000, seed=7)  # max_rows is 1000
    with pytest.raises(InferenceServerException) as info:
        client.infer("income", _income_inputs(age, hours))
    assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert "the request has 2,000 rows, more than the server's limit of 1,000" in info.value.message()
    age, hours = _rows(200_000, seed=8)  # 1.6 MB; max_body_bytes is 1 MiB
    with pytest.raises(InferenceServerException) as info:
        client.infer("income", _income_inputs(age, hours))
    assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_inference_follows_a_reload_of_the_shared_repository(tmp_path: Path, trained: Transformer) -> None:  # noqa: F811
    (tmp_path / "inc" / "1").mkdir(parents=True)
    (tmp_path / "inc" / "1" / "model.onnx").write_bytes(models.rank0_increment())
    gc.collect()
    with _Server(tmp_path, ServerSettings()) as s:
        c = grpcclient.InferenceServerClient(s.url)
        try:
            (tmp_path / "income" / "1").mkdir(parents=True)  # a model added while serving
            ctx.model.save(trained, _training_schema(), tmp_path / "income" / "1" / "model.zip")
            assert s.grpc.repository.reload()  # what the REST app's reload task runs
            age, hours = _rows(3, seed=4)
            result = c.infer("income", _income_inputs(age, hours))
            np.testing.assert_array_equal(result.as_numpy("Score"), _expected(trained, age, hours)["Score"])
        finally:
            c.close()


def _training_schema() -> Any:
    from tests.test_serving import _training_data

    return ctx.data.load_from_dict(_training_data())


def test_grpc_calls_are_counted_in_the_metrics(server: _Server, client: Any) -> None:
    age, hours = _rows(3, seed=11)
    client.infer("income", _income_inputs(age, hours))
    with pytest.raises(InferenceServerException):
        client.infer("nope", _income_inputs(age, hours))
    # gRPC sends an aborted call's status before the handler's own cleanup (which counts it) runs
    deadline = time.monotonic() + 10
    failed = 'onnxpipe_requests_total{model="-",route="grpc_ModelInfer",status="404"}'
    while failed not in (text := server.metrics.render()[0].decode()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert failed in text
    assert 'onnxpipe_requests_total{model="income",route="grpc_ModelInfer",status="200"}' in text
    assert 'onnxpipe_errors_total{model="-",reason="client_error",route="grpc_ModelInfer"}' in text
    assert 'onnxpipe_batch_rows_count{model="income",version="2"}' in text
