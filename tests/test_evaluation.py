"""Evaluation metrics: ML.NET's definitions, checked against scikit-learn where they agree."""

from __future__ import annotations

import ast
import importlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes

import onnxpipe as op
import onnxpipe.evaluation as op_evaluation
from onnxpipe import LoadColumn
from onnxpipe.errors import ColumnNotFoundError, ColumnTypeError, DataError
from onnxpipe.evaluation import (
    BinaryClassificationMetrics,
    ConfusionMatrix,
    RegressionMetrics,
    evaluate_binary,
    evaluate_regression,
)
from onnxpipe.trainers import LbfgsLogisticRegressionBinaryTrainer, OlsTrainer

ctx = op.MLContext(seed=0)


def _scored(label: object, score: object, probability: object = None, predicted: object = None) -> op.DataView:
    cols: dict[str, pa.Array] = {
        "Label": pa.array(label),
        "Score": pa.array(np.asarray(score, dtype=np.float32)),
    }
    if probability is not None:
        cols["Probability"] = pa.array(np.asarray(probability, dtype=np.float32))
    if predicted is not None:
        cols["PredictedLabel"] = pa.array(np.asarray(predicted, dtype=bool))
    return ctx.data.load_from_arrow(pa.table(cols))


def _features(x: np.ndarray, y: np.ndarray) -> op.DataView:
    x = np.asarray(x, dtype=np.float32)
    feats = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    return ctx.data.load_from_arrow(pa.table({"Features": feats, "Label": pa.array(y)}))


def _mlnet_auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ML.NET's UnweightedAuPrcAggregator, line by line (stable sort by descending score)."""
    pos = int(labels.sum())
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    prev_recall, prev_precision_min, tp, fp, total = 0.0, 1.0, 0, 0, 0.0
    for i in order:
        if labels[i]:
            tp += 1
            recall, precision = tp / pos, tp / (tp + fp)
            total += (recall - prev_recall) * (prev_precision_min + precision) / 2
            prev_precision_min, prev_recall = precision, recall
        else:
            fp += 1
            prev_precision_min = tp / (tp + fp)
    return total


@pytest.fixture(scope="module")
def breast_cancer_scored() -> tuple[op.DataView, np.ndarray]:
    bunch = load_breast_cancer()
    x = (bunch.data - bunch.data.mean(axis=0)) / bunch.data.std(axis=0)
    y = bunch.target.astype(bool)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:400], order[400:]
    model = LbfgsLogisticRegressionBinaryTrainer(l2_regularization=10.0).fit(_features(x[train], y[train]))
    return model.transform(_features(x[test], y[test])), y[test]


# --------------------------------------------------------------------------------------------
# Binary metrics vs scikit-learn on a real model's predictions


def test_binary_metrics_equal_sklearn(breast_cancer_scored: tuple[op.DataView, np.ndarray]) -> None:
    scored, y = breast_cancer_scored
    score = scored.column("Score")
    prob = scored.column("Probability").astype(np.float64)
    pred = scored.column("PredictedLabel")
    m = evaluate_binary(scored)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert m.area_under_roc_curve == pytest.approx(skm.roc_auc_score(y, score))
    assert m.f1_score == pytest.approx(skm.f1_score(y, pred))
    assert m.positive_precision == pytest.approx(skm.precision_score(y, pred))
    assert m.positive_recall == pytest.approx(skm.recall_score(y, pred))
    assert m.negative_precision == pytest.approx(skm.precision_score(y, pred, pos_label=0))
    assert m.negative_recall == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    # ML.NET reports the log-loss in bits: scikit-learn's (natural log) divided by ln 2.
    assert m.log_loss == pytest.approx(skm.log_loss(y, prob) / math.log(2), rel=1e-9)
    prior = y.mean()
    entropy = -prior * math.log2(prior) - (1 - prior) * math.log2(1 - prior)
    assert m.entropy == pytest.approx(entropy)
    assert m.log_loss_reduction == pytest.approx((entropy - m.log_loss) / entropy)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert m.confusion_matrix.counts == ((tp, fn), (fp, tn))  # ML.NET's order: positive first
    assert m.confusion_matrix.per_class_precision == pytest.approx((m.positive_precision, m.negative_precision))
    assert m.confusion_matrix.per_class_recall == pytest.approx((m.positive_recall, m.negative_recall))
    assert m.accuracy > 0.95 and m.area_under_roc_curve > 0.98


