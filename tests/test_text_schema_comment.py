"""ML.NET's schema comment in text files: ``save_as_text`` writes the ``#@ TextLoader{ ... #@ }``
lines ML.NET's SaveAsText writes (``schema=True``), ``load_from_text_file`` and ``infer_columns``
read a file's columns from them, including a file ML.NET wrote (tests/data/mlnet/Term.tsv, the
TermEstimatorTests baseline), and a crafted comment is bounded and rejected with the line named."""

from __future__ import annotations

import csv
import dataclasses
import io
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from onnxpipe import DataView, KeyType, MLContext, OnnxPipeWarning, Schema, TensorType, VectorType
from onnxpipe.data import _textloader as textloader
from onnxpipe.data import load_from_text_file, save_as_text
from onnxpipe.data._writers import open_writer
from onnxpipe.errors import DataError, ParseError
from onnxpipe.schema import Column, DType

ctx = MLContext(seed=0)
MLNET = Path(__file__).parent / "data" / "mlnet"


@dataclasses.dataclass
class Keyed:
    kind: Annotated[int, KeyType(4)]
    kinds: Annotated[npt.NDArray[np.uint32], KeyType(4), VectorType(2)]


def _view() -> DataView:
    """Scalars of several types, a vector, text holding separators and quotes, keys."""
    keys = ctx.data.load_from_enumerable(
        [Keyed(0, np.array([1, 4], np.uint32)), Keyed(3, np.array([0, 2], np.uint32)), Keyed(4, np.ones(2, np.uint32))],
        Keyed,
    )
    plain = ctx.data.load_from_dict(
        {
            "x": np.array([1.5, -2.25, np.nan], np.float32),
            "d": np.array([0.1, 1e300, -0.0], np.float64),
            "n": np.array([1, -2, 2**40], np.int64),
            "i": np.array([7, 8, -9], np.int32),
            "u": np.array([0, 255, 3], np.uint8),
            "b": np.array([True, False, True]),
            "name": np.array(["a", 'b, c; d | e "f"', " tab\there "], dtype=object),
            "v": np.arange(9, dtype=np.float32).reshape(3, 3),
        }
    )
    return _joined(plain, keys)


def _joined(*views: DataView) -> DataView:
    """The columns of one-batch views side by side."""
    batches = [next(iter(v.batches())) for v in views]
    schema = Schema([c for v in views for c in v.schema.columns])
    arrays = [b.column(i) for b in batches for i in range(b.num_columns)]
    table = pa.Table.from_arrays(arrays, names=schema.names)
    return DataView(schema, lambda: iter(table.to_batches()), table.num_rows)


def _assert_same(got: DataView, want: DataView) -> None:
    assert got.schema == want.schema
    for name in want.schema.names:
        g, w = np.asarray(got.column(name)), np.asarray(want.column(name))
        if w.dtype.kind == "f":
            np.testing.assert_array_equal(g, w)  # NaN == NaN here
        else:
            assert g.tolist() == w.tolist(), name


def _comment(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("#@")]


# --------------------------------------------------------------------------------------------
# writing


def test_save_as_text_writes_the_comment_ml_net_writes(tmp_path: Path) -> None:
    path = tmp_path / "out.tsv"
    assert save_as_text(_view(), path) == 3
    assert _comment(path) == [
        "#@ TextLoader{",
        "#@   header+",
        "#@   sep=tab",
        "#@   quote+",
        "#@   col=x:R4:0",
        "#@   col=d:R8:1",
        "#@   col=n:I8:2",
        "#@   col=i:I4:3",
        "#@   col=u:U1:4",
        "#@   col=b:BL:5",
        "#@   col=name:TX:6",
        "#@   col=v:R4:7-9",  # one file column per value
        "#@   col=kind:U4[4]:10",
        "#@   col=kinds:U4[4]:11-12",
        "#@ }",
    ]
    lines = path.read_text().splitlines()
    assert lines[15].split("\t")[:2] == ['"x"', '"d"']  # then the header
    # Keys as ML.NET writes them: key k as k - 1, the missing key 0 as an empty field.
    rows = list(csv.reader(lines[16:], delimiter="\t"))
    assert rows[2][6] == " tab\there "
    assert [row[10:13] for row in rows] == [["", "0", "3"], ["2", "", "1"], ["3", "0", "0"]]


