"""FastTree trainers (on LightGBM) vs LightGBM's own training with the same trees: speed and metrics.

``binary_classification.trainers.fast_tree`` and ``regression.trainers.fast_tree`` against
``lightgbm.train(trainer.lightgbm_params(), lightgbm.Dataset(x, label=y), number_of_trees)`` -- the
same parameters, so the same trees -- on the same float32 matrix, one thread each by default
(``--threads``; two OpenMP threads on a shared 2-core host make both sides slower and erratic).
Four workloads, each giving a metric row and a fit-time row:

1. breast-cancer sized, binary: ML.NET's ``breast-cancer.txt`` (699 x 9, NaN for ``?``) when
   ``../shared/data/mlnet`` exists, else a synthetic 699 x 9 set; ML.NET's baseline options
   ``nl=5 mil=5 lr=0.25 iter=20 mb=255``; metrics on the training data (ML.NET's TrainTest):
   AUC of onnxpipe's ``Score`` vs LightGBM's margin, within 0.005 (ML.NET's own FastTree: 0.995370,
   printed for reference).
2. housing sized, regression: ML.NET's ``housing.txt`` (506 x 13) or a synthetic 506 x 13 set,
   the same options; RMSE on the training data within 0.005 of LightGBM's.
3. 1M x 20 synthetic logistic data (quick: 200k), FastTree's defaults (100 trees, 20 leaves,
   10 examples per leaf, learning rate 0.2): test AUC (100k rows) within 0.005 of LightGBM's.
4. 1M x 20 synthetic regression (a smooth non-linear target plus noise; quick: 200k), defaults:
   test RMSE within 0.005 of LightGBM's.

Fit time: onnxpipe's ``fit`` on a DataView built once, outside the timing (its build time is
reported), against ``lightgbm.train`` including its ``Dataset`` construction (``fit`` builds one
too); target <= 1.1x. The sides alternate round by round (A B, then B A), ``gc.collect()`` before
each round, medians over rounds (``--rounds``: default 15 on the small sets, 3 on the large ones).
Each metric row also says whether the two model texts are identical. JSON:
``bench/results/bench_fast_tree[-quick].json``.

    .venv/bin/python bench/bench_fast_tree.py [--quick] [--rounds N] [--threads T]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
from sklearn.metrics import roc_auc_score

import onnxpipe as op
from _common import BENCH_DIR, console, median, write_results
from bench_training import Check, alternate, logistic_data, print_checks, timing_extra, vector_column
from onnxpipe.trainers.fast_tree import FastTreeBinaryTrainer

MLNET_DATA = BENCH_DIR.parent.parent / "shared" / "data" / "mlnet"
METRIC_TOLERANCE = 0.005  # AUC or RMSE, onnxpipe vs LightGBM
TIME_RATIO = 1.1
MLNET_FASTTREE_AUC = 0.995370  # FastTree-TrainTest-breast-cancer
BASELINE = {"number_of_leaves": 5, "minimum_example_count_per_leaf": 5, "learning_rate": 0.25, "number_of_trees": 20}
LARGE_FEATURES = 20


# ------------------------------------------------------------------------------------------------
# data


def _text_matrix(path: Path, separator: str, skip: Callable[[str], bool]) -> np.ndarray:
    rows = [line.rstrip("\n").split(separator) for line in path.read_text().splitlines() if not skip(line)]
    return np.array([[np.nan if v == "?" else float(v) for v in r] for r in rows], dtype=np.float64)


def breast_cancer(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    path = MLNET_DATA / "breast-cancer.txt"
    if path.is_file():
        table = _text_matrix(path, "\t", lambda line: not line.strip() or line.startswith("//"))
        return table[:, 1:].astype(np.float32), table[:, 0] == 1, "breast-cancer.txt"
    x = rng.integers(1, 11, size=(699, 9)).astype(np.float32)
    x[rng.random(699) < 0.023, 5] = np.nan
    y = rng.random(699) < 1 / (1 + np.exp(-(np.nan_to_num(x, nan=5.0).mean(axis=1) - 4) * 2))
    return x, y, "synthetic 699 x 9"


def housing(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    path = MLNET_DATA / "housing.txt"
    if path.is_file():
        table = _text_matrix(path, "\t", lambda line: not line.strip() or line.startswith("MedianHomeValue"))
        return table[:, 1:].astype(np.float32), table[:, 0].astype(np.float32), "housing.txt"
    x = rng.standard_normal((506, 13)).astype(np.float32)
    return x, _smooth_target(x, rng), "synthetic 506 x 13"


def _smooth_target(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Friedman-like non-linear target plus unit noise."""
    x64 = x.astype(np.float64)
    y = 10 * np.sin(x64[:, 0] * x64[:, 1]) + 5 * x64[:, 2] ** 2 + 4 * x64[:, 3] - 3 * np.abs(x64[:, 4])
    return np.asarray(y + rng.standard_normal(len(x)), dtype=np.float32)


def view(ctx: op.MLContext, x: np.ndarray, y: np.ndarray) -> op.DataView:
    return ctx.data.load_from_arrow(pa.table({"Features": vector_column(x), "Label": pa.array(y)}))


# ------------------------------------------------------------------------------------------------
# one workload: fit both ways, compare the metric and the time


def rmse(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y.astype(np.float64) - prediction.astype(np.float64)) ** 2)))


