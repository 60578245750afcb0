"""The normalizer family: conformance, numbers against independent computations, ONNX, errors."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from scipy import stats
from sklearn import preprocessing

import onnxpipe as op
from onnxpipe import LoadColumn, VectorType
from onnxpipe.core import Estimator, Transformer
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataError,
    InvalidArgumentError,
    ShapeError,
)
from onnxpipe.export import convert_to_onnx
from onnxpipe.testing import check_component
from onnxpipe.transforms.normalization import (
    AffineNormalizingTransformer,
    BinningNormalizingEstimator,
    BinNormalizingTransformer,
    CdfNormalizingTransformer,
    GlobalContrastNormalizingTransformer,
    LogMeanVarianceNormalizingEstimator,
    LpNormalizingTransformer,
    MeanVarianceNormalizingEstimator,
    MinMaxNormalizingEstimator,
    NormFunction,
    RobustScalingNormalizingEstimator,
)
from onnxpipe.transforms.onnx_model import OnnxTransformer

ctx = op.MLContext(seed=0)
NAN, INF = float("nan"), float("inf")


# --------------------------------------------------------------------------------------------
# Data built here: every column kind the family accepts, with the awkward values


@dataclass
class Mixed:
    f32: float  # float32 scalar: signed, finite (see the xfail note below)
    f64: np.float64  # float64 scalar: NaN, +inf, negatives
    v32: Annotated[npt.NDArray[np.float32], VectorType(4)]  # NaN, +-inf, a constant slot
    v64: Annotated[npt.NDArray[np.float64], VectorType(2, 2)]  # a 2-d tensor, NaN, inf, a constant-zero slot
    name: str


def _mixed_rows(n: int = 10) -> list[Mixed]:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        v32 = (rng.normal(size=4) * [3, 2, 1, 5] + [1, -2, 0, 0.5]).astype(np.float32)
        v32[2] = 5.0  # constant slot
        v64 = rng.normal(size=(2, 2)) * 4 - 1
        v64[1, 1] = 0.0  # constant-zero slot
        f64 = float(rng.normal() * 10)
        if i == 2:
            v32[0], v64[0, 1], f64 = NAN, NAN, NAN
        if i == 5:
            v32[1], v64[1, 0], f64 = INF, INF, INF
        if i == 7:
            v32[3] = -INF
        rows.append(Mixed(float(rng.normal() * 2 + 0.5), np.float64(f64), v32, v64, f"r{i}"))
    return rows


@pytest.fixture(scope="module")
def mixed() -> op.DataView:
    return ctx.data.load_from_enumerable(_mixed_rows(), Mixed)


Builder = Callable[[str, str], Estimator]

NORMALIZERS: dict[str, Builder] = {
    "min_max": lambda o, i: MinMaxNormalizingEstimator(o, i),
    "min_max_no_fix_zero": lambda o, i: MinMaxNormalizingEstimator(o, i, fix_zero=False),
    "mean_variance": lambda o, i: MeanVarianceNormalizingEstimator(o, i),
    "mean_variance_no_fix_zero": lambda o, i: MeanVarianceNormalizingEstimator(o, i, fix_zero=False),
    "mean_variance_cdf": lambda o, i: MeanVarianceNormalizingEstimator(o, i, use_cdf=True),
    "log_mean_variance": lambda o, i: LogMeanVarianceNormalizingEstimator(o, i),
    "log_mean_variance_fix_zero": lambda o, i: LogMeanVarianceNormalizingEstimator(o, i, fix_zero=True),
    "log_mean_variance_cdf": lambda o, i: LogMeanVarianceNormalizingEstimator(o, i, use_cdf=True),
    "robust_scaling": lambda o, i: RobustScalingNormalizingEstimator(o, i),
    "robust_scaling_10_90_uncentered": lambda o, i: RobustScalingNormalizingEstimator(
        o, i, center_data=False, quantile_min=10, quantile_max=90
    ),
    "binning": lambda o, i: BinningNormalizingEstimator(o, i, maximum_bin_count=4),
    "binning_no_fix_zero": lambda o, i: BinningNormalizingEstimator(o, i, fix_zero=False),
    "lp_norm_l2": lambda o, i: LpNormalizingTransformer(o, i),
    "lp_norm_l1": lambda o, i: LpNormalizingTransformer(o, i, norm="L1"),
    "lp_norm_infinity_zero_mean": lambda o, i: LpNormalizingTransformer(o, i, norm="Infinity", ensure_zero_mean=True),
    "lp_norm_std": lambda o, i: LpNormalizingTransformer(o, i, norm=NormFunction.STANDARD_DEVIATION),
    "global_contrast": lambda o, i: GlobalContrastNormalizingTransformer(o, i),
    "global_contrast_std_scale": lambda o, i: GlobalContrastNormalizingTransformer(
        o, i, ensure_unit_standard_deviation=True, scale=2.0
    ),
    "global_contrast_no_mean": lambda o, i: GlobalContrastNormalizingTransformer(o, i, ensure_zero_mean=False),
}


def _cases() -> list[object]:
    return [
        pytest.param(name, column, id=f"{name}-{column}")
        for name in NORMALIZERS
        for column in ("f32", "f64", "v32", "v64")
    ]


@pytest.mark.parametrize(("name", "column"), _cases())
def test_conformance(name: str, column: str, mixed: op.DataView) -> None:
    # In place for the vector columns of every other normalizer, to a new column otherwise.
    output = column if (column.startswith("v") and len(name) % 2) else f"{column}_n"
    model = check_component(NORMALIZERS[name](output, column), mixed, exportable=True)
    out = model.transform(mixed)
    assert out.schema[output].type == mixed.schema[column].type  # float32 in -> float32 out, shape kept
    values = np.asarray(out.column(output), dtype=np.float64)
    source = np.asarray(mixed.column(column), dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(values[np.isnan(source)]), True)  # missing stays missing


def _onnx_values(model: Transformer, data: op.DataView, column: str, opset: int | None = None) -> np.ndarray:
    proto = convert_to_onnx(model, data.schema, opset=opset)
    return np.asarray(OnnxTransformer(model_bytes=proto.SerializeToString()).transform(data).column(column))


def test_float32_scalar_nan_infinities_and_cdf() -> None:
    """Float32 scalars with NaN, infinities and the float32 Erf of the ONNX CDF, checked value by value."""

    @dataclass
    class One:
        x: float

    xs = [0.5, -1.0, 2.0, NAN, INF, 0.0, 4.0, -INF, 1.5]
    data = ctx.data.load_from_enumerable([One(v) for v in xs], One)
    x = np.array(xs, dtype=np.float64)
    for name in NORMALIZERS:
        model = NORMALIZERS[name]("y", "x").fit(data)
        got = np.asarray(model.transform(data).column("y"))
        assert got.dtype == np.float32
        assert np.isnan(got[3]), name  # NaN stays NaN
        rows = [np.asarray(model.transform(data.take(k + 1)).column("y"))[k] for k in range(len(xs))]
        np.testing.assert_allclose(rows, got, rtol=1e-6, equal_nan=True, err_msg=name)
        np.testing.assert_allclose(_onnx_values(model, data, "y"), got, rtol=1e-5, atol=1e-6, equal_nan=True)
    positive = x[np.isfinite(x) & (x > 0)]
    logs = np.log(positive)
    model = LogMeanVarianceNormalizingEstimator("y", "x").fit(data)
    expected = (np.log(np.where(x > 0, x, np.nan)) - logs.mean()) / logs.std()
    np.testing.assert_allclose(model.transform(data).column("y"), expected, rtol=1e-6, equal_nan=True)
    cdf = LogMeanVarianceNormalizingEstimator("y", "x", use_cdf=True).fit(data).transform(data).column("y")
    expected = stats.norm.cdf(np.log(np.where(x > 0, x, 1.0)), logs.mean(), logs.std())
    expected = np.where(x <= 0, 0.0, np.where(x == INF, 1.0, expected))
    np.testing.assert_allclose(cdf, np.where(np.isnan(x), np.nan, expected), rtol=1e-6, equal_nan=True)


# --------------------------------------------------------------------------------------------
# Numbers against independent computations


@dataclass
class Vec3:
    x: Annotated[npt.NDArray[np.float64], VectorType(3)]


def _vec3(values: np.ndarray) -> op.DataView:
    return ctx.data.load_from_enumerable([Vec3(np.asarray(r, dtype=np.float64)) for r in values], Vec3)


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    """50 x 3 float64: signed values of different scales, a few NaN, no infinities (scikit-learn rejects them)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3)) * [1.0, 10.0, 0.1] + [0.0, -5.0, 3.0]
    x[[4, 17], 0] = np.nan
    x[9, 2] = np.nan
    return x


