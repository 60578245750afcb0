"""featurize_text and the n-gram bags (produce_ngrams, produce_word_bags, the hashed bags)."""

from __future__ import annotations

import itertools
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import onnxpipe as op
from onnxpipe._hashing import murmur3_32
from onnxpipe.errors import ExportError
from onnxpipe.testing import check_component
from onnxpipe.transforms.text._ngram_engine import mix_hash, ngram_patterns
from onnxpipe.transforms.text.featurize import NgramOptions

ctx = op.MLContext(seed=1)
T = ctx.transforms.text
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlnet"
DOCS = [
    "the cat sat on the mat",
    "the dog sat",
    "",
    "Ça va  très bien 日本語 the cat",
    "dog dog dog 😀 x",
]


def _view(**columns: list[str]) -> op.DataView:
    return ctx.data.load_from_arrow(pa.table(columns))


def _split(s: str) -> list[str]:
    return [t for t in s.split(" ") if t]


def test_ngram_patterns_follow_mlnet_depth_first_order() -> None:
    assert ngram_patterns(3, 0) == [(0,), (0, 1), (0, 1, 2)]
    # skip_length 1: ML.NET's ProcessSkipNgrams, total skips <= 1, gaps may differ.
    assert ngram_patterns(3, 1) == [(0,), (0, 1), (0, 1, 2), (0, 1, 3), (0, 2), (0, 2, 3)]


def test_word_bags_equal_sklearn_count_vectorizer() -> None:
    """CountVectorizer(tokenizer=split on ' ', lowercase=False, ngram_range=(1, 2)) has the same
    vocabulary and counts; ML.NET orders slots by first occurrence, sklearn alphabetically."""
    sklearn = pytest.importorskip("sklearn.feature_extraction.text")
    cv = sklearn.CountVectorizer(tokenizer=_split, lowercase=False, ngram_range=(1, 2), token_pattern=None)
    expected = cv.fit_transform(DOCS).toarray()
    data = _view(Text=DOCS)
    model = T.produce_word_bags("Bag", "Text").fit(data)
    out = model.transform(data)
    names = out.schema["Bag"].slot_names
    assert names is not None and names[:4] == ("the", "the|cat", "cat", "cat|sat")
    ours = out.column("Bag").toarray()
    theirs = {n: expected[:, i] for n, i in cv.vocabulary_.items()}
    assert sorted(n.replace("|", " ") for n in names) == sorted(theirs)
    for j, n in enumerate(names):
        np.testing.assert_array_equal(ours[:, j], theirs[n.replace("|", " ")])


def test_tf_idf_equals_sklearn_minus_one() -> None:
    """ML.NET's idf is ln(N / df); sklearn's TfidfVectorizer(smooth_idf=False, norm=None) is
    ln(N / df) + 1, so ML.NET's tf-idf = tf * (sklearn idf - 1)."""
    sklearn = pytest.importorskip("sklearn.feature_extraction.text")
    tv = sklearn.TfidfVectorizer(
        tokenizer=_split, lowercase=False, ngram_range=(1, 2), token_pattern=None, smooth_idf=False, norm=None
    )
    tv.fit(DOCS)
    counts = sklearn.CountVectorizer(
        tokenizer=_split, lowercase=False, ngram_range=(1, 2), token_pattern=None, vocabulary=tv.vocabulary_
    ).transform(DOCS)
    expected = counts.toarray() * (tv.idf_ - 1.0)
    data = _view(Text=DOCS)
    for weighting in ("tf_idf", "idf"):
        out = T.produce_word_bags("Bag", "Text", weighting=weighting).fit(data).transform(data)
        ours = out.column("Bag").toarray()
        for j, n in enumerate(out.schema["Bag"].slot_names or ()):
            want = expected[:, tv.vocabulary_[n.replace("|", " ")]]
            if weighting == "idf":
                want = np.where(
                    counts.toarray()[:, tv.vocabulary_[n.replace("|", " ")]] > 0,
                    tv.idf_[tv.vocabulary_[n.replace("|", " ")]] - 1,
                    0,
                )
            np.testing.assert_allclose(ours[:, j], want, rtol=1e-6, atol=1e-7)


