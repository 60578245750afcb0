"""Compiled inner loops of the linear trainers (numba, compiled on first use and cached on disk).

* SDCA (:mod:`onnxpipe.trainers.sdca`): one pass of dual coordinate ascent over the rows in a
  given order (binary / regression and multiclass), and the primal and dual losses of the
  convergence check; the update rules are ML.NET's (``SdcaTrainerBase.TrainWithoutLock``,
  ``SdcaMulticlassTrainerBase``, the ``DualUpdate`` / ``DualLoss`` of ``LossFunctions.cs``) on
  its single-thread path, in float64.
* The averaged linear trainers (:func:`onnxpipe.trainers.linear._averaged_sgd`): one pass of
  averaged SGD, the same updates in the same order as the Python loop it replaces (its dot
  products call BLAS as numpy's ``@`` does, so the sums, and the results, are the same).

Features are given as ``x, indptr, indices``: a dense ``(rows, features)`` array with
``indptr = indices = None``, or a CSR matrix's values as ``(1, nnz)`` with its ``indptr`` and
``indices`` (a sparse feature column, read without densifying). numba compiles each kernel once
per form; the ``_row_*`` helpers are the only code that reads a row, and for sparse rows they
touch the stored slots only (ML.NET's sparse SDCA and perceptron updates do the same).

The row order of each pass is made by the caller (numpy), so shuffling is the same with or
without the kernels. numba is imported only when a kernel first runs (``import onnxpipe`` does
not load it); the functions below are plain Python until then. Features may be float32 or
float64 (each gets its own compiled version); every sum is float64.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from onnxpipe.data._convert import is_sparse

__all__ = [
    "HINGE",
    "LOG",
    "SGD_EXP",
    "SGD_HINGE",
    "SGD_LOG",
    "SGD_SMOOTHED_HINGE",
    "SGD_SQUARED",
    "SMOOTHED_HINGE",
    "SQUARED",
    "averaged_sgd_epoch",
    "kernel_rows",
    "linear_svm_epoch",
    "sdca_check",
    "sdca_epoch",
    "sdca_multiclass_check",
    "sdca_multiclass_epoch",
    "sdca_prepare",
]

# SDCA losses (ML.NET's ISupportSdcaLoss); ``param`` is the hinge margin or the smoothing constant.
LOG, HINGE, SMOOTHED_HINGE, SQUARED = 0, 1, 2, 3
# The averaged SGD losses (ML.NET's IScalarLoss with its default constants).
SGD_HINGE, SGD_LOG, SGD_SMOOTHED_HINGE, SGD_EXP, SGD_SQUARED = 0, 1, 2, 3, 4


# --------------------------------------------------------------------------------------------
# Losses (scalar helpers, compiled with the kernels that call them)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _invariant(loss: int, param: float, scaled_norm: float) -> float:
    """ML.NET's ``ComputeDualUpdateInvariant`` of ``scaled_norm = weight * |x|^2 / (l2 * n)``."""
    if loss == LOG:
        return 1.0 / max(1.0, 0.25 + scaled_norm)
    if loss == HINGE:
        return 1.0 / scaled_norm if scaled_norm > 0 else 0.0
    if loss == SMOOTHED_HINGE:
        s = scaled_norm + param
        return 1.0 / s if s > 0 else 0.0
    return 1.0 / (0.5 + scaled_norm)


def _dual_update(loss: int, param: float, output: float, label: float, dual: float, invariant: float) -> float:
    """ML.NET's ``DualUpdate`` (single thread): the change of the dual variable of one example."""
    if loss == SQUARED:
        return (label - output - 0.5 * dual) * invariant
    truth = 1.0 if label > 0 else -1.0
    if loss == LOG:
        return (_sigmoid(-truth * output) * truth - dual) * invariant
    if loss == HINGE:
        tmp = (param - output * truth) * invariant + dual * truth
    else:
        tmp = (1.0 - output * truth - param * dual * truth) * invariant + dual * truth
    return truth * max(0.0, min(1.0, tmp)) - dual


def _primal_loss(loss: int, param: float, output: float, label: float) -> float:
    """ML.NET's ``Loss(output, label)``."""
    if loss == SQUARED:
        diff = output - label
        return diff * diff
    if loss == LOG:
        p = _sigmoid(output)
        return -math.log(max(p, 1e-8)) if label > 0 else -math.log(max(1.0 - p, 1e-8))
    truth = 1.0 if label > 0 else -1.0
    if loss == HINGE:
        return max(0.0, param - truth * output)
    u = 1.0 - truth * output
    if u < 0:
        return 0.0
    if u < param:
        return u * u / (2.0 * param)
    return u - param / 2.0


