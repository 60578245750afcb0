"""Writing DataViews: CSV/TSV (known-shape tensors as one column per value, ``name.0`` ...,
as the text loader reads them back with a schema; other nested values as JSON text; with
ML.NET's ``#@ TextLoader{`` schema comment first from ``save_as_text``), JSON lines and Parquet
(onnxpipe's column types kept in the field metadata). Shared by ``ctx.data.save_as_text`` /
``save_as_parquet`` and ``onnxpipe predict`` (whose CSV/TSV has no schema comment: a plain
table for other tools).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from onnxpipe._display import quoted
from onnxpipe._files import atomic_output
from onnxpipe.data._convert import arrow_schema, from_arrow, to_arrow
from onnxpipe.data._loaders import MAX_ROW_BYTES
from onnxpipe.data._textloader import (
    MAX_COMMENT_BYTES,
    MAX_COMMENT_COLUMNS,
    LoaderColumn,
    SourceRange,
    format_comment,
    kind_of,
)
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError, InvalidArgumentError
from onnxpipe.schema import AnyRankTensorType, Column, ColumnType, DType, KeyType, Schema, TensorType

__all__ = ["TableWriter", "open_writer", "save_as_parquet", "save_as_text", "schema_comment_text", "split_names"]

_SEPARATORS = {"csv": ",", "tsv": "\t"}


def save_as_text(
    data: DataView,
    path: str | Path,
    *,
    separator: str = "\t",
    header: bool = True,
    columns: Sequence[str] | None = None,
    schema: bool = True,
) -> int:
    """Write ``data`` (or its ``columns``) to a delimited text file, as ML.NET's ``SaveAsText``:
    a header line of names unless ``header=False``, a vector of known shape as one column per
    value (``name.0``, ``name.1``...), other nested values as JSON text. The file is written
    under a temporary name and renamed when complete. Returns the rows written.

    ``schema=True`` (the default, as in ML.NET) starts the file with ML.NET's schema comment, the
    ``#@ TextLoader{ ... #@ }`` lines that tell a reader how to load it: the separator
    (``sep=tab``), ``header+`` when there is a header, and one ``col=Name:Type:Index`` per column
    (``col=Features:R4:1-4`` for a vector of 4 values in file columns 1 to 4; ``U4[3]`` a key
    column of 3 keys), so that ``load_from_text_file(path)`` (and ML.NET's ``LoadFromTextFile``
    without columns) reads the columns back with their names and types. The types are those of
    the text written: float16 and the low-precision floats are written (and described) as
    float32 (``R4``), int4 / uint4 / int2 / uint2 as int8 (``I1``), nested values written as
    JSON text as text (``TX``); a tensor of several dimensions is one vector of its values. It
    adds ``quote+`` to ML.NET's settings: text fields are quoted. Key columns are then written
    as ML.NET writes them, the key's 0-based index (key ``k`` as ``k - 1``, the missing key 0 as
    an empty field); with ``schema=False`` the file has no comment and keys are written as they
    are (as ``onnxpipe predict`` writes them), to be read with
    ``load_from_text_file(path, schema=data.schema, separator=..., has_header=header)``.
    """
    if not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"':
        raise InvalidArgumentError(
            f"save_as_text: separator must be one character (not a quote or newline), got {separator!r}"
        )
    if not isinstance(schema, bool):
        raise InvalidArgumentError(f"save_as_text: schema must be True or False, got {schema!r}")
    return _save(data, path, "csv", columns, separator=separator, header=header, schema_comment=schema)


def save_as_parquet(data: DataView, path: str | Path, *, columns: Sequence[str] | None = None) -> int:
    """Write ``data`` (or its ``columns``) to a Parquet file that keeps onnxpipe's column types
    (``load_from_parquet`` reads it back as it was), in row groups of up to 64k rows, under a
    temporary name renamed when complete. Returns the rows written."""
    return _save(data, path, "parquet", columns)


def _save(
    data: DataView,
    path: str | Path,
    fmt: str,
    columns: Sequence[str] | None,
    *,
    schema_comment: bool = False,
    **options: Any,
) -> int:
    if not isinstance(data, DataView):
        raise InvalidArgumentError(
            f"save_as_{'parquet' if fmt == 'parquet' else 'text'} needs a DataView, got {type(data).__name__}"
        )
    names = list(columns) if columns is not None else data.schema.names
    schema = data.schema.select(names)
    comment = schema_comment_text(schema, options["separator"], options["header"]) if schema_comment else None
    rows = 0
    with atomic_output(Path(path), "the output") as f:
        if comment is not None:
            f.write(comment.encode("utf-8"))
        writer = open_writer(f, fmt, schema, mlnet_keys=schema_comment, **options)
        try:
            for batch in data.batches():
                writer.write(batch.select(names))
                rows += batch.num_rows
        except BaseException:
            writer.discard()
            raise
        writer.close()
    return rows


def schema_comment_text(schema: Schema, separator: str, header: bool) -> str:
    """ML.NET's schema comment (``#@ TextLoader{`` ... ``#@ }``) for ``schema`` written as text
    (see :func:`save_as_text`): each column's ML.NET type and the file columns it takes."""
    described: list[LoaderColumn] = []
    start = 0
    for column in (_as_numbers(c) for c in schema.columns):
        if "\n" in column.name or "\r" in column.name:
            raise DataError(
                f"save_as_text: column {quoted(column.name)} has a line break in its name, which the schema "
                "comment cannot hold; rename the column, or pass schema=False"
            )
        ct = column.type
        key: int | bool | None = False
        if isinstance(ct, TensorType) and ct.is_known_shape:
            width, kind, vector = ct.size or 0, kind_of(ct.dtype), not ct.is_scalar
            if isinstance(ct, KeyType):
                key = ct.count
        else:  # written as JSON text
            width, kind, vector = 1, "TX", False
        if width == 0:
            continue  # a vector of no values takes no file column (and ML.NET has no empty range)
        described.append(LoaderColumn(column.name, kind, (SourceRange(start, start + width - 1, vector=vector),), key))
        start += width
    if len(described) > MAX_COMMENT_COLUMNS:
        raise DataError(
            f"save_as_text: {len(described):,} columns are more than a schema comment describes (at most "
            f"{MAX_COMMENT_COLUMNS:,}, all onnxpipe reads back); pass schema=False, or save as Parquet"
        )
    text = format_comment(separator, header, described)
    if len(text.encode("utf-8")) > MAX_COMMENT_BYTES:
        raise DataError(
            f"save_as_text: the schema comment would take more than {MAX_COMMENT_BYTES:,} bytes (all onnxpipe reads "
            "back): the column names are too long; pass schema=False, or save as Parquet"
        )
    return text


