"""Bags of n-grams (``ctx.transforms.text``), with ML.NET's names, options and defaults.

* ``produce_ngrams`` (ML.NET's NgramExtractingEstimator): a vector of keys (e.g.
  ``tokenize_into_words`` then ``map_value_to_key``) → the counts of its n-grams, over a dictionary
  of n-grams learned at fit in order of first occurrence (at most ``maximum_ngrams_count`` of each
  length), weighted by ``"tf"`` (counts), ``"idf"`` (``ln(documents / documents with the n-gram)``
  where it occurs) or ``"tf_idf"`` (their product). Slot names join the items' key values with
  ``|`` (``*`` for key 0).
* ``produce_word_bags`` (ML.NET's WordBagEstimator): the same on text, tokenized on spaces and
  mapped to keys (in order of first occurrence) inside the one step.
* ``produce_hashed_ngrams`` / ``produce_hashed_word_bags`` (NgramHashingEstimator /
  WordHashBagEstimator): n-grams hashed into ``2**number_of_bits`` slots with ML.NET's hash
  (``Hashing.MurmurHash`` over the keys, ``MixHash`` when ordered); slot names (the n-grams seen
  in each slot at fit) only with ``maximum_number_of_inverts`` ≠ 0.

The outputs are sparse (:class:`~onnxpipe.schema.SparseVectorType`); at the ONNX boundary they
are dense tensors ``[N, size]``. ``produce_ngrams`` and ``produce_word_bags`` export to ONNX's
``TfIdfVectorizer`` (after a ``Cast`` of the keys, or the ``com.microsoft`` ``Tokenizer`` for
text); the hashed bags do not export (ML.NET's ``NgramHashingTransformer`` has no ONNX form either).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._view import DataView
from onnxpipe.errors import ExportError, InvalidArgumentError
from onnxpipe.schema import Column, DType, KeyType, Schema, SparseVectorType, TensorType
from onnxpipe.transforms.conversion import OneToOneStep, column_batches
from onnxpipe.transforms.text._ngram_engine import (
    MAX_SKIP_NGRAM_LENGTH,
    WEIGHTINGS,
    NgramDictionaryBuilder,
    NgramTrie,
    Weighting,
    apply_weighting,
    key_rows,
    mix_hash,
    murmur_round,
    ngram_limits,
    ngram_patterns,
    slot_names,
    walk_ngrams,
)

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "NgramExtractingEstimator",
    "NgramExtractingTransformer",
    "NgramHashingEstimator",
    "NgramHashingTransformer",
    "WordBagEstimator",
    "WordBagTransformer",
    "WordHashBagEstimator",
    "WordHashBagTransformer",
    "Weighting",
]

_HASH_SEED = 314489979
_MODES = {"tf": "TF", "idf": "IDF", "tf_idf": "TFIDF"}
_UNFITTED = TensorType(DType.FLOAT32, (None,))  # the promise before fit: the dictionary sets the size


def check_ngram_options(
    who: str, ngram_length: object, skip_length: object, use_all_lengths: object
) -> tuple[int, int, bool]:
    """ML.NET's checks of the n-gram options (``NgramExtractingEstimator.ColumnOptions``)."""
    n = _validation.integer(ngram_length, "ngram_length", who, low=1, high=MAX_SKIP_NGRAM_LENGTH)
    skip = _validation.integer(skip_length, "skip_length", who, low=0, high=MAX_SKIP_NGRAM_LENGTH - n)
    if n == 1 and skip != 0:
        raise InvalidArgumentError(f"{who}: skip_length must be 0 when ngram_length is 1, got {skip}")
    return n, skip, _validation.boolean(use_all_lengths, "use_all_lengths", who)


def _key_vector(step: OneToOneStep, schema: Schema) -> KeyType:
    ct = step._input_tensor(
        schema, lambda t: isinstance(t, KeyType) and not t.is_scalar, "a vector of keys (e.g. from map_value_to_key)"
    )
    return cast("KeyType", ct)


