"""``custom_mapping``: a user's Python function as a pipeline step (never exportable to ONNX)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from onnxpipe.core import TrivialEstimator
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._rows import RowConverter
from onnxpipe.errors import DataError, InvalidArgumentError
from onnxpipe.schema import Schema

__all__ = ["CustomMappingTransformer"]

In = TypeVar("In")
Out = TypeVar("Out")


class CustomMappingTransformer(TrivialEstimator, Generic[In, Out]):
    """Calls ``fn(row: In) -> Out`` on every row; the fields of ``Out`` become columns.

    ``fn`` must be a module-level function (not a lambda) for the step to pickle, e.g. into
    worker processes. ONNX export fails naming this step: ONNX cannot run Python.
    """

    onnx_unexportable_reason = "it runs user Python code, which ONNX cannot express"

    def __init__(
        self, fn: Callable[[In], Out], input_class: type[In], output_class: type[Out], contract_name: str | None = None
    ) -> None:
        if not callable(fn):
            raise InvalidArgumentError(f"custom_mapping needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.input_class = input_class
        self.output_class = output_class
        self.contract_name = contract_name or getattr(fn, "__name__", "custom")
        self._input = RowConverter(input_class)
        self._output = RowConverter(output_class)

    @property
    def step_name(self) -> str:
        return f"custom_mapping({self.contract_name})"

    def output_schema(self, input_schema: Schema) -> Schema:
        for column in self._input.schema.columns:
            input_schema.require(column.name, self.step_name)
        self._input.check_source(input_schema)
        return input_schema.with_columns(*self._output.schema.columns)

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return self._input.schema.names

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        self._input.check_source(input_schema)
        rows = self._input.from_columns(columns, n_rows)
        results: list[Any] = []
        for i, row in enumerate(rows):
            out = self.fn(row)
            if not isinstance(out, self.output_class):
                raise DataError(
                    f"{self.step_name}: the function returned {type(out).__name__} for row {i}; "
                    f"it must return {self.output_class.__name__}"
                )
            results.append(out)
        return self._output.to_columns(results)

    def __repr__(self) -> str:
        names = f"{self.input_class.__name__} -> {self.output_class.__name__}"
        return f"CustomMappingTransformer({self.contract_name}: {names})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A saved model cannot hold a Python function, but multiprocessing may send one by
        # reference (its module and name), as plain pickle does.
        return (_rebuild, (self.__getstate__(),))

    def __getstate__(self) -> dict[str, Any]:
        return {
            "fn": self.fn,
            "input_class": self.input_class,
            "output_class": self.output_class,
            "contract_name": self.contract_name,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


def _rebuild(state: dict[str, Any]) -> CustomMappingTransformer[Any, Any]:
    return CustomMappingTransformer(**state)
