"""Attacks on the command line: crafted files and arguments.

Whatever the file or the arguments, ``onnxpipe`` prints exactly one ``error:`` line (no
traceback, no escape sequence or bidirectional override from a name in a file) and exits with 2
(1 when the output cannot be written); it never crashes on a signal, hangs, reads outside what it
was given, writes through a symbolic link or over its own input, or leaves a partial output.
Each attack runs the real command in a child process under an address-space limit and a timeout
(tests/security/conftest.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import onnxpipe
from onnxpipe.cli import main
from tests.security.conftest import Outcome, assert_untouched

DEMO = Path(onnxpipe.__file__).parent / "demo_data"


def run_cli(
    isolated: Callable[..., Outcome],
    argv: list[str],
    cwd: Path,
    *,
    canary: Path | None = None,
    before: str = "",
    timeout: float = 60,
) -> Outcome:
    """``onnxpipe *argv`` in an isolated child process (``before``: Python run first, e.g. a patch)."""
    code = before + f"\nimport sys\nimport onnxpipe.cli\nsys.argv = ['onnxpipe', *{argv!r}]\nonnxpipe.cli.main()\n"
    return isolated(code, canary=canary, cwd=cwd, timeout=timeout)


def assert_one_error(out: Outcome, code: int, *contains: str) -> str:
    """The run failed with ``code`` and one inert ``error:`` line holding ``contains``; returns it."""
    text = out.stdout + out.stderr
    assert not out.timed_out, out
    assert out.returncode == code, out  # a crash would be a negative code (a signal)
    assert "Traceback" not in text, out
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and all(line in errors or line.startswith("warning: ") for line in lines), out
    assert "\x1b" not in text and "\u202e" not in text, out
    assert out.clean, out.events
    for part in contains:
        assert part in errors[0], out
    return errors[0]


# --------------------------------------------------------------------------------------------
# Inputs


def _png(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _jpeg(width: int, height: int) -> bytes:
    """A JPEG start (SOI, baseline SOF0) claiming ``width`` x ``height`` pixels, 3 components."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the attacks start from: a bare ONNX model (iris, input features float[N,4]),
    its CSV input, a saved pipeline (.zip) and a saved image pipeline (load_images first)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("cli-attacks")
    (folder / "m.onnx").write_bytes((DEMO / "iris_logreg.onnx").read_bytes())
    rows = (DEMO / "iris.csv").read_text().splitlines()[1:]
    header = "features.0,features.1,features.2,features.3,species\n"
    (folder / "in.csv").write_text(header + "\n".join(rows) + "\n")

    ctx = onnxpipe.MLContext()
    data = ctx.data.load_from_arrow(pa.table({"x": np.array([1.0, 3.0, 5.0], np.float32)}))
    ctx.model.save(ctx.transforms.normalize_min_max("x").fit(data), data.schema, folder / "model.zip")
    (folder / "x.csv").write_text("x\n1\n2\n")

    images = folder / "images" / "a"
    images.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "ok.png")
    photos = ctx.data.load_from_image_folder(folder / "images")
    pipe = ctx.transforms.load_images("image", input_column_name="ImagePath").append(
        ctx.transforms.resize_images("image", 4, 4)
    )
    ctx.model.save(pipe.fit(photos), photos.schema, folder / "images.zip")
    return folder


@pytest.fixture
def work(base: Path, tmp_path: Path) -> Path:
    """A fresh copy of the base files for one attack."""
    import shutil

    folder = tmp_path / "work"
    shutil.copytree(base, folder)
    return folder


# --------------------------------------------------------------------------------------------
# One table of bad invocations


@dataclasses.dataclass(frozen=True)
class Attack:
    name: str
    argv: list[str]
    code: int
    contains: tuple[str, ...] = ()
    prepare: Callable[[Path], None] = lambda folder: None
    absent: tuple[str, ...] = ("out.csv",)  # files the run must not leave
    unchanged: tuple[str, ...] = ("in.csv", "m.onnx")


