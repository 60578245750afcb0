"""ML.NET's FastTree trainers (boosted regression trees) on LightGBM's ``gbdt``: ``fast_tree`` for
binary classification and regression, and ``fast_tree_tweedie`` for regression.

Needs the optional extra ``onnxpipe[lightgbm]``. The fitted model is :class:`LightGbmModel`
(``onnxpipe.trainers.trees``): it holds LightGBM's text model, scores with LightGBM, saves and
loads like any component, and exports to one ``ai.onnx.ml`` TreeEnsembleRegressor with the same
values as ``transform`` (see that module).

Options, with ML.NET's names and defaults. The catalog's positional arguments, in ML.NET's order:
``label_column_name="Label"``, ``feature_column_name="Features"`` (a float32 or float64 vector of
known size; NaN is a missing value), ``example_weight_column_name=None``, ``number_of_leaves=20``,
``number_of_trees=100``, ``minimum_example_count_per_leaf=10``, ``learning_rate=0.2``. Keyword
options (ML.NET's ``TreeOptions``): ``maximum_bin_count_per_feature=255``, ``feature_fraction=1``
(the fraction of features each tree sees), ``feature_fraction_per_split=1``, ``bagging_size=0``
(draw a new sample of rows every ``bagging_size`` trees; 0 turns bagging off) and
``bagging_example_fraction=0.7`` (the sample's fraction of the rows), ``seed`` (None: 123,
FastTree's default; the catalogs pass the context's seed) and ``number_of_threads`` (None: every
core). Binary also ``unbalanced_sets=False``; Tweedie ``index=1.5``. Fits are deterministic for a
seed and thread count.

How the options become LightGBM's parameters (:meth:`lightgbm_params` returns them, and
``lightgbm.train(trainer.lightgbm_params(), lightgbm.Dataset(x, label=y),
num_boost_round=trainer.number_of_trees)`` trains exactly the model ``fit`` returns):
``boosting=gbdt``, ``num_leaves``, ``min_data_in_leaf``, ``learning_rate``, ``max_bin``,
``feature_fraction``, ``feature_fraction_bynode``, ``bagging_freq`` (= ``bagging_size``) and
``bagging_fraction``, and, as FastTree does:

* ``boost_from_average=False``: FastTree starts every row's score at 0 (no initial bias);
* ``lambda_l1 = lambda_l2 = 0`` and ``min_sum_hessian_in_leaf=0``: FastTree has no leaf
  regularization and limits leaves only by their number of examples;
* binary and Tweedie: ``max_delta_step = 100 / learning_rate``, so that no leaf's output exceeds
  FastTree's ``MaximumTreeOutput`` (100) after shrinkage; regression: no limit, as FastTree.

Outputs, as ML.NET's:

* ``fast_tree`` binary (``FastTreeBinaryTrainer``): ``Score`` (float32, the trees' sum),
  ``Probability`` (float32, ``1 / (1 + exp(-2 * learning_rate * Score))``, FastTree's Platt
  calibrator of slope ``-2 * learning_rate``) and ``PredictedLabel`` (bool, ``Score > 0``). The
  objective is LightGBM's ``binary`` with ``sigmoid = 2 * learning_rate``: the same logistic
  gradients and Newton leaf values as FastTree's. Labels are bool or the numbers 0/1.
  ``unbalanced_sets=True`` weighs the classes inversely to their counts (LightGBM's
  ``is_unbalance``; the same ratio as FastTree's ``1 / count`` scaling).
* ``fast_tree`` regression (``FastTreeRegressionTrainer``): ``Score`` (float32), least squares.
* ``fast_tree_tweedie`` (``FastTreeTweedieTrainer``): ``Score = exp(margin)`` (float32), the
  trees predicting the log of the mean. LightGBM's ``tweedie`` objective with
  ``tweedie_variance_power = index`` for ``1 <= index < 2`` and its ``gamma`` objective (the
  Tweedie deviance of power 2) for ``index == 2``. Labels must be >= 0 and not all 0.

How it differs from ML.NET's own FastTree (its managed MART implementation):

* **Trees.** Both grow leaf-wise (best-first) to ``number_of_leaves`` on histograms of at most
  ``maximum_bin_count_per_feature`` bins, but LightGBM chooses splits by the second-order gain
  ``G_L^2/H_L + G_R^2/H_R - G^2/H`` where FastTree fits a least-squares tree to the gradients
  (``G^2/n``) and sets Newton leaf values afterwards; the bin boundaries are LightGBM's too. For
  least-squares regression the two coincide up to binning. So the trees, scores and metrics
  differ: on ML.NET's breast-cancer baseline (``nl=5 mil=5 lr=0.25 iter=20 mb=255``, train ==
  test) ML.NET's FastTree has AUC 0.995370, accuracy 0.979971 and log-loss 0.092572; this
  trainer has AUC 0.998727, accuracy 0.985694 and log-loss 0.072639 (closer to ML.NET's own
  LightGBM baseline, AUC 0.998840).
* **Tweedie leaves** are LightGBM's Newton steps, not FastTree's closed-form
  ``log(sum y e^{(1-p)s} / sum e^{(2-p)s})``; FastTree silently clamps negative labels to 0,
  this trainer refuses them (a DataError naming the row).
* **Missing values.** FastTree skips training rows with a missing (NaN) feature; LightGBM trains
  on them and learns where NaN goes at each split. Both score every row.
* **Probability** uses the sigmoid that LightGBM writes in its model text, rounded to 6
  significant digits (``sigmoid:0.246914`` for a learning rate of 0.123456789): a relative
  difference of at most 5e-7 in the slope.
* **Not offered** (FastTree-only options, with no LightGBM counterpart): dropout
  (``DropoutRate``), best-step trees (``BestStepRankingRegressionTrees``), line search,
  pruning and early stopping on a validation set, ``Shrinkage``, ``MaximumTreeOutput`` (fixed
  at FastTree's 100), ``FeatureFirstUsePenalty``/``FeatureReusePenalty``, ``GainConfidenceLevel``,
  ``EntropyCoefficient``, ``Smoothing``, ``SparsifyThreshold``, ``FeatureFlocks``,
  ``HistogramPoolSize``, categorical splits, disk transposition, ``GetDerivativesSampleRate``,
  ``RandomStart``, ``AllowEmptyTrees``. Passing one is a TypeError naming it; the supported
  options are the ones above.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import component
from onnxpipe.errors import DataError
from onnxpipe.schema import TensorType
from onnxpipe.trainers.trees import BINARY, REGRESSION, _first_bad, _LightGbmTrainer, _show

__all__ = ["FastTreeBinaryTrainer", "FastTreeRegressionTrainer", "FastTreeTweedieTrainer"]

DEFAULT_SEED = 123
"""FastTree's ``Seed`` default, used when ``seed`` is None and no context gives one."""