def test_the_comment_spells_separators_names_and_types_as_ml_net(tmp_path: Path) -> None:
    view = ctx.data.load_from_dict(
        {
            "my col": np.array([1.0], np.float32),
            "Count of rows": np.array([1], np.int64),
            "a:b": np.array([1], np.int32),
            "x=y{": np.array(["p"], dtype=object),
            "half": np.array([0.5], np.float16),
            "grid": np.zeros((1, 2, 2), np.float64),
            "none": np.zeros((1, 0), np.float32),
        }
    )
    path = tmp_path / "out.csv"
    save_as_text(view, path, separator=",", header=False)
    assert _comment(path) == [
        "#@ TextLoader{",
        "#@   sep=comma",
        "#@   quote+",
        "#@   col={name={my col} src=0}",  # ML.NET's long form (type R4 left out, as it writes it)
        "#@   col={name={Count of rows} type=I8 src=1}",
        "#@   col={name=a:b type=I4 src=2}",
        "#@   col={name={x=y\\{} type=TX src=3}",
        "#@   col=half:R4:4",  # float16 is written as float32
        "#@   col=grid:R8:5-8",  # a tensor of several dimensions: a vector of its values
        "#@ }",  # a vector of no values takes no file column
    ]
    back = load_from_text_file(path)
    assert back.schema == Schema.of(
        **{
            "my col": TensorType(DType.FLOAT32),
            "Count of rows": TensorType(DType.INT64),
            "a:b": TensorType(DType.INT32),
            "x=y{": TensorType(DType.STRING),
            "half": TensorType(DType.FLOAT32),
            "grid": TensorType(DType.FLOAT64, (4,)),
        }
    )
    for separator, name in ((" ", "space"), (";", "semicolon"), ("|", "bar"), (":", ":"), ("#", "{#}")):
        save_as_text(view, path, separator=separator, columns=["my col"])
        assert _comment(path)[2] == f"#@   sep={name}"
        assert load_from_text_file(path).column("my col").tolist() == [1.0]


def test_nested_and_low_precision_columns_are_described_as_the_text_written(tmp_path: Path) -> None:
    from ml_dtypes import bfloat16

    table = pa.table({"seq": pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32())), "i": pa.array([1, 2], pa.int32())})
    nested = ctx.data.load_from_arrow(table)
    low = ctx.data.load_from_dict({"bf": np.array([0.5, 1.5], dtype=bfloat16)})
    path = tmp_path / "out.tsv"
    save_as_text(_joined(nested, low), path)
    assert _comment(path)[4:7] == ["#@   col=seq:TX:0", "#@   col=i:I4:1", "#@   col=bf:R4:2"]
    back = load_from_text_file(path)
    assert back.schema == Schema.of(
        seq=TensorType(DType.STRING), i=TensorType(DType.INT32), bf=TensorType(DType.FLOAT32)
    )
    assert back.column("seq").tolist() == ["[1.0,2.0]", "[3.0]"]  # the JSON text the file holds
    assert back.column("bf").tolist() == [0.5, 1.5]


def test_schema_false_writes_no_comment_and_keys_as_they_are(tmp_path: Path) -> None:
    view = _view()
    path = tmp_path / "out.tsv"
    save_as_text(view, path, schema=False)
    lines = path.read_text().splitlines()
    assert not _comment(path) and lines[0].startswith('"x"\t"d"')
    assert [row[10:13] for row in csv.reader(lines[1:], delimiter="\t")] == [
        ["0", "1", "4"],
        ["3", "0", "2"],
        ["4", "1", "1"],
    ]
    _assert_same(load_from_text_file(path, schema=view.schema, has_header=True), view)
    with pytest.raises(ValueError, match=r"schema must be True or False"):
        save_as_text(view, path, schema="yes")  # type: ignore[arg-type]


