"""inspect_model, its rich tables, and generate_schema_code (the generated code is imported)."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper
from rich.console import Console

import onnxpipe
from onnxpipe.errors import ColumnTypeError, DataFileNotFoundError, InvalidArgumentError, ModelLoadError
from onnxpipe.runtime import ModelInfo, TensorInfo, render_model_info
from onnxpipe.schema import Column, ColumnType, DType, MapType, SequenceType, TensorType, schema_of

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MLNET_ONNX = SHARED_DATA / "mlnet" / "onnx"
LOGREG_IRIS = Path(onnxruntime.__file__).parent / "datasets" / "logreg_iris.onnx"
LONG_VALUE = "x" * 200


# --------------------------------------------------------------------------------------------
# Models built here


def resnet_like_model() -> onnx.ModelProto:
    """ResNet50-v2's I/O: ``data float[N,3,224,224] -> resnetv24_dense0_fwd float[N,1000]``."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, 1000)).astype(np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "W"], ["resnetv24_dense0_fwd"]),
        ],
        "resnet_io",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("resnetv24_dense0_fwd", TensorProto.FLOAT, ["N", 1000])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    model.producer_version = "1.2"
    model.domain = "org.example"
    model.model_version = 3
    model.doc_string = "ResNet-like test model"
    helper.set_model_props(model, {"author": "onnxpipe", "long": LONG_VALUE})
    onnx.checker.check_model(model, full_check=True)
    return model


