"""Generated schema code holds only validated literals: model names and options never become code.

``onnxpipe schema`` writes Python a user will import. A tensor name, a dimension name, a column of
a saved pipeline or a class-name option crafted to close a string and start a statement must come
out as an escaped literal or be refused; and the finished source is checked (imports and
``@dataclass`` classes of annotated fields only) before it is returned.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import sys
import types
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import onnxpipe
from onnxpipe.errors import InvalidArgumentError, ModelError
from onnxpipe.runtime._inspect import check_generated_code, generate_schema_code_for_columns
from onnxpipe.runtime._model import ModelInfo, TensorInfo
from onnxpipe.schema import Column, DType, ImageType, KeyType, Schema, TensorType, schema_of
from tests.security.conftest import Outcome

_counter = itertools.count()


def injection(target: Path) -> str:
    return f'x"]\nimport os\nos.system("touch {target}")\n#'


def import_code(code: str, folder: Path) -> types.ModuleType:
    name = f"generated_security_{next(_counter)}"
    path = folder / f"{name}.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def crafted_model(names: list[str], dim: str = "N") -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [dim, 3]) for n in names]
    outputs = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [dim, 3]),
        helper.make_tensor_value_info("bf", TensorProto.BFLOAT16, [dim]),  # unsupported: a comment names its type
    ]
    graph = helper.make_graph([helper.make_node("Identity", [names[0]], ["y"])], "g", inputs, outputs)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def no_calls_outside_markers(code: str) -> None:
    calls = [n.func for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)]
    assert all(isinstance(f, ast.Name) and f.id in {"ColumnName", "VectorType"} for f in calls), code
    assert not [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Import) and n.names[0].name == "os"]


def test_tensor_and_dimension_names_stay_literals(tmp_path: Path) -> None:
    pwn = tmp_path / "pwn"
    names = [
        injection(pwn),
        "'''\nimport os#",
        '\\"); import os; ("',
        "\x1b[31mred\u202eevil\u2066",
        "é\U0001f600\x00",
        "__class__",
        "__import__('os').system('id')",
    ]
    path = tmp_path / "m.onnx"
    path.write_bytes(crafted_model(names, dim=f"N\nimport os\nos.system('touch {pwn}')").SerializeToString())
    code = onnxpipe.generate_schema_code(onnxpipe.inspect_model(path))
    assert code.isascii() and all(ch.isprintable() or ch == "\n" for ch in code), code
    no_calls_outside_markers(code)
    assert "\nimport os" not in code
    check_generated_code(code)
    module = import_code(code, tmp_path)
    assert not pwn.exists()
    assert schema_of(module.OnnxInput).names == names  # ColumnName keeps each exact name
    fields = list(module.OnnxInput.__dataclass_fields__)
    assert all(f.isascii() and f.isidentifier() and not f.startswith("_") for f in fields), fields


def test_schema_command_prints_only_inert_code(isolated: Callable[..., Outcome], tmp_path: Path) -> None:
    pwn = tmp_path / "pwn"
    path = tmp_path / "m.onnx"
    path.write_bytes(crafted_model([injection(pwn)]).SerializeToString())
    outcome = isolated("", argv=["schema", str(path)], timeout=60)
    assert outcome.returncode == 0 and not outcome.timed_out, outcome
    assert outcome.clean, outcome
    check_generated_code(outcome.stdout)
    no_calls_outside_markers(outcome.stdout)
    assert not pwn.exists()


@pytest.mark.parametrize(
    "name",
    [
        "X:\n    import os\nclass Y",
        "X(object)",
        "X; import os",
        "\u03a9mega",  # not ASCII
        "__init__",
        "__class__",
        "class",
        "dataclass",  # would shadow the import
        "Annotated",
        "",
        "1X",
        "X" * 101,
    ],
)
def test_class_name_options_with_code_are_refused(name: str) -> None:
    info = ModelInfo((), (), 8, {}, "", "", "", 0, "g", "", {})
    with pytest.raises(InvalidArgumentError, match="is not a valid Python class name"):
        onnxpipe.generate_schema_code(info, input_class=name)
    with pytest.raises(InvalidArgumentError, match="is not a valid Python class name"):
        generate_schema_code_for_columns(Schema([]), Schema([]), output_class=name)


def test_schema_command_refuses_a_class_name_with_code(isolated: Callable[..., Outcome], tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(crafted_model(["x"]).SerializeToString())
    outcome = isolated("", argv=["schema", str(path), "--input-class", "X:\n import os\nclass Y"], timeout=60)
    assert outcome.returncode == 2 and "is not a valid Python class name" in outcome.stderr, outcome
    assert outcome.stdout == ""


def test_pipeline_columns_and_source_stay_literals(tmp_path: Path) -> None:
    pwn = tmp_path / "pwn"
    schema = Schema(
        [
            Column(injection(pwn), TensorType(DType.FLOAT32, (None, 3))),
            Column("img\n#", ImageType(32, 32)),
            Column("k\u202e", KeyType(4)),
        ]
    )
    code = generate_schema_code_for_columns(schema, schema, source=f"x.zip\nimport os\nos.system('touch {pwn}')")
    assert code.isascii() and "\nimport os" not in code
    check_generated_code(code)
    module = import_code(code, tmp_path)
    assert not pwn.exists()
    assert schema_of(module.ModelInput).names == schema.names


@pytest.mark.parametrize(
    "source",
    [
        "import os\n",
        "from os import system\n",
        "from onnxpipe import *\n",
        "import numpy as os\n",
        "from .onnxpipe import ColumnName\n",
        "print('hi')\n",
        "x = 1\n",
        "def f():\n    pass\n",
        "@dataclass\nclass A(Base):\n    x: int\n",
        "@dataclass(init=False)\nclass A:\n    x: int\n",
        "@other\nclass A:\n    x: int\n",
        "class A:\n    x: int\n",
        "@dataclass\nclass A:\n    x: int = print('x')\n",
        "@dataclass\nclass A:\n    def f(self): pass\n",
        "@dataclass\nclass A:\n    x: Annotated[int, print('x')]\n",
        "@dataclass\nclass A:\n    x: Annotated[int, ColumnName(print('x'))]\n",
        "@dataclass\nclass A:\n    x: Annotated[int, ColumnName(f'{x}')]\n",
        "@dataclass\nclass A:\n    x: Annotated[int, VectorType(1, x)]\n",
        "@dataclass\nclass A:\n    x: Annotated[int, VectorType(*a)]\n",
        "@dataclass\nclass A:\n    x: Annotated[int, ColumnName(name='a')]\n",
        "@dataclass\nclass A:\n    x: Annotated[os.system, ColumnName('a')]\n",
        "@dataclass\nclass A:\n    x: Annotated[(lambda: 1)(), ColumnName('a')]\n",
        "@dataclass\nclass A:\n    x: npt.NDArray[np.float32].__class__\n",
        "@dataclass\nclass A:\n    x: list[int][0]\n",
        "@dataclass\nclass A:\n    x: ColumnName('a')\n",
        "@dataclass\nclass A:\n    'doc'\n    'second'\n",
        "@dataclass\nclass A:\n    (x): int\n",
        "if True:\n    import os\n",
        "x = (",
    ],
)
def test_generated_code_check_refuses_anything_else(source: str) -> None:
    with pytest.raises(ModelError, match=r"^schema code: "):
        check_generated_code(source)


def test_generated_code_check_accepts_what_onnxpipe_writes() -> None:
    check_generated_code(
        "from __future__ import annotations\n\nfrom dataclasses import dataclass\nfrom typing import Annotated\n\n"
        "import numpy as np\nimport numpy.typing as npt\n"
        "from onnxpipe import ColumnName, ImageType, KeyType, VectorType\n\n\n@dataclass\nclass A:\n    'doc'\n"
        '    x: Annotated[npt.NDArray[np.float32], ColumnName("x"), VectorType(1, -1)]\n'
        '    k: Annotated[np.uint32, ColumnName("k"), KeyType(4)]\n'
        '    i: Annotated[npt.NDArray[np.uint8], ColumnName("i"), ImageType(None, 32)]\n'
        '    m: Annotated[list[dict[str, float]], ColumnName("m")]\n\n\n@dataclass\nclass B:\n    pass\n'
    )


_NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(names=st.lists(_NAMES, min_size=1, max_size=5, unique=True), dim=_NAMES)
def test_any_names_give_inert_code_that_keeps_them(names: list[str], dim: str) -> None:
    tensors = tuple(TensorInfo(n, "float32", (dim, 3), TensorType(DType.FLOAT32, (None, 3))) for n in names)
    odd = (TensorInfo("odd", "bfloat16", (dim,), None),)  # unsupported: a comment shows its type and dims
    info = ModelInfo(tensors, tensors + odd, 8, {}, "", "", "", 0, "g", "", {}, path=f"/m/{dim}.onnx")
    code = onnxpipe.generate_schema_code(info)
    assert code.isascii() and all(ch.isprintable() or ch == "\n" for ch in code)
    check_generated_code(code)
    module = sys.modules["generated_fuzz"] = types.ModuleType("generated_fuzz")
    try:
        exec(compile(code, "generated_fuzz", "exec"), module.__dict__)
        assert schema_of(module.OnnxInput).names == names
    finally:
        del sys.modules["generated_fuzz"]
