"""Real pretrained models shipped inside PyPI wheels, scored as their own packages feed them,
through the classes generate_schema_code writes, equal to bare ONNX Runtime bit for bit.

* magika 1.0.3 (Google's file-type detector, tf2onnx): ``bytes int32[unk__214, 2048]`` ->
  ``target_label float32[unk__215, 214]``, fed 2048 byte values per file;
* silero-vad 6.2.3 (voice activity, stateful): ``input float32[?, ?]`` audio chunks of 512 samples,
  ``state float32[2, ?, 128]`` carried from call to call, ``sr int64`` the sample rate;
* rapidocr_onnxruntime 1.4.4 (PaddleOCR's PP-OCRv4 models, paddle2onnx), fed text rendered with
  Pillow: text detection ``x float32[N, 3, H, W]`` -> ``sigmoid_0.tmp_0 float32[N, 1, H, W]`` (DBNet's
  probability map), recognition ``x float32[N, 3, 48, W]`` -> ``softmax_11.tmp_0 float32[N, W / 8,
  6625]`` (CRNN, CTC-decoded with the character list in the model's metadata) and the text-line
  angle classifier ``x float32[N, 3, 48, 192]`` -> ``[N, 2]`` ('0' / '180'); also the detection's
  preprocessing as onnxpipe image steps, and detection -> crop -> recognition reading the line.

The packages are installed without their dependencies (torch, OpenCV...) by ``make test``; only
their model files are read.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image, ImageDraw, ImageFont

import onnxpipe as op
from onnxpipe.runtime import describe_model

ctx = op.MLContext()


def _model(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} (a test dependency carrying a real model) is not installed; run make test")
    return Path(spec.submodule_search_locations[0]) / relative


def _classes(path: Path) -> types.ModuleType:
    """The generated schema classes, as an importable module (our own generated code)."""
    module = types.ModuleType(f"schema_{path.stem}_{abs(hash(str(path)))}")
    sys.modules[module.__name__] = module
    exec(op.generate_schema_code(describe_model(onnx.load(path))), vars(module))
    return module


def _bare(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def test_magika_scores_files_like_bare_onnxruntime() -> None:
    path = _model("magika", "models/standard_v3_3/model.onnx")
    classes = _classes(path)
    model = ctx.transforms.apply_onnx_model(path).fit(ctx.data.load_from_enumerable([], classes.OnnxInput))
    assert model.batch_axes["bytes"].is_batch  # tf2onnx's unk__214 is a batch
    engine = ctx.model.create_prediction_engine(model, classes.OnnxInput, classes.OnnxOutput)
    files = np.random.default_rng(0).integers(0, 256, size=(5, 2048)).astype(np.int32)
    (want,) = _bare(path, {"bytes": files})  # one call of 5 rows (kernels may differ from 5 calls of 1)
    one = engine.predict(classes.OnnxInput(files[:1]))
    np.testing.assert_array_equal(np.asarray(one.target_label).reshape(1, -1), _bare(path, {"bytes": files[:1]})[0])
    batch = engine.predict_batch([classes.OnnxInput(f[None]) for f in files])
    np.testing.assert_array_equal(np.stack([np.asarray(o.target_label).reshape(-1) for o in batch]), want)
    scored = model.transform(
        ctx.data.load_from_enumerable([classes.OnnxInput(f[None]) for f in files], classes.OnnxInput)
    )
    np.testing.assert_array_equal(np.asarray(scored.column("target_label")).reshape(5, -1), want)


@pytest.mark.parametrize("name", ["silero_vad.onnx", "silero_vad_16k_op15.onnx"])
def test_silero_vad_carries_its_state_like_bare_onnxruntime(name: str) -> None:
    path = _model("silero_vad", f"data/{name}")
    classes = _classes(path)
    model = ctx.transforms.apply_onnx_model(path).fit(ctx.data.load_from_enumerable([], classes.OnnxInput))
    engine = ctx.model.create_prediction_engine(model, classes.OnnxInput, classes.OnnxOutput)
    audio = (np.random.default_rng(1).standard_normal((4, 1, 512)) * 0.1).astype(np.float32)
    sr = np.int64(16000)
    state = np.zeros((2, 1, 128), np.float32)
    bare_state = state
    for chunk in audio:  # the package's own loop: each call's stateN is the next call's state
        out = engine.predict(classes.OnnxInput(chunk, state, sr))
        want_out, want_state = _bare(path, {"input": chunk, "state": bare_state, "sr": np.array(16000, np.int64)})
        np.testing.assert_array_equal(np.asarray(out.output).reshape(want_out.shape), want_out)
        state = np.asarray(out.state_n).reshape(want_state.shape)
        np.testing.assert_array_equal(state, want_state)
        bare_state = want_state


# --------------------------------------------------------------------------------------------
# rapidocr_onnxruntime 1.4.4: PaddleOCR's PP-OCR models (paddle2onnx), preprocessed and decoded as
# the package's ch_ppocr_det / ch_ppocr_cls / ch_ppocr_rec do with its config.yaml. The package
# resizes with OpenCV (not installed); the images here are rendered at the sizes its rules give,
# so every one of its resizes is the identity, except in the chain test (see there).

_OCR = "rapidocr_onnxruntime"
_DET = "models/ch_PP-OCRv4_det_infer.onnx"
_CLS = "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
_REC = "models/ch_PP-OCRv4_rec_infer.onnx"
_DET_THRESH = 0.3  # Det.thresh: the probability that marks a pixel as text
_CLS_LABELS = ("0", "180")  # Cls.label_list
_REC_SHAPE = (3, 48, 320)  # Rec.rec_img_shape
_CLS_SHAPE = (3, 48, 192)  # Cls.cls_image_shape


def _render(text: str, size: int, width: int = 0, height: int = 48) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Black text on white, RGB uint8 (height, width, 3), in Pillow's built-in scalable font (no
    font file), centred; ``width`` 0 fits the text with a margin of 4 pixels. Also the text's
    box (left, top, right, bottom)."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    width = width or right - left + 8
    x, y = (width - (right - left)) // 2 - left, (height - (bottom - top)) // 2 - top
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((x, y), text, fill="black", font=font)
    return np.asarray(image), (x + left, y + top, x + right, y + bottom)


def _bgr(rgb: np.ndarray) -> np.ndarray:
    """The package's LoadImage turns a Pillow image into OpenCV's BGR order; the models see BGR."""
    return np.ascontiguousarray(rgb[..., ::-1])


def _det_size(height: int, width: int, limit_side_len: int, limit_type: str) -> tuple[int, int]:
    """DetPreProcess.resize's target size: scaled by the limit rule, each side rounded to a multiple of 32."""
    if limit_type == "max":
        ratio = limit_side_len / max(height, width) if max(height, width) > limit_side_len else 1.0
    else:
        ratio = limit_side_len / min(height, width) if min(height, width) < limit_side_len else 1.0
    return round(int(height * ratio) / 32) * 32, round(int(width * ratio) / 32) * 32


