"""Feature matrices as trainers read them: dense numpy arrays, or scipy CSR matrices for a sparse
feature column (``SparseVectorType``).

Trainers built on matrix products (the L-BFGS ones, naive Bayes, LightGBM) take a CSR matrix as it
is; the others densify it with :func:`densified`, which refuses (naming the step and the trainers
that take sparse input) a matrix too large to densify.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpipe._limits import MAX_DENSIFIED_VALUES
from onnxpipe.data._convert import is_sparse
from onnxpipe.errors import ShapeError

__all__ = ["densified", "finite_rows", "is_sparse"]  # is_sparse: the data layer's, for the trainers


def densified(x: Any, step: str, dtype: Any = np.float64) -> np.ndarray:
    """``x`` as a dense array of ``dtype``: a CSR matrix is densified if it is small enough."""
    if not is_sparse(x):
        return np.asarray(x, dtype=dtype)
    n, d = x.shape
    if n * d > MAX_DENSIFIED_VALUES:
        raise ShapeError(
            f"{step}: the sparse features are {n:,} rows x {d:,} slots, too many for this step to use densely; "
            "train lbfgs_logistic_regression, lbfgs_maximum_entropy, naive_bayes or light_gbm, which take sparse "
            "features as they are, or use fewer slots"
        )
    return np.asarray(x.toarray(), dtype=dtype)


def finite_rows(x: Any) -> np.ndarray:
    """The rows whose (stored) feature values are all finite."""
    if not is_sparse(x):
        return np.asarray(np.all(np.isfinite(x), axis=1))
    keep = np.ones(x.shape[0], dtype=bool)
    keep[np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))[~np.isfinite(x.data)]] = False
    return keep
