"""Text models end to end, against the peer in the same run:

1. **Quality**: L-BFGS logistic regression on ``featurize_text`` (ML.NET's defaults) vs scikit-learn's
   ``FeatureUnion`` of char 3-gram and word 1-2-gram ``TfidfVectorizer``s + ``LogisticRegression``, on
   the same synthetic labelled documents and the same 80/20 split: held-out AUC (target: within 0.005).
2. **Exported pipeline**: the exportable configuration (a case change only) converted to ONNX and
   run in bare ONNX Runtime vs the in-Python ``transform`` on the same documents (documents/s).
3. **Bounded-memory stream**: 1M short documents through ``produce_hashed_word_bags`` (2^20 slots)
   and a sparse column written batch by batch to Parquet; peak RSS in a fresh process, with the
   Parquet file's size for scale.

Run: ``python bench/bench_text_model.py [--quick]`` (prints a table, writes ``bench/results``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

from _common import Row, console, print_table, write_results


def labelled_documents(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Documents whose label depends on which of two overlapping topic vocabularies they draw from."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(5000)], dtype=object)
    label = rng.random(n) < 0.5
    docs = []
    for positive in label.tolist():
        length = int(rng.integers(8, 30))
        words = rng.integers(0, 4000, size=length)  # a vocabulary both classes share
        own = rng.random(length) < 0.08  # a few words from the class's own 500
        words[own] = rng.integers(4000, 4500, size=int(own.sum())) + (500 if positive else 0)
        docs.append(" ".join(vocab[words]))
    return docs, label


def quality(n: int) -> Row:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import FeatureUnion, make_pipeline

    import onnxpipe as op

    docs, label = labelled_documents(n)
    cut = int(0.8 * n)
    ctx = op.MLContext(seed=0)
    train = ctx.data.load_from_dict({"Text": np.array(docs[:cut], dtype=object), "Label": label[:cut]})
    test = ctx.data.load_from_dict({"Text": np.array(docs[cut:], dtype=object), "Label": label[cut:]})
    pipeline = ctx.transforms.text.featurize_text("Features", "Text").append(
        ctx.binary_classification.trainers.lbfgs_logistic_regression()
    )
    ours = ctx.binary_classification.evaluate(pipeline.fit(train).transform(test)).area_under_roc_curve
    union = FeatureUnion(
        [
            ("char", TfidfVectorizer(analyzer="char", ngram_range=(3, 3))),
            ("word", TfidfVectorizer(token_pattern=r"[^ ]+", ngram_range=(1, 2))),
        ]
    )
    peer = make_pipeline(union, LogisticRegression(max_iter=1000)).fit(docs[:cut], label[:cut])
    theirs = roc_auc_score(label[cut:], peer.predict_proba(docs[cut:])[:, 1])
    return Row(
        f"held-out AUC, featurize_text + L-BFGS LR vs scikit-learn TF-IDF + LR ({n:,} docs)",
        "AUC",
        float(theirs),
        float(ours),
        True,
        note=f"difference {ours - theirs:+.4f} (target: |difference| <= 0.005)",
    )


def exported_throughput(n: int) -> Row:
    import onnxruntime as ort

    import onnxpipe as op

    docs, _ = labelled_documents(n, seed=1)
    ctx = op.MLContext()
    data = ctx.data.load_from_dict({"Text": np.array(docs, dtype=object)})
    model = ctx.transforms.text.featurize_text(
        "Features", "Text", keep_diacritics=True, keep_punctuations=True, keep_numbers=True
    ).fit(data)
    proto = ctx.model.convert_to_onnx(model, data)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    texts = np.array(docs, dtype=object).reshape(-1, 1)
    t0 = time.perf_counter()
    for start in range(0, n, 256):  # dense outputs: [256, slots] float32 per call
        session.run(None, {"Text": texts[start : start + 256]})
    t1 = time.perf_counter()
    model.transform(data).column("Features")
    t2 = time.perf_counter()
    return Row(
        f"featurize_text transform, in Python vs exported in bare ONNX Runtime ({n:,} docs)",
        "docs/s",
        n / (t1 - t0),
        n / (t2 - t1),
        True,
        note="plain = the exported model in ONNX Runtime, 256 documents per call (its output is dense)",
    )


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would include the parent's, as Linux
    keeps it across fork and exec)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def stream_child(n: int, path: str) -> None:
    import pyarrow.parquet as pq

    import onnxpipe as op

    rng = np.random.default_rng(2)
    words = np.array([f"w{i}" for i in range(50_000)], dtype=object)
    ctx = op.MLContext()

    def batches() -> Any:
        for start in range(0, n, 50_000):
            size = min(50_000, n - start)
            picks = rng.integers(0, len(words), size=(size, 6))
            yield {"Text": np.array([" ".join(r) for r in words[picks]], dtype=object)}

    step = ctx.transforms.text.produce_hashed_word_bags("Bag", "Text", number_of_bits=20)
    t0 = time.perf_counter()
    writer = None
    model = None
    rows = 0
    for part in batches():
        view = ctx.data.load_from_dict(part)
        model = model or step.fit(view)  # hashing learns nothing: fitted on the first batch
        table = model.transform(view).to_arrow()
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        rows += table.num_rows
    assert writer is not None
    writer.close()
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": time.perf_counter() - t0,
                "rss_peak_mb": _peak_rss_mb(),
            }
        )
    )


def stream(n: int) -> dict[str, float]:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bags.parquet")
        out = subprocess.run(
            [sys.executable, __file__, "--stream-child", str(n), path], capture_output=True, text=True, check=True
        )
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        result["parquet_mb"] = os.path.getsize(path) / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stream-child", nargs=2, metavar=("ROWS", "PATH"))
    args = parser.parse_args()
    if args.stream_child:
        stream_child(int(args.stream_child[0]), args.stream_child[1])
        return
    n, n_stream = (5_000, 200_000) if args.quick else (20_000, 1_000_000)
    rows = [quality(n), exported_throughput(n)]
    print_table("Text models", rows)
    streamed = stream(n_stream)
    console.print(
        f"{int(streamed['rows']):,} documents -> produce_hashed_word_bags (2^20 slots) -> Parquet, batch by batch: "
        f"{streamed['seconds']:.1f} s, peak RSS {streamed['rss_peak_mb']:.0f} MB, file {streamed['parquet_mb']:.0f} MB"
    )
    write_results("bench_text_model" + ("-quick" if args.quick else ""), {"documents": n}, rows, {"stream": streamed})


if __name__ == "__main__":
    main()