def test_predict_output_has_no_comment() -> None:
    """``onnxpipe predict`` writes CSV through open_writer: a plain table for other tools."""
    out = io.BytesIO()
    view = _view()
    writer = open_writer(out, "csv", view.schema)
    for batch in view.batches():
        writer.write(batch)
    writer.close()
    text = out.getvalue().decode()
    assert text.startswith('"x","d"') and "#@" not in text
    assert text.splitlines()[1].split(",")[-3:] == ["0", "1", "4"]  # keys as they are


def test_a_name_with_a_line_break_cannot_be_described(tmp_path: Path) -> None:
    view = ctx.data.load_from_dict({"a\nb": np.array([1.0], np.float32)})
    with pytest.raises(DataError, match=r"line break in its name.*schema=False"):
        save_as_text(view, tmp_path / "out.tsv")
    save_as_text(view, tmp_path / "out.tsv", schema=False)


# --------------------------------------------------------------------------------------------
# reading back


@pytest.mark.parametrize(("separator", "header"), [("\t", True), (",", True), (";", False), (" ", True), ("|", False)])
def test_save_then_load_round_trips_names_and_types(tmp_path: Path, separator: str, header: bool) -> None:
    view = _view()
    path = tmp_path / "out.txt"
    ctx.data.save_as_text(view, path, separator=separator, header=header)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = ctx.data.load_from_text_file(path)  # separator and header from the comment
    _assert_same(back, view)
    assert isinstance(back.schema["kinds"].type, KeyType) and back.schema["kinds"].type.count == 4
    # Given columns read the file too, keys in ML.NET's text included.
    _assert_same(load_from_text_file(path, schema=view.schema), view)
    assert [r.kind for r in ctx.data.create_enumerable(back, Keyed)] == [0, 3, 4]