def export_tfidf(
    ctx: ExportContext,
    x: str,
    ngrams: np.ndarray,
    lengths: np.ndarray,
    idf: np.ndarray,
    options: tuple[int, int, bool, str],
    strings: Sequence[str] | None = None,
) -> str:
    """A ``TfIdfVectorizer`` giving ML.NET's n-gram bag of ``x`` (``[N, T]`` int64 keys, or
    strings when ``strings`` names each key's text): the pool grouped by length as ONNX wants,
    ``ngram_indexes`` mapping it back to the slots."""
    ngram_length, skip_length, use_all_lengths, weighting = options
    if not len(lengths):
        raise ExportError(f"{ctx.step} cannot be exported to ONNX: its n-gram dictionary is empty")
    if skip_length > 0 and ngram_length > 2:
        raise ExportError(
            f"{ctx.step} cannot be exported to ONNX: with skip_length > 0, ML.NET makes n-grams of more than two "
            "items with uneven gaps, and ONNX's TfIdfVectorizer only evenly spaced ones"
        )
    starts = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))[:-1]])
    pool: list[Any] = []
    indexes: list[int] = []
    counts: list[int] = []
    for n in range(1, ngram_length + 1):
        counts.append(len(pool))
        slots = np.flatnonzero(lengths == n)
        indexes.extend(slots.tolist())
        for s in slots.tolist():
            items = ngrams[starts[s] : starts[s] + n].tolist()
            pool.extend(strings[k - 1] for k in items) if strings is not None else pool.extend(items)
    attributes: dict[str, Any] = {
        "mode": _MODES[weighting],
        "min_gram_length": 1 if use_all_lengths else ngram_length,
        "max_gram_length": ngram_length,
        "max_skip_count": skip_length,
        "ngram_counts": counts,
        "ngram_indexes": indexes,
    }
    if weighting != "tf":
        attributes["weights"] = idf[np.asarray(indexes, dtype=np.int64)].astype(np.float32).tolist()
    attributes["pool_strings" if strings is not None else "pool_int64s"] = pool
    return ctx.add_node("TfIdfVectorizer", [x], **attributes)[0]


# --------------------------------------------------------------------------------------------
# produce_ngrams


class _NgramOptions(OneToOneStep):
    ngram_length: int
    skip_length: int
    use_all_lengths: bool
    weighting: Weighting

    def _set_options(self, ngram_length: int, skip_length: int, use_all_lengths: bool, weighting: str) -> None:
        self.ngram_length, self.skip_length, self.use_all_lengths = check_ngram_options(
            self.step_name, ngram_length, skip_length, use_all_lengths
        )
        self.weighting = cast("Weighting", _validation.choice(weighting, "weighting", self.step_name, WEIGHTINGS))

    def _options(self) -> tuple[int, int, bool, str]:
        return (self.ngram_length, self.skip_length, self.use_all_lengths, self.weighting)

    def _option_arguments(self) -> dict[str, Any]:
        """The options as keyword arguments, for the fitted transformer."""
        return {
            "ngram_length": self.ngram_length,
            "skip_length": self.skip_length,
            "use_all_lengths": self.use_all_lengths,
            "weighting": self.weighting,
        }


class _NgramLearning(_NgramOptions):
    """What the two n-gram estimators share: the dictionary's bound and the builder fit fills."""

    maximum_ngrams_count: int

    def _set_learning(
        self, ngram_length: int, skip_length: int, use_all_lengths: bool, weighting: str, maximum_ngrams_count: int
    ) -> None:
        self._set_options(ngram_length, skip_length, use_all_lengths, weighting)
        self.maximum_ngrams_count = _validation.integer(
            maximum_ngrams_count, "maximum_ngrams_count", self.step_name, low=1
        )

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), *self._options(), self.maximum_ngrams_count)

    def _builder(self) -> NgramDictionaryBuilder:
        return NgramDictionaryBuilder(
            self.ngram_length,
            self.skip_length,
            ngram_limits(self.ngram_length, self.use_all_lengths, self.maximum_ngrams_count),
            self.weighting != "tf",
        )


