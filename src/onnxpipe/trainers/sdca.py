"""SDCA trainers (ML.NET's stochastic dual coordinate ascent linear trainers).

Trainers (catalog names as ML.NET's, in snake_case):

* ``binary_classification.trainers.sdca_logistic_regression``
  (:class:`SdcaLogisticRegressionBinaryTrainer`): log loss, calibrated; outputs ``Score``,
  ``Probability = sigmoid(Score)`` (ML.NET's Platt calibrator with slope -1, offset 0) and
  ``PredictedLabel`` (a :class:`~onnxpipe.trainers.linear.LinearBinaryModel`).
* ``binary_classification.trainers.sdca_non_calibrated``
  (:class:`SdcaNonCalibratedBinaryTrainer`): ``loss`` ``"log"`` (default), ``"hinge"``
  (``hinge_margin``, default 1) or ``"smoothed_hinge"`` (``smoothing_constant``, default 1);
  outputs ``Score`` and ``PredictedLabel``.
* ``multiclass_classification.trainers.sdca_maximum_entropy``
  (:class:`SdcaMaximumEntropyTrainer`): log loss on the differences of the per-class outputs;
  ``Score`` is the softmax of the per-class linear outputs (a
  :class:`~onnxpipe.trainers.multiclass.LbfgsMaximumEntropyModel`, the same model as L-BFGS
  maximum entropy), ``PredictedLabel`` the class of the largest score.
* ``multiclass_classification.trainers.sdca_non_calibrated``
  (:class:`SdcaNonCalibratedMulticlassTrainer`): the same with any of the three losses and raw
  per-class scores ``W x + b`` (a :class:`LinearMulticlassModel`, ML.NET's
  ``LinearMulticlassModelParameters``).
* ``regression.trainers.sdca`` (:class:`SdcaRegressionTrainer`): squared loss; ``Score``
  (a :class:`~onnxpipe.trainers.linear.LinearRegressionModel`).

Options (ML.NET's ``SdcaTrainerBase.OptionsBase``; None means ML.NET's automatic value, worked
out from the usable row count ``n`` and the feature count when ``fit`` runs):

* ``l2_regularization``: None = ``max(1e-6, 20 / (max(2, iterations // 2) * n))`` for
  classification, ``1e-2`` (n < 200), ``1e-3`` or ``1e-4`` (n > 10000) for regression. Values below
  1e-9 are raised to 1e-9 with a warning (the dual needs a positive constant).
* ``l1_regularization``: ML.NET's *L1 threshold* (L1 / L2): the primal weights are the
  soft-thresholded dual-derived vector, i.e. the raw L1 term is ``l1 * l2 * |w|_1``. None = 0
  below 100 features, 0.25 below 1000, 0.5 below 10000, else 1.
* ``maximum_number_of_iterations`` (passes over the data): None = ``max(2, max(1, 500000 // n) * 3)``.
* ``convergence_tolerance``: stop when duality gap / primal objective < tolerance (0.1;
  regression 0.01). ``convergence_check_frequency``: check every that many passes (None: every
  pass, ML.NET's default for one thread; <= 0: never). When a check ran, the model with the best
  primal objective among the checked ones is returned, else the last one, as ML.NET does.
* ``shuffle`` (a new row order each pass, from ``seed``; the catalogs pass the context's seed),
  ``bias_learning_rate`` (0, regression 1: 0 regularizes the bias like a weight, a positive value
  keeps the bias unregularized, adjusted with step ``bias_learning_rate * l2``),
  binary ``positive_instance_weight`` (1), ``example_weight_column_name``.

Training data: as the other linear trainers (see :mod:`onnxpipe.trainers.linear` and
:mod:`onnxpipe.trainers.multiclass`): rows with NaN/infinite features, a missing label or a NaN
weight are skipped; binary labels are bool or 0/1; multiclass labels any scalar or a key column.
Normalize the features first (e.g. ``normalize_min_max``; ML.NET's maml adds it automatically).

How it differs from ML.NET: the dual ascent runs in one thread, in float64, with ML.NET's
single-thread update rules (``number_of_threads`` is accepted and recorded only; the automatic
values above are ML.NET's for one thread, so results do not depend on the machine). The row
order comes from numpy's generator, so results match ML.NET's in quality, not bit for bit.
The inner loops are compiled with numba (:mod:`onnxpipe.trainers._kernels`) on first use.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import component
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError, OnnxPipeWarning
from onnxpipe.schema import Column, Schema
from onnxpipe.trainers import multiclass as _mc
from onnxpipe.trainers._features import is_sparse
from onnxpipe.trainers.linear import (
    LinearBinaryModel,
    LinearRegressionModel,
    _binary_columns,
    _ModelT,
    _Trainer,
    _TrainingSet,
)
from onnxpipe.trainers.multiclass import LbfgsMaximumEntropyModel

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "LinearMulticlassModel",
    "SdcaLogisticRegressionBinaryTrainer",
    "SdcaMaximumEntropyTrainer",
    "SdcaNonCalibratedBinaryTrainer",
    "SdcaNonCalibratedMulticlassTrainer",
    "SdcaRegressionTrainer",
]

_CLASSIFICATION_LOSSES = ("log", "hinge", "smoothed_hinge")
_L2_LOWER_BOUND = 1e-9


# --------------------------------------------------------------------------------------------
# ML.NET's automatic values (for one thread)


def auto_maximum_iterations(count: int) -> int:
    """ML.NET's ``TuneDefaultMaxIterations`` with one thread."""
    return max(2, max(1, 500_000 // count) * 3)


def auto_l2_classification(maximum_iterations: int, count: int) -> float:
    """ML.NET's ``TuneDefaultL2`` with one thread: ``max(1e-6, 20 / (expected passes * rows))``."""
    expected = max(2, maximum_iterations // 2)
    return max(1e-6, 20.0 / (expected * count))


def auto_l2_regression(count: int) -> float:
    """``SdcaRegressionTrainer.TuneDefaultL2``."""
    if count > 10_000:
        return 1e-4
    if count < 200:
        return 1e-2
    return 1e-3


def auto_l1_threshold(features: int) -> float:
    """ML.NET's ``TuneDefaultL1``."""
    if features < 100:
        return 0.0
    if features < 1000:
        return 0.25
    if features < 10_000:
        return 0.5
    return 1.0


@dataclasses.dataclass(frozen=True)
class _Settings:
    """The options of one fit, automatic values resolved."""

    loss: int
    param: float
    l2: float
    l1: float
    iterations: int
    check_every: int  # 0: never
    tolerance: float
    bias_learning_rate: float
    shuffle: bool
    seed: int | None


# --------------------------------------------------------------------------------------------
# The optimisation (the per-row loops are in _kernels)


def _objective(
    loss_sum: float,
    dual_sum: float,
    count: int,
    weights: np.ndarray,
    bias_reg: np.ndarray,
    bias_unreg: np.ndarray,
    s: _Settings,
) -> tuple[float, float]:
    """ML.NET's ``CheckConvergence``: the primal and dual objectives."""
    l1_term = s.l1 * s.l2 * (float(np.abs(weights).sum()) + float(np.abs(bias_reg).sum()))
    l2_term = s.l2 * (float(np.sum(weights * weights)) + float(bias_reg @ bias_reg)) * 0.5
    primal = loss_sum / count + l2_term + l1_term
    dual = dual_sum / count - l2_term - s.l2 * float(bias_reg @ bias_unreg)
    return primal, dual


def fit_linear(
    x: np.ndarray, labels: np.ndarray, instance_weights: np.ndarray, s: _Settings
) -> tuple[np.ndarray, float]:
    """SDCA for one weight vector (binary classification, regression); returns (w, b)."""
    from onnxpipe.trainers import _kernels

    _kernels.compile_kernels()
    n, d = x.shape
    rows = _kernels.kernel_rows(x)
    lambda_n_inv = 1.0 / (s.l2 * n)
    regularized_bias = s.bias_learning_rate == 0
    norms, invariants = np.empty(n), np.empty(n)
    _kernels.sdca_prepare(
        *rows, instance_weights, s.loss, s.param, lambda_n_inv, regularized_bias, 1.0, norms, invariants
    )
    duals = np.zeros(n)
    weights, l1_weights = np.zeros(d), np.zeros(d)
    biases = np.zeros(3)  # regularized, unregularized, L1 intermediate
    best: tuple[np.ndarray, float] | None = None
    best_primal = math.inf
    rng = np.random.default_rng(s.seed)
    order = np.arange(n)
    for it in range(s.iterations):
        if s.shuffle:
            order = rng.permutation(n)
        _kernels.sdca_epoch(
            *rows,
            labels,
            instance_weights,
            invariants,
            order,
            s.loss,
            s.param,
            lambda_n_inv,
            s.bias_learning_rate * s.l2,
            s.l1,
            regularized_bias,
            duals,
            weights,
            l1_weights,
            biases,
        )
        if s.check_every and (it + 1) % s.check_every == 0:
            loss_sum, dual_sum = _kernels.sdca_check(
                *rows, labels, instance_weights, s.loss, s.param, duals, weights, float(biases[0] + biases[1])
            )
            primal, dual = _objective(loss_sum, dual_sum, n, weights, biases[:1], biases[1:2], s)
            if primal < best_primal:
                best, best_primal = (weights.copy(), float(biases[0] + biases[1])), primal
            if primal - dual < s.tolerance * primal:
                break
    return best if best is not None else (weights, float(biases[0] + biases[1]))


def fit_multiclass(
    x: np.ndarray, labels: np.ndarray, instance_weights: np.ndarray, classes: int, s: _Settings
) -> tuple[np.ndarray, np.ndarray]:
    """Multiclass SDCA (ML.NET's ``SdcaMulticlassTrainerBase``); returns (W (classes, d), b (classes,))."""
    from onnxpipe.trainers import _kernels

    _kernels.compile_kernels()
    n, d = x.shape
    rows = _kernels.kernel_rows(x)
    lambda_n_inv = 1.0 / (s.l2 * n)
    regularized_bias = s.bias_learning_rate == 0
    norms, invariants = np.empty(n), np.empty(n)
    # ML.NET doubles the scaled norm for the multiclass invariant (its ``invariantCoeff``).
    _kernels.sdca_prepare(
        *rows, instance_weights, s.loss, s.param, lambda_n_inv, regularized_bias, 2.0, norms, invariants
    )
    duals = np.zeros((n, classes))
    weights, l1_weights = np.zeros((classes, d)), np.zeros((classes, d))
    bias_reg, bias_unreg, l1_bias = np.zeros(classes), np.zeros(classes), np.zeros(classes)
    best: tuple[np.ndarray, np.ndarray] | None = None
    best_primal = math.inf
    rng = np.random.default_rng(s.seed)
    order = np.arange(n)
    for it in range(s.iterations):
        if s.shuffle:
            order = rng.permutation(n)
        _kernels.sdca_multiclass_epoch(
            *rows,
            labels,
            instance_weights,
            norms,
            invariants,
            order,
            s.loss,
            s.param,
            lambda_n_inv,
            s.bias_learning_rate * s.l2,
            s.l1,
            regularized_bias,
            duals,
            weights,
            l1_weights,
            bias_reg,
            bias_unreg,
            l1_bias,
        )
        if s.check_every and (it + 1) % s.check_every == 0:
            loss_sum, dual_sum = _kernels.sdca_multiclass_check(
                *rows, labels, instance_weights, s.loss, s.param, duals, weights, bias_reg + bias_unreg
            )
            primal, dual = _objective(loss_sum, dual_sum, n, weights, bias_reg, bias_unreg, s)
            if primal < best_primal:
                best, best_primal = (weights.copy(), bias_reg + bias_unreg), primal
            if primal - dual < s.tolerance * primal:
                break
    return best if best is not None else (weights, bias_reg + bias_unreg)


# --------------------------------------------------------------------------------------------
# The options every SDCA trainer shares


class _SdcaOptions:
    """Validation, state and automatic values of the SDCA options (mixed into each trainer)."""

    _who: str
    _loss: str
    _hinge_margin: float
    _smoothing_constant: float
    _l2: float | None
    _l1: float | None
    _max_iter: int | None
    _tol: float
    _shuffle: bool
    _check_frequency: int | None
    _blr: float
    _threads: int | None
    _seed: int | None
    _regression = False

    def _init_sdca(
        self,
        who: str,
        *,
        loss: str,
        losses: tuple[str, ...],
        hinge_margin: float,
        smoothing_constant: float,
        l2_regularization: float | None,
        l1_regularization: float | None,
        maximum_number_of_iterations: int | None,
        convergence_tolerance: float,
        shuffle: bool,
        convergence_check_frequency: int | None,
        bias_learning_rate: float,
        number_of_threads: int | None,
        seed: int | None,
    ) -> None:
        self._who = who
        self._loss = _validation.choice(loss, "loss", who, losses)
        self._hinge_margin = _validation.number(hinge_margin, "hinge_margin", who, low=0, low_open=True)
        self._smoothing_constant = _validation.number(smoothing_constant, "smoothing_constant", who, low=0)
        self._l2 = _validation.number(l2_regularization, "l2_regularization", who, low=0, optional="automatic")
        self._l1 = _validation.number(l1_regularization, "l1_regularization", who, low=0, optional="automatic")
        self._max_iter = _validation.integer(
            maximum_number_of_iterations, "maximum_number_of_iterations", who, low=1, optional="automatic"
        )
        self._tol = _validation.number(
            convergence_tolerance, "convergence_tolerance", who, low=0, high=1, low_open=True
        )
        self._shuffle = _validation.boolean(shuffle, "shuffle", who)
        self._check_frequency = _validation.integer(
            convergence_check_frequency, "convergence_check_frequency", who, optional="every iteration"
        )
        self._blr = _validation.number(bias_learning_rate, "bias_learning_rate", who, low=0)
        self._threads = _validation.thread_count(number_of_threads, "number_of_threads", who)
        self._seed = _validation.integer(seed, "seed", who, low=0, optional=True)

    # ---------------------------------------------------------------- options

    @property
    def loss(self) -> str:
        return self._loss

    @property
    def l2_regularization(self) -> float | None:
        return self._l2

    @property
    def l1_regularization(self) -> float | None:
        return self._l1

    @property
    def maximum_number_of_iterations(self) -> int | None:
        return self._max_iter

    @property
    def convergence_tolerance(self) -> float:
        return self._tol

    @property
    def shuffle(self) -> bool:
        return self._shuffle

    @property
    def convergence_check_frequency(self) -> int | None:
        return self._check_frequency

    @property
    def bias_learning_rate(self) -> float:
        return self._blr

    @property
    def number_of_threads(self) -> int | None:
        """Recorded only: the dual ascent runs in one thread (see the module docstring)."""
        return self._threads

    @property
    def seed(self) -> int | None:
        return self._seed

    def _sdca_arguments(self, *, with_loss: bool) -> dict[str, Any]:
        loss: dict[str, Any] = {"loss": self._loss} if with_loss else {}
        if with_loss and not self._regression:
            loss.update(hinge_margin=self._hinge_margin, smoothing_constant=self._smoothing_constant)
        return {
            **loss,
            "l2_regularization": self._l2,
            "l1_regularization": self._l1,
            "maximum_number_of_iterations": self._max_iter,
            "convergence_tolerance": self._tol,
            "shuffle": self._shuffle,
            "convergence_check_frequency": self._check_frequency,
            "bias_learning_rate": self._blr,
            "number_of_threads": self._threads,
            "seed": self._seed,
        }

    def _settings(self, count: int, features: int, step: str) -> _Settings:
        from onnxpipe.trainers import _kernels

        iterations = self._max_iter if self._max_iter is not None else auto_maximum_iterations(count)
        if self._l2 is not None:
            l2 = self._l2
            if l2 < _L2_LOWER_BOUND:
                warnings.warn(
                    f"{step}: l2_regularization={l2:g} is below {_L2_LOWER_BOUND:g}; SDCA's dual needs a positive "
                    f"constant, so {_L2_LOWER_BOUND:g} is used (as ML.NET does)",
                    OnnxPipeWarning,
                    stacklevel=4,
                )
                l2 = _L2_LOWER_BOUND
        elif self._regression:
            l2 = auto_l2_regression(count)
        else:
            l2 = auto_l2_classification(iterations, count)
        code, param = {
            "log": (_kernels.LOG, 0.0),
            "hinge": (_kernels.HINGE, self._hinge_margin),
            "smoothed_hinge": (_kernels.SMOOTHED_HINGE, self._smoothing_constant),
            "squared": (_kernels.SQUARED, 0.0),
        }[self._loss]
        check = 1 if self._check_frequency is None else max(self._check_frequency, 0)
        return _Settings(
            loss=code,
            param=param,
            l2=l2,
            l1=self._l1 if self._l1 is not None else auto_l1_threshold(features),
            iterations=iterations,
            check_every=check,
            tolerance=self._tol,
            bias_learning_rate=self._blr,
            shuffle=self._shuffle,
            seed=self._seed,
        )


def _check_diverged(step: str, *arrays: np.ndarray) -> None:
    if not all(np.isfinite(a).all() for a in arrays):
        raise DataError(
            f"{step}: training diverged (the weights became infinite or NaN); normalize the features "
            "(e.g. normalize_min_max) or raise l2_regularization"
        )


# --------------------------------------------------------------------------------------------
# Binary classification and regression


class _SdcaLinearTrainer(_SdcaOptions, _Trainer[_ModelT]):
    """An SDCA trainer of one weight vector (binary or regression), over linear.py's training set."""

    _with_loss = False

    def _arguments(self) -> dict[str, object]:
        return {**super()._arguments(), **self._sdca_arguments(with_loss=self._with_loss)}

    def _instance_weights(self, train: _TrainingSet) -> np.ndarray:
        return train.weights.copy() if train.weights is not None else np.ones(train.n)

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        x = train.features  # dense rows or a CSR matrix: the kernels read both
        settings = self._settings(train.n, x.shape[1], self.step_name)
        return fit_linear(x, train.y, self._instance_weights(train), settings)


class _SdcaBinaryTrainer(_SdcaLinearTrainer[LinearBinaryModel]):
    calibrated = False
    _piw: float

    def _init_binary(self, positive_instance_weight: float) -> None:
        self._piw = _validation.number(
            positive_instance_weight, "positive_instance_weight", self.name, low=0, low_open=True
        )

    @property
    def positive_instance_weight(self) -> float:
        return self._piw

    def _arguments(self) -> dict[str, object]:
        return {**super()._arguments(), "positive_instance_weight": self._piw}

    def _instance_weights(self, train: _TrainingSet) -> np.ndarray:
        weights = super()._instance_weights(train)
        weights[train.y > 0] *= self._piw
        return weights

    def _output_columns(self) -> list[Column]:
        return _binary_columns(self.calibrated)

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> LinearBinaryModel:
        return LinearBinaryModel(
            weights,
            bias,
            feature_column_name=self._features,
            calibrated=self.calibrated,
            trainer_name=self.name,
            rows_skipped=skipped,
        )


@component("sdca_logistic_regression", catalog="binary_classification.trainers")
class SdcaLogisticRegressionBinaryTrainer(_SdcaBinaryTrainer):
    """SDCA logistic regression (ML.NET's ``SdcaLogisticRegression``), calibrated.

    Minimises ``sum_i s_i log(1 + exp(-t_i (w·x_i + b))) / n + l2/2 (|w|^2 + b^2) + l1 * l2 |w|_1``
    (``t = ±1``, ``s`` = example weight times ``positive_instance_weight`` for positives; the bias
    term only with ``bias_learning_rate=0``) by dual coordinate ascent. Outputs ``Score``,
    ``Probability = sigmoid(Score)`` and ``PredictedLabel``. See :mod:`onnxpipe.trainers.sdca`
    for the options and their automatic values.
    """

    name = "sdca_logistic_regression"
    calibrated = True

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        l2_regularization: float | None = None,
        l1_regularization: float | None = None,
        maximum_number_of_iterations: int | None = None,
        *,
        convergence_tolerance: float = 0.1,
        shuffle: bool = True,
        convergence_check_frequency: int | None = None,
        bias_learning_rate: float = 0.0,
        positive_instance_weight: float = 1.0,
        number_of_threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        _Trainer.__init__(self, label_column_name, feature_column_name, example_weight_column_name)
        self._init_sdca(
            self.name,
            loss="log",
            losses=("log",),
            hinge_margin=1.0,
            smoothing_constant=1.0,
            l2_regularization=l2_regularization,
            l1_regularization=l1_regularization,
            maximum_number_of_iterations=maximum_number_of_iterations,
            convergence_tolerance=convergence_tolerance,
            shuffle=shuffle,
            convergence_check_frequency=convergence_check_frequency,
            bias_learning_rate=bias_learning_rate,
            number_of_threads=number_of_threads,
            seed=seed,
        )
        self._init_binary(positive_instance_weight)


@component("sdca_non_calibrated", catalog="binary_classification.trainers")
class SdcaNonCalibratedBinaryTrainer(_SdcaBinaryTrainer):
    """SDCA linear binary classifier without calibration (ML.NET's ``SdcaNonCalibrated``).

    ``loss``: ``"log"`` (default), ``"hinge"`` (``max(0, hinge_margin - t·score)``) or
    ``"smoothed_hinge"`` (quadratic within ``smoothing_constant`` of the hinge's corner).
    Outputs ``Score`` and ``PredictedLabel`` (``Score > 0``).
    """

    name = "sdca_non_calibrated"
    _with_loss = True

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        loss: str = "log",
        l2_regularization: float | None = None,
        l1_regularization: float | None = None,
        maximum_number_of_iterations: int | None = None,
        *,
        hinge_margin: float = 1.0,
        smoothing_constant: float = 1.0,
        convergence_tolerance: float = 0.1,
        shuffle: bool = True,
        convergence_check_frequency: int | None = None,
        bias_learning_rate: float = 0.0,
        positive_instance_weight: float = 1.0,
        number_of_threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        _Trainer.__init__(self, label_column_name, feature_column_name, example_weight_column_name)
        self._init_sdca(
            self.name,
            loss=loss,
            losses=_CLASSIFICATION_LOSSES,
            hinge_margin=hinge_margin,
            smoothing_constant=smoothing_constant,
            l2_regularization=l2_regularization,
            l1_regularization=l1_regularization,
            maximum_number_of_iterations=maximum_number_of_iterations,
            convergence_tolerance=convergence_tolerance,
            shuffle=shuffle,
            convergence_check_frequency=convergence_check_frequency,
            bias_learning_rate=bias_learning_rate,
            number_of_threads=number_of_threads,
            seed=seed,
        )
        self._init_binary(positive_instance_weight)


@component("sdca", catalog="regression.trainers")
class SdcaRegressionTrainer(_SdcaLinearTrainer[LinearRegressionModel]):
    """SDCA linear regression (ML.NET's ``Regression.Trainers.Sdca``), squared loss.

    Minimises ``sum_i s_i (w·x_i + b - y_i)^2 / n + l2/2 |w|^2 + l1 * l2 |w|_1`` (the bias is
    unregularized with the default ``bias_learning_rate=1``). ML.NET's regression defaults:
    ``convergence_tolerance=0.01``, ``bias_learning_rate=1`` and its own automatic L2 (see
    :mod:`onnxpipe.trainers.sdca`). Outputs ``Score``.
    """

    name = "sdca"
    binary = False
    _regression = True
    _with_loss = True

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        loss: str = "squared",
        l2_regularization: float | None = None,
        l1_regularization: float | None = None,
        maximum_number_of_iterations: int | None = None,
        *,
        convergence_tolerance: float = 0.01,
        shuffle: bool = True,
        convergence_check_frequency: int | None = None,
        bias_learning_rate: float = 1.0,
        number_of_threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        _Trainer.__init__(self, label_column_name, feature_column_name, example_weight_column_name)
        self._init_sdca(
            self.name,
            loss=loss,
            losses=("squared",),
            hinge_margin=1.0,
            smoothing_constant=1.0,
            l2_regularization=l2_regularization,
            l1_regularization=l1_regularization,
            maximum_number_of_iterations=maximum_number_of_iterations,
            convergence_tolerance=convergence_tolerance,
            shuffle=shuffle,
            convergence_check_frequency=convergence_check_frequency,
            bias_learning_rate=bias_learning_rate,
            number_of_threads=number_of_threads,
            seed=seed,
        )

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> LinearRegressionModel:
        return LinearRegressionModel(
            weights, bias, feature_column_name=self._features, trainer_name=self.name, rows_skipped=skipped
        )


# --------------------------------------------------------------------------------------------
# Multiclass


@component("linear_multiclass")
class LinearMulticlassModel(_mc.LinearScoresModel):
    """Raw per-class linear scores ``Score = W x + b`` (ML.NET's ``LinearMulticlassModelParameters``);
    ``PredictedLabel`` is the class of the largest score."""

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._linear(x)

    def _export_scores(self, ctx: ExportContext, x: str) -> str:
        return self._export_linear(ctx, x)


_LinearScoresT = TypeVar("_LinearScoresT", bound=_mc.LinearScoresModel)  # what a trainer below fits


class _SdcaMulticlassTrainer(_SdcaOptions, _mc._MulticlassTrainer[_LinearScoresT]):
    _with_loss = False

    def _init_columns(
        self, label_column_name: str, feature_column_name: str, example_weight_column_name: str | None
    ) -> None:
        step = self.catalog_name
        self.label_column_name = _validation.column_name(label_column_name, "label_column_name", step)
        self.feature_column_name = _validation.column_name(feature_column_name, "feature_column_name", step)
        self.example_weight_column_name = _validation.column_name(
            example_weight_column_name, "example_weight_column_name", step, optional=True
        )

    def _args(self) -> dict[str, Any]:
        return {
            "label_column_name": self.label_column_name,
            "feature_column_name": self.feature_column_name,
            "example_weight_column_name": self.example_weight_column_name,
            **self._sdca_arguments(with_loss=self._with_loss),
        }

    def output_schema(self, input_schema: Schema) -> Schema:
        _mc.check_weight_column(input_schema, self.example_weight_column_name, self.step_name)
        return super().output_schema(input_schema)

    def fit(self, data: DataView) -> _LinearScoresT:
        self.output_schema(data.schema)
        label, feature_type = self._check(data.schema)
        x, y, w, classes = _mc._training_set(
            data, self.step_name, label, self.feature_column_name, self.example_weight_column_name
        )
        if not w.sum() > 0:
            raise DataError(
                f"{self.step_name}: the example weights in {self.example_weight_column_name!r} sum to 0; at least "
                "one must be positive"
            )
        settings = self._settings(len(y), x.shape[1], self.step_name)
        weights, bias = fit_multiclass(x if is_sparse(x) else np.ascontiguousarray(x), y, w, len(classes), settings)
        _check_diverged(self.step_name, weights, bias)
        return self._model(
            label_column=label,
            feature_column_name=self.feature_column_name,
            feature_type=feature_type,
            classes=classes,
            weights=weights,
            bias=bias,
        )

    def _model(self, **arguments: Any) -> _LinearScoresT:
        raise NotImplementedError


@component("sdca_maximum_entropy", catalog="multiclass_classification.trainers")
class SdcaMaximumEntropyTrainer(_SdcaMulticlassTrainer[LbfgsMaximumEntropyModel]):
    """SDCA maximum entropy (ML.NET's ``SdcaMaximumEntropy``): multiclass logistic regression.

    For a row of class ``c`` the loss is ``sum over k != c of log(1 + exp(-(o_c - o_k)))``
    (``o = W x + b``), minimised by dual coordinate ascent with ML.NET's regularisation (see
    :mod:`onnxpipe.trainers.sdca`). This pairwise loss is ML.NET's; it is not the softmax
    cross-entropy that ``lbfgs_maximum_entropy`` minimises, so the two optima differ slightly.
    ``Score`` is ``softmax(W x + b)`` (an :class:`~onnxpipe.trainers.multiclass.LbfgsMaximumEntropyModel`).
    """

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        l2_regularization: float | None = None,
        l1_regularization: float | None = None,
        maximum_number_of_iterations: int | None = None,
        *,
        convergence_tolerance: float = 0.1,
        shuffle: bool = True,
        convergence_check_frequency: int | None = None,
        bias_learning_rate: float = 0.0,
        number_of_threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._init_columns(label_column_name, feature_column_name, example_weight_column_name)
        self._init_sdca(
            self.catalog_name,
            loss="log",
            losses=("log",),
            hinge_margin=1.0,
            smoothing_constant=1.0,
            l2_regularization=l2_regularization,
            l1_regularization=l1_regularization,
            maximum_number_of_iterations=maximum_number_of_iterations,
            convergence_tolerance=convergence_tolerance,
            shuffle=shuffle,
            convergence_check_frequency=convergence_check_frequency,
            bias_learning_rate=bias_learning_rate,
            number_of_threads=number_of_threads,
            seed=seed,
        )

    def _model(self, **arguments: Any) -> LbfgsMaximumEntropyModel:
        return LbfgsMaximumEntropyModel(**arguments)


@component("sdca_non_calibrated", catalog="multiclass_classification.trainers")
class SdcaNonCalibratedMulticlassTrainer(_SdcaMulticlassTrainer[LinearMulticlassModel]):
    """SDCA multiclass linear classifier without calibration (ML.NET's multiclass ``SdcaNonCalibrated``).

    The loss of :class:`SdcaMaximumEntropyTrainer` with ``loss`` ``"log"`` (default), ``"hinge"``
    or ``"smoothed_hinge"`` on the per-class output differences; ``Score`` holds the raw
    per-class scores ``W x + b`` (a :class:`LinearMulticlassModel`).
    """

    _with_loss = True

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        loss: str = "log",
        l2_regularization: float | None = None,
        l1_regularization: float | None = None,
        maximum_number_of_iterations: int | None = None,
        *,
        hinge_margin: float = 1.0,
        smoothing_constant: float = 1.0,
        convergence_tolerance: float = 0.1,
        shuffle: bool = True,
        convergence_check_frequency: int | None = None,
        bias_learning_rate: float = 0.0,
        number_of_threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._init_columns(label_column_name, feature_column_name, example_weight_column_name)
        self._init_sdca(
            self.catalog_name,
            loss=loss,
            losses=_CLASSIFICATION_LOSSES,
            hinge_margin=hinge_margin,
            smoothing_constant=smoothing_constant,
            l2_regularization=l2_regularization,
            l1_regularization=l1_regularization,
            maximum_number_of_iterations=maximum_number_of_iterations,
            convergence_tolerance=convergence_tolerance,
            shuffle=shuffle,
            convergence_check_frequency=convergence_check_frequency,
            bias_learning_rate=bias_learning_rate,
            number_of_threads=number_of_threads,
            seed=seed,
        )

    def _model(self, **arguments: Any) -> LinearMulticlassModel:
        return LinearMulticlassModel(**arguments)
