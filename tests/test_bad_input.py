"""Bad input at every public entry point: each case works as documented or raises the library's error.

Every case below is one row of a table ``entry point x bad input -> outcome``: either the documented
result (asserted), or the error class from ``onnxpipe.errors`` with a message that names the
column (or step, tensor, file) and says what to do. A case given ``gap=`` is a strict xfail that
documents a known gap and the fix it needs (none today).

Where the documentation was silent the battery settles the behaviour as ML.NET / scikit-learn users
expect. Summary (also in the README):

| entry point | bad input | outcome |
|---|---|---|
| rows (enumerable, engine) | text into numbers, float into int, int into bool, bytes | ColumnTypeError: column, row |
| rows | wrong size or rank, ragged nested lists | ShapeError naming column, field and row |
| rows | float64 into float32, ints into floats | converted (`DType.converts_safely_to`) |
| rows | NaN / ±inf in float fields | kept (NaN is the missing value) |
| rows | float64 beyond float32's range | ±inf without a warning, as ONNX Cast |
| rows | `None` in a number or tensor field | ColumnTypeError "the value is None" |
| rows | an int beyond int64 | ColumnTypeError "does not fit in int64" |
| rows | a str with a lone surrogate (undecodable bytes) | DataError naming column and row (engine path) |
| rows | a row of another class, a dict | SchemaError "rows must be <Class> instances" |
| rows | 10 MB strings | kept whole |
| loaders | batch_size 0, negative or bool / 10**9 | InvalidArgumentError / one batch, nothing sized by it |
| load_from_text_file | bytes that are not UTF-8 (cell or header) | ParseError naming the column: re-encode as UTF-8 |
| load_from_text_file | rows with fewer or more fields | ParseError: same number of fields, check the separator |
| load_from_text_file | text in a number or bool column | ParseError naming file column and field, with remedies |
| load_from_text_file | missing value in a non-float column | DataError naming column and row |
| load_from_text_file | missing float, "inf", "NaN" | NaN, ±inf |
| load_from_text_file | LoadColumn past the last column, field absent from the header | SchemaError naming the field |
| load_from_text_file | empty file / header only | DataError "no data rows" / 0 rows with the declared schema |
| load_from_text_file | a 10 MB field | read whole (the read block grows as needed) |
| pandas / arrow / parquet | not a DataFrame / Table | InvalidArgumentError / SchemaError |
| pandas / arrow / parquet | duplicate column names | SchemaError naming the column |
| load_from_pandas | mixed-type object column, n-dimensional cells | ColumnTypeError naming the column |
| pandas / arrow / parquet | None / NA outside float columns, nulls inside vectors | DataError naming column, row |
| pandas / arrow / parquet | unsupported types (datetime, date, binary, null) | ColumnTypeError naming the column |
| pandas / arrow / parquet | ragged array cells / empty frame | a vector of unknown size / 0 rows |
| load_from_arrow | damaged onnxpipe field metadata | SchemaError naming the column |
| load_from_parquet | not Parquet, empty or missing file | DataError / DataFileNotFoundError |
| apply_onnx_model | input column missing / extra columns | ColumnNotFoundError listing the columns / passed through |
| apply_onnx_model | text into numbers, uint64 or float into int64 | ColumnTypeError: column, tensor, types; convert |
| apply_onnx_model | float64, ints, bool into float32 | converted automatically (float64 beyond float32: ±inf) |
| apply_onnx_model | NaN / ±inf | passed to ONNX Runtime unchanged |
| apply_onnx_model | wrong vector size or rank, a scalar, ragged rows | ShapeError naming column, tensor, both shapes |
| apply_onnx_model | empty data | empty output with the promised schema |
| apply_onnx_model | batch_size 0, negative, bool, float / 10**9 | InvalidArgumentError / works, buffers sized by data |
| create_prediction_engine | input class lacking a column, wrong size or type | errors at creation, naming the column |
| create_prediction_engine | output field absent / other type; an estimator | ColumnNotFound, ColumnType, InvalidArg |
| trainers | empty data | DataError "the training data has no rows" |
| trainers | NaN / ±inf features | linear: skipped (`rows_skipped`); LightGBM: missing value; k-means: skipped, warns |
| trainers | no usable row | DataError (LightGBM trains: NaN is a value to it) |
| trainers | NaN label | linear: row skipped; LightGBM: DataError naming the row |
| trainers | binary label other than 0/1 | DataError naming column, value and row |
| trainers | a single class | linear: trains as ML.NET does (every score < 0); LightGBM: DataError |
| trainers | text label; int features | ColumnTypeError (k-means reads int features) |
| trainers | features of unknown size | ShapeError: declare VectorType(n) |
| trainers | Features or Label missing | ColumnNotFoundError |
| normalizers | NaN / ±inf / constant slots | as `transforms.normalization` documents |
| normalizers | fit on empty data | DataError (lp_norm, global_contrast: nothing to learn) |
| normalizers | text, int or unknown-size column | ColumnTypeError / ShapeError |
| concatenate | mixed element types / missing column / none | ColumnTypeError / ColumnNotFound / InvalidArgument |
| one_hot_encoding, map_value_to_key | unseen value, NaN | all-zero vector / key 0 (ML.NET) |
| one_hot_encoding, map_value_to_key | other type than fitted / empty fit | ColumnTypeError / DataError |
| hash | 10 MB strings | hashed whole (about a second per 10 MB) |
| convert_type | NaN or out of range into an int type | DataError naming the column |
| replace_missing_values, indicate_missing_values | int or text column | ColumnTypeError |
| evaluate (binary, regression) | Score or Label missing / empty data | ColumnNotFoundError / DataError |
| evaluate | NaN scores or labels | rows skipped; none left: DataError |
| convert_to_onnx | unexportable step / empty data | ExportError naming the step / works (schema only) |
| convert_to_onnx | a path in a missing folder | DataFileNotFoundError |
| train_test_split, cross_validate | test_fraction outside (0, 1) or not a number; 1 fold | InvalidArgumentError |
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpipe as op
from onnxpipe import ColumnName, LoadColumn, VectorType
from onnxpipe.data import DataView
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataError,
    DataFileNotFoundError,
    ExportError,
    InvalidArgumentError,
    ModelLoadError,
    OnnxPipeError,
    ParseError,
    SchemaError,
    ShapeError,
    TensorNotFoundError,
)

from . import models

ctx = op.MLContext(seed=0)

# ============================================================================ the table's machinery


@dataclasses.dataclass(frozen=True)
class Raises:
    """The case raises ``error`` (a library error) with a message matching ``match``."""

    error: type[OnnxPipeError]
    match: str
    warns: tuple[type[Warning], str] | None = None


@dataclasses.dataclass(frozen=True)
class Works:
    """The case works; ``check`` asserts the documented result (or returns whether it holds)."""

    check: Callable[[Any], object]
    warns: tuple[type[Warning], str] | None = None


Action = Callable[[Path], Any]


def _drain(result: Any) -> Any:
    """Read a lazy result to the end, so that errors raised when data flows show up."""
    if isinstance(result, DataView):
        result.to_arrow()
    elif isinstance(result, Iterator):
        list(result)
    return result


def _verify(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    warned = pytest.warns(expected.warns[0], match=expected.warns[1]) if expected.warns else contextlib.nullcontext()
    with warned:
        if isinstance(expected, Raises):
            assert issubclass(expected.error, OnnxPipeError)
            with pytest.raises(expected.error, match=expected.match):
                _drain(action(tmp_path))
        else:
            verdict = expected.check(action(tmp_path))
            assert verdict is None or bool(verdict), f"the documented result does not hold ({verdict!r})"


def case(name: str, action: Action, expected: Raises | Works, *, gap: str | None = None) -> Any:
    """One row of a table; ``gap`` marks a known gap (strict xfail) and says the fix."""
    marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
    return pytest.param(action, expected, id=name, marks=marks)


def _column(name: str, expected: Any) -> Callable[[Any], None]:
    """A check: the view's column ``name`` equals ``expected`` (NaN equal to NaN)."""

    def check(view: DataView) -> None:
        got = view.column(name)
        if isinstance(expected, list) and expected and isinstance(expected[0], str):
            assert list(got) == expected  # (no numpy string arrays: 10 MB strings would take 40 MB each)
        elif isinstance(expected, list) and expected and isinstance(expected[0], np.ndarray):
            assert len(got) == len(expected)
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_array_equal(g, e)
        else:
            actual = np.asarray(got)
            np.testing.assert_array_equal(actual, np.asarray(expected, dtype=actual.dtype))

    return check