@component("produce_ngrams", catalog="transforms.text")
class NgramExtractingEstimator(_NgramLearning, Estimator["NgramExtractingTransformer"]):
    """The bag of n-grams of a vector of keys (ML.NET's ``ProduceNgrams``): n-grams of 1 to
    ``ngram_length`` items (only ``ngram_length`` unless ``use_all_lengths``), skipping up to
    ``skip_length`` items in all, counted over a dictionary learned at fit (at most
    ``maximum_ngrams_count`` n-grams of each length, in order of first occurrence) and weighted by
    ``weighting`` (``"tf"``, ``"idf"`` or ``"tf_idf"``). The output is a sparse float32 vector
    (dense ``[N, size]`` in ONNX, through ``TfIdfVectorizer``)."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        ngram_length: int = 2,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        maximum_ngrams_count: int = 10_000_000,
        weighting: Weighting = "tf",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_learning(ngram_length, skip_length, use_all_lengths, weighting, maximum_ngrams_count)

    def output_schema(self, input_schema: Schema) -> Schema:
        _key_vector(self, input_schema)
        return input_schema.with_columns(Column(self.output_column_name, _UNFITTED))

    def fit(self, data: DataView) -> NgramExtractingTransformer:
        kt = _key_vector(self, data.schema)
        builder = self._builder()
        for values in column_batches(data, self.input_column_name):
            n_rows = values.shape[0] if isinstance(values, np.ndarray) else len(values)
            builder.add(*key_rows(values, n_rows, kt.count))
        ngrams, lengths, idf = builder.result()
        return NgramExtractingTransformer(
            self.output_column_name,
            self.input_column_name,
            ngrams,
            lengths,
            idf,
            **self._option_arguments(),
        )


def _dictionary_arrays(who: str, ngrams: np.ndarray, lengths: np.ndarray, idf: np.ndarray) -> tuple[np.ndarray, ...]:
    ngrams = np.array(ngrams, dtype=np.uint32).reshape(-1)
    lengths = np.array(lengths, dtype=np.uint8).reshape(-1)
    idf = np.array(idf, dtype=np.float64).reshape(-1)
    if int(lengths.astype(np.int64).sum()) != len(ngrams) or len(idf) != len(lengths) or np.any(lengths == 0):
        raise InvalidArgumentError(
            f"{who}: the n-gram dictionary is inconsistent "
            f"({len(ngrams)} items, {len(lengths)} lengths, {len(idf)} idf)"
        )
    for a in (ngrams, lengths, idf):
        a.flags.writeable = False
    return ngrams, lengths, idf


class _NgramBag:
    """What the fitted dictionary steps share: the dictionary, its trie, the bag of a batch."""

    ngrams: np.ndarray
    lengths: np.ndarray
    idf: np.ndarray
    ngram_length: int
    skip_length: int
    weighting: Weighting
    _trie: NgramTrie | None

    @property
    def size(self) -> int:
        return len(self.lengths)

    def bag(self, flat: np.ndarray, offsets: np.ndarray) -> Any:
        if self._trie is None:
            object.__setattr__(self, "_trie", NgramTrie(self.ngrams, self.lengths))
        assert self._trie is not None
        patterns = ngram_patterns(self.ngram_length, self.skip_length)
        return apply_weighting(self._trie.counts(flat, offsets, patterns, self.size), self.weighting, self.idf)


@component("produce_ngrams")
class NgramExtractingTransformer(_NgramBag, _NgramOptions, Transformer):
    """A fitted ``produce_ngrams``: ``ngrams`` holds every slot's n-gram (the keys, flat; slot
    ``i`` has ``lengths[i]`` of them), ``idf`` each slot's inverse document frequency."""

    accepts_sparse = False

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None,
        ngrams: np.ndarray,
        lengths: np.ndarray,
        idf: np.ndarray,
        *,
        ngram_length: int = 2,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        weighting: Weighting = "tf",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_options(ngram_length, skip_length, use_all_lengths, weighting)
        self.ngrams, self.lengths, self.idf = _dictionary_arrays(self.step_name, ngrams, lengths, idf)
        if len(self.lengths) and int(self.lengths.max()) > self.ngram_length:
            raise InvalidArgumentError(f"{self.step_name}: the dictionary has n-grams longer than ngram_length")
        self._trie = None

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.ngrams, self.lengths, self.idf, *self._options())

    def output_schema(self, input_schema: Schema) -> Schema:
        kt = _key_vector(self, input_schema)
        names = None
        if kt.values is not None:
            names = slot_names(self.ngrams, self.lengths, kt.values.texts)
        return input_schema.with_columns(
            Column(self.output_column_name, SparseVectorType(DType.FLOAT32, self.size), names)
        )

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        kt = _key_vector(self, input_schema)
        flat, offsets = key_rows(columns[self.input_column_name], n_rows, kt.count)
        return {self.output_column_name: self.bag(flat, offsets)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        from onnx import TensorProto

        _key_vector(self, input_schema)
        x = ctx.value(self.input_column_name)
        pad = ctx.padding.get(self.input_column_name)
        (keys,) = ctx.add_node("Cast", [x], to=TensorProto.INT64)
        (keys,) = ctx.add_node("Flatten", [keys], axis=1)
        if pad is not None:  # the padding of ragged rows must not make n-grams: -1 is no key
            is_pad = ctx.add_node("Equal", [keys, ctx.add_initializer(np.array(int(pad), np.int64), "pad")])[0]
            keys = ctx.add_node("Where", [is_pad, ctx.add_initializer(np.array(-1, np.int64), "no_key"), keys])[0]
        out = export_tfidf(ctx, keys, self.ngrams, self.lengths, self.idf, self._options())
        ctx.set_value(self.output_column_name, out)


# --------------------------------------------------------------------------------------------
# produce_word_bags


def _text_vector(step: OneToOneStep, schema: Schema) -> TensorType:
    return step._input_tensor(schema, lambda t: t.dtype is DType.STRING, "text (a scalar or a vector of text)")


def _space_tokens(values: ColumnValues, n_rows: int) -> tuple[list[str], np.ndarray]:
    """Every row's tokens, flat, and row offsets: ``tokenize_into_words`` with its default
    separator, the space (split, empty pieces dropped; a vector's values' tokens in order)."""
    if isinstance(values, np.ndarray):
        rows = values.reshape(n_rows, -1).tolist()
    else:
        rows = [np.asarray(r).reshape(-1).tolist() for r in values]
    tokens: list[str] = []
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    for i, row in enumerate(rows):
        for v in row:
            tokens.extend(t for t in str(v).split(" ") if t)
        offsets[i + 1] = len(tokens)
    return tokens, offsets


class TermDictionary:
    """Tokens → keys ``1..n`` in order of first occurrence, at most ``limit`` (ML.NET's Term
    step inside its word bags); an unknown token is key 0."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.index: dict[str, int] = {}

    def learn(self, tokens: Sequence[str]) -> np.ndarray:
        index = self.index
        out = np.zeros(len(tokens), dtype=np.int64)
        for i, t in enumerate(tokens):
            k = index.get(t)
            if k is None and len(index) < self.limit:
                k = index[t] = len(index) + 1
            out[i] = k or 0
        return out


def map_terms(terms: np.ndarray, tokens: Sequence[str]) -> np.ndarray:
    """Keys of ``tokens`` for the dictionary ``terms`` (0 when unknown), with Arrow's hash lookup."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(tokens):
        return np.zeros(0, np.int64)
    found = pc.index_in(pa.array(tokens, type=pa.string()), value_set=pa.array(terms.tolist(), type=pa.string()))
    return np.asarray(pc.fill_null(pc.add(found, 1), 0).to_numpy(zero_copy_only=False), dtype=np.int64)


@component("produce_word_bags", catalog="transforms.text")
class WordBagEstimator(_NgramLearning, Estimator["WordBagTransformer"]):
    """The bag of word n-grams of text (ML.NET's ``ProduceWordBags``): tokenized on spaces
    (``tokenize_into_words``), the tokens mapped to keys in order of first occurrence, then
    ``produce_ngrams`` with these options, in one step. Slot names are the n-grams' words joined
    by ``|``. Exportable to ONNX for a scalar text column (Tokenizer + TfIdfVectorizer)."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        ngram_length: int = 2,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        maximum_ngrams_count: int = 10_000_000,
        weighting: Weighting = "tf",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_learning(ngram_length, skip_length, use_all_lengths, weighting, maximum_ngrams_count)

    def output_schema(self, input_schema: Schema) -> Schema:
        _text_vector(self, input_schema)
        return input_schema.with_columns(Column(self.output_column_name, _UNFITTED))

    def fit(self, data: DataView) -> WordBagTransformer:
        _text_vector(self, data.schema)
        terms = TermDictionary(self.maximum_ngrams_count)
        builder = self._builder()
        for values in column_batches(data, self.input_column_name):
            n_rows = values.shape[0] if isinstance(values, np.ndarray) else len(values)
            tokens, offsets = _space_tokens(values, n_rows)
            builder.add(terms.learn(tokens), offsets)
        ngrams, lengths, idf = builder.result()
        return WordBagTransformer(
            self.output_column_name,
            self.input_column_name,
            np.array(list(terms.index), dtype=object),
            ngrams,
            lengths,
            idf,
            **self._option_arguments(),
        )


@component("produce_word_bags")
class WordBagTransformer(_NgramBag, _NgramOptions, Transformer):
    """A fitted ``produce_word_bags``: ``terms`` are the words behind keys ``1..n``, ``ngrams``
    / ``lengths`` / ``idf`` the n-gram dictionary over those keys (see
    :class:`NgramExtractingTransformer`)."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None,
        terms: np.ndarray,
        ngrams: np.ndarray,
        lengths: np.ndarray,
        idf: np.ndarray,
        *,
        ngram_length: int = 2,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        weighting: Weighting = "tf",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_options(ngram_length, skip_length, use_all_lengths, weighting)
        terms = np.array([str(t) for t in np.asarray(terms, dtype=object).reshape(-1).tolist()], dtype=object)
        terms.flags.writeable = False
        self.terms = terms
        self.ngrams, self.lengths, self.idf = _dictionary_arrays(self.step_name, ngrams, lengths, idf)
        self._trie = None

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.terms, self.ngrams, self.lengths, self.idf, *self._options())

    def output_schema(self, input_schema: Schema) -> Schema:
        _text_vector(self, input_schema)
        names = slot_names(self.ngrams, self.lengths, self.terms.tolist())
        return input_schema.with_columns(
            Column(self.output_column_name, SparseVectorType(DType.FLOAT32, self.size), names)
        )

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        _text_vector(self, input_schema)
        tokens, offsets = _space_tokens(columns[self.input_column_name], n_rows)
        return {self.output_column_name: self.bag(map_terms(self.terms, tokens), offsets)}

    onnx_unexportable_reason = "only a scalar text column exports (ONNX pads each value's tokens of a vector)"

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ct = _text_vector(self, input_schema)
        if ct.shape not in ((), (1,)):
            raise ExportError(f"{self.step_name} cannot be exported to ONNX: {self.onnx_unexportable_reason}")
        if len(self.ngrams) and int(self.ngrams.min()) == 0:
            raise ExportError(
                f"{self.step_name} cannot be exported to ONNX: its n-grams include unknown words (key 0, the term "
                "dictionary reached maximum_ngrams_count), which ONNX's TfIdfVectorizer cannot match"
            )
        tokens = export_word_tokens(ctx, ctx.value(self.input_column_name))
        out = export_tfidf(ctx, tokens, self.ngrams, self.lengths, self.idf, self._options(), self.terms.tolist())
        ctx.set_value(self.output_column_name, out)


