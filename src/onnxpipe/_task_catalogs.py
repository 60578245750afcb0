"""The task catalogs of ``MLContext``: ``binary_classification``, ``regression`` (and their
``trainers``), each with ``evaluate`` and ``cross_validate``. Thin one-liners over the trainer
and evaluation modules; the context's seed is the default seed."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Generic, TypeVar

from onnxpipe._catalog import Catalog, entry
from onnxpipe.core import Estimator, Transformer
from onnxpipe.data import DataView, cross_validation_folds
from onnxpipe.evaluation import (
    BinaryClassificationMetrics,
    ClusteringMetrics,
    MulticlassClassificationMetrics,
    RegressionMetrics,
    evaluate_binary,
    evaluate_clustering,
    evaluate_multiclass,
    evaluate_regression,
)
from onnxpipe.trainers import clustering, linear, multiclass, trees
from onnxpipe.trainers import fast_tree as fast_tree_module
from onnxpipe.trainers import sdca as sdca_module

if TYPE_CHECKING:
    from onnxpipe.context import MLContext

__all__ = [
    "BinaryClassificationCatalog",
    "ClusteringCatalog",
    "CrossValidationResult",
    "MulticlassClassificationCatalog",
    "RegressionCatalog",
]

M = TypeVar("M")


@dataclasses.dataclass(frozen=True)
class CrossValidationResult(Generic[M]):
    """One fold: the model trained on the other folds, its metrics and scores on this fold."""

    fold: int
    model: Transformer
    metrics: M
    scored_test_data: DataView


class _SupervisedCatalog(Catalog, Generic[M]):
    """What the supervised task catalogs share: ``cross_validate`` over their own ``evaluate``."""

    def evaluate(self, data: DataView, label_column_name: str = "Label") -> M:
        raise NotImplementedError

    def cross_validate(
        self,
        data: DataView,
        estimator: Estimator,
        number_of_folds: int = 5,
        label_column_name: str = "Label",
        *,
        stratification_column: str | None = None,
        seed: int | None = None,
    ) -> list[CrossValidationResult[M]]:
        """Train on k-1 folds and evaluate on the remaining one, for each of the k folds (rows
        sharing a ``stratification_column`` value stay in one fold)."""
        folds = cross_validation_folds(
            data,
            number_of_folds,
            seed=self._ctx.seed if seed is None else seed,
            stratification_column=stratification_column,
        )
        results = []
        for i, fold in enumerate(folds):
            model = estimator.fit(fold.train_set)
            scored = model.transform(fold.test_set)
            results.append(CrossValidationResult(i, model, self.evaluate(scored, label_column_name), scored))
        return results


class BinaryClassificationTrainers(Catalog):
    """``ctx.binary_classification.trainers``."""

    path = "binary_classification.trainers"

    lbfgs_logistic_regression = entry(linear.LbfgsLogisticRegressionBinaryTrainer)
    averaged_perceptron = entry(linear.AveragedPerceptronTrainer)
    linear_svm = entry(linear.LinearSvmTrainer)
    light_gbm = entry(trees.LightGbmBinaryTrainer)
    fast_forest = entry(trees.FastForestBinaryTrainer)
    fast_tree = entry(fast_tree_module.FastTreeBinaryTrainer)
    sdca_logistic_regression = entry(sdca_module.SdcaLogisticRegressionBinaryTrainer)
    sdca_non_calibrated = entry(sdca_module.SdcaNonCalibratedBinaryTrainer)


class BinaryClassificationCatalog(_SupervisedCatalog[BinaryClassificationMetrics]):
    """``ctx.binary_classification``: trainers, ``evaluate``, ``cross_validate``."""

    path = "binary_classification"

    def __init__(self, ctx: MLContext) -> None:
        super().__init__(ctx)
        self.trainers = BinaryClassificationTrainers(ctx)

    def evaluate(
        self,
        data: DataView,
        label_column_name: str = "Label",
        score_column_name: str = "Score",
        probability_column_name: str | None = "Probability",
        predicted_label_column_name: str | None = "PredictedLabel",
    ) -> BinaryClassificationMetrics:
        """Accuracy, AUC, AUPRC, F1, precision, recall, log loss and the confusion matrix."""
        if probability_column_name is not None and probability_column_name not in data.schema:
            probability_column_name = None  # non-calibrated trainers have no Probability column
        return evaluate_binary(
            data, label_column_name, score_column_name, probability_column_name, predicted_label_column_name
        )


class RegressionTrainers(Catalog):
    """``ctx.regression.trainers``."""

    path = "regression.trainers"

    ols = entry(linear.OlsTrainer)
    lbfgs_poisson_regression = entry(linear.LbfgsPoissonRegressionTrainer)
    online_gradient_descent = entry(linear.OnlineGradientDescentTrainer)
    light_gbm = entry(trees.LightGbmRegressionTrainer)
    fast_forest = entry(trees.FastForestRegressionTrainer)
    fast_tree = entry(fast_tree_module.FastTreeRegressionTrainer)
    fast_tree_tweedie = entry(fast_tree_module.FastTreeTweedieTrainer)
    sdca = entry(sdca_module.SdcaRegressionTrainer)


class RegressionCatalog(_SupervisedCatalog[RegressionMetrics]):
    """``ctx.regression``: trainers, ``evaluate``, ``cross_validate``."""

    path = "regression"

    def __init__(self, ctx: MLContext) -> None:
        super().__init__(ctx)
        self.trainers = RegressionTrainers(ctx)

    def evaluate(
        self, data: DataView, label_column_name: str = "Label", score_column_name: str = "Score"
    ) -> RegressionMetrics:
        """Mean absolute / squared error, RMSE and R²."""
        return evaluate_regression(data, label_column_name, score_column_name)


class MulticlassClassificationTrainers(Catalog):
    """``ctx.multiclass_classification.trainers``."""

    path = "multiclass_classification.trainers"

    lbfgs_maximum_entropy = entry(multiclass.LbfgsMaximumEntropyTrainer)
    naive_bayes = entry(multiclass.NaiveBayesTrainer)
    one_versus_all = entry(multiclass.OneVersusAllTrainer)
    light_gbm = entry(trees.LightGbmMulticlassTrainer)
    sdca_maximum_entropy = entry(sdca_module.SdcaMaximumEntropyTrainer)
    sdca_non_calibrated = entry(sdca_module.SdcaNonCalibratedMulticlassTrainer)


class MulticlassClassificationCatalog(_SupervisedCatalog[MulticlassClassificationMetrics]):
    """``ctx.multiclass_classification``: trainers, ``evaluate``, ``cross_validate``."""

    path = "multiclass_classification"

    def __init__(self, ctx: MLContext) -> None:
        super().__init__(ctx)
        self.trainers = MulticlassClassificationTrainers(ctx)

    def evaluate(
        self,
        data: DataView,
        label_column_name: str = "Label",
        score_column_name: str = "Score",
        predicted_label_column_name: str = "PredictedLabel",
        top_k_prediction_count: int = 0,
    ) -> MulticlassClassificationMetrics:
        """Micro / macro accuracy, log loss (and its reduction), top-k accuracy, confusion matrix."""
        return evaluate_multiclass(
            data, label_column_name, score_column_name, predicted_label_column_name, top_k_prediction_count
        )


class ClusteringTrainers(Catalog):
    """``ctx.clustering.trainers``."""

    path = "clustering.trainers"

    kmeans = entry(clustering.KMeansTrainer)


class ClusteringCatalog(Catalog):
    """``ctx.clustering``: trainers and ``evaluate``."""

    path = "clustering"

    def __init__(self, ctx: MLContext) -> None:
        super().__init__(ctx)
        self.trainers = ClusteringTrainers(ctx)

    def evaluate(
        self,
        data: DataView,
        label_column_name: str | None = None,
        score_column_name: str = "Score",
        feature_column_name: str | None = "Features",
    ) -> ClusteringMetrics:
        """Average distance, Davies-Bouldin index, and NMI when labels exist."""
        return evaluate_clustering(data, label_column_name, score_column_name, feature_column_name)
