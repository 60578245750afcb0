"""A check of LightGBM model text before LightGBM parses it.

LightGBM's own parser trusts its input: out-of-range child or feature indexes crash the process,
a parse error inside its parallel loop aborts it, and a child pointing back at the root makes it
loop forever. A saved model may come from anyone, so :class:`~onnxpipe.trainers.trees.LightGbmModel`
runs this check, which mirrors what that parser reads, on every text it is rebuilt from.
"""

from __future__ import annotations

import re

__all__ = ["lightgbm_text_problem"]


_LGBM_INT = re.compile(rb"-?\d{1,10}")
_LGBM_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|infinity|nan)", re.IGNORECASE)
_LGBM_TREE_LINES = 22  # the key=value lines LightGBM's Tree(const char*) reads at most
_LGBM_MAX_LEAVES = 1 << 17  # LightGBM's own limit on num_leaves


class _LightGbmTextError(Exception):
    pass


def _lgbm_ints(value: bytes, count: int, what: str) -> list[int]:
    tokens = [t for t in value.split(b" ") if t]  # LightGBM's Common::Split drops empty tokens
    if len(tokens) != count or not all(_LGBM_INT.fullmatch(t) for t in tokens):
        raise _LightGbmTextError(f"{what} must be {count} integers")
    numbers = [int(t) for t in tokens]
    if any(not -(1 << 31) <= n < 1 << 31 for n in numbers):
        raise _LightGbmTextError(f"{what} holds an integer out of range")
    return numbers


def _lgbm_check_numbers(value: bytes, count: int, what: str) -> None:
    tokens = [t for t in value.split(b" ") if t]
    if len(tokens) != count or not all(_LGBM_NUMBER.fullmatch(t) for t in tokens):
        raise _LightGbmTextError(f"{what} must be {count} numbers")


_LINE_BREAK = re.compile(rb"[\r\n]")
_TRAILER = re.compile(rb"\s*(?:pandas_categorical:null\s*)?")  # what LightGBM's Python package writes last


def _lgbm_line_end(data: bytes, pos: int) -> int:
    # One regex search, not two find() calls: find(b"\r") would scan to the end of a text
    # without any, for every line (quadratic in the text's length).
    found = _LINE_BREAK.search(data, pos)
    return found.start() if found else len(data)


def _lgbm_skip_newline(data: bytes, pos: int) -> int:
    if data[pos : pos + 1] == b"\r":
        pos += 1
    if data[pos : pos + 1] == b"\n":
        pos += 1
    return pos


def _lgbm_tree(data: bytes, pos: int, index: int, max_feature: int) -> None:
    """Check the tree block at ``pos`` as LightGBM's ``Tree(const char*)`` parses it."""
    where = f"tree {index}"
    fields: dict[bytes, bytes] = {}
    for _ in range(_LGBM_TREE_LINES):
        if pos < len(data) and data[pos] in b"\r\n":
            break
        equals = data.find(b"=", pos)  # LightGBM scans for '=' across lines and past the end
        end = -1 if equals < 0 else _lgbm_line_end(data, equals)
        if equals < 0 or end >= len(data):
            raise _LightGbmTextError(f"{where} does not end with an empty line")
        fields[data[pos:equals]] = data[equals + 1 : end]
        pos = _lgbm_skip_newline(data, end)
    for required in (b"num_leaves", b"num_cat", b"leaf_value"):
        if required not in fields:
            raise _LightGbmTextError(f"{where} has no {required.decode()}")
    (leaves,) = _lgbm_ints(fields[b"num_leaves"], 1, f"{where} num_leaves")
    if not 1 <= leaves <= _LGBM_MAX_LEAVES:
        raise _LightGbmTextError(f"{where} has {leaves} leaves")
    if _lgbm_ints(fields[b"num_cat"], 1, f"{where} num_cat") != [0]:
        raise _LightGbmTextError(f"{where} has categorical splits, which onnxpipe's trainers never make")
    if fields.get(b"is_linear", b"0").strip() not in (b"0", b""):
        raise _LightGbmTextError(f"{where} is a linear tree, which onnxpipe's trainers never make")
    _lgbm_check_numbers(fields[b"leaf_value"], leaves, f"{where} leaf_value")
    if b"shrinkage" in fields:  # read even for a single leaf; an unknown token aborts LightGBM
        _lgbm_check_numbers(fields[b"shrinkage"], 1, f"{where} shrinkage")
    if leaves == 1:
        return  # LightGBM reads nothing else of a single leaf
    for optional, count in ((b"leaf_weight", leaves), (b"split_gain", leaves - 1)):
        if optional in fields:
            _lgbm_check_numbers(fields[optional], count, f"{where} {optional.decode()}")
    for optional in (b"internal_value", b"internal_weight"):
        if optional in fields:
            _lgbm_check_numbers(fields[optional], leaves - 1, f"{where} {optional.decode()}")
    for optional, count in ((b"leaf_count", leaves), (b"internal_count", leaves - 1)):
        if optional in fields:
            _lgbm_ints(fields[optional], count, f"{where} {optional.decode()}")
    for required in (b"left_child", b"right_child", b"split_feature", b"threshold"):
        if required not in fields:
            raise _LightGbmTextError(f"{where} has no {required.decode()}")
    _lgbm_check_numbers(fields[b"threshold"], leaves - 1, f"{where} threshold")
    if b"decision_type" in fields:
        decisions = _lgbm_ints(fields[b"decision_type"], leaves - 1, f"{where} decision_type")
        if any(d & 1 or not 0 <= d < 128 for d in decisions):
            raise _LightGbmTextError(f"{where} has categorical or invalid decision types")
    features = _lgbm_ints(fields[b"split_feature"], leaves - 1, f"{where} split_feature")
    if any(not 0 <= f <= max_feature for f in features):
        raise _LightGbmTextError(f"{where} splits on a feature outside 0..{max_feature}")
    # Prediction walks from node 0 until a leaf (~index): every other node and every leaf must be
    # the child of exactly one node, or the walk reads out of bounds or never ends.
    children = _lgbm_ints(fields[b"left_child"], leaves - 1, f"{where} left_child")
    children += _lgbm_ints(fields[b"right_child"], leaves - 1, f"{where} right_child")
    expected = list(range(1, leaves - 1)) + [~leaf for leaf in range(leaves)]
    if sorted(children) != sorted(expected):
        raise _LightGbmTextError(f"{where} does not link its nodes and leaves as a tree")