def test_produce_ngrams_on_keys_matches_word_bags_and_exports() -> None:
    data = _view(Text=DOCS)
    keyed = T.tokenize_into_words("Words", "Text").append(ctx.transforms.conversion.map_value_to_key("Keys", "Words"))
    chain = keyed.append(T.produce_ngrams("Grams", "Keys", ngram_length=3, skip_length=1, weighting="tf_idf"))
    model = chain.fit(data)
    grams = model.transform(data)
    bags = T.produce_word_bags("Bag", "Text", ngram_length=3, skip_length=1, weighting="tf_idf").fit(data)
    bag = bags.transform(data)
    assert grams.schema["Grams"].slot_names == bag.schema["Bag"].slot_names
    np.testing.assert_array_equal(grams.column("Grams").toarray(), bag.column("Bag").toarray())
    # Bigrams with skips export (ONNX spaces items evenly, as ML.NET for two items).
    check_component(T.produce_word_bags("Bag", "Text", skip_length=2, weighting="idf"), data, exportable=True)
    with pytest.raises(ExportError, match="uneven gaps"):
        op.export.convert_to_onnx(bags, data.schema)


def test_featurize_text_slot_names_follow_mlnet() -> None:
    """ "Hi, dude" -> lower case -> char trigrams with markers (control pictures) then words."""
    data = _view(Text=["Hi, dude"])
    out = T.featurize_text("F", "Text").fit(data).transform(data)
    assert out.schema["F"].slot_names == (
        "Char.<␂>|h|i",
        "Char.h|i|,",
        "Char.i|,|<␠>",
        "Char.,|<␠>|d",
        "Char.<␠>|d|u",
        "Char.d|u|d",
        "Char.u|d|e",
        "Char.d|e|<␃>",
        "Word.hi,",
        "Word.hi,|dude",
        "Word.dude",
    )
    row = out.column("F").toarray()[0]
    np.testing.assert_allclose(row[:8], 1 / np.sqrt(8), rtol=1e-6)  # each block L2-normalized
    np.testing.assert_allclose(row[8:], 1 / np.sqrt(3), rtol=1e-6)
    only_words = T.featurize_text("F", "Text", char_feature_extractor=None).fit(data).transform(data)
    assert only_words.schema["F"].slot_names == ("hi,", "hi,|dude", "dude")


def _expected_slots(texts: list[str]) -> tuple[int, int]:
    """Char trigrams (0x02 + text + 0x03, UTF-16 units) and word uni+bigrams by the documented rules."""
    chars, words = set(), set()
    for text in texts:
        norm = unicodedata.normalize("NFD", text)
        norm = unicodedata.normalize("NFC", "".join(c for c in norm if unicodedata.category(c) != "Mn")).lower()
        if norm:
            units = [2, *np.frombuffer(norm.encode("utf-16-le", "surrogatepass"), "<u2").tolist(), 3]
            chars.update(tuple(units[i : i + 3]) for i in range(len(units) - 2))
        tokens = _split(norm)
        words.update(tokens)
        words.update(itertools.pairwise(tokens))
    return len(chars), len(words)


def test_featurize_text_slot_counts_on_german_news() -> None:
    path = DATA / "lm.sample.txt"
    if not path.exists():
        pytest.skip("shared data not available")
    texts = [line.split("\t")[2] for line in path.read_text("utf-8").splitlines() if line.count("\t") >= 2][:60]
    model = T.featurize_text("F", "Text").fit(_view(Text=texts))
    assert model.sizes == _expected_slots(texts)


