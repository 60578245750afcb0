"""The data contract: DataView sources (rows, Arrow, pandas, Parquet, text files) and sinks."""

import contextlib
import dataclasses
import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import onnxpipe as op
from onnxpipe.data import (
    DataView,
    Preview,
    create_enumerable,
    load_from_arrow,
    load_from_enumerable,
    load_from_pandas,
    load_from_parquet,
    load_from_text_file,
)
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataError,
    DataFileNotFoundError,
    InvalidArgumentError,
    ParseError,
    SchemaError,
    ShapeError,
)
from onnxpipe.schema import (
    ColumnName,
    DType,
    KeyType,
    LoadColumn,
    MapType,
    Schema,
    SequenceType,
    TensorType,
    VectorType,
)

F32 = DType.FLOAT32
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MLNET = SHARED_DATA / "mlnet"
needs_shared_data = pytest.mark.skipif(
    not MLNET.is_dir(), reason=f"third-party test data folder {MLNET} is absent (it is not part of a fresh clone)"
)


def t(dtype: DType, *shape: int | None, key: int | None = None) -> TensorType:
    return TensorType(dtype, tuple(shape)) if key is None else KeyType(key, shape=tuple(shape), dtype=dtype)


# --------------------------------------------------------------------------------------------
# Rows in, rows out


@dataclasses.dataclass
class Everything:
    f: float
    i: int
    b: bool
    s: str
    f16: np.float16
    f64: np.float64
    i8: np.int8
    i32: np.int32
    u8: np.uint8
    u64: np.uint64
    key: Annotated[int, KeyType(4)]
    img: Annotated[npt.NDArray[np.float32], VectorType(2, 3)]
    half: Annotated[npt.NDArray[np.float16], VectorType(2)]
    batch: Annotated[npt.NDArray[np.float32], VectorType(-1, 2)]
    ragged: Annotated[npt.NDArray[np.int32], VectorType(None, None)]
    three: Annotated[npt.NDArray[np.float64], VectorType(-1, 2, -1)]
    flags: Annotated[npt.NDArray[np.bool_], VectorType(3)]
    words: Annotated[npt.NDArray[np.str_], VectorType(-1)]
    listed: Annotated[list[float], VectorType(3)]
    listed_ragged: list[int]
    zipmap: list[dict[str, float]]
    zipmap_int: list[dict[int, float]]
    mapping: dict[int, float]


def _everything(k: int) -> Everything:
    return Everything(
        f=1.5 + k,
        i=-(2**40) - k,
        b=k % 2 == 0,
        s=f"héllo {k}",
        f16=np.float16(0.25 * k),
        f64=1 / 3 + k,
        i8=np.int8(-128 + k),
        i32=np.int32(2**31 - 1 - k),
        u8=np.uint8(255 - k),
        u64=np.uint64(2**64 - 1 - k),
        key=k + 1,
        img=np.arange(6, dtype=np.float32).reshape(2, 3) + k,
        half=np.array([0.5, k], dtype=np.float16),
        batch=np.full((k + 1, 2), k, dtype=np.float32),
        ragged=np.arange((k + 1) * (3 - k), dtype=np.int32).reshape(k + 1, 3 - k),
        three=np.arange(2 * 2 * (k + 1), dtype=np.float64).reshape(2, 2, k + 1),
        flags=np.array([True, False, k == 1]),
        words=np.array(["a", "bc", "d"][: k + 1]),
        listed=[1.0 + k, 2.0, 3.0],
        listed_ragged=list(range(k)),
        zipmap=[{"yes": 0.25 + k, "no": 0.75}, {"yes": 1.0}][: k + 1],
        zipmap_int=[{0: 0.5, 1: 0.5}],
        mapping={k: 2.5, 10 + k: -1.0} if k else {},
    )


def _assert_row_equal(got: Everything, want: Everything) -> None:
    for f in dataclasses.fields(Everything):
        g, w = getattr(got, f.name), getattr(want, f.name)
        if isinstance(w, np.ndarray):
            assert isinstance(g, np.ndarray), f.name
            assert g.shape == w.shape, f.name
            np.testing.assert_array_equal(g, w, err_msg=f.name)
        else:
            assert g == w, f.name
            hint = typing.get_type_hints(Everything)[f.name]
            if isinstance(hint, type) and issubclass(hint, np.generic):  # np.float64 fields read numpy scalars
                assert type(g) is hint, f.name
            else:
                assert type(g) is type(w) or isinstance(w, np.generic), f.name


def test_round_trip_every_element_type_and_shape() -> None:
    rows = [_everything(k) for k in range(3)]
    view = load_from_enumerable(rows, Everything)
    assert view.row_count == 3
    assert [str(c) for c in view.schema.columns] == [
        "f: float32",
        "i: int64",
        "b: bool",
        "s: string",
        "f16: float16",
        "f64: float64",
        "i8: int8",
        "i32: int32",
        "u8: uint8",
        "u64: uint64",
        "key: key<uint32,4>",
        "img: float32[2,3]",
        "half: float16[2]",
        "batch: float32[?,2]",
        "ragged: int32[?,?]",
        "three: float64[?,2,?]",
        "flags: bool[3]",
        "words: string[?]",
        "listed: float32[3]",
        "listed_ragged: int64[?]",
        "zipmap: seq<map<string,float32>>",
        "zipmap_int: seq<map<int64,float32>>",
        "mapping: map<int64,float32>",
    ]
    back = list(create_enumerable(view, Everything))
    assert len(back) == 3
    for got, want in zip(back, rows, strict=True):
        assert isinstance(got, Everything)
        _assert_row_equal(got, want)
    # element types come back exactly, rows of different shapes keep their own shapes
    assert back[1].img.dtype == np.float32
    assert back[1].half.dtype == np.float16
    assert back[2].ragged.dtype == np.int32
    assert [r.ragged.shape for r in back] == [(1, 3), (2, 2), (3, 1)]
    assert [r.three.shape for r in back] == [(2, 2, 1), (2, 2, 2), (2, 2, 3)]
    assert [r.batch.shape for r in back] == [(1, 2), (2, 2), (3, 2)]
    assert back[2].words.tolist() == ["a", "bc", "d"]
    assert back[0].listed == [1.0, 2.0, 3.0] and isinstance(back[0].listed, list)
    assert back[2].listed_ragged == [0, 1]
    assert back[1].zipmap == [{"yes": 1.25, "no": 0.75}, {"yes": 1.0}]
    assert back[2].mapping == {2: 2.5, 12: -1.0}
    assert back[0].mapping == {}
    assert back[0].u64 == 2**64 - 1 and back[0].i == -(2**40)