def _signature_model(
    name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
) -> onnx.ModelProto:
    """A model with inputs and outputs but no nodes: inspection never runs it."""
    graph = helper.make_graph([], name, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    return model


def _tensor(name: str, elem: int, dims: list[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def _map(key: int, value: int) -> onnx.TypeProto:
    return helper.make_map_type_proto(key, helper.make_tensor_type_proto(value, None))


def odd_names_model() -> onnx.ModelProto:
    """Every naming and typing case the schema generator must handle, all declarable."""
    return _signature_model(
        "odd_names",
        [
            _tensor("gpu_0/data_0", TensorProto.FLOAT, ["batch", 3]),
            _tensor("x.1", TensorProto.FLOAT, [-1, 4]),
            _tensor("387", TensorProto.FLOAT, [None, 5]),
            _tensor("class", TensorProto.FLOAT16, [2, 2]),
            _tensor("Class", TensorProto.BOOL, [3, "seq"]),
            _tensor("onnx::Flatten_0", TensorProto.INT64, []),
            _tensor("save_infer_model/scale_0.tmp_1", TensorProto.STRING, ["N"]),
            _tensor("prompt", TensorProto.STRING, []),
            _tensor("pixelValues", TensorProto.UINT8, ["N", 32, 32, 3]),
            _tensor("mlnet.Features.unusedInput", TensorProto.STRING, [-1, 1]),
        ],
        [
            helper.make_value_info("probabilities", helper.make_sequence_type_proto(_map(TensorProto.INT64, 1))),
            helper.make_value_info(
                "output_probability", helper.make_sequence_type_proto(_map(TensorProto.STRING, TensorProto.FLOAT))
            ),
            helper.make_value_info("counts", _map(TensorProto.INT64, TensorProto.DOUBLE)),
            _tensor("x.1", TensorProto.FLOAT, ["N", 4]),
            _tensor("x_1", TensorProto.INT32, ["N", "M", 0]),
            _tensor("mlnet.Score.unusedOutput", TensorProto.INT64, [-1, 1]),
        ],
    )


def unsupported_model() -> onnx.ModelProto:
    """Types onnxpipe cannot declare: complex tensors (no ONNX Runtime kernel takes them) and a sequence of tensors."""
    return _signature_model(
        "unsupported",
        [_tensor("x", TensorProto.FLOAT, ["N", 2])],
        [
            _tensor("y_c64", TensorProto.COMPLEX64, ["N", 10]),
            helper.make_value_info(
                "pieces", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, ["K"]))
            ),
            _tensor("ok", TensorProto.FLOAT, ["N"]),
        ],
    )


def save(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def render(info: ModelInfo, width: int = 120) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False).print(render_model_info(info))
    # Rich pads the centered title; trailing blanks would not survive editors in RESNET_TABLES.
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


_module_counter = iter(range(1_000_000))


def import_code(code: str, folder: Path) -> types.ModuleType:
    """Import generated code the way a user would: as a module file."""
    name = f"generated_schema_{next(_module_counter)}"
    path = folder / f"{name}.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building the class
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def expected_column(t: TensorInfo, batch: bool = True) -> Column:
    """The column a generated field must declare: one row's shape, unknown batch -> 1 (when
    ``batch``: the model is scored in batches)."""
    ct = t.column_type
    assert ct is not None
    if isinstance(ct, TensorType) and t.dims:
        first = 1 if batch else None
        dims = tuple(d if isinstance(d, int) and d >= 0 else (first if i == 0 else None) for i, d in enumerate(t.dims))
        return Column(t.name, TensorType(ct.dtype, dims))
    return Column(t.name, ct)


def declared(info: ModelInfo, tensors: tuple[TensorInfo, ...], batch: bool = True) -> list[Column]:
    return [expected_column(t, batch) for t in tensors if not t.name.startswith("mlnet.")]


@pytest.fixture
def mlnet_onnx() -> Iterator[Path]:
    if not MLNET_ONNX.is_dir():
        pytest.skip(f"ML.NET's test models not found at {MLNET_ONNX} (only present in the project workspace)")
    yield MLNET_ONNX


# --------------------------------------------------------------------------------------------
# inspect_model


def test_inspect_model_describes_resnet_like(tmp_path: Path) -> None:
    path = save(resnet_like_model(), tmp_path, "resnet.onnx")
    info = onnxpipe.inspect_model(path)
    assert info.path == str(path)
    assert info.to_json() == {
        "path": str(path),
        "inputs": [
            {
                "name": "data",
                "type": "float32",
                "dims": ["N", 3, 224, 224],
                "batch": {"is_batch": True, "reason": "the first dimension is named like a batch (N)"},
            }
        ],
        "outputs": [{"name": "resnetv24_dense0_fwd", "type": "float32", "dims": ["N", 1000]}],
        "ir_version": 8,
        "opsets": {"ai.onnx": 17},
        "producer_name": "tests",
        "producer_version": "1.2",
        "domain": "org.example",
        "model_version": 3,
        "graph_name": "resnet_io",
        "doc_string": "ResNet-like test model",
        "metadata": {"author": "onnxpipe", "long": LONG_VALUE},
    }
    assert info.inputs[0].column_type == TensorType(DType.FLOAT32, (None, 3, 224, 224))


def test_inspect_model_accepts_str_path(tmp_path: Path) -> None:
    path = save(resnet_like_model(), tmp_path, "resnet.onnx")
    assert onnxpipe.inspect_model(str(path)).path == str(path)


def test_inspect_model_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(DataFileNotFoundError, match=r"^ONNX model file '.*nope\.onnx' does not exist$"):
        onnxpipe.inspect_model(missing)
    with pytest.raises(FileNotFoundError):  # the built-in a caller would catch
        onnxpipe.inspect_model(tmp_path)


def test_inspect_model_malformed_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model \x00\xff\xfe")
    with pytest.raises(ModelLoadError, match=r"^bad\.onnx is not a valid ONNX model: "):
        onnxpipe.inspect_model(bad)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"^empty\.onnx is not a valid ONNX model: it has no graph$"):
        onnxpipe.inspect_model(empty)


def test_inspect_model_refuses_external_data_outside_folder(tmp_path: Path) -> None:
    model = resnet_like_model()
    weights = model.graph.initializer[0]
    external_data_helper.set_external_data(weights, location="../w.bin")
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("raw_data")
    weights.ClearField("float_data")
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "w.bin").write_bytes(b"\0" * 12000)
    path = save(model, folder, "ext.onnx")
    with pytest.raises(
        ModelLoadError, match=r"^model 'ext\.onnx' refers to external data '\.\./w\.bin' outside its folder"
    ):
        onnxpipe.inspect_model(path)


# --------------------------------------------------------------------------------------------
# Tables

