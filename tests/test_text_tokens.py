"""Tokenizers, stop words, word embeddings and LDA (``ctx.transforms.text``): ML.NET's semantics,
non-ASCII text, ONNX parity (ragged rows included) and bounded embedding files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

import onnxpipe as op
from onnxpipe.errors import DataError, DataFileNotFoundError, ExportError, InvalidArgumentError, OnnxPipeWarning
from onnxpipe.export import convert_to_onnx
from onnxpipe.schema import DType, KeyType, TensorType
from onnxpipe.testing import check_component, check_onnx_parity
from onnxpipe.transforms.text.embedding import WordEmbeddingTransformer, read_embedding_file
from onnxpipe.transforms.text.lda import LatentDirichletAllocationTransformer, lda_transform
from onnxpipe.transforms.text.stop_words import LANGUAGES, default_stop_words

ctx = op.MLContext(seed=1)
T = ctx.transforms.text
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mlnet"
EMBEDDING = DATA / "shortsentiment.emd"
needs_data = pytest.mark.skipif(
    not EMBEDDING.exists(), reason="../shared/data/mlnet (ML.NET's test data) is not present in this checkout"
)


def _texts(*values: str) -> op.DataView:
    return ctx.data.load_from_arrow(pa.table({"Text": pa.array(list(values))}))


def _tokens(rows: list[list[str]]) -> op.DataView:
    return ctx.data.load_from_arrow(pa.table({"Tokens": pa.array(rows, pa.list_(pa.string()))}))


def _rows(view: op.DataView, column: str) -> list[list[object]]:
    return [np.asarray(r).tolist() for r in view.column(column)]


NON_ASCII = _texts("Héllo, Wörld 42!", "中文 字符  naïve", "", "   ", "çà et là  Ω x", "emoji 😀 ok 👍🏽")


# ------------------------------------------------------------------------ tokenize_into_words


def test_tokenize_into_words_with_separators_as_mlnet() -> None:
    # ML.NET's tokenizedWithSeparators sample: separators ' ', '.', ',' and '-'.
    text = (
        "ML.NET's TokenizeIntoWords API splits text/string into words using the list of characters provided as "
        "separators."
    )
    model = T.tokenize_into_words("Words", "Text", separators=[" ", ".", ",", "-"]).fit(_texts(text))
    assert _rows(model.transform(_texts(text)), "Words")[0] == [
        "ML", "NET's", "TokenizeIntoWords", "API", "splits", "text/string", "into", "words", "using", "the",
        "list", "of", "characters", "provided", "as", "separators",
    ]  # fmt: skip


def test_tokenize_into_words_trims_spaces_and_drops_empty_tokens() -> None:
    data = _texts(" a , b ,, c ", "hello world,x", "", ",,,")
    model = T.tokenize_into_words("Words", "Text", separators=[","]).fit(data)
    assert _rows(model.transform(data), "Words") == [["a", "b", "c"], ["hello world", "x"], [], []]
    check_onnx_parity(model, data, model.transform(data), exportable=True)


def test_tokenize_into_words_non_ascii_and_schema() -> None:
    model = check_component(T.tokenize_into_words("Words", "Text"), NON_ASCII, exportable=True)
    out = model.transform(NON_ASCII)
    assert out.schema["Words"].type == TensorType(DType.STRING, (None,))
    assert _rows(out, "Words") == [
        ["Héllo,", "Wörld", "42!"], ["中文", "字符", "naïve"], [], [], ["çà", "et", "là", "Ω", "x"],
        ["emoji", "😀", "ok", "👍🏽"],
    ]  # fmt: skip


def test_tokenize_into_words_on_a_text_vector() -> None:
    data = ctx.data.load_from_arrow(
        pa.table({"Text": pa.FixedSizeListArray.from_arrays(pa.array(["é b", "", "", "x", "a b c", "d"]), 2)})
    )
    model = check_component(T.tokenize_into_words("Words", "Text"), data, exportable=True)
    assert _rows(model.transform(data), "Words") == [["é", "b"], ["x"], ["a", "b", "c", "d"]]


def test_tokenize_into_words_checks_its_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="separators"):
        T.tokenize_into_words("Words", "Text", separators=["ab"])
    with pytest.raises(InvalidArgumentError, match="separators"):
        T.tokenize_into_words("Words", "Text", separators=" ")
    with pytest.raises(op.errors.ColumnTypeError, match="text"):
        T.tokenize_into_words("W", "Value").output_schema(ctx.data.load_from_arrow(pa.table({"Value": [1.0]})).schema)


# ------------------------------------------------------------------------ characters as keys


def test_characters_as_keys_as_mlnet() -> None:
    data = _texts("ab c", "", "é")
    model = check_component(T.tokenize_into_characters_as_keys("Chars", "Text"), data, exportable=True)
    out = model.transform(data)
    assert _rows(out, "Chars") == [[2, 97, 98, 32, 99, 3], [], [2, 233, 3]]
    ct = out.schema["Chars"].type
    assert isinstance(ct, KeyType) and ct.dtype is DType.UINT16 and ct.count == 65535 and ct.shape == (None,)
    assert ct.values is not None
    values = ct.values.items
    assert values[0x02 - 1] == "<\u2402>" and values[0x03 - 1] == "<\u2403>" and values[0x20 - 1] == "<\u2420>"
    assert values[0x7F - 1] == "<\u2421>" and values[0x80 - 1] == "<PAD>" and values[0x81 - 1] == "<HOP>"
    assert values[ord("a") - 1] == "a" and values[0x2028 - 1] == "<LSEP>"


def test_characters_as_keys_without_markers_and_beyond_the_bmp() -> None:
    data = _texts("a😀")
    model = T.tokenize_into_characters_as_keys("Chars", "Text", use_marker_characters=False).fit(data)
    assert _rows(model.transform(data), "Chars") == [[97, 0xD83D, 0xDE00]]  # UTF-16 code units, as .NET's chars
    bmp = _texts("中文 x", "", "naïve")
    check_component(
        T.tokenize_into_characters_as_keys("Chars", "Text", use_marker_characters=False), bmp, exportable=True
    )


def test_characters_as_keys_on_a_vector_joins_with_unit_separators() -> None:
    data = ctx.data.load_from_arrow(
        pa.table({"Text": pa.FixedSizeListArray.from_arrays(pa.array(["ab", "c", "", "d", "", ""]), 2)})
    )
    model = check_component(T.tokenize_into_characters_as_keys("Chars", "Text"), data, exportable=False)
    assert _rows(model.transform(data), "Chars") == [[2, 97, 98, 0x1F, 99, 3], [2, 0x1F, 100, 3], [2, 3]]
    with pytest.raises(ExportError, match="tokenize_into_characters_as_keys"):
        convert_to_onnx(model, data.schema)


# ------------------------------------------------------------------------ stop words


def test_default_stop_word_lists() -> None:
    for language in LANGUAGES:
        assert len(default_stop_words(language)) > 40, language
    assert {"the", "a", "is"} <= default_stop_words("english")
    assert "Ernst" in default_stop_words("german")  # as ML.NET's list has it


def test_remove_default_stop_words_is_case_insensitive() -> None:
    data = _tokens([["The", "cat", "IS", "on", "the", "MAT"], [], ["", "a", "An"], ["Über", "das", "Ernst", "ernst"]])
    model = check_component(T.remove_default_stop_words("Clean", "Tokens"), data, exportable=True)
    assert _rows(model.transform(data), "Clean") == [["cat", "MAT"], [], [], ["Über", "das", "Ernst", "ernst"]]
    german = check_component(T.remove_default_stop_words("Clean", "Tokens", language="german"), data, exportable=True)
    # ML.NET lowers the token, not its predefined list: "Ernst" in the list never matches.
    assert _rows(german.transform(data), "Clean")[3] == ["Ernst", "ernst"]


def test_remove_stop_words_custom_list_is_lowered() -> None:
    data = _tokens([["Le", "CHAT", "et", "la", "souris"], ["ÉTÉ", "été", "x"]])
    model = check_component(
        T.remove_stop_words("Clean", "Tokens", stopwords=["chat", "LA", "Été"]), data, exportable=True
    )
    assert _rows(model.transform(data), "Clean") == [["Le", "et", "souris"], ["x"]]
    with pytest.raises(InvalidArgumentError, match="stopwords"):
        T.remove_stop_words("Clean", "Tokens", stopwords=[])


def test_tokenize_then_remove_stop_words_exports_chained() -> None:
    data = _texts("The quick brown fox", "", "the a an", "Was ist das für ein Ding", "naïve café ET le thé")
    for language in ("english", "german", "french"):
        chain = T.tokenize_into_words("Tokens", "Text").append(
            T.remove_default_stop_words("Clean", "Tokens", language=language)
        )
        check_component(chain, data, exportable=True)


def test_map_value_to_key_on_tokens_exports() -> None:
    data = _texts("hi i am here", "", "plethora of respite", "hi zzz")
    learned = T.tokenize_into_words("Tokens", "Text").append(
        ctx.transforms.conversion.map_value_to_key("Keys", "Tokens")
    )
    model = check_component(learned, data, exportable=True)
    assert _rows(model.transform(data), "Keys") == [[1, 2, 3, 4], [], [5, 6, 7], [1, 8]]
    given = T.tokenize_into_words("Tokens", "Text").append(
        ctx.transforms.conversion.map_value_to_key("Keys", "Tokens", keys=["hi", "am"])
    )
    model = check_component(given, data, exportable=True)  # an unseen token (key 0) ends a row
    assert _rows(model.transform(data), "Keys") == [[1, 0, 2, 0], [], [0, 0, 0], [1, 0]]


# ------------------------------------------------------------------------ word embedding


def _embedding_reference(words: np.ndarray, vectors: np.ndarray, tokens: list[str]) -> np.ndarray:
    index = {w: i for i, w in enumerate(words.tolist())}
    found = [vectors[index[t]] for t in tokens if t in index]
    d = vectors.shape[1]
    if not found:
        big = np.finfo(np.float32).max
        return np.concatenate([np.full(d, big), np.zeros(d), np.full(d, -big)]).astype(np.float32)
    stacked = np.stack(found).astype(np.float64)
    return np.concatenate([stacked.min(0), stacked.mean(0), stacked.max(0)]).astype(np.float32)


@needs_data
def test_word_embedding_on_mlnet_sentiment_data() -> None:
    lines = (DATA / "small-sentiment-test.tsv").read_text().splitlines()
    rows = [[w.strip('"') for w in line.split("\t")] for line in lines] + [[], ["nothing", "known"]]
    data = _tokens(rows)
    estimator = T.apply_word_embedding("Embedding", "Tokens", custom_model_file=str(EMBEDDING))
    model = check_component(estimator, data, exportable=True)
    assert isinstance(model, WordEmbeddingTransformer)
    assert model.vectors.shape == (10, 50) and "cheescake" in model.words.tolist()  # the first line is a word
    out = np.asarray(model.transform(data).column("Embedding"))
    assert out.shape == (len(rows), 150) and out.dtype == np.float32
    for got, tokens in zip(out, rows, strict=True):
        np.testing.assert_allclose(got, _embedding_reference(model.words, model.vectors, tokens), rtol=1e-6)
    assert out[2, 0] == np.finfo(np.float32).max and out[2, 149] == np.finfo(np.float32).min  # "hi i random word"
    for opset in (13, 18):
        convert_to_onnx(model, data.schema, opset=opset)


@needs_data
def test_word_embedding_chained_after_tokenize() -> None:
    data = _texts("hi plethora of respite", "", "domains curate #saudi")
    chain = T.tokenize_into_words("Tokens", "Text").append(
        T.apply_word_embedding("Embedding", "Tokens", custom_model_file=EMBEDDING)
    )
    check_component(chain, data, exportable=True)


def test_embedding_file_rules(tmp_path: Path) -> None:
    file = tmp_path / "e.txt"
    file.write_text("3 2\nb 1 2\nc\t3 4\nd 1 2 3\nb 9 9\ne 1 x\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        words, vectors = read_embedding_file(file)
    assert words.tolist() == ["b", "c"]  # the header, the 3-value line, the repeat and the bad value skipped
    np.testing.assert_array_equal(vectors, [[1, 2], [3, 4]])
    assert any("line 4" in str(w.message) for w in caught if issubclass(w.category, OnnxPipeWarning))
    first = tmp_path / "first.txt"
    first.write_text("a 1 2\nb 3 4\n")
    assert read_embedding_file(first)[0].tolist() == ["b", "a"]  # the first line last, as ML.NET


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"w " + b"1 " * 20_000 + b"\n", "line 1"),  # a huge dimension
        (b"a 1\nw " + b" ".join([b"0"] * 1_000_000) + b"\n", "line 2"),  # 10^6 columns
        (b"a 1 2\n\x00\xff\xfe\x89PNG\x00\x00garbage\n", "line 2"),  # binary garbage
        (b"a 1 2\nb \xff\xfe 3\n", "line 2"),  # not UTF-8
    ],
)
def test_crafted_embedding_files_are_rejected(tmp_path: Path, content: bytes, match: str) -> None:
    file = tmp_path / "crafted.emd"
    file.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_embedding_file(file, maximum_dimension=1000)
    assert "crafted.emd" in str(info.value)
    data = _tokens([["a"]])
    with pytest.raises(DataError, match="apply_word_embedding"):
        T.apply_word_embedding("E", "Tokens", custom_model_file=file, maximum_dimension=1000).fit(data)


def test_embedding_file_bounds(tmp_path: Path) -> None:
    file = tmp_path / "big.txt"
    file.write_text("a 1 2\n" * 100)
    with pytest.raises(DataError, match="maximum_file_bytes"):
        read_embedding_file(file, maximum_file_bytes=100)
    with pytest.raises(DataFileNotFoundError, match=r"missing\.txt"):
        read_embedding_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="no word vectors"):
        read_embedding_file(empty)


# ------------------------------------------------------------------------ LDA


def _counts() -> tuple[np.ndarray, op.DataView]:
    counts = np.random.default_rng(0).poisson(0.7, size=(12, 8)).astype(np.float32)
    counts[3] = 0
    return counts, ctx.data.load_from_arrow(
        pa.table({"Counts": pa.FixedSizeListArray.from_arrays(pa.array(counts.reshape(-1)), 8)})
    )


def test_lda_matches_scikit_learn() -> None:
    import sklearn
    from sklearn.decomposition import LatentDirichletAllocation

    counts, data = _counts()
    estimator = T.latent_dirichlet_allocation("Topics", "Counts", number_of_topics=3, maximum_number_of_iterations=20)
    model = check_component(estimator, data, exportable=False)
    assert isinstance(model, LatentDirichletAllocationTransformer)
    with sklearn.config_context(skip_parameter_validation=True):  # ML.NET's prior 100/3 is above sklearn's bound
        reference = LatentDirichletAllocation(
            n_components=3, doc_topic_prior=100 / 3, topic_word_prior=0.01, max_iter=20, random_state=1
        ).fit(counts.astype(np.float64))
    np.testing.assert_allclose(model.components, reference.components_, rtol=1e-10)
    topics = np.asarray(model.transform(data).column("Topics"))
    assert topics.shape == (12, 3) and topics.dtype == np.float32
    np.testing.assert_allclose(topics, reference.transform(counts.astype(np.float64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(topics.sum(axis=1), 1, rtol=1e-5)


def test_lda_transform_equals_scikit_learn_dense_and_sparse() -> None:
    from sklearn.decomposition import LatentDirichletAllocation

    counts, _ = _counts()
    x = counts.astype(np.float64)
    reference = LatentDirichletAllocation(n_components=4, doc_topic_prior=0.2, random_state=0, max_iter=5).fit(x)
    expected = reference.transform(x)
    for given in (x, sp.csr_matrix(x)):
        got = lda_transform(given, reference.components_, 0.2, reference.max_doc_update_iter, reference.mean_change_tol)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_lda_on_sparse_counts_and_not_exportable() -> None:
    counts, dense = _counts()
    data = ctx.data.load_from_dict({"Counts": sp.csr_matrix(counts)})
    assert isinstance(data.schema["Counts"].type, op.schema.SparseVectorType)
    estimator = T.latent_dirichlet_allocation("Topics", "Counts", number_of_topics=2, maximum_number_of_iterations=10)
    model = check_component(estimator, data, exportable=False)
    same = estimator.fit(dense)
    assert isinstance(model, LatentDirichletAllocationTransformer)
    np.testing.assert_allclose(model.components, same.components, rtol=1e-10)
    np.testing.assert_allclose(
        np.asarray(model.transform(data).column("Topics")), np.asarray(same.transform(dense).column("Topics"))
    )
    with pytest.raises(ExportError, match="latent_dirichlet_allocation"):
        convert_to_onnx(model, data.schema)
