"""Key labels for trainers that want numbers: a key column is read as the values behind its keys.

ML.NET's multiclass trainers take a key label as the classes themselves (see ``multiclass.py``);
binary and regression trainers want a bool or a number. Given a key label (e.g. after
``map_value_to_key("Label")``), they read each row's key value instead: key ``k`` is
``values[k - 1]``, key 0 (and any key beyond the count) is a missing label. A key column whose type
carries no values, or whose values are text, is refused by the caller's usual type check.
"""

from __future__ import annotations

import numpy as np

from onnxpipe.schema import KeyType, TensorType

__all__ = ["label_as_numbers", "label_value_type"]


def label_value_type(ct: TensorType) -> TensorType:
    """The type a trainer checks a label as: a key label's value type (when known), else itself."""
    if isinstance(ct, KeyType) and ct.value_dtype is not None:
        return TensorType(ct.value_dtype)
    return ct


def label_as_numbers(values: np.ndarray, ct: TensorType) -> np.ndarray:
    """A key label's codes as the float64 values behind them (NaN for key 0 or beyond the count);
    any other label unchanged."""
    if not isinstance(ct, KeyType) or ct.values is None:
        return values
    table = np.concatenate([[np.nan], ct.values.array.astype(np.float64)])
    codes = np.asarray(values, dtype=np.int64)
    return np.asarray(table[np.where(codes <= len(ct.values), codes, 0)])
