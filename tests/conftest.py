"""Shared fixtures: paths to third-party assets and small models built in the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    """Components a test registers (a user's own, in an example) are unregistered after it, so
    that they neither leak into later tests nor clash with another test's of the same name."""
    from onnxpipe import core

    before = dict(core.registered_components())
    yield
    core._REGISTRY.clear()
    core._REGISTRY.update(before)


@pytest.fixture
def mlnet_data() -> Path:
    """ML.NET's test assets (../shared/data/mlnet); the test skips when they are absent."""
    path = SHARED_DATA / "mlnet"
    if not path.is_dir():
        pytest.skip(f"third-party test assets not found at {path} (only present in the project workspace)")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--onnx-backend",
        choices=("sample", "full", "off"),
        default=None,
        help="ONNX backend test cases (tests/test_onnx_backend.py): a deterministic sample (default), all of them "
        "(as ONNXPIPE_BACKEND_FULL=1 does), or none",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "onnx_backend: a case of ONNX's backend test data (tests/onnx_backend.py)")
