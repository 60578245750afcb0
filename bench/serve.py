"""onnxpipe serve under load, against MLServer on the same model, client and machine.

The model is ``tiny_model.py``'s (``X float[N,4] -> Y float[N,1]``), served by ``onnxpipe serve``
(the bare .onnx file) and by MLServer with a few-line ONNX Runtime runtime (``_mlserver_onnx.py``).
The load generator: ``--concurrency`` threads, each with its own unmodified ``tritonclient.http``
client, sending 1-row requests to loopback for ``--seconds`` each; JSON tensors for both servers
(MLServer has no binary tensor extension), and binary tensors for onnxpipe too. Reports requests/s
and p50/p99 latency; everything stops by itself.

MLServer runs from its own virtual environment (it pins other versions than onnxpipe's): pass
``--mlserver PATH/TO/bin/mlserver`` (e.g. ``python -m venv /tmp/mls && /tmp/mls/bin/pip install
mlserver onnxruntime``); without it, only onnxpipe is measured.

Run: ``python bench/serve.py [--mlserver PATH] [--seconds 10] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from _common import Row, console, print_table, write_results
from tiny_model import FEATURES, INPUT_NAME, build_tiny_model

BENCH = Path(__file__).resolve().parent
MODEL = "tiny"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", f"/v2/models/{MODEL}/ready")
            if connection.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"no server ready on port {port} after {timeout} s")


@contextlib.contextmanager
def _server(command: list[str], port: int, **popen: object) -> Iterator[None]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)  # type: ignore[call-overload]
    try:
        _wait_ready(port)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def onnxpipe_server(folder: Path, port: int, delay_ms: float) -> contextlib.AbstractContextManager[None]:
    executable = Path(sys.executable).parent / "onnxpipe"
    command = [str(executable), "serve", str(folder / f"{MODEL}.onnx"), "--port", str(port)]
    return _server([*command, "--max-batch-delay-ms", str(delay_ms)], port)


def mlserver_server(folder: Path, port: int, mlserver: str) -> contextlib.AbstractContextManager[None]:
    shutil.copy(BENCH / "_mlserver_onnx.py", folder / "mlserver_onnx.py")
    # parallel_workers=0: inference in the server process (MLServer 1.7.1's worker pool does not start under
    # uvloop 0.23 here; for a model this small the pool's inter-process hop would only slow it down)
    settings = {
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "host": "127.0.0.1",
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {"name": MODEL, "implementation": "mlserver_onnx.OnnxModel", "parameters": {"uri": f"./{MODEL}.onnx"}}
    (folder / "model-settings.json").write_text(json.dumps(model))
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return _server([mlserver, "start", str(folder)], port, cwd=str(folder), env=env)


def load(port: int, seconds: float, concurrency: int, binary: bool) -> tuple[float, float, float]:
    """Requests/s and p50 / p99 latency (ms) of ``concurrency`` clients sending 1-row requests."""
    import tritonclient.http as httpclient

    x = np.random.default_rng(0).standard_normal((1, FEATURES)).astype(np.float32)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        triton = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        tensor = httpclient.InferInput(INPUT_NAME, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput("Y", binary_data=binary)]
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            triton.infer(MODEL, [tensor], outputs=outputs)
            latencies[k].append(time.perf_counter() - t0)
        triton.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    every = np.concatenate([np.asarray(lat) for lat in latencies])
    return len(every) / elapsed, float(np.percentile(every, 50)) * 1e3, float(np.percentile(every, 99)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mlserver", help="the mlserver executable of a virtual environment that has it")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-batch-delay-ms", type=float, default=0.0, help="onnxpipe serve's batching delay")
    args = parser.parse_args()
    rows: list[Row] = []
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / f"{MODEL}.onnx").write_bytes(build_tiny_model())
        port = _free_port()
        with onnxpipe_server(folder, port, args.max_batch_delay_ms):
            ours_json = load(port, args.seconds, args.concurrency, binary=False)
            ours_binary = load(port, args.seconds, args.concurrency, binary=True)
        extra["onnxpipe"] = {"json": ours_json, "binary": ours_binary}
        rows.append(
            Row(
                "onnxpipe: binary vs JSON tensors (requests/s)",
                "req/s",
                ours_json[0],
                ours_binary[0],
                True,
                note=f"p99 {ours_json[2]:.1f} ms JSON, {ours_binary[2]:.1f} ms binary",
            )
        )
        if args.mlserver:
            port = _free_port()
            with mlserver_server(folder, port, args.mlserver):
                theirs = load(port, args.seconds, args.concurrency, binary=False)
            extra["mlserver"] = {"json": theirs}
            rows.append(
                Row(
                    f"1-row requests, {args.concurrency} clients, JSON: onnxpipe vs MLServer",
                    "req/s",
                    theirs[0],
                    ours_json[0],
                    True,
                    target=3.0,
                    note=f"p99 {ours_json[2]:.1f} ms onnxpipe, {theirs[2]:.1f} ms MLServer",
                )
            )
    print_table("onnxpipe serve under load (plain = the other side)", rows)
    console.print(json.dumps(extra))
    params = {"seconds": args.seconds, "concurrency": args.concurrency, "max_batch_delay_ms": args.max_batch_delay_ms}
    write_results("serve", params, rows, {"latencies": extra})


if __name__ == "__main__":
    main()
