"""Multiclass trainers and metrics: conformance (incl. ONNX parity), ML.NET semantics, quality vs
scikit-learn, errors."""

from __future__ import annotations

import copy
import json
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pyarrow as pa
import pytest
from scipy.optimize import minimize
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    top_k_accuracy_score,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import BernoulliNB
from sklearn.preprocessing import StandardScaler

import onnxpipe as op
from onnxpipe import LoadColumn
from onnxpipe.core import Estimator, Transformer
from onnxpipe.data._convert import ColumnValues, arrow_schema, to_arrow
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataError,
    InvalidArgumentError,
    OnnxPipeWarning,
    SchemaError,
    ShapeError,
)
from onnxpipe.evaluation import MulticlassClassificationMetrics, evaluate_multiclass
from onnxpipe.export import ExportContext, convert_to_onnx
from onnxpipe.persistence import register_component
from onnxpipe.schema import Column, ColumnType, DType, KeyType, Schema, TensorType
from onnxpipe.testing import assert_views_equal, check_component, check_onnx_parity
from onnxpipe.trainers.linear import AveragedPerceptronTrainer, LbfgsLogisticRegressionBinaryTrainer
from onnxpipe.trainers.multiclass import (
    LbfgsMaximumEntropyModel,
    LbfgsMaximumEntropyTrainer,
    NaiveBayesModel,
    NaiveBayesTrainer,
    OneVersusAllModel,
    OneVersusAllTrainer,
    check_feature_column,
)

ctx = op.MLContext(seed=0)
F32 = DType.FLOAT32


# --------------------------------------------------------------------------------------------
# Data built here


def blobs(n: int = 30, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping classes (index 0, 1, 2) in ``d`` dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[0.0, 0.0, 1.0, -1.0], [2.0, -1.0, 0.0, 0.5], [-1.0, 2.0, -1.0, 1.0]])[:, :d]
    x = centres[y] + rng.normal(scale=0.9, size=(n, d))
    return x.astype(np.float32), y


def view(
    x: np.ndarray,
    labels: np.ndarray,
    label_type: TensorType,
    *,
    extra: Mapping[str, tuple[ColumnType, ColumnValues]] | None = None,
) -> op.DataView:
    """A DataView with ``Label`` (of ``label_type``), ``Features`` and any ``extra`` columns."""
    columns: dict[str, tuple[ColumnType, ColumnValues]] = {
        "Label": (label_type, labels),
        "Features": (TensorType(F32, (x.shape[1],)), x.astype(np.float32)),
        **(extra or {}),
    }
    schema = Schema(Column(n, t) for n, (t, _) in columns.items())
    arrays = [to_arrow(v, t, n) for n, (t, v) in columns.items()]
    return ctx.data.load_from_arrow(pa.Table.from_arrays(arrays, schema=arrow_schema(schema)))


STRINGS = np.array(["virginica", "setosa", "versicolor"], dtype=object)  # sorted: setosa, versicolor, virginica
INTS = np.array([30, 10, 20], dtype=np.int64)


def labelled(kind: str, n: int = 30) -> op.DataView:
    x, y = blobs(n)
    if kind == "strings":
        return view(x, STRINGS[y], TensorType(DType.STRING))
    if kind == "ints":
        return view(x, INTS[y], TensorType(DType.INT64))
    if kind == "key":
        return view(x, (y + 1).astype(np.uint32), KeyType(4))  # class 4: unseen
    if kind == "bools":
        return view(x, y > 0, TensorType(DType.BOOL))
    raise AssertionError(kind)


# --------------------------------------------------------------------------------------------
# A tiny binary estimator against the generic contract (OVA must not depend on linear.py)


@register_component  # a user's own component must be registered to be saved
class CentroidBinaryModel(Transformer):
    """``Score = w.x + b`` with no ``Probability`` (so one-versus-all calibrates it)."""

    def __init__(self, w: np.ndarray, b: float) -> None:
        self.w, self.b = w, b

    @property
    def step_name(self) -> str:
        return "centroid_binary(Features)"

    def output_schema(self, input_schema: Schema) -> Schema:
        input_schema.require("Features", self.step_name)
        return input_schema.with_columns(
            Column("Score", TensorType(F32)), Column("PredictedLabel", TensorType(DType.BOOL))
        )

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return ["Features"]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        score = np.asarray(columns["Features"], np.float64).reshape(n_rows, -1) @ self.w + self.b
        return {"Score": score.astype(np.float32), "PredictedLabel": score > 0}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        (x,) = ctx.add_node("Cast", [ctx.value("Features")], to=11)
        (s,) = ctx.add_node("MatMul", [x, ctx.add_initializer(self.w.reshape(-1, 1), "w")])
        (s,) = ctx.add_node("Add", [s, ctx.add_initializer(np.array(self.b), "b")])
        (score,) = ctx.add_node("Cast", [s], to=1)
        (label,) = ctx.add_node("Greater", [s, ctx.add_initializer(np.array(0.0), "zero")])
        ctx.set_value("Score", score)
        ctx.set_value("PredictedLabel", label)


