"""Crafted ONNX models never make onnxpipe (or ONNX Runtime) read a file outside the model's folder.

Every place a tensor can live (initializers, sparse initializers, Constant's ``value`` and
``sparse_value``, subgraphs of If and Loop, functions) is tried with a location that escapes,
and every way a location can escape (``..``, absolute paths, symlinks, backslashes, drives, NUL)
is tried on an initializer. Each crafted model is opened in a child process that records any
open of the canary folder; the model must be refused with a ``ModelLoadError`` naming the tensor
and the location, and the canary never opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from onnxpipe.errors import ModelLoadError
from onnxpipe.runtime._guard import external_data
from tests.security.conftest import Outcome, assert_untouched

FLOAT = TensorProto.FLOAT
ESCAPE = "../outside/secret.bin"  # from tmp_path/models to the canary, tmp_path/outside

# ------------------------------------------------------------------------------------------------
# Crafting


def ext_tensor(
    name: str,
    location: str,
    dims: tuple[int, ...] = (1,),
    *,
    data_type: int = FLOAT,
    offset: str | None = None,
    length: str | None = None,
    flagged: bool = True,
    extra: tuple[tuple[str, str], ...] = (),
) -> TensorProto:
    """A tensor whose data is said to live in ``location``."""
    t = TensorProto()
    t.name = name
    t.data_type = data_type
    t.dims.extend(dims)
    entries = [("location", location)]
    entries += [("offset", offset)] if offset is not None else []
    entries += [("length", length)] if length is not None else []
    for key, value in [*entries, *extra]:
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    if flagged:
        t.data_location = TensorProto.EXTERNAL
    return t


def vi(name: str, elem: int = FLOAT, dims: list[int | str] | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [1] if dims is None else dims)


def model(
    nodes: list[onnx.NodeProto],
    *,
    inits: list[TensorProto] | None = None,
    sparse: list[onnx.SparseTensorProto] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", inputs if inputs is not None else [vi("x")], outputs or [vi("y")], inits or []
    )
    graph.sparse_initializer.extend(sparse or [])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("local", 1)] if functions else [])
    m = helper.make_model(graph, opset_imports=opsets, functions=functions or [])
    m.ir_version = 8
    return m


def add_w(w: TensorProto) -> onnx.ModelProto:
    """y = x + W, W from external data."""
    return model([helper.make_node("Add", ["x", w.name], ["y"])], inits=[w])


def sparse_of(values: TensorProto, indices: TensorProto, dims: list[int]) -> onnx.SparseTensorProto:
    return helper.make_sparse_tensor(values, indices, dims)


def inline(name: str, data_type: int = FLOAT, values: list[float] | None = None) -> TensorProto:
    vals = [0.0] if values is None else values
    return helper.make_tensor(name, data_type, [len(vals)], vals)


def constant_ext(location: str) -> onnx.NodeProto:
    return helper.make_node("Constant", [], ["c"], value=ext_tensor("c_value", location))


def kinds(location: str) -> dict[str, onnx.ModelProto]:
    """A model per place a tensor can keep external data, each pointing at ``location``."""
    add_c = helper.make_node("Add", ["x", "c"], ["y"])
    sparse_node = helper.make_node("Add", ["x", "s"], ["y"])
    then_graph = helper.make_graph(
        [constant_ext(location), helper.make_node("Identity", ["c"], ["t"])], "then", [], [vi("t")]
    )
    else_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [vi("e")])
    body = helper.make_graph(
        [helper.make_node("Add", ["v_in", "b"], ["v_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []), vi("v_in")],
        [vi("cond_out", TensorProto.BOOL, []), vi("v_out")],
        [ext_tensor("b", location)],
    )
    function = helper.make_function(
        "local",
        "F",
        ["a"],
        ["r"],
        [constant_ext(location), helper.make_node("Add", ["a", "c"], ["r"])],
        [helper.make_opsetid("", 17)],
    )
    nested_body = helper.make_graph(
        [
            helper.make_node("If", ["cond_in"], ["v_out"], then_branch=then_graph, else_branch=else_graph),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "nested",
        [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []), vi("v_in")],
        [vi("cond_out", TensorProto.BOOL, []), vi("v_out")],
    )
    loop_inits = [
        helper.make_tensor("M", TensorProto.INT64, [], [1]),
        helper.make_tensor("k", TensorProto.BOOL, [], [1]),
    ]
    return {
        "initializer": add_w(ext_tensor("W", location)),
        "sparse values": model(
            [sparse_node], sparse=[sparse_of(ext_tensor("s", location), inline("s_idx", TensorProto.INT64, [0]), [1])]
        ),
        "sparse indices": model(
            [sparse_node],
            sparse=[sparse_of(inline("s"), ext_tensor("s_idx", location, data_type=TensorProto.INT64), [1])],
        ),
        "Constant value": model([constant_ext(location), add_c]),
        "Constant sparse_value": model(
            [
                helper.make_node(
                    "Constant",
                    [],
                    ["c"],
                    sparse_value=sparse_of(
                        ext_tensor("c_values", location), inline("c_idx", TensorProto.INT64, [0]), [1]
                    ),
                ),
                add_c,
            ]
        ),
        "tensor attribute of another op": model(
            [helper.make_node("Identity", ["x"], ["y"], domain="", hidden=ext_tensor("h", location))]
        ),
        "If subgraph": model(
            [helper.make_node("If", ["k"], ["y"], then_branch=then_graph, else_branch=else_graph)],
            inits=[helper.make_tensor("k", TensorProto.BOOL, [], [1])],
        ),
        "Loop body": model([helper.make_node("Loop", ["M", "k", "x"], ["y"], body=body)], inits=loop_inits),
        "If inside a Loop body": model(
            [helper.make_node("Loop", ["M", "k", "x"], ["y"], body=nested_body)], inits=loop_inits
        ),
        "function": model([helper.make_node("F", ["x"], ["y"], domain="local")], functions=[function]),
    }


# ------------------------------------------------------------------------------------------------
# Opening in a child process


@pytest.fixture
def folder(tmp_path: Path, canary: Path) -> Path:
    """The model's folder, next to the canary folder; it holds a small honest data file."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    return models