def _dual_loss(loss: int, param: float, label: float, dual: float) -> float:
    """ML.NET's ``DualLoss(label, dual)`` (minus the conjugate of the loss; -inf outside its domain)."""
    if loss == SQUARED:
        return -dual * (dual / 4.0 - label)
    d = dual if label > 0 else -dual
    if d < 0 or d > 1:
        return -math.inf
    if loss == LOG:
        if d <= 0 or d >= 1:
            return 0.0
        return -(d * math.log(d) + (1.0 - d) * math.log(1.0 - d))
    if loss == HINGE:
        return param * d
    return d * (1.0 - d * param / 2.0)


def _soft_threshold(value: float, threshold: float) -> float:
    if abs(value) > threshold:
        return value - threshold if value > 0 else value + threshold
    return 0.0


# --------------------------------------------------------------------------------------------
# Rows of a dense array or of a CSR matrix (see the module docstring)


def kernel_rows(x: Any) -> tuple[np.ndarray, Any, Any]:
    """``x`` (a dense ``(rows, features)`` array or a scipy CSR matrix) as the kernels' ``x, indptr, indices``."""
    if is_sparse(x):
        data = np.ascontiguousarray(x.data).reshape(1, -1)
        return data, np.ascontiguousarray(x.indptr, dtype=np.int64), np.ascontiguousarray(x.indices, dtype=np.int64)
    return np.ascontiguousarray(x), None, None


def _row_count(x: np.ndarray, indptr: Any, indices: Any) -> int:
    if indices is None:
        return int(x.shape[0])
    return int(indptr.shape[0] - 1)


def _row_dot(x: np.ndarray, indptr: Any, indices: Any, i: int, w: np.ndarray, start: float) -> float:
    """``start + x_i . w``, summed in slot order in float64."""
    s = start
    if indices is None:
        for j in range(x.shape[1]):
            s += np.float64(x[i, j]) * w[j]
    else:
        for p in range(indptr[i], indptr[i + 1]):
            s += np.float64(x[0, p]) * w[indices[p]]
    return s


def _row_axpy(x: np.ndarray, indptr: Any, indices: Any, i: int, a: float, w: np.ndarray) -> None:
    """``w += a * x_i``."""
    if indices is None:
        for j in range(x.shape[1]):
            w[j] += np.float64(x[i, j]) * a
    else:
        for p in range(indptr[i], indptr[i + 1]):
            w[indices[p]] += np.float64(x[0, p]) * a


def _row_l1_axpy(
    x: np.ndarray, indptr: Any, indices: Any, i: int, a: float, l1_w: np.ndarray, w: np.ndarray, threshold: float
) -> None:
    """``l1_w += a * x_i`` and ``w = soft_threshold(l1_w)`` on the row's slots (the others do not move)."""
    if indices is None:
        for j in range(x.shape[1]):
            l1_w[j] += np.float64(x[i, j]) * a
            w[j] = _soft_threshold(l1_w[j], threshold)
    else:
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            l1_w[j] += np.float64(x[0, p]) * a
            w[j] = _soft_threshold(l1_w[j], threshold)


def _row_sum_of_squares(x: np.ndarray, indptr: Any, indices: Any, i: int) -> float:
    s = 0.0
    if indices is None:
        for j in range(x.shape[1]):
            v = np.float64(x[i, j])
            s += v * v
    else:
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(x[0, p])
            s += v * v
    return s


# --------------------------------------------------------------------------------------------
# SDCA


def sdca_prepare(
    x: np.ndarray,
    indptr: Any,
    indices: Any,
    instance_weights: np.ndarray,
    loss: int,
    param: float,
    lambda_n_inv: float,
    add_bias: bool,
    coefficient: float,
    norms: np.ndarray,
    invariants: np.ndarray,
) -> None:
    """Each row's ``|x|^2`` (+1 for a regularized bias) and its dual-update invariant."""
    for i in range(_row_count(x, indptr, indices)):
        s = _row_sum_of_squares(x, indptr, indices, i)
        if add_bias:
            s += 1.0
        norms[i] = s
        invariants[i] = _invariant(loss, param, coefficient * s * lambda_n_inv * instance_weights[i])


