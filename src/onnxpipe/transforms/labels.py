"""``top_k_labels``: the ``k`` best classes of a score vector, as labels and scores.

A classifier applied with ``apply_onnx_model`` gives a score per class (ImageNet's 1000, an
orientation model's 4); the labels live next to the model (a ``synset.txt``, the model's metadata).
This step turns the score vector into two vector columns of ``k`` elements, sorted by descending
score: the labels (strings) and their scores (the score column's float type).

Order: descending score, ties broken by the lower class index, NaN above everything (as ONNX
Runtime's TopK orders them). The ONNX export is ``TopK`` and a ``Gather`` on the labels stored as
a string initializer, so the exported pipeline gives the same columns.

Labels come from a list or from a text file with one label per line. A file whose every line is
``<index> <label>`` (or ``<index>: <label>``, ``<index>,<label>``) with the indexes 0, 1, 2, ... in
order is read as that format (the index is dropped); any other file keeps each whole line as a
label, so ImageNet's ``n01440764 tench, Tinca tinca`` lines are labels as they stand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.errors import ColumnTypeError, DataFileNotFoundError, InvalidArgumentError, ShapeError
from onnxpipe.schema import Column, DType, KeyType, Schema, TensorType

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["TopKLabelsTransformer", "read_labels_file"]

_SCORE_TYPES = (DType.FLOAT32, DType.FLOAT64)  # what ONNX Runtime's TopK runs on the CPU
_INDEXED_LINE = re.compile(r"\s*(\d+)(?:\s*[:,]\s*|\s+)(\S.*?)\s*")


def read_labels_file(path: str | Path) -> tuple[str, ...]:
    """The labels in a text file, one per line (see the module docstring for the formats).

    Blank lines at the end are ignored; a blank line between labels is an error (it would shift
    every following label by one class).
    """
    file = Path(path)
    if not file.is_file():
        raise DataFileNotFoundError(f"top_k_labels: labels file {str(file)!r} does not exist")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(
            f"top_k_labels: labels file {str(file)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise InvalidArgumentError(f"top_k_labels: labels file {str(file)!r} has no labels")
    for number, line in enumerate(lines, start=1):
        if not line:
            raise InvalidArgumentError(
                f"top_k_labels: labels file {str(file)!r} has an empty line {number} between labels; every line "
                "must hold the label of the next class (remove the line, or give the labels with labels=[...])"
            )
    matches = [_INDEXED_LINE.fullmatch(line) for line in lines]
    if all(m is not None for m in matches):
        indexes = [int(m.group(1)) for m in matches if m is not None]
        if indexes == list(range(len(lines))):
            return tuple(m.group(2) for m in matches if m is not None)
        raise InvalidArgumentError(
            f"top_k_labels: labels file {str(file)!r} looks like '<index> <label>' lines, but the indexes are not "
            f"0, 1, 2, ... in order (got {_preview(indexes)}), so it is ambiguous which class each label names; "
            "give the labels in class order with labels=[...]"
        )
    return tuple(lines)


def _preview(values: Sequence[object]) -> str:
    head = ", ".join(str(v) for v in values[:6])
    return head + (", ..." if len(values) > 6 else "")


@component("top_k_labels", catalog="transforms")
class TopKLabelsTransformer(TrivialEstimator["TopKLabelsTransformer"]):
    """The ``k`` highest scores of a vector column and the labels of their classes.

    Reads ``score_column_name``: float32 or float64 scores, one per class, of shape ``(C,)`` or
    ``(1, C)`` (a model's leading batch 1). Writes ``output_column_name``: string ``(k,)`` and
    ``score_output_column_name``: scores ``(k,)`` of the input's float type, by descending score.
    """

    def __init__(
        self,
        output_column_name: str = "TopLabels",
        score_column_name: str = "Score",
        *,
        labels: Sequence[str] | None = None,
        labels_file: str | Path | None = None,
        k: int = 5,
        score_output_column_name: str = "TopScores",
    ) -> None:
        for what, name in (
            ("output_column_name", output_column_name),
            ("score_column_name", score_column_name),
            ("score_output_column_name", score_output_column_name),
        ):
            _validation.column_name(name, what, "top_k_labels")
        if output_column_name == score_output_column_name:
            raise InvalidArgumentError(
                f"top_k_labels: output_column_name and score_output_column_name are both {output_column_name!r}; "
                "the labels and the scores need two different columns"
            )
        self.output_column_name = output_column_name
        self.score_column_name = score_column_name
        self.score_output_column_name = score_output_column_name
        if (labels is None) == (labels_file is None):
            raise InvalidArgumentError(
                "top_k_labels: give the class labels either as labels=[...] or as labels_file=PATH (exactly one)"
            )
        if labels is not None:
            if isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
                raise _validation.invalid("top_k_labels", "labels", "a sequence of strings (one per class)", labels)
            self.labels: tuple[str, ...] = tuple(labels)
            if not self.labels:
                raise InvalidArgumentError("top_k_labels: labels is empty; give one label per class")
        else:
            assert labels_file is not None
            self.labels = read_labels_file(labels_file)
        k = _validation.integer(k, "k", "top_k_labels", low=1)
        if k > len(self.labels):
            raise InvalidArgumentError(
                f"top_k_labels: k={k} is more than the {len(self.labels)} classes that have labels; "
                f"choose k <= {len(self.labels)}"
            )
        self.k = int(k)

    def get_state(self) -> dict[str, Any]:
        # A labels file is read once, at construction: the state holds the labels themselves.
        return {
            "output_column_name": self.output_column_name,
            "score_column_name": self.score_column_name,
            "labels": list(self.labels),
            "labels_file": None,
            "k": self.k,
            "score_output_column_name": self.score_output_column_name,
        }

    @property
    def step_name(self) -> str:
        return f"top_k_labels({self.output_column_name}, {self.score_output_column_name} <- {self.score_column_name})"

    def _score_type(self, schema: Schema) -> TensorType:
        """The score column's type, checked against the labels."""
        name = self.score_column_name
        ct = schema.require(name, self.step_name).type
        if not isinstance(ct, TensorType) or ct.dtype not in _SCORE_TYPES or isinstance(ct, KeyType):
            raise ColumnTypeError(
                f"{self.step_name}: score column {name!r} is {ct}; expected a float32 or float64 vector with one "
                "score per class (convert it with convert_type first)"
            )
        shape = ct.shape
        if len(shape) == 2 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 1:
            raise ShapeError(
                f"{self.step_name}: score column {name!r} is {ct}; expected a vector of shape (classes,) or "
                "(1, classes)"
            )
        if shape[0] is None:
            raise ShapeError(
                f"{self.step_name}: score column {name!r} is {ct}, a vector of unknown size; the number of "
                f"classes must be known to check it against the {len(self.labels)} labels: declare the size "
                "(VectorType, or shape_dictionary in apply_onnx_model)"
            )
        if shape[0] != len(self.labels):
            raise ShapeError(
                f"{self.step_name}: score column {name!r} has {shape[0]} scores per row but {len(self.labels)} "
                "labels were given; give exactly one label per score, in class order"
            )
        return ct

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._score_type(input_schema)
        return input_schema.with_columns(
            Column(self.output_column_name, TensorType(DType.STRING, (self.k,))),
            Column(self.score_output_column_name, TensorType(ct.dtype, (self.k,))),
        )

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.score_column_name]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        ct = self._score_type(input_schema)
        scores = np.asarray(columns[self.score_column_name], dtype=ct.dtype.numpy).reshape(n_rows, len(self.labels))
        missing = np.isnan(scores)
        # Two stable sorts: by descending score, then NaN first; equal keys keep the lower index first.
        by_score = np.argsort(-np.where(missing, 0, scores), axis=1, kind="stable")
        nan_first = np.argsort(~np.take_along_axis(missing, by_score, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(by_score, nan_first, axis=1)[:, : self.k]
        labels = np.array(self.labels, dtype=object)
        return {
            self.output_column_name: labels[best],
            self.score_output_column_name: np.take_along_axis(scores, best, axis=1),
        }

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        self._score_type(input_schema)
        scores = ctx.add_node("Flatten", [ctx.value(self.score_column_name)], axis=1)[0]  # [N, C] or [N, 1, C]
        k = ctx.add_initializer(np.array([self.k], dtype=np.int64), "top_k")
        values, indexes = ctx.add_node("TopK", [scores, k], 2, axis=-1, largest=1, sorted=1)
        labels = ctx.add_initializer(np.array(self.labels, dtype=object), "class_labels")
        (top_labels,) = ctx.add_node("Gather", [labels, indexes], axis=0)
        ctx.set_value(self.output_column_name, top_labels)
        ctx.set_value(self.score_output_column_name, values)

    def _params(self) -> tuple[object, ...]:
        return (self.output_column_name, self.score_column_name, self.labels, self.k, self.score_output_column_name)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._params() == self._params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._params()))

    def __repr__(self) -> str:
        labels = _preview(self.labels)
        return (
            f"TopKLabelsTransformer({self.output_column_name!r}, {self.score_column_name!r}, labels=[{labels}] "
            f"({len(self.labels)}), k={self.k}, score_output_column_name={self.score_output_column_name!r})"
        )
