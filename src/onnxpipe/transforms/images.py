"""Images in front of a model: ``load_images``, ``load_raw_image_bytes``, ``resize_images``,
``crop_images``, ``extract_pixels`` and ``convert_to_grayscale`` (ML.NET's ImageAnalytics transforms,
and the centre crop of torchvision's ``Resize(256)`` + ``CenterCrop(224)`` recipe).

Image columns. An image column has the type :class:`~onnxpipe.schema.ImageType`: per row a uint8
numpy array of shape ``(height, width, channels)``, channels last, with 1 (gray), 3 (RGB) or 4
(RGBA) channels. Schema classes declare one with ``Annotated[np.ndarray, ImageType(224, 224)]``
(or ``ImageType()`` for any size) or with a ``PIL.Image.Image`` field. Pillow is needed to decode
and resize (``pip install 'onnxpipe[images]'``).

Decoding (``load_images``, and Pillow images given as rows). A file is opened with Pillow, its
EXIF orientation is applied (a photo taken sideways comes out upright), and its mode is normalized:

* ``L``, ``RGB``, ``RGBA`` stay as they are (1, 3, 4 channels);
* ``1`` (bilevel) becomes ``L`` (0 or 255);
* ``LA``, ``PA``, ``La``, ``RGBa``, and ``P`` with a transparent colour become ``RGBA``;
* ``P`` (palette), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` and ``RGBX`` become ``RGB``;
* 16-bit gray (``I;16``, ``I;16B``, ...) becomes ``L`` keeping the high byte (``value >> 8``);
  32-bit ``I`` and float ``F`` become ``L`` from the value clipped to [0, 65535], then ``>> 8``
  (so 16-bit data stored in them maps like ``I;16``; NaN becomes 0);
* any other mode is an :class:`~onnxpipe.errors.ImageDecodeError` naming the file, row and mode.

Transparency in ``RGB`` / ``L`` images (a PNG ``tRNS`` colour) is ignored.

Errors while loading. A path is joined to ``image_folder`` (an absolute path stays as it is). A
file that does not exist raises :class:`~onnxpipe.errors.DataFileNotFoundError`, a file Pillow
cannot decode (corrupt, truncated, not an image) raises ImageDecodeError; both name the row
(counted from 0 over the whole data view), the file and the reason. With ``on_error="skip"``
such rows are dropped from the output instead (every column of the row, so the columns stay
aligned), each with a :class:`SkippedRowWarning` naming the row, the file and the reason, and
the output's ``row_count`` becomes unknown; row numbers in later steps' errors count the rows
that are left. Skipping happens in ``transform``; scoring rows
directly (``map_columns``, a prediction engine) must return one output per input row and raises.

Performance. Files are decoded, and images resized, on a thread pool of ``os.cpu_count()``
threads (Pillow releases the GIL while it decodes and resamples; :func:`set_image_threads` sets
another size, as the scale-out adapters do per worker), created once per process on first use;
the row order is kept. ``load_images`` passes its rows on in batches of at most
``max(64, 4 x cores)`` rows, so the decoded images of a large input batch are never all in
memory at once.

Resizing (``resize_images``, ``image_width`` then ``image_height`` as in ML.NET). With ``fill`` an
image is stretched to the size. With ``iso_crop`` (default) it is scaled uniformly to cover the
size and the excess is cut off: the side that fits exactly is the one of the larger scale, the
other becomes ``round(other * scale)`` (half up, in integers: ``(2 * h * W + w) // (2 * w)``), then
the crop keeps the centre, or the ``left`` / ``right`` / ``top`` / ``bottom`` part along the cut
axis (``crop_anchor``). With ``iso_pad`` it is scaled uniformly to fit inside (the smaller scale;
the other side rounded the same way, at least 1 pixel) and padded with zeros (black, transparent)
centred, the extra pixel of an odd padding going to the bottom / right. The resampling is
Pillow's antialiased bilinear filter (``Image.resize(..., BILINEAR)``) applied to every channel
alike (alpha is not premultiplied). Channels are kept.

Cropping (``crop_images``, ``image_width`` then ``image_height``): the part of that size is cut out
of every image as it is, without scaling, as torchvision's ``CenterCrop`` does. A centred axis
starts at torchvision's ``int(round((H - h) / 2))`` with Python's round, so half of an odd excess
rounds to even (an excess of 1 starts at 0, of 3 at 2, of 5 at 2; ``resize_images`` floors
instead). The recipe "short side to 256, keep the centre 224x224" (torchvision's ``Resize(256)`` +
``CenterCrop(224)``) is ``resize_images(256, 256)`` (iso_crop) followed by ``crop_images(224,
224)``; it equals torchvision's on PIL images except along the long side, which torchvision
truncates where ``resize_images`` rounds (a pixel longer for some aspect ratios), and whose odd
excess the two steps split by flooring then rounding (a pixel apart for some sizes).
``crop_anchor`` takes the same values as ``resize_images``: ``left`` / ``right`` put the crop at
that edge and ``top`` / ``bottom`` at theirs, the other axis staying centred. An image smaller than
the crop in either dimension is a :class:`~onnxpipe.errors.ShapeError` naming the column, the row
and both sizes (torchvision would pad it with zeros; resize first instead), raised when the
pipeline is built if the input column declares its size. Channels are kept.

Pixels (``extract_pixels``, ML.NET's ExtractPixels). ``colors`` chooses the planes (letters of
``"argb"``, e.g. ``"rgb"``, ``"argb"``, ``"g"``; ``"all"`` = ``"argb"``), ``order`` their order
(ML.NET's ``"argb"``, ``"arbg"``, ``"abrg"``, ``"abgr"``, ``"agrb"``, ``"agbr"``, or the same six
without the ``a``, e.g. ``order="bgr"`` for models trained on BGR images). A gray image gives
R = G = B = its gray value; an image without alpha gives alpha 255. Each value is
``(pixel - offset) * scale`` in float32, where ``offset`` and ``scale`` are one number or one per
output plane (e.g. ImageNet's per-channel mean and standard deviation, times 255); the output is a
vector of shape ``(planes, height, width)`` (planar, CHW, the default) or
``(height, width, planes)`` with ``interleave=True`` (HWC), without a batch dimension
(``apply_onnx_model`` accepts rows with or without the model's leading 1).
``output_as_float=False`` gives the uint8 values (offset and scale must then be left alone).

Grayscale (``convert_to_grayscale``): ``L = (R * 19595 + G * 38470 + B * 7471 + 32768) >> 16``,
which is ITU-R 601-2 luma in 16-bit fixed point and exactly what Pillow's ``convert("L")`` gives;
alpha is dropped; gray images stay as they are.

ONNX export. ``resize_images``, ``crop_images``, ``extract_pixels`` and ``convert_to_grayscale``
export (opset 18 for resize), reading an image column as the uint8 tensor ``[N, height, width,
channels]`` (images of one call share one size and channel count; ``apply_onnx_model`` on the
export groups rows so). The loaders do not (a graph cannot read files). ``crop_images``,
``extract_pixels`` and ``convert_to_grayscale`` compute exactly what Python computes (the exported
crop fails in ONNX Runtime on an image smaller than the crop, in a ``Reshape`` node named after the
step). ``resize_images`` uses ONNX ``Resize`` (linear, ``antialias=1``, ``exclude_outside=1``,
half-pixel centres), which ONNX Runtime implements with Pillow's fixed-point algorithm but computes
the scale factors in float32 where Pillow uses float64, so a value may differ by 1 or 2 levels (of
255). Measured (``tests/test_images.py`` pins these bounds): the three photos of ML.NET's test set
resized to eight sizes from 13x7 to 1000x700 differ by at most 2 levels, 0.007 on average;
random-noise images of random sizes (1 to 300 pixels a side, 1, 3 or 4 channels) by at most 2, 0.06
on average; integer ratios (halving, doubling) not at all.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

import numpy as np
import pyarrow as pa

from onnxpipe import _validation
from onnxpipe.core import TransformerT_co, TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues, arrow_schema, from_arrow, to_arrow
from onnxpipe.data._images import (
    MAX_BATCH_PIXELS,
    MAX_IMAGE_PIXELS,
    UnsupportedModeError,
    decode_image,
    image_pixels,
    pil_image,
    pillow,
)
from onnxpipe.data._view import DataView
from onnxpipe.errors import (
    ColumnTypeError,
    DataError,
    DataFileNotFoundError,
    ImageDecodeError,
    InvalidArgumentError,
    ShapeError,
    SkippedRowWarning,
)
from onnxpipe.runtime._model import ONNX_ELEMENT
from onnxpipe.schema import Column, ColumnType, DType, ImageType, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "CROP_ANCHORS",
    "EXTRACT_ORDERS",
    "RESIZING_KINDS",
    "ImageCroppingTransformer",
    "ImageGrayscalingTransformer",
    "ImageLoadingTransformer",
    "ImagePixelExtractingTransformer",
    "ImageResizingTransformer",
    "set_image_threads",
    "RawImageBytesLoadingTransformer",
]

ResizingKind = Literal["iso_crop", "iso_pad", "fill"]
CropAnchor = Literal["center", "left", "right", "top", "bottom"]
OnError = Literal["raise", "skip"]

RESIZING_KINDS: tuple[str, ...] = ("iso_crop", "iso_pad", "fill")
CROP_ANCHORS: tuple[str, ...] = ("center", "left", "right", "top", "bottom")
EXTRACT_ORDERS: tuple[str, ...] = ("argb", "arbg", "abrg", "abgr", "agrb", "agbr")
_ON_ERROR: tuple[str, ...] = ("raise", "skip")
_CHANNELS = (1, 3, 4)
_GRAY_WEIGHTS = (19595, 38470, 7471)  # Pillow's ITU-R 601-2 luma weights, summing to 1 << 16

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------------------------
# The thread pool shared by every image step of the process


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the parent's threads do not exist: start a new pool on first use."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


_pool_size: int | None = None  # None: os.cpu_count()


def set_image_threads(threads: int | None) -> None:
    """The threads this process decodes and resizes images on (``None``: one per core), e.g. one
    per worker process when several share a machine."""
    global _pool, _pool_size
    if threads is not None:
        threads = _validation.thread_count(threads, "threads", "set_image_threads")
    with _pool_lock:
        if threads != _pool_size:
            old, _pool, _pool_size = _pool, None, threads
            if old is not None:
                old.shutdown(wait=False)  # running work finishes; new work goes to the new pool


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            if _pool is None:
                size = _pool_size or os.cpu_count() or 1
                _pool = ThreadPoolExecutor(size, thread_name_prefix="onnxpipe-images")
            pool = _pool
    return pool


def _map_rows(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``fn`` over ``items`` on the pool, in order (inline for a single row)."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    return list(_thread_pool().map(fn, items))


def _load_batch_rows() -> int:
    return max(64, 4 * (os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------
# Shared plumbing


def _image_input(step: OneToOneStep, schema: Schema) -> ImageType:
    """The input column's ImageType, or a ColumnTypeError saying where image columns come from."""
    ct = schema.require(step.input_column_name, step.step_name).type
    if not isinstance(ct, ImageType):
        raise ColumnTypeError(
            f"{step.step_name}: input column {step.input_column_name!r} is {ct}; expected an image column "
            "(from load_images, or a schema field declared with ImageType(...) or as PIL.Image.Image)"
        )
    return ct