def test_the_catalog_can_ignore_the_comment(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    data = ctx.data.load_from_arrow(pa.table({"width": pa.array([1.5, 2.0], pa.float64())}))
    ctx.data.save_as_text(data, path, separator=",")
    assert ctx.data.load_from_text_file(path).schema["width"].type == TensorType(DType.FLOAT64, ())
    plain = ctx.data.load_from_text_file(path, separator=",", has_header=True, schema_comment=False)
    assert plain.schema["width"].type == TensorType(DType.FLOAT32, ())  # guessed, as ML.NET guesses reals
    assert plain.column("width").tolist() == [1.5, 2.0]


def test_an_empty_view_round_trips(tmp_path: Path) -> None:
    view = _view()
    empty = DataView(view.schema, lambda: iter(()), 0)
    path = tmp_path / "out.tsv"
    assert save_as_text(empty, path) == 0
    back = load_from_text_file(path)
    assert back.schema == view.schema and back.count_rows() == 0


def test_a_lone_key_column_keeps_its_missing_keys(tmp_path: Path) -> None:
    # An empty field alone on its line would be a blank line, which readers skip: '?' instead.
    schema = Schema([Column("k", KeyType(None, dtype=DType.UINT8))])
    table = pa.table({"k": pa.array([0, 1, 255], pa.uint8())})
    path = tmp_path / "out.tsv"
    save_as_text(DataView(schema, lambda: iter(table.to_batches()), 3), path)
    assert _comment(path)[4] == "#@   col=k:U1[]:0"  # a key of unknown count
    assert path.read_text().splitlines()[-3:] == ["?", "0", "254"]
    back = load_from_text_file(path)
    assert back.schema == schema and back.column("k").tolist() == [0, 1, 255]


def test_arguments_given_win_over_the_comment_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    save_as_text(_view(), path, separator=",")
    said = r"says separator ','.*separator='\\t' was given.*arguments given are used"
    with pytest.warns(OnnxPipeWarning, match=said), pytest.raises(ParseError):  # read with tabs: one field a row
        load_from_text_file(path, separator="\t").count_rows()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_from_text_file(path, separator=",", has_header=True).count_rows() == 3
        # Ignoring the comment: the header's names, types inferred.
        plain = load_from_text_file(path, separator=",", has_header=True, schema_comment=False)
    assert plain.schema.names[:3] == ["x", "d", "n"] and "v.0" in plain.schema.names


def test_an_ml_net_baseline_file_loads_with_its_columns() -> None:
    """Term.tsv: written by ML.NET's TextSaver (TermEstimatorTests), header of slot names that
    repeat, keys in ML.NET's text (0-based) and '?' in text columns."""
    view = ctx.data.load_from_text_file(MLNET / "Term.tsv")
    f4, d4, t2 = TensorType(DType.FLOAT32, (4,)), TensorType(DType.FLOAT64, (4,)), TensorType(DType.STRING, (2,))
    assert view.schema == Schema(
        [
            Column("float1", TensorType(DType.FLOAT32)),
            Column("float4", f4),
            Column("double1", TensorType(DType.FLOAT64)),
            Column("double4", d4),
            Column("int1", TensorType(DType.INT32)),
            Column("text1", TensorType(DType.STRING)),
            Column("text2", t2),
            Column("TermFloat1", KeyType(10)),
            Column("TermFloat4", KeyType(30, shape=(4,))),
            Column("TermDouble1", KeyType(10)),
            Column("TermDouble4", KeyType(30, shape=(4,))),
            Column("TermInt1", KeyType(10)),
            Column("TermText1", KeyType(4)),
            Column("TermText2", KeyType(11, shape=(2,))),
        ]
    )
    assert view.count_rows() == 10
    assert view.column("float4")[1].tolist() == [38, 89814, 9, 0]
    assert view.column("text2")[4].tolist() == ["?", "Some-college"]
    assert view.column("TermFloat1").tolist() == list(range(1, 11))  # text 0..9: keys 1..10
    assert view.column("TermText2")[:3].tolist() == [[1, 2], [1, 3], [4, 5]]
    inferred = ctx.data.infer_columns(MLNET / "Term.tsv")
    assert (inferred.separator, inferred.has_header, inferred.schema_comment) == ("\t", True, True)
    assert inferred.schema == view.schema and inferred.load().count_rows() == 10


def test_ml_net_long_forms_old_key_ranges_and_hidden_columns(tmp_path: Path) -> None:
    # Lines of ML.NET baselines: the long form for names that need quoting, the old [min-max]
    # key form, a later column hiding an earlier one of the same name (keepHidden), Text{.
    path = tmp_path / "mlnet.tsv"
    path.write_text(
        "#@ Text{\n"
        "#@   sep=tab\n"
        "#@   col={name={Count of training examples} type=I8 src=0}\n"
        "#@   col=Label:R4:1\n"
        "#@   col=Label:BL:2\n"
        "#@   col=Group:U8[0-5]:3\n"
        "#@   col=Features:R4:4,6\n"
        "#@   col=Rest:R8:7-*\n"
        "#@ }\n"
        "10\t0.5\t1\t\t1\t2\t3\t4\n"
        "11\t1.5\t0\t5\t5\t6\t7\t8\n"
    )
    view = load_from_text_file(path)
    assert view.schema == Schema(
        [
            Column("Count of training examples", TensorType(DType.INT64)),
            Column("Label", TensorType(DType.BOOL)),
            Column("Group", KeyType(6, dtype=DType.UINT64)),
            Column("Features", TensorType(DType.FLOAT32, (2,))),  # two ranges: one vector
            Column("Rest", TensorType(DType.FLOAT64, (1,))),  # to the end of the row
        ]
    )
    assert view.column("Group").tolist() == [0, 6]  # empty: the missing key
    assert view.column("Features").tolist() == [[1, 3], [5, 7]]
    assert view.column("Rest").tolist() == [[4], [8]]
    assert view.column("Label").tolist() == [True, False]


def test_infer_columns_returns_the_comment_schema(tmp_path: Path) -> None:
    view = _view()
    path = tmp_path / "out.csv"
    save_as_text(view, path, separator=";")
    inferred = ctx.data.infer_columns(path)
    assert (inferred.separator, inferred.has_header, inferred.schema_comment) == (";", True, True)
    assert inferred.schema == view.schema
    _assert_same(inferred.load(), view)


# --------------------------------------------------------------------------------------------
# crafted comments


def _file(tmp_path: Path, *comment: str, rows: str = "1\t2\n") -> Path:
    path = tmp_path / "crafted.tsv"
    path.write_text("".join(f"#@ {line}\n" for line in comment) + rows)
    return path


@pytest.mark.parametrize(
    ("comment", "message"),
    [
        (["TextLoader{", "col=A:F9:0", "}"], r"line 2, .*column 'A': unknown type 'F9'"),
        (
            ["TextLoader{", "col=A:R4:0", "col=B:R4:5", "}"],
            r"line 3, .*column 'B' reads file column 5, but the rows have 2",
        ),
        (["TextLoader{", "col=A:R4:1-**", "}"], r"line 2, .*vector of varying length"),
        (["TextLoader{", "col=A:R4:3-1", "}"], r"line 2, .*'1' is not an index from 3 on"),
        (["TextLoader{", "col=A:R4:x", "}"], r"line 2, .*'x' is not a file column index"),
        (["TextLoader{", "col=A:R4[3]:0", "}"], r"line 2, .*a key is U1, U2, U4 or U8, not R4"),
        (["TextLoader{", "col=A:U1[300]:0", "}"], r"line 2, .*300 keys do not fit U1"),
        (["TextLoader{", "col={name=A src={ min=-1 var=+}}", "}"], r"line 2, .*no known place in the row"),
        (["TextLoader{", "header+", "eval=__import__('os')", "}"], r"line 3, .*unknown setting 'eval'"),
        (["TextLoader{", "sep=tab,comma", "col=A:R4:0", "}"], r"line 2, .*several separators"),
        (["TextLoader{", "col=A:R4:0"], r"line 2, .*TextLoader\{ is not closed"),
        (["TextLoader{", "}"], r"line 1, .*no col= column"),
        (["hello"], r"line 1, .*must hold TextLoader\{"),
    ],
)
def test_a_crafted_comment_is_a_parse_error_naming_its_line(tmp_path: Path, comment: list[str], message: str) -> None:
    path = _file(tmp_path, *comment)
    with pytest.raises(ParseError, match=message):
        load_from_text_file(path)
    with pytest.raises(ParseError, match=message):
        ctx.data.infer_columns(path)
    # Columns given: a comment that cannot be read is ignored, with a warning (one that reads
    # but names columns the file does not have is not used).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        view = load_from_text_file(path, schema=Schema.of(a=TensorType(DType.FLOAT32), b=TensorType(DType.FLOAT32)))
    assert view.column("b").tolist() == [2.0]
    ignored = [w for w in caught if "the comment is ignored" in str(w.message)]
    assert len(ignored) == (0 if "reads file column" in message else 1)


def test_a_huge_comment_is_refused_after_its_limit(tmp_path: Path) -> None:
    lines = textloader.MAX_COMMENT_LINES + 10
    path = _file(tmp_path, "TextLoader{", *(["col=A:R4:0"] * lines), "}")
    with pytest.raises(ParseError, match=rf"line {textloader.MAX_COMMENT_LINES + 1}: .*goes on past"):
        load_from_text_file(path)


def test_too_many_columns_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textloader, "MAX_COMMENT_COLUMNS", 3)
    path = _file(tmp_path, "TextLoader{", *(f"col=C{k}:R4:0" for k in range(5)), "}")
    with pytest.raises(ParseError, match=r"line 5, .*more than 3 columns"):
        load_from_text_file(path)


def test_columns_reading_a_row_many_times_over_are_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "TextLoader{", *(f"col=C{k}:R4:0-1" for k in range(3)), "}")
    with pytest.raises(ParseError, match=r"reads 6 values from rows of 2 fields"):
        load_from_text_file(path)
