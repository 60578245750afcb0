"""Isolation for the attack tests: each attack runs in a child process under limits.

A regression must fail fast instead of hanging CI or eating the machine, so every crafted input
is opened in a fresh Python process with an address-space limit and a timeout. The child also
installs an audit hook (PEP 578) that records every file opened under the canary folder (a
folder outside the model's, holding a secret) and every attempt to start a process or run code
through ``exec``/``compile``; the test asserts the record is empty.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

DEFAULT_MEMORY = 4 << 30  # address space; importing onnxruntime + pyarrow + numpy alone maps ~1.7 GB
DEFAULT_TIMEOUT = 60.0

_PRELUDE = """
import json as _json, os as _os, sys as _sys
_CANARY = {canary!r}
_EVENTS = []
_WATCHED = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.spawn")

def _audit(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, _os.PathLike)):
        path = _os.fsdecode(args[0])
        if _CANARY and _os.path.realpath(path).startswith(_CANARY):
            _EVENTS.append(["open", path])
    elif event in _WATCHED:
        _EVENTS.append([event, repr(args)[:200]])
    elif event == "exec" and _ARMED:
        # Importing a module execs the code object of its file, and dataclasses or namedtuple
        # exec the methods they generate: what matters is onnxpipe's own code running code that
        # is not a module's (exec, eval, compile of a string).
        filename = getattr(args[0], "co_filename", "") if args else ""
        caller = _sys._getframe(1).f_code.co_filename
        if not _os.path.isfile(filename) and "onnxpipe" in caller:
            _EVENTS.append(["exec", repr(args)[:200] + " from " + caller])

_ARMED = False
_sys.addaudithook(_audit)

import atexit as _atexit
def _report():
    _sys.stderr.write("\\n@@EVENTS@@" + _json.dumps(_EVENTS) + "\\n")
_atexit.register(_report)
import onnxpipe, onnxpipe.persistence  # imported before arming: imports run module code by design
_ARMED = True
"""


@dataclasses.dataclass
class Outcome:
    """What a child process did."""

    returncode: int
    stdout: str
    stderr: str
    events: list[list[str]]
    timed_out: bool = False

    @property
    def clean(self) -> bool:
        """No file under the canary folder opened, no process started, no code exec'd."""
        return not self.events

    def __str__(self) -> str:
        head = f"rc={self.returncode} timed_out={self.timed_out} events={self.events}"
        return f"{head}\nstdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"


def _limits(memory: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_isolated(
    code: str,
    *,
    canary: Path | None = None,
    cwd: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory: int = DEFAULT_MEMORY,
    argv: list[str] | None = None,
) -> Outcome:
    """Run the Python ``code`` in a child process under an address-space limit and a timeout.

    With ``argv`` the child runs the ``onnxpipe`` command line with those arguments instead of
    ``code``, audited the same way.
    """
    prelude = _PRELUDE.format(canary=str(canary.resolve()) if canary else "")
    if argv is not None:
        code = f"import sys\nsys.argv = ['onnxpipe', *{argv!r}]\nfrom onnxpipe.cli import main\nmain()\n"
    script = prelude + "\n" + textwrap.dedent(code)
    env = {**os.environ, "ONNXPIPE_PROGRESS": "0", "NO_COLOR": "1", "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=env,
            preexec_fn=_limits(memory),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Outcome(-1, out, err, [], timed_out=True)
    stderr, _, tail = proc.stderr.rpartition("\n@@EVENTS@@")
    events: list[list[str]] = []
    if tail:
        events = json.loads(tail.splitlines()[0])
    else:
        stderr = proc.stderr
    return Outcome(proc.returncode, proc.stdout, stderr, events)


@pytest.fixture
def isolated() -> Callable[..., Outcome]:
    """``isolated(code, canary=..., timeout=..., memory=..., argv=[...])`` -> :class:`Outcome`."""
    return run_isolated


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A folder outside the model's, with a secret file; nothing may open it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.bin").write_bytes(b"CANARY-" + os.urandom(64))
    return folder


def assert_untouched(canary: Path, before: dict[str, float] | None = None) -> None:
    """The canary folder holds only its secret, unchanged."""
    names = sorted(p.name for p in canary.iterdir())
    assert names == ["secret.bin"], names
    assert (canary / "secret.bin").read_bytes().startswith(b"CANARY-")
