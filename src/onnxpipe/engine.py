"""The typed prediction engine: rows of one class in, rows of another class out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from onnxpipe.core import Transformer, TransformerChain
from onnxpipe.data._loaders import as_data_view, create_enumerable
from onnxpipe.data._rows import RowConverter

__all__ = ["PredictionEngine"]

In = TypeVar("In")
Out = TypeVar("Out")


class PredictionEngine(Generic[In, Out]):
    """Scores single rows or small lists of rows through a fitted model, without a DataView.

    Everything that depends only on the classes and the model (schemas, field converters, each
    step's input columns) is worked out once here; a call converts the row's fields to arrays,
    runs each step on them, and builds the output object. The engine holds no per-call state, so
    it is safe to use from several threads at once.
    """

    def __init__(self, model: Transformer, input_class: type[In], output_class: type[Out]) -> None:
        self._input = RowConverter(input_class)
        self._output = RowConverter(output_class)
        steps = model.steps
        schemas = TransformerChain(steps).schemas(self._input.schema)
        self._output.check_source(schemas[-1])
        self._plan = tuple(zip(steps, schemas, strict=False))
        self._model = TransformerChain(steps)
        self.input_schema = self._input.schema
        self.output_schema = schemas[-1]

    def predict(self, row: In) -> Out:
        """Score one row."""
        cols = self._input.one_row_view(row)  # no copy when the fields already have the right type
        if cols is None:
            cols = self._input.to_columns([row])
        for step, schema in self._plan:
            cols.update(step.step_columns(cols, schema, 1))
        return self._output.from_one(cols)  # type: ignore[no-any-return]

    def predict_batch(self, rows: Sequence[In] | Any) -> list[Out]:
        """Score several rows in one go (one ONNX Runtime call per batch where the model allows).

        ``rows`` is a sequence of input objects, or data as users hold it (a pandas DataFrame, a
        pyarrow Table or RecordBatchReader, a dict of numpy arrays, a DataView), scored through
        the model as ``transform`` scores it."""
        if not isinstance(rows, Sequence):
            view = self._model.transform(as_data_view(rows, "predict_batch"))
            return list(create_enumerable(view, self._output.cls))
        rows = list(rows)
        if not rows:
            return []
        n = len(rows)
        cols = self._input.to_columns(rows)
        for step, schema in self._plan:
            cols.update(step.step_columns(cols, schema, n))
        return self._output.from_columns(cols, n)

    def __repr__(self) -> str:
        return f"PredictionEngine({self._input.cls.__name__} -> {self._output.cls.__name__}, steps={len(self._plan)})"
