"""apply_onnx_model(custom_op_libraries=[...]): models using onnxruntime-extensions' operators."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

import onnxpipe as op
from onnxpipe.errors import InvalidArgumentError, ModelLoadError
from onnxpipe.persistence import model_from_bytes, model_to_bytes
from onnxpipe.runtime import register_custom_op_library, registered_custom_op_libraries
from tests.models import bert_tokenizer

extensions = pytest.importorskip("onnxruntime_extensions", reason="pip install 'onnxpipe[extensions]'")

ctx = op.MLContext()
TEXTS = ["Hello world onnx", "on onnx", "unknown"]


def _bare(model: bytes, text: str) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions.get_library_path())
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return list(session.run(None, {"text": np.array([text], dtype=object)}))


def _texts() -> op.DataView:
    return ctx.data.load_from_arrow(pa.table({"text": pa.FixedSizeListArray.from_arrays(pa.array(TEXTS), 1)}))


def test_a_tokenizer_from_the_extensions_scores_like_bare_onnxruntime() -> None:
    model = bert_tokenizer()
    step = ctx.transforms.apply_onnx_model(model_bytes=model, custom_op_libraries=["onnxruntime-extensions"])
    scored = step.transform(_texts())
    for row, text in enumerate(TEXTS):
        for name, want in zip(("input_ids", "token_type_ids", "attention_mask"), _bare(model, text), strict=True):
            np.testing.assert_array_equal(scored.column(name)[row], want)
    assert list(scored.column("input_ids")[0]) == [2, 5, 6, 7, 8, 3]  # [CLS] hello world on ##nx [SEP]


def test_the_library_is_saved_by_name_and_found_again_on_load() -> None:
    step = ctx.transforms.apply_onnx_model(model_bytes=bert_tokenizer(), custom_op_libraries=["onnxruntime-extensions"])
    saved = model_to_bytes(step, _texts().schema)
    with zipfile.ZipFile(io.BytesIO(saved)) as zf:
        manifest = zf.read("manifest.json").decode()
    assert "onnxruntime-extensions" in manifest and extensions.get_library_path() not in manifest
    loaded, _ = model_from_bytes(saved)
    assert list(loaded.transform(_texts()).column("input_ids")[1]) == [2, 7, 7, 8, 3]


def test_without_the_library_onnxruntime_refuses_the_model_with_our_error() -> None:
    with pytest.raises(ModelLoadError, match=r"ONNX Runtime cannot load model .*BertTokenizer"):
        ctx.transforms.apply_onnx_model(model_bytes=bert_tokenizer())


def test_only_registered_names_are_accepted() -> None:
    with pytest.raises(InvalidArgumentError, match=r"names \['/tmp/evil.so'\], which are not registered"):
        ctx.transforms.apply_onnx_model(model_bytes=bert_tokenizer(), custom_op_libraries=["/tmp/evil.so"])
    register_custom_op_library("extensions-again", extensions.get_library_path)
    assert "extensions-again" in registered_custom_op_libraries()
    step = ctx.transforms.apply_onnx_model(model_bytes=bert_tokenizer(), custom_op_libraries=["extensions-again"])
    assert list(step.transform(_texts()).column("attention_mask")[2]) == [1, 1, 1]
