"""featurize_text throughput and peak memory vs scikit-learn on the same synthetic documents.

onnxpipe: ``featurize_text(Features, Text, keep_diacritics=True, word 1-2-grams tf-idf, char
trigrams tf-idf, L2)``, fit then transform (every batch consumed, the sparse column kept as CSR).
scikit-learn: ``FeatureUnion([TfidfVectorizer(analyzer=str.split-like tokenizer, ngram_range=(1, 2)),
TfidfVectorizer(analyzer="char", ngram_range=(3, 3))])`` with ``norm="l2"`` per block, fit_transform
(its char analyzer pads no markers and its idf adds 1: the work is alike, not the numbers).

Documents: N (default 100k; ``--quick`` 20k) random sentences of 5-40 words drawn from a Zipf
vocabulary of 20k words, fixed seed. Each side runs in a fresh subprocess so that peak RSS (the
``ru_maxrss`` of that process) and tracemalloc's peak are its own.

Run: ``python bench/bench_text.py [--quick] [--rows N]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def documents(n: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(20_000)]
    ranks = np.minimum(rng.zipf(1.2, size=n * 40), len(vocab)) - 1
    lengths = rng.integers(5, 41, size=n)
    out, at = [], 0
    for length in lengths.tolist():
        out.append(" ".join(vocab[r] for r in ranks[at : at + length].tolist()))
        at += length
    return out


def run_onnxpipe(n: int) -> dict[str, float]:
    import pyarrow as pa

    import onnxpipe as op
    from onnxpipe.transforms.text.featurize import NgramOptions

    docs = documents(n)
    ctx = op.MLContext()
    data = ctx.data.load_from_arrow(pa.table({"Text": docs}))
    est = ctx.transforms.text.featurize_text(
        "Features",
        "Text",
        keep_diacritics=True,
        word_feature_extractor=NgramOptions(ngram_length=2, weighting="tf_idf"),
        char_feature_extractor=NgramOptions(ngram_length=3, use_all_lengths=False, weighting="tf_idf"),
    )
    t0 = time.perf_counter()
    model = est.fit(data)
    t1 = time.perf_counter()
    features = model.transform(data).column("Features")
    t2 = time.perf_counter()
    return {"fit_s": t1 - t0, "transform_s": t2 - t1, "slots": float(features.shape[1]), "nnz": float(features.nnz)}


def run_sklearn(n: int) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    docs = documents(n)
    union = FeatureUnion(
        [
            ("char", TfidfVectorizer(analyzer="char", ngram_range=(3, 3), lowercase=True)),
            ("word", TfidfVectorizer(token_pattern=r"[^ ]+", ngram_range=(1, 2), lowercase=True)),
        ]
    )
    t0 = time.perf_counter()
    union.fit(docs)
    t1 = time.perf_counter()
    x = union.transform(docs)
    t2 = time.perf_counter()
    return {"fit_s": t1 - t0, "transform_s": t2 - t1, "slots": float(x.shape[1]), "nnz": float(x.nnz)}


def child(side: str, n: int) -> None:
    import resource
    import tracemalloc

    tracemalloc.start()
    result = run_onnxpipe(n) if side == "onnxpipe" else run_sklearn(n)
    result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    result["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--child", choices=("onnxpipe", "sklearn"))
    args = parser.parse_args()
    n = args.rows or (20_000 if args.quick else 100_000)
    if args.child:
        child(args.child, n)
        return
    results = {}
    for side in ("onnxpipe", "sklearn"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", side, "--rows", str(n)], capture_output=True, text=True, check=True
        )
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{n:,} documents")
    header = f"{'':10} {'fit s':>8} {'transform s':>12} {'docs/s (fit+tr)':>16} {'slots':>9} {'RSS MB':>8}"
    print(header + f" {'tracemalloc MB':>15}")
    for side, r in results.items():
        rate = n / (r["fit_s"] + r["transform_s"])
        print(
            f"{side:10} {r['fit_s']:8.2f} {r['transform_s']:12.2f} {rate:16,.0f} {int(r['slots']):9,} "
            f"{r['rss_peak_mb']:8.0f} {r['tracemalloc_peak_mb']:15.0f}"
        )


if __name__ == "__main__":
    main()