def test_columns_hold_numpy_values_of_the_declared_types() -> None:
    view = load_from_enumerable([_everything(k) for k in range(3)], Everything)
    f = view.column("f")
    assert isinstance(f, np.ndarray) and f.dtype == np.float32 and f.tolist() == [1.5, 2.5, 3.5]
    assert view.column("f16").dtype == np.float16
    assert view.column("f16").tolist() == [0.0, 0.25, 0.5]
    assert view.column("key").dtype == np.uint32 and view.column("key").tolist() == [1, 2, 3]
    assert view.column("s").tolist() == ["héllo 0", "héllo 1", "héllo 2"]
    img = view.column("img")
    assert isinstance(img, np.ndarray) and img.shape == (3, 2, 3) and img.dtype == np.float32
    assert img[2].tolist() == [[2, 3, 4], [5, 6, 7]]
    batch = view.column("batch")
    assert isinstance(batch, list) and [a.shape for a in batch] == [(1, 2), (2, 2), (3, 2)]
    assert view.column("zipmap")[0] == [{"yes": 0.25, "no": 0.75}]
    assert view.column("mapping") == [{}, {1: 2.5, 11: -1.0}, {2: 2.5, 12: -1.0}]


@dataclasses.dataclass
class Vec:
    x: Annotated[npt.NDArray[np.float32], VectorType(2, 3)]


@dataclasses.dataclass
class Batch:
    x: Annotated[npt.NDArray[np.float32], VectorType(-1, 3)]


@dataclasses.dataclass
class Ints:
    y: int


@dataclasses.dataclass
class Small:
    n: np.int16


@dataclasses.dataclass
class Real:
    z: float


def test_flat_arrays_and_lists_are_reshaped_to_the_declared_shape() -> None:
    view = load_from_enumerable([Vec(np.arange(6, dtype=np.float32)), Vec([[0, 1, 2], [3, 4, 5]])], Vec)
    x = view.column("x")
    assert x.shape == (2, 2, 3)
    np.testing.assert_array_equal(x[0], x[1])
    # one unknown dimension is resolved from a flat array's size
    b = load_from_enumerable([Batch(np.arange(6, dtype=np.float32)), Batch(np.zeros(3, np.float32))], Batch)
    assert [a.shape for a in b.column("x")] == [(2, 3), (1, 3)]


def test_safe_conversions_are_applied() -> None:
    view = load_from_enumerable([Vec(np.arange(6, dtype=np.float64) / 3)], Vec)
    x = view.column("x")
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x[0], (np.arange(6, dtype=np.float64) / 3).astype(np.float32).reshape(2, 3))
    reals = load_from_enumerable([Real(1), Real(np.float64(2.5)), Real(True), Real(np.int64(7))], Real)
    assert reals.column("z").tolist() == [1.0, 2.5, 1.0, 7.0]
    ints = load_from_enumerable([Ints(True), Ints(np.int32(5)), Ints(np.uint8(200))], Ints)
    assert ints.column("y").tolist() == [1, 5, 200]
    # plain Python ints that fit are accepted into a narrower integer column
    assert load_from_enumerable([Small(3), Small(-300)], Small).column("n").tolist() == [3, -300]


def test_lossy_conversions_are_rejected() -> None:
    with pytest.raises(
        ColumnTypeError,
        match=r"^column 'y' \(field Ints\.y\), row 1: expected int64 values, got float64; convert the data first",
    ):
        load_from_enumerable([Ints(1), Ints(2.5)], Ints)  # type: ignore[arg-type]
    with pytest.raises(ColumnTypeError, match=r"row 0: expected int64 values, got float32"):
        load_from_enumerable([Ints(np.float32(1))], Ints)  # type: ignore[arg-type]
    with pytest.raises(
        ColumnTypeError, match=r"^column 'y' \(field Ints\.y\), row 0: expected int64 values, got strings"
    ):
        load_from_enumerable([Ints("1")], Ints)  # type: ignore[arg-type]
    with pytest.raises(
        ColumnTypeError, match=r"^column 'n' \(field Small\.n\), row 0: expected int16 values, got int64"
    ):
        load_from_enumerable([Small(70000)], Small)  # a Python int that does not fit
    with pytest.raises(ColumnTypeError, match=r"row 0: expected int16 values, got int64"):
        load_from_enumerable([Small(np.int64(1))], Small)  # numpy int64 never narrows silently
    with pytest.raises(
        ColumnTypeError, match=r"^column 'x' \(field Vec\.x\), row 0: expected float32 values, got strings"
    ):
        load_from_enumerable([Vec(np.array(["a"] * 6))], Vec)

    @dataclasses.dataclass
    class Text:
        s: str

    with pytest.raises(
        ColumnTypeError, match=r"^column 's' \(field Text\.s\), row 1: expected string values, got float64"
    ):
        load_from_enumerable([Text("a"), Text(1.5)], Text)  # type: ignore[arg-type]


def test_wrong_shapes_are_rejected() -> None:
    with pytest.raises(
        ShapeError,
        match=r"^column 'x' \(field Vec\.x\), row 1: expected shape \(2, 3\) \(6 values\), "
        r"got shape \(7,\) \(7 values\)$",
    ):
        load_from_enumerable([Vec(np.zeros(6, np.float32)), Vec(np.zeros(7, np.float32))], Vec)
    with pytest.raises(
        ShapeError, match=r"^column 'x' \(field Batch\.x\), row 0: expected shape \(\?, 3\), got shape \(2, 4\)$"
    ):
        load_from_enumerable([Batch(np.zeros((2, 4), np.float32))], Batch)
    with pytest.raises(ShapeError, match=r"expected shape \(\?, 3\), got shape \(4,\)"):
        load_from_enumerable([Batch(np.zeros(4, np.float32))], Batch)
    with pytest.raises(
        ShapeError,
        match=r"^column 'z' \(field Real\.z\), row 0: expected a single value, got an array of shape \(2,\)$",
    ):
        load_from_enumerable([Real([1.0, 2.0])], Real)  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        load_from_enumerable([Vec([[1, 2, 3], [4, 5]])], Vec)  # ragged nested lists
    # a single value in a one-element array is accepted as a scalar
    assert load_from_enumerable([Real(np.array([2.5]))], Real).column("z").tolist() == [2.5]  # type: ignore[arg-type]


