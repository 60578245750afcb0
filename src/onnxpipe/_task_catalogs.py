"""The task catalogs of ``MLContext``: ``binary_classification``, ``regression`` (and their
``trainers``), each with ``evaluate`` and ``cross_validate``. Thin one-liners over the trainer
and evaluation modules; the context's seed is the default seed."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Generic, TypedDict, TypeVar, Unpack

from onnxpipe.core import Estimator, Transformer
from onnxpipe.data import DataView, cross_validation_folds
from onnxpipe.evaluation import (
    BinaryClassificationMetrics,
    RegressionMetrics,
    evaluate_binary,
    evaluate_regression,
)
from onnxpipe.evaluation_multiclass import (
    ClusteringMetrics,
    MulticlassClassificationMetrics,
    evaluate_clustering,
    evaluate_multiclass,
)
from onnxpipe.trainers import clustering, linear, multiclass, trees
from onnxpipe.trainers.trees import LightGbmBinaryOptions, LightGbmOptions

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


class LbfgsOptions(TypedDict, total=False):
    """Options of the L-BFGS trainers (ML.NET's names; see ``onnxpipe.trainers.linear``)."""

    label_column_name: str
    feature_column_name: str
    example_weight_column_name: str | None
    l1_regularization: float
    l2_regularization: float
    optimization_tolerance: float
    history_size: int
    maximum_number_of_iterations: int
    enforce_non_negativity: bool


class FastForestOptions(TypedDict, total=False):
    """Options of the ``fast_forest`` trainers (a random forest on LightGBM)."""

    label_column_name: str
    feature_column_name: str
    example_weight_column_name: str | None
    number_of_trees: int
    number_of_leaves: int
    minimum_example_count_per_leaf: int
    feature_fraction: float
    feature_fraction_per_split: float
    bagging_example_fraction: float
    bagging_size: int
    maximum_bin_count_per_feature: int
    seed: int | None
    number_of_threads: int | None


@dataclasses.dataclass(frozen=True)
class CrossValidationResult(Generic[M]):
    """One fold: the model trained on the other folds, its metrics and scores on this fold."""

    fold: int
    model: Transformer
    metrics: M
    scored_test_data: DataView


class _SupervisedCatalog(Generic[M]):
    """What the supervised task catalogs share: ``cross_validate`` over their own ``evaluate``."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx

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


class BinaryClassificationTrainers:
    """``ctx.binary_classification.trainers``."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx

    def lbfgs_logistic_regression(self, **options: Unpack[LbfgsOptions]) -> linear.LbfgsLogisticRegressionBinaryTrainer:
        """Logistic regression by L-BFGS (outputs Score, Probability, PredictedLabel)."""
        return linear.LbfgsLogisticRegressionBinaryTrainer(**options)

    def averaged_perceptron(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        *,
        loss: str = "hinge",
        learning_rate: float = 1.0,
        decrease_learning_rate: bool = False,
        l2_regularization: float = 0.0,
        number_of_iterations: int = 10,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> linear.AveragedPerceptronTrainer:
        """Averaged perceptron (outputs Score and PredictedLabel; not calibrated)."""
        return linear.AveragedPerceptronTrainer(
            label_column_name,
            feature_column_name,
            loss,
            learning_rate,
            decrease_learning_rate,
            l2_regularization,
            number_of_iterations,
            shuffle=shuffle,
            seed=self._ctx.seed if seed is None else seed,
        )

    def linear_svm(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        *,
        number_of_iterations: int = 1,
        lambda_: float = 0.001,
        batch_size: int = 1,
        perform_projection: bool = False,
        no_bias: bool = False,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> linear.LinearSvmTrainer:
        """Linear SVM by Pegasos (outputs Score and PredictedLabel; not calibrated)."""
        return linear.LinearSvmTrainer(
            label_column_name,
            feature_column_name,
            example_weight_column_name,
            number_of_iterations,
            lambda_,
            batch_size,
            perform_projection,
            no_bias,
            shuffle=shuffle,
            seed=self._ctx.seed if seed is None else seed,
        )

    def light_gbm(self, **options: Unpack[LightGbmBinaryOptions]) -> trees.LightGbmBinaryTrainer:
        """Gradient-boosted trees on LightGBM (Score, Probability, PredictedLabel); needs ``onnxpipe[lightgbm]``."""
        options.setdefault("seed", self._ctx.seed)
        return trees.LightGbmBinaryTrainer(**options)

    def fast_forest(self, **options: Unpack[FastForestOptions]) -> trees.FastForestBinaryTrainer:
        """A random forest on LightGBM (Score, Probability, PredictedLabel); needs ``onnxpipe[lightgbm]``."""
        options.setdefault("seed", self._ctx.seed)
        return trees.FastForestBinaryTrainer(**options)


class BinaryClassificationCatalog(_SupervisedCatalog[BinaryClassificationMetrics]):
    """``ctx.binary_classification``: trainers, ``evaluate``, ``cross_validate``."""

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


class RegressionTrainers:
    """``ctx.regression.trainers``."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx

    def ols(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        *,
        l2_regularization: float = 1e-6,
    ) -> linear.OlsTrainer:
        """Ordinary least squares (outputs Score)."""
        return linear.OlsTrainer(label_column_name, feature_column_name, example_weight_column_name, l2_regularization)

    def lbfgs_poisson_regression(self, **options: Unpack[LbfgsOptions]) -> linear.LbfgsPoissonRegressionTrainer:
        """Poisson regression by L-BFGS (Score = exp(w·x + b))."""
        return linear.LbfgsPoissonRegressionTrainer(**options)

    def online_gradient_descent(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        *,
        loss: str = "squared",
        learning_rate: float = 0.1,
        decrease_learning_rate: bool = True,
        l2_regularization: float = 0.0,
        number_of_iterations: int = 1,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> linear.OnlineGradientDescentTrainer:
        """Online (stochastic) gradient descent on the squared loss."""
        return linear.OnlineGradientDescentTrainer(
            label_column_name,
            feature_column_name,
            loss,
            learning_rate,
            decrease_learning_rate,
            l2_regularization,
            number_of_iterations,
            shuffle=shuffle,
            seed=self._ctx.seed if seed is None else seed,
        )

    def light_gbm(self, **options: Unpack[LightGbmOptions]) -> trees.LightGbmRegressionTrainer:
        """Gradient-boosted regression trees on LightGBM; needs ``onnxpipe[lightgbm]``."""
        options.setdefault("seed", self._ctx.seed)
        return trees.LightGbmRegressionTrainer(**options)

    def fast_forest(self, **options: Unpack[FastForestOptions]) -> trees.FastForestRegressionTrainer:
        """A random regression forest on LightGBM; needs ``onnxpipe[lightgbm]``."""
        options.setdefault("seed", self._ctx.seed)
        return trees.FastForestRegressionTrainer(**options)


class RegressionCatalog(_SupervisedCatalog[RegressionMetrics]):
    """``ctx.regression``: trainers, ``evaluate``, ``cross_validate``."""

    def __init__(self, ctx: MLContext) -> None:
        super().__init__(ctx)
        self.trainers = RegressionTrainers(ctx)

    def evaluate(
        self, data: DataView, label_column_name: str = "Label", score_column_name: str = "Score"
    ) -> RegressionMetrics:
        """Mean absolute / squared error, RMSE and R²."""
        return evaluate_regression(data, label_column_name, score_column_name)


class MulticlassClassificationTrainers:
    """``ctx.multiclass_classification.trainers``."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx

    def lbfgs_maximum_entropy(self, **options: Unpack[LbfgsOptions]) -> multiclass.LbfgsMaximumEntropyTrainer:
        """Multinomial logistic regression by L-BFGS (Score: class probabilities)."""
        return multiclass.LbfgsMaximumEntropyTrainer(**options)

    def naive_bayes(
        self, label_column_name: str = "Label", feature_column_name: str = "Features"
    ) -> multiclass.NaiveBayesTrainer:
        """ML.NET's naive Bayes over binary (> 0) features."""
        return multiclass.NaiveBayesTrainer(label_column_name, feature_column_name)

    def one_versus_all(
        self,
        binary_estimator: Estimator,
        label_column_name: str = "Label",
        *,
        impute_missing_labels_as_negative: bool = False,
        maximum_calibration_example_count: int = 1_000_000_000,
        use_probabilities: bool = True,
    ) -> multiclass.OneVersusAllTrainer:
        """One binary model per class; the best score wins."""
        return multiclass.OneVersusAllTrainer(
            binary_estimator,
            label_column_name,
            impute_missing_labels_as_negative,
            maximum_calibration_example_count,
            use_probabilities,
        )

    def light_gbm(self, **options: Unpack[LightGbmOptions]) -> trees.LightGbmMulticlassTrainer:
        """Gradient-boosted trees on LightGBM (Score: class probabilities); needs ``onnxpipe[lightgbm]``."""
        options.setdefault("seed", self._ctx.seed)
        return trees.LightGbmMulticlassTrainer(**options)


class MulticlassClassificationCatalog(_SupervisedCatalog[MulticlassClassificationMetrics]):
    """``ctx.multiclass_classification``: trainers, ``evaluate``, ``cross_validate``."""

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


class ClusteringTrainers:
    """``ctx.clustering.trainers``."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx

    def kmeans(
        self,
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_clusters: int = 5,
        *,
        initialization_algorithm: str = "kmeans_plus_plus",
        optimization_tolerance: float = 1e-7,
        maximum_number_of_iterations: int = 1000,
        seed: int | None = None,
    ) -> clustering.KMeansTrainer:
        """k-means (k-means++ initialisation, seeded): Score = squared distances, PredictedLabel = cluster key."""
        return clustering.KMeansTrainer(
            feature_column_name,
            example_weight_column_name,
            number_of_clusters,
            initialization_algorithm,
            optimization_tolerance,
            maximum_number_of_iterations,
            self._ctx.seed if seed is None else seed,
        )


class ClusteringCatalog:
    """``ctx.clustering``: trainers and ``evaluate``."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx
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
