"""Sources (rows, Arrow, pandas, Parquet, CSV/TSV) and the rows sink, all producing DataViews."""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv  # pyarrow.compute and pyarrow.parquet (60 ms) are imported where used

from onnxpipe._display import quoted
from onnxpipe._limits import DEFAULT_MAX_BYTES
from onnxpipe.data._convert import arrow_schema, from_arrow, list_values, schema_from_arrow, to_arrow
from onnxpipe.data._rows import RowConverter
from onnxpipe.data._textloader import (
    MAX_COMMENT_BYTES,
    MAX_COMMENT_COLUMNS,
    MAX_COMMENT_LINES,
    LoaderSettings,
    parse_comment,
)
from onnxpipe.data._view import DataView
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataError,
    DataFileNotFoundError,
    InvalidArgumentError,
    OnnxPipeError,
    OnnxPipeWarning,
    ParseError,
    SchemaError,
    ShapeError,
    require,
)
from onnxpipe.schema import Column, DType, KeyType, Schema, SparseVectorType, TensorType, row_binding

__all__ = [
    "MAX_COMMENT_BYTES",
    "MAX_COMMENT_COLUMNS",
    "MAX_COMMENT_LINES",
    "MAX_ROW_BYTES",
    "create_enumerable",
    "load_from_arrow",
    "load_from_enumerable",
    "load_from_pandas",
    "load_from_parquet",
    "load_from_text_file",
    "read_schema_comment",
]

DEFAULT_MISSING = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL")

MAX_ROW_BYTES = 64 << 20
"""The longest row (line) of a text file that is read, in bytes: a row is parsed whole, in one
read block, so a longer one (a crafted 10 GB field) is an error naming it, not an allocation of
its size. 64 MiB holds a row of 4 million float values written as text."""


def _check_batch_size(batch_size: int, where: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidArgumentError(f"{where}: batch_size must be a positive integer, got {batch_size!r}")


def _table_view(table: pa.Table, schema: Schema, batch_size: int) -> DataView:
    batches = table.to_batches(max_chunksize=batch_size)
    return DataView(schema, lambda: iter(batches), table.num_rows)


def load_from_enumerable(rows: Iterable[Any], row_class: type, *, batch_size: int = 65536) -> DataView:
    """A DataView over instances of ``row_class`` (read and checked now, once)."""
    _check_batch_size(batch_size, "load_from_enumerable")
    conv = RowConverter(row_class)
    items = rows if isinstance(rows, Sequence) else list(rows)
    target = arrow_schema(conv.schema)
    batches = []
    for start in range(0, max(len(items), 1), batch_size):
        chunk = items[start : start + batch_size]
        cols = conv.to_columns(chunk)
        arrays = [_rows_to_arrow(cols[c.name], c, start) for c in conv.schema.columns]
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=target))
    table = pa.Table.from_batches(batches, schema=target)
    return _table_view(table, conv.schema, batch_size)


def _rows_to_arrow(values: Any, column: Column, first_row: int) -> pa.Array:
    try:
        return to_arrow(values, column.type, column.name)
    except UnicodeEncodeError:
        # A str holding a lone surrogate (bytes decoded with errors="surrogateescape") is not text
        # that UTF-8, and so Arrow, can store.
        row = first_row + _first_unencodable(values)
        raise DataError(
            f"load_from_enumerable: column {column.name!r} has a string at row {row} that is not valid Unicode "
            "(it holds a lone surrogate, e.g. from bytes decoded with errors='surrogateescape'); decode the bytes "
            "with their real encoding, or with errors='replace'"
        ) from None


def _first_unencodable(values: Any) -> int:
    for i, value in enumerate(values):
        for s in np.asarray(value, dtype=object).reshape(-1):
            try:
                str(s).encode("utf-8")
            except UnicodeEncodeError:
                return i
    return 0


def check_unique_names(names: Sequence[str], where: str, error: type[OnnxPipeError] = SchemaError) -> None:
    """Column names of a table (SchemaError) or a file (``error=DataError``) are unique."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise error(
                f"{where}: column {name!r} appears more than once; column names must be unique, so rename or drop "
                "the duplicates"
            )
        seen.add(name)


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_fixed_size_list(t))


def _check_text_type(ct: TensorType, where: str) -> None:
    """Text holds numbers; a low-precision column's Arrow storage is raw bits, which a parse would fill wrongly."""
    if ct.dtype.is_low_precision:
        raise SchemaError(
            f"{where}: {ct} values cannot be read from a text file; read float32 (or int8) values and let a model "
            "convert them, or load the column from Parquet or Arrow written by onnxpipe"
        )


def _holds_low_precision(ct: Any) -> bool:
    """Whether a column type has low-precision (bfloat16, float8, int4...) elements anywhere inside."""
    if isinstance(ct, TensorType):
        return ct.dtype.is_low_precision
    return any(_holds_low_precision(getattr(ct, part)) for part in ("element", "value") if hasattr(ct, part))


def _same_storage(have: pa.Schema, want: pa.Schema) -> bool:
    """Same column names and Arrow types: nullability and metadata aside (a nullable column without
    missing values fits onnxpipe's non-null field as it is)."""
    return bool(have.names == want.names and have.types == want.types)


def _has_missing(column: pa.Array | pa.ChunkedArray) -> bool:
    """Whether ``column``, or the values of its rows for a list column, holds a missing value."""
    if column.null_count:
        return True
    if not _is_list(column.type):
        return False
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    # The values of a sliced list array extend beyond its rows: they are narrowed to its rows (a
    # few Python calls) only when the whole child array holds a missing value.
    return any(c.values.null_count and list_values(c).null_count for c in chunks)


def _first_nested_null(arr: pa.Array) -> int | None:
    """The first row of a list-like array whose values contain a missing value, if any."""
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        return None
    values = list_values(arr)
    if not values.null_count:
        return None
    first = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
    import pyarrow.compute as pc

    return int(pc.list_parent_indices(arr)[first].as_py())