def test_rows_of_another_class_are_rejected() -> None:
    with pytest.raises(
        SchemaError, match=r"^column 'y' \(field Ints\.y\): a row of type Real has no attribute 'y'; rows must be Ints"
    ):
        load_from_enumerable([Ints(1), Real(2.0)], Ints)


def test_empty_rows_give_a_zero_row_view_with_the_schema() -> None:
    view = load_from_enumerable([], Everything)
    assert view.row_count == 0
    assert view.count_rows() == 0
    assert view.schema == op.schema_of(Everything)
    img = view.column("img")
    assert isinstance(img, np.ndarray) and img.shape == (0, 2, 3) and img.dtype == np.float32
    assert view.column("batch") == []
    assert view.column("f").shape == (0,)
    table = view.to_arrow()
    assert table.num_rows == 0 and table.column_names == view.schema.names
    assert list(create_enumerable(view, Everything)) == []
    assert view.to_pandas().shape == (0, len(view.schema))
    assert Preview(view).rows == 0


def test_generators_and_batch_size() -> None:
    view = load_from_enumerable((Real(float(i)) for i in range(5)), Real, batch_size=2)
    assert view.row_count == 5
    assert [b.num_rows for b in view.batches()] == [2, 2, 1]
    assert [b.num_rows for b in view] == [2, 2, 1]  # re-iterable: each pass starts over
    assert view.column("z").tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [r.z for r in create_enumerable(view, Real)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    for bad in (0, -1):
        with pytest.raises(
            InvalidArgumentError, match=rf"^load_from_enumerable: batch_size must be a positive integer, got {bad}$"
        ):
            load_from_enumerable([Real(1.0)], Real, batch_size=bad)


def test_input_arrays_are_copied() -> None:
    arr = np.arange(6, dtype=np.float32)
    view = load_from_enumerable([Vec(arr)], Vec)
    arr[:] = -1
    assert view.column("x").reshape(-1).tolist() == [0, 1, 2, 3, 4, 5]


# --------------------------------------------------------------------------------------------
# DataView: lazy, immutable


def _counting_view(pulled: list[int] | None = None) -> tuple[DataView, list[int]]:
    calls: list[int] = []
    schema = Schema.of(a=t(DType.INT64), v=t(F32, 2))

    def source() -> Iterator[pa.RecordBatch]:
        calls.append(1)
        for start in range(0, 6, 2):
            if pulled is not None:
                pulled.append(start)
            a = np.arange(start, start + 2, dtype=np.int64)
            v = pa.FixedSizeListArray.from_arrays(pa.array(np.repeat(a, 2).astype(np.float32)), 2)
            yield pa.RecordBatch.from_arrays([pa.array(a), v], schema=pa.schema([("a", pa.int64()), ("v", v.type)]))

    return DataView(schema, source), calls


def test_dataview_reads_nothing_until_a_sink() -> None:
    view, calls = _counting_view()
    first3 = view.take(3)
    head = first3.take(2)
    assert view.schema.names == ["a", "v"] and view.row_count is None and first3.row_count is None
    assert repr(view) == "DataView(rows=?, Schema(a: int64, v: float32[2]))"
    batches = view.batches()
    assert calls == []  # schema, take, repr: nothing read
    next(batches)
    assert calls == [1]
    assert view.column("a").tolist() == [0, 1, 2, 3, 4, 5]
    assert calls == [1, 1]
    assert first3.column("a").tolist() == [0, 1, 2]
    assert head.column("v").tolist() == [[0, 0], [1, 1]]
    assert view.count_rows() == 6
    assert len(calls) == 5


def test_take_reads_only_the_batches_it_needs() -> None:
    pulled: list[int] = []
    view, calls = _counting_view(pulled)
    assert view.take(2).column("a").tolist() == [0, 1]
    assert pulled == [0]  # one batch of 2 rows, not the next one
    pulled.clear()
    assert view.take(3).column("a").tolist() == [0, 1, 2]
    assert pulled == [0, 2]
    pulled.clear()
    assert view.take(0).column("a").tolist() == []
    assert pulled == []
    assert len(calls) == 2  # take(0) does not even start the source


def test_take_and_preview() -> None:
    rows = [_everything(k) for k in range(3)]
    view = load_from_enumerable(rows, Everything, batch_size=2)
    assert view.take(2).row_count == 2
    assert view.take(10).row_count == 3
    assert view.take(0).count_rows() == 0
    assert view.take(3).column("s").tolist() == ["héllo 0", "héllo 1", "héllo 2"]
    assert [b.num_rows for b in view.take(3).batches()] == [2, 1]
    assert view.take(1).schema is view.schema
    with pytest.raises(InvalidArgumentError, match=r"^take: the number of rows must be an integer >= 0, got -1$"):
        view.take(-1)


@dataclasses.dataclass
class Narrow:
    score: float
    label: str
    img: Annotated[npt.NDArray[np.float32], VectorType(2, 3)]
    zipmap: list[dict[str, float]]


def test_preview_prints_names_types_and_values() -> None:
    rows = [Narrow(0.5 + k, f"cat{k}", np.arange(6, dtype=np.float32) + k, [{"yes": 0.25}]) for k in range(4)]
    view = load_from_enumerable(rows, Narrow)
    preview = view.preview(2)
    assert isinstance(preview, Preview) and preview.rows == 2
    text = str(preview)
    for name in ("score", "label", "img", "zipmap"):
        assert name in text
    for value in (
        "float32",
        "string",
        "float32[2,3]",
        "cat0",
        "cat1",
        "0.5",
        "1.5",
        "[0, 1, 2, 3, …] (2, 3)",
        "'yes': 0.25",
    ):
        assert value in text
    assert "cat2" not in text
    assert repr(preview) == text
    assert "cat3" in str(view.preview())


def test_dataview_is_immutable() -> None:
    view = load_from_enumerable([Vec(np.arange(6, dtype=np.float32))], Vec)
    with pytest.raises(AttributeError):
        view.schema = Schema()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        view.extra = 1  # type: ignore[attr-defined]
    col = view.column("x")
    with contextlib.suppress(ValueError):  # a read-only view of the Arrow buffer is fine
        col[0, 0, 0] = 100.0
    assert view.column("x")[0, 0, 0] == 0.0


def test_to_arrow_records_column_types_in_metadata() -> None:
    view = load_from_enumerable([_everything(k) for k in range(2)], Everything)
    table = view.to_arrow()
    assert table.num_rows == 2
    assert table.schema == view.arrow_schema
    img = table.schema.field("img")
    assert img.type == pa.list_(pa.float32(), 6)
    assert not img.nullable
    assert json.loads(img.metadata[b"onnxpipe.type"]) == {"kind": "tensor", "dtype": "float32", "shape": [2, 3]}
    assert json.loads(table.schema.field("key").metadata[b"onnxpipe.type"]) == {
        "kind": "key",
        "dtype": "uint32",
        "shape": [],
        "count": 4,
    }
    assert table.schema.field("batch").type == pa.list_(pa.float32())
    assert pa.types.is_struct(table.schema.field("ragged").type)
    assert table.schema.field("f16").type == pa.float16()
    assert table.schema.field("mapping").type == pa.map_(pa.int64(), pa.float32())
    assert table.schema.field("zipmap").type == pa.list_(pa.map_(pa.string(), pa.float32()))
    assert table.column("img").to_pylist()[1] == [1, 2, 3, 4, 5, 6]
    # the metadata makes Arrow a lossless round trip
    again = load_from_arrow(table)
    assert again.schema == view.schema
    for got, want in zip(create_enumerable(again, Everything), [_everything(0), _everything(1)], strict=True):
        _assert_row_equal(got, want)


def test_to_pandas() -> None:
    view = load_from_enumerable([_everything(k) for k in range(2)], Everything)
    df = view.to_pandas()
    assert list(df.columns) == view.schema.names
    assert len(df) == 2
    assert df["f"].dtype == np.float32 and df["f"].tolist() == [1.5, 2.5]
    assert df["i"].dtype == np.int64
    assert df["s"].tolist() == ["héllo 0", "héllo 1"]
    assert isinstance(df["img"].iloc[1], np.ndarray) and df["img"].iloc[1].shape == (2, 3)
    assert df["batch"].iloc[1].shape == (2, 2)
    assert df["mapping"].iloc[1] == {1: 2.5, 11: -1.0}


# --------------------------------------------------------------------------------------------
# Arrow and pandas sources


def test_load_from_arrow_primitive_and_nested_columns() -> None:
    table = pa.table(
        {
            "f": pa.array([1.0, 2.0, 3.0], pa.float32()),
            "d": pa.array([1.0, 2.0, 4.0], pa.float64()),
            "h": pa.array([0.5, 1.5, 2.5], pa.float16()),
            "i": pa.array([1, 2, 3], pa.int32()),
            "u": pa.array([1, 2, 3], pa.uint8()),
            "s": pa.array(["a", "b", "c"]),
            "ls": pa.array(["x", "y", "z"], pa.large_string()),
            "b": pa.array([True, False, True]),
            "fsl": pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 2),
            "l": pa.array([[1.0], [2.0, 3.0], []], pa.list_(pa.float64())),
            "ll": pa.array([[1], [2, 3], [4]], pa.large_list(pa.int64())),
            "cat": pa.array(["x", "y", "x"]).dictionary_encode(),
            "m": pa.array([[("a", 1.0)], [], [("b", 2.0)]], pa.map_(pa.string(), pa.float32())),
            "zm": pa.array([[[(1, 0.5)]], [], [[(2, 1.0)], [(3, 2.0)]]], pa.list_(pa.map_(pa.int64(), pa.float32()))),
        }
    )
    view = load_from_arrow(table)
    assert view.row_count == 3
    types = {n: c.type for n, c in view.schema.items()}
    assert types == {
        "f": t(F32),
        "d": t(DType.FLOAT64),
        "h": t(DType.FLOAT16),
        "i": t(DType.INT32),
        "u": t(DType.UINT8),
        "s": t(DType.STRING),
        "ls": t(DType.STRING),
        "b": t(DType.BOOL),
        "fsl": t(F32, 2),
        "l": t(DType.FLOAT64, None),
        "ll": t(DType.INT64, None),
        "cat": t(DType.STRING),
        "m": MapType(DType.STRING, t(F32)),
        "zm": SequenceType(MapType(DType.INT64, t(F32))),
    }
    assert view.column("h").tolist() == [0.5, 1.5, 2.5]
    assert view.column("u").dtype == np.uint8
    assert view.column("ls").tolist() == ["x", "y", "z"]
    assert view.column("fsl").tolist() == [[0, 1], [2, 3], [4, 5]]
    assert [a.tolist() for a in view.column("l")] == [[1.0], [2.0, 3.0], []]
    assert [a.tolist() for a in view.column("ll")] == [[1], [2, 3], [4]]
    assert view.column("cat").tolist() == ["x", "y", "x"]
    assert view.column("m") == [{"a": 1.0}, {}, {"b": 2.0}]
    assert view.column("zm") == [[{1: 0.5}], [], [{2: 1.0}, {3: 2.0}]]
    # a RecordBatch works too, and the canonical storage is used for every batch
    rb = load_from_arrow(table.to_batches()[0])
    assert rb.schema == view.schema
    assert rb.to_arrow().schema.field("cat").type == pa.string()


