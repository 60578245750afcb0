"""Tokenizers (``ctx.transforms.text``), with ML.NET's names, options and defaults.

* ``tokenize_into_words`` is ML.NET's WordTokenizingEstimator: every value of a text column
  (scalar or vector) is split on the separator characters (default: the space only), each piece
  is trimmed of spaces (``' '``, as ML.NET's ``TrimSpaces``) and empty pieces are dropped; a row's
  tokens, all its values' in order, make a variable-length text vector.
* ``tokenize_into_characters_as_keys`` is ML.NET's TokenizingByCharactersEstimator: every UTF-16
  code unit of the text becomes a key (``uint16``, 65535 keys: the key is the code, so NUL is the
  missing key 0 and a character outside the Basic Multilingual Plane is two surrogate keys). With
  ``use_marker_characters`` a row is wrapped in the markers 0x02 (start) and 0x03 (end). A
  scalar empty text gives no keys at all; a vector's non-empty values are joined by the unit
  separator 0x1F (before every value but the first, as ML.NET does) and the markers wrap the whole
  row, even an empty one. The key values are ML.NET's printable forms: ``<`` + the control
  picture (U+2400 + code) + ``>`` for the controls and the space, ``<␡>`` for 0x7F, the C1 names
  (``<PAD>``, ``<HOP>``, ...) for 0x80-0x9F, ``<LSEP>``/``<PSEP>``, the character itself otherwise
  (surrogates show as ML.NET writes them, ``\\u4X``).

Export. ONNX tensors are not ragged: a batch's token rows are padded at their end to the longest
one, with ``""`` for tokens and key 0 for characters (values these steps never end a row with),
and the export records it (:meth:`onnxpipe.export.ExportContext.set_padded_value`) so that
``apply_onnx_model`` gives back the exact rows. Words use ONNX Runtime's ``com.microsoft``
``Tokenizer`` with a regular expression that matches ML.NET's tokens, separators and trimming
included (RE2 works on code points: accents, CJK and emoji tokenize as in Python); the tokens of a
vector's values are moved together with ``TopK`` + ``GatherElements``. Characters use the
``Tokenizer`` in character mode and a ``LabelEncoder`` from each BMP character to its code, for a
scalar text column only; ONNX cannot split a character outside the BMP into its two UTF-16 keys
(such a character becomes the one key 0 in the export).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.errors import ExportError
from onnxpipe.schema import Column, DType, KeyType, KeyValues, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "CHARACTER_KEY_COUNT",
    "TokenizingByCharactersTransformer",
    "WordTokenizingTransformer",
    "character_key_values",
    "export_compact_rows",
    "export_non_empty",
    "export_rows",
]

_MS = "com.microsoft"
TOKENS = TensorType(DType.STRING, (None,))
CHARACTER_KEY_COUNT = 65535  # ML.NET's CharsCount = ushort.MaxValue
_START, _END, _UNIT_SEPARATOR = 0x02, 0x03, 0x1F


def _text_input(step: OneToOneStep, schema: Schema) -> TensorType:
    return step._input_tensor(schema, lambda t: t.dtype is DType.STRING, "text (a scalar or a vector of text)")


def _row_values(values: ColumnValues, n_rows: int) -> list[list[str]]:
    """Each row's text values, flat."""
    if isinstance(values, np.ndarray):
        return [[str(v) for v in r] for r in values.reshape(n_rows, -1).tolist()]
    return [[str(v) for v in np.asarray(r).reshape(-1).tolist()] for r in values]


