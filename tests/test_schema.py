"""Schema declared by classes (DESIGN §2), column types, Schema, and DType's safe conversions."""

import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Optional

import numpy as np
import numpy.typing as npt
import pytest

import onnxpipe as op
from onnxpipe.errors import ColumnNotFoundError, ColumnTypeError, SchemaError
from onnxpipe.schema import (
    AnyRankTensorType,
    Column,
    ColumnName,
    DType,
    KeyType,
    LoadColumn,
    MapType,
    OptionalType,
    Schema,
    SequenceType,
    TensorType,
    VectorType,
    row_binding,
    schema_of,
)

F32 = DType.FLOAT32


def t(dtype: DType, *shape: int | None, key: int | None = None) -> TensorType:
    return TensorType(dtype, tuple(shape)) if key is None else KeyType(key, shape=tuple(shape), dtype=dtype)


# --------------------------------------------------------------------------------------------
# Annotations -> column types


@dataclasses.dataclass
class Scalars:
    f: float
    i: int
    b: bool
    s: str
    f64: np.float64
    f32: np.float32
    f16: np.float16
    i8: np.int8
    i16: np.int16
    i32: np.int32
    i64: np.int64
    u8: np.uint8
    u16: np.uint16
    u32: np.uint32
    u64: np.uint64
    nb: np.bool_
    ns: np.str_


def test_scalar_annotations_map_to_element_types() -> None:
    schema = schema_of(Scalars)
    assert {n: c.type for n, c in schema.items()} == {
        "f": t(F32),
        "i": t(DType.INT64),
        "b": t(DType.BOOL),
        "s": t(DType.STRING),
        "f64": t(DType.FLOAT64),
        "f32": t(F32),
        "f16": t(DType.FLOAT16),
        "i8": t(DType.INT8),
        "i16": t(DType.INT16),
        "i32": t(DType.INT32),
        "i64": t(DType.INT64),
        "u8": t(DType.UINT8),
        "u16": t(DType.UINT16),
        "u32": t(DType.UINT32),
        "u64": t(DType.UINT64),
        "nb": t(DType.BOOL),
        "ns": t(DType.STRING),
    }
    assert schema.names == [f.name for f in dataclasses.fields(Scalars)]  # declaration order
    assert all(schema[n].type.is_scalar for n in schema)
    assert str(schema["f"].type) == "float32"


@dataclasses.dataclass
class OnnxInput:
    data: Annotated[npt.NDArray[np.float32], ColumnName("data"), VectorType(1, 3, 224, 224)]


@dataclasses.dataclass
class OnnxOutput:
    scores: Annotated[npt.NDArray[np.float32], ColumnName("resnetv24_dense0_fwd"), VectorType(1, 1000)]


def test_design_example_classes() -> None:
    assert schema_of(OnnxInput) == Schema([Column("data", t(F32, 1, 3, 224, 224))])
    out = schema_of(OnnxOutput)
    assert out.names == ["resnetv24_dense0_fwd"]
    assert out["resnetv24_dense0_fwd"].type == t(F32, 1, 1000)
    assert str(out["resnetv24_dense0_fwd"].type) == "float32[1,1000]"
    (field,) = row_binding(OnnxOutput).fields
    assert field.attribute == "scores"
    assert field.column.name == "resnetv24_dense0_fwd"
    assert field.as_list is False
    assert field.load_column is None


class Vectors:
    known: Annotated[npt.NDArray[np.float32], VectorType(2, 3)]
    batch: Annotated[npt.NDArray[np.float32], VectorType(-1, 3)]
    none_dims: Annotated[npt.NDArray[np.int32], VectorType(None, None)]
    mixed: Annotated[npt.NDArray[np.float64], VectorType(-1, 4, None)]
    no_shape: npt.NDArray[np.float64]
    np_int_dim: Annotated[npt.NDArray[np.uint8], VectorType(np.int64(5))]
    strings: Annotated[npt.NDArray[np.str_], VectorType(2)]
    scalar_with_shape: Annotated[float, VectorType(4)]
    f16: Annotated[npt.NDArray[np.float16], VectorType(8)]


