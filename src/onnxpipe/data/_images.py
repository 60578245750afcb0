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

from onnxpipe.data._convert import arrow_schema
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, DataFileNotFoundError, InvalidArgumentError, ShapeError, require
from onnxpipe.schema import Column, DType, Schema, TensorType

__all__ = [
    "IMAGE_EXTENSIONS",
    "UnsupportedModeError",
    "as_image_array",
    "decode_image",
    "load_from_image_folder",
    "pil_image",
    "pil_to_array",
    "pillow",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

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


def pillow() -> Any:
    """The ``PIL.Image`` module, or a MissingDependencyError naming the ``images`` extra."""
    require("PIL", "images")
    import PIL.Image

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


def decode_image(source: str | Path | bytes) -> np.ndarray:
    """Decode an image file (a path, or its bytes): EXIF orientation applied, mode normalized
    (see :func:`pil_to_array`). Pillow's own exceptions propagate; the caller names the row."""
    image_module = pillow()
    from PIL import ImageOps

    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    with image_module.open(stream) as opened:
        opened.load()
        ImageOps.exif_transpose(opened, in_place=True)  # in place: no copy when there is nothing to turn
        return pil_to_array(opened)


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

    Files are matched by extension, case-insensitively; ``recursive`` walks sub-folders. The view
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
            found.extend(os.path.join(parent, f) for f in files if f.lower().endswith(wanted))
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
