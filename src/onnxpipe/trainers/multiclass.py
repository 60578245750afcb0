"""Multiclass classification trainers: L-BFGS maximum entropy, naive Bayes and one-versus-all.

Labels and outputs (as ML.NET names them, without ML.NET's MapValueToKey / MapKeyToValue steps):

* The label is a scalar column of any type (int, string, bool, float) or a key column. The
  classes are the label's distinct values in sorted order (a key label of ``n`` keys has the
  classes ``1..n``, seen in training or not, as ML.NET's). Rows whose label is missing (NaN, key 0) are
  skipped in training, as are rows with non-finite features or weights; a warning says how many.
* ``Score`` is a float32 vector with one value per class, in class order, whose slot names are the
  classes as text. For a key label its size and slot names (the label's key values as text, as
  ML.NET's SlotNames, else ``"1".."n"``) are known before training when its key count is. For
  any other label they are known only after it: the estimator's ``output_schema`` says
  ``float32[?]`` without slot names, and the fitted model's ``float32[k]`` with them (also in its
  ``classes`` and ``score_slot_names``).
* ``PredictedLabel`` has the label column's own type and values: the class of the largest score
  (the first on ties). For a key label it is a key of the same type, key values included, so
  ``map_key_to_value("PredictedLabel")`` gives back the original labels.

Every model exports to ONNX. The linear algebra runs in float64 in the exported graph (the
feature column is cast to double), so that ONNX Runtime reproduces the Python scores within
float32 rounding; ``Score`` is cast back to float32, and ``PredictedLabel`` is a ``Gather`` of the
class values at the ``ArgMax`` of ``Score``.
"""

from __future__ import annotations

import abc
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues, arrow_schema, from_arrow, value_count
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError, OnnxPipeWarning, SchemaError, ShapeError
from onnxpipe.export import ElemType
from onnxpipe.schema import Column, DType, KeyType, Schema, TensorType
from onnxpipe.trainers._features import densified, finite_rows, is_sparse
from onnxpipe.trainers._lbfgs import minimize_lbfgs

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "LbfgsMaximumEntropyModel",
    "LbfgsMaximumEntropyTrainer",
    "NaiveBayesModel",
    "NaiveBayesTrainer",
    "OneVersusAllModel",
    "OneVersusAllTrainer",
]

SCORE = "Score"
PREDICTED_LABEL = "PredictedLabel"
PROBABILITY = "Probability"
_INT32_MAX = 2**31 - 1


# --------------------------------------------------------------------------------------------
# Shared helpers (clustering.py uses the feature and weight ones too)


def _readonly(array: np.ndarray) -> np.ndarray:
    out = np.array(array)  # a private copy: the caller's array stays writable and ours cannot change
    out.setflags(write=False)
    return out


def check_feature_column(schema: Schema, name: str, step: str, promise: bool = False) -> TensorType:
    """The type of a trainer's feature column: numbers (or bools) of a known shape (with ``promise``,
    before fit, a size that an upstream estimator decides at fit time is accepted)."""
    col = schema.require(name, step)
    ct = col.type
    if not isinstance(ct, TensorType) or isinstance(ct, KeyType) or not (ct.dtype.is_numeric or ct.dtype is DType.BOOL):
        raise ColumnTypeError(
            f"{step}: feature column {name!r} must hold numbers (e.g. float32[4]), got {ct}; "
            "build it with concatenate(...) from numeric columns (convert_type or one-hot encode others)"
        )
    if not ct.is_known_shape and not promise:
        raise ShapeError(
            f"{step}: feature column {name!r} must have a known size, got {ct}; "
            "declare it with VectorType(size) or build it with concatenate(...)"
        )
    return ct


def check_scoring_features(schema: Schema, name: str, trained: TensorType, step: str) -> TensorType:
    """The feature column at scoring time: numeric, with as many values as in training."""
    ct = check_feature_column(schema, name, step)
    if ct.size != trained.size:
        raise ShapeError(
            f"{step}: feature column {name!r} has {ct.size} values per row ({ct}), but the model was trained "
            f"on {trained.size} ({trained}); score data built by the same pipeline as the training data"
        )
    return ct


def check_weight_column(schema: Schema, name: str | None, step: str) -> None:
    if name is None:
        return
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.is_scalar or isinstance(ct, KeyType) or not ct.dtype.is_numeric:
        raise ColumnTypeError(f"{step}: example weight column {name!r} must be a numeric scalar, got {ct}")


def read_columns(data: DataView, names: Sequence[str], step: str) -> dict[str, np.ndarray]:
    """All values of the named tensor columns of known shape, read in one pass; no rows is an error."""
    out = data.arrays(names)
    if not value_count(out[names[0]]):
        raise DataError(f"{step}: the training data has no rows")
    return out


def as_matrix(values: ColumnValues, n_rows: int, *, keep_sparse: bool = False, step: str = "") -> Any:
    """Feature values as a float64 matrix (rows, features): a sparse batch stays a CSR matrix with
    ``keep_sparse``, and is densified (within a limit) otherwise."""
    if is_sparse(values):
        matrix: Any = values
        return matrix.astype(np.float64) if keep_sparse else densified(matrix.astype(np.float64), step)
    return np.asarray(values, dtype=np.float64).reshape(n_rows, -1)


