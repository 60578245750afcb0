"""Image columns and the image transforms: ImageType, decoding (modes, EXIF), load_images and
its errors, resize_images, crop_images, extract_pixels, convert_to_grayscale, load_from_image_folder,
and the ONNX export of the image steps against the Python transforms."""

from __future__ import annotations

import io
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import onnxpipe as op
from onnxpipe import ImageType, LoadColumn, SkippedRowWarning, TensorType
from onnxpipe.data import DataView
from onnxpipe.data import _images as data_images
from onnxpipe.data._convert import arrow_schema, to_arrow
from onnxpipe.data._images import pillow
from onnxpipe.errors import (
    ColumnTypeError,
    DataError,
    DataFileNotFoundError,
    ImageDecodeError,
    InvalidArgumentError,
    MissingDependencyError,
    SchemaError,
    ShapeError,
)
from onnxpipe.schema import Column, DType, Schema, column_type_from_json, column_type_to_json, schema_of
from onnxpipe.testing import check_component
from onnxpipe.transforms.images import CROP_ANCHORS

Image = pytest.importorskip("PIL.Image", reason="Pillow (the images extra) is not installed")

ctx = op.MLContext(seed=0)
RNG = np.random.default_rng(7)
PHOTOS = ("banana.jpg", "hotdog.jpg", "tomato.jpg")

# Largest difference between Pillow's resize and ONNX Runtime's Resize, in levels of 255 (see the
# docstring of onnxpipe.transforms.images for the measurements).
RESIZE_MAX_DIFF = 2
RESIZE_MEAN_DIFF_PHOTOS = 0.02
RESIZE_MEAN_DIFF_NOISE = 0.1


@dataclass
class PathRow:
    ImagePath: Annotated[str, LoadColumn(0)]
    Label: Annotated[str, LoadColumn(1)]


@dataclass
class ImageRow:
    Image: Annotated[np.ndarray, ImageType()]
    Id: int


@dataclass
class PilRow:
    Image: Image.Image


def noise(height: int, width: int, channels: int) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)


def image_view(*images: np.ndarray) -> DataView:
    return ctx.data.load_from_enumerable([ImageRow(img, i) for i, img in enumerate(images)], ImageRow)


@dataclass
class SmallImageRow:
    Image: Annotated[np.ndarray, ImageType(4, 6)]


def sized_view(images: list[np.ndarray]) -> DataView:
    """Images of one size, which the column declares."""
    height, width = images[0].shape[:2]
    schema = Schema([Column("Image", ImageType(height, width))])
    batch = pa.RecordBatch.from_arrays([to_arrow(images, schema["Image"].type, "Image")], schema=arrow_schema(schema))
    return DataView(schema, lambda: iter([batch]), len(images))


def mixed_images() -> list[np.ndarray]:
    """Gray, RGB and RGBA images of several sizes and aspect ratios."""
    return [noise(37, 53, 3), noise(60, 20, 1), noise(31, 31, 4), noise(5, 90, 3), noise(120, 80, 3)]


def write_png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(path)
    return path


@pytest.fixture
def photos(mlnet_data: Path) -> Path:
    folder = mlnet_data / "images"
    if not all((folder / p).is_file() for p in PHOTOS):
        pytest.skip(f"ML.NET's test photos not found in {folder}")
    return folder


def photo_paths(folder: Path) -> DataView:
    return ctx.data.load_from_enumerable([PathRow(p, p.split(".")[0]) for p in PHOTOS], PathRow)


def decoded_photos(folder: Path) -> DataView:
    return ctx.transforms.load_images("Image", folder, "ImagePath").transform(photo_paths(folder))


# --------------------------------------------------------------------------------------------
# ImageType


def test_image_type_is_a_uint8_tensor_type_of_its_own() -> None:
    t = ImageType(224, 320)
    assert (t.height, t.width, t.dtype, t.shape) == (224, 320, DType.UINT8, (224, 320, None))
    assert isinstance(t, TensorType)
    assert t != TensorType(DType.UINT8, (224, 320, None)) and TensorType(DType.UINT8, (224, 320, None)) != t
    assert t == ImageType(224, 320) and hash(t) == hash(ImageType(224, 320)) and t != ImageType()
    assert (str(t), str(ImageType()), repr(t)) == ("image<224x320>", "image<?x?>", "ImageType(height=224, width=320)")
    assert column_type_to_json(t) == {"kind": "image", "height": 224, "width": 320}
    assert column_type_from_json(column_type_to_json(t)) == t
    assert column_type_from_json(column_type_to_json(ImageType())) == ImageType()
    with pytest.raises(SchemaError, match=r"ImageType\(height=0, width=5\): the height must be a positive"):
        ImageType(0, 5)


def test_schema_classes_declare_image_columns() -> None:
    @dataclass
    class Declared:
        a: Annotated[np.ndarray, ImageType(32, 48)]
        b: Annotated[npt.NDArray[np.uint8], ImageType()]
        c: Image.Image
        d: Annotated[Image.Image, ImageType(8, 8)]

    schema = schema_of(Declared)
    assert [schema[n].type for n in "abcd"] == [ImageType(32, 48), ImageType(), ImageType(), ImageType(8, 8)]

    @dataclass
    class Wrong:
        a: Annotated[float, ImageType()]

    with pytest.raises(ColumnTypeError, match=r"Wrong\.a: an ImageType field holds a numpy array"):
        schema_of(Wrong)


def test_image_columns_keep_their_type_through_arrow_and_parquet(tmp_path: Path) -> None:
    images = mixed_images()
    view = image_view(*images)
    again = ctx.data.load_from_arrow(view.to_arrow())
    assert again.schema == view.schema and again.schema["Image"].type == ImageType()
    pq.write_table(view.to_arrow(), tmp_path / "images.parquet")
    stored = ctx.data.load_from_parquet(tmp_path / "images.parquet")
    assert stored.schema == view.schema
    for got, img in zip(stored.column("Image"), images, strict=True):
        np.testing.assert_array_equal(got, img)
    sized = ctx.data.load_from_enumerable([SmallImageRow(noise(4, 6, 3)), SmallImageRow(noise(4, 6, 1))], SmallImageRow)
    assert ctx.data.load_from_arrow(sized.to_arrow()).schema["Image"].type == ImageType(4, 6)
    assert [a.shape for a in ctx.data.load_from_arrow(sized.to_arrow()).column("Image")] == [(4, 6, 3), (4, 6, 1)]