OPEN = """
import json
import onnxpipe as op
from onnxpipe.errors import OnnxPipeError
for name, path, how in json.loads(CASES):
    try:
        if how == "apply":
            op.MLContext().transforms.apply_onnx_model(path, verify_timeout=1)
        elif how == "bytes":
            op.MLContext().transforms.apply_onnx_model(model_bytes=open(path, "rb").read(), verify_timeout=1)
        else:
            op.inspect_model(path)
        print(json.dumps([name, "loaded", ""]))
    except OnnxPipeError as exc:
        print(json.dumps([name, type(exc).__name__, str(exc)]))
"""


def open_all(
    isolated: Callable[..., Outcome], canary: Path, cases: dict[str, Path], how: str = "apply"
) -> dict[str, tuple[str, str]]:
    """Open every model in one child process; {case: (error type or "loaded", message)}."""
    payload = json.dumps([[name, str(path), how] for name, path in cases.items()])
    code = f"CASES = {payload!r}\n" + OPEN
    outcome = isolated(code, canary=canary, timeout=120)
    assert not outcome.timed_out, outcome
    assert outcome.returncode == 0, outcome
    assert outcome.clean, outcome
    assert "onnxruntime" not in outcome.stderr, outcome  # ONNX Runtime's own logging stays quiet
    assert_untouched(canary)
    results = {}
    for line in outcome.stdout.splitlines():
        name, kind, message = json.loads(line)
        results[name] = (kind, message)
    assert set(results) == set(cases), outcome
    return results


