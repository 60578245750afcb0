"""onnxpipe._validation: the argument checks of components' constructors, and their one message style."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from onnxpipe import _validation as v
from onnxpipe._limits import MAX_THREADS
from onnxpipe.errors import InvalidArgumentError

WHO = "normalize_min_max(Features)"


def _message(call: object) -> str:
    assert callable(call)
    with pytest.raises(InvalidArgumentError) as info:
        call()
    return str(info.value)


# ------------------------------------------------------------------------------------------ messages


def test_every_message_names_who_what_expected_and_got() -> None:
    message = _message(lambda: v.integer(1, "maximum_bin_count", WHO, low=2))
    assert message == "normalize_min_max(Features): maximum_bin_count must be an integer >= 2, got 1"


def test_a_fix_is_appended_after_a_semicolon() -> None:
    message = _message(lambda: v.integer(0, "k", "top_k_labels", low=1, fix="give the number of labels to keep"))
    assert message == "top_k_labels: k must be a positive integer, got 0; give the number of labels to keep"


def test_the_value_shown_is_cut_to_60_characters() -> None:
    message = _message(lambda: v.boolean("y" * 1000, "b", WHO))
    got = message.split(", got ", 1)[1]
    assert len(got) == 60 and got.endswith("...") and got.startswith("'yyy")


def test_invalid_builds_the_same_message() -> None:
    error = v.invalid(WHO, "quantile_max", "a percentile from 0 to 100", 101)
    assert isinstance(error, InvalidArgumentError) and isinstance(error, ValueError)
    assert str(error) == "normalize_min_max(Features): quantile_max must be a percentile from 0 to 100, got 101"
    assert str(v.invalid("", "seed", "an integer", "x")) == "seed must be an integer, got 'x'"


# ------------------------------------------------------------------------------------------ column names


def test_column_name() -> None:
    assert v.column_name("Label", "label_column_name", WHO) == "Label"
    assert v.column_name(None, "example_weight_column_name", WHO, optional=True) is None
    for bad in ("", None, 3, b"Label", ["Label"]):
        with pytest.raises(
            InvalidArgumentError, match=rf"^{re.escape(WHO)}: label_column_name must be a non-empty column name, got "
        ):
            v.column_name(bad, "label_column_name", WHO)
    message = _message(lambda: v.column_name("", "input_column_name", WHO, optional="same as the output"))
    assert message.endswith("input_column_name must be a non-empty column name or None (same as the output), got ''")


def test_names() -> None:
    assert v.names(["a", "b"], "column_names", "concatenate") == ("a", "b")
    assert v.names(iter(("a",)), "column_names", "concatenate") == ("a",)
    assert _message(lambda: v.names([], "column_names", "concatenate")) == (
        "concatenate: column_names must be one or more non-empty column names, got []"
    )
    for bad in (["a", ""], ["a", 3], "ab", [None]):
        with pytest.raises(InvalidArgumentError, match=r"column_names must be one or more non-empty column names"):
            v.names(bad, "column_names", "concatenate")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ integers


@pytest.mark.parametrize("good", [0, 7, np.int8(7), np.int64(7), np.uint32(7)])
def test_integer_takes_python_and_numpy_integers(good: object) -> None:
    result = v.integer(good, "count", WHO, low=0)
    assert result == int(good) and type(result) is int  # type: ignore[call-overload]


@pytest.mark.parametrize("bad", [True, False, np.bool_(True), 2.0, np.float32(2), "2", None, [2]])
def test_integer_refuses_bools_floats_and_text(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"count must be an integer >= 0, got "):
        v.integer(bad, "count", WHO, low=0)


def test_integer_bounds_and_their_wording() -> None:
    assert v.integer(30, "number_of_bits", WHO, low=1, high=30) == 30
    assert _message(lambda: v.integer(31, "number_of_bits", WHO, low=1, high=30)).endswith(
        "number_of_bits must be an integer from 1 to 30, got 31"
    )
    assert _message(lambda: v.integer(0, "count", WHO, low=1)).endswith("count must be a positive integer, got 0")
    assert _message(lambda: v.integer(9, "n", WHO, high=8)).endswith("n must be an integer <= 8, got 9")
    assert _message(lambda: v.integer("x", "n", WHO)).endswith("n must be an integer, got 'x'")
    assert _message(lambda: v.integer(0, "image_width", WHO, low=1, unit="pixels")).endswith(
        "image_width must be a positive number of pixels, got 0"
    )
    assert _message(lambda: v.integer(0, "batch_size", WHO, low=1, high=1 << 20, unit="rows")).endswith(
        "batch_size must be a number of rows from 1 to 1,048,576, got 0"
    )


def test_integer_optional() -> None:
    assert v.integer(None, "seed", WHO, low=0, optional=True) is None
    assert _message(lambda: v.integer(-1, "seed", WHO, low=0, optional=True)).endswith(
        "seed must be an integer >= 0 or None, got -1"
    )
    assert _message(lambda: v.integer(1, "number_of_leaves", WHO, low=2, optional="LightGBM's default")).endswith(
        "number_of_leaves must be an integer >= 2 or None (LightGBM's default), got 1"
    )
    with pytest.raises(InvalidArgumentError, match=r"must be an integer >= 0, got None"):
        v.integer(None, "seed", WHO, low=0)


def test_thread_count() -> None:
    assert v.thread_count(None, "number_of_threads", WHO) is None
    assert v.thread_count(MAX_THREADS, "number_of_threads", WHO) == MAX_THREADS
    for bad in (0, MAX_THREADS + 1, True, 2.0):
        with pytest.raises(
            InvalidArgumentError,
            match=rf"number_of_threads must be a number of threads from 1 to {MAX_THREADS} or None \(the default\)",
        ):
            v.thread_count(bad, "number_of_threads", WHO)


# ------------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize("good", [0, 0.5, np.float32(0.5), np.float64(1.0), np.int32(1)])
def test_number_takes_ints_floats_and_numpy_numbers(good: object) -> None:
    result = v.number(good, "fraction", WHO, low=0, high=1)
    assert result == float(good) and type(result) is float  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan"), 10**400, True, np.bool_(False), "1"])
def test_number_refuses_nan_inf_bools_and_text(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"scale must be a finite number, got "):
        v.number(bad, "scale", WHO)


def test_number_bounds_and_their_wording() -> None:
    assert v.number(0, "l2", WHO, low=0) == 0.0
    assert _message(lambda: v.number(-1, "l2", WHO, low=0)).endswith("l2 must be a finite number >= 0, got -1")
    assert _message(lambda: v.number(0, "tolerance", WHO, low=0, low_open=True)).endswith(
        "tolerance must be a finite number > 0, got 0"
    )
    assert _message(lambda: v.number(0.5, "l2", WHO, high=0.5, high_open=True)).endswith(
        "l2 must be a finite number < 0.5, got 0.5"
    )
    assert _message(lambda: v.number(1.5, "fraction", WHO, low=0, high=1, low_open=True)).endswith(
        r"fraction must be a number in (0, 1], got 1.5"
    )
    assert v.number(1, "fraction", WHO, low=0, high=1, low_open=True) == 1.0
    with pytest.raises(InvalidArgumentError, match=r"must be a number in \[0, 1\], got inf"):
        v.number(math.inf, "fraction", WHO, low=0, high=1)


def test_number_optional() -> None:
    assert v.number(None, "learning_rate", WHO, low=0, optional=True) is None
    assert _message(lambda: v.number(math.nan, "learning_rate", WHO, low=0, optional=True)).endswith(
        "learning_rate must be a finite number >= 0 or None, got nan"
    )


# ------------------------------------------------------------------------------------------ bools and choices


def test_boolean() -> None:
    assert v.boolean(True, "fix_zero", WHO) is True
    assert v.boolean(np.bool_(False), "fix_zero", WHO) is False
    assert v.boolean(None, "enabled", WHO, optional=True) is None
    for bad in (0, 1, "yes", None, 1.0):
        with pytest.raises(InvalidArgumentError, match=r"fix_zero must be True or False, got "):
            v.boolean(bad, "fix_zero", WHO)
    assert _message(lambda: v.boolean("yes", "enabled", WHO, optional=True)).endswith(
        "enabled must be True, False or None, got 'yes'"
    )


def test_choice_lists_every_option() -> None:
    options = ("indicator", "bag", "key", "binary")
    assert v.choice("bag", "output_kind", WHO, options) == "bag"
    assert _message(lambda: v.choice("onehot", "output_kind", WHO, options)) == (
        f"{WHO}: output_kind must be one of 'indicator', 'bag', 'key', 'binary', got 'onehot'"
    )
    for bad in ("Bag", None, 1, ["bag"]):
        with pytest.raises(InvalidArgumentError, match=r"output_kind must be one of 'indicator', 'bag'"):
            v.choice(bad, "output_kind", WHO, options)


def test_errors_are_made_inert_when_printed() -> None:
    message = _message(lambda: v.column_name("", "label\x1b[2J", "step\u202e"))
    assert "\x1b" not in message and "\u202e" not in message