def test_rows_with_a_declared_size_must_have_it() -> None:
    with pytest.raises(ShapeError, match=r"row 1: the image is 5x6 \(height x width\), the field declares image<4x6>"):
        ctx.data.load_from_enumerable([SmallImageRow(noise(4, 6, 3)), SmallImageRow(noise(5, 6, 3))], SmallImageRow)
    with pytest.raises(ColumnTypeError, match=r"row 0: an image holds uint8 pixels, got float32"):
        image_view(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"1, 3 or 4 channels, got shape \(2, 2, 2\)"):
        image_view(np.zeros((2, 2, 2), np.uint8))
    assert image_view(np.zeros((2, 3), np.uint8)).column("Image")[0].shape == (2, 3, 1)  # 2-D is gray


# --------------------------------------------------------------------------------------------
# Modes


def _modes() -> list[tuple[str, Any, np.ndarray]]:
    """(label, Pillow image, expected array) for every mode rule."""
    rgb = noise(3, 4, 3)
    rgba = noise(3, 4, 4)
    gray = rgb[..., 0]
    palette = Image.fromarray(rgb).quantize(8)
    transparent = palette.copy()
    transparent.info["transparency"] = 0
    bilevel = Image.fromarray(gray).convert("1")
    wide = RNG.integers(0, 65536, (3, 4), dtype=np.uint16)
    return [
        ("L", Image.fromarray(gray), gray[..., None]),
        ("RGB", Image.fromarray(rgb), rgb),
        ("RGBA", Image.fromarray(rgba), rgba),
        ("1", bilevel, np.asarray(bilevel.convert("L"))[..., None]),
        ("P", palette, np.asarray(palette.convert("RGB"))),
        ("P+transparency", transparent, np.asarray(transparent.convert("RGBA"))),
        ("LA", Image.fromarray(rgba[..., :2], "LA"), np.stack([rgba[..., 0]] * 3 + [rgba[..., 1]], axis=-1)),
        ("PA", palette.convert("PA"), np.asarray(palette.convert("PA").convert("RGBA"))),
        ("CMYK", Image.fromarray(rgb).convert("CMYK"), np.asarray(Image.fromarray(rgb).convert("CMYK").convert("RGB"))),
        (
            "YCbCr",
            Image.fromarray(rgb).convert("YCbCr"),
            np.asarray(Image.fromarray(rgb).convert("YCbCr").convert("RGB")),
        ),
        ("I;16", Image.fromarray(wide), (wide >> 8).astype(np.uint8)[..., None]),
        (
            "I;16B",
            Image.frombytes("I;16B", (4, 3), wide.astype(">u2").tobytes()),
            (wide >> 8).astype(np.uint8)[..., None],
        ),
        ("I", Image.fromarray(np.array([[-5, 0, 300, 70000]], np.int32)), np.array([[[0], [0], [1], [255]]], np.uint8)),
        (
            "F",
            Image.fromarray(np.array([[np.nan, 511.9, 65535.0, 1e9]], np.float32)),
            np.array([[[0], [1], [255], [255]]], np.uint8),
        ),
    ]


@pytest.mark.parametrize("label", [m[0] for m in _modes()])
def test_pillow_rows_become_arrays_by_the_mode_rules(label: str) -> None:
    _, image, expected = next(m for m in _modes() if m[0] == label)
    (got,) = ctx.data.load_from_enumerable([PilRow(image)], PilRow).column("Image")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_files_of_every_mode_decode_by_the_same_rules(tmp_path: Path) -> None:
    files: dict[str, np.ndarray] = {}
    for label, image, expected in _modes():
        if label in ("LA", "P+transparency", "RGBA", "L", "P", "I;16", "1"):
            path = tmp_path / f"{label.replace(';', '_').replace('+', '_')}.png"
            image.save(path)
        elif label in ("CMYK", "YCbCr"):
            continue  # lossy in JPEG: decoded below against Pillow's own conversion
        else:
            path = tmp_path / f"{label.replace(';', '_')}.tiff"
            image.save(path)
        files[path.name] = expected
    cmyk = Image.fromarray(noise(8, 8, 3)).convert("CMYK")
    cmyk.save(tmp_path / "cmyk.jpg")
    files["cmyk.jpg"] = np.asarray(Image.open(tmp_path / "cmyk.jpg").convert("RGB"))
    names = sorted(files)
    view = ctx.data.load_from_enumerable([PathRow(n, "") for n in names], PathRow)
    loaded = ctx.transforms.load_images("Image", tmp_path, "ImagePath").transform(view).column("Image")
    for name, got in zip(names, loaded, strict=True):
        np.testing.assert_array_equal(got, files[name], err_msg=name)


