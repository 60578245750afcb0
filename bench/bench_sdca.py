"""SDCA trainers and the compiled averaged perceptron vs scikit-learn: quality and fit time.

Checks (each a row of one table: onnxpipe's figure, the peer's, their ratio, the judged figure
against its target, OK/MISS):

1. ``breast``: ML.NET's breast-cancer file (``../shared/data/mlnet``; skipped when absent),
   min-max normalized as ML.NET's maml run does, train == test (683 usable rows):
   ``sdca_logistic_regression`` with the baseline's options (``maximum_number_of_iterations=5,
   convergence_check_frequency=9``) -- AUC within 0.005 of ML.NET's 0.995458 and of scikit-learn's
   ``LogisticRegression``; fit time vs ``SGDClassifier(loss="log_loss")`` (informative at this size).
2. ``synthetic``: 1M x 20 float32 rows from a fixed logistic model (quick: 200k), 200k held out:
   ``sdca_logistic_regression()`` (ML.NET's automatic options) vs ``SGDClassifier(loss="log_loss")``
   (scikit-learn's defaults) -- test AUC within 0.005 of SGD's (and of ``LogisticRegression``'s),
   fit time <= 1.0x SGD's.
3. ``multiclass``: ``sdca_maximum_entropy()`` vs multinomial ``LogisticRegression`` on iris
   (min-max normalized, train == test: macro accuracy 0.98 as ML.NET's test asserts, log-loss) and
   on 200k x 20 synthetic rows of 5 classes (quick: 50k; held-out accuracy within 0.01 -- ML.NET's
   loss is a pairwise log loss over the wrong classes, not softmax cross-entropy, so the optima
   differ slightly; fit time informative).
4. ``perceptron``: ``averaged_perceptron(number_of_iterations=10)`` vs scikit-learn's averaged
   perceptron, ``SGDClassifier(loss="perceptron", penalty=None, learning_rate="constant", eta0=1,
   average=True, max_iter=10, tol=None)`` (``Perceptron`` itself has no ``average`` option), both
   shuffling, on 300k x 8 rows (quick: 100k): fit time <= 1.5x; accuracies reported.

onnxpipe's fits start from a DataView (its conversion to numpy is inside the timed fit); the peers
get the numpy arrays. Each trainer is fitted once before timing, so numba's one-time compilation
(or the load of its on-disk cache, about a second per process) is left out and reported apart.
Timing alternates the sides round by round; figures are medians (``--rounds``, default 3).

    .venv/bin/python bench/bench_sdca.py [--quick] [--only breast,synthetic,multiclass,perceptron]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import sklearn
from rich.table import Table
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

import onnxpipe as op
from _common import console, median, write_results
from onnxpipe import LoadColumn

SECTIONS = ("breast", "synthetic", "multiclass", "perceptron")
MLNET = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlnet"
AUC_TOLERANCE = 0.005
SDCA_TIME_RATIO = 1.0
PERCEPTRON_TIME_RATIO = 1.5
# ML.NET's SDCA maximum entropy minimises a pairwise log loss (log(1 + exp(o_k - o_c)) summed over the
# wrong classes k), not softmax cross-entropy: its optimum differs from LogisticRegression's slightly.
MULTICLASS_ACCURACY_TOLERANCE = 0.01


@dataclasses.dataclass
class Check:
    """One row: onnxpipe's figure, the peer's, and the judged figure (duck-types ``_common.Row``)."""

    case: str
    data: str
    unit: str
    value: float
    peer: float
    peer_name: str
    judged_name: str
    judged: float
    op: str  # "<=", ">=" or "" (informative)
    bound: float = 0.0
    note: str = ""
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.peer if self.peer else float("nan")

    @property
    def target_text(self) -> str:
        return f"{self.judged_name} {self.op} {self.bound:g}" if self.op else ""

    @property
    def passed(self) -> bool | None:
        if not self.op:
            return None
        return bool(self.judged <= self.bound if self.op == "<=" else self.judged >= self.bound)

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in dataclasses.asdict(self).items() if k != "op"},
            "ratio": self.ratio,
            "ratio_definition": "onnxpipe / peer",
            "target": self.target_text or None,
            "passed": self.passed,
        }


@dataclasses.dataclass
class BreastCancer:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]


def alternate(sides: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds per call of each side, ``rounds`` times, the order alternating; and each side's last result."""
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, Any] = {}
    for r in range(rounds):
        gc.collect()
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            last[name] = sides[name]()
            times[name].append(time.perf_counter() - start)
    return times, last