def _fit_transform(est: Estimator, values: np.ndarray) -> tuple[Transformer, np.ndarray]:
    data = _vec3(values)
    model = est.fit(data)
    return model, np.asarray(model.transform(data).column("x"))


def test_min_max_matches_scikit_learn(table: np.ndarray) -> None:
    model, got = _fit_transform(MinMaxNormalizingEstimator("x", fix_zero=False), table)
    np.testing.assert_allclose(got, preprocessing.MinMaxScaler().fit_transform(table), rtol=1e-12, atol=1e-15)
    assert isinstance(model, AffineNormalizingTransformer)
    np.testing.assert_array_equal(model.offset, np.nanmin(table, axis=0))
    np.testing.assert_allclose(model.scale, 1 / (np.nanmax(table, axis=0) - np.nanmin(table, axis=0)))
    # fix_zero (the default): 0 stays 0, no offset, x / max|x| -- scikit-learn's MaxAbsScaler.
    model, got = _fit_transform(MinMaxNormalizingEstimator("x"), table)
    np.testing.assert_allclose(got, preprocessing.MaxAbsScaler().fit_transform(table), rtol=1e-12)
    np.testing.assert_array_equal(model.offset, [0, 0, 0])  # type: ignore[attr-defined]
    assert np.nanmax(np.abs(got)) == 1.0