def test_an_unsupported_mode_names_the_file_row_and_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow 13 has no mode outside the rules: pretend RGB were one, to see the errors.
    monkeypatch.setattr(data_images, "_KEPT", frozenset({"L", "RGBA"}))
    write_png(tmp_path / "gray.png", noise(4, 4, 1))
    write_png(tmp_path / "color.png", noise(4, 4, 3))
    view = ctx.data.load_from_enumerable([PathRow("gray.png", ""), PathRow("color.png", "")], PathRow)
    with pytest.raises(
        ImageDecodeError,
        match=r"row 1: image file '.*color\.png' cannot be read.*: Pillow image mode 'RGB' is not supported",
    ):
        ctx.transforms.load_images("Image", tmp_path, "ImagePath").transform(view).to_arrow()
    with pytest.raises(ColumnTypeError, match=r"row 0: Pillow image mode 'RGB' is not supported"):
        ctx.data.load_from_enumerable([PilRow(Image.new("RGB", (2, 2)))], PilRow)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # 16 high, 32 wide: left half red, right half blue. Orientation 6 = shown turned 90 degrees
    # clockwise, so the upright image is 32 high, 16 wide, red on top.
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:, :16, 0] = 255
    arr[:, 16:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    Image.fromarray(arr).save(tmp_path / "plain.jpg", quality=95)
    view = ctx.data.load_from_enumerable([PathRow("turned.jpg", ""), PathRow("plain.jpg", "")], PathRow)
    turned, plain = ctx.transforms.load_images("Image", tmp_path, "ImagePath").transform(view).column("Image")
    assert turned.shape == (32, 16, 3) and plain.shape == (16, 32, 3)
    top, bottom = turned[:14].reshape(-1, 3).mean(axis=0), turned[18:].reshape(-1, 3).mean(axis=0)
    assert top[0] > 240 and top[2] < 15 and bottom[2] > 240 and bottom[0] < 15


def test_pillow_is_an_optional_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'onnxpipe\[images\]'"):
        pillow()


# --------------------------------------------------------------------------------------------
# load_images


def test_load_images_decodes_the_photos(photos: Path) -> None:
    model = check_component(
        ctx.transforms.load_images("Image", photos, "ImagePath"), photo_paths(photos), exportable=False
    )
    scored = model.transform(photo_paths(photos))
    assert scored.schema["Image"].type == ImageType() and scored.row_count == 3
    for name, img in zip(PHOTOS, scored.column("Image"), strict=True):
        np.testing.assert_array_equal(img, np.asarray(Image.open(photos / name).convert("RGB")))
    with pytest.raises(
        ValueError, match=r"step 0 \(load_images\(Image <- ImagePath\)\) cannot be exported to ONNX: it reads files"
    ):
        ctx.model.convert_to_onnx(model, photo_paths(photos))


def test_absolute_paths_and_no_folder(photos: Path, tmp_path: Path) -> None:
    rows = [PathRow(str(photos / p), "") for p in PHOTOS]
    view = ctx.data.load_from_enumerable(rows, PathRow)
    with_folder = ctx.transforms.load_images("Image", tmp_path, "ImagePath").transform(view)
    without = ctx.transforms.load_images("Image", input_column_name="ImagePath").transform(view)
    for a, b in zip(with_folder.column("Image"), without.column("Image"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_missing_folder_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(
        DataFileNotFoundError, match=r"load_images\(Image <- Path\): image_folder '.*nowhere' does not exist"
    ):
        ctx.transforms.load_images("Image", tmp_path / "nowhere", "Path")


def test_the_missing_file_of_mlnets_list_names_file_and_row(mlnet_data: Path) -> None:
    listing = ctx.data.load_from_text_file(mlnet_data / "images" / "images.tsv", PathRow)
    loaded = ctx.transforms.load_images("Image", mlnet_data / "images", "ImagePath").transform(listing)
    with pytest.raises(
        DataFileNotFoundError,
        match=r"load_images\(Image <- ImagePath\): row 0: image file '.*images/tomato\.bmp' does not exist \(column "
        r"'ImagePath' holds 'tomato\.bmp'\); fix the path or the file, or pass on_error='skip'",
    ):
        loaded.to_arrow()


def test_a_corrupt_or_truncated_file_names_file_row_and_reason(tmp_path: Path) -> None:
    write_png(tmp_path / "good.png", noise(20, 20, 3))
    (tmp_path / "garbage.png").write_bytes(b"this is not an image at all" * 10)
    buf = io.BytesIO()
    Image.fromarray(noise(64, 64, 3)).save(buf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    load = ctx.transforms.load_images("Image", tmp_path, "ImagePath")
    garbage = ctx.data.load_from_enumerable([PathRow("good.png", ""), PathRow("garbage.png", "")], PathRow)
    with pytest.raises(
        ImageDecodeError, match=r"row 1: image file '.*garbage\.png' cannot be read .*UnidentifiedImageError"
    ):
        load.transform(garbage).to_arrow()
    truncated = ctx.data.load_from_enumerable([PathRow("truncated.jpg", "")], PathRow)
    with pytest.raises(ImageDecodeError, match=r"row 0: image file '.*truncated\.jpg' cannot be read .*truncated"):
        load.transform(truncated).to_arrow()


def test_rows_are_counted_over_batches_and_kept_in_order(tmp_path: Path) -> None:
    images = [noise(10 + k, 20 - k, 3) for k in range(9)]
    rows = [PathRow(write_png(tmp_path / f"{k}.png", img).name, str(k)) for k, img in enumerate(images)]
    view = ctx.data.load_from_enumerable(rows, PathRow, batch_size=4)
    loaded = ctx.transforms.load_images("Image", tmp_path, "ImagePath").transform(view)
    for img, got in zip(images, loaded.column("Image"), strict=True):
        np.testing.assert_array_equal(got, img)
    rows[6] = PathRow("gone.png", "6")
    view = ctx.data.load_from_enumerable(rows, PathRow, batch_size=4)
    with pytest.raises(DataFileNotFoundError, match=r"row 6: image file '.*gone\.png' does not exist"):
        ctx.transforms.load_images("Image", tmp_path, "ImagePath").transform(view).to_arrow()


def test_skip_drops_bad_rows_with_a_warning(tmp_path: Path) -> None:
    good = [noise(8, 8, 3), noise(9, 7, 1), noise(5, 5, 4)]
    for k, img in enumerate(good):
        write_png(tmp_path / f"g{k}.png", img)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    names = ["g0.png", "missing.png", "g1.png", "bad.png", "g2.png"]
    view = ctx.data.load_from_enumerable([PathRow(n, f"label{k}") for k, n in enumerate(names)], PathRow, batch_size=2)
    loaded = ctx.transforms.load_images("Image", tmp_path, "ImagePath", on_error="skip").transform(view)
    assert loaded.row_count is None
    with pytest.warns(SkippedRowWarning) as caught:
        table = loaded.to_arrow()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "row 1: image file" in messages[0] and "missing.png' does not exist" in messages[0]
    assert "row 3: image file" in messages[1] and "bad.png' cannot be read" in messages[1]
    assert all(m.endswith("the row is skipped") for m in messages)
    assert table.column("Label").to_pylist() == ["label0", "label2", "label4"]
    assert table.column("ImagePath").to_pylist() == ["g0.png", "g1.png", "g2.png"]
    with pytest.warns(SkippedRowWarning):
        images = loaded.column("Image")
    for img, got in zip(good, images, strict=True):
        np.testing.assert_array_equal(got, img)


def test_skip_cannot_drop_the_row_of_a_prediction(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", noise(4, 4, 3))

    @dataclass
    class In:
        ImagePath: str

    @dataclass
    class Out:
        Image: Image.Image

    model = ctx.transforms.load_images("Image", tmp_path, "ImagePath", on_error="skip").fit(
        ctx.data.load_from_enumerable([], In)
    )
    engine = ctx.model.create_prediction_engine(model, In, Out)
    assert engine.predict(In("a.png")).Image.size == (4, 4)
    with pytest.raises(
        DataFileNotFoundError, match=r"row 0: image file .*gone\.png' does not exist.*on_error='skip' drops rows only"
    ):
        engine.predict(In("gone.png"))


def test_load_images_checks_its_arguments_and_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"on_error must be one of 'raise', 'skip', got 'ignore'"):
        ctx.transforms.load_images("Image", tmp_path, "Path", on_error="ignore")  # type: ignore[arg-type]
    view = image_view(noise(2, 2, 3))
    with pytest.raises(ColumnTypeError, match=r"input column 'Id' is int64; expected a string column of file paths"):
        ctx.transforms.load_images("Out", tmp_path, "Id").fit(view)


def test_load_raw_image_bytes(photos: Path) -> None:
    model = check_component(
        ctx.transforms.load_raw_image_bytes("Bytes", photos, "ImagePath"), photo_paths(photos), exportable=False
    )
    scored = model.transform(photo_paths(photos))
    assert scored.schema["Bytes"].type == TensorType(DType.UINT8, (None,))
    for name, got in zip(PHOTOS, scored.column("Bytes"), strict=True):
        assert got.tobytes() == (photos / name).read_bytes()
    with pytest.raises(ColumnTypeError, match=r"input column 'Bytes' is uint8\[\?\]; expected an image column"):
        ctx.transforms.resize_images("Small", 8, 8, "Bytes").fit(scored)


def test_load_from_image_folder(tmp_path: Path) -> None:
    for sub, name in [("dog", "b.PNG"), ("cat", "a.png"), ("cat/kitten", "c.jpg"), ("", "top.bmp")]:
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        arr = noise(6, 5, 3)
        Image.fromarray(arr).save(
            tmp_path / sub / name, format={"png": "PNG", "jpg": "JPEG", "bmp": "BMP"}[name[-3:].lower()]
        )
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    view = ctx.data.load_from_image_folder(tmp_path)
    assert view.schema == Schema.of(ImagePath=TensorType(DType.STRING), Label=TensorType(DType.STRING))
    paths = list(view.column("ImagePath"))
    root = str(tmp_path.resolve())
    assert paths == sorted(paths) and all(p.startswith(root) for p in paths)
    assert [Path(p).relative_to(root).as_posix() for p in paths] == [
        "cat/a.png",
        "cat/kitten/c.jpg",
        "dog/b.PNG",
        "top.bmp",
    ]
    assert list(view.column("Label")) == ["cat", "kitten", "dog", tmp_path.name]
    flat = ctx.data.load_from_image_folder(tmp_path / "cat", recursive=False, use_folder_name_as_label=False)
    assert flat.schema.names == ["ImagePath"] and [Path(p).name for p in flat.column("ImagePath")] == ["a.png"]
    images = ctx.transforms.load_images("Image", input_column_name="ImagePath").transform(view).column("Image")
    assert [img.shape for img in images] == [(6, 5, 3)] * 4
    with pytest.raises(DataFileNotFoundError, match=r"load_from_image_folder: folder '.*nowhere' does not exist"):
        ctx.data.load_from_image_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no files with the extensions \.gif in"):
        ctx.data.load_from_image_folder(tmp_path, extensions=["gif"])


# --------------------------------------------------------------------------------------------
# resize_images


@pytest.mark.parametrize(
    ("resizing", "anchor"),
    [("iso_crop", "center"), ("iso_crop", "left"), ("iso_crop", "bottom"), ("iso_pad", "center"), ("fill", "center")],
)
def test_resize_images_conforms_and_exports(resizing: str, anchor: str) -> None:
    view = image_view(*mixed_images())
    est = ctx.transforms.resize_images("Small", 24, 16, "Image", resizing=resizing, crop_anchor=anchor)  # type: ignore[arg-type]
    model = check_component(est, view, exportable=True)
    scored = model.transform(view)
    assert scored.schema["Small"].type == ImageType(16, 24)
    assert [img.shape for img in scored.column("Small")] == [(16, 24, c) for c in (3, 1, 4, 3, 3)]


def _halves(height: int, width: int, vertical: bool) -> np.ndarray:
    """Red in the first half (left, or top when ``vertical``), green in the second."""
    arr = np.zeros((height, width, 3), np.uint8)
    if vertical:
        arr[: height // 2, :, 0] = 255
        arr[height // 2 :, :, 1] = 255
    else:
        arr[:, : width // 2, 0] = 255
        arr[:, width // 2 :, 1] = 255
    return arr


RED, GREEN, BLACK = [255, 0, 0], [0, 255, 0], [0, 0, 0]


def _resized(img: np.ndarray, width: int, height: int, **options: Any) -> np.ndarray:
    step = ctx.transforms.resize_images("Out", width, height, "Image", **options)
    (out,) = step.transform(image_view(img)).column("Out")
    return np.asarray(out)


def test_crop_anchors_keep_the_expected_part() -> None:
    wide, tall = _halves(10, 20, vertical=False), _halves(20, 10, vertical=True)
    assert np.all(_resized(wide, 10, 10, crop_anchor="left") == RED)
    assert np.all(_resized(wide, 10, 10, crop_anchor="right") == GREEN)
    centre = _resized(wide, 10, 10)
    assert np.all(centre[:, :5] == RED) and np.all(centre[:, 5:] == GREEN)
    assert np.all(_resized(tall, 10, 10, crop_anchor="top") == RED)
    assert np.all(_resized(tall, 10, 10, crop_anchor="bottom") == GREEN)
    # An anchor along the axis that is not cut keeps the centre.
    assert np.array_equal(_resized(wide, 10, 10, crop_anchor="top"), centre)
    # Scaled first: 20x60 -> 10x30, then the left 10 columns (away from the blurred middle).
    assert np.all(_resized(_halves(20, 60, vertical=False), 10, 10, crop_anchor="left") == RED)


def test_iso_pad_and_fill() -> None:
    wide = _halves(10, 20, vertical=False)
    padded = _resized(wide, 20, 20, resizing="iso_pad")
    assert padded.shape == (20, 20, 3)
    assert np.all(padded[:5] == BLACK) and np.all(padded[15:] == BLACK)
    np.testing.assert_array_equal(padded[5:15], wide)
    odd = _resized(_halves(10, 20, vertical=False), 20, 13, resizing="iso_pad")  # 10x20 fits as is: pad 1 + 2
    assert np.all(odd[:1] == BLACK) and np.all(odd[11:] == BLACK) and not np.any(np.all(odd[1:11] == BLACK, axis=-1))
    filled = _resized(wide, 4, 6, resizing="fill")
    assert filled.shape == (6, 4, 3)
    assert np.all(filled[:, 0] == RED) and np.all(filled[:, -1] == GREEN)
    # the same image resized to its own size is unchanged in every mode
    for mode in ("iso_crop", "iso_pad", "fill"):
        np.testing.assert_array_equal(_resized(wide, 20, 10, resizing=mode), wide)


def test_resize_matches_pillow_bilinear() -> None:
    img = noise(30, 50, 3)
    expected = np.asarray(Image.fromarray(img).resize((25, 15), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(_resized(img, 25, 15, resizing="fill"), expected)
    # Alpha is resampled like any channel (Pillow's RGBA resize would premultiply it).
    rgba = noise(30, 50, 4)
    out = _resized(rgba, 25, 15, resizing="fill")
    for k in range(4):
        band = np.asarray(Image.fromarray(rgba[..., k]).resize((25, 15), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(out[..., k], band)


def test_resize_checks_its_arguments() -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"resizing must be one of 'iso_crop', 'iso_pad', 'fill', got 'crop'"
    ):
        ctx.transforms.resize_images("a", 2, 2, resizing="crop")  # type: ignore[arg-type]
    with pytest.raises(
        InvalidArgumentError,
        match=r"crop_anchor must be one of 'center', 'left', 'right', 'top', 'bottom', got 'middle'",
    ):
        ctx.transforms.resize_images("a", 2, 2, crop_anchor="middle")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"image_height must be a positive number of pixels, got 0"):
        ctx.transforms.resize_images("a", 2, 0)
    with pytest.raises(ColumnTypeError, match=r"input column 'Id' is int64; expected an image column"):
        ctx.transforms.resize_images("a", 2, 2, "Id").fit(image_view(noise(2, 2, 3)))


def _resize_differences(cases: list[tuple[np.ndarray, int, int]]) -> tuple[int, float]:
    """Largest and mean |Pillow - ONNX Runtime| over resizing each image with ``fill``."""
    worst, total, count = 0, 0.0, 0
    for img, width, height in cases:
        step = ctx.transforms.resize_images("Out", width, height, "Image", resizing="fill")
        view = image_view(img)
        proto = ctx.model.convert_to_onnx(step, view, output_columns=["Out"])
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        (onnx_out,) = session.run(None, {"Image": img[np.newaxis]})
        (python_out,) = step.transform(view).column("Out")
        diff = np.abs(onnx_out[0].astype(np.int64) - python_out)
        worst, total, count = max(worst, int(diff.max())), total + float(diff.sum()), count + diff.size
    return worst, total / count


def test_resize_tolerance_on_photos(photos: Path) -> None:
    images = decoded_photos(photos).column("Image")
    sizes = [(224, 224), (299, 299), (416, 416), (1000, 700), (13, 7), (320, 320), (227, 227), (256, 171)]
    worst, mean = _resize_differences([(img, w, h) for img in images for w, h in sizes])
    assert worst <= RESIZE_MAX_DIFF and mean <= RESIZE_MEAN_DIFF_PHOTOS


def test_resize_tolerance_on_noise() -> None:
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(40):
        h, w, th, tw = (int(v) for v in rng.integers(1, 300, 4))
        cases.append((rng.integers(0, 256, (h, w, int(rng.choice([1, 3, 4]))), dtype=np.uint8), tw, th))
    worst, mean = _resize_differences(cases)
    assert worst <= RESIZE_MAX_DIFF and mean <= RESIZE_MEAN_DIFF_NOISE
    # Integer ratios (halving, doubling) agree exactly.
    exact = [(noise(40, 60, 3), 30, 20), (noise(16, 16, 1), 32, 32), (noise(64, 48, 4), 12, 16)]
    assert _resize_differences(exact)[0] == 0


# --------------------------------------------------------------------------------------------
# crop_images


def crop_cases() -> list[np.ndarray]:
    """Gray, RGB and RGBA images all at least 9x9, whose excess over an 8x7 crop (height x width) is
    even and odd (1, 3, 5) on both axes."""
    return [noise(10, 12, 3), noise(11, 13, 1), noise(13, 17, 4), noise(9, 18, 3), noise(12, 9, 3), noise(8, 7, 3)]


def torchvision_offset(size: int, crop: int) -> int:
    """torchvision's CenterCrop: ``int(round((image_size - crop_size) / 2.0))`` (Python's round, half to even)."""
    return round((size - crop) / 2.0)


def coordinates(height: int, width: int) -> np.ndarray:
    """An image whose pixel (y, x) holds (y, x, 0), so a crop shows where it starts."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([ys, xs, np.zeros_like(ys)], axis=-1).astype(np.uint8)


def _cropped(img: np.ndarray, width: int, height: int, **options: Any) -> np.ndarray:
    step = ctx.transforms.crop_images("Out", width, height, "Image", **options)
    (out,) = step.transform(image_view(img)).column("Out")
    return np.asarray(out)


@pytest.mark.parametrize("anchor", ["center", "left", "right", "top", "bottom"])
def test_crop_images_conforms_and_exports_exactly(anchor: str) -> None:
    images = crop_cases()
    view = image_view(*images)
    est = ctx.transforms.crop_images("Crop", 7, 8, "Image", crop_anchor=anchor)  # type: ignore[arg-type]
    model = check_component(est, view, exportable=True)  # ONNX parity is exact: no tolerance is declared
    scored = model.transform(view)
    assert scored.schema["Crop"].type == ImageType(8, 7)
    assert [img.shape for img in scored.column("Crop")] == [(8, 7, c) for c in (3, 1, 4, 3, 3, 3)]
    # Each row is a plain cut of its image, at the offsets torchvision's rule gives on a centred axis.
    for img, got in zip(images, scored.column("Crop"), strict=True):
        height, width = img.shape[:2]
        top = {"top": 0, "bottom": height - 8}.get(anchor, torchvision_offset(height, 8))
        left = {"left": 0, "right": width - 7}.get(anchor, torchvision_offset(width, 7))
        np.testing.assert_array_equal(got, img[top : top + 8, left : left + 7])


def test_centre_offsets_round_half_to_even_like_torchvision() -> None:
    # excess 0..7 on the height, 7 - excess on the width: (1, 3, 5, 7) -> (0, 2, 2, 4)
    expected = {0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 2, 6: 3, 7: 4}
    for excess, start in expected.items():
        assert torchvision_offset(4 + excess, 4) == start  # the rule the step claims to follow
        out = _cropped(coordinates(4 + excess, 11 - excess), 4, 4)
        assert (int(out[0, 0, 0]), int(out[0, 0, 1])) == (start, expected[7 - excess])
    # Anchors along one axis leave the other centred; the same image exported gives the same starts.
    img = coordinates(9, 12)  # excess 5 (rows) and 8 (columns) over a 4x4 crop
    starts = {a: tuple(int(v) for v in _cropped(img, 4, 4, crop_anchor=a)[0, 0, :2]) for a in CROP_ANCHORS}
    assert starts == {"center": (2, 4), "left": (2, 0), "right": (2, 8), "top": (0, 4), "bottom": (5, 4)}


def test_an_image_smaller_than_the_crop_is_an_error() -> None:
    view = image_view(noise(10, 10, 3), noise(10, 6, 3))
    step = ctx.transforms.crop_images("Out", 8, 8, "Image")
    with pytest.raises(
        ShapeError,
        match=r"crop_images\(Out <- Image\): row 1 of column 'Image' is an image of 10x6, smaller than the 8x8 crop "
        r"\(height x width\); crop_images neither scales nor pads, so resize first \(e.g. resize_images",
    ):
        step.transform(view).column("Out")
    # A declared size is checked when the pipeline is built.
    with pytest.raises(ShapeError, match=r"crop_images\(Out <- Image\): input column 'Image' is image<4x6>, smaller"):
        ctx.transforms.crop_images("Out", 6, 5, "Image").fit(sized_view([noise(4, 6, 3)]))
    sized = ctx.transforms.crop_images("Out", 6, 4, "Image").fit(sized_view([noise(4, 6, 3)]))
    assert sized.output_schema(sized_view([noise(4, 6, 3)]).schema)["Out"].type == ImageType(4, 6)
    # The exported crop fails in ONNX Runtime rather than returning a smaller image.
    proto = ctx.model.convert_to_onnx(step, view, output_columns=["Out"])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in [(10, 6, 3), (7, 9, 1), (4, 8, 4)]:  # 4x8x4 holds as many values as 8x8x2: C is not inferred
        with pytest.raises(Exception, match=r"crop_images\(Out <- Image\): image smaller than the crop"):
            session.run(None, {"Image": noise(*shape)[np.newaxis]})
    (fits,) = session.run(None, {"Image": noise(9, 12, 4)[np.newaxis]})
    assert fits.shape == (1, 8, 8, 4)


def test_crop_checks_its_arguments() -> None:
    with pytest.raises(
        InvalidArgumentError,
        match=r"crop_images\(a\): crop_anchor must be one of 'center', 'left', .*, 'bottom', got 'top_left'",
    ):
        ctx.transforms.crop_images("a", 2, 2, crop_anchor="top_left")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"crop_images\(a\): image_width must be a positive number"):
        ctx.transforms.crop_images("a", 0, 2)
    with pytest.raises(InvalidArgumentError, match=r"image_height must be a positive number of pixels, got True"):
        ctx.transforms.crop_images("a", 2, True)
    with pytest.raises(ColumnTypeError, match=r"input column 'Id' is int64; expected an image column"):
        ctx.transforms.crop_images("a", 2, 2, "Id").fit(image_view(noise(2, 2, 3)))


def test_resize_then_crop_is_torchvisions_resize_and_centre_crop() -> None:
    # torchvision's Resize(32) + CenterCrop(28) on a PIL image: short side to 32 with Pillow's bilinear
    # filter (48x72 -> 32x48, exact), then the centre 28x28 at int(round((size - 28) / 2)).
    img = noise(48, 72, 3)
    resized = np.asarray(Image.fromarray(img).resize((48, 32), Image.Resampling.BILINEAR))
    top, left = torchvision_offset(32, 28), torchvision_offset(48, 28)
    expected = resized[top : top + 28, left : left + 28]
    pipeline = ctx.transforms.resize_images("Image", 32, 32).append(ctx.transforms.crop_images("Image", 28, 28))
    view = image_view(img)
    model = pipeline.fit(view)
    (got,) = model.transform(view).column("Image")
    np.testing.assert_array_equal(got, expected)
    assert model.output_schema(view.schema)["Image"].type == ImageType(28, 28)


# --------------------------------------------------------------------------------------------
# extract_pixels


TINY = np.array([[[10, 20, 30, 40], [50, 60, 70, 80]]], np.uint8)  # one row, two RGBA pixels


def _pixels(images: list[np.ndarray], **options: Any) -> np.ndarray:
    view = sized_view(images)
    return np.asarray(ctx.transforms.extract_pixels("Px", "Image", **options).transform(view).column("Px"))


def test_extract_pixels_planes_orders_and_layout() -> None:
    planar = _pixels([TINY], colors="argb")
    assert planar.shape == (1, 4, 1, 2) and planar.dtype == np.float32
    np.testing.assert_array_equal(planar[0, :, 0], [[40, 80], [10, 50], [20, 60], [30, 70]])
    np.testing.assert_array_equal(_pixels([TINY])[0, :, 0], [[10, 50], [20, 60], [30, 70]])  # rgb, alpha dropped
    bgr = _pixels([TINY], order="bgr")
    np.testing.assert_array_equal(bgr[0, :, 0], [[30, 70], [20, 60], [10, 50]])
    np.testing.assert_array_equal(_pixels([TINY], order="abgr"), bgr)
    np.testing.assert_array_equal(_pixels([TINY], colors="gr", order="agbr")[0, :, 0], [[20, 60], [10, 50]])
    hwc = _pixels([TINY], colors="all", interleave=True)
    assert hwc.shape == (1, 1, 2, 4)
    np.testing.assert_array_equal(hwc[0, 0], [[40, 10, 20, 30], [80, 50, 60, 70]])
    scaled = _pixels([TINY], offset=10, scale=0.5)
    np.testing.assert_array_equal(scaled[0, :, 0], [[0, 20], [5, 25], [10, 30]])
    raw = _pixels([TINY], output_as_float=False, interleave=True)
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw[0, 0], TINY[0, :, :3])


def test_gray_and_rgb_images_fill_missing_planes() -> None:
    gray = np.array([[[7], [9]]], np.uint8)
    rgb = TINY[..., :3]
    out = _pixels([gray, rgb], colors="argb")
    np.testing.assert_array_equal(out[0, :, 0], [[255, 255], [7, 9], [7, 9], [7, 9]])
    np.testing.assert_array_equal(out[1, :, 0], [[255, 255], [10, 50], [20, 60], [30, 70]])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"colors": "argb", "order": "abgr", "interleave": True},
        {"colors": "b", "offset": 127.5, "scale": 1 / 127.5},
        {"output_as_float": False},
        {"colors": "ag", "order": "gbr", "scale": -2.0},
    ],
)
def test_extract_pixels_conforms_and_exports_exactly(options: dict[str, Any]) -> None:
    images = [noise(6, 5, 3), noise(6, 5, 1), noise(6, 5, 4), noise(6, 5, 3)]
    check_component(ctx.transforms.extract_pixels("Px", "Image", **options), sized_view(images), exportable=True)


def test_extract_pixels_checks_its_arguments_and_input() -> None:
    step = "extract_pixels\\(Px <- Image\\)"
    for bad in ("", "rgbx", "rr", 3):
        with pytest.raises(InvalidArgumentError, match=rf"{step}: colors must be letters of 'argb', .*, got {bad!r}$"):
            ctx.transforms.extract_pixels("Px", "Image", colors=bad)  # type: ignore[arg-type]
    with pytest.raises(
        InvalidArgumentError, match=r"order must be one of 'argb', 'arbg', 'abrg', 'abgr', .*, got 'rgba'; e\.g\. 'bgr'"
    ):
        ctx.transforms.extract_pixels("Px", "Image", order="rgba")
    with pytest.raises(InvalidArgumentError, match=r"scale must not be 0"):
        ctx.transforms.extract_pixels("Px", "Image", scale=0)
    with pytest.raises(InvalidArgumentError, match=r"offset must be a finite number \(or one per plane\), got inf"):
        ctx.transforms.extract_pixels("Px", "Image", offset=float("inf"))
    with pytest.raises(InvalidArgumentError, match=r"offset=1 and scale=1.0 need float output"):
        ctx.transforms.extract_pixels("Px", "Image", offset=1, output_as_float=False)
    with pytest.raises(
        ShapeError, match=rf"{step}: input column 'Image' is image<\?x\?>, an image of unknown size.*add resize_images"
    ):
        ctx.transforms.extract_pixels("Px", "Image").fit(image_view(noise(2, 2, 3)))
    with pytest.raises(ColumnTypeError, match=r"input column 'Id' is int64; expected an image column"):
        ctx.transforms.extract_pixels("Px", "Id").fit(image_view(noise(2, 2, 3)))
    view = sized_view([noise(2, 3, 3)])
    model = ctx.transforms.extract_pixels("Px", "Image").fit(view)
    with pytest.raises(
        ShapeError,
        match=rf"{step}: row 1 of column 'Image' is an image of 3x3 \(height x width\), but the column declares 2x3",
    ):
        model.map_columns({"Image": [noise(2, 3, 3), noise(3, 3, 3)]}, view.schema, 2)


# --------------------------------------------------------------------------------------------
# convert_to_grayscale


def test_grayscale_is_pillows_convert_l() -> None:
    rgb, rgba, gray = noise(40, 30, 3), noise(20, 10, 4), noise(5, 6, 1)
    model = check_component(
        ctx.transforms.convert_to_grayscale("Gray", "Image"), image_view(rgb, rgba, gray), exportable=True
    )
    out = model.transform(image_view(rgb, rgba, gray))
    assert out.schema["Gray"].type == ImageType()
    a, b, c = out.column("Gray")
    np.testing.assert_array_equal(a[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))
    np.testing.assert_array_equal(b[..., 0], np.asarray(Image.fromarray(rgba).convert("L")))
    np.testing.assert_array_equal(c, gray)
    assert ctx.transforms.convert_to_grayscale("G", "Image").output_schema(sized_view([rgb]).schema)[
        "G"
    ].type == ImageType(40, 30)


# --------------------------------------------------------------------------------------------
# Whole pipelines


def test_images_into_a_prediction_engine() -> None:
    @dataclass
    class Photo:
        Image: Image.Image

    @dataclass
    class Pixels:
        data: Annotated[npt.NDArray[np.float32], op.VectorType(3, 8, 8)]

    pipeline = ctx.transforms.resize_images("Image", 8, 8).append(
        ctx.transforms.extract_pixels("data", "Image", scale=1 / 255)
    )
    model = pipeline.fit(ctx.data.load_from_enumerable([], Photo))
    engine = ctx.model.create_prediction_engine(model, Photo, Pixels)
    arr = noise(16, 16, 3)
    got = engine.predict(Photo(Image.fromarray(arr))).data
    expected = np.asarray(Image.fromarray(arr).resize((8, 8), Image.Resampling.BILINEAR), np.float32).transpose(2, 0, 1)
    np.testing.assert_allclose(got, expected * np.float32(1 / 255), rtol=1e-6)
    # Image columns read back as Pillow images
    out = list(ctx.data.create_enumerable(image_view(arr[..., :1], arr), Photo))
    assert [p.Image.mode for p in out] == ["L", "RGB"]
    np.testing.assert_array_equal(np.asarray(out[1].Image), arr)


def test_exported_pipeline_on_raw_images_matches_python(photos: Path) -> None:
    decoded = decoded_photos(photos)
    images = list(decoded.column("Image"))
    pipeline = (
        ctx.transforms.resize_images("Small", 96, 64, "Image")
        .append(ctx.transforms.convert_to_grayscale("Gray", "Small"))
        .append(ctx.transforms.extract_pixels("Pixels", "Small", scale=1 / 255))
        .append(ctx.transforms.extract_pixels("GrayPixels", "Gray", colors="g", output_as_float=False))
    )
    model = pipeline.fit(decoded)
    scored = model.transform(decoded)
    proto = ctx.model.convert_to_onnx(model, decoded, output_columns=["Pixels", "GrayPixels"])
    assert {o.name for o in proto.graph.output} == {"Pixels", "GrayPixels"}
    (graph_input,) = proto.graph.input
    assert graph_input.name == "Image" and graph_input.type.tensor_type.elem_type == 2  # uint8 [N, ?, ?, ?]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    python_pixels, python_gray = scored.column("Pixels"), scored.column("GrayPixels")
    for k, img in enumerate(images):
        pixels, gray = session.run(["Pixels", "GrayPixels"], {"Image": img[np.newaxis]})
        assert pixels.shape == (1, 3, 64, 96) and gray.shape == (1, 1, 64, 96)
        assert np.abs(pixels[0] - python_pixels[k]).max() <= RESIZE_MAX_DIFF / 255 + 1e-6
        assert np.abs(gray[0].astype(np.int64) - python_gray[k]).max() <= RESIZE_MAX_DIFF
    # And through apply_onnx_model, which groups the rows by image size.
    reapplied = ctx.transforms.apply_onnx_model(model_bytes=proto.SerializeToString()).transform(decoded)
    for k in range(len(images)):
        assert np.abs(reapplied.column("Pixels")[k] - python_pixels[k]).max() <= RESIZE_MAX_DIFF / 255 + 1e-6


def test_a_loaded_pipeline_predicts_like_the_original(tmp_path: Path) -> None:
    images = mixed_images()
    view = image_view(*images)
    model = (
        ctx.transforms.resize_images("Image", 12, 10, resizing="iso_pad")
        .append(ctx.transforms.extract_pixels("Px", "Image", order="bgr", interleave=True))
        .fit(view)
    )
    ctx.model.save(model, view.schema, tmp_path / "model.zip")
    loaded, schema = ctx.model.load(tmp_path / "model.zip")
    assert schema == view.schema
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(loaded.transform(view).column("Px"), model.transform(view).column("Px"))


def test_extract_pixels_per_plane_offset_and_scale_match_imagenet_normalisation() -> None:
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    images = [noise(4, 5, 3) for _ in range(3)]
    data = sized_view(images)
    for interleave in (False, True):
        step = ctx.transforms.extract_pixels(
            "x", "Image", interleave=interleave, offset=list(255 * mean), scale=list(1 / (255 * std))
        )
        got = step.fit(data).transform(data).column("x")
        expected = [(img / 255 - mean) / std for img in images]  # HWC
        if not interleave:
            expected = [e.transpose(2, 0, 1) for e in expected]
        np.testing.assert_allclose(got, np.stack(expected), rtol=1e-5, atol=1e-5)
        check_component(step, data, exportable=True)
    with pytest.raises(InvalidArgumentError, match="offset has 2 values but the output has 3 planes"):
        ctx.transforms.extract_pixels("x", "Image", offset=[1.0, 2.0])
    with pytest.raises(InvalidArgumentError, match="scale must not be 0"):
        ctx.transforms.extract_pixels("x", "Image", scale=[1.0, 0.0, 1.0])


def test_crop_anchor_needs_iso_crop_sequence_defaults_allow_uint8_and_la_decodes() -> None:
    with pytest.raises(InvalidArgumentError, match=r"crop_anchor='left' applies only to resizing='iso_crop'"):
        ctx.transforms.resize_images("x", 8, 8, "Image", resizing="fill", crop_anchor="left")
    # Per-plane defaults given as sequences are still the defaults for uint8 output.
    step = ctx.transforms.extract_pixels("x", "Image", offset=np.zeros(3), scale=[1, 1, 1], output_as_float=False)
    assert step.output_as_float is False
    with pytest.raises(InvalidArgumentError, match=r"need float output"):
        ctx.transforms.extract_pixels("x", "Image", offset=[0, 1, 0], output_as_float=False)
    # Premultiplied gray + alpha ("La"), which Pillow converts only to LA.
    la = Image.new("La", (3, 2), (100, 128))
    assert data_images.pil_to_array(la).shape == (2, 3, 4)


def test_load_images_splits_batches_whose_pixels_would_pass_the_batch_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded images of a batch are held together: a batch is split where their pixels (read from
    the headers) would pass MAX_BATCH_PIXELS, with the same values as unsplit."""
    from PIL import Image

    import onnxpipe.transforms.images as images

    rng = np.random.default_rng(3)
    names = []
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        names.append(f"{i}.png")
    ctx = op.MLContext()
    view = ctx.data.load_from_arrow(pa.table({"path": names}))
    step = ctx.transforms.load_images("image", image_folder=str(tmp_path), input_column_name="path")
    whole = [b.num_rows for b in step.transform(view).batches()]
    expected = step.transform(view).column("image")
    monkeypatch.setattr(images, "MAX_BATCH_PIXELS", 250)  # two 10x10 images per batch
    split = step.transform(view)
    assert whole == [5] and [b.num_rows for b in split.batches()] == [2, 2, 1]
    for got, want in zip(split.column("image"), expected, strict=True):
        np.testing.assert_array_equal(got, want)
