"""ONNX's low-precision element types as column types: bfloat16, float8 (e4m3fn, e4m3fnuz, e5m2,
e5m2fnuz, e8m0), float4e2m1, int4, uint4, int2, uint2.

Values are ml_dtypes arrays; Arrow stores their raw bits; ONNX Runtime gets and gives them through
OrtValues, the 4- and 2-bit types packed as ONNX says. Every check here is bit for bit, against
ml_dtypes' own conversions, onnx's serializer (``numpy_helper``) and bare ONNX Runtime.
"""

from __future__ import annotations

import ctypes
import io
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import ml_dtypes
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpipe as op
from onnxpipe import VectorType
from onnxpipe.data._convert import from_arrow, schema_from_arrow, to_arrow
from onnxpipe.errors import ColumnTypeError, InvalidArgumentError, SchemaError
from onnxpipe.runtime._inspect import generate_schema_code_for_columns
from onnxpipe.runtime._model import ONNX_ELEMENT
from onnxpipe.runtime._ort_values import ort_value, pack, read, unpack
from onnxpipe.schema import Column, DType, Schema, TensorType, row_binding, schema_of

ctx = op.MLContext(seed=0)

LOW = [t for t in DType if t.is_low_precision]
# ml_dtypes' name of each low-precision type, and the bits of an element that hold its value.
ML = {
    DType.BFLOAT16: (ml_dtypes.bfloat16, 0xFFFF),
    DType.FLOAT8E4M3FN: (ml_dtypes.float8_e4m3fn, 0xFF),
    DType.FLOAT8E4M3FNUZ: (ml_dtypes.float8_e4m3fnuz, 0xFF),
    DType.FLOAT8E5M2: (ml_dtypes.float8_e5m2, 0xFF),
    DType.FLOAT8E5M2FNUZ: (ml_dtypes.float8_e5m2fnuz, 0xFF),
    DType.FLOAT8E8M0: (ml_dtypes.float8_e8m0fnu, 0xFF),
    DType.FLOAT4E2M1: (ml_dtypes.float4_e2m1fn, 0x0F),
    DType.INT4: (ml_dtypes.int4, 0x0F),
    DType.UINT4: (ml_dtypes.uint4, 0x0F),
    DType.INT2: (ml_dtypes.int2, 0x03),
    DType.UINT2: (ml_dtypes.uint2, 0x03),
}


def bits(values: Any) -> np.ndarray:
    """The bits that hold the values of an ml_dtypes array (unsigned ints of its width)."""
    arr = np.asarray(values)
    mask = ML[DType.from_numpy(arr.dtype)][1]
    raw = arr.view(np.uint16 if arr.dtype.itemsize == 2 else np.uint8)
    return raw & raw.dtype.type(mask)