def test_mean_variance_matches_scikit_learn(table: np.ndarray) -> None:
    # StandardScaler: population std, NaN ignored and kept -- ML.NET's fix_zero=False.
    model, got = _fit_transform(MeanVarianceNormalizingEstimator("x", fix_zero=False), table)
    np.testing.assert_allclose(got, preprocessing.StandardScaler().fit_transform(table), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.offset, np.nanmean(table, axis=0), rtol=1e-12)  # type: ignore[attr-defined]
    # fix_zero (ML.NET's default): no centring, divide by the root mean square sqrt(var + mean^2).
    _, got = _fit_transform(MeanVarianceNormalizingEstimator("x"), table)
    np.testing.assert_allclose(got, table / np.sqrt(np.nanmean(table**2, axis=0)), rtol=1e-10)
    # use_cdf: the normal CDF with the learned mean and population std.
    model, got = _fit_transform(MeanVarianceNormalizingEstimator("x", use_cdf=True), table)
    assert isinstance(model, CdfNormalizingTransformer)
    np.testing.assert_allclose(model.stddev, np.nanstd(table, axis=0), rtol=1e-12)
    expected = stats.norm.cdf(table, np.nanmean(table, axis=0), np.nanstd(table, axis=0))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


def test_log_mean_variance_standardizes_the_logarithm(table: np.ndarray) -> None:
    positive = np.abs(table) + 0.1
    logs = np.log(positive)
    model, got = _fit_transform(LogMeanVarianceNormalizingEstimator("x"), positive)
    np.testing.assert_allclose(got, preprocessing.StandardScaler().fit_transform(logs), rtol=1e-10, atol=1e-12)
    assert model.use_log  # type: ignore[attr-defined]
    _, got = _fit_transform(LogMeanVarianceNormalizingEstimator("x", use_cdf=True), positive)
    expected = stats.norm.cdf(logs, np.nanmean(logs, axis=0), np.nanstd(logs, axis=0))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
    # The statistics come from the positive values only; x <= 0 is 0 with the CDF and NaN without.
    signed = positive.copy()
    signed[:5, 1] = [0.0, -1.0, -2.0, 0.0, -3.0]
    model, got = _fit_transform(LogMeanVarianceNormalizingEstimator("x", use_cdf=True), signed)
    np.testing.assert_allclose(model.mean[1], np.log(signed[5:, 1]).mean(), rtol=1e-12)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got[:5, 1], 0.0)
    _, got = _fit_transform(LogMeanVarianceNormalizingEstimator("x"), signed)
    assert np.isnan(got[:5, 1]).all() and np.isfinite(got[5:, 1]).all()


@pytest.mark.parametrize(("center", "q"), [(True, (25, 75)), (False, (10, 90)), (True, (0, 100))])
def test_robust_scaling_matches_scikit_learn(table: np.ndarray, center: bool, q: tuple[int, int]) -> None:
    est = RobustScalingNormalizingEstimator("x", center_data=center, quantile_min=q[0], quantile_max=q[1])
    model, got = _fit_transform(est, table)
    sk = preprocessing.RobustScaler(with_centering=center, quantile_range=q)
    np.testing.assert_allclose(got, sk.fit_transform(table), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.offset, sk.center_ if center else 0.0)  # type: ignore[attr-defined]
    np.testing.assert_allclose(model.scale, 1 / sk.scale_)  # type: ignore[attr-defined]