def test_load_from_arrow_fixed_shape_tensor() -> None:
    tensor_type = pa.fixed_shape_tensor(pa.float32(), (2, 3))
    storage = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12, dtype=np.float32)), 6)
    table = pa.table({"t": pa.ExtensionArray.from_storage(tensor_type, storage), "id": [1, 2]})
    view = load_from_arrow(table)
    assert view.schema["t"].type == t(F32, 2, 3)
    x = view.column("t")
    assert x.shape == (2, 2, 3)
    assert x[1].tolist() == [[6, 7, 8], [9, 10, 11]]
    renamed = load_from_arrow(table.rename_columns(["x", "id"]))
    assert [r.x.tolist() for r in create_enumerable(renamed, Vec)] == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]


def test_load_from_arrow_nulls() -> None:
    floats = load_from_arrow(
        pa.table({"f": pa.array([1.0, None, 3.0], pa.float32()), "d": pa.array([None, 2.0, None], pa.float64())})
    )
    assert np.isnan(floats.column("f")).tolist() == [False, True, False]
    assert np.isnan(floats.column("d")).tolist() == [True, False, True]
    assert floats.column("f")[2] == 3.0
    with pytest.raises(
        DataError,
        match=r"^load_from_arrow: column 'j' has a missing value at row 2; only scalar float columns may have "
        r"missing values \(read as NaN\)\. Fill or drop them first$",
    ):
        load_from_arrow(pa.table({"i": [1, 2, 3], "j": pa.array([1, 2, None], pa.int32())}))
    with pytest.raises(DataError, match=r"column 's' has a missing value at row 0"):
        load_from_arrow(pa.table({"s": pa.array([None, "b"])}))
    with pytest.raises(DataError, match=r"column 'l' has a missing value at row 1"):
        load_from_arrow(pa.table({"l": pa.array([[1, 2], None], pa.list_(pa.int64()))}))
    # a missing value inside a tensor is found when loading, not later
    with pytest.raises(
        DataError, match=r"^load_from_arrow: column 'l' has a missing value inside the float64\[\?\] tensor at row 2"
    ):
        load_from_arrow(pa.table({"l": pa.array([[1.0], [2.0, 3.0], [4.0, None]], pa.list_(pa.float64()))}))
    fsl = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, None, 4.0], pa.float32()), 2)
    with pytest.raises(DataError, match=r"column 'v' has a missing value inside the float32\[2\] tensor at row 1"):
        load_from_arrow(pa.table({"v": fsl}))


