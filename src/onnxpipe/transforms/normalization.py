"""Normalizers: rescale float columns slot by slot (learned statistics) or row by row.

ML.NET's ``NormalizationCatalog``, with its options and semantics:

=============================  ==================================================  ===========================
catalog builder                output per value ``x`` (slot-wise unless noted)     learns (per slot)
=============================  ==================================================  ===========================
normalize_min_max              ``(x - min) / (max - min)``;                        min, max
                               fix_zero: ``x / max(|min|, |max|)``
normalize_mean_variance        ``(x - mean) / std``; fix_zero: ``x / rms``;        mean, std
                               use_cdf: ``Phi((x - mean) / std)``
normalize_log_mean_variance    ``(ln x - mean) / std`` of ``ln x``;                mean, std of ``ln x``
                               use_cdf: ``Phi((ln x - mean) / std)``               (over x > 0)
normalize_robust_scaling       ``(x - median) / (q_max - q_min)``                  median, quantiles
normalize_binning              ``bin index / (bins - 1)``, equal-population bins   bin upper bounds
normalize_lp_norm              per row: ``x / ||x||`` (L2, L1, Infinity, std)      nothing
normalize_global_contrast      per row: ``scale * (x - mean) / (L2 norm or std)``  nothing
=============================  ==================================================  ===========================

Rules shared by the family (ML.NET's unless said otherwise):

* Inputs are float32 or float64 scalars or tensors of known shape; every element of a tensor is
  a slot with its own statistics. The output column has the input's type and slot names.
* Arithmetic is float64 (fit accumulations and the transform alike), rounded once to the input
  type at the end; the ONNX export does the same (Cast to double, compute, Cast back), so that
  ONNX Runtime gives the same values.
* Fit statistics ignore NaN (missing) and infinite values; NaN stays NaN in the output (ML.NET's
  CDF normalizer maps NaN to 0; onnxpipe keeps it missing). ``fix_zero`` keeps 0 mapped to 0
  (no offset), preserving sparsity.
* A slot without information (constant, or no finite values) gets ``scale = 0`` and
  ``offset = 0`` as in ML.NET: its finite values become 0, infinities and NaN become NaN. Robust
  scaling is the exception: a zero quantile range gets ``scale = 1`` (as scikit-learn's
  RobustScaler), because a slot can have zero inter-quartile range and still carry outliers.
* ``maximum_example_count`` limits fitting to the first rows of the data, as in ML.NET.

Deliberate differences from ML.NET, for correctness (each documented on its class): ML.NET's
min-max statistics include infinities (one infinite value zeroes the slot); ML.NET's CDF uses an
approximate ``erf`` (error about 1e-4) and maps +inf to 0; ML.NET's ``LogMeanVariance`` with
``useCdf=false`` applies the log statistics to ``x`` rather than ``ln x``; robust scaling uses
exact percentiles (numpy's and scikit-learn's definition); binning places equal-population
boundaries by quantile targets rather than ML.NET's greedy energy search (the same bins whenever
the data allows equal bins).
"""

from __future__ import annotations

import abc
import enum
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues, from_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError, ShapeError
from onnxpipe.runtime._elem_type import ElemType
from onnxpipe.schema import Column, DType, KeyType, Schema, TensorType

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "DEFAULT_MAXIMUM_EXAMPLE_COUNT",
    "AffineNormalizingTransformer",
    "BinNormalizingTransformer",
    "BinningNormalizingEstimator",
    "CdfNormalizingTransformer",
    "GlobalContrastNormalizingTransformer",
    "LogMeanVarianceNormalizingEstimator",
    "LpNormalizingTransformer",
    "MeanVarianceNormalizingEstimator",
    "MinMaxNormalizingEstimator",
    "NormFunction",
    "RobustScalingNormalizingEstimator",
]

DEFAULT_MAXIMUM_EXAMPLE_COUNT = 1_000_000_000
# ML.NET's LpNorm/GlobalContrast: a row whose scale factor falls below this is left unscaled.
MIN_ROW_SCALE = 1e-8
_F64 = np.float64
_FLOAT_TYPES = (DType.FLOAT32, DType.FLOAT64)
_SQRT2 = math.sqrt(2.0)
_FittedT = TypeVar("_FittedT", bound=Transformer)  # what an estimator below fits
_DOUBLE = ElemType.DOUBLE
_ONNX_OF = {DType.FLOAT32: ElemType.FLOAT, DType.FLOAT64: ElemType.DOUBLE}


class NormFunction(enum.StrEnum):
    """The norm ``normalize_lp_norm`` divides each row by (ML.NET's ``LpNormNormalizingEstimatorBase.NormFunction``)."""

    L2 = "L2"
    STANDARD_DEVIATION = "StandardDeviation"
    L1 = "L1"
    INFINITY = "Infinity"

    @classmethod
    def parse(cls, value: NormFunction | str, step: str) -> NormFunction:
        if isinstance(value, NormFunction):
            return value
        if isinstance(value, str):
            for member in cls:
                if value.lower() in (member.value.lower(), member.name.lower()):
                    return member
        raise _validation.invalid(step, "norm", "one of " + ", ".join(repr(m.value) for m in cls), value)


# --------------------------------------------------------------------------------------------
# Argument checks and shared helpers


def _step_name(catalog: str, output: str, input_: str) -> str:
    return f"{catalog}({output})" if output == input_ else f"{catalog}({output} <- {input_})"


def _column_names(catalog: str, output: object, input_: object) -> tuple[str, str]:
    out = _validation.column_name(output, "output_column_name", catalog)
    in_ = _validation.column_name(input_, "input_column_name", catalog, optional="same as the output")
    return out, in_ or out


