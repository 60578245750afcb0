"""Saved models (onnxpipe.persistence): round trips, the format's contents, and hostile files.

A saved model may come from anyone: every truncated, corrupted or tampered file must fail with
the library's ModelLoadError (never a crash, a hang, a raw exception or executed code), and
pickling a fitted model goes through the same safe format.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import itertools
import json
import multiprocessing
import pickle
import random
import re
import struct
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import onnxpipe as op
from onnxpipe import core, persistence
from onnxpipe.core import Transformer
from onnxpipe.data._convert import ColumnValues
from onnxpipe.errors import DataFileNotFoundError, InvalidArgumentError, ModelLoadError, ModelSaveError, OnnxPipeError
from onnxpipe.persistence import FORMAT_VERSION, model_from_bytes, model_to_bytes, register_component
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.trainers._lightgbm_text import lightgbm_text_problem

ctx = op.MLContext(seed=0)

# --------------------------------------------------------------------------- data and models


@dataclass
class Person:
    Label: bool
    age: float
    hours: float
    work: str
    city: str


def people(n: int = 120, seed: int = 5) -> list[Person]:
    rng = np.random.default_rng(seed)
    kinds, cities = ["private", "state", "self", "federal"], ["Oslo", "Lima", "Pune"]
    rows = []
    for _ in range(n):
        work, city = kinds[int(rng.integers(4))], cities[int(rng.integers(3))]
        age, hours = float(rng.normal(40, 10)), float(rng.normal(40, 8))
        rows.append(Person(bool(age + 15 * (work == "self") + rng.normal(0, 5) > 45), age, hours, work, city))
    return rows


@functools.cache
def data() -> op.DataView:
    return ctx.data.load_from_enumerable(people(), Person)


def doubling_onnx() -> bytes:
    """``Features float[N,2] -> Doubled float[N,2] = 2 * Features``."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["Features", "two"], ["Doubled"])],
        "doubling",
        [helper.make_tensor_value_info("Features", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("Doubled", TensorProto.FLOAT, ["N", 2])],
        [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnxpipe-tests")
    model.ir_version = 8
    return model.SerializeToString()


@functools.cache
def pipeline() -> Transformer:
    """map_value_to_key -> one_hot_encoding -> concatenate -> normalize_min_max -> logistic regression."""
    est = (
        ctx.transforms.conversion.map_value_to_key("CityKey", "city")
        .append(ctx.transforms.categorical.one_hot_encoding("work"))
        .append(ctx.transforms.concatenate("Features", "age", "hours", "work"))
        .append(ctx.transforms.normalize_min_max("Features"))
        .append(ctx.binary_classification.trainers.lbfgs_logistic_regression())
    )
    return est.fit(data())


@functools.cache
def lightgbm_model() -> Transformer:
    pytest.importorskip("lightgbm")  # the optional extra onnxpipe[lightgbm]
    trainer = ctx.binary_classification.trainers.light_gbm(
        number_of_iterations=4, number_of_leaves=4, minimum_example_count_per_leaf=5, number_of_threads=1
    )
    return ctx.transforms.concatenate("Features", "age", "hours").append(trainer).fit(data())


@functools.cache
def kmeans_model() -> Transformer:
    est = (
        ctx.transforms.concatenate("Features", "age", "hours")
        .append(ctx.transforms.normalize_mean_variance("Features"))
        .append(ctx.clustering.trainers.kmeans(number_of_clusters=3))
    )
    return est.fit(data())


@functools.cache
def onnx_step_model() -> Transformer:
    est = ctx.transforms.concatenate("Features", "age", "hours").append(
        ctx.transforms.apply_onnx_model(model_bytes=doubling_onnx())
    )
    return est.fit(data())


MODELS: dict[str, Callable[[], Transformer]] = {
    "pipeline": pipeline,
    "lightgbm": lightgbm_model,
    "kmeans": kmeans_model,
    "onnx": onnx_step_model,
}


@functools.cache
def saved(name: str) -> bytes:
    return model_to_bytes(MODELS[name](), data().schema)


def same_predictions(model: Transformer, expected: Transformer) -> None:
    got, want = model.transform(data()).to_arrow(), expected.transform(data()).to_arrow()
    assert got.schema == want.schema
    assert got.equals(want), "predictions differ after the round trip"


# --------------------------------------------------------------------------- zip surgery


def entries(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def build_zip(items: Sequence[tuple[str, bytes]], compress_type: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of ``items`` in order (duplicate names allowed), with correct CRCs."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which some tests want
        with zipfile.ZipFile(buf, "w") as zf:
            for name, payload in items:
                info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
                info.compress_type = compress_type
                zf.writestr(info, payload)
    return buf.getvalue()


def manifest_of(blob: bytes) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(entries(blob)["manifest.json"])
    return manifest


def with_manifest(blob: bytes, edit: Callable[[dict[str, Any]], object]) -> bytes:
    """``blob`` with its manifest edited in place by ``edit`` (other entries unchanged)."""
    items = entries(blob)
    manifest = json.loads(items["manifest.json"])
    edit(manifest)
    items["manifest.json"] = json.dumps(manifest).encode()
    return build_zip(list(items.items()))


def with_entries(blob: bytes, **replace: bytes) -> bytes:
    """``blob`` with the named entries' bytes replaced (names contain "/": pass them as ``**{name: ...}``)."""
    items = entries(blob)
    items.update(replace)
    return build_zip(list(items.items()))


def nodes(value: Any) -> Iterator[Any]:
    """Every dict and list inside a JSON value, outermost first."""
    if isinstance(value, dict | list):
        yield value
        for child in value.values() if isinstance(value, dict) else value:
            yield from nodes(child)


def state_of(manifest: dict[str, Any], type_name: str) -> dict[str, Any]:
    """The saved state of the first component of type ``type_name``."""
    found = next(n for n in nodes(manifest["model"]) if isinstance(n, dict) and n.get("$object") == type_name)
    state: dict[str, Any] = found["state"]
    return state


def array_node(manifest: dict[str, Any], attribute: str) -> dict[str, Any]:
    """The ``$array`` node of the first array attribute named ``attribute``."""
    node = next(
        n
        for n in nodes(manifest["model"])
        if isinstance(n, dict) and "$array" in n and n["$array"].endswith(f"-{attribute}.npy")
    )
    return node


def weights_node(manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``$array`` node of the logistic regression's weights."""
    return array_node(manifest, "weights")


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header (magic included) declaring ``dtype`` and ``shape``, without data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def load_fails(blob: bytes, match: str, **options: Any) -> ModelLoadError:
    with pytest.raises(ModelLoadError, match=match) as info:
        model_from_bytes(blob, **options)
    return info.value


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_through_a_path_and_a_stream(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    path = tmp_path / "model.zip"
    ctx.model.save(model, data().schema, path)
    loaded, schema = ctx.model.load(path)
    assert schema == data().schema
    same_predictions(loaded, model)

    stream = io.BytesIO()
    ctx.model.save(model, data(), stream)  # a DataView is accepted for its schema
    assert stream.getvalue() == path.read_bytes()
    stream.seek(0)
    from_stream, _ = ctx.model.load(stream)
    same_predictions(from_stream, model)
    # Deterministic: the same model gives the same bytes, and so does the loaded copy.
    assert model_to_bytes(loaded, schema) == path.read_bytes() == saved(name)


def test_saved_file_holds_readable_standard_entries() -> None:
    with zipfile.ZipFile(io.BytesIO(saved("pipeline"))) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        assert names[0] == "manifest.json"
        assert all(re.fullmatch(r"data/\d{4}-\w+\.(npy|arrow)", n) for n in names[1:]), names
        assert any(n.endswith("-weights.npy") for n in names)  # entry names say what they hold
        for name in (n for n in names if n.endswith(".npy")):
            arr = np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
            assert arr.dtype != object
    assert manifest["format"] == "onnxpipe.model" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["steps"] == [s.step_name for s in pipeline().steps]
    assert Schema.from_json(manifest["input_schema"]) == data().schema
    assert Schema.from_json(manifest["output_schema"]) == pipeline().output_schema(data().schema)


def test_lightgbm_model_is_stored_as_lightgbm_text() -> None:
    items = entries(saved("lightgbm"))
    texts = [name for name in items if name.endswith(".txt")]
    assert len(texts) == 1
    text = items[texts[0]].decode()
    assert text.startswith("tree\n") and "\nTree=0\n" in text
    lgb = pytest.importorskip("lightgbm")
    assert lgb.Booster(model_str=text).num_trees() == 4


def test_onnx_step_is_stored_as_an_onnx_model() -> None:
    items = entries(saved("onnx"))
    (name,) = [n for n in items if n.endswith(".onnx")]
    model = onnx.load_from_string(items[name])
    assert [o.name for o in model.graph.output] == ["Doubled"]


def test_key_values_are_stored_as_arrow() -> None:
    items = entries(saved("pipeline"))
    manifest = manifest_of(saved("pipeline"))
    keys = state_of(manifest, "ValueToKeyMappingTransformer")["keys"]
    assert set(keys) == {"$object_array", "shape", "readonly"}
    import pyarrow as pa

    table = pa.ipc.open_stream(items[keys["$object_array"]]).read_all()
    assert sorted(table.column("values").to_pylist()) == ["Lima", "Oslo", "Pune"]


def test_load_model_returns_library_errors_for_missing_files_and_wrong_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        ctx.model.load(tmp_path / "nope.zip")
    with pytest.raises(InvalidArgumentError, match="binary stream"):
        ctx.model.load(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="more than max_bytes"):
        ctx.model.load(io.BytesIO(saved("pipeline")), max_bytes=100)
    big = tmp_path / "big.zip"
    big.write_bytes(saved("pipeline"))
    with pytest.raises(ModelLoadError, match="more than max_bytes"):
        ctx.model.load(big, max_bytes=100)
    with pytest.raises(InvalidArgumentError, match="only fitted models"):
        ctx.model.save(ctx.binary_classification.trainers.lbfgs_logistic_regression(), data(), tmp_path / "x")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- format version and manifest


def test_newer_format_version_names_the_versions() -> None:
    def newer(m: dict[str, Any]) -> None:
        m["format_version"] = FORMAT_VERSION + 1

    load_fails(
        with_manifest(saved("pipeline"), newer),
        rf"saved in format version {FORMAT_VERSION + 1} by onnxpipe .*reads format versions 1 to {FORMAT_VERSION}: "
        "upgrade onnxpipe",
    )


@pytest.mark.parametrize("version", [0, -1, "1", True, None, 1.5])
def test_invalid_format_version(version: object) -> None:
    def edit(m: dict[str, Any]) -> None:
        m["format_version"] = version

    load_fails(with_manifest(saved("pipeline"), edit), r"its format version .* is invalid")


def test_other_format_name_missing_or_broken_manifest() -> None:
    def other(m: dict[str, Any]) -> None:
        m["format"] = "sklearn.pickle"

    load_fails(
        with_manifest(saved("pipeline"), other), r"does not describe an onnxpipe model \(format 'onnxpipe.model'"
    )
    items = entries(saved("pipeline"))
    without = [(n, d) for n, d in items.items() if n != "manifest.json"]
    load_fails(build_zip(without), "it has no manifest.json; is it a model saved by onnxpipe")
    load_fails(build_zip([("manifest.json", b"{not json"), *without]), r"manifest.json is not valid JSON")
    load_fails(build_zip([("manifest.json", b"\xff\xfe\x00"), *without]), r"manifest.json is not valid JSON")
    load_fails(build_zip([("manifest.json", b"[1, 2]"), *without]), "does not describe an onnxpipe model")
    huge_int = b'{"format": "onnxpipe.model", "format_version": ' + b"9" * 5000 + b"}"
    load_fails(build_zip([("manifest.json", huge_int), *without]), r"not valid JSON \(ValueError")
    load_fails(b"", "not a valid zip file")
    load_fails(b"PK\x03\x04 not really a zip", "not a valid zip file")


def test_deeply_nested_manifest_is_a_load_error() -> None:
    without = [(n, d) for n, d in entries(saved("pipeline")).items() if n != "manifest.json"]
    deep = b"[" * 100_000 + b"]" * 100_000
    load_fails(build_zip([("manifest.json", deep), *without]), r"not valid JSON \(RecursionError")
    wrapped = b'{"format": "onnxpipe.model", "format_version": 1, "model": ' + deep + b"}"
    load_fails(build_zip([("manifest.json", wrapped), *without]), r"not valid JSON \(RecursionError")

    def nest(m: dict[str, Any]) -> None:  # deep enough for the decoder, not for json
        value: Any = m["model"]
        for _ in range(200):
            value = {"$tuple": [value]}
        m["model"] = value

    load_fails(with_manifest(saved("pipeline"), nest), "nests values more than 64 levels deep")


# --------------------------------------------------------------------------- corrupted archives


def assert_loads_or_library_error(blob: bytes) -> None:
    """The rule for any input: a model that scores like one, or OnnxPipeError; nothing else."""
    try:
        model, _ = model_from_bytes(blob)
    except OnnxPipeError:
        return
    with contextlib.suppress(OnnxPipeError):
        model.transform(data()).to_arrow()


def test_truncated_files_fail_at_every_cut() -> None:
    for name in ("pipeline", "onnx"):
        blob = saved(name)
        for cut in [len(blob) * i // 20 for i in range(20)] + [len(blob) - 1, 22, 1]:
            load_fails(blob[:cut], r"cannot load saved model <bytes>: (it is not a valid zip file|.*corrupted)")


def central_directory(blob: bytes) -> tuple[int, int]:
    """Offset and size of the zip's central directory (from the end record)."""
    end = blob.rindex(b"PK\x05\x06")
    size, offset = struct.unpack_from("<II", blob, end + 12)
    return offset, size


def test_byte_flips_in_the_central_directory() -> None:
    blob = saved("pipeline")
    start, size = central_directory(blob)
    rng = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(150):
        flipped = bytearray(blob)
        pos = rng.randrange(start, start + size)
        flipped[pos] ^= rng.randrange(1, 256)
        try:
            model, _ = model_from_bytes(bytes(flipped))
        except ModelLoadError:
            outcomes["refused"] += 1
        else:  # e.g. a flipped timestamp or attribute byte: the model is intact
            same_predictions(model, pipeline())
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 50


def test_byte_flips_in_entries_fail_their_crc() -> None:
    blob = saved("pipeline")
    rng = random.Random(1)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        infos = zf.infolist()
    for info in infos:
        local = info.header_offset
        name_len, extra_len = struct.unpack_from("<HH", blob, local + 26)
        data_at = local + 30 + name_len + extra_len
        for _ in range(5):
            flipped = bytearray(blob)
            flipped[rng.randrange(data_at, data_at + info.compress_size)] ^= rng.randrange(1, 256)
            if info.compress_type == zipfile.ZIP_STORED:
                load_fails(bytes(flipped), rf"entry '{info.filename}' is corrupted \(Bad CRC-32")
            else:  # a flip in a deflate stream's padding bits changes nothing
                assert_loads_or_library_error(bytes(flipped))


def deflate_bomb(size: int) -> bytes:
    """A saved model whose weights entry inflates to ``size`` zero bytes (about 1 KB per MB)."""
    items = entries(saved("pipeline"))
    name = weights_node(manifest_of(saved("pipeline")))["$array"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for item, payload in items.items():
            if item != name:
                zf.writestr(zipfile.ZipInfo(item, (2020, 1, 1, 0, 0, 0)), payload)
        with zf.open(name, "w") as out:  # the archive's deflate level 9
            zeros = bytes(1 << 20)
            for _ in range(size >> 20):
                out.write(zeros)
    return buf.getvalue()


def forge_size(blob: bytes, name: str, file_size: int) -> bytes:
    """``blob`` with the uncompressed size of entry ``name`` set to ``file_size`` in both headers."""
    out = bytearray(blob)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        info = zf.getinfo(name)
    struct.pack_into("<I", out, info.header_offset + 22, file_size)
    start, size = central_directory(blob)
    pos = start
    while pos < start + size:
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", blob, pos + 28)
        if blob[pos + 46 : pos + 46 + name_len].decode() == name:
            struct.pack_into("<I", out, pos + 24, file_size)
        pos += 46 + name_len + extra_len + comment_len
    return bytes(out)


@functools.cache
def bomb() -> bytes:
    return deflate_bomb(128 << 20)


def peak_memory(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    except ModelLoadError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_zip_bomb_is_refused_before_inflating() -> None:
    blob = bomb()
    assert len(blob) < 1 << 20  # 128 MiB of zeros in well under 1 MiB
    load_fails(blob, r"its entries would take more than 16,777,216 bytes once uncompressed", max_bytes=16 << 20)
    assert peak_memory(lambda: model_from_bytes(blob, max_bytes=16 << 20)) < 8 << 20


def test_zip_bomb_with_a_forged_small_size_fails_its_crc_without_inflating() -> None:
    name = weights_node(manifest_of(saved("pipeline")))["$array"]
    forged = forge_size(bomb(), name, 24)
    load_fails(forged, rf"entry '{name}' is corrupted \(Bad CRC-32")
    # zipfile alone would inflate up to 2 GiB before cutting to the declared 24 bytes.
    assert peak_memory(lambda: model_from_bytes(forged)) < 8 << 20


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compression_methods_without_a_bound_are_refused(method: int) -> None:
    blob = build_zip(list(entries(saved("pipeline")).items()), compress_type=method)
    load_fails(blob, rf"uses zip compression method {method}; a saved model uses only stored \(0\) and deflated")


@pytest.mark.parametrize(
    "name",
    ["../escape.npy", "/etc/passwd", "data\\0000-x.npy", "data/../../x.npy", "C:/x.npy", "data/0001-x.exe"],
)
def test_entries_that_escape_or_are_unexpected_are_refused(name: str) -> None:
    blob = build_zip([*entries(saved("pipeline")).items(), (name, b"x")])
    load_fails(blob, f"unexpected entry {re.escape(repr(name))}")


def test_duplicate_entry_names_are_refused() -> None:
    items = list(entries(saved("pipeline")).items())
    load_fails(build_zip([*items, items[0]]), "it holds the same entry name twice")
    load_fails(build_zip([*items, items[-1]]), "it holds the same entry name twice")


@dataclass(frozen=True)
class Planted:
    """Unpickling this creates the file at ``path``: proof that something ran."""

    path: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def test_planted_pickle_is_never_unpickled(tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Planted(str(proof))))  # the payload is live
    assert proof.exists()

    marker = tmp_path / "marker"
    payload = pickle.dumps(Planted(str(marker)))
    items = list(entries(saved("pipeline")).items())
    load_fails(build_zip([*items, ("payload.pkl", payload)]), r"unexpected entry 'payload.pkl'")
    # Under a valid entry name it is data the manifest does not use.
    load_fails(build_zip([*items, ("data/0099-payload.bin", payload)]), r"does not use: \['data/0099-payload.bin'\]")

    # As the weights entry: the .npy header check refuses it, nothing is unpickled.
    name = weights_node(manifest_of(saved("pipeline")))["$array"]
    load_fails(with_entries(saved("pipeline"), **{name: payload}), f"array entry '{name}' is not a valid .npy file")
    pickled_npy = io.BytesIO()
    np.save(pickled_npy, np.array([Planted(str(marker))], dtype=object), allow_pickle=True)
    load_fails(with_entries(saved("pipeline"), **{name: pickled_npy.getvalue()}), r"holds object\[1\]")
    assert not marker.exists()


@pytest.mark.parametrize("type_name", ["os.system", "builtins.eval", "subprocess.Popen", "NotRegistered", "Path"])
def test_unknown_object_types_are_refused_by_name(type_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess

    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))

    def plant(m: dict[str, Any]) -> None:
        state_of(m, "ColumnConcatenatingTransformer")["output_column_name"] = {
            "$object": type_name,
            "state": {"args": ["touch /tmp/onnxpipe-owned"], "command": "echo owned"},
        }

    load_fails(with_manifest(saved("pipeline"), plant), f"a component of unknown type {type_name!r}")
    assert calls == []


def edit_state(type_name: str, key: str, value: object, name: str = "pipeline") -> bytes:
    def edit(m: dict[str, Any]) -> None:
        state_of(m, type_name)[key] = value

    return with_manifest(saved(name), edit)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"$scalar": "O", "value": 1}, r"numpy scalars of dtype object cannot be loaded"),
        ({"$scalar": "|O", "value": 1}, r"numpy scalars of dtype object cannot be loaded"),
        ({"$scalar": "|V1000", "value": 1}, r"numpy scalars of dtype \|V1000 cannot be loaded"),
        ({"$scalar": "<M8[s]", "value": 1}, r"numpy scalars of dtype datetime64\[s\] cannot be loaded"),
        ({"$scalar": "<i8", "value": [1, 2]}, r"invalid value \[1, 2\] for a numpy int64 scalar"),
        ({"$scalar": "<i1", "value": 1000}, r"invalid numpy int8 scalar 1000"),
        ({"$scalar": "nonsense", "value": 1}, r"invalid numpy scalar type 'nonsense'"),
        ({"$float": "1e999"}, r"invalid float '1e999'"),
        ({"$enum": "os.environ", "member": "HOME"}, r"unknown enum type 'os.environ'"),
        ({"$enum": "DType", "member": "__class__"}, r"DType has no member '__class__'"),
        ({"$dict": [[[1], 2]]}, r"unhashable dict key \[1\]"),
        ({"$dict": {"a": 1}}, r"a \$dict holds a list of \[key, value\] pairs"),
        ({"$pickle": "gASV"}, r"unknown value kind '\$pickle'"),
        ({"$object": "KMeansModel", "state": [1]}, r"the state of KMeansModel is not an object"),
        ({"$text": "data/9999-missing.txt"}, r"refers to a missing entry 'data/9999-missing.txt'"),
        ({"$bytes": "manifest.json"}, r"refers to a missing entry 'manifest.json'"),
        ({"$dtype": [["a", "O"]]}, r"invalid dtype"),
        ({"$column_type": {"kind": "tensor", "dtype": "float32", "shape": [-1]}}, r"SchemaError"),
        ({"a": 1}, r"must have exactly one \$kind key"),
        ({"$tuple": [], "$dict": []}, r"must have exactly one \$kind key"),
    ],
)
def test_hostile_values_are_refused(value: object, match: str) -> None:
    load_fails(edit_state("ColumnConcatenatingTransformer", "output_column_name", value), match)


def test_an_entry_is_read_at_most_once() -> None:
    """A manifest that names one large entry many times would multiply it in memory."""

    def twice(m: dict[str, Any]) -> None:  # the same entry for two arguments of one component
        state_of(m, "LinearBinaryModel")["bias"] = dict(weights_node(m))

    load_fails(with_manifest(saved("pipeline"), twice), r"refers to entry 'data/\d+-weights.npy' more than once")


@pytest.mark.parametrize("dtype", ["O", "|O", "object", {"names": ["a"], "formats": ["O"]}])
def test_object_arrays_that_would_need_pickle_are_refused(dtype: object) -> None:
    def edit(m: dict[str, Any]) -> None:
        weights_node(m)["dtype"] = dtype

    load_fails(with_manifest(saved("pipeline"), edit), r"declares dtype .*, which would need pickle")


def tampered_weights(manifest_shape: list[int], payload: bytes, attribute: str = "weights") -> bytes:
    blob = saved("pipeline")
    name = array_node(manifest_of(blob), attribute)["$array"]

    def edit(m: dict[str, Any]) -> None:
        array_node(m, attribute)["shape"] = manifest_shape

    return with_entries(with_manifest(blob, edit), **{name: payload})


def test_array_shapes_and_sizes_must_match_their_entry() -> None:
    assert weights_node(manifest_of(saved("pipeline")))["dtype"] == "<f8"
    good = np.zeros(6, np.float64)
    load_fails(tampered_weights([7], npy(good)), r"holds float64\[6\], but the manifest says float64\[7\]")
    load_fails(tampered_weights([6], npy(good)[:-4]), r"has 44 bytes of data; float64\[6\] needs 48")
    load_fails(tampered_weights([6], npy(good) + b"\0" * 4), r"has 52 bytes of data; float64\[6\] needs 48")
    load_fails(tampered_weights([6], npy(good.astype(np.float32))), r"holds float32\[6\], but the manifest says")
    load_fails(tampered_weights([6], npy(np.asfortranarray(np.zeros((6, 1))).T)), "manifest says")
    load_fails(tampered_weights([-6], npy(good)), r"invalid array shape \[-6\]")
    load_fails(tampered_weights([6], b"\x93NUMPY\x01\x00\xff\xff{'descr'"), "is not a valid .npy file")


def test_absurd_shapes_fail_fast_without_allocating() -> None:
    huge = (10**12,)
    header = npy_header("<f8", huge)
    blob = tampered_weights(list(huge), header + bytes(48))
    load_fails(blob, r"has 48 bytes of data; float64\[1000000000000\] needs 8000000000000")
    assert peak_memory(lambda: model_from_bytes(blob)) < 8 << 20  # nothing of the 8 TB is allocated

    def object_shape(m: dict[str, Any]) -> None:
        state_of(m, "ValueToKeyMappingTransformer")["keys"]["shape"] = [10**12]

    load_fails(with_manifest(saved("pipeline"), object_shape), r"has 3 values; shape \[1000000000000\] needs")

    def schema_shape(m: dict[str, Any]) -> None:
        for column in m["input_schema"] + m["output_schema"]:
            if column["name"] == "age":
                column["type"]["shape"] = [10**6, 10**6]

    load_fails(with_manifest(saved("pipeline"), schema_shape), r"holds 1,000,000,000,000 values per row")


def test_consistently_tampered_states_fail_the_verification() -> None:
    """Arrays replaced by valid ones of the wrong length, in the manifest and in the entry alike."""
    five = np.ones(5, np.float64)
    load_fails(
        tampered_weights([5], npy(five)),
        r"its state is inconsistent with its input schema \(ShapeError: .*has 6 values per row, but the model was "
        "trained on 5",
    )
    assert array_node(manifest_of(saved("pipeline")), "scale")["dtype"] == "<f8"
    scale = tampered_weights([5], npy(five), "scale")
    # The constructor refuses it, with or without the probe: a loaded component is checked as a new one.
    message = r"its AffineNormalizingTransformer cannot be rebuilt .*scale needs 6 values \(one per slot\), got 5"
    load_fails(scale, message)
    with pytest.raises(ModelLoadError, match=message):
        model_from_bytes(scale, verify=False)


def test_state_that_breaks_the_output_schema_fails_at_load() -> None:
    load_fails(edit_state("ColumnConcatenatingTransformer", "input_column_names", {"$tuple": ["nope"]}), "inconsistent")

    def renamed(m: dict[str, Any]) -> None:
        m["output_schema"][-1]["name"] = "Renamed"

    load_fails(with_manifest(saved("pipeline"), renamed), "the rebuilt model produces .* but the file says")


def test_tampered_arrow_entries_are_refused() -> None:
    import pyarrow as pa

    blob = saved("pipeline")
    name = state_of(manifest_of(blob), "ValueToKeyMappingTransformer")["keys"]["$object_array"]

    def stream(table: pa.Table, compression: str | None = None) -> bytes:
        sink = io.BytesIO()
        options = pa.ipc.IpcWriteOptions(compression=compression)
        with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        return sink.getvalue()

    zeros = pa.table({"values": pa.array(np.zeros(1 << 20, np.int64))})
    load_fails(with_entries(blob, **{name: stream(zeros, "zstd")}), "holds a compressed Arrow batch")
    load_fails(with_entries(blob, **{name: stream(zeros, "lz4")}), "holds a compressed Arrow batch")
    load_fails(with_entries(blob, **{name: b"not arrow"}), "is not a valid Arrow stream")
    wrong = pa.table({"other": pa.array(["a", "b", "c"])})
    load_fails(with_entries(blob, **{name: stream(wrong)}), r"holds columns \['other'\], expected \['values'\]")
    nulls = pa.table({"values": pa.nulls(10**9)})  # a billion values in a few hundred bytes
    load_fails(with_entries(blob, **{name: stream(nulls)}), r"declares 1,000,000,000 values in")
    # Offsets pointing past the data: a crash if read without full validation.
    good = stream(pa.table({"values": pa.array(["Lima", "Oslo", "Pune"])}))
    bad = good.replace(struct.pack("<iiii", 0, 4, 8, 12), struct.pack("<iiii", 0, 4, 8, 10**6))
    assert bad != good
    load_fails(with_entries(blob, **{name: bad}), "is not a valid Arrow stream")


def test_embedded_onnx_replaced_by_garbage_is_refused() -> None:
    blob = saved("onnx")
    (name,) = [n for n in entries(blob) if n.endswith(".onnx")]
    load_fails(
        with_entries(blob, **{name: b"\x08\x07garbage"}), r"its OnnxTransformer cannot be rebuilt .*not a valid ONNX"
    )
    load_fails(with_entries(blob, **{name: b""}), r"its OnnxTransformer cannot be rebuilt")


def test_embedded_onnx_with_external_data_paths_is_refused(tmp_path: Path) -> None:
    model = onnx.load_from_string(doubling_onnx())
    for init in model.graph.initializer:
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "4")):
            entry = init.external_data.add()
            entry.key, entry.value = key, value
        init.ClearField("raw_data")
    blob = saved("onnx")
    (name,) = [n for n in entries(blob) if n.endswith(".onnx")]
    load_fails(with_entries(blob, **{name: model.SerializeToString()}), "external data files")


def test_a_state_that_names_a_model_file_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.onnx"
    elsewhere.write_bytes(doubling_onnx())

    def point_to_file(m: dict[str, Any]) -> None:
        state = state_of(m, "OnnxTransformer")
        del state["model_bytes"]
        state["model_file"] = str(elsewhere)

    blob = with_manifest(saved("onnx"), point_to_file)
    load_fails(blob, r"its OnnxTransformer cannot be rebuilt .*refers to a model file instead of", verify=False)


def lightgbm_text(blob: bytes) -> tuple[str, str]:
    name = state_of(manifest_of(blob), "LightGbmModel")["model_text"]["$text"]
    return name, entries(blob)[name].decode()


def tree_line(text: str, key: str, value: str, tree: int = 0) -> str:
    """``text`` with line ``key=...`` of tree ``tree`` set to ``value`` (tree_sizes fixed up)."""
    start = text.index(f"\nTree={tree}\n")
    at = text.index(f"\n{key}=", start) + 1
    end = text.index("\n", at)
    changed = text[:at] + f"{key}={value}" + text[end:]
    return fix_tree_sizes(changed)


def only_tree_0_without_its_empty_line(text: str) -> str:
    """The header and tree 0, with the text ending right after its last line (LightGBM would read on)."""
    start, end = text.index("Tree=0\n"), text.index("\n\n\nTree=1") + 1
    return re.sub(r"^tree_sizes=.*$", f"tree_sizes={end - start}", text[:end], count=1, flags=re.M)


def fix_tree_sizes(text: str) -> str:
    starts = [m.start() for m in re.finditer(r"^Tree=", text, re.M)] + [text.index("end of trees")]
    sizes = " ".join(str(b - a) for a, b in itertools.pairwise(starts))
    return re.sub(r"^tree_sizes=.*$", f"tree_sizes={sizes}", text, count=1, flags=re.M)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: tree_line(t, "left_child", "1000000 -2 -3"), "does not link its nodes and leaves as a tree"),
        (lambda t: tree_line(t, "right_child", "0 2 -4"), "does not link its nodes and leaves as a tree"),
        (lambda t: tree_line(t, "left_child", "-1 -1 -3"), "does not link its nodes and leaves as a tree"),
        (lambda t: tree_line(t, "split_feature", "100000000 0 1"), r"splits on a feature outside 0..1"),
        (lambda t: tree_line(t, "split_feature", "-1 0 1"), r"splits on a feature outside 0..1"),
        (lambda t: tree_line(t, "num_leaves", "2000000000"), "has 2000000000 leaves"),
        (lambda t: tree_line(t, "num_leaves", "-3"), "has -3 leaves"),
        (lambda t: tree_line(t, "num_leaves", "5"), r"leaf_value must be 5 numbers"),
        (lambda t: tree_line(t, "leaf_value", "1 2 x 4"), r"leaf_value must be 4 numbers"),
        (lambda t: tree_line(t, "num_cat", "1"), "categorical splits"),
        (lambda t: tree_line(t, "decision_type", "3 2 2"), "categorical or invalid decision types"),
        (lambda t: tree_line(t, "is_linear", "1"), "is a linear tree"),
        (lambda t: t.replace("tree_sizes=", "tree_sizes=1 ", 1), "tree 1 does not start where tree_sizes says"),
        (lambda t: re.sub(r"tree_sizes=(\d+)", lambda m: f"tree_sizes={int(m[1]) + 1}", t), "does not start where"),
        (lambda t: re.sub(r"tree_sizes=.*", "tree_sizes=999999999", t), "its tree_sizes do not fit the text"),
        (lambda t: re.sub(r"tree_sizes=.*\n", "", t), "it has no tree_sizes line"),
        (lambda t: t.replace("num_tree_per_iteration=1", "num_tree_per_iteration=3"), "num_tree_per_iteration"),
        (lambda t: t.replace("objective=binary", "objective=multiclass num_class:9"), "num_class:9 is not"),
        (lambda t: t.replace("max_feature_idx=1", "max_feature_idx=5"), r"max_feature_idx=5 does not fit 2"),
        (lambda t: t.replace("num_class=1", "num_class=0"), "must be the same positive number"),
        (lambda t: t.replace("\nTree=0", "\0\nTree=0"), "NUL character"),
        (only_tree_0_without_its_empty_line, "tree 0 does not end with an empty line"),
        (lambda t: t.replace("num_class=1", "num_class=1=2"), "malformed line"),
    ],
)
def test_tampered_lightgbm_text_is_refused_before_lightgbm_parses_it(edit: Callable[[str], str], match: str) -> None:
    """LightGBM trusts its model text: these would crash (out-of-range indexes), abort the process
    (a parse error in its OpenMP loop) or hang (a child pointing back at the root)."""
    blob = saved("lightgbm")
    name, text = lightgbm_text(blob)
    changed = edit(text)
    assert changed != text
    tampered = with_entries(blob, **{name: changed.encode()})
    load_fails(tampered, f"its LightGbmModel cannot be rebuilt .*{match}", verify=False)