RESNET_TABLES = """\
                           resnet.onnx
┌──────────────┬──────────────────────┬─────────┬───────────────┐
│ Input/Output │ Name                 │ Type    │ Dimensions    │
├──────────────┼──────────────────────┼─────────┼───────────────┤
│ Input        │ data                 │ float32 │ [N,3,224,224] │
│ Output       │ resnetv24_dense0_fwd │ float32 │ [N,1000]      │
└──────────────┴──────────────────────┴─────────┴───────────────┘
┌─────────────────┬──────────────────────────────────────────────────────────┐
│ Property        │ Value                                                    │
├─────────────────┼──────────────────────────────────────────────────────────┤
│ Format          │ ONNX v8                                                  │
│ Opsets          │ ai.onnx: 17                                              │
│ Producer        │ tests 1.2                                                │
│ Domain          │ org.example                                              │
│ Model version   │ 3                                                        │
│ Graph           │ resnet_io                                                │
│ Description     │ ResNet-like test model                                   │
│ Batch dimension │ data: yes, the first dimension is named like a batch (N) │
└─────────────────┴──────────────────────────────────────────────────────────┘
┌──────────┬──────────────────────────────────────────────────────────────────────────────────┐
│ Metadata │ Value                                                                            │
├──────────┼──────────────────────────────────────────────────────────────────────────────────┤
│ author   │ onnxpipe                                                                         │
│ long     │ xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… │
└──────────┴──────────────────────────────────────────────────────────────────────────────────┘
"""


def test_render_resnet_like(tmp_path: Path) -> None:
    info = onnxpipe.inspect_model(save(resnet_like_model(), tmp_path, "resnet.onnx"))
    assert render(info) == RESNET_TABLES


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]


NOT_STACKED = ", but input 'class' has none: one row per call"


def test_render_dimensions_and_types(tmp_path: Path) -> None:
    info = onnxpipe.inspect_model(save(odd_names_model(), tmp_path, "odd.onnx"))
    rows = _rows(render(info, width=200))
    assert rows[:17] == [
        ["Input/Output", "Name", "Type", "Dimensions"],
        ["Input", "gpu_0/data_0", "float32", "[batch,3]"],
        ["Input", "x.1", "float32", "[-1,4]"],
        ["Input", "387", "float32", "[?,5]"],
        ["Input", "class", "float16", "[2,2]"],
        ["Input", "Class", "bool", "[3,seq]"],
        ["Input", "onnx::Flatten_0", "int64", "[]"],
        ["Input", "save_infer_model/scale_0.tmp_1", "string", "[N]"],
        ["Input", "prompt", "string", "[]"],
        ["Input", "pixelValues", "uint8", "[N,32,32,3]"],
        ["Input", "mlnet.Features.unusedInput", "string", "[-1,1]"],
        ["Output", "probabilities", "seq(map(int64,float32))", ""],
        ["Output", "output_probability", "seq(map(string,float32))", ""],
        ["Output", "counts", "map(int64,float64)", ""],
        ["Output", "x.1", "float32", "[N,4]"],
        ["Output", "x_1", "int32", "[N,M,0]"],
        ["Output", "mlnet.Score.unusedOutput", "int64", "[-1,1]"],
    ]
    # Unset producer, domain, version and doc string are left out; opsets one per line.
    assert rows[17:] == [
        ["Property", "Value"],
        ["Format", "ONNX v8"],
        ["Opsets", "ai.onnx: 17"],
        ["", "ai.onnx.ml: 3"],
        ["Graph", "odd_names"],
        [
            "Batch dimension",
            "gpu_0/data_0: no, the first dimension is named like a batch (batch)" + NOT_STACKED,
        ],
        ["", "x.1: no, the first dimension is unknown (-1)" + NOT_STACKED],
        ["", "387: no, the first dimension is unnamed" + NOT_STACKED],
        ["", "class: no, the first dimension is fixed at 2"],
        ["", "Class: no, the first dimension is fixed at 3"],
        ["", "onnx::Flatten_0: no, a scalar"],
        [
            "",
            "save_infer_model/scale_0.tmp_1: no, the first dimension is named like a batch (N)" + NOT_STACKED,
        ],
        ["", "prompt: no, a scalar"],
        [
            "",
            "pixelValues: no, the first dimension is named like a batch (N)" + NOT_STACKED,
        ],
        [
            "",
            "mlnet.Features.unusedInput: no, the first dimension is unknown (-1)" + NOT_STACKED,
        ],
    ]