def _float_column(schema: Schema, name: str, step: str, promise: bool = False) -> tuple[Column, TensorType]:
    """The input column, checked to be float32/float64 with a known shape (with ``promise``, before
    fit, a size that an upstream estimator decides at fit time is accepted)."""
    col = schema.require(name, step)
    ct = col.type
    if not isinstance(ct, TensorType) or ct.dtype not in _FLOAT_TYPES or isinstance(ct, KeyType):
        raise ColumnTypeError(
            f"{step}: input column {name!r} is {ct}; expected float32 or float64 values (a scalar or a "
            "tensor of known shape); convert the column to float32 first"
        )
    if not ct.is_known_shape and not promise:
        raise ShapeError(
            f"{step}: input column {name!r} is {ct}, a vector of unknown size; normalizers need a known size "
            "(the statistics are per slot): declare it with VectorType(size)"
        )
    return col, ct


def _dims(ct: TensorType) -> tuple[int, ...]:
    """The column's ONNX row dimensions (scalars are [N, 1])."""
    return ct.fixed_shape or (1,)


def _readonly(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    view = array.reshape(shape).view()
    view.flags.writeable = False
    return view


def _frozen_array(values: Any, size: int, what: str) -> np.ndarray:
    arr = np.array(values, dtype=_F64).reshape(-1)
    if arr.size != size:
        raise InvalidArgumentError(f"{what} needs {size} values (one per slot), got {arr.size}")
    arr.flags.writeable = False
    return arr


def _slot_batches(data: DataView, column: str, ct: TensorType, limit: int, step: str) -> Iterator[np.ndarray]:
    """The column's values as float64 ``(rows, slots)`` blocks, at most ``limit`` rows in all."""
    size = ct.size or 1
    left = limit
    seen = 0
    for batch in data.batches():
        if left <= 0:
            break
        values = np.asarray(from_arrow(batch.column(column), ct), dtype=_F64)
        block = values.reshape(values.shape[0], size)[:left]
        left -= block.shape[0]
        seen += block.shape[0]
        if block.shape[0]:
            yield block
    if seen == 0:
        raise DataError(f"{step}: cannot learn from empty data: input column {column!r} has no rows")


def _all_slots(data: DataView, column: str, ct: TensorType, limit: int, step: str) -> np.ndarray:
    return np.concatenate(list(_slot_batches(data, column, ct, limit, step)))


class _MeanVar:
    """Count, mean and M2 of the finite values of each slot, merged batch by batch (Chan et al.).

    Values are shifted by each slot's first finite value, so that a constant slot has exactly
    zero variance (not a rounding residue that would become a huge scale).
    """

    def __init__(self, size: int) -> None:
        self.count = np.zeros(size, _F64)
        self.pivot = np.zeros(size, _F64)
        self._shifted_mean = np.zeros(size, _F64)
        self.m2 = np.zeros(size, _F64)

    def add(self, block: np.ndarray) -> None:
        finite = np.isfinite(block)
        new = (self.count == 0) & finite.any(axis=0)
        first = block[np.argmax(finite, axis=0), np.arange(block.shape[1])]
        self.pivot = np.where(new, first, self.pivot)
        nb = finite.sum(axis=0).astype(_F64)
        with np.errstate(all="ignore"):
            shifted = np.where(finite, block - self.pivot, 0.0)
            mb = shifted.sum(axis=0) / np.maximum(nb, 1.0)
            m2b = np.square(np.where(finite, shifted - mb, 0.0)).sum(axis=0)
            total = self.count + nb
            delta = mb - self._shifted_mean
            self._shifted_mean = self._shifted_mean + delta * (nb / np.maximum(total, 1.0))
            self.m2 = self.m2 + m2b + delta * delta * (self.count * nb / np.maximum(total, 1.0))
        self.count = total

    @property
    def mean(self) -> np.ndarray:
        """Mean of the finite values; 0 for slots without any."""
        return np.where(self.count > 0, self.pivot + self._shifted_mean, 0.0)

    @property
    def variance(self) -> np.ndarray:
        """Population variance (ML.NET's ``M2 / n``); 0 for slots without values."""
        return np.where(self.count > 0, self.m2 / np.maximum(self.count, 1.0), 0.0)


def _log_positive(block: np.ndarray) -> np.ndarray:
    """``ln x`` where ``x > 0``, NaN elsewhere (ML.NET's log statistics skip x <= 0)."""
    positive = block > 0
    return np.where(positive, np.log(np.where(positive, block, 1.0)), np.nan)


def _affine_from_mean_var(mv: _MeanVar, fix_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """ML.NET's ``MeanVarUtils``: (offset, scale) per slot; slots without variance get (0, 0)."""
    variance = mv.variance
    ok = (mv.m2 > 0) & (variance > 0)
    with np.errstate(all="ignore"):
        if fix_zero:
            scale = np.where(ok, 1.0 / np.sqrt(variance + mv.mean * mv.mean), 0.0)
            offset = np.zeros_like(scale)
        else:
            scale = np.where(ok, 1.0 / np.sqrt(variance), 0.0)
            offset = np.where(scale != 0, mv.mean, 0.0)
    return offset, scale


# --------------------------------------------------------------------------------------------
# Estimators


class _NormalizingEstimator(Estimator[_FittedT]):
    """Common part of the estimators: column names, schema checks, reading the training values."""

    catalog = "normalize"

    def __init__(self, output_column_name: str, input_column_name: str | None, maximum_example_count: int) -> None:
        self.output_column_name, self.input_column_name = _column_names(
            self.catalog, output_column_name, input_column_name
        )
        self.maximum_example_count = _validation.integer(
            maximum_example_count, "maximum_example_count", self.step_name, low=2
        )

    @property
    def step_name(self) -> str:
        return _step_name(self.catalog, self.output_column_name, self.input_column_name)

    def _options(self) -> tuple[tuple[str, object], ...]:
        """The constructor arguments after the column names (for repr, equality and hashing)."""
        return (("maximum_example_count", self.maximum_example_count),)

    def output_schema(self, input_schema: Schema) -> Schema:
        col, ct = _float_column(input_schema, self.input_column_name, self.step_name, promise=True)
        return input_schema.with_columns(Column(self.output_column_name, ct, col.slot_names))

    def fit(self, data: DataView) -> _FittedT:
        self.output_schema(data.schema)
        _, ct = _float_column(data.schema, self.input_column_name, self.step_name)
        return self._fit(data, ct)

    def _fit(self, data: DataView, ct: TensorType) -> _FittedT:
        raise NotImplementedError

    def _blocks(self, data: DataView, ct: TensorType) -> Iterator[np.ndarray]:
        return _slot_batches(data, self.input_column_name, ct, self.maximum_example_count, self.step_name)

    def __repr__(self) -> str:
        args = [repr(self.output_column_name), repr(self.input_column_name)]
        args += [f"{k}={v!r}" for k, v in self._options()]
        return f"{type(self).__name__}({', '.join(args)})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _NormalizingEstimator)
            and (other.output_column_name, other.input_column_name, other._options())
            == (self.output_column_name, self.input_column_name, self._options())
        )

    def __hash__(self) -> int:
        return hash((type(self), self.output_column_name, self.input_column_name, self._options()))


@component("normalize_min_max", catalog="transforms")
class MinMaxNormalizingEstimator(_NormalizingEstimator["AffineNormalizingTransformer"]):
    """``normalize_min_max``: ``(x - min) * scale`` with ``scale = 1 / (max - min)``.

    ``fix_zero=True`` (the default) keeps 0 at 0: no offset, ``scale = 1 / max(|min|, |max|)``,
    so values land in [-1, 1]. Constant slots get scale 0 (ML.NET). Unlike ML.NET, infinite
    training values are ignored like NaN (in ML.NET one infinity makes the range infinite and the
    whole slot 0).
    """

    catalog = "normalize_min_max"

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        fix_zero: bool = True,
    ) -> None:
        super().__init__(output_column_name, input_column_name, maximum_example_count)
        self.fix_zero = _validation.boolean(fix_zero, "fix_zero", self.step_name)

    def _options(self) -> tuple[tuple[str, object], ...]:
        return (*super()._options(), ("fix_zero", self.fix_zero))

    def _fit(self, data: DataView, ct: TensorType) -> AffineNormalizingTransformer:
        size = ct.size or 1
        low = np.full(size, np.inf)
        high = np.full(size, -np.inf)
        for block in self._blocks(data, ct):
            finite = np.isfinite(block)
            low = np.minimum(low, np.where(finite, block, np.inf).min(axis=0))
            high = np.maximum(high, np.where(finite, block, -np.inf).max(axis=0))
        informative = high > low  # False for constant slots and slots without finite values
        with np.errstate(all="ignore"):
            if self.fix_zero:
                scale = np.where(informative, 1.0 / np.maximum(np.abs(low), np.abs(high)), 0.0)
                offset = np.zeros(size)
            else:
                scale = np.where(informative, 1.0 / (high - low), 0.0)
                offset = np.where(scale != 0, low, 0.0)  # an infinite range gives scale 0 and no offset
        return AffineNormalizingTransformer(
            self.output_column_name, self.input_column_name, ct.fixed_shape, offset, scale, catalog=self.catalog
        )