def _truncate(folder: Path) -> None:
    data = (folder / "model.zip").read_bytes()
    (folder / "cut.zip").write_bytes(data[: len(data) // 2])


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def prepare(folder: Path) -> None:
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)

    return prepare


def _duplicate_parquet(folder: Path) -> None:
    values = pa.array([[1.0, 2.0, 3.0, 4.0]], pa.list_(pa.float32()))
    pq.write_table(pa.Table.from_arrays([values, values], names=["features", "features"]), folder / "dup.parquet")


def _big_row_group(folder: Path) -> None:
    values = pa.array(np.ones((20000, 4), np.float32).tolist(), pa.list_(pa.float32()))
    pq.write_table(pa.table({"features": values}), folder / "big.parquet", compression="zstd")


def _long_csv_field(folder: Path) -> None:
    with (folder / "long.csv").open("w") as f:
        f.write('features.0,features.1,features.2,features.3\n1,2,3,4\n1,2,3,4\n1,2,3,"')
        chunk = "x" * (1 << 20)
        for _ in range(200):  # a 200 MB field
            f.write(chunk)
        f.write('"\n1,2,3,4\n')


def _image(name: str, data: bytes) -> Callable[[Path], None]:
    def prepare(folder: Path) -> None:
        (folder / "images" / "a" / name).write_bytes(data)

    return prepare


def _hard_link(folder: Path) -> None:
    os.link(folder / "in.csv", folder / "same.csv")


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "pipe.onnx")


PREDICT = ["predict", "m.onnx", "-i", "in.csv", "-o", "out.csv"]
_NAMES = 'features.0,features.1,features.2,"fea\x1b[2J\x1b]8;;http://x\x07tures\u202e.3 [bold red]x[/]"\n1,2,3,4\n'