def split_names(column: Column) -> list[str] | None:
    """``name.0`` ... for a tensor of known shape with more than zero values; None otherwise."""
    ct = column.type
    if isinstance(ct, TensorType) and not ct.is_scalar and ct.is_known_shape:
        if (ct.size or 0) > MAX_ROW_BYTES // 2:  # each value takes a digit and a separator at least
            raise DataError(
                f"column {quoted(column.name)} holds {ct.size:,} values per row, more than a text row of "
                f"{MAX_ROW_BYTES:,} bytes can hold; use Parquet or JSON lines"
            )
        return [f"{column.name}.{k}" for k in range(ct.size or 0)]
    return None


class TableWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None:
        """Stop writing after a failure, before the file under the writer is closed and removed."""


def open_writer(
    path: Path | BinaryIO,
    fmt: str,
    schema: Schema,
    *,
    separator: str | None = None,
    header: bool = True,
    mlnet_keys: bool = False,
) -> TableWriter:
    """A writer of batches of ``schema`` (the storage DataViews yield) to ``path``: a file name,
    or a binary file that closing the writer leaves open (flushed). ``fmt``: ``csv``, ``tsv``
    (``separator`` replaces their comma or tab; ``header=False`` leaves out the names line;
    ``mlnet_keys`` writes key columns as ML.NET's text of keys, the 0-based index or an empty
    field for the missing key, as a file with ML.NET's schema comment holds them), ``jsonl`` or
    ``parquet``. No schema comment is written here (``save_as_text`` writes it)."""
    if fmt == "parquet":
        return _ParquetWriter(path, schema)
    numbers = Schema(_as_numbers(c) for c in schema.columns)
    writer: TableWriter = (
        _JsonLinesWriter(path, numbers)
        if fmt == "jsonl"
        else _TextWriter(path, numbers, separator or _SEPARATORS[fmt], header, mlnet_keys=mlnet_keys)
    )
    return writer if numbers == schema else _NumbersWriter(writer, schema, numbers)


def _as_numbers(column: Column) -> Column:
    """A low-precision tensor column (bfloat16, float8, int4...) as the float32 or int8 values it
    holds exactly, for the text formats (Arrow stores its raw bits, which are not its values)."""
    ct = column.type
    if not isinstance(ct, TensorType) or not ct.dtype.is_low_precision:
        return column
    wide = DType.INT8 if ct.dtype.value.startswith(("int", "uint")) else DType.FLOAT32
    return dataclasses.replace(column, type=TensorType(wide, ct.shape))


