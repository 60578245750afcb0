"""Data in and out as people expect: ``infer_columns`` (ML.NET's InferColumns), the warning for a
CSV read with the default tab, ``save_as_text`` (ML.NET's SaveAsText) and ``save_as_parquet``
round trips, and ``DataView.cache()`` (ML.NET's AppendCacheCheckpoint)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from onnxpipe import DataView, DType, MLContext, OnnxPipeWarning, Schema, TensorType
from onnxpipe.errors import DataError

ctx = MLContext(seed=0)
IRIS = Path(__file__).resolve().parent.parent / "src" / "onnxpipe" / "demo_data" / "iris.csv"


def _view() -> DataView:
    return ctx.data.load_from_dict(
        {
            "x": np.array([1.5, -2.25, np.nan], np.float32),
            "n": np.array([1, 2, 3], np.int64),
            "name": np.array(["a", "b, c", 'say "hi"'], dtype=object),
            "v": np.arange(9, dtype=np.float32).reshape(3, 3),
        }
    )


def _assert_same(got: DataView, want: DataView) -> None:
    assert got.schema == want.schema
    for name in want.schema.names:
        g, w = got.column(name), want.column(name)
        if isinstance(w, np.ndarray) and w.dtype.kind == "f":
            np.testing.assert_array_equal(g, w)  # NaN == NaN here
        else:
            assert list(np.asarray(g).tolist()) == list(np.asarray(w).tolist())


# --------------------------------------------------------------------------------------------
# infer_columns


def test_infer_columns_reads_the_iris_csv() -> None:
    inferred = ctx.data.infer_columns(IRIS)
    assert (inferred.separator, inferred.has_header) == (",", True)
    assert inferred.schema.names == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    assert inferred.schema["sepal_length"].type == TensorType(DType.FLOAT32)
    assert inferred.schema["species"].type == TensorType(DType.STRING)
    view = inferred.load()
    assert view.count_rows() == 150
    assert view.column("species")[0] == "setosa"


@pytest.mark.parametrize(
    ("text", "separator", "header", "names"),
    [
        ("1\t2.5\tx\n3\t4.5\ty\n", "\t", False, ["column0", "column1", "column2"]),
        ("a;b\n1;2\n3;4\n", ";", True, ["a", "b"]),
        ('id|note\n1|"x | y"\n2|z\n', "|", True, ["id", "note"]),
        ('text,label\n"good, really",pos\nbad,neg\n', ",", True, ["text", "label"]),
        ("alpha,beta\ngamma,delta\n", ",", True, ["alpha", "beta"]),
        ("// a comment\nx,y\n1,2\n", ",", True, ["x", "y"]),
    ],
)
def test_infer_columns_guesses_separator_and_header(
    tmp_path: Path, text: str, separator: str, header: bool, names: list[str]
) -> None:
    path = tmp_path / "data.txt"
    path.write_text(text)
    inferred = ctx.data.infer_columns(path)
    assert (inferred.separator, inferred.has_header, inferred.schema.names) == (separator, header, names)
    assert inferred.load().count_rows() == text.count("\n") - int(header) - text.count("//")


def test_infer_columns_reads_a_bounded_sample(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "1,2\n" * 100_000)
    inferred = ctx.data.infer_columns(path, max_bytes=4096)  # a line cut by the sample is dropped
    assert (inferred.separator, inferred.has_header, inferred.schema.names) == (",", True, ["a", "b"])
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"has no data lines in its first"):
        ctx.data.infer_columns(empty)


def test_a_csv_read_with_the_default_tab_warns() -> None:
    with pytest.warns(OnnxPipeWarning, match=r"reads as one column with separator '\\t'.*pass separator=','"):
        view = ctx.data.load_from_text_file(IRIS, has_header=True)
    assert len(view.schema.names) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.data.load_from_text_file(IRIS, separator=",", has_header=True)  # read right: no warning


# --------------------------------------------------------------------------------------------
# writers


@pytest.mark.parametrize(("separator", "header"), [("\t", True), (",", True), (";", False)])
def test_save_as_text_reads_back_as_it_was(tmp_path: Path, separator: str, header: bool) -> None:
    view = _view()
    path = tmp_path / "out.txt"
    assert ctx.data.save_as_text(view, path, separator=separator, header=header) == 3
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#@")]  # ML.NET's schema comment
    if header:
        assert lines[0].split(separator)[:4] == ['"x"', '"n"', '"name"', '"v.0"']  # a vector: one column per value
    back = ctx.data.load_from_text_file(path, schema=view.schema, separator=separator, has_header=header)
    _assert_same(back, view)


def test_save_as_text_writes_chosen_columns_and_checks_the_separator(tmp_path: Path) -> None:
    path = tmp_path / "out.tsv"
    ctx.data.save_as_text(_view(), path, columns=["n", "x"], schema=False)
    assert path.read_text().splitlines()[0] == '"n"\t"x"'
    with pytest.raises(ValueError, match=r"separator must be one character"):
        ctx.data.save_as_text(_view(), path, separator="\n")


def test_save_as_parquet_keeps_the_column_types(tmp_path: Path) -> None:
    view = _view()
    path = tmp_path / "out.parquet"
    assert ctx.data.save_as_parquet(view, path) == 3
    _assert_same(ctx.data.load_from_parquet(path), view)


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    path.write_bytes(b"the old file")
    schema = _view().schema

    def batches() -> Iterator[pa.RecordBatch]:
        yield from _view().batches()
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="the disk went away"):
        ctx.data.save_as_parquet(DataView(schema, batches), path)
    assert path.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # no temporary file left


# --------------------------------------------------------------------------------------------
# cache


def test_cache_reads_the_source_once() -> None:
    reads = []
    base = _view()

    def batches() -> Iterator[pa.RecordBatch]:
        reads.append(1)
        yield from base.batches()

    view = DataView(base.schema, batches)
    scored = ctx.transforms.concatenate("both", "x", "x").fit(view).transform(view)
    cached = scored.cache()
    assert reads == []  # lazy until read
    first, second = cached.column("both"), cached.column("n")
    np.testing.assert_array_equal(first, scored.column("both"))
    assert list(second) == [1, 2, 3]
    assert len(reads) == 1 + 1  # once for the cache, once for the comparison above
    assert cached.schema == scored.schema
    assert isinstance(cached.schema, Schema)