def _check_channels(img: np.ndarray, step: str, column: str, row: int) -> None:
    if img.ndim != 3 or img.shape[2] not in _CHANNELS:
        raise ShapeError(
            f"{step}: row {row} of column {column!r} has shape {img.shape}; an image has 1, 3 or 4 channels "
            "(height, width, channels)"
        )


class _Graph:
    """Terse node building for the exports below."""

    def __init__(self, ctx: ExportContext) -> None:
        self.ctx = ctx

    def const(self, value: int | Sequence[int], hint: str = "const") -> str:
        """An int64 vector constant (shapes, indices, sizes)."""
        return self.ctx.add_initializer(np.array(value, np.int64).reshape(-1), hint)

    def node(self, op: str, *inputs: str, **attrs: Any) -> str:
        """One node with one output; returns the output's name."""
        return self.ctx.add_node(op, list(inputs), **attrs)[0]


class _ImageStep(OneToOneStep, TrivialEstimator[TransformerT_co]):
    """An image step: ``transform`` counts rows over the whole view so that errors name the real
    row, and may drop rows (``_compute`` returns which rows it keeps)."""

    _small_batches: ClassVar[bool] = False  # pass rows on in batches of at most _load_batch_rows()

    @abc.abstractmethod
    def _compute(
        self, columns: Mapping[str, ColumnValues], schema: Schema, n_rows: int, first_row: int, *, may_skip: bool
    ) -> tuple[ColumnValues, list[bool] | None]:
        """The output column for one batch, and which rows are kept (None: all)."""

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        values, _ = self._compute(columns, input_schema, n_rows, 0, may_skip=False)
        return {self.output_column_name: values}

    def _drops_rows(self) -> bool:
        return False

    def _pieces(self, part: pa.RecordBatch, schema: Schema) -> Iterator[tuple[int, pa.RecordBatch]]:
        """``part`` as the batches this step computes at once, each with its first row's offset."""
        yield 0, part

    def transform(self, data: DataView) -> DataView:
        in_schema = data.schema
        out_schema = self.output_schema(in_schema)
        out_arrow = arrow_schema(out_schema)
        out_type = out_schema[self.output_column_name].type
        names = list(self.input_columns(in_schema))
        chunk = _load_batch_rows() if self._small_batches else None

        def convert(part: pa.RecordBatch, first_row: int) -> pa.RecordBatch | None:
            inputs = {n: from_arrow(part.column(n), in_schema[n].type) for n in names}
            values, kept = self._compute(inputs, in_schema, part.num_rows, first_row, may_skip=True)
            if kept is not None and not all(kept):
                part = part.filter(pa.array(kept, type=pa.bool_()))
                if part.num_rows == 0:
                    return None
            arrays = [
                to_arrow(values, out_type, c.name) if c.name == self.output_column_name else part.column(c.name)
                for c in out_schema.columns
            ]
            return pa.RecordBatch.from_arrays(arrays, schema=out_arrow)

        def batches() -> Iterator[pa.RecordBatch]:
            first_row = 0
            for batch in data.batches():
                step = chunk or max(batch.num_rows, 1)
                for start in range(0, max(batch.num_rows, 1), step):
                    part = batch if step >= batch.num_rows else batch.slice(start, step)
                    for offset, piece in self._pieces(part, in_schema):
                        out = convert(piece, first_row + start + offset)
                        if out is not None:
                            yield out
                first_row += batch.num_rows

        return DataView(out_schema, batches, None if self._drops_rows() else data.row_count)


