"""ctx.transforms.text: ML.NET's NormalizeText semantics and its export subset."""

from __future__ import annotations

import pyarrow as pa
import pytest

import onnxpipe as op
from onnxpipe.errors import ColumnTypeError, ExportError, InvalidArgumentError

ctx = op.MLContext()


def _text(*values: str) -> op.DataView:
    return ctx.data.load_from_arrow(pa.table({"Text": pa.array(values)}))


def _normalized(data: op.DataView, **options: object) -> list[str]:
    step = ctx.transforms.text.normalize_text("Out", "Text", **options)
    return list(step.fit(data).transform(data).column("Out"))


def test_defaults_are_mlnets_lower_case_without_diacritics() -> None:
    data = _text("Héllo, Wörld 42!", "ÇA VA? naïve café", "")
    assert _normalized(data) == ["hello, world 42!", "ca va? naive cafe", ""]


def test_punctuation_and_digits_are_unicode_classes() -> None:
    data = _text("«Quote» — dash… ١٢٣ 42½ ¿qué?")  # Arabic-Indic digits are Nd, ½ is No: .NET's IsNumber takes both
    out = _normalized(data, keep_punctuations=False, keep_numbers=False, case_mode="none", keep_diacritics=True)
    assert out == ["Quote  dash   qué"]


def test_case_changes_keep_one_character_per_character() -> None:
    assert _normalized(_text("straße İ"), case_mode="upper", keep_diacritics=True) == ["STRAßE İ"]


def test_vector_columns_keep_their_shape() -> None:
    words = pa.FixedSizeListArray.from_arrays(pa.array(["Él", "Été", "A", "B"]), 2)
    data = ctx.data.load_from_arrow(pa.table({"Text": words}))
    out = ctx.transforms.text.normalize_text("Text").fit(data).transform(data).column("Text")
    assert [list(row) for row in out] == [["el", "ete"], ["a", "b"]]


def test_only_a_case_change_exports_and_the_error_says_why() -> None:
    data = _text("A")
    step = ctx.transforms.text.normalize_text("Out", "Text")
    with pytest.raises(
        ExportError, match=r"step 0 \(normalize_text\(Out <- Text\)\) cannot be exported.*keep_diacritics=True"
    ):
        ctx.model.convert_to_onnx(step, data)
    exported = ctx.model.convert_to_onnx(ctx.transforms.text.normalize_text("Out", "Text", keep_diacritics=True), data)
    assert [n.op_type for n in exported.graph.node].count("StringNormalizer") == 1


def test_bad_arguments_and_columns() -> None:
    with pytest.raises(InvalidArgumentError, match=r"case_mode must be one of 'lower', 'upper', 'none', got 'title'"):
        ctx.transforms.text.normalize_text("Out", case_mode="title")
    numbers = ctx.data.load_from_arrow(pa.table({"Text": pa.array([1.0])}))
    with pytest.raises(ColumnTypeError, match=r"input column 'Text' is float64; expected text"):
        ctx.transforms.text.normalize_text("Text").fit(numbers)