def test_binning_matches_quantile_kbins_on_equal_bins() -> None:
    # 100 distinct values, 4 bins: both put 25 values per bin. scikit-learn's edges are the
    # percentiles (24.75, ...), onnxpipe's the midpoints of the gaps (24.5, ...), so the two only
    # differ for unseen values inside a gap; its ordinal bin k is onnxpipe's k / (bins - 1).
    values = np.tile(np.arange(100.0)[:, None], (1, 3))
    values[:, 1] = values[:, 1] * 0.5 - 20  # negative values too
    model, got = _fit_transform(BinningNormalizingEstimator("x", fix_zero=False, maximum_bin_count=4), values)
    kb = preprocessing.KBinsDiscretizer(n_bins=4, encode="ordinal", strategy="quantile", quantile_method="linear")
    np.testing.assert_array_equal(got, kb.fit_transform(values) / 3)
    assert isinstance(model, BinNormalizingTransformer)
    np.testing.assert_array_equal(model.upper_bounds[0], [24.5, 49.5, 74.5, INF])
    np.testing.assert_array_equal(model.bin_counts, [4, 4, 4])


def test_binning_small_cardinality_fix_zero_and_specials() -> None:
    # At most maximum_bin_count distinct values: one bin per value, bounds at the midpoints.
    col = np.array([-2.0, -1, 0, 1, 2, 2, NAN, INF, -INF, 0.5])
    values = np.stack([col, np.full_like(col, 3.0), np.abs(col)], axis=1)
    model, got = _fit_transform(BinningNormalizingEstimator("x"), values)
    assert isinstance(model, BinNormalizingTransformer)
    np.testing.assert_array_equal(model.upper_bounds[0], [-1.5, -0.5, 0.25, 0.75, 1.5, INF])
    np.testing.assert_array_equal(model.upper_bounds[1], [INF])  # constant slot: one bin
    # fix_zero: 0's bin (index 2 of 6 -> 0.4) is subtracted, so 0 -> 0; -inf/+inf go to the end bins.
    expected = np.array([0, 1, 2, 4, 5, 5, NAN, 5, 0, 3]) / 5 - 0.4
    np.testing.assert_allclose(got[:, 0], expected, atol=1e-15)
    np.testing.assert_array_equal(got[[0, 1, 2, 3, 4, 5, 7, 8, 9], 1], 0.0)
    _, got = _fit_transform(BinningNormalizingEstimator("x", fix_zero=False), values)
    np.testing.assert_allclose(got[:, 0], np.array([0, 1, 2, 4, 5, 5, NAN, 5, 0, 3]) / 5, atol=1e-15)


def test_binning_population_is_balanced() -> None:
    rng = np.random.default_rng(11)
    values = np.round(rng.exponential(size=(2000, 3)) * 50)  # many ties, skewed
    _, got = _fit_transform(BinningNormalizingEstimator("x", fix_zero=False, maximum_bin_count=10), values)
    for j in range(3):
        counts = np.unique(got[:, j], return_counts=True)[1]
        assert len(counts) == 10  # more distinct values than bins: exactly maximum_bin_count bins
        assert counts.max() <= 2.5 * len(values) / 10  # roughly equal populations despite the ties


def test_lp_norms_match_scikit_learn(table: np.ndarray) -> None:
    finite = np.nan_to_num(table)
    for norm, sk in (("L2", "l2"), ("L1", "l1"), ("Infinity", "max")):
        _, got = _fit_transform(LpNormalizingTransformer("x", norm=norm), finite)
        np.testing.assert_allclose(got, preprocessing.normalize(finite, norm=sk), rtol=1e-12, err_msg=norm)
    centered = finite - finite.mean(axis=1, keepdims=True)
    _, got = _fit_transform(LpNormalizingTransformer("x", norm="L2", ensure_zero_mean=True), finite)
    np.testing.assert_allclose(got, preprocessing.normalize(centered), rtol=1e-12, atol=1e-15)
    # StandardDeviation measures around the mean even when the output is not centred (ML.NET).
    _, got = _fit_transform(LpNormalizingTransformer("x", norm="StandardDeviation"), finite)
    np.testing.assert_allclose(got, finite / finite.std(axis=1, keepdims=True), rtol=1e-12)