ATTACKS = [
    Attack("garbage-model", ["inspect", "bad.onnx"], 2, ("bad.onnx",), _write("bad.onnx", os.urandom(4096))),
    Attack(
        "garbage-model-predict",
        ["predict", "bad.onnx", "-i", "in.csv", "-o", "out.csv"],
        2,
        ("bad.onnx",),
        _write("bad.onnx", b"\x08\x07" + os.urandom(512)),
    ),
    Attack("truncated-zip", ["predict", "cut.zip", "-i", "x.csv", "-o", "out.csv"], 2, ("cut.zip",), _truncate),
    Attack("missing-model", ["predict", "nope.onnx", "-i", "in.csv", "-o", "out.csv"], 2, ("does not exist",)),
    Attack("missing-input", ["predict", "m.onnx", "-i", "nope.csv", "-o", "out.csv"], 2, ("does not exist",)),
    Attack("bad-option-value", [*PREDICT, "--batch-size", "0"], 2, ("--batch-size",)),
    Attack("unknown-option", ["inspect", "m.onnx", "--frobnicate"], 2, ("--frobnicate",)),
    Attack("model-is-a-folder", ["inspect", "."], 2, ("is a folder",)),
    Attack("model-is-a-fifo", ["inspect", "pipe.onnx"], 2, ("not a regular file",), _fifo),
    Attack("model-over-max-bytes", ["inspect", "m.onnx", "--max-bytes", "100"], 2, ("--max-bytes",)),
    Attack("unwritable-output", ["predict", "m.onnx", "-i", "in.csv", "-o", "in.csv/out.csv"], 1, ("cannot write",)),
    Attack("output-is-input", ["predict", "m.onnx", "-i", "in.csv", "-o", "in.csv"], 2, ("is the input",)),
    Attack(
        "output-is-input-hard-link",
        ["predict", "m.onnx", "-i", "in.csv", "-o", "same.csv"],
        2,
        ("is the input",),
        _hard_link,
        unchanged=("in.csv", "same.csv"),
    ),
    Attack("convert-over-model", ["convert", "model.zip", "-o", "model.zip"], 2, ("is the model",)),
    Attack("schema-over-model", ["schema", "m.onnx", "-o", "m.onnx"], 2, ("is the model",)),
    Attack(
        "duplicate-parquet-columns",
        ["predict", "m.onnx", "-i", "dup.parquet", "-o", "out.csv"],
        2,
        ("'features' appears more than once",),
        _duplicate_parquet,
    ),
    Attack(
        "duplicate-csv-columns",
        ["predict", "m.onnx", "-i", "dup.csv", "-o", "out.csv"],
        2,
        ("'features.1' appears more than once",),
        _write("dup.csv", "features.0,features.1,features.1,features.2,features.3\n1,2,3,4,5\n"),
    ),
    Attack(
        "duplicate-jsonl-keys",
        ["predict", "m.onnx", "-i", "dup.jsonl", "-o", "out.csv"],
        2,
        ("the key 'a' twice",),
        _write("dup.jsonl", '{"features": [1, 2, 3, 4], "a": 1}\n{"features": [1, 2, 3, 4], "a": 1, "a": 2}\n'),
    ),
    Attack(
        "json-nested-100k-deep",
        ["predict", "m.onnx", "-i", "deep.jsonl", "-o", "out.csv"],
        2,
        ("line 2", "more than 64 levels deep"),
        _write("deep.jsonl", b'{"features": [1, 2, 3, 4]}\n{"features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
    ),
    Attack(
        "csv-field-200mb",
        ["predict", "m.onnx", "-i", "long.csv", "-o", "out.csv", "--max-bytes", str(1 << 20)],
        2,
        ("row 2 (near line 4) is longer than 1,048,576 bytes",),
        _long_csv_field,
    ),
    Attack(
        "json-line-over-limit",
        ["predict", "m.onnx", "-i", "long.jsonl", "-o", "out.csv", "--max-bytes", str(1 << 20)],
        2,
        ("line 2 is longer than 1,048,576 bytes",),
        _write(
            "long.jsonl", '{"features": [1, 2, 3, 4]}\n{"features": [1, 2, 3, 4], "s": "' + "y" * (2 << 20) + '"}\n'
        ),
    ),
    Attack(
        "parquet-row-group-over-max-bytes",
        ["predict", "m.onnx", "-i", "big.parquet", "-o", "out.csv", "--max-bytes", "100000"],
        2,
        ("row group 0",),
        _big_row_group,
    ),
    Attack(
        "png-header-100k-by-100k",
        ["predict", "images.zip", "-i", "images", "-o", "out.csv"],
        2,
        ("bomb.png", "decompression bombs"),
        _image("bomb.png", _png(100_000, 100_000)),
    ),
    Attack(
        "png-header-just-over-the-limit",  # Pillow only warns there: onnxpipe refuses it
        ["predict", "images.zip", "-i", "images", "-o", "out.csv"],
        2,
        ("big.png", "10000 x 10000 = 100,000,000 pixels"),
        _image("big.png", _png(10_000, 10_000)),
    ),
    Attack(
        "jpeg-header-65000-by-65000",
        ["predict", "images.zip", "-i", "images", "-o", "out.csv"],
        2,
        ("bomb.jpg", "decompression bombs"),
        _image("bomb.jpg", _jpeg(65_000, 65_000)),
    ),
    Attack(
        "escapes-and-markup-in-column-names",
        ["predict", "m.onnx", "-i", "names.csv", "-o", "out.csv"],
        2,
        ("[bold red]x[/]", "\\x1b[2J", "\\u202e"),
        _write("names.csv", _NAMES),
    ),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_bad_invocation_is_one_error_line(
    attack: Attack, work: Path, canary: Path, isolated: Callable[..., Outcome]
) -> None:
    attack.prepare(work)
    before = {name: _digest(work / name) for name in attack.unchanged}
    out = run_cli(isolated, attack.argv, work, canary=canary)
    assert_one_error(out, attack.code, *attack.contains)
    assert out.stdout == ""
    for name in attack.absent:
        assert not (work / name).exists(), name
    assert not list(work.glob(".*.partial"))
    assert {name: _digest(work / name) for name in attack.unchanged} == before
    assert_untouched(canary)


def test_symlinked_output_is_not_written_through(work: Path, canary: Path, isolated: Callable[..., Outcome]) -> None:
    (work / "out.csv").symlink_to(canary / "secret.bin")
    for argv in (PREDICT, ["schema", "m.onnx", "-o", "out.csv"], ["convert", "model.zip", "-o", "out.csv"]):
        out = run_cli(isolated, argv, work, canary=canary)
        assert_one_error(out, 1, "symbolic link")
        assert (work / "out.csv").is_symlink()
        assert_untouched(canary)
    assert not list(work.glob(".*.partial"))


# --------------------------------------------------------------------------------------------
# Failures the command did not foresee


def test_unexpected_exception_is_an_internal_error_line(work: Path, isolated: Callable[..., Outcome]) -> None:
    boom = (
        "import onnxpipe.cli\ndef _boom(*a, **k):\n    raise RuntimeError('boom')\nonnxpipe.cli.TableSource = _boom\n"
    )
    out = run_cli(isolated, PREDICT, work, before=boom)
    line = assert_one_error(out, 2, "internal error: RuntimeError: boom", "--debug")
    assert "bug in onnxpipe" in line
    debug = run_cli(isolated, [*PREDICT, "--debug"], work, before=boom)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("error: internal error")
    assert not (work / "out.csv").exists()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        ("MemoryError()", "out of memory"),
        ("RecursionError('maximum recursion depth exceeded')", "nested too deeply"),
        ("__import__('pyarrow').ArrowInvalid('bad block')", "cannot read the data: bad block"),
        ("PermissionError(13, 'Permission denied', 'secret.csv')", "'secret.csv': Permission denied"),
    ],
)
def test_resource_and_library_errors_are_one_line(
    work: Path, isolated: Callable[..., Outcome], exc: str, expected: str
) -> None:
    patch = f"import onnxpipe.cli\ndef _fail(*a, **k):\n    raise {exc}\nonnxpipe.cli.TableSource = _fail\n"
    out = run_cli(isolated, PREDICT, work, before=patch)
    assert_one_error(out, 2, expected)


