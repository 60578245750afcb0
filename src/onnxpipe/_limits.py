"""Bounds on resource options, one place for the library and the files it loads.

A saved model or a caller may ask for threads or rows per call; these bounds refuse requests
that would exhaust the machine (a saved model asking for 1,000 threads) before anything starts.
SECURITY.md lists every limit and how to raise the ones that can be raised.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_VERIFY_TIMEOUT",
    "MAX_DENSIFIED_VALUES",
    "MAX_BATCH_ROWS",
    "MAX_THREADS",
    "LoadLimits",
    "current_load_limits",
    "loading_limits",
]

DEFAULT_MAX_BYTES = 4 << 30
"""Default bound on what one model may make onnxpipe read or allocate (a saved model's
uncompressed entries; an ONNX model's tensors, declared and constant-folded)."""

DEFAULT_VERIFY_TIMEOUT = 10.0
"""Default seconds a model may take to score its synthetic row when it is loaded."""

MAX_DENSIFIED_VALUES = 1 << 26
"""The most values a sparse vector batch (or training set) is densified to for a step or trainer
that reads dense values only (256 MiB of float32); beyond, a ShapeError names the step."""

MAX_THREADS = 256
"""Most threads one component may ask for (ONNX Runtime intra/inter-op, LightGBM)."""

MAX_BATCH_ROWS = 1 << 20
"""Most rows a component may score in one call."""


@dataclasses.dataclass(frozen=True)
class LoadLimits:
    """The limits of the load in progress, chosen by the caller of ``ctx.model.load``.

    A saved model cannot raise them: a component rebuilt from a file takes the smaller of what
    the file says and these (see :func:`loading_limits`).
    """

    max_bytes: int
    verify_timeout: float | None


_LOAD_LIMITS: contextvars.ContextVar[LoadLimits | None] = contextvars.ContextVar("onnxpipe_load_limits", default=None)


@contextlib.contextmanager
def loading_limits(limits: LoadLimits) -> Iterator[None]:
    """Within this block, components rebuilt from a file are held to ``limits``."""
    token = _LOAD_LIMITS.set(limits)
    try:
        yield
    finally:
        _LOAD_LIMITS.reset(token)


def current_load_limits() -> LoadLimits | None:
    """The limits of the load in progress in this thread (None outside a load)."""
    return _LOAD_LIMITS.get()
