"""featurize_text against ML.NET's own baseline: TextFeaturizerTests fits FeaturizeText with its
defaults (and a tokens output) on wikipedia-detox-250-line-data.tsv and saves the first 4 rows
(test/BaselineOutput/Common/Text/featurized.tsv, both files in tests/data/mlnet with their NOTICE).
The file is read with onnxpipe's own text loader, which reads it as ML.NET's TextLoader does
(leading spaces dropped, a quote left open ending at its line)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest

import onnxpipe as op
from onnxpipe import LoadColumn
from onnxpipe.schema import DType, SparseVectorType

DATA = Path(__file__).parent / "data" / "mlnet"
SLOTS = 18068  # 5575 char trigrams + 12493 word uni- and bigrams


@dataclasses.dataclass
class Comment:
    label: Annotated[int, LoadColumn(0)]
    text: Annotated[str, LoadColumn(1)]


def _baseline() -> tuple[list[str], np.ndarray, list[list[str]]]:
    body = [
        line for line in (DATA / "featurized.tsv").read_text("utf-8").split("\n") if line and not line.startswith("#@")
    ]
    names = next(csv.reader([body[0]], delimiter="\t", quotechar='"'))[:SLOTS]
    values = np.zeros((4, SLOTS))
    tokens: list[list[str]] = [[] for _ in range(4)]
    for r, line in enumerate(body[1:5]):
        for cell in line.split("\t")[1:]:  # ML.NET's sparse rows: "index:value"
            index, value = cell.split(":", 1)
            if int(index) < SLOTS:
                values[r, int(index)] = float(value)
            else:
                tokens[r].append(value)
    return names, values, tokens


@pytest.fixture(scope="module")
def featurized() -> op.DataView:
    ctx = op.MLContext()
    data = ctx.data.load_from_text_file(DATA / "wikipedia-detox-250-line-data.tsv", Comment, has_header=True)
    assert data.count_rows() == 250
    step = ctx.transforms.text.featurize_text("Data", "text", output_tokens_column_name="OutputTokens")
    return step.fit(data).transform(data)


def test_default_featurize_text_makes_mlnet_slots_and_values(featurized: op.DataView) -> None:
    names, values, tokens = _baseline()
    column = featurized.schema["Data"]
    assert column.type == SparseVectorType(DType.FLOAT32, SLOTS)
    assert sum(n.startswith("Char.") for n in names) == 5575
    assert list(column.slot_names or ()) == names  # every slot, in ML.NET's order, named as ML.NET names it
    first = featurized.take(4)
    np.testing.assert_allclose(first.column("Data").toarray(), values, atol=5e-8)  # the baseline has 9 digits
    assert [list(row) for row in first.column("OutputTokens")] == tokens


def test_a_linear_trainer_separates_the_classes(featurized: op.DataView) -> None:
    ctx = op.MLContext(seed=1)
    labelled = ctx.transforms.conversion.map_value("Label", {0: False, 1: True}, "label").transform(featurized)
    trainer = ctx.binary_classification.trainers.sdca_non_calibrated(feature_column_name="Data")
    metrics = ctx.binary_classification.evaluate(trainer.fit(labelled).transform(labelled))
    assert metrics.area_under_roc_curve > 0.95  # train == test, as ML.NET's sentiment sample scores it
