"""onnxpipe serve under load: against MLServer on a small tabular model, and against bare ONNX
Runtime on a ResNet-50-shaped model, where adaptive batching has to earn its keep.

1. **Tiny model, 1-row requests** (``tiny_model.py``: ``X float[N,4] -> Y float[N,1]``), served by
   ``onnxpipe serve`` (the bare .onnx file) and by MLServer with a few-line ONNX Runtime runtime
   (``_mlserver_onnx.py``). The load generator is ``wrk`` (Debian's package ``wrk``: a C client, so
   the client's own cost hardly shares the two cores with the server), the same JSON request for
   both servers (MLServer has no binary tensor extension), ``--rounds`` interleaved rounds, the
   median kept. Then onnxpipe alone at about 80 % of its peak rate (each connection pauses between
   requests), for its p99 latency. Server CPU time per request is read from ``/proc``.
2. **Binary vs JSON tensors** with the unmodified ``tritonclient.http`` (threads of Python clients,
   so this measures the client too).
3. **ResNet-50-shaped model** (``resnet50v2.py``, random weights): 32 concurrent clients, each
   sending one image at a time (binary tensors), against bare ONNX Runtime scoring batches of 16
   in a loop, in images/s.

MLServer runs from its own virtual environment (it pins other versions than onnxpipe's): pass
``--mlserver PATH/TO/bin/mlserver`` (e.g. ``python -m venv /tmp/mls && /tmp/mls/bin/pip install
mlserver onnxruntime``); without it, MLServer is not measured. Without ``wrk`` on PATH, part 1
falls back to the Python client (and says so). Everything stops by itself, on loopback only.

Run: ``python bench/serve.py [--mlserver PATH] [--seconds 8] [--rounds 3] [--resnet-seconds 30]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import re
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
import onnxruntime as ort

from _common import MODELS_DIR, Row, console, print_table, write_results
from resnet50v2 import IMAGE_SHAPE, cached_model_bytes
from resnet50v2 import INPUT_NAME as RESNET_INPUT
from tiny_model import FEATURES, INPUT_NAME, build_tiny_model

BENCH = Path(__file__).resolve().parent
MODEL = "tiny"
RESNET = "resnet"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(port: int, model: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", f"/v2/models/{model}/ready")
            if connection.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"no server ready on port {port} after {timeout} s")


@contextlib.contextmanager
def _server(command: list[str], port: int, model: str, **popen: object) -> Iterator[int]:
    """Run a server; yields its process id."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)  # type: ignore[call-overload]
    try:
        _wait_ready(port, model)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def onnxpipe_server(path: Path, port: int, *options: str) -> contextlib.AbstractContextManager[int]:
    executable = Path(sys.executable).parent / "onnxpipe"
    return _server([str(executable), "serve", str(path), "--port", str(port), *options], port, path.stem)


def mlserver_server(folder: Path, port: int, mlserver: str) -> contextlib.AbstractContextManager[int]:
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
    return _server([mlserver, "start", str(folder)], port, MODEL, cwd=str(folder), env=env)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# load generators


