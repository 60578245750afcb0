"""Tree trainers on LightGBM: ``light_gbm`` (binary, multiclass, regression) and ``fast_forest``
(binary, regression; LightGBM's random-forest mode).

Needs the optional extra ``onnxpipe[lightgbm]``; LightGBM is imported only when a trainer fits or a
fitted model scores or exports.

Outputs, as ML.NET names them:

* binary: ``Score`` (float32, the raw margin; for ``fast_forest`` the trees' average margin),
  ``Probability`` (float32, LightGBM's sigmoid ``1 / (1 + exp(-sigmoid * Score))``) and
  ``PredictedLabel`` (bool, ``Score > 0``). ``fast_forest`` does not fit a separate Platt
  calibrator as ML.NET does: its Probability is the sigmoid (``sigmoid=1``) of the averaged
  margin, which is what LightGBM's own ``predict`` returns for a random forest.
* multiclass: ``Score`` (float32 vector, the softmax class probabilities in the order of
  ``model.classes``) and ``PredictedLabel`` with the label column's own type and values. Labels
  may be strings, numbers, bools or a key column; they are mapped to ``0..k-1`` in sorted order at
  fit time and back when scoring (a key label has the classes ``1..n`` of its key count n). An estimator
  promises exactly the schema its model delivers, and the classes are known only after ``fit``,
  so ``Score`` is ``float32[?]`` unless the label is a key column (``float32[n]``).
* regression: ``Score`` (float32). For LightGBM's log-link objectives (``tweedie``, ``poisson``,
  ``gamma``: ``fast_tree_tweedie`` trains them) it is ``exp`` of the trees' float32 sum, computed
  in float64 as LightGBM's ``predict`` does, and the export ends with the same ``Exp``.

Options (ML.NET's names in snake_case; ``None`` keeps LightGBM's default):

* ``light_gbm``: ``number_of_leaves`` (None: 31), ``minimum_example_count_per_leaf`` (None: 20),
  ``learning_rate`` (None: 0.1), ``number_of_iterations`` (100), ``l1_regularization`` (0),
  ``l2_regularization`` (0.01, ML.NET's default), ``feature_fraction`` (1: the fraction of
  features each tree sees), ``subsample_fraction`` and ``subsample_frequency`` (bagging: the
  fraction of rows, redrawn every ``subsample_frequency`` iterations; 0 turns it off),
  ``maximum_bin_count_per_feature`` (255); binary also ``sigmoid`` (0.5, ML.NET's default).
* ``fast_forest``: ``number_of_trees`` (100), ``number_of_leaves`` (20),
  ``minimum_example_count_per_leaf`` (10), ``feature_fraction`` (0.7, per tree),
  ``feature_fraction_per_split`` (0.7), ``bagging_example_fraction`` (0.7) and ``bagging_size``
  (1: a new sample for every tree), ``maximum_bin_count_per_feature`` (255).
* Both: ``label_column_name="Label"``, ``feature_column_name="Features"`` (a float32 or float64
  vector of known size; NaN is a missing value), ``example_weight_column_name=None``, ``seed``
  (None: 0; the catalogs pass the context's seed) and ``number_of_threads`` (None: every core).
  Fits are deterministic for a seed and thread count (LightGBM's ``deterministic=True``).

A fitted :class:`LightGbmModel` holds LightGBM's own text model (``model_text``; never a pickle)
and scores with ``lightgbm.Booster.predict``, so its predictions are LightGBM's own.

ONNX export walks ``Booster.dump_model()`` into one ``ai.onnx.ml`` ``TreeEnsembleRegressor``
(opset 3) with one target per class (tree ``i`` adds to class ``i % k``; a forest averages its
trees), followed by ``1 / (1 + exp(-sigmoid * Score))`` (binary), ``Exp`` (log-link regression),
``Softmax`` + ``ArgMax`` (multiclass) and a label lookup
(``LabelEncoder`` for strings, ``Gather`` for numbers and keys, ``Greater`` for bools). It
reproduces LightGBM's decisions exactly:

* Thresholds. LightGBM sends a row left when ``x <= threshold`` (``BRANCH_LEQ``), comparing in
  float64. The ensemble is exported in float64 (``nodes_values_as_tensor``,
  ``target_weights_as_tensor``) and a float32 feature column is cast to float64 first, which is
  exact; so every comparison is LightGBM's and the leaves are summed in float64 as LightGBM sums
  them. ONNX Runtime's float32 ``Score`` then equals ours bit for bit. (A float32 ensemble would
  need each threshold rounded *down* to the largest float32 ``t <= threshold`` -- no float32 lies
  strictly between the two, so ``x <= threshold`` iff ``x <= t`` for every float32 ``x``, whereas
  rounding to nearest sends an ``x`` equal to a rounded-up threshold the wrong way -- but ONNX
  Runtime also sums float32 ensembles in float32, which moved margins by up to 2e-6 and differently
  for different batch sizes.)
* Tiny values: LightGBM reads a dense row as sparse, so it scores every ``|x| <= 1e-35`` (its
  ``kZeroThreshold``) as 0.0; the export does the same (``Abs``, ``LessOrEqual``, ``Where``), which
  matters for the ``+-1e-35`` thresholds LightGBM puts around zero.
* Missing values: for a split whose ``missing_type`` is ``NaN``, NaN follows ``default_left``; for
  ``None`` LightGBM scores NaN as 0.0, so NaN follows the branch 0.0 takes. Both map to
  ``nodes_missing_value_tracks_true``. Splits that treat zero as missing (``missing_type`` Zero)
  and categorical splits are refused with an ExportError; these trainers never make them.
* ``Probability`` is computed from the float32 ``Score`` in float64 on both sides, so it matches
  too (with ``Exp``, ``Add`` and ``Reciprocal``: ONNX Runtime's double ``Sigmoid`` loses small
  probabilities' precision); so does a log-link regression's ``exp``. The multiclass softmax runs
  in float32 in ONNX (within float32 rounding of ours).
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._loaders import as_data_view
from onnxpipe.data._view import DataView
from onnxpipe.errors import (
    ColumnTypeError,
    DataError,
    ExportError,
    InvalidArgumentError,
    ShapeError,
    require,
)
from onnxpipe.schema import Column, DType, KeyType, Schema, TensorType
from onnxpipe.trainers._features import is_sparse
from onnxpipe.trainers._key_labels import label_as_numbers, label_value_type
from onnxpipe.trainers._lightgbm_text import lightgbm_text_problem

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "FastForestBinaryTrainer",
    "FastForestRegressionTrainer",
    "LightGbmBinaryTrainer",
    "LightGbmModel",
    "LightGbmMulticlassTrainer",
    "LightGbmRegressionTrainer",
]

BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
_TASKS = (BINARY, MULTICLASS, REGRESSION)

_F32 = TensorType(DType.FLOAT32)
_BOOL = TensorType(DType.BOOL)
_PARALLEL_ROWS = 1024  # batches smaller than this are scored on one thread
_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (1e-35f as a double)


def _lightgbm() -> Any:
    return require("lightgbm", "lightgbm")


# ------------------------------------------------------------------------------------------------
# Argument checks


_DEFAULT = "LightGBM's default"
"""What None means for the options that take it (for the messages of the argument checks)."""


# ------------------------------------------------------------------------------------------------
# Schema checks shared by the trainers and the fitted model


# Digests of the model texts LightGBM wrote in this process (fit): the same text needs no check
# (the check costs ~0.14 ms per tree, most of a small fit). Bounded: an old digest only costs a check.
_WRITTEN_BY_LIGHTGBM: collections.OrderedDict[bytes, None] = collections.OrderedDict()
_WRITTEN_KEPT = 256
_WRITTEN_LOCK = threading.Lock()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _written_by_lightgbm(text: str) -> str:
    digest = _digest(text)
    with _WRITTEN_LOCK:
        _WRITTEN_BY_LIGHTGBM[digest] = None
        while len(_WRITTEN_BY_LIGHTGBM) > _WRITTEN_KEPT:
            _WRITTEN_BY_LIGHTGBM.popitem(last=False)
    return text


def _float_features(x: np.ndarray) -> np.ndarray:
    """Integer and bool features as float64 (exact below 2**53, as the export's Cast to double);
    a sparse feature column's CSR matrix goes to LightGBM as it is (LightGBM reads CSR)."""
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _feature_type(
    schema: Schema, name: str, step: str, n_features: int | None = None, promise: bool = False
) -> TensorType:
    """The feature column's type; with ``promise`` (before fit) its size may still be unknown."""
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.dtype.converts_safely_to(DType.FLOAT64) or isinstance(ct, KeyType):
        raise ColumnTypeError(
            f"{step}: feature column {name!r} must be a vector of numbers (float32, float64, integers or bools), "
            f"got {ct}; join columns into one vector with concatenate, one-hot encode text and keys"
        )
    if ct.rank != 1 or not (ct.is_known_shape or promise):
        raise ShapeError(
            f"{step}: feature column {name!r} must be a vector of known size, got {ct}; "
            "join scalar columns into one vector with concatenate"
        )
    if n_features is not None and ct.size != n_features:
        raise ShapeError(
            f"{step}: feature column {name!r} has {ct.size} values per row, but the model was trained on "
            f"{n_features}; score data with the same features as the training data"
        )
    return ct


def _label_type(schema: Schema, name: str, step: str, task: str) -> TensorType:
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.is_scalar:
        raise ColumnTypeError(f"{step}: label column {name!r} must be a scalar, got {ct}")
    if task == MULTICLASS:
        return ct
    shown = ct
    ct = label_value_type(ct)  # a key label is read as its key values
    if task == BINARY and not (not isinstance(ct, KeyType) and (ct.dtype is DType.BOOL or ct.dtype.is_numeric)):
        raise ColumnTypeError(
            f"{step}: label column {name!r} must be bool or numbers 0/1 for binary classification, got {shown}; "
            "for more than two classes use the multiclass trainer"
        )
    if task == REGRESSION and not (not isinstance(ct, KeyType) and ct.dtype.is_numeric):
        raise ColumnTypeError(f"{step}: label column {name!r} must be numeric for regression, got {shown}")
    return shown


def _weight_type(schema: Schema, name: str, step: str) -> TensorType:
    ct = schema.require(name, step).type
    if not isinstance(ct, TensorType) or not ct.is_scalar or isinstance(ct, KeyType) or not ct.dtype.is_numeric:
        raise ColumnTypeError(f"{step}: example weight column {name!r} must be a numeric scalar, got {ct}")
    return ct


def _score_slot_names(schema: Schema, label_column: str) -> tuple[str, ...] | None:
    """A key label's class names for the multiclass ``Score`` slots: its key values, else ``"1".."n"``."""
    ct = schema[label_column].type
    if not isinstance(ct, KeyType) or ct.count is None:
        return None
    return ct.values.texts if ct.values is not None else tuple(str(k) for k in range(1, ct.count + 1))


def _output_columns(task: str, label: TensorType, score_slots: tuple[str, ...] | None) -> list[Column]:
    if task == BINARY:
        return [Column("Score", _F32), Column("Probability", _F32), Column("PredictedLabel", _BOOL)]
    if task == MULTICLASS:
        # One score per class: known before training only for a key label (its key count).
        score = TensorType(DType.FLOAT32, (label.count if isinstance(label, KeyType) else None,))
        return [Column("Score", score, score_slots), Column("PredictedLabel", label)]
    return [Column("Score", _F32)]


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _show(value: object) -> str:
    """A value for a message: numpy scalars as plain Python values."""
    return repr(value.item() if isinstance(value, np.generic) else value)


# ------------------------------------------------------------------------------------------------
# Trainers


class _LightGbmTrainer(Estimator["LightGbmModel"]):
    """What every tree trainer shares: columns, validation, the LightGBM call."""

    _task: ClassVar[str]
    _arg_names: ClassVar[tuple[str, ...]]

    label_column_name: str
    feature_column_name: str
    example_weight_column_name: str | None
    seed: int | None
    number_of_threads: int | None

    def _set(self, **values: Any) -> None:
        for k, v in values.items():
            setattr(self, k, v)

    @property
    def _catalog(self) -> str:
        """The step name's prefix: the catalog name and the task (``light_gbm_binary``)."""
        return f"{self.catalog_name}_{self._task}"

    def _args(self) -> tuple[tuple[str, object], ...]:
        return tuple((n, getattr(self, n)) for n in self._arg_names)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._args() == self._args()

    def __hash__(self) -> int:
        return hash((type(self), self._args()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self._args()) + ")"

    @property
    def step_name(self) -> str:
        return f"{self._catalog}({self.label_column_name}, {self.feature_column_name})"

    # -------------------------------------------------------------- schema

    def _check_schema(self, schema: Schema, promise: bool = False) -> tuple[TensorType, TensorType]:
        step = self.step_name
        features = _feature_type(schema, self.feature_column_name, step, promise=promise)
        label = _label_type(schema, self.label_column_name, step, self._task)
        if self.example_weight_column_name is not None:
            _weight_type(schema, self.example_weight_column_name, step)
        return features, label

    def output_schema(self, input_schema: Schema) -> Schema:
        _, label = self._check_schema(input_schema, promise=True)
        slots = _score_slot_names(input_schema, self.label_column_name) if self._task == MULTICLASS else None
        return input_schema.with_columns(*_output_columns(self._task, label, slots))

    # -------------------------------------------------------------- training

    def _objective_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _threads(self) -> int:
        return self.number_of_threads if self.number_of_threads is not None else (os.cpu_count() or 1)

    def lightgbm_params(self, num_class: int | None = None) -> dict[str, Any]:
        """The parameters given to ``lightgbm.train`` (``num_class`` for multiclass)."""
        params: dict[str, Any] = {"objective": self._task if self._task != MULTICLASS else "multiclass"}
        if self._task == MULTICLASS:
            params["num_class"] = num_class
        params.update(self._objective_params())
        params.update(
            # Reproducible fits: a fixed seed and thread count, and no timing-based choice between
            # LightGBM's row-wise and column-wise histogram layouts.
            seed=self.seed if self.seed is not None else 0,
            deterministic=True,
            force_row_wise=True,
            num_threads=self._threads(),
            verbosity=-1,
        )
        return params

    def _num_boost_round(self) -> int:
        raise NotImplementedError

    def _labels(self, values: np.ndarray, label: TensorType) -> tuple[np.ndarray, np.ndarray | None]:
        """LightGBM's float64 labels and, for multiclass, the sorted class values."""
        step, name = self.step_name, self.label_column_name
        if self._task != MULTICLASS:
            values = label_as_numbers(values, label)  # a key label's values; key 0 is missing (NaN)
        if values.dtype.kind == "f" and np.isnan(values).any():
            i = _first_bad(np.isnan(values))
            raise DataError(f"{step}: label column {name!r} is missing (NaN) at row {i}; remove rows without a label")
        if self._task == REGRESSION:
            y = values.astype(np.float64)
            if not np.isfinite(y).all():
                i = _first_bad(~np.isfinite(y))
                raise DataError(f"{step}: label column {name!r} is infinite at row {i}; regression needs finite labels")
            return y, None
        if self._task == BINARY:
            y = values.astype(np.float64)
            bad = (y != 0) & (y != 1)
            if bad.any():
                i = _first_bad(bad)
                raise DataError(
                    f"{step}: label column {name!r} must hold only 0/1 or false/true for binary classification, "
                    f"got {_show(values[i])} at row {i}; use the multiclass trainer for more classes"
                )
            if len(np.unique(y)) < 2:
                raise DataError(
                    f"{step}: label column {name!r} has a single class ({_show(values[0])}) in the training data; "
                    "binary classification needs examples of both classes"
                )
            return y, None
        # multiclass
        if label.dtype is DType.STRING:
            not_str = np.array([not isinstance(v, str) for v in values], dtype=bool)
            if not_str.any():
                i = _first_bad(not_str)
                raise DataError(f"{step}: label column {name!r} is missing at row {i} ({_show(values[i])})")
        if isinstance(label, KeyType):
            if label.count is None:
                raise DataError(
                    f"{step}: key label column {name!r} is {label}, of unknown key count; make the keys with "
                    "map_value_to_key or declare KeyType(count)"
                )
            if (values == 0).any():
                i = _first_bad(values == 0)
                raise DataError(f"{step}: key label column {name!r} is missing (key 0) at row {i}")
            classes = np.arange(1, label.count + 1, dtype=label.dtype.numpy)
            y = values.astype(np.float64) - 1
        else:
            classes, index = np.unique(values, return_inverse=True)
            classes = classes.astype(label.dtype.numpy)
            y = index.astype(np.float64).reshape(-1)
        if len(np.unique(y)) < 2:
            raise DataError(
                f"{step}: label column {name!r} has a single class ({_show(values[0])}) in the training data; "
                "classification needs examples of at least two classes"
            )
        return y, classes

    def _weights(self, values: np.ndarray) -> np.ndarray:
        step, name = self.step_name, self.example_weight_column_name
        w = values.astype(np.float64)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = _first_bad(bad)
            raise DataError(
                f"{step}: example weight column {name!r} must hold finite weights >= 0, "
                f"got {_show(values[i])} at row {i}"
            )
        if not (w > 0).any():
            raise DataError(f"{step}: example weight column {name!r} is zero for every row; nothing to learn from")
        return w

    def fit(self, data: Any) -> LightGbmModel:
        """Train on ``data``: any data ``fit`` takes, or a Dask DataFrame (trained by
        ``lightgbm.dask`` on the workers of the current ``distributed`` client, each on its
        partitions; binary classification and regression)."""
        if _is_dask_frame(data):
            return self._fit_dask(data)
        if not isinstance(data, DataView):
            data = as_data_view(data, f"{self._own_name()}.fit")
        return self._fit_view(data)

    fit._takes_any_data = True  # type: ignore[attr-defined]  # converts its own data (Dask frames too)

    def _model(
        self, booster_text: str, schema: Schema, features: TensorType, label: TensorType, classes: Any
    ) -> LightGbmModel:
        return LightGbmModel(
            task=self._task,
            model_text=_written_by_lightgbm(booster_text),
            label_column_name=self.label_column_name,
            feature_column_name=self.feature_column_name,
            label_type=label,
            score_slot_names=_score_slot_names(schema, self.label_column_name) if classes is not None else None,
            num_features=features.size or 0,
            classes=classes,
            number_of_threads=self.number_of_threads,
            trainer_name=self._catalog,
        )

    def _fit_dask(self, frame: Any) -> LightGbmModel:
        """``lightgbm.dask`` on a Dask DataFrame of the same columns a DataView would have (the
        feature vector as an Arrow list, as ``onnxpipe.distributed.dask.score`` writes it)."""
        import pyarrow as pa

        step = self.step_name
        if self._task == MULTICLASS:
            raise InvalidArgumentError(
                f"{step}: training on a Dask DataFrame covers binary classification and regression"
            )
        lgb_dask: Any = require("lightgbm.dask", "dask,lightgbm")
        schema = as_data_view(pa.Table.from_pandas(frame._meta, preserve_index=False), f"{self._own_name()}.fit").schema
        features, label = self._check_schema(schema)
        size = features.size
        if size is None:
            raise InvalidArgumentError(
                f"{step}: on Dask the feature column {self.feature_column_name!r} needs a fixed size"
            )
        names = [f"f{i}" for i in range(size)]
        meta_x = pd_frame({n: np.zeros(0, np.float64) for n in names})
        x = frame.map_partitions(_dask_features, self.feature_column_name, names, meta=meta_x)
        binary = self._task == BINARY
        y = frame.map_partitions(_dask_labels, self.label_column_name, label, binary, meta=("label", np.float64))
        w = None
        if self.example_weight_column_name is not None:
            w = frame.map_partitions(_dask_weights, self.example_weight_column_name, meta=("weight", np.float64))
        params = self.lightgbm_params()
        params.pop("num_threads")  # each worker uses its own threads (lightgbm.dask's default)
        cls = lgb_dask.DaskLGBMClassifier if self._task == BINARY else lgb_dask.DaskLGBMRegressor
        estimator = cls(n_estimators=self._num_boost_round(), **params)
        try:
            with warnings.catch_warnings():  # lightgbm.dask sets each worker's threads itself, and says so
                warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
                estimator.fit(x, y, sample_weight=w)
        except Exception as exc:  # LightGBM's or Dask's report of a failed fit, with its cause
            raise DataError(f"{step}: LightGBM on Dask could not train on this data: {exc}") from exc
        text = estimator.to_local().booster_.model_to_string(num_iteration=-1)
        return self._model(text, schema, features, label, None)

    def _fit_view(self, data: DataView) -> LightGbmModel:
        features, label = self._check_schema(data.schema)
        names = [self.feature_column_name, self.label_column_name]
        if self.example_weight_column_name is not None:
            names.append(self.example_weight_column_name)
        cols = data.arrays(names)
        x = _float_features(cols[self.feature_column_name])
        if x.shape[0] == 0:
            raise DataError(f"{self.step_name}: the training data has no rows")
        y, classes = self._labels(cols[self.label_column_name], label)
        w = self._weights(cols[self.example_weight_column_name]) if self.example_weight_column_name else None
        params = self.lightgbm_params(len(classes) if classes is not None else None)
        lgb = _lightgbm()
        try:
            # keep_training_booster: LightGBM would otherwise round-trip the model through its text
            # to free the data set; the text is written once below and the booster dropped.
            booster = lgb.train(
                params,
                lgb.Dataset(x, label=y, weight=w),
                num_boost_round=self._num_boost_round(),
                keep_training_booster=True,
            )
        except lgb.basic.LightGBMError as exc:
            raise DataError(f"{self.step_name}: LightGBM could not train on this data: {exc}") from None
        return self._model(booster.model_to_string(num_iteration=-1), data.schema, features, label, classes)


def _is_dask_frame(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("dask") and hasattr(data, "map_partitions") and hasattr(data, "_meta")


def pd_frame(columns: dict[str, np.ndarray]) -> Any:
    import pandas as pd

    return pd.DataFrame(columns)


def _dask_features(part: Any, column: str, names: list[str]) -> Any:
    """A partition's feature vectors as float64 columns ``f0..``, for ``lightgbm.dask``."""
    import pyarrow as pa

    values = pa.array(part[column].array) if len(part) else pa.array([], pa.list_(pa.float64()))
    matrix = np.asarray(values.flatten(), dtype=np.float64).reshape(len(part), len(names))
    frame = pd_frame({n: matrix[:, i] for i, n in enumerate(names)})
    frame.index = part.index
    return frame


def _dask_labels(part: Any, column: str, label: TensorType, binary: bool) -> Any:
    import pandas as pd

    values = label_as_numbers(np.asarray(part[column].to_numpy()), label).astype(np.float64)
    bad = ~np.isfinite(values) | ((values != 0) & (values != 1) if binary else False)
    if bad.any():
        raise DataError(
            f"label column {column!r} holds {values[bad][0]!r}; binary classification needs 0/1 or false/true "
            "and regression finite labels"
        )

    return pd.Series(values, index=part.index, name="label")


def _dask_weights(part: Any, column: str) -> Any:
    import pandas as pd

    return pd.Series(np.asarray(part[column].to_numpy(), dtype=np.float64), index=part.index, name="weight")


class LightGbmOptions(TypedDict, total=False):
    """Options of the ``light_gbm`` trainers (ML.NET's names; see the module docstring)."""

    label_column_name: str
    feature_column_name: str
    example_weight_column_name: str | None
    number_of_leaves: int | None
    minimum_example_count_per_leaf: int | None
    learning_rate: float | None
    number_of_iterations: int
    l1_regularization: float
    l2_regularization: float
    feature_fraction: float
    subsample_fraction: float
    subsample_frequency: int
    maximum_bin_count_per_feature: int
    seed: int | None
    number_of_threads: int | None


class LightGbmBinaryOptions(LightGbmOptions, total=False):
    sigmoid: float


class _GbdtTrainer(_LightGbmTrainer):
    """Gradient boosting (``light_gbm``): options as ML.NET's LightGbm trainers."""

    _arg_names: ClassVar[tuple[str, ...]] = (
        "label_column_name",
        "feature_column_name",
        "example_weight_column_name",
        "number_of_leaves",
        "minimum_example_count_per_leaf",
        "learning_rate",
        "number_of_iterations",
        "l1_regularization",
        "l2_regularization",
        "feature_fraction",
        "subsample_fraction",
        "subsample_frequency",
        "maximum_bin_count_per_feature",
        "seed",
        "number_of_threads",
    )

    number_of_leaves: int | None
    minimum_example_count_per_leaf: int | None
    learning_rate: float | None
    number_of_iterations: int
    l1_regularization: float
    l2_regularization: float
    feature_fraction: float
    subsample_fraction: float
    subsample_frequency: int
    maximum_bin_count_per_feature: int

    def __init__(
        self,
        *,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_leaves: int | None = None,
        minimum_example_count_per_leaf: int | None = None,
        learning_rate: float | None = None,
        number_of_iterations: int = 100,
        l1_regularization: float = 0.0,
        l2_regularization: float = 0.01,
        feature_fraction: float = 1.0,
        subsample_fraction: float = 1.0,
        subsample_frequency: int = 0,
        maximum_bin_count_per_feature: int = 255,
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
            number_of_leaves=_validation.integer(number_of_leaves, "number_of_leaves", step, low=2, optional=_DEFAULT),
            minimum_example_count_per_leaf=_validation.integer(
                minimum_example_count_per_leaf, "minimum_example_count_per_leaf", step, low=1, optional=_DEFAULT
            ),
            learning_rate=_validation.number(
                learning_rate, "learning_rate", step, low=0, low_open=True, optional=_DEFAULT
            ),
            number_of_iterations=_validation.integer(number_of_iterations, "number_of_iterations", step, low=1),
            l1_regularization=_validation.number(l1_regularization, "l1_regularization", step, low=0),
            l2_regularization=_validation.number(l2_regularization, "l2_regularization", step, low=0),
            feature_fraction=_validation.number(
                feature_fraction, "feature_fraction", step, low=0, high=1, low_open=True
            ),
            subsample_fraction=_validation.number(
                subsample_fraction, "subsample_fraction", step, low=0, high=1, low_open=True
            ),
            subsample_frequency=_validation.integer(subsample_frequency, "subsample_frequency", step, low=0),
            maximum_bin_count_per_feature=_validation.integer(
                maximum_bin_count_per_feature, "maximum_bin_count_per_feature", step, low=2
            ),
            seed=_validation.integer(seed, "seed", step, low=0, optional=_DEFAULT),
            number_of_threads=_validation.thread_count(number_of_threads, "number_of_threads", step),
        )

    def _objective_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "boosting": "gbdt",
            "lambda_l1": self.l1_regularization,
            "lambda_l2": self.l2_regularization,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.subsample_fraction,
            "bagging_freq": self.subsample_frequency,
            "max_bin": self.maximum_bin_count_per_feature,
        }
        # None keeps LightGBM's defaults (31 leaves, 20 examples per leaf, learning rate 0.1).
        for key, value in (
            ("num_leaves", self.number_of_leaves),
            ("min_data_in_leaf", self.minimum_example_count_per_leaf),
            ("learning_rate", self.learning_rate),
        ):
            if value is not None:
                params[key] = value
        return params

    def _num_boost_round(self) -> int:
        return self.number_of_iterations


@component("light_gbm", catalog="binary_classification.trainers")
class LightGbmBinaryTrainer(_GbdtTrainer):
    """``binary_classification.trainers.light_gbm``: gradient-boosted trees for bool (or 0/1) labels.

    Outputs ``Score`` (raw margin), ``Probability`` (``1 / (1 + exp(-sigmoid * Score))``) and
    ``PredictedLabel`` (``Score > 0``). ``sigmoid`` is LightGBM's sigmoid parameter; the default
    0.5 is ML.NET's (LightGBM's own default is 1). Other options: see the module docstring.
    """

    _task = BINARY
    _arg_names: ClassVar[tuple[str, ...]] = (*_GbdtTrainer._arg_names, "sigmoid")

    sigmoid: float

    def __init__(
        self,
        *,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_leaves: int | None = None,
        minimum_example_count_per_leaf: int | None = None,
        learning_rate: float | None = None,
        number_of_iterations: int = 100,
        l1_regularization: float = 0.0,
        l2_regularization: float = 0.01,
        feature_fraction: float = 1.0,
        subsample_fraction: float = 1.0,
        subsample_frequency: int = 0,
        maximum_bin_count_per_feature: int = 255,
        seed: int | None = None,
        number_of_threads: int | None = None,
        sigmoid: float = 0.5,
    ) -> None:
        super().__init__(
            label_column_name=label_column_name,
            feature_column_name=feature_column_name,
            example_weight_column_name=example_weight_column_name,
            number_of_leaves=number_of_leaves,
            minimum_example_count_per_leaf=minimum_example_count_per_leaf,
            learning_rate=learning_rate,
            number_of_iterations=number_of_iterations,
            l1_regularization=l1_regularization,
            l2_regularization=l2_regularization,
            feature_fraction=feature_fraction,
            subsample_fraction=subsample_fraction,
            subsample_frequency=subsample_frequency,
            maximum_bin_count_per_feature=maximum_bin_count_per_feature,
            seed=seed,
            number_of_threads=number_of_threads,
        )
        self._set(sigmoid=_validation.number(sigmoid, "sigmoid", self._catalog, low=0, low_open=True))

    def _objective_params(self) -> dict[str, Any]:
        return {**super()._objective_params(), "sigmoid": self.sigmoid}


@component("light_gbm", catalog="multiclass_classification.trainers")
class LightGbmMulticlassTrainer(_GbdtTrainer):
    """``multiclass_classification.trainers.light_gbm``: gradient-boosted trees, softmax objective.

    Outputs ``Score`` (class probabilities, in the order of the fitted model's ``classes``) and
    ``PredictedLabel`` (the most probable class, with the label column's type).
    """

    _task = MULTICLASS


@component("light_gbm", catalog="regression.trainers")
class LightGbmRegressionTrainer(_GbdtTrainer):
    """``regression.trainers.light_gbm``: gradient-boosted trees, squared-error objective."""

    _task = REGRESSION


class _ForestTrainer(_LightGbmTrainer):
    """A random forest (``fast_forest``) through LightGBM's ``boosting="rf"``: each tree is grown
    on a bagged sample with a subset of the features, and the model averages the trees.

    ML.NET's option names and defaults: ``number_of_trees=100``, ``number_of_leaves=20``,
    ``minimum_example_count_per_leaf=10``, ``feature_fraction=0.7`` (per tree),
    ``feature_fraction_per_split=0.7``, ``bagging_example_fraction=0.7`` and ``bagging_size=1``
    (a new sample every tree; 0 turns bagging off).
    """

    _arg_names: ClassVar[tuple[str, ...]] = (
        "label_column_name",
        "feature_column_name",
        "example_weight_column_name",
        "number_of_trees",
        "number_of_leaves",
        "minimum_example_count_per_leaf",
        "feature_fraction",
        "feature_fraction_per_split",
        "bagging_example_fraction",
        "bagging_size",
        "maximum_bin_count_per_feature",
        "seed",
        "number_of_threads",
    )

    number_of_trees: int
    number_of_leaves: int
    minimum_example_count_per_leaf: int
    feature_fraction: float
    feature_fraction_per_split: float
    bagging_example_fraction: float
    bagging_size: int
    maximum_bin_count_per_feature: int

    def __init__(
        self,
        *,
        label_column_name: str = "Label",
        feature_column_name: str = "Features",
        example_weight_column_name: str | None = None,
        number_of_trees: int = 100,
        number_of_leaves: int = 20,
        minimum_example_count_per_leaf: int = 10,
        feature_fraction: float = 0.7,
        feature_fraction_per_split: float = 0.7,
        bagging_example_fraction: float = 0.7,
        bagging_size: int = 1,
        maximum_bin_count_per_feature: int = 255,
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
            number_of_trees=_validation.integer(number_of_trees, "number_of_trees", step, low=1),
            number_of_leaves=_validation.integer(number_of_leaves, "number_of_leaves", step, low=2),
            minimum_example_count_per_leaf=_validation.integer(
                minimum_example_count_per_leaf, "minimum_example_count_per_leaf", step, low=1
            ),
            feature_fraction=_validation.number(
                feature_fraction, "feature_fraction", step, low=0, high=1, low_open=True
            ),
            feature_fraction_per_split=_validation.number(
                feature_fraction_per_split, "feature_fraction_per_split", step, low=0, high=1, low_open=True
            ),
            bagging_example_fraction=_validation.number(
                bagging_example_fraction, "bagging_example_fraction", step, low=0, high=1, low_open=True
            ),
            bagging_size=_validation.integer(bagging_size, "bagging_size", step, low=0),
            maximum_bin_count_per_feature=_validation.integer(
                maximum_bin_count_per_feature, "maximum_bin_count_per_feature", step, low=2
            ),
            seed=_validation.integer(seed, "seed", step, low=0, optional=_DEFAULT),
            number_of_threads=_validation.thread_count(number_of_threads, "number_of_threads", step),
        )
        # LightGBM's random forest needs some randomness, or every tree would be the same.
        if not ((self.bagging_size > 0 and self.bagging_example_fraction < 1) or self.feature_fraction < 1):
            raise InvalidArgumentError(
                f"{step}: a random forest needs bagging (bagging_size > 0 and bagging_example_fraction < 1) "
                f"or feature_fraction < 1, got bagging_size={self.bagging_size}, "
                f"bagging_example_fraction={self.bagging_example_fraction}, feature_fraction={self.feature_fraction}"
            )

    def _objective_params(self) -> dict[str, Any]:
        return {
            "boosting": "rf",
            "num_leaves": self.number_of_leaves,
            "min_data_in_leaf": self.minimum_example_count_per_leaf,
            "feature_fraction": self.feature_fraction,
            "feature_fraction_bynode": self.feature_fraction_per_split,
            "bagging_fraction": self.bagging_example_fraction,
            "bagging_freq": self.bagging_size,
            "max_bin": self.maximum_bin_count_per_feature,
        }

    def _num_boost_round(self) -> int:
        return self.number_of_trees


@component("fast_forest", catalog="binary_classification.trainers")
class FastForestBinaryTrainer(_ForestTrainer):
    """``binary_classification.trainers.fast_forest``: a random forest for bool (or 0/1) labels.

    ``Score`` is the trees' average margin, ``Probability`` its sigmoid (LightGBM's own transform;
    no separately fitted calibrator), ``PredictedLabel`` is ``Score > 0``.
    """

    _task = BINARY


@component("fast_forest", catalog="regression.trainers")
class FastForestRegressionTrainer(_ForestTrainer):
    """``regression.trainers.fast_forest``: a random forest; ``Score`` is the trees' average."""

    _task = REGRESSION


# ------------------------------------------------------------------------------------------------
# The fitted model


@component()
class LightGbmModel(Transformer):
    """A fitted LightGBM model: scores with LightGBM, exports to ``ai.onnx.ml`` TreeEnsembleRegressor.

    Holds only plain values: LightGBM's text model (``model_text``), the class values
    (``classes``, multiclass only), and the columns and types it was trained with. The LightGBM
    booster is rebuilt from the text on first use in each process.
    """

    accepts_sparse = True  # LightGBM scores a CSR matrix as it is

    def __init__(
        self,
        *,
        task: str,
        model_text: str,
        label_column_name: str,
        feature_column_name: str,
        label_type: TensorType,
        num_features: int,
        classes: np.ndarray | None = None,
        score_slot_names: Sequence[str] | None = None,
        number_of_threads: int | None = None,
        trainer_name: str | None = None,
    ) -> None:
        # Every argument is checked: a saved model rebuilds through here from a file of unknown origin.
        who = "LightGbmModel"
        _validation.choice(task, "task", who, _TASKS)
        if (classes is not None) != (task == MULTICLASS):
            raise InvalidArgumentError("classes are given for a multiclass model, and only for one")
        _validation.column_name(label_column_name, "label_column_name", who)
        _validation.column_name(feature_column_name, "feature_column_name", who)
        if trainer_name is not None and (not isinstance(trainer_name, str) or not trainer_name):
            raise _validation.invalid(who, "trainer_name", "a non-empty string or None", trainer_name)
        if not isinstance(label_type, TensorType):
            raise _validation.invalid(who, "label_type", "a TensorType", label_type)
        _validation.integer(num_features, "num_features", who, low=1)
        if classes is not None:
            classes = np.asarray(classes)
            if (
                classes.ndim != 1
                or len(classes) < 2
                or (classes.dtype.hasobject and label_type.dtype is not DType.STRING)
            ):
                raise InvalidArgumentError(
                    f"LightGbmModel: classes must be 1-D with at least 2 values, got {classes!r:.60}"
                )
        if score_slot_names is not None and (
            isinstance(score_slot_names, str) or not all(isinstance(n, str) for n in score_slot_names)
        ):
            raise _validation.invalid(who, "score_slot_names", "a sequence of strings or None", score_slot_names)
        _validation.thread_count(number_of_threads, "number_of_threads", who)
        # LightGBM's parser trusts its input (bad indexes crash the process): the text is checked
        # before it ever sees it, unless this process's LightGBM just wrote exactly this text.
        written_here = _digest(model_text) in _WRITTEN_BY_LIGHTGBM
        problem = None if written_here else lightgbm_text_problem(model_text, int(num_features))
        if problem:
            raise InvalidArgumentError(f"LightGbmModel: {problem}")
        values: dict[str, Any] = {
            "task": task,
            "model_text": model_text,
            "label_column_name": label_column_name,
            "feature_column_name": feature_column_name,
            "label_type": label_type,
            "num_features": int(num_features),
            "classes": None if classes is None else np.array(classes, copy=True),
            "score_slot_names": None if score_slot_names is None else tuple(score_slot_names),
            "number_of_threads": number_of_threads,
            "trainer_name": trainer_name or f"light_gbm_{task}",
        }
        if values["classes"] is not None:
            values["classes"].flags.writeable = False
        for k, v in values.items():
            object.__setattr__(self, k, v)
        self._derive()

    task: str
    model_text: str
    label_column_name: str
    feature_column_name: str
    label_type: TensorType
    num_features: int
    classes: np.ndarray | None
    score_slot_names: tuple[str, ...] | None
    number_of_threads: int | None
    trainer_name: str

    # -------------------------------------------------------------- plumbing

    state_version = 2  # version 1 called trainer_name catalog_name

    @classmethod
    def upgrade_state(cls, state: dict[str, Any], version: int) -> dict[str, Any]:
        if version == 1 and "catalog_name" in state:
            state["trainer_name"] = state.pop("catalog_name")
            return state
        return super().upgrade_state(state, version)

    @classmethod
    def from_legacy_attributes(cls, attributes: dict[str, Any]) -> LightGbmModel:
        # Format 1 stored exactly the constructor's arguments (of state version 1).
        return cls.from_state(attributes, 1)

    def _derive(self) -> None:
        """The per-process cache and the values read from the model text's header."""
        if self.__dict__.get("classes") is not None:
            self.__dict__["classes"].flags.writeable = False
        self.__dict__["_lock"] = threading.Lock()
        self.__dict__["_booster_cache"] = None
        self.__dict__["_sigmoid_value"], self.__dict__["_average_value"] = _header(self.model_text)
        self.__dict__["_exp_score"] = _objective_name(self.model_text) in _LOG_LINK_OBJECTIVES

    def _key(self) -> tuple[Any, ...]:
        classes = None if self.classes is None else tuple(self.classes.tolist())
        return (
            self.task,
            self.model_text,
            self.label_column_name,
            self.feature_column_name,
            self.label_type,
            self.num_features,
            classes,
            self.score_slot_names,
            self.trainer_name,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LightGbmModel) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        classes = "" if self.classes is None else f", classes={self.classes.tolist()!r}"
        return (
            f"LightGbmModel({self.step_name}, task={self.task!r}, trees={self.number_of_trees}, "
            f"features={self.num_features}{classes})"
        )

    @property
    def step_name(self) -> str:
        return f"{self.trainer_name}({self.label_column_name}, {self.feature_column_name})"

    def _booster(self) -> Any:
        booster = self.__dict__["_booster_cache"]
        if booster is None:
            with self.__dict__["_lock"]:
                booster = self.__dict__["_booster_cache"]
                if booster is None:
                    booster = _lightgbm().Booster(model_str=self.model_text)
                    self.__dict__["_booster_cache"] = booster
        return booster

    def to_lightgbm(self) -> Any:
        """A new ``lightgbm.Booster`` loaded from this model's text."""
        return _lightgbm().Booster(model_str=self.model_text)

    @property
    def number_of_trees(self) -> int:
        return int(self._booster().num_trees())

    @property
    def _sigmoid(self) -> float:
        value: float = self.__dict__["_sigmoid_value"]
        return value

    # -------------------------------------------------------------- schema and scoring

    def output_schema(self, input_schema: Schema) -> Schema:
        _feature_type(input_schema, self.feature_column_name, self.step_name, self.num_features)
        columns = _output_columns(self.task, self.label_type, self.score_slot_names)
        if self.task == MULTICLASS and self.classes is not None and not isinstance(self.label_type, KeyType):
            # Fitting has found the classes: one score per class, named by its label value.
            names = tuple(str(c) for c in self.classes.tolist())
            columns[0] = Column("Score", TensorType(DType.FLOAT32, (len(names),)), names)
        return input_schema.with_columns(*columns)

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.feature_column_name]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        values: Any = columns[self.feature_column_name]
        x = values if is_sparse(values) else np.asarray(values).reshape(n_rows, self.num_features)
        if self.task == BINARY:
            margin = self._predict(x, raw_score=True)
            if self.__dict__["_average_value"]:
                # A forest's margin is the trees' average; LightGBM's raw_score=True gives their sum
                # (and averages only in its transformed output, sigmoid(sum / iterations)).
                margin = margin / self._booster().current_iteration()
            score = margin.astype(np.float32)
            # From the float32 Score (not LightGBM's float64 margin) so that the ONNX export, which
            # only sees the float32 Score, gives the same float32 Probability.
            with np.errstate(over="ignore"):  # exp overflows to inf for very negative margins: probability 0
                probability = (1.0 / (1.0 + np.exp(-self._sigmoid * score.astype(np.float64)))).astype(np.float32)
            return {"Score": score, "Probability": probability, "PredictedLabel": score > 0}
        if self.task == REGRESSION:
            if self.__dict__["_exp_score"]:
                # exp of the float32 sum, in float64: the export's Exp sees only the float32 sum too.
                margin = self._predict(x, raw_score=True).astype(np.float32)
                with np.errstate(over="ignore"):  # a Score beyond float32's range is inf
                    return {"Score": np.exp(margin.astype(np.float64)).astype(np.float32)}
            return {"Score": self._predict(x, raw_score=False).astype(np.float32)}
        assert self.classes is not None
        raw = self._predict(x, raw_score=True).reshape(n_rows, len(self.classes))
        # LightGBM's softmax, in float64 from its float64 margins.
        exp = np.exp(raw - raw.max(axis=1, keepdims=True, initial=-np.inf))
        scores = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        # The first largest float32 margin: the export's ArgMax sees the same float32 margins.
        labels = self.classes[np.argmax(raw.astype(np.float32), axis=1)] if n_rows else self.classes[:0]
        out_scores: ColumnValues = scores if isinstance(self.label_type, KeyType) else list(scores)
        return {"Score": out_scores, "PredictedLabel": np.asarray(labels)}

    def _predict(self, x: np.ndarray, *, raw_score: bool) -> np.ndarray:
        if x.shape[0] == 0:
            width = len(self.classes) if self.task == MULTICLASS and self.classes is not None else None
            return np.zeros((0, width) if width else (0,), dtype=np.float64)
        # A few rows (the prediction engine's case) cost less on one thread than waking OpenMP's team.
        threads = 1 if x.shape[0] < _PARALLEL_ROWS else (self.number_of_threads or 0)  # 0: LightGBM's default
        out: np.ndarray = self._booster().predict(_float_features(x), raw_score=raw_score, num_threads=threads)
        return out

    # -------------------------------------------------------------- ONNX export

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        from onnx import TensorProto

        features = _feature_type(input_schema, self.feature_column_name, self.step_name, self.num_features)
        dump = self._booster().dump_model()
        n_targets = int(dump["num_tree_per_iteration"])
        attrs = _ensemble_attributes(dump["tree_info"], n_targets, ctx.step)
        ctx.require_opset("ai.onnx.ml", 3)
        x = ctx.value(self.feature_column_name)
        if features.dtype is not DType.FLOAT64:  # exact: every float32 is a float64
            (x,) = ctx.add_node("Cast", [x], to=TensorProto.DOUBLE)
        # LightGBM scores every |x| <= kZeroThreshold as 0.0 (its dense rows are read as sparse).
        (small,) = ctx.add_node(
            "LessOrEqual", [ctx.add_node("Abs", [x])[0], ctx.add_initializer(np.array(_ZERO_THRESHOLD), "tiny")]
        )
        (x,) = ctx.add_node("Where", [small, ctx.add_initializer(np.zeros((), np.float64), "zero"), x])
        (raw,) = ctx.add_node(
            "TreeEnsembleRegressor",
            [x],
            domain="ai.onnx.ml",
            name="lightgbm_trees",
            n_targets=n_targets,
            aggregate_function="AVERAGE" if dump["average_output"] else "SUM",
            post_transform="NONE",
            **attrs,
        )  # [N, n_targets] float32, summed in float64
        if self.task == REGRESSION:
            if self.__dict__["_exp_score"]:  # as map_columns: exp of the float32 sum, in float64
                (margin,) = ctx.add_node("Cast", [raw], to=TensorProto.DOUBLE)
                (raw,) = ctx.add_node("Cast", [ctx.add_node("Exp", [margin])[0]], to=TensorProto.FLOAT)
            ctx.set_value("Score", raw)
            return
        if self.task == BINARY:
            # As map_columns: 1 / (1 + exp(-sigmoid * Score)) from the float32 Score, in float64. Not
            # ONNX Runtime's Sigmoid, whose double kernel keeps only absolute precision: it returns
            # 0 below about -36 and misses small probabilities' float32 rounding from about -15.
            (margin,) = ctx.add_node("Cast", [raw], to=TensorProto.DOUBLE)
            (margin,) = ctx.add_node(
                "Mul", [margin, ctx.add_initializer(np.array(-self._sigmoid, np.float64), "minus_sigmoid")]
            )
            (denominator,) = ctx.add_node(
                "Add", [ctx.add_node("Exp", [margin])[0], ctx.add_initializer(np.ones((), np.float64), "one")]
            )
            (probability,) = ctx.add_node("Reciprocal", [denominator])
            (probability,) = ctx.add_node("Cast", [probability], to=TensorProto.FLOAT)
            (predicted,) = ctx.add_node("Greater", [raw, ctx.add_initializer(np.zeros((), np.float32), "zero")])
            ctx.set_value("Score", raw)
            ctx.set_value("Probability", probability)
            ctx.set_value("PredictedLabel", predicted)
            return
        assert self.classes is not None
        (score,) = ctx.add_node("Softmax", [raw], axis=1)
        (index,) = ctx.add_node("ArgMax", [raw], axis=1, keepdims=1)  # [N, 1] int64, as map_columns
        dtype = self.label_type.dtype
        if dtype is DType.STRING:
            (predicted,) = ctx.add_node(
                "LabelEncoder",
                [index],
                domain="ai.onnx.ml",
                keys_int64s=list(range(len(self.classes))),
                values_strings=[str(c) for c in self.classes],
                default_string="",
            )
        elif dtype is DType.BOOL:  # the classes are [False, True]
            (predicted,) = ctx.add_node("Greater", [index, ctx.add_initializer(np.zeros((), np.int64), "zero")])
        else:
            table = ctx.add_initializer(np.asarray(self.classes, dtype=dtype.numpy), "classes")
            (predicted,) = ctx.add_node("Gather", [table, index], axis=0)
        ctx.set_value("Score", score)
        ctx.set_value("PredictedLabel", predicted)


def _header(model_text: str) -> tuple[float, bool]:
    """LightGBM's ``sigmoid`` parameter (``objective=binary sigmoid:<v>``; 1 when absent) and whether
    the model averages its trees (an ``average_output`` line: random forests), from the model text."""
    end = model_text.find("\nTree=")
    sigmoid, average = 1.0, False
    for line in model_text[: end if end >= 0 else len(model_text)].splitlines():
        if line.startswith("objective="):
            for part in line.split()[1:]:
                if part.startswith("sigmoid:"):
                    sigmoid = float(part.split(":", 1)[1])
        average = average or line.strip() == "average_output"
    return sigmoid, average


_LOG_LINK_OBJECTIVES = ("tweedie", "poisson", "gamma")
"""LightGBM's regression objectives whose prediction is ``exp`` of the trees' sum."""


def _objective_name(model_text: str) -> str:
    """The objective's name (the first word of the ``objective=`` line), from the model text."""
    end = model_text.find("\nTree=")
    for line in model_text[: end if end >= 0 else len(model_text)].splitlines():
        if line.startswith("objective="):
            return (line[len("objective=") :].split() or [""])[0]
    return ""


def _ensemble_attributes(trees: Sequence[Mapping[str, Any]], n_targets: int, step: str) -> dict[str, Any]:
    """float64 ``TreeEnsembleRegressor`` attributes for LightGBM's dumped trees (tree ``i`` adds to
    target ``i % n_targets``)."""
    from onnx import TensorProto, helper

    tree_ids: list[int] = []
    node_ids: list[int] = []
    feature_ids: list[int] = []
    modes: list[str] = []
    thresholds: list[float] = []
    true_ids: list[int] = []
    false_ids: list[int] = []
    nan_left: list[int] = []
    leaf_tree: list[int] = []
    leaf_node: list[int] = []
    leaf_target: list[int] = []
    leaf_values: list[float] = []
    for t, tree in enumerate(trees):
        # Breadth-first with explicit indexes: a node's id is its position (no recursion limit).
        order: list[Mapping[str, Any]] = [tree["tree_structure"]]
        i = 0
        while i < len(order):
            node = order[i]
            tree_ids.append(t)
            node_ids.append(i)
            if "split_index" not in node:
                modes.append("LEAF")
                feature_ids.append(0)
                thresholds.append(0.0)
                true_ids.append(0)
                false_ids.append(0)
                nan_left.append(0)
                leaf_tree.append(t)
                leaf_node.append(i)
                leaf_target.append(t % n_targets)
                leaf_values.append(float(node["leaf_value"]))
            else:
                if node["decision_type"] != "<=":
                    raise ExportError(
                        f"{step}: tree {t} has a categorical split (decision {node['decision_type']!r}) on feature "
                        f"{node['split_feature']}, which TreeEnsembleRegressor cannot express; train without "
                        "categorical features to export"
                    )
                threshold = float(node["threshold"])
                missing = node["missing_type"]
                if missing == "NaN":
                    goes_left = bool(node["default_left"])
                elif missing == "None":
                    goes_left = threshold >= 0.0  # LightGBM scores NaN as 0.0 here
                else:
                    raise ExportError(
                        f"{step}: tree {t} treats zero as a missing value (missing_type {missing!r}) on feature "
                        f"{node['split_feature']}, which TreeEnsembleRegressor cannot express"
                    )
                modes.append("BRANCH_LEQ")
                feature_ids.append(int(node["split_feature"]))
                thresholds.append(threshold)
                true_ids.append(len(order))
                order.append(node["left_child"])
                false_ids.append(len(order))
                order.append(node["right_child"])
                nan_left.append(int(goes_left))
            i += 1
    attrs: dict[str, Any] = {
        "nodes_treeids": tree_ids,
        "nodes_nodeids": node_ids,
        "nodes_featureids": feature_ids,
        "nodes_modes": modes,
        "nodes_truenodeids": true_ids,
        "nodes_falsenodeids": false_ids,
        "nodes_missing_value_tracks_true": nan_left,
        "target_treeids": leaf_tree,
        "target_nodeids": leaf_node,
        "target_ids": leaf_target,
    }
    attrs["nodes_values_as_tensor"] = helper.make_tensor(
        "nodes_values", TensorProto.DOUBLE, [len(thresholds)], thresholds
    )
    attrs["target_weights_as_tensor"] = helper.make_tensor(
        "target_weights", TensorProto.DOUBLE, [len(leaf_values)], leaf_values
    )
    return attrs
