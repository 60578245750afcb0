"""Trainers: estimators that learn a model from labelled data; one module per family
(estimator, fitted model and ONNX export together)."""

from onnxpipe.trainers.linear import (
    AveragedPerceptronTrainer,
    LbfgsLogisticRegressionBinaryTrainer,
    LbfgsPoissonRegressionTrainer,
    LinearBinaryModel,
    LinearRegressionModel,
    LinearSvmTrainer,
    OlsTrainer,
    OnlineGradientDescentTrainer,
    PoissonRegressionModel,
)

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