def test_vector_annotations_and_unknown_dims() -> None:
    schema = schema_of(Vectors)
    types = {n: c.type for n, c in schema.items()}
    assert types == {
        "known": t(F32, 2, 3),
        "batch": t(F32, None, 3),
        "none_dims": t(DType.INT32, None, None),
        "mixed": t(DType.FLOAT64, None, 4, None),
        "no_shape": t(DType.FLOAT64, None),
        "np_int_dim": t(DType.UINT8, 5),
        "strings": t(DType.STRING, 2),
        "scalar_with_shape": t(F32, 4),
        "f16": t(DType.FLOAT16, 8),
    }
    assert [str(c.type) for c in schema.columns] == [
        "float32[2,3]",
        "float32[?,3]",
        "int32[?,?]",
        "float64[?,4,?]",
        "float64[?]",
        "uint8[5]",
        "string[2]",
        "float32[4]",
        "float16[8]",
    ]
    known = types["known"]
    assert isinstance(known, TensorType)
    assert (known.rank, known.size, known.is_known_shape, known.is_scalar) == (2, 6, True, False)
    batch = types["batch"]
    assert isinstance(batch, TensorType)
    assert (batch.rank, batch.size, batch.is_known_shape) == (2, None, False)
    assert all(f.as_list is False for f in row_binding(Vectors).fields)


class Lists:
    vec: Annotated[list[float], VectorType(3)]
    ragged: list[float]
    ints: list[int]
    zipmap: list[dict[str, float]]
    zipmap_int: list[dict[int, float]]
    mapping: dict[int, float]
    str_map: dict[str, np.float64]


def test_list_and_dict_annotations() -> None:
    schema = schema_of(Lists)
    types = {n: c.type for n, c in schema.items()}
    assert types == {
        "vec": t(F32, 3),
        "ragged": t(F32, None),
        "ints": t(DType.INT64, None),
        "zipmap": SequenceType(MapType(DType.STRING, t(F32))),
        "zipmap_int": SequenceType(MapType(DType.INT64, t(F32))),
        "mapping": MapType(DType.INT64, t(F32)),
        "str_map": MapType(DType.STRING, t(DType.FLOAT64)),
    }
    assert str(types["zipmap"]) == "seq<map<string,float32>>"
    assert str(types["mapping"]) == "map<int64,float32>"
    as_list = {f.attribute: f.as_list for f in row_binding(Lists).fields}
    assert as_list == {
        "vec": True,
        "ragged": True,
        "ints": True,
        "zipmap": True,
        "zipmap_int": True,
        "mapping": False,
        "str_map": False,
    }


class Keys:
    label: Annotated[int, KeyType(5)]
    from_float: Annotated[float, KeyType(3)]
    vec: Annotated[npt.NDArray[np.uint32], KeyType(4), VectorType(2)]
    from_f32_array: Annotated[npt.NDArray[np.float32], KeyType(4)]
    as_list: Annotated[list[int], KeyType(7), VectorType(3)]


def test_key_type_is_a_uint32_key_column() -> None:
    types = {n: c.type for n, c in schema_of(Keys).items()}
    assert types == {
        "label": t(DType.UINT32, key=5),
        "from_float": t(DType.UINT32, key=3),
        "vec": t(DType.UINT32, 2, key=4),
        "from_f32_array": t(DType.UINT32, None, key=4),
        "as_list": t(DType.UINT32, 3, key=7),
    }
    assert str(types["label"]) == "key<uint32,5>"
    assert str(types["vec"]) == "key<uint32,4>[2]"


class Loaded:
    Label: Annotated[float, LoadColumn(0)]
    Features: Annotated[npt.NDArray[np.float32], LoadColumn(1, 9)]
    Listed: Annotated[list[float], LoadColumn(10, 12)]
    Shaped: Annotated[npt.NDArray[np.float32], LoadColumn(13, 18), VectorType(2, 3)]
    Half: Annotated[npt.NDArray[np.float32], LoadColumn(19, 22), VectorType(-1, 2)]
    Single: Annotated[npt.NDArray[np.float32], LoadColumn(23, 23)]
    ByName: int


