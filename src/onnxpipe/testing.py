"""The conformance suite every component goes through (like scikit-learn's ``estimator_checks``).

``check_component(estimator, data)`` fits the estimator and checks that:

* the estimator is unchanged by ``fit`` (immutability);
* ``transform`` is lazy (reads nothing until a sink asks);
* the schema promised by the estimator's ``output_schema`` is kept by the fitted transformer
  (which may fill in what only fitting can know: sizes, key counts, slot names), and the
  transformer's promise is exactly the schema delivered, down to the Arrow storage of every batch;
* the result of scoring the whole data set equals scoring it one row at a time, and equals the
  prediction engine's path (``map_columns`` on numpy values);
* the transformer pickles, and a copy restored from its state gives the same result;
* input without the columns it reads is rejected with the library's ``SchemaError``;
* the ONNX export, applied with ONNX Runtime, gives the same columns, types and values as
  ``transform`` (or fails with an ``ExportError`` naming the step).

Numerical comparisons use :data:`TOLERANCES`, the one place tolerances are stated. A step whose
ONNX export is close to but not exactly its Python computation states the largest absolute
difference it allows in a class attribute ``onnx_parity_tolerance`` (``resize_images``: 2 levels
of 255); the ONNX parity check of a chain allows the largest of its steps'.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np
import pyarrow as pa

from onnxpipe.core import Estimator, Transformer
from onnxpipe.data._convert import ColumnValues, arrow_schema, from_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ExportError, ModelSaveError, SchemaError
from onnxpipe.schema import Schema, TensorType

__all__ = ["TOLERANCES", "assert_views_equal", "check_component", "check_save_load", "schema_refines"]

# Batched vs row-by-row ONNX Runtime calls may pick different kernels; both stay within these.
TOLERANCES: dict[str, float] = {"rtol": 1e-5, "atol": 1e-6}


def _type_refines(before: Any, after: Any) -> bool:
    if isinstance(before, TensorType) and isinstance(after, TensorType):
        return (
            before.dtype is after.dtype
            and len(before.shape) == len(after.shape)
            and all(b is None or b == a for b, a in zip(before.shape, after.shape, strict=True))
            and (not before.key_count or before.key_count == after.key_count)
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


def _assert_column_equal(name: str, a: ColumnValues, b: ColumnValues, what: str, atol: float = 0.0) -> None:
    if len(a) != len(b):
        raise AssertionError(f"{what}: column {name!r} has {len(a)} rows vs {len(b)}")
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if not _values_equal(x, y, atol):
            raise AssertionError(f"{what}: column {name!r} differs at row {i}: {x!r} vs {y!r}")


def assert_views_equal(a: DataView, b: DataView, what: str = "views") -> None:
    """Assert two views have equal schemas and values (floats within TOLERANCES)."""
    if a.schema != b.schema:
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


def check_component(
    estimator: Estimator, data: DataView, *, exportable: bool | None = None, savable: bool = True
) -> Transformer:
    """Run every conformance check on ``estimator`` over ``data``; return the fitted transformer.

    ``data`` should have a few rows (the row-by-row check scores each one separately).
    ``exportable``: True requires the ONNX export to work and to match ``transform`` through ONNX
    Runtime; False requires it to fail with an ExportError naming the step; None accepts either.
    ``savable``: True requires an exact save/load round trip; False requires saving to fail with a
    ModelSaveError naming the step (a component holding a Python function).
    """
    before = copy.copy(estimator.__dict__) if hasattr(estimator, "__dict__") else None
    promised = estimator.output_schema(data.schema)
    model = estimator.fit(data)
    if before is not None and model is not estimator:  # type: ignore[comparison-overlap]
        after = estimator.__dict__
        changed = [k for k in before if before[k] is not after.get(k)]
        if changed:
            raise AssertionError(f"{estimator.step_name}: fit changed the estimator's attributes {changed}")
    fitted_promise = model.output_schema(data.schema)
    if not schema_refines(promised, fitted_promise):
        raise AssertionError(
            f"{estimator.step_name}: estimator promised {promised}, transformer promises {fitted_promise}"
        )
    promised = fitted_promise  # from here on the fitted transformer's promise must hold exactly

    counting = _CountingView(data)
    scored = model.transform(counting)
    if counting.reads:
        raise AssertionError(f"{estimator.step_name}: transform read the data before a sink asked for it")
    if scored.schema != promised:
        raise AssertionError(f"{estimator.step_name}: promised {promised}, delivered {scored.schema}")
    expected_arrow = arrow_schema(promised)
    batches = list(scored.batches())
    for b in batches:
        if not b.schema.equals(expected_arrow, check_metadata=False):
            raise AssertionError(f"{estimator.step_name}: batch storage {b.schema} differs from {expected_arrow}")
    if (
        data.row_count is not None
        and scored.row_count is not None
        and sum(b.num_rows for b in batches) != scored.row_count
    ):
        raise AssertionError(f"{estimator.step_name}: row_count {scored.row_count} is not the number of rows delivered")

    # Row by row == all at once.
    rows = _rows(data)
    if rows:
        one_by_one = [model.transform(r) for r in rows]
        for name in promised.names:
            joined: list[Any] = [v for view in one_by_one for v in view.column(name)]
            _assert_column_equal(
                name, joined, list(scored.column(name)), f"{estimator.step_name}: row-by-row vs batched"
            )

    # The prediction engine's path: numpy values straight through map_columns.
    table = data.to_arrow()
    inputs = {n: from_arrow(table.column(n), data.schema[n].type) for n in model.input_columns(data.schema)}
    produced = model.map_columns(inputs, data.schema, table.num_rows)
    for name, values in produced.items():
        if name in promised:
            _assert_column_equal(
                name, list(values), list(scored.column(name)), f"{estimator.step_name}: map_columns vs transform"
            )

    check_save_load(model, data, scored, savable)

    # Picklable as multiprocessing sends it to workers; deepcopy restores through the same
    # __reduce__ path (the saved-model format; the library itself never unpickles).
    ForkingPickler.dumps(model)
    clone = copy.deepcopy(model)
    assert_views_equal(clone.transform(data), scored, f"{estimator.step_name}: after a state round trip")

    check_onnx_parity(model, data, scored, exportable)

    # Input without the columns the step reads is rejected with the library's error.
    needed = list(model.input_columns(data.schema))
    if needed:
        lacking = Schema(c for c in data.schema.columns if c.name != needed[0])
        try:
            model.output_schema(lacking)
        except SchemaError as exc:
            if needed[0] not in str(exc):
                raise AssertionError(
                    f"{estimator.step_name}: the error does not name column {needed[0]!r}: {exc}"
                ) from None
        else:
            raise AssertionError(f"{estimator.step_name}: accepted data without its input column {needed[0]!r}")
    return model


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
        proto = convert_to_onnx(model, data.schema)
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
        _assert_column_equal(
            name, list(reapplied.column(name)), list(scored.column(name)), f"{model.step_name}: ONNX parity", atol
        )