def _det_input(bgr: np.ndarray) -> np.ndarray:
    """DetPreProcess: resize (identity here), ``(x / 255 - mean) / std`` with mean = std = 0.5 (numpy
    float64, as the package's arrays make it), HWC -> CHW, a batch of 1, float32."""
    # TextDetector.get_preprocess with limit_type "max" (the package's det_limit_type option) takes
    # 960 for images under 960 pixels; the default ("min", 736) would upsample this 128-pixel image
    # 5.75x to 736x1856, about 2 s a call on 2 cores.
    assert _det_size(*bgr.shape[:2], 960, "max") == bgr.shape[:2]
    mean = std = np.array([0.5, 0.5, 0.5])
    return ((bgr.astype("float32") * (1 / 255.0) - mean) / std).transpose(2, 0, 1)[np.newaxis].astype(np.float32)


def _line_input(bgr_lines: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """TextRecognizer / TextClassifier.resize_norm_img for a batch: each line resized to ``height``
    keeping its ratio (at most ``width`` wide; identity here, the lines are rendered 48 high),
    ``x / 255`` in float32, ``(x - 0.5) / 0.5``, CHW, padded on the right with zeros to ``width``."""
    out = np.zeros((len(bgr_lines), 3, height, width), np.float32)
    for row, line in zip(out, bgr_lines, strict=True):
        resized_w = min(width, math.ceil(height * line.shape[1] / line.shape[0]))
        assert line.shape[:2] == (height, resized_w)  # the package's cv2.resize would be the identity
        pixels = line.astype("float32").transpose(2, 0, 1) / 255
        pixels -= 0.5
        pixels /= 0.5
        row[:, :, :resized_w] = pixels
    return out


def _rec_input(bgr_lines: list[np.ndarray]) -> np.ndarray:
    """TextRecognizer: one batch padded to its widest line, and at least to rec_img_shape's 320."""
    _, h, w = _REC_SHAPE
    max_wh_ratio = max([w / h] + [line.shape[1] / line.shape[0] for line in bgr_lines])
    return _line_input(bgr_lines, h, int(h * max_wh_ratio))


def _characters(path: Path) -> list[str]:
    """CTCLabelDecode's list: the model's metadata "character" (one per line), "blank" inserted at
    index 0 (CTC's blank) and " " appended (index 6624)."""
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return ["blank", *meta["character"].splitlines(), " "]


def _ctc_decode(probs: np.ndarray, characters: list[str]) -> list[str]:
    """CTCLabelDecode: the argmax per time step, repeats dropped, then the blank (index 0) dropped."""
    texts = []
    for index in probs.argmax(axis=2):
        keep = np.ones(len(index), dtype=bool)
        keep[1:] = index[1:] != index[:-1]
        keep &= index != 0
        texts.append("".join(characters[i] for i in index[keep]))
    return texts


def _scorer(path: Path) -> tuple[types.ModuleType, Any, Any]:
    """The generated classes, apply_onnx_model fitted on them, and a prediction engine."""
    classes = _classes(path)
    model = ctx.transforms.apply_onnx_model(path).fit(ctx.data.load_from_enumerable([], classes.OnnxInput))
    assert model.batch_axes["x"].is_batch  # paddle2onnx's p2o.DynamicDimension.0 / -1 is a batch
    return classes, model, ctx.model.create_prediction_engine(model, classes.OnnxInput, classes.OnnxOutput)


def _scored_like_bare(path: Path, batches: list[np.ndarray], field: str, column: str) -> list[np.ndarray]:
    """Each batch scored by the engine (predict for a batch of 1, predict_batch otherwise) and by
    transform, asserted equal bit for bit to one bare ONNX Runtime call on the whole batch (kernels
    may differ between batch sizes); the bare outputs."""
    classes, model, engine = _scorer(path)
    wants = []
    for batch in batches:
        (want,) = _bare(path, {"x": batch})
        if len(batch) == 1:
            got = np.asarray(getattr(engine.predict(classes.OnnxInput(batch)), field))[np.newaxis]
        else:
            got = np.stack(
                [
                    np.asarray(getattr(o, field))
                    for o in engine.predict_batch([classes.OnnxInput(x[np.newaxis]) for x in batch])
                ]
            )
        np.testing.assert_array_equal(got.reshape(want.shape), want)
        scored = model.transform(
            ctx.data.load_from_enumerable([classes.OnnxInput(x[np.newaxis]) for x in batch], classes.OnnxInput)
        )
        np.testing.assert_array_equal(np.asarray(scored.column(column)).reshape(want.shape), want)
        wants.append(want)
    return wants


def _assert_text_found(prob: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """The probability map is over Det.thresh on the drawn text and nowhere else, and near 0 away from it."""
    left, top, right, bottom = box
    text = prob[top:bottom, left:right]
    assert text.max() > 0.99 and (text > _DET_THRESH).mean() > 0.2
    ys, xs = np.nonzero(prob > _DET_THRESH)
    assert left <= xs.min() and xs.max() < right and top <= ys.min() and ys.max() < bottom
    far = np.ones_like(prob, dtype=bool)
    far[top - 8 : bottom + 8, left - 8 : right + 8] = False
    assert prob[far].max() < 0.05


def test_ppocr_text_detection_like_bare_onnxruntime() -> None:
    path = _model(_OCR, _DET)
    (first, first_box), (second, second_box) = (_render(t, 40, 320, 128) for t in ("onnxpipe 2026", "PP-OCRv4 det"))
    x1, x2 = _det_input(_bgr(first)), _det_input(_bgr(second))
    # One image (predict), then both in one batch (predict_batch, transform): [N, 3, 128, 320].
    one, two = _scored_like_bare(path, [x1, np.concatenate([x1, x2])], "sigmoid_0_tmp_0", "sigmoid_0.tmp_0")
    assert one.shape == (1, 1, 128, 320) and two.shape == (2, 1, 128, 320)
    _assert_text_found(one[0, 0], first_box)
    _assert_text_found(two[0, 0], first_box)
    _assert_text_found(two[1, 0], second_box)


_LINES = ("onnxpipe 2026", "Hello, World!", "ONNX Runtime 1.23")  # 36 px: 266, 230 and 334 pixels wide


def test_ppocr_text_recognition_reads_like_bare_onnxruntime() -> None:
    path = _model(_OCR, _REC)
    lines = [_bgr(_render(text, 36)[0]) for text in _LINES]
    # One line alone (padded to 320), then one batch of the three (padded to the widest, 334).
    single, batch = _scored_like_bare(
        path, [_rec_input(lines[:1]), _rec_input(lines)], "softmax_11_tmp_0", "softmax_11.tmp_0"
    )
    characters = _characters(path)
    assert len(characters) == single.shape[2] == 6625
    assert _ctc_decode(single, characters) == [_LINES[0]]
    assert _ctc_decode(batch, characters) == list(_LINES)
    # Rows of different widths in one view, each padded for itself (the package's batches of one
    # line): a ragged output column, each row equal to a bare call on it alone.
    classes, model, _ = _scorer(path)
    alone = [_rec_input([line]) for line in lines]
    scored = model.transform(ctx.data.load_from_enumerable([classes.OnnxInput(x) for x in alone], classes.OnnxInput))
    got = scored.column("softmax_11.tmp_0")
    assert isinstance(got, list) and [g.shape[-2] for g in got] == [40, 40, 42]  # time steps: width / 8
    for row, x, text in zip(got, alone, _LINES, strict=True):
        (want,) = _bare(path, {"x": x})
        np.testing.assert_array_equal(np.asarray(row).reshape(want.shape), want)
        assert _ctc_decode(want, characters) == [text]


def test_ppocr_angle_classifier_like_bare_onnxruntime() -> None:
    path = _model(_OCR, _CLS)
    line = _bgr(_render("onnxpipe", 36)[0])  # 178 pixels wide: fits the 192 of cls_image_shape unscaled
    upside_down = np.ascontiguousarray(line[::-1, ::-1])  # cv2.rotate(..., ROTATE_180)
    _, h, w = _CLS_SHAPE
    single, batch = _scored_like_bare(
        path,
        [_line_input([line], h, w), _line_input([line, upside_down], h, w)],
        "save_infer_model_scale_0_tmp_1",
        "save_infer_model/scale_0.tmp_1",
    )
    assert [_CLS_LABELS[i] for i in batch.argmax(axis=1)] == ["0", "180"]
    assert _CLS_LABELS[single.argmax()] == "0"
    assert batch[1, 1] > 0.9  # over Cls.cls_thresh: the package would turn the second line back


@dataclasses.dataclass
class _Picture:
    Image: Image.Image


# extract_pixels computes (pixel - 127.5) * float32(1 / 127.5) in float32, the package
# (x / 255 - 0.5) / 0.5 in float64 (det; in float32 steps for rec and cls): equal within one float32
# ulp (at most 1.2e-7; 0 and 255 exactly), 6849 of the 245760 values of the two pictures here.
# Through the detector that is at most 1.3e-5 on the map (measured), no pixel crossing Det.thresh.
_PIXEL_ULP = 1.2e-7
_DET_PIPELINE_ATOL = 1e-4


def _det_pipeline(path: Path, height: int, width: int) -> Any:
    """Det's preprocessing as onnxpipe steps: a Pillow image (RGB) resized to the rule's size (the
    identity for these images), its planes in BGR order, (x - 127.5) / 127.5, then the model."""
    return (
        ctx.transforms.resize_images("Resized", width, height, "Image", resizing="fill")
        .append(ctx.transforms.extract_pixels("x", "Resized", order="bgr", offset=127.5, scale=1 / 127.5))
        .append(ctx.transforms.apply_onnx_model(path))
    )


def test_ppocr_detection_preprocessing_as_onnxpipe_steps() -> None:
    path = _model(_OCR, _DET)
    pictures = [_render(text, 40, width=320, height=128)[0] for text in ("onnxpipe 2026", "PP-OCRv4 det")]
    data = ctx.data.load_from_enumerable([_Picture(Image.fromarray(p)) for p in pictures], _Picture)
    scored = _det_pipeline(path, 128, 320).fit(data).transform(data)
    hand = np.concatenate([_det_input(_bgr(p)) for p in pictures])
    x = np.asarray(scored.column("x"))
    np.testing.assert_allclose(x, hand, rtol=0, atol=_PIXEL_ULP)
    (want,) = _bare(path, {"x": hand})
    got = np.asarray(scored.column("sigmoid_0.tmp_0")).reshape(want.shape)
    (own,) = _bare(path, {"x": x})
    np.testing.assert_array_equal(got, own)  # the model itself: bit for bit on the pipeline's pixels
    np.testing.assert_allclose(got, want, rtol=0, atol=_DET_PIPELINE_ATOL)
    np.testing.assert_array_equal(got > _DET_THRESH, want > _DET_THRESH)


def _read_text(picture: np.ndarray) -> tuple[str, tuple[int, int, int, int]]:
    """Detection then recognition of a one-line picture (RGB) with onnxpipe steps; the text and its box.

    Stand-ins for what the package does with OpenCV, pyclipper and shapely: its DBPostProcess takes
    the contours of the map over Det.thresh, their minimum-area rectangles, and pushes each outwards
    by area * unclip_ratio / perimeter (1.6); here the bounding box of all the pixels over the
    threshold (one horizontal line), pushed out by that distance. Its perspective crop of the box is
    a slice here, and its cv2.resize of the crop to height 48 is resize_images (Pillow's bilinear)."""
    height, width = picture.shape[:2]
    data = ctx.data.load_from_enumerable([_Picture(Image.fromarray(picture))], _Picture)
    det = _det_pipeline(_model(_OCR, _DET), *_det_size(height, width, 960, "max")).fit(data)
    prob = np.asarray(det.transform(data).column("sigmoid_0.tmp_0")).reshape(height, width)
    ys, xs = np.nonzero(prob > _DET_THRESH)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    unclip = round((bottom - top) * (right - left) * 1.6 / (2 * (bottom - top + right - left)))
    top, left = max(0, top - unclip), max(0, left - unclip)
    bottom, right = min(height, bottom + unclip), min(width, right + unclip)
    crop = picture[top:bottom, left:right]

    rec_path = _model(_OCR, _REC)
    _, line_h, line_w = _REC_SHAPE
    resized_w = math.ceil(line_h * crop.shape[1] / crop.shape[0])
    data = ctx.data.load_from_enumerable([_Picture(Image.fromarray(crop))], _Picture)
    rec = (
        ctx.transforms.resize_images("Line", resized_w, line_h, "Image", resizing="fill")
        .append(ctx.transforms.extract_pixels("Pixels", "Line", order="bgr", offset=127.5, scale=1 / 127.5))
        .fit(data)
    )
    x = np.zeros((1, 3, line_h, max(line_w, resized_w)), np.float32)  # padded on the right with zeros
    x[..., :resized_w] = np.asarray(rec.transform(data).column("Pixels"))
    classes, _, engine = _scorer(rec_path)
    probs = np.asarray(engine.predict(classes.OnnxInput(x)).softmax_11_tmp_0)
    (text,) = _ctc_decode(probs.reshape(1, -1, probs.shape[-1]), _characters(rec_path))
    return text, (int(left), int(top), int(right), int(bottom))


def test_ppocr_detection_then_recognition_reads_the_rendered_line() -> None:
    picture, (left, top, right, bottom) = _render("onnxpipe 2026", 40, width=320, height=128)
    text, box = _read_text(picture)
    assert text == "onnxpipe 2026"
    # The box found is the drawn text's, give or take the stand-in's unclip rounding.
    assert max(abs(a - b) for a, b in zip(box, (left, top, right, bottom), strict=True)) <= 4