def test_load_column_markers() -> None:
    binding = row_binding(Loaded)
    by_attr = {f.attribute: f for f in binding.fields}
    assert by_attr["Label"].load_column == LoadColumn(0)
    assert by_attr["Label"].column.type == t(F32)
    assert by_attr["Features"].load_column == LoadColumn(1, 9)
    assert by_attr["Features"].column.type == t(F32, 9)  # the range gives the unknown size
    assert by_attr["Listed"].column.type == t(F32, 3)
    assert by_attr["Listed"].as_list is True
    assert by_attr["Shaped"].column.type == t(F32, 2, 3)
    assert by_attr["Half"].column.type == t(F32, 4)  # unknown dims become the range's size
    assert by_attr["Single"].column.type == t(F32, None)  # a one-column range is not a vector size
    assert by_attr["ByName"].load_column is None
    assert LoadColumn(0).count == 1
    assert LoadColumn(1, 9).count == 9
    assert LoadColumn(4, 4).count == 1


def test_column_name_mapping() -> None:
    @dataclasses.dataclass
    class Row:
        x: Annotated[float, ColumnName("Sepal length")]
        y: Annotated[npt.NDArray[np.float32], VectorType(2), ColumnName("input:0")]
        z: int

    binding = row_binding(Row)
    assert [(f.attribute, f.column.name) for f in binding.fields] == [
        ("x", "Sepal length"),
        ("y", "input:0"),
        ("z", "z"),
    ]
    assert schema_of(Row).names == ["Sepal length", "input:0", "z"]
    assert binding.schema == schema_of(Row)
    assert binding.cls is Row


def test_plain_annotated_class_skips_private_classvar_and_methods() -> None:
    class Base:
        a: float

    class Plain(Base):
        b: Annotated[str, ColumnName("B")]
        _hidden: int
        counter: ClassVar[int] = 0

        def method(self) -> int:
            return 1

    assert [str(c) for c in schema_of(Plain).columns] == ["a: float32", "B: string"]


def test_string_annotations_are_resolved() -> None:
    class Forward:
        x: "float"
        y: "Annotated[npt.NDArray[np.float32], VectorType(2)]"

    assert schema_of(Forward) == Schema.of(x=t(F32), y=t(F32, 2))


def test_pydantic_model() -> None:
    pydantic = pytest.importorskip("pydantic", reason="pydantic is not installed")

    class Model(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

        x: float
        label: Annotated[str, ColumnName("Label")]
        v: Annotated[npt.NDArray[np.float32], VectorType(-1, 2)]

    assert schema_of(Model) == Schema.of(x=t(F32), Label=t(DType.STRING), v=t(F32, None, 2))


# --------------------------------------------------------------------------------------------
# Invalid declarations


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ((-7,), r"VectorType\(-7,\): dimension -7 is invalid; use a size \(0 or more\), or -1 / None"),
        ((-2,), r"dimension -2 is invalid"),
        ((3, -5), r"dimension -5 is invalid"),
        ((True,), r"dimension True is invalid"),
        ((2.5,), r"dimension 2.5 is invalid"),
        ((), r"VectorType needs at least one dimension, e.g. VectorType\(3\)"),
    ],
)
def test_invalid_vector_type(dims: tuple[Any, ...], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        VectorType(*dims)


def test_vector_type_value_semantics() -> None:
    assert VectorType(-1, 3).dims == (None, 3)
    assert VectorType(None, 3) == VectorType(-1, 3)
    assert hash(VectorType(None, 3)) == hash(VectorType(-1, 3))
    assert VectorType(2, 3) != VectorType(3, 2)
    assert repr(VectorType(None, 3)) == "VectorType(-1, 3)"


def test_invalid_markers() -> None:
    with pytest.raises(SchemaError, match=r"KeyType\(0\): the key count must be positive"):
        KeyType(0)
    with pytest.raises(SchemaError, match=r"LoadColumn\(-1, None\): invalid column range"):
        LoadColumn(-1)
    with pytest.raises(SchemaError, match=r"LoadColumn\(5, 2\): invalid column range"):
        LoadColumn(5, 2)
    assert TensorType(F32, (0,)).size == 0  # ONNX: 0 is a size (an empty tensor), not unknown
    assert VectorType(2, 0).dims == (2, 0)
    with pytest.raises(SchemaError, match=r"dimension -1 in shape \(2,-1\) is invalid"):
        TensorType(F32, (2, -1))


def _unsupported(annotation: Any) -> type:
    return type("Bad", (), {"__annotations__": {"ok": float, "field": annotation}})


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        (complex, "<class 'complex'>"),
        (np.complex64, "numpy.complex64"),
        (bytes, "<class 'bytes'>"),
        (list[complex], "<class 'complex'>"),
        (dict[complex, float], "<class 'complex'>"),
        (dict[str, complex], "<class 'complex'>"),
        (npt.NDArray[Any], "typing.Any"),  # not silently a string column
        (npt.NDArray[np.complex128], "numpy.complex128"),
        (npt.NDArray, "_ScalarT"),  # no element type at all
        (list, "<class 'list'>"),
        (Any, "typing.Any"),
    ],
)
def test_unsupported_annotation_names_class_and_field(annotation: Any, shown: str) -> None:
    with pytest.raises(ColumnTypeError, match=rf"^Bad\.field: element type .*{shown}.* is not supported; use float"):
        schema_of(_unsupported(annotation))


