"""The ``onnxpipe`` command line (click's CliRunner, plus one real process for the entry point)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import onnxpipe
from onnxpipe.cli import main
from onnxpipe.schema import Column, DType, TensorType, schema_of

from .test_inspect import LONG_VALUE, resnet_like_model

MLNET_ONNX = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlnet" / "onnx"


def odd_names_model() -> onnx.ModelProto:
    """Names and dimensions that are not plain identifiers; a signature only, never run."""
    map_type = helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.DOUBLE, None))
    graph = helper.make_graph(
        [],
        "odd",
        [
            helper.make_tensor_value_info("gpu_0/data_0", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("387", TensorProto.FLOAT, [None, 5]),
            helper.make_tensor_value_info("class", TensorProto.INT64, []),
        ],
        [helper.make_value_info("counts", map_type)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def save(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def import_code(code: str, folder: Path, name: str = "generated_cli_schema") -> types.ModuleType:
    """Import generated code as a module file, the way a user would."""
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


@pytest.fixture
def runner() -> CliRunner:
    # A wide, colorless terminal stand-in: rich reads COLUMNS, and CliRunner's output is no tty.
    return CliRunner(env={"COLUMNS": "120", "NO_COLOR": None, "FORCE_COLOR": None})


@pytest.fixture
def resnet(tmp_path: Path) -> Path:
    return save(resnet_like_model(), tmp_path, "resnet.onnx")


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not an onnx model \x00\xff\xfe")
    return path


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"onnxpipe, version {onnxpipe.__version__}\n"


def test_help_lists_commands(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "inspect" in result.stdout and "schema" in result.stdout


def test_inspect_prints_tables(runner: CliRunner, resnet: Path) -> None:
    result = runner.invoke(main, ["inspect", str(resnet)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "\x1b[" not in result.stdout  # no colors when not writing to a terminal
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0].strip() == "resnet.onnx"
    assert lines[1:7] == [
        "┌──────────────┬──────────────────────┬─────────┬───────────────┐",
        "│ Input/Output │ Name                 │ Type    │ Dimensions    │",
        "├──────────────┼──────────────────────┼─────────┼───────────────┤",
        "│ Input        │ data                 │ float32 │ [N,3,224,224] │",
        "│ Output       │ resnetv24_dense0_fwd │ float32 │ [N,1000]      │",
        "└──────────────┴──────────────────────┴─────────┴───────────────┘",
    ]
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in lines[7:] if line.startswith("│")]
    assert cells == [
        ["Property", "Value"],
        ["Format", "ONNX v8"],
        ["Opsets", "ai.onnx: 17"],
        ["Producer", "tests 1.2"],
        ["Domain", "org.example"],
        ["Model version", "3"],
        ["Graph", "resnet_io"],
        ["Description", "ResNet-like test model"],
        ["Metadata", "Value"],
        ["author", "onnxpipe"],
        ["long", LONG_VALUE[:79] + "…"],
    ]


def test_inspect_odd_names(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["inspect", str(save(odd_names_model(), tmp_path, "odd.onnx"))])
    assert result.exit_code == 0, result.output
    for row in ("│ Input        │ gpu_0/data_0 ", "│ Input        │ 387 ", "│ Output       │ counts "):
        assert row in result.stdout
    assert "│ [batch,3]" in result.stdout and "│ [?,5] " in result.stdout and "│ map(int64,float64) │" in result.stdout
    result = runner.invoke(main, ["schema", str(tmp_path / "odd.onnx")])
    assert result.exit_code == 0, result.output
    module = import_code(result.stdout, tmp_path)
    assert schema_of(module.OnnxInput).names == ["gpu_0/data_0", "387", "class"]
    assert list(module.OnnxInput.__dataclass_fields__) == ["gpu_0_data_0", "tensor_387", "class_"]


def test_inspect_json(runner: CliRunner, resnet: Path) -> None:
    result = runner.invoke(main, ["inspect", str(resnet), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["path"] == str(resnet)
    assert data["inputs"] == [{"name": "data", "type": "float32", "dims": ["N", 3, 224, 224]}]
    assert data["outputs"] == [{"name": "resnetv24_dense0_fwd", "type": "float32", "dims": ["N", 1000]}]
    assert data["opsets"] == {"ai.onnx": 17}
    assert data["metadata"]["long"] == "x" * 200  # JSON is never truncated
    assert data == onnxpipe.inspect_model(resnet).to_json()


def test_schema_prints_importable_code(runner: CliRunner, resnet: Path, tmp_path: Path) -> None:
    result = runner.invoke(main, ["schema", str(resnet)])
    assert result.exit_code == 0, result.output
    assert result.stdout == onnxpipe.generate_schema_code(onnxpipe.inspect_model(resnet))
    module = import_code(result.stdout, tmp_path)
    assert schema_of(module.OnnxInput).columns == [Column("data", TensorType(DType.FLOAT32, (1, 3, 224, 224)))]
    assert schema_of(module.OnnxOutput).columns == [
        Column("resnetv24_dense0_fwd", TensorType(DType.FLOAT32, (1, 1000)))
    ]


def test_schema_class_names_and_output_file(runner: CliRunner, resnet: Path, tmp_path: Path) -> None:
    target = tmp_path / "schemas.py"
    args = ["schema", str(resnet), "--input-class", "ImageRow", "--output-class", "Scores", "-o", str(target)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"wrote {target}\n"
    module = import_code(target.read_text(encoding="utf-8"), tmp_path)
    assert schema_of(module.ImageRow).names == ["data"]
    assert schema_of(module.Scores).names == ["resnetv24_dense0_fwd"]


def test_schema_bad_class_name(runner: CliRunner, resnet: Path) -> None:
    result = runner.invoke(main, ["schema", str(resnet), "--input-class", "not valid"])
    assert result.exit_code == 2
    assert result.stderr == "error: input_class='not valid' is not a valid Python class name; use e.g. 'OnnxInput'\n"


def test_schema_unwritable_output(runner: CliRunner, resnet: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "s.py"
    result = runner.invoke(main, ["schema", str(resnet), "-o", str(target)])
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write {str(target)!r}: No such file or directory\n"


@pytest.mark.parametrize("command", ["inspect", "schema"])
def test_missing_file(runner: CliRunner, tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope.onnx"
    result = runner.invoke(main, [command, str(missing)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: ONNX model file {str(missing)!r} does not exist\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["inspect", "schema"])
def test_malformed_file(runner: CliRunner, garbage: Path, command: str) -> None:
    result = runner.invoke(main, [command, str(garbage)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: bad.onnx is not a valid ONNX model: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_usage_error_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(main, ["inspect"])
    assert result.exit_code == 2
    assert "Missing argument 'MODEL'" in result.stderr


def test_real_process_reports_errors_without_traceback(garbage: Path) -> None:
    code = "from onnxpipe.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "inspect", str(garbage)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: bad.onnx is not a valid ONNX model: ")
    assert "Traceback" not in proc.stderr


def test_inspect_real_mlnet_model(runner: CliRunner) -> None:
    if not MLNET_ONNX.is_dir():
        pytest.skip(f"ML.NET's test models not found at {MLNET_ONNX} (only present in the project workspace)")
    result = runner.invoke(main, ["inspect", str(MLNET_ONNX / "TestZipMapString.onnx")])
    assert result.exit_code == 0, result.output
    assert "│ Output       │ output │ seq(map(string,float32)) │" in result.stdout
    result = runner.invoke(main, ["schema", str(MLNET_ONNX / "TestZipMapString.onnx")])
    assert 'output: Annotated[list[dict[str, float]], ColumnName("output")]' in result.stdout
