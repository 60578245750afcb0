"""Checking a value against a constructor's type annotation, for states read from files.

A component rebuilt from a saved model gets its constructor arguments from the file. The
constructor checks their values; this module first checks their *types* against the
constructor's annotations, so that a constructor written for callers who follow its signature
never sees a list where it expects a string, or a string where it expects a number.

Only what saved states can hold is checked precisely (numbers, text, bytes, arrays, sequences,
mappings, literals, unions, classes); an annotation this module cannot read (a callable, a type
variable, a name only imported for type checking) accepts any value.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["annotation_problem", "parameter_annotations"]


_HINTS: dict[type, dict[str, Any]] = {}


def parameter_annotations(cls: type) -> dict[str, Any]:
    """The resolved annotations of ``cls.__init__``'s parameters (none when they cannot be resolved,
    e.g. a name imported only for type checking: then nothing is checked)."""
    if cls not in _HINTS:
        try:
            hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
        except Exception:
            hints = {}
        hints.pop("return", None)
        _HINTS[cls] = hints
    return _HINTS[cls]


def _describe(value: Any) -> str:
    return type(value).__name__


def annotation_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` (a short phrase), or None when it fits."""
    if annotation is Any or isinstance(annotation, typing.TypeVar):
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        problems = [annotation_problem(value, a) for a in args]
        return None if any(p is None for p in problems) else f"{_describe(value)} fits none of {annotation}"
    if origin is typing.Literal:
        return (
            None if any(value == a and type(value) is type(a) for a in args) else f"{value!r:.40} is not one of {args}"
        )
    if annotation is None or annotation is type(None):
        return None if value is None else f"{_describe(value)} is not None"
    if annotation is bool:
        return None if isinstance(value, bool | np.bool_) else f"{_describe(value)} is not a bool"
    if annotation is int:
        ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
        return None if ok else f"{_describe(value)} is not an int"
    if annotation is float:
        ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
        return None if ok else f"{_describe(value)} is not a number"
    if annotation is str:
        return None if isinstance(value, str) else f"{_describe(value)} is not a string"
    if annotation is bytes:
        return None if isinstance(value, bytes) else f"{_describe(value)} is not bytes"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return None if isinstance(value, str | PurePath) else f"{_describe(value)} is not a path"
    if origin in (collections.abc.Sequence, list, tuple):
        if isinstance(value, np.ndarray) and origin is collections.abc.Sequence:
            return None if value.ndim == 1 else f"array of {value.ndim} dimensions is not a sequence"
        if not isinstance(value, list | tuple):
            return f"{_describe(value)} is not a sequence"
        checks: collections.abc.Iterable[tuple[Any, Any]]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return f"a sequence of {len(value)} values is not a tuple of {len(args)}"
            checks = zip(value, args, strict=True)
        else:
            checks = [(v, args[0]) for v in value] if args else []
        for item, inner in checks:
            problem = annotation_problem(item, inner)
            if problem:
                return f"an item: {problem}"
        return None
    if origin in (collections.abc.Mapping, dict):
        if not isinstance(value, dict):
            return f"{_describe(value)} is not a mapping"
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        for k, v in value.items():
            problem = annotation_problem(k, key_type) or annotation_problem(v, value_type)
            if problem:
                return f"an entry: {problem}"
        return None
    if origin is not None:  # Callable[...], type[...] and other forms a saved state never holds
        return None
    if isinstance(annotation, type):
        return None if isinstance(value, annotation) else f"{_describe(value)} is not a {annotation.__name__}"
    return None
