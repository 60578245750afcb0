"""Capture golden files: ``pytest -p tests.golden.capture`` saves, for every component type the
conformance suite saves, the smallest saved model holding it, with the input it was checked on
and the output it gave, under ``tests/golden/v<FORMAT_VERSION>/``.

Run it once per saved-model format version; the files it wrote for older versions stay, so that
loading what an older onnxpipe saved is tested forever.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa

import onnxpipe.testing as testing
from onnxpipe.persistence import FORMAT_VERSION, model_to_bytes, registered_components

_FOLDER = Path(__file__).parent / f"v{FORMAT_VERSION}"
_original = testing.check_save_load


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _object_types(value: Any) -> set[str]:
    if isinstance(value, list):
        return set().union(*map(_object_types, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = {value["$object"]} if "$object" in value else set()
    return found.union(*map(_object_types, value.values()))


def _only_onnxpipe(saved: bytes) -> bool:
    """Whether the model holds onnxpipe's own components only (not a test's helper classes)."""
    with zipfile.ZipFile(io.BytesIO(saved)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    registry = registered_components()
    return all(registry[name].__module__.startswith("onnxpipe.") for name in _object_types(manifest["model"]))


def _capture(model: Any, data: Any, scored: Any, savable: bool = True) -> None:
    _original(model, data, scored, savable)
    if not savable:
        return
    try:
        saved = model_to_bytes(model, data.schema)
        inputs, outputs = _ipc(data.to_arrow()), _ipc(scored.to_arrow())
    except Exception:
        return
    if not _only_onnxpipe(saved):
        return
    _FOLDER.mkdir(parents=True, exist_ok=True)
    for name in {type(step).__qualname__ for step in model.steps}:
        target = _FOLDER / f"{name}.zip"
        size = len(saved) + len(inputs) + len(outputs)
        if target.exists():
            old = sum(p.stat().st_size for p in _FOLDER.glob(f"{name}.*"))
            if old <= size:
                continue
        target.write_bytes(saved)
        (_FOLDER / f"{name}.input.arrow").write_bytes(inputs)
        (_FOLDER / f"{name}.expected.arrow").write_bytes(outputs)


testing.check_save_load = _capture