def test_warnings_are_one_line(work: Path, isolated: Callable[..., Outcome]) -> None:
    patch = (
        "import onnxpipe.cli, warnings\n_real = onnxpipe.cli._table_view\n"
        "def _warn(*a, **k):\n"
        "    warnings.warn('careful: \\x1b[31m[b]red[/b]', UserWarning)\n"
        "    return _real(*a, **k)\n"
        "onnxpipe.cli._table_view = _warn\n"
    )
    out = run_cli(isolated, PREDICT, work, before=patch)
    assert out.returncode == 0, out
    lines = out.stderr.splitlines()
    assert lines[0] == "warning: careful: \\x1b[31m[b]red[/b]", out
    assert lines[1:] == ["wrote 150 rows to out.csv"]


def test_debug_from_the_environment(work: Path, isolated: Callable[..., Outcome]) -> None:
    out = run_cli(isolated, ["inspect", "bad.onnx"], work, before="import os\nos.environ['ONNXPIPE_DEBUG'] = '1'\n")
    assert out.returncode == 2
    assert "error: ONNX model file 'bad.onnx' does not exist" in out.stderr
    assert "Traceback" in out.stderr


# --------------------------------------------------------------------------------------------
# Names from files are printed inert (saved-model inspect, in process)

_EVIL = "x\x1b[31m[bold]\u202eevil"


def test_inspect_of_a_saved_model_prints_names_inert(tmp_path: Path) -> None:
    ctx = onnxpipe.MLContext()
    data = ctx.data.load_from_arrow(pa.table({_EVIL: np.array([1.0, 3.0], np.float32)}))
    ctx.model.save(ctx.transforms.normalize_min_max(_EVIL).fit(data), data.schema, tmp_path / "evil.zip")
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    for args in (["inspect", str(tmp_path / "evil.zip")], ["inspect", str(tmp_path / "evil.zip"), "--json"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\u202e" not in result.output
    table = runner.invoke(main, ["inspect", str(tmp_path / "evil.zip")]).stdout
    assert "x\\x1b[31m[bold]\\u202eevil" in table  # escaped, and [bold] printed as it is
    import json

    doc = json.loads(runner.invoke(main, ["inspect", str(tmp_path / "evil.zip"), "--json"]).stdout)
    assert doc["input_schema"][0]["name"] == _EVIL  # JSON escapes read back as the same name


# --------------------------------------------------------------------------------------------
# Signals


def _big_input(folder: Path, rows: int = 100_000) -> Path:
    line = "5.1,3.5,1.4,0.2\n"
    path = folder / "big.csv"
    path.write_text("features.0,features.1,features.2,features.3\n" + line * rows)
    return path


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_predict_and_removes_the_partial_output(work: Path, signum: int, code: int) -> None:
    _big_input(work)
    (work / "out.csv").write_text("the previous result\n")
    env = {**os.environ, "ONNXPIPE_PROGRESS": "0", "NO_COLOR": "1"}
    argv = ["predict", "m.onnx", "-i", "big.csv", "-o", "out.csv", "--batch-size", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "onnxpipe.cli", *argv],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(work.glob(".out.csv.*.partial")):  # the output has started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    assert stdout == ""
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [f"error: interrupted ({signal.Signals(signum).name}); no output was written"]
    assert not list(work.glob(".*.partial"))
    assert (work / "out.csv").read_text() == "the previous result\n"  # left as it was
