"""Writing a file the library produces (a saved model, an exported ONNX model)."""

from __future__ import annotations

from pathlib import Path

from onnxpipe.errors import DataFileNotFoundError

__all__ = ["write_file"]


def write_file(path: str | Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``path``; a missing folder is the library's error, naming ``what``."""
    target = Path(path)
    if not target.parent.is_dir():
        raise DataFileNotFoundError(
            f"cannot write {what} to {str(target)!r}: the folder {str(target.parent)!r} does not exist; create it first"
        )
    target.write_bytes(data)
