"""Metrics of scored data, with ML.NET's names and definitions (its ``Evaluate`` methods).

:func:`evaluate_binary`, :func:`evaluate_regression`, :func:`evaluate_multiclass` and
:func:`evaluate_clustering` read the label and the columns a trainer wrote (``Score``,
``Probability``, ``PredictedLabel``) and return frozen metrics objects with ML.NET's metric names
in snake_case; each function's docstring gives the definitions. Every metrics object prints as a
table (``print(metrics)``) and has ``to_dict()``.
"""

from onnxpipe.evaluation._binary import BinaryClassificationMetrics, evaluate_binary
from onnxpipe.evaluation._clustering import ClusteringMetrics, evaluate_clustering
from onnxpipe.evaluation._confusion import ConfusionMatrix
from onnxpipe.evaluation._multiclass import MulticlassClassificationMetrics, evaluate_multiclass
from onnxpipe.evaluation._regression import RegressionMetrics, evaluate_regression

__all__ = [
    "BinaryClassificationMetrics",
    "ClusteringMetrics",
    "ConfusionMatrix",
    "MulticlassClassificationMetrics",
    "RegressionMetrics",
    "evaluate_binary",
    "evaluate_clustering",
    "evaluate_multiclass",
    "evaluate_regression",
]
