"""Stop-word removal (``ctx.transforms.text``), ML.NET's StopWordsRemovingEstimator and
CustomStopWordsRemovingEstimator.

Both read a vector of text tokens (e.g. ``tokenize_into_words``' output) and keep, in order, the
tokens whose lower-cased form is not a stop word; empty tokens are dropped too (as ML.NET does).
Lower-casing is .NET's ``ToLowerInvariant`` character by character (one UTF-16 character to one,
the table ``normalize_text`` uses). As in ML.NET, a custom list is lower-cased and a predefined
list is used as written (so German's ``Ernst`` never matches, a token being lower-cased first).

The predefined lists (English, French, German, Spanish, Dutch, Italian) are ML.NET's own, in
``stop_words/`` next to this module (MIT; see ``stop_words/NOTICE``).

Export: the tokens, lower-cased with ``StringNormalizer`` (``C.UTF-8`` locale), are looked up in a
``LabelEncoder`` holding the list; the tokens kept move to the front of their row (``TopK`` +
``GatherElements``) and the rest become ``""``, padding the rows to the batch's longest
(:meth:`~onnxpipe.export.ExportContext.set_padded_value`; ``apply_onnx_model`` drops it). This is
``StringNormalizer(stopwords=...)``'s result row by row, without its per-row loop (the operator
takes one row at a time) and with ML.NET's exact rule for predefined lists.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import TransformerT_co, TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep
from onnxpipe.transforms.text.normalize import _one_to_one
from onnxpipe.transforms.text.tokenize import TOKENS, export_compact_rows

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["LANGUAGES", "CustomStopWordsRemovingTransformer", "StopWordsRemovingTransformer", "default_stop_words"]

Language = Literal["english", "french", "german", "spanish", "dutch", "italian"]
LANGUAGES: tuple[str, ...] = ("english", "french", "german", "spanish", "dutch", "italian")
_LOCALE = "C.UTF-8"


@functools.cache
def _lower_table() -> dict[int, str]:
    return _one_to_one("lower")


def lower_invariant(text: str) -> str:
    """.NET's ``ToLowerInvariant``, one character to one."""
    return text.translate(_lower_table())


@functools.cache
def default_stop_words(language: str) -> frozenset[str]:
    """ML.NET's predefined stop words for ``language``, as written in its list."""
    text = importlib.resources.files(__package__).joinpath("stop_words", f"{language}.txt").read_text("utf-8")
    return frozenset(w for w in text.splitlines() if w)


class _StopWordsRemover(OneToOneStep, TrivialEstimator[TransformerT_co]):
    """What both removers share: the input check, the removal and the export."""

    onnx_min_opset = 14  # Reshape's allowzero

    def _stop_words(self) -> frozenset[str]:
        raise NotImplementedError

    def _check(self, schema: Schema) -> TensorType:
        return self._input_tensor(schema, lambda t: t.dtype is DType.STRING and t.rank == 1, "a vector of text tokens")

    def output_schema(self, input_schema: Schema) -> Schema:
        self._check(input_schema)
        return input_schema.with_columns(Column(self.output_column_name, TOKENS))

    def remove(self, tokens: Sequence[str]) -> list[str]:
        """One row's tokens without the stop words (and empty tokens)."""
        stop = self._stop_words()
        return [t for t in tokens if t and lower_invariant(t) not in stop]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        self._check(input_schema)
        values = columns[self.input_column_name]
        rows = values.reshape(n_rows, -1) if isinstance(values, np.ndarray) else values
        out = [np.array(self.remove([str(v) for v in np.asarray(r).tolist()]), dtype=object) for r in rows]
        return {self.output_column_name: out}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        from onnx import TensorProto

        self._check(input_schema)
        x = ctx.value(self.input_column_name)  # [N, C]
        empty = ctx.add_initializer(np.array("", dtype=object), "empty")
        # StringNormalizer takes [C] and refuses an empty tensor: one "" more, cut off after.
        (flat,) = ctx.add_node("Reshape", [x, ctx.add_initializer(np.array([-1], np.int64), "flat")])
        (padded,) = ctx.add_node(
            "Concat", [flat, ctx.add_initializer(np.array([""], dtype=object), "one_empty")], axis=0
        )
        (lowered,) = ctx.add_node("StringNormalizer", [padded], case_change_action="LOWER", locale=_LOCALE)
        (lowered,) = ctx.add_node(
            "Slice",
            [
                lowered,
                ctx.add_initializer(np.array([0], np.int64), "start"),
                ctx.add_initializer(np.array([-1], np.int64), "end"),
            ],
        )
        (lowered,) = ctx.add_node("Reshape", [lowered, ctx.add_node("Shape", [x])[0]], allowzero=1)  # [N, 0] too
        words = sorted(self._stop_words())
        (drop,) = ctx.add_node(
            "LabelEncoder",
            [lowered],
            domain="ai.onnx.ml",
            keys_strings=["", *words],
            values_int64s=[0] * (len(words) + 1),
            default_int64=1,
        )  # 1: kept
        (keep,) = ctx.add_node("Cast", [drop], to=TensorProto.BOOL)
        ctx.set_padded_value(self.output_column_name, export_compact_rows(ctx, x, keep, empty), "")


@component("remove_default_stop_words", catalog="transforms.text")
class StopWordsRemovingTransformer(_StopWordsRemover["StopWordsRemovingTransformer"]):
    """Remove the predefined stop words of ``language`` (``"english"``, ``"french"``,
    ``"german"``, ``"spanish"``, ``"dutch"``, ``"italian"``) from a vector of text tokens,
    case-insensitively (ML.NET's ``RemoveDefaultStopWords``). Exportable to ONNX."""

    def __init__(
        self, output_column_name: str, input_column_name: str | None = None, *, language: Language = "english"
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.language = _validation.choice(language, "language", self.step_name, LANGUAGES)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.language)

    def _stop_words(self) -> frozenset[str]:
        return default_stop_words(self.language)


@component("remove_stop_words", catalog="transforms.text")
class CustomStopWordsRemovingTransformer(_StopWordsRemover["CustomStopWordsRemovingTransformer"]):
    """Remove the given ``stopwords`` from a vector of text tokens, case-insensitively (ML.NET's
    ``RemoveStopWords``). Exportable to ONNX."""

    def __init__(
        self, output_column_name: str, input_column_name: str | None = None, *, stopwords: Sequence[str] = ()
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        if isinstance(stopwords, str) or not isinstance(stopwords, Sequence):
            raise _validation.invalid(self.step_name, "stopwords", "a sequence of words", stopwords)
        words = tuple(stopwords)
        if not words or not all(isinstance(w, str) for w in words):
            raise _validation.invalid(self.step_name, "stopwords", "a non-empty sequence of words", stopwords)
        self.stopwords: tuple[str, ...] = words
        self._lowered = frozenset(lower_invariant(w) for w in words if w)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.stopwords)

    def _stop_words(self) -> frozenset[str]:
        return self._lowered
