"""examples/text_classification.py: ML.NET's text-sample shapes on its German news data, each
trained, evaluated and (in the exportable configuration) checked against bare ONNX Runtime."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import onnxpipe as op
from onnxpipe.errors import OnnxPipeWarning

ROOT = Path(__file__).resolve().parent.parent
MLNET = ROOT.parent / "shared" / "data" / "mlnet"
pytestmark = pytest.mark.skipif(
    not MLNET.is_dir(), reason=f"ML.NET's test data folder {MLNET} is absent (it is not part of a fresh clone)"
)


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("text_classification", ROOT / "examples" / "text_classification.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["text_classification"] = module
    spec.loader.exec_module(module)
    return module


example = _example()


def test_sport_classifier_separates_the_classes() -> None:
    ctx = op.MLContext(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OnnxPipeWarning)
        _, data, metrics = example.sport_classifier(ctx, MLNET)
        held_out = example.sport_cross_validated_auc(ctx, MLNET)
    assert data.schema["Label"].type == op.schema.TensorType(op.schema.DType.BOOL)
    assert metrics.area_under_roc_curve > 0.99  # train == test, as ML.NET's sentiment sample scores
    assert held_out > 0.6  # 120 articles, 12 of them Sport


def test_topic_classifier_exports_with_parity() -> None:
    ctx = op.MLContext(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OnnxPipeWarning)
        model, data, metrics = example.exportable_topic_classifier(ctx, MLNET)
    assert metrics.micro_accuracy > 0.95
    scored = model.transform(data)
    assert set(scored.column("PredictedTopic").tolist()) <= set(data.column("Topic").tolist())
    assert scored.schema["Features"].type.__class__.__name__ == "SparseVectorType"
    same, score_difference = example.onnx_agrees(ctx, model, data)
    assert same and score_difference < 1e-5