def _arrow(**columns: pa.Array) -> DataView:
    return ctx.data.load_from_arrow(pa.table(columns))


def _vectors(rows: list[list[Any]], element: pa.DataType | None = None, size: int | None = None) -> pa.Array:
    """A fixed-size-list column (a vector of known size) from rows of values."""
    element = element or pa.float32()
    size = size if size is not None else (len(rows[0]) if rows else 3)
    return pa.array(rows, pa.list_(element, size))


def _file(tmp_path: Path, content: bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


NAN, INF = float("nan"), float("inf")

# ============================================================================ loaders


@dataclasses.dataclass
class Row:
    Label: bool
    Features: Annotated[npt.NDArray[np.float32], VectorType(3)]
    Name: str
    Age: int


@dataclasses.dataclass
class Other:
    Features: Annotated[npt.NDArray[np.float32], VectorType(3)]


def _row(**changes: Any) -> Row:
    values: dict[str, Any] = {"Label": True, "Features": np.ones(3, np.float32), "Name": "a", "Age": 3}
    values.update(changes)
    return Row(**values)


def _enumerable(*rows: Any, batch_size: int = 65536) -> Action:
    return lambda _: ctx.data.load_from_enumerable(list(rows), Row, batch_size=batch_size)


def _schema_is(text: str, rows: int) -> Callable[[DataView], None]:
    def check(view: DataView) -> None:
        assert str(view.schema) == text
        assert view.count_rows() == rows

    return check


ENUMERABLE_CASES = [
    case(
        "text-in-float-vector",
        _enumerable(_row(Features=np.array(["a", "b", "c"]))),
        Raises(
            ColumnTypeError, r"column 'Features' \(field Row.Features\), row 0: expected float32 values, got strings"
        ),
    ),
    case(
        "ragged-nested-list",
        _enumerable(_row(Features=[1.0, [2.0, 3.0]])),
        Raises(ShapeError, r"column 'Features' \(field Row.Features\), row 0: cannot read list as a tensor"),
    ),
    case(
        "vector-too-short",
        _enumerable(_row(), _row(Features=np.ones(2, np.float32))),
        Raises(ShapeError, r"column 'Features' \(field Row.Features\), row 1: expected shape \(3\) \(3 values\), got"),
    ),
    case(
        "vector-wrong-rank",
        _enumerable(_row(Features=np.ones((3, 2), np.float32))),
        Raises(ShapeError, r"column 'Features' .*expected shape \(3\) \(3 values\), got shape \(3, 2\) \(6 values\)"),
    ),
    case(
        "float-in-int-field",
        _enumerable(_row(Age=3.5)),
        Raises(ColumnTypeError, r"column 'Age' \(field Row.Age\), row 0: expected int64 values, got float64; convert"),
    ),
    case(
        "text-in-int-field",
        _enumerable(_row(Age="3")),
        Raises(ColumnTypeError, r"column 'Age' \(field Row.Age\), row 0: expected int64 values, got strings"),
    ),
    case(
        "int-in-bool-field",
        _enumerable(_row(Label=1)),
        Raises(ColumnTypeError, r"column 'Label' \(field Row.Label\), row 0: expected bool values, got int64; convert"),
    ),
    case(
        "bytes-in-str-field",
        _enumerable(_row(Name=b"\xff\xfe")),
        Raises(ColumnTypeError, r"column 'Name' \(field Row.Name\), row 0: expected strings, got a bytes value"),
    ),
    case(
        "none-in-str-field",
        _enumerable(_row(Name=None)),
        Raises(ColumnTypeError, r"column 'Name' \(field Row.Name\), row 0: expected strings, got a NoneType value"),
    ),
    case(
        "none-in-vector-field",
        _enumerable(_row(Features=None)),
        Raises(ColumnTypeError, r"column 'Features' \(field Row.Features\), row 0: the value is None"),
    ),
    case(
        "none-in-int-field",
        _enumerable(_row(Age=None)),
        Raises(ColumnTypeError, r"column 'Age' \(field Row.Age\), row 0: the value is None"),
    ),
    case(
        "int-beyond-int64",
        _enumerable(_row(Age=2**70)),
        Raises(
            ColumnTypeError, r"column 'Age' \(field Row.Age\), row 0: the value 1180591620717411303424 does not fit"
        ),
    ),
    case(
        "lone-surrogate-str",
        _enumerable(_row(), _row(Name="caf\udce9")),
        Raises(DataError, r"column 'Name' \(field Row.Name\), row 1: the string is not valid Unicode .*real encoding"),
    ),
    case(
        "float64-beyond-float32",
        _enumerable(_row(Features=np.array([1e300, -1e300, 1.0]))),
        Works(_column("Features", [[INF, -INF, 1.0]])),
    ),
    case(
        "float64-vector-converted",
        _enumerable(_row(Features=[1.5, 2.0, 3.0])),
        Works(_column("Features", [[1.5, 2, 3]])),
    ),
    case("int-vector-converted", _enumerable(_row(Features=np.arange(3))), Works(_column("Features", [[0.0, 1, 2]]))),
    case(
        "nan-and-inf-kept",
        _enumerable(_row(Features=np.array([NAN, INF, -INF], np.float32))),
        Works(_column("Features", [[NAN, INF, -INF]])),
    ),
    case("ten-mb-string", _enumerable(_row(Name="x" * 10_000_000)), Works(lambda v: len(v.column("Name")[0]) == 10**7)),
    case(
        "row-of-another-class",
        _enumerable(_row(), Other(np.ones(3, np.float32))),
        Raises(SchemaError, r"column 'Label' \(field Row.Label\): a row of type Other has no attribute 'Label'; rows "),
    ),
    case(
        "dict-rows",
        _enumerable({"Label": True}),
        Raises(SchemaError, r"a row of type dict has no attribute 'Label'; rows must be Row instances"),
    ),
    case(
        "batch-size-zero", _enumerable(_row(), batch_size=0), Raises(InvalidArgumentError, "batch_size must be a pos")
    ),
    case("batch-size-negative", _enumerable(batch_size=-5), Raises(InvalidArgumentError, "batch_size must be a posit")),
    case(
        "batch-size-bool", _enumerable(batch_size=True), Raises(InvalidArgumentError, "batch_size must be a positive")
    ),
    case(
        "batch-size-huge",
        _enumerable(_row(), _row(), batch_size=10**9),
        Works(lambda v: [b.num_rows for b in v.batches()] == [2]),
    ),
    case(
        "no-rows",
        _enumerable(),
        Works(_schema_is("Schema(Label: bool, Features: float32[3], Name: string, Age: int64)", 0)),
    ),
]


@pytest.mark.parametrize(("action", "expected"), ENUMERABLE_CASES)
def test_load_from_enumerable(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


@dataclasses.dataclass
class TextRow:
    Label: Annotated[bool, LoadColumn(0)]
    x: Annotated[float, LoadColumn(1)]
    name: Annotated[str, LoadColumn(2)]


@dataclasses.dataclass
class TextVector:
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(0, 2), VectorType(3)]


@dataclasses.dataclass
class Named:
    Label: bool
    missing_field: float


def _text(content: bytes, row_class: type | None = TextRow, *, has_header: bool = False) -> Action:
    return lambda tmp: ctx.data.load_from_text_file(
        _file(tmp, content), row_class, separator=",", has_header=has_header
    )


_BIG = "y" * 10_000_000
_REENCODE = r"the file must be UTF-8 text: re-encode it"
_SAME_FIELDS = r"every row must have the same number of fields \(3\); check the separator \(','\)"

TEXT_CASES = [
    case(
        "non-utf8-cell",
        _text(b"true,1.5,caf\xe9\nfalse,2,b\n"),
        Raises(ParseError, rf"file column 2 \('column2'\), read into column 'name': .*invalid UTF8.*; {_REENCODE}"),
    ),
    case(
        "latin1-file-inferred",
        _text("a,b\n1,café\n".encode("latin-1"), None, has_header=True),
        Raises(ParseError, rf"data.csv': file column 1 \('b'\): .*invalid UTF8 data; {_REENCODE}"),
    ),
    case(
        "non-utf8-header",
        _text(b"Label,x,caf\xe9\ntrue,1,a\n", None, has_header=True),
        Raises(ParseError, r"the header line \(line 1\) is not valid UTF-8 .*; re-encode the file as UTF-8"),
    ),
    case(
        "row-with-fewer-fields",
        _text(b"true,1.5,a\nfalse,2\n"),
        Raises(ParseError, rf"Expected 3 columns, got 2: false,2; {_SAME_FIELDS}"),
    ),
    case(
        "row-with-more-fields",
        _text(b"true,1.5,a\nfalse,2,b,extra\n"),
        Raises(ParseError, rf"Expected 3 columns, got 4: false,2,b,extra; {_SAME_FIELDS}"),
    ),
    case(
        "text-in-float-column",
        _text(b"true,1.5,a\ntrue,abc,b\n"),
        Raises(
            ParseError,
            r"file column 1 \('column1'\), read into column 'x': .*invalid value 'abc'; fix or remove the value, add "
            r"it to missing_values",
        ),
    ),
    case(
        "text-in-bool-column",
        _text(b"maybe,1,a\n"),
        Raises(ParseError, r"file column 0 \('column0'\), read into column 'Label': .*to bool: invalid value 'maybe'"),
    ),
    case(
        "text-in-vector-column",
        _text(b"Label,y,name\ntrue,1,a\n", TextVector, has_header=True),
        Raises(ParseError, r"file column 0 \('Label'\), read into column 'Features': .*invalid value 'true'"),
    ),
    case(
        "missing-in-bool-column",
        _text(b"true,1,a\n,2,b\n"),
        Raises(DataError, r"column 'Label' has a missing value at row 1; only scalar float columns may have missing"),
    ),
    case("missing-float-is-nan", _text(b"true,,a\n"), Works(_column("x", [NAN]))),
    case("inf-and-nan-text", _text(b"true,inf,a\ntrue,-inf,b\ntrue,NaN,c\n"), Works(_column("x", [INF, -INF, NAN]))),
    case("missing-in-vector-is-nan", _text(b"1,,3\n", TextVector), Works(_column("Features", [[1.0, NAN, 3.0]]))),
    case(
        "too-few-columns",
        _text(b"true,1.5\n"),
        Raises(SchemaError, r"TextRow.name: LoadColumn index 2 is past the last column of 'data.csv', which has 2 col"),
    ),
    case(
        "field-not-in-header",
        _text(b"Label,x\ntrue,1\n", Named, has_header=True),
        Raises(SchemaError, r"Named.missing_field: no LoadColumn\(index\) marker and no file column named 'missing_f"),
    ),
    case("empty-file", _text(b""), Raises(DataError, r"data.csv' has no data rows to read a column layout from")),
    case("empty-file-inferred", _text(b"", None), Raises(DataError, r"has no data rows to read a column layout from")),
    case(
        "header-only",
        _text(b"Label,x,name\n", has_header=True),
        Works(_schema_is("Schema(Label: bool, x: float32, name: string)", 0)),
    ),
    case("header-only-inferred", _text(b"a,b\n", None, has_header=True), Works(lambda v: v.count_rows() == 0)),
    case(
        "ten-mb-field",
        _text(f"true,1,{_BIG}\nfalse,2,b\n".encode()),
        Works(_column("name", [_BIG, "b"])),
    ),
    case(
        "ten-mb-field-inferred",
        _text(f"1,{_BIG}\n2,b\n".encode(), None),
        Works(_column("column1", [_BIG, "b"])),
    ),
    case(
        "missing-file",
        lambda tmp: ctx.data.load_from_text_file(tmp / "nope.csv", TextRow),
        Raises(DataFileNotFoundError, r"nope.csv' does not exist \(or is not a file\)"),
    ),
    case(
        "two-char-separator",
        lambda tmp: ctx.data.load_from_text_file(_file(tmp, b"1"), TextRow, separator=",,"),
        Raises(SchemaError, r"separator must be one character, got ',,'"),
    ),
]


@pytest.mark.parametrize(("action", "expected"), TEXT_CASES)
def test_load_from_text_file(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


def test_long_row_in_the_middle_keeps_every_row_in_order(tmp_path: Path) -> None:
    # A row longer than the read block makes the reader start again with bigger blocks; the rows
    # already streamed must be neither repeated nor lost.
    from onnxpipe.data._loaders import load_from_text_file

    lines = [f"{i},s{i}" for i in range(3000)]
    lines[2000] = "2000," + "z" * 50_000
    lines.insert(100, "")  # a blank line counts for no row
    path = _file(tmp_path, ("\n".join(lines) + "\n").encode())
    view = load_from_text_file(path, separator=",", block_size=4096)
    np.testing.assert_array_equal(view.column("column0"), np.arange(3000))
    names = view.column("column1")
    assert len(names[2000]) == 50_000 and names[1999] == "s1999" and names[2001] == "s2001"


def _pandas(frame: Callable[[], Any]) -> Action:
    return lambda _: ctx.data.load_from_pandas(frame())


def _parquet(table: Callable[[], pa.Table]) -> Action:
    def load(tmp: Path) -> DataView:
        path = tmp / "data.parquet"
        pq.write_table(table(), path)
        return ctx.data.load_from_parquet(path)

    return load


_DAMAGED_METADATA = pa.schema([pa.field("a", pa.float64(), metadata={b"onnxpipe.type": b"{not json"})])

TABLE_CASES = [
    case(
        "pandas-not-a-dataframe",
        lambda _: ctx.data.load_from_pandas([1, 2]),
        Raises(InvalidArgumentError, r"load_from_pandas expects a pandas DataFrame, got list; build one with"),
    ),
    case(
        "pandas-duplicate-columns",
        _pandas(lambda: pd.DataFrame([[1, 2]], columns=["a", "a"])),
        Raises(SchemaError, r"load_from_pandas: column 'a' appears more than once; .*rename or drop the duplicates"),
    ),
    case(
        "pandas-mixed-object-column",
        _pandas(lambda: pd.DataFrame({"ok": [1.0, 2.0], "m": [1, "a"]})),
        Raises(ColumnTypeError, r"load_from_pandas: column 'm' \(dtype object\) cannot be stored: .*one type"),
    ),
    case(
        "pandas-2d-array-cells",
        _pandas(lambda: pd.DataFrame({"v": [np.ones((2, 2), np.float32)]})),
        Raises(ColumnTypeError, r"column 'v' \(dtype object\) cannot be stored: .*flatten n-dimensional arrays"),
    ),
    case(
        "pandas-none-in-text",
        _pandas(lambda: pd.DataFrame({"s": ["x", None]})),
        Raises(DataError, r"column 's' has a missing value at row 1; only scalar float columns .*Fill or drop them"),
    ),
    case(
        "pandas-na-in-int",
        _pandas(lambda: pd.DataFrame({"i": pd.array([1, None], dtype="Int64")})),
        Raises(DataError, r"column 'i' has a missing value at row 1"),
    ),
    case(
        "pandas-datetime",
        _pandas(lambda: pd.DataFrame({"t": pd.to_datetime(["2020-01-01"])})),
        Raises(ColumnTypeError, r"column 't': Arrow type timestamp\[.*\] is not supported; supported are numbers"),
    ),
    case("pandas-none-in-float", _pandas(lambda: pd.DataFrame({"a": [1.0, None]})), Works(_column("a", [1.0, NAN]))),
    case(
        "pandas-ragged-array-cells",
        _pandas(lambda: pd.DataFrame({"v": [np.ones(2, np.float32), np.ones(3, np.float32)]})),
        Works(_column("v", [np.ones(2, np.float32), np.ones(3, np.float32)])),
    ),
    case(
        "pandas-empty",
        _pandas(lambda: pd.DataFrame({"a": pd.Series([], dtype="float32")})),
        Works(_schema_is("Schema(a: float32)", 0)),
    ),
    case(
        "pandas-batch-size-zero",
        lambda _: ctx.data.load_from_pandas(pd.DataFrame({"a": [1.0]}), batch_size=0),
        Raises(InvalidArgumentError, r"load_from_pandas: batch_size must be a positive integer, got 0"),
    ),
    case(
        "arrow-not-a-table",
        lambda _: ctx.data.load_from_arrow({"a": [1]}),  # type: ignore[arg-type]
        Raises(SchemaError, r"load_from_arrow expects a pyarrow Table or RecordBatch, got dict"),
    ),
    case(
        "arrow-duplicate-columns",
        lambda _: ctx.data.load_from_arrow(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])),
        Raises(SchemaError, r"load_from_arrow: column 'a' appears more than once"),
    ),
    case(
        "arrow-null-in-int",
        lambda _: _arrow(a=pa.array([1, None])),
        Raises(DataError, r"load_from_arrow: column 'a' has a missing value at row 1"),
    ),
    case(
        "arrow-null-inside-vector",
        lambda _: _arrow(v=_vectors([[1.0, 2.0], [1.0, None]])),
        Raises(DataError, r"column 'v' has a missing value inside the float32\[2\] tensor at row 1; tensors cannot"),
    ),
    case(
        "arrow-null-type",
        lambda _: _arrow(a=pa.nulls(2)),
        Raises(ColumnTypeError, r"column 'a': Arrow type null is not supported"),
    ),
    case(
        "arrow-binary-non-utf8",
        lambda _: _arrow(b=pa.array([b"\xff"], pa.binary())),
        Raises(ColumnTypeError, r"column 'b': Arrow type binary is not supported"),
    ),
    case(
        "arrow-damaged-metadata",
        lambda _: ctx.data.load_from_arrow(pa.table({"a": [1.0]}).cast(_DAMAGED_METADATA)),
        Raises(SchemaError, r"column 'a'.*onnxpipe.type"),
    ),
    case(
        "arrow-huge-batch",
        lambda _: ctx.data.load_from_arrow(pa.table({"a": [1]}), batch_size=10**12),
        Works(lambda v: [b.num_rows for b in v.batches()] == [1]),
    ),
    case("arrow-empty", lambda _: _arrow(a=pa.array([], pa.float32())), Works(_schema_is("Schema(a: float32)", 0))),
    case(
        "parquet-null-in-int",
        _parquet(lambda: pa.table({"a": pa.array([1, None])})),
        Raises(DataError, r"Parquet file 'data.parquet': column 'a' has a missing value at row 1"),
    ),
    case(
        "parquet-duplicate-columns",
        _parquet(lambda: pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])),
        Raises(DataError, r"Parquet file 'data.parquet': column 'a' appears more than once"),
    ),
    case(
        "parquet-date",
        _parquet(lambda: pa.table({"d": pa.array([1], pa.date32())})),
        Raises(ColumnTypeError, r"column 'd': Arrow type date32\[day\] is not supported"),
    ),
    case(
        "parquet-zero-rows",
        _parquet(lambda: pa.table({"a": pa.array([], pa.float32())})),
        Works(_schema_is("Schema(a: float32)", 0)),
    ),
    case(
        "parquet-not-parquet",
        lambda tmp: ctx.data.load_from_parquet(_file(tmp, b"not parquet at all", "x.parquet")),
        Raises(DataError, r"cannot read Parquet file .*x.parquet'"),
    ),
    case(
        "parquet-empty-file",
        lambda tmp: ctx.data.load_from_parquet(_file(tmp, b"", "x.parquet")),
        Raises(DataError, r"cannot read Parquet file .*x.parquet'"),
    ),
    case(
        "parquet-missing-file",
        lambda tmp: ctx.data.load_from_parquet(tmp / "nope.parquet"),
        Raises(DataFileNotFoundError, r"Parquet file .*nope.parquet' does not exist"),
    ),
]