def view(ctx: op.MLContext, x: np.ndarray, y: np.ndarray) -> op.DataView:
    features = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x).reshape(-1)), x.shape[1])
    return ctx.data.load_from_arrow(pa.table({"Features": features, "Label": pa.array(y)}))


def logistic_data(rng: np.random.Generator, rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((rows, features), dtype=np.float32)
    w = np.random.default_rng(1234).standard_normal(features)
    return x, rng.random(rows) < expit(x.astype(np.float64) @ w + 0.25)


def first_fit(fit: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fit()
    return time.perf_counter() - start


def sgd_log() -> SGDClassifier:
    return SGDClassifier(loss="log_loss", random_state=0)


# ------------------------------------------------------------------------------------------------


def bench_breast(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> list[Check]:
    if not (MLNET / "breast-cancer.txt").exists():
        console.print(f"[yellow]breast: {MLNET} not found, skipped[/]")
        return []

    data = ctx.data.load_from_text_file(MLNET / "breast-cancer.txt", BreastCancer)
    data = ctx.transforms.normalize_min_max("Features").fit(data).transform(data)
    x_all, y_all = data.column("Features").astype(np.float64), data.column("Label") > 0
    ok = np.isfinite(x_all).all(axis=1)
    x, y = x_all[ok], y_all[ok]
    trainer = ctx.binary_classification.trainers.sdca_logistic_regression(
        maximum_number_of_iterations=5, convergence_check_frequency=9
    )
    compile_s = first_fit(lambda: trainer.fit(data))
    times, last = alternate({"onnxpipe": lambda: trainer.fit(data), "sgd": lambda: sgd_log().fit(x, y)}, rounds)
    scores = last["onnxpipe"].transform(data).column("Score")[ok]
    auc = float(roc_auc_score(y, scores))
    accuracy = float(accuracy_score(y, scores > 0))
    sgd_auc = float(roc_auc_score(y, last["sgd"].decision_function(x)))
    lr_auc = float(roc_auc_score(y, LogisticRegression(max_iter=10_000).fit(x, y).decision_function(x)))
    size = f"{len(y)} x 9 (train = test)"
    return [
        Check(
            "SDCA LR AUC vs ML.NET",
            size,
            "AUC",
            auc,
            0.995458,
            "ML.NET SDCA baseline",
            "|Δ|",
            abs(auc - 0.995458),
            "<=",
            AUC_TOLERANCE,
            note=f"accuracy {accuracy:.6f} (ML.NET 0.961933); first fit {compile_s:.2f} s (compile / cache load)",
        ),
        Check(
            "SDCA LR AUC vs sklearn LR",
            size,
            "AUC",
            auc,
            lr_auc,
            "LogisticRegression()",
            "|Δ|",
            abs(auc - lr_auc),
            "<=",
            AUC_TOLERANCE,
            note=f"SGDClassifier(log_loss) AUC {sgd_auc:.6f}",
        ),
        Check(
            "SDCA LR fit time vs SGD",
            size,
            "ms",
            1e3 * median(times["onnxpipe"]),
            1e3 * median(times["sgd"]),
            "SGDClassifier(log_loss)",
            "ratio",
            median(times["onnxpipe"]) / median(times["sgd"]),
            "",
            note="informative: tiny data, fixed costs dominate",
            samples=times,
        ),
    ]


def bench_synthetic(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> list[Check]:
    n, n_test, d = (200_000 if args.quick else 1_000_000), 200_000, 20
    x, y = logistic_data(np.random.default_rng(args.seed), n + n_test, d)
    x_train, y_train, x_test, y_test = x[:n], y[:n], x[n:], y[n:]
    train_view = view(ctx, x_train, y_train)
    test_view = view(ctx, x_test, y_test)
    trainer = ctx.binary_classification.trainers.sdca_logistic_regression()
    compile_s = first_fit(lambda: trainer.fit(view(ctx, x_train[:1000], y_train[:1000])))
    with console.status(f"synthetic: {rounds} rounds on {n:,} x {d}"):
        times, last = alternate(
            {"onnxpipe": lambda: trainer.fit(train_view), "sgd": lambda: sgd_log().fit(x_train, y_train)}, rounds
        )
    auc = float(roc_auc_score(y_test, last["onnxpipe"].transform(test_view).column("Score")))
    sgd = last["sgd"]
    sgd_auc = float(roc_auc_score(y_test, sgd.decision_function(x_test)))
    lr = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    lr_auc = float(roc_auc_score(y_test, lr.decision_function(x_test)))
    size = f"{n:,} x {d}"
    ratio = median(times["onnxpipe"]) / median(times["sgd"])
    return [
        Check(
            "SDCA LR test AUC vs SGD",
            size,
            "AUC",
            auc,
            sgd_auc,
            "SGDClassifier(log_loss)",
            "|Δ|",
            abs(auc - sgd_auc),
            "<=",
            AUC_TOLERANCE,
            note=f"LogisticRegression AUC {lr_auc:.6f} (|Δ| {abs(auc - lr_auc):.2g}); SGD n_iter {sgd.n_iter_}",
        ),
        Check(
            "SDCA LR fit time vs SGD",
            size,
            "s",
            median(times["onnxpipe"]),
            median(times["sgd"]),
            "SGDClassifier(log_loss).fit",
            "ratio",
            ratio,
            "<=",
            SDCA_TIME_RATIO,
            note=f"auto: 3 passes, l2 1e-5, a check per pass; first fit {compile_s:.2f} s (compile / cache load)",
            samples=times,
        ),
    ]


def bench_multiclass(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> list[Check]:
    checks: list[Check] = []
    trainer = ctx.multiclass_classification.trainers.sdca_maximum_entropy()
    if (MLNET / "iris.txt").exists():
        table = np.loadtxt(MLNET / "iris.txt", comments="#")
        x, y = table[:, 1:].astype(np.float32), table[:, 0].astype(np.int64)
        x = x / np.abs(x).max(axis=0)  # ML.NET's min-max with fix_zero (all features positive)
        data = view(ctx, x, y)
        compile_s = first_fit(lambda: trainer.fit(data))
        times, last = alternate(
            {"onnxpipe": lambda: trainer.fit(data), "sklearn": lambda: LogisticRegression(max_iter=1000).fit(x, y)},
            rounds,
        )
        proba = np.asarray(last["onnxpipe"].transform(data).column("Score"), dtype=np.float64)
        proba /= proba.sum(axis=1, keepdims=True)  # float32 softmax: sums within 1e-7 of 1
        sk_proba = last["sklearn"].predict_proba(x)
        macro = float(np.mean([(proba.argmax(1)[y == c] == c).mean() for c in range(3)]))
        sk_macro = float(np.mean([(sk_proba.argmax(1)[y == c] == c).mean() for c in range(3)]))
        checks.append(
            Check(
                "SDCA maxent iris macro accuracy",
                "150 x 4 (train = test)",
                "acc",
                macro,
                sk_macro,
                "LogisticRegression(multinomial)",
                "ML.NET 0.98 - acc",
                0.98 - macro,
                "<=",
                0.0,
                note=f"log-loss {log_loss(y, proba):.4f} (ML.NET 0.06 ± 0.01), sklearn {log_loss(y, sk_proba):.4f}; "
                f"fit {1e3 * median(times['onnxpipe']):.1f} ms vs {1e3 * median(times['sklearn']):.1f} ms; "
                f"first fit {compile_s:.2f} s",
                samples=times,
            )
        )
    n, n_test, d, k = (50_000 if args.quick else 200_000), 50_000, 20, 5
    rng = np.random.default_rng(args.seed + 1)
    x = rng.standard_normal((n + n_test, d), dtype=np.float32)
    logits = x.astype(np.float64) @ np.random.default_rng(99).standard_normal((d, k))
    y = np.array([rng.choice(k, p=p) for p in softmax(logits, axis=1)], dtype=np.int64)
    train, test = view(ctx, x[:n], y[:n]), view(ctx, x[n:], y[n:])
    with console.status(f"multiclass: {rounds} rounds on {n:,} x {d}, {k} classes"):
        times, last = alternate(
            {
                "onnxpipe": lambda: trainer.fit(train),
                "sklearn": lambda: LogisticRegression(max_iter=1000).fit(x[:n], y[:n]),
            },
            rounds,
        )
    predicted = np.asarray(last["onnxpipe"].transform(test).column("PredictedLabel"))
    accuracy = float((predicted == y[n:]).mean())
    sk_accuracy = float(accuracy_score(y[n:], last["sklearn"].predict(x[n:])))
    checks.append(
        Check(
            "SDCA maxent synthetic accuracy",
            f"{n:,} x {d}, {k} classes",
            "acc",
            accuracy,
            sk_accuracy,
            "LogisticRegression(multinomial)",
            "|Δ|",
            abs(accuracy - sk_accuracy),
            "<=",
            MULTICLASS_ACCURACY_TOLERANCE,
            note=f"held out; pairwise log loss (ML.NET's) vs softmax; fit {median(times['onnxpipe']):.2f} s vs "
            f"{median(times['sklearn']):.2f} s (informative)",
            samples=times,
        )
    )
    return checks


def bench_perceptron(args: argparse.Namespace, ctx: op.MLContext, rounds: int) -> list[Check]:
    n, d, epochs = (100_000 if args.quick else 300_000), 8, 10
    x, y = logistic_data(np.random.default_rng(args.seed + 2), n, d)
    data = view(ctx, x, y)
    trainer = ctx.binary_classification.trainers.averaged_perceptron(number_of_iterations=epochs)
    compile_s = first_fit(lambda: trainer.fit(view(ctx, x[:100], y[:100])))

    def sklearn_fit() -> SGDClassifier:
        peer = SGDClassifier(
            loss="perceptron",
            penalty=None,
            learning_rate="constant",
            eta0=1.0,
            average=True,
            max_iter=epochs,
            tol=None,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return peer.fit(x, y)

    with console.status(f"perceptron: {rounds} rounds on {n:,} x {d}, {epochs} epochs"):
        times, last = alternate({"onnxpipe": lambda: trainer.fit(data), "sklearn": sklearn_fit}, rounds)
    accuracy = float(accuracy_score(y, np.asarray(last["onnxpipe"].transform(data).column("PredictedLabel"))))
    sk_accuracy = float(accuracy_score(y, last["sklearn"].predict(x)))
    return [
        Check(
            "averaged perceptron fit time",
            f"{n:,} x {d}, {epochs} epochs",
            "s",
            median(times["onnxpipe"]),
            median(times["sklearn"]),
            "SGDClassifier(perceptron, average=True)",
            "ratio",
            median(times["onnxpipe"]) / median(times["sklearn"]),
            "<=",
            PERCEPTRON_TIME_RATIO,
            note=f"train accuracy {accuracy:.4f} vs {sk_accuracy:.4f}; first fit {compile_s:.2f} s; "
            "the Python loop took ~24 s",
            samples=times,
        )
    ]


def print_checks(title: str, checks: list[Check]) -> None:
    table = Table(title=title)
    for name in ("case", "data", "unit", "onnxpipe", "peer", "ratio", "judged", "target", "", "notes"):
        table.add_column(name, justify="right" if name in ("onnxpipe", "peer", "ratio", "judged", "target") else "left")
    for c in checks:
        mark = {True: "[green]OK[/]", False: "[red]MISS[/]", None: ""}[c.passed]
        target = c.target_text.replace(">=", "≥").replace("<=", "≤")
        table.add_row(
            c.case,
            c.data,
            c.unit,
            f"{c.value:.6g}",
            f"{c.peer:.6g}",
            f"{c.ratio:.3f}",
            f"{c.judged:.4g}",
            target,
            mark,
            c.note,
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    benches = {
        "breast": bench_breast,
        "synthetic": bench_synthetic,
        "multiclass": bench_multiclass,
        "perceptron": bench_perceptron,
    }
    ctx = op.MLContext(seed=args.seed)
    checks: list[Check] = []
    seconds: dict[str, float] = {}
    for name in (s for s in SECTIONS if s in only):
        start = time.perf_counter()
        checks.extend(benches[name](args, ctx, args.rounds))
        seconds[name] = time.perf_counter() - start
        console.print(f"[bold]{name}[/] done in {seconds[name]:.1f} s")
    print_checks(f"SDCA and averaged perceptron vs scikit-learn{' (quick)' if args.quick else ''}", checks)
    params = {
        "quick": args.quick,
        "sections": only,
        "rounds": args.rounds,
        "seed": args.seed,
        "section_seconds": seconds,
        "versions": {"scikit-learn": sklearn.__version__},
    }
    subset = "-" + "-".join(only) if set(only) != set(SECTIONS) else ""
    write_results("bench_sdca" + subset + ("-quick" if args.quick else ""), params, checks)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
