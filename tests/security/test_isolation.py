"""The isolation harness itself catches what it is meant to catch (else every attack test could pass vacuously)."""

from __future__ import annotations

from pathlib import Path

from tests.security.conftest import Outcome, run_isolated


def test_opening_the_canary_is_recorded(canary: Path) -> None:
    out = run_isolated(f"open({str(canary / 'secret.bin')!r}, 'rb').read()", canary=canary)
    assert out.returncode == 0, out
    assert not out.clean and out.events[0][0] == "open"


def test_starting_a_process_and_exec_are_recorded(canary: Path, tmp_path: Path) -> None:
    # exec is recorded when onnxpipe's code runs it: a module under a folder named onnxpipe stands in.
    package = tmp_path / "onnxpipe_canary_exec"
    package.mkdir()
    (package / "evil.py").write_text("def run(text):\n    exec(text)\n")
    out = run_isolated(
        f"import os, sys; sys.path.insert(0, {str(package)!r}); import evil; os.system('true'); evil.run('1')",
        canary=canary,
    )
    kinds = {e[0] for e in out.events}
    assert {"os.system", "exec"} <= kinds, out


def test_memory_limit_stops_a_runaway_allocation() -> None:
    out: Outcome = run_isolated("b = bytearray(8 << 30)", memory=3 << 30)
    assert out.returncode != 0 and "MemoryError" in out.stderr, out


def test_timeout_stops_a_hang() -> None:
    out = run_isolated("import time; time.sleep(30)", timeout=3)
    assert out.timed_out


def test_clean_run_is_clean(canary: Path) -> None:
    out = run_isolated("import onnxpipe as op; print(op.MLContext().data)", canary=canary)
    assert out.returncode == 0 and out.clean, out