class CentroidBinaryTrainer(Estimator):
    """``w`` = mean of the positives - mean of the negatives, ``b`` puts 0 half-way."""

    label_column_name = "Label"

    def output_schema(self, input_schema: Schema) -> Schema:
        assert input_schema.require("Label", "centroid_binary").type == TensorType(DType.BOOL)
        return CentroidBinaryModel(np.zeros(1), 0.0).output_schema(input_schema)

    def fit(self, data: op.DataView) -> CentroidBinaryModel:
        x = np.asarray(data.column("Features"), np.float64)
        y = np.asarray(data.column("Label"), bool)
        if not y.any() or y.all():  # a class without rows (a key label's unseen class): a constant score
            return CentroidBinaryModel(np.zeros(x.shape[1]), 1.0 if y.all() else -1.0)
        pos, neg = x[y].mean(axis=0), x[~y].mean(axis=0)
        w = pos - neg
        return CentroidBinaryModel(w, float(-w @ (pos + neg) / 2))


def trainers() -> list[Any]:
    return [
        pytest.param(LbfgsMaximumEntropyTrainer(), id="maxent"),
        pytest.param(
            LbfgsMaximumEntropyTrainer(l1_regularization=0.0, example_weight_column_name=None), id="maxent-l2"
        ),
        pytest.param(NaiveBayesTrainer(), id="naive_bayes"),
        pytest.param(OneVersusAllTrainer(LbfgsLogisticRegressionBinaryTrainer()), id="ova-logistic"),
        pytest.param(OneVersusAllTrainer(AveragedPerceptronTrainer(seed=1)), id="ova-perceptron-platt"),
        pytest.param(OneVersusAllTrainer(CentroidBinaryTrainer(), use_probabilities=False), id="ova-raw"),
        pytest.param(OneVersusAllTrainer(CentroidBinaryTrainer()), id="ova-generic-platt"),
    ]


# --------------------------------------------------------------------------------------------
# The conformance suite


@pytest.mark.parametrize("trainer", trainers())
def test_trainers_conform_with_key_labels(trainer: Estimator) -> None:
    model = check_component(trainer, labelled("key"), exportable=True)
    out = model.transform(labelled("key"))
    assert out.schema["Score"] == Column("Score", TensorType(F32, (4,)), ("1", "2", "3", "4"))
    assert out.schema["PredictedLabel"].type == KeyType(4)
    assert set(out.column("PredictedLabel").tolist()) <= {1, 2, 3}


@pytest.mark.parametrize("kind", ["strings", "ints"])
@pytest.mark.parametrize("trainer", trainers())
def test_trainers_conform_with_value_labels(trainer: Estimator, kind: str) -> None:
    check_component(trainer, labelled(kind), exportable=True)


def _rows(data: op.DataView) -> list[op.DataView]:
    table = data.to_arrow()
    return [ctx.data.load_from_arrow(table.slice(i, 1)) for i in range(table.num_rows)]


@pytest.mark.parametrize("kind", ["strings", "ints", "bools"])
@pytest.mark.parametrize("trainer", trainers())
def test_value_labels_conform_after_fit(trainer: Estimator, kind: str) -> None:
    """What check_component checks, with the fitted model's schema in place of the promise."""
    data = labelled(kind)
    promised = trainer.output_schema(data.schema)
    model = trainer.fit(data)
    delivered = model.output_schema(data.schema)
    assert promised["Score"].type == TensorType(F32, (None,)) and promised["Score"].slot_names is None
    assert promised.without("Score") == delivered.without("Score")
    assert delivered["PredictedLabel"].type == data.schema["Label"].type
    scored = model.transform(data)
    assert scored.schema == delivered
    joined = [model.transform(r) for r in _rows(data)]
    np.testing.assert_allclose(np.concatenate([r.column("Score") for r in joined]), scored.column("Score"), 1e-6)
    assert (
        np.concatenate([r.column("PredictedLabel") for r in joined]).tolist()
        == scored.column("PredictedLabel").tolist()
    )
    pickle.dumps(model)
    assert_views_equal(copy.deepcopy(model).transform(data), scored, "deepcopy")
    check_onnx_parity(model, data, scored, exportable=True)
    with pytest.raises(ColumnNotFoundError, match="'Features'"):
        model.output_schema(data.schema.without("Features"))