class _NumbersWriter:
    """Hands ``writer`` each batch with its low-precision columns as numbers (:func:`_as_numbers`)."""

    def __init__(self, writer: TableWriter, schema: Schema, numbers: Schema) -> None:
        self._writer, self._schema, self._numbers = writer, schema, numbers

    def write(self, batch: pa.RecordBatch) -> None:
        arrays = []
        for arr, col, wide in zip(batch.columns, self._schema.columns, self._numbers.columns, strict=True):
            if col != wide:
                values = from_arrow(arr, col.type)
                assert isinstance(wide.type, TensorType)
                dtype = wide.type.dtype.numpy
                exact = values.astype(dtype) if isinstance(values, np.ndarray) else [v.astype(dtype) for v in values]
                arr = to_arrow(exact, wide.type, wide.name)
            arrays.append(arr)
        self._writer.write(pa.RecordBatch.from_arrays(arrays, schema=arrow_schema(self._numbers)))

    def close(self) -> None:
        self._writer.close()

    def discard(self) -> None:
        self._writer.discard()


class _ParquetWriter:
    """Keeps onnxpipe's column types in the field metadata, so the file loads back as written.
    Small batches are gathered into row groups of up to 64k rows or 64 MiB."""

    _GROUP_ROWS = 65536
    _GROUP_BYTES = 64 << 20

    def __init__(self, path: Path | BinaryIO, schema: Schema) -> None:
        import pyarrow.parquet as pq

        self._schema = arrow_schema(schema)
        self._writer = pq.ParquetWriter(path, self._schema)
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        self._bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._rows += batch.num_rows
        self._bytes += batch.nbytes
        if self._rows >= self._GROUP_ROWS or self._bytes >= self._GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self._schema))
        self._pending, self._rows, self._bytes = [], 0, 0

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def discard(self) -> None:
        # pyarrow's writer closes itself when collected: while its file is still open, not after
        # (it would print a traceback about writing to a closed file).
        self._pending = []
        with contextlib.suppress(Exception):
            self._writer.close()


def _text_columns(column: Column) -> list[str]:
    split = split_names(column)
    return split if split is not None else [column.name]


class _TextWriter:
    """Known-shape tensors as one column per value, other nested values as JSON text."""

    def __init__(
        self, path: Path | BinaryIO, schema: Schema, separator: str, header: bool = True, *, mlnet_keys: bool = False
    ) -> None:
        self._schema = schema
        self._mlnet_keys = mlnet_keys
        fields = []
        for c in schema.columns:
            ct = c.type
            if isinstance(ct, TensorType) and ct.is_known_shape:
                elem = pa.float32() if ct.dtype is DType.FLOAT16 else ct.dtype.arrow
                fields += [pa.field(n, elem) for n in _text_columns(c)]
            else:
                fields.append(pa.field(c.name, pa.string()))
        names = [f.name for f in fields]
        repeated = sorted(n for n, times in collections.Counter(names).items() if times > 1)  # vectors make many names
        if repeated:
            raise DataError(
                f"the output would hold the columns {repeated} twice (a kept input column is named like "
                "the values of an output vector); rename or drop the input column, or leave out --keep-input"
            )
        self._arrow = pa.schema(fields)
        # A missing key (mlnet_keys) is an empty field, as ML.NET writes it; alone on its line it
        # would be a blank line, which readers skip: then it is '?', which ML.NET reads as missing too.
        lone = mlnet_keys and len(fields) == 1
        options = pacsv.WriteOptions(delimiter=separator, include_header=header, null_string="?" if lone else "")
        self._writer = pacsv.CSVWriter(path, self._arrow, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        arrays: list[pa.Array] = []
        for c in self._schema.columns:
            ct = c.type
            arr = batch.column(c.name)
            if self._mlnet_keys and isinstance(ct, KeyType) and ct.is_known_shape:
                arrays += _key_texts(np.asarray(from_arrow(arr, ct)).reshape(batch.num_rows, -1), ct)
            elif isinstance(ct, TensorType) and ct.is_scalar:
                arrays.append(arr.cast(pa.float32()) if ct.dtype is DType.FLOAT16 else arr)
            elif isinstance(ct, TensorType) and ct.is_known_shape:
                values = np.asarray(from_arrow(arr, ct)).reshape(batch.num_rows, -1)
                if ct.dtype is DType.FLOAT16:
                    values = values.astype(np.float32)
                arrays += [pa.array(values[:, k]) for k in range(values.shape[1])]
            else:
                arrays.append(pa.array([_json_text(v) for v in _json_values(arr, ct)], pa.string()))
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._arrow))

    def close(self) -> None:
        self._writer.close()

    def discard(self) -> None:
        pass  # nothing buffered outside the file


