"""``custom_mapping``: a user's Python function as a pipeline step (never exportable to ONNX).

A saved model cannot hold a function. As with ML.NET's ``CustomMappingFactory``, a mapping
registered under a contract name (:func:`register_custom_mapping`) is saved as that name, and
loading looks the name up in the registry of the loading process, where the same registration
must have run (e.g. on import of the module that defines the function).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from onnxpipe import _validation
from onnxpipe._display import shown
from onnxpipe.core import TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._rows import RowConverter
from onnxpipe.errors import DataError, InvalidArgumentError, ModelLoadError
from onnxpipe.schema import Schema

__all__ = ["CustomMappingTransformer", "register_custom_mapping"]

In = TypeVar("In")
Out = TypeVar("Out")

_registered: dict[str, tuple[Callable[[Any], Any], type, type]] = {}


def register_custom_mapping(
    contract_name: str, fn: Callable[[In], Out], input_class: type[In], output_class: type[Out]
) -> None:
    """Make ``custom_mapping(fn, input_class, output_class, contract_name)`` steps savable.

    Saved models record only ``contract_name``; a process that loads them must have registered
    the same name. Registering a name again with other values raises InvalidArgumentError.
    """
    who = "register_custom_mapping"
    if not isinstance(contract_name, str) or not contract_name:
        raise _validation.invalid(who, "contract_name", "a non-empty string", contract_name)
    if not callable(fn):
        raise _validation.invalid(who, "fn", "a callable (a function or a class)", fn)
    entry = (fn, input_class, output_class)
    if _registered.get(contract_name, entry) != entry:
        raise InvalidArgumentError(
            f"register_custom_mapping: contract name {contract_name!r} is already registered for "
            f"{_registered[contract_name][0]!r}; choose another name"
        )
    _registered[contract_name] = entry


@component("custom_mapping")
class CustomMappingTransformer(TrivialEstimator["CustomMappingTransformer[In, Out]"], Generic[In, Out]):
    """Calls ``fn(row: In) -> Out`` on every row; the fields of ``Out`` become columns.

    ``fn`` must be a module-level function (not a lambda) for the step to pickle, e.g. into
    worker processes. ONNX export fails naming this step: ONNX cannot run Python.
    """

    onnx_unexportable_reason = "it runs user Python code, which ONNX cannot express"

    def __init__(
        self, fn: Callable[[In], Out], input_class: type[In], output_class: type[Out], contract_name: str | None = None
    ) -> None:
        if not callable(fn):
            raise _validation.invalid("custom_mapping", "fn", "a callable (a function or a class)", fn)
        self.fn = fn
        self.input_class = input_class
        self.output_class = output_class
        self.contract_name: str = contract_name or str(getattr(fn, "__name__", "custom"))
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

    def _arguments(self) -> dict[str, Any]:
        return {
            "fn": self.fn,
            "input_class": self.input_class,
            "output_class": self.output_class,
            "contract_name": self.contract_name,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Multiprocessing may send a function by reference (its module and name), as plain
        # pickle does, registered or not.
        return (_rebuild, (self._arguments(),))

    def get_state(self) -> dict[str, Any]:
        # What a saved model holds: the contract name when this very mapping is registered under
        # it; otherwise the function, which saving refuses naming this step.
        if _registered.get(self.contract_name) == (self.fn, self.input_class, self.output_class):
            return {"contract_name": self.contract_name}
        return self._arguments()

    @classmethod
    def from_state(cls, state: Mapping[str, Any], version: int | None = None) -> CustomMappingTransformer[Any, Any]:
        state = cls._current_state(state, version)
        name = state.get("contract_name")
        if set(state) != {"contract_name"} or not isinstance(name, str):
            raise ModelLoadError("custom_mapping: a saved custom mapping holds only its contract name")
        if name not in _registered:
            raise ModelLoadError(
                f"custom_mapping({shown(name)}): no custom mapping is registered under {name!r} in this process; call "
                "onnxpipe.register_custom_mapping(name, fn, input_class, output_class) before loading"
            )
        fn, input_class, output_class = _registered[name]
        return cls(fn, input_class, output_class, name)

    @classmethod
    def from_legacy_attributes(cls, attributes: dict[str, Any]) -> CustomMappingTransformer[Any, Any]:
        return cls.from_state(attributes)  # format 1 held the contract name alone too


def _rebuild(arguments: dict[str, Any]) -> CustomMappingTransformer[Any, Any]:
    return CustomMappingTransformer(**arguments)
