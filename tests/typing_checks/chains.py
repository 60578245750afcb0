"""What a type checker infers for chains built from the catalogs, checked two ways.

``make lint``'s mypy checks this file (``[tool.mypy] files`` in pyproject.toml): each
``assert_type`` fails it when an inferred type drifts (a catalog method, an ``append`` or a
``fit`` losing its type), and each ``# type: ignore[...]`` marks a call mypy must reject, since
``warn_unused_ignores`` fails the check once it accepts one. tests/test_typing.py runs the same
functions on real data, so that every call here also works (or, for the rejected ones, fails).
"""

from __future__ import annotations

from typing import assert_type

import numpy as np

import onnxpipe as op
from onnxpipe.core import Estimator, EstimatorChain, Transformer, TransformerChain
from onnxpipe.trainers.linear import LinearBinaryModel
from onnxpipe.transforms.columns import ColumnConcatenatingTransformer, ColumnCopyingTransformer
from onnxpipe.transforms.normalization import AffineNormalizingTransformer, CdfNormalizingTransformer
from onnxpipe.transforms.text.featurize import TextFeaturizingTransformer

ctx = op.MLContext(seed=0)


def binary_data() -> op.DataView:
    """Two float columns and a bool label that depends on them (40 rows)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=40).astype(np.float32)
    b = rng.normal(size=40).astype(np.float32)
    return ctx.data.load_from_dict({"A": a, "B": b, "Label": a + b > 0})


def transform_then_trainer(data: op.DataView) -> TransformerChain[LinearBinaryModel]:
    """A transform followed by a trainer: the fitted chain's last step is the trained model."""
    pipeline = ctx.transforms.concatenate("Features", "A", "B").append(
        ctx.binary_classification.trainers.sdca_logistic_regression()
    )
    assert_type(pipeline, EstimatorChain[LinearBinaryModel])
    model = pipeline.fit(data)
    assert_type(model, TransformerChain[LinearBinaryModel])
    assert_type(model.last_transformer, LinearBinaryModel)
    assert_type(model.last_transformer.weights, np.ndarray)  # no cast to reach the model's own API
    return model


def three_steps(data: op.DataView) -> TransformerChain[LinearBinaryModel]:
    """A chain is typed by its last step, whatever comes before it."""
    scaled = ctx.transforms.concatenate("Features", "A", "B").append(ctx.transforms.normalize_min_max("Features"))
    assert_type(scaled, EstimatorChain[AffineNormalizingTransformer])
    pipeline = scaled.append(ctx.binary_classification.trainers.lbfgs_logistic_regression())
    assert_type(pipeline, EstimatorChain[LinearBinaryModel])
    assert_type(scaled.fit(data).last_transformer, AffineNormalizingTransformer)
    # A chain appended to a chain is spliced in: typed by its last step, not as a chain.
    spliced = ctx.transforms.concatenate("Features", "A", "B").append(
        ctx.transforms.normalize_min_max("Features").append(ctx.binary_classification.trainers.averaged_perceptron())
    )
    assert_type(spliced, EstimatorChain[LinearBinaryModel])
    return assert_type(pipeline.fit(data), TransformerChain[LinearBinaryModel])


def single_estimators(data: op.DataView) -> None:
    """``fit`` of one estimator returns what it fits; a trivial estimator returns itself."""
    concatenate = ctx.transforms.concatenate("Features", "A", "B")
    concatenated = assert_type(concatenate.fit(data), ColumnConcatenatingTransformer)
    features = concatenated.transform(data)
    assert_type(ctx.binary_classification.trainers.sdca_logistic_regression().fit(features), LinearBinaryModel)
    # normalize_mean_variance fits one of two transformers, depending on use_cdf.
    assert_type(
        ctx.transforms.normalize_mean_variance("A").fit(data),
        AffineNormalizingTransformer | CdfNormalizingTransformer,
    )
    # A bare Estimator (or chain) annotation means Estimator[Transformer].
    estimator: Estimator = concatenate
    assert_type(estimator.fit(data), Transformer)
    chain: EstimatorChain = concatenate.append(ctx.transforms.normalize_min_max("Features"))
    assert_type(chain.fit(data).last_transformer, Transformer)


