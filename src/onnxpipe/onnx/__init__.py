"""Deprecated alias of :mod:`onnxpipe.runtime` (this name shadowed the ``onnx`` package).

Kept so that code written against onnxpipe 0.1 still imports; it will be removed in 0.3.
"""

import warnings

from onnxpipe import runtime as _runtime
from onnxpipe.runtime import *  # noqa: F403

warnings.warn(
    "onnxpipe.onnx is deprecated and will be removed in onnxpipe 0.3; import from onnxpipe.runtime "
    "(sessions, inspection) or onnxpipe.export (ONNX export) instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = _runtime.__all__
