"""Shared fixtures: paths to third-party assets and small models built in the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def mlnet_data() -> Path:
    """ML.NET's test assets (../shared/data/mlnet); the test skips when they are absent."""
    path = SHARED_DATA / "mlnet"
    if not path.is_dir():
        pytest.skip(f"third-party test assets not found at {path} (only present in the project workspace)")
    return path