@pytest.mark.parametrize(("action", "expected"), TABLE_CASES)
def test_load_from_tables(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


# ============================================================================ apply_onnx_model


def _doubler(shape: list[Any], element: int = TensorProto.FLOAT) -> bytes:
    """``x [shape] -> y = 2x`` of one element type."""
    two = numpy_helper.from_array(np.array(2, helper.tensor_dtype_to_np_dtype(element)), "two")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "doubler",
        [helper.make_tensor_value_info("x", element, shape)],
        [helper.make_tensor_value_info("y", element, shape)],
        [two],
    )
    return models.serialized(graph)


DOUBLER = _doubler(["N", 3])
FIXED_BATCH = _doubler([1, 3])
INT_DOUBLER = _doubler(["N", 3], TensorProto.INT64)
STRINGS = models.string_lookup()


def _onnx(columns: Callable[[], DataView], model: bytes = DOUBLER, **options: Any) -> Action:
    return lambda _: ctx.transforms.apply_onnx_model(model_bytes=model, **options).transform(columns())


@dataclasses.dataclass
class Matrix:
    x: Annotated[npt.NDArray[np.float32], VectorType(2, 3)]


def _peak_numpy_bytes(action: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _huge_batch_size(_: Path) -> tuple[Any, int]:
    view = _arrow(x=_vectors([[1, 2, 3]] * 5))
    model = ctx.transforms.apply_onnx_model(model_bytes=DOUBLER, batch_size=1 << 20)
    return _peak_numpy_bytes(lambda: model.transform(view).column("y"))


def _check_huge_batch(result: tuple[Any, int]) -> None:
    scores, peak = result
    np.testing.assert_array_equal(scores, np.full((5, 1, 3), [2, 4, 6], np.float32))
    assert peak < 1 << 20, f"{peak} bytes for 5 rows: a buffer was sized by batch_size"


def _y(rows: list[list[float]]) -> Callable[[DataView], None]:
    """A check: the doubler's output column holds these rows (each of shape [1, 3])."""
    return _column("y", np.array(rows, np.float32).reshape(-1, 1, 3))


_CONVERT = r"Convert the column first \(automatic conversions: numbers into floats, integers into wider integers\)"

ONNX_CASES = [
    case(
        "input-column-missing",
        _onnx(lambda: _arrow(z=_vectors([[1, 2, 3]]))),
        Raises(ColumnNotFoundError, r"apply_onnx_model\(<bytes>\): input column 'x' is not in the data; available col"),
    ),
    case(
        "extra-columns-kept",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]]), extra=pa.array(["s"]))),
        Works(lambda v: v.schema.names == ["x", "extra", "y"] and _column("extra", ["s"])(v)),
    ),
    case(
        "text-column",
        _onnx(lambda: _arrow(x=pa.array(["1"]))),
        Raises(
            ColumnTypeError, rf"column 'x' feeds input tensor 'x', which expects element type float32; .*{_CONVERT}"
        ),
    ),
    case(
        "text-vector",
        _onnx(lambda: _arrow(x=_vectors([["a", "b", "c"]], pa.string()))),
        Raises(ColumnTypeError, r"the column is string \(string\[3\]\)\. Convert the column first"),
    ),
    case("float64-into-float32", _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]], pa.float64()))), Works(_y([[2, 4, 6]]))),
    case("int64-into-float32", _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]], pa.int64()))), Works(_y([[2, 4, 6]]))),
    case(
        "bool-into-float32",
        _onnx(lambda: _arrow(x=_vectors([[True, False, True]], pa.bool_()))),
        Works(_y([[2, 0, 2]])),
    ),
    case(
        "float32-into-int64",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]])), INT_DOUBLER),
        Raises(ColumnTypeError, r"which expects element type int64; the column is float32 \(float32\[3\]\)"),
    ),
    case(
        "uint64-into-int64",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]], pa.uint64())), INT_DOUBLER),
        Raises(ColumnTypeError, r"which expects element type int64; the column is uint64"),
    ),
    case(
        "nan-and-inf-passed-through",
        _onnx(lambda: _arrow(x=_vectors([[NAN, INF, -INF]]))),
        Works(_y([[NAN, INF, -INF]])),
    ),
    case(
        "float64-beyond-float32-is-inf",
        _onnx(lambda: _arrow(x=_vectors([[1e300, -1e300, 1]], pa.float64()))),
        Works(_y([[INF, -INF, 2]])),
    ),
    case(
        "wrong-vector-size",
        _onnx(lambda: _arrow(x=_vectors([[1, 2]]))),
        Raises(
            ShapeError, r"column 'x' feeds input tensor 'x', which expects a row of shape \[1,3\] .*have shape \[2\]"
        ),
    ),
    case(
        "wrong-rank",
        _onnx(lambda: ctx.data.load_from_enumerable([Matrix(np.ones((2, 3), np.float32))], Matrix)),
        Raises(ShapeError, r"expects a row of shape \[1,3\] \(a leading 1 is optional\); the column's rows have shape"),
    ),
    case(
        "scalar-column",
        _onnx(lambda: _arrow(x=pa.array([1.0], pa.float32()))),
        Raises(ShapeError, r"column 'x' feeds input tensor 'x', .*the column's rows have shape \[\]"),
    ),
    case(
        "ragged-rows",
        _onnx(lambda: _arrow(x=pa.array([[1.0, 2, 3], [1.0, 2]], pa.list_(pa.float32())))),
        Raises(ShapeError, r"row 1 of column 'x' has shape \[2\], input tensor 'x' expects \[1,3\]"),
    ),
    case(
        "empty-data",
        _onnx(lambda: _arrow(x=_vectors([]))),
        Works(lambda v: str(v.schema["y"].type) == "float32[1,3]" and v.column("y").shape == (0, 1, 3)),
    ),
    case(
        "empty-data-fixed-batch",
        _onnx(lambda: _arrow(x=_vectors([])), FIXED_BATCH),
        Works(lambda v: v.column("y").shape == (0, 1, 3)),
    ),
    case(
        "ten-mb-string",
        _onnx(lambda: _arrow(word=pa.array(["hotdog", "x" * 10_000_000, "日本"])), STRINGS),
        Works(_column("code", [[1], [-1], [-1]])),  # int64[1] per row: the model's [N] with the batch axis kept
    ),
    case(
        "float-into-string-input",
        _onnx(lambda: _arrow(word=pa.array([1.0])), STRINGS),
        Raises(ColumnTypeError, r"column 'word' feeds input tensor 'word', which expects element type string"),
    ),
    case("batch-size-huge", _huge_batch_size, Works(_check_huge_batch)),
    *(
        case(
            f"batch-size-{bad!r}",
            _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]])), batch_size=bad),
            Raises(
                InvalidArgumentError,
                rf"apply_onnx_model: batch_size must be a number of rows from 1 to 1,048,576 or None, got {bad!r}",
            ),
        )
        for bad in (0, -1, True, 1.5, 10**9)
    ),
    case(
        "shape-dictionary-fixed-dimension",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]])), shape_dictionary={"x": [2, 4]}),
        Raises(
            ShapeError, r"gives tensor 'x' the shape \[2,4\], which is not compatible with the model's shape \[\?,3"
        ),
    ),
    case(
        "shape-dictionary-unknown-tensor",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]])), shape_dictionary={"q": [-1, 3]}),
        Raises(TensorNotFoundError, r"shape_dictionary names tensor 'q', which the model does not have"),
    ),
    case(
        "shape-dictionary-zero",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]])), shape_dictionary={"x": [0, 3]}),
        Raises(InvalidArgumentError, r"shape_dictionary\['x'\] = \[0, 3\]: give a list of dimensions"),
    ),
    case(
        "output-name-unknown",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]])), output_column_names=["nope"]),
        Raises(TensorNotFoundError, r"output 'nope' is not in the model; available outputs: \['y'\]"),
    ),
    case(
        "model-bytes-garbage",
        _onnx(lambda: _arrow(x=_vectors([[1, 2, 3]])), b"garbage"),
        Raises(ModelLoadError, r"<bytes> is not a valid ONNX model"),
    ),
]


