"""DataView: an immutable, lazy table that streams Arrow record batches.

Sinks that read a whole view (``columns``, ``to_arrow``, ``to_pandas``, ``count_rows``) show a
progress bar on stderr once the work has taken more than
:data:`onnxpipe._progress.PROGRESS_DELAY` seconds, when stderr is a terminal; set the environment
variable ``ONNXPIPE_PROGRESS=0`` to never show it (``=1`` shows it even when stderr is not a
terminal). ``DataView.with_progress`` shows one for any consumer. Drawing is
:mod:`onnxpipe._progress`'s business; a view only hands it its batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from onnxpipe._progress import read_with_progress
from onnxpipe.data._convert import ColumnValues, arrow_schema, from_arrow, is_sparse, value_count
from onnxpipe.errors import ColumnTypeError, InvalidArgumentError, require
from onnxpipe.schema import Schema, SparseVectorType, TensorType

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

__all__ = ["DataView", "Preview"]

BatchSource = Callable[[], Iterator[pa.RecordBatch]]


class DataView:
    """A lazy, immutable table: a :class:`~onnxpipe.Schema` and a re-iterable stream of Arrow
    record batches. Nothing is read or computed until a sink (``column``, ``to_arrow``,
    ``to_pandas``, ``preview``, iteration of ``batches()``) asks for it.
    """

    __slots__ = ("_row_count", "_schema", "_source")

    def __init__(self, schema: Schema, source: BatchSource, row_count: int | None = None) -> None:
        self._schema = schema
        self._source = source
        self._row_count = row_count

    @property
    def schema(self) -> Schema:
        return self._schema

    @property
    def row_count(self) -> int | None:
        """The number of rows when known without reading the data, else None."""
        return self._row_count

    @property
    def arrow_schema(self) -> pa.Schema:
        return arrow_schema(self._schema)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream the data as Arrow record batches (each call starts from the beginning)."""
        return self._source()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self.batches()

    def _read_all(self, description: str) -> Iterator[pa.RecordBatch]:
        """The batches, for a sink that reads everything (with progress on long runs)."""
        return read_with_progress(self.batches(), self._row_count, description)

    def count_rows(self) -> int:
        """The number of rows, reading the data if the count is not known up front."""
        if self._row_count is not None:
            return self._row_count
        return sum(b.num_rows for b in self._read_all("counting"))

    def column(self, name: str) -> ColumnValues:
        """All values of one column: a numpy array of shape ``(rows, *shape)`` for tensors of
        known shape, and for tensors with unknown dimensions whose rows all have one shape; a
        list of per-row arrays when the rows' shapes differ (ragged); a ``scipy.sparse.csr_matrix``
        ``(rows, size)`` for a sparse vector column; a list of Python objects for sequences and maps."""
        return self.columns([name])[name]

    def columns(self, names: Sequence[str]) -> dict[str, ColumnValues]:
        """All values of several columns (as :meth:`column`), read in one pass over the data,
        which matters when the view is the lazy output of a pipeline."""
        types = {n: self._schema[n].type for n in dict.fromkeys(names)}
        parts: dict[str, list[ColumnValues]] = {n: [] for n in types}
        for batch in self._read_all("reading"):
            for n, ct in types.items():
                parts[n].append(from_arrow(batch.column(n), ct))
        out: dict[str, ColumnValues] = {}
        for n, ct in types.items():
            if isinstance(ct, SparseVectorType):
                out[n] = _stacked_csr(parts[n], ct)
            elif isinstance(ct, TensorType) and ct.is_known_shape:
                if not parts[n]:
                    out[n] = np.zeros((0, *ct.fixed_shape), dtype=ct.dtype.numpy)
                else:
                    out[n] = parts[n][0] if len(parts[n]) == 1 else np.concatenate(parts[n])
            else:
                values = [v for p in parts[n] for v in p]
                out[n] = _stacked_if_uniform(values) if isinstance(ct, TensorType) else values
        return out

    def arrays(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """As :meth:`columns`, for tensor columns of known shape: one numpy array each (a CSR
        matrix for a sparse vector column)."""
        for n in names:
            ct = self._schema[n].type
            if not (isinstance(ct, TensorType) and ct.is_known_shape):
                raise ColumnTypeError(f"column {n!r} is {ct}; a tensor column of known shape is expected here")
        return self.columns(names)  # type: ignore[return-value]  # known shapes give arrays

    def to_arrow(self) -> pa.Table:
        """Materialise as an Arrow table (column types are recorded in the field metadata)."""
        return pa.Table.from_batches(list(self._read_all("reading")), schema=self.arrow_schema)

    def to_pandas(self) -> pd.DataFrame:
        """Materialise as a pandas DataFrame; tensor cells are numpy arrays of the row shape."""
        pd_mod: Any = require("pandas", "pandas")
        data: dict[str, Any] = {}
        columns = self.columns(self._schema.names)  # one pass: a lazy pipeline runs once
        for name, col in self._schema.items():
            values = columns[name]
            if isinstance(col.type, TensorType) and col.type.is_scalar:
                data[name] = values
            elif isinstance(col.type, SparseVectorType):  # a cell per row: that row's 1 x size CSR matrix
                matrix: Any = values
                rows = np.empty(matrix.shape[0], dtype=object)
                rows[:] = [matrix[i] for i in range(matrix.shape[0])]
                data[name] = rows
            else:
                cells = np.empty(len(values), dtype=object)
                cells[:] = list(values)
                data[name] = cells
        frame: pd.DataFrame = pd_mod.DataFrame(data, columns=self._schema.names)
        return frame

    def cache(self) -> DataView:
        """This data, read once on first use and kept in memory (ML.NET's
        ``AppendCacheCheckpoint``): later reads, e.g. a trainer's passes or several ``column``
        calls, do not re-run the file reading and the steps before it. The batches are held as
        Arrow data, so the view costs about its data's size in memory."""
        source = self._source
        lock = threading.Lock()
        kept: list[pa.RecordBatch] | None = None

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal kept
            with lock:  # one reader fills it; the others wait for it, then share it
                if kept is None:
                    kept = list(source())
            yield from kept

        return DataView(self._schema, batches, self._row_count)

    def __rich__(self) -> Any:
        return self.preview()

    def _repr_html_(self) -> str:
        """A notebook shows the first rows (:meth:`preview`), read from the source."""
        from onnxpipe._display import render_html

        return render_html(self.preview())

    def take(self, n: int) -> DataView:
        """A view of the first ``n`` rows (reads only as many batches as needed)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgumentError(f"take: the number of rows must be an integer >= 0, got {n!r}")
        source = self._source

        def batches() -> Iterator[pa.RecordBatch]:
            left = n
            if left == 0:
                return
            for b in source():  # stop as soon as n rows are out: a lazy source computes no extra batch
                yield b.slice(0, left) if b.num_rows > left else b
                left -= b.num_rows
                if left <= 0:
                    return

        count = None if self._row_count is None else min(n, self._row_count)
        return DataView(self._schema, batches, count)

    def with_progress(
        self, description: str = "scoring", *, enabled: bool | None = None, console: Console | None = None
    ) -> DataView:
        """The same lazy view, showing a progress bar (rows done, of ``row_count`` when known)
        while its batches are read.

        ``enabled=None`` follows ``ONNXPIPE_PROGRESS`` (``0`` / ``1``) when set, and otherwise
        shows the bar only when stderr (or ``console``) is a terminal, so logs and pipes stay
        clean; ``console`` (default: a rich Console on stderr) is where the bar is drawn. The bar
        advances as each batch is handed on, so it measures the work of everything upstream
        (loading, transforms, scoring) done while the consumer reads.
        """
        if not isinstance(description, str):
            raise InvalidArgumentError(f"with_progress: description must be a string, got {description!r}")
        if enabled is not None and not isinstance(enabled, bool):
            raise InvalidArgumentError(f"with_progress: enabled must be True, False or None, got {enabled!r}")
        source = self._source
        total = self._row_count

        def batches() -> Iterator[pa.RecordBatch]:
            # Closing the stream early stops the bar too.
            return read_with_progress(source(), total, description, delay=0.0, console=console, enabled=enabled)

        return DataView(self._schema, batches, self._row_count)

    def preview(self, n: int = 5) -> Preview:
        """The first ``n`` rows as a printable table."""
        return Preview(self.take(n))

    def __repr__(self) -> str:
        rows = "?" if self._row_count is None else str(self._row_count)
        return f"DataView(rows={rows}, {self._schema!r})"


def _cell(value: Any) -> str:
    if is_sparse(value):  # one row of a sparse vector: its non-zero slots
        slots = ", ".join(f"{i}: {_scalar(v)}" for i, v in zip(value.indices[:4], value.data[:4], strict=True))
        more = ", …" if value.nnz > 4 else ""
        return f"{{{slots}{more}}} ({value.nnz} of {value.shape[1]})"
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)
        head = ", ".join(_scalar(x) for x in flat[:4])
        more = ", …" if flat.size > 4 else ""
        return f"[{head}{more}] {tuple(value.shape)}"
    if isinstance(value, list | dict):
        text = _nested(value)
        return text if len(text) <= 60 else text[:57] + "…"
    return _scalar(value)


def _nested(value: Any) -> str:
    """A sequence or map with its tensors shown as ``_cell`` shows them (not numpy's repr)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_nested(k)}: {_nested(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return _cell(value) if isinstance(value, np.ndarray) else _scalar(value)


def _scalar(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return f"{float(x):.4g}"
    return str(x)


class Preview:
    """The first rows of a DataView, printed as a table (``print(view.preview())``)."""

    def __init__(self, view: DataView) -> None:
        self.schema = view.schema
        self.columns = {name: view.column(name) for name in view.schema.names}
        self.rows = value_count(next(iter(self.columns.values()), []))

    def __rich__(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        from onnxpipe._display import shown

        table = Table(show_lines=False)
        for name, col in self.schema.items():  # names from files: text, never rich markup
            table.add_column(Text(f"{shown(name)}\n{shown(col.type)}"), overflow="fold")
        for i in range(self.rows):
            table.add_row(*(Text(shown(_cell(self.columns[c][i]))) for c in self.schema.names))
        return table

    def __str__(self) -> str:
        from onnxpipe._display import render_text

        return render_text(self, width=160)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from onnxpipe._display import render_html

        return render_html(self, width=160)


def _stacked_csr(parts: list[Any], ct: SparseVectorType) -> Any:
    from scipy import sparse

    if not parts:
        return sparse.csr_matrix((0, ct.vector_size), dtype=ct.dtype.numpy)
    return parts[0] if len(parts) == 1 else sparse.vstack(parts, format="csr")


def _stacked_if_uniform(values: list[Any]) -> ColumnValues:
    """Per-row arrays as one ``(rows, *shape)`` array when every row has the same shape."""
    if not values or not all(isinstance(v, np.ndarray) for v in values):
        return values
    shape = values[0].shape
    if any(v.shape != shape for v in values):
        return values
    return np.stack(values)
