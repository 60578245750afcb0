"""Saved models whose component states are crafted: every component is rebuilt through its
constructor, so a state that no constructor would accept is refused at load, by name.

Attack classes: resource options from the file (threads, batch sizes, the loader's own limits),
unknown, missing or newer-versioned state fields, quadratic and oversized LightGBM text, and a
structure-aware fuzz of the manifest over a real saved model of every component type (the golden
files).
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxpipe.errors import ModelLoadError
from onnxpipe.persistence import model_from_bytes
from tests.security.conftest import Outcome, run_isolated

GOLDEN = Path(__file__).parent.parent / "golden"
SEEDS = sorted(GOLDEN.glob("v*/*.zip"))


def _entries(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zip(items: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in items.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _edited(seed: Path, edit: Callable[[dict[str, Any]], object]) -> bytes:
    items = _entries(seed.read_bytes())
    manifest = json.loads(items["manifest.json"])
    edit(manifest)
    items["manifest.json"] = json.dumps(manifest).encode()
    return _zip(items)


def _node(manifest: dict[str, Any], type_name: str) -> dict[str, Any]:
    stack: list[Any] = [manifest["model"]]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("$object") == type_name:
                return node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise LookupError(type_name)


def _state(manifest: dict[str, Any], type_name: str) -> dict[str, Any]:
    state: dict[str, Any] = _node(manifest, type_name)["state"]
    return state


def _load_in_child(tmp_path: Path, blob: bytes, extra: str = "", timeout: float = 60) -> Outcome:
    path = tmp_path / "model.zip"
    path.write_bytes(blob)
    code = f"""
        import onnxpipe as op
        from onnxpipe.errors import ModelLoadError
        try:
            model, schema = op.MLContext().model.load({str(path)!r}{extra})
        except ModelLoadError as exc:
            print("REFUSED", exc)
        else:
            print("LOADED", model)
    """
    return run_isolated(code, timeout=timeout)


def _refused(tmp_path: Path, blob: bytes, match: str) -> None:
    out = _load_in_child(tmp_path, blob)
    assert out.returncode == 0 and not out.timed_out and out.clean, out
    assert out.stdout.startswith("REFUSED"), out
    import re

    assert re.search(match, out.stdout), out.stdout


V2 = GOLDEN / "v2"


def _seed(name: str) -> Path:
    path = V2 / f"{name}.zip"
    if not path.exists():
        pytest.skip(f"no golden file {path}")
    return path


# --------------------------------------------------------------------------- resource options


def test_saved_lightgbm_model_asking_for_a_thousand_threads_is_refused(tmp_path: Path) -> None:
    blob = _edited(_seed("LightGbmModel"), lambda m: _state(m, "LightGbmModel").update(number_of_threads=1000))
    _refused(
        tmp_path,
        blob,
        r"LightGbmModel cannot be rebuilt .*number_of_threads must be a number of threads from 1 to 256 or None "
        r"\(the default\), got 1000",
    )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("intra_op_num_threads", 1000, r"intra_op_num_threads must be a number of threads from 1 to 256 or None"),
        ("inter_op_num_threads", -1, r"inter_op_num_threads must be a number of threads from 1 to 256 or None"),
        ("batch_size", 10**12, r"batch_size must be a number of rows from 1 to 1,048,576"),
    ],
)
def test_saved_onnx_step_resource_options_are_checked_like_arguments(
    tmp_path: Path, field: str, value: int, match: str
) -> None:
    blob = _edited(_seed("OnnxTransformer"), lambda m: _state(m, "OnnxTransformer").update({field: value}))
    _refused(tmp_path, blob, match)


def test_a_saved_model_cannot_raise_or_lift_the_loaders_limits(tmp_path: Path) -> None:
    def lift(m: dict[str, Any]) -> None:
        _state(m, "OnnxTransformer").update(max_bytes=1 << 62, verify_timeout=None)

    blob = _edited(_seed("OnnxTransformer"), lift)
    model, _ = model_from_bytes(blob, max_bytes=1 << 26, verify_timeout=3.0)
    (step,) = model.steps
    assert step.max_bytes == 1 << 26 and step.verify_timeout == 3.0  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- state layout


def test_unknown_state_field_is_refused(tmp_path: Path) -> None:
    blob = _edited(_seed("HashingTransformer"), lambda m: _state(m, "HashingTransformer").update(__class__="os"))
    _refused(tmp_path, blob, r"HashingTransformer: its state has unknown fields \['__class__'\]")


def test_missing_state_field_is_refused(tmp_path: Path) -> None:
    blob = _edited(_seed("HashingTransformer"), lambda m: _state(m, "HashingTransformer").pop("seed"))
    _refused(tmp_path, blob, r"HashingTransformer: its state has unknown fields \[\] and lacks fields \['seed'\]")


@pytest.mark.parametrize(
    ("version", "match"),
    [
        (2, r"its state has version 2, newer than the version 1 this onnxpipe reads; upgrade onnxpipe"),
        (0, r"invalid state version 0"),
        ("1", r"invalid state version '1'"),
        (None, r"the state of HashingTransformer has no version"),
    ],
)
def test_state_version_newer_or_invalid_is_refused_naming_it(tmp_path: Path, version: object, match: str) -> None:
    def edit(m: dict[str, Any]) -> None:
        _node(m, "HashingTransformer")["version"] = version

    _refused(tmp_path, _edited(_seed("HashingTransformer"), edit), match)
    if version is None:  # an absent version is as invalid as a null one
        absent = _edited(_seed("HashingTransformer"), lambda m: _node(m, "HashingTransformer").pop("version"))
        _refused(tmp_path, absent, match)


def test_constructor_checks_apply_to_loaded_values(tmp_path: Path) -> None:
    blob = _edited(_seed("HashingTransformer"), lambda m: _state(m, "HashingTransformer").update(number_of_bits=0))
    _refused(tmp_path, blob, r"HashingTransformer cannot be rebuilt .*number_of_bits")


# --------------------------------------------------------------------------- LightGBM text


def _lightgbm_text(items: dict[str, bytes]) -> str:
    (name,) = [n for n in items if n.endswith(".txt")]
    return name


def test_lightgbm_text_is_checked_in_linear_time(tmp_path: Path) -> None:
    """Two million short lines without a carriage return: the old check scanned to the end for
    one on every line (hours); a linear one refuses the text at once."""
    items = _entries(_seed("LightGbmModel").read_bytes())
    name = _lightgbm_text(items)
    items[name] = b"x=1\n" * 2_000_000 + items[name]
    blob = _zip(items)
    out = _load_in_child(tmp_path, blob, ", max_bytes=1 << 30", timeout=120)
    # LightGBM reads unknown header lines and ignores them: loading is fine, hanging is not.
    assert not out.timed_out and out.returncode == 0 and out.clean, out
    assert out.stdout.startswith(("REFUSED", "LOADED")), out


def test_lightgbm_trailer_that_its_python_package_parses_as_json_is_refused(tmp_path: Path) -> None:
    items = _entries(_seed("LightGbmModel").read_bytes())
    name = _lightgbm_text(items)
    text = items[name].decode()
    assert text.rstrip().endswith("pandas_categorical:null")
    items[name] = (text.rstrip()[: -len("null")] + "[" * 200_000 + "]" * 200_000 + "\n").encode()
    _refused(tmp_path, _zip(items), r"only 'pandas_categorical:null' may follow its parameters")


# --------------------------------------------------------------------------- fuzzing


_HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(["\x1b[2J", "\u202e", "../../etc/passwd", "os.system", "", "O", "<f8"]),
    st.lists(st.integers(-3, 3), max_size=4),
    st.sampled_from(
        [
            {"$float": "nan"},
            {"$float": "1e999"},
            {"$tuple": []},
            {"$dict": [[1, 2]]},
            {"$dtype": "O"},
            {"$dtype": "<f8"},
            {"$enum": "DType", "member": "STRING"},
            {"$enum": "DType", "member": "__class__"},
            {"$object": "TransformerChain", "version": 1, "state": {"steps": {"$tuple": []}}},
            {"$object": "HashingTransformer", "version": 1, "state": {}},
            {"$scalar": "<i8", "value": 2**63},
            {"$array": "data/0000-x.npy", "dtype": "<f8", "shape": [2**40], "readonly": True},
            {"$column_type": {"kind": "tensor", "dtype": "float32", "shape": [2**40]}},
        ]
    ),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.sampled_from(SEEDS), choice=st.integers(min_value=0), value=_HOSTILE)
def test_fuzzed_manifests_load_or_are_refused_with_the_library_error(seed: Path, choice: int, value: Any) -> None:
    items = _entries(seed.read_bytes())
    manifest = json.loads(items["manifest.json"])
    paths = _paths(manifest["model"], ("model",))
    manifest = _replace(manifest, paths[choice % len(paths)], value)
    items["manifest.json"] = json.dumps(manifest).encode()
    with contextlib.suppress(ModelLoadError):
        model_from_bytes(_zip(items), max_bytes=1 << 28)


@pytest.mark.parametrize(
    ("type_name", "field", "value", "match"),
    [
        (
            "HashingTransformer",
            "number_of_bits",
            "8",
            r"state field 'number_of_bits' must be int \(str is not an int\)",
        ),
        ("HashingTransformer", "use_ordered_hashing", 1, r"'use_ordered_hashing' must be bool \(int is not a bool\)"),
        ("HashingTransformer", "output_column_name", ["h"], r"'output_column_name' must be str"),
        ("ColumnConcatenatingTransformer", "input_column_names", [1, 2], r"an item: int is not a string"),
        ("ImageCroppingTransformer", "crop_anchor", "top; rm -rf /", r"'crop_anchor' must be .*is not one of"),
    ],
)
def test_state_fields_must_have_the_constructors_types(
    tmp_path: Path, type_name: str, field: str, value: object, match: str
) -> None:
    blob = _edited(_seed(type_name), lambda m: _state(m, type_name).update({field: value}))
    _refused(tmp_path, blob, rf"{type_name}: its {match}" if match.startswith("state") else match)


def test_error_messages_never_carry_terminal_controls() -> None:
    """Names from files end up in messages: every onnxpipe error and warning escapes controls,
    escape sequences and bidirectional overrides, and keeps line breaks."""
    from onnxpipe.errors import ColumnNotFoundError, OnnxPipeWarning, SchemaError

    name = "evil\x1b[2J\x1b]0;pwned\x07\u202eexe.txt\u2066"
    for exc in (
        SchemaError(f"column {name} is missing\nsecond line"),
        ColumnNotFoundError(name),
        OnnxPipeWarning(name),
    ):
        text = str(exc)
        assert not any(ch in text for ch in "\x1b\x07\u202e\u2066"), text
        assert "\\x1b[2J" in text and "\\u202e" in text
    assert "\nsecond line" in str(SchemaError("a\nsecond line"))


def test_zip_declaring_millions_of_entries_is_refused_before_zipfile_reads_them(tmp_path: Path) -> None:
    """zipfile builds an object per central-directory entry: the count is read from the end records first."""
    import struct

    blob = bytearray(_seed("HashingTransformer").read_bytes())
    at = blob.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", blob, at + 8, 0xFFFF, 0xFFFF)  # what a zip64 archive says here
    zip64 = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, 3_000_000, 3_000_000, 0, 0)
    # the zip64 record goes where the end record was; its locator points at it
    crafted = bytes(blob[:at]) + zip64 + b"PK\x06\x07" + struct.pack("<IQI", 0, at, 1) + bytes(blob[at:])
    with pytest.raises(ModelLoadError, match=r"declares 3,000,000 entries; a saved model has at most 100,000"):
        model_from_bytes(crafted)


def test_manifest_that_would_parse_into_more_than_max_bytes_is_refused() -> None:
    items = _entries(_seed("HashingTransformer").read_bytes())
    manifest = json.loads(items["manifest.json"])
    manifest["junk"] = [{}] * 200_000  # 600 KB of text, ~14 MB of Python objects
    items["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(ModelLoadError, match=r"would take about [\d,]+ bytes once parsed, more than max_bytes"):
        model_from_bytes(_zip(items), max_bytes=4_000_000)
    model_from_bytes(_zip(items))  # within the default budget it loads, the unknown key ignored