def test_score_slots_are_the_sorted_classes_and_predictions_have_the_label_type() -> None:
    for kind, classes in [("strings", ["setosa", "versicolor", "virginica"]), ("ints", ["10", "20", "30"])]:
        model = LbfgsMaximumEntropyTrainer().fit(labelled(kind))
        out = model.transform(labelled(kind))
        assert out.schema["Score"].slot_names == tuple(classes)
        assert model.score_slot_names == tuple(classes)
        assert out.schema["PredictedLabel"].type == labelled(kind).schema["Label"].type
        scores = out.column("Score")
        predicted = out.column("PredictedLabel")
        assert [str(p) for p in predicted] == [classes[i] for i in np.argmax(scores, axis=1)]
    bools = LbfgsMaximumEntropyTrainer().fit(labelled("bools"))
    assert bools.score_slot_names == ("False", "True")
    assert bools.transform(labelled("bools")).column("PredictedLabel").dtype == np.bool_


def test_fit_is_deterministic_and_models_compare_equal() -> None:
    data = labelled("strings")
    for trainer in (
        LbfgsMaximumEntropyTrainer(),
        NaiveBayesTrainer(),
        OneVersusAllTrainer(LbfgsLogisticRegressionBinaryTrainer()),
    ):
        a, b = trainer.fit(data), trainer.fit(data)
        assert a == b and hash(a) == hash(b)
        assert a == pickle.loads(pickle.dumps(a))
    assert LbfgsMaximumEntropyTrainer() == LbfgsMaximumEntropyTrainer()
    assert LbfgsMaximumEntropyTrainer() != LbfgsMaximumEntropyTrainer(l1_regularization=0.5)
    assert "l2_regularization=1.0" in repr(LbfgsMaximumEntropyTrainer())
    model = LbfgsMaximumEntropyTrainer().fit(data)
    assert repr(model) == (
        "LbfgsMaximumEntropyModel(label='Label', features='Features', classes=['setosa', 'versicolor', 'virginica'])"
    )
    with pytest.raises(AttributeError, match="immutable"):
        model.weights = np.zeros(3)  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        model.weights[0, 0] = 1.0
    trainer = LbfgsMaximumEntropyTrainer()
    with pytest.raises(AttributeError, match="immutable"):
        trainer.l1_regularization = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# lbfgs_maximum_entropy: ML.NET's objective, scikit-learn's optimum


def iris(standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    ds = load_iris()
    x = StandardScaler().fit_transform(ds.data) if standardize else ds.data
    return x.astype(np.float32), ds.target


def test_maximum_entropy_matches_scikit_learn_multinomial_logistic_regression() -> None:
    x, y = iris()
    data = view(x, STRINGS[y], TensorType(DType.STRING))
    for c in (1.0, 0.1):
        model = LbfgsMaximumEntropyTrainer(l1_regularization=0.0, l2_regularization=1 / c).fit(data)
        sk = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x.astype(np.float64), y)
        # our classes are sorted by name: setosa (y=1), versicolor (y=2), virginica (y=0)
        order = [1, 2, 0]
        probabilities = np.asarray(model.transform(data).column("Score"))
        np.testing.assert_allclose(probabilities, sk.predict_proba(x.astype(np.float64))[:, order], atol=1e-3)
        np.testing.assert_allclose(model.weights, sk.coef_[order], atol=5e-3)
        accuracy = np.mean(model.transform(data).column("PredictedLabel") == STRINGS[y])
        assert accuracy == pytest.approx(sk.score(x.astype(np.float64), y), abs=1 / 150)