def sdca_epoch(
    x: np.ndarray,
    indptr: Any,
    indices: Any,
    labels: np.ndarray,
    instance_weights: np.ndarray,
    invariants: np.ndarray,
    order: np.ndarray,
    loss: int,
    param: float,
    lambda_n_inv: float,
    bias_rate: float,
    l1_threshold: float,
    regularized_bias: bool,
    duals: np.ndarray,
    weights: np.ndarray,
    l1_weights: np.ndarray,
    biases: np.ndarray,
) -> None:
    """One SDCA pass (binary or regression) over the rows in ``order``.

    ``biases`` is ``[regularized bias, unregularized bias, L1 intermediate bias]``;
    ``bias_rate`` is ``bias_learning_rate * l2``. With an L1 threshold the primal weights are the
    soft-thresholded ``l1_weights`` (ML.NET's ``SdcaL1UpdateDense``).
    """
    l1_zero = l1_threshold == 0
    for r in range(order.shape[0]):
        i = order[r]
        weight = instance_weights[i]
        if weight == 0:
            continue  # a zero-weight row changes no primal value (ML.NET's updates are multiplied by 0)
        output = _row_dot(x, indptr, indices, i, weights, biases[0] + biases[1])
        dual = duals[i]
        update = _dual_update(loss, param, output, labels[i], dual, invariants[i])
        adjustment = bias_rate * (biases[0] if l1_zero else biases[2])
        update -= adjustment
        duals[i] = dual + update
        primal = update * lambda_n_inv * weight
        biases[1] += adjustment * lambda_n_inv * weight
        if l1_zero:
            _row_axpy(x, indptr, indices, i, primal, weights)
            biases[0] += primal
        else:
            biases[2] += primal
            if regularized_bias:
                biases[0] = _soft_threshold(biases[2], l1_threshold)
            _row_l1_axpy(x, indptr, indices, i, primal, l1_weights, weights, l1_threshold)


def sdca_check(
    x: np.ndarray,
    indptr: Any,
    indices: Any,
    labels: np.ndarray,
    instance_weights: np.ndarray,
    loss: int,
    param: float,
    duals: np.ndarray,
    weights: np.ndarray,
    bias: float,
) -> tuple[float, float]:
    """The weighted sums of the primal and of the dual losses (compensated sums, as ML.NET's)."""
    loss_sum = loss_err = dual_sum = dual_err = 0.0
    for i in range(_row_count(x, indptr, indices)):
        output = _row_dot(x, indptr, indices, i, weights, bias)
        w = instance_weights[i]
        term = _primal_loss(loss, param, output, labels[i]) * w - loss_err
        total = loss_sum + term
        loss_err = (total - loss_sum) - term if math.isfinite(total) else 0.0
        loss_sum = total
        term = _dual_loss(loss, param, labels[i], duals[i]) * w - dual_err if w != 0 else -dual_err
        total = dual_sum + term
        dual_err = (total - dual_sum) - term if math.isfinite(total) else 0.0
        dual_sum = total
    return loss_sum, dual_sum


def sdca_multiclass_epoch(
    x: np.ndarray,
    indptr: Any,
    indices: Any,
    labels: np.ndarray,
    instance_weights: np.ndarray,
    norms: np.ndarray,
    invariants: np.ndarray,
    order: np.ndarray,
    loss: int,
    param: float,
    lambda_n_inv: float,
    bias_rate: float,
    l1_threshold: float,
    regularized_bias: bool,
    duals: np.ndarray,
    weights: np.ndarray,
    l1_weights: np.ndarray,
    bias_reg: np.ndarray,
    bias_unreg: np.ndarray,
    l1_bias: np.ndarray,
) -> None:
    """One multiclass SDCA pass (ML.NET's ``SdcaMulticlassTrainerBase.TrainWithoutLock``).

    For a row of class ``c`` each other class ``k`` takes a dual step on the loss of
    ``output_c - output_k`` (label +1); class ``c``'s weights move by minus the sum of those steps.
    ``duals`` is ``(rows, classes)``, ``weights`` / ``l1_weights`` ``(classes, features)``.
    """
    k_classes = weights.shape[0]
    l1_zero = l1_threshold == 0
    for r in range(order.shape[0]):
        i = order[r]
        weight = instance_weights[i]
        if weight == 0:
            continue
        c = labels[i]
        norm = norms[i]
        invariant = invariants[i]
        label_output = _row_dot(x, indptr, indices, i, weights[c], bias_reg[c] + bias_unreg[c])
        label_dual = 0.0
        label_primal = 0.0
        label_adjustment = 0.0
        for k in range(k_classes):
            if k == c:
                continue
            dual = duals[i, k]
            other = _row_dot(x, indptr, indices, i, weights[k], bias_reg[k] + bias_unreg[k])
            output = label_output + label_primal * norm - other
            update = _dual_update(loss, param, output, 1.0, dual, invariant)
            adjustment = bias_rate * (bias_reg[k] if l1_zero else l1_bias[k])
            update -= adjustment
            duals[i, k] = dual + update
            primal = update * lambda_n_inv * weight
            label_dual -= dual + update
            label_primal += primal
            bias_unreg[k] += adjustment * lambda_n_inv * weight
            label_adjustment -= adjustment
            if l1_zero:
                _row_axpy(x, indptr, indices, i, -primal, weights[k])
                bias_reg[k] -= primal
            else:
                l1_bias[k] -= primal
                if regularized_bias:
                    bias_reg[k] = _soft_threshold(l1_bias[k], l1_threshold)
                _row_l1_axpy(x, indptr, indices, i, -primal, l1_weights[k], weights[k], l1_threshold)
        duals[i, c] = label_dual
        bias_unreg[c] += label_adjustment * lambda_n_inv * weight
        if l1_zero:
            _row_axpy(x, indptr, indices, i, label_primal, weights[c])
            bias_reg[c] += label_primal
        else:
            l1_bias[c] += label_primal
            bias_reg[c] = _soft_threshold(l1_bias[c], l1_threshold)  # ML.NET: whatever the bias rate
            _row_l1_axpy(x, indptr, indices, i, label_primal, l1_weights[c], weights[c], l1_threshold)