def _key_texts(keys: np.ndarray, ct: KeyType) -> list[pa.Array]:
    """ML.NET's text of keys (its GetKeyStringConversion), one array per slot: key ``k`` as
    ``k - 1``; the missing key 0, or a key past the count, as a missing (empty) field."""
    wide = keys.astype(np.uint64)
    valid = wide > 0 if ct.count is None else (wide > 0) & (wide <= ct.count)
    index = np.where(valid, wide - 1, 0).astype(ct.dtype.numpy)
    return [pa.array(index[:, k], mask=~valid[:, k]) for k in range(index.shape[1])]


class _JsonLinesWriter:
    """One JSON object per row; tensors as flat arrays (nested when several dimensions are unknown)."""

    def __init__(self, path: Path | BinaryIO, schema: Schema) -> None:
        self._schema = schema
        self._owned = isinstance(path, Path)
        self._file: io.TextIOWrapper = (
            path.open("w", encoding="utf-8", newline="\n")
            if isinstance(path, Path)
            else io.TextIOWrapper(path, encoding="utf-8", newline="\n")
        )

    def write(self, batch: pa.RecordBatch) -> None:
        # Each column becomes its rows' JSON texts and Arrow joins them into lines, in bulk:
        # far faster than json.dumps of one dict per row.
        if batch.num_rows == 0:
            return
        import pyarrow.compute as pc

        parts: list[pa.Array | str] = []
        for i, name in enumerate(self._schema.names):
            key = ("{" if i == 0 else ",") + _json_text(name) + ":"
            parts += [key, _json_fragments(batch.column(name), self._schema[name].type)]
        lines = pc.binary_join_element_wise(*parts, "}\n", "")
        self._file.write("".join(lines.to_pylist()))

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()
            self._file.detach()  # the binary file stays open: its owner closes it

    def discard(self) -> None:
        pass  # nothing buffered outside the file


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _number_texts(values: pa.Array) -> pa.Array:
    """JSON texts of numbers or bools (Arrow's shortest decimals); NaN and infinities as null."""
    import pyarrow.compute as pc

    if pa.types.is_float16(values.type):
        # Arrow cannot format float16: numpy gives its shortest decimal (0.1, as the other paths).
        half = values.to_numpy(zero_copy_only=False)
        texts = pa.array(half.astype(str))
        return pc.if_else(pa.array(np.isfinite(half)), texts, "null")
    texts = values.cast(pa.string())
    if pa.types.is_floating(values.type):
        texts = pc.if_else(pc.is_finite(values), texts, "null")
    return texts


def _json_fragments(arr: pa.Array, ct: ColumnType) -> pa.Array:
    """The JSON text of each row's value of one column of a batch, as an Arrow string array."""
    import pyarrow.compute as pc

    if isinstance(ct, TensorType) and ct.is_known_shape and ct.dtype is not DType.STRING:
        if ct.is_scalar:
            return _number_texts(arr)
        if not ct.size:
            return pa.array(["[]"] * len(arr), pa.string())
        assert isinstance(arr, pa.FixedSizeListArray)
        flat = _number_texts(arr.flatten())  # row-major values, ct.size per row
        offsets = pa.array(np.arange(0, len(flat) + 1, ct.size, dtype=np.int64))
        rows = pa.LargeListArray.from_arrays(offsets, flat)
        return pc.binary_join_element_wise("[", pc.binary_join(rows, ","), "]", "")
    return pa.array([_json_text(v) for v in _json_values(arr, ct)], pa.string())


def _finite(values: np.ndarray) -> list[Any]:
    """Python values of ``values``; NaN and infinities (which JSON cannot hold) as None."""
    if values.dtype.kind == "f":
        if values.dtype != np.float64:
            # The shortest decimal of the narrow float (0.1, not 0.10000000149011612), as CSV writes it.
            values = values.astype(str).astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            cells = values.astype(object)
            cells[bad] = None
            return list(cells.tolist())
    return list(values.tolist())


def _json_values(arr: pa.Array, ct: ColumnType) -> list[Any]:
    """The JSON-ready values of one column of a batch."""
    values = from_arrow(arr, ct)
    if isinstance(ct, TensorType):
        if ct.is_known_shape:
            assert isinstance(values, np.ndarray)
            return _finite(values if ct.is_scalar else values.reshape(len(values), -1))
        flat = ct.shape.count(None) == 1 and not isinstance(ct, AnyRankTensorType)  # else rows keep their shape
        return [_finite(np.asarray(v).reshape(-1) if flat else np.asarray(v)) for v in values]
    return [_clean(v) for v in values]


def _clean(value: Any) -> Any:
    """Sequences and maps: JSON-ready (map keys as text, non-finite floats as None)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
