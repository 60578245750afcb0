"""What a notebook and ``onnxpipe.render`` show: ModelInfo (the inspect tables), Schema, DataView
(its first rows), fitted pipelines (their steps) and metrics, with names from files escaped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import onnxpipe
from onnxpipe import MLContext
from onnxpipe.errors import InvalidArgumentError

ctx = MLContext(seed=0)
DEMO = Path(onnxpipe.__file__).parent / "demo_data"
CRAFTED = "<script>alert(1)</script>[bold]x"


def _data() -> onnxpipe.DataView:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2)).astype(np.float32)
    return ctx.data.load_from_dict({"a": x[:, 0], CRAFTED: x[:, 1], "Label": x[:, 0] > 0})


def test_render_and_html_of_a_model_info() -> None:
    info = onnxpipe.inspect_model(DEMO / "iris_logreg.onnx")
    text = onnxpipe.render(info)
    assert "Input/Output" in text and "iris_logreg.onnx" in text
    html = info._repr_html_()
    assert html.startswith("<pre") and "Input/Output" in html


def test_schema_view_and_pipeline_display_escape_names_from_files() -> None:
    data = _data()
    for obj in (data.schema, data):
        assert "[bold]x" in onnxpipe.render(obj)  # printed as it is, not taken as rich markup
        html = obj._repr_html_()
        assert "&lt;script&gt;" in html and "<script>" not in html
    model = (
        ctx.transforms.concatenate("Features", "a", CRAFTED)
        .append(ctx.binary_classification.trainers.averaged_perceptron())
        .fit(data)
    )
    text = onnxpipe.render(model)
    assert "TransformerChain: 2 step(s)" in text and "concatenate" in text and "yes" in text
    assert "&lt;script&gt;" in model._repr_html_()
    metrics = ctx.binary_classification.evaluate(model.transform(data))
    assert "accuracy" in onnxpipe.render(metrics) and "accuracy" in metrics._repr_html_()


def test_render_says_what_it_shows() -> None:
    with pytest.raises(InvalidArgumentError, match=r"render shows ModelInfo, Schema, DataView"):
        onnxpipe.render(42)