def export_word_tokens(ctx: ExportContext, text: str) -> str:
    """``[N, T]`` space-separated tokens of a ``[N, 1]`` text tensor, padded with ``""``
    (never a token)."""
    ctx.require_opset("com.microsoft", 1)
    (flat,) = ctx.add_node("Reshape", [text, ctx.add_initializer(np.array([-1], np.int64), "rows")])
    (tokens,) = ctx.add_node(
        "Tokenizer", [flat], domain="com.microsoft", mark=0, mincharnum=1, pad_value="", separators=[" "]
    )
    return tokens


# --------------------------------------------------------------------------------------------
# hashed n-grams


class _HashOptions(OneToOneStep):
    number_of_bits: int
    ngram_length: int
    skip_length: int
    use_all_lengths: bool
    seed: int
    use_ordered_hashing: bool
    maximum_number_of_inverts: int
    rehash_unigrams: bool

    def _set_hash_options(
        self,
        number_of_bits: int,
        ngram_length: int,
        skip_length: int,
        use_all_lengths: bool,
        seed: int,
        use_ordered_hashing: bool,
        maximum_number_of_inverts: int,
        rehash_unigrams: bool,
    ) -> None:
        who = self.step_name
        self.number_of_bits = _validation.integer(number_of_bits, "number_of_bits", who, low=1, high=30)
        self.ngram_length, self.skip_length, self.use_all_lengths = check_ngram_options(
            who, ngram_length, skip_length, use_all_lengths
        )
        self.seed = _validation.integer(seed, "seed", who, low=0, high=2**32 - 1)
        self.use_ordered_hashing = _validation.boolean(use_ordered_hashing, "use_ordered_hashing", who)
        self.maximum_number_of_inverts = _validation.integer(
            maximum_number_of_inverts, "maximum_number_of_inverts", who, low=-1
        )
        self.rehash_unigrams = _validation.boolean(rehash_unigrams, "rehash_unigrams", who)

    def _hash_options(self) -> tuple[object, ...]:
        return (
            self.number_of_bits,
            self.ngram_length,
            self.skip_length,
            self.use_all_lengths,
            self.seed,
            self.use_ordered_hashing,
            self.maximum_number_of_inverts,
            self.rehash_unigrams,
        )

    def _hash_kwargs(self) -> dict[str, Any]:
        names = [
            "number_of_bits",
            "ngram_length",
            "skip_length",
            "use_all_lengths",
            "seed",
            "use_ordered_hashing",
            "maximum_number_of_inverts",
            "rehash_unigrams",
        ]
        return dict(zip(names, self._hash_options(), strict=True))

    def hashed(self, flat: np.ndarray, offsets: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
        """Each pattern's n-gram start positions and slots (ML.NET's ``GetNgramIdFinder`` for
        one source column), and each pattern's length."""
        n_max, seed = self.ngram_length, np.uint32(self.seed)
        mask = np.uint32((1 << self.number_of_bits) - 1)
        patterns = ngram_patterns(n_max, self.skip_length)

        def step(prefix: np.ndarray, keys: np.ndarray) -> np.ndarray:
            return murmur_round(prefix.astype(np.uint32), keys.astype(np.uint32)).astype(np.int64)

        positions, slots, lengths = [], [], []
        for index, found, state in walk_ngrams(flat, offsets, patterns, step, root=int(seed)):
            lim = len(patterns[index])
            if not self.use_all_lengths and n_max > 1 and lim < n_max:
                continue
            if lim == 1 and not self.rehash_unigrams and (self.use_all_lengths or n_max == 1):
                h = flat[found].astype(np.uint32)  # the key itself
            else:
                h = mix_hash(murmur_round(state.astype(np.uint32), np.full(len(state), lim, np.uint32)))
            if self.use_ordered_hashing:
                h = mix_hash(h)
            positions.append(found)
            slots.append((h & mask).astype(np.int64))
            lengths.append(lim)
        return positions, slots, lengths

    def hashed_bag(self, flat: np.ndarray, offsets: np.ndarray) -> Any:
        from scipy import sparse

        n_rows = len(offsets) - 1
        positions, slots, _ = self.hashed(flat, offsets)
        row_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(offsets))
        r = np.concatenate([row_of[p] for p in positions]) if positions else np.zeros(0, np.int64)
        s = np.concatenate(slots) if slots else np.zeros(0, np.int64)
        m = sparse.csr_matrix((np.ones(len(r), np.float32), (r, s)), shape=(n_rows, 1 << self.number_of_bits))
        m.sum_duplicates()
        return m

    def invert_hashes(self, batches: Sequence[tuple[np.ndarray, np.ndarray]], texts: Any) -> tuple[str, ...]:
        """Slot names (ML.NET's ``InvertHashCollector``): the distinct n-grams seen in each slot
        in order of occurrence, at most ``maximum_number_of_inverts`` (-1: all), one as its text,
        several as ``{a,b}``; ``""`` for a slot no n-gram reached."""
        limit = self.maximum_number_of_inverts if self.maximum_number_of_inverts > 0 else 1 << 62
        seen: dict[int, dict[tuple[int, ...], None]] = {}
        patterns = ngram_patterns(self.ngram_length, self.skip_length)
        for flat, offsets in batches:
            positions, slots, lengths = self.hashed(flat, offsets)
            if not positions:
                continue
            pattern_index = [i for i, p in enumerate(patterns) if len(p) in lengths]
            order_parts = []
            for k, pos in enumerate(positions):
                order_parts.append(pos * len(patterns) + pattern_index[k])
            order = np.concatenate(order_parts)
            which = np.concatenate([np.full(len(p), k) for k, p in enumerate(positions)])
            slot = np.concatenate(slots)
            for j in np.argsort(order, kind="stable").tolist():
                k = int(which[j])
                start = int(order[j] // len(patterns))
                offs = patterns[pattern_index[k]]
                gram = tuple(int(flat[start + o]) for o in offs)
                bucket = seen.setdefault(int(slot[j]), {})
                if len(bucket) < limit:
                    bucket.setdefault(gram, None)
        names = [""] * (1 << self.number_of_bits)
        for s, grams in seen.items():
            shown = ["|".join(texts(k) for k in g) for g in grams]
            names[s] = shown[0] if len(shown) == 1 else "{" + ",".join(shown) + "}"
        return tuple(names)


def _hashed_column(name: str, bits: int, slot_names: tuple[str, ...] | None) -> Column:
    return Column(name, SparseVectorType(DType.FLOAT32, 1 << bits), slot_names)


@component("produce_hashed_ngrams", catalog="transforms.text")
class NgramHashingEstimator(_HashOptions, Estimator["NgramHashingTransformer"]):
    """The bag of hashed n-grams of a vector of keys (ML.NET's ``ProduceHashedNgrams``): every
    n-gram (as in ``produce_ngrams``) counted in slot ``hash & (2**number_of_bits - 1)`` of a
    sparse vector, the hash being ML.NET's ``MurmurHash(seed, keys)`` (a unigram is its key unless
    ``rehash_unigrams``), mixed once more with ``use_ordered_hashing``. With
    ``maximum_number_of_inverts`` ≠ 0, fit collects the n-grams of each slot as its slot name.
    Not exportable to ONNX (ML.NET's neither)."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        number_of_bits: int = 16,
        ngram_length: int = 2,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        seed: int = _HASH_SEED,
        use_ordered_hashing: bool = True,
        maximum_number_of_inverts: int = 0,
        rehash_unigrams: bool = False,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_hash_options(
            number_of_bits,
            ngram_length,
            skip_length,
            use_all_lengths,
            seed,
            use_ordered_hashing,
            maximum_number_of_inverts,
            rehash_unigrams,
        )

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), *self._hash_options())

    def output_schema(self, input_schema: Schema) -> Schema:
        _key_vector(self, input_schema)
        return input_schema.with_columns(_hashed_column(self.output_column_name, self.number_of_bits, None))

    def fit(self, data: DataView) -> NgramHashingTransformer:
        kt = _key_vector(self, data.schema)
        names = None
        if self.maximum_number_of_inverts != 0:
            batches = []
            for values in column_batches(data, self.input_column_name):
                n_rows = values.shape[0] if isinstance(values, np.ndarray) else len(values)
                batches.append(key_rows(values, n_rows, kt.count))
            key_texts = kt.values.texts if kt.values is not None else None

            def text(k: int) -> str:
                if key_texts is None:
                    return str(k)
                return key_texts[k - 1] if 0 < k <= len(key_texts) else ""

            names = self.invert_hashes(batches, text)
        return NgramHashingTransformer(
            self.output_column_name, self.input_column_name, slot_names=names, **self._hash_kwargs()
        )


@component("produce_hashed_ngrams")
class NgramHashingTransformer(_HashOptions, Transformer):
    """A fitted ``produce_hashed_ngrams`` (``slot_names``: what fit collected, or None)."""

    onnx_unexportable_reason = "ONNX has no operator for ML.NET's n-gram hashing (ML.NET does not export it either)"

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        number_of_bits: int = 16,
        ngram_length: int = 2,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        seed: int = _HASH_SEED,
        use_ordered_hashing: bool = True,
        maximum_number_of_inverts: int = 0,
        rehash_unigrams: bool = False,
        slot_names: Sequence[str] | None = None,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_hash_options(
            number_of_bits,
            ngram_length,
            skip_length,
            use_all_lengths,
            seed,
            use_ordered_hashing,
            maximum_number_of_inverts,
            rehash_unigrams,
        )
        self.slot_names = None if slot_names is None else tuple(str(s) for s in slot_names)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), *self._hash_options(), self.slot_names)

    def output_schema(self, input_schema: Schema) -> Schema:
        _key_vector(self, input_schema)
        return input_schema.with_columns(_hashed_column(self.output_column_name, self.number_of_bits, self.slot_names))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        kt = _key_vector(self, input_schema)
        return {self.output_column_name: self.hashed_bag(*key_rows(columns[self.input_column_name], n_rows, kt.count))}


def _token_hashes(tokens: Sequence[str], seed: int) -> np.ndarray:
    """ML.NET's Hash of each token into 30 bits, plus one (as ``WordHashBagEstimator`` does
    before its n-gram hashing)."""
    from onnxpipe._hashing import murmur3_32

    if not tokens:
        return np.zeros(0, np.int64)
    h = murmur3_32(np.array(tokens, dtype=object), seed)
    return (np.asarray(h, dtype=np.uint32) & np.uint32((1 << 30) - 1)).astype(np.int64) + 1


@component("produce_hashed_word_bags", catalog="transforms.text")
class WordHashBagEstimator(_HashOptions, Estimator["WordHashBagTransformer"]):
    """The bag of hashed word n-grams of text (ML.NET's ``ProduceHashedWordBags``): tokenized on
    spaces, each token hashed to a 30-bit key (``hash`` with ``seed``), then
    ``produce_hashed_ngrams`` with these options. Slot names (the n-grams' words) only with
    ``maximum_number_of_inverts`` ≠ 0. Not exportable to ONNX."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        number_of_bits: int = 16,
        ngram_length: int = 1,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        seed: int = _HASH_SEED,
        use_ordered_hashing: bool = True,
        maximum_number_of_inverts: int = 0,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_hash_options(
            number_of_bits,
            ngram_length,
            skip_length,
            use_all_lengths,
            seed,
            use_ordered_hashing,
            maximum_number_of_inverts,
            False,
        )

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), *self._hash_options()[:-1])

    def output_schema(self, input_schema: Schema) -> Schema:
        _text_vector(self, input_schema)
        return input_schema.with_columns(_hashed_column(self.output_column_name, self.number_of_bits, None))

    def fit(self, data: DataView) -> WordHashBagTransformer:
        _text_vector(self, data.schema)
        names = None
        kwargs = self._hash_kwargs()
        del kwargs["rehash_unigrams"]
        if self.maximum_number_of_inverts != 0:
            limit = self.maximum_number_of_inverts if self.maximum_number_of_inverts > 0 else 1 << 62
            words: dict[int, dict[str, None]] = {}
            batches = []
            for values in column_batches(data, self.input_column_name):
                n_rows = values.shape[0] if isinstance(values, np.ndarray) else len(values)
                tokens, offsets = _space_tokens(values, n_rows)
                keys = _token_hashes(tokens, self.seed)
                for k, t in zip(keys.tolist(), tokens, strict=True):
                    bucket = words.setdefault(k, {})
                    if len(bucket) < limit:
                        bucket.setdefault(t, None)
                batches.append((keys, offsets))

            def text(k: int) -> str:
                shown = list(words.get(k, ()))
                return "" if not shown else shown[0] if len(shown) == 1 else "{" + ",".join(shown) + "}"

            names = self.invert_hashes(batches, text)
        return WordHashBagTransformer(self.output_column_name, self.input_column_name, slot_names=names, **kwargs)