def normalize_batch(batch: pa.RecordBatch, schema: Schema, where: str, row_offset: int = 0) -> pa.RecordBatch:
    """Cast a batch to the canonical storage of ``schema``; missing floats become NaN.

    ``row_offset`` is the batch's first row in the whole source, so that errors name the real row.
    """
    target = arrow_schema(schema)
    if _same_storage(batch.schema, target) and not any(_has_missing(c) for c in batch.columns):
        return (
            batch
            if batch.schema.equals(target, check_metadata=True)
            else pa.RecordBatch.from_arrays(batch.columns, schema=target)
        )
    arrays = []
    for field, col in zip(target, schema.columns, strict=True):
        arr = batch.column(col.name)
        if isinstance(arr.type, pa.ExtensionType):
            arr = arr.storage
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if arr.null_count:
            ct = col.type
            if isinstance(ct, TensorType) and ct.is_scalar and ct.dtype.is_float:
                import pyarrow.compute as pc

                arr = pc.fill_null(arr, pa.scalar(float("nan"), arr.type))
            else:
                row = row_offset + int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                raise DataError(
                    f"{where}: column {col.name!r} has a missing value at row {row}; only scalar "
                    "float columns may have missing values (read as NaN). Fill or drop them first"
                )
        if isinstance(col.type, TensorType) and not col.type.is_scalar:
            nested = _first_nested_null(arr)
            if nested is not None:
                raise DataError(
                    f"{where}: column {col.name!r} has a missing value inside the {col.type} tensor at "
                    f"row {row_offset + nested}; tensors cannot hold missing values. Fill or drop them first"
                )
        if arr.type != field.type and _holds_low_precision(col.type):
            # Raw bits: a cast from other values (floats, wider ints) would read numbers as bit patterns.
            raise SchemaError(
                f"{where}: column {col.name!r} is {col.type}, stored as its raw bits ({field.type}); the data "
                f"holds {arr.type}"
            )
        if arr.type != field.type:
            try:
                arr = arr.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(f"{where}: column {col.name!r} cannot be stored as {col.type}: {exc}") from None
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def load_from_arrow(data: pa.Table | pa.RecordBatch, *, batch_size: int = 65536) -> DataView:
    """A DataView over an Arrow table or record batch (zero-copy where the storage allows)."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        raise SchemaError(f"load_from_arrow expects a pyarrow Table or RecordBatch, got {type(data).__name__}")
    _check_batch_size(batch_size, "load_from_arrow")
    check_unique_names(data.schema.names, "load_from_arrow")
    schema = schema_from_arrow(data.schema)
    target = arrow_schema(schema)
    if _same_storage(data.schema, target) and not any(_has_missing(c) for c in data.columns):
        # Stored as onnxpipe stores it already: only the field metadata changes, for the whole
        # table at once (normalize_batch would do the same, batch by batch).
        return _table_view(pa.Table.from_arrays(data.columns, schema=target), schema, batch_size)
    batches = []
    row0 = 0
    for b in data.to_batches(max_chunksize=batch_size):
        batches.append(normalize_batch(b, schema, "load_from_arrow", row0))
        row0 += b.num_rows
    return _table_view(pa.Table.from_batches(batches, schema=target), schema, batch_size)


def load_from_pandas(df: Any, *, batch_size: int = 65536) -> DataView:
    """A DataView over a pandas DataFrame (cells holding arrays become vector columns)."""
    pd: Any = require("pandas", "pandas")
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgumentError(
            f"load_from_pandas expects a pandas DataFrame, got {type(df).__name__}; "
            "build one with pandas.DataFrame(...)"
        )
    _check_batch_size(batch_size, "load_from_pandas")
    check_unique_names([str(c) for c in df.columns], "load_from_pandas")
    # Copy first: Arrow may share the DataFrame's numpy buffers, and a DataView must not change
    # when the caller later edits the DataFrame in place.
    try:
        table = pa.Table.from_pandas(df.copy(deep=True), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise _pandas_column_error(df, exc) from None
    return load_from_arrow(table, batch_size=batch_size)


def load_from_dict(columns: Mapping[str, Any], *, batch_size: int = 65536) -> DataView:
    """A DataView over a dict of column name -> numpy array (or list), rows along the first axis:
    a 1-d array is a scalar column, an ``(n, 3)`` array a ``float32[3]`` column and so on (strings
    are text columns); a scipy sparse matrix ``(n, size)`` is a sparse vector column."""
    if not isinstance(columns, Mapping) or not columns:
        raise InvalidArgumentError(
            f"load_from_dict expects a non-empty dict of column name -> array, got {type(columns).__name__}"
        )
    _check_batch_size(batch_size, "load_from_dict")
    check_unique_names([str(n) for n in columns], "load_from_dict")
    schema_columns: list[Column] = []
    arrays: list[pa.Array] = []
    rows: int | None = None
    for name, values in columns.items():
        if getattr(values, "format", None) in ("csr", "csc", "coo"):  # a scipy sparse matrix, kept sparse
            sparse_type = SparseVectorType(DType.from_numpy(values.dtype), int(values.shape[1]))
            if rows is not None and values.shape[0] != rows:
                raise ShapeError(
                    f"load_from_dict: column {name!r} has {values.shape[0]} rows, but "
                    f"{schema_columns[0].name!r} has {rows}"
                )
            rows = int(values.shape[0])
            schema_columns.append(Column(str(name), sparse_type))
            arrays.append(to_arrow(values, sparse_type, str(name)))
            continue
        array = np.asarray(values)
        if array.dtype.kind in "US":
            array = array.astype(object)
        if array.ndim == 0:
            raise ColumnTypeError(f"load_from_dict: column {name!r} is a single value; give one value per row")
        if rows is not None and len(array) != rows:
            raise ShapeError(
                f"load_from_dict: column {name!r} has {len(array)} rows, but {schema_columns[0].name!r} has {rows}"
            )
        rows = len(array)
        try:
            ct = TensorType(DType.from_numpy(array.dtype), tuple(array.shape[1:]))
        except ColumnTypeError as exc:
            raise ColumnTypeError(f"load_from_dict: column {name!r}: {exc}") from None
        schema_columns.append(Column(str(name), ct))
        arrays.append(to_arrow(array, ct, str(name)))
    schema = Schema(schema_columns)
    return _table_view(pa.Table.from_arrays(arrays, schema=arrow_schema(schema)), schema, batch_size)


_DATA_KINDS = (
    "a DataView, a pandas DataFrame, a pyarrow Table, RecordBatch or RecordBatchReader, "
    "or a dict of column name -> numpy array"
)


def as_data_view(data: Any, where: str) -> DataView:
    """``data`` as a DataView: a DataView as it is; a pandas DataFrame, pyarrow Table, RecordBatch
    or RecordBatchReader (read once, into memory), or a dict of numpy arrays loaded as the
    ``load_from_*`` functions load them. Anything else is an InvalidArgumentError from ``where``."""
    if isinstance(data, DataView):
        return data
    if isinstance(data, pa.Table | pa.RecordBatch):
        return load_from_arrow(data)
    if isinstance(data, pa.RecordBatchReader):
        return load_from_arrow(data.read_all())
    if isinstance(data, Mapping):
        return load_from_dict(data)
    if type(data).__module__.split(".")[0] == "pandas" and type(data).__name__ == "DataFrame":
        return load_from_pandas(data)
    raise InvalidArgumentError(f"{where}: expected {_DATA_KINDS}, got {type(data).__name__}")


def _pandas_column_error(df: Any, exc: Exception) -> ColumnTypeError:
    """The error for a DataFrame Arrow cannot convert, naming the first column at fault."""
    for name in df.columns:
        try:
            pa.Table.from_pandas(df[[name]], preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as column_exc:
            return ColumnTypeError(
                f"load_from_pandas: column {str(name)!r} (dtype {df[name].dtype}) cannot be stored: {column_exc}. "
                "Give every cell of a column one type: numbers, bool, str, or 1-D numpy arrays of one element type "
                "(convert with df[column].astype(...), flatten n-dimensional arrays)"
            )
    return ColumnTypeError(f"load_from_pandas: the DataFrame cannot be stored: {exc}")


def _check_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataFileNotFoundError(f"{what} {str(p)!r} does not exist (or is not a file)")
    return p


def load_from_parquet(path: str | Path, *, batch_size: int = 65536, max_bytes: int = DEFAULT_MAX_BYTES) -> DataView:
    """A lazy DataView over a Parquet file, streamed row group by row group. Text and bytes
    columns are read dictionary-encoded and expanded only after checking that a batch's expanded
    values fit in ``max_bytes`` (one long value repeated by a dictionary is a few bytes on disk)."""
    _check_batch_size(batch_size, "load_from_parquet")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise InvalidArgumentError(
            f"load_from_parquet: max_bytes must be a positive number of bytes, got {max_bytes!r:.40}"
        )
    p = _check_file(path, "Parquet file")
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(p)
    except pa.ArrowException as exc:
        raise DataError(f"cannot read Parquet file {str(p)!r}: {exc}") from None
    check_unique_names(meta.schema_arrow.names, f"Parquet file {p.name!r}", DataError)
    schema = schema_from_arrow(meta.schema_arrow)
    rows = meta.metadata.num_rows
    texts = [f.name for f in meta.schema_arrow if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
    where = f"Parquet file {p.name!r}"

    def batches() -> Iterator[pa.RecordBatch]:
        with pq.ParquetFile(p, read_dictionary=texts) as f:
            row0 = 0
            for b in f.iter_batches(batch_size=batch_size):
                b = expand_dictionaries(b, max_bytes, where, row0)
                yield normalize_batch(b, schema, where, row0)
                row0 += b.num_rows

    return DataView(schema, batches, rows)


# --------------------------------------------------------------------------------------------
# Text files


def expand_dictionaries(
    batch: pa.RecordBatch, max_bytes: int, where: str, row0: int, option: str = "max_bytes"
) -> pa.RecordBatch:
    """``batch`` with its dictionary-encoded columns decoded, each after checking the bytes that
    decoding makes against ``max_bytes``."""
    if not any(pa.types.is_dictionary(c.type) for c in batch.columns):
        return batch
    import pyarrow.compute as pc

    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            lengths = pc.binary_length(column.dictionary)
            size = pc.sum(pc.take(lengths, column.indices)).as_py() or 0
            if size > max_bytes:
                raise DataError(
                    f"{where}: column {name!r} holds {size:,} bytes of text in rows {row0:,} to "
                    f"{row0 + batch.num_rows - 1:,} once decoded, more than {option} ({max_bytes:,})"
                )
            column = column.dictionary_decode()
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _too_long(path: Path, what: str, limit: int) -> ParseError:
    return ParseError(
        f"text file {str(path)!r}: {what} is longer than {limit:,} bytes, the most one row may take; check the "
        "separator and the quoting (an unclosed quote runs to the end of the file), or split the file"
    )


def _lines(f: IO[bytes], path: Path, limit: int) -> Iterator[bytes]:
    """The lines of ``f`` (as ``for line in f``), each read with at most ``limit`` bytes in memory."""
    number = 0
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw.rstrip(b"\r\n")) > limit:
            raise _too_long(path, f"line {number}", limit)
        yield raw


def _leading_lines(path: Path, has_header: bool, separator: str, limit: int) -> tuple[int, list[str] | None]:
    """Count the comment/blank lines before the data and read the header line, if any.

    Comment lines start with ``//`` or ``#@`` (ML.NET's schema lines) or, with no header, ``#``.
    A header line may start with ``#`` (ML.NET writes ``#Label ...``), which is dropped.
    """
    skip = 0
    with path.open("rb") as f:
        for raw in _lines(f, path, limit):
            stripped = raw.decode("utf-8", errors="replace").strip()
            comment = stripped.startswith(("//", "#@")) or (not has_header and stripped.startswith("#"))
            if stripped and not comment:
                if not has_header:
                    return skip, None
                try:  # column names are matched to fields: a replacement character would hide the problem
                    stripped = raw.decode("utf-8").strip()
                except UnicodeDecodeError as exc:
                    raise ParseError(
                        f"text file {str(path)!r}: the header line (line {skip + 1}) is not valid UTF-8 ({exc.reason} "
                        f"at byte {exc.start}); re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                    ) from None
                header = _split_line(stripped.lstrip("#"), separator)
                return skip, [h.strip() for h in header]
            skip += 1
    return skip, None


def _warn_if_one_column(path: Path, line: str, separator: str) -> None:
    """A file that reads as one text column though its lines hold another usual separator was
    most likely read with the wrong one (a CSV read with the default tab)."""
    other = next((c for c in (",", "\t", ";", "|") if c != separator and c in line), None)
    if other is not None:
        warnings.warn(
            OnnxPipeWarning(
                f"text file {path.name!r} reads as one column with separator {separator!r}, but its first line "
                f"holds {other!r}; if that separates the fields, pass separator={other!r} "
                "(ctx.data.infer_columns(path) guesses the separator and the header)"
            ),
            stacklevel=3,
        )


def _split_line(line: str, separator: str) -> list[str]:
    """The fields of one line (csv quoting rules); fields of any length."""
    try:
        return next(csv.reader(io.StringIO(line), delimiter=separator))
    except csv.Error:  # a field over the csv module's (process-wide) size limit: let Arrow split it
        data = line.encode()
        read = pacsv.ReadOptions(autogenerate_column_names=True, block_size=len(data) + 1024)
        parse = pacsv.ParseOptions(delimiter=separator)
        names = pacsv.open_csv(io.BytesIO(data), read_options=read, parse_options=parse).schema.names
        convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False)
        table = pacsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse, convert_options=convert)
        return [str(table.column(k)[0]) for k in range(table.num_columns)]


_BLOCK_SLACK = 1 << 16  # a block holds a row of the longest length allowed, and its line break


def _open_csv(
    path: Path,
    read: pacsv.ReadOptions,
    parse: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions,
    trim_leading_spaces: bool = False,
) -> pacsv.CSVStreamingReader:
    """pyarrow's streaming CSV reader, reading the file as ML.NET's TextLoader does (see
    :class:`_MlnetText`): spaces before a field dropped, quotes never spanning lines."""
    trim = trim_leading_spaces and parse.delimiter != " "
    source: Any = path
    if trim or parse.quote_char:
        columns = len(read.column_names or ())
        text = _MlnetText(
            path, parse.delimiter, columns, trim=trim, quoting=bool(parse.quote_char), limit=read.block_size
        )
        source = io.BufferedReader(text, buffer_size=1 << 20)
    return pacsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)


class _MlnetText(io.RawIOBase):
    """A text file's bytes, adjusted so that pyarrow's CSV parser reads the fields ML.NET's
    TextLoader reads:

    * ``trim``: the spaces that start a field (before its opening quote, if quoted) are dropped;
    * ``quoting``: ML.NET reads line by line, so a quote left open ends at the line's end (a quoting
      error: the field is empty), where a CSV parser would swallow the following lines into one
      field. Such a line is rewritten field by field (:func:`_mlnet_line`); lines whose quotes
      pair up, nearly all, pass through unchanged. ``columns`` (when known) is the number of fields
      a line has, which ML.NET fills with empty ones when a line has fewer.

    At most ``limit`` bytes of one line are held: a longer line is passed on as it is, and
    pyarrow refuses it as too long (the loader then retries with bigger blocks, up to its limit).
    """

    _CHUNK = 1 << 20

    def __init__(self, path: Path, separator: str, columns: int, *, trim: bool, quoting: bool, limit: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._separator = separator
        self._columns = columns
        self._quoting = quoting
        self._limit = limit + self._CHUNK
        self._trim = trim
        self._pending = bytearray()  # the start of a line whose end is not read yet
        self._ready = b""
        self._offset = 0  # bytes of _ready already handed on

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        while self._offset >= len(self._ready):
            chunk = self._file.read(self._CHUNK)
            if not chunk:
                if not self._pending:
                    return 0
                self._hand_on(self._adjusted(bytes(self._pending)))
                self._pending = bytearray()
                break
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:  # still inside one line
                self._pending += chunk
                if len(self._pending) > self._limit:  # too long to hold: on as it is
                    self._hand_on(bytes(self._pending))
                    self._pending = bytearray()
                continue
            complete = bytes(self._pending) + chunk[:cut]
            self._pending = bytearray(chunk[cut:])
            self._hand_on(self._adjusted(complete))
        n = min(len(buffer), len(self._ready) - self._offset)
        buffer[:n] = memoryview(self._ready)[self._offset : self._offset + n]
        self._offset += n
        return n

    def _hand_on(self, data: bytes) -> None:
        self._ready, self._offset = data, 0

    def _adjusted(self, lines: bytes) -> bytes:
        quoted = self._quoting and b'"' in lines
        if quoted and (lines.count(b'"') % 2 or any(line.count(b'"') % 2 for line in lines.split(b"\n"))):
            # A quote left open: that line field by field (leading spaces too), the others below.
            lines = b"\n".join(
                _mlnet_line(line, self._separator, self._columns, trim=self._trim) if line.count(b'"') % 2 else line
                for line in lines.split(b"\n")
            )
        return _without_leading_spaces(lines, self._separator, quoted) if self._trim else lines


def _without_leading_spaces(data: bytes, separator: str, quoting: bool) -> bytes:
    """``data`` (whole lines) without the spaces that start a field: the runs of spaces right
    after a line start or a separator, unless inside a quoted field (quotes before them on their
    line are odd in number). Vectorized over the bytes: no Python loop per line."""
    arr = np.frombuffer(data, dtype=np.uint8)
    space = arr == 0x20
    if not space.any():
        return data
    previous = np.empty_like(arr)
    previous[0] = 0x0A  # the first byte starts a line
    previous[1:] = arr[:-1]
    run_start = space & (previous != 0x20)
    keep_run = run_start & ((previous == ord(separator)) | (previous == 0x0A))
    if quoting:
        quotes_before = np.cumsum(arr == 0x22) - (arr == 0x22)  # quotes strictly before each byte
        line_start = previous == 0x0A
        line_of = np.cumsum(line_start) - 1
        opened = (quotes_before - quotes_before[line_start][line_of]) % 2 == 1
        keep_run &= ~opened
    runs = np.cumsum(run_start)  # the run each space belongs to (1-based among run starts)
    dropped_runs = np.concatenate([[False], keep_run[run_start]])
    drop = space & dropped_runs[runs]
    return data if not drop.any() else arr[~drop].tobytes()


def _mlnet_line(line: bytes, separator: str, columns: int = 0, *, trim: bool = True) -> bytes:
    """One line's fields as ML.NET's TextLoader reads them (leading spaces skipped; a quoted field
    ends at its closing quote, ``""`` being a quote; text after it, or no closing quote at all, is a
    quoting error: an empty field), written back so that a CSV parser reads the same fields."""
    text, sep = line.decode("utf-8", "surrogateescape"), separator
    carriage = text.endswith("\r")
    text = text[:-1] if carriage else text
    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        while trim and sep != " " and i < n and text[i] == " ":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value: list[str] = []
            closed = False
            while i < n:
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        value.append('"')
                        i += 2
                        continue
                    i += 1
                    closed = True
                    break
                value.append(text[i])
                i += 1
            while i < n and text[i] != sep:
                closed = closed and text[i] == " "
                i += 1
            fields.append("".join(value) if closed else "")
        else:
            end = text.find(sep, i)
            end = n if end < 0 else end
            fields.append(text[i:end])
            i = end
        if i >= n:
            break
        i += 1
    fields += [""] * (columns - len(fields))
    quoted = ['"' + f.replace('"', '""') + '"' if ('"' in f or sep in f or not f) else f for f in fields]
    return (sep.join(quoted) + ("\r" if carriage else "")).encode("utf-8", "surrogateescape")


def _is_row_too_long(exc: pa.ArrowInvalid) -> bool:
    """pyarrow's error for a row longer than the read block (then a bigger block is tried)."""
    return "straddl" in str(exc)


