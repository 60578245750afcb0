"""Table files for ``onnxpipe predict``: CSV/TSV, Parquet and JSON lines in, batch by batch, and out.

Layout of a column in a file (the same for reading and writing, so an output can be read back):

* scalar: one file column of the column's name;
* tensor of known shape (k values): in CSV/TSV, k file columns ``name.0`` ... ``name.{k-1}``
  (row-major); in Parquet and JSON lines, one list column (flat, row-major), or the k columns;
* anything else (tensors of unknown shape, sequences, maps): a list column in Parquet, a JSON
  value in JSON lines, a JSON text cell in CSV/TSV (written only: CSV cannot be read back).

Memory stays bounded: files are read in blocks (text, JSON) or row groups (Parquet) and written
batch by batch. Limits on what one file may make onnxpipe hold (each an error naming the place):

* one row (a CSV/TSV line, a JSON line) at most ``min(MAX_ROW_BYTES, max_bytes)`` bytes (64 MiB):
  a row is parsed whole, in one read block, which grows for long rows up to that size only;
* JSON nested at most :data:`MAX_JSON_DEPTH` (64) arrays/objects deep, checked by a linear scan
  of the bytes before pyarrow parses them (pyarrow's JSON parser recurses, and crashes the
  process on input nested ~100,000 deep);
* one Parquet row group's columns that are read at most ``max_bytes`` once uncompressed;
* column names unique (a repeated name is a DataError naming it), in every format.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

if TYPE_CHECKING:  # pyarrow.compute and pyarrow.parquet (60 ms) are imported where used: not by --help
    import pyarrow.parquet as pq

from onnxpipe._display import shown
from onnxpipe._limits import DEFAULT_MAX_BYTES
from onnxpipe.data._convert import fixed_size_lists, from_arrow, schema_from_arrow, to_arrow
from onnxpipe.data._loaders import (
    MAX_ROW_BYTES,
    check_unique_names,
    expand_dictionaries,
    load_from_text_file,
    normalize_batch,
)
from onnxpipe.data._view import DataView
from onnxpipe.data._writers import TableWriter, open_writer
from onnxpipe.data._writers import split_names as _split_names
from onnxpipe.errors import (
    ColumnTypeError,
    DataError,
    DataFileNotFoundError,
    InvalidArgumentError,
    ParseError,
    ShapeError,
)
from onnxpipe.schema import Column, ColumnType, DType, Schema, TensorType

__all__ = [
    "INPUT_FORMATS",
    "MAX_JSON_DEPTH",
    "OUTPUT_FORMATS",
    "JsonLinesGuard",
    "TableSource",
    "TableWriter",
    "default_batch_rows",
    "format_of",
    "open_writer",
    "rebatch",
]

INPUT_FORMATS = ("csv", "tsv", "parquet", "jsonl")
OUTPUT_FORMATS = ("csv", "tsv", "parquet", "jsonl")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_BATCH_BYTES = 32 << 20  # default rows per batch: about this many bytes of model input
_MAX_BATCH_ROWS = 8192

# DEFAULT_MAX_BYTES is --max-bytes' default: the most bytes one file may make onnxpipe hold at once
# (a model, one Parquet row group; one row is also held to 64 MiB). 4 GiB, as ``ctx.model.load``
# (onnxpipe._limits): larger than any model a machine that runs onnxpipe usually scores, small
# enough that a crafted size fails cleanly.

MAX_JSON_DEPTH = 64
"""The deepest nesting of JSON arrays and objects read from a JSON lines file. A value onnxpipe
reads is a flat (or, for tensors, a few levels nested) array: 64 leaves ample room."""


def format_of(path: Path, given: str, option: str) -> str:
    """The file format: ``given`` unless it is ``auto``, else the one the file name ends with."""
    if given != "auto":
        return given
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        choices = "|".join(INPUT_FORMATS if option == "--format-in" else OUTPUT_FORMATS)
        known = ", ".join(sorted(_SUFFIXES))
        raise InvalidArgumentError(
            f"cannot tell the format of {str(path)!r} from its name (known endings: {known}); pass {option} {choices}"
        )
    return fmt


def _values_per_row(ct: ColumnType) -> int:
    if isinstance(ct, TensorType):
        return ct.size if ct.size is not None else 1024  # a guess for unknown shapes
    return 64


def default_batch_rows(schema: Schema) -> int:
    """Rows per batch so that one batch of ``schema``'s columns is about 32 MiB."""
    row_bytes = sum(
        _values_per_row(c.type) * (64 if c.type.dtype is DType.STRING else c.type.dtype.numpy.itemsize)
        if isinstance(c.type, TensorType)
        else 1024
        for c in schema.columns
    )
    return max(1, min(_MAX_BATCH_ROWS, _BATCH_BYTES // max(row_bytes, 1)))


def rebatch(view: DataView, rows: int) -> DataView:
    """The same view in batches of at most ``rows`` rows (sources read in blocks of bytes)."""

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in view.batches():
            if batch.num_rows <= rows:
                yield batch
                continue
            for start in range(0, batch.num_rows, rows):
                yield batch.slice(start, rows)

    return DataView(view.schema, batches, view.row_count)


def describe_layout(column: Column, fmt: str) -> str:
    """Where a vector ``column`` is read from in a file of format ``fmt`` (empty for scalars), for errors."""
    split = _split_names(column)
    if split is None:
        return ""
    cols = f"the columns {split[0]!r} ... {split[-1]!r}"
    return f" (read from {cols})" if fmt in _SEPARATORS else f" (read from a list column {column.name!r} or {cols})"


# --------------------------------------------------------------------------------------------
# JSON lines guard

_QUOTE, _BACKSLASH, _OPEN, _CLOSE, _NEWLINE = 1, 2, 3, 4, 5
_JSON_CLASS = bytes(
    {
        ord('"'): _QUOTE,
        ord("\\"): _BACKSLASH,
        ord("["): _OPEN,
        ord("{"): _OPEN,
        ord("]"): _CLOSE,
        ord("}"): _CLOSE,
        ord("\n"): _NEWLINE,
    }.get(i, 0)
    for i in range(256)
)  # a byte's class, for bytes.translate
_SCAN_CHUNK = 1 << 20


class JsonLinesGuard:
    """Checks the bytes of a JSON lines file, in order, before they are parsed: no line longer
    than ``max_line`` bytes, no arrays/objects nested deeper than ``max_depth``.

    One linear pass, vectorized with numpy over 1 MiB pieces (about 1 ms a piece to find the
    quotes, backslashes, brackets and line breaks; only those are then looked at). It follows
    JSON's string rules (a quote opens or closes a string unless escaped by an odd run of
    backslashes; brackets inside strings do not count), carrying its state from one piece to the
    next. Where the bytes are not valid JSON it errs on the side of counting: a line break ends a
    string (a JSON string cannot hold one, so the parser stops there), a closing bracket never
    takes the depth below zero, and the depth is not reset between lines (pyarrow parses a
    document that spans several lines as one). So the depth it finds is never less than the
    parser's.
    """

    def __init__(self, where: str, *, max_depth: int = MAX_JSON_DEPTH, max_line: int = MAX_ROW_BYTES) -> None:
        self.where = where
        self.max_depth = max_depth
        self.max_line = max_line
        self._depth = 0
        self._in_string = False
        self._backslashes = 0  # parity of the run of backslashes that ended the previous piece
        self._line = 1  # the line the next byte belongs to (1-based)
        self._line_bytes = 0  # bytes of that line seen so far

    def scan(self, data: bytes | bytearray | memoryview) -> None:
        """Check the next bytes of the file; a ParseError names the line at fault."""
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _SCAN_CHUNK):
            self._scan(view[start : start + _SCAN_CHUNK].tobytes())

    def _too_long(self, line: int) -> ParseError:
        return ParseError(
            f"{self.where}: line {line} is longer than {self.max_line:,} bytes, the most one row may take; "
            "split the value, or raise --max-bytes if the row is meant to be that long"
        )

    def _scan(self, piece: bytes) -> None:
        n = len(piece)
        classes = np.frombuffer(piece.translate(_JSON_CLASS), dtype=np.uint8)
        pos = np.flatnonzero(classes.view(np.bool_))
        kinds = classes[pos]
        breaks = pos[kinds == _NEWLINE]
        # Line lengths (without the line break).
        if breaks.size:
            if self._line_bytes + int(breaks[0]) > self.max_line:
                raise self._too_long(self._line)
            inner = np.diff(breaks) - 1
            over = np.flatnonzero(inner > self.max_line)
            if over.size:
                raise self._too_long(self._line + 1 + int(over[0]))
            tail = n - 1 - int(breaks[-1])
        else:
            tail = self._line_bytes + n
        if tail > self.max_line:
            raise self._too_long(self._line + int(breaks.size))
        # Quotes that delimit strings: those not escaped by an odd run of backslashes.
        quotes = pos[kinds == _QUOTE]
        slashes = pos[kinds == _BACKSLASH]
        carry = self._backslashes
        if slashes.size or carry:
            # Each backslash's run starts at the first of the adjacent backslashes before it; a run
            # that starts the piece continues the previous piece's.
            starts = np.ones(slashes.size, dtype=np.bool_)
            starts[1:] = np.diff(slashes) != 1
            first = np.maximum.accumulate(np.where(starts, np.arange(slashes.size), 0))
            last = np.searchsorted(slashes, quotes) - 1  # the last backslash before each quote
            touching = (last >= 0) & (slashes[np.maximum(last, 0)] == quotes - 1) if slashes.size else last >= 0
            if slashes.size:
                begin = slashes[first[np.maximum(last, 0)]]
                run = np.where(touching, quotes - begin, 0)
                run += np.where(touching & (begin == 0), carry, 0)
            else:
                run = np.zeros(quotes.size, dtype=np.int64)
            run += np.where(quotes == 0, carry, 0)
            quotes = quotes[(run & 1) == 0]
            if n and piece[-1] == 92:
                begin_last = int(slashes[first[-1]])
                self._backslashes = (n - begin_last + (carry if begin_last == 0 else 0)) & 1
            else:
                self._backslashes = 0
        # Brackets outside strings: a string runs from a quote to the next quote or line break.
        brackets = pos[(kinds == _OPEN) | (kinds == _CLOSE)]
        if brackets.size:
            quotes_before = np.searchsorted(quotes, brackets)
            lines_before = np.searchsorted(breaks, brackets)
            started = lines_before > 0
            line_start = breaks[np.maximum(lines_before - 1, 0)] if breaks.size else np.zeros_like(brackets)
            quotes_at_line_start = np.where(started, np.searchsorted(quotes, line_start), 0)
            inside = (quotes_before - quotes_at_line_start + np.where(started, 0, int(self._in_string))) & 1
            structural = brackets[inside == 0]
            if structural.size:
                steps = np.where(classes[structural] == _OPEN, 1, -1)
                walk = self._depth + np.cumsum(steps)
                depth = walk - np.minimum(np.minimum.accumulate(walk), 0)  # never below zero
                deep = np.flatnonzero(depth > self.max_depth)
                if deep.size:
                    line = self._line + int(np.searchsorted(breaks, structural[deep[0]]))
                    raise ParseError(
                        f"{self.where}: line {line} nests JSON arrays/objects more than {self.max_depth} levels deep; "
                        "onnxpipe reads flat arrays (row-major) and refuses deeper input before parsing it"
                    )
                self._depth = int(depth[-1])
        # The state the next piece starts in.
        if breaks.size:
            self._in_string = bool((quotes.size - int(np.searchsorted(quotes, breaks[-1]))) & 1)
        else:
            self._in_string = bool((int(self._in_string) + quotes.size) & 1)
        self._line += int(breaks.size)
        self._line_bytes = tail


def _scan_file(path: Path, guard: JsonLinesGuard, limit: int | None = None) -> bytes | None:
    """Pass the file's bytes (its first ``limit`` bytes, which are returned) through ``guard``.

    The whole file is checked before pyarrow reads it from its own path: pyarrow's reader threads
    never call back into Python (a Python file object read from them could still be in use when
    an error ends the process, which then aborts at exit)."""
    with path.open("rb") as f:
        if limit is not None:
            head = f.read(limit)
            guard.scan(head)
            return head
        while chunk := f.read(1 << 20):
            guard.scan(chunk)
    return None


_JSON_TWICE = re.compile(r"Column\(/([^)]*)\) was specified twice in row (\d+)")


def _json_error(exc: pa.ArrowException, where: str, row0: int) -> DataError:
    """pyarrow's error reading JSON lines as the library's (a repeated key: a DataError naming it)."""
    text = str(exc)
    twice = _JSON_TWICE.search(text)
    if twice is not None:
        return DataError(
            f"{where}: the row near row {row0 + int(twice[2])} has the key {shown(twice[1])!r} twice; column names "
            "must be unique, so rename or drop the repeated key"
        )
    hint = " (vectors are read from flat JSON arrays, row-major)" if "array" in text else ""
    return ParseError(f"cannot read {where} as JSON lines near row {row0}: {text}{hint}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DataError(f"the key {key!r} appears twice")
        seen[key] = value
    return seen


@dataclasses.dataclass(frozen=True)
class _Source:
    column: Column
    file_columns: tuple[str, ...]
    split: bool  # a vector assembled from scalar file columns


class TableSource:
    """A table file to predict over; what it holds is read lazily, in batches."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        separator: str | None = None,
        has_header: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if not path.is_file():
            raise DataFileNotFoundError(f"input file {str(path)!r} does not exist (or is not a file)")
        self.path = path
        self.format = fmt
        self.separator = separator if separator is not None else _SEPARATORS.get(fmt, ",")
        self.has_header = has_header
        self.max_bytes = max_bytes
        self.max_row_bytes = min(MAX_ROW_BYTES, max_bytes)
        if fmt not in _SEPARATORS and not has_header:
            raise InvalidArgumentError(f"--no-header is for CSV/TSV input only; {path.name!r} is read as {fmt}")
        self._names: list[str] | None = None
        # An empty JSON lines file declares no column: it is zero rows of any columns.
        self._no_rows = fmt == "jsonl" and not self._first_line()

    @property
    def where(self) -> str:
        return f"input file {self.path.name!r}"

    def column_names(self) -> list[str]:
        """The file's column names (``column0``, ... for a text file without a header)."""
        if self._names is None:
            self._names = self._read_names()
        return self._names

    def _read_names(self) -> list[str]:
        if self.format in _SEPARATORS:
            # The header's names, which the model's columns are matched to (name.0 ... for a
            # vector), not the columns an ML.NET schema comment at the top would make.
            return load_from_text_file(
                self.path,
                separator=self.separator,
                has_header=self.has_header,
                max_row_bytes=self.max_row_bytes,
                schema_comment=False,
            ).schema.names
        if self.format == "parquet":
            import pyarrow.parquet as pq

            try:
                names = list(pq.ParquetFile(self.path).schema_arrow.names)
            except (pa.ArrowException, OSError) as exc:
                raise DataError(f"cannot read {self.where} as Parquet: {exc}") from None
            check_unique_names(names, self.where, DataError)
            return names
        try:
            names = list(self._json_schema().names)
        except pa.ArrowException as exc:
            if _JSON_TWICE.search(str(exc)):
                raise _json_error(exc, self.where, 0) from None
            return self._first_json_keys()  # the first block's values may not infer; the keys are enough
        check_unique_names(names, self.where, DataError)
        return names

    def _json_schema(self) -> pa.Schema:
        """The schema pyarrow infers from the first block (grown for a long first line)."""
        size, limit = self._json_block(1 << 20), self._json_block(self.max_row_bytes + (1 << 16))
        while True:
            head = _scan_file(self.path, self._guard(), size)
            assert head is not None
            lines = head[: head.rfind(b"\n") + 1] or head  # whole lines only
            if not lines.endswith(b"\n") and len(head) == size and size < limit:
                size = min(size * 4, limit)  # the first line is longer than the block: read more
                continue
            read = pajson.ReadOptions(block_size=len(lines) + 1)
            return pajson.open_json(pa.BufferReader(lines), read_options=read).schema

    def _guard(self) -> JsonLinesGuard:
        return JsonLinesGuard(self.where, max_line=self.max_row_bytes)

    def _json_block(self, wanted: int) -> int:
        """A JSON read block of about ``wanted`` bytes that holds the longest line allowed."""
        return max(min(wanted, self.max_row_bytes + (1 << 16)), 1 << 12)

    def _first_line(self) -> bytes:
        """The first line that is not blank (at most the longest row allowed is read)."""
        with self.path.open("rb") as f:
            number = 0
            while True:
                raw = f.readline(self.max_row_bytes + 1)
                if not raw:
                    return b""
                number += 1
                if len(raw.rstrip(b"\r\n")) > self.max_row_bytes:
                    raise ParseError(
                        f"{self.where}: line {number} is longer than {self.max_row_bytes:,} bytes, the most one row "
                        "may take; split the value, or raise --max-bytes if the row is meant to be that long"
                    )
                if raw.strip():
                    return raw

    def _first_json_keys(self) -> list[str]:
        first = self._first_line()
        self._guard().scan(first)  # Python's json recurses too
        try:
            row = json.loads(first, object_pairs_hook=_unique_keys) if first else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ParseError(f"{self.where} is not JSON lines (one JSON object per line): line 1: {exc}") from None
        except DataError as exc:
            raise DataError(
                f"{self.where}: line 1: {exc}; column names must be unique, so rename or drop the repeated key"
            ) from None
        if not isinstance(row, dict):
            raise ParseError(f"{self.where} is not JSON lines: its first line is not a JSON object")
        return list(row)

    def layout(self, column: Column) -> _Source | None:
        """Which file columns hold ``column`` (None: the file does not have it)."""
        if self._no_rows:
            return _Source(column, (column.name,), False)
        names = self.column_names()
        split = _split_names(column)
        if self.format in _SEPARATORS:
            if not self.has_header:
                return _Source(column, (), split is not None)  # positional: the loader checks the width
            if split is None:
                return _Source(column, (column.name,), False) if column.name in names else None
            return _Source(column, tuple(split), True) if all(s in names for s in split) else None
        if column.name in names:
            return _Source(column, (column.name,), False)
        if split is not None and all(s in names for s in split):
            return _Source(column, tuple(split), True)
        return None

    def consumed(self, columns: Sequence[Column]) -> set[str]:
        """The file columns that ``columns`` read."""
        out: set[str] = set()
        for c in columns:
            src = self.layout(c)
            if src is not None:
                out.update(src.file_columns)
        return out

    def extra_columns(self, columns: Sequence[Column]) -> list[str]:
        """File columns the model's columns do not read (kept as they are, if asked for)."""
        if self.format in _SEPARATORS and not self.has_header:
            width = sum((c.type.size or 1) if isinstance(c.type, TensorType) else 1 for c in columns)
            return self.column_names()[width:]
        used = self.consumed(columns) | {c.name for c in columns}
        return [n for n in self.column_names() if n not in used]

    def view(self, columns: Sequence[Column], extras: Sequence[str], batch_rows: int) -> DataView:
        """A lazy view of ``columns`` (typed as given) and the file columns ``extras`` (typed as
        the file holds them; strings for CSV/TSV)."""
        for c in columns:
            if self.format in _SEPARATORS and not (isinstance(c.type, TensorType) and c.type.is_known_shape):
                raise ColumnTypeError(
                    f"column {c.name!r} is {c.type}, which a CSV/TSV file cannot hold; give the input as "
                    "Parquet or JSON lines (list columns)"
                )
            if self.format == "jsonl" and not isinstance(c.type, TensorType):
                raise ColumnTypeError(
                    f"column {c.name!r} is {c.type}, which onnxpipe does not read from JSON lines; give the input "
                    "as Parquet"
                )
        if self._no_rows:
            return DataView(Schema([*columns]), lambda: iter(()), 0)
        if self.format in _SEPARATORS:
            return self._text_view(columns, extras, batch_rows)
        if self.format == "parquet":
            return self._parquet_view(columns, extras, batch_rows)
        return self._json_view(columns, extras, batch_rows)

    def _block_size(self, columns: Sequence[Column]) -> int:
        # A read block must hold whole rows: room for 16 rows of about 16 bytes of text per value.
        # It grows for longer rows, up to the longest row allowed.
        values = sum(_values_per_row(c.type) for c in columns) + len(self.column_names())
        return max(1 << 20, min(256 << 20, 16 * 16 * values))

    def _text_view(self, columns: Sequence[Column], extras: Sequence[str], batch_rows: int) -> DataView:
        schema = Schema([*columns, *(Column(n, TensorType(DType.STRING)) for n in extras)])
        view = load_from_text_file(
            self.path,
            schema=schema,
            separator=self.separator,
            has_header=self.has_header,
            block_size=self._block_size(columns),
            max_row_bytes=self.max_row_bytes,
        )
        return rebatch(view, batch_rows)

    def _sources(self, columns: Sequence[Column]) -> list[_Source]:
        sources = []
        for c in columns:
            src = self.layout(c)
            if src is None:
                raise AssertionError(f"column {c.name!r} was checked to be in the file")
            sources.append(src)
        return sources

    def _parquet_view(self, columns: Sequence[Column], extras: Sequence[str], batch_rows: int) -> DataView:
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read {self.where} as Parquet: {exc}") from None
        sources = self._sources(columns)
        extra_columns = [_extra_column(meta.schema_arrow.field(n)) for n in extras]
        schema = Schema([*columns, *extra_columns])
        read = list(dict.fromkeys([n for s in sources for n in s.file_columns] + list(extras)))
        _check_row_groups(meta, read, self.max_bytes, self.where)
        path, where, max_bytes = self.path, self.where, self.max_bytes
        # Texts and bytes are read dictionary-encoded and expanded only once their expanded size
        # is known: one long value repeated by a dictionary page is a few bytes in the file.
        texts = [
            f.name
            for f in meta.schema_arrow
            if f.name in read and (pa.types.is_string(f.type) or pa.types.is_binary(f.type))
        ]

        def batches() -> Iterator[pa.RecordBatch]:
            row0 = 0
            try:
                with pq.ParquetFile(path, read_dictionary=texts) as f:
                    for raw in f.iter_batches(batch_size=batch_rows, columns=read):
                        raw = expand_dictionaries(raw, max_bytes, where, row0, option="--max-bytes")
                        yield _conform(raw, sources, extra_columns, schema, where, row0)
                        row0 += raw.num_rows
            except (pa.ArrowException, OSError) as exc:
                raise DataError(f"cannot read {where} as Parquet: {exc}") from None

        return DataView(schema, batches, meta.metadata.num_rows)

    def _json_view(self, columns: Sequence[Column], extras: Sequence[str], batch_rows: int) -> DataView:
        sources = self._sources(columns)
        explicit: dict[str, pa.DataType] = {}
        for s in sources:
            ct = s.column.type
            assert isinstance(ct, TensorType)
            for name in s.file_columns:
                explicit[name] = _json_type(ct, scalar=s.split)
        extra_types = self._json_extra_types(extras)
        extra_columns = [_extra_column(pa.field(n, extra_types[n])) for n in extras]
        schema = Schema([*columns, *extra_columns])
        parse = pajson.ParseOptions(
            explicit_schema=pa.schema(list(explicit.items())),
            unexpected_field_behavior="infer" if extras else "ignore",
        )
        block = self._json_block(self._block_size(columns))
        limit = self._json_block(self.max_row_bytes + (1 << 16))
        path, where, guard = self.path, self.where, self._guard

        def batches() -> Iterator[pa.RecordBatch]:
            _scan_file(path, guard())  # every byte is checked before pyarrow parses any
            row0 = 0  # rows yielded so far: a retry with a bigger block skips them
            size = block
            while True:
                read = pajson.ReadOptions(block_size=size)
                seen = 0
                try:
                    with pa.OSFile(str(path)) as f:
                        for raw in pajson.open_json(f, read_options=read, parse_options=parse):
                            seen += raw.num_rows
                            fresh = seen - row0  # rows of this batch not yielded before a retry
                            if fresh <= 0:
                                continue
                            raw = raw.slice(raw.num_rows - fresh)
                            for start in range(0, raw.num_rows, batch_rows):
                                part = raw.slice(start, batch_rows)
                                yield _conform(part, sources, extra_columns, schema, where, row0)
                                row0 += part.num_rows
                    return
                except pa.ArrowException as exc:
                    # A line longer than the block (the guard checked it is not too long): a bigger block.
                    if "straddl" in str(exc) and size < limit:
                        size = min(size * 4, limit)
                        continue
                    raise _json_error(exc, where, row0) from None

        return DataView(schema, batches)

    def _json_extra_types(self, extras: Sequence[str]) -> dict[str, pa.DataType]:
        if not extras:
            return {}
        try:
            inferred = self._json_schema()
        except pa.ArrowException as exc:
            raise _json_error(exc, self.where, 0) from None
        return {n: inferred.field(n).type if n in inferred.names else pa.string() for n in extras}


_PHYSICAL_BYTES = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}


def _check_row_groups(meta: pq.ParquetFile, columns: Sequence[str], max_bytes: int, where: str) -> None:
    """Each row group's ``columns`` fit in ``max_bytes`` once decoded, as the file's metadata
    says: its values times their width (dictionary and run-length encoding make the encoded
    size no bound), and the encoded bytes for variable-length values."""
    wanted = set(columns)
    md = meta.metadata
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        size = 0
        for k in range(group.num_columns):
            chunk = group.column(k)
            if chunk.path_in_schema.split(".", 1)[0] not in wanted:
                continue
            kind = chunk.physical_type
            if kind == "FIXED_LEN_BYTE_ARRAY":
                width = max(int(md.schema.column(k).length or 0), 1)
            else:
                width = _PHYSICAL_BYTES.get(kind, 4)  # BYTE_ARRAY: an offset per value, plus the bytes below
            size += max(int(chunk.num_values), 0) * width + max(int(chunk.total_uncompressed_size), 0)
        if size > max_bytes:
            raise DataError(
                f"{where}: row group {g} holds about {size:,} bytes of the columns read once decoded, more than "
                f"--max-bytes ({max_bytes:,}); write the file with smaller row groups, or raise --max-bytes"
            )


def _json_type(ct: TensorType, *, scalar: bool) -> pa.DataType:
    # JSON numbers parse as float64: float16 is cast afterwards.
    elem = pa.float64() if ct.dtype is DType.FLOAT16 else ct.dtype.arrow
    return elem if scalar or ct.is_scalar else pa.list_(elem)


def _extra_column(field: pa.Field) -> Column:
    """A file column the model does not read, typed as stored (text when onnxpipe cannot hold its type)."""
    try:
        return schema_from_arrow(pa.schema([field.remove_metadata()])).columns[0]
    except ColumnTypeError:
        return Column(field.name, TensorType(DType.STRING))


def _conform(
    raw: pa.RecordBatch,
    sources: Sequence[_Source],
    extras: Sequence[Column],
    schema: Schema,
    where: str,
    row0: int,
) -> pa.RecordBatch:
    """A raw batch of a Parquet or JSON file as ``schema``'s storage."""
    arrays: list[pa.Array] = []
    for src in sources:
        ct = src.column.type
        if not isinstance(ct, TensorType):  # a sequence or a map, from Parquet: the cast below checks it
            arrays.append(raw.column(src.file_columns[0]))
        elif src.split:
            arrays.append(_stack_scalars(raw, src, ct, where, row0))
        else:
            arrays.append(_tensor_storage(raw.column(src.file_columns[0]), src.column.name, ct, where, row0))
    for c in extras:
        arr = raw.column(c.name)
        if isinstance(c.type, TensorType) and c.type.dtype is DType.STRING and not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        arrays.append(arr)
    return normalize_batch(pa.RecordBatch.from_arrays(arrays, names=schema.names), schema, where, row0)


def _stack_scalars(raw: pa.RecordBatch, src: _Source, ct: TensorType, where: str, row0: int) -> pa.Array:
    parts = Schema(Column(n, TensorType(ct.dtype)) for n in src.file_columns)
    checked = normalize_batch(raw.select(list(src.file_columns)), parts, where, row0)
    values = np.column_stack([from_arrow(checked.column(k), TensorType(ct.dtype)) for k in range(len(parts))])
    return to_arrow(values.reshape((raw.num_rows, *ct.fixed_shape)), ct, src.column.name)


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _tensor_storage(arr: pa.Array, name: str, ct: TensorType, where: str, row0: int) -> pa.Array:
    """A file's list column (flat or nested) as the storage of ``ct``; scalars as they are."""
    if isinstance(arr.type, pa.ExtensionType):  # e.g. Arrow's fixed-shape tensor
        arr = arr.storage
    if ct.is_scalar:
        return arr
    if not _is_list(arr.type):
        raise ColumnTypeError(
            f"{where}: column {name!r} holds {arr.type} values, but the model reads it as {ct}; "
            "give a list column (or one column per value)"
        )
    import pyarrow.compute as pc

    n = len(arr)
    rows = np.arange(n)
    values = arr
    while _is_list(values.type):  # flatten nested lists, remembering each value's row
        parents = pc.list_parent_indices(values).to_numpy()
        rows = rows[parents]
        values = pc.list_flatten(values)
    counts = np.bincount(rows, minlength=n)
    if values.null_count and ct.dtype.is_float:  # a missing float (JSON null) is NaN, as in scalar columns
        elem = pa.float64() if ct.dtype is DType.FLOAT16 else ct.dtype.arrow
        values = pc.fill_null(values.cast(elem), pa.scalar(float("nan"), elem))
    if ct.is_known_shape:
        size = ct.size or 0
        bad = np.flatnonzero(counts != size)
        if bad.size:
            r = int(bad[0])
            raise ShapeError(
                f"{where}: row {row0 + r} of column {name!r} has {counts[r]} values; the model reads {ct}, "
                f"{size} values per row"
            )
        return fixed_size_lists(values, size, n)
    known = math.prod(d for d in ct.shape if d is not None)
    if ct.shape.count(None) != 1:
        raise ShapeError(
            f"{where}: column {name!r} is {ct}, with several unknown dimensions, which a file column cannot "
            "describe; give the model a fixed shape for all but one"
        )
    bad = np.flatnonzero(counts % known)
    if bad.size:
        r = int(bad[0])
        raise ShapeError(
            f"{where}: row {row0 + r} of column {name!r} has {counts[r]} values; the model reads {ct}, a multiple "
            f"of {known} values per row"
        )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


# --------------------------------------------------------------------------------------------
# Writers