def test_auprc_is_mlnet_lower_trapezoid(breast_cancer_scored: tuple[op.DataView, np.ndarray]) -> None:
    scored, y = breast_cancer_scored
    score = scored.column("Score")
    m = evaluate_binary(scored)
    assert m.area_under_precision_recall_curve == pytest.approx(_mlnet_auprc(score, y), rel=1e-12)
    # Close to, but not, scikit-learn's average precision: each step averages two precisions.
    average_precision = skm.average_precision_score(y, score)
    assert m.area_under_precision_recall_curve <= average_precision
    assert average_precision - m.area_under_precision_recall_curve < 0.01


def test_auprc_by_hand() -> None:
    # Sorted: +, -, +, -.  Positive 1: (1 + 1)/2.  Positive 2: (prec after 2 rows = 1/2 + 2/3)/2.
    view = _scored([True, False, True, False], [0.9, 0.8, 0.7, 0.6])
    m = evaluate_binary(view)
    assert m.area_under_precision_recall_curve == pytest.approx((1 + (0.5 + 2 / 3) / 2) / 2)
    assert skm.average_precision_score([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx((1 + 2 / 3) / 2)
    # Ties keep the data order (LINQ's stable OrderByDescending), so the same scores differ by order.
    assert evaluate_binary(_scored([False, True], [0.5, 0.5])).area_under_precision_recall_curve == 0.25
    assert evaluate_binary(_scored([True, False], [0.5, 0.5])).area_under_precision_recall_curve == 1.0


def test_auc_counts_ties_as_half() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(200) < 0.4
    scores = np.round(rng.normal(size=200) + labels, 1)  # many ties, some across classes
    m = evaluate_binary(_scored(labels, scores))
    assert m.area_under_roc_curve == pytest.approx(skm.roc_auc_score(labels, scores), rel=1e-12)
    assert evaluate_binary(_scored([True, False], [1.0, 1.0])).area_under_roc_curve == 0.5


def test_metrics_on_mlnet_breast_cancer(mlnet_data: Path) -> None:
    @dataclass
    class BreastCancer:
        Label: Annotated[float, LoadColumn(0)]
        Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]

    data = ctx.data.load_from_text_file(mlnet_data / "breast-cancer.txt", BreastCancer)
    split = ctx.data.train_test_split(data, test_fraction=0.2, seed=1)
    scored = LbfgsLogisticRegressionBinaryTrainer().fit(split.train_set).transform(split.test_set)
    m = evaluate_binary(scored)
    score, label = scored.column("Score"), scored.column("Label")
    keep = np.isfinite(score)  # rows with a '?' feature score NaN and are skipped, as in ML.NET
    assert not keep.all()
    assert m.area_under_roc_curve == pytest.approx(skm.roc_auc_score(label[keep], score[keep]))
    assert sum(map(sum, m.confusion_matrix.counts)) == keep.sum()
    assert m.accuracy > 0.94 and m.area_under_roc_curve > 0.98


# --------------------------------------------------------------------------------------------
# Column roles and ML.NET's edge cases


def test_predicted_label_column_is_used_when_present() -> None:
    labels = [True, True, False, False]
    scores = [1.0, -1.0, 1.0, -1.0]
    from_score = evaluate_binary(_scored(labels, scores))  # no PredictedLabel column: Score > 0
    assert from_score.confusion_matrix.counts == ((1, 1), (1, 1))
    always = evaluate_binary(_scored(labels, scores, predicted=[True] * 4))
    assert always.confusion_matrix.counts == ((2, 0), (2, 0))
    ignored = evaluate_binary(_scored(labels, scores, predicted=[True] * 4), predicted_label_column_name=None)
    assert ignored == from_score


def test_without_probability_log_loss_is_nan() -> None:
    m = evaluate_binary(_scored([True, False, True], [1.0, -2.0, 0.5]))
    assert math.isnan(m.log_loss) and math.isnan(m.log_loss_reduction)
    assert m.entropy == pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))
    assert m.accuracy == 1.0


def test_saturated_probabilities_are_clipped() -> None:
    m = evaluate_binary(_scored([False, True], [30.0, 1.0], probability=[1.0, 0.5]))
    # ML.NET would give +inf; the wrong-side certain row costs -log2(1e-15) bits instead.
    assert m.log_loss == pytest.approx((-math.log2(1 - (1 - 1e-15)) + 1.0) / 2)
    assert 25 < m.log_loss < 26