@component("normalize_mean_variance", catalog="transforms")
class MeanVarianceNormalizingEstimator(
    _NormalizingEstimator["AffineNormalizingTransformer | CdfNormalizingTransformer"]
):
    """``normalize_mean_variance``: ``(x - mean) / std`` (population std of the finite values).

    ``fix_zero=True`` (the default, as in ML.NET) keeps 0 at 0: no offset, and the scale is one
    over the root mean square ``sqrt(var + mean**2)``. ``use_cdf=True`` outputs the normal CDF
    ``Phi((x - mean) / std)`` instead (``fix_zero`` then has no effect); slots without variance
    output 0, -inf gives 0 and +inf gives 1.
    """

    catalog = "normalize_mean_variance"
    _use_log = False

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        fix_zero: bool = True,
        use_cdf: bool = False,
    ) -> None:
        super().__init__(output_column_name, input_column_name, maximum_example_count)
        self.fix_zero = _validation.boolean(fix_zero, "fix_zero", self.step_name)
        self.use_cdf = _validation.boolean(use_cdf, "use_cdf", self.step_name)

    def _options(self) -> tuple[tuple[str, object], ...]:
        return (*super()._options(), ("fix_zero", self.fix_zero), ("use_cdf", self.use_cdf))

    def _fit(self, data: DataView, ct: TensorType) -> AffineNormalizingTransformer | CdfNormalizingTransformer:
        mv = _MeanVar(ct.size or 1)
        for block in self._blocks(data, ct):
            mv.add(_log_positive(block) if self._use_log else block)
        if self.use_cdf:
            stddev = np.where(mv.m2 > 0, np.sqrt(mv.variance), 0.0)
            return CdfNormalizingTransformer(
                self.output_column_name,
                self.input_column_name,
                ct.fixed_shape,
                mv.mean,
                stddev,
                use_log=self._use_log,
                catalog=self.catalog,
            )
        offset, scale = _affine_from_mean_var(mv, self.fix_zero)
        return AffineNormalizingTransformer(
            self.output_column_name,
            self.input_column_name,
            ct.fixed_shape,
            offset,
            scale,
            use_log=self._use_log,
            catalog=self.catalog,
        )


