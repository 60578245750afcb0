"""The ``onnxpipe`` command line (click's CliRunner, plus one real process for the entry point)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import onnxpipe
from onnxpipe.cli import main
from onnxpipe.core import TransformerChain
from onnxpipe.schema import Column, DType, Schema, TensorType, schema_of

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
        ["Batch dimension", "data: yes, the first dimension is named like a batch (N)"],
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
    batch = {"is_batch": True, "reason": "the first dimension is named like a batch (N)"}
    assert data["inputs"] == [{"name": "data", "type": "float32", "dims": ["N", 3, 224, 224], "batch": batch}]
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
    assert result.stderr == f"error: cannot write {str(target)!r}: folder {str(target.parent)!r} does not exist\n"


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


# --------------------------------------------------------------------------------------------
# predict / convert / inspect of saved pipelines


def scoring_model() -> onnx.ModelProto:
    """``x float[N,3], k int64[N]`` -> ``y = 2x [N,3]``, ``total = sum(x) [N]``, ``k_next = k + 1 [N,1]``."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    one = numpy_helper.from_array(np.array(1, np.int64), "one")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["y"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=0),
            helper.make_node("Add", ["k", "one"], ["k_plus"]),
            helper.make_node("Unsqueeze", ["k_plus", "axes"], ["k_next"]),
        ],
        "scoring",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("k", TensorProto.INT64, ["N"]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("k_next", TensorProto.INT64, ["N", 1]),
        ],
        [two, one, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


X = np.array(
    [
        [0.5, 1.0, 2.0],
        [-1.25, 3.0, 0.1],
        [np.nan, 4.0, 5.0],
        [1e-7, -2.0, 7.5],
        [0.3, 0.3, 0.3],
        [9.0, 8.0, 7.0],
        [0, 0, 1],
    ],
    dtype=np.float32,
)
K = np.arange(10, 17, dtype=np.int64)
IDS = [f"row-{i:03d}" for i in range(len(K))]


def write_table_input(folder: Path, fmt: str) -> Path:
    """The rows (id, x, k) in a file of ``fmt``: vectors as x.0..x.2 in text, lists elsewhere."""
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        lines = [sep.join(["id", "x.0", "x.1", "x.2", "k"])]
        lines += [sep.join([i, *(repr(float(v)) for v in row), str(k)]) for i, row, k in zip(IDS, X, K, strict=True)]
        path = folder / f"in.{fmt}"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    if fmt == "parquet":
        path = folder / "in.parquet"
        lists = pa.array([[float(v) for v in row] for row in X], pa.list_(pa.float64()))  # cast to float32 on read
        pq.write_table(pa.table({"id": IDS, "x": lists, "k": K}), path, row_group_size=3)
        return path
    path = folder / "in.jsonl"
    rows = [
        {"id": i, "x": [None if np.isnan(v) else float(v) for v in row], "k": int(k)}
        for i, row, k in zip(IDS, X, K, strict=True)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_output(path: Path, fmt: str) -> dict[str, Any]:
    """An output file's columns: numpy arrays (vectors gathered from NAME.i columns in text)."""
    if fmt == "parquet":
        view = onnxpipe.data.load_from_parquet(path)
        return view.columns(view.schema.names)
    if fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return {
            name: np.array([np.nan if r[name] is None else r[name] for r in rows])
            if not isinstance(rows[0][name], list)
            else np.array([[np.nan if v is None else v for v in r[name]] for r in rows])
            for name in rows[0]
        }
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="," if fmt == "csv" else "\t"))
    out: dict[str, Any] = {}
    for name in table.column_names:
        base, _, index = name.rpartition(".")
        if base and index.isdigit():
            out.setdefault(base, []).append(table.column(name).to_numpy())
        else:
            out[name] = table.column(name).to_numpy(zero_copy_only=False)
    return {k: np.column_stack(v) if isinstance(v, list) else v for k, v in out.items()}