def _bigger_block(read: pacsv.ReadOptions, path: Path, limit: int, row: int | None) -> pacsv.ReadOptions | None:
    """The same read options with a 4x block, up to the longest row allowed (``limit``, then a
    ParseError naming the ``row`` being read, if known), or None when the block already holds the
    whole file."""
    if read.block_size > path.stat().st_size:
        return None
    if read.block_size >= limit + _BLOCK_SLACK:
        what = f"row {row} (near line {read.skip_rows + row + 1})" if row is not None else "a row"
        raise _too_long(path, what, limit)
    return pacsv.ReadOptions(
        use_threads=read.use_threads,
        block_size=min(read.block_size * 4, limit + _BLOCK_SLACK),
        skip_rows=read.skip_rows,
        skip_rows_after_names=read.skip_rows_after_names,
        column_names=read.column_names,
        autogenerate_column_names=read.autogenerate_column_names,
        encoding=read.encoding,
    )


_CSV_COLUMN = re.compile(r"In CSV column #(\d+): ")


def _parse_error(
    exc: pa.ArrowInvalid, path: Path, names: Sequence[str], separator: str, plan: _Plan | None
) -> ParseError:
    """pyarrow's parse error, with the column named and what to do about it."""
    text = str(exc)
    found = _CSV_COLUMN.search(text)
    if found is not None and int(found[1]) < len(names):
        k = int(found[1])
        what = f"file column {k} ({names[k]!r})"
        readers = [c for c, idx in plan.sources.items() if k in idx] if plan is not None else []
        if readers and readers != [names[k]]:
            what += f", read into column {readers[0]!r}"
        if "UTF8" in text:
            hint = "the file must be UTF-8 text: re-encode it (e.g. iconv -f latin1 -t utf-8)"
        else:
            hint = (
                "fix or remove the value, add it to missing_values if it marks a missing value, or read the column "
                "as another type (e.g. str)"
            )
        return ParseError(f"text file {str(path)!r}: {what}: {text}; {hint}")
    if "columns, got" in text:
        hint = (
            f"every row must have the same number of fields ({len(names)}); check the separator ({separator!r}) "
            "and the quoting of fields that contain it"
        )
        return ParseError(f"text file {str(path)!r}: {text}; {hint}")
    return ParseError(f"text file {str(path)!r}: {text}")


