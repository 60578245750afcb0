"""The one place that creates ONNX Runtime sessions: providers, GPU, fallback and threads; and
:func:`run_with_deadline`, the one way to run an untrusted model on synthetic inputs while loading it.

ONNX Runtime's own logging is off (fatal messages only): every failure reaches the caller as an
onnxpipe error carrying ONNX Runtime's message, never as lines on stderr.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Callable
from typing import Any

import onnxruntime as ort

from onnxpipe._display import shown
from onnxpipe.errors import DeviceError, ExecutionError, InvalidArgumentError, ModelLoadError, OnnxPipeWarning
from onnxpipe.runtime._custom_ops import custom_op_library_path
from onnxpipe.runtime._ort_values import needs_ort_values, ort_value_runner

__all__ = [
    "SCORING_RUN_OPTIONS",
    "RunFunction",
    "SessionSettings",
    "create_session",
    "run_function",
    "run_with_deadline",
]

RunFunction = Callable[[list[str], dict[str, Any], ort.RunOptions], list[Any]]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_QUIET = 4  # ONNX Runtime's log severity: fatal only (its errors come back as exceptions)


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """How to open a model. Not stored with a model: each process decides its own device."""

    gpu_device_id: int | None = None
    fallback_to_cpu: bool = False
    inter_op_num_threads: int | None = None
    intra_op_num_threads: int | None = None
    custom_op_libraries: tuple[str, ...] = ()  # registered names (see _custom_ops)

    def __post_init__(self) -> None:
        if self.gpu_device_id is not None and self.gpu_device_id < 0:
            raise InvalidArgumentError(f"gpu_device_id must be a non-negative GPU index, got {self.gpu_device_id}")
        for name in ("inter_op_num_threads", "intra_op_num_threads"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidArgumentError(f"{name} must be >= 0 (0 lets ONNX Runtime choose), got {value}")


def _options(settings: SessionSettings) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.log_severity_level = _QUIET  # ORT's warnings are not the user's business, its errors come back raised
    if settings.inter_op_num_threads is not None:
        so.inter_op_num_threads = settings.inter_op_num_threads
    if settings.intra_op_num_threads is not None:
        so.intra_op_num_threads = settings.intra_op_num_threads
    for name in settings.custom_op_libraries:
        so.register_custom_ops_library(custom_op_library_path(name))
    return so


def _open(source: bytes | str, settings: SessionSettings, providers: list[object], label: str) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(source, _options(settings), providers=providers)
    except Exception as exc:  # ORT raises its own Fail / InvalidGraph / NotImplemented types
        raise ModelLoadError(f"ONNX Runtime cannot load model {label}: {shown(exc, 2000)}") from None


def create_session(source: bytes | str, settings: SessionSettings, label: str) -> ort.InferenceSession:
    """Open ``source`` (model bytes or path) on the requested device.

    When a GPU is requested and cannot be used, raise :class:`DeviceError`, unless
    ``fallback_to_cpu`` is set: then warn (naming the providers actually in use) and run on CPU.
    """
    if settings.gpu_device_id is None:
        return _open(source, settings, [_CPU], label)
    available = ort.get_available_providers()
    problem: str | None = None
    if _CUDA not in available:
        problem = (
            f"the installed onnxruntime has no CUDA provider (available: {available}); "
            "install onnxruntime-gpu instead of onnxruntime"
        )
    else:
        try:
            gpu_providers: list[object] = [(_CUDA, {"device_id": settings.gpu_device_id}), _CPU]
            session = _open(source, settings, gpu_providers, label)
        except ModelLoadError as exc:
            problem = str(exc)
        else:
            if _CUDA in session.get_providers():
                if not settings.fallback_to_cpu:
                    session.disable_fallback()
                return session
            problem = "ONNX Runtime could not start CUDA (are the CUDA and cuDNN libraries installed?)"
    if not settings.fallback_to_cpu:
        raise DeviceError(
            f"GPU {settings.gpu_device_id} was requested for model {label} but cannot be used: "
            f"{problem}. Pass fallback_to_cpu=True to run on CPU instead"
        )
    session = _open(source, settings, [_CPU], label)
    warnings.warn(
        f"GPU {settings.gpu_device_id} cannot be used for model {label} ({problem}); running on "
        f"CPU with providers {session.get_providers()}",
        OnnxPipeWarning,
        stacklevel=3,
    )
    return session


SCORING_RUN_OPTIONS = ort.RunOptions()  # passed to every scoring call, so that they can all be stopped at once
SCORING_RUN_OPTIONS.log_severity_level = _QUIET


def terminate_runs() -> None:
    """Stop every ONNX Runtime call onnxpipe is making in this process, now and from now on.

    ONNX Runtime checks the flag between nodes and loop iterations, so a long call (a model that
    loops as many times as its input says) ends with an error instead of running on. Safe to
    call from any thread, e.g. one that watches for SIGTERM while the main thread is inside ONNX
    Runtime and cannot run Python signal handlers. :func:`allow_runs` lets calls run again.
    """
    SCORING_RUN_OPTIONS.terminate = True


def allow_runs() -> None:
    """Undo :func:`terminate_runs`."""
    SCORING_RUN_OPTIONS.terminate = False


def run_function(session: ort.InferenceSession, settings: SessionSettings) -> RunFunction:
    """``session.run`` for feeds that onnxpipe has already checked, called as
    ``run(output_names, feeds, SCORING_RUN_OPTIONS)``.

    ``InferenceSession.run`` re-validates the feed names and OrtValue ownership on every call,
    which costs about as much as running a tiny model. onnxpipe builds every feed itself from
    the model's inputs (checked once, at construction), so it calls the session's binding
    directly (the binding itself: a lambda around it would add a Python call to every
    prediction). It keeps the wrapper when ONNX Runtime's own provider fallback may be needed, or
    when the binding is not where this ONNX Runtime version keeps it. A model with low-precision
    inputs or outputs (bfloat16, float8, int4...) runs through OrtValues instead
    (:func:`~onnxpipe.runtime._ort_values.ort_value_runner`); only such a model pays for it.
    """
    if needs_ort_values(session):
        return ort_value_runner(session)
    inner = getattr(session, "_sess", None)
    binding = getattr(inner, "run", None)
    run: RunFunction = session.run if binding is None or settings.fallback_to_cpu else binding
    return run


def run_with_deadline(
    session: ort.InferenceSession,
    output_names: list[str] | None,
    feeds: dict[str, Any],
    seconds: float | None,
    *,
    label: str = "the model",
) -> list[Any]:
    """``session.run(output_names, feeds)`` stopped after ``seconds`` (None: no deadline).

    For running a model that is being loaded on synthetic inputs, where a crafted model (a
    ``Loop`` with a huge trip count) could otherwise run forever: a :class:`threading.Timer`
    sets ONNX Runtime's ``RunOptions.terminate``, which ONNX Runtime checks between nodes and
    loop iterations. Raises :class:`~onnxpipe.errors.ModelLoadError` when the deadline passes
    (saying how to raise it), :class:`~onnxpipe.errors.ExecutionError` when ONNX Runtime fails
    otherwise; ``label`` names the model in both. ONNX Runtime logs nothing.
    """
    options = ort.RunOptions()
    options.log_severity_level = _QUIET
    expired = threading.Event()
    timer: threading.Timer | None = None
    if seconds is not None:

        def stop() -> None:
            expired.set()
            options.terminate = True

        timer = threading.Timer(seconds, stop)
        timer.daemon = True
        timer.start()
    try:
        if needs_ort_values(session):  # bfloat16, float8, int4...: session.run cannot take or give them
            return ort_value_runner(session)(output_names, feeds, options)
        results: list[Any] = session.run(output_names, feeds, options)
        return results
    except Exception as exc:
        if expired.is_set():
            raise ModelLoadError(
                f"{label} did not finish in {seconds:g} s on a synthetic input while being loaded (a loop that "
                "runs for too long?); refusing to load it. If the model is trusted and just slow, pass a larger "
                "verify_timeout= (or None for no deadline)"
            ) from None
        raise ExecutionError(f"{label}: ONNX Runtime failed on a synthetic input: {shown(exc, 2000)}") from None
    finally:
        if timer is not None:
            timer.cancel()