def python_scores(model_path: Path) -> dict[str, Any]:
    """What the model gives in Python over the same rows (the reference the CLI must match)."""
    ctx = onnxpipe.MLContext()
    table = pa.table({"x": pa.array(list(X), pa.list_(pa.float32(), 3)), "k": K})
    scored = ctx.transforms.apply_onnx_model(model_file=model_path).transform(ctx.data.load_from_arrow(table))
    return scored.columns(["y", "total", "k_next"])


@pytest.fixture
def scoring(tmp_path: Path) -> Path:
    return save(scoring_model(), tmp_path, "scoring.onnx")


def assert_close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64), rtol=1e-6)


@pytest.mark.parametrize("fmt_in", ["csv", "tsv", "parquet", "jsonl"])
@pytest.mark.parametrize("fmt_out", ["csv", "tsv", "parquet", "jsonl"])
def test_predict_bare_onnx_model(runner: CliRunner, scoring: Path, tmp_path: Path, fmt_in: str, fmt_out: str) -> None:
    source = write_table_input(tmp_path, fmt_in)
    target = tmp_path / f"out.{fmt_out}"
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(target), "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"wrote 7 rows to {target}\n"
    out = read_output(target, fmt_out)
    # The model's outputs only, without their batch dimension: [N,3] -> 3 values, [N] and [N,1] -> scalars.
    assert list(out) == ["y", "total", "k_next"]
    expected = python_scores(scoring)
    assert_close(out["y"], expected["y"].reshape(7, 3))
    assert_close(out["total"], expected["total"].reshape(7))
    np.testing.assert_array_equal(out["k_next"], K + 1)
    assert np.isnan(out["y"][2, 0]) and np.isnan(out["total"][2])  # a missing input value is NaN, and stays NaN
    assert not list(tmp_path.glob(".*partial"))


def test_predict_output_types_in_parquet(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    source = write_table_input(tmp_path, "csv")
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(target), "--keep-input"])
    assert result.exit_code == 0, result.output
    view = onnxpipe.data.load_from_parquet(target)
    assert [str(c) for c in view.schema.columns] == [
        "x: float32[3]",
        "k: int64",
        "id: string",  # a column the model does not read, kept as its text
        "y: float32[3]",
        "total: float32",
        "k_next: int64",
    ]
    assert view.column("id").tolist() == IDS


def test_predict_columns_and_keep_input(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    source = write_table_input(tmp_path, "jsonl")
    target = tmp_path / "out.jsonl"
    result = runner.invoke(
        main, ["predict", str(scoring), "-i", str(source), "-o", str(target), "--columns", "id,total"]
    )
    assert result.exit_code == 0, result.output
    first = json.loads(target.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"id": "row-000", "total": 3.5}
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(target), "--keep-input"])
    assert result.exit_code == 0, result.output
    first = json.loads(target.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"x": [0.5, 1.0, 2.0], "k": 10, "id": "row-000", "y": [1.0, 2.0, 4.0], "total": 3.5, "k_next": 11}
    # float32 values are written as their shortest decimal, NaN as null
    third = json.loads(target.read_text(encoding="utf-8").splitlines()[3])
    assert third["x"] == [1e-7, -2.0, 7.5] and third["y"][0] == 2e-7
    assert json.loads(target.read_text(encoding="utf-8").splitlines()[2])["total"] is None