@component("normalize_log_mean_variance", catalog="transforms")
class LogMeanVarianceNormalizingEstimator(MeanVarianceNormalizingEstimator):
    """``normalize_log_mean_variance``: mean and std of ``ln x`` over the positive training values.

    ``use_cdf=True`` (ML.NET's default) outputs ``Phi((ln x - mean) / std)``, with x <= 0 giving 0
    (as in ML.NET) and +inf giving 1. ``use_cdf=False`` (onnxpipe's default) outputs the
    standardized logarithm ``(ln x - mean) / std`` (``fix_zero``: ``ln x / rms``), where x <= 0,
    whose logarithm is undefined, gives NaN. (ML.NET applies the log statistics to ``x`` itself
    when ``useCdf`` is false, which is not a meaningful normalization; onnxpipe applies them to
    ``ln x``.) Both forms export to ONNX.
    """

    catalog = "normalize_log_mean_variance"
    _use_log = True

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        use_cdf: bool = False,
        fix_zero: bool = False,
    ) -> None:
        super().__init__(
            output_column_name,
            input_column_name,
            maximum_example_count=maximum_example_count,
            fix_zero=fix_zero,
            use_cdf=use_cdf,
        )


@component("normalize_robust_scaling", catalog="transforms")
class RobustScalingNormalizingEstimator(_NormalizingEstimator["AffineNormalizingTransformer"]):
    """``normalize_robust_scaling``: ``(x - median) / (q(quantile_max) - q(quantile_min))``.

    Quantiles are percentiles (0..100) of the finite training values with linear interpolation
    (numpy's and scikit-learn's RobustScaler's definition). ``center_data=False`` keeps the
    offset at 0. A zero quantile range gets scale 1, as in scikit-learn.
    """

    catalog = "normalize_robust_scaling"

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        center_data: bool = True,
        quantile_min: float = 25,
        quantile_max: float = 75,
    ) -> None:
        super().__init__(output_column_name, input_column_name, maximum_example_count)
        step = self.step_name
        self.center_data = _validation.boolean(center_data, "center_data", step)
        for name, q in (("quantile_min", quantile_min), ("quantile_max", quantile_max)):
            _validation.number(q, name, step, low=0, high=100)
        if not quantile_min < quantile_max:
            raise InvalidArgumentError(
                f"{step}: quantile_min ({quantile_min}) must be less than quantile_max ({quantile_max}); "
                "both are percentiles from 0 to 100, e.g. 25 and 75 for the inter-quartile range"
            )
        self.quantile_min = quantile_min
        self.quantile_max = quantile_max

    def _options(self) -> tuple[tuple[str, object], ...]:
        return (
            *super()._options(),
            ("center_data", self.center_data),
            ("quantile_min", self.quantile_min),
            ("quantile_max", self.quantile_max),
        )

    def _fit(self, data: DataView, ct: TensorType) -> AffineNormalizingTransformer:
        values = _all_slots(data, self.input_column_name, ct, self.maximum_example_count, self.step_name)
        size = values.shape[1]
        offset = np.zeros(size)
        scale = np.ones(size)
        for j in range(size):
            v = values[:, j]
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue  # nothing known about the slot: leave it as is (offset 0, scale 1)
            lo, median, hi = np.percentile(v, [self.quantile_min, 50.0, self.quantile_max])
            if self.center_data:
                offset[j] = median
            spread = hi - lo
            if spread > 0 and math.isfinite(spread):
                scale[j] = 1.0 / spread
        return AffineNormalizingTransformer(
            self.output_column_name, self.input_column_name, ct.fixed_shape, offset, scale, catalog=self.catalog
        )


@component("normalize_binning", catalog="transforms")
class BinningNormalizingEstimator(_NormalizingEstimator["BinNormalizingTransformer"]):
    """``normalize_binning``: ``bin index / (bins - 1)`` with equal-population bins per slot.

    Each slot's finite training values are split into at most ``maximum_bin_count`` bins holding
    about the same number of values: a slot with no more distinct values than that gets one bin
    per distinct value; otherwise the boundaries are the distinct-value gaps nearest to the
    ``k / bins`` population quantiles. Bin upper bounds are midpoints between neighbouring
    distinct values, the last is +inf; a value falls in the first bin whose upper bound is >= it.
    ``fix_zero=True`` subtracts the value of 0's bin so that 0 stays 0 (outputs in [-1, 1]).
    ML.NET cannot export this normalizer; onnxpipe exports it with comparisons against the
    bounds (cost: rows x slots x bins comparisons).
    """

    catalog = "normalize_binning"

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        fix_zero: bool = True,
        maximum_bin_count: int = 1024,
    ) -> None:
        super().__init__(output_column_name, input_column_name, maximum_example_count)
        self.fix_zero = _validation.boolean(fix_zero, "fix_zero", self.step_name)
        self.maximum_bin_count = _validation.integer(maximum_bin_count, "maximum_bin_count", self.step_name, low=2)

    def _options(self) -> tuple[tuple[str, object], ...]:
        return (*super()._options(), ("fix_zero", self.fix_zero), ("maximum_bin_count", self.maximum_bin_count))

    def _fit(self, data: DataView, ct: TensorType) -> BinNormalizingTransformer:
        values = _all_slots(data, self.input_column_name, ct, self.maximum_example_count, self.step_name)
        bounds = [
            _bin_upper_bounds(values[np.isfinite(values[:, j]), j], self.maximum_bin_count)
            for j in range(values.shape[1])
        ]
        return BinNormalizingTransformer(
            self.output_column_name, self.input_column_name, ct.fixed_shape, bounds, fix_zero=self.fix_zero
        )


def _split_value(a: float, b: float) -> float:
    """A bound strictly between ``a < b`` (their midpoint, or ``b`` when they are neighbouring floats)."""
    mid = a / 2 + b / 2  # halves first: a + b can overflow
    return mid if a < mid else b


def _bin_upper_bounds(values: np.ndarray, max_bins: int) -> np.ndarray:
    """Equal-population bin upper bounds of finite ``values``; the last bound is +inf."""
    distinct, counts = np.unique(values, return_counts=True)
    d = distinct.size
    if d <= max_bins:
        cuts = list(range(1, d))
    else:
        accum = np.concatenate([[0], np.cumsum(counts)])  # accum[p]: values in the first p distinct values
        total = float(accum[-1])
        cuts = []
        prev = 0
        for k in range(1, max_bins):
            target = k * total / max_bins
            p = int(np.searchsorted(accum, target))
            if p > 0 and (p > d or target - accum[p - 1] <= accum[p] - target):
                p -= 1
            # Strictly increasing cuts that leave one distinct value for each bin still to place.
            p = min(max(p, prev + 1), d - (max_bins - k))
            cuts.append(p)
            prev = p
    bounds = [_split_value(float(distinct[p - 1]), float(distinct[p])) for p in cuts]
    return np.array([*bounds, np.inf], dtype=_F64)


