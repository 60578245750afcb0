"""The one place that creates ONNX Runtime sessions: providers, GPU, fallback and threads."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import onnxruntime as ort

from onnxpipe.errors import DeviceError, InvalidArgumentError, ModelLoadError, OnnxPipeWarning

__all__ = ["RunFunction", "SessionSettings", "create_session", "run_function"]

RunFunction = Callable[[list[str], dict[str, Any]], list[Any]]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """How to open a model. Not stored with a model: each process decides its own device."""

    gpu_device_id: int | None = None
    fallback_to_cpu: bool = False
    inter_op_num_threads: int | None = None
    intra_op_num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.gpu_device_id is not None and self.gpu_device_id < 0:
            raise InvalidArgumentError(f"gpu_device_id must be a non-negative GPU index, got {self.gpu_device_id}")
        for name in ("inter_op_num_threads", "intra_op_num_threads"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidArgumentError(f"{name} must be >= 0 (0 lets ONNX Runtime choose), got {value}")


def _options(settings: SessionSettings) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    if settings.inter_op_num_threads is not None:
        so.inter_op_num_threads = settings.inter_op_num_threads
    if settings.intra_op_num_threads is not None:
        so.intra_op_num_threads = settings.intra_op_num_threads
    return so


def _open(source: bytes | str, settings: SessionSettings, providers: list[object], label: str) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(source, _options(settings), providers=providers)
    except Exception as exc:  # ORT raises its own Fail / InvalidGraph / NotImplemented types
        raise ModelLoadError(f"ONNX Runtime cannot load model {label}: {exc}") from None


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


def run_function(session: ort.InferenceSession, settings: SessionSettings) -> RunFunction:
    """``session.run`` for feeds that onnxpipe has already checked.

    ``InferenceSession.run`` re-validates the feed names and OrtValue ownership on every call,
    which costs about as much as running a tiny model. onnxpipe builds every feed itself from
    the model's inputs (checked once, at construction), so it calls the session's binding
    directly. It keeps the wrapper when ONNX Runtime's own provider fallback may be needed, or
    when the binding is not where this ONNX Runtime version keeps it.
    """
    inner = getattr(session, "_sess", None)
    run = getattr(inner, "run", None)
    if run is None or settings.fallback_to_cpu:
        return session.run  # type: ignore[no-any-return]
    return lambda names, feeds: run(names, feeds, None)  # type: ignore[no-any-return]