# --------------------------------------------------------------------------------------------
# Loading files


@dataclasses.dataclass(frozen=True)
class _Failure:
    path: str
    reason: str | None  # None: the file does not exist


class _FileLoadingTransformer(_ImageStep[TransformerT_co]):
    """Reads the file named in each row of a string column (joined to ``image_folder``)."""

    onnx_unexportable_reason = (
        "it reads files, which an ONNX graph cannot do; export the steps after it and feed the model the "
        "decoded images (uint8 [N, height, width, channels])"
    )
    _small_batches = True
    _unreadable: ClassVar[type[DataError]] = DataError
    _what: ClassVar[str] = "file"

    def __init__(
        self,
        output_column_name: str,
        image_folder: str | Path | None = None,
        input_column_name: str | None = None,
        *,
        on_error: OnError = "raise",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        if image_folder is not None and not isinstance(image_folder, str | os.PathLike):
            raise _validation.invalid(self.step_name, "image_folder", "a folder path or None", image_folder)
        folder = os.fspath(image_folder) if image_folder is not None else ""
        if folder and not os.path.isdir(folder):
            raise DataFileNotFoundError(
                f"{self.step_name}: image_folder {folder!r} does not exist (or is not a folder); pass the folder "
                "the paths are relative to, or None when they are absolute"
            )
        self.image_folder = folder
        self.on_error = cast("OnError", _validation.choice(on_error, "on_error", self.step_name, _ON_ERROR))

    def _params(self) -> tuple[object, ...]:
        return (self.output_column_name, self.image_folder, self.input_column_name, self.on_error)

    @abc.abstractmethod
    def _output_type(self) -> ColumnType:
        """The type of the column written."""

    @abc.abstractmethod
    def _read(self, path: str) -> np.ndarray:
        """One file's value; raises what reading raises (FileNotFoundError, Pillow's errors)."""

    def _drops_rows(self) -> bool:
        return self.on_error == "skip"

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = input_schema.require(self.input_column_name, self.step_name).type
        if not (isinstance(ct, TensorType) and ct.dtype is DType.STRING and ct.is_scalar):
            raise ColumnTypeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}; expected a string column "
                "of file paths"
            )
        return input_schema.with_columns(Column(self.output_column_name, self._output_type()))

    def _read_row(self, text: str) -> np.ndarray | _Failure:
        path = os.path.join(self.image_folder, text) if self.image_folder else text
        if not text:
            return _Failure(path, "the path is empty")
        try:
            return self._read(path)
        except FileNotFoundError:
            return _Failure(path, None)
        except UnsupportedModeError as exc:
            return _Failure(path, str(exc))
        except MemoryError:
            raise  # not a bad file: skipping it would drop a valid image
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib errors ...
            return _Failure(path, f"{type(exc).__name__}: {exc}")

    def _message(self, row: int, failure: _Failure, text: str) -> str:
        where = f"{self.step_name}: row {row}: {self._what} {failure.path!r}"
        source = f" (column {self.input_column_name!r} holds {text!r})" if text != failure.path else ""
        if failure.reason is None:
            return f"{where} does not exist{source}"
        return f"{where} cannot be read{source}: {failure.reason}"

    def _compute(
        self, columns: Mapping[str, ColumnValues], schema: Schema, n_rows: int, first_row: int, *, may_skip: bool
    ) -> tuple[ColumnValues, list[bool] | None]:
        texts = [str(t) for t in columns[self.input_column_name]]
        results = _map_rows(self._read_row, texts)
        failed = [i for i, r in enumerate(results) if isinstance(r, _Failure)]
        if not failed:
            return results, None  # no failures: all arrays
        skip = may_skip and self.on_error == "skip"
        if not skip:
            i = failed[0]
            failure = results[i]
            assert isinstance(failure, _Failure)
            message = self._message(first_row + i, failure, texts[i])
            if self.on_error == "skip":
                message += (
                    "; on_error='skip' drops rows only when a data view is transformed, while scoring rows "
                    "directly (a prediction engine) must give one result per row"
                )
            else:
                message += "; fix the path or the file, or pass on_error='skip' to drop such rows"
            error = DataFileNotFoundError if failure.reason is None else self._unreadable
            raise error(message)
        for i in failed:
            failure = results[i]
            assert isinstance(failure, _Failure)
            warnings.warn(
                self._message(first_row + i, failure, texts[i]) + "; the row is skipped",
                SkippedRowWarning,
                stacklevel=2,
            )
        kept = [not isinstance(r, _Failure) for r in results]
        return [r for r in results if not isinstance(r, _Failure)], kept