@pytest.mark.parametrize(("action", "expected"), ONNX_CASES)
def test_apply_onnx_model(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


# ============================================================================ prediction engine


@dataclasses.dataclass
class In3:
    x: Annotated[npt.NDArray[np.float32], VectorType(3)]


@dataclasses.dataclass
class Out3:
    y: Annotated[npt.NDArray[np.float32], VectorType(1, 3)]


@dataclasses.dataclass
class WrongName:
    z: Annotated[npt.NDArray[np.float32], VectorType(3)]


@dataclasses.dataclass
class In2:
    x: Annotated[npt.NDArray[np.float32], VectorType(2)]


@dataclasses.dataclass
class TextIn:
    x: str


@dataclasses.dataclass
class OutMissing:
    q: Annotated[npt.NDArray[np.float32], VectorType(1, 3)]


@dataclasses.dataclass
class OutInts:
    y: Annotated[npt.NDArray[np.int64], VectorType(1, 3)]


@dataclasses.dataclass
class Word:
    word: str


@dataclasses.dataclass
class Encoded:
    encoded: Annotated[npt.NDArray[np.float32], ColumnName("o"), VectorType(2)]


def _doubler_model() -> Any:
    return ctx.transforms.apply_onnx_model(model_bytes=DOUBLER).fit(ctx.data.load_from_enumerable([], In3))


def _predict(row: Any) -> Action:
    return lambda _: ctx.model.create_prediction_engine(_doubler_model(), In3, Out3).predict(row)


def _engine(input_class: type, output_class: type = Out3) -> Action:
    return lambda _: ctx.model.create_prediction_engine(_doubler_model(), input_class, output_class)


def _one_hot_predict(row: Word) -> Action:
    def predict(_: Path) -> Any:
        model = ctx.transforms.categorical.one_hot_encoding("o", "word").fit(
            ctx.data.load_from_enumerable([Word("a"), Word("b")], Word)
        )
        return ctx.model.create_prediction_engine(model, Word, Encoded).predict(row)

    return predict


ENGINE_CASES = [
    case(
        "row-of-another-class",
        _predict(WrongName(np.ones(3, np.float32))),
        Raises(SchemaError, r"column 'x' \(field In3.x\): a row of type WrongName has no attribute 'x'; rows must be"),
    ),
    case("row-not-a-row", _predict(object()), Raises(SchemaError, r"a row of type object has no attribute 'x'")),
    case(
        "row-field-none",
        _predict(In3(None)),  # type: ignore[arg-type]
        Raises(ColumnTypeError, r"column 'x' \(field In3.x\), row 0: the value is None"),
    ),
    case(
        "row-wrong-shape",
        _predict(In3(np.ones(4, np.float32))),
        Raises(ShapeError, r"column 'x' \(field In3.x\), row 0: expected shape \(3\) \(3 values\), got shape \(4,\)"),
    ),
    case(
        "row-text",
        _predict(In3(np.array(["a", "b", "c"]))),
        Raises(ColumnTypeError, r"column 'x' \(field In3.x\), row 0: expected float32 values, got strings"),
    ),
    case(
        "row-float64", _predict(In3(np.ones(3))), Works(lambda out: np.testing.assert_array_equal(out.y, [[2, 2, 2]]))
    ),
    case(
        "row-nan",
        _predict(In3(np.array([NAN, INF, 1], np.float32))),
        Works(lambda out: np.testing.assert_array_equal(out.y, [[NAN, INF, 2]])),
    ),
    case(
        "input-class-lacks-column",
        _engine(WrongName),
        Raises(ColumnNotFoundError, r"input column 'x' is not in the data; available columns: \['z'\]"),
    ),
    case(
        "input-class-wrong-size",
        _engine(In2),
        Raises(ShapeError, r"column 'x' feeds input tensor 'x', which expects a row of shape \[1,3\]"),
    ),
    case(
        "input-class-text",
        _engine(TextIn),
        Raises(ColumnTypeError, r"column 'x' feeds input tensor 'x', which expects element type float32"),
    ),
    case(
        "output-class-field-absent",
        _engine(In3, OutMissing),
        Raises(ColumnNotFoundError, r"OutMissing.q reads column 'q', which the data does not have; available columns"),
    ),
    case(
        "output-class-wrong-type",
        _engine(In3, OutInts),
        Raises(ColumnTypeError, r"OutInts.y \(column 'y'\): the field holds int64, the column is float32\[1,3\]"),
    ),
    case(
        "estimator-not-model",
        lambda _: ctx.model.create_prediction_engine(ctx.transforms.normalize_min_max("x"), In3, Out3),
        Raises(InvalidArgumentError, r"needs a fitted model \(a Transformer\), got MinMaxNormalizingEstimator; call"),
    ),
    case(
        "batch-mixed-shapes",
        lambda _: ctx.model.create_prediction_engine(_doubler_model(), In3, Out3).predict_batch(
            [In3(np.ones(3, np.float32)), In3(np.ones(2, np.float32))]
        ),
        Raises(ShapeError, r"column 'x' \(field In3.x\), row 1: expected shape \(3\)"),
    ),
    case(
        "batch-empty",
        lambda _: ctx.model.create_prediction_engine(_doubler_model(), In3, Out3).predict_batch([]),
        Works(lambda out: out == []),
    ),
    case(
        "one-hot-unseen-category",
        _one_hot_predict(Word("z")),
        Works(lambda out: np.testing.assert_array_equal(out.encoded, [0, 0])),
    ),
    case(
        "one-hot-lone-surrogate",
        _one_hot_predict(Word("caf\udce9")),
        Raises(DataError, r"column 'word' .*not valid Unicode"),
    ),
]


@pytest.mark.parametrize(("action", "expected"), ENGINE_CASES)
def test_prediction_engine(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


# ============================================================================ trainers

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(40, 2)).astype(np.float32)
_POSITIVE = _X[:, 0] > 0


def _training(label: Any, features: Any = _X) -> DataView:
    columns: dict[str, pa.Array] = {"Label": pa.array(label)}
    if features is not None:
        x = np.asarray(features, np.float32)
        columns["Features"] = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 2)
    return _arrow(**columns)


