"""Writing a file the library produces (a saved model, an exported ONNX model, a CLI output).

Every file is written the same way, so that no run leaves a half-written file or writes where
it was not asked to:

* the bytes go to a temporary file created exclusively (``tempfile.mkstemp``: a name nobody can
  predict, ``O_EXCL``, never a symbolic link) in the target's folder;
* it is flushed to disk and renamed over the target at the end (``os.replace``, atomic on POSIX);
* any failure (or an interruption) removes it, and an existing target stays as it was;
* a target that is a symbolic link is refused: the link is neither written through (which could
  overwrite whatever it points to, e.g. a link planted in a shared folder) nor silently replaced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from onnxpipe.errors import DataFileNotFoundError, InvalidArgumentError

__all__ = ["atomic_output", "check_output_path", "remove_partial_files", "write_file"]

_PREFIX_CHARS = 80  # of the target's name in the temporary file's name (names are limited to 255 bytes)

_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_partial: set[str] = set()  # temporary files being written, for remove_partial_files


def remove_partial_files() -> None:
    """Remove every temporary file :func:`atomic_output` is writing now: for a process that is
    about to end at once (``os._exit``), e.g. on a second Ctrl-C."""
    for name in list(_partial):
        with contextlib.suppress(OSError):
            os.unlink(name)


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and put back (a brief change other threads could see)
    os.umask(mask)
    return mask


def check_output_path(path: str | Path, what: str) -> Path:
    """``path`` as a target to write ``what`` to: its folder must exist, and it must be absent or
    a regular file, not a symbolic link (see the module docstring)."""
    target = Path(path)
    if target.is_symlink():
        raise InvalidArgumentError(
            f"cannot write {what} to {str(target)!r}: it is a symbolic link, and onnxpipe does not write through "
            "links; give the path the link points to, or remove the link"
        )
    if target.exists() and not target.is_file():
        # Renaming over a device (/dev/null, a disk), a pipe or a socket would replace that node.
        raise InvalidArgumentError(
            f"cannot write {what} to {str(target)!r}: it exists and is not a regular file (a folder, a device, a "
            "pipe or a socket); write to a file"
        )
    parent = target.parent
    if not parent.is_dir():
        raise DataFileNotFoundError(
            f"cannot write {what} to {str(target)!r}: the folder {str(parent)!r} does not exist; create it first"
        )
    return target


@contextlib.contextmanager
def atomic_output(path: str | Path, what: str) -> Iterator[BinaryIO]:
    """A binary file to write ``what`` to; it replaces ``path`` when the block ends without an
    exception, and is removed otherwise. OSError propagates (the caller says what failed)."""
    target = check_output_path(path, what)
    # No signal between creating the file and taking charge of removing it: a handler that
    # raises runs once they are unblocked, inside the try below.
    masking = hasattr(signal, "pthread_sigmask")  # POSIX
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS) if masking else set()
    try:
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name[:_PREFIX_CHARS]}.", suffix=".partial"
        )
        _partial.add(temporary)
    finally:
        if masking:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    try:
        # mkstemp creates the file readable by its owner only; give it the usual permissions.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file object owns it now
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    finally:
        _partial.discard(temporary)


def write_file(path: str | Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_output`; a missing folder or a symbolic
    link at ``path`` is the library's error, naming ``what``."""
    with atomic_output(path, what) as f:
        f.write(data)
