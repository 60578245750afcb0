"""Image values: Pillow images and image files as uint8 arrays, and the image-folder source.

The rules (which Pillow modes become which channels, EXIF orientation) are documented for users
in :mod:`onnxpipe.transforms.images`. Pillow is optional (``pip install 'onnxpipe[images]'``) and
imported on first use.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from onnxpipe._display import quoted
from onnxpipe.data._convert import arrow_schema
from onnxpipe.data._view import DataView
from onnxpipe.errors import (
    ColumnTypeError,
    DataError,
    DataFileNotFoundError,
    ImageDecodeError,
    InvalidArgumentError,
    ShapeError,
    require,
)
from onnxpipe.schema import Column, DType, Schema, TensorType

__all__ = [
    "DECODED_FORMATS",
    "IMAGE_EXTENSIONS",
    "MAX_BATCH_PIXELS",
    "MAX_IMAGE_PIXELS",
    "UnsupportedModeError",
    "as_image_array",
    "decode_image",
    "image_pixels",
    "load_from_image_folder",
    "pil_image",
    "pil_to_array",
    "pillow",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

DECODED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
"""The Pillow formats :func:`decode_image` opens (those of :data:`IMAGE_EXTENSIONS`), whatever a
file is named. Pillow knows more, but some run other programs (EPS runs Ghostscript) or are
rarely fuzzed; a file in another format is an :class:`~onnxpipe.errors.ImageDecodeError`."""

MAX_IMAGE_PIXELS = 89_478_485
"""The most pixels (width x height) one decoded image may have: Pillow's own decompression-bomb
limit (about 0.25 GiB of RGB, a 9459 x 9459 image). The header is checked before anything is
decoded, so a small file claiming 100000 x 100000 pixels is refused without allocating them.
onnxpipe sets ``PIL.Image.MAX_IMAGE_PIXELS`` to it on first use, so that Pillow's own guard
agrees; Pillow's ``DecompressionBombError`` becomes an :class:`~onnxpipe.errors.ImageDecodeError`."""

MAX_BATCH_PIXELS = 1 << 29
"""The most pixels (sum of width x height) of the images decoded for one batch by
``onnxpipe predict`` (about 2 GiB as RGBA): a batch of images stops at this many pixels."""

_KEPT = frozenset({"L", "RGB", "RGBA"})
_TO_RGB = frozenset({"CMYK", "YCbCr", "LAB", "HSV", "RGBX"})
_TO_RGBA = frozenset({"LA", "PA", "La", "RGBa"})
_CHANNELS = (1, 3, 4)


class UnsupportedModeError(ValueError):
    """A Pillow image mode that has no image-column equivalent (the caller says where)."""

    def __init__(self, mode: str) -> None:
        super().__init__(
            f"Pillow image mode {mode!r} is not supported; supported are L, RGB, RGBA and the modes converted "
            "to them (1, P, PA, LA, CMYK, YCbCr, LAB, HSV, I;16, I, F)"
        )
        self.mode = mode


_pillow_limit_set = False


def pillow() -> Any:
    """The ``PIL.Image`` module, or a MissingDependencyError naming the ``images`` extra.
    On first use, Pillow's decompression-bomb limit is set to :data:`MAX_IMAGE_PIXELS`."""
    global _pillow_limit_set
    require("PIL", "images")
    import PIL.Image

    if not _pillow_limit_set:
        PIL.Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        _pillow_limit_set = True
    return PIL.Image


