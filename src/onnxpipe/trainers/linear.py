"""Linear trainers (ML.NET semantics): estimators, the fitted linear models, and their ONNX export.

Binary classification (outputs ``Score`` float32, ``Probability`` float32 when calibrated,
``PredictedLabel`` bool = ``Score > 0``):

* :class:`LbfgsLogisticRegressionBinaryTrainer` (``lbfgs_logistic_regression``, calibrated);
* :class:`AveragedPerceptronTrainer` (``averaged_perceptron``, not calibrated);
* :class:`LinearSvmTrainer` (``linear_svm``, Pegasos, not calibrated).

Regression (output ``Score`` float32):

* :class:`OlsTrainer` (``ols``, least squares with a small ridge term);
* :class:`LbfgsPoissonRegressionTrainer` (``lbfgs_poisson_regression``, ``Score = exp(w·x + b)``);
* :class:`OnlineGradientDescentTrainer` (``online_gradient_descent``, averaged SGD).

Training data (as ML.NET's training cursors): ``Features`` is a float32 or float64 vector of
known size (a scalar counts as a vector of 1). Rows whose features hold NaN or ±inf, whose label
is NaN, or whose example weight is NaN are skipped; the fitted model records how many
(``rows_skipped``). Binary labels must be bool or the numbers 0 and 1; any other value is a
DataError naming the column, the value and the row. Infinite labels and negative or infinite
weights are DataErrors too.

Scoring computes ``w·x + b`` in float64 and rounds the outputs to float32; the ONNX export does
the same (Cast to double, MatMul, Add, then Sigmoid / Exp, Cast to float, Greater), so
ONNX Runtime gives the same values as :meth:`transform` to the last float32 bit in practice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError, ShapeError
from onnxpipe.export import ElemType
from onnxpipe.schema import Column, DType, KeyType, Schema, TensorType
from onnxpipe.trainers._features import densified, finite_rows, is_sparse
from onnxpipe.trainers._key_labels import label_as_numbers, label_value_type
from onnxpipe.trainers._lbfgs import minimize_lbfgs

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "AveragedPerceptronTrainer",
    "LbfgsLogisticRegressionBinaryTrainer",
    "LbfgsPoissonRegressionTrainer",
    "LinearBinaryModel",
    "LinearRegressionModel",
    "LinearSvmTrainer",
    "OlsTrainer",
    "OnlineGradientDescentTrainer",
    "PoissonRegressionModel",
]

SCORE = "Score"
PROBABILITY = "Probability"
PREDICTED_LABEL = "PredictedLabel"

_F32 = TensorType(DType.FLOAT32)
_BOOL = TensorType(DType.BOOL)
_INT_MAX = 2**31 - 1  # ML.NET's int.MaxValue default for maximum_number_of_iterations

# --------------------------------------------------------------------------------------------
# Schema checks shared by trainers and models


def _feature_size(schema: Schema, name: str, step: str, promise: bool = False) -> int:
    """The number of features in column ``name`` (a float vector of known size, or a float scalar).

    With ``promise`` (an estimator stating its output schema before data flows), a vector whose
    size an upstream estimator decides at fit time (e.g. one-hot encoding) is accepted (size 0);
    ``fit`` then requires the size to be known.
    """
    col = schema.require(name, step)
    ct = col.type
    if not isinstance(ct, TensorType) or not ct.dtype.converts_safely_to(DType.FLOAT64) or isinstance(ct, KeyType):
        raise ColumnTypeError(
            f"{step}: feature column {name!r} is {ct}; a vector of numbers (float32, float64, integers or bools) "
            "is expected. One-hot encode text and keys first (one_hot_encoding)"
        )
    if ct.rank > 1:
        raise ShapeError(
            f"{step}: feature column {name!r} has shape ({','.join(str(d) for d in ct.shape)}); a vector "
            f"(one dimension) is expected. Flatten it first, e.g. concatenate({name!r}, {name!r})"
        )
    if not ct.is_known_shape and promise:
        return 0
    if not ct.is_known_shape:
        raise ShapeError(
            f"{step}: feature column {name!r} is a vector of unknown size ({ct}); trainers need a vector of "
            "known size, e.g. declare it with VectorType(n)"
        )
    return ct.size or 1


def _check_scalar(schema: Schema, name: str, step: str, role: str, allowed: str) -> TensorType:
    col = schema.require(name, step)
    ct = label_value_type(col.type) if role == "label" and isinstance(col.type, TensorType) else col.type
    ok = isinstance(ct, TensorType) and ct.is_scalar and not isinstance(ct, KeyType)
    if ok and isinstance(ct, TensorType):
        ok = ct.dtype.is_numeric or (allowed == "binary" and ct.dtype is DType.BOOL)
    if not ok or not isinstance(ct, TensorType):
        expected = {
            "binary": "a bool or numeric (0/1) scalar",
            "numeric": "a numeric scalar (float32, float64 or an integer type)",
        }[allowed]
        raise ColumnTypeError(f"{step}: {role} column {name!r} is {col.type}; {expected} is expected")
    return ct


class _TrainingSet:
    """The usable rows of the training data: ``features`` in their own float type (float32 or
    float64; a scipy CSR matrix for a sparse feature column, which the L-BFGS trainers use as it
    is), ``x`` the same as a dense float64 array (made on first use), labels and weights in float64."""

    def __init__(
        self, features: np.ndarray, y: np.ndarray, weights: np.ndarray | None, skipped: int, step: str = ""
    ) -> None:
        self.features = features
        self.y = y
        self.weights = weights
        self.skipped = skipped
        self.step = step
        self._x: np.ndarray | None = None

    @property
    def dense_features(self) -> np.ndarray:
        """The features as a dense array: a sparse matrix is densified if it is small enough."""
        if not is_sparse(self.features):
            return self.features
        return densified(self.features, self.step, self.features.dtype)

    @property
    def x(self) -> np.ndarray:
        if self._x is None:
            self._x = self.dense_features.astype(np.float64)
        return self._x

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def weight_sum(self) -> float:
        return float(self.weights.sum()) if self.weights is not None else float(self.n)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _show(value: object) -> str:
    """A value for a message: ``2.0``, not ``np.float32(2.0)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _training_set(
    data: DataView, step: str, label: str, features: str, weight: str | None, *, binary: bool
) -> _TrainingSet:
    names = list(dict.fromkeys([label, features] + ([weight] if weight else [])))
    cols = data.arrays(names)
    n_rows = len(cols[label])
    if n_rows == 0:
        raise DataError(f"{step}: the training data has no rows; a trainer needs at least one example")
    x: Any = cols[features]
    sparse_x = is_sparse(x)
    if not sparse_x:
        x = x.reshape(n_rows, -1)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    raw_y = label_as_numbers(cols[label], data.schema[label].type)  # type: ignore[arg-type]
    keep = finite_rows(x)

    if raw_y.dtype == np.bool_:
        y = raw_y.astype(np.float64)
    else:
        y = raw_y.astype(np.float64)
        keep &= ~np.isnan(y)
        if binary:
            bad = ~np.isnan(y) & (y != 0) & (y != 1)
            if bad.any():
                i = _first_bad(bad)
                raise DataError(
                    f"{step}: label column {label!r} has the value {_show(raw_y[i])} (row {i}); binary labels must be "
                    "bool or the numbers 0 and 1. Map the labels to 0/1 (or true/false) first"
                )
        elif np.isinf(y).any():
            i = _first_bad(np.isinf(y))
            raise DataError(f"{step}: label column {label!r} has the infinite value {_show(raw_y[i])} (row {i})")

    w: np.ndarray | None = None
    if weight:
        w = cols[weight].astype(np.float64)
        bad = ~np.isnan(w) & ((w < 0) | np.isinf(w))
        if bad.any():
            i = _first_bad(bad)
            raise DataError(
                f"{step}: example weight column {weight!r} has the value {_show(cols[weight][i])} (row {i}); "
                "weights must be finite and >= 0"
            )
        keep &= ~np.isnan(w)

    used = int(keep.sum())
    if used == 0:
        raise DataError(
            f"{step}: none of the {n_rows} training rows is usable: every row has a NaN label, NaN/infinite "
            f"features in {features!r}" + (f" or a NaN weight in {weight!r}" if weight else "")
        )
    if used < n_rows:
        x, y = x[keep], y[keep]
        w = w[keep] if w is not None else None
    if w is not None and not w.sum() > 0:
        raise DataError(f"{step}: the example weights in {weight!r} sum to 0; at least one must be positive")
    return _TrainingSet(x if sparse_x else np.ascontiguousarray(x), y, w, n_rows - used, step)


