"""top_k_labels: the k best classes of a score vector, as labels and scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

import onnxpipe as op
from onnxpipe import VectorType
from onnxpipe.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DataFileNotFoundError,
    InvalidArgumentError,
    ShapeError,
)
from onnxpipe.export import convert_to_onnx
from onnxpipe.testing import check_component
from onnxpipe.transforms.labels import TopKLabelsTransformer, read_labels_file

ctx = op.MLContext(seed=0)
NAN = float("nan")
LABELS = ["cat", "dog", "fox", "owl"]


@dataclass
class Scores:
    Score: Annotated[npt.NDArray[np.float32], VectorType(4)]


@dataclass
class BatchedScores:  # a model output with its leading batch 1, as apply_onnx_model gives it
    Score: Annotated[npt.NDArray[np.float64], VectorType(1, 4)]


@dataclass
class UnknownSize:
    Score: Annotated[npt.NDArray[np.float32], VectorType(-1)]


SCORE_ROWS = [
    [0.1, 0.6, 0.2, 0.1],  # a tie between cat and owl: the lower class index first
    [0.9, 0.05, 0.03, 0.02],
    [0.25, 0.25, 0.25, 0.25],
    [NAN, 0.5, np.inf, -np.inf],  # NaN above everything, as ONNX Runtime's TopK ranks it
    [0.0, -0.0, 1.0, -1.0],
]


def _scores(dtype: type = np.float32) -> op.DataView:
    return ctx.data.load_from_enumerable([Scores(np.array(r, dtype)) for r in SCORE_ROWS], Scores)


def test_top_k_labels_sorts_by_score_and_matches_onnx() -> None:
    step = ctx.transforms.top_k_labels(labels=LABELS, k=3)
    model = check_component(step, _scores(), exportable=True)
    out = model.transform(_scores())
    assert str(out.schema["TopLabels"].type) == "string[3]"
    assert str(out.schema["TopScores"].type) == "float32[3]"
    assert out.column("TopLabels").tolist() == [
        ["dog", "fox", "cat"],
        ["cat", "dog", "fox"],
        ["cat", "dog", "fox"],
        ["cat", "fox", "dog"],
        ["fox", "cat", "dog"],
    ]
    expected = np.array([[0.6, 0.2, 0.1], [0.9, 0.05, 0.03], [0.25] * 3], np.float32)
    np.testing.assert_array_equal(out.column("TopScores")[:3], expected)
    np.testing.assert_array_equal(out.column("TopScores")[3], [NAN, np.inf, 0.5])
    assert out.column("Score").shape == (5, 4)  # the scores stay


def test_top_k_labels_accepts_a_leading_batch_one_and_float64() -> None:
    rows = [BatchedScores(np.array([r], np.float64)) for r in SCORE_ROWS[:3]]
    data = ctx.data.load_from_enumerable(rows, BatchedScores)
    step = ctx.transforms.top_k_labels("Best", labels=LABELS, k=1, score_output_column_name="BestScore")
    model = check_component(step, data, exportable=True)
    out = model.transform(data)
    assert out.column("Best").tolist() == [["dog"], ["cat"], ["cat"]]
    assert out.column("BestScore").dtype == np.float64
    np.testing.assert_array_equal(out.column("BestScore")[:, 0], [0.6, 0.9, 0.25])


def test_top_k_labels_exports_topk_and_a_string_gather() -> None:
    model = ctx.transforms.top_k_labels(labels=LABELS, k=2).fit(_scores())
    proto = convert_to_onnx(model, _scores().schema)
    assert [n.op_type for n in proto.graph.node if n.op_type in ("TopK", "Gather")] == ["TopK", "Gather"]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, scores = session.run(["TopLabels", "TopScores"], {"Score": np.array([[0.1, 0.2, 0.7, 0.0]], np.float32)})
    assert labels.tolist() == [["fox", "dog"]]
    np.testing.assert_allclose(scores, [[0.7, 0.2]])


def test_top_k_labels_checks_labels_against_the_scores() -> None:
    with pytest.raises(
        ShapeError,
        match=r"top_k_labels\(TopLabels, TopScores <- Score\): score column 'Score' has 4 scores per row but 3 "
        r"labels were given; give exactly one label per score",
    ):
        ctx.transforms.top_k_labels(labels=LABELS[:3], k=2).fit(_scores())
    with pytest.raises(InvalidArgumentError, match=r"k=5 is more than the 4 classes that have labels; choose k <= 4"):
        ctx.transforms.top_k_labels(labels=LABELS)
    with pytest.raises(InvalidArgumentError, match=r"^top_k_labels: k must be a positive integer, got 0$"):
        ctx.transforms.top_k_labels(labels=LABELS, k=0)
    with pytest.raises(InvalidArgumentError, match=r"either as labels=\[...\] or as labels_file=PATH \(exactly one\)"):
        ctx.transforms.top_k_labels(k=1)
    with pytest.raises(InvalidArgumentError, match=r"labels must be a sequence of strings"):
        ctx.transforms.top_k_labels(labels="cat dog", k=1)
    with pytest.raises(InvalidArgumentError, match=r"are both 'X'; the labels and the scores need two"):
        ctx.transforms.top_k_labels("X", labels=LABELS, k=1, score_output_column_name="X")


def test_top_k_labels_rejects_unusable_score_columns() -> None:
    step = ctx.transforms.top_k_labels(labels=LABELS, k=1)
    unknown = ctx.data.load_from_enumerable([UnknownSize(np.zeros(4, np.float32))], UnknownSize)
    with pytest.raises(ShapeError, match=r"score column 'Score' is float32\[\?\], a vector of unknown size"):
        step.fit(unknown)

    @dataclass
    class Matrix:
        Score: Annotated[npt.NDArray[np.float32], VectorType(2, 2)]

    @dataclass
    class Ints:
        Score: Annotated[npt.NDArray[np.int64], VectorType(4)]

    matrix = ctx.data.load_from_enumerable([], Matrix)
    with pytest.raises(ShapeError, match=r"expected a vector of shape \(classes,\) or \(1, classes\)"):
        step.fit(matrix)
    with pytest.raises(ColumnTypeError, match=r"score column 'Score' is int64\[4\]; expected a float32 or float64"):
        step.fit(ctx.data.load_from_enumerable([], Ints))
    with pytest.raises(ColumnNotFoundError, match="Probabilities"):
        ctx.transforms.top_k_labels(score_column_name="Probabilities", labels=LABELS, k=1).fit(_scores())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0\n90\n180\n270\n", ["0", "90", "180", "270"]),  # one label a line (the orientation model's)
        ("n01440764 tench, Tinca tinca\nn01443537 goldfish\n", ["n01440764 tench, Tinca tinca", "n01443537 goldfish"]),
        ("0 background\n1 person\n2 bicycle\n\n", ["background", "person", "bicycle"]),  # '<index> <label>'
        ("0: sea lion\n1: red panda\n", ["sea lion", "red panda"]),
        ("\ufeff0,a b\n1,c\n", ["a b", "c"]),  # a BOM, comma-separated index
        ("  left  \nright\n", ["left", "right"]),
    ],
)
def test_labels_file_formats(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(text, encoding="utf-8")
    assert list(read_labels_file(path)) == expected
    step = ctx.transforms.top_k_labels(labels_file=path, k=1)
    assert isinstance(step, TopKLabelsTransformer) and list(step.labels) == expected


def test_labels_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    with pytest.raises(DataFileNotFoundError, match=r"labels file '.*labels.txt' does not exist"):
        ctx.transforms.top_k_labels(labels_file=path, k=1)
    path.write_text("1 person\n2 bicycle\n3 car\n")  # COCO-style ids: which class does each name?
    with pytest.raises(InvalidArgumentError, match=r"indexes are not 0, 1, 2, ... in order \(got 1, 2, 3\)"):
        read_labels_file(path)
    path.write_text("cat\n\ndog\n")
    with pytest.raises(InvalidArgumentError, match=r"has an empty line 2 between labels"):
        read_labels_file(path)
    path.write_text("\n\n")
    with pytest.raises(InvalidArgumentError, match=r"has no labels"):
        read_labels_file(path)
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(InvalidArgumentError, match=r"is not UTF-8 text"):
        read_labels_file(path)


def test_top_k_labels_equality_and_repr() -> None:
    a = ctx.transforms.top_k_labels(labels=LABELS, k=2)
    assert a == ctx.transforms.top_k_labels(labels=tuple(LABELS), k=2)
    assert a != ctx.transforms.top_k_labels(labels=LABELS, k=3)
    assert hash(a) == hash(ctx.transforms.top_k_labels(labels=LABELS, k=2))
    assert "labels=[cat, dog, fox, owl] (4), k=2" in repr(a)