def pil_to_array(image: Any) -> np.ndarray:
    """The uint8 ``(height, width, channels)`` array of a Pillow image, its mode normalized:
    L, RGB and RGBA as they are; 1 -> L; LA, PA, La, RGBa and P with transparency -> RGBA;
    P, CMYK, YCbCr, LAB, HSV, RGBX -> RGB; 16-bit (I;16*) -> L keeping the high byte; I and F ->
    L from the value clipped to [0, 65535], high byte. Other modes raise UnsupportedModeError."""
    mode = image.mode
    if mode in _KEPT:
        pass
    elif mode == "1":
        image = image.convert("L")
    elif mode in _TO_RGBA or (mode == "P" and "transparency" in image.info):
        # Pillow converts premultiplied La only to LA.
        image = (image.convert("LA") if mode == "La" else image).convert("RGBA")
    elif mode == "P" or mode in _TO_RGB:
        image = image.convert("RGB")
    elif mode.startswith("I;16") or mode in ("I", "F"):
        wide = np.asarray(image)
        if mode == "F":
            wide = np.nan_to_num(wide, nan=0.0)
        # 16-bit range to 8 bits: the high byte (value >> 8), i.e. value / 257 rounded down.
        clipped = np.clip(wide, 0, 65535).astype(np.uint32)
        return np.ascontiguousarray((clipped >> 8).astype(np.uint8)[..., np.newaxis])
    else:
        raise UnsupportedModeError(mode)
    arr = np.asarray(image)
    return arr[..., np.newaxis] if arr.ndim == 2 else arr


def _open(source: str | Path | bytes) -> Any:
    """The lazily opened image (header read, pixels not decoded) in one of :data:`DECODED_FORMATS`."""
    image_module = pillow()
    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return image_module.open(stream, formats=DECODED_FORMATS)
    except image_module.DecompressionBombError as exc:
        raise ImageDecodeError(
            f"image {_name(source)} has more pixels than the limit of {MAX_IMAGE_PIXELS:,} (a guard against "
            f"decompression bombs): {exc}"
        ) from None


def _name(source: str | Path | bytes) -> str:
    return "<bytes>" if isinstance(source, bytes) else quoted(os.fspath(source))


def _check_pixels(source: str | Path | bytes, size: tuple[int, int], limit: int) -> None:
    width, height = size
    if width * height > limit:
        raise ImageDecodeError(
            f"image {_name(source)} is {width} x {height} = {width * height:,} pixels, more than the limit of "
            f"{limit:,} (a guard against decompression bombs); resize it first"
        )


def image_pixels(source: str | Path | bytes) -> int:
    """Width x height from the image's header, without decoding it (0 when it cannot be read:
    decoding the image then says why)."""
    try:
        with _open(source) as opened:
            width, height = opened.size
            return int(width) * int(height)
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError, ...: reported when decoded
        return 0