def assert_same_bits(got: Any, want: np.ndarray) -> None:
    got = np.asarray(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(bits(got), bits(want))


def every_value(dtype: DType, shape: tuple[int, ...] = (), seed: int = 0) -> np.ndarray:
    """Random bit patterns of ``dtype`` (NaNs and infinities included where the type has them)."""
    rng = np.random.default_rng(seed)
    width = 16 if dtype is DType.BFLOAT16 else 8
    raw = np.asarray(rng.integers(0, 1 << width, shape, dtype=np.uint16 if width == 16 else np.uint8))
    return np.asarray(raw & raw.dtype.type(ML[dtype][1])).view(dtype.numpy)


def model(
    nodes: list[onnx.NodeProto],
    inputs: list[tuple[str, int, list[Any]]],
    outputs: list[tuple[str, int, list[Any]]],
    *,
    opset: int = 21,
    initializers: list[onnx.TensorProto] | None = None,
) -> bytes:
    """Model bytes (the IR version the opset needs), checked by onnx."""
    graph = helper.make_graph(
        nodes,
        "low_precision",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializers or [],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnxpipe-tests")
    proto.ir_version = {21: 10, 23: 11, 25: 12}[opset]
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def bare_ort(model_bytes: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """ONNX Runtime alone, each low-precision value converted by onnx's serializer (independent of onnxpipe)."""
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    values = {}
    for name, value in feeds.items():
        if DType.from_numpy(value.dtype).is_low_precision:
            proto = numpy_helper.from_array(value)
            values[name] = ort.OrtValue.ortvalue_from_shape_and_type(list(value.shape), proto.data_type, "cpu", 0)
            ctypes.memmove(values[name].data_ptr(), proto.raw_data, len(proto.raw_data))
        else:
            values[name] = ort.OrtValue.ortvalue_from_numpy(value)
    out = []
    for v in session.run_with_ort_values(None, values):
        if v.element_type() in {ONNX_ELEMENT[t] for t in LOW}:
            raw = ctypes.string_at(v.data_ptr(), v.tensor_size_in_bytes())
            out.append(numpy_helper.to_array(TensorProto(data_type=v.element_type(), dims=v.shape(), raw_data=raw)))
        else:
            out.append(v.numpy())
    return out


def schema_module(code: str, name: str) -> types.ModuleType:
    """The classes of generated schema code (a module of its own: dataclasses look it up in sys.modules)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(code, f"<{name}>", "exec"), module.__dict__)
    return module


# --------------------------------------------------------------------------------------------
# DType


def test_low_precision_members_are_onnx_types() -> None:
    onnx_names = {TensorProto.DataType.Name(ONNX_ELEMENT[t]).lower() for t in LOW}
    assert {t.value for t in LOW} == onnx_names
    assert set(LOW) == set(ML)
    for t in LOW:
        assert t.numpy == np.dtype(ML[t][0])
        assert DType.from_numpy(ML[t][0]) is t and DType.from_numpy(np.dtype(ML[t][0])) is t
        assert t.ml_dtypes_name == np.dtype(ML[t][0]).name
        assert t.arrow == (pa.uint16() if t is DType.BFLOAT16 else pa.uint8())
        assert not (t.is_float or t.is_integer or t.is_numeric)
    assert [DType.INT4.bits, DType.INT2.bits, DType.FLOAT8E5M2.bits, DType.BFLOAT16.bits] == [4, 2, 8, 16]
    assert DType.FLOAT32.bits == 32 and not DType.FLOAT32.is_low_precision and DType.FLOAT32.ml_dtypes_name is None


@pytest.mark.parametrize(
    ("source", "target", "safe"),
    [
        ("float32", "bfloat16", True),  # ONNX Runtime's Cast rounds every float32 as ml_dtypes does
        ("float16", "bfloat16", True),
        ("float64", "bfloat16", False),  # ONNX Runtime rounds twice (through float32)
        ("int32", "bfloat16", False),
        ("bfloat16", "float32", False),  # nothing leaves a low-precision type automatically
        ("float32", "float8e4m3fn", False),
        ("float8e4m3fn", "float8e5m2", False),
        ("int8", "int4", False),
        ("int4", "int8", False),
        ("uint2", "uint2", True),
    ],
)
def test_low_precision_conversions_are_exact(source: str, target: str, safe: bool) -> None:
    assert DType(source).converts_safely_to(DType(target)) is safe


def test_float32_rounds_into_bfloat16_as_onnx_runtime_casts() -> None:
    # A sample of every kind of float32 (the claim in converts_safely_to was checked on all 2**32).
    rng = np.random.default_rng(1)
    x = rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x[:4] = [np.inf, -np.inf, 3.4e38, 1.0000001]
    cast = model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16)],
        [("x", TensorProto.FLOAT, ["N"])],
        [("y", TensorProto.BFLOAT16, ["N"])],
    )
    (want,) = bare_ort(cast, {"x": x})
    with np.errstate(invalid="ignore"):  # signalling NaNs
        assert_same_bits(x.astype(ml_dtypes.bfloat16), want)


# --------------------------------------------------------------------------------------------
# Packing (ONNX: two 4-bit or four 2-bit elements to a byte, the first in the low bits)


@pytest.mark.parametrize("dtype", [DType.INT4, DType.UINT4, DType.FLOAT4E2M1, DType.INT2, DType.UINT2])
@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 17])
def test_pack_is_onnx_packing(dtype: DType, count: int) -> None:
    values = every_value(dtype, (count,), seed=count)
    packed = pack(values, dtype.bits)
    assert packed.tobytes() == numpy_helper.from_array(values).raw_data
    assert_same_bits(unpack(packed, dtype.bits, count).view(dtype.numpy), values)


def test_pack_ignores_the_bits_ml_dtypes_ignores() -> None:
    dirty = np.array([0xF3, 0x1E, 0xA7], np.uint8).view(ml_dtypes.int4)  # 3, -2, 7 with junk above
    assert pack(dirty, 4).tolist() == [0xE3, 0x07]


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (0, 4)])
def test_ort_values_hold_the_bits(dtype: DType, shape: tuple[int, ...]) -> None:
    values = every_value(dtype, shape)
    value = ort_value(values, dtype)
    assert value.data_type() == f"tensor({dtype.value})" and value.shape() == list(shape)
    raw = ctypes.string_at(value.data_ptr(), value.tensor_size_in_bytes()) if values.size else b""
    assert raw == numpy_helper.from_array(values).raw_data  # ONNX's own layout
    assert_same_bits(read(value), values)


# --------------------------------------------------------------------------------------------
# Real models through apply_onnx_model, the engine and bare ONNX Runtime


def cast_to_float8() -> bytes:
    """``x float32[N, 4] -> y float8e4m3fn[N, 4]`` (saturating, as Cast does by default)."""
    return model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E4M3FN)],
        [("x", TensorProto.FLOAT, ["N", 4])],
        [("y", TensorProto.FLOAT8E4M3FN, ["N", 4])],
    )


@dataclass
class Floats:
    x: Annotated[npt.NDArray[np.float32], VectorType(4)]


X = np.array([[1.5, -2.0, 300.0, 0.1], [1e9, -1e9, np.nan, -0.0], [0.0019, 448.0, 464.0, -3.3]], np.float32)


def test_cast_to_float8_column() -> None:
    data = ctx.data.load_from_enumerable([Floats(r) for r in X], Floats)
    scored = ctx.transforms.apply_onnx_model(model_bytes=cast_to_float8()).fit(data).transform(data)
    assert scored.schema["y"].type == TensorType(DType.FLOAT8E4M3FN, (1, 4))
    y = scored.column("y")
    (want,) = bare_ort(cast_to_float8(), {"x": X})
    assert_same_bits(y, want[:, None])
    inside = np.abs(X) <= 448  # in range ml_dtypes rounds as Cast does (beyond it Cast saturates)
    assert_same_bits(y[:, 0][inside], X[inside].astype(ml_dtypes.float8_e4m3fn))
    assert bits(y[1, 0]).tolist() == [0x7E, 0xFE, 0x7F, 0x80]  # 448, -448, NaN, -0


def quantize_int4(dtype: int) -> bytes:
    """``x float32[N, 4] -> q int4/uint4[N, 4]``: QuantizeLinear with one scale and zero point per column."""
    zero = helper.make_tensor("zero", dtype, [4], [0, 1, -2, 3] if dtype == TensorProto.INT4 else [0, 1, 8, 15])
    scale = numpy_helper.from_array(np.array([0.5, 0.25, 2.0, 1.0], np.float32), "scale")
    return model(
        [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], axis=1)],
        [("x", TensorProto.FLOAT, ["N", 4])],
        [("q", dtype, ["N", 4])],
        initializers=[scale, zero],
    )


@pytest.mark.parametrize(("code", "dtype"), [(TensorProto.INT4, DType.INT4), (TensorProto.UINT4, DType.UINT4)])
def test_quantize_to_4_bits_per_axis(code: int, dtype: DType) -> None:
    x = np.array([[1.0, 0.3, -9.0, 2.5], [-3.0, 4.0, 40.0, -20.0], [0.25, -0.125, 3.0, 7.5]], np.float32)
    data = ctx.data.load_from_enumerable([Floats(r) for r in x], Floats)
    transformer = ctx.transforms.apply_onnx_model(model_bytes=quantize_int4(code))
    q = transformer.fit(data).transform(data).column("q")
    # QuantizeLinear: round half to even, add the zero point, saturate to the type's range.
    zero = np.array([0, 1, -2, 3] if dtype is DType.INT4 else [0, 1, 8, 15])
    low, high = (-8, 7) if dtype is DType.INT4 else (0, 15)
    expected = np.clip(np.rint(x / np.array([0.5, 0.25, 2.0, 1.0], np.float32)) + zero, low, high)
    assert_same_bits(q[:, 0], expected.astype(dtype.numpy))
    assert_same_bits(q, bare_ort(quantize_int4(code), {"x": x})[0][:, None])


@dataclass
class Float8In:
    q: Annotated[npt.NDArray[ml_dtypes.float8_e5m2], VectorType(3)]


def dequantize_float8(code: int = TensorProto.FLOAT8E5M2, size: int = 3) -> bytes:
    """``q float8[N, size] -> x float32[N, size] = q * 0.5``."""
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "scale")
    return model(
        [helper.make_node("DequantizeLinear", ["q", "scale"], ["x"])],
        [("q", code, ["N", size])],
        [("x", TensorProto.FLOAT, ["N", size])],
        initializers=[scale],
    )


def test_dequantize_from_float8_input() -> None:
    q = every_value(DType.FLOAT8E5M2, (6, 3), seed=3)
    data = ctx.data.load_from_enumerable([Float8In(r) for r in q], Float8In)
    assert data.schema["q"].type == TensorType(DType.FLOAT8E5M2, (3,))
    x = ctx.transforms.apply_onnx_model(model_bytes=dequantize_float8()).fit(data).transform(data).column("x")
    want = q.astype(np.float32) * np.float32(0.5)
    np.testing.assert_array_equal(x[:, 0].view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(x[:, 0].view(np.uint32), bare_ort(dequantize_float8(), {"q": q})[0].view(np.uint32))


def bfloat16_model() -> bytes:
    """``b bfloat16[N, 2, 3] -> t bfloat16[N, 3, 2]`` (Transpose) and ``f float32[N, 3, 2]``
    (ONNX Runtime's CPU provider has no bfloat16 Add or MatMul; it moves and casts them)."""
    return model(
        [
            helper.make_node("Transpose", ["b"], ["t"], perm=[0, 2, 1]),
            helper.make_node("Cast", ["t"], ["f"], to=TensorProto.FLOAT),
        ],
        [("b", TensorProto.BFLOAT16, ["N", 2, 3])],
        [("t", TensorProto.BFLOAT16, ["N", 3, 2]), ("f", TensorProto.FLOAT, ["N", 3, 2])],
    )


@dataclass
class Bf16In:
    b: Annotated[npt.NDArray[ml_dtypes.bfloat16], VectorType(2, 3)]


@dataclass
class Bf16FromFloats:
    b: Annotated[npt.NDArray[np.float32], VectorType(2, 3)]


def test_bfloat16_model_and_automatic_rounding() -> None:
    b = every_value(DType.BFLOAT16, (4, 2, 3), seed=4)
    data = ctx.data.load_from_enumerable([Bf16In(r) for r in b], Bf16In)
    fitted = ctx.transforms.apply_onnx_model(model_bytes=bfloat16_model()).fit(data)
    scored = fitted.transform(data)
    want_t, want_f = bare_ort(bfloat16_model(), {"b": b})
    assert_same_bits(scored.column("t"), want_t[:, None])
    np.testing.assert_array_equal(scored.column("f")[:, 0].view(np.uint32), want_f.view(np.uint32))
    # float32 data into the bfloat16 input: rounded by ml_dtypes, the bits ONNX Runtime's Cast gives.
    x = np.random.default_rng(5).normal(0, 100, (4, 2, 3)).astype(np.float32)
    floats = ctx.data.load_from_enumerable([Bf16FromFloats(r) for r in x], Bf16FromFloats)
    assert_same_bits(fitted.transform(floats).column("t")[:, 0], x.astype(ml_dtypes.bfloat16).transpose(0, 2, 1))


def int2_model() -> bytes:
    """``i int2[N, 5] -> w int8[N, 5]`` and ``x float32[N, 5] -> u uint2[N, 5]`` (Cast, opset 25)."""
    return model(
        [
            helper.make_node("Cast", ["i"], ["w"], to=TensorProto.INT8),
            helper.make_node("Cast", ["x"], ["u"], to=TensorProto.UINT2),
        ],
        [("i", TensorProto.INT2, ["N", 5]), ("x", TensorProto.FLOAT, ["N", 5])],
        [("w", TensorProto.INT8, ["N", 5]), ("u", TensorProto.UINT2, ["N", 5])],
        opset=25,
    )


@dataclass
class Int2In:
    i: Annotated[npt.NDArray[ml_dtypes.int2], VectorType(5)]
    x: Annotated[npt.NDArray[np.float32], VectorType(5)]


def test_two_bit_types() -> None:
    i = every_value(DType.INT2, (3, 5), seed=6)
    x = np.array([[0, 1, 2, 3, 3], [1, 1, 0, 2, 3], [3, 2, 1, 0, 0]], np.float32)
    data = ctx.data.load_from_enumerable([Int2In(a, b) for a, b in zip(i, x, strict=True)], Int2In)
    scored = ctx.transforms.apply_onnx_model(model_bytes=int2_model()).fit(data).transform(data)
    np.testing.assert_array_equal(scored.column("w")[:, 0], i.astype(np.int8))
    assert_same_bits(scored.column("u")[:, 0], x.astype(ml_dtypes.uint2))
    want_w, want_u = bare_ort(int2_model(), {"i": i, "x": x})
    np.testing.assert_array_equal(scored.column("w")[:, 0], want_w)
    assert_same_bits(scored.column("u")[:, 0], want_u)


def float8e8m0_model() -> bytes:
    """``x float32[N, 3] -> e float8e8m0[N, 3]`` (powers of two; Cast rounds up, saturates)."""
    return model(
        [helper.make_node("Cast", ["x"], ["e"], to=TensorProto.FLOAT8E8M0)],
        [("x", TensorProto.FLOAT, ["N", 3])],
        [("e", TensorProto.FLOAT8E8M0, ["N", 3])],
        opset=25,
    )


@dataclass
class Powers:
    x: Annotated[npt.NDArray[np.float32], VectorType(3)]


def test_float8e8m0_output() -> None:
    x = np.array([[1.0, 2.0, 0.25], [1024.0, 3.0, 2.0**-20]], np.float32)
    data = ctx.data.load_from_enumerable([Powers(r) for r in x], Powers)
    e = ctx.transforms.apply_onnx_model(model_bytes=float8e8m0_model()).fit(data).transform(data).column("e")
    assert_same_bits(e, bare_ort(float8e8m0_model(), {"x": x})[0][:, None])
    assert e[:, 0].astype(np.float32).tolist() == [[1.0, 2.0, 0.25], [1024.0, 4.0, 2.0**-20]]


def test_engine_with_generated_classes() -> None:
    """Every model above through the prediction engine, with the classes generate_schema_code writes."""
    cases: list[tuple[bytes, dict[str, np.ndarray]]] = [
        (cast_to_float8(), {"x": X}),
        (quantize_int4(TensorProto.INT4), {"x": X}),
        (dequantize_float8(), {"q": every_value(DType.FLOAT8E5M2, (3, 3), seed=7)}),
        (bfloat16_model(), {"b": every_value(DType.BFLOAT16, (3, 2, 3), seed=8)}),
        (int2_model(), {"i": every_value(DType.INT2, (3, 5)), "x": np.ones((3, 5), np.float32)}),
    ]
    for k, (model_bytes, feeds) in enumerate(cases):
        info = op.runtime.describe_model(onnx.load_model_from_string(model_bytes))
        code = op.generate_schema_code(info)
        dtypes = {t.name: t.column_type.dtype for t in (*info.inputs, *info.outputs)}  # type: ignore[union-attr]
        low = [d for d in dtypes.values() if d.is_low_precision]
        assert "import ml_dtypes" in code and low
        for d in low:
            assert f"npt.NDArray[ml_dtypes.{d.ml_dtypes_name}]" in code
        module = schema_module(code, f"low_precision_schema_{k}")
        declared = [Column(t.name, TensorType(dtypes[t.name], (1, *t.shape[1:]))) for t in info.inputs]
        assert schema_of(module.OnnxInput) == Schema(declared)
        fitted = ctx.transforms.apply_onnx_model(model_bytes=model_bytes).fit(
            ctx.data.load_from_enumerable([], module.OnnxInput)
        )
        engine = ctx.model.create_prediction_engine(fitted, module.OnnxInput, module.OnnxOutput)
        fields = {f.column.name: f.attribute for f in row_binding(module.OnnxInput).fields}
        rows = [module.OnnxInput(**{fields[n]: v[r : r + 1] for n, v in feeds.items()}) for r in range(3)]
        want = bare_ort(model_bytes, feeds)
        out_fields = [f.attribute for f in row_binding(module.OnnxOutput).fields]
        one = engine.predict(rows[1])
        batch = engine.predict_batch(rows)
        for attr, w in zip(out_fields, want, strict=True):
            got_one = getattr(one, attr)
            got_all = np.concatenate([getattr(p, attr) for p in batch])
            if DType.from_numpy(w.dtype).is_low_precision:
                assert_same_bits(got_one, w[1:2])
                assert_same_bits(got_all, w)
            else:
                np.testing.assert_array_equal(got_one, w[1:2])
                np.testing.assert_array_equal(got_all, w)


def test_schema_code_for_low_precision_only(tmp_path: Path) -> None:
    """A model with only low-precision tensors: the classes import ml_dtypes (not numpy) and pass ruff."""
    proto = onnx.load_model_from_string(
        model(
            [helper.make_node("Transpose", ["b"], ["t"], perm=[1, 0]), helper.make_node("Identity", ["s"], ["e"])],
            [("b", TensorProto.BFLOAT16, ["N", 3]), ("s", TensorProto.FLOAT8E4M3FN, [])],
            [("t", TensorProto.BFLOAT16, [3, "N"]), ("e", TensorProto.FLOAT8E4M3FN, [])],
        )
    )
    code = op.generate_schema_code(op.runtime.describe_model(proto))
    assert code.splitlines()[5:8] == [
        "import ml_dtypes",
        "import numpy.typing as npt",
        "from onnxpipe import ColumnName, VectorType",
    ]
    assert '    s: Annotated[ml_dtypes.float8_e4m3fn, ColumnName("s")]' in code
    assert '    t: Annotated[npt.NDArray[ml_dtypes.bfloat16], ColumnName("t"), VectorType(3, -1)]' in code
    module = schema_module(code, "low_precision_only_schema")
    assert schema_of(module.OnnxOutput) == Schema.of(
        t=TensorType(DType.BFLOAT16, (3, None)), e=TensorType(DType.FLOAT8E4M3FN)
    )
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.is_file():
        pytest.skip(f"ruff (a dev dependency) is not installed next to {sys.executable}")
    (tmp_path / "generated.py").write_text(code, encoding="utf-8")
    for command in (["format", "--check"], ["check", "--select", "E,F,W,I,UP"]):
        done = subprocess.run(
            [str(ruff), *command, "--isolated", "--line-length", "120", "--no-cache", "generated.py"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------------------------
# Storage: DataView, Arrow, Parquet, pandas, saved models


@dataclass
class Everything:
    bf: Annotated[npt.NDArray[ml_dtypes.bfloat16], VectorType(2, 2)]
    e4: ml_dtypes.float8_e4m3fn
    e4uz: Annotated[npt.NDArray[ml_dtypes.float8_e4m3fnuz], VectorType(3)]
    e5: Annotated[npt.NDArray[ml_dtypes.float8_e5m2], VectorType(-1)]
    e5uz: Annotated[npt.NDArray[ml_dtypes.float8_e5m2fnuz], VectorType(-1, -1)]
    e8: Annotated[npt.NDArray[ml_dtypes.float8_e8m0fnu], VectorType(3)]
    f4: Annotated[npt.NDArray[ml_dtypes.float4_e2m1fn], VectorType(3)]
    i4: Annotated[npt.NDArray[ml_dtypes.int4], VectorType(5)]
    u4: ml_dtypes.uint4
    i2: Annotated[npt.NDArray[ml_dtypes.int2], VectorType(-1)]
    u2: Annotated[npt.NDArray[ml_dtypes.uint2], VectorType(4)]


def everything(n: int = 5) -> list[Everything]:
    rows = []
    for r in range(n):

        def v(t: DType, shape: tuple[int, ...], r: int = r) -> np.ndarray:
            return every_value(t, shape, seed=100 * r + len(rows) + hash(t.value) % 97)

        rows.append(
            Everything(
                v(DType.BFLOAT16, (2, 2)),
                v(DType.FLOAT8E4M3FN, ())[()],
                v(DType.FLOAT8E4M3FNUZ, (3,)),
                v(DType.FLOAT8E5M2, (r + 1,)),
                v(DType.FLOAT8E5M2FNUZ, (r % 2 + 1, 2)),
                v(DType.FLOAT8E8M0, (3,)),
                v(DType.FLOAT4E2M1, (3,)),
                v(DType.INT4, (5,)),
                v(DType.UINT4, ())[()],
                v(DType.INT2, (r,)),
                v(DType.UINT2, (4,)),
            )
        )
    return rows


def assert_same_columns(view: op.DataView, rows: list[Everything]) -> None:
    for f in row_binding(Everything).fields:
        want = [np.asarray(getattr(r, f.attribute)) for r in rows]
        got = view.column(f.column.name)
        assert view.schema[f.column.name].type == f.column.type
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same_bits(g, w.reshape(np.shape(g)))


def test_data_view_round_trips_keep_dtype_and_bits(tmp_path: Path) -> None:
    rows = everything()
    view = ctx.data.load_from_enumerable(rows, Everything)
    assert view.schema == schema_of(Everything)
    assert_same_columns(view, rows)
    table = view.to_arrow()
    assert table.schema.field("bf").type == pa.list_(pa.uint16(), 4)
    assert table.schema.field("e4").type == pa.uint8()
    assert table.column("i4").combine_chunks().values.to_numpy().max() <= 0x0F  # one element per byte, low bits
    assert_same_columns(ctx.data.load_from_arrow(table), rows)
    pq.write_table(table, tmp_path / "low.parquet")
    assert_same_columns(ctx.data.load_from_parquet(tmp_path / "low.parquet"), rows)
    frame = view.to_pandas()
    assert frame["e4"].to_numpy().dtype == ml_dtypes.float8_e4m3fn
    assert_same_bits(frame["i4"].iloc[2], np.asarray(rows[2].i4))
    back = ctx.data.create_enumerable(view, Everything)
    for got, want in zip(back, rows, strict=True):
        assert_same_bits(got.e4, np.asarray(want.e4))
        assert type(got.u4) is ml_dtypes.uint4
        assert_same_bits(got.e5uz, want.e5uz)
    assert "bf" in str(view.preview(2))


def test_arrow_conversion_clears_the_bits_ml_dtypes_ignores() -> None:
    dirty = np.array([0xF3, 0x1E], np.uint8).view(ml_dtypes.int4)
    arr = to_arrow(dirty, TensorType(DType.INT4))
    assert arr.to_pylist() == [3, 14]
    assert_same_bits(from_arrow(arr, TensorType(DType.INT4)), dirty)


def test_arrow_storage_must_be_the_raw_bits() -> None:
    """A field typed float8 by onnxpipe's metadata but holding floats is refused, not read as bit patterns."""
    view = ctx.data.load_from_enumerable(everything(2), Everything)
    table = view.to_arrow().select(["e4"])
    forged = pa.table({"e4": pa.array([1.0, 2.0], pa.float32())}).cast(
        pa.schema([pa.field("e4", pa.float32(), False, table.schema.field("e4").metadata)])
    )
    assert schema_from_arrow(forged.schema)["e4"].type == TensorType(DType.FLOAT8E4M3FN)
    with pytest.raises(SchemaError, match=r"column 'e4' is float8e4m3fn, stored as its raw bits \(uint8\); the data"):
        ctx.data.load_from_arrow(forged)


def test_saved_pipeline_with_low_precision_columns(tmp_path: Path) -> None:
    data = ctx.data.load_from_enumerable([Floats(r) for r in X], Floats)
    dequantize = dequantize_float8(TensorProto.FLOAT8E4M3FN, 4)
    pipeline = (
        ctx.transforms.apply_onnx_model(model_bytes=cast_to_float8(), output_columns={"y": "f8"})
        .append(
            ctx.transforms.apply_onnx_model(model_bytes=quantize_int4(TensorProto.INT4), output_columns={"q": "i4"})
        )
        .append(ctx.transforms.apply_onnx_model(model_bytes=dequantize, input_columns={"q": "f8"}, output_columns="d_"))
    )
    fitted = pipeline.fit(data)
    before = fitted.transform(data)
    stream = io.BytesIO()
    ctx.model.save(fitted, data.schema, stream)
    stream.seek(0)
    loaded, schema = ctx.model.load(stream)
    assert schema == data.schema
    after = loaded.transform(data)
    assert after.schema == before.schema
    assert after.schema["f8"].type == TensorType(DType.FLOAT8E4M3FN, (1, 4))
    for column in ("f8", "i4"):
        assert_same_bits(after.column(column), before.column(column))
    (float8,) = bare_ort(cast_to_float8(), {"x": X})
    np.testing.assert_array_equal(after.column("d_x")[:, 0], float8.astype(np.float32) * np.float32(0.5))
    # The schema code of a saved pipeline declares the ml_dtypes types too.

    code = generate_schema_code_for_columns(schema, after.schema)
    assert "npt.NDArray[ml_dtypes.float8_e4m3fn]" in code and "npt.NDArray[ml_dtypes.int4]" in code
    module = schema_module(code, "low_precision_saved_schema")
    assert schema_of(module.ModelOutput)["f8"].type == TensorType(DType.FLOAT8E4M3FN, (1, 4))


def test_export_casts_floats_into_a_bfloat16_input() -> None:
    """A float32 column feeding a bfloat16 input: the export's Cast gives the bits onnxpipe's conversion does."""
    x = np.random.default_rng(9).normal(0, 1000, (5, 2, 3)).astype(np.float32)
    x[0, 0, :2] = [np.nan, np.inf]
    floats = ctx.data.load_from_enumerable([Bf16FromFloats(r) for r in x], Bf16FromFloats)
    fitted = ctx.transforms.apply_onnx_model(model_bytes=bfloat16_model()).fit(floats)
    proto = ctx.model.convert_to_onnx(fitted, floats, opset=21)
    types_ = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output}
    assert types_["t"] == TensorProto.BFLOAT16
    exported = bare_ort(proto.SerializeToString(), {"b": x})
    assert_same_bits(exported[[o.name for o in proto.graph.output].index("t")], fitted.transform(floats).column("t"))


def test_cli_writes_values_and_keeps_bits_in_parquet(tmp_path: Path) -> None:
    """``onnxpipe predict``: text formats get the values (float32 / int8, exact), Parquet the bits and
    the type; text is never parsed into raw bits."""
    from click.testing import CliRunner

    from onnxpipe.cli import main

    (tmp_path / "cast.onnx").write_bytes(cast_to_float8())
    (tmp_path / "quantize.onnx").write_bytes(quantize_int4(TensorProto.INT4))
    pacsv.write_csv(pa.table({f"x.{j}": X[:, j] for j in range(4)}), tmp_path / "in.csv")
    runner = CliRunner()
    (want,) = bare_ort(cast_to_float8(), {"x": X})
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"out.{fmt}"
        done = runner.invoke(
            main, ["predict", str(tmp_path / "cast.onnx"), "-i", str(tmp_path / "in.csv"), "-o", str(out)]
        )
        assert done.exit_code == 0, done.output
    written = pacsv.read_csv(tmp_path / "out.csv").to_pandas().to_numpy(np.float32)
    np.testing.assert_array_equal(written, want.astype(np.float32))  # NaN where Cast gave NaN
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert lines[0] == '{"y":[1.5,-2,288,0.1015625]}' and lines[1] == '{"y":[448,-448,null,-0]}'
    view = ctx.data.load_from_parquet(tmp_path / "out.parquet")
    assert view.schema["y"].type == TensorType(DType.FLOAT8E4M3FN, (4,))
    assert_same_bits(view.column("y"), want)
    # A model reading float8 from a text file is refused, not given the numbers as bit patterns.
    (tmp_path / "dequantize.onnx").write_bytes(dequantize_float8(TensorProto.FLOAT8E4M3FN, 4))
    pacsv.write_csv(pa.table({f"q.{j}": [1, 2] for j in range(4)}), tmp_path / "q.csv")
    args = ["predict", str(tmp_path / "dequantize.onnx"), "-i", str(tmp_path / "q.csv"), "-o", str(tmp_path / "d.csv")]
    done = runner.invoke(main, args)
    assert done.exit_code != 0 and "float8e4m3fn[4] values cannot be read from a text file" in done.output
    # int4 values are written as the integers they are.
    (tmp_path / "ints.onnx").write_bytes(quantize_int4(TensorProto.INT4))
    args = ["predict", str(tmp_path / "ints.onnx"), "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "q.jsonl")]
    assert runner.invoke(main, args).exit_code == 0
    q = bare_ort(quantize_int4(TensorProto.INT4), {"x": X})[0].astype(np.int8)
    assert (tmp_path / "q.jsonl").read_text().splitlines()[0] == '{"q":[' + ",".join(str(v) for v in q[0]) + "]}"


@dataclass
class TextFloat8:
    v: Annotated[ml_dtypes.float8_e4m3fn, op.LoadColumn(0)]


@dataclass
class Words:
    w: Annotated[npt.NDArray[np.str_], VectorType(2)]


def test_what_onnx_runtime_cannot_take_through_ort_values() -> None:
    """A string input next to a bfloat16 output: ONNX Runtime makes no OrtValue of strings (said so)."""
    strings = model(
        [helper.make_node("Cast", ["w"], ["b"], to=TensorProto.BFLOAT16)],
        [("w", TensorProto.STRING, ["N", 2])],
        [("b", TensorProto.BFLOAT16, ["N", 2])],
    )
    data = ctx.data.load_from_enumerable([Words(np.array(["1.5", "2"], object))], Words)
    with pytest.raises(op.errors.ExecutionError, match="input 'w' is a string tensor, which ONNX Runtime's Python API"):
        ctx.transforms.apply_onnx_model(model_bytes=strings).fit(data).transform(data).column("b")


def test_text_files_do_not_fill_low_precision_columns(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("v\n2\n")
    with pytest.raises(SchemaError, match=r"TextFloat8.v: float8e4m3fn values cannot be read from a text file"):
        ctx.data.load_from_text_file(tmp_path / "t.csv", TextFloat8, has_header=True, separator=",")


@pytest.mark.parametrize("model_bytes", [cast_to_float8(), quantize_int4(TensorProto.INT4)], ids=["float8", "int4"])
def test_export_of_low_precision_outputs(model_bytes: bytes) -> None:
    """The exported graph gives the column's [N, 1, 4] through operators ONNX Runtime has for the
    type (it has no Unsqueeze for float8 or int4), with the same bits."""
    data = ctx.data.load_from_enumerable([Floats(r) for r in X], Floats)
    fitted = ctx.transforms.apply_onnx_model(model_bytes=model_bytes).fit(data)
    (column,) = fitted.output_column_names
    proto = ctx.model.convert_to_onnx(fitted, data, opset=21)
    names = [o.name for o in proto.graph.output]
    exported = bare_ort(proto.SerializeToString(), {"x": X})[names.index(column)]
    assert exported.shape == (3, 1, 4)
    assert_same_bits(exported, fitted.transform(data).column(column))


# --------------------------------------------------------------------------------------------
# Wrong types


@dataclass
class Float8Floats:
    x: Annotated[npt.NDArray[ml_dtypes.float8_e4m3fn], VectorType(4)]


@dataclass
class DoubleIn:
    b: Annotated[npt.NDArray[np.float64], VectorType(2, 3)]


def test_wrong_types_are_column_type_errors() -> None:
    transformer = ctx.transforms.apply_onnx_model(model_bytes=cast_to_float8())
    float8 = ctx.data.load_from_enumerable([Float8Floats(r.astype(ml_dtypes.float8_e4m3fn)) for r in X], Float8Floats)
    with pytest.raises(
        ColumnTypeError,
        match=r"column 'x' feeds input tensor 'x', which expects element type float32; the column is float8e4m3fn",
    ):
        transformer.fit(float8)
    quantized = ctx.transforms.apply_onnx_model(model_bytes=dequantize_float8())
    with pytest.raises(ColumnTypeError, match=r"column 'q' .*expects element type float8e5m2; the column is float32"):
        quantized.fit(ctx.data.load_from_arrow(pa.table({"q": pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float32(), 3))})))
    bf16 = ctx.transforms.apply_onnx_model(model_bytes=bfloat16_model())
    with pytest.raises(ColumnTypeError, match=r"expects element type bfloat16; the column is float64"):
        bf16.fit(ctx.data.load_from_enumerable([DoubleIn(np.zeros((2, 3)))], DoubleIn))
    with pytest.raises(ColumnTypeError, match=r"field Float8In.q\), row 0: expected float8e5m2 values, got float32"):
        ctx.data.load_from_enumerable([Float8In(np.zeros(3, np.float32))], Float8In)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="output_kind"):
        ctx.transforms.conversion.convert_type("c", "x", output_kind="bfloat16")
    with pytest.raises(ColumnTypeError, match="expected a tensor column of numbers, bools or strings"):
        ctx.transforms.conversion.convert_type("c", "x").fit(float8)