def test_load_from_arrow_error_rows_count_across_batches() -> None:
    table = pa.table({"i": pa.array([1, 2, 3, 4, None], pa.int64())})
    with pytest.raises(DataError, match=r"column 'i' has a missing value at row 4;"):
        load_from_arrow(table, batch_size=2)
    chunked = pa.table({"c": pa.chunked_array([pa.array([1.0, 2.0]), pa.array([3.0])])})
    view = load_from_arrow(chunked, batch_size=2)
    assert [b.num_rows for b in view.batches()] == [2, 1]
    assert view.column("c").tolist() == [1.0, 2.0, 3.0]


def test_load_from_arrow_rejects_bad_input() -> None:
    with pytest.raises(
        ColumnTypeError, match=r"^column 't': Arrow type timestamp\[s\] is not supported; supported are numbers"
    ):
        load_from_arrow(pa.table({"t": pa.array([1, 2], pa.timestamp("s"))}))
    with pytest.raises(SchemaError, match=r"^load_from_arrow expects a pyarrow Table or RecordBatch, got dict$"):
        load_from_arrow({"a": [1]})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"^load_from_arrow: batch_size must be a positive integer, got 0$"):
        load_from_arrow(pa.table({"a": [1]}), batch_size=0)


def test_load_from_pandas() -> None:
    df = pd.DataFrame(
        {
            "x": np.array([1.0, np.nan, 3.0]),
            "f": np.array([1, 2, 3], dtype=np.float32),
            "k": [1, 2, 3],
            "s": ["a", "b", "c"],
            "b": [True, False, True],
            "v": [np.arange(3, dtype=np.float32) + i for i in range(3)],
        },
        index=[10, 20, 30],
    )
    view = load_from_pandas(df)
    assert view.row_count == 3
    assert [str(c) for c in view.schema.columns] == [
        "x: float64",
        "f: float32",
        "k: int64",
        "s: string",
        "b: bool",
        "v: float32[?]",
    ]
    assert np.isnan(view.column("x")).tolist() == [False, True, False]
    assert view.column("s").tolist() == ["a", "b", "c"]
    assert [a.tolist() for a in view.column("v")] == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    # editing the DataFrame afterwards does not change the (immutable) view
    df.loc[10, "k"] = 99
    df.loc[10, "f"] = 99.0
    assert view.column("k").tolist() == [1, 2, 3]
    assert view.column("f").tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(DataError, match=r"^load_from_arrow: column 'k' has a missing value at row 1"):
        load_from_pandas(pd.DataFrame({"k": pd.array([1, None, 3], dtype="Int64")}))


# --------------------------------------------------------------------------------------------
# Parquet


@dataclasses.dataclass
class ParquetRow:
    x: Annotated[npt.NDArray[np.float32], VectorType(2, 3)]
    u: Annotated[npt.NDArray[np.float32], VectorType(-1, -1)]
    s: str
    zm: list[dict[str, float]]


def test_parquet_round_trip_keeps_shapes(tmp_path: Path) -> None:
    rows = [
        ParquetRow(np.arange(6, dtype=np.float32) + i, np.ones((i + 1, 2), np.float32) * i, f"r{i}", [{"a": float(i)}])
        for i in range(5)
    ]
    view = load_from_enumerable(rows, ParquetRow)
    path = tmp_path / "rows.parquet"
    pq.write_table(view.to_arrow(), path, row_group_size=2)
    loaded = load_from_parquet(path, batch_size=2)
    assert loaded.row_count == 5  # from the Parquet metadata, without reading the data
    assert loaded.schema == view.schema
    assert str(loaded.schema["x"].type) == "float32[2,3]"
    assert [b.num_rows for b in loaded.batches()] == [2, 2, 1]
    x = loaded.column("x")
    assert x.shape == (5, 2, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, view.column("x"))
    assert [a.shape for a in loaded.column("u")] == [(1, 2), (2, 2), (3, 2), (4, 2), (5, 2)]
    back = list(create_enumerable(loaded, ParquetRow))
    assert back[4].s == "r4" and back[4].zm == [{"a": 4.0}]
    np.testing.assert_array_equal(back[3].u, np.full((4, 2), 3, np.float32))


def test_parquet_written_by_others_and_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1.0, None], "b": [[1, 2], [3, 4]], "c": [None, 5]}), plain, row_group_size=1)
    view = load_from_parquet(plain)
    assert [str(c) for c in view.schema.columns] == ["a: float64", "b: int64[?]", "c: int64"]
    assert view.count_rows() == 2
    with pytest.raises(DataError, match=r"^Parquet file 'plain\.parquet': column 'c' has a missing value at row 0"):
        view.column("c")
    (tmp_path / "bad.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match=r"^cannot read Parquet file '.*bad\.parquet': "):
        load_from_parquet(tmp_path / "bad.parquet")
    with pytest.raises(
        DataFileNotFoundError, match=r"^Parquet file '.*missing\.parquet' does not exist \(or is not a file\)$"
    ):
        load_from_parquet(tmp_path / "missing.parquet")
    with pytest.raises(FileNotFoundError):
        load_from_parquet(tmp_path)  # a folder is not a file


# --------------------------------------------------------------------------------------------
# Text files: the real ML.NET test files


@dataclasses.dataclass
class BreastCancer:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]


