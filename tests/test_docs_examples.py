"""Every code example in the README and the documentation runs, so that none can rot.

A *unit* is a README section (``<!-- --8<-- [start:name] -->``, which the docs pages include) or a
docs page with blocks of its own. A unit's blocks run in order, in one namespace, in a fresh folder
that holds the files the examples name as a reader's own and do not make themselves
(:func:`_readers_files`: "your model", "your photos", "your CSV"). Every other name an example
uses, it defines: a reader who copies a unit's blocks in order can run them.

By the language of the block:

- ``python``: executed.
- ``console`` (commands after ``$``) and ``bash`` (every line): each command runs in bash in the
  unit's folder, with this interpreter's ``onnxpipe`` first on the ``PATH``, and must exit 0. The
  output lines a console block shows must match what the command printed (``…`` matches anything).
  ``onnxpipe serve`` runs in the background until the unit ends, and the next block starts when
  the server is ready. The ports the examples use (8080, 8081) become free ephemeral ports on
  127.0.0.1 throughout the unit.
  Not run, by rule: ``make`` (the suite is what ``make test`` runs), ``pip install`` (the
  environment these tests run in is the install) and ``docker``.
- ``ini`` / ``dockerfile`` (deployment files): the ``onnxpipe`` command line they hold is parsed by
  the CLI, so an option or a value the CLI does not take fails.
- a block without a language is a diagram or printed output, not code.

A unit that needs a system package that is missing (Java for Spark) is skipped, naming it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
DEMO = Path(str(files("onnxpipe") / "demo_data"))

_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SECTION = re.compile(r"<!-- --8<-- \[start:([\w-]+)\] -->(.*?)<!-- --8<-- \[end:\1\] -->", re.DOTALL)
_RUN = {"python", "console", "bash"}
_DEPLOYMENT = {"ini", "dockerfile"}
_NOT_CODE = {""}
_README_PORTS = ("8080", "8081")


@dataclass
class Unit:
    name: str
    blocks: list[tuple[str, str]]  # (language, text)


def _units() -> list[Unit]:
    units = [
        Unit(f"README.md#{name}", [(m[1], m[2]) for m in _FENCE.finditer(body)])
        for name, body in _SECTION.findall(README.read_text())
    ]
    for page in sorted(DOCS.rglob("*.md")):
        blocks = [(m[1], m[2]) for m in _FENCE.finditer(page.read_text())]
        if blocks:
            units.append(Unit(str(page.relative_to(ROOT)), blocks))
    return [u for u in units if u.blocks]


UNITS = _units()


def test_every_block_is_in_a_unit_and_of_a_known_language() -> None:
    """No README block outside a section (it would run nowhere), none of an unknown language."""
    readme = README.read_text()
    inside = sum(len(_FENCE.findall(body)) for _, body in _SECTION.findall(readme))
    assert inside == len(_FENCE.findall(readme)), "a README code block lies outside every --8<-- section"
    languages = {lang for unit in UNITS for lang, _ in unit.blocks}
    assert languages <= _RUN | _DEPLOYMENT | _NOT_CODE, languages - (_RUN | _DEPLOYMENT | _NOT_CODE)
    assert any(u.name == "docs/training.md" for u in UNITS)


# --------------------------------------------------------------------------- the reader's files


def _readers_files(folder: Path) -> None:
    """The files the examples name as the reader's own: real models and data where they exist."""
    import onnxpipe as op

    photos = folder / "photos" / "fruit"
    photos.mkdir(parents=True)
    for jpg in (DEMO / "images").glob("*.jpg"):
        shutil.copy(jpg, photos / jpg.name)

    # "vad.onnx": silero-vad's voice-activity model, whose inputs have no batch dimension.
    silero = _package_file("silero_vad", "data/silero_vad.onnx")
    if silero is not None:
        shutil.copy(silero, folder / "vad.onnx")
    (folder / "tokenizer.onnx").write_bytes(_tokenizer())
    shutil.copy(DEMO / "iris_logreg.onnx", folder / "model.onnx")  # "model.onnx": any model

    # "models/income/2/model.zip", "model.zip", "data.csv", "data.parquet", "data/*.parquet": an income
    # pipeline over two numeric columns, and rows to score.
    ctx = op.MLContext(seed=0)
    rng = np.random.default_rng(0)
    age = rng.uniform(18, 80, 2000).astype(np.float32)
    hours = rng.uniform(10, 80, 2000).astype(np.float32)
    label = (hours + 0.3 * age + rng.normal(0, 5, 2000)) > 60
    import pyarrow as pa

    train = ctx.data.load_from_arrow(pa.table({"age": age, "hours": hours, "Label": label}))
    model = (
        ctx.transforms.concatenate("Features", "age", "hours")
        .append(ctx.transforms.normalize_min_max("Features"))
        .append(ctx.binary_classification.trainers.sdca_logistic_regression())
        .fit(train)
    )
    rows = ctx.data.load_from_arrow(pa.table({"age": age[:100], "hours": hours[:100]}))
    (folder / "models" / "income" / "2").mkdir(parents=True)
    ctx.model.save(model, rows.schema, folder / "models" / "income" / "2" / "model.zip")
    shutil.copy(folder / "models" / "income" / "2" / "model.zip", folder / "model.zip")
    ctx.data.save_as_text(rows, folder / "data.csv", separator=",")
    ctx.data.save_as_parquet(rows, folder / "data.parquet")
    (folder / "data").mkdir()
    for k in range(8):
        part = ctx.data.load_from_arrow(
            pa.table({"age": age[k * 125 : (k + 1) * 125], "hours": hours[k * 125 : (k + 1) * 125]})
        )
        ctx.data.save_as_parquet(part, folder / "data" / f"part-{k}.parquet")