def test_maximum_entropy_elastic_net_matches_scikit_learn_saga() -> None:
    x, y = iris()
    data = view(x, y.astype(np.int64), TensorType(DType.INT64))
    model = LbfgsMaximumEntropyTrainer(l1_regularization=0.5, l2_regularization=0.5).fit(data)
    # scikit-learn: C * sum NLL + l1_ratio * |W|_1 + (1 - l1_ratio) / 2 * |W|^2, i.e. C = 1, l1_ratio = 0.5
    sk = LogisticRegression(C=1.0, l1_ratio=0.5, solver="saga", tol=1e-10, max_iter=100_000)
    sk.fit(x.astype(np.float64), y)
    np.testing.assert_allclose(model.transform(data).column("Score"), sk.predict_proba(x.astype(np.float64)), atol=2e-3)
    assert set(zip(*np.nonzero(model.weights == 0), strict=True)) == set(zip(*np.nonzero(sk.coef_ == 0), strict=True))
    assert (model.weights == 0).sum() >= 2  # L1 zeroes weights exactly


def test_maximum_entropy_quality_on_digits() -> None:
    ds = load_digits()
    x, y = (ds.data[:900] / 16).astype(np.float32), ds.target[:900]
    train, test = view(x[:600], y[:600], TensorType(DType.INT64)), view(x[600:], y[600:], TensorType(DType.INT64))
    model = LbfgsMaximumEntropyTrainer(l1_regularization=0.0, l2_regularization=1.0).fit(train)
    ours = np.mean(model.transform(test).column("PredictedLabel") == y[600:])
    sk = LogisticRegression(C=1.0, max_iter=10_000).fit(x[:600].astype(np.float64), y[:600])
    assert ours == pytest.approx(sk.score(x[600:].astype(np.float64), y[600:]), abs=0.01)
    assert ours > 0.9


def test_maximum_entropy_example_weights_act_as_repetitions() -> None:
    x, y = blobs(12)
    w = np.array([1.0, 2.0, 3.0] * 4)
    weighted = view(x, y, TensorType(DType.INT64), extra={"Weight": (TensorType(F32), w.astype(np.float32))})
    repeated = view(np.repeat(x, w.astype(int), axis=0), np.repeat(y, w.astype(int)), TensorType(DType.INT64))
    # ML.NET scales the loss by 1 / sum of weights and L1 by 1 / rows: without L1 the optima agree
    trainer = LbfgsMaximumEntropyTrainer(l1_regularization=0.0, example_weight_column_name="Weight")
    a = trainer.fit(weighted)
    b = LbfgsMaximumEntropyTrainer(l1_regularization=0.0).fit(repeated)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-4)
    np.testing.assert_allclose(a.bias, b.bias, atol=1e-4)


def test_maximum_entropy_non_negative_weights_minimise_mlnet_objective() -> None:
    x, y = blobs(30)
    data = view(x, y, TensorType(DType.INT64))
    model = LbfgsMaximumEntropyTrainer(l1_regularization=0.3, l2_regularization=0.5, enforce_non_negativity=True)
    fitted = model.fit(data)
    assert np.all(fitted.weights >= 0) and np.any(fitted.weights > 0)
    n, d, k = len(y), x.shape[1], 3
    x64 = x.astype(np.float64)

    def objective(theta: np.ndarray) -> float:  # ML.NET's objective, written out independently
        b, w = theta[:k], theta[k:].reshape(k, d)
        z = x64 @ w.T + b
        nll = np.log(np.exp(z).sum(axis=1)) - z[np.arange(n), y]
        return float((nll.sum() + 0.5 * 0.5 * np.sum(w * w)) / n + 0.3 / n * np.abs(w).sum())

    bounds = [(None, None)] * k + [(0.0, None)] * (k * d)
    reference = minimize(objective, np.zeros(k + k * d), method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-12})
    np.testing.assert_allclose(fitted.weights, reference.x[k:].reshape(k, d), atol=2e-3)
    theta = np.concatenate([fitted.bias, fitted.weights.ravel()])
    assert objective(theta) <= reference.fun + 1e-7


# --------------------------------------------------------------------------------------------
# naive_bayes: ML.NET's formula


def test_naive_bayes_with_two_classes_is_bernoulli_nb() -> None:
    x, y = iris()
    y2 = (y == 1).astype(np.int64)
    data = view(x, y2, TensorType(DType.INT64))
    model = NaiveBayesTrainer().fit(data)
    sk = BernoulliNB(alpha=1.0, binarize=0.0).fit(x, y2)
    np.testing.assert_allclose(model.transform(data).column("Score"), sk.predict_joint_log_proba(x), rtol=1e-6)


