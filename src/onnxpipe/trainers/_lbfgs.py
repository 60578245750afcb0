"""The L-BFGS driver of the trainers: SciPy's L-BFGS-B, with ML.NET's L1 term and non-negativity.

SciPy is imported when something is fitted, not with onnxpipe.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["Objective", "minimize_lbfgs"]

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""A smooth function of the parameters: its value and its gradient."""

_Bounds = list[tuple[float | None, float | None]]


def _non_negative(size: int, block: slice) -> _Bounds:
    """L-BFGS-B's bounds on ``size`` parameters: ``>= 0`` on ``block``, none elsewhere."""
    free: _Bounds = [(None, None)]
    bounded: _Bounds = [(0.0, None)]
    start, stop = block.indices(size)[:2]
    return free * start + bounded * (stop - start) + free * (size - stop)


def minimize_lbfgs(
    objective: Objective,
    initial: np.ndarray,
    *,
    penalized: slice = slice(0, 0),
    l1: float = 0.0,
    non_negative: bool = False,
    history_size: int = 10,
    tolerance: float | None = None,
    max_iterations: int = 15000,
    max_evaluations: int = 15000,
    max_line_search_steps: int = 20,
) -> np.ndarray:
    """The parameters that minimise ``objective(theta) + l1 * ||theta[penalized]||_1``, from ``initial``;
    with ``non_negative``, subject to ``theta[penalized] >= 0``.

    ``penalized`` is one contiguous block of the parameters (a slice with a start and a stop); the
    others are free and unpenalised. ML.NET minimises the L1 term with OWL-QN. Here L1 is made
    smooth exactly by splitting the block ``w = u - v`` with ``u, v >= 0``: ``||w||_1`` becomes the
    linear term ``sum(u + v)`` and L-BFGS-B's bound constraints keep the split valid, so the
    minimiser is the same and weights that L1 drives to zero end exactly at 0 (on the bound). Under
    ``non_negative`` no split is needed: ``||w||_1 = sum(w)`` on the bound ``w >= 0``.

    ``tolerance`` is L-BFGS-B's relative decrease of the objective and its projected gradient
    (ML.NET's single optimisation tolerance); None and the limits' defaults are SciPy's.
    """
    from scipy.optimize import minimize

    start, stop = penalized.start, penalized.stop
    if start is None or stop is None or penalized.step is not None or not 0 <= start <= stop <= len(initial):
        raise ValueError(f"penalized must be a slice of the {len(initial)} parameters with a start and stop")
    size, width = len(initial), stop - start
    split = l1 > 0 and width > 0 and not non_negative

    def unsplit(theta: np.ndarray) -> np.ndarray:
        """``theta`` as ``objective`` reads it: ``u - v`` in place of the split block."""
        u, v = theta[start : start + width], theta[start + width : start + 2 * width]
        return np.concatenate([theta[:start], u - v, theta[start + 2 * width :]])

    fun = objective
    bounds: _Bounds | None = None
    if split:
        block = initial[start:stop]
        x0 = np.concatenate(
            [initial[:start], np.where(block > 0, block, 0.0), np.where(block < 0, -block, 0.0), initial[stop:]]
        )
        bounds = _non_negative(size + width, slice(start, start + 2 * width))

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = objective(unsplit(theta))
            g = grad[start:stop]
            value += l1 * float(theta[start : start + 2 * width].sum())
            return value, np.concatenate([grad[:start], g + l1, -g + l1, grad[stop:]])

    else:
        x0 = initial
        if non_negative and width > 0:
            bounds = _non_negative(size, penalized)
        if non_negative and l1 > 0:

            def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
                value, grad = objective(theta)
                value += l1 * float(theta[start:stop].sum())
                return value, np.concatenate([grad[:start], grad[start:stop] + l1, grad[stop:]])

    options: dict[str, float] = {
        "maxcor": history_size,
        "maxiter": max_iterations,
        "maxfun": max_evaluations,
        "maxls": max_line_search_steps,
    }
    if tolerance is not None:
        options |= {"ftol": tolerance, "gtol": tolerance}
    result = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    theta = np.asarray(result.x, dtype=np.float64)
    return unsplit(theta) if split else theta