def sdca_multiclass_check(
    x: np.ndarray,
    indptr: Any,
    indices: Any,
    labels: np.ndarray,
    instance_weights: np.ndarray,
    loss: int,
    param: float,
    duals: np.ndarray,
    weights: np.ndarray,
    biases: np.ndarray,
) -> tuple[float, float]:
    """Weighted sums of the primal losses (over the wrong classes of each row) and of the dual losses."""
    k_classes = weights.shape[0]
    outputs = np.empty(k_classes)
    loss_sum = loss_err = dual_sum = dual_err = 0.0
    for i in range(_row_count(x, indptr, indices)):
        for k in range(k_classes):
            outputs[k] = _row_dot(x, indptr, indices, i, weights[k], biases[k])
        c = labels[i]
        sub_loss = 0.0
        sub_dual = 0.0
        for k in range(k_classes):
            if k == c:
                continue
            sub_loss += _primal_loss(loss, param, outputs[c] - outputs[k], 1.0)
            sub_dual += _dual_loss(loss, param, 1.0, duals[i, k])
        w = instance_weights[i]
        term = sub_loss * w - loss_err
        total = loss_sum + term
        loss_err = (total - loss_sum) - term if math.isfinite(total) else 0.0
        loss_sum = total
        term = sub_dual * w - dual_err if w != 0 else -dual_err
        total = dual_sum + term
        dual_err = (total - dual_sum) - term if math.isfinite(total) else 0.0
        dual_sum = total
    return loss_sum, dual_sum


# --------------------------------------------------------------------------------------------
# Averaged SGD (averaged perceptron, online gradient descent)


def averaged_sgd_epoch(
    x: np.ndarray,
    indptr: Any,
    indices: Any,
    labels: np.ndarray,
    order: np.ndarray,
    loss: int,
    learning_rate: float,
    decrease_learning_rate: bool,
    l2: float,
    weights: np.ndarray,
    total_weights: np.ndarray,
    state: np.ndarray,
    counts: np.ndarray,
) -> None:
    """One pass of :func:`onnxpipe.trainers.linear._averaged_sgd` over the rows in ``order``.

    ``state`` is ``[bias, total bias]``, ``counts`` ``[pending, seen]`` (examples since the
    totals were last brought up to date, and all examples so far).
    """
    d = weights.shape[0]
    b = state[0]
    total_b = state[1]
    pending = counts[0]
    seen = counts[1]
    shrink = 1.0 - 2.0 * l2
    for r in range(order.shape[0]):
        i = order[r]
        # Dense rows: BLAS's dot, as the Python loop's ``x[i] @ w`` (the same sums, so the same results).
        dot = np.dot(x[i], weights) if indices is None else _row_dot(x, indptr, indices, i, weights, 0.0)
        output = dot + b
        label = labels[i]
        if loss == SGD_HINGE:
            truth = 1.0 if label > 0 else -1.0
            active = 1.0 - truth * output > 0
            grad = -truth if active else 0.0
        elif loss == SGD_SMOOTHED_HINGE:
            truth = 1.0 if label > 0 else -1.0
            u = 1.0 - truth * output
            if u < 0:
                active = False
                grad = 0.0
            else:
                active = u > 0
                grad = -truth * u if u < 1.0 else -truth
        elif loss == SGD_LOG:
            active = True
            p = 1.0 / (1.0 + math.exp(-output)) if output >= 0 else math.exp(output) / (1.0 + math.exp(output))
            grad = p - 1.0 if label > 0 else p
        elif loss == SGD_EXP:
            active = True
            factor = -1.0 if label > 0 else 1.0
            grad = factor * math.exp(min(factor * output, 700.0))
        else:
            diff = output - label
            active = diff != 0
            grad = 2.0 * diff
        if active or l2 > 0:
            if pending:
                for j in range(d):
                    total_weights[j] += pending * weights[j]
                total_b += pending * b
                pending = 0
            rate = learning_rate / math.sqrt(seen + 1) if decrease_learning_rate else learning_rate
            step = -rate * grad
            if step != 0.0:
                _row_axpy(x, indptr, indices, i, step, weights)
                b += step
            if l2 > 0:
                for j in range(d):
                    weights[j] *= shrink
        pending += 1
        seen += 1
    state[0] = b
    state[1] = total_b
    counts[0] = pending
    counts[1] = seen