def test_naive_bayes_scores_follow_mlnet_formula() -> None:
    # 3 classes (K = 3), 2 features; present means > 0 (NaN is absent)
    x = np.array([[1, 0], [2, 1], [0, 0], [1, 1], [-1, 3], [0, 2]], dtype=np.float32)
    y = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)
    model = NaiveBayesTrainer().fit(view(x, y, TensorType(DType.STRING)))
    assert model.label_histogram.tolist() == [3, 2, 1]
    assert model.feature_histogram.tolist() == [[2, 1], [1, 2], [0, 1]]
    probe = np.array([[1, 0], [np.nan, 5]], dtype=np.float32)
    scores = np.asarray(
        model.transform(view(probe, np.array(["a", "a"], object), TensorType(DType.STRING))).column("Score")
    )
    n, f, k, total = np.array([3, 2, 1]), np.array([[2, 1], [1, 2], [0, 1]]), 3, 6
    for row, present in enumerate([np.array([True, False]), np.array([False, True])]):
        expected = np.log(n / total) + np.where(
            present, np.log((f + 1) / (n[:, None] + k)), np.log((n[:, None] - f + 1) / (n[:, None] + k))
        ).sum(axis=1)
        np.testing.assert_allclose(scores[row], expected, rtol=1e-6)


def test_naive_bayes_unseen_key_class_scores_minus_infinity() -> None:
    model = NaiveBayesTrainer().fit(labelled("key"))
    scores = np.asarray(model.transform(labelled("key")).column("Score"))
    assert np.all(scores[:, 3] == -np.inf) and np.all(np.isfinite(scores[:, :3]))


# --------------------------------------------------------------------------------------------
# one_versus_all


def test_one_versus_all_with_logistic_regression_matches_scikit_learn() -> None:
    x, y = iris()
    data = view(x, y.astype(np.int64), TensorType(DType.INT64))
    binary = LbfgsLogisticRegressionBinaryTrainer(l1_regularization=0.0, l2_regularization=1.0)
    model = OneVersusAllTrainer(binary).fit(data)
    sk = OneVsRestClassifier(LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)).fit(x.astype(np.float64), y)
    scores = np.asarray(model.transform(data).column("Score"))
    np.testing.assert_allclose(scores, sk.predict_proba(x.astype(np.float64)), atol=1e-3)  # both sum to 1
    assert isinstance(model, OneVersusAllModel) and model.platt is None and len(model.models) == 3


def test_one_versus_all_raw_scores_and_platt_calibration() -> None:
    x, y = iris()
    data = view(x, STRINGS[y], TensorType(DType.STRING))
    raw = OneVersusAllTrainer(CentroidBinaryTrainer(), use_probabilities=False).fit(data)
    calibrated = OneVersusAllTrainer(CentroidBinaryTrainer()).fit(data)
    raw_scores = np.asarray(raw.transform(data).column("Score"))
    expected = np.stack(
        [np.asarray(m.map_columns({"Features": x}, data.schema, len(x))["Score"]) for m in raw.models], 1
    )
    np.testing.assert_array_equal(raw_scores, expected)
    probabilities = np.asarray(calibrated.transform(data).column("Score"))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert calibrated.platt is not None and np.all(calibrated.platt[:, 0] > 0)  # higher score, higher probability
    accuracy = np.mean(calibrated.transform(data).column("PredictedLabel") == STRINGS[y])
    assert accuracy > 0.8


def test_one_versus_all_keeps_an_input_column_named_probability() -> None:
    x, y = blobs(24)
    extra = {"Probability": (TensorType(F32), np.linspace(0, 1, 24).astype(np.float32))}
    data = view(x, (y + 1).astype(np.uint32), KeyType(3), extra=extra)
    model = check_component(OneVersusAllTrainer(LbfgsLogisticRegressionBinaryTrainer()), data, exportable=True)
    np.testing.assert_array_equal(model.transform(data).column("Probability"), extra["Probability"][1])
    proto = convert_to_onnx(model, data.schema, output_columns="all")
    assert sum(n.op_type == "Sigmoid" for n in proto.graph.node) == 3  # the three sub-models' calibrators
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(data.column(i.name)).reshape(24, -1) for i in session.get_inputs()}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    np.testing.assert_array_equal(outputs["Probability.output"][:, 0], extra["Probability"][1])