def save(m: onnx.ModelProto, folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(m.SerializeToString())
    return path


# ------------------------------------------------------------------------------------------------
# Every place a tensor can live


@pytest.mark.parametrize("how", ["apply", "inspect"])
def test_every_tensor_kind_escaping_is_refused(
    isolated: Callable[..., Outcome], canary: Path, folder: Path, how: str
) -> None:
    cases = {kind: save(m, folder, f"m{i}.onnx") for i, (kind, m) in enumerate(kinds(ESCAPE).items())}
    results = open_all(isolated, canary, cases, how)
    for kind, (error, message) in results.items():
        assert error == "ModelLoadError", (kind, error, message)
        assert "refers to external data '../outside/secret.bin' outside its folder" in message, (kind, message)
        assert "tensor '" in message, (kind, message)


def test_every_tensor_kind_is_found_in_process(folder: Path) -> None:
    # The same models through the checker itself: each names the tensor and where it is.
    expected = {
        "initializer": "tensor 'W' (initializer)",
        "sparse values": "tensor 's' (values of sparse initializer)",
        "sparse indices": "tensor 's_idx' (indices of sparse initializer)",
        "Constant value": "tensor 'c_value' (attribute 'value' of an unnamed Constant node)",
        "Constant sparse_value": "tensor 'c_values' (values of attribute 'sparse_value' of an unnamed Constant node)",
        "tensor attribute of another op": "tensor 'h' (attribute 'hidden' of an unnamed Identity node)",
        "If subgraph": "tensor 'c_value' (attribute 'value' of an unnamed Constant node in attribute 'then_branch'",
        "Loop body": "tensor 'b' (initializer in attribute 'body' of an unnamed Loop node)",
        "If inside a Loop body": "'then_branch' of an unnamed If node in attribute 'body' of an unnamed Loop node",
        "function": "(attribute 'value' of an unnamed Constant node in function 'F' (domain 'local'))",
    }
    for kind, m in kinds(ESCAPE).items():
        with pytest.raises(ModelLoadError) as info:
            external_data(m, folder, "m.onnx")
        assert expected[kind] in str(info.value), (kind, str(info.value))
    for kind, m in kinds("w.bin").items():  # the same places inside the folder are allowed
        (_, ref), *_ = external_data(m, folder, "m.onnx")
        assert ref.path == (folder / "w.bin").resolve(), kind


# ------------------------------------------------------------------------------------------------
# Every way a location can escape


def test_locations_that_escape_are_refused(
    isolated: Callable[..., Outcome], canary: Path, folder: Path, tmp_path: Path
) -> None:
    (folder / "sub").mkdir()
    (folder / "link.bin").symlink_to(canary / "secret.bin")  # a symlink inside the folder, pointing out
    (folder / "dirlink").symlink_to(canary, target_is_directory=True)
    os.mkfifo(folder / "fifo")  # reading a FIFO would block forever
    locations = {
        "dotdot": (ESCAPE, "outside its folder"),
        "dotdot inside": ("sub/../../outside/secret.bin", "outside its folder"),
        "absolute": (str(canary / "secret.bin"), "outside its folder"),
        "symlink to a file outside": ("link.bin", "outside its folder"),
        "symlink to a folder outside": ("dirlink/secret.bin", "outside its folder"),
        "backslashes": ("..\\outside\\secret.bin", "containing a backslash"),
        "drive": ("C:/outside/secret.bin", "outside its folder (a drive or root)"),
        "drive relative": ("C:secret.bin", "outside its folder (a drive or root)"),
        "NUL": ("w.bin\x00../outside/secret.bin", "containing control characters"),
        "not normalized": ("./w.bin", "not a normalized path"),
        "double slash": ("sub//w.bin", "not a normalized path"),
        "empty": ("", "that is empty"),
        "directory": ("sub", "not a regular file"),
        "fifo": ("fifo", "not a regular file"),
        "missing": ("nope.bin", "does not exist"),
        "home": ("~/secret.bin", "does not exist"),
    }
    cases = {
        name: save(add_w(ext_tensor("W", loc)), folder, f"case{i}.onnx")
        for i, (name, (loc, _)) in enumerate(locations.items())
    }
    results = open_all(isolated, canary, cases)
    for name, (error, message) in results.items():
        assert error == "ModelLoadError", (name, error, message)
        assert locations[name][1] in message and "tensor 'W' (initializer)" in message, (name, message)
        assert "refers to external data" in message, (name, message)


def test_offsets_and_lengths_must_lie_inside_the_file(
    isolated: Callable[..., Outcome], canary: Path, folder: Path
) -> None:
    # w.bin holds 16 bytes.
    bad = {
        "offset beyond": ("100", None, "beyond the end of the file (16 bytes)"),
        "length beyond": ("8", "16", "beyond the end of the file (16 bytes)"),
        "huge length": (None, str(2**63), "beyond the end of the file"),
        "negative offset": ("-4", None, "which is not a non-negative integer"),
        "text offset": ("four", None, "which is not a non-negative integer"),
        "spaced length": (None, " 4", "which is not a non-negative integer"),
        "float length": (None, "4.0", "which is not a non-negative integer"),
        "hex offset": ("0x4", None, "which is not a non-negative integer"),
        "non-ASCII digits": ("\u0664", None, "which is not a non-negative integer"),
    }
    cases = {
        name: save(add_w(ext_tensor("W", "w.bin", offset=off, length=length)), folder, f"o{i}.onnx")
        for i, (name, (off, length, _)) in enumerate(bad.items())
    }
    cases["inside"] = save(add_w(ext_tensor("W", "w.bin", offset="12", length="4")), folder, "ok.onnx")
    results = open_all(isolated, canary, cases)
    assert results.pop("inside")[0] == "loaded"
    for name, (error, message) in results.items():
        assert error == "ModelLoadError" and bad[name][2] in message, (name, message)


def test_odd_external_data_entries_are_refused(isolated: Callable[..., Outcome], canary: Path, folder: Path) -> None:
    twice = ext_tensor("W", "w.bin", extra=(("location", ESCAPE),))  # checked first, read last?
    unflagged = ext_tensor("W", ESCAPE, flagged=False)
    unflagged.float_data.append(1.0)
    unknown_key = ext_tensor("W", "w.bin", extra=(("basepath", "/"),))
    # An unknown data_location enum (7) is kept as an unknown field: protobuf and ONNX Runtime both
    # read the tensor as not external, and its entries are checked all the same.
    odd_location = add_w(ext_tensor("W", ESCAPE)).SerializeToString()
    assert odd_location.count(b"\x70\x01") == 1  # field 14 (data_location), varint 1 (EXTERNAL)
    odd_location = odd_location.replace(b"\x70\x01", b"\x70\x07")
    (folder / "loc.onnx").write_bytes(odd_location)
    cases = {
        "location twice": save(add_w(twice), folder, "twice.onnx"),
        "entries without the EXTERNAL flag": save(add_w(unflagged), folder, "unflagged.onnx"),
        "unknown key": save(add_w(unknown_key), folder, "key.onnx"),
        "unknown data_location": folder / "loc.onnx",
    }
    expected = {
        "location twice": "with the key 'location' given twice",
        "entries without the EXTERNAL flag": "outside its folder",
        "unknown key": "with an unknown key 'basepath'",
        "unknown data_location": "outside its folder",
    }
    for name, (error, message) in open_all(isolated, canary, cases).items():
        assert error == "ModelLoadError" and expected[name] in message, (name, message)


def test_model_bytes_may_not_use_external_data(isolated: Callable[..., Outcome], canary: Path, folder: Path) -> None:
    cases = {kind: save(m, folder, f"b{i}.onnx") for i, (kind, m) in enumerate(kinds("w.bin").items())}
    for kind, (error, message) in open_all(isolated, canary, cases, how="bytes").items():
        assert error == "ModelLoadError", (kind, message)
        assert "keeps its weights in external data files, which cannot be found from bytes" in message, kind
        assert "location 'w.bin'" in message, kind


def test_honest_external_data_loads_and_is_read_only_after_a_new_check(
    isolated: Callable[..., Outcome], canary: Path, folder: Path
) -> None:
    # model_bytes (what a saved pipeline embeds) reads the data itself, checking each location
    # again: a data file swapped for a symlink to the canary after loading is refused.
    path = save(add_w(ext_tensor("W", "w.bin", dims=(4,), offset="0", length="16")), folder, "honest.onnx")
    code = f"""
    import os
    import numpy as np, onnx
    import onnxpipe as op
    from onnxpipe.errors import ModelLoadError
    t = op.MLContext().transforms.apply_onnx_model({str(path)!r})
    inlined = onnx.load_model_from_string(t.model_bytes)
    print("W", onnx.numpy_helper.to_array(inlined.graph.initializer[0]).tolist())
    os.remove({str(folder / "w.bin")!r})
    os.symlink({str(canary / "secret.bin")!r}, {str(folder / "w.bin")!r})
    try:
        t.model_bytes
    except ModelLoadError as exc:
        print("REFUSED", exc)
    """
    outcome = isolated(code, canary=canary)
    assert outcome.returncode == 0 and outcome.clean, outcome
    assert "W [0.0, 1.0, 2.0, 3.0]" in outcome.stdout, outcome
    assert "REFUSED model 'honest.onnx' refers to external data 'w.bin' outside its folder" in outcome.stdout, outcome


def test_inspect_command_refuses_escaping_data(isolated: Callable[..., Outcome], canary: Path, folder: Path) -> None:
    path = save(kinds(ESCAPE)["function"], folder, "f.onnx")
    outcome = isolated("", canary=canary, argv=["inspect", str(path)])
    assert outcome.returncode != 0 and not outcome.timed_out and outcome.clean, outcome
    assert_untouched(canary)
    assert "refers to external data '../outside/secret.bin' outside its folder" in outcome.stderr, outcome


# ------------------------------------------------------------------------------------------------
# Property: the checker only ever accepts a regular file inside the folder, or refuses


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"CANARY-" * 4)
    models = root / "models"
    (models / "sub").mkdir(parents=True)
    (models / "w.bin").write_bytes(bytes(16))
    (models / "sub" / "v.bin").write_bytes(bytes(64))
    (models / "link").symlink_to(outside / "secret.bin")
    (models / "dirlink").symlink_to(outside, target_is_directory=True)
    (models / "sub" / "up").symlink_to(models / "w.bin")  # inside, by a symlink: allowed
    return models


