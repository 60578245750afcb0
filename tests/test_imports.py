"""What ``import onnxpipe`` and ``onnxpipe --help`` load: the slow dependencies only where needed.

``onnx`` (most of a second: it loads ml_dtypes) is for exporting, inspecting and loading ONNX
models; scipy for fitting; rich for printing; lightgbm and Pillow for their trainers and images.
Each check runs a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

from onnxpipe.runtime._elem_type import ElemType

HEAVY = ("onnx", "ml_dtypes", "scipy", "rich", "lightgbm", "PIL")
CLI_HEAVY = (*HEAVY, "pyarrow.compute", "pyarrow.parquet")

# The modules (not this task's) that still import a heavy package at import time. strict: the
# test fails once they no longer do, so that the marker is removed.
STILL_IMPORTED: dict[str, str] = {}


def _loaded_after(code: str) -> list[str]:
    """The modules of CLI_HEAVY that a fresh interpreter has loaded after running ``code``."""
    report = f"print(json.dumps([m for m in {list(CLI_HEAVY)!r} if m in sys.modules]))"
    script = f"import json, sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n{report}"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return loaded


@pytest.fixture(scope="module")
def after_import() -> list[str]:
    return _loaded_after("import onnxpipe")


@pytest.fixture(scope="module")
def after_help() -> list[str]:
    return _loaded_after("sys.argv = ['onnxpipe', 'predict', '--help']; from onnxpipe.cli import main; main()")


def _params(names: tuple[str, ...]) -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=STILL_IMPORTED[name]))
        if name in STILL_IMPORTED
        else name
        for name in names
    ]


@pytest.mark.parametrize("module", _params(HEAVY))
def test_import_onnxpipe_leaves_out(after_import: list[str], module: str) -> None:
    assert module not in after_import


@pytest.mark.parametrize("module", _params(CLI_HEAVY))
def test_cli_help_leaves_out(after_help: list[str], module: str) -> None:
    assert module not in after_help


def test_element_type_codes_are_onnx_ones() -> None:
    # onnxpipe writes ONNX's TensorProto.DataType codes out so as not to import onnx for them.
    assert {e.name: int(e) for e in ElemType} == {e.name: onnx.TensorProto.DataType.Value(e.name) for e in ElemType}