def bench_case(
    ctx: op.MLContext,
    name: str,
    trainer: Any,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    data_text: str,
    rounds: int,
    note: str = "",
) -> tuple[list[Check], dict[str, Any]]:
    binary = isinstance(trainer, FastTreeBinaryTrainer)
    (x, y), (x_test, y_test) = train, test
    builds = []
    for _ in range(3):
        start = time.perf_counter()
        train_view = view(ctx, x, y)
        builds.append(time.perf_counter() - start)
    params = trainer.lightgbm_params()
    labels = y.astype(np.float64)

    def lightgbm_fit() -> lgb.Booster:
        return lgb.train(params, lgb.Dataset(x, label=labels), num_boost_round=trainer.number_of_trees)

    with console.status(f"{name}: {rounds} rounds of fits on {len(y):,} rows"):
        times, last = alternate({"onnxpipe": lambda: trainer.fit(train_view), "lightgbm": lightgbm_fit}, rounds)
    model, booster = last["onnxpipe"], last["lightgbm"]
    same_trees = model.model_text == booster.model_to_string(num_iteration=-1)
    test_view = view(ctx, x_test, y_test)
    score = np.asarray(model.transform(test_view).column("Score"))
    if binary:
        metric_name = "AUC"
        ours = float(roc_auc_score(y_test, score))
        peer = float(roc_auc_score(y_test, booster.predict(x_test, raw_score=True)))
    else:
        metric_name = "RMSE"
        ours, peer = rmse(y_test, score), rmse(y_test, booster.predict(x_test))
    common = {"train_rows": len(y), "test_rows": len(y_test), "trees": trainer.number_of_trees}
    paired = timing_extra(times, "onnxpipe", "lightgbm")
    checks = [
        Check(
            f"{name} {metric_name} vs lightgbm",
            data_text,
            metric_name,
            ours,
            peer,
            "lightgbm.train(lightgbm_params())",
            "|Δ|",
            abs(ours - peer),
            "<=",
            METRIC_TOLERANCE,
            note=f"same trees: {same_trees}" + (f"; {note}" if note else ""),
            extra={**common, "same_model_text": same_trees},
        ),
        Check(
            f"{name} fit time vs lightgbm",
            data_text,
            "s",
            median(times["onnxpipe"]),
            median(times["lightgbm"]),
            "lightgbm.train(lightgbm_params())",
            "ratio",
            median(times["onnxpipe"]) / median(times["lightgbm"]),
            "<=",
            TIME_RATIO,
            samples=times,
            note=f"paired {paired['median_paired_ratio']:.2f}; DataView build {1e3 * median(builds):.1f} ms (untimed)",
            extra={**common, **paired, "dataview_build_s": median(builds)},
        ),
    ]
    return checks, {"lightgbm_params": params}


# ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows instead of 1M for the large sets")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 15 small, 3 large)")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads, both sides (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ctx = op.MLContext(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    n = 200_000 if args.quick else 1_000_000
    n_test = 100_000
    small_rounds, large_rounds = args.rounds or 15, args.rounds or 3
    binary = ctx.binary_classification.trainers
    regression = ctx.regression.trainers
    threads = {"number_of_threads": args.threads}

    checks: list[Check] = []
    diagnostics: dict[str, Any] = {}
    seconds: dict[str, float] = {}

    def run(name: str, *case: Any, **kw: Any) -> None:
        start = time.perf_counter()
        found, extra = bench_case(ctx, name, *case, **kw)
        seconds[name] = time.perf_counter() - start
        console.print(f"[bold]{name}[/] done in {seconds[name]:.1f} s")
        checks.extend(found)
        diagnostics[name] = extra

    x, y, source = breast_cancer(rng)
    run(
        "breast-cancer binary",
        binary.fast_tree(**BASELINE, **threads),
        (x, y),
        (x, y),
        f"{source}, {len(y)} x {x.shape[1]}, train == test",
        small_rounds,
        note=f"ML.NET FastTree {MLNET_FASTTREE_AUC}",
    )
    x, y, source = housing(rng)
    run(
        "housing regression",
        regression.fast_tree(**BASELINE, **threads),
        (x, y),
        (x, y),
        f"{source}, {len(y)} x {x.shape[1]}, train == test",
        small_rounds,
    )
    x, y = logistic_data(np.random.default_rng(args.seed + 1), n + n_test)
    run(
        "large binary",
        binary.fast_tree(**threads),
        (x[:n], y[:n]),
        (x[n:], y[n:]),
        f"{n:,} x {x.shape[1]} (+{n_test:,} test)",
        large_rounds,
    )
    x = np.random.default_rng(args.seed + 2).standard_normal((n + n_test, LARGE_FEATURES), dtype=np.float32)
    y = _smooth_target(x, np.random.default_rng(args.seed + 3))
    run(
        "large regression",
        regression.fast_tree(**threads),
        (x[:n], y[:n]),
        (x[n:], y[n:]),
        f"{n:,} x {LARGE_FEATURES} (+{n_test:,} test)",
        large_rounds,
    )

    print_checks(f"FastTree on LightGBM vs lightgbm.train{' (quick)' if args.quick else ''}", checks)
    params = {
        "quick": args.quick,
        "rounds": args.rounds,
        "threads": args.threads,
        "seed": args.seed,
        "section_seconds": seconds,
        "lightgbm": lgb.__version__,
    }
    write_results("bench_fast_tree" + ("-quick" if args.quick else ""), params, checks, {"diagnostics": diagnostics})  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
