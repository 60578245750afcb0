"""Feature selection: ``select_features_based_on_count`` (ML.NET's CountFeatureSelectingEstimator).

A slot is kept when at least ``count`` rows have a non-default value in it: not 0 and not NaN for
numbers and keys, True for bools, not empty for strings. The kept slots form a flat vector, in
their original order, with their slot names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError, ShapeError
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep, column_batches

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["CountFeatureSelectingEstimator", "CountFeatureSelectingTransformer"]

_EXPECTED = "a scalar or a vector of known shape (numbers, bools, strings or keys)"


def _known(ct: TensorType) -> bool:
    return ct.is_known_shape


def _non_default(block: np.ndarray, dtype: DType) -> np.ndarray:
    """Where values are not the default (0, NaN, False, '')."""
    if dtype is DType.STRING:
        return np.vectorize(lambda v: v != "", otypes=[bool])(block) if block.size else np.zeros(block.shape, bool)
    if dtype.is_float:
        return np.asarray((block != 0) & ~np.isnan(block), dtype=bool)
    return np.asarray(block != 0)


@component("select_features_based_on_count", catalog="transforms.feature_selection")
class CountFeatureSelectingEstimator(OneToOneStep, Estimator["CountFeatureSelectingTransformer"]):
    """Keeps the slots of a column that hold at least ``count`` non-default values in the data.

    Before fit the number of kept slots is unknown: a vector input is promised as a vector of
    unknown size (a scalar input stays a scalar).
    """

    def __init__(self, output_column_name: str, input_column_name: str | None = None, *, count: int = 1) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.count = _validation.integer(count, "count", self.step_name, low=1)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.count)

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._input_tensor(input_schema, _known, _EXPECTED)
        if ct.is_scalar:
            return input_schema.with_columns(Column(self.output_column_name, ct))
        return input_schema.with_columns(Column(self.output_column_name, ct.with_shape((None,))))

    def fit(self, data: DataView) -> CountFeatureSelectingTransformer:
        ct = self._input_tensor(data.schema, _known, _EXPECTED)
        size = ct.size or 1
        counts = np.zeros(size, dtype=np.int64)
        for values in column_batches(data, self.input_column_name):
            block = np.asarray(values).reshape(-1, size)
            counts += _non_default(block, ct.dtype).sum(axis=0)
        kept = np.flatnonzero(counts >= self.count)
        if not len(kept):
            raise DataError(
                f"{self.step_name}: no slot of column {self.input_column_name!r} has {self.count} or more non-default "
                f"values (the most any slot has is {int(counts.max(initial=0))}); lower count"
            )
        return CountFeatureSelectingTransformer(self.output_column_name, self.input_column_name, kept, size)


@component("select_features_based_on_count")
class CountFeatureSelectingTransformer(OneToOneStep, Transformer):
    """Keeps the slots ``kept_slots`` (flat indices into an input of ``input_size`` values)."""

    def __init__(
        self, output_column_name: str, input_column_name: str | None, kept_slots: np.ndarray, input_size: int
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        kept = np.array(kept_slots, dtype=np.int64, copy=True).reshape(-1)
        if not len(kept) or kept.min() < 0 or kept.max() >= input_size or np.any(np.diff(kept) <= 0):
            raise _validation.invalid(
                self.step_name, "kept_slots", f"increasing indices in 0..{input_size - 1}", kept.tolist()
            )
        kept.flags.writeable = False
        self._kept = kept
        self.input_size = int(input_size)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self._kept, self.input_size)

    @property
    def kept_slots(self) -> np.ndarray:
        """Flat indices of the input slots that are kept (read-only)."""
        return self._kept

    def _check(self, schema: Schema) -> TensorType:
        ct = self._input_tensor(schema, _known, _EXPECTED)
        if (ct.size or 1) != self.input_size:
            raise ShapeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct} with {ct.size or 1} values "
                f"per row, but the slots were selected from {self.input_size}; refit on data of this shape"
            )
        return ct

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        if ct.is_scalar:
            return input_schema.with_columns(Column(self.output_column_name, ct))
        names = input_schema[self.input_column_name].slot_names
        slots = (
            tuple(names[i] for i in self._kept.tolist())
            if names is not None and len(names) == self.input_size
            else None
        )
        out = ct.with_shape((len(self._kept),))
        return input_schema.with_columns(Column(self.output_column_name, out, slots))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        ct = self._check(input_schema)
        values = np.asarray(columns[self.input_column_name])
        if ct.is_scalar:
            return {self.output_column_name: values}
        return {self.output_column_name: values.reshape(n_rows, -1)[:, self._kept]}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ct = self._check(input_schema)
        x = ctx.value(self.input_column_name)
        if ct.is_scalar:
            ctx.set_value(self.output_column_name, ctx.add_node("Identity", [x])[0])
            return
        flat = ctx.add_node("Flatten", [x], axis=1)[0] if ct.rank > 1 else x
        indices = ctx.add_initializer(self._kept, "kept_slots")
        ctx.set_value(self.output_column_name, ctx.add_node("Gather", [flat, indices], axis=1)[0])