def decode_image(source: str | Path | bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file (a path, or its bytes): EXIF orientation applied, mode normalized
    (see :func:`pil_to_array`). Only :data:`DECODED_FORMATS` are opened, and an image of more
    than ``max_pixels`` (default :data:`MAX_IMAGE_PIXELS`) is an ImageDecodeError before it is
    decoded. Pillow's own exceptions propagate; the caller names the row."""
    from PIL import ImageOps

    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    with _open(source) as opened:
        _check_pixels(source, opened.size, limit)  # from the header: nothing decoded yet
        if opened.format == "JPEG" and opened.info.get("progressive"):
            _check_scans(source, opened)
        opened.load()
        ImageOps.exif_transpose(opened, in_place=True)  # in place: no copy when there is nothing to turn
        return pil_to_array(opened)


MAX_JPEG_SCANS = 100
"""Most scans a progressive JPEG may have. Each scan is a pass over every pixel (about 30 ms for
8000 x 8000 here): encoders write about 10, and a few kilobytes of repeated scans would otherwise
keep the decoder busy for hours (libjpeg-turbo's djpeg offers the same bound as -maxscans)."""


def _check_scans(source: str | Path | bytes, opened: Any) -> None:
    # Entropy-coded data escapes every 0xFF byte, so a raw FF DA is always a start-of-scan marker.
    fp = getattr(opened, "fp", None)
    if isinstance(source, bytes):
        data = source
    elif fp is not None and hasattr(fp, "seek"):
        position = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(position)
    else:
        return
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise ImageDecodeError(
            f"image {_name(source)} is a progressive JPEG of {scans:,} scans, more than {MAX_JPEG_SCANS} (each scan "
            "decodes the whole image again); re-encode it"
        )


def pil_image(arr: np.ndarray) -> Any:
    """A Pillow image of the pixels of ``arr`` (H, W, 1|3|4), to resample. Four channels
    become mode RGBX, so that Pillow resamples the alpha like any channel (Pillow premultiplies
    RGBA by alpha before resizing; ONNX's Resize does not, and neither does ML.NET)."""
    image_module = pillow()
    height, width, channels = arr.shape
    mode = {1: "L", 3: "RGB", 4: "RGBX"}[channels]
    data = np.ascontiguousarray(arr[..., 0] if channels == 1 else arr)
    return image_module.frombuffer(mode, (width, height), data, "raw", mode, 0, 1)


def as_image_array(value: Any, where: str) -> np.ndarray:
    """A field value of an image column (a Pillow image, or a uint8 array of shape (H, W) or
    (H, W, 1|3|4)) as the uint8 (H, W, C) array the column holds."""
    if isinstance(value, np.ndarray):
        arr = value
    elif hasattr(value, "mode") and hasattr(value, "getbands"):  # a Pillow image
        try:
            return pil_to_array(value)
        except UnsupportedModeError as exc:
            raise ColumnTypeError(f"{where}: {exc}") from None
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:
            raise ColumnTypeError(f"{where}: cannot read a {type(value).__name__} as an image: {exc}") from None
    if arr.dtype != np.uint8:
        raise ColumnTypeError(
            f"{where}: an image holds uint8 pixels, got {arr.dtype} values; convert it first "
            "(e.g. np.clip(x * 255, 0, 255).astype(np.uint8) for values in [0, 1])"
        )
    if arr.ndim == 2:
        arr = arr[..., np.newaxis]
    if arr.ndim != 3 or arr.shape[2] not in _CHANNELS or 0 in arr.shape:
        raise ShapeError(
            f"{where}: an image is an array of shape (height, width) or (height, width, channels) with 1, 3 or 4 "
            f"channels, got shape {arr.shape}"
        )
    return arr


def load_from_image_folder(
    folder: str | Path,
    *,
    use_folder_name_as_label: bool = True,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    recursive: bool = True,
) -> DataView:
    """The image files under ``folder`` as a DataView: ``ImagePath`` (absolute paths, sorted) and,
    with ``use_folder_name_as_label``, ``Label`` (the name of the folder holding the file).

    Regular files are matched by extension, case-insensitively (named pipes and devices are left
    out: opening one could block); ``recursive`` walks sub-folders. The view
    holds paths only: follow it with ``load_images("Image", input_column_name="ImagePath")``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataFileNotFoundError(f"load_from_image_folder: folder {str(root)!r} does not exist")
    if isinstance(extensions, str) or not extensions or not all(isinstance(e, str) and e for e in extensions):
        raise InvalidArgumentError(
            f"load_from_image_folder: extensions must be a sequence of file extensions such as ('.jpg', '.png'), "
            f"got {extensions!r}"
        )
    wanted = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    root = root.resolve()
    found: list[str] = []
    if recursive:
        for parent, dirs, files in os.walk(root):
            dirs.sort()
            paths = (os.path.join(parent, f) for f in files if f.lower().endswith(wanted))
            found.extend(p for p in paths if os.path.isfile(p))  # no FIFO or device: opening one could hang
    else:
        found = [str(p) for p in root.iterdir() if p.is_file() and p.name.lower().endswith(wanted)]
    found.sort()
    if not found:
        raise DataError(
            f"load_from_image_folder: no files with the extensions {', '.join(wanted)} in {str(root)!r}"
            + ("" if recursive else " (sub-folders are not searched: pass recursive=True)")
        )
    columns = [Column("ImagePath", TensorType(DType.STRING))]
    arrays = [pa.array(found, type=pa.string())]
    if use_folder_name_as_label:
        columns.append(Column("Label", TensorType(DType.STRING)))
        arrays.append(pa.array([os.path.basename(os.path.dirname(p)) for p in found], type=pa.string()))
    schema = Schema(columns)
    batch = pa.RecordBatch.from_arrays(arrays, schema=arrow_schema(schema))
    return DataView(schema, lambda: iter([batch]), len(found))
