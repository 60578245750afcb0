"""Text from files made safe to print: what a model, saved pipeline or data file names.

A tensor, column, step or metadata name comes from a file anyone may have written. Printed as
it is, it could move the cursor, recolour or clear the terminal (escape sequences), hide or
reorder what follows (bidirectional overrides, the "Trojan Source" trick), or flood the screen.
:func:`shown` is the one function every printer and error message uses for such text.
"""

from __future__ import annotations

__all__ = ["MAX_SHOWN", "inert", "quoted", "shown"]

MAX_SHOWN = 200
"""Characters of one name shown before the rest is summarised."""


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` with every character that is not printable escaped as Python writes it.

    Escaped: C0/C1 controls (ESC and so every ANSI sequence), format characters (bidirectional
    overrides and isolates, zero-width characters), separators other than the space, surrogates,
    private-use and unassigned code points. Text longer than ``limit`` characters is cut, saying
    how much was left out. Non-strings are shown through ``str``.
    """
    value = text if isinstance(text, str) else str(text)
    cut = len(value) - limit if len(value) > limit else 0
    if cut:
        value = value[:limit]
    if not value.isprintable():
        value = "".join(ch if ch.isprintable() else _escape(ch) for ch in value)
    return value + (f"…(+{cut:,} characters)" if cut else "")


def inert(text: str) -> str:
    """``text`` with every non-printable character escaped except line breaks and tabs, uncut:
    what every onnxpipe error and warning message goes through (:mod:`onnxpipe.errors`)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else _escape(ch) for ch in text)


def quoted(text: object) -> str:
    """``repr`` of a name from a file, for messages: every unprintable character escaped once,
    long text cut."""
    return shown(repr(text))