# --------------------------------------------------------------------------------------------
# Fitted models


class _LinearModel(Transformer):
    """``w·x + b`` over one feature column; subclasses map the raw score to their outputs."""

    _default_name = "linear"
    accepts_sparse = True  # a sparse feature column is scored as it is (CSR @ w)

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray,
        bias: float,
        *,
        feature_column_name: str = "Features",
        trainer_name: str | None = None,
        rows_skipped: int = 0,
    ) -> None:
        w = np.array(weights, dtype=np.float64).reshape(-1)
        if w.size == 0 or not np.isfinite(w).all():
            raise InvalidArgumentError(f"a linear model needs one or more finite weights, got {w!r}")
        bias = _validation.number(bias, "bias", type(self).__name__)
        _validation.column_name(feature_column_name, "feature_column_name", type(self).__name__)
        w.flags.writeable = False
        self._weights = w
        self._bias = float(bias)
        self._feature_column_name = feature_column_name
        self._trainer_name = trainer_name or self._default_name
        self._rows_skipped = int(rows_skipped)

    # ---------------------------------------------------------------- read-only state

    @property
    def weights(self) -> np.ndarray:
        """The feature weights (float64, read-only)."""
        return self._weights

    @property
    def bias(self) -> float:
        return self._bias

    @property
    def feature_column_name(self) -> str:
        return self._feature_column_name

    @property
    def rows_skipped(self) -> int:
        """Training rows skipped for a NaN label, NaN/infinite features or a NaN weight."""
        return self._rows_skipped

    @property
    def step_name(self) -> str:
        return f"{self._trainer_name}({self._feature_column_name})"

    def _key(self) -> tuple[object, ...]:
        return (self._weights.tobytes(), self._bias, self._feature_column_name, self._trainer_name)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def __repr__(self) -> str:
        w = np.array2string(self._weights, precision=6, threshold=8, separator=", ")
        return (
            f"{type(self).__name__}(weights={w}, bias={self._bias:.6g}, "
            f"feature_column_name={self._feature_column_name!r}{self._repr_extra()})"
        )

    def _repr_extra(self) -> str:
        return ""

    # ---------------------------------------------------------------- scoring

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self._feature_column_name]

    def _check_features(self, schema: Schema) -> None:
        size = _feature_size(schema, self._feature_column_name, self.step_name)
        if size != self._weights.size:
            raise ShapeError(
                f"{self.step_name}: feature column {self._feature_column_name!r} has {size} values per row, but "
                f"the model was trained on {self._weights.size}"
            )

    def _raw(self, values: ColumnValues, n_rows: int) -> np.ndarray:
        if is_sparse(values):  # a sparse feature column: its non-zero values only
            sparse_x: Any = values
            return np.asarray(sparse_x.astype(np.float64) @ self._weights).reshape(n_rows) + self._bias
        x = np.asarray(values).reshape(n_rows, self._weights.size).astype(np.float64)
        # An elementwise product summed per row gives each row the same bits whatever the batch.
        with np.errstate(all="ignore"):
            out: np.ndarray = (x * self._weights).sum(axis=1) + self._bias
        return out

    def _export_raw(self, ctx: ExportContext, input_schema: Schema) -> str:
        """Add nodes for ``w·x + b`` in double; returns the value name, shape ``[N, 1]``."""
        x = ctx.value(self._feature_column_name)  # [N, d] (a scalar column is [N, 1])
        ct = input_schema[self._feature_column_name].type
        assert isinstance(ct, TensorType)
        if ct.dtype is not DType.FLOAT64:
            (x,) = ctx.add_node("Cast", [x], to=ElemType.DOUBLE)
        w = ctx.add_initializer(self._weights.reshape(-1, 1), "weights")
        b = ctx.add_initializer(np.array([self._bias], dtype=np.float64), "bias")
        (product,) = ctx.add_node("MatMul", [x, w])
        (raw,) = ctx.add_node("Add", [product, b])
        return raw

    @staticmethod
    def _to_float(ctx: ExportContext, value: str) -> str:
        return ctx.add_node("Cast", [value], to=ElemType.FLOAT)[0]


