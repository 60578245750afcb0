"""Text transforms (``ctx.transforms.text``), with ML.NET's names and defaults.

``normalize_text`` is ML.NET's TextNormalizingEstimator: change the case, remove diacritical
marks, punctuation and digits of every value of a text column (scalar or vector). Character
classes are Unicode's, as .NET's: punctuation is the ``P*`` categories (``char.IsPunctuation``),
digits ``Nd`` (``char.IsDigit``), diacritics the non-spacing marks ``Mn`` left by canonical
decomposition (NFD), after which the text is recomposed (NFC). Case changes map one character to
one character (.NET's ``ToLowerInvariant`` / ``ToUpperInvariant``): ``ß`` stays ``ß`` in upper case.

Export: like ML.NET, only a case change is exportable (diacritics, punctuation and digits all
kept): ONNX's ``StringNormalizer`` has no character-class removal. The export runs in the
``C.UTF-8`` locale, which every Linux has (``en_US.UTF-8``, ONNX Runtime's default, often is not
generated).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep, elementwise

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["CaseMode", "TextNormalizingTransformer"]

CaseMode = Literal["lower", "upper", "none"]
_CASE_MODES = ("lower", "upper", "none")
_LOCALE = "C.UTF-8"


def _one_to_one(change: str) -> dict[int, str]:
    """A translation table for a case change that keeps one character per character."""
    table: dict[int, str] = {}
    for code in range(0x10000):
        c = chr(code)
        changed = c.lower() if change == "lower" else c.upper()
        if changed != c and len(changed) == 1:
            table[code] = changed
    return table


_TABLES: dict[str, dict[int, str]] = {}


@component("normalize_text", catalog="transforms.text")
class TextNormalizingTransformer(OneToOneStep, TrivialEstimator):
    """Change case (``case_mode``: ``"lower"``, ``"upper"`` or ``"none"``) and remove diacritical
    marks (unless ``keep_diacritics``), punctuation (unless ``keep_punctuations``) and digits
    (unless ``keep_numbers``) in a text column, scalar or vector (ML.NET's ``NormalizeText``).

    Exportable to ONNX when diacritics, punctuation and numbers are all kept (a case change only).
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        case_mode: CaseMode = "lower",
        keep_diacritics: bool = False,
        keep_punctuations: bool = True,
        keep_numbers: bool = True,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.case_mode = _validation.choice(case_mode, "case_mode", self.step_name, _CASE_MODES)
        self.keep_diacritics = _validation.boolean(keep_diacritics, "keep_diacritics", self.step_name)
        self.keep_punctuations = _validation.boolean(keep_punctuations, "keep_punctuations", self.step_name)
        self.keep_numbers = _validation.boolean(keep_numbers, "keep_numbers", self.step_name)

    def _params(self) -> tuple[object, ...]:
        return (
            *super()._params(),
            self.case_mode,
            self.keep_diacritics,
            self.keep_punctuations,
            self.keep_numbers,
        )

    onnx_unexportable_reason = (
        "ONNX's StringNormalizer only changes case; pass keep_diacritics=True, keep_punctuations=True and "
        "keep_numbers=True to export (ML.NET exports the same subset)"
    )

    def _check(self, schema: Schema) -> TensorType:
        return self._input_tensor(schema, lambda t: t.dtype is DType.STRING, "text")

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, TensorType(DType.STRING, ct.shape), slots))

    def normalize(self, text: str) -> str:
        """One value, normalized."""
        if not self.keep_diacritics:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
            text = unicodedata.normalize("NFC", text)
        if not (self.keep_punctuations and self.keep_numbers):
            text = "".join(
                c
                for c in text
                if (self.keep_punctuations or not unicodedata.category(c).startswith("P"))
                and (self.keep_numbers or unicodedata.category(c) != "Nd")
            )
        if self.case_mode != "none":
            table = _TABLES.get(self.case_mode)
            if table is None:
                table = _TABLES[self.case_mode] = _one_to_one(self.case_mode)
            text = text.translate(table)
        return text

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        self._check(input_schema)

        def normalized(flat: np.ndarray) -> np.ndarray:
            return np.array([self.normalize(str(v)) for v in flat.tolist()], dtype=object)

        return {self.output_column_name: elementwise(columns[self.input_column_name], normalized)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        self._check(input_schema)
        if not (self.keep_diacritics and self.keep_punctuations and self.keep_numbers):
            super().export_onnx(ctx, input_schema)  # raises, naming this step and why
        x = ctx.value(self.input_column_name)
        # StringNormalizer takes [C] or [1, C]: flatten every row's values, normalize, restore the shape.
        flat = ctx.add_node("Reshape", [x, ctx.add_initializer(np.array([-1], np.int64), "flat")])[0]
        action = {"lower": "LOWER", "upper": "UPPER", "none": "NONE"}[self.case_mode]
        (normalized,) = ctx.add_node("StringNormalizer", [flat], case_change_action=action, locale=_LOCALE)
        shape = ctx.add_node("Shape", [x])[0]
        ctx.set_value(self.output_column_name, ctx.add_node("Reshape", [normalized, shape])[0])