@needs_shared_data
def test_breast_cancer_with_load_columns() -> None:
    view = load_from_text_file(MLNET / "breast-cancer.txt", BreastCancer)
    assert view.schema == Schema.of(Label=t(F32), Features=t(F32, 9))
    assert view.row_count is None  # not known without reading the file
    assert view.count_rows() == 699
    label, features = view.column("Label"), view.column("Features")
    assert label.dtype == np.float32 and features.shape == (699, 9) and features.dtype == np.float32
    assert label[:3].tolist() == [0.0, 0.0, 0.0]
    assert int(label.sum()) == 241  # malignant cases
    assert features[0].tolist() == [5, 1, 1, 1, 2, 1, 3, 1, 1]
    assert features[-1].tolist() == [4, 8, 8, 5, 4, 5, 10, 4, 1]
    missing = np.argwhere(np.isnan(features))
    assert len(missing) == 16  # the 16 '?' cells, all in "Bare Nuclei"
    assert set(missing[:, 1].tolist()) == {5}
    assert missing[0].tolist() == [23, 5]
    rows = list(create_enumerable(view.take(2), BreastCancer))
    assert rows[1].Features.tolist() == [5, 4, 4, 5, 7, 10, 3, 2, 1]


@needs_shared_data
def test_breast_cancer_inferred_schema() -> None:
    view = load_from_text_file(MLNET / "breast-cancer.txt")
    assert view.schema.names == [f"column{i}" for i in range(10)]
    assert view.schema["column0"].type == t(DType.INT64)
    assert view.schema["column6"].type == t(F32)  # whole numbers with '?' are read as float32 (NaN)
    assert int(np.isnan(view.column("column6")).sum()) == 16
    assert view.count_rows() == 699
    with_header = load_from_text_file(MLNET / "breast-cancer-withheader.txt", has_header=True)
    assert with_header.schema.names[:3] == ["label", "thickness", "uniform_size"]
    assert with_header.count_rows() == 683  # this copy leaves out the 16 rows with '?'


@needs_shared_data
def test_iris_with_hash_header() -> None:
    @dataclasses.dataclass
    class Iris:
        Label: Annotated[float, LoadColumn(0)]
        SepalLength: Annotated[float, ColumnName("Sepal length")]
        Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 4)]

    view = load_from_text_file(MLNET / "iris.txt", Iris, has_header=True)
    assert view.schema.names == ["Label", "Sepal length", "Features"]
    assert view.count_rows() == 150
    assert np.unique(view.column("Label"), return_counts=True)[1].tolist() == [50, 50, 50]
    np.testing.assert_array_equal(view.column("Features")[0], np.array([5.1, 3.5, 1.4, 0.2], np.float32))
    np.testing.assert_array_equal(view.column("Sepal length"), view.column("Features")[:, 0])
    inferred = load_from_text_file(MLNET / "iris.txt", has_header=True)
    assert [str(c) for c in inferred.schema.columns] == [
        "Label: int64",
        "Sepal length: float32",
        "Sepal width: float32",
        "Petal length: float32",
        "Petal width: float32",
    ]


@needs_shared_data
def test_housing_header_by_name() -> None:
    @dataclasses.dataclass
    class House:
        MedianHomeValue: float
        CrimesPerCapita: np.float64
        CharlesRiver: int
        Highway: Annotated[np.int32, ColumnName("HighwayDistance")]

    view = load_from_text_file(MLNET / "housing.txt", House, has_header=True)
    assert [str(c) for c in view.schema.columns] == [
        "MedianHomeValue: float32",
        "CrimesPerCapita: float64",
        "CharlesRiver: int64",
        "HighwayDistance: int32",
    ]
    assert view.count_rows() == 506
    assert view.column("MedianHomeValue")[:3].tolist() == pytest.approx([24.0, 21.6, 34.7])
    assert view.column("CrimesPerCapita")[:2].tolist() == [0.00632, 0.02731]
    assert view.column("HighwayDistance")[:3].tolist() == [1, 2, 2]
    first = next(create_enumerable(view, House))
    assert first.Highway == 1 and first.CharlesRiver == 0


@needs_shared_data
def test_adult_with_schema_lines_and_text() -> None:
    # Read as ML.NET's TextLoader reads it given no columns: the columns of its schema comment.
    described = load_from_text_file(MLNET / "adult.tiny.with-schema.txt")
    assert [str(c) for c in described.schema.columns] == [
        "Label: float32",
        "Workclass: string",
        "Categories: string[7]",
        "NumericFeatures: float32[6]",
    ]
    assert described.count_rows() == 500
    assert described.column("NumericFeatures")[0].tolist() == [25, 226802, 7, 0, 0, 40]

    # The comment ignored: the header's columns, with inferred types.
    view = load_from_text_file(MLNET / "adult.tiny.with-schema.txt", has_header=True, schema_comment=False)
    assert view.schema.names[:3] == ["Label", "Workclass", "education"]
    assert view.schema["Workclass"].type == t(DType.STRING)
    assert view.schema["age"].type == t(DType.INT64)
    assert view.count_rows() == 500
    workclass = view.column("Workclass")
    assert workclass[:5].tolist() == ["Private", "Private", "Local-gov", "Private", "?"]  # '?' stays text
    assert int((workclass == "?").sum()) == 30

    @dataclasses.dataclass
    class Adult:
        Label: Annotated[bool, LoadColumn(0)]
        Workclass: Annotated[str, LoadColumn(1)]
        Categories: Annotated[list[str], LoadColumn(2, 8)]
        NumericFeatures: Annotated[npt.NDArray[np.float32], LoadColumn(9, 14)]

    typed = load_from_text_file(MLNET / "adult.tiny.with-schema.txt", Adult, has_header=True)
    assert [str(c) for c in typed.schema.columns] == [
        "Label: bool",
        "Workclass: string",
        "Categories: string[7]",
        "NumericFeatures: float32[6]",
    ]
    assert int(typed.column("Label").sum()) == 115
    first = next(create_enumerable(typed, Adult))
    assert first.Categories == [
        "11th",
        "Never-married",
        "Machine-op-inspct",
        "Own-child",
        "Black",
        "Male",
        "United-States",
    ]
    assert first.NumericFeatures.tolist() == [25, 226802, 7, 0, 0, 40]