def test_global_contrast(table: np.ndarray) -> None:
    finite = np.nan_to_num(table)
    centered = finite - finite.mean(axis=1, keepdims=True)
    _, got = _fit_transform(GlobalContrastNormalizingTransformer("x"), finite)
    np.testing.assert_allclose(got, centered / np.linalg.norm(centered, axis=1, keepdims=True), rtol=1e-12)
    est = GlobalContrastNormalizingTransformer("x", ensure_unit_standard_deviation=True, scale=3.0)
    _, got = _fit_transform(est, finite)
    np.testing.assert_allclose(got, 3 * centered / centered.std(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(got.std(axis=1), 3.0, rtol=1e-12)


def test_row_norm_special_values() -> None:
    rows = np.array(
        [
            [3.0, NAN, 4.0],  # NaN left out of the norm, kept as NaN
            [0.0, 0.0, 0.0],  # zero norm: factor = scale, zeros stay zeros
            [3e9, 4e9, 0.0],  # factor 2e-10 < 1e-8: ML.NET leaves the row unscaled
            [NAN, NAN, NAN],
            [1.0, INF, 1.0],  # infinite norm: factor 0 < 1e-8, row unscaled
        ]
    )
    _, got = _fit_transform(LpNormalizingTransformer("x"), rows)
    np.testing.assert_allclose(got[0], [0.6, NAN, 0.8])
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_array_equal(got[2], rows[2])
    assert np.isnan(got[3]).all()
    np.testing.assert_array_equal(got[4], rows[4])
    _, got = _fit_transform(GlobalContrastNormalizingTransformer("x", ensure_unit_standard_deviation=True), rows)
    np.testing.assert_allclose(got[0], [-1.0, NAN, 1.0])  # mean and std over the present values


def test_constant_and_missing_slots_become_zero() -> None:
    # ML.NET: a slot without information gets scale 0 and offset 0: finite -> 0, inf/NaN -> NaN.
    values = np.array([[7.0, NAN, 1.0], [7.0, NAN, 2.0], [7.0, NAN, 3.0], [7.0, NAN, 4.0]])
    test = _vec3(np.array([[7.0, 5.0, 2.0], [-1.0, NAN, 2.0], [INF, 1.0, INF]]))
    for est in (
        MinMaxNormalizingEstimator("x"),
        MinMaxNormalizingEstimator("x", fix_zero=False),
        MeanVarianceNormalizingEstimator("x"),
        MeanVarianceNormalizingEstimator("x", fix_zero=False),
        LogMeanVarianceNormalizingEstimator("x"),
    ):
        model = est.fit(_vec3(values))
        np.testing.assert_array_equal(model.scale[:2], 0.0, err_msg=repr(est))  # type: ignore[attr-defined]
        got = np.asarray(model.transform(test).column("x"))
        np.testing.assert_array_equal(got[0, :2], 0.0)
        assert np.isnan(got[1, 1]) and np.isnan(got[2, 0])  # NaN stays NaN; inf * 0 is NaN
        assert got[2, 2] == INF  # an infinite value in an informative slot stays infinite
    model = MeanVarianceNormalizingEstimator("x", use_cdf=True).fit(_vec3(values))
    got = np.asarray(model.transform(test).column("x"))
    np.testing.assert_array_equal(got[:, 0], 0.0)  # no variance: 0 (ML.NET)
    assert got[2, 2] == 1.0 and np.isnan(got[1, 1])
    # Robust scaling: a zero quantile range gets scale 1 (scikit-learn), so outliers survive.
    spiky = np.array([[0.0, 1, 1], [0, 2, 1], [0, 3, 1], [0, 4, 1], [50, 5, 1]])
    model, got = _fit_transform(RobustScalingNormalizingEstimator("x"), spiky)
    np.testing.assert_array_equal(model.scale[[0, 2]], 1.0)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got[:, 0], [0, 0, 0, 0, 50])
    np.testing.assert_array_equal(got[:, 2], 0.0)


def test_fit_ignores_infinities_and_nan() -> None:
    values = np.array([[1.0, 0, 0], [3.0, 1, 1], [INF, 2, 2], [-INF, 3, 3], [NAN, 4, 4]])
    model, got = _fit_transform(MinMaxNormalizingEstimator("x", fix_zero=False), values)
    np.testing.assert_array_equal(model.offset, [1.0, 0.0, 0.0])  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got[:, 0], [0.0, 1.0, INF, -INF, NAN])
    model = MeanVarianceNormalizingEstimator("x", fix_zero=False).fit(_vec3(values))
    np.testing.assert_array_equal(model.offset, [2.0, 2.0, 2.0])  # type: ignore[attr-defined]