def test_render_keeps_markup_like_names_and_folds_long_ones(tmp_path: Path) -> None:
    long_name = "layer/" + "a" * 150
    model = _signature_model(
        "g", [_tensor("[bold]x[/bold]", TensorProto.FLOAT, ["n", 2])], [_tensor(long_name, TensorProto.FLOAT, [1])]
    )
    text = render(onnxpipe.inspect_model(save(model, tmp_path, "m.onnx")), width=80)
    assert "[bold]x[/bold]" in text and "[n,2]" in text
    assert "".join(r[1] for r in _rows(text) if r[0] in ("Output", "")).startswith(long_name)
    assert all(len(line) <= 80 for line in text.splitlines())


def test_render_lists_weights_given_as_inputs(tmp_path: Path) -> None:
    model = resnet_like_model()
    model.graph.input.append(_tensor("W", TensorProto.FLOAT, [3, 1000]))  # as IR < 4 exporters did
    info = onnxpipe.inspect_model(save(model, tmp_path, "old.onnx"))
    assert [t.name for t in info.inputs] == ["data"]
    assert ["Weights listed as inputs", "1"] in _rows(render(info))


# --------------------------------------------------------------------------------------------
# Schema code

RESNET_CODE = """\
# Schema classes for 'resnet.onnx', generated by onnxpipe.

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
from onnxpipe import ColumnName, VectorType


@dataclass
class OnnxInput:
    data: Annotated[npt.NDArray[np.float32], ColumnName("data"), VectorType(1, 3, 224, 224)]


@dataclass
class OnnxOutput:
    resnetv24_dense0_fwd: Annotated[npt.NDArray[np.float32], ColumnName("resnetv24_dense0_fwd"), VectorType(1, 1000)]
"""


def test_schema_code_resnet_like(tmp_path: Path) -> None:
    info = onnxpipe.inspect_model(save(resnet_like_model(), tmp_path, "resnet.onnx"))
    code = onnxpipe.generate_schema_code(info)
    assert code == RESNET_CODE
    module = import_code(code, tmp_path)
    assert schema_of(module.OnnxInput).columns == [Column("data", TensorType(DType.FLOAT32, (1, 3, 224, 224)))]
    assert schema_of(module.OnnxOutput).columns == [
        Column("resnetv24_dense0_fwd", TensorType(DType.FLOAT32, (1, 1000)))
    ]
    row = module.OnnxInput(data=np.zeros((1, 3, 224, 224), np.float32))
    assert row.data.shape == (1, 3, 224, 224)


ODD_CODE = """\
# Schema classes for 'odd.onnx', generated by onnxpipe.

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
from onnxpipe import ColumnName, VectorType


@dataclass
class In:
    gpu_0_data_0: Annotated[npt.NDArray[np.float32], ColumnName("gpu_0/data_0"), VectorType(-1, 3)]
    x_1: Annotated[npt.NDArray[np.float32], ColumnName("x.1"), VectorType(-1, 4)]
    tensor_387: Annotated[npt.NDArray[np.float32], ColumnName("387"), VectorType(-1, 5)]
    class_: Annotated[npt.NDArray[np.float16], ColumnName("class"), VectorType(2, 2)]
    class_2: Annotated[npt.NDArray[np.bool_], ColumnName("Class"), VectorType(3, -1)]
    onnx_flatten_0: Annotated[np.int64, ColumnName("onnx::Flatten_0")]
    save_infer_model_scale_0_tmp_1: Annotated[
        npt.NDArray[np.str_], ColumnName("save_infer_model/scale_0.tmp_1"), VectorType(-1)
    ]
    prompt: Annotated[str, ColumnName("prompt")]
    pixel_values: Annotated[npt.NDArray[np.uint8], ColumnName("pixelValues"), VectorType(-1, 32, 32, 3)]


@dataclass
class Out:
    probabilities: Annotated[list[dict[int, float]], ColumnName("probabilities")]
    output_probability: Annotated[list[dict[str, float]], ColumnName("output_probability")]
    counts: Annotated[dict[int, np.float64], ColumnName("counts")]
    x_1: Annotated[npt.NDArray[np.float32], ColumnName("x.1"), VectorType(-1, 4)]
    x_1_2: Annotated[npt.NDArray[np.int32], ColumnName("x_1"), VectorType(-1, -1, 0)]
"""