def test_nan_labels_and_scores_are_skipped() -> None:
    labels = np.array([1.0, np.nan, 0.0, 1.0, 0.0], dtype=np.float32)
    scores = [2.0, 5.0, -1.0, np.nan, np.inf]
    m = evaluate_binary(_scored(labels, scores))
    assert m.confusion_matrix.counts == ((1, 0), (0, 1))
    regression = evaluate_regression(_scored(labels, scores))
    assert regression.mean_absolute_error == pytest.approx((1.0 + 1.0 + np.inf) / 3)


def test_degenerate_cases() -> None:
    m = evaluate_binary(_scored([False, False], [-1.0, -2.0]))
    assert math.isnan(m.area_under_roc_curve)  # one class only
    assert m.area_under_precision_recall_curve == 0.0
    assert m.positive_precision == 0.0 and m.positive_recall == 0.0  # empty denominators are 0, as ML.NET
    assert math.isnan(m.f1_score)  # 0/0
    assert m.entropy == 0.0
    constant = evaluate_regression(_scored([1.0, 1.0], [1.0, 2.0]))
    assert math.isnan(constant.r_squared) and constant.mean_squared_error == 0.5


def test_labels_as_numbers_bool_or_int() -> None:
    scores = [0.5, -0.5, 2.0]
    as_bool = evaluate_binary(_scored([True, False, False], scores))
    assert evaluate_binary(_scored(np.array([1, 0, 0], dtype=np.int64), scores)) == as_bool
    assert evaluate_binary(_scored(np.array([1, 0, 0], dtype=np.float64), scores)) == as_bool


# --------------------------------------------------------------------------------------------
# Regression


def test_regression_metrics_equal_sklearn() -> None:
    bunch = load_diabetes()
    x, y = bunch.data, bunch.target
    scored = OlsTrainer().fit(_features(x[:300], y[:300])).transform(_features(x[300:], y[300:]))
    pred = scored.column("Score").astype(np.float64)
    truth = y[300:]
    m = evaluate_regression(scored)
    assert m.mean_absolute_error == pytest.approx(skm.mean_absolute_error(truth, pred), rel=1e-12)
    assert m.mean_squared_error == pytest.approx(skm.mean_squared_error(truth, pred), rel=1e-12)
    assert m.root_mean_squared_error == pytest.approx(math.sqrt(skm.mean_squared_error(truth, pred)), rel=1e-12)
    assert m.r_squared == pytest.approx(skm.r2_score(truth, pred), rel=1e-12)
    assert m.loss_function == m.mean_squared_error  # ML.NET's default loss is the squared loss
    assert 0.3 < m.r_squared < 0.8


# --------------------------------------------------------------------------------------------
# Printing and dictionaries


def test_metrics_print_as_tables_and_convert_to_dicts() -> None:
    m = evaluate_binary(_scored([True, False, True, False], [1.0, -1.0, -0.5, 0.5], probability=[0.7, 0.2, 0.4, 0.6]))
    assert isinstance(m, BinaryClassificationMetrics)
    text = str(m)
    for name in ("accuracy", "area_under_roc_curve", "log_loss_reduction", "Confusion matrix", "Precision", "Recall"):
        assert name in text
    assert "0.5000" in text  # accuracy
    d = m.to_dict()
    assert d["accuracy"] == 0.5 and d["confusion_matrix"]["counts"] == [[1, 1], [1, 1]]
    assert list(d)[:3] == ["accuracy", "area_under_roc_curve", "area_under_precision_recall_curve"]
    no_prob = str(evaluate_binary(_scored([True, False], [1.0, -1.0])))
    assert "NaN" in no_prob

    r = evaluate_regression(_scored([1.0, 2.0, 3.0], [1.5, 2.0, 2.0]))
    assert isinstance(r, RegressionMetrics)
    assert "root_mean_squared_error" in str(r) and "0.5000" in str(r)  # MAE = 0.5
    assert r.to_dict() == pytest.approx(
        {
            "mean_absolute_error": 0.5,
            "mean_squared_error": 1.25 / 3,
            "root_mean_squared_error": math.sqrt(1.25 / 3),
            "r_squared": 1 - 1.25 / 2,
            "loss_function": 1.25 / 3,
        }
    )


