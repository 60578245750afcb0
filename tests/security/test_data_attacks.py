"""Attacks through data files: what the loaders refuse, before allocating or parsing anything.

Crafted rows of any length, JSON nested deeper than the parser can take, repeated column
names, image headers claiming billions of pixels, image files in formats that run other
programs, pipes where files are expected, and outputs that are symbolic links. Attacks that
would crash or exhaust the process on a regression run in an isolated child process.
"""

from __future__ import annotations

import os
import random
import re
import stat
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import onnxpipe
from onnxpipe._cli_io import JsonLinesGuard, TableSource
from onnxpipe._files import atomic_output, write_file
from onnxpipe.data._images import decode_image, image_pixels, load_from_image_folder
from onnxpipe.data._loaders import load_from_parquet, load_from_text_file
from onnxpipe.errors import DataError, ImageDecodeError, InvalidArgumentError, ParseError
from tests.security.conftest import Outcome


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# JSON nesting: the guard agrees with JSON's string rules and never counts less than the parser


def _reference(data: bytes, max_depth: int) -> tuple[str, int, bool] | tuple[str, int]:
    """The guard's rules, one byte at a time."""
    depth, in_string, run, line = 0, False, 0, 1
    for byte in data:
        ch = chr(byte)
        if ch == "\n":
            in_string, run, line = False, 0, line + 1
            continue
        if ch == "\\":
            run += 1
            continue
        if ch == '"':
            if run % 2 == 0:
                in_string = not in_string
        elif ch in "[{" and not in_string:
            depth += 1
            if depth > max_depth:
                return ("deep", line)
        elif ch in "]}" and not in_string:
            depth = max(0, depth - 1)
        run = 0
    return ("ok", depth, in_string)


def _guarded(data: bytes, max_depth: int, cuts: list[int]) -> tuple[str, int, bool] | tuple[str, int]:
    guard = JsonLinesGuard("f", max_depth=max_depth, max_line=1 << 30)
    start = 0
    try:
        for end in [*sorted(cuts), len(data)]:
            guard.scan(data[start:end])
            start = end
    except ParseError as exc:
        found = re.search(r"line (\d+)", str(exc))
        assert found is not None
        return ("deep", int(found[1]))
    return ("ok", guard._depth, guard._in_string)


def test_json_guard_matches_a_byte_by_byte_scan() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        data = bytes(rng.choice(b'"\\\\\\[]{}\nab') for _ in range(rng.randint(0, 80)))
        max_depth = rng.randint(0, 6)
        cuts = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 5))]
        assert _guarded(data, max_depth, cuts) == _reference(data, max_depth), (data, max_depth, cuts)


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ('{"s": "' + "[" * 500 + '"}\n', False),  # brackets in a string are text
        ('{"s": "\\"' + "[" * 500 + '"}\n', False),  # an escaped quote does not end the string
        ('{"s": "\\\\"' + ", " + '"t": ' + "[" * 500 + "]" * 500 + "}\n", True),  # an escaped backslash does
        ("[\n" * 100 + "]\n" * 100, True),  # one document over many lines is parsed as one
        ('{"a": [[1]]}\n' * 1000, False),  # depth returns to zero between rows
        ("]" * 1000 + "\n" + "[" * 65 + "\n", True),  # closers never buy depth for later openers
        ('{"s": "abc\n' + "[" * 100 + "\n", True),  # a string never runs past a line break
    ],
)
def test_json_guard_counts_what_the_parser_would_nest(text: str, deep: bool) -> None:
    data = text.encode()
    for piece in (len(data), 7, 1):  # whole, and cut anywhere
        guard = JsonLinesGuard("f")
        if deep:
            with pytest.raises(ParseError, match="more than 64 levels deep"):
                for start in range(0, len(data), piece):
                    guard.scan(data[start : start + piece])
        else:
            for start in range(0, len(data), piece):
                guard.scan(data[start : start + piece])


def test_json_guard_names_a_line_that_is_too_long() -> None:
    guard = JsonLinesGuard("input file 'x.jsonl'", max_line=100)
    guard.scan(b'{"a": 1}\n' * 3)
    with pytest.raises(ParseError, match=r"^input file 'x.jsonl': line 5 is longer than 100 bytes"):
        guard.scan(b'{"a": 2}\n{"s": "' + b"y" * 50)
        guard.scan(b"y" * 60)