# --------------------------------------------------------------------------------------------
# Fitted slot-wise normalizers


class _SlotNormalizer(Transformer):
    """A fitted normalizer of one column: per-slot parameters applied element-wise."""

    def __init__(self, catalog: str, output_column_name: str, input_column_name: str, shape: Sequence[int]) -> None:
        self.catalog = catalog
        self.output_column_name, self.input_column_name = _column_names(catalog, output_column_name, input_column_name)
        self.shape: tuple[int, ...] = tuple(int(d) for d in shape)
        self.size = math.prod(self.shape)

    @property
    def step_name(self) -> str:
        return _step_name(self.catalog, self.output_column_name, self.input_column_name)

    def _input_type(self, schema: Schema) -> tuple[Column, TensorType]:
        col, ct = _float_column(schema, self.input_column_name, self.step_name)
        if ct.fixed_shape != self.shape:
            fitted = TensorType(ct.dtype, self.shape)
            raise ShapeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}, but this normalizer was "
                f"fitted on {fitted} ({self.size} slots); refit it on data of this shape"
            )
        return col, ct

    def output_schema(self, input_schema: Schema) -> Schema:
        col, ct = self._input_type(input_schema)
        return input_schema.with_columns(Column(self.output_column_name, ct, col.slot_names))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.input_column_name]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        _, ct = self._input_type(input_schema)
        values = np.asarray(columns[self.input_column_name])
        flat = values.reshape(n_rows, self.size).astype(_F64)
        with np.errstate(all="ignore"):  # inf * 0 and the like give NaN, as documented
            out = self._apply(flat)
        return {self.output_column_name: out.reshape((n_rows, *self.shape)).astype(ct.dtype.numpy)}

    @abc.abstractmethod
    def _apply(self, flat: np.ndarray) -> np.ndarray:
        """The normalized ``(rows, slots)`` float64 values."""

    # ONNX: the column as double, the step's nodes, the result cast back to the column's type.
    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        _, ct = self._input_type(input_schema)
        x = _to_double(ctx, ctx.value(self.input_column_name), ct)
        y = self._export(ctx, x, ct)
        ctx.set_value(self.output_column_name, _from_double(ctx, y, ct))

    def _export(self, ctx: ExportContext, x: str, ct: TensorType) -> str:
        raise NotImplementedError

    def _param(self, ctx: ExportContext, values: np.ndarray, hint: str, ct: TensorType) -> str:
        """An initializer of per-slot values shaped to broadcast against ``[N, *dims]``."""
        return ctx.add_initializer(np.ascontiguousarray(values, dtype=_F64).reshape(_dims(ct)), hint)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _key(self) -> tuple[object, ...]:
        return (type(self), self.catalog, self.output_column_name, self.input_column_name, self.shape)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _SlotNormalizer)
            and other._key() == self._key()
            and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(other._arrays(), self._arrays(), strict=True))
        )

    def __hash__(self) -> int:
        return hash((*self._key(), *(a.tobytes() for a in self._arrays())))


def _to_double(ctx: ExportContext, value: str, ct: TensorType) -> str:
    return value if ct.dtype is DType.FLOAT64 else ctx.add_node("Cast", [value], to=_DOUBLE)[0]


def _from_double(ctx: ExportContext, value: str, ct: TensorType) -> str:
    return value if ct.dtype is DType.FLOAT64 else ctx.add_node("Cast", [value], to=_ONNX_OF[ct.dtype])[0]


def _fmt(values: np.ndarray) -> str:
    return np.array2string(values, threshold=6, precision=6, separator=", ")


