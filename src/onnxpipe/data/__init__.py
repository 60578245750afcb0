"""The data contract: DataView (lazy, immutable Arrow batches), its sources and sinks."""

from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._loaders import (
    as_data_view,
    create_enumerable,
    load_from_arrow,
    load_from_dict,
    load_from_enumerable,
    load_from_pandas,
    load_from_parquet,
    load_from_text_file,
)
from onnxpipe.data._split import TrainTestData, cross_validation_folds, train_test_split
from onnxpipe.data._view import DataView, Preview

__all__ = [
    "ColumnValues",
    "DataView",
    "Preview",
    "TrainTestData",
    "as_data_view",
    "cross_validation_folds",
    "create_enumerable",
    "load_from_arrow",
    "load_from_dict",
    "load_from_enumerable",
    "load_from_pandas",
    "load_from_parquet",
    "load_from_text_file",
    "train_test_split",
]