def test_one_versus_all_missing_labels_are_left_out_or_negative() -> None:
    x, y = blobs(30)
    labels = y.astype(np.float32)
    labels[:3] = np.nan
    data = view(x, labels, TensorType(F32))
    with pytest.warns(OnnxPipeWarning, match=r"skipped 3 of 30 training rows with a missing label"):
        model = OneVersusAllTrainer(LbfgsLogisticRegressionBinaryTrainer()).fit(data)
    assert model.score_slot_names == ("0.0", "1.0", "2.0")
    imputed = OneVersusAllTrainer(LbfgsLogisticRegressionBinaryTrainer(), impute_missing_labels_as_negative=True)
    assert len(imputed.fit(data).models) == 3


# --------------------------------------------------------------------------------------------
# Training-data handling and errors


def test_rows_with_missing_labels_or_features_are_skipped_with_a_warning() -> None:
    x, y = blobs(30)
    x[0, 1] = np.nan
    labels = y.astype(np.float32)
    labels[1] = np.nan
    data = view(x, labels, TensorType(F32))
    for trainer in (LbfgsMaximumEntropyTrainer(), NaiveBayesTrainer()):
        with pytest.warns(OnnxPipeWarning, match=r"skipped 2 of 30 training rows"):
            model = trainer.fit(data)
        clean = trainer.fit(view(x[2:], labels[2:], TensorType(F32)))
        assert model == clean


def test_errors_name_the_step_the_column_and_the_fix() -> None:
    x, y = blobs(12)
    single = view(x, np.array(["a"] * 12, dtype=object), TensorType(DType.STRING))
    for trainer in (LbfgsMaximumEntropyTrainer(), NaiveBayesTrainer(), OneVersusAllTrainer(CentroidBinaryTrainer())):
        with pytest.raises(DataError, match=r"label column 'Label' must have at least 2 classes .* found 1 \('a'\)"):
            trainer.fit(single)
    text = view(x, y, TensorType(DType.INT64)).to_arrow()
    strings = pa.table({"Label": text.column("Label"), "Features": pa.array(["1,2"] * 12)})
    with pytest.raises(
        ColumnTypeError,
        match=r"lbfgs_maximum_entropy\(Label, Features\): feature column 'Features' must hold numbers .* got string",
    ):
        LbfgsMaximumEntropyTrainer().fit(ctx.data.load_from_arrow(strings))
    data = view(x, y, TensorType(DType.INT64))
    with pytest.raises(
        ColumnNotFoundError, match=r"naive_bayes\(Label, Features\): input column 'Label' is not in the data"
    ):
        NaiveBayesTrainer().fit(ctx.data.load_from_arrow(data.to_arrow().drop(["Label"])))
    with pytest.raises(ColumnNotFoundError, match=r"input column 'Weights' is not in the data"):
        LbfgsMaximumEntropyTrainer(example_weight_column_name="Weights").output_schema(data.schema)
    with pytest.raises(ColumnNotFoundError, match=r"input column 'Feats'"):
        NaiveBayesTrainer(feature_column_name="Feats").fit(data)
    vector_label = Schema([Column("Label", TensorType(F32, (2,))), Column("Features", TensorType(F32, (4,)))])
    with pytest.raises(ShapeError, match=r"label column 'Label' must hold one value per row .* got float32\[2\]"):
        NaiveBayesTrainer().output_schema(vector_label)
    unknown = Schema([Column("Label", TensorType(F32)), Column("Features", TensorType(F32, (None,)))])
    # Before fit, a width that an upstream estimator decides (e.g. one-hot) is accepted; fit needs it known.
    assert LbfgsMaximumEntropyTrainer().output_schema(unknown)["Score"].type == TensorType(F32, (None,))
    with pytest.raises(ShapeError, match=r"feature column 'Features' must have a known size"):
        check_feature_column(unknown, "Features", "lbfgs_maximum_entropy(Label, Features)")
    model = LbfgsMaximumEntropyTrainer().fit(data)
    wider = view(np.hstack([x, x]), y, TensorType(DType.INT64))
    with pytest.raises(ShapeError, match=r"has 8 values per row .* trained on 4"):
        model.transform(wider)
    with pytest.raises(DataError, match="has no rows"):
        LbfgsMaximumEntropyTrainer().fit(ctx.data.load_from_arrow(data.to_arrow().slice(0, 0)))


