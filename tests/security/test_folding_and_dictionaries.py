"""Files of a few kilobytes that ask for gigabytes through what is computed from them, not what
they declare: ONNX nodes computed from constants alone (ONNX Runtime folds them when it opens a
model), and dictionary-encoded Arrow or Parquet values (one long value repeated by index).
Found by an attacker's pass over the first round of checks; each is refused before allocating."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.security.conftest import run_isolated

BIG = 1 << 29  # elements: 2 GiB of float32, far over the limits the children run with
MEMORY = 3 << 30


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], extra_outputs: list[str]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 1])
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])]
    outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in extra_outputs]
    graph = helper.make_graph([*nodes, helper.make_node("Identity", ["X"], ["Y"])], "g", [x], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def _i64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


BOMBS = {
    # a chain the size tracker cannot evaluate, in front of an op that makes a tensor from sizes
    "abs-constant-of-shape": _model(
        [helper.make_node("Abs", ["s"], ["s2"]), helper.make_node("ConstantOfShape", ["s2"], ["c"])],
        [_i64("s", [-BIG])],
        ["c"],
    ),
    "abs-expand": _model(
        [helper.make_node("Abs", ["s"], ["s2"]), helper.make_node("Expand", ["one", "s2"], ["e"])],
        [_i64("s", [-BIG]), numpy_helper.from_array(np.ones(1, np.float32), "one")],
        ["e"],
    ),
    # a broadcast of two small constants: [N, 1] + [1, N] is N * N
    "broadcast-add": _model(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        [
            numpy_helper.from_array(np.ones((1 << 15, 1), np.float32), "a"),
            numpy_helper.from_array(np.ones((1, 1 << 15), np.float32), "b"),
        ],
        ["c"],
    ),
    "random-normal-shape": _model([helper.make_node("RandomNormal", [], ["r"], shape=[1 << 17, 1 << 17])], [], ["r"]),
    "pad-constant-pads": _model([helper.make_node("Pad", ["X", "pads"], ["p"])], [_i64("pads", [0, 0, 0, BIG])], ["p"]),
    "hann-window": _model(
        [helper.make_node("HannWindow", ["size"], ["w"])],
        [numpy_helper.from_array(np.array(BIG, np.int64), "size")],
        ["w"],
    ),
}


def test_constant_computations_of_unbounded_size_are_refused(tmp_path: Path) -> None:
    paths = {}
    for name, model in BOMBS.items():
        paths[name] = str(tmp_path / f"{name}.onnx")
        onnx.save(model, paths[name])
    code = f"""
        import onnxpipe as op
        from onnxpipe.errors import ModelLoadError
        for name, path in {paths!r}.items():
            try:
                op.MLContext().transforms.apply_onnx_model(path, max_bytes=100_000_000)
            except ModelLoadError as exc:
                print(name, "REFUSED", exc)
            else:
                print(name, "LOADED")
    """
    out = run_isolated(code, memory=MEMORY, timeout=120)
    assert out.returncode == 0 and not out.timed_out and out.clean, out
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert set(lines) == set(BOMBS), out.stdout
    for name, line in lines.items():
        assert line.startswith("REFUSED"), f"{name}: {line}"
        assert "cannot tell how large" in line or "more than max_bytes=100,000,000" in line, f"{name}: {line}"


def test_constant_computations_of_known_small_size_still_load() -> None:
    """The same shapes at a small size load and score: the check bounds, it does not forbid."""
    import onnxpipe as op

    small = _model(
        [helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Abs", ["c"], ["d"])],
        [
            numpy_helper.from_array(np.ones((4, 1), np.float32), "a"),
            numpy_helper.from_array(np.ones((1, 4), np.float32), "b"),
        ],
        ["d"],
    )
    step = op.MLContext().transforms.apply_onnx_model(model_bytes=small.SerializeToString())
    assert "d" in step.output_column_names


def _dictionary_bomb_zip(tmp_path: Path) -> Path:
    seed = Path(__file__).parent.parent / "golden" / "v2" / "KeyToValueMappingTransformer.zip"
    if not seed.exists():
        pytest.skip(f"no golden file {seed}")
    manifest = json.loads(zipfile.ZipFile(seed).read("manifest.json"))
    n = 1 << 20
    manifest["model"]["state"]["key_values"]["shape"] = [n]
    manifest["input_schema"][0]["type"]["key_count"] = n
    manifest.pop("output_schema")
    values = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["a" * (1 << 20)]))
    sink = io.BytesIO()
    table = pa.table({"values": values})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    path = tmp_path / "dictionary.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("data/0000-key_values.arrow", sink.getvalue())
    return path


def test_dictionary_encoded_arrow_in_a_saved_model_is_refused(tmp_path: Path) -> None:
    path = _dictionary_bomb_zip(tmp_path)
    assert path.stat().st_size < 3 << 20  # a terabyte once expanded
    out = run_isolated("", argv=["inspect", str(path), "--max-bytes", "100000000"], memory=MEMORY, timeout=60)
    assert out.returncode == 2 and not out.timed_out and out.clean, out
    assert "holds Arrow values of type dictionary" in out.stderr and "Traceback" not in out.stderr


def _dictionary_parquet(path: Path, rows: int) -> None:
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array(["a" * (1 << 20)]))
    pq.write_table(pa.table({"S": column}), path, compression="zstd", row_group_size=rows)


def test_parquet_dictionary_bomb_is_refused_by_the_cli_and_the_loader(tmp_path: Path) -> None:
    data = tmp_path / "dict.parquet"
    _dictionary_parquet(data, 1 << 12)  # 4 GiB of text once decoded, from a file of a few kilobytes
    assert data.stat().st_size < 64 << 10
    graph = helper.make_graph(
        [helper.make_node("Identity", ["S"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("S", TensorProto.STRING, ["N", 1])],
        [helper.make_tensor_value_info("Y", TensorProto.STRING, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "str.onnx")
    argv = ["predict", str(tmp_path / "str.onnx"), "-i", str(data), "-o", str(tmp_path / "o.jsonl")]
    out = run_isolated("", argv=[*argv, "--max-bytes", "100000000"], memory=MEMORY, timeout=60)
    assert out.returncode == 2 and not out.timed_out and out.clean, out
    assert "bytes of text in rows 0 to" in out.stderr and "more than --max-bytes" in out.stderr
    code = f"""
        import onnxpipe as op
        from onnxpipe.errors import DataError
        view = op.MLContext().data.load_from_parquet({str(data)!r}, max_bytes=100_000_000)
        try:
            view.to_arrow()
        except DataError as exc:
            print("REFUSED", exc)
    """
    out = run_isolated(code, memory=MEMORY, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("REFUSED") and "more than max_bytes" in out.stdout, out


def test_parquet_dictionary_of_ordinary_size_reads_as_text(tmp_path: Path) -> None:
    import onnxpipe as op

    data = tmp_path / "small.parquet"
    column = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int32()), pa.array(["x", "yz"]))
    pq.write_table(pa.table({"S": column}), data)
    assert op.MLContext().data.load_from_parquet(data).to_arrow().column("S").to_pylist() == ["x", "yz", "x"]


def test_weights_reshaped_transposed_and_multiplied_at_load_are_bounded_exactly() -> None:
    """Real models fold chains over their weights: exact shapes, not products of sizes, bound them."""
    import onnxpipe as op

    w = numpy_helper.from_array(np.ones((512, 512), np.float32), "w")
    v = numpy_helper.from_array(np.ones((512, 512), np.float32), "v")
    shape = _i64("shape", [512, -1])
    model = _model(
        [
            helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            helper.make_node("MatMul", ["wt", "v"], ["p"]),
            helper.make_node("Reshape", ["p", "shape"], ["r"]),
            helper.make_node("Gemm", ["r", "v"], ["g"], transB=1),
        ],
        [w, v, shape],
        ["g"],
    )
    step = op.MLContext().transforms.apply_onnx_model(model_bytes=model.SerializeToString(), max_bytes=50_000_000)
    assert "g" in step.output_column_names