@pytest.mark.parametrize("annotation", [int | str, float | str | None, Optional[int | str]])  # noqa: UP045
def test_a_union_other_than_an_optional_is_refused(annotation: Any) -> None:
    with pytest.raises(ColumnTypeError, match=r"^Bad\.field: .* is not supported; a union must be one type or None"):
        schema_of(_unsupported(annotation))


def test_optionals_and_sequences_of_tensors_read_from_annotations() -> None:
    @dataclass
    class Row:
        maybe: float | None
        spelled: Optional[np.int32]  # noqa: UP045 - the spelling users write
        pieces: list[npt.NDArray[np.float32]]
        shaped: Annotated[list[npt.NDArray[np.int64]] | None, VectorType(-1, 3)]

    assert schema_of(Row).columns == [
        Column("maybe", OptionalType(TensorType(DType.FLOAT32))),
        Column("spelled", OptionalType(TensorType(DType.INT32))),
        Column("pieces", SequenceType(AnyRankTensorType(DType.FLOAT32))),
        Column("shaped", OptionalType(SequenceType(TensorType(DType.INT64, (None, 3))))),
    ]


def test_list_with_two_element_types_is_rejected() -> None:
    with pytest.raises(ColumnTypeError, match=r"^Bad\.field: list\[float, int\] is not supported; a list takes one"):
        schema_of(_unsupported(list[float, int]))  # type: ignore[misc]


def test_load_column_range_must_fit_the_field() -> None:
    class ScalarRange:
        x: Annotated[float, LoadColumn(1, 3)]

    with pytest.raises(
        SchemaError, match=r"^ScalarRange\.x: LoadColumn\(1, 3\) reads 3 values but the field's type is float32$"
    ):
        schema_of(ScalarRange)

    class WrongSize:
        x: Annotated[npt.NDArray[np.float32], VectorType(4), LoadColumn(1, 3)]

    with pytest.raises(
        SchemaError, match=r"^WrongSize\.x: LoadColumn\(1, 3\) reads 3 values but the field's type is float32\[4\]$"
    ):
        schema_of(WrongSize)


def test_duplicate_column_names_are_rejected() -> None:
    class Dup:
        a: Annotated[float, ColumnName("x")]
        x: int

    with pytest.raises(
        SchemaError, match=r"^Dup\.x: column name 'x' is already used by Dup\.a; give each field its own"
    ):
        schema_of(Dup)


def test_not_a_schema_class() -> None:
    class Empty:
        pass

    class Unresolvable:
        x: "NoSuchType"  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(SchemaError, match=r"^a schema class is expected, got 3$"):
        schema_of(3)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"^Empty declares no annotated fields$"):
        schema_of(Empty)
    with pytest.raises(SchemaError, match=r"^cannot read the annotations of Unresolvable: name 'NoSuchType'"):
        schema_of(Unresolvable)