def test_trained_lightgbm_texts_pass_the_check() -> None:
    """The check accepts what LightGBM writes: trees of one leaf, NaN handling, several classes."""
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    x[rng.random(x.shape) < 0.1] = np.nan
    cases: list[tuple[dict[str, Any], np.ndarray]] = [
        ({"objective": "binary"}, (np.nan_to_num(x[:, 0]) > 0).astype(int)),
        ({"objective": "multiclass", "num_class": 3}, rng.integers(0, 3, 300)),
        ({"objective": "multiclassova", "num_class": 3}, rng.integers(0, 3, 300)),
        ({"objective": "regression", "min_data_in_leaf": 1000}, rng.normal(size=300)),  # one-leaf trees
        ({"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5}, x[:, 1] > 0),
    ]
    for params, y in cases:
        params = {"verbose": -1, "num_leaves": 8, "min_data_in_leaf": 5, "num_threads": 1, **params}
        text = lgb.train(params, lgb.Dataset(x, y), 3).model_to_string()
        assert lightgbm_text_problem(text, 5) is None, params


# --------------------------------------------------------------------------- fuzzing


FUZZ_BASES = ["pipeline", "kmeans", "onnx"]


def fuzz_check(blob: bytes) -> None:
    """As assert_loads_or_library_error, reporting outcomes (pytest --hypothesis-show-statistics)."""
    try:
        model, _ = model_from_bytes(blob)
    except OnnxPipeError as exc:
        event(f"refused: {re.sub(r'[0-9]+', 'N', str(exc).split(': ', 1)[-1])[:40]}")
        return
    try:
        model.transform(data()).to_arrow()
    except OnnxPipeError:
        event("loaded; scoring raised the library's error")
    else:
        event("loaded and scored")


BYTE_EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.integers(0, 1 << 20), st.integers(1, 255)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(base=st.sampled_from(FUZZ_BASES), edits=BYTE_EDITS)
def test_fuzz_byte_mutations(base: str, edits: list[tuple[str, int, int]]) -> None:
    fuzz_check(mutate(bytearray(saved(base)), edits))


def mutate(blob: bytearray, edits: list[tuple[str, int, int]]) -> bytes:
    for kind, position, byte in edits:
        if not blob:
            break
        at = position % len(blob)
        if kind == "flip":
            blob[at] ^= byte
        elif kind == "insert":
            blob[at:at] = bytes([byte])
        elif kind == "delete":
            del blob[at]
        else:
            del blob[at:]
    return bytes(blob)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(base=st.sampled_from(FUZZ_BASES), entry=st.integers(0, 100), edits=BYTE_EDITS)
def test_fuzz_entry_mutations_with_valid_crcs(base: str, entry: int, edits: list[tuple[str, int, int]]) -> None:
    """Mutated .npy, .arrow, .onnx and manifest bytes in an otherwise valid zip: the parsers' turn."""
    items = entries(saved(base))
    name = sorted(items)[entry % len(items)]
    event(f"entry kind {name.rsplit('.', 1)[-1]}")
    fuzz_check(with_entries(saved(base), **{name: mutate(bytearray(items[name]), edits)}))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["set", "insert", "delete"]), st.integers(0, 2600), st.sampled_from("=\r\n -019.e:[]x")
        ),
        min_size=1,
        max_size=4,
    ),
    fix_sizes=st.booleans(),
)
def test_fuzz_lightgbm_text(edits: list[tuple[str, int, str]], fix_sizes: bool) -> None:
    """Mutated LightGBM text (header and first trees) in a valid zip: LightGBM never sees a text that
    would crash, abort or hang it."""
    blob = saved("lightgbm")
    name, text = lightgbm_text(blob)
    chars = list(text)
    for kind, position, char in edits:
        at = position % len(chars)
        if kind == "set":
            chars[at] = char
        elif kind == "insert":
            chars.insert(at, char)
        else:
            del chars[at]
    changed = "".join(chars)
    if fix_sizes and "end of trees" in changed:
        changed = fix_tree_sizes(changed)
    fuzz_check(with_entries(blob, **{name: changed.encode()}))


