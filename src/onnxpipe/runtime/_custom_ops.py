"""ONNX Runtime custom-operator libraries, known by name.

A model that uses operators outside ONNX (``onnxruntime-extensions``' string ops and tokenizers,
or a user's own) needs their shared library registered with the session. onnxpipe refers to such
a library by a *name* that the running process resolves to a path: saved models record the name,
never a path, so loading a file can only load libraries this process already trusts, and a model
saved on one machine loads on another where the library is installed elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from onnxpipe import _validation
from onnxpipe.errors import InvalidArgumentError, MissingDependencyError

__all__ = ["EXTENSIONS", "custom_op_library_path", "register_custom_op_library", "registered_custom_op_libraries"]

EXTENSIONS = "onnxruntime-extensions"


def _extensions_path() -> str:
    try:
        import onnxruntime_extensions
    except ImportError:
        raise MissingDependencyError(
            f"custom op library {EXTENSIONS!r} is not installed: pip install 'onnxpipe[extensions]' "
            "(or onnxruntime-extensions)"
        ) from None
    path: str = onnxruntime_extensions.get_library_path()
    return path


_LIBRARIES: dict[str, Callable[[], str]] = {EXTENSIONS: _extensions_path}


def register_custom_op_library(name: str, locate: Callable[[], str]) -> None:
    """Make ``name`` usable in ``apply_onnx_model(custom_op_libraries=[name])``: ``locate()``
    returns the path of the shared library in this process (register it in every process that
    loads a model naming it, as with custom mappings)."""
    _validation.column_name(name, "name", "register_custom_op_library")  # a non-empty string
    if not callable(locate):
        raise _validation.invalid("register_custom_op_library", "locate", "a function returning a path", locate)
    if name in _LIBRARIES and _LIBRARIES[name] is not locate:
        raise InvalidArgumentError(f"register_custom_op_library: {name!r} is already registered")
    _LIBRARIES[name] = locate


def registered_custom_op_libraries() -> list[str]:
    return sorted(_LIBRARIES)


def check_library_names(names: object, who: str) -> tuple[str, ...]:
    """A sequence of registered library names, as a tuple."""
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise _validation.invalid(who, "custom_op_libraries", "a list of registered library names", names)
    unknown = [n for n in names if not isinstance(n, str) or n not in _LIBRARIES]
    if unknown:
        raise InvalidArgumentError(
            f"{who}: custom_op_libraries names {unknown!r:.200}, which are not registered; the registered ones are "
            f"{registered_custom_op_libraries()} (onnxpipe.runtime.register_custom_op_library adds one)"
        )
    return tuple(names)


def custom_op_library_path(name: str) -> str:
    """The path of the registered library ``name`` in this process."""
    path = _LIBRARIES[name]()
    if not os.path.isfile(path):
        raise MissingDependencyError(f"custom op library {name!r}: {path!r} is not a file")
    return path