def test_errors_subclass_builtins() -> None:
    assert issubclass(ColumnTypeError, TypeError)
    assert issubclass(ColumnTypeError, SchemaError)
    assert issubclass(SchemaError, ValueError)
    assert issubclass(ColumnNotFoundError, KeyError)
    assert str(ColumnNotFoundError("column 'a' is missing")) == "column 'a' is missing"  # no KeyError quotes


# --------------------------------------------------------------------------------------------
# Schema


def test_schema_is_an_ordered_mapping() -> None:
    s = Schema.of(b=t(F32), a=t(DType.INT64, 2))
    assert s.names == ["b", "a"]
    assert list(s) == ["b", "a"]
    assert len(s) == 2
    assert "a" in s and "c" not in s
    assert s["a"] == Column("a", t(DType.INT64, 2))
    assert s.columns == [Column("b", t(F32)), Column("a", t(DType.INT64, 2))]
    assert repr(s) == "Schema(b: float32, a: int64[2])"
    assert s.get("c") is None  # Mapping.get still works with a KeyError subclass


def test_schema_equality_is_strict_and_ordered() -> None:
    a = Schema.of(x=t(F32), y=t(DType.INT64))
    assert a == Schema([Column("x", t(F32)), Column("y", t(DType.INT64))])
    assert hash(a) == hash(Schema.of(x=t(F32), y=t(DType.INT64)))
    assert a != Schema.of(y=t(DType.INT64), x=t(F32))  # order matters
    assert a != Schema.of(x=t(DType.FLOAT64), y=t(DType.INT64))  # types are strict
    assert a != Schema.of(x=t(F32, 1), y=t(DType.INT64))  # a [1] vector is not a scalar
    assert Schema.of(k=t(DType.UINT32, key=3)) != Schema.of(k=t(DType.UINT32))
    assert Schema([Column("x", t(F32), ("a",))]) != Schema([Column("x", t(F32))])  # slot names count
    assert a != {"x": a["x"], "y": a["y"]}


def test_schema_replacement_selection_and_removal() -> None:
    s = Schema.of(a=t(F32), b=t(DType.INT64), c=t(DType.STRING))
    # a later column of the same name replaces the earlier one, in place
    assert Schema([Column("a", t(F32)), Column("b", t(F32)), Column("a", t(DType.BOOL))]).columns == [
        Column("a", t(DType.BOOL)),
        Column("b", t(F32)),
    ]
    replaced = s.with_columns(Column("a", t(DType.FLOAT64)), Column("d", t(F32, 3)))
    assert [str(c) for c in replaced.columns] == ["b: int64", "c: string", "a: float64", "d: float32[3]"]
    assert s.names == ["a", "b", "c"]  # the original is unchanged
    assert s.without("b", "zzz").names == ["a", "c"]
    assert s.select(["c", "a"]).names == ["c", "a"]
    with pytest.raises(
        ColumnNotFoundError, match=r"^column 'zz' is not in the data; available columns: \['a', 'b', 'c'\]$"
    ):
        s.select(["zz"])


def test_missing_column_messages_list_available_columns() -> None:
    s = Schema.of(Features=t(F32, 4), Label=t(DType.BOOL))
    with pytest.raises(
        ColumnNotFoundError, match=r"^column 'Score' is not in the data; available columns: \['Features', 'Label'\]$"
    ):
        s["Score"]
    with pytest.raises(
        ColumnNotFoundError,
        match=r"^normalize_min_max: input column 'Feature' is not in the data; "
        r"available columns: \['Features', 'Label'\]$",
    ):
        s.require("Feature", "normalize_min_max")
    with pytest.raises(KeyError):
        s.require("Feature", "step")
    assert s.require("Label", "step") == Column("Label", t(DType.BOOL))


