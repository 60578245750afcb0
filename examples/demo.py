"""`make demo`: the main job on bundled data, nothing downloaded.

1. inspect a bundled ONNX model (a scikit-learn iris classifier converted with skl2onnx);
2. print the schema classes generated for it;
3. score the bundled iris data set through a pipeline ending in ``apply_onnx_model``, both as
   a lazy batch transform and through a typed prediction engine, and show the results;
4. train a pipeline on the same data, evaluate it, convert it to ONNX, inspect the export, apply
   it back with typed classes and a prediction engine, and show parity with Python.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

import onnxpipe as op
from onnxpipe import ColumnName, LoadColumn, VectorType
from onnxpipe.onnx._inspect import generate_schema_code, render_model_info

DEMO = Path(str(files("onnxpipe") / "demo_data"))
console = Console()


@dataclass
class IrisRow:
    """One line of iris.csv."""

    sepal_length: Annotated[float, LoadColumn(0)]
    sepal_width: Annotated[float, LoadColumn(1)]
    petal_length: Annotated[float, LoadColumn(2)]
    petal_width: Annotated[float, LoadColumn(3)]
    species: Annotated[str, LoadColumn(4)]


@dataclass
class Flower:
    """What the prediction engine takes: the four measurements as one vector."""

    features: Annotated[npt.NDArray[np.float32], VectorType(1, 4)]


@dataclass
class Prediction:
    label: Annotated[npt.NDArray[np.str_], ColumnName("output_label"), VectorType(1)]
    probabilities: Annotated[list[dict[str, float]], ColumnName("output_probability")]


def main() -> None:
    model_file = DEMO / "iris_logreg.onnx"
    ctx = op.MLContext(seed=0)

    console.rule("[bold]1. Inspect the model")
    info = op.inspect_model(model_file)
    console.print(render_model_info(info))

    console.rule("[bold]2. Schema classes generated for it (onnxpipe schema MODEL)")
    console.print(Syntax(generate_schema_code(info), "python", theme="ansi_dark"))

    console.rule("[bold]3. Score iris.csv through a pipeline ending in apply_onnx_model")
    data = ctx.data.load_from_text_file(DEMO / "iris.csv", IrisRow, separator=",", has_header=True)
    pipeline = ctx.transforms.concatenate(
        "features", "sepal_length", "sepal_width", "petal_length", "petal_width"
    ).append(ctx.transforms.apply_onnx_model(model_file))
    model = pipeline.fit(data)
    scored = model.transform(data)  # lazy: nothing is read or scored until a column is asked for
    labels = scored.column("output_label")[:, 0]
    truth = np.asarray(scored.column("species"))
    start = time.perf_counter()
    model.transform(data).to_arrow()
    elapsed = time.perf_counter() - start
    console.print(f"output schema: {scored.schema}")
    console.print(
        f"{len(labels)} rows; one pass (read CSV, concatenate, score) takes {elapsed * 1000:.1f} ms; "
        f"accuracy against the species column: [bold]{(labels == truth).mean():.3f}[/bold]"
    )
    sample = scored
    table = Table(title="every 30th row")
    for name in ("species", "output_label", "P(setosa)", "P(versicolor)", "P(virginica)"):
        table.add_column(name)
    probs = sample.column("output_probability")
    for i in range(0, 150, 30):
        p = probs[i][0]
        table.add_row(truth[i], labels[i], *(f"{p[k]:.3f}" for k in ("setosa", "versicolor", "virginica")))
    console.print(table)

    console.rule("[bold]4. Typed prediction engine")
    engine = ctx.model.create_prediction_engine(ctx.transforms.apply_onnx_model(model_file), Flower, Prediction)
    flower = Flower(features=np.array([6.1, 2.8, 4.7, 1.2], np.float32))
    out = engine.predict(flower)
    best = max(out.probabilities[0], key=out.probabilities[0].__getitem__)
    console.print(Panel(f"{flower}\n→ {out.label[0]!r} (P={out.probabilities[0][best]:.3f})", title="engine.predict"))
    batch = engine.predict_batch(
        [Flower(np.array(r, np.float32)) for r in [[5.0, 3.4, 1.5, 0.2], [6.9, 3.1, 5.4, 2.1]]]
    )
    console.print("engine.predict_batch →", [p.label[0] for p in batch])


@dataclass
class Species:
    PredictedLabel: Annotated[str, ColumnName("PredictedLabel")]
    Score: Annotated[npt.NDArray[np.float32], VectorType(3)]


def train_and_export() -> None:
    ctx = op.MLContext(seed=0)
    console.rule("[bold]5. Train, evaluate, export to ONNX, apply back")
    data = ctx.data.load_from_text_file(DEMO / "iris.csv", IrisRow, separator=",", has_header=True)
    split = ctx.data.train_test_split(data, test_fraction=0.3)
    pipeline = (
        ctx.transforms.concatenate("Features", "sepal_length", "sepal_width", "petal_length", "petal_width")
        .append(ctx.transforms.normalize_min_max("Features"))
        .append(ctx.transforms.copy_columns("Label", "species"))
        .append(ctx.multiclass_classification.trainers.lbfgs_maximum_entropy())
    )
    model = pipeline.fit(split.train_set)
    metrics = ctx.multiclass_classification.evaluate(model.transform(split.test_set))
    console.print(metrics)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "iris_pipeline.onnx"
        ctx.model.convert_to_onnx(model, split.train_set, path, output_columns=["PredictedLabel", "Score"])
        console.print(render_model_info(op.inspect_model(path)))
        exported = ctx.transforms.apply_onnx_model(path)
        python_scores = model.transform(split.test_set).column("Score")
        onnx_scores = exported.transform(split.test_set).column("Score")
        console.print(
            f"parity on {len(python_scores)} test rows: max |Python - ONNX Runtime| = "
            f"{float(np.abs(python_scores - onnx_scores).max()):.2e}"
        )
        engine = ctx.model.create_prediction_engine(exported, IrisRow, Species)
        flower = IrisRow(6.1, 2.8, 4.7, 1.2, "?")
        console.print(f"engine.predict({flower}) → {engine.predict(flower).PredictedLabel!r}")


if __name__ == "__main__":
    main()
    train_and_export()