def _with(value: float, row: int = 3) -> np.ndarray:
    x = _X.copy()
    x[row, 1] = value
    return x


_LABELS: dict[str, Any] = {"binary": _POSITIVE, "regression": _X[:, 0] * 2, "clustering": _POSITIVE}

_HAS_LIGHTGBM = importlib.util.find_spec("lightgbm") is not None
_LIGHTGBM = pytest.mark.skipif(not _HAS_LIGHTGBM, reason="LightGBM (the onnxpipe[lightgbm] extra) is not installed")

TRAINERS: dict[str, tuple[Callable[[], Any], str]] = {
    "lbfgs_logistic_regression": (lambda: ctx.binary_classification.trainers.lbfgs_logistic_regression(), "binary"),
    "ols": (lambda: ctx.regression.trainers.ols(), "regression"),
    "light_gbm_binary": (lambda: ctx.binary_classification.trainers.light_gbm(), "binary"),
    "light_gbm_regression": (lambda: ctx.regression.trainers.light_gbm(), "regression"),
    "kmeans": (lambda: ctx.clustering.trainers.kmeans(number_of_clusters=2), "clustering"),
}


def _fit(trainer: str, data: Callable[[str], DataView]) -> Action:
    make, task = TRAINERS[trainer]
    return lambda _: make().fit(data(task))