def test_maximum_example_count_uses_the_first_rows() -> None:
    values = np.arange(30.0).reshape(10, 3)
    model = MinMaxNormalizingEstimator("x", fix_zero=False, maximum_example_count=4).fit(_vec3(values))
    np.testing.assert_array_equal(model.offset, [0, 1, 2])  # type: ignore[attr-defined]
    np.testing.assert_array_equal(model.scale, [1 / 9] * 3)  # type: ignore[attr-defined]
    # Across Arrow batches too.
    data = ctx.data.load_from_enumerable([Vec3(r) for r in values], Vec3, batch_size=3)
    model = MinMaxNormalizingEstimator("x", fix_zero=False, maximum_example_count=4).fit(data)
    np.testing.assert_array_equal(model.offset, [0, 1, 2])  # type: ignore[attr-defined]


def test_batches_give_the_same_statistics(table: np.ndarray) -> None:
    whole = _vec3(table)
    batched = ctx.data.load_from_enumerable([Vec3(r) for r in table], Vec3, batch_size=7)
    for est in (MeanVarianceNormalizingEstimator("x", fix_zero=False), MinMaxNormalizingEstimator("x")):
        a, b = est.fit(whole), est.fit(batched)
        np.testing.assert_allclose(a.offset, b.offset, rtol=1e-13)  # type: ignore[attr-defined]
        np.testing.assert_allclose(a.scale, b.scale, rtol=1e-13)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Learned parameters, immutability, equality


def test_learned_parameters_are_read_only(mixed: op.DataView) -> None:
    model = MinMaxNormalizingEstimator("v64_n", "v64", fix_zero=False).fit(mixed)
    assert isinstance(model, AffineNormalizingTransformer)
    assert model.offset.shape == (2, 2) and model.scale.dtype == np.float64
    assert model.scale[1, 1] == 0.0  # the constant-zero slot
    with pytest.raises(ValueError, match="read-only"):
        model.scale[0, 0] = 1.0
    with pytest.raises(AttributeError, match="immutable"):
        model.use_log = True  # type: ignore[misc]
    scalar = MinMaxNormalizingEstimator("y", "f32").fit(mixed)
    assert scalar.offset.shape == () and float(scalar.offset) == 0.0  # type: ignore[attr-defined]
    est = MinMaxNormalizingEstimator("y", "f32")
    with pytest.raises(AttributeError, match="immutable"):
        est.fix_zero = False  # type: ignore[misc]
    bins = BinningNormalizingEstimator("y", "v32").fit(mixed)
    assert isinstance(bins, BinNormalizingTransformer)
    with pytest.raises(ValueError, match="read-only"):
        bins.upper_bounds[0][0] = 0.0


def test_equality_repr_pickle(mixed: op.DataView) -> None:
    est = RobustScalingNormalizingEstimator("out", "v32", quantile_min=5, quantile_max=95)
    assert est == RobustScalingNormalizingEstimator("out", "v32", quantile_min=5, quantile_max=95)
    assert est != RobustScalingNormalizingEstimator("out", "v32")
    assert hash(est) == hash(RobustScalingNormalizingEstimator("out", "v32", quantile_min=5, quantile_max=95))
    assert repr(est) == (
        "RobustScalingNormalizingEstimator('out', 'v32', maximum_example_count=1000000000, center_data=True, "
        "quantile_min=5, quantile_max=95)"
    )
    assert est.step_name == "normalize_robust_scaling(out <- v32)"
    assert MinMaxNormalizingEstimator("Features").step_name == "normalize_min_max(Features)"
    for e in (est, BinningNormalizingEstimator("o", "v64"), MeanVarianceNormalizingEstimator("o", "v64", use_cdf=True)):
        model = e.fit(mixed)
        assert model == e.fit(mixed) and hash(model) == hash(e.fit(mixed))
        assert model == pickle.loads(pickle.dumps(model)) == copy.deepcopy(model)
        assert model.step_name == e.step_name and model.step_name in repr(model)
    lp = LpNormalizingTransformer("o", "v32", norm="l1")
    assert lp.norm is NormFunction.L1 and lp == LpNormalizingTransformer("o", "v32", norm=NormFunction.L1)
    assert repr(lp) == "LpNormalizingTransformer('o', 'v32', norm='L1', ensure_zero_mean=False)"
    assert lp.fit(mixed) is lp  # nothing to learn
    gcn = GlobalContrastNormalizingTransformer("o", "v32", ensure_unit_standard_deviation=True)
    assert gcn.ensure_unit_standard_deviation and gcn.norm is NormFunction.STANDARD_DEVIATION
    assert gcn != LpNormalizingTransformer("o", "v32", norm="StandardDeviation", ensure_zero_mean=True)