def test_predict_no_header_and_separator(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    source = tmp_path / "rows.txt"
    source.write_text("1;2;3;4;extra\n0.5;0.5;0.5;7;more\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    args = ["predict", str(scoring), "-i", str(source), "-o", str(target), "--no-header", "--separator", ";"]
    result = runner.invoke(main, [*args, "--keep-input"])
    assert result.exit_code == 0, result.output
    # Without a header the model's columns are read in order (x: 3 values, then k); the rest is kept as text.
    assert target.read_text(encoding="utf-8").splitlines() == [
        '"x.0","x.1","x.2","k","column4","y.0","y.1","y.2","total","k_next"',
        '1,2,3,4,"extra",2,4,6,6,5',
        '0.5,0.5,0.5,7,"more",1,1,1,1.5,8',
    ]


def test_predict_progress_bar_on_request(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    source = write_table_input(tmp_path, "parquet")
    args = ["predict", str(scoring), "-i", str(source), "-o", str(tmp_path / "o.csv")]
    quiet = runner.invoke(main, args)  # stderr is not a terminal: no bar
    assert quiet.exit_code == 0 and quiet.stderr == f"wrote 7 rows to {tmp_path / 'o.csv'}\n"
    shown = runner.invoke(main, [*args, "--progress"])
    assert shown.exit_code == 0, shown.output
    assert "predicting" in shown.stderr and "7/7" in shown.stderr
    assert shown.stderr.endswith(f"wrote 7 rows to {tmp_path / 'o.csv'}\n")
    silent = runner.invoke(main, ["--quiet", *args, "--progress"])  # --quiet wins: no note, no bar
    assert silent.exit_code == 0 and silent.stderr == ""
    assert (tmp_path / "o.csv").read_text().count("\n") == 8
    again = runner.invoke(main, args)  # the next run is not quiet
    assert again.stderr == f"wrote 7 rows to {tmp_path / 'o.csv'}\n"


def test_predict_streams_in_batches(runner: CliRunner, scoring: Path, tmp_path: Path, monkeypatch: Any) -> None:
    """The model sees batches of --batch-size rows, never the whole file."""
    from onnxpipe.transforms.onnx_model import OnnxTransformer

    seen: list[int] = []
    original = OnnxTransformer.map_columns

    def spy(self: OnnxTransformer, columns: Any, schema: Any, n_rows: int) -> Any:
        seen.append(n_rows)
        return original(self, columns, schema, n_rows)

    monkeypatch.setattr(OnnxTransformer, "map_columns", spy)
    for fmt in ("csv", "parquet", "jsonl"):
        seen.clear()
        source = write_table_input(tmp_path, fmt)
        args = ["predict", str(scoring), "-i", str(source), "-o", str(tmp_path / "o.parquet"), "--batch-size", "2"]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert max(seen) <= 2 and sum(seen) == 7, (fmt, seen)


def train_binary_pipeline(tmp_path: Path) -> tuple[Any, Any, Path]:
    """A tiny fitted classifier (concatenate -> min-max -> logistic regression), saved to a zip."""
    from onnxpipe.persistence import save_model

    ctx = onnxpipe.MLContext(seed=0)
    rng = np.random.default_rng(0)
    a = rng.normal(size=40).astype(np.float32)
    b = rng.normal(size=40).astype(np.float32)
    data = ctx.data.load_from_arrow(pa.table({"A": a, "B": b, "Label": a + 0.5 * b > 0}))
    estimator = (
        ctx.transforms.concatenate("Features", "A", "B")
        .append(ctx.transforms.normalize_min_max("Features"))
        .append(ctx.binary_classification.trainers.lbfgs_logistic_regression())
    )
    model = estimator.fit(data)
    path = tmp_path / "classifier.zip"
    save_model(model, data.schema, path)
    return model, data, path


def test_predict_saved_pipeline(runner: CliRunner, tmp_path: Path) -> None:
    model, data, path = train_binary_pipeline(tmp_path)
    a, b = data.column("A")[:6], data.column("B")[:6]
    source = tmp_path / "new.csv"  # no Label column: prediction does not need it
    source.write_text("B,A\n" + "".join(f"{float(y)!r},{float(x)!r}\n" for x, y in zip(a, b, strict=True)))
    target = tmp_path / "scored.csv"
    result = runner.invoke(main, ["predict", str(path), "-i", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    out = read_output(target, "csv")
    assert list(out) == ["Score", "Probability", "PredictedLabel"]  # the results; not the Features they read
    expected = model.transform(data.take(6)).columns(["Score", "Probability", "PredictedLabel"])
    assert_close(out["Score"], expected["Score"])
    assert_close(out["Probability"], expected["Probability"])
    assert out["PredictedLabel"].tolist() == expected["PredictedLabel"].tolist()


def test_predict_saved_pipeline_missing_column(runner: CliRunner, tmp_path: Path) -> None:
    _, _, path = train_binary_pipeline(tmp_path)
    source = tmp_path / "new.csv"
    source.write_text("A,C\n1,2\n")
    result = runner.invoke(main, ["predict", str(path), "-i", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: input file 'new.csv' has no column 'B' (float32) that the model reads; the file's columns: ['A', 'C']\n"
    )
    assert not (tmp_path / "o.csv").exists()


def test_convert_round_trip(runner: CliRunner, tmp_path: Path) -> None:
    model, data, path = train_binary_pipeline(tmp_path)
    target = tmp_path / "classifier.onnx"
    result = runner.invoke(main, ["convert", str(path), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {target} (opset 13; inputs ['A', 'B'])\n"
    # ONNX Runtime on the exported file gives what the pipeline gives in Python.
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    a, b = data.column("A"), data.column("B")
    scores, probabilities, labels = session.run(
        ["Score", "Probability", "PredictedLabel"], {"A": a.reshape(-1, 1), "B": b.reshape(-1, 1)}
    )
    expected = model.transform(data).columns(["Score", "Probability", "PredictedLabel"])
    np.testing.assert_allclose(scores.reshape(-1), expected["Score"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities.reshape(-1), expected["Probability"], rtol=1e-5, atol=1e-6)
    assert labels.reshape(-1).tolist() == expected["PredictedLabel"].tolist()
    # ... and so does `predict` with the exported file, read back as a bare model.
    source = tmp_path / "ab.parquet"
    pq.write_table(pa.table({"A": a, "B": b}), source)
    scored = tmp_path / "scored.parquet"
    result = runner.invoke(main, ["predict", str(target), "-i", str(source), "-o", str(scored)])
    assert result.exit_code == 0, result.output
    out = read_output(scored, "parquet")
    assert list(out) == ["Score", "Probability", "PredictedLabel"]
    np.testing.assert_allclose(out["Score"], expected["Score"], rtol=1e-5, atol=1e-6)


def test_convert_options_and_errors(runner: CliRunner, tmp_path: Path, scoring: Path) -> None:
    _, _, path = train_binary_pipeline(tmp_path)
    target = tmp_path / "m.onnx"
    result = runner.invoke(main, ["convert", str(path), "-o", str(target), "--columns", "Probability", "--opset", "17"])
    assert result.exit_code == 0, result.output
    proto = onnx.load(target)
    assert [o.name for o in proto.graph.output] == ["Probability"]
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    result = runner.invoke(main, ["convert", str(path), "-o", str(target), "--opset", "7"])
    assert result.exit_code == 2
    assert result.stderr == "error: opset 7 is not supported: choose one from 13 to 21\n"
    result = runner.invoke(main, ["convert", str(scoring), "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {str(scoring)!r} is not a saved pipeline (.zip); `onnxpipe convert` turns saved pipelines into ONNX\n"
    )
    result = runner.invoke(main, ["convert", str(path), "-o", str(tmp_path / "nowhere" / "m.onnx")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot write {str(tmp_path / 'nowhere' / 'm.onnx')!r}")


def test_inspect_saved_pipeline(runner: CliRunner, tmp_path: Path) -> None:
    _, data, path = train_binary_pipeline(tmp_path)
    result = runner.invoke(main, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0].strip() == "classifier.zip"
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert rows == [
        ["#", "Step", "Class"],
        ["0", "concatenate(Features <- A, B)", "ColumnConcatenatingTransformer"],
        ["1", "normalize_min_max(Features)", "AffineNormalizingTransformer"],
        ["2", "lbfgs_logistic_regression(Features)", "LinearBinaryModel"],
        ["Column", "Input", "Output"],
        ["A", "float32", "float32"],
        ["B", "float32", "float32"],
        ["Label", "bool", "bool"],
        ["Features", "", "float32[2]"],
        ["Score", "", "float32 *"],
        ["Probability", "", "float32 *"],
        ["PredictedLabel", "", "bool *"],
    ]
    assert lines[-1] == "* the pipeline's results (what `onnxpipe predict` writes by default)"

    result = runner.invoke(main, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "saved_pipeline" and doc["path"] == str(path)
    assert doc["steps"][2] == {
        "index": 2,
        "step_name": "lbfgs_logistic_regression(Features)",
        "class": "LinearBinaryModel",
    }
    assert Schema.from_json(doc["input_schema"]) == data.schema
    assert Schema.from_json(doc["output_schema"]).names == [
        "A",
        "B",
        "Label",
        "Features",
        "Score",
        "Probability",
        "PredictedLabel",
    ]
    assert doc["result_columns"] == ["Score", "Probability", "PredictedLabel"]


# --------------------------------------------------------------------------------------------
# predict: errors (exit code 2, one line on stderr, no output file)


def test_predict_missing_input_file(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(missing), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert result.stderr == f"error: input file {str(missing)!r} does not exist (or is not a file)\n"
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("csv", "(read from the columns 'x.0' ... 'x.2'); the file's columns: ['id', 'x.0', 'x.1', 'k']"),
        ("parquet", "(read from a list column 'x' or the columns 'x.0' ... 'x.2'); the file's columns: ['id', 'k']"),
    ],
)
def test_predict_missing_column(runner: CliRunner, scoring: Path, tmp_path: Path, fmt: str, message: str) -> None:
    if fmt == "csv":
        source = tmp_path / "in.csv"
        source.write_text("id,x.0,x.1,k\na,1,2,3\n")
    else:
        source = tmp_path / "in.parquet"
        pq.write_table(pa.table({"id": ["a"], "k": [3]}), source)
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: input file {source.name!r} has no column 'x' (float32[3]) that the model reads {message}\n"
    )


def test_predict_unreadable_model(runner: CliRunner, garbage: Path, tmp_path: Path) -> None:
    source = write_table_input(tmp_path, "csv")
    result = runner.invoke(main, ["predict", str(garbage), "-i", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: bad.onnx is not a valid ONNX model: ")
    assert result.stderr.count("\n") == 1
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 truncated")
    result = runner.invoke(main, ["predict", str(bad_zip), "-i", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot load saved model {bad_zip}: ")
    assert "Traceback" not in result.output


def test_predict_unknown_format(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    source = write_table_input(tmp_path, "csv")
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(tmp_path / "out.xlsx")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot tell the format of {str(tmp_path / 'out.xlsx')!r} from its name (known endings: .csv, "
        ".json, .jsonl, .ndjson, .parquet, .pq, .tab, .tsv, .txt); pass --format-out csv|tsv|parquet|jsonl\n"
    )
    renamed = source.rename(tmp_path / "data.dat")
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(renamed), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "pass --format-in csv|tsv|parquet|jsonl" in result.stderr
    result = runner.invoke(
        main, ["predict", str(scoring), "-i", str(renamed), "-o", str(tmp_path / "o.csv"), "--format-in", "csv"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(renamed), "-o", "o.csv", "--format-in", "xml"])
    assert result.exit_code == 2 and "Invalid value for '--format-in'" in result.stderr


def test_predict_bad_values(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("x.0,x.1,x.2,k\n1,2,3,4\n1,two,3,4\n")
    target = tmp_path / "o.csv"
    target.write_text("previous result\n")
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: text file {str(source)!r}: file column 1 ('x.1'), read into column 'x': ")
    assert "invalid value 'two'" in result.stderr
    assert target.read_text() == "previous result\n"  # a failed run leaves the old output alone
    assert not list(tmp_path.glob(".*partial"))
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"x": [[1.0, 2.0, 3.0], [1.0, 2.0]], "k": [1, 2]}), ragged)
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(ragged), "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: input file 'ragged.parquet': row 1 of column 'x' has 2 values; the model reads float32[3], "
        "3 values per row\n"
    )
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"x": [[1, 2, 3]], "k": 1}\n')
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(nested), "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot read input file 'nested.jsonl' as JSON lines near row 0: ")
    assert result.stderr.endswith("(vectors are read from flat JSON arrays, row-major)\n")


def test_predict_usage_errors(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    source = write_table_input(tmp_path, "csv")
    base = ["predict", str(scoring), "-i", str(source), "-o", str(tmp_path / "o.csv")]
    result = runner.invoke(main, [*base, "--columns", "y,nope"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --columns names 'nope', which neither the input nor the model has; the columns: "
        "['x', 'k', 'y', 'total', 'k_next', 'id']\n"
    )
    result = runner.invoke(main, [*base, "--columns", "y", "--keep-input"])
    assert result.exit_code == 2 and "--columns and --keep-input cannot be combined" in result.stderr
    result = runner.invoke(main, [*base, "--separator", "::"])
    assert result.exit_code == 2 and "Invalid value for --separator: must be one character" in result.stderr
    result = runner.invoke(main, [*base, "--batch-size", "0"])
    assert result.exit_code == 2 and "Invalid value for '--batch-size'" in result.stderr
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source)])
    assert result.exit_code == 2 and "Missing option '-o' / '--output'" in result.stderr
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(tmp_path), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: input {str(tmp_path)!r} is a folder: a folder of images can be scored ")


def test_predict_unwritable_output(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    source = write_table_input(tmp_path, "csv")
    target = tmp_path / "missing-folder" / "o.csv"
    result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(target)])
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write {str(target)!r}: folder {str(target.parent)!r} does not exist\n"


def test_predict_help_documents_layout_and_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(main, ["predict", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "NAME.0 ... NAME.k-1" in text and "--keep-input" in text and "Exit codes:" in text
    assert "2 bad usage or bad input" in " ".join(runner.invoke(main, ["--help"]).stdout.split())


# --------------------------------------------------------------------------------------------
# predict over a folder of images


def make_images(folder: Path) -> list[Path]:
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    paths = []
    for label, size in (("cats", (10, 12)), ("dogs", (9, 15))):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            path = folder / label / f"{label[0]}{i}.png"
            pil.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
            paths.append(path.resolve())
    return paths


def channel_mean_model() -> onnx.ModelProto:
    """``data float[N,3,8,8]`` -> ``mean [N,3]``: the mean of each colour plane."""
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["data", "axes"], ["mean"], keepdims=0)],
        "channel_mean",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 3])],
        [axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def test_predict_image_folder(runner: CliRunner, tmp_path: Path) -> None:
    from onnxpipe.persistence import save_model

    photos = tmp_path / "photos"
    paths = make_images(photos)
    ctx = onnxpipe.MLContext()
    pipeline = (
        ctx.transforms.load_images("image", input_column_name="path")
        .append(ctx.transforms.resize_images("image", 8, 8))
        .append(ctx.transforms.extract_pixels("data", "image", scale=1 / 255))
        .append(ctx.transforms.apply_onnx_model(model_file=save(channel_mean_model(), tmp_path, "mean.onnx")))
    )
    data = ctx.data.load_from_arrow(pa.table({"path": [str(p) for p in paths]}))
    model = pipeline.fit(data)
    saved = tmp_path / "images.zip"
    save_model(model, data.schema, saved)
    expected = model.transform(data).column("mean").reshape(6, 3)

    target = tmp_path / "scores.csv"
    result = runner.invoke(main, ["predict", str(saved), "-i", str(photos), "-o", str(target), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote 6 rows to {target}\n"
    out = read_output(target, "csv")
    assert list(out) == ["path", "mean"]  # the image paths are kept, then the results
    assert out["path"].tolist() == [str(p) for p in paths]
    assert_close(out["mean"], expected)

    target = tmp_path / "scores.jsonl"
    args = ["predict", str(saved), "-i", str(photos), "-o", str(target), "--columns", "Label,path,mean"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["Label"] for r in rows] == ["cats"] * 3 + ["dogs"] * 3  # the folder of each file
    assert_close([r["mean"] for r in rows], expected)

    # The loader reads files, which ONNX cannot: converting names that step.
    result = runner.invoke(main, ["convert", str(saved), "-o", str(tmp_path / "images.onnx")])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: step 0 (load_images(image <- path)) cannot be exported to ONNX: it reads files"
    )
    assert not (tmp_path / "images.onnx").exists()


def test_predict_empty_inputs(runner: CliRunner, scoring: Path, tmp_path: Path) -> None:
    header_only = tmp_path / "empty.csv"
    header_only.write_text("x.0,x.1,x.2,k\n")
    empty_lines = tmp_path / "empty.jsonl"
    empty_lines.write_text("\n")
    for source, target in ((header_only, tmp_path / "o.csv"), (empty_lines, tmp_path / "o.parquet")):
        result = runner.invoke(main, ["predict", str(scoring), "-i", str(source), "-o", str(target)])
        assert result.exit_code == 0, result.output
        assert result.stderr == f"wrote 0 rows to {target}\n"
    assert (tmp_path / "o.csv").read_text() == '"y.0","y.1","y.2","total","k_next"\n'
    assert onnxpipe.data.load_from_parquet(tmp_path / "o.parquet").schema.names == ["y", "total", "k_next"]


def test_schema_of_saved_pipeline_drives_a_prediction_engine(runner: CliRunner, tmp_path: Path) -> None:
    model, data, path = train_binary_pipeline(tmp_path)
    result = runner.invoke(main, ["schema", str(path), "--input-class", "In", "--output-class", "Out"])
    assert result.exit_code == 0, result.output
    assert 'class In:\n    a: Annotated[np.float32, ColumnName("A")]' in result.stdout
    assert 'predicted_label: Annotated[np.bool_, ColumnName("PredictedLabel")]' in result.stdout
    assert "features" not in result.stdout  # an intermediate column, not a result
    module = import_code(result.stdout, tmp_path, "saved_schema")
    engine = onnxpipe.MLContext().model.create_prediction_engine(model, module.In, module.Out)
    row = data.take(1).to_arrow().to_pylist()[0]
    out = engine.predict(module.In(a=row["A"], b=row["B"], label=row["Label"]))
    expected = model.transform(data.take(1)).columns(["Probability"])["Probability"][0]
    assert out.probability == pytest.approx(expected)


def test_schema_of_saved_image_pipeline_uses_image_and_key_markers(runner: CliRunner, tmp_path: Path) -> None:
    from onnxpipe.persistence import save_model

    ctx = onnxpipe.MLContext()
    paths = make_images(tmp_path / "photos")
    data = ctx.data.load_from_arrow(pa.table({"path": [str(p) for p in paths], "kind": ["a", "b"] * 3}))
    pipeline = (
        ctx.transforms.load_images("image", input_column_name="path")
        .append(ctx.transforms.resize_images("small", 8, 6, "image"))
        .append(ctx.transforms.conversion.map_value_to_key("kind"))
    )
    model = pipeline.fit(data)
    save_model(model, data.schema, tmp_path / "images.zip")
    result = runner.invoke(main, ["schema", str(tmp_path / "images.zip")])
    assert result.exit_code == 0, result.output
    assert "from onnxpipe import ColumnName, ImageType, KeyType" in result.stdout
    assert 'small: Annotated[npt.NDArray[np.uint8], ColumnName("small"), ImageType(6, 8)]' in result.stdout
    assert 'kind: Annotated[np.uint32, ColumnName("kind"), KeyType(2, ["a", "b"])]' in result.stdout
    module = import_code(result.stdout, tmp_path, "image_schema")
    assert onnxpipe.schema_of(module.OnnxOutput) == model.output_schema(data.schema).select(["small", "kind"])


def test_json_lines_output_holds_exact_numbers_and_null_for_non_finite(tmp_path: Path) -> None:
    from onnxpipe._cli_io import open_writer
    from onnxpipe.data._convert import arrow_schema, to_arrow
    from onnxpipe.schema import Column, DType, Schema, TensorType

    schema = Schema(
        [
            Column("f", TensorType(DType.FLOAT32)),
            Column("v", TensorType(DType.FLOAT64, (2,))),
            Column("b", TensorType(DType.BOOL)),
            Column("s", TensorType(DType.STRING)),
        ]
    )
    values = {
        "f": np.array([0.1, np.nan, -np.inf, 3.4028235e38], np.float32),
        "v": np.array([[1e-300, 2.5], [np.inf, 0.0], [-0.0, 1.0], [7.0, np.nan]]),
        "b": np.array([True, False, True, False]),
        "s": np.array(['say "hi"', "é", "", "x"], dtype=object),
    }
    arrays = [to_arrow(values[c.name], c.type, c.name) for c in schema.columns]
    batch = pa.RecordBatch.from_arrays(arrays, schema=arrow_schema(schema))
    writer = open_writer(tmp_path / "out.jsonl", "jsonl", schema)
    writer.write(batch)
    writer.close()
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"f": 0.1, "v": [1e-300, 2.5], "b": True, "s": 'say "hi"'},
        {"f": None, "v": [None, 0.0], "b": False, "s": "é"},
        {"f": None, "v": [-0.0, 1.0], "b": True, "s": ""},
        {"f": 3.4028235e38, "v": [7.0, None], "b": False, "s": "x"},
    ]


def test_predict_writes_a_column_replaced_in_place(runner: CliRunner, tmp_path: Path) -> None:
    from onnxpipe.persistence import save_model

    ctx = onnxpipe.MLContext()
    data = ctx.data.load_from_arrow(pa.table({"x": np.array([1.0, 3.0, 5.0], np.float32)}))
    model = ctx.transforms.normalize_min_max("x").fit(data)  # writes x over x, same type
    assert TransformerChain([model]).result_columns(data.schema) == ["x"]
    save_model(model, data.schema, tmp_path / "scale.zip")
    (tmp_path / "in.csv").write_text("x\n1\n3\n5\n")
    result = runner.invoke(
        main, ["predict", str(tmp_path / "scale.zip"), "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 0, result.output
    assert_close(read_output(tmp_path / "o.csv", "csv")["x"], model.transform(data).column("x"))


def test_predict_refuses_an_output_with_repeated_column_names(runner: CliRunner, tmp_path: Path) -> None:
    from onnxpipe.persistence import save_model

    ctx = onnxpipe.MLContext()
    data = ctx.data.load_from_arrow(pa.table({"a": np.ones(2, np.float32), "b": np.zeros(2, np.float32)}))
    save_model(ctx.transforms.concatenate("F", "a", "b").fit(data), data.schema, tmp_path / "m.zip")
    (tmp_path / "in.csv").write_text("a,b,F.0,F.1\n1,3,9,9\n2,4,9,9\n")
    args = ["predict", str(tmp_path / "m.zip"), "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv")]
    result = runner.invoke(main, [*args, "--keep-input"])
    assert result.exit_code == 2
    assert "the output would hold the columns ['F.0', 'F.1'] twice" in result.stderr
    assert not (tmp_path / "o.csv").exists()
    assert runner.invoke(main, args).exit_code == 0  # without the kept input columns it is fine