def _skipped(count: int) -> Callable[[Any], None]:
    def check(model: Any) -> None:
        assert model.rows_skipped == count

    return check


def _trained(model: Any) -> None:
    assert model.transform(_training(_LABELS["binary"])).count_rows() == 40


def _is_model(model: Any) -> bool:
    return isinstance(model, op.Transformer)


_SKIP_WARNING = (op.OnnxPipeWarning, r"kmeans\(Features, k=2\): skipped 1 of 40 training rows with non-finite")


def _trainer_case(trainer: str, name: str, data: Callable[[str], DataView], expected: Raises | Works) -> Any:
    marks = [_LIGHTGBM] if trainer.startswith("light_gbm") else []
    return pytest.param(_fit(trainer, data), expected, id=f"{trainer}-{name}", marks=marks)


def _nan_label(task: str) -> DataView:
    y = np.asarray(_LABELS[task], np.float32).copy()
    y[2] = NAN
    return _training(y)


def _label_two(task: str) -> DataView:
    y = np.asarray(_LABELS[task], np.float32).copy()
    y[2] = 2
    return _training(y)


def _unknown_size(task: str) -> DataView:
    return _arrow(Label=pa.array(_LABELS[task]), Features=pa.array([list(r) for r in _X], pa.list_(pa.float32())))


def _int_features(task: str) -> DataView:
    x = pa.FixedSizeListArray.from_arrays(pa.array(_X.astype(np.int64).reshape(-1)), 2)
    return _arrow(Label=pa.array(_LABELS[task]), Features=x)


_NO_ROWS = r"the training data has no rows"
_UNUSABLE = r"none of the 40 training rows is usable: every row has a NaN label, NaN/infinite features in 'Features'"

TRAINER_CASES = [
    # empty training data
    *(
        _trainer_case(
            t, "empty", lambda task: _training(np.asarray(_LABELS[task])[:0], _X[:0]), Raises(DataError, _NO_ROWS)
        )
        for t in TRAINERS
    ),
    # NaN / infinite features: linear trainers skip the row (ML.NET), LightGBM reads a missing value
    *(
        _trainer_case(t, f"{bad}-feature", lambda task, v=v: _training(_LABELS[task], _with(v)), Works(_skipped(1)))
        for t in ("lbfgs_logistic_regression", "ols")
        for bad, v in (("nan", NAN), ("inf", INF))
    ),
    *(
        _trainer_case(t, f"{bad}-feature", lambda task, v=v: _training(_LABELS[task], _with(v)), Works(_trained))
        for t in ("light_gbm_binary", "light_gbm_regression")
        for bad, v in (("nan", NAN), ("inf", INF))
    ),
    _trainer_case(
        "kmeans", "nan-feature", lambda task: _training(_LABELS[task], _with(NAN)), Works(_trained, _SKIP_WARNING)
    ),
    # no usable row
    *(
        _trainer_case(
            t,
            "all-features-nan",
            lambda task: _training(_LABELS[task], np.full_like(_X, NAN)),
            Raises(DataError, rf"{t}\(Label, Features\): {_UNUSABLE}"),
        )
        for t in ("lbfgs_logistic_regression", "ols")
    ),
    _trainer_case(
        "light_gbm_binary",
        "all-features-nan",
        lambda task: _training(_LABELS[task], np.full_like(_X, NAN)),
        Works(_trained),
    ),
    # NaN label
    *(_trainer_case(t, "nan-label", _nan_label, Works(_skipped(1))) for t in ("lbfgs_logistic_regression", "ols")),
    *(
        _trainer_case(
            t,
            "nan-label",
            _nan_label,
            Raises(DataError, r"label column 'Label' is missing \(NaN\) at row 2; remove rows without a label"),
        )
        for t in ("light_gbm_binary", "light_gbm_regression")
    ),
    # a binary label that is not 0/1
    _trainer_case(
        "lbfgs_logistic_regression",
        "label-not-binary",
        _label_two,
        Raises(DataError, r"label column 'Label' has the value 2\.0 \(row 2\); binary labels must be bool or the num"),
    ),
    _trainer_case(
        "light_gbm_binary",
        "label-not-binary",
        _label_two,
        Raises(DataError, r"label column 'Label' must hold only 0/1 or false/true .*got 2\.0 at row 2; use the multic"),
    ),
    # a single class: ML.NET's linear trainers train anyway (every score negative); LightGBM refuses
    _trainer_case(
        "lbfgs_logistic_regression",
        "single-class",
        lambda task: _training(np.zeros(40, bool)),
        Works(lambda m: (m.transform(_training(_POSITIVE)).column("Score") < 0).all()),
    ),
    _trainer_case(
        "light_gbm_binary",
        "single-class",
        lambda task: _training(np.zeros(40, bool)),
        Raises(DataError, r"label column 'Label' has a single class \(False\) in the training data; binary classif"),
    ),
    # a text label
    *(
        _trainer_case(
            t,
            "text-label",
            lambda task: _training(np.where(_POSITIVE, "yes", "no")),
            Raises(ColumnTypeError, r"label column 'Label' (is|must be) .*string"),
        )
        for t in ("lbfgs_logistic_regression", "ols", "light_gbm_binary", "light_gbm_regression")
    ),
    # features of unknown size
    *(
        _trainer_case(
            t, "features-unknown-size", _unknown_size, Raises(ShapeError, r"feature column 'Features' .*known size")
        )
        for t in TRAINERS
    ),
    # integer features: every trainer reads them as numbers (the README's safe conversions)
    *(
        _trainer_case(t, "int-features", _int_features, Works(_is_model))
        for t in ("lbfgs_logistic_regression", "ols", "light_gbm_binary", "light_gbm_regression", "kmeans")
    ),
    # a missing Features / Label column
    *(
        _trainer_case(
            t,
            "features-missing",
            lambda task: _training(_LABELS[task], None),
            Raises(ColumnNotFoundError, r"input column 'Features' is not in the data; available columns: \['Label'\]"),
        )
        for t in TRAINERS
    ),
    *(
        _trainer_case(
            t,
            "label-missing",
            lambda task: _arrow(Features=pa.FixedSizeListArray.from_arrays(pa.array(_X.reshape(-1)), 2)),
            Raises(ColumnNotFoundError, r"input column 'Label' is not in the data; available columns: \['Features'\]"),
        )
        for t in TRAINERS
        if t != "kmeans"
    ),
]