MAXIMUM_TREE_OUTPUT = 100.0
"""FastTree's ``MaximumTreeOutput``: the largest leaf output after shrinkage (binary and Tweedie)."""


class _FastTreeTrainer(_LightGbmTrainer):
    """What the FastTree trainers share: ML.NET's options, LightGBM's ``gbdt`` without FastTree's
    missing features (no initial bias, no leaf regularization)."""

    _arg_names: ClassVar[tuple[str, ...]] = (
        "label_column_name",
        "feature_column_name",
        "example_weight_column_name",
        "number_of_leaves",
        "number_of_trees",
        "minimum_example_count_per_leaf",
        "learning_rate",
        "maximum_bin_count_per_feature",
        "feature_fraction",
        "feature_fraction_per_split",
        "bagging_size",
        "bagging_example_fraction",
        "seed",
        "number_of_threads",
    )
    _clamps_leaves: ClassVar[bool] = True
    """Whether FastTree limits this objective's leaf outputs to ``MAXIMUM_TREE_OUTPUT``."""

    number_of_leaves: int
    number_of_trees: int
    minimum_example_count_per_leaf: int
    learning_rate: float
    maximum_bin_count_per_feature: int
    feature_fraction: float
    feature_fraction_per_split: float
    bagging_size: int
    bagging_example_fraction: float

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_leaves: int = 20,
        number_of_trees: int = 100,
        minimum_example_count_per_leaf: int = 10,
        learning_rate: float = 0.2,
        *,
        maximum_bin_count_per_feature: int = 255,
        feature_fraction: float = 1.0,
        feature_fraction_per_split: float = 1.0,
        bagging_size: int = 0,
        bagging_example_fraction: float = 0.7,
        seed: int | None = None,
        number_of_threads: int | None = None,
    ) -> None:
        step = self._catalog
        self._set(
            label_column_name=_validation.column_name(label_column_name, "label_column_name", step),
            feature_column_name=_validation.column_name(feature_column_name, "feature_column_name", step),
            example_weight_column_name=_validation.column_name(
                example_weight_column_name, "example_weight_column_name", step, optional=True
            ),
            number_of_leaves=_validation.integer(number_of_leaves, "number_of_leaves", step, low=2),
            number_of_trees=_validation.integer(number_of_trees, "number_of_trees", step, low=1),
            minimum_example_count_per_leaf=_validation.integer(
                minimum_example_count_per_leaf, "minimum_example_count_per_leaf", step, low=1
            ),
            learning_rate=_validation.number(learning_rate, "learning_rate", step, low=0, low_open=True),
            maximum_bin_count_per_feature=_validation.integer(
                maximum_bin_count_per_feature, "maximum_bin_count_per_feature", step, low=2
            ),
            feature_fraction=_validation.number(
                feature_fraction, "feature_fraction", step, low=0, high=1, low_open=True
            ),
            feature_fraction_per_split=_validation.number(
                feature_fraction_per_split, "feature_fraction_per_split", step, low=0, high=1, low_open=True
            ),
            bagging_size=_validation.integer(bagging_size, "bagging_size", step, low=0),
            bagging_example_fraction=_validation.number(
                bagging_example_fraction, "bagging_example_fraction", step, low=0, high=1, low_open=True
            ),
            seed=_validation.integer(seed, "seed", step, low=0, optional=f"FastTree's default {DEFAULT_SEED}"),
            number_of_threads=_validation.thread_count(number_of_threads, "number_of_threads", step),
        )

    def _objective_params(self) -> dict[str, Any]:
        return {
            "boosting": "gbdt",
            "num_leaves": self.number_of_leaves,
            "min_data_in_leaf": self.minimum_example_count_per_leaf,
            "learning_rate": self.learning_rate,
            "max_bin": self.maximum_bin_count_per_feature,
            "feature_fraction": self.feature_fraction,
            "feature_fraction_bynode": self.feature_fraction_per_split,
            "bagging_freq": self.bagging_size,
            "bagging_fraction": self.bagging_example_fraction,
            # FastTree: every score starts at 0, leaves are not regularized and are limited only by
            # their number of examples, and (binary, Tweedie) outputs are clamped after shrinkage.
            "boost_from_average": False,
            "lambda_l1": 0.0,
            "lambda_l2": 0.0,
            "min_sum_hessian_in_leaf": 0.0,
            "max_delta_step": MAXIMUM_TREE_OUTPUT / self.learning_rate if self._clamps_leaves else 0.0,
        }

    def lightgbm_params(self, num_class: int | None = None) -> dict[str, Any]:
        """The parameters given to ``lightgbm.train``."""
        params = super().lightgbm_params(num_class)
        if self.seed is None:
            params["seed"] = DEFAULT_SEED
        return params

    def _num_boost_round(self) -> int:
        return self.number_of_trees