def _package_file(package: str, name: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # found, not imported: the package may need torch
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / name
    return path if path.is_file() else None


def _tokenizer() -> bytes:
    """A BERT tokenizer from onnxruntime-extensions' operators, with a tiny WordPiece vocabulary."""
    from onnx import TensorProto, helper

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "on", "##nx"]
    node = helper.make_node(
        "BertTokenizer",
        ["text"],
        ["input_ids", "token_type_ids", "attention_mask"],
        domain="ai.onnx.contrib",
        vocab_file="\n".join(vocab),
        do_lower_case=1,
    )
    outputs = [helper.make_tensor_value_info(n, TensorProto.INT64, [None]) for n in node.output]
    text = helper.make_tensor_value_info("text", TensorProto.STRING, [1])
    graph = helper.make_graph([node], "tokenizer", [text], outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.contrib", 1)]
    )
    model.ir_version = 8
    return model.SerializeToString()


# --------------------------------------------------------------------------- shell commands


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _commands(language: str, text: str) -> Iterator[tuple[str, list[str]]]:
    """(command, the output lines shown after it) for each command of a console or bash block; a
    command goes on over the next lines while a quote is open or a line ends with a backslash."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if language == "console" and not line.startswith("$ "):
            continue
        command = line[2:] if language == "console" else line
        if not command.strip() or command.lstrip().startswith("#"):
            continue
        while i < len(lines) and (command.endswith("\\") or not _complete(command)):
            command += "\n" + lines[i]
            i += 1
        shown: list[str] = []
        while language == "console" and i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        yield command, [s for s in shown if s.strip()]


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote
        return False
    return True


def _matches(shown: str, printed: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in shown.strip().split("…"))
    return re.fullmatch(pattern, printed.strip(), re.DOTALL) is not None


class Shell:
    """Runs a unit's commands; owns the servers they start."""

    def __init__(self, folder: Path, ports: dict[str, str]) -> None:
        self.folder = folder
        self.ports = ports
        self.servers: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ)
        self.env.pop("ONNXPIPE_SERVE_TOKEN", None)

    def run(self, command: str, shown: list[str], where: str) -> str | None:
        """The command's output, or None when it is not run by rule (make, docker, pip install)."""
        words = shlex.split(command, comments=True)
        if not words or words[0] in ("make", "docker") or words[:2] == ["pip", "install"]:
            return None
        if words[:2] == ["onnxpipe", "serve"]:
            self._serve(command, where)
            return ""
        done = subprocess.run(
            ["bash", "-c", command], cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=300
        )
        printed = done.stdout + done.stderr
        assert done.returncode == 0, f"{where}: `{command}` exited {done.returncode}:\n{printed}"
        if shown:
            assert _matches("\n".join(shown), printed), f"{where}: `{command}` printed\n{printed}\nnot\n{shown}"
        return printed

    def _serve(self, command: str, where: str) -> None:
        port = re.search(r"--port[ =](\d+)", command)
        assert port, f"{where}: `{command}` names no --port"
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=self.folder, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.servers.append(proc)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/v2/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"{where}: `{command}` exited {proc.returncode}:\n{out}")
            assert time.monotonic() < deadline, f"{where}: `{command}` was not ready in 60 s"
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.servers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.servers:
            try:
                assert proc.wait(timeout=30) == 0, f"a server started by the examples exited {proc.returncode}"
            finally:
                proc.kill()
                if proc.stdout:
                    proc.stdout.close()


