"""Real pretrained models shipped inside PyPI wheels, scored as their own packages feed them,
through the classes generate_schema_code writes, equal to bare ONNX Runtime bit for bit.

* magika 1.0.3 (Google's file-type detector, tf2onnx): ``bytes int32[unk__214, 2048]`` ->
  ``target_label float32[unk__215, 214]``, fed 2048 byte values per file;
* silero-vad 6.2.3 (voice activity, stateful): ``input float32[?, ?]`` audio chunks of 512 samples,
  ``state float32[2, ?, 128]`` carried from call to call, ``sr int64`` the sample rate.

The packages are installed without their dependencies (torch...) by ``make test``; only their
model files are read.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnxpipe as op
from onnxpipe.runtime import describe_model

ctx = op.MLContext()


def _model(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} (a test dependency carrying a real model) is not installed; run make test")
    return Path(spec.submodule_search_locations[0]) / relative


def _classes(path: Path) -> types.ModuleType:
    """The generated schema classes, as an importable module (our own generated code)."""
    module = types.ModuleType(f"schema_{path.stem}_{abs(hash(str(path)))}")
    sys.modules[module.__name__] = module
    exec(op.generate_schema_code(describe_model(onnx.load(path))), vars(module))
    return module


def _bare(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def test_magika_scores_files_like_bare_onnxruntime() -> None:
    path = _model("magika", "models/standard_v3_3/model.onnx")
    classes = _classes(path)
    model = ctx.transforms.apply_onnx_model(path).fit(ctx.data.load_from_enumerable([], classes.OnnxInput))
    assert model.batch_axes["bytes"].is_batch  # tf2onnx's unk__214 is a batch
    engine = ctx.model.create_prediction_engine(model, classes.OnnxInput, classes.OnnxOutput)
    files = np.random.default_rng(0).integers(0, 256, size=(5, 2048)).astype(np.int32)
    (want,) = _bare(path, {"bytes": files})  # one call of 5 rows (kernels may differ from 5 calls of 1)
    one = engine.predict(classes.OnnxInput(files[:1]))
    np.testing.assert_array_equal(np.asarray(one.target_label).reshape(1, -1), _bare(path, {"bytes": files[:1]})[0])
    batch = engine.predict_batch([classes.OnnxInput(f[None]) for f in files])
    np.testing.assert_array_equal(np.stack([np.asarray(o.target_label).reshape(-1) for o in batch]), want)
    scored = model.transform(
        ctx.data.load_from_enumerable([classes.OnnxInput(f[None]) for f in files], classes.OnnxInput)
    )
    np.testing.assert_array_equal(np.asarray(scored.column("target_label")).reshape(5, -1), want)


@pytest.mark.parametrize("name", ["silero_vad.onnx", "silero_vad_16k_op15.onnx"])
def test_silero_vad_carries_its_state_like_bare_onnxruntime(name: str) -> None:
    path = _model("silero_vad", f"data/{name}")
    classes = _classes(path)
    model = ctx.transforms.apply_onnx_model(path).fit(ctx.data.load_from_enumerable([], classes.OnnxInput))
    engine = ctx.model.create_prediction_engine(model, classes.OnnxInput, classes.OnnxOutput)
    audio = (np.random.default_rng(1).standard_normal((4, 1, 512)) * 0.1).astype(np.float32)
    sr = np.int64(16000)
    state = np.zeros((2, 1, 128), np.float32)
    bare_state = state
    for chunk in audio:  # the package's own loop: each call's stateN is the next call's state
        out = engine.predict(classes.OnnxInput(chunk, state, sr))
        want_out, want_state = _bare(path, {"input": chunk, "state": bare_state, "sr": np.array(16000, np.int64)})
        np.testing.assert_array_equal(np.asarray(out.output).reshape(want_out.shape), want_out)
        state = np.asarray(out.state_n).reshape(want_state.shape)
        np.testing.assert_array_equal(state, want_state)
        bare_state = want_state