def training_weights(values: np.ndarray | None, n_rows: int, step: str, name: str | None) -> np.ndarray:
    if values is None:
        return np.ones(n_rows)
    w = np.asarray(values, dtype=np.float64)
    if np.any(w < 0):
        raise DataError(
            f"{step}: example weight column {name!r} has negative weights (first at row {int(np.argmax(w < 0))}); "
            "weights must be >= 0"
        )
    return w


def warn_skipped(step: str, skipped: int, total: int, what: str) -> None:
    if skipped:
        warnings.warn(
            f"{step}: skipped {skipped} of {total} training rows with {what}",
            OnnxPipeWarning,
            stacklevel=3,
        )


def onnx_features(ctx: ExportContext, column: str) -> str:
    """The feature column as a float64 matrix ``[N, features]`` in the export."""
    (flat,) = ctx.add_node("Flatten", [ctx.value(column)], axis=1)
    (double,) = ctx.add_node("Cast", [flat], to=ElemType.DOUBLE)
    return double


# --------------------------------------------------------------------------------------------
# Labels


def check_label_column(schema: Schema, name: str, step: str) -> Column:
    col = schema.require(name, step)
    ct = col.type
    if not isinstance(ct, TensorType):
        raise ColumnTypeError(f"{step}: label column {name!r} must be a scalar column, got {ct}")
    if not ct.is_scalar:
        raise ShapeError(
            f"{step}: label column {name!r} must hold one value per row (a scalar of any type, or a key), got {ct}"
        )
    return col


def _missing_labels(labels: np.ndarray, ct: TensorType) -> np.ndarray:
    if isinstance(ct, KeyType):
        return np.asarray((labels == 0) | (labels > (ct.count or 0)))
    if ct.dtype.is_float:
        return np.asarray(np.isnan(labels))
    return np.zeros(len(labels), dtype=bool)


def _class_names(classes: np.ndarray) -> tuple[str, ...]:
    """The classes as text (numpy's shortest form: float32 0.1 is "0.1")."""
    return tuple(str(c) for c in classes)


def _key_slot_names(ct: KeyType) -> tuple[str, ...]:
    """The classes of a key label as text: its key values, else the keys ``"1".."n"``."""
    assert ct.count is not None
    if ct.values is not None:
        return ct.values.texts
    return tuple(str(k) for k in range(1, ct.count + 1))


def score_column(label: Column, classes: np.ndarray | None = None) -> Column:
    """The multiclass ``Score`` column of a label column: before training (``classes`` None) and
    after it (see the module docstring)."""
    ct = label.type
    assert isinstance(ct, TensorType)
    if isinstance(ct, KeyType) and ct.count is not None:
        return Column(SCORE, TensorType(DType.FLOAT32, (ct.count,)), _key_slot_names(ct))
    if classes is None or isinstance(ct, KeyType):
        return Column(SCORE, TensorType(DType.FLOAT32, (None,)))
    return Column(SCORE, TensorType(DType.FLOAT32, (len(classes),)), _class_names(classes))


