"""``featurize_text`` (``ctx.transforms.text``): ML.NET's TextFeaturizingEstimator in one step.

Fit order (ML.NET's ``TextFeaturizingEstimator.Fit``): the input columns' values make one text
vector per row (a single scalar column stays scalar); ``normalize_text`` (when any of its options
changes something); ``tokenize_into_words`` on spaces; stop-word removal; the word n-gram bag
(words to keys in order of first occurrence, then ``produce_ngrams``); the character n-gram bag
over ``tokenize_into_characters_as_keys`` of the normalized text (of the remaining tokens when
stop words are removed), markers 0x02/0x03 included; each block Lp-normalized; the blocks
concatenated, characters first. With both blocks the slot names are ``Char.<gram>`` and
``Word.<gram>`` (``Char.<␂>|a|b``, ``Word.good|day``), with one block the grams alone.

The output is a sparse float32 vector (:class:`~onnxpipe.schema.SparseVectorType`), a dense
``[N, size]`` tensor in ONNX. Export works when every sub-step exports (as in ML.NET): one scalar
text column, a case change only (``keep_diacritics``, ``keep_punctuations`` and ``keep_numbers``
all True), no stop words, no tokens output, no character outside the BMP in the character
n-grams; it is ``StringNormalizer`` → ``Tokenizer`` → ``TfIdfVectorizer`` per block → the norm →
``Concat``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues, from_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, ExportError, InvalidArgumentError
from onnxpipe.schema import Column, DType, Schema, SparseVectorType, TensorType
from onnxpipe.transforms.text._ngram_engine import (
    WEIGHTINGS,
    NgramDictionaryBuilder,
    NgramTrie,
    Weighting,
    apply_weighting,
    ngram_limits,
    ngram_patterns,
    slot_names,
)
from onnxpipe.transforms.text.ngrams import TermDictionary, check_ngram_options, export_tfidf, map_terms
from onnxpipe.transforms.text.normalize import CaseMode, TextNormalizingTransformer
from onnxpipe.transforms.text.tokenize import TokenizingByCharactersTransformer, character_key_values

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["NgramOptions", "TextFeaturizingEstimator", "TextFeaturizingTransformer"]

_NORMS = ("l2", "l1", "infinity", "none")
_MIN_SCALE = 1e-8  # ML.NET's LpNorm: a row scaled by less is left as it is


class NgramOptions(NamedTuple):
    """One block's n-gram options (ML.NET's ``WordBagEstimator.Options``)."""

    ngram_length: int = 2
    skip_length: int = 0
    use_all_lengths: bool = True
    maximum_ngrams_count: int = 10_000_000
    weighting: Weighting = "tf"


_OptionsTuple = tuple[int, int, bool, int, str]  # how a saved state holds NgramOptions
WORD_DEFAULT = NgramOptions()
CHAR_DEFAULT = NgramOptions(ngram_length=3, use_all_lengths=False)


def _options(value: object, parameter: str, who: str) -> NgramOptions | None:
    if value is None:
        return None
    if not isinstance(value, tuple) or len(value) != 5:
        raise _validation.invalid(who, parameter, "NgramOptions(...) or None", value)
    n, skip, all_lengths, maximum, weighting = value
    n, skip, all_lengths = check_ngram_options(who, n, skip, all_lengths)
    maximum = _validation.integer(maximum, f"{parameter}.maximum_ngrams_count", who, low=1)
    weighting = _validation.choice(weighting, f"{parameter}.weighting", who, WEIGHTINGS)
    return NgramOptions(n, skip, all_lengths, maximum, cast("Weighting", weighting))


def _stop_words(value: object, who: str) -> str | tuple[str, ...] | None:
    from onnxpipe.transforms.text.stop_words import LANGUAGES

    if value is None:
        return None
    if isinstance(value, str):
        return _validation.choice(value, "stop_words", who, LANGUAGES)
    if isinstance(value, Sequence) and all(isinstance(w, str) for w in value):
        return tuple(value)
    raise _validation.invalid(who, "stop_words", "a language, a sequence of words, or None", value)


class _Settings:
    """The options the estimator and its transformer share."""

    output_column_name: str
    input_column_name: str | tuple[str, ...]
    inputs: tuple[str, ...]
    case_mode: CaseMode
    keep_diacritics: bool
    keep_punctuations: bool
    keep_numbers: bool
    stop_words: str | tuple[str, ...] | None
    word_feature_extractor: NgramOptions | None
    char_feature_extractor: NgramOptions | None
    norm: str
    output_tokens_column_name: str | None
    catalog_name: str

    def _set(
        self,
        output_column_name: str,
        input_column_name: str | Sequence[str] | None,
        case_mode: str,
        keep_diacritics: bool,
        keep_punctuations: bool,
        keep_numbers: bool,
        stop_words: object,
        word_feature_extractor: object,
        char_feature_extractor: object,
        norm: str,
        output_tokens_column_name: str | None,
    ) -> None:
        who = "featurize_text"
        self.output_column_name = _validation.column_name(output_column_name, "output_column_name", who)
        if input_column_name is None:
            inputs: tuple[str, ...] = (self.output_column_name,)
        elif isinstance(input_column_name, str):
            inputs = (input_column_name,)
        else:
            inputs = _validation.names(input_column_name, "input_column_name", who)
            if not inputs:
                raise InvalidArgumentError(f"{who}: input_column_name names no column")
        self.inputs = inputs
        self.input_column_name = inputs[0] if len(inputs) == 1 else inputs
        who = self.step_name
        self._normalizer = TextNormalizingTransformer(
            "n",
            case_mode=cast("CaseMode", case_mode),
            keep_diacritics=keep_diacritics,
            keep_punctuations=keep_punctuations,
            keep_numbers=keep_numbers,
        )
        self.case_mode = cast("CaseMode", self._normalizer.case_mode)
        self.keep_diacritics = self._normalizer.keep_diacritics
        self.keep_punctuations = self._normalizer.keep_punctuations
        self.keep_numbers = self._normalizer.keep_numbers
        self.stop_words = _stop_words(stop_words, who)
        self.word_feature_extractor = _options(word_feature_extractor, "word_feature_extractor", who)
        self.char_feature_extractor = _options(char_feature_extractor, "char_feature_extractor", who)
        self.norm = _validation.choice(norm, "norm", who, _NORMS)
        self.output_tokens_column_name = _validation.column_name(
            output_tokens_column_name, "output_tokens_column_name", who, optional="no tokens output"
        )
        if self.word_feature_extractor is None and self.char_feature_extractor is None:
            raise InvalidArgumentError(f"{who}: word_feature_extractor and char_feature_extractor are both None")

    @property
    def step_name(self) -> str:
        source = ", ".join(self.inputs)
        if self.inputs == (self.output_column_name,):
            return f"{self.catalog_name}({self.output_column_name})"
        return f"{self.catalog_name}({self.output_column_name} <- {source})"

    def _settings(self) -> tuple[object, ...]:
        return (
            self.output_column_name,
            self.inputs,
            self.case_mode,
            self.keep_diacritics,
            self.keep_punctuations,
            self.keep_numbers,
            self.stop_words,
            self.word_feature_extractor,
            self.char_feature_extractor,
            self.norm,
            self.output_tokens_column_name,
        )

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return list(self.inputs)

    def _check(self, schema: Schema) -> bool:
        """Whether each row is one scalar text (else a vector of texts, ML.NET's InitialConcat)."""
        for name in self.inputs:
            ct = schema.require(name, self.step_name).type
            if not isinstance(ct, TensorType) or ct.dtype is not DType.STRING:
                raise ColumnTypeError(f"{self.step_name}: input column {name!r} is {ct}; expected text")
        return len(self.inputs) == 1 and schema[self.inputs[0]].type == TensorType(DType.STRING, ())

    @property
    def _normalizes(self) -> bool:
        return self.case_mode != "none" or not (self.keep_diacritics and self.keep_punctuations and self.keep_numbers)

    def _row_texts(self, columns: Mapping[str, ColumnValues], n_rows: int) -> list[list[str]]:
        rows: list[list[str]] = [[] for _ in range(n_rows)]
        for name in self.inputs:
            values = columns[name]
            parts = (
                values.reshape(n_rows, -1).tolist()
                if isinstance(values, np.ndarray)
                else [np.asarray(r).reshape(-1).tolist() for r in values]
            )
            for row, part in zip(rows, parts, strict=True):
                row.extend(str(v) for v in part)
        if self._normalizes:
            normalize = self._normalizer.normalize
            rows = [[normalize(v) for v in row] for row in rows]
        return rows

    def _tokens(self, rows: list[list[str]], stop: frozenset[str] | None) -> list[list[str]]:
        out = [[t for v in row for t in v.split(" ") if t] for row in rows]
        if stop is not None:
            from onnxpipe.transforms.text.stop_words import lower_invariant

            out = [[t for t in row if lower_invariant(t) not in stop] for row in out]
        return out

    def _char_keys(self, rows: list[list[str]], tokens: list[list[str]], scalar: bool) -> tuple[np.ndarray, np.ndarray]:
        chars = _CHARS.characters
        # With stop words the char n-grams read the remaining tokens (a vector), else the text.
        keyed = [chars(t, False) for t in tokens] if self.stop_words is not None else [chars(r, scalar) for r in rows]
        lengths = np.fromiter((len(k) for k in keyed), dtype=np.int64, count=len(keyed))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(keyed).astype(np.int64) if keyed and offsets[-1] else np.zeros(0, np.int64)
        return flat, offsets


_CHARS = TokenizingByCharactersTransformer("chars")


def _resolved_stop_words(stop_words: str | tuple[str, ...] | None) -> frozenset[str] | None:
    from onnxpipe.transforms.text.stop_words import default_stop_words, lower_invariant

    if stop_words is None:
        return None
    if isinstance(stop_words, str):
        return default_stop_words(stop_words)
    return frozenset(lower_invariant(w) for w in stop_words)


def _flat_offsets(token_rows: list[list[str]]) -> tuple[list[str], np.ndarray]:
    lengths = np.fromiter((len(r) for r in token_rows), dtype=np.int64, count=len(token_rows))
    return [t for r in token_rows for t in r], np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@component("featurize_text", catalog="transforms.text")
class TextFeaturizingEstimator(_Settings, Estimator["TextFeaturizingTransformer"]):
    """Text → normalized bags of word n-grams and character n-grams (ML.NET's ``FeaturizeText``).

    ``case_mode``, ``keep_diacritics``, ``keep_punctuations``, ``keep_numbers``: as
    ``normalize_text``. ``stop_words``: None, a language (``"english"``, ...: ML.NET's list) or
    your own words. ``word_feature_extractor`` / ``char_feature_extractor``:
    :class:`NgramOptions` of each block, or None to leave it out (defaults: word 1-2-grams,
    character trigrams, counts). ``norm``: ``"l2"``, ``"l1"``, ``"infinity"`` or ``"none"``, per
    block. ``output_tokens_column_name``: also output the tokens (after normalization and stop
    words). The output is a sparse float32 vector; see the module for the export's conditions.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | Sequence[str] | None = None,
        *,
        case_mode: CaseMode = "lower",
        keep_diacritics: bool = False,
        keep_punctuations: bool = True,
        keep_numbers: bool = True,
        stop_words: str | Sequence[str] | None = None,
        word_feature_extractor: NgramOptions | _OptionsTuple | None = WORD_DEFAULT,
        char_feature_extractor: NgramOptions | _OptionsTuple | None = CHAR_DEFAULT,
        norm: str = "l2",
        output_tokens_column_name: str | None = None,
    ) -> None:
        self._set(
            output_column_name,
            input_column_name,
            case_mode,
            keep_diacritics,
            keep_punctuations,
            keep_numbers,
            stop_words,
            word_feature_extractor,
            char_feature_extractor,
            norm,
            output_tokens_column_name,
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, _Settings) and other._settings() == self._settings()

    def __hash__(self) -> int:
        return hash(self._settings())

    def output_schema(self, input_schema: Schema) -> Schema:
        self._check(input_schema)
        columns = [Column(self.output_column_name, TensorType(DType.FLOAT32, (None,)))]
        if self.output_tokens_column_name is not None:
            columns.append(Column(self.output_tokens_column_name, TensorType(DType.STRING, (None,))))
        return input_schema.with_columns(*columns)

    def fit(self, data: DataView) -> TextFeaturizingTransformer:
        scalar = self._check(data.schema)
        stop = _resolved_stop_words(self.stop_words)
        word, char = self.word_feature_extractor, self.char_feature_extractor
        terms = TermDictionary(word.maximum_ngrams_count) if word else None

        def builder(o: NgramOptions | None) -> NgramDictionaryBuilder | None:
            if o is None:
                return None
            limits = ngram_limits(o.ngram_length, o.use_all_lengths, o.maximum_ngrams_count)
            return NgramDictionaryBuilder(o.ngram_length, o.skip_length, limits, o.weighting != "tf")

        words, chars = builder(word), builder(char)
        for batch in data.batches():
            columns = {n: from_arrow(batch.column(n), data.schema[n].type) for n in self.inputs}
            rows = self._row_texts(columns, batch.num_rows)
            tokens = self._tokens(rows, stop) if (words or stop is not None) else []
            if words is not None and terms is not None:
                flat_tokens, offsets = _flat_offsets(tokens)
                words.add(terms.learn(flat_tokens), offsets)
            if chars is not None:
                chars.add(*self._char_keys(rows, tokens, scalar))
        empty = (np.zeros(0, np.uint32), np.zeros(0, np.uint8), np.zeros(0, np.float64))
        word_dict = words.result() if words is not None else empty
        char_dict = chars.result() if chars is not None else empty
        return TextFeaturizingTransformer(
            self.output_column_name,
            self.input_column_name,
            np.array(list(terms.index) if terms else [], dtype=object),
            *word_dict,
            *char_dict,
            case_mode=self.case_mode,
            keep_diacritics=self.keep_diacritics,
            keep_punctuations=self.keep_punctuations,
            keep_numbers=self.keep_numbers,
            stop_words=self.stop_words,
            word_feature_extractor=self.word_feature_extractor,
            char_feature_extractor=self.char_feature_extractor,
            norm=self.norm,
            output_tokens_column_name=self.output_tokens_column_name,
        )


def _frozen(a: np.ndarray, dtype: Any) -> np.ndarray:
    out = np.array(a, dtype=dtype).reshape(-1)
    out.flags.writeable = False
    return out


def _lp_normalize(m: Any, norm: str) -> Any:
    """Each row divided by its norm (ML.NET's LpNorm: a zero norm or a factor under 1e-8 leaves it)."""
    if norm == "none" or m.shape[1] == 0:
        return m
    data = m.data.astype(np.float64)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    if norm == "l2":
        d = np.sqrt(np.bincount(rows, data * data, minlength=m.shape[0]))
    elif norm == "l1":
        d = np.bincount(rows, np.abs(data), minlength=m.shape[0])
    else:
        d = np.zeros(m.shape[0])
        np.maximum.at(d, rows, np.abs(data))
    with np.errstate(divide="ignore"):
        factor = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 1.0)
    factor = np.where(factor < _MIN_SCALE, 1.0, factor)
    out = m.copy()
    out.data = (data * factor[rows]).astype(np.float32)
    return out


@component("featurize_text")
class TextFeaturizingTransformer(_Settings, Transformer):
    """A fitted ``featurize_text``: ``terms`` (the words behind the word keys), the word n-gram
    dictionary (``word_ngrams``, ``word_lengths``, ``word_idf``) and the character one
    (``char_ngrams``: UTF-16 codes, ``char_lengths``, ``char_idf``)."""

    accepts_sparse = False

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | Sequence[str] | None,
        terms: np.ndarray,
        word_ngrams: np.ndarray,
        word_lengths: np.ndarray,
        word_idf: np.ndarray,
        char_ngrams: np.ndarray,
        char_lengths: np.ndarray,
        char_idf: np.ndarray,
        *,
        case_mode: CaseMode = "lower",
        keep_diacritics: bool = False,
        keep_punctuations: bool = True,
        keep_numbers: bool = True,
        stop_words: str | Sequence[str] | None = None,
        word_feature_extractor: NgramOptions | _OptionsTuple | None = WORD_DEFAULT,
        char_feature_extractor: NgramOptions | _OptionsTuple | None = CHAR_DEFAULT,
        norm: str = "l2",
        output_tokens_column_name: str | None = None,
    ) -> None:
        self._set(
            output_column_name,
            input_column_name,
            case_mode,
            keep_diacritics,
            keep_punctuations,
            keep_numbers,
            stop_words,
            word_feature_extractor,
            char_feature_extractor,
            norm,
            output_tokens_column_name,
        )
        self.terms = _frozen(np.asarray(terms, dtype=object), object)
        self.word_ngrams = _frozen(word_ngrams, np.uint32)
        self.word_lengths = _frozen(word_lengths, np.uint8)
        self.word_idf = _frozen(word_idf, np.float64)
        self.char_ngrams = _frozen(char_ngrams, np.uint32)
        self.char_lengths = _frozen(char_lengths, np.uint8)
        self.char_idf = _frozen(char_idf, np.float64)
        for lengths, idf, items in (
            (self.word_lengths, self.word_idf, self.word_ngrams),
            (self.char_lengths, self.char_idf, self.char_ngrams),
        ):
            if len(idf) != len(lengths) or int(lengths.astype(np.int64).sum()) != len(items):
                raise InvalidArgumentError(f"{self.step_name}: an n-gram dictionary is inconsistent")
        self._stop = _resolved_stop_words(self.stop_words)
        self._tries: dict[str, NgramTrie] = {}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, TextFeaturizingTransformer):
            return False
        arrays = ("terms", "word_ngrams", "word_lengths", "word_idf", "char_ngrams", "char_lengths", "char_idf")
        return other._settings() == self._settings() and all(
            np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays
        )

    def __hash__(self) -> int:
        return hash((self._settings(), len(self.word_lengths), len(self.char_lengths)))

    @property
    def sizes(self) -> tuple[int, int]:
        """The char block's and the word block's slot counts."""
        return len(self.char_lengths), len(self.word_lengths)

    def _slot_names(self) -> tuple[str, ...]:
        word = slot_names(self.word_ngrams, self.word_lengths, self.terms.tolist())
        char = slot_names(self.char_ngrams, self.char_lengths, character_key_values().texts)
        both = self.word_feature_extractor is not None and self.char_feature_extractor is not None
        if both:
            return tuple("Char." + s for s in char) + tuple("Word." + s for s in word)
        return char + word

    def output_schema(self, input_schema: Schema) -> Schema:
        self._check(input_schema)
        size = sum(self.sizes)
        columns = [Column(self.output_column_name, SparseVectorType(DType.FLOAT32, size), self._slot_names())]
        if self.output_tokens_column_name is not None:
            columns.append(Column(self.output_tokens_column_name, TensorType(DType.STRING, (None,))))
        return input_schema.with_columns(*columns)

    def _bag(self, which: str, flat: np.ndarray, offsets: np.ndarray) -> Any:
        options = self.word_feature_extractor if which == "word" else self.char_feature_extractor
        assert options is not None
        ngrams, lengths, idf = (
            (self.word_ngrams, self.word_lengths, self.word_idf)
            if which == "word"
            else (self.char_ngrams, self.char_lengths, self.char_idf)
        )
        trie = self._tries.get(which)
        if trie is None:
            trie = self._tries[which] = NgramTrie(ngrams, lengths)
        counts = trie.counts(flat, offsets, ngram_patterns(options.ngram_length, options.skip_length), len(lengths))
        return _lp_normalize(apply_weighting(counts, options.weighting, idf), self.norm)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        from scipy import sparse

        scalar = self._check(input_schema)
        rows = self._row_texts(columns, n_rows)
        need_tokens = (
            self.word_feature_extractor is not None
            or self._stop is not None
            or self.output_tokens_column_name is not None
        )
        tokens = self._tokens(rows, self._stop) if need_tokens else []
        blocks = []
        if self.char_feature_extractor is not None:
            blocks.append(self._bag("char", *self._char_keys(rows, tokens, scalar)))
        if self.word_feature_extractor is not None:
            flat_tokens, offsets = _flat_offsets(tokens)
            blocks.append(self._bag("word", map_terms(self.terms, flat_tokens), offsets))
        out: dict[str, ColumnValues] = {
            self.output_column_name: blocks[0] if len(blocks) == 1 else sparse.hstack(blocks, format="csr")
        }
        if self.output_tokens_column_name is not None:
            out[self.output_tokens_column_name] = [np.array(t, dtype=object) for t in tokens]
        return out

    def _export_problem(self, input_schema: Schema) -> str | None:
        if not self._check(input_schema):
            return "only one scalar text column exports (ONNX cannot join several texts as ML.NET does)"
        if not (self.keep_diacritics and self.keep_punctuations and self.keep_numbers):
            off = [n for n in ("keep_diacritics", "keep_punctuations", "keep_numbers") if not getattr(self, n)]
            return (
                f"{', '.join(off)}=False: ONNX's StringNormalizer only changes case (ML.NET exports the same subset); "
                "pass keep_diacritics=True, keep_punctuations=True and keep_numbers=True"
            )
        if self.stop_words is not None:
            return "stop_words: the character n-grams of the remaining tokens have no ONNX form"
        if self.output_tokens_column_name is not None:
            return "output_tokens_column_name: the tokens output has no ONNX form here"
        for o, lengths, name in (
            (self.word_feature_extractor, self.word_lengths, "word"),
            (self.char_feature_extractor, self.char_lengths, "char"),
        ):
            if o is not None and not len(lengths):
                return f"the {name} n-gram dictionary is empty"
            if o is not None and o.skip_length > 0 and o.ngram_length > 2:
                return f"{name}_feature_extractor: skip_length > 0 with n-grams longer than 2 (ONNX skips evenly)"
        if len(self.word_ngrams) and int(self.word_ngrams.min()) == 0:
            return "the word n-grams include unknown words (the term dictionary reached maximum_ngrams_count)"
        codes = self.char_ngrams
        if np.any((codes == 0) | ((codes >= 0xD800) & (codes <= 0xDFFF))):
            return (
                "its character n-grams hold characters outside the Basic Multilingual Plane (two UTF-16 keys in "
                "ML.NET, one character for ONNX's Tokenizer) or NUL"
            )
        return None

    @property
    def onnx_unexportable_reason(self) -> str:  # type: ignore[override]
        return "see featurize_text's export conditions"

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        from onnx import TensorProto

        problem = self._export_problem(input_schema)
        if problem is not None:
            raise ExportError(f"{self.step_name} cannot be exported to ONNX: {problem}")
        (text,) = ctx.add_node(
            "Reshape", [ctx.value(self.inputs[0]), ctx.add_initializer(np.array([-1], np.int64), "rows")]
        )
        if self.case_mode != "none":
            action = "LOWER" if self.case_mode == "lower" else "UPPER"
            (text,) = ctx.add_node("StringNormalizer", [text], case_change_action=action, locale="C.UTF-8")
        ctx.require_opset("com.microsoft", 1)
        blocks = []
        if self.char_feature_extractor is not None:
            o = self.char_feature_extractor
            (chars,) = ctx.add_node(
                "Tokenizer", [text], domain="com.microsoft", mark=1, mincharnum=1, pad_value="", separators=[""]
            )
            texts = [chr(k) for k in range(65536)]
            options = (o.ngram_length, o.skip_length, o.use_all_lengths, o.weighting)
            bag = export_tfidf(ctx, chars, self.char_ngrams, self.char_lengths, self.char_idf, options, texts[1:])
            # ML.NET gives an empty text no markers; the Tokenizer gives it 0x02 0x03.
            (flag,) = ctx.add_node(
                "LabelEncoder", [text], domain="ai.onnx.ml", keys_strings=[""], values_floats=[0.0], default_float=1.0
            )
            (flag,) = ctx.add_node("Unsqueeze", [flag, ctx.add_initializer(np.array([1], np.int64), "axis")])
            blocks.append(self._export_norm(ctx, ctx.add_node("Mul", [bag, flag])[0]))
        if self.word_feature_extractor is not None:
            o = self.word_feature_extractor
            (tokens,) = ctx.add_node(
                "Tokenizer", [text], domain="com.microsoft", mark=0, mincharnum=1, pad_value="", separators=[" "]
            )
            options = (o.ngram_length, o.skip_length, o.use_all_lengths, o.weighting)
            bag = export_tfidf(
                ctx, tokens, self.word_ngrams, self.word_lengths, self.word_idf, options, self.terms.tolist()
            )
            blocks.append(self._export_norm(ctx, bag))
        out = blocks[0] if len(blocks) == 1 else ctx.add_node("Concat", blocks, axis=1)[0]
        ctx.set_value(self.output_column_name, ctx.add_node("Cast", [out], to=TensorProto.FLOAT)[0])

    def _export_norm(self, ctx: ExportContext, y: str) -> str:
        if self.norm == "none":
            return y
        axis = ctx.add_initializer(np.array([1], np.int64), "axis")
        if self.norm == "l2":
            (sq,) = ctx.add_node("ReduceSum", [ctx.add_node("Mul", [y, y])[0], axis], keepdims=1)
            (d,) = ctx.add_node("Sqrt", [sq])
        elif self.norm == "l1":
            (d,) = ctx.add_node("ReduceSum", [ctx.add_node("Abs", [y])[0], axis], keepdims=1)
        elif ctx.opset >= 18:
            (d,) = ctx.add_node("ReduceMax", [ctx.add_node("Abs", [y])[0], axis], keepdims=1)
        else:
            (d,) = ctx.add_node("ReduceMax", [ctx.add_node("Abs", [y])[0]], axes=[1], keepdims=1)
        zero = ctx.add_initializer(np.array(0, np.float32), "zero")
        one = ctx.add_initializer(np.array(1, np.float32), "one")
        (positive,) = ctx.add_node("Greater", [d, zero])
        (safe,) = ctx.add_node("Where", [positive, d, one])
        (factor,) = ctx.add_node("Div", [one, safe])
        (small,) = ctx.add_node("Less", [factor, ctx.add_initializer(np.array(_MIN_SCALE, np.float32), "min_scale")])
        (factor,) = ctx.add_node("Where", [small, one, factor])
        return ctx.add_node("Mul", [y, factor])[0]