_TINY_BODY = json.dumps(
    {"inputs": [{"name": INPUT_NAME, "shape": [1, FEATURES], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.25]}]}
)
_DURATION = re.compile(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_SCALE_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


class Load:
    """One load run: requests/s, latency percentiles (ms) and the server's CPU time per request."""

    def __init__(self, rps: float, p50: float, p99: float, cpu_us: float) -> None:
        self.rps, self.p50, self.p99, self.cpu_us = rps, p50, p99, cpu_us

    def to_json(self) -> dict[str, float]:
        return {"rps": self.rps, "p50_ms": self.p50, "p99_ms": self.p99, "server_cpu_us_per_request": self.cpu_us}


def wrk(port: int, pid: int, folder: Path, seconds: float, connections: int, pause_ms: int = 0) -> Load:
    """``wrk`` posting the tiny model's 1-row JSON request; ``pause_ms`` between a connection's requests."""
    script = folder / f"post-{pause_ms}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = [[{_TINY_BODY}]]",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if pause_ms:
        lines.append(f"function delay() return {pause_ms} end")
    script.write_text("\n".join(lines) + "\n")
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    cpu = _cpu_seconds(pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    cpu = _cpu_seconds(pid) - cpu
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"the server answered errors under load:\n{out}")
    percentiles = {int(p): float(v) * _SCALE_MS[u] for p, v, u in _DURATION.findall(out)}
    return Load(rps, percentiles[50], percentiles[99], cpu / max(requests, 1) * 1e6)


def triton_clients(port: int, seconds: float, concurrency: int, binary: bool) -> Load:
    """``concurrency`` threads, each with its own unmodified ``tritonclient.http`` client."""
    import tritonclient.http as httpclient

    x = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
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
    p50, p99 = (float(np.percentile(every, q)) * 1e3 for q in (50, 99))
    return Load(len(every) / elapsed, p50, p99, math.nan)


# --------------------------------------------------------------------------------------------
# the three parts


def tiny_against_mlserver(args: argparse.Namespace, folder: Path, rows: list[Row], extra: dict[str, object]) -> None:
    model = folder / f"{MODEL}.onnx"
    model.write_bytes(build_tiny_model())
    use_wrk = shutil.which("wrk") is not None
    if not use_wrk:
        console.print("[yellow]wrk is not on PATH (apt-get install wrk): using the Python client, which shares the CPU")
    ours_port, theirs_port = _free_port(), _free_port()
    with contextlib.ExitStack() as stack:
        ours_pid = stack.enter_context(onnxpipe_server(model, ours_port))
        servers = {"onnxpipe": (ours_port, ours_pid)}
        if args.mlserver:
            servers["MLServer"] = (
                theirs_port,
                stack.enter_context(mlserver_server(folder, theirs_port, args.mlserver)),
            )

        def measure(name: str, seconds: float) -> Load:
            port, pid = servers[name]
            if use_wrk:
                return wrk(port, pid, folder, seconds, args.concurrency)
            return triton_clients(port, seconds, args.concurrency, binary=False)

        for name in servers:  # warm up: first requests, lazy imports, allocator
            measure(name, 2)
        runs: dict[str, list[Load]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name in servers:
                runs[name].append(measure(name, args.seconds))
        best = {name: sorted(loads, key=lambda r: r.rps)[len(loads) // 2] for name, loads in runs.items()}
        extra["tiny"] = {name: [r.to_json() for r in loads] for name, loads in runs.items()}
        ours = best["onnxpipe"]
        if use_wrk:  # onnxpipe at ~80 % of its peak: each connection pauses between requests
            pause_ms = 2
            target = 0.8 * ours.rps
            connections = max(1, round(target * (pause_ms + ours.p50) / 1000))
            probe = wrk(ours_port, ours_pid, folder, 3, connections, pause_ms)  # then scale to the target
            connections = max(1, round(connections * target / probe.rps))
            steady = wrk(ours_port, ours_pid, folder, args.seconds, connections, pause_ms)
            extra["tiny_at_80_percent"] = {"connections": connections, "pause_ms": pause_ms, **steady.to_json()}
            rows.append(
                Row(
                    f"onnxpipe p99 at {steady.rps:,.0f} req/s ({steady.rps / ours.rps:.0%} of its peak)",
                    "ms",
                    math.nan,
                    steady.p99,
                    False,
                    limit=10.0,
                    note=f"p50 {steady.p50:.2f} ms, {connections} connections pausing {pause_ms} ms",
                )
            )
        client = "wrk" if use_wrk else "tritonclient"
        if "MLServer" in best:
            theirs = best["MLServer"]
            rows.insert(
                0,
                Row(
                    f"1-row JSON requests, {args.concurrency} connections ({client}): onnxpipe vs MLServer",
                    "req/s",
                    theirs.rps,
                    ours.rps,
                    True,
                    target=3.0,
                    plain_samples=tuple(r.rps for r in runs["MLServer"]),
                    onnxpipe_samples=tuple(r.rps for r in runs["onnxpipe"]),
                    note=(
                        f"p99 {ours.p99:.1f} vs {theirs.p99:.1f} ms; server CPU {ours.cpu_us:.0f} vs "
                        f"{theirs.cpu_us:.0f} us/request"
                    ),
                ),
            )
        if not args.no_triton:
            json_load = triton_clients(ours_port, args.seconds, args.concurrency, binary=False)
            binary_load = triton_clients(ours_port, args.seconds, args.concurrency, binary=True)
            extra["tritonclient"] = {"json": json_load.to_json(), "binary": binary_load.to_json()}
            rows.append(
                Row(
                    f"tritonclient, {args.concurrency} threads: binary vs JSON tensors (onnxpipe)",
                    "req/s",
                    json_load.rps,
                    binary_load.rps,
                    True,
                    note=f"p99 {json_load.p99:.1f} ms JSON, {binary_load.p99:.1f} ms binary (client in Python)",
                )
            )


def _metric_sum_count(port: int, family: str) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    total = sum(float(v) for v in re.findall(rf"^{family}_sum{{[^}}]*}} ([\d.e+]+)$", text, re.MULTILINE))
    count = sum(float(v) for v in re.findall(rf"^{family}_count{{[^}}]*}} ([\d.e+]+)$", text, re.MULTILINE))
    return total, count


def resnet_against_ort(args: argparse.Namespace, folder: Path, rows: list[Row], extra: dict[str, object]) -> None:
    import tritonclient.http as httpclient

    data, cached, _ = cached_model_bytes(MODELS_DIR)
    model = folder / f"{RESNET}.onnx"
    model.symlink_to(cached)
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((16, *IMAGE_SHAPE)).astype(np.float32)

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    session.run(None, {RESNET_INPUT: batch})  # warm up
    images, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.resnet_seconds:
        session.run(None, {RESNET_INPUT: batch})
        images += len(batch)
    bare = images / (time.perf_counter() - t0)
    del session

    clients = 32
    port = _free_port()
    with onnxpipe_server(model, port, "--max-batch-size", "16"):
        deadline = [math.inf]  # set once every client has warmed up
        done = [0] * clients
        start = threading.Barrier(
            clients + 1, action=lambda: deadline.__setitem__(0, time.monotonic() + args.resnet_seconds)
        )

        def client(k: int) -> None:
            triton = httpclient.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=300.0)
            tensor = httpclient.InferInput(RESNET_INPUT, [1, *IMAGE_SHAPE], "FP32")
            tensor.set_data_from_numpy(batch[k % len(batch)][None], binary_data=True)
            outputs = [httpclient.InferRequestedOutput("resnetv24_dense0_fwd", binary_data=True)]
            triton.infer(RESNET, [tensor], outputs=outputs)  # warm up
            start.wait()
            while time.monotonic() < deadline[0]:
                triton.infer(RESNET, [tensor], outputs=outputs)
                done[k] += 1
            triton.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        start.wait()
        rows_before = _metric_sum_count(port, "onnxpipe_batch_rows")
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        served = sum(done) / (time.perf_counter() - t0)
        rows_after = _metric_sum_count(port, "onnxpipe_batch_rows")
    mean_batch = (rows_after[0] - rows_before[0]) / max(rows_after[1] - rows_before[1], 1)
    extra["resnet"] = {"bare_ort_batch16_images_s": bare, "served_images_s": served, "mean_batch_rows": mean_batch}
    rows.append(
        Row(
            "ResNet-50, 32 clients x 1 image: onnxpipe serve vs bare ORT at batch 16",
            "images/s",
            bare,
            served,
            True,
            target=0.9,
            note=f"mean merged batch {mean_batch:.1f} rows",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mlserver", help="the mlserver executable of a virtual environment that has it")
    parser.add_argument("--seconds", type=float, default=8.0, help="each tiny-model run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per server (the median is kept)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--resnet-seconds", type=float, default=30.0, help="0: skip the ResNet-50 part")
    parser.add_argument("--no-triton", action="store_true", help="skip the tritonclient binary/JSON part")
    args = parser.parse_args()
    rows: list[Row] = []
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tiny_against_mlserver(args, Path(tmp), rows, extra)
        if args.resnet_seconds > 0:
            resnet_against_ort(args, Path(tmp), rows, extra)
    print_table("onnxpipe serve under load (plain = the other side)", rows)
    console.print(json.dumps(extra))
    write_results("serve", vars(args) | {"mlserver": bool(args.mlserver)}, rows, extra)


if __name__ == "__main__":
    main()