def test_deep_json_lines_never_reach_the_parser(tmp_path: Path, isolated: Callable[..., Outcome]) -> None:
    """pyarrow's JSON reader overflows its stack on ~100k levels: the process would die."""
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    code = f"""
from pathlib import Path
from onnxpipe._cli_io import TableSource
from onnxpipe.errors import ParseError
from onnxpipe.schema import Column, DType, TensorType
for attempt in ("names", "rows"):
    try:
        source = TableSource(Path({str(path)!r}), "jsonl")
        if attempt == "names":
            source.column_names()
        else:
            source.view([], ["a"], 100)
    except ParseError as exc:
        print("refused:", exc)
"""
    out = isolated(code, timeout=60)
    assert out.returncode == 0, out
    assert out.stdout.count("line 1 nests JSON arrays/objects more than 64 levels deep") == 2, out


def test_normal_json_lines_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [f'{{"v": [{i}.5, 2, 3], "s": "a \\"quoted\\" [text]", "n": {{"k": [[1]]}}}}\n' for i in range(5000)]
    path.write_text("".join(rows))
    source = TableSource(path, "jsonl")
    assert source.column_names() == ["v", "s", "n"]
    view = source.view([], ["v", "s"], 1000)
    assert view.count_rows() == 5000


def test_a_json_line_longer_than_the_block_is_read(tmp_path: Path) -> None:
    """Blocks grow for long lines, up to the row limit (here 3 MiB lines, 1 MiB first block)."""
    path = tmp_path / "long.jsonl"
    path.write_text("".join(f'{{"i": {i}, "s": "{"z" * (3 << 20)}"}}\n' for i in range(3)))
    source = TableSource(path, "jsonl")
    assert list(source.view([], ["i"], 10).column("i")) == [0, 1, 2]


def test_json_lines_with_a_repeated_key_are_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text('{"a": 1, "b": 2, "b": 3}\n')
    with pytest.raises(DataError, match="the key 'b' twice"):
        TableSource(path, "jsonl").column_names()


# --------------------------------------------------------------------------------------------
# Text rows: bounded, named


def test_a_field_longer_than_the_row_limit_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1,x\n2,x\n3," + "y" * (3 << 20) + "\n4,x\n")
    view = load_from_text_file(path, separator=",", has_header=True, block_size=4096, max_row_bytes=1 << 20)
    with pytest.raises(ParseError, match=r"row 2 \(near line 4\) is longer than 1,048,576 bytes"):
        view.count_rows()
    # Under the limit, the block grows and the row is read.
    view = load_from_text_file(path, separator=",", has_header=True, block_size=4096, max_row_bytes=4 << 20)
    assert view.count_rows() == 4


@pytest.mark.parametrize("has_header", [True, False])
def test_a_first_line_longer_than_the_row_limit_is_refused(tmp_path: Path, has_header: bool) -> None:
    path = tmp_path / "long.csv"
    path.write_text("a" * (2 << 20) + ",b\n1,2\n")
    with pytest.raises(ParseError, match=r"line 1 is longer than 1,048,576 bytes"):
        load_from_text_file(path, separator=",", has_header=has_header, max_row_bytes=1 << 20)


def test_csv_with_a_repeated_column_name_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match=r"text file 'dup.csv': column 'a' appears more than once"):
        load_from_text_file(path, separator=",", has_header=True)


def test_parquet_with_a_repeated_column_name_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]), path)
    with pytest.raises(DataError, match="column 'a' appears more than once"):
        load_from_parquet(path)
    with pytest.raises(DataError, match="column 'a' appears more than once"):
        TableSource(path, "parquet").column_names()


# --------------------------------------------------------------------------------------------
# Images