@component("load_images", catalog="transforms")
class ImageLoadingTransformer(_FileLoadingTransformer["ImageLoadingTransformer"]):
    """``load_images``: decodes the image file named in each row into an image column
    (``ImageType()``); see the module docstring for the modes, EXIF orientation and errors."""

    _unreadable = ImageDecodeError
    _what = "image file"

    def _output_type(self) -> ColumnType:
        return ImageType()

    def _read(self, path: str) -> np.ndarray:
        return decode_image(path)

    def _pieces(self, part: pa.RecordBatch, schema: Schema) -> Iterator[tuple[int, pa.RecordBatch]]:
        # Decoded images of one batch are held together: split it where their pixels, read from
        # the files' headers, would pass MAX_BATCH_PIXELS (one image alone may always make a batch).
        if part.num_rows * MAX_IMAGE_PIXELS <= MAX_BATCH_PIXELS:  # cannot pass it: no header to read
            yield 0, part
            return
        texts = [str(t) for t in from_arrow(part.column(self.input_column_name), schema[self.input_column_name].type)]
        folder = self.image_folder
        pixels = _map_rows(lambda t: image_pixels(os.path.join(folder, t) if folder else t) if t else 0, texts)
        start, total = 0, 0
        for i, count in enumerate(pixels):
            if i > start and total + count > MAX_BATCH_PIXELS:
                yield start, part.slice(start, i - start)
                start, total = i, 0
            total += count
        yield start, part if start == 0 else part.slice(start)

    def output_schema(self, input_schema: Schema) -> Schema:
        pillow()  # a missing Pillow fails when the pipeline is checked, not at the first batch
        return super().output_schema(input_schema)


