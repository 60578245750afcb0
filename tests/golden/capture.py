"""Capture golden files: ``pytest -p tests.golden.capture`` saves, for every component type the
conformance suite saves, the smallest saved model holding it, with the input it was checked on
and the output it gave, under ``tests/golden/v<FORMAT_VERSION>/``.

Run it once per saved-model format version; the files it wrote for older versions stay, so that
loading what an older onnxpipe saved is tested forever.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa

import onnxpipe.testing as testing
from onnxpipe.persistence import FORMAT_VERSION, model_to_bytes

_FOLDER = Path(__file__).parent / f"v{FORMAT_VERSION}"
_original = testing.check_save_load


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _capture(model: Any, data: Any, scored: Any, savable: bool = True) -> None:
    _original(model, data, scored, savable)
    if not savable:
        return
    try:
        saved = model_to_bytes(model, data.schema)
        inputs, outputs = _ipc(data.to_arrow()), _ipc(scored.to_arrow())
    except Exception:
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