def test_an_image_header_claiming_10_billion_pixels_is_refused_before_decoding(
    tmp_path: Path, isolated: Callable[..., Outcome]
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png(100_000, 100_000))
    big = tmp_path / "big.png"
    big.write_bytes(_png(10_000, 10_000))  # under Pillow's error limit, over onnxpipe's
    code = f"""
import warnings
warnings.simplefilter("ignore")
from onnxpipe.data._images import decode_image
from onnxpipe.errors import ImageDecodeError
for path in ({str(bomb)!r}, {str(big)!r}):
    try:
        decode_image(path)
    except ImageDecodeError as exc:
        print("refused:", exc)
"""
    out = isolated(code, memory=3 << 30, timeout=60)  # 10 billion pixels would not fit
    assert out.returncode == 0, out
    assert f"refused: image {str(bomb)!r} has more pixels than the limit of 89,478,485" in out.stdout, out
    assert f"refused: image {str(big)!r} is 10000 x 10000 = 100,000,000 pixels, more than" in out.stdout, out


def test_the_pixel_limit_can_be_lowered_per_call(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    assert image_pixels(path) == 600
    assert decode_image(path).shape == (20, 30, 3)
    with pytest.raises(ImageDecodeError, match="20 = 600 pixels, more than the limit of 599"):
        decode_image(path, max_pixels=599)


def test_an_image_in_a_format_that_runs_programs_is_not_opened(
    tmp_path: Path, canary: Path, isolated: Callable[..., Outcome]
) -> None:
    """An EPS file named .png: Pillow would run Ghostscript to render it."""
    eps = tmp_path / "evil.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\nshowpage\n")
    code = f"""
from onnxpipe.data._images import decode_image
try:
    decode_image({str(eps)!r})
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
"""
    out = isolated(code, canary=canary, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("refused: UnidentifiedImageError"), out
    assert out.clean, out.events


def test_an_image_folder_leaves_out_pipes_and_devices(tmp_path: Path, isolated: Callable[..., Outcome]) -> None:
    from PIL import Image

    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a" / "ok.png")
    os.mkfifo(tmp_path / "a" / "stuck.png")  # opening it would wait for a writer forever
    code = f"""
import onnxpipe as op
ctx = op.MLContext()
files = ctx.data.load_from_image_folder({str(tmp_path)!r})
view = ctx.transforms.load_images("image", input_column_name="ImagePath").fit(files).transform(files)
print([p.rsplit("/", 1)[-1] for p in files.column("ImagePath")], [im.shape for im in view.column("image")])
"""
    out = isolated(code, timeout=60)
    assert not out.timed_out and out.returncode == 0, out
    assert out.stdout.strip() == "['ok.png'] [(4, 4, 3)]", out
    assert load_from_image_folder(tmp_path).count_rows() == 1


def test_predict_batches_images_by_their_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``onnxpipe predict`` on a folder: a batch stops at MAX_BATCH_PIXELS decoded pixels."""
    from PIL import Image

    import onnxpipe.data._images as images
    from onnxpipe.cli import _image_folder_view, _Pipeline

    (tmp_path / "a").mkdir()
    for i, side in enumerate([10, 10, 10, 20, 5, 5]):
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(tmp_path / "a" / f"{i}.png")
    ctx = onnxpipe.MLContext()
    files = ctx.data.load_from_image_folder(tmp_path)
    model = ctx.transforms.load_images("image", input_column_name="ImagePath").fit(files)
    pipeline = _Pipeline(model, files.schema, None)
    monkeypatch.setattr(images, "MAX_BATCH_PIXELS", 250)
    view, _ = _image_folder_view(pipeline, tmp_path, None, False, None, 1 << 30)
    # 100+100 fits; 100 + 400 does not (400 alone makes a batch, its own limit applies); 25 + 25.
    assert [b.num_rows for b in view.batches()] == [2, 1, 1, 2]


# --------------------------------------------------------------------------------------------
# Files written


def test_write_file_refuses_a_symbolic_link_and_leaves_its_target(tmp_path: Path, canary: Path) -> None:
    link = tmp_path / "model.zip"
    link.symlink_to(canary / "secret.bin")
    with pytest.raises(InvalidArgumentError, match="is a symbolic link"):
        write_file(link, b"data", "the saved model")
    assert (canary / "secret.bin").read_bytes().startswith(b"CANARY-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip", "outside"]


def test_atomic_output_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target, "the output") as f:
        f.write(b"half")
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]  # written beside it
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    write_file(target, b"new", "the output")
    assert target.read_bytes() == b"new"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
