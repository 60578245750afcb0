"""Training parity and speed vs scikit-learn / LightGBM / numpy, and a fitted pipeline's scoring speed.

onnxpipe's trainers against their peers on the same data, and a fitted tabular pipeline scored by
onnxpipe, by its ONNX export in ONNX Runtime and by the equivalent scikit-learn pipeline.

Five checks, each a row of one table (onnxpipe's figure, the peer's, their ratio, the figure judged
against the target, OK/MISS):

1. ``lbfgs_logistic_regression(l1_regularization=0, l2_regularization=L2)`` vs scikit-learn
   ``LogisticRegression(solver="lbfgs", C=1/L2)`` on a synthetic logistic model (float32[20]
   features, fixed seed), 1M training rows (quick 200k) and a held-out test set: test AUC within
   0.005; fit time <= 1.5x scikit-learn's. Only ``fit`` is timed (the DataView is built once,
   outside, and its build time reported). The regularisation maps exactly: onnxpipe minimises
   ML.NET's ``(sum_i loss_i + L2/2 ||w||^2) / N`` (``trainers/linear.py``, ``_lbfgs``; bias not
   regularised), scikit-learn ``C * sum_i loss_i + 1/2 ||w||^2``; multiplying the first by
   ``N / L2`` gives the second with ``C = 1 / L2`` -- same minimiser. Each side keeps its own
   default tolerance (onnxpipe 1e-7 as ML.NET, scikit-learn 1e-4).
2. ``light_gbm(number_of_iterations=I, number_of_threads=T)`` vs ``lightgbm.train`` with the
   trainer's own ``lightgbm_params()`` on the same float32 matrix (200k x 20, I=100; quick 50k,
   I=50; T=1 by default, ``--lgbm-threads``; on a shared 2-core host two OpenMP threads made both
   sides 4-5x slower and erratic): test-set ``Score`` equal to LightGBM's raw margin (rounded to
   float32, as onnxpipe's Score is float32) -- max abs diff 0; fit time <= 1.1x.
3. ``kmeans(number_of_clusters=8)`` vs ``KMeans(n_init=1, init="k-means++", random_state=seed)`` on
   100k x 10 gaussian blobs (quick 30k): inertia within 1% (onnxpipe's inertia = sum over rows of
   the smallest ``Score``, a squared distance).
4. ``ols()`` vs ``numpy.linalg.lstsq`` of ``[X, 1]`` (1M x 20; quick 200k): max abs diff of the
   weights and bias <= 1e-6 (``ols``'s ridge term, 1e-6 unscaled, is negligible at this size).
5. A pipeline ``normalize_min_max(Num, fix_zero=False)`` (a float32[10] column) +
   ``one_hot_encoding(CatVec, Cat)`` (a string column of 20 values) + ``concatenate(Features, Num,
   CatVec)`` + ``lbfgs_logistic_regression``, fitted on 200k rows (quick 50k), then scoring 1M rows
   (quick 200k) from an Arrow table in record batches of 65536:

   * onnxpipe ``model.transform(ctx.data.load_from_arrow(table))``, every batch consumed: >= 1M
     rows/s (absolute);
   * its ONNX export (``convert_to_onnx(..., output_columns=["Probability"])``) in ONNX Runtime,
     ``session.run`` on 65536-row batches prepared in advance (``--ort-batch 0``: one call on all
     rows) vs scikit-learn ``predict_proba`` of ``ColumnTransformer(MinMaxScaler,
     OneHotEncoder(handle_unknown="ignore")) + LogisticRegression(C=1/L2)`` on a pandas DataFrame
     of the same rows prepared in advance: >= 3x faster.

   The pipeline is fitted as one ``EstimatorChain`` when onnxpipe accepts it; today the chain's
   up-front schema check refuses it (``one_hot_encoding``'s width is unknown before fitting, so the
   trainer sees ``Features: float32[?]``), and the featurizer is fitted first, then the trainer on
   its output -- the same fitted model. The JSON records which way was taken.

Timing: the sides alternate round by round (A B, then B A; three sides rotate), ``gc.collect()``
before each round, and the figures are medians over rounds (``--rounds``; default 3 for fits, 5
for scoring). The JSON (``bench/results/bench_training[-quick].json``) holds every sample.

    .venv/bin/python bench/bench_training.py [--quick] [--only lr,lgbm,kmeans,ols,pipeline] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import sklearn
from rich.table import Table
from scipy.special import expit
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

import onnxpipe as op
from _common import console, median, profile, write_results
from onnxpipe.errors import ShapeError

SECTIONS = ("lr", "lgbm", "kmeans", "ols", "pipeline")
FEATURES = 20  # logistic / LightGBM / OLS feature count
CHUNK = 65536  # Arrow record batch rows (and ORT batch rows by default)

# Targets (see the module docstring)
AUC_TOLERANCE = 0.005
LR_TIME_RATIO = 1.5
LGBM_TIME_RATIO = 1.1
INERTIA_TOLERANCE = 0.01
OLS_TOLERANCE = 1e-6
PIPELINE_ROWS_PER_S = 1_000_000
ORT_SPEEDUP = 3.0


@dataclasses.dataclass
class Check:
    """One row of the table: onnxpipe's figure, the peer's, and the figure judged against the target.

    ``ratio`` is always onnxpipe / peer in ``unit``; ``judged`` is what the target applies to (the
    ratio itself for timings, an absolute difference for parity checks, onnxpipe's own rate for an
    absolute throughput target). Duck-types ``_common.Row`` for ``write_results`` (``to_json``,
    ``passed``).
    """

    case: str
    data: str  # the workload, e.g. "1,000,000 x 20"
    unit: str
    value: float
    peer: float
    peer_name: str
    judged_name: str
    judged: float
    op: str  # "<=" or ">="
    bound: float
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.peer if self.peer else float("nan")

    @property
    def target_text(self) -> str:
        return f"{self.judged_name} {self.op} {self.bound:g}"

    @property
    def passed(self) -> bool:
        return bool(self.judged <= self.bound if self.op == "<=" else self.judged >= self.bound)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "data": self.data,
            "unit": self.unit,
            "onnxpipe": self.value,
            "peer": self.peer,
            "peer_name": self.peer_name,
            "ratio": self.ratio,
            "ratio_definition": "onnxpipe / peer",
            "judged_name": self.judged_name,
            "judged": self.judged,
            "target": self.target_text,
            "passed": self.passed,
            "samples": self.samples,
            "note": self.note,
            **self.extra,
        }


# ------------------------------------------------------------------------------------------------
# helpers


def alternate(sides: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds per call of each side, ``rounds`` times; the order rotates every round (A B, B A for
    two sides) so that each side runs first as often as the other. Returns the times and each
    side's last result."""
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, Any] = {}
    for r in range(rounds):
        gc.collect()
        if len(names) == 2:
            order = names if r % 2 == 0 else names[::-1]
        else:
            order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter_ns()
            last[name] = sides[name]()
            times[name].append((time.perf_counter_ns() - start) / 1e9)
    return times, last


