"""ONNX's own backend test data through ``apply_onnx_model`` and the prediction engine.

Each case (tests/onnx_backend.py) is scored by bare ONNX Runtime, by ``apply_onnx_model`` and by
the prediction engine with the classes ``generate_schema_code`` writes; both onnxpipe results
must equal ONNX Runtime's bit for bit. Cases ONNX Runtime cannot run are skipped.

The normal run takes a deterministic sample of :data:`SAMPLE_SIZE` cases. ``pytest
--onnx-backend=full`` (or ``ONNXPIPE_BACKEND_FULL=1``) runs every case, as CI does;
``--onnx-backend=off`` none. The node test data is generated once from the installed onnx into
``~/.cache/onnxpipe-tests`` (``ONNXPIPE_ONNX_BACKEND_CACHE`` moves it).

Cases that fail today because of onnxpipe limitations are in :data:`XFAIL`, grouped by cause,
and marked ``xfail(strict=True)`` (for the pinned onnx and onnxruntime versions): a fix turns
them into XPASS, which fails until the names are removed from the list.
``python bench/onnx_backend_report.py --xfail FILE`` writes the table afresh from a full run.
"""

from __future__ import annotations

import os
import random

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests import onnx_backend as ob

SAMPLE_SIZE = 150
# The XFAIL table holds for these versions; with others a listed case that passes is reported
# (XPASS) rather than failing the run, since another onnx generates other cases.
PINNED_VERSIONS = ("1.23.2", "1.32.0")
PINNED = (onnx.__version__, ort.__version__) == PINNED_VERSIONS
FULL_ENV = "ONNXPIPE_BACKEND_FULL"

# Cause -> the cases that fail because of it (onnx 1.23.2, onnxruntime 1.32.0). Regenerate with
# `python bench/onnx_backend_report.py --xfail FILE` after a full run, then keep the causes'
# wording.
XFAIL: dict[str, list[str]] = {}


def _mode(config: pytest.Config) -> str:
    mode = config.getoption("--onnx-backend", default=None)
    if mode is None:
        mode = "full" if os.environ.get(FULL_ENV, "") not in ("", "0") else "sample"
    return str(mode)


def _xfail_causes() -> dict[str, str]:
    return {name: cause for cause, names in XFAIL.items() for name in names}


def _selected(mode: str) -> list[ob.Case]:
    if mode == "off":
        return []
    cases = ob.list_cases()
    if mode == "full":
        return cases
    # light/* are real networks (seconds each): full runs only.
    pool = [c for c in cases if c.kind != "light"]
    return sorted(random.Random(0).sample(pool, min(SAMPLE_SIZE, len(pool))), key=lambda c: c.name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_case" not in metafunc.fixturenames:
        return
    causes = _xfail_causes()
    params = []
    for case in _selected(_mode(metafunc.config)):
        marks = [pytest.mark.onnx_backend]
        if case.name in causes:
            marks.append(pytest.mark.xfail(strict=PINNED, reason=causes[case.name]))
        params.append(pytest.param(case, id=case.name, marks=marks))
    metafunc.parametrize("backend_case", params)


def test_backend_case(backend_case: ob.Case) -> None:
    result = ob.run_case(backend_case)
    if not result.counted:
        pytest.skip(str(result.ort))
    failure = result.failure()
    assert failure is None, f"{failure[0]}: {failure[1]}: {failure[2]}\n(cause: {ob.cause_of(result)})"


def test_xfail_table_names_real_cases() -> None:
    names = [name for names in XFAIL.values() for name in names]
    assert len(names) == len(set(names)), "a case is listed under two causes"
    known = {c.name for c in ob.list_cases()}
    assert not set(names) - known, f"XFAIL names cases that do not exist: {sorted(set(names) - known)}"


# ------------------------------------------------------------------------------------------------
# The comparison itself


@pytest.mark.parametrize(
    ("want", "got"),
    [
        (np.array([1.0, np.nan], np.float32), np.array([1.0, np.nan], np.float32)),
        (np.array(["a", "b"], object), np.array(["a", "b"], object)),
        (np.array([b"a"], object), np.array(["a"], object)),
        ([np.array([1], np.int64)], [np.array([1], np.int64)]),
        ({1: np.float32(2.0)}, {1: np.float32(2.0)}),
        (None, None),
        (np.array(2.5, np.float32), np.float32(2.5)),
    ],
)
def test_same_accepts_equal_values(want: object, got: object) -> None:
    ob.same(want, got, "x")


@pytest.mark.parametrize(
    ("want", "got", "message"),
    [
        (np.array([0.0], np.float32), np.array([-0.0], np.float32), "values differ"),
        (np.array([1.0], np.float32), np.array([1.0], np.float64), "dtype float64"),
        (np.array([1.0], np.float32), np.array([[1.0]], np.float32), r"shape \(1, 1\)"),
        (np.array([np.nan, 1.0]), np.array([1.0, np.nan]), "NaN at other positions"),
        (np.array(2.5, np.float32), 2.5, "a Python float"),
        ([np.array([1])], [], "a sequence of 0"),
        (np.array(["a"], object), np.array(["b"], object), "string values differ"),
        (None, np.array([1]), "empty optional"),
    ],
)
def test_same_refuses_other_values(want: object, got: object, message: str) -> None:
    with pytest.raises(ob.MismatchError, match=message):
        ob.same(want, got, "x")