# --------------------------------------------------------------------------------------------
# Linear SVM (Pegasos, ML.NET's LinearSvmTrainer)


def linear_svm_epoch(
    x: np.ndarray,
    indptr: Any,
    indices: Any,
    truth: np.ndarray,
    sample_weights: np.ndarray,
    order: np.ndarray,
    lam: float,
    batch_size: int,
    no_bias: bool,
    projection: bool,
    weights: np.ndarray,
    update: np.ndarray,
    state: np.ndarray,
) -> None:
    """One pass of :meth:`onnxpipe.trainers.linear.LinearSvmTrainer._train` over the rows in
    ``order``: rows with margin below 1 add ``truth * weight * x`` to the batch's update; each full
    batch steps ``w = (1 - rate * lam) w + rate / k * update`` with ``rate = 1 / (1 + lam t)``, then
    projects ``w`` into the ball of radius ``1 / sqrt(lam)``. ``state`` is ``[bias, t, update of the
    bias, rows in the batch]`` (a batch may straddle passes)."""
    d = weights.shape[0]
    b, t, update_b, in_batch = state[0], state[1], state[2], state[3]
    for r in range(order.shape[0]):
        i = order[r]
        dot = np.dot(x[i], weights) if indices is None else _row_dot(x, indptr, indices, i, weights, 0.0)
        if truth[i] * (dot + b) < 1.0:
            s = truth[i] * sample_weights[i]
            _row_axpy(x, indptr, indices, i, s, update)
            update_b += s
        in_batch += 1
        if in_batch == batch_size:
            rate = 1.0 / (1.0 + lam * t)
            shrink = 1.0 - rate * lam
            step = rate / batch_size
            for j in range(d):
                weights[j] = weights[j] * shrink + step * update[j]
                update[j] = 0.0
            if not no_bias:
                b += step * update_b
            if projection:
                norm = math.sqrt(np.dot(weights, weights))
                if norm > 0 and 1.0 / (math.sqrt(lam) * norm) < 1.0:
                    factor = 1.0 / (math.sqrt(lam) * norm)
                    for j in range(d):
                        weights[j] *= factor
            update_b = 0.0
            in_batch = 0
            t += 1
    state[0], state[1], state[2], state[3] = b, t, update_b, in_batch


# --------------------------------------------------------------------------------------------
# Compilation on first use

# Helpers first: a kernel resolves the helpers it calls when it is compiled.
_JITTED = (
    "_sigmoid",
    "_row_count",
    "_row_dot",
    "_row_axpy",
    "_row_l1_axpy",
    "_row_sum_of_squares",
    "_invariant",
    "_dual_update",
    "_primal_loss",
    "_dual_loss",
    "_soft_threshold",
    "sdca_prepare",
    "sdca_epoch",
    "sdca_check",
    "sdca_multiclass_epoch",
    "sdca_multiclass_check",
    "averaged_sgd_epoch",
    "linear_svm_epoch",
)
_lock = threading.Lock()
_ready = False


def compile_kernels() -> None:
    """Replace the functions of this module by their numba versions (once; cached on disk)."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        import numba

        namespace: dict[str, Any] = globals()
        for name in _JITTED:
            namespace[name] = numba.njit(cache=True, nogil=True)(namespace[name])
        _ready = True
