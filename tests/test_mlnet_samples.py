"""ML.NET's canonical samples (examples/mlnet_samples.py) reach ML.NET's published metrics for the
same data and options, and export to ONNX with parity in bare ONNX Runtime."""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from pathlib import Path

import pytest

from onnxpipe.errors import OnnxPipeWarning

ROOT = Path(__file__).resolve().parent.parent
MLNET = ROOT.parent / "shared" / "data" / "mlnet"
pytestmark = pytest.mark.skipif(
    not MLNET.is_dir(), reason=f"ML.NET's test data folder {MLNET} is absent (it is not part of a fresh clone)"
)


def _samples() -> object:
    spec = importlib.util.spec_from_file_location("mlnet_samples", ROOT / "examples" / "mlnet_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlnet_samples"] = module
    spec.loader.exec_module(module)
    return module


samples = _samples()


@pytest.mark.parametrize("name", list(samples.SAMPLES))  # type: ignore[attr-defined]
def test_sample_reaches_mlnet_baseline_and_exports_with_parity(name: str) -> None:
    _, metric, baseline, tolerance = samples.SAMPLES[name]  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OnnxPipeWarning)  # rows skipped for missing features, as ML.NET does
        result = samples.run(name, MLNET)  # type: ignore[attr-defined]
    value = getattr(result.metrics, metric)
    assert math.isfinite(value)
    if baseline is None:  # ML.NET publishes no figure for this trainer: a sanity floor
        assert value >= tolerance, f"{name}: {metric} {value}"
    else:
        assert abs(value - baseline) <= tolerance, f"{name}: {metric} {value} vs ML.NET's {baseline}"
    assert result.onnx_max_difference <= 1e-5, f"{name}: ONNX Runtime differs by {result.onnx_max_difference}"


def test_iris_key_idiom_gives_back_the_label_values() -> None:
    import onnxpipe as op

    ctx = op.MLContext(seed=1)
    model, data, metrics = samples.iris_lbfgs_maximum_entropy(ctx, MLNET)  # type: ignore[attr-defined]
    scored = model.transform(data)
    assert scored.schema["PredictedLabel"].type == op.schema.TensorType(op.schema.DType.FLOAT32)
    assert set(scored.column("PredictedLabel").tolist()) == {0.0, 1.0, 2.0}
    assert scored.schema["Score"].slot_names == ("0.0", "1.0", "2.0")
    # ML.NET's confusion table for this run: [50 0 0 | 0 48 2 | 0 1 49]
    assert metrics.confusion_matrix.counts[0] == (50, 0, 0)
    assert metrics.micro_accuracy == pytest.approx(0.98)
