"""Names and text in crafted ONNX models stay inert: not UTF-8 is refused, and nothing reaches a terminal raw.

ONNX's messages are proto2: protobuf keeps invalid UTF-8 in a string field and hands it back as
``bytes``. Each model here is serialized with a placeholder and the placeholder's bytes replaced
by invalid UTF-8 of the same length, in one field at a time. ``onnxpipe inspect`` prints names,
metadata and properties carrying ANSI escapes, bidirectional overrides and rich markup: the
output holds them escaped and literal, never as control characters or styles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from onnxpipe.errors import ModelLoadError
from onnxpipe.runtime._guard import check_strings
from onnxpipe.runtime._model import describe_model
from tests.security.conftest import Outcome

PLACEHOLDER = "PLACEHOLDER_0123"
BROKEN = b"PLA\xff\xfe\xc0\x80\xed\xa0\x80R_0123"  # invalid UTF-8, same length
assert len(BROKEN) == len(PLACEHOLDER.encode())


def base(**fields: str) -> onnx.ModelProto:
    """y = x; ``fields`` names which string holds the placeholder."""

    def pick(field: str, default: str) -> str:
        return PLACEHOLDER if field in fields else default

    x = pick("input name", "x")
    dims: list[int | str] = [pick("dim_param", "N"), 2]
    node = helper.make_node("Identity", [x], ["y"], name=pick("node name", "n"))
    graph = helper.make_graph(
        [node],
        pick("graph name", "g"),
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        doc_string=pick("graph doc", ""),
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(pick("opset domain", "com.example"), 1)]
    m = helper.make_model(graph, opset_imports=opsets, doc_string=pick("model doc", ""))
    m.ir_version = 8
    m.producer_name = pick("producer", "tests")
    helper.set_model_props(m, {pick("metadata key", "k"): pick("metadata value", "v")})
    if "function name" in fields:
        m.functions.append(helper.make_function("local", PLACEHOLDER, ["a"], ["b"], [], [helper.make_opsetid("", 17)]))
    if "initializer name" in fields:
        m.graph.initializer.append(helper.make_tensor(PLACEHOLDER, TensorProto.FLOAT, [1], [0.0]))
    return m


FIELDS = [
    "input name",
    "dim_param",
    "node name",
    "graph name",
    "graph doc",
    "opset domain",
    "model doc",
    "producer",
    "metadata key",
    "metadata value",
    "function name",
    "initializer name",
]


def broken(field: str) -> bytes:
    data = base(**{field: "1"}).SerializeToString()
    assert PLACEHOLDER.encode() in data
    return data.replace(PLACEHOLDER.encode(), BROKEN)


def test_protobuf_hands_back_invalid_text_as_bytes() -> None:
    # The premise: without a check, the name would reach onnxpipe as bytes.
    proto = onnx.load_model_from_string(broken("metadata key"))
    assert isinstance(proto.metadata_props[0].key, bytes)
    with pytest.raises(ModelLoadError, match=r"model\.metadata_props\[0\]\.key holds b'PLA\\xff\\xfe.*not valid UTF-8"):
        check_strings(proto, "m.onnx")
    with pytest.raises(ModelLoadError, match="not valid UTF-8"):
        describe_model(proto)


OPEN = """
import json
import onnxpipe as op
from onnxpipe.errors import OnnxPipeError
for name, path in json.loads(CASES):
    for how in ("apply", "inspect", "bytes"):
        try:
            if how == "apply":
                op.MLContext().transforms.apply_onnx_model(path)
            elif how == "bytes":
                op.MLContext().transforms.apply_onnx_model(model_bytes=open(path, "rb").read())
            else:
                op.inspect_model(path)
            print(json.dumps([name, how, "loaded", ""]))
        except OnnxPipeError as exc:
            print(json.dumps([name, how, type(exc).__name__, str(exc)]))
"""


def test_invalid_utf8_anywhere_is_refused(isolated: Callable[..., Outcome], tmp_path: Path) -> None:
    cases = {}
    for i, field in enumerate(FIELDS):
        cases[field] = tmp_path / f"broken{i}.onnx"
        cases[field].write_bytes(broken(field))
    payload = json.dumps([[k, str(v)] for k, v in cases.items()])
    outcome = isolated(f"CASES = {payload!r}\n" + OPEN, timeout=90)
    assert outcome.returncode == 0 and not outcome.timed_out and outcome.clean, outcome
    lines = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert len(lines) == 3 * len(FIELDS), outcome
    for field, how, error, message in lines:
        assert error == "ModelLoadError", (field, how, error, message)
        assert "which is not valid UTF-8 text" in message and "\\xff\\xfe" in message, (field, how, message)
        assert message.isprintable() and "\xff" not in message, message


ANSI = "\x1b[31mRED\x1b[0m\x1b[2J\x1b]0;pwned\x07"
BIDI = "admin\u202e\u2066txt.exe\u2069"


def shouting_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["[bold red]x[/bold red]" + ANSI], ["y" + BIDI])],
        "graph" + ANSI,
        [helper.make_tensor_value_info("[bold red]x[/bold red]" + ANSI, TensorProto.FLOAT, ["N" + ANSI, 2])],
        [helper.make_tensor_value_info("y" + BIDI, TensorProto.FLOAT, ["N", 2])],
    )
    m = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("dom" + ANSI, 1)], doc_string=ANSI
    )
    m.ir_version = 8
    m.producer_name, m.domain = "[link=https://evil]p[/link]" + ANSI, BIDI
    helper.set_model_props(m, {"key" + ANSI: "value" + BIDI, "[red]k": "\x00\x08\r" + "z" * 500})
    return m


def test_inspect_prints_model_text_escaped_and_literal(isolated: Callable[..., Outcome], tmp_path: Path) -> None:
    path = tmp_path / "loud.onnx"
    path.write_bytes(shouting_model().SerializeToString())
    outcome = isolated("", argv=["inspect", str(path)], timeout=60)
    assert outcome.returncode == 0 and not outcome.timed_out, outcome
    assert outcome.clean, outcome
    out = outcome.stdout
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out and "\r" not in out, repr(out)
    for ch in "\u202e\u2066\u2069":
        assert ch not in out, repr(out)
    assert "[bold red]x[/bold red]" in out.replace("\n", "")  # markup printed as text
    assert "[link=https://evil]p[/link]" in out.replace("\n", "")
    for escaped in ("\\x1b[31mRED", "\\u202e", "\\u2066", "\\x00\\x08\\x0d"):
        assert escaped in out.replace("\n", "").replace("│", "").replace(" ", ""), (escaped, out)
