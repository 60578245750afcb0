"""ML.NET's text samples ported: FeaturizeText, then a linear trainer, on German news articles.

Data: ML.NET's ``lm.sample.txt`` (120 Spiegel articles: topic, language, URL features, title,
body; tab-separated) and ``lm.labels.txt`` (topic -> 1 for "Sport"), from its test data folder.

* ``sport_classifier``: a binary "is it Sport?" classifier (FeaturizeText on title and body, ML.NET's
  defaults, then SDCA logistic regression), as ML.NET's sentiment sample is built.
* ``topic_classifier``: the GitHub-issue-classification shape: title and body featurized
  separately and concatenated, the topic mapped to a key, SDCA maximum entropy, the predicted key
  mapped back to the topic's text.
* ``exportable_topic_classifier``: the configuration ONNX can express (a case change only: ML.NET
  itself exports FeaturizeText only then), converted to ONNX and checked against bare ONNX Runtime.

Run:  python examples/text_classification.py [DATA_FOLDER]   (default: ../shared/data/mlnet)
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import onnxruntime as ort

import onnxpipe as op
from onnxpipe import LoadColumn

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mlnet"


@dataclasses.dataclass
class Article:
    Topic: Annotated[str, LoadColumn(0)]
    Title: Annotated[str, LoadColumn(3)]
    Body: Annotated[str, LoadColumn(4)]


def _articles(ctx: op.MLContext, folder: Path) -> op.DataView:
    articles = ctx.data.load_from_text_file(folder / "lm.sample.txt", Article, separator="\t")
    labels = dict(line.split("\t") for line in (folder / "lm.labels.txt").read_text("utf-8").splitlines() if line)
    is_sport = {topic: flag.strip() == "1" for topic, flag in labels.items()}
    return ctx.transforms.conversion.map_value("Label", is_sport, "Topic").transform(articles)


def sport_classifier(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    data = _articles(ctx, folder)
    pipeline = ctx.transforms.text.featurize_text("Features", ["Title", "Body"]).append(
        ctx.binary_classification.trainers.sdca_logistic_regression()
    )
    model = pipeline.fit(data)
    return model, data, ctx.binary_classification.evaluate(model.transform(data))


def sport_cross_validated_auc(ctx: op.MLContext, folder: Path, folds: int = 3) -> float:
    """The mean held-out AUC of ``sport_classifier``'s pipeline over ``folds`` folds."""
    data = _articles(ctx, folder)
    pipeline = ctx.transforms.text.featurize_text("Features", ["Title", "Body"]).append(
        ctx.binary_classification.trainers.sdca_logistic_regression()
    )
    results = ctx.binary_classification.cross_validate(data, pipeline, number_of_folds=folds)
    return float(np.mean([r.metrics.area_under_roc_curve for r in results]))


def topic_classifier(
    ctx: op.MLContext, folder: Path, **featurize_options: Any
) -> tuple[op.Transformer, op.DataView, Any]:
    data = _articles(ctx, folder)
    pipeline = (
        ctx.transforms.conversion.map_value_to_key("Label", "Topic")
        .append(ctx.transforms.text.featurize_text("TitleFeatures", "Title", **featurize_options))
        .append(ctx.transforms.text.featurize_text("BodyFeatures", "Body", **featurize_options))
        .append(ctx.transforms.concatenate("Features", "TitleFeatures", "BodyFeatures"))
        .append(ctx.multiclass_classification.trainers.sdca_maximum_entropy())
        .append(ctx.transforms.conversion.map_key_to_value("PredictedTopic", "PredictedLabel"))
    )
    model = pipeline.fit(data)
    return model, data, ctx.multiclass_classification.evaluate(model.transform(data))


EXPORTABLE = {"keep_diacritics": True, "keep_punctuations": True, "keep_numbers": True}


def exportable_topic_classifier(ctx: op.MLContext, folder: Path) -> tuple[op.Transformer, op.DataView, Any]:
    return topic_classifier(ctx, folder, **EXPORTABLE)


def onnx_agrees(ctx: op.MLContext, model: op.Transformer, data: op.DataView) -> tuple[bool, float]:
    """Convert ``model``, score ``data`` in bare ONNX Runtime: whether the predicted topics equal
    ``transform``'s, and the largest Score difference."""
    proto = ctx.model.convert_to_onnx(model, data)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(data.column(i.name), dtype=object).reshape(-1, 1) for i in session.get_inputs()}
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    expected = model.transform(data)
    same = got["PredictedTopic"].reshape(-1).tolist() == expected.column("PredictedTopic").tolist()
    return same, float(np.max(np.abs(got["Score"] - expected.column("Score"))))


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    if not folder.is_dir():
        sys.exit(f"ML.NET's data folder {folder} is absent; pass its path")
    ctx = op.MLContext(seed=1)
    _, _, binary = sport_classifier(ctx, folder)
    print(f"Sport or not (train == test): AUC {binary.area_under_roc_curve:.4f}, accuracy {binary.accuracy:.4f}")
    print(f"Sport or not, 3-fold cross-validation: mean AUC {sport_cross_validated_auc(ctx, folder):.4f}")
    _, _, topics = topic_classifier(ctx, folder)
    print(f"7 topics (train == test): micro accuracy {topics.micro_accuracy:.4f}, log-loss {topics.log_loss:.4f}")
    model, data, exportable = exportable_topic_classifier(ctx, folder)
    same, score_difference = onnx_agrees(ctx, model, data)
    print(
        f"exportable configuration: micro accuracy {exportable.micro_accuracy:.4f}; ONNX Runtime gives the same "
        f"topics: {same}, largest Score difference {score_difference:.2e}"
    )


if __name__ == "__main__":
    main()