def test_confusion_matrix() -> None:
    cm = ConfusionMatrix(((5, 1), (2, 8)))
    assert cm.number_of_classes == 2 and cm.class_names == ("positive", "negative")
    assert cm.per_class_precision == pytest.approx((5 / 7, 8 / 9))
    assert cm.per_class_recall == pytest.approx((5 / 6, 8 / 10))
    np.testing.assert_array_equal(cm.to_numpy(), [[5, 1], [2, 8]])
    text = str(cm)
    assert "truth \\ predicted" in text and "0.8333" in text and "0.7143" in text
    three = ConfusionMatrix(((1, 0, 0), (0, 2, 1), (0, 0, 3)), ("a", "b", "c"))  # multiclass ready
    assert three.per_class_recall == pytest.approx((1.0, 2 / 3, 1.0))
    with pytest.raises(DataError, match="2x2 table of counts"):
        ConfusionMatrix(((1, 2, 3),))
    # Precision and recall of a class never predicted, or without rows, are 0 (ML.NET's), not NaN.
    empty = ConfusionMatrix(((2, 0, 0), (1, 0, 0), (0, 0, 0)), ("a", "b", "c"))
    assert empty.per_class_precision == pytest.approx((2 / 3, 0.0, 0.0))
    assert empty.per_class_recall == pytest.approx((1.0, 0.0, 0.0))


def test_confusion_matrix_in_the_argument_order_of_onnxpipe_0_1_multiclass() -> None:
    with pytest.warns(DeprecationWarning, match=r"ConfusionMatrix\(class_names, counts\) is deprecated"):
        old = ConfusionMatrix(("a", "b"), ((3, 1), (0, 2)))  # type: ignore[arg-type]
    assert old == ConfusionMatrix(((3, 1), (0, 2)), ("a", "b"))


def test_evaluation_multiclass_is_a_deprecated_alias() -> None:
    sys.modules.pop("onnxpipe.evaluation_multiclass", None)  # its warning comes with the first import
    with pytest.warns(DeprecationWarning, match="onnxpipe.evaluation_multiclass is deprecated"):
        alias = importlib.import_module("onnxpipe.evaluation_multiclass")
    for name in alias.__all__:
        assert getattr(alias, name) is getattr(op_evaluation, name)


def test_evaluation_imports_rich_only_to_render() -> None:
    # rich is a dependency, but printing is the only thing that needs it: no module-level import.
    for path in Path(op_evaluation.__file__).parent.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.split(".")[0] == "rich" for n in names), f"{path.name} imports rich at import time"


# --------------------------------------------------------------------------------------------
# Errors


def test_missing_columns_are_named() -> None:
    view = ctx.data.load_from_arrow(pa.table({"Label": [True, False], "Other": [0.1, 0.2]}))
    with pytest.raises(ColumnNotFoundError, match=r"evaluate_binary: input column 'Score' is not in the data"):
        evaluate_binary(view)
    with pytest.raises(ColumnNotFoundError, match=r"evaluate_regression: input column 'Score'"):
        evaluate_regression(ctx.data.load_from_arrow(pa.table({"Label": [1.0, 2.0]})))
    with pytest.raises(ColumnNotFoundError, match="input column 'Target'"):
        evaluate_binary(_scored([True], [1.0]), label_column_name="Target")
    with pytest.raises(ColumnNotFoundError, match="input column 'Prob'"):  # a name the caller chose must exist
        evaluate_binary(_scored([True], [1.0]), probability_column_name="Prob")


def test_bad_types_and_values() -> None:
    with pytest.raises(DataError, match="no rows"):
        evaluate_binary(_scored(pa.array([], pa.bool_()), []))
    with pytest.raises(DataError, match="no rows"):
        evaluate_regression(_scored(pa.array([], pa.float32()), []))
    with pytest.raises(DataError, match=r"label column 'Label' has the value 2\.0 \(row 1\); binary labels"):
        evaluate_binary(_scored(np.array([1.0, 2.0]), [1.0, 1.0]))
    with pytest.raises(DataError, match="no row has both a label and a finite score"):
        evaluate_binary(_scored([True], [np.nan]))
    strings = ctx.data.load_from_arrow(pa.table({"Label": [True], "Score": ["high"]}))
    with pytest.raises(ColumnTypeError, match="score column 'Score' is string; a float scalar is expected"):
        evaluate_binary(strings)
    not_bool = _scored([True], [1.0]).schema
    assert "PredictedLabel" not in not_bool
    view = ctx.data.load_from_arrow(pa.table({"Label": [True], "Score": [1.0], "PredictedLabel": [1.0]}))
    with pytest.raises(ColumnTypeError, match="predicted label column 'PredictedLabel' is float64; a bool scalar"):
        evaluate_binary(view)
