"""CLI arguments that name what is not a plain file, and models whose declared sizes would make
the reader plan absurd rows: refused with one error line, nothing replaced or allocated."""

from __future__ import annotations

import io
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import onnxpipe as op
from onnxpipe.schema import Column, DType, Schema, TensorType
from tests.security.conftest import run_isolated


def _identity(path: Path, width: int) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _single_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize("command", ["predict", "convert"])
def test_an_output_that_is_a_pipe_or_device_is_never_replaced(tmp_path: Path, command: str) -> None:
    """Writing beside the output and renaming over it would replace a device node (as root,
    ``-o /dev/null`` would leave a regular file there): such outputs are refused."""
    model = _identity(tmp_path / "m.onnx", 3)
    (tmp_path / "in.csv").write_text("x.0,x.1,x.2\n1,2,3\n")
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    if command == "predict":
        argv = ["predict", str(model), "-i", str(tmp_path / "in.csv"), "-o", str(fifo)]
    else:
        zipped = tmp_path / "m.zip"
        ctx = op.MLContext()
        ctx.model.save(
            ctx.transforms.apply_onnx_model(str(model)), Schema([Column("x", TensorType(DType.FLOAT32, (3,)))]), zipped
        )
        argv = ["convert", str(zipped), "-o", str(fifo)]
    out = run_isolated("", argv=argv, timeout=60)
    assert out.returncode == 1 and not out.timed_out, out
    assert "is not a regular file" in _single_error(out.stderr)
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe it was
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


@pytest.mark.parametrize(
    ("width", "match"),
    [
        (1 << 40, r"input 'x' of .* declares 1,099,511,627,776 values per row .* more than --max-bytes"),
        (1 << 28, r"column 'x' holds 268,435,456 values per row, more than a text row of 67,108,864 bytes"),
    ],
)
def test_absurd_declared_row_sizes_are_refused_before_reading(tmp_path: Path, width: int, match: str) -> None:
    model = _identity(tmp_path / "m.onnx", width)
    (tmp_path / "in.csv").write_text("x.0\n1\n")
    out = run_isolated("", argv=["predict", str(model), "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv")])
    assert out.returncode == 2 and not out.timed_out and out.clean, out
    assert re.search(match, _single_error(out.stderr)), out.stderr
    assert not (tmp_path / "o.csv").exists()


def _loop_model(path: Path) -> Path:
    """``y = x`` computed by a Loop that runs ``max(x)`` times: scoring time set by the data."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
        helper.make_node("Cast", ["mx"], ["trip"], to=TensorProto.INT64),
        helper.make_node("Loop", ["trip", "t", "z"], ["vf"], body=body),
        helper.make_node("Reshape", ["vf", "s"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [
            helper.make_tensor("t", TensorProto.BOOL, [], [True]),
            helper.make_tensor("z", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("s", TensorProto.INT64, [2], [1, 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_long_onnx_runtime_call(tmp_path: Path, signum: int) -> None:
    """A model looping 10**12 times on one row: Python cannot run its signal handler while ONNX
    Runtime runs, so the CLI stops ONNX Runtime's calls from a thread woken by the signal."""
    model = _loop_model(tmp_path / "loop.onnx")
    (tmp_path / "in.csv").write_text("x\n1e12\n")
    output = tmp_path / "out.csv"
    command = [sys.executable, "-m", "onnxpipe.cli", "predict", str(model), "-i", str(tmp_path / "in.csv")]
    env = {**os.environ, "ONNXPIPE_PROGRESS": "0", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [*command, "-o", str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):  # scoring has begun
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, stderr
    assert "interrupted" in _single_error(stderr)
    assert not output.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def _progressive_jpeg(scans_repeated: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    last_scan = data[data.rfind(b"\xff\xda") : -2]
    return data[:-2] + last_scan * scans_repeated + b"\xff\xd9"


def test_progressive_jpeg_with_thousands_of_scans_is_refused_and_parquet_output_fails_in_one_line(
    tmp_path: Path,
) -> None:
    """Each scan decodes the whole image again: a few kilobytes of repeated scans were hours of
    work. And a failure while writing Parquet used to add pyarrow's own traceback after the error."""
    pytest.importorskip("PIL")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "fine.jpg").write_bytes(_progressive_jpeg(0))
    ctx = op.MLContext()
    view = ctx.data.load_from_image_folder(folder)
    step = ctx.transforms.load_images("Image", input_column_name="ImagePath")
    assert step.transform(view).to_arrow().num_rows == 1  # an ordinary progressive JPEG decodes
    ctx.model.save(step.fit(view), view.schema, tmp_path / "images.zip")
    (folder / "scans.jpg").write_bytes(_progressive_jpeg(3000))
    argv = ["predict", str(tmp_path / "images.zip"), "-i", str(folder), "-o", str(tmp_path / "out.parquet")]
    out = run_isolated("", argv=argv, timeout=60)
    assert out.returncode == 2 and not out.timed_out and out.clean, out
    assert "progressive JPEG of 3,00" in _single_error(out.stderr) and "more than 100" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "out.parquet").exists()
