"""Deprecated alias of the multiclass and clustering part of :mod:`onnxpipe.evaluation`.

Kept so that code written against onnxpipe 0.1 still imports; it will be removed in 0.3.
"""

import warnings

from onnxpipe.evaluation import (
    ClusteringMetrics,
    ConfusionMatrix,
    MulticlassClassificationMetrics,
    evaluate_clustering,
    evaluate_multiclass,
)

warnings.warn(
    "onnxpipe.evaluation_multiclass is deprecated and will be removed in onnxpipe 0.3; import from "
    "onnxpipe.evaluation instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "ClusteringMetrics",
    "ConfusionMatrix",
    "MulticlassClassificationMetrics",
    "evaluate_clustering",
    "evaluate_multiclass",
]
