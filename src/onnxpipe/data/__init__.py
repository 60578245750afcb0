"""The data contract: DataView (lazy, immutable Arrow batches), its sources and sinks."""

from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._infer import ColumnInference, infer_columns
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
from onnxpipe.data._writers import save_as_parquet, save_as_text

__all__ = [
    "ColumnInference",
    "ColumnValues",
    "DataView",
    "Preview",
    "TrainTestData",
    "as_data_view",
    "create_enumerable",
    "cross_validation_folds",
    "infer_columns",
    "load_from_arrow",
    "load_from_dict",
    "load_from_enumerable",
    "load_from_pandas",
    "load_from_parquet",
    "load_from_text_file",
    "save_as_parquet",
    "save_as_text",
    "train_test_split",
]