# --------------------------------------------------------------------------------------------
# ONNX specifics


def test_float64_stays_float64_in_the_graph(mixed: op.DataView) -> None:
    model = MeanVarianceNormalizingEstimator("out", "v64", fix_zero=False).fit(mixed)
    proto = convert_to_onnx(model, mixed.schema)
    out = next(o for o in proto.graph.output if o.name == "out")
    assert out.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert [n.op_type for n in proto.graph.node if n.op_type != "Identity"] == ["Sub", "Mul"]
    model32 = MinMaxNormalizingEstimator("out", "v32").fit(mixed)  # fix_zero: no Sub
    ops = [n.op_type for n in convert_to_onnx(model32, mixed.schema).graph.node if n.op_type != "Identity"]
    assert ops == ["Cast", "Mul", "Cast"]  # computed in double, like transform, then rounded once


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_row_norms_at_every_opset(opset: int, mixed: op.DataView) -> None:
    for norm in NormFunction:
        model = LpNormalizingTransformer("out", "v64", norm=norm, ensure_zero_mean=norm is NormFunction.L1)
        expected = np.asarray(model.transform(mixed).column("out"))
        got = _onnx_values(model, mixed, "out", opset=opset)
        np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True, err_msg=f"{norm} @ {opset}")


@pytest.mark.parametrize("opset", [13, 21])
def test_fitted_normalizers_at_lowest_and_highest_opset(opset: int, mixed: op.DataView) -> None:
    for est in (
        BinningNormalizingEstimator("out", "v32"),
        LogMeanVarianceNormalizingEstimator("out", "v64", use_cdf=True),
        RobustScalingNormalizingEstimator("out", "f64"),
    ):
        model = est.fit(mixed)
        expected = np.asarray(model.transform(mixed).column("out"))
        np.testing.assert_allclose(_onnx_values(model, mixed, "out", opset), expected, atol=1e-6, equal_nan=True)


def test_in_a_pipeline_with_export(mixed: op.DataView) -> None:
    pipe = (
        ctx.transforms.concatenate("Features", "f32", "v32")
        .append(BinningNormalizingEstimator("Features", maximum_bin_count=3))
        .append(LpNormalizingTransformer("Features"))
    )
    model = pipe.fit(mixed)
    out = model.transform(mixed)
    assert out.schema["Features"].slot_names == ("f32", "v32.0", "v32.1", "v32.2", "v32.3")
    np.testing.assert_allclose(_onnx_values(model, mixed, "Features"), out.column("Features"), equal_nan=True)


# --------------------------------------------------------------------------------------------
# Errors


@dataclass
class Awkward:
    text: str
    count: int
    ragged: npt.NDArray[np.float32]  # unknown size
    x: Annotated[npt.NDArray[np.float32], VectorType(3)]


@pytest.fixture(scope="module")
def awkward() -> op.DataView:
    rows = [Awkward("a", 1, np.ones(2, np.float32), np.ones(3, np.float32))]
    return ctx.data.load_from_enumerable(rows, Awkward)


@pytest.mark.parametrize("name", list(NORMALIZERS))
def test_column_errors(name: str, awkward: op.DataView) -> None:
    build = NORMALIZERS[name]
    catalog = build("o", "x").step_name.split("(")[0]
    with pytest.raises(
        ColumnTypeError, match=rf"{catalog}\(o <- text\): input column 'text' is string; expected float32"
    ):
        build("o", "text").fit(awkward)
    with pytest.raises(ColumnTypeError, match=r"input column 'count' is int64; .*convert the column to float32"):
        build("o", "count").output_schema(awkward.schema)
    with pytest.raises(ShapeError, match=r"input column 'ragged' is float32\[\?\], a vector of unknown size"):
        build("o", "ragged").fit(awkward)
    with pytest.raises(ColumnNotFoundError, match=rf"{catalog}\(o <- nope\): input column 'nope' is not in the data"):
        build("o", "nope").fit(awkward)


def test_fitted_transformer_rejects_another_shape(mixed: op.DataView) -> None:
    model = MinMaxNormalizingEstimator("o", "v32").fit(mixed)
    other = op.Schema.of(v32=op.TensorType(op.DType.FLOAT32, (5,)))
    with pytest.raises(ShapeError, match=r"'v32' is float32\[5\], but this normalizer was fitted on float32\[4\]"):
        model.output_schema(other)
    # The other float type is accepted; the output follows the input's type.
    as64 = op.Schema.of(v32=op.TensorType(op.DType.FLOAT64, (4,)))
    assert model.output_schema(as64)["o"].type == op.TensorType(op.DType.FLOAT64, (4,))


