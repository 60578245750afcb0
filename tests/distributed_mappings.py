"""Custom mappings for tests/test_distributed.py, in a module the engines' worker processes import
(importing it registers them, as a user's own module would)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import onnxpipe

KILL_MARKER = "ONNXPIPE_TEST_KILL_MARKER"  # environment: a file; the first row with id KILL_AT kills its worker
KILL_AT = 1500


@dataclass
class Row:
    id: int
    a: float


@dataclass
class Doubled:
    a2: float


def double_a(row: Row) -> Doubled:
    return Doubled(row.a * 2.0)


def double_a_but_kill_once(row: Row) -> Doubled:
    """As :func:`double_a`, but the first worker to see row KILL_AT dies on the spot (SIGKILL),
    once per marker file: the engine must re-run its part elsewhere."""
    marker = os.environ.get(KILL_MARKER)
    if marker and row.id == KILL_AT and not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return Doubled(row.a * 2.0)


onnxpipe.register_custom_mapping("tests-double-a", double_a, Row, Doubled)
onnxpipe.register_custom_mapping("tests-double-a-kill-once", double_a_but_kill_once, Row, Doubled)