def test_invalid_arguments_are_rejected() -> None:
    cases: list[tuple[Any, str]] = [
        (
            lambda: LbfgsMaximumEntropyTrainer(l1_regularization=-1),
            r"l1_regularization must be a finite number >= 0, got -1",
        ),
        (
            lambda: LbfgsMaximumEntropyTrainer(optimization_tolerance=0),
            r"optimization_tolerance must be a finite number > 0, got 0",
        ),
        (lambda: LbfgsMaximumEntropyTrainer(history_size=2.5), r"history_size must be a positive integer, got 2\.5"),
        (lambda: LbfgsMaximumEntropyTrainer(label_column_name=""), r"label_column_name must be a non-empty"),
        (lambda: NaiveBayesTrainer(feature_column_name=3), r"feature_column_name must be a non-empty"),
        (lambda: OneVersusAllTrainer("logistic"), r"binary_estimator must be an Estimator .* got 'logistic'"),
        (
            lambda: OneVersusAllTrainer(CentroidBinaryTrainer(), use_probabilities=1),
            r"use_probabilities must be True or False, got 1",
        ),
    ]
    for build, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            build()


# --------------------------------------------------------------------------------------------
# evaluate_multiclass against scikit-learn


def scored_iris() -> tuple[op.DataView, np.ndarray, np.ndarray]:
    x, y = iris()
    data = view(x, STRINGS[y], TensorType(DType.STRING))
    model = LbfgsMaximumEntropyTrainer(l1_regularization=0.0, l2_regularization=10.0).fit(data)
    order = {"setosa": 0, "versicolor": 1, "virginica": 2}
    return model.transform(data), np.array([order[s] for s in STRINGS[y]]), np.array(model.classes)


def test_multiclass_metrics_match_scikit_learn() -> None:
    scored, y, _ = scored_iris()
    p = np.asarray(scored.column("Score"), np.float64)
    predicted = p.argmax(axis=1)
    m = evaluate_multiclass(scored, top_k_prediction_count=2)
    assert isinstance(m, MulticlassClassificationMetrics)
    assert m.micro_accuracy == pytest.approx(accuracy_score(y, predicted))
    assert m.macro_accuracy == pytest.approx(balanced_accuracy_score(y, predicted))
    assert m.log_loss == pytest.approx(log_loss(y, p / p.sum(axis=1, keepdims=True), labels=[0, 1, 2]), rel=1e-6)
    prior = np.bincount(y) / len(y)
    entropy = -np.sum(prior * np.log(prior))
    assert m.log_loss_reduction == pytest.approx((entropy - m.log_loss) / entropy)
    assert m.top_k_accuracy == pytest.approx(top_k_accuracy_score(y, p, k=2))
    assert m.top_k_accuracy_for_all_k == pytest.approx((m.micro_accuracy, m.top_k_accuracy))
    assert np.array(m.confusion_matrix.counts).tolist() == confusion_matrix(y, predicted).tolist()
    assert m.confusion_matrix.class_names == ("setosa", "versicolor", "virginica")
    for c in range(3):
        own = y == c
        assert m.per_class_log_loss[c] == pytest.approx(-np.mean(np.log(p[own, c])), rel=1e-6)
    text = str(m)
    assert "micro_accuracy" in text and "versicolor" in text and "Confusion matrix" in text
    assert json.loads(json.dumps(m.to_dict()))["confusion_matrix"]["class_names"][0] == "setosa"
    assert m.top_k_prediction_count == 2
    assert evaluate_multiclass(scored).top_k_accuracy is None


def _scored_view(
    labels: np.ndarray, label_type: TensorType, scores: np.ndarray, score_slots: tuple[str, ...] | None = None
) -> op.DataView:
    """Scored data as a model would write it, with ``PredictedLabel`` a copy of the label."""
    pred = labels
    columns = [
        (Column("Label", label_type), labels),
        (Column("Score", TensorType(F32, (scores.shape[1],)), score_slots), scores.astype(np.float32)),
        (Column("PredictedLabel", label_type), pred),
    ]
    schema = Schema(c for c, _ in columns)
    arrays = [to_arrow(v, c.type, c.name) for c, v in columns]
    return ctx.data.load_from_arrow(pa.Table.from_arrays(arrays, schema=arrow_schema(schema)))