def test_featurize_text_non_ascii_export_and_its_limits() -> None:
    texts = ["Ça va TRÈS bien", "日本語のテキスト", "naïve café", "", "ß and ǅ"]
    data = _view(Text=texts)
    check_component(T.featurize_text("F", "Text", keep_diacritics=True), data, exportable=True)
    tfidf = NgramOptions(weighting="tf_idf")
    check_component(
        T.featurize_text("F", "Text", keep_diacritics=True, word_feature_extractor=tfidf, norm="l1"),
        data,
        exportable=True,
    )
    emoji = _view(Text=["ok 😀 ok", "fine"])
    model = T.featurize_text("F", "Text", keep_diacritics=True).fit(emoji)
    with pytest.raises(ExportError, match="Basic Multilingual Plane"):
        op.export.convert_to_onnx(model, emoji.schema)
    default = T.featurize_text("F", "Text").fit(data)
    with pytest.raises(ExportError, match="keep_diacritics=False"):
        op.export.convert_to_onnx(default, data.schema)


def test_featurize_text_stop_words_tokens_and_several_columns() -> None:
    data = _view(A=["The cat is here", "a dog"], B=["and THE end", ""])
    model = T.featurize_text("F", ["A", "B"], stop_words="english", output_tokens_column_name="Tokens").fit(data)
    out = model.transform(data)
    assert [list(t) for t in out.column("Tokens")] == [["cat", "end"], ["dog"]]
    names = out.schema["F"].slot_names or ()
    assert "Char.t|<␟>|e" in names  # tokens joined by the unit separator 0x1F for the char block
    assert "Word.cat|end" in names


def test_hashed_word_bags_use_mlnet_hash() -> None:
    data = _view(Text=["alpha beta alpha"])
    bits, seed = 10, 314489979
    # seed given: a context's seed (MLContext(seed=1)) fills in any catalog parameter named seed
    out = T.produce_hashed_word_bags("H", "Text", number_of_bits=bits, seed=seed, maximum_number_of_inverts=-1)
    out = out.fit(data)
    scored = out.transform(data)
    keys = (murmur3_32(np.array(["alpha", "beta"], dtype=object), seed) & np.uint32(2**30 - 1)) + np.uint32(1)
    slots = mix_hash(keys.astype(np.uint32)) & np.uint32(2**bits - 1)  # ordered: MixHash of the key
    row = scored.column("H").toarray()[0]
    assert row[slots[0]] == 2 and row[slots[1]] == 1 and row.sum() == 3
    names = scored.schema["H"].slot_names or ()
    assert names[slots[0]] == "alpha" and names[slots[1]] == "beta"
    plain = T.produce_hashed_word_bags("H", "Text", number_of_bits=bits, seed=seed, use_ordered_hashing=False).fit(data)
    row = plain.transform(data).column("H").toarray()[0]
    assert row[int(keys[0]) & (2**bits - 1)] == 2
    assert plain.transform(data).schema["H"].slot_names is None


def test_binary_classifier_on_featurized_text() -> None:
    rng = np.random.default_rng(0)
    good, bad = ["great", "fine", "lovely", "good"], ["awful", "bad", "poor", "terrible"]
    texts, labels = [], []
    for i in range(80):
        positive = bool(i % 2)
        words = [*rng.choice(good if positive else bad, 3).tolist(), "the", "movie"]
        texts.append(" ".join(words))
        labels.append(positive)
    data = ctx.data.load_from_arrow(pa.table({"Text": texts, "Label": labels}))
    pipeline = T.featurize_text("Features", "Text").append(
        ctx.binary_classification.trainers.lbfgs_logistic_regression("Label", "Features")
    )
    try:
        model = pipeline.fit(data)
    except Exception as exc:  # the linear trainers' sparse Features support is being added
        pytest.skip(f"the trainer does not take sparse Features yet: {exc}")
    metrics = ctx.binary_classification.evaluate(model.transform(data))
    assert metrics.accuracy > 0.95