def test_empty_data_is_rejected() -> None:
    with pytest.raises(DataError, match=r"normalize_min_max\(x\): cannot learn from empty data"):
        MinMaxNormalizingEstimator("x").fit(_vec3(np.zeros((0, 3))))


def test_invalid_options() -> None:
    with pytest.raises(
        InvalidArgumentError,
        match=r"normalize_lp_norm\(x\): norm must be one of 'L2', 'StandardDeviation', 'L1', 'Infinity', got 'L3'",
    ):
        LpNormalizingTransformer("x", norm="L3")
    with pytest.raises(InvalidArgumentError, match=r"quantile_min \(75\) must be less than quantile_max \(25\)"):
        RobustScalingNormalizingEstimator("x", quantile_min=75, quantile_max=25)
    with pytest.raises(InvalidArgumentError, match=r"quantile_min \(50\) must be less than quantile_max \(50\)"):
        RobustScalingNormalizingEstimator("x", quantile_min=50, quantile_max=50)
    with pytest.raises(InvalidArgumentError, match=r"quantile_max must be a number in \[0, 100\], got 101"):
        RobustScalingNormalizingEstimator("x", quantile_max=101)
    with pytest.raises(
        InvalidArgumentError, match=r"normalize_binning\(x\): maximum_bin_count must be an integer >= 2"
    ):
        BinningNormalizingEstimator("x", maximum_bin_count=1)
    with pytest.raises(InvalidArgumentError, match="maximum_example_count must be an integer >= 2, got 1"):
        MinMaxNormalizingEstimator("x", maximum_example_count=1)
    with pytest.raises(InvalidArgumentError, match="scale must be a finite number > 0, got 0"):
        GlobalContrastNormalizingTransformer("x", scale=0)
    with pytest.raises(InvalidArgumentError, match="fix_zero must be True or False, got 'yes'"):
        MinMaxNormalizingEstimator("x", fix_zero="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="output_column_name must be a non-empty column name, got ''"):
        MeanVarianceNormalizingEstimator("")


# --------------------------------------------------------------------------------------------
# Real data: ML.NET's breast-cancer.txt (9 features, 16 missing values in one slot)


@dataclass
class BreastCancer:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]


def test_breast_cancer(mlnet_data: Path) -> None:
    data = ctx.data.load_from_text_file(mlnet_data / "breast-cancer.txt", BreastCancer)
    x = np.asarray(data.column("Features"), dtype=np.float64)
    assert x.shape == (699, 9) and np.isnan(x).sum() == 16
    head = data.take(40)  # the conformance suite scores row by row; row 23 has the NaN
    for name, build in NORMALIZERS.items():
        model = check_component(build("Features", "Features"), head, exportable=True)
        assert model.step_name.endswith("(Features)"), name
    expected = {
        "min_max_no_fix_zero": preprocessing.MinMaxScaler().fit_transform(x),
        "min_max": preprocessing.MaxAbsScaler().fit_transform(x),
        "mean_variance_no_fix_zero": preprocessing.StandardScaler().fit_transform(x),
        "log_mean_variance": preprocessing.StandardScaler().fit_transform(np.log(x)),
        "robust_scaling": preprocessing.RobustScaler().fit_transform(x),
        "lp_norm_l1": preprocessing.normalize(np.nan_to_num(x), norm="l1"),
    }
    for name, want in expected.items():
        got = np.asarray(NORMALIZERS[name]("Features", "Features").fit(data).transform(data).column("Features"))
        if name == "lp_norm_l1":  # NaN is left out of the row norm, i.e. counts as 0 there
            got = np.nan_to_num(got)
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6, equal_nan=True, err_msg=name)
    binned = BinningNormalizingEstimator("Features", fix_zero=False).fit(data)
    assert isinstance(binned, BinNormalizingTransformer)
    distinct = [np.unique(c[~np.isnan(c)]).size for c in x.T]  # at most 10 values (1..10) per feature
    np.testing.assert_array_equal(binned.bin_counts, distinct)  # fewer than 1024: one bin per distinct value
    got = np.asarray(binned.transform(data).column("Features"), dtype=np.float64)
    for j, c in enumerate(x.T):
        ranks = np.searchsorted(np.unique(c[~np.isnan(c)]), c)  # rank of each value among the distinct ones
        np.testing.assert_allclose(got[:, j], np.where(np.isnan(c), np.nan, ranks / (distinct[j] - 1)), rtol=1e-6)