def export_rows(ctx: ExportContext, values: str, like: str) -> str:
    """``values`` (``[N, ...]``, e.g. a contrib op's output, whose rank ONNX's shape inference
    does not know) as a string tensor ``[N, -1]``, ``N`` read from ``like``."""
    from onnx import TensorProto

    # A Cast to its own type: ONNX's shape inference knows no contrib op's output type, and some
    # ops' inference (LabelEncoder's) crashes on an input without one.
    (values,) = ctx.add_node("Cast", [values], to=TensorProto.STRING)
    (shape,) = ctx.add_node("Shape", [like])
    (rows,) = ctx.add_node("Gather", [shape, ctx.add_initializer(np.array([0], np.int64), "axis0")], axis=0)
    (target,) = ctx.add_node("Concat", [rows, ctx.add_initializer(np.array([-1], np.int64), "rest")], axis=0)
    return ctx.add_node("Reshape", [values, target])[0]


def _export_width(ctx: ExportContext, values: str) -> tuple[str, str]:
    """The second dimension of ``values``, as a ``[1]`` tensor and as a scalar (int64)."""
    (shape,) = ctx.add_node("Shape", [values])
    (width1,) = ctx.add_node("Gather", [shape, ctx.add_initializer(np.array([1], np.int64), "axis1")], axis=0)
    (width,) = ctx.add_node("Gather", [shape, ctx.add_initializer(np.array(1, np.int64), "axis1")], axis=0)
    return width1, width


def export_compact_rows(ctx: ExportContext, values: str, keep: str, pad: str) -> str:
    """``values`` ``[N, W]`` with each row's kept elements (``keep``, bool ``[N, W]``) moved to
    its front, in order, and the rest set to the initializer ``pad`` (a scalar)."""
    zero = ctx.add_initializer(np.array(0, np.int64), "zero")
    one = ctx.add_initializer(np.array(1, np.int64), "one")
    (width1, width) = _export_width(ctx, values)
    (positions,) = ctx.add_node("Range", [zero, width, one])
    (later,) = ctx.add_node("Add", [positions, width])
    (order_key,) = ctx.add_node("Where", [keep, positions, later])  # kept first, each in its place
    _, index = ctx.add_node("TopK", [order_key, width1], 2, axis=1, largest=0, sorted=1)
    (moved,) = ctx.add_node("GatherElements", [values, index], axis=1)
    (moved_keep,) = ctx.add_node("GatherElements", [keep, index], axis=1)
    return ctx.add_node("Where", [moved_keep, moved, pad])[0]


# --------------------------------------------------------------------------------------------
# tokenize_into_words


@component("tokenize_into_words", catalog="transforms.text")
class WordTokenizingTransformer(OneToOneStep, TrivialEstimator["WordTokenizingTransformer"]):
    """Split text (a scalar or a vector of text) into words on the ``separators`` characters
    (default: the space), trimming spaces and dropping empty tokens (ML.NET's
    ``TokenizeIntoWords``). The output is a variable-length vector of text. Exportable to ONNX."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        separators: Sequence[str] = (" ",),
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        if isinstance(separators, str) or not isinstance(separators, Sequence):
            raise _validation.invalid(self.step_name, "separators", "a sequence of single characters", separators)
        chars = tuple(separators)
        if not chars or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise _validation.invalid(
                self.step_name, "separators", "a non-empty sequence of single characters", separators
            )
        self.separators: tuple[str, ...] = chars
        self._splitter = re.compile("[" + "".join(re.escape(c) for c in chars) + "]")

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.separators)

    def output_schema(self, input_schema: Schema) -> Schema:
        _text_input(self, input_schema)
        return input_schema.with_columns(Column(self.output_column_name, TOKENS))

    def tokenize(self, text: str) -> list[str]:
        """One value's tokens."""
        pieces = text.split(self.separators[0]) if len(self.separators) == 1 else self._splitter.split(text)
        return [t for t in (p.strip(" ") for p in pieces) if t]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        _text_input(self, input_schema)
        rows = _row_values(columns[self.input_column_name], n_rows)
        out = [np.array([t for v in row for t in self.tokenize(v)], dtype=object) for row in rows]
        return {self.output_column_name: out}

    def _token_pattern(self) -> str:
        """An RE2 expression whose matches are exactly this step's tokens."""

        def cls(chars: Sequence[str]) -> str:
            return "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"

        if " " in self.separators:
            return cls(self.separators) + "+"
        # A token starts and ends with neither a separator nor a space (ML.NET trims spaces).
        inner, edge = cls(self.separators), cls((*self.separators, " "))
        return f"{edge}(?:{inner}*{edge})?"

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        _text_input(self, input_schema)
        x = ctx.value(self.input_column_name)
        (flat,) = ctx.add_node("Flatten", [x], axis=1)  # [N, C]: one value or a vector's values per row
        ctx.require_opset(_MS, 1)
        (tokens,) = ctx.add_node(
            "Tokenizer",
            [flat],
            domain=_MS,
            mark=0,
            mincharnum=1,
            pad_value="",
            tokenexp=self._token_pattern(),
        )  # [N, C, T], each value's tokens padded with ""
        joined = export_rows(ctx, tokens, flat)  # [N, C*T]
        ct = input_schema[self.input_column_name].type
        if isinstance(ct, TensorType) and ct.shape not in ((), (1,)):  # pads between the values' tokens
            empty = ctx.add_initializer(np.array("", dtype=object), "empty")
            joined = export_compact_rows(ctx, joined, export_non_empty(ctx, joined), empty)
        ctx.set_padded_value(self.output_column_name, joined, "")