def test_data_catalog_entry_points(tmp_path: Path) -> None:
    ctx = op.MLContext(seed=0)
    view = ctx.data.load_from_enumerable([Real(1.0), Real(2.0)], Real)
    assert [r.z for r in ctx.data.create_enumerable(view, Real)] == [1.0, 2.0]
    assert ctx.data.load_from_arrow(view.to_arrow()).schema == view.schema
    assert ctx.data.load_from_pandas(view.to_pandas()).column("z").tolist() == [1.0, 2.0]
    pq.write_table(view.to_arrow(), tmp_path / "r.parquet")
    assert ctx.data.load_from_parquet(tmp_path / "r.parquet").row_count == 2
    (tmp_path / "r.csv").write_text("z\n1.5\n")
    assert ctx.data.load_from_text_file(tmp_path / "r.csv", Real, separator=",", has_header=True).column(
        "z"
    ).tolist() == [1.5]


# --------------------------------------------------------------------------------------------
# Text files: small files written here


def test_csv_with_quoting_header_and_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text('name,score,count,note\n"Smith, J",1.5,3,"said ""hi"""\nDoe,,4,plain\nRoe,NA,5,\nLee,?,6,x\n')
    inferred = load_from_text_file(path, separator=",", has_header=True)
    assert [str(c) for c in inferred.schema.columns] == [
        "name: string",
        "score: float32",
        "count: int64",
        "note: string",
    ]
    assert inferred.column("name").tolist() == ["Smith, J", "Doe", "Roe", "Lee"]
    assert inferred.column("note").tolist() == ['said "hi"', "plain", "", "x"]
    score = inferred.column("score")
    assert score[0] == 1.5 and np.isnan(score[1:]).all()

    @dataclasses.dataclass
    class Person:
        count: np.int32
        score: float
        who: Annotated[str, ColumnName("name")]

    view = load_from_text_file(path, Person, separator=",", has_header=True)
    assert view.schema.names == ["count", "score", "name"]
    people = list(create_enumerable(view, Person))
    assert [(p.who, p.count) for p in people] == [("Smith, J", 3), ("Doe", 4), ("Roe", 5), ("Lee", 6)]
    assert people[0].score == 1.5 and np.isnan(people[3].score)


def test_text_file_vectors_and_custom_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "vec.tsv"
    path.write_text("// a comment\n\n1\t2\t3\t-\n4\t\t6\t7\n")

    @dataclasses.dataclass
    class Row:
        first: Annotated[np.int64, LoadColumn(0)]
        v: Annotated[npt.NDArray[np.float32], LoadColumn(0, 2)]
        half: Annotated[np.float16, LoadColumn(2)]  # shares file column 2 with v (float32)
        last: Annotated[float, LoadColumn(3)]

    with pytest.raises(SchemaError, match=r"^Row\.v: file column 0 \('column0'\) is also read by Row\.first"):
        load_from_text_file(path, Row)

    @dataclasses.dataclass
    class FloatRow:
        v: Annotated[npt.NDArray[np.float32], LoadColumn(0, 2)]
        half: Annotated[np.float16, LoadColumn(2)]  # shares file column 2 with v (float32)
        last: Annotated[float, LoadColumn(3)]

    view = load_from_text_file(path, FloatRow, missing_values=["", "-"])
    assert view.count_rows() == 2
    np.testing.assert_array_equal(view.column("v"), np.array([[1, 2, 3], [4, np.nan, 6]], np.float32))
    assert view.column("half").dtype == np.float16 and view.column("half").tolist() == [3.0, 6.0]
    assert np.isnan(view.column("last")[0]) and view.column("last")[1] == 7.0
    with pytest.raises(ParseError, match=r"CSV conversion error to float: invalid value '-'"):  # not missing by default
        load_from_text_file(path, FloatRow).column("v")


def test_text_file_bad_cell_is_a_parse_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("x,y\n1.5,2\nabc,3\n")

    @dataclasses.dataclass
    class XY:
        x: float
        y: int

    view = load_from_text_file(path, XY, separator=",", has_header=True)
    with pytest.raises(
        ParseError, match=rf"^text file {str(path)!r}: .*CSV conversion error to float: invalid value 'abc'"
    ) as info:
        view.column("x")
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    # without a class the column is text
    assert load_from_text_file(path, separator=",", has_header=True).column("x").tolist() == ["1.5", "abc"]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("x,y\n1,2\n3\n")
    with pytest.raises(ParseError, match=r"Expected 2 columns, got 1"):
        load_from_text_file(ragged, XY, separator=",", has_header=True).count_rows()


def test_text_file_missing_value_in_int_column_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "ints.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i}\n" for i in range(3000)) + ",7\n")

    @dataclasses.dataclass
    class XY:
        x: int
        y: float

    view = load_from_text_file(path, XY, separator=",", has_header=True, block_size=4096)
    assert len(list(view.take(5).batches())) == 1
    with pytest.raises(
        DataError,
        match=r"^text file 'ints\.csv': column 'x' has a missing value at row 3000; only scalar float columns",
    ):
        view.column("x")

    @dataclasses.dataclass
    class IntVector:
        v: Annotated[npt.NDArray[np.int64], LoadColumn(0, 1)]

    with pytest.raises(DataError, match=r"column 'v\[0\]' has a missing value at row 3000"):
        load_from_text_file(path, IntVector, separator=",", has_header=True, block_size=4096).count_rows()