@component()
class AffineNormalizingTransformer(_SlotNormalizer):
    """A fitted affine normalizer: ``(x - offset) * scale`` per slot (``ln x`` for ``use_log``).

    Produced by ``normalize_min_max``, ``normalize_mean_variance``, ``normalize_robust_scaling``
    and ``normalize_log_mean_variance`` (without CDF). ``offset`` and ``scale`` are read-only
    float64 arrays of the column's shape. With ``use_log``, x <= 0 gives NaN.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str,
        shape: Sequence[int],
        offset: Any,
        scale: Any,
        *,
        use_log: bool = False,
        catalog: str = "normalize_affine",
    ) -> None:
        super().__init__(catalog, output_column_name, input_column_name, shape)
        self._offset = _frozen_array(offset, self.size, f"{self.step_name}: offset")
        self._scale = _frozen_array(scale, self.size, f"{self.step_name}: scale")
        self.use_log = _validation.boolean(use_log, "use_log", self.step_name)

    @property
    def offset(self) -> np.ndarray:
        """Subtracted before scaling, per slot (zeros with ``fix_zero``)."""
        return _readonly(self._offset, self.shape)

    @property
    def scale(self) -> np.ndarray:
        return _readonly(self._scale, self.shape)

    def _apply(self, flat: np.ndarray) -> np.ndarray:
        if self.use_log:
            flat = np.log(np.where(flat > 0, flat, np.nan))
        result: np.ndarray = (flat - self._offset) * self._scale
        return result

    def _export(self, ctx: ExportContext, x: str, ct: TensorType) -> str:
        if self.use_log:
            positive = ctx.add_node("Greater", [x, ctx.add_initializer(np.array(0.0), "zero")])[0]
            x = ctx.add_node("Where", [positive, x, ctx.add_initializer(np.array(np.nan), "nan")])[0]
            x = ctx.add_node("Log", [x])[0]
        if np.any(self._offset != 0):
            x = ctx.add_node("Sub", [x, self._param(ctx, self._offset, "offset", ct)])[0]
        return ctx.add_node("Mul", [x, self._param(ctx, self._scale, "scale", ct)])[0]

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self._offset, self._scale)

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self.use_log)

    def __repr__(self) -> str:
        log = ", use_log=True" if self.use_log else ""
        return (
            f"{type(self).__name__}({self.step_name}, shape={self.shape}, offset={_fmt(self._offset)}, "
            f"scale={_fmt(self._scale)}{log})"
        )


@component()
class CdfNormalizingTransformer(_SlotNormalizer):
    """A fitted CDF normalizer: ``Phi((t - mean) / stddev)`` per slot, ``t = x`` or ``ln x``.

    ``Phi`` is the standard normal CDF computed with the exact ``erf`` (ML.NET uses an
    approximation with error about 1e-4). Slots with ``stddev == 0`` give 0; -inf gives 0 and
    +inf gives 1; with ``use_log``, x <= 0 gives 0; NaN stays NaN. The ONNX export computes
    ``Erf`` in float32 (ONNX Runtime has no double kernel), so it matches within about 1e-7.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str,
        shape: Sequence[int],
        mean: Any,
        stddev: Any,
        *,
        use_log: bool = False,
        catalog: str = "normalize_cdf",
    ) -> None:
        super().__init__(catalog, output_column_name, input_column_name, shape)
        self._mean = _frozen_array(mean, self.size, f"{self.step_name}: mean")
        self._stddev = _frozen_array(stddev, self.size, f"{self.step_name}: stddev")
        if not np.all(self._stddev >= 0):
            raise InvalidArgumentError(f"{self.step_name}: stddev must be >= 0 in every slot")
        self.use_log = _validation.boolean(use_log, "use_log", self.step_name)
        self._degenerate = self._stddev <= 0
        self._inv = np.where(self._degenerate, 0.0, 1.0 / (np.where(self._degenerate, 1.0, self._stddev) * _SQRT2))

    @property
    def mean(self) -> np.ndarray:
        """Mean of ``x`` (``ln x`` with ``use_log``) per slot."""
        return _readonly(self._mean, self.shape)

    @property
    def stddev(self) -> np.ndarray:
        """Population standard deviation of ``x`` (``ln x`` with ``use_log``) per slot."""
        return _readonly(self._stddev, self.shape)

    def _apply(self, flat: np.ndarray) -> np.ndarray:
        from scipy import special  # imported when used: it takes a tenth of a second to load

        t = np.log(flat) if self.use_log else flat
        y = 0.5 + 0.5 * special.erf((t - self._mean) * self._inv)
        y = np.where(self._degenerate, 0.0, y)
        if self.use_log:
            y = np.where(flat <= 0, 0.0, y)
        result: np.ndarray = np.where(np.isnan(flat), flat, y)
        return result

    def _export(self, ctx: ExportContext, x: str, ct: TensorType) -> str:
        zero = ctx.add_initializer(np.array(0.0), "zero")
        half = ctx.add_initializer(np.array(0.5), "half")
        t = ctx.add_node("Log", [x])[0] if self.use_log else x
        z = ctx.add_node("Sub", [t, self._param(ctx, self._mean, "mean", ct)])[0]
        z = ctx.add_node("Mul", [z, self._param(ctx, self._inv, "inv_stddev_sqrt2", ct)])[0]
        z = ctx.add_node("Cast", [z], to=ElemType.FLOAT)[0]  # ONNX Runtime's Erf is float32 only
        e = ctx.add_node("Erf", [z])[0]
        e = ctx.add_node("Cast", [e], to=_DOUBLE)[0]
        y = ctx.add_node("Add", [half, ctx.add_node("Mul", [half, e])[0]])[0]
        if np.any(self._degenerate):
            mask = ctx.add_initializer(self._degenerate.reshape(_dims(ct)), "no_variance")
            y = ctx.add_node("Where", [mask, zero, y])[0]
        if self.use_log:
            y = ctx.add_node("Where", [ctx.add_node("LessOrEqual", [x, zero])[0], zero, y])[0]
        return ctx.add_node("Where", [ctx.add_node("IsNaN", [x])[0], x, y])[0]

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self._mean, self._stddev)

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self.use_log)

    def __repr__(self) -> str:
        log = ", use_log=True" if self.use_log else ""
        return (
            f"{type(self).__name__}({self.step_name}, shape={self.shape}, mean={_fmt(self._mean)}, "
            f"stddev={_fmt(self._stddev)}{log})"
        )


