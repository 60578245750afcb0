"""Typed chains at runtime: the code mypy checks in tests/typing_checks/chains.py runs on real data,
``last_transformer`` is the trained model, and what mypy must reject fails here too."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

import onnxpipe as op
from onnxpipe.core import EstimatorChain, TransformerChain
from onnxpipe.errors import InvalidArgumentError
from onnxpipe.trainers.linear import LinearBinaryModel
from onnxpipe.transforms.normalization import AffineNormalizingTransformer

from .typing_checks import chains


@pytest.fixture(scope="module")
def data() -> op.DataView:
    return chains.binary_data()


@pytest.fixture(scope="module")
def model(data: op.DataView) -> TransformerChain[LinearBinaryModel]:
    return chains.transform_then_trainer(data)


def test_last_transformer_is_the_trained_model(data: op.DataView, model: TransformerChain[LinearBinaryModel]) -> None:
    assert isinstance(model, TransformerChain) and len(model) == 2
    assert isinstance(model.last_transformer, LinearBinaryModel)
    assert model.last_transformer is model.steps[-1] is model[-1]
    assert model.last_transformer.weights.shape == (2,)
    scored = model.transform(data)
    assert "Probability" in scored.schema.names


def test_the_checked_chains_run(data: op.DataView, model: TransformerChain[LinearBinaryModel]) -> None:
    three = chains.three_steps(data)
    assert [type(s).__name__ for s in three.steps] == [
        "ColumnConcatenatingTransformer",
        "AffineNormalizingTransformer",
        "LinearBinaryModel",
    ]
    chains.single_estimators(data)
    chains.trivial_estimator_appends(data, model.last_transformer)
    chains.transformer_chain_appends(data, model)


def test_trivial_estimator_appends_keep_their_runtime_kind(model: TransformerChain[LinearBinaryModel]) -> None:
    concatenate = op.MLContext().transforms.concatenate("Features", "A", "B")
    before_estimator = concatenate.append(op.MLContext().transforms.copy_columns("F2", "Features"))
    assert type(before_estimator) is EstimatorChain and len(before_estimator) == 2
    before_transformer = concatenate.append(model.last_transformer)
    assert type(before_transformer) is TransformerChain
    assert before_transformer.last_transformer is model.last_transformer
    spliced = concatenate.append(model)  # a chain's steps are spliced in
    assert len(spliced) == 3 and spliced.last_transformer is model.last_transformer


def test_the_text_catalog_runs() -> None:
    rng = np.random.default_rng(1)
    words = np.array(["good day", "bad day", "good film", "bad film", "great show", "awful show"])
    picks = rng.integers(0, len(words), size=40)
    text = op.MLContext().data.load_from_dict({"Text": words[picks], "Label": picks % 2 == 0})
    chains.text_catalog(text)


def test_what_mypy_rejects_fails_at_runtime(data: op.DataView, model: TransformerChain[LinearBinaryModel]) -> None:
    with pytest.raises(TypeError, match="an EstimatorChain holds estimators"):
        chains.rejected_fitted_model_after_estimator(model.last_transformer)
    with pytest.raises(TypeError, match="a TransformerChain holds transformers"):
        chains.rejected_estimator_after_fitted_chain(model)
    # These two run: their annotations are the lies mypy catches.
    wrong = chains.rejected_wrong_last_step(data)
    assert not isinstance(wrong.last_transformer, AffineNormalizingTransformer)
    by_hand = chains.rejected_chain_typed_by_hand(model.last_transformer)
    assert by_hand.last_transformer is model.last_transformer


def test_an_empty_chain_has_no_last_transformer(data: op.DataView) -> None:
    with pytest.raises(InvalidArgumentError, match=r"the chain is empty, so it has no last transformer"):
        TransformerChain().last_transformer  # noqa: B018
    with pytest.raises(InvalidArgumentError, match=r"the chain is empty"):
        EstimatorChain().fit(data).last_transformer  # noqa: B018


def test_typed_chains_pickle_and_save_as_before(data: op.DataView, model: TransformerChain[LinearBinaryModel]) -> None:
    copy = pickle.loads(pickle.dumps(model))
    assert copy == model and isinstance(copy.last_transformer, LinearBinaryModel)
    assert model.__reduce__() == (TransformerChain, (list(model.steps),))
    file = io.BytesIO()
    op.MLContext().model.save(model, data, file)
    file.seek(0)
    loaded, _ = op.MLContext().model.load(file)
    assert isinstance(loaded, TransformerChain) and loaded == model
    assert isinstance(loaded.last_transformer, LinearBinaryModel)