def test_schema_code_odd_names_and_types(tmp_path: Path) -> None:
    info = onnxpipe.inspect_model(save(odd_names_model(), tmp_path, "odd.onnx"))
    code = onnxpipe.generate_schema_code(info, input_class="In", output_class="Out")
    assert code == ODD_CODE
    module = import_code(code, tmp_path)
    inputs = schema_of(module.In).columns
    # Input "class" has a fixed first dimension, so the model is scored one row per call and no
    # unknown first dimension is pinned to 1.
    assert inputs == declared(info, info.inputs, batch=False)
    assert inputs[5] == Column("onnx::Flatten_0", TensorType(DType.INT64, ()))
    assert inputs[7] == Column("prompt", TensorType(DType.STRING, ()))
    outputs = schema_of(module.Out).columns
    assert outputs == declared(info, info.outputs, batch=False)
    assert outputs[0].type == SequenceType(MapType(DType.INT64, TensorType(DType.FLOAT32, ())))
    assert outputs[2].type == MapType(DType.INT64, TensorType(DType.FLOAT64, ()))


def test_schema_code_unsupported_types(tmp_path: Path) -> None:
    info = onnxpipe.inspect_model(save(unsupported_model(), tmp_path, "u.onnx"))
    code = onnxpipe.generate_schema_code(info)
    assert code.endswith(
        "@dataclass\n"
        "class OnnxOutput:\n"
        "    # unsupported ONNX type: complex64[N,10]; onnxpipe cannot read or feed this tensor\n"
        '    y_c64: Annotated[object, ColumnName("y_c64")]\n'
        '    pieces: Annotated[list[npt.NDArray[np.float32]], ColumnName("pieces"), VectorType(-1)]\n'
        '    ok: Annotated[npt.NDArray[np.float32], ColumnName("ok"), VectorType(1)]\n'
    )
    module = import_code(code, tmp_path)
    assert schema_of(module.OnnxInput).columns == [Column("x", TensorType(DType.FLOAT32, (1, 2)))]
    # The class imports, and reading its schema points at the field the user must remove.
    with pytest.raises(ColumnTypeError, match=r"^OnnxOutput\.y_c64: element type <class 'object'> is not supported"):
        schema_of(module.OnnxOutput)


def test_schema_code_imports_only_what_it_uses(tmp_path: Path) -> None:
    seq = helper.make_sequence_type_proto(_map(TensorProto.STRING, TensorProto.FLOAT))
    model = _signature_model("g", [_tensor("text", TensorProto.STRING, [])], [helper.make_value_info("p", seq)])
    info = onnxpipe.inspect_model(save(model, tmp_path, "m.onnx"))
    code = onnxpipe.generate_schema_code(info)
    assert code == (
        "# Schema classes for 'm.onnx', generated by onnxpipe.\n\n"
        "from dataclasses import dataclass\n"
        "from typing import Annotated\n\n"
        "from onnxpipe import ColumnName\n\n\n"
        "@dataclass\nclass OnnxInput:\n"
        '    text: Annotated[str, ColumnName("text")]\n\n\n'
        "@dataclass\nclass OnnxOutput:\n"
        '    p: Annotated[list[dict[str, float]], ColumnName("p")]\n'
    )
    module = import_code(code, tmp_path)
    assert schema_of(module.OnnxOutput).columns == [Column("p", info.outputs[0].column_type)]  # type: ignore[arg-type]


def test_schema_code_without_path_or_fields(tmp_path: Path) -> None:
    info = ModelInfo((), (), 8, {"ai.onnx": 17}, "", "", "", 0, "g", "", {})
    code = onnxpipe.generate_schema_code(info)
    assert code == (
        "# Schema classes for an ONNX model, generated by onnxpipe.\n\n"
        "from dataclasses import dataclass\n\n\n"
        "@dataclass\nclass OnnxInput:\n    pass\n\n\n"
        "@dataclass\nclass OnnxOutput:\n    pass\n"
    )
    import_code(code, tmp_path)


def test_schema_code_escapes_tensor_names(tmp_path: Path) -> None:
    names = ['quote"d', "back\\slash", "new\nline", "é/ü", "...", "HTTPResponse", "None", "import"]
    model = _signature_model("g", [_tensor(n, TensorProto.FLOAT, [2]) for n in names], [])
    model.graph.output.append(_tensor("y", TensorProto.FLOAT, [2]))
    info = onnxpipe.inspect_model(save(model, tmp_path, "m.onnx"))
    module = import_code(onnxpipe.generate_schema_code(info), tmp_path)
    binding = [(f.name, f.type) for f in module.OnnxInput.__dataclass_fields__.values()]
    assert [name for name, _ in binding] == [
        "quote_d",
        "back_slash",
        "new_line",
        "tensor",
        "tensor_2",
        "http_response",
        "none",
        "import_",
    ]
    assert schema_of(module.OnnxInput).names == names