@component("fast_tree", catalog="binary_classification.trainers")
class FastTreeBinaryTrainer(_FastTreeTrainer):
    """``binary_classification.trainers.fast_tree``: boosted trees for bool (or 0/1) labels, as
    ML.NET's ``FastTreeBinaryTrainer``, on LightGBM.

    Outputs ``Score`` (the trees' sum), ``Probability`` (``1 / (1 + exp(-2 * learning_rate *
    Score))``) and ``PredictedLabel`` (``Score > 0``). ``unbalanced_sets`` weighs each class by the
    other's share of the rows. Options and the differences from ML.NET: see the module docstring.
    """

    _task = BINARY
    _arg_names: ClassVar[tuple[str, ...]] = (*_FastTreeTrainer._arg_names, "unbalanced_sets")

    unbalanced_sets: bool

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_leaves: int = 20,
        number_of_trees: int = 100,
        minimum_example_count_per_leaf: int = 10,
        learning_rate: float = 0.2,
        *,
        maximum_bin_count_per_feature: int = 255,
        feature_fraction: float = 1.0,
        feature_fraction_per_split: float = 1.0,
        bagging_size: int = 0,
        bagging_example_fraction: float = 0.7,
        seed: int | None = None,
        number_of_threads: int | None = None,
        unbalanced_sets: bool = False,
    ) -> None:
        super().__init__(
            label_column_name,
            feature_column_name,
            example_weight_column_name,
            number_of_leaves,
            number_of_trees,
            minimum_example_count_per_leaf,
            learning_rate,
            maximum_bin_count_per_feature=maximum_bin_count_per_feature,
            feature_fraction=feature_fraction,
            feature_fraction_per_split=feature_fraction_per_split,
            bagging_size=bagging_size,
            bagging_example_fraction=bagging_example_fraction,
            seed=seed,
            number_of_threads=number_of_threads,
        )
        self._set(unbalanced_sets=_validation.boolean(unbalanced_sets, "unbalanced_sets", self._catalog))

    def _objective_params(self) -> dict[str, Any]:
        # FastTree's logistic loss has the sigmoid parameter 2 * learning rate, and its Platt
        # calibrator the slope -2 * learning rate: LightGBM's sigmoid, in training and in Probability.
        return {
            **super()._objective_params(),
            "sigmoid": 2.0 * self.learning_rate,
            "is_unbalance": self.unbalanced_sets,
        }


