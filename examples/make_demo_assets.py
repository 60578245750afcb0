"""Regenerate the demo's bundled assets (needs the dev extras: scikit-learn, skl2onnx).

Writes ``src/onnxpipe/demo_data/iris.csv`` (Fisher's iris data as shipped by scikit-learn) and
``iris_logreg.onnx`` (a scikit-learn LogisticRegression converted by skl2onnx, with string class
labels and a ZipMap probability output), both small enough to live in the repository.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUT = Path(__file__).resolve().parents[1] / "src" / "onnxpipe" / "demo_data"


def main() -> None:
    iris = load_iris()
    species = np.array(iris.target_names)[iris.target]
    with (OUT / "iris.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        for row, name in zip(iris.data, species, strict=True):
            writer.writerow([*(f"{v:.1f}" for v in row), name])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        iris.data.astype(np.float32), species
    )
    onx = convert_sklearn(
        model, initial_types=[("features", FloatTensorType([None, 4]))], target_opset={"": 17, "ai.onnx.ml": 3}
    )
    onx.producer_name = "skl2onnx"
    onx.doc_string = "Iris species from sepal and petal sizes (scikit-learn LogisticRegression)"
    (OUT / "iris_logreg.onnx").write_bytes(onx.SerializeToString())
    print(f"wrote {OUT}/iris.csv and iris_logreg.onnx")


if __name__ == "__main__":
    main()