def test_metrics_without_slot_names_infer_the_sorted_classes() -> None:
    labels = np.array([20, 10, 30, 30], dtype=np.int64)
    scores = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    m = evaluate_multiclass(_scored_view(labels, TensorType(DType.INT64), scores))
    assert m.confusion_matrix.class_names == ("10", "20", "30")
    assert m.micro_accuracy == 0.75
    # a score vector of unknown size (as light_gbm's multiclass writes for plain labels)
    i64, unsized = TensorType(DType.INT64), TensorType(F32, (None,))
    unknown = Schema([Column("Label", i64), Column("Score", unsized), Column("PredictedLabel", i64)])
    arrays = [to_arrow(labels, i64), to_arrow(list(scores.astype(np.float32)), unsized), to_arrow(labels, i64)]
    table = pa.Table.from_arrays(arrays, schema=arrow_schema(unknown))
    assert evaluate_multiclass(ctx.data.load_from_arrow(table)) == m
    only_two = _scored_view(labels[:2], TensorType(DType.INT64), scores[:2])
    with pytest.raises(SchemaError, match=r"score column 'Score' has 3 slots but no slot names .* 2 distinct values"):
        evaluate_multiclass(only_two)


def test_metrics_with_key_labels_unknown_classes_and_missing_labels() -> None:
    key = KeyType(3)
    labels = np.array([1, 2, 3, 0], dtype=np.uint32)  # key 0: missing
    scores = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]])
    with pytest.warns(OnnxPipeWarning, match="skipped 1 rows with a missing label"):
        m = evaluate_multiclass(_scored_view(labels, key, scores))
    assert m.micro_accuracy == pytest.approx(2 / 3)
    assert m.log_loss == pytest.approx(-np.mean(np.log([0.6, 0.7, 0.2])), rel=1e-6)
    slots = ("a", "b", "c")
    strings = np.array(["a", "b", "zzz"], dtype=object)
    with pytest.warns(OnnxPipeWarning, match="1 rows have a label that is no class of the model"):
        m = evaluate_multiclass(_scored_view(strings, TensorType(DType.STRING), scores[:3], score_slots=slots))
    assert m.log_loss == pytest.approx((-np.log(0.6) - np.log(0.7) - np.log(1e-15)) / 3, rel=1e-6)
    assert m.micro_accuracy == pytest.approx(2 / 3)
    assert np.array(m.confusion_matrix.counts).sum() == 2  # the unknown class is in no row of the matrix


def test_metric_errors() -> None:
    scored, _, _ = scored_iris()
    with pytest.raises(ColumnNotFoundError, match=r"evaluate_multiclass: input column 'Scores' is not in the data"):
        evaluate_multiclass(scored, score_column_name="Scores")
    with pytest.raises(InvalidArgumentError, match="top_k_prediction_count must be an integer >= 0"):
        evaluate_multiclass(scored, top_k_prediction_count=-1)
    with pytest.raises(ColumnTypeError, match=r"predicted label column 'Features' must have the label column's type"):
        evaluate_multiclass(scored, predicted_label_column_name="Features")
    with pytest.raises(ColumnTypeError, match=r"score column 'Label' must be a vector of floats"):
        evaluate_multiclass(scored, score_column_name="Label")
    missing = _scored_view(np.zeros(2, np.uint32), KeyType(2), np.eye(2))
    with pytest.raises(DataError, match=r"no row has a label and finite scores to evaluate \(2 rows without a label"):
        evaluate_multiclass(missing)


# --------------------------------------------------------------------------------------------
# ML.NET's iris data


def test_mlnet_iris(mlnet_data: Path) -> None:
    @dataclass
    class IrisRow:
        Label: Annotated[int, LoadColumn(0)]
        Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 4)]

    data = ctx.data.load_from_text_file(mlnet_data / "iris.txt", IrisRow, has_header=True)
    split = ctx.data.train_test_split(data, test_fraction=0.3)
    for trainer in (LbfgsMaximumEntropyTrainer(), OneVersusAllTrainer(LbfgsLogisticRegressionBinaryTrainer())):
        model = trainer.fit(split.train_set)
        metrics = evaluate_multiclass(model.transform(split.test_set))
        assert metrics.micro_accuracy > 0.9 and metrics.macro_accuracy > 0.9
        assert metrics.log_loss < 0.5 and metrics.log_loss_reduction > 0.5
        assert model.transform(split.test_set).schema["Score"].slot_names == ("0", "1", "2")
    nb = NaiveBayesTrainer().fit(split.train_set)  # every iris feature is > 0: naive Bayes sees only the prior
    assert isinstance(nb, NaiveBayesModel)
    assert len(set(nb.transform(split.test_set).column("PredictedLabel").tolist())) == 1
    assert isinstance(LbfgsMaximumEntropyTrainer().fit(data), LbfgsMaximumEntropyModel)
    assert math.isfinite(evaluate_multiclass(nb.transform(split.test_set)).log_loss)
