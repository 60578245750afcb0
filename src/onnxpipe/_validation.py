"""The argument checks of components' constructors, with one message style.

Every check raises :class:`~onnxpipe.errors.InvalidArgumentError` with a message of one form::

    {who}: {parameter} must be {expected}, got {value!r}[; {fix}]

``who`` is the step or function (``"normalize_min_max(Features)"``, ``"top_k_labels"``),
``parameter`` the argument's name, ``expected`` what would be accepted (``"an integer >= 2"``,
``"a number in (0, 1]"``, ``"one of 'raise', 'skip'"``, with ``" or None"`` when None is
accepted), the value given is shown as its repr cut to 60 characters, and ``fix`` says how to
fix it where the rest does not make that plain. :func:`invalid` builds such an error for a check
none of the functions below makes.

A bool is never taken for a number (``True`` is not a count), numpy integers and floats are
taken for Python ones, and numbers must be finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, cast, overload

import numpy as np

from onnxpipe._limits import MAX_THREADS
from onnxpipe.errors import InvalidArgumentError

__all__ = [
    "boolean",
    "choice",
    "column_name",
    "integer",
    "invalid",
    "names",
    "number",
    "thread_count",
]

_SHOWN = 60
"""Characters of a value's repr shown in a message."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."


def invalid(who: str, parameter: str, expected: str, value: object, *, fix: str | None = None) -> InvalidArgumentError:
    """The error for ``parameter`` of ``who`` given ``value`` where ``expected`` was wanted."""
    prefix = f"{who}: " if who else ""
    suffix = f"; {fix}" if fix else ""
    return InvalidArgumentError(f"{prefix}{parameter} must be {expected}, got {_shown(value)}{suffix}")


def _or_none(expected: str, optional: bool | str) -> str:
    """``expected``, saying that None is accepted too (and, given as text, what None means)."""
    if optional is False:
        return expected
    meaning = f" ({optional})" if isinstance(optional, str) and optional else ""
    return f"{expected} or None{meaning}"


@overload
def column_name(
    value: object, parameter: str, who: str, *, optional: Literal[False] = ..., fix: str | None = ...
) -> str: ...
@overload
def column_name(
    value: object, parameter: str, who: str, *, optional: bool | str, fix: str | None = ...
) -> str | None: ...
def column_name(
    value: object, parameter: str, who: str, *, optional: bool | str = False, fix: str | None = None
) -> str | None:
    """``value`` as a column name: a non-empty string (or None, with ``optional``; a string for
    ``optional`` says what None means, as in ``optional="same as the output"``)."""
    if value is None and optional is not False:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(who, parameter, _or_none("a non-empty column name", optional), value, fix=fix)
    return value


def names(values: Iterable[object], parameter: str, who: str, *, fix: str | None = None) -> tuple[str, ...]:
    """``values`` as a tuple of one or more column names (non-empty strings); a lone string is refused."""
    out = None if isinstance(values, str | bytes) else tuple(values)
    if not out or not all(isinstance(v, str) and v for v in out):
        shown = list(out) if out is not None else values
        raise invalid(who, parameter, "one or more non-empty column names", shown, fix=fix)
    return out  # type: ignore[return-value]  # every item was checked to be a str


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _integer_expected(low: int | None, high: int | None, unit: str | None) -> str:
    noun = f"a number of {unit}" if unit else "an integer"
    if low == 1 and high is None:
        return f"a positive number of {unit}" if unit else "a positive integer"
    if low is not None and high is not None:
        return f"{noun} from {low:,} to {high:,}"
    if low is not None:
        return f"{noun} >= {low:,}"
    if high is not None:
        return f"{noun} <= {high:,}"
    return noun


@overload
def integer(
    value: object,
    parameter: str,
    who: str,
    *,
    low: int | None = ...,
    high: int | None = ...,
    unit: str | None = ...,
    optional: Literal[False] = ...,
    fix: str | None = ...,
) -> int: ...
@overload
def integer(
    value: object,
    parameter: str,
    who: str,
    *,
    low: int | None = ...,
    high: int | None = ...,
    unit: str | None = ...,
    optional: bool | str,
    fix: str | None = ...,
) -> int | None: ...
def integer(
    value: object,
    parameter: str,
    who: str,
    *,
    low: int | None = None,
    high: int | None = None,
    unit: str | None = None,
    optional: bool | str = False,
    fix: str | None = None,
) -> int | None:
    """``value`` as an int from ``low`` to ``high`` (both included; None: no bound).

    A bool or a float (even ``2.0``) is refused; a numpy integer is taken. ``unit`` names what is
    counted, for the message (``unit="pixels"``: "a positive number of pixels").
    """
    if value is None and optional is not False:
        return None
    if _is_integer(value):
        number = int(cast("int", value))  # an int or a numpy integer
        if (low is None or number >= low) and (high is None or number <= high):
            return number
    raise invalid(who, parameter, _or_none(_integer_expected(low, high, unit), optional), value, fix=fix)


def _number_expected(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return "a finite number"


@overload
def number(
    value: object,
    parameter: str,
    who: str,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
    optional: Literal[False] = ...,
    fix: str | None = ...,
) -> float: ...
@overload
def number(
    value: object,
    parameter: str,
    who: str,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
    optional: bool | str,
    fix: str | None = ...,
) -> float | None: ...
def number(
    value: object,
    parameter: str,
    who: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool | str = False,
    fix: str | None = None,
) -> float | None:
    """``value`` as a finite float from ``low`` to ``high`` (None: no bound; ``low_open`` /
    ``high_open`` leave the bound out). Ints and numpy numbers are taken; a bool, NaN or ±inf is refused."""
    if value is None and optional is not False:
        return None
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        try:
            v = float(value)
        except OverflowError:  # an int beyond a float's range
            v = math.inf
        if (
            math.isfinite(v)
            and (low is None or (v > low if low_open else v >= low))
            and (high is None or (v < high if high_open else v <= high))
        ):
            return v
    expected = _number_expected(low, high, low_open, high_open)
    raise invalid(who, parameter, _or_none(expected, optional), value, fix=fix)


@overload
def boolean(
    value: object, parameter: str, who: str, *, optional: Literal[False] = ..., fix: str | None = ...
) -> bool: ...
@overload
def boolean(value: object, parameter: str, who: str, *, optional: bool | str, fix: str | None = ...) -> bool | None: ...
def boolean(
    value: object, parameter: str, who: str, *, optional: bool | str = False, fix: str | None = None
) -> bool | None:
    """``value`` as a bool: True or False (a numpy bool too); 0, 1, ``"yes"`` are refused."""
    if value is None and optional is not False:
        return None
    if not isinstance(value, bool | np.bool_):
        expected = "True, False or None" if optional is not False else "True or False"
        if isinstance(optional, str) and optional:
            expected = f"{expected} ({optional})"
        raise invalid(who, parameter, expected, value, fix=fix)
    return bool(value)


def choice(value: object, parameter: str, who: str, options: Sequence[str], *, fix: str | None = None) -> str:
    """``value`` if it is one of ``options`` (strings, compared exactly); the message lists them all."""
    if isinstance(value, str):
        for option in options:
            if value == option:
                return option
    expected = "one of " + ", ".join(repr(o) for o in options)
    raise invalid(who, parameter, expected, value, fix=fix)


def thread_count(value: object, parameter: str, who: str) -> int | None:
    """``value`` as a number of threads: None (the library's default) or an int from 1 to MAX_THREADS."""
    return integer(value, parameter, who, low=1, high=MAX_THREADS, unit="threads", optional="the default")
