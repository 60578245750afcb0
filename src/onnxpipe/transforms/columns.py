"""Column mapping: copy, drop, select, concatenate. Nothing to learn, so each is its own estimator."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import TransformerT_co, TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.errors import ColumnTypeError
from onnxpipe.schema import Column, Schema, SparseVectorType, TensorType

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "ColumnConcatenatingTransformer",
    "ColumnCopyingTransformer",
    "ColumnDroppingTransformer",
    "ColumnSelectingTransformer",
]


def _legacy_names(names: tuple[Any, ...], what: str) -> tuple[Any, ...]:
    """onnxpipe 0.1 took the column names as one list; still accepted, with a DeprecationWarning."""
    if len(names) == 1 and isinstance(names[0], list | tuple):
        warnings.warn(
            f"{what}: pass the column names as separate arguments, not as one list (deprecated in onnxpipe 0.2)",
            DeprecationWarning,
            stacklevel=3,
        )
        return tuple(names[0])
    return names


class _Frozen:
    """Equality and repr from the constructor arguments (kept in ``_args``)."""

    _args: tuple[object, ...]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._args == self._args

    def __hash__(self) -> int:
        return hash((type(self), self._args))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._args!r}"


@component("copy_columns", catalog="transforms")
class ColumnCopyingTransformer(_Frozen, TrivialEstimator["ColumnCopyingTransformer"]):
    """Copies the column ``input_column_name`` as ``output_column_name`` (ML.NET's CopyColumns)."""

    state_version = 2  # version 1 held a list of (output, input) pairs

    def __init__(self, output_column_name: str, input_column_name: str) -> None:
        self.output_column_name = _validation.column_name(output_column_name, "output_column_name", "copy_columns")
        self.input_column_name = _validation.column_name(input_column_name, "input_column_name", "copy_columns")
        self._args = (self.output_column_name, self.input_column_name)

    @classmethod
    def upgrade_state(cls, state: dict[str, Any], version: int) -> dict[str, Any]:
        pairs = state.get("pairs")
        if version == 1 and isinstance(pairs, list | tuple) and len(pairs) == 1 and len(pairs[0]) == 2:
            return {"output_column_name": pairs[0][0], "input_column_name": pairs[0][1]}
        return super().upgrade_state(state, version)

    @classmethod
    def from_legacy_attributes(cls, attributes: dict[str, Any]) -> Self:
        return cls.from_state({"pairs": attributes.get("pairs")}, 1)

    def output_schema(self, input_schema: Schema) -> Schema:
        c = input_schema.require(self.input_column_name, self.step_name)
        return input_schema.with_columns(Column(self.output_column_name, c.type, c.slot_names))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.input_column_name]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        return {self.output_column_name: columns[self.input_column_name]}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ctx.set_value(self.output_column_name, ctx.value(self.input_column_name))


class _ColumnSubset(_Frozen, TrivialEstimator[TransformerT_co]):
    """Keeps or drops the named columns."""

    _keep: ClassVar[bool]
    state_version = 2  # version 1 was one class with names and keep=True/False

    def __init__(self, *column_names: str) -> None:
        self.column_names = _validation.names(
            _legacy_names(column_names, self.catalog_name), "column_names", self.catalog_name
        )
        self._args = self.column_names

    @property
    def step_name(self) -> str:
        return f"{self.catalog_name}({', '.join(self.column_names)})"

    def output_schema(self, input_schema: Schema) -> Schema:
        for n in self.column_names:
            input_schema.require(n, self.step_name)
        if self._keep:
            return input_schema.select(self.column_names)
        return input_schema.without(*self.column_names)

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return []

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        return {}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        pass  # the converter drops the values of the columns this step removes


@component("select_columns", catalog="transforms")
class ColumnSelectingTransformer(_ColumnSubset["ColumnSelectingTransformer"]):
    """Keeps only the named columns, in that order (ML.NET's SelectColumns)."""

    _keep = True

    @classmethod
    def from_state(cls, state: Mapping[str, Any], version: int | None = None) -> Self:
        # Version 1 saved select_columns and drop_columns both as this class, told apart by ``keep``.
        if version == 1 and state.get("keep") is False:
            names = state.get("names")
            return cast(Self, ColumnDroppingTransformer.from_state({"column_names": names}))
        return super().from_state(state, version)

    @classmethod
    def upgrade_state(cls, state: dict[str, Any], version: int) -> dict[str, Any]:
        if version == 1 and state.get("keep") is True:
            return {"column_names": state.get("names")}
        return super().upgrade_state(state, version)

    @classmethod
    def from_legacy_attributes(cls, attributes: dict[str, Any]) -> Self:
        return cls.from_state({"names": attributes.get("names"), "keep": attributes.get("keep")}, 1)


@component("drop_columns", catalog="transforms")
class ColumnDroppingTransformer(_ColumnSubset["ColumnDroppingTransformer"]):
    """Removes the named columns (ML.NET's DropColumns)."""

    _keep = False
    state_version = 1


@component("concatenate", catalog="transforms")
class ColumnConcatenatingTransformer(_Frozen, TrivialEstimator["ColumnConcatenatingTransformer"]):
    """Joins scalar and vector columns of one element type into one flat vector column; if any
    input is a sparse vector, the result is sparse (ML.NET's VBuffer concatenation)."""

    accepts_sparse = True

    def __init__(self, output_column_name: str, *input_column_names: str) -> None:
        self.output_column_name = _validation.column_name(output_column_name, "output_column_name", "concatenate")
        self.input_column_names = _validation.names(
            _legacy_names(input_column_names, "concatenate"), "input_column_names", "concatenate"
        )
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
        is_sparse = any(isinstance(t, SparseVectorType) for _, t in inputs)
        # A sparse result gets slot names only where every input names its slots ("Hashed.65535"
        # for a million slots is no help).
        named = not is_sparse or all(t.is_scalar or c.slot_names is not None for c, t in inputs)
        slots: list[str] = []
        for col, t in inputs if named else ():
            if t.is_scalar:
                slots.append(col.name)
            elif col.slot_names is not None and len(col.slot_names) == t.size:
                slots.extend(col.slot_names)
            else:
                slots.extend(f"{col.name}.{k}" for k in range(t.size or 0))
        total = sum(s for s in sizes if s is not None)
        if is_sparse:
            out = SparseVectorType(dtype, total)
            return input_schema.with_columns(Column(self.output_column_name, out, tuple(slots) if named else None))
        return input_schema.with_columns(Column(self.output_column_name, TensorType(dtype, (total,)), tuple(slots)))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return list(self.input_column_names)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        parts = [columns[n] for n in self.input_column_names]
        if any(isinstance(input_schema[n].type, SparseVectorType) for n in self.input_column_names):
            from scipy import sparse

            blocks = [p if sparse.issparse(p) else np.asarray(p).reshape(n_rows, -1) for p in parts]
            return {self.output_column_name: sparse.hstack(blocks, format="csr")}
        if all(isinstance(p, np.ndarray) for p in parts):
            flat = [np.asarray(p).reshape(n_rows, -1) for p in parts]
            return {self.output_column_name: np.concatenate(flat, axis=1)}
        rows = [np.concatenate([np.asarray(p[r]).reshape(-1) for p in parts]) for r in range(n_rows)]
        return {self.output_column_name: rows}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        flat = [ctx.add_node("Flatten", [ctx.value(n)], axis=1)[0] for n in self.input_column_names]  # [N, size]
        (joined,) = ctx.add_node("Concat", flat, axis=1) if len(flat) > 1 else ctx.add_node("Identity", flat)
        ctx.set_value(self.output_column_name, joined)