def trivial_estimator_appends(data: op.DataView, model: LinearBinaryModel) -> None:
    """A trivial estimator stays an estimator chain before an estimator and becomes a
    transformer chain before a fitted transformer."""
    concatenate = ctx.transforms.concatenate("Features", "A", "B")
    before_estimator = concatenate.append(ctx.transforms.normalize_min_max("Features"))
    assert_type(before_estimator, EstimatorChain[AffineNormalizingTransformer])
    before_trivial = concatenate.append(ctx.transforms.copy_columns("Features2", "Features"))
    assert_type(before_trivial, EstimatorChain[ColumnCopyingTransformer])
    assert_type(before_trivial.fit(data).last_transformer, ColumnCopyingTransformer)
    before_transformer = concatenate.append(model)
    assert_type(before_transformer, TransformerChain[LinearBinaryModel])
    assert_type(before_transformer.last_transformer, LinearBinaryModel)
    # A trainer before a trivial estimator: the chain ends with the trivial estimator's own class.
    after_trainer = ctx.binary_classification.trainers.sdca_logistic_regression().append(
        ctx.transforms.copy_columns("Score2", "Score")
    )
    assert_type(after_trainer, EstimatorChain[ColumnCopyingTransformer])


def transformer_chain_appends(data: op.DataView, model: TransformerChain[LinearBinaryModel]) -> None:
    """Appending to a fitted chain: typed by the new last step."""
    copied = model.append(ctx.transforms.copy_columns("Score2", "Score"))
    assert_type(copied, TransformerChain[ColumnCopyingTransformer])
    scaler = ctx.transforms.normalize_min_max("A").fit(data)
    assert_type(scaler, AffineNormalizingTransformer)
    assert_type(scaler.append(model.last_transformer), TransformerChain[LinearBinaryModel])
    assert_type(scaler.append(model), TransformerChain[LinearBinaryModel])  # a chain is spliced in
    assert_type(model.append(model), TransformerChain[LinearBinaryModel])


def text_catalog(data: op.DataView) -> None:
    """The text catalog is typed too."""
    featurize = ctx.transforms.text.featurize_text("Features", "Text")
    assert_type(featurize.fit(data), TextFeaturizingTransformer)
    assert_type(
        featurize.append(ctx.binary_classification.trainers.averaged_perceptron()).fit(data).last_transformer,
        LinearBinaryModel,
    )


# Calls a type checker must reject (tests/test_typing.py checks that they fail at runtime too).


def rejected_fitted_model_after_estimator(model: LinearBinaryModel) -> object:
    """An estimator chain holds estimators, not fitted transformers."""
    return ctx.transforms.normalize_min_max("Features").append(model)  # type: ignore[call-overload]


def rejected_estimator_after_fitted_chain(model: TransformerChain[LinearBinaryModel]) -> object:
    """A fitted chain takes fitted transformers, not a trainer (only a trivial estimator is both)."""
    return model.append(ctx.binary_classification.trainers.averaged_perceptron())  # type: ignore[call-overload]


def rejected_wrong_last_step(data: op.DataView) -> TransformerChain[AffineNormalizingTransformer]:
    """A chain ending with a trainer does not end with a normalizer."""
    model: TransformerChain[AffineNormalizingTransformer] = transform_then_trainer(data)  # type: ignore[assignment]
    return model


def rejected_chain_typed_by_hand(model: LinearBinaryModel) -> TransformerChain[LinearBinaryModel]:
    """Only ``append`` and ``fit`` type a chain by its last step: one built from a list is a
    ``TransformerChain[Transformer]``, whatever it holds."""
    return TransformerChain([model])  # type: ignore[return-value]