@component()
class BinNormalizingTransformer(_SlotNormalizer):
    """A fitted binning normalizer: ``index / max(1, bins - 1) - offset`` per slot.

    ``index`` is the first bin whose upper bound is >= x (the number of finite bounds below x);
    ``offset`` is 0's value when ``fix_zero``. ``upper_bounds`` holds one read-only float64
    array per slot (in row-major slot order), each ending with +inf.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str,
        shape: Sequence[int],
        upper_bounds: Sequence[Any],
        *,
        fix_zero: bool = True,
    ) -> None:
        super().__init__("normalize_binning", output_column_name, input_column_name, shape)
        if len(upper_bounds) != self.size:
            raise InvalidArgumentError(
                f"{self.step_name}: upper_bounds needs {self.size} arrays (one per slot), got {len(upper_bounds)}"
            )
        bounds: list[np.ndarray] = []
        for j, b in enumerate(upper_bounds):
            arr = np.array(b, dtype=_F64).reshape(-1)
            if arr.size == 0 or arr[-1] != np.inf or not np.all(np.diff(arr) > 0):
                raise InvalidArgumentError(
                    f"{self.step_name}: upper_bounds[{j}] must be strictly increasing and end with +inf, got {arr}"
                )
            arr.flags.writeable = False
            bounds.append(arr)
        self._bounds = tuple(bounds)
        self.fix_zero = _validation.boolean(fix_zero, "fix_zero", self.step_name)
        self._den = np.array([max(1, b.size - 1) for b in bounds], dtype=_F64)
        zero_bin = np.array([np.searchsorted(b[:-1], 0.0, side="left") for b in bounds], dtype=_F64)
        self._zero_value = zero_bin / self._den if self.fix_zero else np.zeros(self.size)

    @property
    def upper_bounds(self) -> tuple[np.ndarray, ...]:
        """The bin upper bounds of each slot (the last is +inf)."""
        return self._bounds

    @property
    def bin_counts(self) -> np.ndarray:
        """The number of bins of each slot, shaped like the column."""
        return _readonly(np.array([b.size for b in self._bounds]), self.shape)

    def _apply(self, flat: np.ndarray) -> np.ndarray:
        index = np.empty(flat.shape, dtype=_F64)
        for j, b in enumerate(self._bounds):
            index[:, j] = np.searchsorted(b[:-1], flat[:, j], side="left")  # bounds strictly below x
        y = index / self._den - self._zero_value
        result: np.ndarray = np.where(np.isnan(flat), flat, y)
        return result

    def _export(self, ctx: ExportContext, x: str, ct: TensorType) -> str:
        # index = how many finite bounds are < x: compare [N, S, 1] with the bounds padded to
        # [S, K] by +inf (never < x), then count. NaN compares False and is restored at the end.
        width = max(1, max(b.size - 1 for b in self._bounds))
        table = np.full((self.size, width), np.inf)
        for j, b in enumerate(self._bounds):
            table[j, : b.size - 1] = b[:-1]
        flat = ctx.add_node("Flatten", [x], axis=1)[0]
        axis2 = ctx.add_initializer(np.array([2], dtype=np.int64), "axis2")
        x3 = ctx.add_node("Unsqueeze", [flat, axis2])[0]
        above = ctx.add_node("Greater", [x3, ctx.add_initializer(table, "bin_bounds")])[0]
        count = ctx.add_node("Cast", [above], to=_DOUBLE)[0]
        index = ctx.add_node("ReduceSum", [count, axis2], keepdims=0)[0]
        y = ctx.add_node("Div", [index, ctx.add_initializer(self._den, "bin_den")])[0]
        y = ctx.add_node("Sub", [y, ctx.add_initializer(self._zero_value, "zero_bin")])[0]
        y = ctx.add_node("Where", [ctx.add_node("IsNaN", [flat])[0], flat, y])[0]
        dims = ctx.add_initializer(np.array([-1, *_dims(ct)], dtype=np.int64), "shape")
        return ctx.add_node("Reshape", [y, dims])[0]

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self._bounds

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self.fix_zero, tuple(b.size for b in self._bounds))

    def __repr__(self) -> str:
        counts = [b.size for b in self._bounds]
        return f"{type(self).__name__}({self.step_name}, shape={self.shape}, bins={counts}, fix_zero={self.fix_zero})"


# --------------------------------------------------------------------------------------------
# Row-wise normalizers (nothing to learn)


@component("normalize_lp_norm", catalog="transforms")
class LpNormalizingTransformer(TrivialEstimator["LpNormalizingTransformer"]):
    """``normalize_lp_norm``: each row divided by its norm (ML.NET's LpNormNormalizingEstimator).

    ``y = (x - m) * f`` with ``m`` the row mean when ``ensure_zero_mean`` (else 0) and
    ``f = scale / D``, ``D`` the row's L2 norm, L1 norm, max-abs (Infinity) or population
    standard deviation of ``x - m`` (StandardDeviation always measures around the mean). As in
    ML.NET: ``D == 0`` gives ``f = scale``, and ``f < 1e-8`` gives ``f = 1`` (such rows are left
    unscaled). NaN entries are left out of the row statistics and stay NaN (in ML.NET one NaN
    spoils the whole row). A scalar column is a row of one value.
    """

    catalog = "normalize_lp_norm"

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        norm: NormFunction | str = NormFunction.L2,
        ensure_zero_mean: bool = False,
    ) -> None:
        self._init(output_column_name, input_column_name, norm, ensure_zero_mean, 1.0)

    def _init(
        self, output: str, input_: str | None, norm: NormFunction | str, ensure_zero_mean: bool, scale: float
    ) -> None:
        self.output_column_name, self.input_column_name = _column_names(self.catalog, output, input_)
        step = self.step_name
        self.norm = NormFunction.parse(norm, step)
        self.ensure_zero_mean = _validation.boolean(ensure_zero_mean, "ensure_zero_mean", step)
        self.scale = _validation.number(scale, "scale", step, low=0, low_open=True)

    @property
    def step_name(self) -> str:
        return _step_name(self.catalog, self.output_column_name, self.input_column_name)

    def _options(self) -> tuple[tuple[str, object], ...]:
        return (("norm", self.norm), ("ensure_zero_mean", self.ensure_zero_mean))

    def output_schema(self, input_schema: Schema) -> Schema:
        col, ct = _float_column(input_schema, self.input_column_name, self.step_name)
        return input_schema.with_columns(Column(self.output_column_name, ct, col.slot_names))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.input_column_name]

    @property
    def _needs_mean(self) -> bool:
        return self.ensure_zero_mean or self.norm is NormFunction.STANDARD_DEVIATION

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        _, ct = _float_column(input_schema, self.input_column_name, self.step_name)
        values = np.asarray(columns[self.input_column_name])
        flat = values.reshape(n_rows, ct.size or 1).astype(_F64)
        nan = np.isnan(flat)
        xz = np.where(nan, 0.0, flat)
        with np.errstate(all="ignore"):
            count = np.maximum((~nan).sum(axis=1, keepdims=True).astype(_F64), 1.0)
            mean = xz.sum(axis=1, keepdims=True) / count if self._needs_mean else None
            d = np.where(nan, 0.0, xz - mean) if mean is not None else xz
            reducers: dict[NormFunction, Callable[[], np.ndarray]] = {
                NormFunction.L2: lambda: np.sqrt((d * d).sum(axis=1, keepdims=True)),
                NormFunction.L1: lambda: np.abs(d).sum(axis=1, keepdims=True),
                NormFunction.INFINITY: lambda: np.abs(d).max(axis=1, keepdims=True),
                NormFunction.STANDARD_DEVIATION: lambda: np.sqrt((d * d).sum(axis=1, keepdims=True) / count),
            }
            divisor = reducers[self.norm]()
            factor = np.where(divisor > 0, self.scale / divisor, self.scale)
            factor = np.where(factor < MIN_ROW_SCALE, 1.0, factor)
            centered = flat - mean if self.ensure_zero_mean and mean is not None else flat
            out = centered * factor
        return {self.output_column_name: out.reshape(values.shape).astype(ct.dtype.numpy)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        _, ct = _float_column(input_schema, self.input_column_name, self.step_name)
        x = _to_double(ctx, ctx.value(self.input_column_name), ct)
        flat = ctx.add_node("Flatten", [x], axis=1)[0]  # [N, S]
        zero = ctx.add_initializer(np.array(0.0), "zero")
        one = ctx.add_initializer(np.array(1.0), "one")
        axis1 = ctx.add_initializer(np.array([1], dtype=np.int64), "axis1")

        def reduce(op: str, value: str) -> str:
            if op == "ReduceSum" or ctx.opset >= 18:  # ReduceSum takes axes as an input from opset 13
                return ctx.add_node(op, [value, axis1], keepdims=1)[0]
            return ctx.add_node(op, [value], axes=[1], keepdims=1)[0]

        nan = ctx.add_node("IsNaN", [flat])[0]
        xz = ctx.add_node("Where", [nan, zero, flat])[0]
        mean = None
        count = None
        if self._needs_mean:
            present = ctx.add_node("Cast", [ctx.add_node("Not", [nan])[0]], to=_DOUBLE)[0]
            count = ctx.add_node("Max", [reduce("ReduceSum", present), one])[0]
            mean = ctx.add_node("Div", [reduce("ReduceSum", xz), count])[0]
            d = ctx.add_node("Where", [nan, zero, ctx.add_node("Sub", [xz, mean])[0]])[0]
        else:
            d = xz
        if self.norm in (NormFunction.L2, NormFunction.STANDARD_DEVIATION):
            sq = reduce("ReduceSum", ctx.add_node("Mul", [d, d])[0])
            if self.norm is NormFunction.STANDARD_DEVIATION and count is not None:
                sq = ctx.add_node("Div", [sq, count])[0]
            divisor = ctx.add_node("Sqrt", [sq])[0]
        else:
            op = "ReduceSum" if self.norm is NormFunction.L1 else "ReduceMax"
            divisor = reduce(op, ctx.add_node("Abs", [d])[0])
        scale = ctx.add_initializer(np.array(self.scale), "scale")
        factor = ctx.add_node(
            "Where",
            [ctx.add_node("Greater", [divisor, zero])[0], ctx.add_node("Div", [scale, divisor])[0], scale],
        )[0]
        small = ctx.add_node("Less", [factor, ctx.add_initializer(np.array(MIN_ROW_SCALE), "min_scale")])[0]
        factor = ctx.add_node("Where", [small, one, factor])[0]
        centered = ctx.add_node("Sub", [flat, mean])[0] if self.ensure_zero_mean and mean is not None else flat
        y = ctx.add_node("Mul", [centered, factor])[0]
        dims = ctx.add_initializer(np.array([-1, *_dims(ct)], dtype=np.int64), "shape")
        y = ctx.add_node("Reshape", [y, dims])[0]
        ctx.set_value(self.output_column_name, _from_double(ctx, y, ct))

    def __repr__(self) -> str:
        args = [repr(self.output_column_name), repr(self.input_column_name)]
        args += [f"{k}={v.value if isinstance(v, NormFunction) else v!r}" for k, v in self._options()]
        return f"{type(self).__name__}({', '.join(args)})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, LpNormalizingTransformer)
            and (other.output_column_name, other.input_column_name, other.norm, other.ensure_zero_mean, other.scale)
            == (self.output_column_name, self.input_column_name, self.norm, self.ensure_zero_mean, self.scale)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.output_column_name, self.input_column_name, self.norm, self.scale))


@component("normalize_global_contrast", catalog="transforms")
class GlobalContrastNormalizingTransformer(LpNormalizingTransformer):
    """``normalize_global_contrast``: ``scale * (x - m) / D`` per row (ML.NET's GCN).

    ``m`` is the row mean when ``ensure_zero_mean`` (the default), ``D`` the row's L2 norm of
    ``x - m``, or its population standard deviation with ``ensure_unit_standard_deviation``. The
    zero-divisor, tiny-factor and NaN rules are those of :class:`LpNormalizingTransformer`.
    """

    catalog = "normalize_global_contrast"

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        ensure_zero_mean: bool = True,
        ensure_unit_standard_deviation: bool = False,
        scale: float = 1.0,
    ) -> None:
        unit_std = _validation.boolean(
            ensure_unit_standard_deviation,
            "ensure_unit_standard_deviation",
            _step_name(self.catalog, str(output_column_name), str(input_column_name or output_column_name)),
        )
        norm = NormFunction.STANDARD_DEVIATION if unit_std else NormFunction.L2
        self._init(output_column_name, input_column_name, norm, ensure_zero_mean, scale)

    @property
    def ensure_unit_standard_deviation(self) -> bool:
        return self.norm is NormFunction.STANDARD_DEVIATION

    def _options(self) -> tuple[tuple[str, object], ...]:
        return (
            ("ensure_zero_mean", self.ensure_zero_mean),
            ("ensure_unit_standard_deviation", self.ensure_unit_standard_deviation),
            ("scale", self.scale),
        )
