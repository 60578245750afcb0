"""Every error onnxpipe raises on purpose.

Each error subclasses the built-in exception a caller would catch for the same problem, so
``except ValueError`` keeps working, and :class:`OnnxPipeError` catches them all::

    OnnxPipeError
    ├── SchemaError (ValueError)                 a column or tensor does not fit what is declared
    │   ├── ColumnNotFoundError (KeyError)       a named column is absent
    │   ├── ColumnTypeError (TypeError)          wrong element type / column kind
    │   └── ShapeError                           wrong rank, size or dimension
    ├── DataError (ValueError)                   the values themselves are bad
    │   ├── ParseError                           a text file cell cannot be read as its type
    │   └── ImageDecodeError                     an image file is corrupt, truncated or of an unsupported mode
    ├── ModelError (ValueError)                  an ONNX model cannot be used as asked
    │   ├── ModelLoadError                       malformed / unsupported / unsafe ONNX or saved-model file
    │   ├── ModelSaveError                       a fitted model holds what a saved model cannot (a function)
    │   └── TensorNotFoundError (KeyError)       a tensor name the model does not have
    ├── ExportError (ValueError)                 a pipeline step cannot be converted to ONNX
    ├── ExecutionError (RuntimeError)            ONNX Runtime failed while scoring
    ├── DeviceError (RuntimeError)               a requested GPU cannot be used
    ├── InvalidArgumentError (ValueError)        an option's value is out of range
    ├── FrozenComponentError (AttributeError)    assigning to a built estimator or transformer
    ├── DataFileNotFoundError (FileNotFoundError) a data or model file is missing
    └── MissingDependencyError (ImportError)     an optional extra is not installed

Warnings (something worked, but not exactly as asked)::

    OnnxPipeWarning (UserWarning)                e.g. a GPU fell back to the CPU
    └── SkippedRowWarning                        a bad row was dropped (load_images(on_error="skip"))

Messages say which column / step / tensor, what was expected, what was given, and how to fix it.
Names in them often come from files (a column, a tensor, a step): every message is made inert
when it is turned into text, with control characters, escape sequences and bidirectional
overrides escaped (line breaks and tabs are kept), so printing an error never drives a terminal.
"""

from __future__ import annotations

from onnxpipe._display import inert

__all__ = [
    "ColumnNotFoundError",
    "ColumnTypeError",
    "DataError",
    "DataFileNotFoundError",
    "DeviceError",
    "ExecutionError",
    "ExportError",
    "FrozenComponentError",
    "ImageDecodeError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "ModelError",
    "ModelLoadError",
    "ModelSaveError",
    "OnnxPipeError",
    "OnnxPipeWarning",
    "ParseError",
    "SchemaError",
    "SkippedRowWarning",
    "ShapeError",
    "TensorNotFoundError",
]


class OnnxPipeError(Exception):
    """Base class of every error raised by onnxpipe."""

    def __str__(self) -> str:
        # KeyError quotes its message; the subclasses below that derive from it must not.
        return inert(str(self.args[0])) if self.args else ""


class SchemaError(OnnxPipeError, ValueError):
    """Data does not match the schema a component or model expects."""


class ColumnNotFoundError(SchemaError, KeyError):
    """A column named by a component or a schema class is not in the data."""


class ColumnTypeError(SchemaError, TypeError):
    """A column's element type or kind is not the one expected."""


class ShapeError(SchemaError):
    """A tensor's rank or dimensions do not match the expected shape."""


class DataError(OnnxPipeError, ValueError):
    """The values are unusable (empty data, ragged vectors, NaN where not allowed, ...)."""


class ParseError(DataError):
    """A cell of a text file cannot be read as its column's type."""


class ImageDecodeError(DataError):
    """An image file cannot be decoded; the message names the file, the row and why."""


class ModelError(OnnxPipeError, ValueError):
    """An ONNX model cannot be used as requested."""


class ModelLoadError(ModelError):
    """An ONNX model or a saved model is malformed, unsupported, tampered with, or unsafe to load."""


class ModelSaveError(ModelError, TypeError):
    """A fitted model holds something a saved model cannot contain (e.g. a Python function)."""


class TensorNotFoundError(ModelError, KeyError):
    """A tensor name (input, output or shape-dictionary key) is not in the model."""


class ExportError(OnnxPipeError, ValueError):
    """A fitted pipeline cannot be converted to ONNX; the message names the step and why."""


class ExecutionError(OnnxPipeError, RuntimeError):
    """ONNX Runtime failed while running the model."""


class DeviceError(OnnxPipeError, RuntimeError):
    """A GPU was requested and cannot be used, and CPU fallback was not allowed."""


class InvalidArgumentError(OnnxPipeError, ValueError):
    """An argument's value is invalid (e.g. a negative batch size); the message lists valid values."""


class FrozenComponentError(OnnxPipeError, AttributeError):
    """An estimator or transformer is immutable: build a new one (``with_parameters``) instead."""


class DataFileNotFoundError(OnnxPipeError, FileNotFoundError):
    """A data or model file does not exist."""


class MissingDependencyError(OnnxPipeError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class OnnxPipeWarning(UserWarning):
    """Something worked, but not the way it was asked for (e.g. GPU fell back to CPU)."""

    def __str__(self) -> str:
        return inert(str(self.args[0])) if self.args else ""


class SkippedRowWarning(OnnxPipeWarning):
    """A row was dropped because its file could not be loaded (``on_error="skip"``)."""


def require(module: str, extra: str) -> object:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"this feature needs the optional package {module!r}; install it with: pip install 'onnxpipe[{extra}]'"
        ) from exc