@component()
class LinearBinaryModel(_LinearModel):
    """A fitted linear binary classifier (ML.NET's ``LinearBinaryModelParameters``).

    Writes ``Score = w·x + b`` (float32), ``Probability = sigmoid(Score)`` when ``calibrated``
    (the Platt calibrator with slope 1 and offset 0 that L-BFGS logistic regression carries), and
    ``PredictedLabel = Score > 0`` (bool; NaN scores give False).
    """

    _default_name = "linear_binary"

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray,
        bias: float,
        *,
        feature_column_name: str = "Features",
        calibrated: bool = True,
        trainer_name: str | None = None,
        rows_skipped: int = 0,
    ) -> None:
        super().__init__(
            weights, bias, feature_column_name=feature_column_name, trainer_name=trainer_name, rows_skipped=rows_skipped
        )
        self._calibrated = _validation.boolean(calibrated, "calibrated", type(self).__name__)

    @property
    def calibrated(self) -> bool:
        return self._calibrated

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self._calibrated)

    def _repr_extra(self) -> str:
        return f", calibrated={self._calibrated}"

    def output_schema(self, input_schema: Schema) -> Schema:
        self._check_features(input_schema)
        return input_schema.with_columns(*_binary_columns(self._calibrated))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        raw = self._raw(columns[self._feature_column_name], n_rows)
        with np.errstate(all="ignore"):
            score = raw.astype(np.float32)
            out: dict[str, ColumnValues] = {SCORE: score}
            if self._calibrated:
                from scipy.special import expit

                out[PROBABILITY] = expit(raw).astype(np.float32)
        out[PREDICTED_LABEL] = score > 0
        return out

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        raw = self._export_raw(ctx, input_schema)
        score = self._to_float(ctx, raw)
        zero = ctx.add_initializer(np.array(0, dtype=np.float32), "zero")
        (predicted,) = ctx.add_node("Greater", [score, zero])
        ctx.set_value(SCORE, score)
        if self._calibrated:
            (prob,) = ctx.add_node("Sigmoid", [raw])
            ctx.set_value(PROBABILITY, self._to_float(ctx, prob))
        ctx.set_value(PREDICTED_LABEL, predicted)