def encode_labels(labels: np.ndarray, ct: TensorType, step: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The classes (sorted, of the label's dtype) and each labelled row's class index (-1: missing)."""
    missing = _missing_labels(labels, ct)
    if isinstance(ct, KeyType):
        if ct.count is None:
            raise SchemaError(
                f"{step}: label column {name!r} is {ct}, a key column of unknown count; multiclass trainers take "
                "their classes from the key count: make the keys with map_value_to_key, or declare KeyType(count)"
            )
        classes = np.arange(1, ct.count + 1, dtype=ct.dtype.numpy)
        y = np.where(missing, -1, labels.astype(np.int64) - 1)
    else:
        present = labels[~missing]
        if ct.dtype is DType.STRING:
            present = present.astype(object)
        classes, inverse = np.unique(present, return_inverse=True)
        y = np.full(len(labels), -1, dtype=np.int64)
        y[~missing] = inverse.reshape(-1)
        classes = classes.astype(ct.dtype.numpy)
    if len(classes) < 2:
        seen = ", ".join(repr(v) for v in _class_names(classes)) or "none"
        raise DataError(
            f"{step}: label column {name!r} must have at least 2 classes to train a multiclass model, "
            f"found {len(classes)} ({seen}); check the label column or the data split"
        )
    return classes, y


def _predicted(classes: np.ndarray, scores32: np.ndarray) -> np.ndarray:
    if scores32.shape[0] == 0:
        return np.asarray(classes[:0])
    return np.asarray(classes[np.argmax(scores32, axis=1)])


# --------------------------------------------------------------------------------------------
# The common fitted multiclass model


class _MulticlassModel(Transformer):
    """A fitted multiclass model: reads the features, writes ``Score`` and ``PredictedLabel``."""

    def __init__(
        self,
        *,
        label_column: Column,
        feature_column_name: str,
        feature_type: TensorType,
        classes: np.ndarray,
    ) -> None:
        self.label_column_name = label_column.name
        self.feature_column_name = feature_column_name
        self.label_type: TensorType = label_column.type  # type: ignore[assignment]
        self.feature_type = feature_type
        self.classes = _readonly(classes)
        self._score_column = score_column(label_column, self.classes)

    @property
    def label_column(self) -> Column:
        """The label column the model was trained on (its name and type)."""
        return Column(self.label_column_name, self.label_type)

    @property
    def score_slot_names(self) -> tuple[str, ...]:
        """The class of each ``Score`` slot, as text."""
        return self._score_column.slot_names or _class_names(self.classes)

    @property
    def step_name(self) -> str:
        return f"{self.catalog_name}({self.label_column_name}, {self.feature_column_name})"

    def output_schema(self, input_schema: Schema) -> Schema:
        check_scoring_features(input_schema, self.feature_column_name, self.feature_type, self.step_name)
        return input_schema.with_columns(self._score_column, Column(PREDICTED_LABEL, self.label_type))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.feature_column_name]

    @abc.abstractmethod
    def _scores(self, x: np.ndarray) -> np.ndarray:
        """Float64 scores (rows, classes) of a float64 feature matrix."""

    def _export_scores(self, ctx: ExportContext, x: str) -> str:
        """The ONNX value of the float64 scores ``[N, classes]`` from the float64 features ``x``."""
        raise NotImplementedError

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        x = as_matrix(columns[self.feature_column_name], n_rows, keep_sparse=True)
        return _outputs(self._scores(x), self.classes, self._score_column)

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        scores = self._export_scores(ctx, onnx_features(ctx, self.feature_column_name))
        _export_outputs(ctx, scores, self.classes)

    def _state(self) -> tuple[Any, ...]:
        return (self.label_column_name, self.feature_column_name, self.label_type, self.feature_type)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.classes,)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _MulticlassModel)
        return self._state() == other._state() and all(
            a.shape == b.shape and bool(np.array_equal(a, b))
            for a, b in zip(self._arrays(), other._arrays(), strict=True)
        )

    def __hash__(self) -> int:
        return hash((type(self), self._state()))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(label={self.label_column_name!r}, features={self.feature_column_name!r}, "
            f"classes={list(self.score_slot_names)})"
        )


def _outputs(scores: np.ndarray, classes: np.ndarray, score_col: Column) -> dict[str, ColumnValues]:
    scores32 = scores.astype(np.float32)
    ct = score_col.type
    assert isinstance(ct, TensorType)
    score_values: ColumnValues = scores32 if ct.is_known_shape else list(scores32)
    return {SCORE: score_values, PREDICTED_LABEL: _predicted(classes, scores32)}


def _export_outputs(ctx: ExportContext, scores: str, classes: np.ndarray) -> None:
    """``Score`` (float32) and ``PredictedLabel`` (the class at the ArgMax of ``Score``)."""
    (score,) = ctx.add_node("Cast", [scores], to=ElemType.FLOAT)
    (index,) = ctx.add_node("ArgMax", [score], axis=1, keepdims=1)  # [N, 1], the first maximum
    values = ctx.add_initializer(classes, "classes")
    (label,) = ctx.add_node("Gather", [values, index], axis=0)  # [N, 1] of the label's type
    ctx.set_value(SCORE, score)
    ctx.set_value(PREDICTED_LABEL, label)


_ModelT = TypeVar("_ModelT", bound=Transformer)  # what a trainer below fits


class _MulticlassTrainer(Estimator[_ModelT]):
    """What the multiclass trainers share: the label and feature columns and their checks."""

    label_column_name: str
    feature_column_name: str

    @property
    def step_name(self) -> str:
        return f"{self.catalog_name}({self.label_column_name}, {self.feature_column_name})"

    def _check(self, input_schema: Schema, promise: bool = False) -> tuple[Column, TensorType]:
        feature_type = check_feature_column(input_schema, self.feature_column_name, self.step_name, promise)
        label = check_label_column(input_schema, self.label_column_name, self.step_name)
        return label, feature_type

    def output_schema(self, input_schema: Schema) -> Schema:
        label, _ = self._check(input_schema, promise=True)
        return input_schema.with_columns(score_column(label), Column(PREDICTED_LABEL, label.type))

    def _args(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _MulticlassTrainer)
        return self._args() == other._args()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._args().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"


def _training_set(
    data: DataView, step: str, label: Column, feature_name: str, weight_name: str | None = None
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Features (float64; a CSR matrix for a sparse feature column), class indices, weights and
    classes of the usable training rows."""
    names = [feature_name, label.name] + ([weight_name] if weight_name else [])
    cols = read_columns(data, names, step)
    n = len(cols[label.name])
    x = as_matrix(cols[feature_name], n, keep_sparse=True)
    assert isinstance(label.type, TensorType)
    classes, y = encode_labels(cols[label.name], label.type, step, label.name)
    w = training_weights(cols[weight_name] if weight_name else None, n, step, weight_name)
    keep = (y >= 0) & finite_rows(x) & np.isfinite(w)
    warn_skipped(step, int(n - keep.sum()), n, "a missing label or non-finite features or weight")
    if not keep.any():
        raise DataError(
            f"{step}: no training row has a label and finite features{' and weight' if weight_name else ''}"
        )
    return x[keep], y[keep], w[keep], classes


# --------------------------------------------------------------------------------------------
# L-BFGS maximum entropy (multinomial logistic regression)


class LinearScoresModel(_MulticlassModel):
    """What the linear multiclass models share: per-class linear outputs ``W x + b``, which the
    subclass turns into its ``Score`` (softmax for maximum entropy, as they are for SDCA's
    non-calibrated model)."""

    _onnx_name = "linear"  # the exported initializers' name hint

    def __init__(
        self,
        *,
        label_column: Column,
        feature_column_name: str,
        feature_type: TensorType,
        classes: np.ndarray,
        weights: np.ndarray,
        bias: np.ndarray,
    ) -> None:
        super().__init__(
            label_column=label_column,
            feature_column_name=feature_column_name,
            feature_type=feature_type,
            classes=classes,
        )
        self.weights = _readonly(np.asarray(weights, dtype=np.float64))  # (classes, features)
        self.bias = _readonly(np.asarray(bias, dtype=np.float64))  # (classes,)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.classes, self.weights, self.bias)

    def _linear(self, x: Any) -> np.ndarray:
        return np.asarray(x @ self.weights.T + self.bias)

    def _export_linear(self, ctx: ExportContext, x: str) -> str:
        w = ctx.add_initializer(np.ascontiguousarray(self.weights.T), f"{self._onnx_name}_weights")
        b = ctx.add_initializer(self.bias.copy(), f"{self._onnx_name}_bias")
        return ctx.add_node("Gemm", [x, w, b])[0]


@component("lbfgs_maximum_entropy")
class LbfgsMaximumEntropyModel(LinearScoresModel):
    """Softmax regression: ``Score = softmax(W x + b)``, one probability per class."""

    _onnx_name = "maxent"

    def _scores(self, x: np.ndarray) -> np.ndarray:
        z = self._linear(x)
        z -= z.max(axis=1, keepdims=True) if len(z) else 0.0
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def _export_scores(self, ctx: ExportContext, x: str) -> str:
        return ctx.add_node("Softmax", [self._export_linear(ctx, x)], axis=1)[0]


@component("lbfgs_maximum_entropy", catalog="multiclass_classification.trainers")
class LbfgsMaximumEntropyTrainer(_MulticlassTrainer[LbfgsMaximumEntropyModel]):
    """ML.NET's ``LbfgsMaximumEntropy``: multinomial logistic regression fitted by L-BFGS.

    The objective is ML.NET's: ``(sum_i w_i * NLL_i + l2/2 * ||W||^2) / sum_i w_i
    + l1 / n * ||W||_1`` over the weights ``W`` (the biases are not regularised), minimised
    with SciPy's L-BFGS-B from zero (L1 through the split ``W = W+ - W-`` with ``W+, W- >= 0``,
    where ML.NET uses OWL-QN). Without example weights this is ``(sum NLL + l2/2 ||W||^2 +
    l1 ||W||_1) / n``: scikit-learn's multinomial ``LogisticRegression(C=1/l2)`` when ``l1 = 0``.
    Training stops when the objective improves by less than ``optimization_tolerance`` (relative),
    after ``maximum_number_of_iterations`` iterations, or when L-BFGS cannot improve further.
    ``enforce_non_negativity`` constrains the weights (not the biases) to be >= 0, as ML.NET's.
    """

    def __init__(
        self,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        l1_regularization: float = 1.0,
        l2_regularization: float = 1.0,
        optimization_tolerance: float = 1e-7,
        history_size: int = 20,
        maximum_number_of_iterations: int = _INT32_MAX,
        enforce_non_negativity: bool = False,
    ) -> None:
        step = self.catalog_name
        self.label_column_name = _validation.column_name(label_column_name, "label_column_name", step)
        self.feature_column_name = _validation.column_name(feature_column_name, "feature_column_name", step)
        self.example_weight_column_name = _validation.column_name(
            example_weight_column_name, "example_weight_column_name", step, optional=True
        )
        self.l1_regularization = _validation.number(l1_regularization, "l1_regularization", step, low=0)
        self.l2_regularization = _validation.number(l2_regularization, "l2_regularization", step, low=0)
        self.optimization_tolerance = _validation.number(
            optimization_tolerance, "optimization_tolerance", step, low=0, low_open=True
        )
        self.history_size = _validation.integer(history_size, "history_size", step, low=1)
        self.maximum_number_of_iterations = min(
            _validation.integer(maximum_number_of_iterations, "maximum_number_of_iterations", step, low=1), _INT32_MAX
        )
        self.enforce_non_negativity = _validation.boolean(enforce_non_negativity, "enforce_non_negativity", step)

    def _args(self) -> dict[str, Any]:
        return {
            "label_column_name": self.label_column_name,
            "feature_column_name": self.feature_column_name,
            "example_weight_column_name": self.example_weight_column_name,
            "l1_regularization": self.l1_regularization,
            "l2_regularization": self.l2_regularization,
            "optimization_tolerance": self.optimization_tolerance,
            "history_size": self.history_size,
            "maximum_number_of_iterations": self.maximum_number_of_iterations,
            "enforce_non_negativity": self.enforce_non_negativity,
        }

    def output_schema(self, input_schema: Schema) -> Schema:
        check_weight_column(input_schema, self.example_weight_column_name, self.step_name)
        return super().output_schema(input_schema)

    def fit(self, data: DataView) -> LbfgsMaximumEntropyModel:
        self.output_schema(data.schema)
        label, feature_type = self._check(data.schema)
        x, y, w, classes = _training_set(
            data, self.step_name, label, self.feature_column_name, self.example_weight_column_name
        )
        weights, bias = _fit_softmax(
            x,
            y,
            w,
            len(classes),
            l1=self.l1_regularization,
            l2=self.l2_regularization,
            tol=self.optimization_tolerance,
            memory=self.history_size,
            max_iter=self.maximum_number_of_iterations,
            non_negative=self.enforce_non_negativity,
        )
        return LbfgsMaximumEntropyModel(
            label_column=label,
            feature_column_name=self.feature_column_name,
            feature_type=feature_type,
            classes=classes,
            weights=weights,
            bias=bias,
        )


def _fit_softmax(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    k: int,
    *,
    l1: float,
    l2: float,
    tol: float,
    memory: int,
    max_iter: int,
    non_negative: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ML.NET's regularised softmax loss; returns (W (k, d), b (k,)).

    The parameters are ``[b, W]``; the L1 term on ``W`` and ``W >= 0`` (``non_negative``) are
    :func:`onnxpipe.trainers._lbfgs.minimize_lbfgs`'s.
    """
    n, d = x.shape
    total = float(w.sum())
    if total <= 0:
        raise DataError("lbfgs_maximum_entropy: the example weights of the training rows sum to 0")
    rows = np.arange(n)
    # (d, n): xt @ g is much faster than g.T @ x for tall x (a sparse x stays sparse)
    xt = x.T.tocsr() if is_sparse(x) else np.ascontiguousarray(x.T)  # type: ignore[attr-defined]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights, b = theta[k:].reshape(k, d), theta[:k]
        z = x @ np.ascontiguousarray(weights.T) + b
        top = z.max(axis=1, keepdims=True)
        e = np.exp(z - top)
        sums = e.sum(axis=1, keepdims=True)
        lse = (top + np.log(sums))[:, 0]
        loss = float(w @ (lse - z[rows, y]))
        g = e / sums  # softmax probabilities, then minus the one-hot label, times the row weight
        g[rows, y] -= 1.0
        g *= w[:, None]
        grad_w = (xt @ g).T + l2 * weights
        value = (loss + 0.5 * l2 * float(np.sum(weights * weights))) / total
        grad_w /= total
        grad_b = g.sum(axis=0) / total
        return value, np.concatenate([grad_b, grad_w.ravel()])

    theta = minimize_lbfgs(
        objective,
        np.zeros(k + k * d),
        penalized=slice(k, k + k * d),
        l1=l1 / n,  # ML.NET: L1Weight / NumGoodRows on the loss scaled by 1 / WeightSum
        non_negative=non_negative,
        history_size=memory,
        tolerance=tol,
        max_iterations=max_iter,
        max_evaluations=_INT32_MAX,
    )
    return theta[k:].reshape(k, d).copy(), theta[:k].copy()


# --------------------------------------------------------------------------------------------
# Naive Bayes


@component("naive_bayes")
class NaiveBayesModel(_MulticlassModel):
    """ML.NET's multiclass naive Bayes over binary features (``feature > 0`` is present).

    ``Score[c] = log(n_c / N) + sum over present features j of log((f_cj + 1) / (n_c + K))
    + sum over absent features j of log((n_c - f_cj + 1) / (n_c + K))``, where ``n_c`` is the
    number of training rows of class ``c``, ``N`` of all rows, ``f_cj`` of rows of class ``c``
    with feature ``j`` present, and ``K`` the number of classes. The denominator ``n_c + K`` is
    ML.NET's (Laplace smoothing would use ``n_c + 2``), so for more than 2 classes the two terms of
    a feature do not sum to probability 1; with 2 classes this is scikit-learn's
    ``BernoulliNB(alpha=1, binarize=0)`` joint log-likelihood. A class never seen in training
    (possible with a key label) scores ``-inf``. A NaN feature counts as absent (``NaN > 0`` is
    false), as in ML.NET's ONNX export.
    """

    def __init__(
        self,
        *,
        label_column: Column,
        feature_column_name: str,
        feature_type: TensorType,
        classes: np.ndarray,
        label_histogram: np.ndarray,
        feature_histogram: np.ndarray,
    ) -> None:
        super().__init__(
            label_column=label_column,
            feature_column_name=feature_column_name,
            feature_type=feature_type,
            classes=classes,
        )
        self.label_histogram = _readonly(np.asarray(label_histogram, dtype=np.int64))  # (classes,)
        self.feature_histogram = _readonly(np.asarray(feature_histogram, dtype=np.int64))  # (classes, features)
        base, delta = _naive_bayes_tables(self.label_histogram, self.feature_histogram)
        self._base = _readonly(base)
        self._delta = _readonly(delta)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.classes, self.label_histogram, self.feature_histogram)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((x > 0).astype(np.float64) @ self._delta.T + self._base)

    def _export_scores(self, ctx: ExportContext, x: str) -> str:
        zero = ctx.add_initializer(np.array(0.0), "zero")
        (present,) = ctx.add_node("Greater", [x, zero])
        (ones,) = ctx.add_node("Cast", [present], to=ElemType.DOUBLE)
        delta = ctx.add_initializer(np.ascontiguousarray(self._delta.T), "naive_bayes_log_ratio")
        base = ctx.add_initializer(self._base.copy(), "naive_bayes_base")
        (scores,) = ctx.add_node("Gemm", [ones, delta, base])
        return scores


def _naive_bayes_tables(labels: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class the score of a row with no feature present, and the change per present feature."""
    k = len(labels)
    n = labels.astype(np.float64)[:, None]
    f = features.astype(np.float64)
    seen = labels > 0
    denominator = np.log(n + k)
    present = np.log(f + 1) - denominator
    absent = np.log(n - f + 1) - denominator
    with np.errstate(divide="ignore"):  # an unseen class has prior log(0) = -inf, as in ML.NET
        prior = np.log(labels / labels.sum())
    base = np.where(seen, prior + absent.sum(axis=1), -np.inf)
    delta = np.where(seen[:, None], present - absent, 0.0)
    return base, delta


@component("naive_bayes", catalog="multiclass_classification.trainers")
class NaiveBayesTrainer(_MulticlassTrainer[NaiveBayesModel]):
    """ML.NET's ``NaiveBayes`` multiclass trainer (binary features; see :class:`NaiveBayesModel`).

    It takes no example weights (ML.NET's neither): every labelled row with finite features
    counts once.
    """

    def __init__(self, label_column_name: str = "Label", feature_column_name: str = "Features") -> None:
        self.label_column_name = _validation.column_name(label_column_name, "label_column_name", self.catalog_name)
        self.feature_column_name = _validation.column_name(
            feature_column_name, "feature_column_name", self.catalog_name
        )

    def _args(self) -> dict[str, Any]:
        return {"label_column_name": self.label_column_name, "feature_column_name": self.feature_column_name}

    def fit(self, data: DataView) -> NaiveBayesModel:
        self.output_schema(data.schema)
        label, feature_type = self._check(data.schema)
        x, y, _, classes = _training_set(data, self.step_name, label, self.feature_column_name)
        k = len(classes)
        label_histogram = np.bincount(y, minlength=k).astype(np.int64)
        onehot = np.zeros((len(y), k))
        onehot[np.arange(len(y)), y] = 1.0
        feature_histogram = np.rint(onehot.T @ (x > 0).astype(np.float64)).astype(np.int64)
        return NaiveBayesModel(
            label_column=label,
            feature_column_name=self.feature_column_name,
            feature_type=feature_type,
            classes=classes,
            label_histogram=label_histogram,
            feature_histogram=feature_histogram,
        )


# --------------------------------------------------------------------------------------------
# One versus all


def _binary_label_name(estimator: Estimator) -> str:
    name = getattr(estimator, "label_column_name", "Label")
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"one_versus_all: the binary estimator's label_column_name must be a column name, got {name!r}"
        )
    return name


def _save_values(ctx: ExportContext, names: Sequence[str]) -> dict[str, str | None]:
    """The current ONNX values of ``names`` (None: none yet), so a sub-model's writes can be undone."""
    saved: dict[str, str | None] = {}
    for n in names:
        if not ctx.has_value(n) and n in ctx.input_schema and isinstance(ctx.input_schema[n].type, TensorType):
            ctx.value(n)  # an input column not read yet: bind it now (unused graph inputs are pruned)
        saved[n] = ctx.value(n) if ctx.has_value(n) else None
    return saved


def _restore_values(ctx: ExportContext, saved: Mapping[str, str | None]) -> None:
    for n, v in saved.items():
        if v is None:
            ctx.drop_value(n)
        else:
            ctx.set_value(n, v)


@component("one_versus_all")
class OneVersusAllModel(Transformer):
    """One binary model per class; ``Score`` collects their outputs.

    With ``use_probabilities`` the per-class probabilities (the binary model's ``Probability``,
    or a Platt sigmoid of its ``Score`` fitted during training when it has none) are divided by
    their sum, as ML.NET does (left as they are when the sum is 0); otherwise ``Score`` holds the
    binary models' raw scores. ``PredictedLabel`` is the class of the largest ``Score``.
    """

    def __init__(
        self,
        *,
        label_column: Column,
        classes: np.ndarray,
        models: Sequence[Transformer],
        platt: np.ndarray | None,
        use_probabilities: bool,
    ) -> None:
        self.label_column_name = label_column.name
        self.label_type: TensorType = label_column.type  # type: ignore[assignment]
        self.classes = _readonly(classes)
        self.models = tuple(models)
        self.platt = None if platt is None else _readonly(np.asarray(platt, dtype=np.float64))  # (classes, 2): a, b
        self.use_probabilities = bool(use_probabilities)
        self._score_column = score_column(label_column, self.classes)
        self.onnx_min_opset = max([13, *(getattr(m, "onnx_min_opset", 13) for m in self.models)])

    @property
    def label_column(self) -> Column:
        """The label column the model was trained on (its name and type)."""
        return Column(self.label_column_name, self.label_type)

    @property
    def score_slot_names(self) -> tuple[str, ...]:
        return self._score_column.slot_names or _class_names(self.classes)

    @property
    def step_name(self) -> str:
        inner = self.models[0].step_name if self.models else "?"
        return f"one_versus_all({self.label_column_name}, {inner})"

    def output_schema(self, input_schema: Schema) -> Schema:
        for m in self.models:
            m.output_schema(input_schema)
        return input_schema.with_columns(self._score_column, Column(PREDICTED_LABEL, self.label_type))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        names: dict[str, None] = {}
        for m in self.models:
            names.update(dict.fromkeys(m.input_columns(input_schema)))
        return list(names)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        from scipy.special import expit

        per_class = []
        for c, m in enumerate(self.models):
            produced = m.map_columns(columns, input_schema, n_rows)
            if self.use_probabilities and self.platt is None:
                per_class.append(np.asarray(produced[PROBABILITY], dtype=np.float64).reshape(n_rows))
            else:
                score = np.asarray(produced[SCORE], dtype=np.float64).reshape(n_rows)
                if self.use_probabilities:
                    assert self.platt is not None
                    a, b = self.platt[c]
                    score = np.asarray(expit(a * score + b))
                per_class.append(score)
        scores = np.stack(per_class, axis=1) if per_class else np.zeros((n_rows, 0))
        if self.use_probabilities:
            total = scores.sum(axis=1, keepdims=True)
            scores = np.divide(scores, total, out=scores.copy(), where=total > 0)
        return _outputs(scores, self.classes, self._score_column)

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        per_class = []
        for c, m in enumerate(self.models):
            out = m.output_schema(input_schema)
            written = [
                n
                for n in out.names
                if n not in input_schema or out[n] != input_schema[n] or n in (SCORE, PROBABILITY, PREDICTED_LABEL)
            ]
            saved = _save_values(ctx, written)
            m.export_onnx(ctx, input_schema)
            if self.use_probabilities and self.platt is None:
                (value,) = ctx.add_node("Cast", [ctx.value(PROBABILITY)], to=ElemType.DOUBLE)
            else:
                (value,) = ctx.add_node("Cast", [ctx.value(SCORE)], to=ElemType.DOUBLE)
                if self.use_probabilities:
                    assert self.platt is not None
                    a = ctx.add_initializer(np.array(self.platt[c, 0]), "platt_slope")
                    b = ctx.add_initializer(np.array(self.platt[c, 1]), "platt_offset")
                    (value,) = ctx.add_node("Mul", [value, a])
                    (value,) = ctx.add_node("Add", [value, b])
                    (value,) = ctx.add_node("Sigmoid", [value])
            (value,) = ctx.add_node("Reshape", [value, ctx.add_initializer(np.array([-1, 1], np.int64), "shape")])
            per_class.append(value)
            _restore_values(ctx, saved)
        (scores,) = ctx.add_node("Concat", per_class, axis=1)
        if self.use_probabilities:
            axes = ctx.add_initializer(np.array([1], np.int64), "axes")
            (total,) = ctx.add_node("ReduceSum", [scores, axes], keepdims=1)
            (positive,) = ctx.add_node("Greater", [total, ctx.add_initializer(np.array(0.0), "zero")])
            (ratio,) = ctx.add_node("Div", [scores, total])
            (scores,) = ctx.add_node("Where", [positive, ratio, scores])
        _export_outputs(ctx, scores, self.classes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OneVersusAllModel):
            return NotImplemented
        same_platt = (self.platt is None and other.platt is None) or (
            self.platt is not None and other.platt is not None and bool(np.array_equal(self.platt, other.platt))
        )
        return (
            self.label_column_name == other.label_column_name
            and self.label_type == other.label_type
            and self.use_probabilities == other.use_probabilities
            and self.classes.shape == other.classes.shape
            and bool(np.array_equal(self.classes, other.classes))
            and self.models == other.models
            and same_platt
        )

    def __hash__(self) -> int:
        return hash((type(self), self.label_column_name, self.label_type, len(self.models)))

    def __repr__(self) -> str:
        return (
            f"OneVersusAllModel(label={self.label_column_name!r}, classes={list(self.score_slot_names)}, "
            f"binary={self.models[0]!r}, use_probabilities={self.use_probabilities})"
        )


@component("one_versus_all", catalog="multiclass_classification.trainers")
class OneVersusAllTrainer(Estimator[OneVersusAllModel]):
    """ML.NET's ``OneVersusAll``: one binary estimator fitted per class, class against the rest.

    For each class the binary estimator is fitted on the training data with its own label column
    (its ``label_column_name``, ``"Label"`` when it has none) replaced by the bool ``label ==
    class``; it reads its features (and weights) from its own columns. Rows with a missing label
    are left out, or taken as negatives with ``impute_missing_labels_as_negative``. With
    ``use_probabilities`` a binary model without a ``Probability`` output is calibrated with
    Platt's sigmoid on (at most ``maximum_calibration_example_count`` of) the training rows, as
    ML.NET's default calibrator does.
    """

    def __init__(
        self,
        binary_estimator: Estimator,
        label_column_name: str = "Label",
        impute_missing_labels_as_negative: bool = False,
        maximum_calibration_example_count: int = 1_000_000_000,
        use_probabilities: bool = True,
    ) -> None:
        step = "one_versus_all"
        if not isinstance(binary_estimator, Estimator):
            raise _validation.invalid(
                step,
                "binary_estimator",
                "an Estimator (e.g. a binary classification trainer)",
                binary_estimator,
            )
        self.binary_estimator = binary_estimator
        self.label_column_name = _validation.column_name(label_column_name, "label_column_name", step)
        self.impute_missing_labels_as_negative = _validation.boolean(
            impute_missing_labels_as_negative, "impute_missing_labels_as_negative", step
        )
        self.maximum_calibration_example_count = _validation.integer(
            maximum_calibration_example_count, "maximum_calibration_example_count", step, low=1
        )
        self.use_probabilities = _validation.boolean(use_probabilities, "use_probabilities", step)
        self._binary_label = _binary_label_name(binary_estimator)

    @property
    def step_name(self) -> str:
        return f"one_versus_all({self.label_column_name}, {self.binary_estimator.step_name})"

    def _binary_schema(self, input_schema: Schema) -> Schema:
        return input_schema.with_columns(Column(self._binary_label, TensorType(DType.BOOL)))

    def output_schema(self, input_schema: Schema) -> Schema:
        label = check_label_column(input_schema, self.label_column_name, self.step_name)
        binary_out = self.binary_estimator.output_schema(self._binary_schema(input_schema))
        score = binary_out[SCORE].type if SCORE in binary_out else None
        if not (isinstance(score, TensorType) and score.dtype.is_numeric and score.size == 1):
            raise SchemaError(
                f"{self.step_name}: the binary estimator must output a numeric scalar {SCORE!r} column, got "
                f"{score if score is not None else 'none'}; use a binary classification trainer"
            )
        return input_schema.with_columns(score_column(label), Column(PREDICTED_LABEL, label.type))

    def fit(self, data: DataView) -> OneVersusAllModel:
        self.output_schema(data.schema)
        step = self.step_name
        label = check_label_column(data.schema, self.label_column_name, step)
        label_type = label.type
        assert isinstance(label_type, TensorType)
        table = data.to_arrow()
        if table.num_rows == 0:
            raise DataError(f"{step}: the training data has no rows")
        labels = np.asarray(from_arrow(table.column(self.label_column_name), label_type))
        classes, y = encode_labels(labels, label_type, step, self.label_column_name)
        keep = np.ones(len(y), dtype=bool) if self.impute_missing_labels_as_negative else y >= 0
        warn_skipped(step, int(len(y) - keep.sum()), len(y), "a missing label")
        if not keep.all():
            table = table.filter(pa.array(keep))
            y = y[keep]
        binary_schema = self._binary_schema(data.schema)
        models: list[Transformer] = []
        platt: list[tuple[float, float]] = []
        for c in range(len(classes)):
            view = _with_bool_label(table, binary_schema, self._binary_label, y == c)
            model = self.binary_estimator.fit(view)
            models.append(model)
            if self.use_probabilities and PROBABILITY not in model.output_schema(binary_schema):
                count = min(table.num_rows, self.maximum_calibration_example_count)
                part = (
                    view
                    if count == table.num_rows
                    else _with_bool_label(table.slice(0, count), binary_schema, self._binary_label, (y == c)[:count])
                )
                scores = np.asarray(model.transform(part).column(SCORE), dtype=np.float64).reshape(-1)
                platt.append(_fit_platt(scores, (y == c)[:count]))
        needs_platt = bool(platt)
        if needs_platt and len(platt) != len(models):
            raise SchemaError(f"{step}: the binary models disagree on whether they output {PROBABILITY!r}")
        return OneVersusAllModel(
            label_column=label,
            classes=classes,
            models=models,
            platt=np.array(platt) if needs_platt else None,
            use_probabilities=self.use_probabilities,
        )

    def _args(self) -> tuple[Any, ...]:
        return (
            self.binary_estimator,
            self.label_column_name,
            self.impute_missing_labels_as_negative,
            self.maximum_calibration_example_count,
            self.use_probabilities,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OneVersusAllTrainer):
            return NotImplemented
        return self._args() == other._args()

    def __hash__(self) -> int:
        return hash((type(self), self.label_column_name, self.use_probabilities))

    def __repr__(self) -> str:
        return (
            f"OneVersusAllTrainer({self.binary_estimator!r}, label_column_name={self.label_column_name!r}, "
            f"impute_missing_labels_as_negative={self.impute_missing_labels_as_negative}, "
            f"maximum_calibration_example_count={self.maximum_calibration_example_count}, "
            f"use_probabilities={self.use_probabilities})"
        )


def _with_bool_label(table: pa.Table, schema: Schema, name: str, positive: np.ndarray) -> DataView:
    """``table`` with column ``name`` set to ``positive`` (bool), as a DataView of ``schema``."""
    target = arrow_schema(schema)
    flags = pa.array(np.asarray(positive, dtype=bool), type=pa.bool_())
    columns = [flags if n == name else table.column(n).combine_chunks() for n in schema.names]
    batch = pa.RecordBatch.from_arrays(columns, schema=target)

    def batches() -> Iterator[pa.RecordBatch]:
        return iter([batch])

    return DataView(schema, batches, batch.num_rows)


def _fit_platt(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Platt's sigmoid ``P = 1 / (1 + exp(-(a * score + b)))`` with his smoothed targets, as ML.NET."""
    from scipy.special import expit

    ok = np.isfinite(scores)
    s, t = scores[ok], positive[ok]
    n_pos, n_neg = float(t.sum()), float((~t).sum())
    target = np.where(t, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] * s + theta[1]
        # -[t log p + (1 - t) log(1 - p)] with p = sigmoid(z), written stably
        value = float(np.sum(np.logaddexp(0, z) - target * z))
        g = expit(z) - target
        return value, np.array([float(g @ s), float(g.sum())])

    a, b = (float(v) for v in minimize_lbfgs(loss, np.array([0.0, math.log((n_pos + 1) / (n_neg + 1))])))
    return a, b
