"""The n-gram machinery shared by ``produce_ngrams``, ``produce_word_bags``, the hashed bags and
``featurize_text``: ML.NET's ``NgramBufferBuilder`` (``NgramUtils.cs``), vectorised with numpy.

* **Which n-grams, in which order.** At every start position of a row, ML.NET forms the unigram
  and then, depth first, the longer n-grams whose items follow with at most ``skip_length``
  skipped tokens *in total* (the gaps may differ): :func:`ngram_patterns` lists these offset
  patterns in that order. A row's n-grams stay inside the row. Key 0 (missing) is an item like
  any other (its slot name is ``*``), and keys above the key count become 0.
* **The dictionary** (``produce_ngrams``) takes n-grams in order of first occurrence (row, start
  position, pattern), at most ``limits[n - 1]`` of length ``n``; the slot is the insertion rank.
  It is built as a trie whose nodes stand for key sequences (pair codes ``parent << 32 | key``),
  so n-grams of any length are found with one sorted lookup per item.
* **IDF** is ``ln(documents / documents containing the n-gram)``, in double precision, as ML.NET.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

from onnxpipe.data._convert import ColumnValues

__all__ = [
    "MAX_SKIP_NGRAM_LENGTH",
    "NgramDictionaryBuilder",
    "NgramTrie",
    "Weighting",
    "apply_weighting",
    "key_rows",
    "ngram_patterns",
    "walk_ngrams",
]

Weighting = Literal["tf", "idf", "tf_idf"]
WEIGHTINGS = ("tf", "idf", "tf_idf")
MAX_SKIP_NGRAM_LENGTH = 10  # ML.NET's NgramBufferBuilder.MaxSkipNgramLength: ngram_length + skip_length at most
_CHUNK_POSITIONS = 1 << 21  # positions walked at once (memory of the per-pattern node arrays)


def ngram_patterns(ngram_length: int, skip_length: int) -> list[tuple[int, ...]]:
    """The offsets of each n-gram's items from its first item, in the order ML.NET forms them at
    one start position (``ProcessNgrams`` / ``ProcessSkipNgrams``): ``[(0,), (0, 1), (0, 1, 2)]``
    for trigrams without skips."""
    out: list[tuple[int, ...]] = [(0,)]

    def extend(offsets: tuple[int, ...], skips: int) -> None:
        i = len(offsets)
        for k in range(skips, skip_length + 1):
            pattern = (*offsets, i + k)
            out.append(pattern)
            if i + 1 < ngram_length:
                extend(pattern, k)

    if ngram_length > 1:
        extend((0,), 0)
    return out


def key_rows(values: ColumnValues, n_rows: int, key_count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One batch of a key vector column as flat int64 keys and row offsets (``n_rows + 1``);
    keys above ``key_count`` become 0, as ML.NET's ``AddNgrams`` does."""
    if isinstance(values, np.ndarray):
        arr = values.reshape(n_rows, -1)
        flat = arr.reshape(-1).astype(np.int64)
        offsets = np.arange(n_rows + 1, dtype=np.int64) * arr.shape[1]
    else:
        rows = [np.asarray(r).reshape(-1) for r in values]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(rows).astype(np.int64) if rows and offsets[-1] else np.zeros(0, np.int64)
    if key_count is not None:
        flat[flat > key_count] = 0
    return flat, offsets