@component()
class LinearRegressionModel(_LinearModel):
    """A fitted linear regressor (ML.NET's ``LinearRegressionModelParameters``): ``Score = w·x + b``."""

    _default_name = "linear_regression"

    def output_schema(self, input_schema: Schema) -> Schema:
        self._check_features(input_schema)
        return input_schema.with_columns(Column(SCORE, _F32))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        with np.errstate(all="ignore"):
            return {SCORE: self._raw(columns[self._feature_column_name], n_rows).astype(np.float32)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ctx.set_value(SCORE, self._to_float(ctx, self._export_raw(ctx, input_schema)))


@component()
class PoissonRegressionModel(_LinearModel):
    """A fitted Poisson regressor (ML.NET's ``PoissonRegressionModelParameters``): ``Score = exp(w·x + b)``."""

    _default_name = "poisson_regression"

    def output_schema(self, input_schema: Schema) -> Schema:
        self._check_features(input_schema)
        return input_schema.with_columns(Column(SCORE, _F32))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        with np.errstate(all="ignore"):
            return {SCORE: np.exp(self._raw(columns[self._feature_column_name], n_rows)).astype(np.float32)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        (mean,) = ctx.add_node("Exp", [self._export_raw(ctx, input_schema)])
        ctx.set_value(SCORE, self._to_float(ctx, mean))


def _binary_columns(calibrated: bool) -> list[Column]:
    cols = [Column(SCORE, _F32)]
    if calibrated:
        cols.append(Column(PROBABILITY, _F32))
    cols.append(Column(PREDICTED_LABEL, _BOOL))
    return cols


# --------------------------------------------------------------------------------------------
# Trainers


_ModelT = TypeVar("_ModelT", bound=_LinearModel)  # what a trainer below fits


class _Trainer(Estimator[_ModelT]):
    """Common parts: column names, schema checks, equality and repr from the arguments."""

    name = "trainer"  # the catalog name
    binary = True
    has_weights = True

    def __init__(
        self, label_column_name: str, feature_column_name: str, example_weight_column_name: str | None
    ) -> None:
        _validation.column_name(label_column_name, "label_column_name", self.name)
        _validation.column_name(feature_column_name, "feature_column_name", self.name)
        _validation.column_name(example_weight_column_name, "example_weight_column_name", self.name, optional=True)
        self._label = label_column_name
        self._features = feature_column_name
        self._weight = example_weight_column_name

    @property
    def label_column_name(self) -> str:
        return self._label

    @property
    def feature_column_name(self) -> str:
        return self._features

    @property
    def example_weight_column_name(self) -> str | None:
        return self._weight

    @property
    def step_name(self) -> str:
        return f"{self.name}({self._label}, {self._features})"

    def _arguments(self) -> dict[str, object]:
        """The constructor arguments (for repr and equality)."""
        args: dict[str, object] = {"label_column_name": self._label, "feature_column_name": self._features}
        if self.has_weights:
            args["example_weight_column_name"] = self._weight
        return args

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self._arguments().items()) + ")"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._arguments() == self._arguments()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._arguments().items())))

    def _output_columns(self) -> list[Column]:
        return [Column(SCORE, _F32)]

    def output_schema(self, input_schema: Schema) -> Schema:
        step = self.step_name
        _feature_size(input_schema, self._features, step, promise=True)
        _check_scalar(input_schema, self._label, step, "label", "binary" if self.binary else "numeric")
        if self._weight is not None:
            _check_scalar(input_schema, self._weight, step, "example weight", "numeric")
        return input_schema.with_columns(*self._output_columns())

    def fit(self, data: DataView) -> _ModelT:
        self.output_schema(data.schema)
        _feature_size(data.schema, self._features, self.step_name)  # the size must be known by now
        train = _training_set(data, self.step_name, self._label, self._features, self._weight, binary=self.binary)
        self._check_labels(train)
        weights, bias = self._train(train)
        if not (np.isfinite(weights).all() and math.isfinite(bias)):
            raise DataError(
                f"{self.step_name}: training diverged (the weights became infinite or NaN); normalize the features "
                "(e.g. normalize_min_max) or lower the learning rate"
            )
        return self._model(weights, bias, train.skipped)

    def _check_labels(self, train: _TrainingSet) -> None:
        pass

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> _ModelT:
        raise NotImplementedError


# ---------------------------------------------------------------- L-BFGS (logistic and Poisson)