def load_from_text_file(
    path: str | Path,
    row_class: type | None = None,
    *,
    schema: Schema | None = None,
    separator: str | None = None,
    has_header: bool | None = None,
    allow_quoting: bool = True,
    missing_values: Sequence[str] = DEFAULT_MISSING,
    block_size: int = 1 << 20,
    max_row_bytes: int = MAX_ROW_BYTES,
    trim_leading_spaces: bool = True,
    schema_comment: bool = True,
) -> DataView:
    """A lazy DataView over a delimited text file (CSV, TSV, ...), streamed block by block.

    With ``row_class``, each field reads the file column given by its ``LoadColumn`` marker
    (an inclusive range makes a vector), or, with a header, the column of the same name.
    With ``schema`` instead, each column reads the file column of its name and a vector of
    known shape (k values) reads the columns ``name.0`` ... ``name.{k-1}`` (row-major), the
    layout the ``onnxpipe predict`` command writes; without a header, the schema's columns read
    the file's columns in order (a vector takes k of them).

    Without either, a file that starts with ML.NET's schema comment (the ``#@ TextLoader{ ...
    #@ }`` lines ``save_as_text`` and ML.NET's ``SaveAsText`` write) is read as it says: its
    columns' names, types (``R4`` float32, ``R8`` float64, ``I4`` int32, ``TX`` text, ``BL``
    bool, ``U4[3]`` a key of 3 values...) and file column indices (``1-4``: a vector of 4),
    as ML.NET's TextLoader reads it when given no columns; a file without one has every file
    column loaded with inferred types (reals as float32, as in ML.NET). ``schema_comment=False``
    ignores the comment (its lines are comments, as ever). A comment that cannot be read (an
    unknown type, a bad index, a vector of varying length ``3-**``, over
    ``MAX_COMMENT_COLUMNS`` columns or ``MAX_COMMENT_BYTES`` bytes) is a ParseError naming its
    line; with ``schema`` or ``row_class`` it is ignored, with a warning.

    ``separator`` (default tab) and ``has_header`` (default False): when not given (None), those
    of the file's schema comment, if it has one (``sep=``, ``header+``), whichever way the
    columns are given; when given, they win over the comment's (a warning says when they differ).
    In a file with a schema comment, key columns hold ML.NET's text of a key, its 0-based index
    (text ``n`` is key ``n + 1``; empty, a missing value or a value past the key count is the
    missing key 0), whichever way the columns are given; elsewhere a key column's text is the
    key itself, as ``onnxpipe predict`` writes it.

    Missing values (``missing_values``) become NaN in float columns and are an error elsewhere.
    Leading ``//`` comment lines are skipped. Column names must be unique (else a DataError). A
    row longer than ``max_row_bytes`` (default :data:`MAX_ROW_BYTES`) is a ParseError naming it:
    rows are read in blocks of ``block_size`` bytes, grown for longer rows up to that limit. As
    ML.NET's TextLoader does, spaces at the start of a text field are not part of it
    (``trim_leading_spaces``; never when the separator is a space).
    """
    p = _check_file(path, "text file")
    if separator is not None and (not isinstance(separator, str) or len(separator) != 1):
        raise SchemaError(f"separator must be one character, got {separator!r}")
    if isinstance(max_row_bytes, bool) or not isinstance(max_row_bytes, int) or max_row_bytes <= 0:
        raise InvalidArgumentError(f"max_row_bytes must be a positive number of bytes, got {max_row_bytes!r}")
    if row_class is not None and schema is not None:
        raise InvalidArgumentError("load_from_text_file: give row_class or schema, not both")
    columns_given = row_class is not None or schema is not None
    comment = _schema_comment(p, max_row_bytes, strict=not columns_given) if schema_comment else None
    if comment is not None:
        _warn_if_overridden(p, comment, separator, has_header)
    separator = separator if separator is not None else comment.separator if comment is not None else "\t"
    has_header = has_header if has_header is not None else comment is not None and comment.has_header
    from_comment = comment is not None and not columns_given
    skip, header = _leading_lines(p, has_header, separator, max_row_bytes)
    data_start = skip + (1 if has_header else 0)
    parse = pacsv.ParseOptions(delimiter=separator, quote_char='"' if allow_quoting else False)

    first = ""
    if header is None or from_comment:
        with p.open("rb") as f:
            first_raw = next(
                (ln for i, ln in enumerate(_lines(f, p, max_row_bytes)) if i >= data_start and ln.strip()), b""
            )
        first = first_raw.decode("utf-8", errors="replace")
        width = len(_split_line(first, separator)) if first else 0
        if from_comment and not first:
            assert comment is not None
            width = _comment_width(comment, p)  # no rows: the columns the comment names
        names = [f"column{i}" for i in range(width)]
    else:
        names = header
        check_unique_names(names, f"text file {p.name!r}", DataError)
    if not names:
        raise DataError(f"text file {str(p)!r} has no data rows to read a column layout from")
    if not columns_given and not from_comment and len(names) == 1:
        _warn_if_one_column(p, names[0] if header is not None else first, separator)
    block_size = min(block_size, max_row_bytes + _BLOCK_SLACK)

    mlnet_keys = comment is not None
    read_schema: Schema
    if row_class is not None:
        read_schema, plan = _plan_from_class(row_class, names, has_header, p, mlnet_keys)
    elif schema is not None:
        read_schema, plan = schema, _plan_from_schema(schema, names, has_header, p, mlnet_keys)
    elif comment is not None:
        read_schema, plan = _plan_from_comment(
            comment, names, p, data_start + 1, _split_line(first, separator) if first else []
        )
    else:
        read_schema, plan = _plan_inferred(
            p, names, data_start, parse, missing_values, max_row_bytes, trim_leading_spaces
        )

    source_types = {names[i]: t for i, t in plan.source_types.items()}
    convert = pacsv.ConvertOptions(
        column_types=source_types,
        include_columns=list(source_types),
        null_values=list(missing_values),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    read = pacsv.ReadOptions(skip_rows=data_start, column_names=names, block_size=block_size)
    no_rows = from_comment and not first

    def batches() -> Iterator[pa.RecordBatch]:
        if no_rows:
            return
        options: pacsv.ReadOptions | None = read
        row0 = 0  # rows yielded so far: a retry with a bigger block skips them
        while options is not None:
            try:
                seen = 0
                for b in _open_csv(p, options, parse, convert, trim_leading_spaces):
                    seen += b.num_rows
                    fresh = seen - row0  # rows of this batch not yielded before a retry
                    if fresh <= 0:
                        continue
                    part = b if fresh == b.num_rows else b.slice(b.num_rows - fresh)
                    yield plan.assemble(part, read_schema, f"text file {p.name!r}", row0)
                    row0 += part.num_rows
                return
            except pa.ArrowInvalid as exc:
                # A row longer than the block (e.g. a 10 MB text field): read again with bigger blocks.
                bigger = _bigger_block(options, p, max_row_bytes, row0) if _is_row_too_long(exc) else None
                if bigger is None:
                    raise _parse_error(exc, p, names, separator, plan) from None
                options = bigger

    return DataView(read_schema, batches, 0 if no_rows else None)


def read_schema_comment(path: str | Path, max_row_bytes: int = MAX_ROW_BYTES) -> LoaderSettings | None:
    """The settings of ``path``'s ML.NET schema comment (``#@ TextLoader{ ... #@ }``), or None
    when it has none; a ParseError naming the line when it cannot be read."""
    return _schema_comment(_check_file(path, "text file"), max_row_bytes, strict=True)


def _schema_comment(path: Path, limit: int, *, strict: bool) -> LoaderSettings | None:
    """The file's schema comment, read as ML.NET's TextLoader finds it (GetEmbeddedArgs): the
    ``#@`` lines among the leading blank, ``//`` and ``#`` lines, each without its ``#@`` and
    surrounding spaces. Not ``strict``: one that cannot be read is ignored, with a warning."""
    where = f"text file {str(path)!r}"
    found: list[tuple[int, str]] = []
    size = 0
    try:
        with path.open("rb") as f:
            for number, raw in enumerate(_lines(f, path, limit), 1):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not text or text.startswith("//"):
                    continue
                if text[0] != "#":
                    break
                if len(text) <= 2 or text[1] != "@":
                    continue
                found.append((number, text[2:].strip()))
                size += len(raw)
                if len(found) > MAX_COMMENT_LINES or size > MAX_COMMENT_BYTES:
                    raise ParseError(
                        f"{where}: line {number}: ML.NET's TextLoader schema comment goes on past "
                        f"{MAX_COMMENT_LINES:,} lines or {MAX_COMMENT_BYTES:,} bytes, more than onnxpipe reads; pass "
                        "schema= or row_class= (the comment is then skipped), or remove the #@ lines"
                    )
        return parse_comment(found, where) if found else None
    except ParseError as exc:
        if strict:
            raise
        warnings.warn(OnnxPipeWarning(f"{exc}; the comment is ignored: the columns given are read"), stacklevel=3)
        return None


def _warn_if_overridden(path: Path, comment: LoaderSettings, separator: str | None, has_header: bool | None) -> None:
    said = []
    if separator is not None and separator != comment.separator:
        said.append(f"separator {comment.separator!r} (separator={separator!r} was given)")
    if has_header is not None and has_header != comment.has_header:
        said.append(f"{'a' if comment.has_header else 'no'} header line (has_header={has_header} was given)")
    if said:
        warnings.warn(
            OnnxPipeWarning(
                f"text file {path.name!r}: its schema comment (lines {comment.first_line}-{comment.last_line}) says "
                f"{' and '.join(said)}; the arguments given are used. Leave them out to read the file as its "
                "comment says"
            ),
            stacklevel=3,
        )


def _comment_width(comment: LoaderSettings, path: Path) -> int:
    """The fields a row needs for a schema comment's columns (a file without rows)."""
    width = 0
    for c in comment.columns:
        for r in c.sources:
            if r.max is None:
                raise DataError(
                    f"text file {str(path)!r} has no data rows to tell the size of column {quoted(c.name)} "
                    f"(file columns {r.min} to the end of the row, line {c.line})"
                )
            width = max(width, r.max + 1)
    return width


def _plan_from_comment(
    comment: LoaderSettings, names: list[str], path: Path, first_row: int, fields: list[str]
) -> tuple[Schema, _Plan]:
    """The columns a schema comment defines, read from the file columns it names (checked
    against the ``fields`` of the first row, on line ``first_row`` or after)."""
    width = len(names)
    sparse = (
        "; the first row is sparse (ML.NET's 'size index:value ...' form), which onnxpipe does not read"
        if any(re.fullmatch(r"\d+:.*", f, re.DOTALL) for f in fields)
        else ""
    )
    spans = []
    total = 0
    for c in comment.columns:
        ranges = []
        for r in c.sources:
            high = r.max if r.max is not None else width - 1
            if high >= width or r.min > high:
                raise ParseError(
                    f"text file {str(path)!r}: line {c.line}, in ML.NET's TextLoader schema comment: column "
                    f"{quoted(c.name)} reads file column {max(high, r.min)}, but the rows have {width} fields (the "
                    f"first data row, line {first_row} or after){sparse or '; check the separator, or the comment'}"
                )
            ranges.append((r.min, high))
            total += high - r.min + 1
        spans.append(ranges)
    if total > 2 * width:
        raise ParseError(
            f"text file {str(path)!r}: ML.NET's TextLoader schema comment (lines {comment.first_line}-"
            f"{comment.last_line}) reads {total:,} values from rows of {width:,} fields, each more than twice over"
        )
    columns: list[Column] = []
    source_types: dict[int, pa.DataType] = {}
    readers: dict[int, str] = {}
    sources: dict[str, list[int]] = {}
    for c, ranges in zip(comment.columns, spans, strict=True):
        idx = [i for low, high in ranges for i in range(low, high + 1)]
        shape = (len(idx),) if c.is_vector else ()
        ct = KeyType(c.key_count, shape=shape, dtype=c.dtype) if c.is_key else TensorType(c.dtype, shape)
        t = _source_type(ct, True)
        for i in idx:
            if source_types.setdefault(i, t) != t:
                raise ParseError(
                    f"text file {str(path)!r}: line {c.line}, in ML.NET's TextLoader schema comment: column "
                    f"{quoted(c.name)} reads file column {i} as {c.kind}, which column {quoted(readers[i])} reads as "
                    "another type; onnxpipe reads a file column as one type"
                )
            readers.setdefault(i, c.name)
        columns.append(Column(c.name, ct))
        sources[c.name] = idx
    return Schema(columns), _Plan(source_types, sources, names, mlnet_keys=True)


def _source_type(ct: TensorType, mlnet_keys: bool) -> pa.DataType:
    """The Arrow type a file column of ``ct`` values is parsed as: float16 through float64, and a
    key in ML.NET's text (its 0-based index, or empty) as a nullable uint64 turned into keys after."""
    if mlnet_keys and isinstance(ct, KeyType):
        return pa.uint64()
    return DType.FLOAT64.arrow if ct.dtype is DType.FLOAT16 else ct.dtype.arrow


def _keys_from_text(values: pa.Array, ct: KeyType) -> pa.Array:
    """Keys from ML.NET's text of them, parsed as uint64: ``n`` is key ``n + 1``; a missing value,
    or one past the key count, the missing key 0 (as ML.NET's TextLoader reads them)."""
    import pyarrow.compute as pc

    count = ct.count if ct.count is not None else int(np.iinfo(ct.dtype.numpy).max)
    index = pc.fill_null(values.cast(pa.uint64()), pa.scalar(count, pa.uint64())).to_numpy(zero_copy_only=False)
    return pa.array(np.where(index < count, index + 1, 0).astype(ct.dtype.numpy))


class _Plan:
    """How file columns become schema columns."""

    def __init__(
        self,
        source_types: dict[int, pa.DataType],
        sources: dict[str, list[int]],
        names: list[str],
        *,
        mlnet_keys: bool = False,
    ):
        self.source_types = source_types
        self.sources = sources  # schema column -> file column indices
        self.names = names
        self.mlnet_keys = mlnet_keys  # key columns hold ML.NET's text of keys (see _keys_from_text)

    def assemble(self, batch: pa.RecordBatch, schema: Schema, where: str, row_offset: int = 0) -> pa.RecordBatch:
        arrays: list[pa.Array] = []
        for col in schema.columns:
            idx = self.sources[col.name]
            ct = col.type
            assert isinstance(ct, TensorType)
            parts = [batch.column(self.names[i]) for i in idx]
            if self.mlnet_keys and isinstance(ct, KeyType):
                parts = [_keys_from_text(part, ct) for part in parts]
            if ct.is_scalar:
                arrays.append(parts[0])
                continue
            tmp = Schema(Column(f"{col.name}[{k}]", TensorType(ct.dtype)) for k in range(len(parts)))
            checked = normalize_batch(pa.RecordBatch.from_arrays(parts, names=tmp.names), tmp, where, row_offset)
            values = np.column_stack([from_arrow(checked.column(k), TensorType(ct.dtype)) for k in range(len(parts))])
            arrays.append(to_arrow(values, ct, col.name))
        return normalize_batch(pa.RecordBatch.from_arrays(arrays, names=schema.names), schema, where, row_offset)


def _plan_from_class(
    cls: type, names: list[str], has_header: bool, path: Path, mlnet_keys: bool = False
) -> tuple[Schema, _Plan]:
    binding = row_binding(cls)
    source_types: dict[int, pa.DataType] = {}
    readers: dict[int, str] = {}  # file column -> the first field reading it
    sources: dict[str, list[int]] = {}
    for f in binding.fields:
        ct = f.column.type
        if not isinstance(ct, TensorType):
            raise SchemaError(f"{cls.__name__}.{f.attribute}: {ct} columns cannot be read from a text file")
        if f.load_column is not None:
            idx = list(range(f.load_column.start, f.load_column.start + f.load_column.count))
        elif has_header and f.column.name in names:
            idx = [names.index(f.column.name)]
        else:
            hint = f"file columns: {names}" if has_header else "the file has no header"
            raise SchemaError(
                f"{cls.__name__}.{f.attribute}: no LoadColumn(index) marker and no file column named "
                f"{f.column.name!r} ({hint})"
            )
        if idx[-1] >= len(names):
            raise SchemaError(
                f"{cls.__name__}.{f.attribute}: LoadColumn index {idx[-1]} is past the last column "
                f"of {path.name!r}, which has {len(names)} columns"
            )
        if not ct.is_scalar and ct.size != len(idx):
            raise SchemaError(
                f"{cls.__name__}.{f.attribute}: a {ct} field needs LoadColumn(start, end) covering "
                f"{ct.size} file columns, got {len(idx)}"
            )
        _check_text_type(ct, f"{cls.__name__}.{f.attribute}")
        for i in idx:
            t = _source_type(ct, mlnet_keys)
            prev = source_types.get(i)
            if prev is not None and prev != t and pa.types.is_floating(prev) and pa.types.is_floating(t):
                t = DType.FLOAT64.arrow  # float fields of different widths share a float64 parse
            elif prev is not None and prev != t:  # the file column is parsed once, as one type
                raise SchemaError(
                    f"{cls.__name__}.{f.attribute}: file column {i} ({names[i]!r}) is also read by "
                    f"{cls.__name__}.{readers[i]} as another element type; fields that share a file column "
                    "must have the same element type"
                )
            source_types[i] = t
            readers.setdefault(i, f.attribute)
        sources[f.column.name] = idx
    return binding.schema, _Plan(source_types, sources, names, mlnet_keys=mlnet_keys)


def _plan_from_schema(
    schema: Schema, names: list[str], has_header: bool, path: Path, mlnet_keys: bool = False
) -> _Plan:
    source_types: dict[int, pa.DataType] = {}
    sources: dict[str, list[int]] = {}
    position = 0  # without a header: the next file column to read
    needed = sum(c.type.size or 1 for c in schema.columns if isinstance(c.type, TensorType) and c.type.is_known_shape)
    for col in schema.columns:
        ct = col.type
        if not (isinstance(ct, TensorType) and ct.is_known_shape):
            raise SchemaError(
                f"column {col.name!r} is {ct}: only scalars and tensors of known shape can be read from a text file"
            )
        width = ct.size or 1
        if has_header:
            wanted = [col.name] if ct.is_scalar else [f"{col.name}.{k}" for k in range(width)]
            absent = [w for w in wanted if w not in names]
            if absent:
                layout = "" if ct.is_scalar else f" (a {ct} column is read from {wanted[0]!r} ... {wanted[-1]!r})"
                raise ColumnNotFoundError(
                    f"text file {path.name!r} has no column {absent[0]!r} for column {col.name!r}{layout}; "
                    f"the file's columns: {names}"
                )
            idx = [names.index(w) for w in wanted]
        else:
            idx = list(range(position, position + width))
            position += width
            if idx[-1] >= len(names):
                raise SchemaError(
                    f"column {col.name!r} ({ct}) would read file column {idx[-1]} of {path.name!r}, which has "
                    f"{len(names)} columns; without a header the schema's columns read the first {needed} in order"
                )
        _check_text_type(ct, f"column {col.name!r}")
        for i in idx:
            t = _source_type(ct, mlnet_keys)
            if source_types.setdefault(i, t) != t:
                raise SchemaError(
                    f"file column {names[i]!r} of {path.name!r} is read by column {col.name!r} and by another "
                    "column of a different element type"
                )
        sources[col.name] = idx
    return _Plan(source_types, sources, names, mlnet_keys=mlnet_keys)


def _plan_inferred(
    path: Path,
    names: list[str],
    data_start: int,
    parse: pacsv.ParseOptions,
    missing: Sequence[str],
    limit: int,
    trim_leading_spaces: bool,
) -> tuple[Schema, _Plan]:
    block = min(1 << 20, limit + _BLOCK_SLACK)
    read: pacsv.ReadOptions | None = pacsv.ReadOptions(skip_rows=data_start, column_names=names, block_size=block)
    convert = pacsv.ConvertOptions(null_values=list(missing), strings_can_be_null=False)
    while read is not None:
        try:
            reader = _open_csv(path, read, parse, convert, trim_leading_spaces)
            inferred = reader.schema
            first = reader.read_next_batch() if inferred else None
            break
        except StopIteration:
            first = None
            break
        except pa.ArrowInvalid as exc:
            bigger = _bigger_block(read, path, limit, None) if _is_row_too_long(exc) else None
            if bigger is None:
                raise _parse_error(exc, path, names, parse.delimiter, None) from None
            read = bigger
    cols: list[Column] = []
    source_types: dict[int, pa.DataType] = {}
    for i, field in enumerate(inferred):
        t = field.type
        if pa.types.is_floating(t) or pa.types.is_null(t):
            dtype = DType.FLOAT32
        elif pa.types.is_integer(t):
            # whole numbers with missing values are read as float32 so that they can hold NaN
            dtype = DType.FLOAT32 if first is not None and first.column(i).null_count else DType.INT64
        elif pa.types.is_boolean(t):
            dtype = DType.BOOL
        else:
            dtype = DType.STRING
        source_types[i] = dtype.arrow
        cols.append(Column(names[i], TensorType(dtype)))
    return Schema(cols), _Plan(source_types, {c.name: [i] for i, c in enumerate(cols)}, names)


# --------------------------------------------------------------------------------------------
# Rows sink


def create_enumerable(data: DataView, row_class: type) -> Iterator[Any]:
    """Iterate ``data`` as instances of ``row_class`` (columns checked now, rows built lazily)."""
    conv = RowConverter(row_class)
    conv.check_source(data.schema)
    names = [f.column.name for f in conv.binding.fields]

    def rows() -> Iterator[Any]:
        for batch in data.batches():
            cols = {n: from_arrow(batch.column(n), data.schema[n].type) for n in names}
            yield from conv.from_columns(cols, batch.num_rows)

    return rows()
