"""``latent_dirichlet_allocation`` (ML.NET's LatentDirichletAllocationEstimator), fitted with
scikit-learn's variational LatentDirichletAllocation (the optional extra ``onnxpipe[text]``).

ML.NET trains LightLDA (a Gibbs sampler); onnxpipe uses scikit-learn's variational Bayes and maps
the options that correspond: ``number_of_topics`` → ``n_components``, ``alpha_sum /
number_of_topics`` → ``doc_topic_prior``, ``beta`` → ``topic_word_prior``,
``maximum_number_of_iterations`` → ``max_iter``, ``seed`` → ``random_state``, plus scikit-learn's
``learning_method`` (``"batch"`` by default: deterministic). LightLDA's sampler options have no
counterpart and are not offered.

Input: a vector of counts (dense or sparse, e.g. a word bag). Output: ``float32[number_of_topics]``,
the document's topic distribution (summing to 1; a document without words gets the uniform one).
The fitted transformer keeps the topic-word matrix (``components``) and the inference parameters,
and infers with its own numpy implementation of scikit-learn's ``transform`` (never a pickle), so
scoring needs no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError, InvalidArgumentError, require
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep, column_batches

__all__ = ["LatentDirichletAllocationEstimator", "LatentDirichletAllocationTransformer", "lda_transform"]

LearningMethod = Literal["batch", "online"]
_MAX_VALUES = 1 << 28  # documents x words a fit may hold densely


def _check_counts(step: OneToOneStep, schema: Schema) -> TensorType:
    return step._input_tensor(
        schema,
        lambda t: t.dtype.is_numeric and t.rank == 1 and t.shape[0] is not None,
        "a vector of counts of known size (dense or sparse)",
    )


def _dirichlet_expectation(alpha: np.ndarray) -> np.ndarray:
    """E[log(theta)] for theta ~ Dir(alpha), row by row."""
    from scipy.special import psi

    result: np.ndarray = psi(alpha) - psi(np.sum(alpha, axis=-1, keepdims=True))
    return result


def lda_transform(
    counts: Any, components: np.ndarray, doc_topic_prior: float, max_doc_update_iter: int, mean_change_tol: float
) -> np.ndarray:
    """scikit-learn's ``LatentDirichletAllocation.transform`` (normalized) in numpy: ``counts``
    is a dense ``(documents, words)`` array or a CSR matrix; float64 topic distributions."""
    import scipy.sparse as sp

    exp_topic_word = np.exp(_dirichlet_expectation(components))
    n_docs, n_topics = counts.shape[0], components.shape[0]
    eps = np.finfo(np.float64).eps
    out = np.ones((n_docs, n_topics))
    start = np.exp(_dirichlet_expectation(np.ones(n_topics)))
    csr = sp.csr_matrix(counts, dtype=np.float64) if sp.issparse(counts) else None
    dense = None if csr is not None else np.asarray(counts, dtype=np.float64)
    for d in range(n_docs):
        if csr is not None:
            ids = csr.indices[csr.indptr[d] : csr.indptr[d + 1]]
            cnts = csr.data[csr.indptr[d] : csr.indptr[d + 1]]
        else:
            assert dense is not None
            ids = np.nonzero(dense[d])[0]
            cnts = dense[d, ids]
        doc_topic = out[d]
        exp_doc_topic = start.copy()
        word_d = exp_topic_word[:, ids]
        for _ in range(max_doc_update_iter):
            last = doc_topic
            norm_phi = exp_doc_topic @ word_d + eps
            doc_topic = exp_doc_topic * ((cnts / norm_phi) @ word_d.T) + doc_topic_prior
            exp_doc_topic = np.exp(_dirichlet_expectation(doc_topic))
            if np.mean(np.abs(last - doc_topic)) < mean_change_tol:
                break
        out[d] = doc_topic
    out /= out.sum(axis=1, keepdims=True)
    return out


@component("latent_dirichlet_allocation", catalog="transforms.text")
class LatentDirichletAllocationEstimator(OneToOneStep, Estimator["LatentDirichletAllocationTransformer"]):
    """Learn ``number_of_topics`` topics from a vector of counts (dense or sparse) and output each
    document's topic distribution (ML.NET's ``LatentDirichletAllocation``; fitted with
    scikit-learn, ``pip install 'onnxpipe[text]'``). Not exportable to ONNX."""

    accepts_sparse = True

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        number_of_topics: int = 100,
        alpha_sum: float = 100.0,
        beta: float = 0.01,
        maximum_number_of_iterations: int = 200,
        learning_method: LearningMethod = "batch",
        seed: int | None = None,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        who = self.step_name
        self.number_of_topics = _validation.integer(number_of_topics, "number_of_topics", who, low=1)
        self.alpha_sum = _validation.number(alpha_sum, "alpha_sum", who, low=0.0, low_open=True)
        self.beta = _validation.number(beta, "beta", who, low=0.0, low_open=True)
        self.maximum_number_of_iterations = _validation.integer(
            maximum_number_of_iterations, "maximum_number_of_iterations", who, low=1
        )
        self.learning_method = _validation.choice(learning_method, "learning_method", who, ("batch", "online"))
        # None: 0 (a catalog passes the context's seed)
        self.seed = _validation.integer(0 if seed is None else seed, "seed", who, low=0)

    def _params(self) -> tuple[object, ...]:
        return (
            *super()._params(),
            self.number_of_topics,
            self.alpha_sum,
            self.beta,
            self.maximum_number_of_iterations,
            self.learning_method,
            self.seed,
        )

    def output_schema(self, input_schema: Schema) -> Schema:
        _check_counts(self, input_schema)
        return input_schema.with_columns(
            Column(self.output_column_name, TensorType(DType.FLOAT32, (self.number_of_topics,)))
        )

    def fit(self, data: DataView) -> LatentDirichletAllocationTransformer:
        import scipy.sparse as sp

        _check_counts(self, data.schema)
        decomposition: Any = require("sklearn.decomposition", "text")
        parts = []
        for values in column_batches(data, self.input_column_name):
            parts.append(sp.csr_matrix(values, dtype=np.float64) if sp.issparse(values) else np.asarray(values))
        if not parts:
            raise DataError(f"{self.step_name}: no rows to learn topics from")
        counts: Any = (
            sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
            if any(sp.issparse(p) for p in parts)
            else np.concatenate([np.asarray(p, np.float64).reshape(len(p), -1) for p in parts])
        )
        if not sp.issparse(counts) and counts.size > _MAX_VALUES:
            counts = sp.csr_matrix(counts)
        if (counts.data if sp.issparse(counts) else counts).min(initial=0.0) < 0:
            raise DataError(f"{self.step_name}: column {self.input_column_name!r} has negative counts")
        model = decomposition.LatentDirichletAllocation(
            n_components=self.number_of_topics,
            doc_topic_prior=self.alpha_sum / self.number_of_topics,
            topic_word_prior=self.beta,
            max_iter=self.maximum_number_of_iterations,
            learning_method=self.learning_method,
            random_state=self.seed,
        )
        sklearn: Any = require("sklearn", "text")
        # scikit-learn declares doc_topic_prior <= 1; ML.NET's alpha_sum / number_of_topics is often more
        # (100 / 10 topics), and the variational updates hold for any positive prior.
        with sklearn.config_context(skip_parameter_validation=True):
            model.fit(counts)
        return LatentDirichletAllocationTransformer(
            self.output_column_name,
            self.input_column_name,
            np.asarray(model.components_, np.float64),
            doc_topic_prior=float(model.doc_topic_prior_),
            max_doc_update_iter=int(model.max_doc_update_iter),
            mean_change_tol=float(model.mean_change_tol),
        )


@component("latent_dirichlet_allocation")
class LatentDirichletAllocationTransformer(OneToOneStep, Transformer):
    """Each document's topic distribution under the topics ``components`` (topics x words),
    inferred as scikit-learn's ``LatentDirichletAllocation.transform`` does."""

    accepts_sparse = True
    onnx_unexportable_reason = (
        "inferring a document's topics is an iterative optimisation run to convergence per document, "
        "which onnxpipe does not express in ONNX (ML.NET does not export LatentDirichletAllocation either)"
    )

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None,
        components: np.ndarray,
        *,
        doc_topic_prior: float,
        max_doc_update_iter: int = 100,
        mean_change_tol: float = 1e-3,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        who = self.step_name
        components = np.array(components, dtype=np.float64, copy=True)
        if components.ndim != 2 or 0 in components.shape or not np.all(components > 0):
            raise InvalidArgumentError(f"{who}: components must be a positive (topics, words) matrix")
        components.flags.writeable = False
        self._components = components
        self.doc_topic_prior = _validation.number(doc_topic_prior, "doc_topic_prior", who, low=0.0, low_open=True)
        self.max_doc_update_iter = _validation.integer(max_doc_update_iter, "max_doc_update_iter", who, low=1)
        self.mean_change_tol = _validation.number(mean_change_tol, "mean_change_tol", who, low=0.0)

    @property
    def components(self) -> np.ndarray:
        return self._components

    def _params(self) -> tuple[object, ...]:
        return (
            *super()._params(),
            self._components,
            self.doc_topic_prior,
            self.max_doc_update_iter,
            self.mean_change_tol,
        )

    def _check(self, schema: Schema) -> TensorType:
        ct = _check_counts(self, schema)
        if ct.shape[0] != self._components.shape[1]:
            raise InvalidArgumentError(
                f"{self.step_name}: column {self.input_column_name!r} has {ct.shape[0]} slots; the topics were "
                f"learned over {self._components.shape[1]}"
            )
        return ct

    def output_schema(self, input_schema: Schema) -> Schema:
        self._check(input_schema)
        topics = self._components.shape[0]
        return input_schema.with_columns(Column(self.output_column_name, TensorType(DType.FLOAT32, (topics,))))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        import scipy.sparse as sp

        self._check(input_schema)
        values: Any = columns[self.input_column_name]
        if not sp.issparse(values):
            values = np.asarray(values, np.float64).reshape(n_rows, -1)
        topics = lda_transform(
            values, self._components, self.doc_topic_prior, self.max_doc_update_iter, self.mean_change_tol
        )
        return {self.output_column_name: topics.astype(np.float32)}
