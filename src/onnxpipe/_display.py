"""Text from files made safe to print: what a model, saved pipeline or data file names.

A tensor, column, step or metadata name comes from a file anyone may have written. Printed as
it is, it could move the cursor, recolour or clear the terminal (escape sequences), hide or
reorder what follows (bidirectional overrides, the "Trojan Source" trick), or flood the screen.
:func:`shown` is the one function every printer and error message uses for such text.
"""

from __future__ import annotations

__all__ = ["MAX_SHOWN", "RichDisplay", "inert", "quoted", "render_html", "render_text", "shown"]

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


def render_text(renderable: object, width: int = 120) -> str:
    """What a terminal ``width`` columns wide shows of ``renderable`` (anything rich prints), as
    plain text."""
    import io

    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text().rstrip()


def render_html(renderable: object, width: int = 120) -> str:
    """``renderable`` as a self-contained HTML fragment (inline styles; every text escaped by
    rich), for notebooks."""
    import io

    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_html(
        inline_styles=True,
        code_format='<pre style="font-family: Menlo, Consolas, monospace; font-size: 12px">{code}</pre>',
    )


class RichDisplay:
    """Notebook display for an object with ``__rich__``: its tables as HTML."""

    def _repr_html_(self) -> str:
        return render_html(self)