def walk_ngrams(
    flat: np.ndarray,
    offsets: np.ndarray,
    patterns: Sequence[tuple[int, ...]],
    step: Callable[[np.ndarray, np.ndarray], np.ndarray],
    root: int = 0,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For each pattern (by index): the start positions where its n-gram fits in its row and the
    node of that n-gram there. ``step(prefix_nodes, keys)`` gives the nodes one item longer (-1:
    unknown; such n-grams are not extended); ``root`` is the node of the empty sequence."""
    n = len(flat)
    if n == 0:
        return
    ends = np.repeat(offsets[1:], np.diff(offsets))  # each position's row end
    positions = np.arange(n, dtype=np.int64)
    last_use = {p[:-1]: i for i, p in enumerate(patterns)}
    memo: dict[tuple[int, ...], np.ndarray] = {}
    for index, pattern in enumerate(patterns):
        last = pattern[-1]
        if len(pattern) == 1:
            nodes = step(np.full(n, root, dtype=np.int64), flat)
        else:
            prefix = memo[pattern[:-1]]
            valid = np.flatnonzero((positions + last < ends) & (prefix >= 0))
            nodes = np.full(n, -1, dtype=np.int64)
            if len(valid):
                nodes[valid] = step(prefix[valid], flat[valid + last])
        if last_use.get(pattern, -1) > index:
            memo[pattern] = nodes
        for done in [p for p in memo if last_use.get(p, -1) <= index]:
            del memo[done]
        found = np.flatnonzero(nodes >= 0)
        yield index, found, nodes[found]


def chunks(offsets: np.ndarray) -> Iterator[tuple[int, int]]:
    """Row ranges ``[a, b)`` of a batch with at most about ``_CHUNK_POSITIONS`` items each."""
    n_rows = len(offsets) - 1
    a = 0
    while a < n_rows:
        b = int(np.searchsorted(offsets, offsets[a] + _CHUNK_POSITIONS, side="right")) - 1
        b = min(max(b, a + 1), n_rows)
        yield a, b
        a = b


class NgramTrie:
    """A fixed n-gram dictionary (``ngrams``: the items of every slot's n-gram, flat; ``lengths``:
    each slot's length) as a trie for vectorised lookups."""

    def __init__(self, ngrams: np.ndarray, lengths: np.ndarray) -> None:
        lengths = lengths.astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        node = np.zeros(len(lengths), dtype=np.int64)
        codes: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        next_id = 1
        for j in range(int(lengths.max()) if len(lengths) else 0):
            has = np.flatnonzero(lengths > j)
            pair = (node[has] << 32) | ngrams[starts[has] + j].astype(np.int64)
            uniq, inverse = np.unique(pair, return_inverse=True)
            level = np.arange(next_id, next_id + len(uniq), dtype=np.int64)
            next_id += len(uniq)
            node[has] = level[inverse]
            codes.append(uniq)
            ids.append(level)
        all_codes = np.concatenate(codes) if codes else np.zeros(0, np.int64)
        order = np.argsort(all_codes, kind="stable")
        self.codes = all_codes[order]
        self.nodes = (np.concatenate(ids) if ids else np.zeros(0, np.int64))[order]
        self.slot_of_node = np.full(next_id, -1, dtype=np.int64)
        self.slot_of_node[node] = np.arange(len(lengths), dtype=np.int64)

    def step(self, prefix: np.ndarray, keys: np.ndarray) -> np.ndarray:
        if not len(self.codes):
            return np.full(len(keys), -1, dtype=np.int64)
        pair = (prefix << 32) | keys
        at = np.minimum(np.searchsorted(self.codes, pair), len(self.codes) - 1)
        return np.where(self.codes[at] == pair, self.nodes[at], -1)

    def counts(self, flat: np.ndarray, offsets: np.ndarray, patterns: Sequence[tuple[int, ...]], size: int) -> Any:
        """Each row's n-gram counts as a CSR matrix ``(rows, size)`` (float32)."""
        from scipy import sparse

        n_rows = len(offsets) - 1
        parts = []
        for a, b in chunks(offsets):
            sub, base = flat[offsets[a] : offsets[b]], offsets[a : b + 1] - offsets[a]
            row_of = np.repeat(np.arange(b - a, dtype=np.int64), np.diff(base))
            rows, slots = [], []
            for _, found, nodes in walk_ngrams(sub, base, patterns, self.step):
                slot = self.slot_of_node[nodes]
                keep = slot >= 0
                rows.append(row_of[found[keep]])
                slots.append(slot[keep])
            r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            s = np.concatenate(slots) if slots else np.zeros(0, np.int64)
            m = sparse.csr_matrix((np.ones(len(r), np.float32), (r, s)), shape=(b - a, size))
            m.sum_duplicates()
            parts.append(m)
        if not parts:
            return sparse.csr_matrix((n_rows, size), dtype=np.float32)
        return parts[0] if len(parts) == 1 else sparse.vstack(parts, format="csr")


def apply_weighting(counts: Any, weighting: str, idf: np.ndarray) -> Any:
    """TF: the counts; IDF: the n-gram's idf where it occurs; TF-IDF: count * idf (computed in
    double, stored as float32, as ML.NET)."""
    if weighting == "tf":
        return counts
    out = counts.copy()
    weights = idf[out.indices]
    if weighting == "idf":
        out.data = np.where(out.data >= 1, weights, 0.0).astype(np.float32)
    else:
        out.data = (out.data.astype(np.float64) * weights).astype(np.float32)
    return out


class NgramDictionaryBuilder:
    """Builds an n-gram dictionary batch by batch, as ``NgramExtractingTransformer.Train`` does."""

    def __init__(self, ngram_length: int, skip_length: int, limits: Sequence[int], require_idf: bool) -> None:
        self.patterns = ngram_patterns(ngram_length, skip_length)
        self.limits = list(limits)
        self.counts = [0] * ngram_length
        self.require_idf = require_idf
        self._codes: dict[int, int] = {}
        self._parent: list[int] = [0]
        self._key: list[int] = [0]
        self._depth: list[int] = [0]
        self._slot_of_node = np.full(1, -1, dtype=np.int64)
        self._slot_nodes: list[np.ndarray] = []
        self._n_slots = 0
        self._df = np.zeros(0, dtype=np.float64)
        self.documents = 0

    def _step(self, prefix: np.ndarray, keys: np.ndarray) -> np.ndarray:
        pair = (prefix << 32) | keys
        uniq, inverse = np.unique(pair, return_inverse=True)
        codes, parent, key, depth = self._codes, self._parent, self._key, self._depth
        ids = []
        for c in uniq.tolist():
            v = codes.get(c)
            if v is None:
                v = codes[c] = len(parent)
                p = c >> 32
                parent.append(p)
                key.append(c & 0xFFFFFFFF)
                depth.append(depth[p] + 1)
            ids.append(v)
        return np.asarray(ids, dtype=np.int64)[inverse]

    def add(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        for a, b in chunks(offsets):
            self._add_chunk(flat[offsets[a] : offsets[b]], offsets[a : b + 1] - offsets[a])
        self.documents += len(offsets) - 1

    def _add_chunk(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        n_patterns = len(self.patterns)
        orders, all_nodes = [], []
        for index, found, nodes in walk_ngrams(flat, offsets, self.patterns, self._step):
            orders.append(found * n_patterns + index)
            all_nodes.append(nodes)
        if not orders:
            return
        order = np.concatenate(orders)
        sort = np.argsort(order, kind="stable")
        nodes = np.concatenate(all_nodes)[sort]
        starts = order[sort] // n_patterns
        if len(self._slot_of_node) < len(self._parent):
            grown = np.full(len(self._parent), -1, dtype=np.int64)
            grown[: len(self._slot_of_node)] = self._slot_of_node
            self._slot_of_node = grown
        if any(c < lim for c, lim in zip(self.counts, self.limits, strict=True)):
            new = nodes[self._slot_of_node[nodes] < 0]
            uniq, first = np.unique(new, return_index=True)
            new = uniq[np.argsort(first, kind="stable")]  # in order of first occurrence
            depth = np.asarray(self._depth, dtype=np.int64)[new]
            keep = np.zeros(len(new), dtype=bool)
            for n in range(1, len(self.counts) + 1):
                room = self.limits[n - 1] - self.counts[n - 1]
                if room > 0:
                    of_length = np.flatnonzero(depth == n)[:room]
                    keep[of_length] = True
                    self.counts[n - 1] += len(of_length)
            kept = new[keep]
            self._slot_of_node[kept] = np.arange(self._n_slots, self._n_slots + len(kept), dtype=np.int64)
            self._slot_nodes.append(kept)
            self._n_slots += len(kept)
        if self.require_idf:
            slots = self._slot_of_node[nodes]
            row_of = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
            rows = row_of[starts]
            have = slots >= 0
            pairs = np.unique(rows[have] * max(self._n_slots, 1) + slots[have])
            if len(self._df) < self._n_slots:
                self._df = np.concatenate([self._df, np.zeros(self._n_slots - len(self._df))])
            np.add.at(self._df, pairs % max(self._n_slots, 1), 1.0)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The dictionary: every slot's items (flat uint32), each slot's length (uint8) and idf (float64)."""
        nodes = np.concatenate(self._slot_nodes) if self._slot_nodes else np.zeros(0, np.int64)
        parent = np.asarray(self._parent, dtype=np.int64)
        key = np.asarray(self._key, dtype=np.int64)
        depth = np.asarray(self._depth, dtype=np.int64)
        lengths = depth[nodes]
        width = int(lengths.max()) if len(lengths) else 0
        items = np.zeros((len(nodes), width), dtype=np.int64)
        cur = nodes.copy()
        level = lengths - 1
        while True:
            live = np.flatnonzero(cur > 0)
            if not len(live):
                break
            items[live, level[live]] = key[cur[live]]
            cur[live] = parent[cur[live]]
            level[live] -= 1
        flat = items[np.arange(width)[None, :] < lengths[:, None]].astype(np.uint32)
        df = np.zeros(len(nodes)) if not self.require_idf else np.resize(self._df, len(nodes))
        with np.errstate(divide="ignore"):
            idf = np.where(df > 0, np.log(self.documents / np.maximum(df, 1.0)), 0.0)
        return flat, lengths.astype(np.uint8), idf.astype(np.float64)


def ngram_limits(ngram_length: int, use_all_lengths: bool, maximum_ngrams_count: int) -> list[int]:
    """How many n-grams of each length the dictionary keeps (ML.NET's ``ColumnOptions``)."""
    if not use_all_lengths:
        return [0] * (ngram_length - 1) + [maximum_ngrams_count]
    return [maximum_ngrams_count] * ngram_length


def slot_names(ngrams: np.ndarray, lengths: np.ndarray, texts: Sequence[str]) -> tuple[str, ...]:
    """ML.NET's n-gram slot names: the items' key values joined by ``|``, ``*`` for key 0 or a
    key without a value."""
    n = len(texts)
    names = []
    at = 0
    for length in lengths.tolist():
        parts = ngrams[at : at + length].tolist()
        at += length
        names.append("|".join(texts[k - 1] if 0 < k <= n else "*" for k in parts))
    return tuple(names)


# ---------------------------------------------------------------------------------- hashing

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def murmur_round(h: np.ndarray, k: np.ndarray) -> np.ndarray:
    """ML.NET's ``Hashing.MurmurRound``, vectorised over uint32 arrays."""
    with np.errstate(over="ignore"):
        k = np.asarray(k, dtype=np.uint32) * _C1
        k = (k << np.uint32(15)) | (k >> np.uint32(17))
        k = k * _C2
        h = np.asarray(h, dtype=np.uint32) ^ k
        h = (h << np.uint32(13)) | (h >> np.uint32(19))
        return np.asarray(h * np.uint32(5) + np.uint32(0xE6546B64), dtype=np.uint32)


def mix_hash(h: np.ndarray) -> np.ndarray:
    """ML.NET's ``Hashing.MixHash`` (MurmurHash3's finalizer)."""
    with np.errstate(over="ignore"):
        h = np.asarray(h, dtype=np.uint32)
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        return np.asarray(h ^ (h >> np.uint32(16)), dtype=np.uint32)