def export_non_empty(ctx: ExportContext, tokens: str) -> str:
    """Bool: where ``tokens`` are not ``""`` (a LabelEncoder: Equal takes strings from opset 19 only)."""
    from onnx import TensorProto

    (flag,) = ctx.add_node(
        "LabelEncoder", [tokens], domain="ai.onnx.ml", keys_strings=[""], values_int64s=[0], default_int64=1
    )
    return ctx.add_node("Cast", [flag], to=TensorProto.BOOL)[0]


# --------------------------------------------------------------------------------------------
# tokenize_into_characters_as_keys


@functools.cache
def character_key_values() -> KeyValues:
    """The KeyValues of ``tokenize_into_characters_as_keys``: key ``k`` (1..65535) is character ``k``."""
    return KeyValues.characters()


@functools.cache
def _character_key_type() -> KeyType:
    return KeyType(CHARACTER_KEY_COUNT, character_key_values(), shape=(None,), dtype=DType.UINT16)


def _utf16(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype="<u2")


@component("tokenize_into_characters_as_keys", catalog="transforms.text")
class TokenizingByCharactersTransformer(OneToOneStep, TrivialEstimator["TokenizingByCharactersTransformer"]):
    """Split text into characters, as a variable-length vector of ``uint16`` keys (the UTF-16
    code units; 65535 keys whose values are the characters' printable forms), wrapped in the
    markers 0x02 and 0x03 with ``use_marker_characters`` (ML.NET's
    ``TokenizeIntoCharactersAsKeys``). Exportable to ONNX for a scalar text column."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        use_marker_characters: bool = True,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.use_marker_characters = _validation.boolean(use_marker_characters, "use_marker_characters", self.step_name)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.use_marker_characters)

    def output_schema(self, input_schema: Schema) -> Schema:
        _text_input(self, input_schema)
        return input_schema.with_columns(Column(self.output_column_name, _character_key_type()))

    def characters(self, values: Sequence[str], scalar: bool) -> np.ndarray:
        """One row's keys (``values``: the row's text values, one for a scalar column)."""
        marks = self.use_marker_characters
        if scalar:
            (text,) = values
            if not text:
                return np.zeros(0, np.uint16)
            codes = _utf16(text)
            return np.concatenate([[_START], codes, [_END]]).astype(np.uint16) if marks else codes.astype(np.uint16)
        parts: list[np.ndarray] = [np.array([_START], np.uint16)] if marks else []
        for i, text in enumerate(values):
            if not text:
                continue
            if i > 0:  # ML.NET: before every non-empty value but the first one of the vector
                parts.append(np.array([_UNIT_SEPARATOR], np.uint16))
            parts.append(_utf16(text).astype(np.uint16))
        if marks:
            parts.append(np.array([_END], np.uint16))
        return np.concatenate(parts) if parts else np.zeros(0, np.uint16)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        ct = _text_input(self, input_schema)
        scalar = ct.shape == ()
        rows = _row_values(columns[self.input_column_name], n_rows)
        return {self.output_column_name: [self.characters(r, scalar) for r in rows]}

    onnx_unexportable_reason = (
        "its ONNX export takes a scalar text column only: ONNX cannot join a vector's values with ML.NET's "
        "unit separators; concatenate or pick one value first"
    )

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        from onnx import TensorProto

        ct = _text_input(self, input_schema)
        if ct.shape != ():
            raise ExportError(f"{self.step_name} cannot be exported to ONNX: {self.onnx_unexportable_reason}")
        x = ctx.value(self.input_column_name)  # [N, 1]
        ctx.require_opset(_MS, 1)
        (chars,) = ctx.add_node(
            "Tokenizer", [x], domain=_MS, mark=0, mincharnum=1, pad_value="", separators=[""]
        )  # [N, 1, T], padded with ""
        chars = export_rows(ctx, chars, x)  # [N, T]
        # Every BMP character but the surrogates (not text on their own) -> its code; "" (padding)
        # -> -1; anything else (a character beyond the BMP) -> 0, the missing key.
        codes = [c for c in range(CHARACTER_KEY_COUNT) if not 0xD800 <= c <= 0xDFFF]
        (code,) = ctx.add_node(
            "LabelEncoder",
            [chars],
            domain="ai.onnx.ml",
            keys_strings=["", *(chr(c) for c in codes)],
            values_int64s=[-1, *codes],
            default_int64=0,
        )
        zero = ctx.add_initializer(np.array(0, np.int64), "zero")
        (is_char,) = ctx.add_node("Greater", [code, ctx.add_initializer(np.array(-1, np.int64), "minus_one")])
        (keys,) = ctx.add_node("Max", [code, zero])  # padding -> 0
        if self.use_marker_characters:
            (count,) = ctx.add_node(
                "ReduceSum",
                [
                    ctx.add_node("Cast", [is_char], to=TensorProto.INT64)[0],
                    ctx.add_initializer(np.array([1], np.int64), "axis"),
                ],
                keepdims=1,
            )  # [N, 1]: characters per row
            pads = ctx.add_initializer(np.array([0, 1, 0, 1], np.int64), "pads")
            (framed,) = ctx.add_node("Pad", [keys, pads, zero])  # [N, T + 2]: room for the markers
            one = ctx.add_initializer(np.array(1, np.int64), "one")
            (positions,) = ctx.add_node(
                "Range", [zero, _export_width(ctx, framed)[1], one]
            )  # [T + 2], broadcast against [N, 1]
            (nonempty,) = ctx.add_node("Greater", [count, zero])
            (at_start,) = ctx.add_node("Equal", [positions, zero])
            (after_end,) = ctx.add_node("Add", [count, one])
            (at_end,) = ctx.add_node("Equal", [positions, after_end])
            (start,) = ctx.add_node("And", [at_start, nonempty])
            (end,) = ctx.add_node("And", [at_end, nonempty])
            (with_end,) = ctx.add_node(
                "Where", [end, ctx.add_initializer(np.array(_END, np.int64), "end_marker"), framed]
            )
            (keys,) = ctx.add_node(
                "Where", [start, ctx.add_initializer(np.array(_START, np.int64), "start_marker"), with_end]
            )
        (out,) = ctx.add_node("Cast", [keys], to=TensorProto.UINT16)
        ctx.set_padded_value(self.output_column_name, out, 0)