def test_schema_json_round_trip() -> None:
    s = Schema(
        [
            Column("x", t(F32)),
            Column("img", t(F32, 1, 3, None, None)),
            Column("k", t(DType.UINT32, key=10)),
            Column("v", t(DType.FLOAT16, 4), slot_names=("a", "b", "c", "d")),
            Column("zm", SequenceType(MapType(DType.STRING, t(F32)))),
            Column("m", MapType(DType.INT64, t(DType.FLOAT64, 2))),
            Column("s", t(DType.STRING)),
        ]
    )
    obj = s.to_json()
    assert obj[1] == {"name": "img", "type": {"kind": "tensor", "dtype": "float32", "shape": [1, 3, None, None]}}
    assert obj[2] == {"name": "k", "type": {"kind": "key", "dtype": "uint32", "shape": [], "count": 10}}
    assert obj[3]["slot_names"] == ["a", "b", "c", "d"]
    assert obj[4]["type"] == {
        "kind": "sequence",
        "element": {"kind": "map", "key": "string", "value": {"kind": "tensor", "dtype": "float32", "shape": []}},
    }
    back = Schema.from_json(json.loads(json.dumps(obj)))
    assert back == s
    assert back.columns == s.columns
    assert schema_of(Vectors) == Schema.from_json(schema_of(Vectors).to_json())


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"kind": "tensor", "dtype": "float128", "shape": []}, r"invalid column type description .*float128"),
        ({"kind": "tensor", "shape": []}, r"invalid column type description .*'dtype'"),
        ({"kind": "tensor", "dtype": "float32", "shape": [-3]}, r"dimension -3 in shape"),
        (
            {"kind": "table"},
            r"invalid column type kind 'table': expected tensor, key, image, sparse, sequence, map or optional",
        ),
    ],
)
def test_schema_from_bad_json(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        Schema.from_json([{"name": "x", "type": obj}])


def test_public_exports() -> None:
    assert op.schema_of is schema_of
    assert op.VectorType is VectorType
    assert op.ColumnName is ColumnName
    assert op.Schema is Schema


# --------------------------------------------------------------------------------------------
# DType


@pytest.mark.parametrize(
    ("source", "target", "safe"),
    [
        ("float64", "float32", True),  # the conversion everyone hits
        ("int64", "float32", True),
        ("int32", "float64", True),
        ("bool", "float32", True),
        ("float32", "float16", True),
        ("float16", "float64", True),
        ("float32", "int64", False),
        ("float64", "int32", False),
        ("int64", "int32", False),
        ("int32", "int64", True),
        ("uint8", "int16", True),
        ("uint8", "int8", False),
        ("uint32", "int64", True),
        ("uint64", "int64", False),
        ("int8", "uint8", False),
        ("int64", "uint64", False),
        ("bool", "int8", True),
        ("bool", "uint8", True),
        ("int8", "bool", False),
        ("float32", "bool", False),
        ("string", "float32", False),
        ("float32", "string", False),
        ("int64", "string", False),
        ("string", "string", True),
        ("float32", "float32", True),
    ],
)
def test_converts_safely_to(source: str, target: str, safe: bool) -> None:
    assert DType(source).converts_safely_to(DType(target)) is safe


def test_dtype_numpy_and_arrow() -> None:
    import pyarrow as pa

    assert DType.FLOAT32.numpy == np.dtype(np.float32)
    assert DType.STRING.numpy == np.dtype(object)
    assert DType.FLOAT16.arrow == pa.float16()
    assert DType.STRING.arrow == pa.string()
    assert DType.from_numpy(np.dtype("U3")) is DType.STRING
    assert DType.from_numpy(np.uint16) is DType.UINT16
    assert DType.from_arrow(pa.large_string()) is DType.STRING
    assert DType.from_arrow(pa.int8()) is DType.INT8
    assert [d for d in DType if d.is_float] == [DType.FLOAT16, DType.FLOAT32, DType.FLOAT64]
    assert DType.UINT8.is_integer and not DType.BOOL.is_integer and not DType.STRING.is_numeric
    with pytest.raises(
        ColumnTypeError, match=r"^numpy dtype complex64 has no onnxpipe element type; supported: bool, int8"
    ):
        DType.from_numpy(np.complex64)
    with pytest.raises(ColumnTypeError, match=r"^Arrow type timestamp\[s\] has no onnxpipe element type$"):
        DType.from_arrow(pa.timestamp("s"))