REPLACEMENTS: list[object] = [
    None,
    0,
    -1,
    1,
    2,
    7,
    2**31,
    10**12,
    -(10**12),
    1.5,
    float("nan"),
    True,
    "",
    "x",
    "float32",
    "string",
    "Features",
    "$object",
    "os.system",
    "../x",
    "data/0000-_keys.arrow",
    [],
    [1, 2],
    [[0, 1]],
    {},
    {"$tuple": []},
    {"$float": "inf"},
    {"$scalar": "<f4", "value": 1},
    {"kind": "tensor", "dtype": "float32", "shape": [3]},
]


def mutate_manifest(manifest: dict[str, Any], target: int, action: str, replacement: object) -> None:
    """Change one place of ``manifest``: replace a value, or delete a key / an item."""
    places = [
        (parent, key)
        for parent in nodes(manifest)
        for key in (parent if isinstance(parent, dict) else range(len(parent)))
    ]
    parent, key = places[target % len(places)]
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = copy.deepcopy(replacement)
    elif isinstance(parent[key], int | float) and not isinstance(parent[key], bool):
        parent[key] = parent[key] + 1  # "bump": off by one, the subtle tampering
    elif isinstance(parent[key], str):
        parent[key] = parent[key] + "x"


@settings(max_examples=800, deadline=None, derandomize=True, database=None)
@given(
    base=st.sampled_from(FUZZ_BASES),
    changes=st.lists(
        st.tuples(
            st.integers(0, 10_000), st.sampled_from(["replace", "delete", "bump"]), st.sampled_from(REPLACEMENTS)
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_fuzz_manifest_mutations(base: str, changes: list[tuple[int, str, object]]) -> None:
    def edit(manifest: dict[str, Any]) -> None:
        for target, action, replacement in changes:
            mutate_manifest(manifest, target, action, replacement)

    fuzz_check(with_manifest(saved(base), edit))


# --------------------------------------------------------------------------- pickling


def score_in_worker(model: Transformer) -> list[float]:
    """Runs in a spawned worker: build the data there and score it with the unpickled model."""
    view = ctx.data.load_from_enumerable(people(), Person)
    return [float(p) for p in model.transform(view).column("Probability")]


def test_pickle_goes_through_constructor_states() -> None:
    model = pipeline()
    blob = pickle.dumps(model)
    assert b"_from_state" in blob  # each step is rebuilt by its constructor from its state
    assert b"onnxruntime" not in blob and b"InferenceSession" not in blob and b"_booster" not in blob
    same_predictions(pickle.loads(blob), model)
    onnx_blob = pickle.dumps(onnx_step_model())
    assert b"onnxruntime" not in onnx_blob and b"InferenceSession" not in onnx_blob
    same_predictions(pickle.loads(onnx_blob), onnx_step_model())
    same_predictions(copy.deepcopy(kmeans_model()), kmeans_model())


def test_spawned_workers_score_like_the_parent() -> None:
    model = pipeline()
    expected = [float(p) for p in model.transform(data()).column("Probability")]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(score_in_worker, [model, model])
    assert results == [expected, expected]


@dataclass
class Hours:
    hours: float


@dataclass
class Overtime:
    overtime: bool


def is_overtime(row: Hours) -> Overtime:
    return Overtime(row.hours > 45)


def test_custom_mapping_pickles_by_reference_but_cannot_be_saved(tmp_path: Path) -> None:
    model = (
        ctx.transforms.custom_mapping(is_overtime, Hours, Overtime)
        .append(ctx.transforms.concatenate("Features", "age", "hours"))
        .fit(data())
    )
    same_predictions(pickle.loads(pickle.dumps(model)), model)
    with pytest.raises(
        ModelSaveError, match=r"custom_mapping\(is_overtime\) holds a Python function \(attribute 'steps\[0\]\.fn'\)"
    ):
        ctx.model.save(model, data(), tmp_path / "model.zip")
    assert not (tmp_path / "model.zip").exists()


def test_registered_custom_mapping_is_saved_by_its_contract_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxpipe.transforms import custom

    monkeypatch.setattr(custom, "_registered", {})
    op.register_custom_mapping("overtime-v1", is_overtime, Hours, Overtime)
    model = (
        ctx.transforms.custom_mapping(is_overtime, Hours, Overtime, contract_name="overtime-v1")
        .append(ctx.transforms.concatenate("Features", "age", "hours"))
        .fit(data())
    )
    path = tmp_path / "model.zip"
    ctx.model.save(model, data(), path)
    manifest = json.dumps(manifest_of(path.read_bytes()))
    assert '{"contract_name": "overtime-v1"}' in manifest and "is_overtime" not in manifest  # the name only
    loaded, _ = ctx.model.load(path)
    same_predictions(loaded, model)

    monkeypatch.setattr(custom, "_registered", {})  # a process that did not register it
    with pytest.raises(ModelLoadError, match=r"no custom mapping is registered under 'overtime-v1' in this process"):
        ctx.model.load(path)
    op.register_custom_mapping("overtime-v1", is_overtime, Hours, Overtime)
    op.register_custom_mapping("overtime-v1", is_overtime, Hours, Overtime)  # the same again: fine
    with pytest.raises(InvalidArgumentError, match=r"contract name 'overtime-v1' is already registered"):
        op.register_custom_mapping("overtime-v1", lambda row: row, Hours, Overtime)
    with pytest.raises(ModelSaveError, match=r"custom_mapping\(other\) holds a Python function"):
        # Registered under another name than the step's: still the function, so not savable.
        model_to_bytes(ctx.transforms.custom_mapping(is_overtime, Hours, Overtime, "other"), data().schema)


# --------------------------------------------------------------------------- user components


class AgeScaler(Transformer):
    """A user's own step: ``Scaled = factor * age + offsets[0]``."""

    def __init__(self, factor: float) -> None:
        self.factor = np.float32(factor)
        self.offsets = np.array([0.5, 1.5], np.float32)
        self.kind = DType.FLOAT32

    def output_schema(self, input_schema: Schema) -> Schema:
        input_schema.require("age", self.step_name)
        return input_schema.with_columns(Column("Scaled", TensorType(self.kind)))

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return ["age"]

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        age = np.asarray(columns["age"], np.float32)
        return {"Scaled": age * self.factor + self.offsets[0]}


class OtherScaler(AgeScaler):
    pass


def test_register_component_for_a_user_transformer(monkeypatch: pytest.MonkeyPatch) -> None:
    persistence.registered_components()  # onnxpipe's own first, then a copy the test may change
    monkeypatch.setattr(core, "_REGISTRY", dict(core._REGISTRY))
    model = AgeScaler(2.0)
    with pytest.raises(ModelSaveError, match=r"AgeScaler .*register_component"):
        model_to_bytes(model, data().schema)
    with pytest.raises(ModelSaveError, match=r"AgeScaler"):
        model_to_bytes(pipeline().append(model), data().schema)

    assert register_component(AgeScaler) is AgeScaler
    assert persistence.registered_components()["AgeScaler"] is AgeScaler
    loaded, _ = model_from_bytes(model_to_bytes(model, data().schema))
    assert isinstance(loaded, AgeScaler)
    same_predictions(loaded, model)
    chain = pipeline().append(model)
    same_predictions(model_from_bytes(model_to_bytes(chain, data().schema))[0], chain)

    register_component(AgeScaler)  # again: nothing changes
    with pytest.raises(InvalidArgumentError, match=r"the component name 'AgeScaler' is already registered"):
        register_component(OtherScaler, "AgeScaler")
    with pytest.raises(InvalidArgumentError, match=r"the component name 'KMeansModel' is already registered"):
        register_component(OtherScaler, "KMeansModel")
    with pytest.raises(InvalidArgumentError, match="register_component takes a class"):
        register_component(model)  # type: ignore[type-var]
    register_component(OtherScaler, "tests.OtherScaler")
    other = OtherScaler(3.0)
    assert manifest_of(model_to_bytes(other, data().schema))["model"]["$object"] == "tests.OtherScaler"


def test_saving_refuses_what_loading_would_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    persistence.registered_components()
    monkeypatch.setattr(core, "_REGISTRY", dict(core._REGISTRY))
    register_component(AgeScaler)
    nested = AgeScaler(2.0)
    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    nested.__dict__["factor"] = deep
    with pytest.raises(ModelSaveError, match=r"nests values more than 64 levels deep"):
        model_to_bytes(nested, data().schema)
    huge = AgeScaler(2.0)
    huge.__dict__["factor"] = 10**5000
    with pytest.raises(ModelSaveError, match=r"cannot be written as JSON"):
        model_to_bytes(huge, data().schema)


def test_unregistered_component_in_a_file_is_refused_by_name() -> None:
    def plant(m: dict[str, Any]) -> None:
        m["model"] = {"$object": "UserThing", "state": {}}

    load_fails(with_manifest(saved("pipeline"), plant), "a component of unknown type 'UserThing'")


def test_save_errors_name_the_folder_and_the_step(tmp_path: Path) -> None:
    model = ctx.transforms.top_k_labels("Top", "Score", labels=["a", "b\ud800"], k=1)
    schema = Schema([Column("Score", TensorType(DType.FLOAT32, (2,)))])
    with pytest.raises(ModelSaveError, match=r"top_k_labels.*cannot be written as JSON"):
        model_to_bytes(model, schema)
    fine = ctx.transforms.top_k_labels("Top", "Score", labels=["a", "b"], k=1)
    with pytest.raises(DataFileNotFoundError, match=r"cannot write the saved model to .*absent.* does not exist"):
        ctx.model.save(fine, schema, tmp_path / "absent" / "model.zip")
