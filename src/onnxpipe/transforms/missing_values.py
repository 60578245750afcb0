"""Missing values: ``replace_missing_values`` and ``indicate_missing_values`` (ML.NET's
MissingValueReplacing and MissingValueIndicator).

A missing value is NaN in a float column, the empty string in a string column, key 0 in a key
column. Replacement works on float columns (the only ones whose missing values can be replaced
by a statistic).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._view import DataView
from onnxpipe.errors import ShapeError
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.transforms.conversion import (
    OneToOneStep,
    column_batches,
    elementwise,
    export_cast,
    flat_values,
    is_key,
    missing_mask,
)

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "REPLACEMENT_MODES",
    "MissingValueIndicatorTransformer",
    "MissingValueReplacingEstimator",
    "MissingValueReplacingTransformer",
]

ReplacementMode = Literal["default", "mean", "minimum", "maximum", "most_frequent"]
REPLACEMENT_MODES: tuple[str, ...] = ("default", "mean", "minimum", "maximum", "most_frequent")

_FLOATS = "a float column (float16, float32 or float64; NaN is the missing value)"


def _is_float(ct: TensorType) -> bool:
    return ct.dtype.is_float


class _Statistic:
    """Streams one statistic per slot over the non-missing values (``slots`` columns)."""

    def __init__(self, mode: str, slots: int) -> None:
        self.mode = mode
        self.count = np.zeros(slots, dtype=np.int64)
        self.total = np.zeros(slots, dtype=np.float64)
        self.low = np.full(slots, np.inf)
        self.high = np.full(slots, -np.inf)
        self.counters: list[Counter[float]] = [Counter() for _ in range(slots)] if mode == "most_frequent" else []

    def add(self, block: np.ndarray) -> None:
        """``block``: ``[rows, slots]`` values of one batch."""
        present = ~np.isnan(block)
        self.count += present.sum(axis=0)
        wide = block.astype(np.float64)
        if self.mode == "mean":
            with np.errstate(invalid="ignore"):  # inf - inf: the mean is undefined, see result()
                self.total += np.where(present, wide, 0.0).sum(axis=0)
        elif self.mode == "minimum":
            self.low = np.minimum(self.low, np.min(np.where(present, wide, np.inf), axis=0, initial=np.inf))
        elif self.mode == "maximum":
            self.high = np.maximum(self.high, np.max(np.where(present, wide, -np.inf), axis=0, initial=-np.inf))
        elif self.mode == "most_frequent":
            for j, counter in enumerate(self.counters):
                column = block[:, j]
                values, counts = np.unique(column[~np.isnan(column)], return_counts=True)
                counter.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))

    def result(self, dtype: DType) -> np.ndarray:
        """The replacement per slot; 0 where a slot has no value (ML.NET's default)."""
        if self.mode == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                out = self.total / self.count
        elif self.mode == "minimum":
            out = self.low.copy()
        elif self.mode == "maximum":
            out = self.high.copy()
        else:
            # Ties go to the smallest value (as scikit-learn's SimpleImputer).
            out = np.array([min(c, key=lambda v: (-c[v], v)) if c else 0.0 for c in self.counters], dtype=np.float64)
        out[(self.count == 0) | np.isnan(out)] = 0.0
        with np.errstate(over="ignore"):
            return out.astype(dtype.numpy)


@component("replace_missing_values", catalog="transforms")
class MissingValueReplacingEstimator(OneToOneStep, Estimator["MissingValueReplacingTransformer"]):
    """Replaces NaN in a float column by 0 (``"default"``) or by a statistic of the training data:
    ``"mean"``, ``"minimum"``, ``"maximum"`` or ``"most_frequent"`` (ties: the smallest value).

    With ``impute_by_slot`` (the default) each slot of a vector gets its own statistic, otherwise
    one statistic covers every value of the column. A slot without any value is replaced by 0.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        replacement_mode: ReplacementMode = "default",
        impute_by_slot: bool = True,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.replacement_mode = cast(
            "ReplacementMode",
            _validation.choice(replacement_mode, "replacement_mode", self.step_name, REPLACEMENT_MODES),
        )
        self.impute_by_slot = _validation.boolean(impute_by_slot, "impute_by_slot", self.step_name)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.replacement_mode, self.impute_by_slot)

    def _check(self, schema: Schema) -> TensorType:
        ct = self._input_tensor(schema, _is_float, _FLOATS)
        if self.impute_by_slot and self.replacement_mode != "default" and not ct.is_known_shape:
            raise ShapeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}: impute_by_slot needs a known "
                "shape to number the slots; pass impute_by_slot=False for one statistic over all values"
            )
        return ct

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, ct, slots))

    def fit(self, data: DataView) -> MissingValueReplacingTransformer:
        ct = self._check(data.schema)
        if self.replacement_mode == "default":
            values = np.zeros(1, dtype=ct.dtype.numpy)
        else:
            by_slot = self.impute_by_slot and not ct.is_scalar
            slots = (ct.size or 1) if by_slot else 1
            stat = _Statistic(self.replacement_mode, slots)
            for batch in column_batches(data, self.input_column_name):
                flat = flat_values(batch)
                stat.add(flat.reshape(-1, slots))
            values = stat.result(ct.dtype)
        return MissingValueReplacingTransformer(
            self.output_column_name, self.input_column_name, values, replacement_mode=self.replacement_mode
        )


@component("replace_missing_values")
class MissingValueReplacingTransformer(OneToOneStep, Transformer):
    """Replaces NaN by ``replacements``: one value, or one per slot of a known-shape vector."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None,
        replacements: np.ndarray,
        *,
        replacement_mode: str = "default",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        values = np.array(replacements, copy=True).reshape(-1)
        if not len(values) or values.dtype.kind != "f":
            raise _validation.invalid(self.step_name, "replacements", "one or more float values", replacements)
        values.flags.writeable = False
        self._values = values
        self.replacement_mode = replacement_mode

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self._values, self.replacement_mode)

    @property
    def replacements(self) -> np.ndarray:
        """The value replacing NaN: one, or one per slot (read-only)."""
        return self._values

    def _check(self, schema: Schema) -> TensorType:
        ct = self._input_tensor(schema, _is_float, _FLOATS)
        if ct.dtype.numpy != self._values.dtype:
            raise ShapeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}, but the replacements were "
                f"learned from {self._values.dtype} values; refit on data of this type"
            )
        if len(self._values) > 1 and ct.size != len(self._values):
            raise ShapeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}, but {len(self._values)} "
                "per-slot replacements were learned; refit on data of this shape"
            )
        return ct

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, ct, slots))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        values = columns[self.input_column_name]
        if len(self._values) == 1:
            fill = self._values[0]
            return {self.output_column_name: elementwise(values, lambda f: np.where(np.isnan(f), fill, f))}
        arr = np.asarray(values)
        per_slot = self._values.reshape(arr.shape[1:])
        return {self.output_column_name: np.where(np.isnan(arr), per_slot, arr)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ct = self._check(input_schema)
        x = ctx.value(self.input_column_name)
        if ct.dtype is DType.FLOAT32:
            # ai.onnx.ml Imputer works on [N, C] with one value or one per column.
            flat = ctx.add_node("Flatten", [x], axis=1)[0] if ct.rank > 1 else x
            out = ctx.add_node(
                "Imputer",
                [flat],
                domain="ai.onnx.ml",
                imputed_value_floats=[float(v) for v in self._values.tolist()],
                replaced_value_float=float("nan"),
            )[0]
            if ct.rank > 1:  # back to the input's shape, whose row dimensions may be symbolic
                out = ctx.add_node("Reshape", [out, ctx.add_node("Shape", [x])[0]])[0]
        else:
            fill_shape = (1, *ct.fixed_shape) if len(self._values) > 1 else ()
            fill = ctx.add_initializer(self._values.reshape(fill_shape), "replacement")
            out = ctx.add_node("Where", [ctx.add_node("IsNaN", [x])[0], fill, x])[0]
        ctx.set_value(self.output_column_name, out)


# --------------------------------------------------------------------------------------------
# indicate_missing_values


def _has_missing(ct: TensorType) -> bool:
    return ct.dtype.is_float or ct.dtype is DType.STRING or is_key(ct)


@component("indicate_missing_values", catalog="transforms")
class MissingValueIndicatorTransformer(OneToOneStep, TrivialEstimator["MissingValueIndicatorTransformer"]):
    """A bool column of the input's shape: True where the value is missing (NaN, '', key 0)."""

    def __init__(self, output_column_name: str, input_column_name: str | None = None) -> None:
        self._set_columns(output_column_name, input_column_name)

    def _check(self, schema: Schema) -> TensorType:
        return self._input_tensor(
            schema, _has_missing, "a column with missing values: floats (NaN), strings ('') or keys (0)"
        )

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, TensorType(DType.BOOL, ct.shape), slots))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        ct = self._check(input_schema)
        values = columns[self.input_column_name]
        return {self.output_column_name: elementwise(values, lambda f: missing_mask(f, ct.dtype, is_key(ct)))}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ct = self._check(input_schema)
        x = ctx.value(self.input_column_name)
        if ct.dtype.is_float:
            out = ctx.add_node("IsNaN", [x])[0]
        elif ct.dtype is DType.STRING:
            flags = ctx.add_node(
                "LabelEncoder", [x], domain="ai.onnx.ml", keys_strings=[""], values_int64s=[1], default_int64=0
            )[0]
            out = export_cast(ctx, flags, DType.BOOL)
        else:
            out = ctx.add_node("Equal", [x, ctx.add_initializer(np.zeros((), dtype=ct.dtype.numpy), "missing_key")])[0]
        ctx.set_value(self.output_column_name, out)