def timing_extra(times: dict[str, list[float]], piped: str, peer: str) -> dict[str, float]:
    """The median of the per-round ratios (onnxpipe / peer, the two timed close together), and their range."""
    paired = [a / b for a, b in zip(times[piped], times[peer], strict=True)]
    return {"median_paired_ratio": median(paired), "min_paired_ratio": min(paired), "max_paired_ratio": max(paired)}


def vector_column(x: np.ndarray) -> pa.FixedSizeListArray:
    """``x`` (rows, d) as a zero-copy ``fixed_size_list<float>[d]`` Arrow array."""
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x).reshape(-1)), x.shape[1])


def logistic_data(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` x FEATURES standard normal float32 features, bool labels drawn from a fixed logistic model."""
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    w = np.random.default_rng(1234).standard_normal(FEATURES)  # the same true model for every size
    y = rng.random(rows) < expit(x.astype(np.float64) @ w + 0.25)
    return x, y


def split_data(x: np.ndarray, y: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def max_abs(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@contextlib.contextmanager
def count_lbfgs_iterations(out: dict[str, Any]) -> Iterator[None]:
    """Diagnostic only: record scipy's iteration counts of onnxpipe's L-BFGS (wraps
    ``scipy.optimize.minimize``, which ``onnxpipe.trainers._lbfgs`` imports at each fit)."""
    import scipy.optimize

    original = scipy.optimize.minimize

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        out.update(nit=int(result.nit), nfev=int(result.nfev), message=str(result.message))
        return result

    scipy.optimize.minimize = wrapped
    try:
        yield
    finally:
        scipy.optimize.minimize = original


def ort_op_profile(model_bytes: bytes, feeds: list[dict[str, np.ndarray]], passes: int = 3, top: int = 12) -> None:
    """ONNX Runtime's own profile of ``passes`` passes over ``feeds``: kernel time per node, and the
    time of ``session.run`` outside the graph (input/output conversion)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        start = time.perf_counter()
        for _ in range(passes):
            for f in feeds:
                session.run(None, f)
        wall = (time.perf_counter() - start) / passes
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels: Counter[tuple[str, str]] = Counter()
    model_run = 0.0
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            kernels[(e["args"].get("op_name", "?"), e["name"].removesuffix("_kernel_time"))] += e["dur"]
        elif e.get("name") == "model_run":
            model_run += e["dur"]
    total = sum(kernels.values())
    rows = sum(len(next(iter(f.values()))) for f in feeds)
    table = Table(title=f"ONNX Runtime profile, ms per pass of {rows:,} rows")
    for c in ("op", "node", "ms", "% of kernels"):
        table.add_column(c, justify="right" if c in ("ms", "% of kernels") else "left")
    for (op_type, node), us in kernels.most_common(top):
        table.add_row(op_type, node, f"{us / 1e3 / passes:.1f}", f"{100 * us / total:.0f}")
    console.print(table)
    console.print(
        f"session.run wall {1e3 * wall:.1f} ms per pass; ORT model_run {model_run / 1e3 / passes:.1f} ms; "
        f"kernels {total / 1e3 / passes:.1f} ms; outside the graph (feeds/fetches) "
        f"{1e3 * wall - model_run / 1e3 / passes:.1f} ms"
    )


# ------------------------------------------------------------------------------------------------
# 1. L-BFGS logistic regression


def bench_logistic(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> tuple[list[Check], dict[str, Any]]:
    n = 200_000 if args.quick else 1_000_000
    n_test = max(n // 5, 20_000)
    x, y = logistic_data(np.random.default_rng(args.seed), n + n_test)
    x_train, y_train, x_test, y_test = split_data(x, y, n)

    builds = []
    for _ in range(3):
        start = time.perf_counter()
        view = ctx.data.load_from_arrow(pa.table({"Features": vector_column(x_train), "Label": pa.array(y_train)}))
        builds.append(time.perf_counter() - start)
    test_view = ctx.data.load_from_arrow(pa.table({"Features": vector_column(x_test), "Label": pa.array(y_test)}))

    est = ctx.binary_classification.trainers.lbfgs_logistic_regression(l1_regularization=0.0, l2_regularization=args.l2)

    def sklearn_fit() -> LogisticRegression:
        return LogisticRegression(C=1.0 / args.l2, solver="lbfgs", max_iter=1000).fit(x_train, y_train)

    with console.status(f"logistic regression: {rounds} rounds of fits on {n:,} rows x {FEATURES}"):
        times, last = alternate({"onnxpipe": lambda: est.fit(view), "sklearn": sklearn_fit}, rounds)
    model, clf = last["onnxpipe"], last["sklearn"]
    auc = float(ctx.binary_classification.evaluate(model.transform(test_view)).area_under_roc_curve)
    sk_auc = float(roc_auc_score(y_test, clf.decision_function(x_test)))
    coef_diff = max_abs(np.append(model.weights, model.bias), np.append(clf.coef_[0], clf.intercept_[0]))
    common = {"train_rows": n, "test_rows": n_test}
    lr_paired = timing_extra(times, "onnxpipe", "sklearn")
    checks = [
        Check(
            "LR test AUC vs sklearn",
            f"{n:,} x {FEATURES}",
            "AUC",
            auc,
            sk_auc,
            f"sklearn LogisticRegression(lbfgs, C={1.0 / args.l2:g})",
            "|Δ|",
            abs(auc - sk_auc),
            "<=",
            AUC_TOLERANCE,
            note=f"l1=0, l2={args.l2:g} = 1/C; max |Δ(w, b)| {coef_diff:.2g}",
            extra={**common, "max_abs_coef_diff": coef_diff},
        ),
        Check(
            "LR fit time vs sklearn",
            f"{n:,} x {FEATURES}",
            "s",
            median(times["onnxpipe"]),
            median(times["sklearn"]),
            "sklearn LogisticRegression.fit",
            "ratio",
            median(times["onnxpipe"]) / median(times["sklearn"]),
            "<=",
            LR_TIME_RATIO,
            samples=times,
            note=f"paired {lr_paired['median_paired_ratio']:.2f}; DataView build {1e3 * median(builds):.1f} ms "
            f"(untimed); sklearn n_iter {int(clf.n_iter_[0])}",
            extra={
                **common,
                **lr_paired,
                "dataview_build_s": median(builds),
                "sklearn_n_iter": int(clf.n_iter_[0]),
            },
        ),
    ]
    diagnostics: dict[str, Any] = {"dataview_build_s_samples": builds}
    if args.profile:
        iterations: dict[str, Any] = {}
        with count_lbfgs_iterations(iterations):
            profile(lambda: est.fit(view), 1, top=15)
        console.print(f"onnxpipe L-BFGS: {iterations}; sklearn n_iter_={int(clf.n_iter_[0])}")
        diagnostics["onnxpipe_lbfgs"] = iterations
    return checks, diagnostics


# ------------------------------------------------------------------------------------------------
# 2. LightGBM


def bench_lightgbm(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> tuple[list[Check], dict[str, Any]]:
    n, iterations = (50_000, 50) if args.quick else (200_000, 100)
    n_test = 20_000
    threads = args.lgbm_threads
    x, y = logistic_data(np.random.default_rng(args.seed + 1), n + n_test)
    x_train, y_train, x_test, _ = split_data(x, y, n)
    view = ctx.data.load_from_arrow(pa.table({"Features": vector_column(x_train), "Label": pa.array(y_train)}))
    test_view = ctx.data.load_from_arrow(pa.table({"Features": vector_column(x_test)}))

    est = ctx.binary_classification.trainers.light_gbm(number_of_iterations=iterations, number_of_threads=threads)
    params = est.lightgbm_params()
    labels = y_train.astype(np.float64)

    def lightgbm_fit() -> lgb.Booster:
        return lgb.train(params, lgb.Dataset(x_train, label=labels), num_boost_round=iterations)

    with console.status(f"light_gbm: {rounds} rounds of fits on {n:,} rows, {iterations} iterations, {threads} thr"):
        times, last = alternate({"onnxpipe": lambda: est.fit(view), "lightgbm": lightgbm_fit}, rounds)
    model, booster = last["onnxpipe"], last["lightgbm"]
    scored = model.transform(test_view)
    score = np.asarray(scored.column("Score"))
    probability = np.asarray(scored.column("Probability"))
    raw = booster.predict(x_test, raw_score=True)
    score_diff = max_abs(score, raw.astype(np.float32))
    probability_diff = max_abs(probability, booster.predict(x_test))
    same_trees = model.model_text == booster.model_to_string(num_iteration=-1)
    common = {"train_rows": n, "test_rows": n_test, "iterations": iterations, "threads": threads}
    lgb_paired = timing_extra(times, "onnxpipe", "lightgbm")
    checks = [
        Check(
            "LightGBM test Score vs lightgbm",
            f"{n:,} x {FEATURES}, {iterations} it",
            "max |Δ|",
            score_diff,
            0.0,
            "float32(Booster.predict(raw_score=True))",
            "max |Δ|",
            score_diff,
            "<=",
            0.0,
            note=f"same trees: {same_trees}; max |Δ Probability| {probability_diff:.2g}",
            extra={
                **common,
                "same_model_text": same_trees,
                "max_abs_probability_diff": probability_diff,
                "max_abs_score_diff_vs_float64_margin": max_abs(score, raw),
            },
        ),
        Check(
            "LightGBM fit time vs lightgbm",
            f"{n:,} x {FEATURES}, {iterations} it, {threads} thr",
            "s",
            median(times["onnxpipe"]),
            median(times["lightgbm"]),
            "lightgbm.train(lightgbm_params())",
            "ratio",
            median(times["onnxpipe"]) / median(times["lightgbm"]),
            "<=",
            LGBM_TIME_RATIO,
            samples=times,
            note=f"paired {lgb_paired['median_paired_ratio']:.2f}; both build lgb.Dataset",
            extra={**common, **lgb_paired},
        ),
    ]
    if args.profile:
        profile(lambda: est.fit(view), 1, top=15)
    return checks, {"lightgbm_params": params}


# ------------------------------------------------------------------------------------------------
# 3. k-means


def bench_kmeans(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> tuple[list[Check], dict[str, Any]]:
    n, d, k = (30_000 if args.quick else 100_000), 10, 8
    blobs, _ = make_blobs(n_samples=n, n_features=d, centers=k, random_state=args.seed)
    x = blobs.astype(np.float32)
    view = ctx.data.load_from_arrow(pa.table({"Features": vector_column(x)}))
    est = ctx.clustering.trainers.kmeans(number_of_clusters=k)

    def sklearn_fit() -> KMeans:
        return KMeans(n_clusters=k, n_init=1, init="k-means++", random_state=args.seed).fit(x)

    with console.status(f"kmeans: {rounds} rounds of fits on {n:,} rows x {d}, k={k}"):
        times, last = alternate({"onnxpipe": lambda: est.fit(view), "sklearn": sklearn_fit}, rounds)
    model, km = last["onnxpipe"], last["sklearn"]
    score = np.asarray(model.transform(view).column("Score")).reshape(n, k)
    inertia = float(score.min(axis=1).astype(np.float64).sum())
    sk_inertia = float(km.inertia_)

    def exact(centroids: np.ndarray) -> float:  # float64 inertia of a set of centroids, for both sides alike
        x64 = x.astype(np.float64)
        dist = ((x64[:, None, :] - np.asarray(centroids, dtype=np.float64)[None]) ** 2).sum(axis=2)
        return float(dist.min(axis=1).sum())

    ratio = inertia / sk_inertia
    exact_ratio = exact(model.centroids) / exact(km.cluster_centers_)
    checks = [
        Check(
            "k-means inertia vs sklearn",
            f"{n:,} x {d}, k={k}",
            "inertia",
            inertia,
            sk_inertia,
            "sklearn KMeans(n_init=1, k-means++).inertia_",
            "|ratio - 1|",
            abs(ratio - 1.0),
            "<=",
            INERTIA_TOLERANCE,
            samples=times,
            note=f"fit {median(times['onnxpipe']):.2f} s vs {median(times['sklearn']):.2f} s",
            extra={
                "rows": n,
                "features": d,
                "k": k,
                "exact_inertia_ratio": exact_ratio,
                "onnxpipe_fit_s": median(times["onnxpipe"]),
                "sklearn_fit_s": median(times["sklearn"]),
            },
        )
    ]
    return checks, {}


# ------------------------------------------------------------------------------------------------
# 4. OLS


def bench_ols(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> tuple[list[Check], dict[str, Any]]:
    n = 200_000 if args.quick else 1_000_000
    rng = np.random.default_rng(args.seed + 3)
    x = rng.standard_normal((n, FEATURES), dtype=np.float32) * rng.uniform(0.1, 10.0, FEATURES).astype(np.float32)
    y = (x.astype(np.float64) @ rng.standard_normal(FEATURES) + 1.5 + rng.standard_normal(n)).astype(np.float32)
    view = ctx.data.load_from_arrow(pa.table({"Features": vector_column(x), "Label": pa.array(y)}))
    est = ctx.regression.trainers.ols()

    def lstsq() -> np.ndarray:
        design = np.hstack([x.astype(np.float64), np.ones((n, 1))])
        solution: np.ndarray = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
        return solution

    with console.status(f"ols: {rounds} rounds of fits on {n:,} rows x {FEATURES}"):
        times, last = alternate({"onnxpipe": lambda: est.fit(view), "lstsq": lstsq}, max(1, rounds - 1))
    model, solution = last["onnxpipe"], last["lstsq"]
    diff = max_abs(np.append(model.weights, model.bias), solution)
    checks = [
        Check(
            "OLS coefficients vs lstsq",
            f"{n:,} x {FEATURES}",
            "max |Δ|",
            diff,
            0.0,
            "numpy.linalg.lstsq([X, 1], y)",
            "max |Δ|",
            diff,
            "<=",
            OLS_TOLERANCE,
            samples=times,
            note=f"fit {median(times['onnxpipe']):.2f} s vs lstsq {median(times['lstsq']):.2f} s",
            extra={"rows": n, "onnxpipe_fit_s": median(times["onnxpipe"]), "lstsq_s": median(times["lstsq"])},
        )
    ]
    return checks, {}


# ------------------------------------------------------------------------------------------------
# 5. tabular pipeline: fit, then score with onnxpipe, its ONNX export in ORT, and scikit-learn

N_NUMERIC = 10
N_CATEGORIES = 20


def pipeline_data(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10 float32 features of different scales and offsets, a string category of 20 values, bool labels."""
    model = np.random.default_rng(4321)  # the same true model for every size
    scales, offsets = model.uniform(0.5, 5.0, N_NUMERIC), model.uniform(-3.0, 3.0, N_NUMERIC)
    w_num, w_cat = model.standard_normal(N_NUMERIC) / scales, model.standard_normal(N_CATEGORIES)
    num = (rng.standard_normal((rows, N_NUMERIC)) * scales + offsets).astype(np.float32)
    codes = rng.integers(0, N_CATEGORIES, rows)
    cat = np.array([f"category_{i:02d}" for i in range(N_CATEGORIES)], dtype=object)[codes]
    y = rng.random(rows) < expit((num - offsets) @ w_num + w_cat[codes])
    return num, cat, y


def arrow_table(num: np.ndarray, cat: np.ndarray, y: np.ndarray | None = None) -> pa.Table:
    columns = {"Num": vector_column(num), "Cat": pa.array(cat, type=pa.string())}
    if y is not None:
        columns["Label"] = pa.array(y)
    table = pa.table(columns)
    return pa.Table.from_batches(table.to_batches(max_chunksize=CHUNK), schema=table.schema)


def data_frame(num: np.ndarray, cat: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(num, columns=[f"num{i}" for i in range(N_NUMERIC)])
    frame["Cat"] = cat
    return frame


def bench_pipeline(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> tuple[list[Check], dict[str, Any]]:
    n_train, n = (50_000, 200_000) if args.quick else (200_000, 1_000_000)
    rng = np.random.default_rng(args.seed + 4)
    num_train, cat_train, y_train = pipeline_data(rng, n_train)
    num, cat, _ = pipeline_data(rng, n)
    train_view = ctx.data.load_from_arrow(arrow_table(num_train, cat_train, y_train))
    table = arrow_table(num, cat)

    # ---- fit: one EstimatorChain if the trainer accepts one_hot_encoding's not-yet-known width
    featurize = (
        ctx.transforms.normalize_min_max("Num", fix_zero=False)
        .append(ctx.transforms.categorical.one_hot_encoding("CatVec", "Cat"))
        .append(ctx.transforms.concatenate("Features", "Num", "CatVec"))
    )
    trainer = ctx.binary_classification.trainers.lbfgs_logistic_regression(
        l1_regularization=0.0, l2_regularization=args.l2
    )
    with console.status(f"pipeline: fitting on {n_train:,} rows"):
        try:
            model = featurize.append(trainer).fit(train_view)
            how = "one EstimatorChain.fit"
        except ShapeError as exc:  # the chain's schema check runs before any training
            features = featurize.fit(train_view)
            model = features.append(trainer.fit(features.transform(train_view)))
            how = f"featurizer, then trainer on its output (the one-chain fit raised ShapeError: {exc})"
        columns = ColumnTransformer(
            [
                ("num", MinMaxScaler(), [f"num{i}" for i in range(N_NUMERIC)]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["Cat"]),
            ]
        )
        skl = make_pipeline(columns, LogisticRegression(C=1.0 / args.l2, solver="lbfgs", max_iter=1000))
        skl.fit(data_frame(num_train, cat_train), y_train)

    proto = ctx.model.convert_to_onnx(model, train_view, output_columns=["Probability"])
    model_bytes = proto.SerializeToString()
    session = ort.InferenceSession(model_bytes, ort.SessionOptions(), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    if inputs != {"Num", "Cat"}:
        raise RuntimeError(f"unexpected ONNX inputs {sorted(inputs)}")
    step = args.ort_batch or n
    cat_2d = cat.reshape(-1, 1)
    feeds = [{"Num": num[i : i + step], "Cat": cat_2d[i : i + step]} for i in range(0, n, step)]
    frame = data_frame(num, cat)

    def piped() -> None:
        for _ in model.transform(ctx.data.load_from_arrow(table)).batches():
            pass

    def onnx_runtime() -> np.ndarray:
        return np.concatenate([session.run(None, f)[0].reshape(-1) for f in feeds])

    def sklearn_predict() -> np.ndarray:
        probabilities: np.ndarray = skl.predict_proba(frame)[:, 1]
        return probabilities

    # Parity (informational): onnxpipe vs its ONNX export, and vs the scikit-learn pipeline.
    ours = np.asarray(model.transform(ctx.data.load_from_arrow(table)).column("Probability"))
    onnx_diff = max_abs(ours, onnx_runtime())
    sklearn_diff = max_abs(ours, sklearn_predict())
    piped()  # warm-up (first-call costs on every side)

    sides = {"onnxpipe": piped, "ort": onnx_runtime, "sklearn": sklearn_predict}
    with console.status(f"pipeline: {rounds} rounds of scoring {n:,} rows on each side"):
        times, _ = alternate(sides, rounds)
    rate = {k: n / median(v) for k, v in times.items()}
    speedup = {k.replace("ratio", "speedup"): v for k, v in timing_extra(times, "sklearn", "ort").items()}
    ort_batch = f"{step:,}-row batches" if step < n else "one call"
    common = {"train_rows": n_train, "rows": n, "ort_batch_rows": step, "fit": how}
    checks = [
        Check(
            "pipeline transform (onnxpipe)",
            f"{n:,} rows",
            "rows/s",
            rate["onnxpipe"],
            rate["sklearn"],
            "sklearn predict_proba",
            "rows/s",
            rate["onnxpipe"],
            ">=",
            PIPELINE_ROWS_PER_S,
            samples=times,
            note=f"peer: sklearn; max |Δ P| vs ONNX {onnx_diff:.2g}, vs sklearn {sklearn_diff:.2g}",
            extra={
                **common,
                "max_abs_diff_vs_onnx": onnx_diff,
                "max_abs_diff_vs_sklearn": sklearn_diff,
                "ort_rows_per_s": rate["ort"],
            },
        ),
        Check(
            "pipeline ONNX in ORT vs sklearn",
            f"{n:,} rows",
            "rows/s",
            rate["ort"],
            rate["sklearn"],
            "sklearn predict_proba",
            "speed-up",
            rate["ort"] / rate["sklearn"],
            ">=",
            ORT_SPEEDUP,
            samples=times,
            note=f"session.run on {ort_batch}; paired {speedup['median_paired_speedup']:.2f}",
            extra={**common, **speedup},
        ),
    ]
    if args.profile:
        profile(piped, 3, top=15)
        ort_op_profile(model_bytes, feeds)
    diagnostics = {"pipeline_fit": how, "onnx_ops": Counter(nd.op_type for nd in proto.graph.node)}
    return checks, diagnostics


# ------------------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    if isinstance(value, bool) or value == 0:
        return str(value)
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    if abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def print_checks(title: str, checks: list[Check]) -> None:
    table = Table(title=title)
    for name, right in (
        ("case", False),
        ("data", False),
        ("unit", False),
        ("onnxpipe", True),
        ("peer", True),
        ("ratio", True),
        ("judged", True),
        ("target", True),
        ("", False),
        ("notes", False),
    ):
        table.add_column(name, justify="right" if right else "left")
    for c in checks:
        mark = "[green]OK[/]" if c.passed else "[red]MISS[/]"
        target = c.target_text.replace(">=", "≥").replace("<=", "≤")
        ratio = f"{c.ratio:.3f}" if c.peer else ""
        figures = [fmt(c.value), fmt(c.peer) if c.peer else "", ratio, fmt(c.judged)]
        table.add_row(c.case, c.data, c.unit, *figures, target, mark, c.note)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data (under a minute)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 3 for fits, 5 for scoring)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2", type=float, default=1.0, help="l2_regularization of the logistic regressions (C=1/l2)")
    parser.add_argument("--lgbm-threads", type=int, default=1, help="LightGBM threads, both sides (default 1)")
    parser.add_argument("--ort-batch", type=int, default=CHUNK, help="ORT rows per session.run (0: all rows)")
    parser.add_argument("--profile", action="store_true", help="also cProfile onnxpipe's side, ORT per-node profile")
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")

    benches = {
        "lr": (bench_logistic, 3),
        "lgbm": (bench_lightgbm, 3),
        "kmeans": (bench_kmeans, 3),
        "ols": (bench_ols, 3),
        "pipeline": (bench_pipeline, 5),
    }
    ctx = op.MLContext(seed=args.seed)
    checks: list[Check] = []
    diagnostics: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name in (s for s in SECTIONS if s in only):
        fn, default_rounds = benches[name]
        start = time.perf_counter()
        section_checks, section_diagnostics = fn(args, ctx, args.rounds or default_rounds)
        seconds[name] = time.perf_counter() - start
        console.print(f"[bold]{name}[/] done in {seconds[name]:.1f} s")
        checks.extend(section_checks)
        if section_diagnostics:
            diagnostics[name] = section_diagnostics

    print_checks(f"Training parity and speed{' (quick)' if args.quick else ''}: onnxpipe vs peers", checks)
    params = {
        "quick": args.quick,
        "sections": only,
        "rounds": args.rounds,
        "seed": args.seed,
        "l2_regularization": args.l2,
        "lgbm_threads": args.lgbm_threads,
        "ort_batch_rows": args.ort_batch,
        "section_seconds": seconds,
        "versions": {"scikit-learn": sklearn.__version__, "lightgbm": lgb.__version__, "pandas": pd.__version__},
    }
    extra = {"diagnostics": json.loads(json.dumps(diagnostics, default=str))}
    # ``write_results`` only needs ``to_json()`` and ``passed`` from each row; Check provides both.
    subset = "-" + "-".join(only) if set(only) != set(SECTIONS) else ""  # a subset does not overwrite the full run
    name = "bench_training" + subset + ("-quick" if args.quick else "")
    write_results(name, params, checks, extra)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
