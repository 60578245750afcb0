"""Column mapping: copy, drop, select, concatenate. Nothing to learn, so each is its own estimator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from onnxpipe.core import TrivialEstimator
from onnxpipe.data._convert import ColumnValues
from onnxpipe.errors import ColumnTypeError, InvalidArgumentError
from onnxpipe.schema import Column, Schema, TensorType

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["ColumnConcatenatingTransformer", "ColumnCopyingTransformer", "ColumnSelectingTransformer"]


def _names(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = [names]
    out = tuple(names)
    if not out or not all(isinstance(n, str) and n for n in out):
        raise InvalidArgumentError(f"{what} needs one or more non-empty column names, got {list(names)!r}")
    return out


class _Frozen:
    """Equality and repr from the constructor arguments (kept in ``_args``)."""

    _args: tuple[object, ...]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._args == self._args  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._args))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._args!r}"


class ColumnCopyingTransformer(_Frozen, TrivialEstimator):
    """Copies columns under new names: ``pairs`` is a sequence of (output, input)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            raise InvalidArgumentError("copy_columns needs at least one (output, input) pair")
        self.pairs = tuple((o, i) for o, i in pairs)
        for pair in self.pairs:
            _names(pair, "copy_columns")
        self._args = (self.pairs,)

    @property
    def step_name(self) -> str:
        return "copy_columns(" + ", ".join(f"{o}<-{i}" for o, i in self.pairs) + ")"

    def output_schema(self, input_schema: Schema) -> Schema:
        cols = [input_schema.require(i, self.step_name) for _, i in self.pairs]
        return input_schema.with_columns(
            *(Column(o, c.type, c.slot_names) for (o, _), c in zip(self.pairs, cols, strict=True))
        )

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return list(dict.fromkeys(i for _, i in self.pairs))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        return {o: columns[i] for o, i in self.pairs}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        values = [ctx.value(i) for _, i in self.pairs]  # read all before writing: swaps stay correct
        for (o, _), value in zip(self.pairs, values, strict=True):
            ctx.set_value(o, value)


class ColumnSelectingTransformer(_Frozen, TrivialEstimator):
    """Keeps (``keep=True``) or drops the named columns."""

    def __init__(self, names: Sequence[str], *, keep: bool) -> None:
        self.names = _names(names, "select_columns" if keep else "drop_columns")
        self.keep = keep
        self._args = (self.names, keep)

    @property
    def step_name(self) -> str:
        return ("select_columns" if self.keep else "drop_columns") + f"({', '.join(self.names)})"

    def output_schema(self, input_schema: Schema) -> Schema:
        for n in self.names:
            input_schema.require(n, self.step_name)
        if self.keep:
            return input_schema.select(self.names)
        return input_schema.without(*self.names)

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return []

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        return {}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        pass  # the converter drops the values of the columns this step removes


class ColumnConcatenatingTransformer(_Frozen, TrivialEstimator):
    """Joins scalar and vector columns of one element type into one flat vector column."""

    def __init__(self, output_column_name: str, input_column_names: Sequence[str]) -> None:
        (self.output_column_name,) = _names([output_column_name], "concatenate")
        self.input_column_names = _names(input_column_names, "concatenate")
        self._args = (self.output_column_name, self.input_column_names)

    @property
    def step_name(self) -> str:
        return f"concatenate({self.output_column_name} <- {', '.join(self.input_column_names)})"

    def _inputs(self, schema: Schema) -> list[tuple[Column, TensorType]]:
        out = []
        for n in self.input_column_names:
            col = schema.require(n, self.step_name)
            if not isinstance(col.type, TensorType):
                raise ColumnTypeError(
                    f"{self.step_name}: column {n!r} is {col.type}; only tensor columns can be concatenated"
                )
            out.append((col, col.type))
        dtypes = {t.dtype for _, t in out}
        if len(dtypes) > 1:
            listing = ", ".join(f"{c.name}: {t}" for c, t in out)
            raise ColumnTypeError(
                f"{self.step_name}: all inputs must have the same element type, got {listing}; use convert_type first"
            )
        return out

    def output_schema(self, input_schema: Schema) -> Schema:
        inputs = self._inputs(input_schema)
        sizes = [t.size for _, t in inputs]
        dtype = inputs[0][1].dtype
        if None in sizes:
            return input_schema.with_columns(Column(self.output_column_name, TensorType(dtype, (None,))))
        slots: list[str] = []
        for col, t in inputs:
            if t.is_scalar:
                slots.append(col.name)
            elif col.slot_names is not None and len(col.slot_names) == t.size:
                slots.extend(col.slot_names)
            else:
                slots.extend(f"{col.name}.{k}" for k in range(t.size or 0))
        total = sum(s for s in sizes if s is not None)
        return input_schema.with_columns(Column(self.output_column_name, TensorType(dtype, (total,)), tuple(slots)))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return list(self.input_column_names)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        parts = [columns[n] for n in self.input_column_names]
        if all(isinstance(p, np.ndarray) for p in parts):
            flat = [np.asarray(p).reshape(n_rows, -1) for p in parts]
            return {self.output_column_name: np.concatenate(flat, axis=1)}
        rows = [np.concatenate([np.asarray(p[r]).reshape(-1) for p in parts]) for r in range(n_rows)]
        return {self.output_column_name: rows}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        flat = [ctx.add_node("Flatten", [ctx.value(n)], axis=1)[0] for n in self.input_column_names]  # [N, size]
        (joined,) = ctx.add_node("Concat", flat, axis=1) if len(flat) > 1 else ctx.add_node("Identity", flat)
        ctx.set_value(self.output_column_name, joined)