_PIECES = ["..", ".", "", "w.bin", "sub", "v.bin", "up", "link", "dirlink", "secret.bin", "outside", "models", "~"]
_PIECES += ["\\", "C:", "\x00", "%2e%2e", "..\\..", "\u202e", "\u2025", ".\u2024", "/", "//", " ", "..."]
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_GOOD = st.sampled_from(["w.bin", "sub/v.bin", "sub/up"])
locations = st.one_of(
    _GOOD,
    _GOOD,  # drawn more often, so that accepting is exercised too
    st.sampled_from(["link", "dirlink/secret.bin", "sub/../w.bin", "sub/up/", "./sub/up"]),
    st.lists(st.one_of(st.sampled_from(_PIECES), _TEXT), min_size=1, max_size=6).map("/".join),
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=4).map("".join),
    st.builds(lambda p: "/" + p, st.sampled_from(["tmp", "etc/passwd", "proc/self/environ", "dev/zero"])),
    _TEXT,
)
numbers = st.one_of(
    st.none(),
    st.none(),
    st.integers(0, 16).map(str),
    st.integers(0, 16).map(str),
    st.integers(-3, 80).map(str),
    st.integers(0, 2**70).map(str),
    st.sampled_from(["", "-0", "+1", "1e3", " 1", "0x10", "\u0664", "1_0", "00000000000000000000016", "9" * 40]),
    _TEXT,
)
places = st.sampled_from(["initializer", "sparse values", "Constant value", "Loop body", "function"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(location=locations, offset=numbers, length=numbers, flagged=st.booleans(), place=places)
def test_checker_accepts_only_regular_files_inside_the_folder(
    fuzz_folder: Path, location: str, offset: str | None, length: str | None, flagged: bool, place: str
) -> None:
    m = kinds("w.bin")[place]
    # Rewrite the one external tensor of the structure with the drawn fields.
    (tensor, _), *_ = external_data(m, fuzz_folder, "m.onnx")
    del tensor.external_data[:]
    crafted = ext_tensor("t", location, offset=offset, length=length, flagged=flagged)
    tensor.external_data.extend(crafted.external_data)
    tensor.data_location = crafted.data_location
    m = onnx.load_model_from_string(m.SerializeToString())  # what a file would hold
    try:
        found = external_data(m, fuzz_folder, "m.onnx")
    except ModelLoadError:
        event("refused")
        return
    event("accepted")
    root = os.path.realpath(fuzz_folder)
    assert len(found) == 1
    ref = found[0][1]
    real = os.path.realpath(os.path.join(root, location))
    assert real.startswith(root + os.sep) and ref.path == Path(real), (location, real)
    assert ".." not in location.split("/") and not location.startswith("/") and "\\" not in location
    assert os.path.isfile(real) and not os.path.islink(ref.path)
    size = os.path.getsize(real)
    assert ref.offset <= size and (ref.length is None or ref.offset + ref.length <= size)
    with pytest.raises(ModelLoadError, match="cannot be found from bytes"):
        external_data(m, None, "<bytes>")
