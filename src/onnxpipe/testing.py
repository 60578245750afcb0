"""The conformance suite every component goes through, like scikit-learn's ``estimator_checks``.

Discovery: :func:`all_components` lists every registered component type (onnxpipe's own and
those registered with :func:`onnxpipe.core.component`). Each check in :data:`CHECKS` takes an
:class:`Example` (an estimator and a few rows of data) and asserts one property:

* ``fit_leaves_estimator_unchanged``, ``immutable``: ``fit`` returns a new transformer; neither
  the estimator nor the transformer accepts assignments after construction;
* ``schema_promise_kept``, ``schema_delivered``: the estimator's ``output_schema`` promise is kept
  by the fitted transformer (which may fill in what only fitting can know: sizes, key counts, slot
  names), and the transformer's promise is exactly the schema delivered, down to the Arrow storage;
* ``transform_is_lazy``: nothing is read until a sink asks;
* ``batch_equals_row_by_row``, ``engine_path_equals_transform``: scoring the whole data set equals
  scoring it one row at a time and equals the prediction engine's path (``map_columns``);
* ``save_load_round_trip``, ``pickle_round_trip``: saved and loaded, pickled and deep-copied, it
  scores the same (and saves to the same bytes);
* ``onnx_parity``: the ONNX export applied with ONNX Runtime gives the same columns, types and
  values as ``transform`` (or fails with an ``ExportError`` naming the step);
* ``missing_input_rejected``: input without a column the step reads is a ``SchemaError`` naming it.

Use :func:`parametrize_with_checks` in pytest (one test per example and check) or
:func:`check_component` (all checks at once). A component opts out of a check only by naming it
with a reason in its class attribute ``conformance_skips``. (Loading golden files saved by older
versions is checked by onnxpipe's own ``tests/test_golden.py`` for every registered type.)

Numerical comparisons use :data:`TOLERANCES`, the one place tolerances are stated. A step whose
ONNX export is close to but not exactly its Python computation states the largest absolute
difference it allows in a class attribute ``onnx_parity_tolerance`` (``resize_images``: 2 levels
of 255); the ONNX parity check of a chain allows the largest of its steps'.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.reduction import ForkingPickler
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from onnxpipe.core import Component, Estimator, EstimatorChain, Transformer, registered_components
from onnxpipe.data._convert import ColumnValues, arrow_schema, from_arrow, is_sparse
from onnxpipe.data._view import DataView
from onnxpipe.errors import ExportError, FrozenComponentError, ModelSaveError, SchemaError
from onnxpipe.schema import Column, KeyType, Schema, TensorType

__all__ = [
    "CHECKS",
    "TOLERANCES",
    "Example",
    "all_components",
    "assert_views_equal",
    "check_component",
    "check_onnx_parity",
    "check_save_load",
    "parametrize_with_checks",
    "run_check",
    "schema_refines",
    "skipped_checks",
]

# Batched vs row-by-row ONNX Runtime calls may pick different kernels; both stay within these.
TOLERANCES: dict[str, float] = {"rtol": 1e-5, "atol": 1e-6}


def _key_refines(before: TensorType, after: TensorType) -> bool:
    """An unknown key count (or no key values) before fit may become known; known ones stay."""
    if not (isinstance(before, KeyType) and isinstance(after, KeyType)):
        return True
    return before.count in (None, after.count) and before.values in (None, after.values)


def _type_refines(before: Any, after: Any) -> bool:
    if isinstance(before, TensorType) and isinstance(after, TensorType):
        return (
            before.dtype is after.dtype
            and len(before.shape) == len(after.shape)
            and all(b is None or b == a for b, a in zip(before.shape, after.shape, strict=True))
            and isinstance(before, KeyType) == isinstance(after, KeyType)
            and _key_refines(before, after)
        )
    return bool(before == after)


def schema_refines(before: Schema, after: Schema) -> bool:
    """Whether ``after`` (a fitted transformer's schema) keeps the promise ``before`` (the
    estimator's): same columns in the same order with the same element types, where what only
    fitting can know (unknown sizes, key counts, slot names) may be filled in."""
    if before.names != after.names:
        return False
    for b, a in zip(before.columns, after.columns, strict=True):
        if not _type_refines(b.type, a.type):
            return False
        if b.slot_names is not None and b.slot_names != a.slot_names:
            return False
    return True


def _values_equal(a: Any, b: Any, atol: float = 0.0) -> bool:
    """Equality within TOLERANCES; ``atol`` (a step's ``onnx_parity_tolerance``) widens it, for
    integers too."""
    if isinstance(a, np.generic) or isinstance(b, np.generic):  # numpy scalars compare as arrays (NaN, tolerances)
        a, b = np.asarray(a), np.asarray(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc":
            return bool(np.allclose(a, b, equal_nan=True, rtol=TOLERANCES["rtol"], atol=max(TOLERANCES["atol"], atol)))
        if atol and a.dtype.kind in "iu" and b.dtype.kind in "iu":
            return bool(np.all(np.abs(a.astype(np.int64) - b.astype(np.int64)) <= atol))
        return bool(np.array_equal(a, b))
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(_values_equal(x, y, atol) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_values_equal(a[k], b[k], atol) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, equal_nan=True, **TOLERANCES))
    return bool(a == b)


def _row_list(values: Any) -> list[Any]:
    """One value per row; a sparse batch (CSR) as dense rows (test data is small)."""
    if is_sparse(values):
        return list(values.toarray())
    return list(values)


def _assert_column_equal(name: str, a: ColumnValues, b: ColumnValues, what: str, atol: float = 0.0) -> None:
    a, b = _row_list(a), _row_list(b)
    if len(a) != len(b):
        raise AssertionError(f"{what}: column {name!r} has {len(a)} rows vs {len(b)}")
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if not _values_equal(x, y, atol):
            raise AssertionError(f"{what}: column {name!r} differs at row {i}: {x!r} vs {y!r}")


def _without_key_values(schema: Schema) -> Schema:
    return Schema(
        Column(c.name, c.type.without_values(), c.slot_names) if isinstance(c.type, KeyType) else c
        for c in schema.columns
    )


def assert_views_equal(a: DataView, b: DataView, what: str = "views", *, ignore_key_values: bool = False) -> None:
    """Assert two views have equal schemas and values (floats within TOLERANCES); with
    ``ignore_key_values``, key columns' values are not compared (data written before key types
    carried them)."""
    if ignore_key_values and _without_key_values(a.schema) == _without_key_values(b.schema):
        pass
    elif a.schema != b.schema:
        raise AssertionError(f"{what}: schemas differ: {a.schema} vs {b.schema}")
    for name in a.schema.names:
        _assert_column_equal(name, a.column(name), b.column(name), what)


class _CountingView(DataView):
    """A view that counts how often its data is read."""

    def __init__(self, inner: DataView) -> None:
        self.reads = 0

        def source() -> Iterator[pa.RecordBatch]:
            self.reads += 1
            return inner.batches()

        super().__init__(inner.schema, source, inner.row_count)

    __slots__ = ("reads",)


def _rows(data: DataView) -> list[DataView]:
    table = data.to_arrow()
    return [
        DataView(data.schema, lambda i=i: iter(table.slice(i, 1).to_batches()), 1)  # type: ignore[misc]
        for i in range(table.num_rows)
    ]


@dataclasses.dataclass(frozen=True, eq=False)
class Example:
    """One estimator and a few rows of data it fits on, for the conformance checks.

    ``exportable``: True requires the ONNX export to work and to match ``transform`` through ONNX
    Runtime; False requires it to fail with an ExportError naming the step; None accepts either.
    ``savable``: True requires an exact save/load round trip; False requires saving to fail with a
    ModelSaveError naming the step (a component holding a Python function).
    """

    estimator: Estimator
    data: DataView
    exportable: bool | None = None
    savable: bool = True
    id: str = ""

    @property
    def name(self) -> str:
        return self.id or self.estimator.step_name


class _Run:
    """What the checks of one example share, computed once: the fit, the promise, the scores."""

    def __init__(self, example: Example) -> None:
        self.example = example
        self.estimator = example.estimator
        self.data = example.data
        self.step = example.estimator.step_name

    @functools.cached_property
    def state_before(self) -> dict[str, Any]:
        return copy.copy(self.estimator.get_state())

    @functools.cached_property
    def promised(self) -> Schema:
        return self.estimator.output_schema(self.data.schema)

    @functools.cached_property
    def model(self) -> Transformer:
        self.state_before  # noqa: B018 - read before fitting, to compare after
        return self.estimator.fit(self.data)

    @functools.cached_property
    def fitted_promise(self) -> Schema:
        return self.model.output_schema(self.data.schema)

    @functools.cached_property
    def scored(self) -> DataView:
        return self.model.transform(self.data)


_RUNS: dict[int, _Run] = {}


def _run(example: Example) -> _Run:
    run = _RUNS.get(id(example))
    if run is None or run.example is not example:
        run = _RUNS[id(example)] = _Run(example)
    return run


def check_fit_leaves_estimator_unchanged(run: _Run) -> None:
    """``fit`` returns a new transformer and leaves the estimator as it was."""
    model = run.model
    if model is not run.estimator:  # type: ignore[comparison-overlap]
        after = run.estimator.get_state()
        changed = [k for k in run.state_before if not _values_equal(run.state_before[k], after.get(k))]
        if changed:
            raise AssertionError(f"{run.step}: fit changed the estimator's parameters {changed}")


def check_immutable(run: _Run) -> None:
    """Estimator and transformer refuse attribute assignment after construction."""
    for component in (run.estimator, run.model):
        for name in [*component.get_state(), "some_new_attribute"][:2]:
            try:
                setattr(component, name, None)
            except FrozenComponentError:
                continue
            raise AssertionError(f"{component.step_name}: assigning {name!r} after construction did not raise")


def check_schema_promise_kept(run: _Run) -> None:
    """The fitted transformer keeps the estimator's promise (filling in sizes, keys, slot names)."""
    if not schema_refines(run.promised, run.fitted_promise):
        raise AssertionError(
            f"{run.step}: estimator promised {run.promised}, transformer promises {run.fitted_promise}"
        )


def check_transform_is_lazy(run: _Run) -> None:
    """``transform`` reads nothing until a sink asks."""
    counting = _CountingView(run.data)
    run.model.transform(counting)
    if counting.reads:
        raise AssertionError(f"{run.step}: transform read the data before a sink asked for it")


def check_schema_delivered(run: _Run) -> None:
    """The transformer's promised schema is exactly the one delivered, down to the Arrow storage."""
    promised, scored = run.fitted_promise, run.scored
    if scored.schema != promised:
        raise AssertionError(f"{run.step}: promised {promised}, delivered {scored.schema}")
    expected_arrow = arrow_schema(promised)
    batches = list(scored.batches())
    for b in batches:
        if not b.schema.equals(expected_arrow, check_metadata=False):
            raise AssertionError(f"{run.step}: batch storage {b.schema} differs from {expected_arrow}")
    if scored.row_count is not None and sum(b.num_rows for b in batches) != scored.row_count:
        raise AssertionError(f"{run.step}: row_count {scored.row_count} is not the number of rows delivered")


def check_batch_equals_row_by_row(run: _Run) -> None:
    """Scoring the data set at once equals scoring it one row at a time."""
    rows = _rows(run.data)
    one_by_one = [run.model.transform(r) for r in rows]
    for name in run.fitted_promise.names:
        joined: list[Any] = [v for view in one_by_one for v in _row_list(view.column(name))]
        _assert_column_equal(name, joined, run.scored.column(name), f"{run.step}: row-by-row vs batched")


def check_engine_path_equals_transform(run: _Run) -> None:
    """The prediction engine's path (numpy values through ``map_columns``) equals ``transform``."""
    data, model = run.data, run.model
    table = data.to_arrow()
    inputs = {n: from_arrow(table.column(n), data.schema[n].type) for n in model.input_columns(data.schema)}
    produced = model.step_columns(inputs, data.schema, table.num_rows)
    for name, values in produced.items():
        if name in run.fitted_promise:
            _assert_column_equal(name, values, run.scored.column(name), f"{run.step}: map_columns")


def check_save_load_round_trip(run: _Run) -> None:
    """Saved and loaded, the transformer scores the same and saves to the same bytes."""
    check_save_load(run.model, run.data, run.scored, run.example.savable)


def check_pickle_round_trip(run: _Run) -> None:
    """Pickled as multiprocessing sends it to workers, and deep-copied, it scores the same."""
    for component in (run.estimator, run.model):
        ForkingPickler.dumps(component)
    if run.example.savable:
        assert_views_equal(
            copy.deepcopy(run.model).transform(run.data), run.scored, f"{run.step}: after a state round trip"
        )


def check_onnx_parity_of_example(run: _Run) -> None:
    """Exported to ONNX and applied with ONNX Runtime, it gives the same columns, types and values."""
    check_onnx_parity(run.model, run.data, run.scored, run.example.exportable)


def check_missing_input_rejected(run: _Run) -> None:
    """Input without a column the step reads is a SchemaError naming that column."""
    data, model = run.data, run.model
    needed = list(model.steps[0].input_columns(data.schema))  # a chain's first step reads from the data
    if not needed:
        return
    lacking = Schema(c for c in data.schema.columns if c.name != needed[0])
    for component in (run.estimator, model):
        try:
            component.output_schema(lacking)
        except SchemaError as exc:
            if needed[0] not in str(exc):
                raise AssertionError(f"{run.step}: the error does not name column {needed[0]!r}: {exc}") from None
        else:
            raise AssertionError(f"{run.step}: accepted data without its input column {needed[0]!r}")


CHECKS: dict[str, Callable[[_Run], None]] = {
    "fit_leaves_estimator_unchanged": check_fit_leaves_estimator_unchanged,
    "immutable": check_immutable,
    "schema_promise_kept": check_schema_promise_kept,
    "transform_is_lazy": check_transform_is_lazy,
    "schema_delivered": check_schema_delivered,
    "batch_equals_row_by_row": check_batch_equals_row_by_row,
    "engine_path_equals_transform": check_engine_path_equals_transform,
    "save_load_round_trip": check_save_load_round_trip,
    "pickle_round_trip": check_pickle_round_trip,
    "onnx_parity": check_onnx_parity_of_example,
    "missing_input_rejected": check_missing_input_rejected,
}
"""Every conformance check, by name. A component skips one only by naming it, with the reason,
in its class attribute ``conformance_skips`` (``{"onnx_parity": "why"}``)."""


def skipped_checks(estimator: Estimator) -> dict[str, str]:
    """The checks the steps of ``estimator`` opt out of, with their reasons."""
    steps = estimator.steps if isinstance(estimator, EstimatorChain) else (estimator,)
    skips: dict[str, str] = {}
    for step in steps:
        for name, reason in getattr(type(step), "conformance_skips", {}).items():
            if name not in CHECKS:
                raise AssertionError(
                    f"{type(step).__qualname__}.conformance_skips names an unknown check {name!r}; "
                    f"the checks are {list(CHECKS)}"
                )
            if not isinstance(reason, str) or not reason.strip():
                raise AssertionError(f"{type(step).__qualname__} skips {name!r} without a reason")
            skips[name] = f"{type(step).__qualname__}: {reason}"
    return skips


def run_check(example: Example, check: str) -> None:
    """Run the check named ``check`` on ``example`` (the fit is shared between checks)."""
    CHECKS[check](_run(example))


def check_component(
    estimator: Estimator, data: DataView, *, exportable: bool | None = None, savable: bool = True
) -> Transformer:
    """Run every conformance check on ``estimator`` over ``data``; return the fitted transformer.

    ``data`` should have a few rows (the row-by-row check scores each one separately); see
    :class:`Example` for ``exportable`` and ``savable``. Checks the component opts out of (its
    ``conformance_skips``) are left out.
    """
    example = Example(estimator, data, exportable, savable)
    run = _Run(example)
    skips = skipped_checks(estimator)
    for name, check in CHECKS.items():
        if name not in skips:
            check(run)
    return run.model


def all_components(kind: Literal["estimator", "transformer"] | None = None) -> list[tuple[str, type[Component]]]:
    """Every registered component type (onnxpipe's and yours), by registered name, sorted, like
    scikit-learn's ``all_estimators``; ``kind`` keeps estimators or (fitted) transformers only."""
    found = []
    for name, info in sorted(registered_components().items()):
        if kind == "estimator" and not issubclass(info.cls, Estimator):
            continue
        if kind == "transformer" and not issubclass(info.cls, Transformer):
            continue
        found.append((name, info.cls))
    return found


def parametrize_with_checks(examples: Sequence[Example]) -> Any:
    """A ``pytest.mark.parametrize`` over every (example, check) pair, like scikit-learn's::

        @parametrize_with_checks([Example(MyEstimator("Out", "In"), data, exportable=True)])
        def test_conformance(example, check):
            run_check(example, check)

    Checks an example's steps opt out of are marked skipped, with the reason.
    """
    import pytest

    params = []
    for example in examples:
        skips = skipped_checks(example.estimator)
        for check in CHECKS:
            marks = [pytest.mark.skip(reason=skips[check])] if check in skips else []
            params.append(pytest.param(example, check, id=f"{example.name}-{check}", marks=marks))
    return pytest.mark.parametrize(("example", "check"), params)


def check_save_load(model: Transformer, data: DataView, scored: DataView, savable: bool = True) -> None:
    """Save ``model``, load it back, and require the same output and the same saved bytes."""
    from onnxpipe.persistence import model_from_bytes, model_to_bytes

    try:
        saved = model_to_bytes(model, data.schema)
    except ModelSaveError as exc:
        if savable:
            raise AssertionError(f"{model.step_name}: cannot be saved: {exc}") from None
        if model.step_name not in str(exc):
            raise AssertionError(f"{model.step_name}: the save error does not name the step: {exc}") from None
        return
    if not savable:
        raise AssertionError(f"{model.step_name}: saved although it is declared unsavable")
    loaded, schema = model_from_bytes(saved)
    if schema != data.schema:
        raise AssertionError(f"{model.step_name}: saved input schema {data.schema}, loaded {schema}")
    assert_views_equal(loaded.transform(data), scored, f"{model.step_name}: after save and load")
    if model_to_bytes(loaded, schema) != saved:
        raise AssertionError(f"{model.step_name}: saving the loaded model gives different bytes")


def check_onnx_parity(model: Transformer, data: DataView, scored: DataView, exportable: bool | None) -> None:
    """Export ``model``, apply the export with ONNX Runtime, and compare with ``scored``."""
    from onnxpipe.export import convert_to_onnx
    from onnxpipe.transforms.onnx_model import OnnxTransformer

    try:
        proto = convert_to_onnx(model, data.schema, output_columns="all")
    except ExportError as exc:
        if exportable:
            raise AssertionError(f"{model.step_name}: export failed: {exc}") from None
        if "step 0" not in str(exc) and model.step_name not in str(exc):
            raise AssertionError(f"{model.step_name}: the export error does not name the step: {exc}") from None
        return
    if exportable is False:
        raise AssertionError(f"{model.step_name}: exported although it is declared unexportable")
    reapplied = OnnxTransformer(model_bytes=proto.SerializeToString()).transform(data)
    atol = max((float(getattr(step, "onnx_parity_tolerance", 0.0)) for step in model.steps), default=0.0)
    for name in scored.schema.names:
        if scored.schema[name] != reapplied.schema[name]:
            raise AssertionError(
                f"{model.step_name}: ONNX export gives column {reapplied.schema[name]}, transform gives "
                f"{scored.schema[name]}"
            )
        _assert_column_equal(name, reapplied.column(name), scored.column(name), f"{model.step_name}: ONNX parity", atol)