def test_schema_code_wraps_very_long_names(tmp_path: Path) -> None:
    name = "encoder/" + "block" * 30
    model = _signature_model("g", [_tensor(name, TensorProto.FLOAT, ["N", 3])], [_tensor("y", TensorProto.FLOAT, [1])])
    code = onnxpipe.generate_schema_code(onnxpipe.inspect_model(save(model, tmp_path, "m.onnx")))
    attr = "encoder_" + "block" * 30
    assert f"    {attr}: Annotated[\n        npt.NDArray[np.float32],\n        ColumnName(" in code
    assert schema_of(import_code(code, tmp_path).OnnxInput).columns == [Column(name, TensorType(DType.FLOAT32, (1, 3)))]


def test_schema_code_is_ruff_formatted(tmp_path: Path) -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.is_file():
        pytest.skip(f"ruff (a dev dependency) is not installed next to {sys.executable}")
    for i, model in enumerate([resnet_like_model(), odd_names_model(), unsupported_model()]):
        code = onnxpipe.generate_schema_code(onnxpipe.inspect_model(save(model, tmp_path, f"m{i}.onnx")))
        (tmp_path / f"generated_{i}.py").write_text(code, encoding="utf-8")
    # Run from tmp_path: in a user's project (unlike this one) onnxpipe is a third-party import.
    args = ["--line-length", "120", "--no-cache"]
    files = sorted(str(p) for p in tmp_path.glob("generated_*.py"))
    fmt = subprocess.run(
        [str(ruff), "format", "--check", "--isolated", *args, *files], capture_output=True, text=True, cwd=tmp_path
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = subprocess.run(
        [str(ruff), "check", "--isolated", "--select", "E,F,W,I,UP", *args, *files],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("option", "kwargs"), [("input_class", {"input_class": "class"}), ("output_class", {"output_class": "1x"})]
)
def test_schema_code_rejects_bad_class_names(option: str, kwargs: dict[str, str]) -> None:
    info = ModelInfo((), (), 8, {}, "", "", "", 0, "g", "", {})
    with pytest.raises(InvalidArgumentError, match=rf"^{option}='.*' is not a valid Python class name"):
        onnxpipe.generate_schema_code(info, **kwargs)
    with pytest.raises(InvalidArgumentError, match="input_class and output_class are both 'Row'"):
        onnxpipe.generate_schema_code(info, input_class="Row", output_class="Row")


# --------------------------------------------------------------------------------------------
# Real models (ML.NET's test models, onnxruntime's bundled logreg_iris)

MLNET_MODELS = [
    "twoinput.onnx",
    "TestZipMapInt64.onnx",
    "TestZipMapString.onnx",
    "mlnet_exported_multiclass_lr.onnx",
    "test_unknowndimensions_float.onnx",
    "linear_regression.onnx",
]


def _check_round_trip(path: Path, tmp_path: Path) -> ModelInfo:
    info = onnxpipe.inspect_model(path)
    module = import_code(onnxpipe.generate_schema_code(info), tmp_path)
    assert schema_of(module.OnnxInput).columns == declared(info, info.inputs)
    assert schema_of(module.OnnxOutput).columns == declared(info, info.outputs)
    return info


@pytest.mark.parametrize("name", MLNET_MODELS)
def test_real_mlnet_models_round_trip(name: str, mlnet_onnx: Path, tmp_path: Path) -> None:
    _check_round_trip(mlnet_onnx / name, tmp_path)


def _fields(info: ModelInfo) -> list[str]:
    code = onnxpipe.generate_schema_code(info)
    return [line.strip() for line in code.splitlines() if line.startswith("    ")]


def test_real_mlnet_model_details(mlnet_onnx: Path) -> None:
    two = onnxpipe.inspect_model(mlnet_onnx / "twoinput.onnx")
    assert _fields(two) == [
        f'{n}: Annotated[npt.NDArray[np.float32], ColumnName("{n}"), VectorType(1, 1, 1, 5)]'
        for n in ("ina", "inb", "outa", "outb")
    ]
    unknown = onnxpipe.inspect_model(mlnet_onnx / "test_unknowndimensions_float.onnx")
    assert [t.dims_text() for t in (*unknown.inputs, *unknown.outputs)] == ["[-1,3]", "[-1]"]
    assert _fields(unknown) == [
        'input: Annotated[npt.NDArray[np.float32], ColumnName("input"), VectorType(1, 3)]',
        'argmax: Annotated[npt.NDArray[np.int64], ColumnName("argmax"), VectorType(1)]',
    ]
    linear = onnxpipe.inspect_model(mlnet_onnx / "linear_regression.onnx")
    assert _rows(render(linear))[1:3] == [
        ["Input", "features", "float32", "[?,4]"],
        ["Output", "variable", "float32", "[?,1]"],
    ]
    assert _fields(linear)[0] == (
        'features: Annotated[npt.NDArray[np.float32], ColumnName("features"), VectorType(1, 4)]'
    )
    assert _fields(onnxpipe.inspect_model(mlnet_onnx / "TestZipMapInt64.onnx"))[1] == (
        'output: Annotated[list[dict[int, float]], ColumnName("output")]'
    )
    assert _fields(onnxpipe.inspect_model(mlnet_onnx / "TestZipMapString.onnx"))[1] == (
        'output: Annotated[list[dict[str, float]], ColumnName("output")]'
    )
    multiclass = onnxpipe.inspect_model(mlnet_onnx / "mlnet_exported_multiclass_lr.onnx")
    assert _fields(multiclass) == [
        'label: Annotated[npt.NDArray[np.str_], ColumnName("Label"), VectorType(1, 1)]',
        'features: Annotated[npt.NDArray[np.float32], ColumnName("Features"), VectorType(1, 8)]',
        'label_onnx: Annotated[npt.NDArray[np.uint32], ColumnName("Label.onnx"), VectorType(1, 1)]',
        'features_onnx: Annotated[npt.NDArray[np.float32], ColumnName("Features.onnx"), VectorType(1, 8)]',
        'predicted_label_onnx: Annotated[npt.NDArray[np.uint32], ColumnName("PredictedLabel.onnx"), VectorType(1, 1)]',
        'score_onnx: Annotated[npt.NDArray[np.float32], ColumnName("Score.onnx"), VectorType(1, 10)]',
    ]
    assert _rows(render(multiclass))[-9:] == [
        ["Property", "Value"],
        ["Format", "ONNX v6"],
        ["Opsets", "ai.onnx.ml: 2"],
        ["", "ai.onnx: 11"],
        ["Producer", "ML.NET 0"],
        ["Domain", "machinelearning.dotnet"],
        ["Graph", "model"],
        ["Batch dimension", "Label: no, the first dimension is fixed at 1"],
        ["", "Features: no, the first dimension is fixed at 1"],
    ]


def test_onnxruntime_logreg_iris(tmp_path: Path) -> None:
    if not LOGREG_IRIS.is_file():
        pytest.skip(f"onnxruntime's bundled model not found at {LOGREG_IRIS}")
    info = _check_round_trip(LOGREG_IRIS, tmp_path)
    probabilities: ColumnType | None = info.output("probabilities").column_type  # type: ignore[union-attr]
    assert probabilities == SequenceType(MapType(DType.INT64, TensorType(DType.FLOAT32, ())))
    assert _fields(info) == [
        'float_input: Annotated[npt.NDArray[np.float32], ColumnName("float_input"), VectorType(3, 2)]',
        'label: Annotated[npt.NDArray[np.int64], ColumnName("label"), VectorType(3)]',
        'probabilities: Annotated[list[dict[int, float]], ColumnName("probabilities")]',
    ]
    assert _rows(render(info)) == [
        ["Input/Output", "Name", "Type", "Dimensions"],
        ["Input", "float_input", "float32", "[3,2]"],
        ["Output", "label", "int64", "[3]"],
        ["Output", "probabilities", "seq(map(int64,float32))", ""],
        ["Property", "Value"],
        ["Format", "ONNX v3"],
        ["Opsets", "ai.onnx.ml: 1"],
        ["Producer", "OnnxMLTools 1.2.0.0116"],
        ["Domain", "onnxml"],
        ["Graph", "3c59201b940f410fa29dc71ea9d5767d"],
        ["Batch dimension", "float_input: no, the first dimension is fixed at 3"],
    ]
