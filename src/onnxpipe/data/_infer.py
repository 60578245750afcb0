"""Guessing how to read a delimited text file (ML.NET's ``InferColumns``): the separator, whether
the first line is a header, and the columns' types, from a bounded sample of the file."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

from onnxpipe.data._loaders import (
    DEFAULT_MISSING,
    _check_file,
    _split_line,
    load_from_text_file,
    read_schema_comment,
)
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError, InvalidArgumentError
from onnxpipe.schema import Schema

__all__ = ["SEPARATOR_GUESSES", "ColumnInference", "infer_columns"]

SEPARATOR_GUESSES = (",", "\t", ";", "|")  # in this order of preference on a tie
_SAMPLE_LINES = 200
_TYPED_WORDS = frozenset({"true", "false"})


@dataclasses.dataclass(frozen=True)
class ColumnInference:
    """How to read ``path``: pass ``separator``, ``has_header`` and ``schema`` to
    ``load_from_text_file``, or call :meth:`load`. ``schema_comment``: all of it is what the
    file's ML.NET schema comment says (not guessed); :meth:`load` reads the columns from the file
    columns it names, as ``load_from_text_file(path)`` does."""

    path: Path
    separator: str
    has_header: bool
    schema: Schema
    schema_comment: bool = False

    def load(self) -> DataView:
        """The file read with the guessed options (or as its schema comment says)."""
        if self.schema_comment:
            return load_from_text_file(self.path, separator=self.separator, has_header=self.has_header)
        return load_from_text_file(self.path, schema=self.schema, separator=self.separator, has_header=self.has_header)


def _typed(value: str) -> bool:
    """A number, a boolean or a missing value: what a header's names are not."""
    text = value.strip()
    if text in DEFAULT_MISSING or text.lower() in _TYPED_WORDS:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _guess_separator(lines: list[str]) -> str:
    """The candidate that splits the most lines into the same number (> 1) of fields."""
    best: tuple[float, int, int] | None = None
    choice = "\t"
    for rank, sep in enumerate(SEPARATOR_GUESSES):
        counts = [len(_split_line(line, sep)) for line in lines]
        width, agreeing = collections.Counter(counts).most_common(1)[0]
        if width < 2:
            continue
        score = (agreeing / len(counts), width, -rank)
        if best is None or score > best:
            best, choice = score, sep
    return choice


def _guess_header(rows: list[list[str]]) -> bool:
    """A first line whose field is text where the other lines hold numbers; or, for text-only
    data, a first line of distinct names that none of the other lines repeats."""
    first, rest = rows[0], rows[1:]
    if not rest:
        return False
    width = len(first)
    typed_columns = [
        i
        for i in range(width)
        if all(i < len(r) and _typed(r[i]) for r in rest) and any(i < len(r) and r[i].strip() for r in rest)
    ]
    if typed_columns:
        return any(not _typed(first[i]) for i in typed_columns)
    names = [f.strip() for f in first]
    if not all(names) or len(set(names)) != len(names):
        return False
    return all(all(i >= len(r) or r[i].strip() != names[i] for r in rest) for i in range(width))


def infer_columns(path: str | Path, *, max_bytes: int = 1 << 20) -> ColumnInference:
    """Guess ``path``'s separator (comma, tab, semicolon or bar), header and column types from
    its first ``max_bytes`` bytes (its first 200 lines at most); the types are those
    ``load_from_text_file`` infers (reals as float32, as in ML.NET). A file that starts with
    ML.NET's schema comment (``#@ TextLoader{ ... #@ }``, as ``save_as_text`` and ML.NET's
    ``SaveAsText`` write it) is not guessed at: its separator, header and columns are the
    comment's (``.schema_comment`` is True); a comment that cannot be read is a ParseError."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise InvalidArgumentError(f"infer_columns: max_bytes must be a positive number of bytes, got {max_bytes!r}")
    p = _check_file(path, "text file")
    comment = read_schema_comment(p)
    if comment is not None:
        schema = load_from_text_file(p, separator=comment.separator, has_header=comment.has_header).schema
        return ColumnInference(p, comment.separator, comment.has_header, schema, schema_comment=True)
    with p.open("rb") as f:
        head = f.read(max_bytes + 1)
    text = head[:max_bytes].decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(head) > max_bytes and lines:
        lines = lines[:-1]  # cut inside the sample
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("//")][:_SAMPLE_LINES]
    if not lines:
        raise DataError(f"text file {str(p)!r} has no data lines in its first {max_bytes:,} bytes")
    separator = _guess_separator(lines)
    has_header = _guess_header([_split_line(line, separator) for line in lines])
    schema = load_from_text_file(p, separator=separator, has_header=has_header).schema
    return ColumnInference(p, separator, has_header, schema)