@component("fast_tree", catalog="regression.trainers")
class FastTreeRegressionTrainer(_FastTreeTrainer):
    """``regression.trainers.fast_tree``: boosted least-squares regression trees, as ML.NET's
    ``FastTreeRegressionTrainer``, on LightGBM. ``Score`` is the trees' sum.

    Options and the differences from ML.NET: see the module docstring.
    """

    _task = REGRESSION
    _clamps_leaves = False  # FastTree's regression objective only shrinks its leaves


@component("fast_tree_tweedie", catalog="regression.trainers")
class FastTreeTweedieTrainer(_FastTreeTrainer):
    """``regression.trainers.fast_tree_tweedie``: boosted trees with the Tweedie loss of power
    ``index`` (1: Poisson, 2: gamma, between: compound Poisson-gamma), as ML.NET's
    ``FastTreeTweedieTrainer``, on LightGBM.

    The trees predict the log of the mean: ``Score = exp(sum of the trees)``. Labels must be >= 0
    and not all 0. Options and the differences from ML.NET: see the module docstring.
    """

    _task = REGRESSION
    _arg_names: ClassVar[tuple[str, ...]] = (*_FastTreeTrainer._arg_names, "index")

    index: float

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_leaves: int = 20,
        number_of_trees: int = 100,
        minimum_example_count_per_leaf: int = 10,
        learning_rate: float = 0.2,
        *,
        maximum_bin_count_per_feature: int = 255,
        feature_fraction: float = 1.0,
        feature_fraction_per_split: float = 1.0,
        bagging_size: int = 0,
        bagging_example_fraction: float = 0.7,
        seed: int | None = None,
        number_of_threads: int | None = None,
        index: float = 1.5,
    ) -> None:
        super().__init__(
            label_column_name,
            feature_column_name,
            example_weight_column_name,
            number_of_leaves,
            number_of_trees,
            minimum_example_count_per_leaf,
            learning_rate,
            maximum_bin_count_per_feature=maximum_bin_count_per_feature,
            feature_fraction=feature_fraction,
            feature_fraction_per_split=feature_fraction_per_split,
            bagging_size=bagging_size,
            bagging_example_fraction=bagging_example_fraction,
            seed=seed,
            number_of_threads=number_of_threads,
        )
        self._set(index=_validation.number(index, "index", self._catalog, low=1, high=2))

    @property
    def _catalog(self) -> str:
        return self.catalog_name  # "fast_tree_tweedie", not "fast_tree_tweedie_regression"

    def _objective_params(self) -> dict[str, Any]:
        params = super()._objective_params()
        if self.index < 2:
            params.update(objective="tweedie", tweedie_variance_power=self.index)
        else:  # LightGBM's tweedie takes powers below 2; its gamma objective is the power-2 deviance
            params.update(objective="gamma")
        return params

    def _labels(self, values: np.ndarray, label: TensorType) -> tuple[np.ndarray, np.ndarray | None]:
        y, classes = super()._labels(values, label)
        step, name = self.step_name, self.label_column_name
        if (y < 0).any():
            i = _first_bad(y < 0)
            raise DataError(
                f"{step}: label column {name!r} is negative ({_show(values[i])}) at row {i}; Tweedie regression "
                "needs labels >= 0"
            )
        if not (y > 0).any():
            raise DataError(f"{step}: label column {name!r} is 0 in every row; Tweedie regression needs a positive one")
        return y, classes