@component("load_raw_image_bytes", catalog="transforms")
class RawImageBytesLoadingTransformer(_FileLoadingTransformer["RawImageBytesLoadingTransformer"]):
    """``load_raw_image_bytes``: the bytes of the file named in each row, undecoded, as a uint8
    vector (``uint8[?]``), for models that decode images themselves. Image steps do not accept it."""

    def _output_type(self) -> ColumnType:
        return TensorType(DType.UINT8, (None,))

    def _read(self, path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# Resizing


def _scaled_size(height: int, width: int, target_h: int, target_w: int, resizing: str) -> tuple[int, int]:
    """The size an image is resampled to before cropping or padding (integer arithmetic, the same
    as the ONNX export's)."""
    if resizing == "fill":
        return target_h, target_w
    by_width = target_w * height >= target_h * width  # the width's scale is the larger one
    if resizing == "iso_pad":
        by_width = target_w * height <= target_h * width
    if by_width:
        return max(1, (2 * height * target_w + width) // (2 * width)), target_w
    return target_h, max(1, (2 * width * target_h + height) // (2 * height))


@component("resize_images", catalog="transforms")
class ImageResizingTransformer(_ImageStep["ImageResizingTransformer"]):
    """``resize_images``: every image to ``image_width`` x ``image_height`` (``fill``, ``iso_crop``
    or ``iso_pad``; see the module docstring); the output is ``ImageType(image_height, image_width)``."""

    onnx_min_opset = 18  # Resize's antialias attribute
    onnx_parity_tolerance: ClassVar[float] = 2  # levels of 255 between Pillow and ONNX Runtime

    def __init__(
        self,
        output_column_name: str,
        image_width: int,
        image_height: int,
        input_column_name: str | None = None,
        *,
        resizing: ResizingKind = "iso_crop",
        crop_anchor: CropAnchor = "center",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.image_width = _validation.integer(image_width, "image_width", self.step_name, low=1, unit="pixels")
        self.image_height = _validation.integer(image_height, "image_height", self.step_name, low=1, unit="pixels")
        self.resizing = cast("ResizingKind", _validation.choice(resizing, "resizing", self.step_name, RESIZING_KINDS))
        self.crop_anchor = cast(
            "CropAnchor", _validation.choice(crop_anchor, "crop_anchor", self.step_name, CROP_ANCHORS)
        )
        if self.crop_anchor != "center" and self.resizing != "iso_crop":
            raise InvalidArgumentError(
                f"{self.step_name}: crop_anchor={crop_anchor!r} applies only to resizing='iso_crop' "
                f"(resizing={resizing!r} does not crop); leave crop_anchor='center'"
            )

    def _params(self) -> tuple[object, ...]:
        return (
            self.output_column_name,
            self.image_width,
            self.image_height,
            self.input_column_name,
            self.resizing,
            self.crop_anchor,
        )

    def output_schema(self, input_schema: Schema) -> Schema:
        _image_input(self, input_schema)
        pillow()
        return input_schema.with_columns(
            Column(self.output_column_name, ImageType(self.image_height, self.image_width))
        )

    def _offsets(self, extra_h: int, extra_w: int) -> tuple[int, int]:
        """Where the crop starts (iso_crop) given the excess rows and columns."""
        top = 0 if self.crop_anchor == "top" else extra_h if self.crop_anchor == "bottom" else extra_h // 2
        left = 0 if self.crop_anchor == "left" else extra_w if self.crop_anchor == "right" else extra_w // 2
        return top, left

    def _resize_one(self, img: np.ndarray) -> np.ndarray:
        height, width = img.shape[0], img.shape[1]
        target_h, target_w = self.image_height, self.image_width
        new_h, new_w = _scaled_size(height, width, target_h, target_w, self.resizing)
        scaled = img
        if (new_h, new_w) != (height, width):
            resized = pil_image(img).resize((new_w, new_h), pillow().Resampling.BILINEAR)
            scaled = np.asarray(resized)
            if scaled.ndim == 2:
                scaled = scaled[..., np.newaxis]
        if self.resizing == "iso_crop":
            top, left = self._offsets(new_h - target_h, new_w - target_w)
            return scaled[top : top + target_h, left : left + target_w]
        if self.resizing == "iso_pad" and (new_h, new_w) != (target_h, target_w):
            padded = np.zeros((target_h, target_w, img.shape[2]), dtype=np.uint8)
            top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
            padded[top : top + new_h, left : left + new_w] = scaled
            return padded
        return scaled

    def _compute(
        self, columns: Mapping[str, ColumnValues], schema: Schema, n_rows: int, first_row: int, *, may_skip: bool
    ) -> tuple[ColumnValues, list[bool] | None]:
        images = list(columns[self.input_column_name])
        for i, img in enumerate(images):
            _check_channels(img, self.step_name, self.input_column_name, first_row + i)
        return _map_rows(self._resize_one, images), None

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        x = ctx.value(self.input_column_name)  # uint8 [N, H, W, C]
        target = np.array([self.image_height, self.image_width], np.int64)
        resize_attrs: dict[str, Any] = {
            "mode": "linear",
            "antialias": 1,
            "exclude_outside": 1,  # renormalize the filter at the borders, as Pillow does
            "axes": [1, 2],
        }
        if self.resizing == "fill":
            (out,) = ctx.add_node("Resize", [x, "", "", ctx.add_initializer(target, "size")], **resize_attrs)
            ctx.set_value(self.output_column_name, out)
            return
        g = _Graph(ctx)
        const, node = g.const, g.node

        shape = node("Shape", x)
        h = node("Slice", shape, const(1), const(2))
        w = node("Slice", shape, const(2), const(3))
        th, tw = const(self.image_height, "target_h"), const(self.image_width, "target_w")
        two, one = const(2), const(1)
        tw_h, th_w = node("Mul", tw, h), node("Mul", th, w)
        by_width = node("LessOrEqual" if self.resizing == "iso_pad" else "GreaterOrEqual", tw_h, th_w)
        # round(h * tw / w) and round(w * th / h), half up, as (2 * a + b) // (2 * b)
        h_by_w = node("Div", node("Add", node("Mul", two, tw_h), w), node("Mul", two, w))
        w_by_h = node("Div", node("Add", node("Mul", two, th_w), h), node("Mul", two, h))
        new_h = node("Max", node("Where", by_width, h_by_w, th), one)
        new_w = node("Max", node("Where", by_width, tw, w_by_h), one)
        sizes = node("Concat", new_h, new_w, axis=0)
        scaled = node("Resize", x, "", "", sizes, **resize_attrs)
        if self.resizing == "iso_crop":
            extra_h, extra_w = node("Sub", new_h, th), node("Sub", new_w, tw)
            half_h, half_w = node("Div", extra_h, two), node("Div", extra_w, two)
            top = {"top": const(0), "bottom": extra_h}.get(self.crop_anchor, half_h)
            left = {"left": const(0), "right": extra_w}.get(self.crop_anchor, half_w)
            starts = node("Concat", top, left, axis=0)
            ends = node("Add", starts, const([self.image_height, self.image_width]))
            out = node("Slice", scaled, starts, ends, const([1, 2]))
        else:
            pad_h, pad_w = node("Sub", th, new_h), node("Sub", tw, new_w)
            top, left = node("Div", pad_h, two), node("Div", pad_w, two)
            bottom, right = node("Sub", pad_h, top), node("Sub", pad_w, left)
            zero = const(0)
            pads = node("Concat", zero, top, left, zero, zero, bottom, right, zero, axis=0)
            out = node("Pad", scaled, pads, ctx.add_initializer(np.array(0, np.uint8), "zero"))
        ctx.set_value(self.output_column_name, out)


# --------------------------------------------------------------------------------------------
# Cropping


def _centre_offset(extra: int) -> int:
    """Where a centred crop starts given the excess pixels: torchvision's ``int(round(extra / 2))``,
    Python's round, so half of an odd excess rounds to the even neighbour (1 -> 0, 3 -> 2, 5 -> 2)."""
    half, odd = divmod(extra, 2)
    return half + odd * (half % 2)


@component("crop_images", catalog="transforms")
class ImageCroppingTransformer(_ImageStep["ImageCroppingTransformer"]):
    """``crop_images``: the ``image_width`` x ``image_height`` part of every image at ``crop_anchor``,
    without scaling (torchvision's ``CenterCrop``; see the module docstring); the output is
    ``ImageType(image_height, image_width)``. An image smaller than the crop is a ShapeError."""

    def __init__(
        self,
        output_column_name: str,
        image_width: int,
        image_height: int,
        input_column_name: str | None = None,
        *,
        crop_anchor: CropAnchor = "center",
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.image_width = _validation.integer(image_width, "image_width", self.step_name, low=1, unit="pixels")
        self.image_height = _validation.integer(image_height, "image_height", self.step_name, low=1, unit="pixels")
        self.crop_anchor = cast(
            "CropAnchor", _validation.choice(crop_anchor, "crop_anchor", self.step_name, CROP_ANCHORS)
        )

    def _params(self) -> tuple[object, ...]:
        return (self.output_column_name, self.image_width, self.image_height, self.input_column_name, self.crop_anchor)

    def _too_small(self, what: str) -> ShapeError:
        return ShapeError(
            f"{self.step_name}: {what}, smaller than the {self.image_height}x{self.image_width} crop (height x "
            "width); crop_images neither scales nor pads, so resize first (e.g. resize_images(..., "
            "resizing='iso_crop') to at least the crop size)"
        )

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = _image_input(self, input_schema)
        # A declared size is checked here, when the pipeline is built; an undeclared one row by row.
        if (ct.height or self.image_height) < self.image_height or (ct.width or self.image_width) < self.image_width:
            raise self._too_small(f"input column {self.input_column_name!r} is {ct}")
        return input_schema.with_columns(
            Column(self.output_column_name, ImageType(self.image_height, self.image_width))
        )

    def _offsets(self, height: int, width: int) -> tuple[int, int]:
        """Where the crop starts in an image of ``height`` x ``width``: the anchored axis at its edge, the
        other centred."""
        extra_h, extra_w = height - self.image_height, width - self.image_width
        top = {"top": 0, "bottom": extra_h}.get(self.crop_anchor, _centre_offset(extra_h))
        left = {"left": 0, "right": extra_w}.get(self.crop_anchor, _centre_offset(extra_w))
        return top, left

    def _compute(
        self, columns: Mapping[str, ColumnValues], schema: Schema, n_rows: int, first_row: int, *, may_skip: bool
    ) -> tuple[ColumnValues, list[bool] | None]:
        out = []
        for i, img in enumerate(columns[self.input_column_name]):
            _check_channels(img, self.step_name, self.input_column_name, first_row + i)
            height, width = img.shape[0], img.shape[1]
            if height < self.image_height or width < self.image_width:
                raise self._too_small(
                    f"row {first_row + i} of column {self.input_column_name!r} is an image of {height}x{width}"
                )
            top, left = self._offsets(height, width)
            out.append(img[top : top + self.image_height, left : left + self.image_width])
        return out, None

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        x = ctx.value(self.input_column_name)  # uint8 [N, H, W, C]
        g = _Graph(ctx)
        const, node = g.const, g.node

        shape = node("Shape", x)
        size = const([self.image_height, self.image_width], "crop_size")
        extra = node("Sub", node("Slice", shape, const(1), const(3)), size)  # [H - h, W - w]
        # _centre_offset on both axes at once: half + (extra mod 2) * (half mod 2)
        two = const(2)
        half = node("Div", extra, two)
        starts = node("Add", half, node("Mul", node("Mod", extra, two), node("Mod", half, two)))
        if self.crop_anchor != "center":
            # The anchored axis starts at 0 (top, left) or at its excess (bottom, right); the other stays centred.
            axis = 0 if self.crop_anchor in ("top", "bottom") else 1
            keep = const([int(a != axis) for a in (0, 1)], "keep_centre")
            starts = node("Mul", starts, keep)
            if self.crop_anchor in ("bottom", "right"):
                starts = node("Add", starts, node("Mul", extra, const([int(a == axis) for a in (0, 1)], "at_end")))
        cropped = node("Slice", x, starts, node("Add", starts, size), const([1, 2]))
        # Slice clamps a crop that runs off a too small image to fewer than h x w pixels; reshaping to
        # [N, h, w, C] (0 copies the dimension) makes that an error naming this node instead of a smaller output.
        keep_n_and_c = const([0, self.image_height, self.image_width, 0], "crop_shape")
        (out,) = ctx.add_node("Reshape", [cropped, keep_n_and_c], name=f"{self.step_name}: image smaller than the crop")
        ctx.set_value(self.output_column_name, out)


# --------------------------------------------------------------------------------------------
# Pixels


def _parse_colors(colors: object, step: str) -> str:
    text = colors.lower() if isinstance(colors, str) else ""
    text = "argb" if text == "all" else text
    if not text or any(c not in "argb" for c in text) or len(set(text)) != len(text):
        raise _validation.invalid(
            step, "colors", "letters of 'argb', each at most once (e.g. 'rgb', 'argb', 'g'), or 'all'", colors
        )
    return "".join(c for c in "argb" if c in text)


def _parse_order(order: object, step: str) -> str:
    text = order.lower() if isinstance(order, str) else ""
    if len(text) == 3 and "a" + text in EXTRACT_ORDERS:
        text = "a" + text
    if text not in EXTRACT_ORDERS:
        raise _validation.invalid(
            step,
            "order",
            f"one of {', '.join(map(repr, EXTRACT_ORDERS))} (ML.NET's orders, alpha first) or the same without 'a'",
            order,
            fix="e.g. 'bgr' for 'abgr'",
        )
    return text


@component("extract_pixels", catalog="transforms")
class ImagePixelExtractingTransformer(_ImageStep["ImagePixelExtractingTransformer"]):
    """``extract_pixels``: an image column of known size to a float32 (or uint8) pixel vector of
    shape ``(planes, height, width)`` or, with ``interleave``, ``(height, width, planes)``; see the
    module docstring for ``colors``, ``order``, ``offset`` and ``scale``."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        colors: str = "rgb",
        order: str = "argb",
        interleave: bool = False,
        offset: float | Sequence[float] = 0.0,
        scale: float | Sequence[float] = 1.0,
        output_as_float: bool = True,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.colors = _parse_colors(colors, self.step_name)
        self.order = _parse_order(order, self.step_name)
        self.interleave = _validation.boolean(interleave, "interleave", self.step_name)
        self.output_as_float = _validation.boolean(output_as_float, "output_as_float", self.step_name)
        self.planes = "".join(c for c in self.order if c in self.colors)
        self.offset = self._per_plane("offset", offset)
        self.scale = self._per_plane("scale", scale)
        if np.any(np.asarray(self.scale) == 0):
            raise InvalidArgumentError(f"{self.step_name}: scale must not be 0 (every value would be 0)")
        if not self.output_as_float and (np.any(np.asarray(self.offset) != 0) or np.any(np.asarray(self.scale) != 1)):
            raise InvalidArgumentError(
                f"{self.step_name}: offset={offset!r} and scale={scale!r} need float output; with "
                "output_as_float=False the pixels are the uint8 values (leave offset=0 and scale=1)"
            )

    def _per_plane(self, what: str, value: object) -> float | tuple[float, ...]:
        """One number for every plane, or one per plane in the order of the output planes."""
        values: list[Any] = list(value) if isinstance(value, Sequence | np.ndarray) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float | np.number) or not math.isfinite(v):
                raise _validation.invalid(self.step_name, what, "a finite number (or one per plane)", value)
        if len(values) == 1 and not isinstance(value, Sequence | np.ndarray):
            return float(values[0])
        if len(values) != len(self.planes):
            raise InvalidArgumentError(
                f"{self.step_name}: {what} has {len(values)} values but the output has {len(self.planes)} planes "
                f"({', '.join(self.planes)}); give one number, or one per plane in that order"
            )
        return tuple(float(v) for v in values)

    def _affine(self, value: float | tuple[float, ...]) -> np.ndarray:
        """``offset`` or ``scale`` as float32, shaped to broadcast over a row's (planes, H, W) or (H, W, planes)."""
        arr = np.asarray(value, dtype=np.float32)
        return arr if arr.ndim == 0 or self.interleave else arr.reshape(-1, 1, 1)

    def _params(self) -> tuple[object, ...]:
        return (
            self.output_column_name,
            self.input_column_name,
            self.colors,
            self.order,
            self.interleave,
            self.offset,
            self.scale,
            self.output_as_float,
        )

    def _size(self, schema: Schema) -> tuple[int, int]:
        ct = _image_input(self, schema)
        if ct.height is None or ct.width is None:
            raise ShapeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}, an image of unknown size, "
                "but the pixel vector needs a known size; add resize_images(...) before extract_pixels"
            )
        return ct.height, ct.width

    def _out_shape(self, height: int, width: int) -> tuple[int, int, int]:
        planes = len(self.planes)
        return (height, width, planes) if self.interleave else (planes, height, width)

    def output_schema(self, input_schema: Schema) -> Schema:
        height, width = self._size(input_schema)
        dtype = DType.FLOAT32 if self.output_as_float else DType.UINT8
        return input_schema.with_columns(
            Column(self.output_column_name, TensorType(dtype, self._out_shape(height, width)))
        )

    def _compute(
        self, columns: Mapping[str, ColumnValues], schema: Schema, n_rows: int, first_row: int, *, may_skip: bool
    ) -> tuple[ColumnValues, list[bool] | None]:
        height, width = self._size(schema)
        out = np.empty(
            (n_rows, *self._out_shape(height, width)), dtype=np.float32 if self.output_as_float else np.uint8
        )
        for i, img in enumerate(columns[self.input_column_name]):
            _check_channels(img, self.step_name, self.input_column_name, first_row + i)
            if img.shape[:2] != (height, width):
                raise ShapeError(
                    f"{self.step_name}: row {first_row + i} of column {self.input_column_name!r} is an image of "
                    f"{img.shape[0]}x{img.shape[1]} (height x width), but the column declares {height}x{width}"
                )
            self._extract_into(img, out[i])
        if np.any(np.asarray(self.offset) != 0):
            np.subtract(out, self._affine(self.offset), out=out)
        if np.any(np.asarray(self.scale) != 1):
            np.multiply(out, self._affine(self.scale), out=out)
        return out, None

    def _extract_into(self, img: np.ndarray, dst: np.ndarray) -> None:
        channels = img.shape[2]
        for p, plane in enumerate(self.planes):
            target = dst[..., p] if self.interleave else dst[p]
            if plane == "a":
                target[...] = img[..., 3] if channels == 4 else 255
            else:
                target[...] = img[..., min("rgb".index(plane), channels - 1)]

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        x = ctx.value(self.input_column_name)  # uint8 [N, H, W, C]
        g = _Graph(ctx)
        const, node = g.const, g.node

        channels = node("Slice", node("Shape", x), const(3), const(4))
        last = node("Sub", channels, const(1))
        if "a" in self.planes:  # missing alpha is 255: pad the channels to 4 with 255, alpha is channel 3
            pads = node("Concat", const([0] * 7), node("Sub", const(4), channels), axis=0)
            x = node("Pad", x, pads, ctx.add_initializer(np.array(255, np.uint8), "opaque"))
        parts = [const(3) if p == "a" else node("Min", const("rgb".index(p)), last) for p in self.planes]
        indices = node("Concat", *parts, axis=0) if len(parts) > 1 else parts[0]
        out = node("Gather", x, indices, axis=3)  # [N, H, W, planes]
        if not self.interleave:
            out = node("Transpose", out, perm=[0, 3, 1, 2])
        if self.output_as_float:
            out = node("Cast", out, to=ONNX_ELEMENT[DType.FLOAT32])
            # Per-plane values get a leading batch axis to broadcast over [N, planes, H, W] / [N, H, W, planes].
            if np.any(np.asarray(self.offset) != 0):
                out = node("Sub", out, ctx.add_initializer(self._affine(self.offset)[np.newaxis], "offset"))
            if np.any(np.asarray(self.scale) != 1):
                out = node("Mul", out, ctx.add_initializer(self._affine(self.scale)[np.newaxis], "scale"))
        ctx.set_value(self.output_column_name, out)


# --------------------------------------------------------------------------------------------
# Grayscale


def _grayscale(img: np.ndarray) -> np.ndarray:
    if img.shape[2] == 1:
        return img
    r, g, b = (np.uint32(w) * img[..., k] for k, w in enumerate(_GRAY_WEIGHTS))
    return ((r + g + b + np.uint32(1 << 15)) >> np.uint32(16)).astype(np.uint8)[..., np.newaxis]


@component("convert_to_grayscale", catalog="transforms")
class ImageGrayscalingTransformer(_ImageStep["ImageGrayscalingTransformer"]):
    """``convert_to_grayscale``: RGB and RGBA images to 1-channel gray (Pillow's ``convert("L")``);
    the output is an image column of the input's size."""

    def __init__(self, output_column_name: str, input_column_name: str | None = None) -> None:
        self._set_columns(output_column_name, input_column_name)

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = _image_input(self, input_schema)
        return input_schema.with_columns(Column(self.output_column_name, ImageType(ct.height, ct.width)))

    def _compute(
        self, columns: Mapping[str, ColumnValues], schema: Schema, n_rows: int, first_row: int, *, may_skip: bool
    ) -> tuple[ColumnValues, list[bool] | None]:
        images = list(columns[self.input_column_name])
        for i, img in enumerate(images):
            _check_channels(img, self.step_name, self.input_column_name, first_row + i)
        return _map_rows(_grayscale, images), None

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        x = ctx.value(self.input_column_name)  # uint8 [N, H, W, C]
        g = _Graph(ctx)
        const, node = g.const, g.node

        last = node("Sub", node("Slice", node("Shape", x), const(3), const(4)), const(1))
        rgb = node("Gather", x, node("Min", const([0, 1, 2]), last), axis=3)  # gray: R = G = B = L
        weighted = node(
            "Mul",
            node("Cast", rgb, to=ONNX_ELEMENT[DType.INT32]),
            ctx.add_initializer(np.array(_GRAY_WEIGHTS, np.int32)),
        )
        total = node(
            "Add",
            node("ReduceSum", weighted, const(3), keepdims=1),
            ctx.add_initializer(np.array(1 << 15, np.int32), "half"),
        )
        gray = node("Div", total, ctx.add_initializer(np.array(1 << 16, np.int32), "one"))
        ctx.set_value(self.output_column_name, node("Cast", gray, to=ONNX_ELEMENT[DType.UINT8]))