def _check_deployment_file(text: str, where: str, folder: Path) -> None:
    """The ``onnxpipe`` command line of a systemd unit or a Dockerfile, parsed by the CLI."""
    import click

    from onnxpipe.cli import main

    found = re.search(r"^ExecStart=\S*onnxpipe (.*)$", text, re.MULTILINE) or re.search(
        r'^ENTRYPOINT \["onnxpipe", (.*)\]$', text, re.MULTILINE
    )
    assert found, f"{where}: no onnxpipe command line"
    args = shlex.split(found[1]) if "ExecStart" in found[0] else [a.strip().strip('"') for a in found[1].split(",")]
    # The model repository they name is on the server; here, the reader's folder of models stands in.
    args = [str(folder / "models") if a == "/srv/models" else a for a in args]
    context = main.make_context("onnxpipe", list(args), resilient_parsing=False)
    sub = main.get_command(context, args[0])
    assert sub is not None, f"{where}: no command {args[0]!r}"
    try:
        sub.make_context(args[0], args[1:], parent=context)
    except click.UsageError as exc:
        pytest.fail(f"{where}: `onnxpipe {' '.join(args)}`: {exc.format_message()}")


# --------------------------------------------------------------------------- the test


_SYSTEM_PACKAGES = [  # (what in a unit's code needs it, the program, what to install)
    (("pyspark", "op_spark", "--engine spark"), "java", "a Java runtime for Spark (Debian: default-jre-headless)"),
    (("--graph", "draw_model("), "dot", "Graphviz's dot (Debian: graphviz)"),
    (("curl ",), "curl", "curl (Debian: curl)"),
]


def _missing_system_package(unit: Unit) -> str | None:
    code = "\n".join(text for _, text in unit.blocks)
    for uses, program, package in _SYSTEM_PACKAGES:
        if any(u in code for u in uses) and shutil.which(program) is None:
            return f"needs {package}"
    return None


# The engines' own deprecations, as tests/test_distributed.py lets them pass.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
@pytest.mark.filterwarnings("ignore:The minimum number of concurrent actors:UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:pyspark")
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:dask")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed")
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index:pandas.errors.Pandas4Warning")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_examples_run(
    unit: Unit, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = _missing_system_package(unit)
    if reason:
        pytest.skip(reason)
    # As in the reader's shell with the environment activated (Spark starts its workers with `python3`).
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    _readers_files(tmp_path)
    ports = {p: _free_port() for p in _README_PORTS}
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", unit.name))  # a real module: dataclasses look it up
    sys.modules[module.__name__] = module
    shell = Shell(tmp_path, ports)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for k, (language, text) in enumerate(unit.blocks):
            where = f"{unit.name} block {k + 1}"
            for readme_port, port in ports.items():
                text = text.replace(readme_port, port)
            if language == "python":
                exec(compile(text, where, "exec"), module.__dict__)
            elif language in ("console", "bash"):
                for command, shown in _commands(language, text):
                    shell.run(command, shown, where)
            elif language in _DEPLOYMENT:
                _check_deployment_file(text, where, tmp_path)
        _run_defined_tests(module, unit.name)
    finally:
        os.chdir(here)
        del sys.modules[module.__name__]
        shell.stop()
        _stop_engines()
    printed = capsys.readouterr().out
    if unit.name == "README.md#architecture":
        assert "test_conformance" in module.__dict__  # the conformance example ran its checks
    if unit.name == "docs/training.md":
        assert ", True" in printed and "setosa" in printed  # what the page says it prints
        assert (tmp_path / "iris.onnx").exists() and (tmp_path / "scored.tsv").exists()


def _run_defined_tests(module: types.ModuleType, where: str) -> None:
    """A ``test_*`` function an example defines (for the reader's pytest) runs here with each of its
    parameter sets, as pytest would run it; the ones marked skip are skipped."""
    for name, fn in list(module.__dict__.items()):
        if not (name.startswith("test_") and callable(fn)):
            continue
        marks = getattr(fn, "pytestmark", [])
        parametrized = [m for m in marks if m.name == "parametrize"]
        if not parametrized:
            fn()
            continue
        for param in parametrized[0].args[1]:
            if any(m.name == "skip" for m in getattr(param, "marks", ())):
                continue
            values = param.values if hasattr(param, "values") else param
            try:
                fn(*values)
            except Exception as exc:
                raise AssertionError(f"{where}: {name}[{getattr(param, 'id', values)}] failed: {exc}") from exc


def _stop_engines() -> None:
    """Engines an example started in this process (Ray, Spark) stop with its unit."""
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()
    if "pyspark.sql" in sys.modules:
        session = sys.modules["pyspark.sql"].SparkSession.getActiveSession()
        if session is not None:
            session.stop()