def _lgbm_parameters(data: bytes, pos: int) -> None:
    """Check the ``parameters:`` section after the trees and what follows it.

    LightGBM's GetLoadedParam reads the part after the ':' of each "[name: value]" line without
    checking that there is one. After ``end of parameters`` LightGBM's Python package reads a
    ``pandas_categorical:`` line as JSON; onnxpipe's trainers write ``null`` there, and anything
    else (a JSON document of any size or depth) is refused before that parser sees it.
    """
    inside = False
    while pos < len(data):
        end = _lgbm_line_end(data, pos)
        line = data[pos:end]
        pos = _lgbm_skip_newline(data, end)
        if line == b"parameters:":
            inside = True
        elif line == b"end of parameters":
            if not _TRAILER.fullmatch(data, pos):
                raise _LightGbmTextError("only 'pandas_categorical:null' may follow its parameters")
            return
        elif inside and line and len([part for part in line.split(b":") if part]) < 2:
            raise _LightGbmTextError(f"its parameter line {line[:60]!r} is not '[name: value]'")
    raise _LightGbmTextError("it has no 'end of parameters' line")


def lightgbm_text_problem(text: object, num_features: object) -> str | None:
    """Why LightGBM would crash, abort or hang on the model text ``text``, or None.

    LightGBM trusts its model text: an out-of-range child or feature index reads out of bounds,
    a wrong ``tree_sizes`` entry aborts the process (from an OpenMP loop), a child pointing back
    at the root loops forever. This mirrors ``GBDT::LoadModelFromString`` and
    ``Tree::Tree(const char*)`` (LightGBM 4) and checks everything they later index with.
    """
    if not isinstance(text, str):
        return "its model text is not a string"
    data = text.encode("utf-8")
    if b"\0" in data:
        return "its model text holds a NUL character"
    header: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        end = _lgbm_line_end(data, pos)
        line = data[pos:end]
        if line.startswith(b"Tree="):
            break
        parts = [part for part in line.split(b"=") if part]  # as LightGBM's Common::Split
        if len(parts) == 2 or (len(parts) > 2 and parts[0] == b"feature_names"):
            header[parts[0]] = line.split(b"=", 1)[1] if len(parts) > 2 else parts[1]
        elif len(parts) == 1:
            header[parts[0]] = b""
        elif len(parts) > 2:
            return f"its LightGBM model text has a malformed line {line[:60]!r}"
        pos = _lgbm_skip_newline(data, end)
    trees_at = pos
    try:
        ints = {}
        for key in (b"num_class", b"max_feature_idx", b"num_tree_per_iteration"):
            if key in header or key != b"num_tree_per_iteration":
                (ints[key],) = _lgbm_ints(header.get(key, b""), 1, key.decode())
        classes, max_feature = ints[b"num_class"], ints[b"max_feature_idx"]
        if not 1 <= classes <= 1 << 16 or ints.get(b"num_tree_per_iteration", classes) != classes:
            raise _LightGbmTextError("num_class and num_tree_per_iteration must be the same positive number")
        objective = [token for token in header.get(b"objective", b"-").split(b" ") if token]
        if not objective:  # LightGBM reads the objective's name as its first token, unchecked
            raise _LightGbmTextError("its objective line is empty")
        for token in objective:
            if token.startswith(b"num_class:") and token != b"num_class:%d" % classes:
                raise _LightGbmTextError(f"the objective's {token.decode(errors='replace')} is not num_class={classes}")
        if max_feature < 0 or max_feature + 1 != num_features:
            raise _LightGbmTextError(f"max_feature_idx={max_feature} does not fit {num_features} features")
        if b"tree_sizes" not in header:
            raise _LightGbmTextError("it has no tree_sizes line")
        tokens = [t for t in header[b"tree_sizes"].split(b" ") if t]
        sizes = _lgbm_ints(header[b"tree_sizes"], len(tokens), "tree_sizes")
        if any(size <= 0 for size in sizes) or trees_at + sum(sizes) > len(data):
            raise _LightGbmTextError("its tree_sizes do not fit the text")
        for index, size in enumerate(sizes):
            if not data.startswith(b"Tree=", pos):
                raise _LightGbmTextError(f"tree {index} does not start where tree_sizes says")
            _lgbm_tree(data, _lgbm_skip_newline(data, _lgbm_line_end(data, pos)), index, max_feature)
            pos += size
        _lgbm_parameters(data, pos)
    except _LightGbmTextError as exc:
        return f"its LightGBM model text is malformed: {exc}"
    return None