@component("produce_hashed_word_bags")
class WordHashBagTransformer(_HashOptions, Transformer):
    """A fitted ``produce_hashed_word_bags`` (``slot_names``: what fit collected, or None)."""

    onnx_unexportable_reason = "ONNX has no operator for ML.NET's n-gram hashing (ML.NET does not export it either)"

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        number_of_bits: int = 16,
        ngram_length: int = 1,
        skip_length: int = 0,
        use_all_lengths: bool = True,
        seed: int = _HASH_SEED,
        use_ordered_hashing: bool = True,
        maximum_number_of_inverts: int = 0,
        slot_names: Sequence[str] | None = None,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._set_hash_options(
            number_of_bits,
            ngram_length,
            skip_length,
            use_all_lengths,
            seed,
            use_ordered_hashing,
            maximum_number_of_inverts,
            False,
        )
        self.slot_names = None if slot_names is None else tuple(str(s) for s in slot_names)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), *self._hash_options()[:-1], self.slot_names)

    def output_schema(self, input_schema: Schema) -> Schema:
        _text_vector(self, input_schema)
        return input_schema.with_columns(_hashed_column(self.output_column_name, self.number_of_bits, self.slot_names))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        _text_vector(self, input_schema)
        tokens, offsets = _space_tokens(columns[self.input_column_name], n_rows)
        return {self.output_column_name: self.hashed_bag(_token_hashes(tokens, self.seed), offsets)}