_LossGrad = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _lbfgs(
    train: _TrainingSet,
    loss_grad: _LossGrad,
    *,
    l1: float,
    l2: float,
    tolerance: float,
    history_size: int,
    max_iterations: int,
    non_negative: bool,
    initial_bias: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Minimise ML.NET's L-BFGS objective; returns (w, b).

    ML.NET (``LbfgsTrainerBase``) minimises, with ``W`` the sum of example weights and ``N`` the
    number of usable rows::

        (sum_i s_i * loss_i + l2 / 2 * ||w||^2) / W  +  l1 / N * ||w||_1

    (the bias is not regularised). The L1 term and non-negativity (``enforce_non_negativity``, the
    bound ``w >= 0``) are :func:`onnxpipe.trainers._lbfgs.minimize_lbfgs`'s; the parameters are
    ``[w, b]``.
    """
    # The products run in the features' own type (float32 input stays float32, as scikit-learn
    # does: half the memory traffic); sums, loss and parameters are float64.
    x, d = train.features, train.features.shape[1]
    scale = 1.0 / train.weight_sum

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], float(theta[-1])
        z = (x @ w.astype(x.dtype)).astype(np.float64) + b
        loss, dz = loss_grad(z)  # dz is already multiplied by the example weights
        gw = ((x.T @ dz.astype(x.dtype)).astype(np.float64) + l2 * w) * scale
        gb = float(dz.sum()) * scale
        value = (loss + 0.5 * l2 * float(w @ w)) * scale
        return value, np.concatenate([gw, [gb]])

    theta0 = np.zeros(d + 1)
    theta0[-1] = initial_bias
    theta = minimize_lbfgs(
        objective,
        theta0,
        penalized=slice(0, d),
        l1=l1 / train.n,
        non_negative=non_negative,
        history_size=history_size,
        tolerance=tolerance,
        max_iterations=max_iterations,
        max_evaluations=min(_INT_MAX, max(15000, 2 * max_iterations)),
        max_line_search_steps=50,
    )
    return theta[:d].copy(), float(theta[-1])


class _LbfgsTrainer(_Trainer[_ModelT]):
    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        l1_regularization: float = 1.0,
        l2_regularization: float = 1.0,
        optimization_tolerance: float = 1e-7,
        history_size: int = 20,
        maximum_number_of_iterations: int = _INT_MAX,
        enforce_non_negativity: bool = False,
    ) -> None:
        super().__init__(label_column_name, feature_column_name, example_weight_column_name)
        self._l1 = _validation.number(l1_regularization, "l1_regularization", self.name, low=0)
        self._l2 = _validation.number(l2_regularization, "l2_regularization", self.name, low=0)
        self._tol = _validation.number(
            optimization_tolerance, "optimization_tolerance", self.name, low=0, low_open=True
        )
        self._history = _validation.integer(history_size, "history_size", self.name, low=1)
        self._max_iter = _validation.integer(
            maximum_number_of_iterations, "maximum_number_of_iterations", self.name, low=1
        )
        self._non_negative = _validation.boolean(enforce_non_negativity, "enforce_non_negativity", self.name)

    @property
    def l1_regularization(self) -> float:
        return self._l1

    @property
    def l2_regularization(self) -> float:
        return self._l2

    @property
    def optimization_tolerance(self) -> float:
        return self._tol

    @property
    def history_size(self) -> int:
        return self._history

    @property
    def maximum_number_of_iterations(self) -> int:
        return self._max_iter

    @property
    def enforce_non_negativity(self) -> bool:
        return self._non_negative

    def _arguments(self) -> dict[str, object]:
        return {
            **super()._arguments(),
            "l1_regularization": self._l1,
            "l2_regularization": self._l2,
            "optimization_tolerance": self._tol,
            "history_size": self._history,
            "maximum_number_of_iterations": self._max_iter,
            "enforce_non_negativity": self._non_negative,
        }

    def _run(self, train: _TrainingSet, loss_grad: _LossGrad, initial_bias: float = 0.0) -> tuple[np.ndarray, float]:
        return _lbfgs(
            train,
            loss_grad,
            l1=self._l1,
            l2=self._l2,
            tolerance=self._tol,
            history_size=self._history,
            max_iterations=self._max_iter,
            non_negative=self._non_negative,
            initial_bias=initial_bias,
        )


@component("lbfgs_logistic_regression", catalog="binary_classification.trainers")
class LbfgsLogisticRegressionBinaryTrainer(_LbfgsTrainer[LinearBinaryModel]):
    """L-BFGS logistic regression (``lbfgs_logistic_regression``), calibrated.

    Minimises the (weighted) log-loss with ML.NET's regularisation (see :func:`_lbfgs`): with
    ``l1_regularization=0`` it is scikit-learn's ``LogisticRegression(C=1 / l2_regularization)``.
    ``maximum_number_of_iterations`` defaults to ML.NET's int.MaxValue (run to the tolerance).
    """

    name = "lbfgs_logistic_regression"

    def _output_columns(self) -> list[Column]:
        return _binary_columns(True)

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        from scipy.special import expit

        y, sw = train.y, train.weights

        def loss_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
            losses = np.logaddexp(0.0, z) - y * z
            dz = expit(z) - y
            if sw is not None:
                return float(sw @ losses), sw * dz
            return float(losses.sum()), dz

        return self._run(train, loss_grad)

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> LinearBinaryModel:
        return LinearBinaryModel(
            weights,
            bias,
            feature_column_name=self._features,
            calibrated=True,
            trainer_name=self.name,
            rows_skipped=skipped,
        )


@component("lbfgs_poisson_regression", catalog="regression.trainers")
class LbfgsPoissonRegressionTrainer(_LbfgsTrainer[PoissonRegressionModel]):
    """L-BFGS Poisson regression (``lbfgs_poisson_regression``): ``Score = exp(w·x + b)``.

    Minimises ML.NET's Poisson loss ``exp(z) - y * z`` (``z = w·x + b``) with the regularisation
    of :func:`_lbfgs`; with ``l1_regularization=0`` it is scikit-learn's
    ``PoissonRegressor(alpha=l2_regularization / N)``. Labels must be >= 0.
    """

    name = "lbfgs_poisson_regression"
    binary = False

    def _check_labels(self, train: _TrainingSet) -> None:
        if (train.y < 0).any():
            value = train.y[_first_bad(train.y < 0)]
            raise DataError(
                f"{self.step_name}: label column {self._label!r} has the negative value {_show(value)}; Poisson "
                "regression models counts, so labels must be >= 0"
            )

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        y, sw = train.y, train.weights

        def loss_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
            # Capping z keeps far line-search trials finite (and warning-free); the optimum is never there.
            mu = np.exp(np.minimum(z, 700.0))
            losses = mu - y * z
            dz = mu - y
            if sw is not None:
                return float(sw @ losses), sw * dz
            return float(losses.sum()), dz

        mean = float(np.average(train.y, weights=train.weights))
        # Start from the constant model (log of the mean count): same optimum, fewer iterations.
        return self._run(train, loss_grad, initial_bias=math.log(mean) if mean > 0 else 0.0)

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> PoissonRegressionModel:
        return PoissonRegressionModel(
            weights, bias, feature_column_name=self._features, trainer_name=self.name, rows_skipped=skipped
        )


# ---------------------------------------------------------------- ordinary least squares


@component("ols", catalog="regression.trainers")
class OlsTrainer(_Trainer[LinearRegressionModel]):
    """Ordinary least squares (``ols``), as ML.NET's ``OlsTrainer``.

    Minimises ``sum_i s_i (w·x_i + b - y_i)^2 + l2_regularization * ||w||^2`` (the bias is not
    regularised and, as in ML.NET, ``l2_regularization`` is not scaled by the number of rows). It
    is solved as one least-squares problem with :func:`numpy.linalg.lstsq` on the weighted design
    matrix with ``sqrt(l2) * I`` rows appended, which also handles collinear features (minimum-norm
    solution) where ML.NET's Cholesky solve would fail.
    """

    name = "ols"
    binary = False

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        l2_regularization: float = 1e-6,
    ) -> None:
        super().__init__(label_column_name, feature_column_name, example_weight_column_name)
        self._l2 = _validation.number(l2_regularization, "l2_regularization", self.name, low=0)

    @property
    def l2_regularization(self) -> float:
        return self._l2

    def _arguments(self) -> dict[str, object]:
        return {**super()._arguments(), "l2_regularization": self._l2}

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        x, y = train.x, train.y
        n, d = x.shape
        design = np.hstack([x, np.ones((n, 1))])
        if train.weights is not None:
            root = np.sqrt(train.weights)
            design, y = design * root[:, None], y * root
        if self._l2 > 0:
            ridge = np.hstack([math.sqrt(self._l2) * np.eye(d), np.zeros((d, 1))])
            design = np.vstack([design, ridge])
            y = np.concatenate([y, np.zeros(d)])
        solution = np.linalg.lstsq(design, y, rcond=None)[0]
        return solution[:d], float(solution[d])

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> LinearRegressionModel:
        return LinearRegressionModel(
            weights, bias, feature_column_name=self._features, trainer_name=self.name, rows_skipped=skipped
        )


# ---------------------------------------------------------------- online trainers

_CLASSIFICATION_LOSSES = ("hinge", "log", "smoothed_hinge", "exp")
_REGRESSION_LOSSES = ("squared",)


def _loss_derivative(loss: str) -> Callable[[float, float], tuple[bool, float]]:
    """ML.NET's ``IScalarLoss``: (whether the loss is non-zero, d loss / d output) for (output, label).

    Classification labels are 0/1 (``truth`` = +1/-1); margins and constants are ML.NET's defaults
    (hinge margin 1, smoothing constant 1, exp beta 1).
    """
    if loss == "hinge":

        def hinge(output: float, label: float) -> tuple[bool, float]:
            truth = 1.0 if label > 0 else -1.0
            active = 1.0 - truth * output > 0
            return active, (-truth if active else 0.0)

        return hinge
    if loss == "smoothed_hinge":

        def smoothed(output: float, label: float) -> tuple[bool, float]:
            truth = 1.0 if label > 0 else -1.0
            u = 1.0 - truth * output
            if u < 0:
                return False, 0.0
            return u > 0, (-truth * u if u < 1.0 else -truth)

        return smoothed
    if loss == "log":

        def log(output: float, label: float) -> tuple[bool, float]:
            p = 1.0 / (1.0 + math.exp(-output)) if output >= 0 else math.exp(output) / (1.0 + math.exp(output))
            return True, (p - 1.0 if label > 0 else p)

        return log
    if loss == "exp":

        def exp(output: float, label: float) -> tuple[bool, float]:
            factor = -1.0 if label > 0 else 1.0
            return True, factor * math.exp(min(factor * output, 700.0))

        return exp

    def squared(output: float, label: float) -> tuple[bool, float]:
        diff = output - label
        return diff != 0, 2.0 * diff

    return squared


def _averaged_sgd(
    train: _TrainingSet,
    *,
    loss: str,
    learning_rate: float,
    decrease_learning_rate: bool,
    l2: float,
    iterations: int,
    shuffle: bool,
    seed: int | None,
) -> tuple[np.ndarray, float]:
    """ML.NET's ``AveragedLinearTrainer`` (averaged perceptron and online gradient descent).

    For each example (in a fresh random order each pass when ``shuffle``): ``output = w·x + b``;
    if the loss is non-zero (or ``l2 > 0``), ``rate = learning_rate`` (divided by
    ``sqrt(examples seen + 1)`` when ``decrease_learning_rate``), ``g = -rate * loss'(output)``,
    ``w = (w + g x) (1 - 2 l2)``, ``b += g``. The model is the average of ``(w, b)`` after every
    example of every pass. ML.NET adds up that average lazily with a 1% tolerance; this adds it
    up exactly (ML.NET's ``LazyUpdate=false``). The loss derivatives are :func:`_loss_derivative`'s.

    The per-example loop is compiled (:func:`onnxpipe.trainers._kernels.averaged_sgd_epoch`);
    each pass's order comes from numpy's generator here, so the results are the Python loop's.
    """
    from onnxpipe.trainers import _kernels

    _kernels.compile_kernels()
    codes = {
        "hinge": _kernels.SGD_HINGE,
        "log": _kernels.SGD_LOG,
        "smoothed_hinge": _kernels.SGD_SMOOTHED_HINGE,
        "exp": _kernels.SGD_EXP,
        "squared": _kernels.SGD_SQUARED,
    }
    x: Any = train.features.astype(np.float64) if is_sparse(train.features) else train.x  # CSR rows stay sparse
    y = train.y
    n, d = x.shape
    rows = _kernels.kernel_rows(x)
    rng = np.random.default_rng(seed)
    w = np.zeros(d)
    total_w = np.zeros(d)
    state = np.zeros(2)  # the bias and the sum of the biases so far
    counts = np.zeros(2, dtype=np.int64)  # examples not yet added to the totals, all examples so far
    for _ in range(iterations):
        order = rng.permutation(n) if shuffle else np.arange(n)
        _kernels.averaged_sgd_epoch(
            *rows, y, order, codes[loss], learning_rate, decrease_learning_rate, l2, w, total_w, state, counts
        )
    pending, seen = int(counts[0]), int(counts[1])
    total_w += pending * w
    total_b = float(state[1]) + pending * float(state[0])
    return total_w / seen, total_b / seen


class _OnlineTrainer(_Trainer[_ModelT]):
    """The options the averaged online trainers share (perceptron, online gradient descent)."""

    def __init__(
        self,
        label_column_name: str,
        feature_column_name: str,
        losses: Sequence[str],
        loss: str,
        learning_rate: float,
        decrease_learning_rate: bool,
        l2_regularization: float,
        number_of_iterations: int,
        *,
        shuffle: bool,
        seed: int | None,
    ) -> None:
        super().__init__(label_column_name, feature_column_name, None)
        self._loss = _validation.choice(loss, "loss", self.name, losses)
        self._rate = _validation.number(learning_rate, "learning_rate", self.name, low=0, low_open=True)
        self._decrease = _validation.boolean(decrease_learning_rate, "decrease_learning_rate", self.name)
        # ML.NET: weights shrink by (1 - 2 * l2) per update, so 0.5 and above make no sense.
        self._l2 = _validation.number(
            l2_regularization, "l2_regularization", self.name, low=0, high=0.5, high_open=True
        )
        self._iterations = _validation.integer(number_of_iterations, "number_of_iterations", self.name, low=1)
        self._shuffle = _validation.boolean(shuffle, "shuffle", self.name)
        self._seed = _validation.integer(seed, "seed", self.name, low=0, optional=True)

    @property
    def loss(self) -> str:
        return self._loss

    @property
    def learning_rate(self) -> float:
        return self._rate

    @property
    def decrease_learning_rate(self) -> bool:
        return self._decrease

    @property
    def l2_regularization(self) -> float:
        return self._l2

    @property
    def number_of_iterations(self) -> int:
        return self._iterations

    @property
    def shuffle(self) -> bool:
        return self._shuffle

    @property
    def seed(self) -> int | None:
        return self._seed

    def _arguments(self) -> dict[str, object]:
        return {
            **super()._arguments(),
            "loss": self._loss,
            "learning_rate": self._rate,
            "decrease_learning_rate": self._decrease,
            "l2_regularization": self._l2,
            "number_of_iterations": self._iterations,
            "shuffle": self._shuffle,
            "seed": self._seed,
        }


@component("averaged_perceptron", catalog="binary_classification.trainers")
class AveragedPerceptronTrainer(_OnlineTrainer[LinearBinaryModel]):
    """Averaged perceptron (``averaged_perceptron``), not calibrated: ``Score`` and ``PredictedLabel``.

    ML.NET's algorithm (see :func:`_averaged_sgd`) with ``loss`` one of ``"hinge"`` (default,
    margin 1), ``"log"``, ``"smoothed_hinge"``, ``"exp"``. Deterministic given ``seed`` (the
    catalog passes ``MLContext(seed=...)``); ``seed=None`` shuffles differently on each fit.
    """

    name = "averaged_perceptron"
    has_weights = False

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        loss: str = "hinge",
        learning_rate: float = 1.0,
        decrease_learning_rate: bool = False,
        l2_regularization: float = 0.0,
        number_of_iterations: int = 10,
        *,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            label_column_name,
            feature_column_name,
            _CLASSIFICATION_LOSSES,
            loss,
            learning_rate,
            decrease_learning_rate,
            l2_regularization,
            number_of_iterations,
            shuffle=shuffle,
            seed=seed,
        )

    def _output_columns(self) -> list[Column]:
        return _binary_columns(False)

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        return _averaged_sgd(
            train,
            loss=self._loss,
            learning_rate=self._rate,
            decrease_learning_rate=self._decrease,
            l2=self._l2,
            iterations=self._iterations,
            shuffle=self._shuffle,
            seed=self._seed,
        )

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> LinearBinaryModel:
        return LinearBinaryModel(
            weights,
            bias,
            feature_column_name=self._features,
            calibrated=False,
            trainer_name=self.name,
            rows_skipped=skipped,
        )


@component("online_gradient_descent", catalog="regression.trainers")
class OnlineGradientDescentTrainer(_OnlineTrainer[LinearRegressionModel]):
    """Online gradient descent regression (``online_gradient_descent``): averaged SGD on the squared loss.

    ML.NET's ``OnlineGradientDescentTrainer`` is the averaged linear trainer of
    :func:`_averaged_sgd` with ``loss="squared"`` (``(output - label)^2``, derivative
    ``2 (output - label)``). Normalise the features first: with raw features a learning rate of
    0.1 easily diverges, which is reported as a DataError.
    """

    name = "online_gradient_descent"
    binary = False
    has_weights = False

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        loss: str = "squared",
        learning_rate: float = 0.1,
        decrease_learning_rate: bool = True,
        l2_regularization: float = 0.0,
        number_of_iterations: int = 1,
        *,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            label_column_name,
            feature_column_name,
            _REGRESSION_LOSSES,
            loss,
            learning_rate,
            decrease_learning_rate,
            l2_regularization,
            number_of_iterations,
            shuffle=shuffle,
            seed=seed,
        )

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        with np.errstate(all="ignore"):  # divergence is reported after training, not as a warning
            return _averaged_sgd(
                train,
                loss=self._loss,
                learning_rate=self._rate,
                decrease_learning_rate=self._decrease,
                l2=self._l2,
                iterations=self._iterations,
                shuffle=self._shuffle,
                seed=self._seed,
            )

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> LinearRegressionModel:
        return LinearRegressionModel(
            weights, bias, feature_column_name=self._features, trainer_name=self.name, rows_skipped=skipped
        )


@component("linear_svm", catalog="binary_classification.trainers")
class LinearSvmTrainer(_Trainer[LinearBinaryModel]):
    """Linear SVM trained with Pegasos (``linear_svm``), as ML.NET's ``LinearSvmTrainer``; not calibrated.

    Per batch ``t`` (``batch_size`` examples; ``t`` counts batches over all passes, plus one at
    the start of each pass after the first, as ML.NET does): ``rate = 1 / (1 + lambda_ * t)``,
    ``w = (1 - rate * lambda_) w + rate / k * sum(s_i y_i x_i)`` and
    ``b += rate / k * sum(s_i y_i)`` over the batch's examples with ``y_i (w·x_i + b) < 1``
    (``y`` = +1/-1, ``k`` = batch size, ``s`` = example weight); with ``perform_projection`` the
    weights are then scaled into the ball of radius ``1 / sqrt(lambda_)``. An incomplete last
    batch of a pass is dropped, as in ML.NET.
    """

    name = "linear_svm"

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_iterations: int = 1,
        lambda_: float = 0.001,
        batch_size: int = 1,
        perform_projection: bool = False,
        no_bias: bool = False,
        *,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(label_column_name, feature_column_name, example_weight_column_name)
        self._iterations = _validation.integer(number_of_iterations, "number_of_iterations", self.name, low=1)
        self._lambda = _validation.number(lambda_, "lambda_", self.name, low=0, low_open=True)
        self._batch_size = _validation.integer(batch_size, "batch_size", self.name, low=1)
        self._projection = _validation.boolean(perform_projection, "perform_projection", self.name)
        self._no_bias = _validation.boolean(no_bias, "no_bias", self.name)
        self._shuffle = _validation.boolean(shuffle, "shuffle", self.name)
        self._seed = _validation.integer(seed, "seed", self.name, low=0, optional=True)

    @property
    def number_of_iterations(self) -> int:
        return self._iterations

    @property
    def lambda_(self) -> float:
        return self._lambda

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def perform_projection(self) -> bool:
        return self._projection

    @property
    def no_bias(self) -> bool:
        return self._no_bias

    @property
    def shuffle(self) -> bool:
        return self._shuffle

    @property
    def seed(self) -> int | None:
        return self._seed

    def _arguments(self) -> dict[str, object]:
        return {
            **super()._arguments(),
            "number_of_iterations": self._iterations,
            "lambda_": self._lambda,
            "batch_size": self._batch_size,
            "perform_projection": self._projection,
            "no_bias": self._no_bias,
            "shuffle": self._shuffle,
            "seed": self._seed,
        }

    def _output_columns(self) -> list[Column]:
        return _binary_columns(False)

    def _train(self, train: _TrainingSet) -> tuple[np.ndarray, float]:
        from onnxpipe.trainers import _kernels

        _kernels.compile_kernels()
        x: Any = train.features.astype(np.float64) if is_sparse(train.features) else train.x  # CSR rows stay sparse
        n, d = x.shape
        rows = _kernels.kernel_rows(x)
        truth = np.where(train.y > 0, 1.0, -1.0)
        sample_weights = train.weights if train.weights is not None else np.ones(n)
        rng = np.random.default_rng(self._seed)
        w, update = np.zeros(d), np.zeros(d)
        state = np.zeros(4)  # bias, t, the bias's pending update, rows in the batch
        for _ in range(self._iterations):
            order = rng.permutation(n) if self._shuffle else np.arange(n)
            state[1] += 1  # ML.NET's BeginIteration starts a new batch
            update[:] = 0.0
            state[2] = state[3] = 0.0
            _kernels.linear_svm_epoch(
                *rows,
                truth,
                sample_weights,
                order,
                self._lambda,
                self._batch_size,
                self._no_bias,
                self._projection,
                w,
                update,
                state,
            )
        return w, float(state[0])

    def _model(self, weights: np.ndarray, bias: float, skipped: int) -> LinearBinaryModel:
        return LinearBinaryModel(
            weights,
            bias,
            feature_column_name=self._features,
            calibrated=False,
            trainer_name=self.name,
            rows_skipped=skipped,
        )