@pytest.mark.parametrize(("action", "expected"), TRAINER_CASES)
def test_trainers(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


# ============================================================================ transforms


def _floats(rows: list[list[float]]) -> DataView:
    return _arrow(F=_vectors(rows, pa.float32(), 2))


# slot 0: finite 1 and 3 with infinities; slot 1: constant 5 with a NaN
_MESSY = [[1.0, NAN], [INF, 5.0], [3.0, 5.0], [-INF, 5.0]]


def _normalize(
    make: Callable[[], Any], train: Callable[[], DataView], data: Callable[[], DataView] = lambda: _floats(_MESSY)
) -> Action:
    return lambda _: make().fit(train()).transform(data())


_NORMALIZERS: dict[str, Callable[[], Any]] = {
    "normalize_min_max": lambda: ctx.transforms.normalize_min_max("F"),
    "normalize_mean_variance": lambda: ctx.transforms.normalize_mean_variance("F"),
    "normalize_log_mean_variance": lambda: ctx.transforms.normalize_log_mean_variance("F"),
    "normalize_robust_scaling": lambda: ctx.transforms.normalize_robust_scaling("F"),
    "normalize_binning": lambda: ctx.transforms.normalize_binning("F"),
    "normalize_lp_norm": lambda: ctx.transforms.normalize_lp_norm("F"),
    "normalize_global_contrast": lambda: ctx.transforms.normalize_global_contrast("F"),
}
_LEARNING = [n for n in _NORMALIZERS if n not in ("normalize_lp_norm", "normalize_global_contrast")]

_ONE_HOT = ctx.transforms.categorical.one_hot_encoding
_CONVERSION = ctx.transforms.conversion
_TRAIN_TEXT = lambda: _arrow(c=pa.array(["a", "b", "a"]))  # noqa: E731


def _fitted(make: Callable[[], Any], train: Callable[[], DataView], data: Callable[[], DataView]) -> Action:
    return lambda _: make().fit(train()).transform(data())


TRANSFORM_CASES = [
    # normalizers on NaN / infinities / a constant slot (transforms.normalization's rules)
    case(
        "min_max-nan-inf-constant",
        _normalize(_NORMALIZERS["normalize_min_max"], lambda: _floats(_MESSY)),
        Works(_column("F", [[1 / 3, NAN], [INF, 0], [1, 0], [-INF, 0]])),
    ),
    case(
        "mean_variance-nan-inf-constant",
        _normalize(_NORMALIZERS["normalize_mean_variance"], lambda: _floats(_MESSY)),
        Works(lambda v: np.isnan(v.column("F")[0, 1]) and (v.column("F")[1:, 1] == 0).all()),
    ),
    *(
        case(
            f"{n}-empty-fit",
            _normalize(_NORMALIZERS[n], lambda: _floats([])),
            Raises(DataError, rf"{n}\(F\): cannot learn from empty data: input column 'F' has no rows"),
        )
        for n in _LEARNING
    ),
    *(
        case(f"{n}-empty-fit", _normalize(_NORMALIZERS[n], lambda: _floats([])), Works(lambda v: v.count_rows() == 4))
        for n in ("normalize_lp_norm", "normalize_global_contrast")
    ),
    *(
        case(
            f"{n}-{kind}-column",
            _normalize(_NORMALIZERS[n], column, column),
            Raises(
                ColumnTypeError, rf"{n}\(F\): input column 'F' is {kind}; expected float32 or float64 .*convert the"
            ),
        )
        for n in _NORMALIZERS
        for kind, column in (
            ("string", lambda: _arrow(F=pa.array(["a"]))),
            ("int64", lambda: _arrow(F=pa.array([1, 2]))),
        )
    ),
    *(
        case(
            f"{n}-unknown-size",
            _normalize(_NORMALIZERS[n], lambda: _arrow(F=pa.array([[1.0], [1.0, 2.0]], pa.list_(pa.float32())))),
            Raises(ShapeError, r"input column 'F' is float32\[\?\], a vector of unknown size; .*VectorType\(size\)"),
        )
        for n in _NORMALIZERS
    ),
    # concatenate
    case(
        "concatenate-float-and-int",
        lambda _: ctx.transforms.concatenate("F", "a", "b").transform(
            _arrow(a=pa.array([1.0], pa.float32()), b=pa.array([1]))
        ),
        Raises(ColumnTypeError, r"concatenate\(F <- a, b\): all inputs must have the same element type, got a: float3"),
    ),
    case(
        "concatenate-float-and-text",
        lambda _: ctx.transforms.concatenate("F", "a", "b").transform(
            _arrow(a=pa.array([1.0], pa.float32()), b=pa.array(["x"]))
        ),
        Raises(ColumnTypeError, r"got a: float32, b: string; use convert_type first"),
    ),
    case(
        "concatenate-missing-column",
        lambda _: ctx.transforms.concatenate("F", "a", "q").transform(_arrow(a=pa.array([1.0], pa.float32()))),
        Raises(ColumnNotFoundError, r"concatenate\(F <- a, q\): input column 'q' is not in the data"),
    ),
    case(
        "concatenate-no-inputs",
        lambda _: ctx.transforms.concatenate("F"),
        Raises(
            InvalidArgumentError,
            r"concatenate: input_column_names must be one or more non-empty column names, got \[\]",
        ),
    ),
    case(
        "concatenate-empty-data",
        lambda _: ctx.transforms.concatenate("F", "a", "b").transform(
            _arrow(a=pa.array([], pa.float32()), b=pa.array([], pa.float32()))
        ),
        Works(lambda v: v.column("F").shape == (0, 2)),
    ),
    # categorical and keys
    case(
        "one_hot-unseen-category",
        _fitted(lambda: _ONE_HOT("o", "c"), _TRAIN_TEXT, lambda: _arrow(c=pa.array(["z", "a"]))),
        Works(_column("o", [[0, 0], [1, 0]])),
    ),
    case(
        "one_hot-key-unseen-category",
        _fitted(lambda: _ONE_HOT("o", "c", output_kind="key"), _TRAIN_TEXT, lambda: _arrow(c=pa.array(["z"]))),
        Works(_column("o", [0])),
    ),
    case(
        "one_hot-nan-category",
        _fitted(
            lambda: _ONE_HOT("o", "c"),
            lambda: _arrow(c=pa.array([1.0, NAN, 2.0])),
            lambda: _arrow(c=pa.array([NAN, 1.0])),
        ),
        Works(_column("o", [[0, 0], [1, 0]])),
    ),
    case(
        "one_hot-ten-mb-category",
        _fitted(
            lambda: _ONE_HOT("o", "c"),
            lambda: _arrow(c=pa.array(["x" * 10_000_000, "a"])),
            lambda: _arrow(c=pa.array(["x" * 10_000_000])),
        ),
        Works(_column("o", [[1, 0]])),
    ),
    case(
        "one_hot-empty-fit",
        _fitted(lambda: _ONE_HOT("o", "c"), lambda: _arrow(c=pa.array([], pa.string())), _TRAIN_TEXT),
        Raises(DataError, r"column 'c' has no non-missing values to learn keys from; fit on data with values, or pass"),
    ),
    case(
        "map_value_to_key-unseen",
        _fitted(lambda: _CONVERSION.map_value_to_key("k", "c"), _TRAIN_TEXT, lambda: _arrow(c=pa.array(["z", "b"]))),
        Works(_column("k", [0, 2])),
    ),
    case(
        "map_value_to_key-other-type",
        _fitted(lambda: _CONVERSION.map_value_to_key("k", "c"), _TRAIN_TEXT, lambda: _arrow(c=pa.array([1.0]))),
        Raises(ColumnTypeError, r"input column 'c' is float64, but the keys were learned from string values; refit"),
    ),
    case(
        "hash-ten-mb-strings",
        lambda _: _CONVERSION.hash("h", "c").transform(_arrow(c=pa.array(["x" * 10_000_000, "x" * 10_000_000 + "y"]))),
        Works(lambda v: len(set(v.column("h").tolist())) == 2),
    ),
    case(
        "hash-too-many-bits",
        lambda _: _CONVERSION.hash("h", "c", number_of_bits=32),
        Raises(InvalidArgumentError, r"hash\(h <- c\): number_of_bits must be an integer from 1 to 31, got 32"),
    ),
    case(
        "convert_type-nan-to-int",
        lambda _: _CONVERSION.convert_type("o", "c", output_kind="int64").transform(_arrow(c=pa.array([1.5, NAN]))),
        Raises(DataError, r"cannot convert .*nan.* in column 'c' from float64 to int64: .*clean the data first"),
    ),
    case(
        "convert_type-out-of-range",
        lambda _: _CONVERSION.convert_type("o", "c", output_kind="int8").transform(_arrow(c=pa.array([300]))),
        Raises(DataError, r"in column 'c' from int64 to int8: it is outside int8's range -128\.\.127"),
    ),
    # missing values
    case(
        "replace_missing_values-ints",
        _fitted(
            lambda: ctx.transforms.replace_missing_values("o", "c"), lambda: _arrow(c=pa.array([1, 2])), _TRAIN_TEXT
        ),
        Raises(
            ColumnTypeError, r"replace_missing_values\(o <- c\): input column 'c' is int64; expected a float column"
        ),
    ),
    case(
        "replace_missing_values-text",
        _fitted(lambda: ctx.transforms.replace_missing_values("o", "c"), _TRAIN_TEXT, _TRAIN_TEXT),
        Raises(ColumnTypeError, r"input column 'c' is string; expected a float column"),
    ),
    case(
        "replace_missing_values-all-nan-mean",
        _fitted(
            lambda: ctx.transforms.replace_missing_values("o", "c", replacement_mode="mean"),
            lambda: _arrow(c=pa.array([NAN, NAN])),
            lambda: _arrow(c=pa.array([NAN, 2.0])),
        ),
        Works(_column("o", [0.0, 2.0])),
    ),
    case(
        "indicate_missing_values-ints",
        lambda _: ctx.transforms.indicate_missing_values("o", "c").transform(_arrow(c=pa.array([1, 2]))),
        Raises(ColumnTypeError, r"input column 'c' is int64; expected a column with missing values"),
    ),
    case(
        "copy_columns-missing",
        lambda _: ctx.transforms.copy_columns("o", "q").transform(_TRAIN_TEXT()),
        Raises(ColumnNotFoundError, r"copy_columns\(o <- q\): input column 'q' is not in the data; available columns"),
    ),
    case(
        "select_columns-missing",
        lambda _: ctx.transforms.select_columns("q").transform(_TRAIN_TEXT()),
        Raises(ColumnNotFoundError, r"select_columns\(q\): input column 'q' is not in the data"),
    ),
]


@pytest.mark.parametrize(("action", "expected"), TRANSFORM_CASES)
def test_transforms(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


# ============================================================================ evaluation


def _scored(label: pa.Array | None, score: pa.Array | None) -> DataView:
    columns = {}
    if label is not None:
        columns["Label"] = label
    if score is not None:
        columns["Score"] = score
    return _arrow(**columns)


def _score(values: list[float]) -> pa.Array:
    return pa.array(values, pa.float32())


def _binary(data: DataView) -> Action:
    return lambda _: ctx.binary_classification.evaluate(data)


def _regression(data: DataView) -> Action:
    return lambda _: ctx.regression.evaluate(data)


def _confusion_total(expected: int) -> Callable[[Any], None]:
    def check(metrics: Any) -> None:
        assert metrics.accuracy == 1.0
        assert int(np.sum(metrics.confusion_matrix.counts)) == expected

    return check


_LABELS_TF = pa.array([True, False, True])

EVALUATION_CASES = [
    case(
        "binary-no-score",
        _binary(_scored(_LABELS_TF, None)),
        Raises(ColumnNotFoundError, r"evaluate_binary: input column 'Score' is not in the data; available columns"),
    ),
    case(
        "binary-no-label",
        _binary(_scored(None, _score([1, -1]))),
        Raises(ColumnNotFoundError, r"evaluate_binary: input column 'Label' is not in the data"),
    ),
    case(
        "binary-empty",
        _binary(_scored(pa.array([], pa.bool_()), _score([]))),
        Raises(DataError, r"evaluate_binary: the data has no rows; metrics need at least one scored row"),
    ),
    case("binary-nan-score-skipped", _binary(_scored(_LABELS_TF, _score([1, -1, NAN]))), Works(_confusion_total(2))),
    case(
        "binary-nan-label-skipped",
        _binary(_scored(pa.array([1.0, NAN, 0.0]), _score([1, 1, -1]))),
        Works(_confusion_total(2)),
    ),
    case(
        "binary-all-scores-nan",
        _binary(_scored(_LABELS_TF, _score([NAN, NAN, NAN]))),
        Raises(DataError, r"no row has both a label and a finite score in 'Score'; nothing to evaluate"),
    ),
    case(
        "binary-label-not-binary",
        _binary(_scored(pa.array([2.0, 0.0]), _score([1, -1]))),
        Raises(
            DataError, r"label column 'Label' has the value 2\.0 \(row 0\); binary labels must be bool or the numbe"
        ),
    ),
    case(
        "binary-text-score",
        _binary(_scored(_LABELS_TF, pa.array(["1", "2", "3"]))),
        Raises(ColumnTypeError, r"score column 'Score' is string; a float scalar is expected"),
    ),
    case(
        "regression-empty",
        _regression(_scored(pa.array([], pa.float32()), _score([]))),
        Raises(DataError, r"evaluate_regression: the data has no rows"),
    ),
    case(
        "regression-nan-score-skipped",
        _regression(_scored(pa.array([1.0, 2.0]), _score([1.0, NAN]))),
        Works(lambda m: m.mean_absolute_error == 0.0),
    ),
]


@pytest.mark.parametrize(("action", "expected"), EVALUATION_CASES)
def test_evaluation(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


# ============================================================================ export and split


@dataclasses.dataclass
class Plain:
    x: float


@dataclasses.dataclass
class Doubled:
    z: float


def _unexportable(_: Path) -> Any:
    data = _arrow(x=pa.array([1.0, 2.0], pa.float32()))
    model = (
        ctx.transforms.copy_columns("y", "x")
        .append(ctx.transforms.custom_mapping(lambda r: Doubled(r.x * 2), Plain, Doubled))
        .append(ctx.transforms.normalize_min_max("z"))
        .fit(data)
    )
    return ctx.model.convert_to_onnx(model, data)


_EMPTY_FLOATS = lambda: _arrow(x=pa.array([], pa.float32()))  # noqa: E731
_FITTED = lambda: ctx.transforms.normalize_min_max("x").fit(_arrow(x=pa.array([1.0, 3.0], pa.float32())))  # noqa: E731

EXPORT_AND_SPLIT_CASES = [
    case(
        "export-unexportable-step",
        _unexportable,
        Raises(ExportError, r"step 1 \(custom_mapping\(<lambda>\)\) cannot be exported to ONNX: it runs user Python"),
    ),
    case(
        "export-empty-data",
        lambda _: ctx.model.convert_to_onnx(_FITTED(), _EMPTY_FLOATS()),
        Works(lambda proto: [i.name for i in proto.graph.input] == ["x"]),
    ),
    case(
        "export-estimator",
        lambda _: ctx.model.convert_to_onnx(ctx.transforms.normalize_min_max("x"), _EMPTY_FLOATS()),
        Raises(InvalidArgumentError, r"convert_to_onnx needs a fitted model \(a Transformer\), got MinMaxNormalizing"),
    ),
    case(
        "export-schema-lacks-column",
        lambda _: ctx.model.convert_to_onnx(_FITTED(), _arrow(q=pa.array([1.0]))),
        Raises(ColumnNotFoundError, r"step 0 \(normalize_min_max\(x\)\): input column 'x' is not in the data"),
    ),
    case(
        "export-opset-too-old",
        lambda _: ctx.model.convert_to_onnx(_FITTED(), _EMPTY_FLOATS(), opset=3),
        Raises(ExportError, r"opset 3 is not supported: choose one from 13 to"),
    ),
    case(
        "export-path-in-missing-folder",
        lambda tmp: ctx.model.convert_to_onnx(_FITTED(), _EMPTY_FLOATS(), tmp / "absent" / "model.onnx"),
        Raises(DataFileNotFoundError, r"absent"),
    ),
    *(
        case(
            f"split-test-fraction-{bad!r}",
            lambda _, bad=bad: ctx.data.train_test_split(_arrow(a=pa.array([1.0])), test_fraction=bad),
            Raises(InvalidArgumentError, r"train_test_split: test_fraction must be between 0 and 1 \(exclusive\), got"),
        )
        for bad in (0, 1, -0.5, 1.5, NAN, "0.2", None, True)
    ),
    case(
        "split-stratification-column-missing",
        lambda _: ctx.data.train_test_split(_arrow(a=pa.array([1.0])), stratification_column="q"),
        Raises(ColumnNotFoundError, r"train_test_split: input column 'q' is not in the data"),
    ),
    case(
        "split-empty-data",
        lambda _: ctx.data.train_test_split(_EMPTY_FLOATS(), 0.5),
        Works(lambda s: s.train_set.count_rows() == s.test_set.count_rows() == 0),
    ),
    case(
        "cross-validate-one-fold",
        lambda _: ctx.binary_classification.cross_validate(
            _training(_POSITIVE), ctx.binary_classification.trainers.lbfgs_logistic_regression(), number_of_folds=1
        ),
        Raises(InvalidArgumentError, r"cross-validation needs at least 2 folds \(an integer\), got 1"),
    ),
]


@pytest.mark.parametrize(("action", "expected"), EXPORT_AND_SPLIT_CASES)
def test_export_and_split(action: Action, expected: Raises | Works, tmp_path: Path) -> None:
    _verify(action, expected, tmp_path)


def test_every_error_case_pins_a_message() -> None:
    # The tables' own sanity: every Raises case pins a message, never just the class.
    tables = [ENUMERABLE_CASES, TEXT_CASES, TABLE_CASES, ONNX_CASES, ENGINE_CASES, TRAINER_CASES, TRANSFORM_CASES]
    for table in [*tables, EVALUATION_CASES, EXPORT_AND_SPLIT_CASES]:
        for param in table:
            expected = param.values[1]
            if isinstance(expected, Raises):
                assert len(expected.match) >= 5, param.id