def test_text_file_schema_errors(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("x,y\n1.5,2\n")

    @dataclasses.dataclass
    class Past:
        x: Annotated[float, LoadColumn(5)]

    with pytest.raises(
        SchemaError, match=r"^Past\.x: LoadColumn index 5 is past the last column of 'two\.csv', which has 2 columns$"
    ):
        load_from_text_file(path, Past, separator=",")

    @dataclasses.dataclass
    class PastRange:
        v: Annotated[npt.NDArray[np.float32], LoadColumn(0, 2)]

    with pytest.raises(SchemaError, match=r"^PastRange\.v: LoadColumn index 2 is past the last column"):
        load_from_text_file(path, PastRange, separator=",", has_header=True)

    @dataclasses.dataclass
    class NoSuchName:
        z: float

    with pytest.raises(
        SchemaError,
        match=r"^NoSuchName\.z: no LoadColumn\(index\) marker and no file column named 'z' "
        r"\(file columns: \['x', 'y'\]\)$",
    ):
        load_from_text_file(path, NoSuchName, separator=",", has_header=True)
    with pytest.raises(SchemaError, match=r"no file column named 'z' \(the file has no header\)$"):
        load_from_text_file(path, NoSuchName, separator=",")

    @dataclasses.dataclass
    class MapField:
        m: Annotated[dict[str, float], LoadColumn(0)]

    with pytest.raises(
        SchemaError, match=r"^MapField\.m: map<string,float32> columns cannot be read from a text file$"
    ):
        load_from_text_file(path, MapField, separator=",")

    @dataclasses.dataclass
    class Conflict:
        f: Annotated[float, LoadColumn(1)]
        i: Annotated[int, LoadColumn(1)]

    with pytest.raises(
        SchemaError, match=r"^Conflict\.i: file column 1 \('y'\) is also read by Conflict\.f as another element type"
    ):
        load_from_text_file(path, Conflict, separator=",", has_header=True)
    with pytest.raises(SchemaError, match=r"^separator must be one character, got ',,'$"):
        load_from_text_file(path, separator=",,")


def test_text_file_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(
        DataFileNotFoundError, match=r"^text file '.*nope\.csv' does not exist \(or is not a file\)$"
    ) as info:
        load_from_text_file(tmp_path / "nope.csv")
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "empty.csv").write_text("// only a comment\n")
    with pytest.raises(DataError, match=r"^text file '.*empty\.csv' has no data rows to read a column layout from$"):
        load_from_text_file(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("x,y\n")

    @dataclasses.dataclass
    class XY:
        x: float
        y: int

    view = load_from_text_file(tmp_path / "header.csv", XY, separator=",", has_header=True)
    assert view.count_rows() == 0
    assert view.column("x").shape == (0,)


def test_text_file_inferred_types(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tsv"
    path.write_text("1\t2.5\thello\ttrue\t\n2\t3\tworld\tfalse\t\n3\t-1e3\t?\ttrue\t\n")
    view = load_from_text_file(path)
    assert [str(c) for c in view.schema.columns] == [
        "column0: int64",
        "column1: float32",
        "column2: string",
        "column3: bool",
        "column4: float32",  # an all-missing column
    ]
    assert view.column("column0").tolist() == [1, 2, 3]
    assert view.column("column1").tolist() == [2.5, 3.0, -1000.0]
    assert view.column("column2").tolist() == ["hello", "world", "?"]
    assert view.column("column3").tolist() == [True, False, True]
    assert np.isnan(view.column("column4")).all()


def test_text_file_is_read_lazily(tmp_path: Path) -> None:
    path = tmp_path / "grow.csv"
    path.write_text("1.5\n")
    view = load_from_text_file(path, RealAt0, separator=",")
    path.write_text("1.5\n2.5\n")  # the data is read by the sink, not when the view is made
    assert view.column("z").tolist() == [1.5, 2.5]


@dataclasses.dataclass
class RealAt0:
    z: Annotated[float, LoadColumn(0)]


# --------------------------------------------------------------------------------------------
# Rows sink


def test_create_enumerable_checks_columns_first() -> None:
    view = load_from_arrow(pa.table({"a": pa.array([1.5], pa.float64()), "b": pa.array([2.5], pa.float32())}))

    @dataclasses.dataclass
    class Wants:
        a: float
        c: int

    with pytest.raises(
        ColumnNotFoundError,
        match=r"^Wants\.c reads column 'c', which the data does not have; available columns: \['a', 'b'\]$",
    ):
        create_enumerable(view, Wants)  # raised at once, before iteration

    @dataclasses.dataclass
    class WantsInt:
        b: int

    with pytest.raises(
        ColumnTypeError, match=r"^WantsInt\.b \(column 'b'\): the field holds int64, the column is float32$"
    ):
        create_enumerable(view, WantsInt)

    @dataclasses.dataclass
    class WantsVector:
        b: Annotated[npt.NDArray[np.float32], VectorType(3)]

    with pytest.raises(
        ShapeError, match=r"^WantsVector\.b \(column 'b'\): the field is float32\[3\], the column is float32$"
    ):
        create_enumerable(view, WantsVector)

    @dataclasses.dataclass
    class WantsMap:
        b: dict[str, float]

    with pytest.raises(
        ColumnTypeError, match=r"^WantsMap\.b \(column 'b'\): the field is map<string,float32>, the column is float32$"
    ):
        create_enumerable(view, WantsMap)

    # float64 data into a float32 field is a safe conversion; a [1] vector reads as a scalar
    @dataclasses.dataclass
    class Renamed:
        first: Annotated[float, ColumnName("a")]

    (row,) = create_enumerable(view, Renamed)
    assert row == Renamed(1.5)
    one = load_from_enumerable([Vec1(np.array([4.0], np.float32))], Vec1)
    assert [r.z for r in create_enumerable(one, Real)] == [4.0]


@dataclasses.dataclass
class Vec1:
    z: Annotated[npt.NDArray[np.float32], VectorType(1)]


def test_column_of_unknown_shape_is_one_array_when_rows_agree_and_a_list_when_ragged() -> None:
    uniform = pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32()))
    ragged = pa.array([[1.0], [3.0, 4.0]], pa.list_(pa.float32()))
    view = load_from_arrow(pa.table({"uniform": uniform, "ragged": ragged}))
    assert str(view.schema) == "Schema(uniform: float32[?], ragged: float32[?])"
    got = view.column("uniform")
    assert isinstance(got, np.ndarray) and got.shape == (2, 2) and got.dtype == np.float32
    rows = view.column("ragged")
    assert isinstance(rows, list) and [r.tolist() for r in rows] == [[1.0], [3.0, 4.0]]


def test_text_fields_are_read_as_mlnet_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "quotes.tsv"
    path.write_text(
        "id\ttext\n"
        "1\t   leading spaces go\n"
        '2\t  " kept inside quotes"\n'
        '3\t"an ""escaped"" quote"\n'
        '4\t"a quote left open swallows nothing\n'
        "5\tthe next line is its own row\n",
        encoding="utf-8",
    )
    view = load_from_text_file(path, has_header=True)
    assert view.column("id").tolist() == [1, 2, 3, 4, 5]
    assert view.column("text").tolist() == [
        "leading spaces go",
        " kept inside quotes",
        'an "escaped" quote',
        "",  # ML.NET: an open quote is a quoting error, the field is empty
        "the next line is its own row",
    ]
    kept = load_from_text_file(path, has_header=True, trim_leading_spaces=False)
    assert kept.column("text").tolist()[0] == "   leading spaces go"
    as_is = load_from_text_file(path, has_header=True, allow_quoting=False)
    assert as_is.column("text").tolist()[3] == '"a quote left open swallows nothing'
