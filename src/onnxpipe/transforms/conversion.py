"""Type conversion and key mapping: ``map_value_to_key``, ``map_key_to_value``, ``map_value``,
``convert_type`` and ``hash`` (ML.NET's Conversions catalog).

Missing values (ML.NET's rules): NaN for floats, the empty string for strings, key 0 for key
columns. A missing value never becomes a key; it maps to key 0, and key 0 maps back to the
missing value of the value type.

Key columns have the column type :class:`~onnxpipe.schema.KeyType`: ``uint32`` values ``1..n``
(0 = missing) with the count ``n`` and the values behind the keys (ML.NET's KeyValues), so
``map_key_to_value`` reads them from the schema. What an estimator cannot know before ``fit``
(the keys learned from data) it promises as a key type of unknown count (``KeyType(None)``).

The ``hash`` transform hashes with MurmurHash3 (x86, 32-bit) of :mod:`onnxpipe._hashing`, which
agrees bit for bit with ONNX Runtime's ``com.microsoft.MurmurHash3`` kernel that the exported
graphs use (``murmur3_32`` is re-exported here).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, cast

import numpy as np
import pyarrow as pa

from onnxpipe import _validation
from onnxpipe._hashing import murmur3_32, murmur_round
from onnxpipe.core import Estimator, Transformer, TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues, from_arrow
from onnxpipe.data._view import DataView
from onnxpipe.errors import ColumnTypeError, DataError, InvalidArgumentError
from onnxpipe.runtime._model import ONNX_ELEMENT
from onnxpipe.schema import Column, DType, KeyType, KeyValues, Schema, TensorType

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "KEY_ORDINALITIES",
    "HashingTransformer",
    "KeyToValueMappingTransformer",
    "TypeConvertingTransformer",
    "ValueMappingTransformer",
    "ValueToKeyMappingEstimator",
    "ValueToKeyMappingTransformer",
    "murmur3_32",
]

KeyOrdinality = Literal["by_occurrence", "by_value"]
KEY_ORDINALITIES: tuple[str, ...] = ("by_occurrence", "by_value")

_ML = "ai.onnx.ml"


# --------------------------------------------------------------------------------------------
# Shared plumbing (also used by the categorical, missing-value and feature-selection modules)


def _same(a: object, b: object) -> bool:
    """Equality that understands numpy arrays inside tuples."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        )
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _hashable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape)
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, Mapping):
        return len(value)
    return value


class OneToOneStep:
    """One output column computed from one input column: names, ``step_name``, equality, repr.

    Subclasses are registered with ``@component(catalog_name, ...)`` and return their
    constructor arguments from ``_params``.
    """

    catalog_name: ClassVar[str]  # set by @component on the Component subclasses

    output_column_name: str
    input_column_name: str

    def _set_columns(self, output_column_name: str, input_column_name: str | None) -> None:
        who = self.catalog_name
        output = _validation.column_name(output_column_name, "output_column_name", who)
        input_ = _validation.column_name(input_column_name, "input_column_name", who, optional="same as the output")
        self.output_column_name = output
        self.input_column_name = input_ if input_ is not None else output

    def _params(self) -> tuple[object, ...]:
        return (self.output_column_name, self.input_column_name)

    @property
    def step_name(self) -> str:
        if self.input_column_name == self.output_column_name:
            return f"{self.catalog_name}({self.output_column_name})"
        return f"{self.catalog_name}({self.output_column_name} <- {self.input_column_name})"

    def input_columns(self, input_schema: Schema) -> Sequence[str]:
        return [self.input_column_name]

    def _input_tensor(self, schema: Schema, accepts: Callable[[TensorType], bool], expected: str) -> TensorType:
        """The input column's type, or a ColumnTypeError saying what this step accepts."""
        col = schema.require(self.input_column_name, self.step_name)
        ct = col.type
        if not isinstance(ct, TensorType) or not accepts(ct):
            raise ColumnTypeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}; expected {expected}"
            )
        return ct

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and _same(self._params(), other._params())

    def __hash__(self) -> int:
        return hash((type(self).__name__, _hashable(self._params())))

    def __repr__(self) -> str:
        args = ", ".join(_short_repr(p) for p in self._params())
        return f"{type(self).__name__}({args})"


def _short_repr(value: object) -> str:
    if isinstance(value, np.ndarray):
        head = ", ".join(repr(v) for v in value[:5].tolist())
        return f"[{head}{', ...' if len(value) > 5 else ''}] ({len(value)} {value.dtype})"
    return repr(value)


def flat_values(values: ColumnValues) -> np.ndarray:
    """All elements of one batch of a tensor column as a flat array (row-major)."""
    if isinstance(values, np.ndarray):
        return values.reshape(-1)
    parts = [np.asarray(r).reshape(-1) for r in values]
    if not parts:
        return np.zeros(0)
    return np.concatenate(parts)


def elementwise(values: ColumnValues, fn: Callable[[np.ndarray], np.ndarray]) -> ColumnValues:
    """Apply ``fn`` (flat array -> flat array of the same length) keeping each row's shape."""
    if isinstance(values, np.ndarray):
        out = fn(values.reshape(-1))
        return out.reshape(values.shape)
    rows = [np.asarray(r) for r in values]
    if not rows:
        return []
    out = fn(np.concatenate([r.reshape(-1) for r in rows]))
    bounds = np.cumsum([r.size for r in rows])[:-1]
    return [p.reshape(r.shape) for p, r in zip(np.split(out, bounds), rows, strict=True)]


def column_batches(data: DataView, name: str) -> Iterator[ColumnValues]:
    """The values of one column, batch by batch (fit streams; it never loads the whole column)."""
    ct = data.schema[name].type
    for batch in data.batches():
        yield from_arrow(batch.column(name), ct)


def missing_mask(flat: np.ndarray, dtype: DType, is_key: bool = False) -> np.ndarray:
    """Where values are missing: NaN for floats, '' for strings, 0 for keys."""
    if dtype.is_float:
        return np.asarray(np.isnan(flat), dtype=bool)
    if dtype is DType.STRING:
        return np.fromiter((v == "" for v in flat), dtype=bool, count=len(flat))
    if is_key:
        return np.asarray(flat == 0)
    return np.zeros(len(flat), dtype=bool)


def missing_value(dtype: DType) -> object:
    """The value that stands for 'missing' (or the default) in a column of ``dtype``."""
    if dtype.is_float:
        return float("nan")
    if dtype is DType.STRING:
        return ""
    if dtype is DType.BOOL:
        return False
    return 0


def is_key(ct: TensorType) -> bool:
    return isinstance(ct, KeyType)


def _value_text(value: Any, dtype: DType) -> str:
    """How a key value is written as text (slot names, ``add_key_value_annotations_as_text``)."""
    if dtype is DType.STRING:
        return str(value)
    if dtype is DType.BOOL:
        return "True" if value else "False"
    if dtype.is_float:
        return str(dtype.numpy.type(value))  # shortest round-trip text of the value at its precision
    return str(int(value))


# --------------------------------------------------------------------------------------------
# Keys: learning (streamed, bounded) and mapping values to keys (vectorised)


class _KeyCollector:
    """Collects distinct non-missing values in order of first occurrence, at most ``limit``."""

    def __init__(self, dtype: DType, limit: int, keys_input: bool = False) -> None:
        self.dtype = dtype
        self.limit = limit
        self.keys_input = keys_input  # the input is a key column: key 0 is missing
        self.seen: dict[Any, None] = {}

    @property
    def full(self) -> bool:
        return len(self.seen) >= self.limit

    def add(self, flat: np.ndarray) -> None:
        if self.full or not len(flat):
            return
        flat = flat[~missing_mask(flat, self.dtype, self.keys_input)]
        if not len(flat):
            return
        uniq, first = np.unique(flat, return_index=True)
        for v in uniq[np.argsort(first, kind="stable")].tolist():
            if v not in self.seen:
                self.seen[v] = None
                if self.full:
                    return

    def keys(self, ordinality: str) -> np.ndarray:
        return _key_array(list(self.seen), self.dtype, ordinality)


def _key_array(values: Sequence[Any], dtype: DType, ordinality: str) -> np.ndarray:
    arr = np.array(list(values), dtype=dtype.numpy) if len(values) else np.zeros(0, dtype=dtype.numpy)
    if ordinality == "by_value" and len(arr) > 1:
        arr = arr[np.argsort(arr, kind="stable")]
    arr.flags.writeable = False
    return arr


def _coerce_values(values: Iterable[Any], dtype: DType, what: str) -> np.ndarray:
    """Given values (keys of a mapping, explicit keys) as an array of ``dtype``, exactly."""
    items = list(values)
    if dtype is DType.STRING:
        bad = [v for v in items if not isinstance(v, str)]
        if bad:
            raise ColumnTypeError(f"{what}: the column holds strings, but {bad[0]!r} is a {type(bad[0]).__name__}")
        return np.array(items, dtype=object).reshape(-1)
    if dtype is DType.BOOL:
        bad = [v for v in items if not isinstance(v, bool | np.bool_)]
        if bad:
            raise ColumnTypeError(f"{what}: the column holds bools, but {bad[0]!r} is a {type(bad[0]).__name__}")
        return np.array(items, dtype=bool).reshape(-1)
    bad = [v for v in items if isinstance(v, bool | np.bool_ | str) or not isinstance(v, int | float | np.number)]
    if bad:
        raise ColumnTypeError(
            f"{what}: the column holds {dtype.value} numbers, but {bad[0]!r} is a {type(bad[0]).__name__}"
        )
    out = np.zeros(len(items), dtype=dtype.numpy)
    for i, v in enumerate(items):
        with np.errstate(all="ignore"):
            try:
                converted = dtype.numpy.type(v)
            except (OverflowError, ValueError):
                converted = None
        if dtype.is_float:
            # A float key means the nearest value of the column's precision (0.1 -> float32 0.1).
            fits = converted is not None and (bool(np.isfinite(converted)) or not np.isfinite(float(v)))
        else:
            fits = converted is not None and converted == v
        if not fits:
            what_fails = "is out of range for" if dtype.is_float else "cannot be represented exactly as"
            raise InvalidArgumentError(f"{what}: {v!r} {what_fails} {dtype.value}")
        out[i] = converted
    return out


class _KeyMapper:
    """Maps values to keys ``1..n`` (0 when the value is missing or not a key)."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        if keys.dtype == object:
            self.value_set = pa.array(keys.tolist(), type=pa.string())
        else:
            self.order = np.argsort(keys, kind="stable")
            self.sorted = keys[self.order]

    def __call__(self, flat: np.ndarray) -> np.ndarray:
        if self.keys.dtype == object:  # strings: Arrow's hash lookup, not a Python loop
            import pyarrow.compute as pc  # ~40 ms to load: not at import onnxpipe

            found = pc.index_in(pa.array(flat, type=pa.string()), value_set=self.value_set)
            return np.asarray(pc.fill_null(pc.add(found, 1), 0).to_numpy(zero_copy_only=False), dtype=np.uint32)
        n = len(self.sorted)
        flat = np.asarray(flat, dtype=self.keys.dtype)
        idx = np.minimum(np.searchsorted(self.sorted, flat), n - 1)
        hit = self.sorted[idx] == flat
        return np.where(hit, self.order[idx] + 1, 0).astype(np.uint32)


# --------------------------------------------------------------------------------------------
# ONNX helpers


def export_key_lookup(ctx: ExportContext, value: str, dtype: DType, keys: np.ndarray) -> str:
    """An int64 tensor of the same shape as ``value``: the 1-based index of each element in
    ``keys``, 0 when absent (missing values are never keys). Uses ai.onnx.ml LabelEncoder."""
    from onnx import TensorProto, numpy_helper  # exporting: not loaded by import onnxpipe

    n = len(keys)
    positions = list(range(1, n + 1))
    if dtype is DType.STRING:
        return ctx.add_node(
            "LabelEncoder",
            [value],
            domain=_ML,
            keys_strings=[str(k) for k in keys.tolist()],
            values_int64s=positions,
            default_int64=0,
        )[0]
    if dtype in (DType.FLOAT32, DType.FLOAT16):
        if dtype is DType.FLOAT16:
            value = ctx.add_node("Cast", [value], to=TensorProto.FLOAT)[0]
        return ctx.add_node(
            "LabelEncoder",
            [value],
            domain=_ML,
            keys_floats=[float(k) for k in keys.astype(np.float32).tolist()],
            values_int64s=positions,
            default_int64=0,
        )[0]
    if dtype is DType.FLOAT64:
        # keys_floats would round doubles to float; opset 4's tensor attributes keep them exact.
        ctx.require_opset(_ML, 4)
        return ctx.add_node(
            "LabelEncoder",
            [value],
            domain=_ML,
            keys_tensor=numpy_helper.from_array(keys.astype(np.float64), "keys_tensor"),
            values_tensor=numpy_helper.from_array(np.arange(1, n + 1, dtype=np.int64), "values_tensor"),
            default_tensor=numpy_helper.from_array(np.zeros(1, dtype=np.int64), "default_tensor"),
        )[0]
    # bool and integers: int64 keys (uint64 beyond int64's range wraps identically on both sides)
    if dtype is not DType.INT64:
        value = ctx.add_node("Cast", [value], to=TensorProto.INT64)[0]
    with np.errstate(all="ignore"):
        int_keys = keys.astype(np.int64).tolist()
    return ctx.add_node(
        "LabelEncoder", [value], domain=_ML, keys_int64s=int_keys, values_int64s=positions, default_int64=0
    )[0]


def export_gather_table(ctx: ExportContext, index: str, table: np.ndarray, hint: str) -> str:
    """``table[index]`` elementwise (``index`` int64, any shape)."""
    t = ctx.add_initializer(table, hint)
    return ctx.add_node("Gather", [t, index], axis=0)[0]


def export_cast(ctx: ExportContext, value: str, dtype: DType) -> str:
    return ctx.add_node("Cast", [value], to=ONNX_ELEMENT[dtype])[0]


# --------------------------------------------------------------------------------------------
# map_value_to_key


def _keyable(ct: TensorType) -> bool:
    return True


_KEYABLE = "a tensor column of strings, numbers, bools or keys"


@component("map_value_to_key", catalog="transforms.conversion")
class ValueToKeyMappingEstimator(OneToOneStep, Estimator["ValueToKeyMappingTransformer"]):
    """Learns the distinct values of a column and maps each to a key ``1..n`` (0 = missing/unseen).

    ``key_ordinality``: ``"by_occurrence"`` numbers keys in order of first appearance,
    ``"by_value"`` in sorted order. At most ``maximum_number_of_keys`` values become keys (the
    first ones seen). ``keys`` gives the values up front instead of learning them from data.
    Strings' empty value and floats' NaN are missing: they never become keys.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_number_of_keys: int = 1_000_000,
        key_ordinality: KeyOrdinality = "by_occurrence",
        add_key_value_annotations_as_text: bool = False,
        keys: Sequence[Any] | np.ndarray | None = None,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.maximum_number_of_keys = _validation.integer(
            maximum_number_of_keys, "maximum_number_of_keys", self.step_name, low=1
        )
        self.key_ordinality = cast(
            "KeyOrdinality", _validation.choice(key_ordinality, "key_ordinality", self.step_name, KEY_ORDINALITIES)
        )
        self.add_key_value_annotations_as_text = _validation.boolean(
            add_key_value_annotations_as_text, "add_key_value_annotations_as_text", self.step_name
        )
        if keys is not None:
            if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
                raise _validation.invalid(self.step_name, "keys", "a sequence of values or None", keys)
            keys = (
                tuple(np.asarray(keys, dtype=object).reshape(-1).tolist())
                if isinstance(keys, np.ndarray)
                else tuple(keys)
            )
            if not keys:
                raise InvalidArgumentError(
                    f"{self.step_name}: keys is empty; give at least one value, or None to learn them"
                )
        self.keys: tuple[Any, ...] | None = keys

    def _params(self) -> tuple[object, ...]:
        return (
            *super()._params(),
            self.maximum_number_of_keys,
            self.key_ordinality,
            self.add_key_value_annotations_as_text,
            self.keys,
        )

    def _given_keys(self, ct: TensorType) -> np.ndarray:
        assert self.keys is not None
        values = _coerce_values(self.keys, ct.dtype, f"{self.step_name} keys")
        collector = _KeyCollector(ct.dtype, len(values) + 1, is_key(ct))
        collector.add(values)
        if not collector.seen:
            raise InvalidArgumentError(f"{self.step_name}: keys holds only missing values ({list(self.keys)!r})")
        if len(collector.seen) > self.maximum_number_of_keys:
            raise InvalidArgumentError(
                f"{self.step_name}: keys has {len(collector.seen)} distinct values, more than "
                f"maximum_number_of_keys={self.maximum_number_of_keys}; raise the maximum or pass fewer keys"
            )
        return collector.keys(self.key_ordinality)

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._input_tensor(input_schema, _keyable, _KEYABLE)
        if self.keys is not None:
            key = self.fit_given_keys(ct).key_type(ct)
        else:
            value_dtype = DType.STRING if self.add_key_value_annotations_as_text else ct.dtype
            key = KeyType(None, shape=ct.shape, value_dtype=value_dtype)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, key, slots))

    def fit_given_keys(self, input_type: TensorType) -> ValueToKeyMappingTransformer:
        """The transformer for the ``keys`` given up front, for input of ``input_type`` (no data needed)."""
        if self.keys is None:
            raise InvalidArgumentError(f"{self.step_name}: no keys were given; fit on data to learn them")
        return self._transformer(self._given_keys(input_type))

    def _transformer(self, keys: np.ndarray) -> ValueToKeyMappingTransformer:
        return ValueToKeyMappingTransformer(
            self.output_column_name,
            self.input_column_name,
            keys,
            add_key_value_annotations_as_text=self.add_key_value_annotations_as_text,
        )

    def fit(self, data: DataView) -> ValueToKeyMappingTransformer:
        ct = self._input_tensor(data.schema, _keyable, _KEYABLE)
        if self.keys is not None:
            keys = self._given_keys(ct)
        else:
            collector = _KeyCollector(ct.dtype, self.maximum_number_of_keys, is_key(ct))
            for values in column_batches(data, self.input_column_name):
                collector.add(flat_values(values))
                if collector.full:
                    break
            if not collector.seen:
                raise DataError(
                    f"{self.step_name}: column {self.input_column_name!r} has no non-missing values to learn keys "
                    "from; fit on data with values, or pass keys=[...]"
                )
            keys = collector.keys(self.key_ordinality)
        return self._transformer(keys)


@component("map_value_to_key")
class ValueToKeyMappingTransformer(OneToOneStep, Transformer):
    """Maps values to keys ``1..n`` by position in ``keys`` (0 for missing or unseen values)."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None,
        keys: np.ndarray,
        *,
        add_key_value_annotations_as_text: bool = False,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        keys = np.array(keys, dtype=keys.dtype, copy=True).reshape(-1)
        if not len(keys):
            raise InvalidArgumentError(f"{self.step_name}: keys is empty")
        keys.flags.writeable = False
        self._keys = keys
        self._dtype = DType.from_numpy(keys.dtype)
        self.add_key_value_annotations_as_text = _validation.boolean(
            add_key_value_annotations_as_text, "add_key_value_annotations_as_text", self.step_name
        )
        self._mapper = _KeyMapper(keys)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self._keys, self.add_key_value_annotations_as_text)

    @property
    def keys(self) -> np.ndarray:
        """The values behind keys ``1..n`` (read-only), in the input column's element type."""
        return self._keys

    @property
    def key_count(self) -> int:
        return len(self._keys)

    @property
    def value_type(self) -> DType:
        """The element type of the values behind the keys (STRING with ``add_key_value_annotations_as_text``)."""
        return DType.STRING if self.add_key_value_annotations_as_text else self._dtype

    @property
    def key_values(self) -> np.ndarray:
        """What ``map_key_to_value`` gives back for keys ``1..n``: the keys, or their text with
        ``add_key_value_annotations_as_text`` (ML.NET's KeyValues annotation)."""
        if not self.add_key_value_annotations_as_text:
            return self._keys
        return np.array([_value_text(v, self._dtype) for v in self._keys.tolist()], dtype=object)

    @functools.cached_property
    def _annotation(self) -> KeyValues:
        # Made once: output_schema runs at every schema check, and a million keys' values are costly to rebuild.
        return KeyValues.of(self.key_values, self.value_type)

    def key_type(self, input_type: TensorType) -> KeyType:
        """The type of the output column for an input column of ``input_type``: the keys with their values."""
        return KeyType(self.key_count, self._annotation, shape=input_type.shape)

    def key_value_texts(self) -> list[str]:
        """The key values as text (slot names of one-hot vectors)."""
        return [_value_text(v, self._dtype) for v in self._keys.tolist()]

    def _check(self, schema: Schema) -> TensorType:
        ct = self._input_tensor(schema, _keyable, _KEYABLE)
        if ct.dtype is not self._dtype:
            raise ColumnTypeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct}, but the keys were learned "
                f"from {self._dtype.value} values; refit on data of this type"
            )
        return ct

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, self.key_type(ct), slots))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        return {self.output_column_name: elementwise(columns[self.input_column_name], self._mapper)}

    def export_index(self, ctx: ExportContext, input_schema: Schema) -> str:
        """The keys as an int64 ONNX value (``[N, *shape]``)."""
        return export_key_lookup(ctx, ctx.value(self.input_column_name), self._dtype, self._keys)

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        index = self.export_index(ctx, input_schema)
        keys = export_cast(ctx, index, DType.UINT32)
        pad = ctx.padding.get(self.input_column_name)
        if pad is None:
            ctx.set_value(self.output_column_name, keys)
            return
        # Ragged rows padded by the export (tokens): the padding must stay apart from key 0 (an
        # unseen value can end a row), so it becomes uint32's largest value, never a key.
        x = ctx.value(self.input_column_name)
        if isinstance(pad, str):
            (flag,) = ctx.add_node(
                "LabelEncoder", [x], domain=_ML, keys_strings=[pad], values_int64s=[1], default_int64=0
            )
            (is_pad,) = ctx.add_node("Cast", [flag], to=ONNX_ELEMENT[DType.BOOL])
        else:
            (is_pad,) = ctx.add_node("Equal", [x, ctx.add_initializer(np.array(pad, dtype=self._keys.dtype), "pad")])
        last = np.iinfo(np.uint32).max
        marker = ctx.add_initializer(np.array(last, np.uint32), "padding")
        ctx.set_padded_value(self.output_column_name, ctx.add_node("Where", [is_pad, marker, keys])[0], int(last))


# --------------------------------------------------------------------------------------------
# map_key_to_value


@component("map_key_to_value", catalog="transforms.conversion")
class KeyToValueMappingTransformer(OneToOneStep, TrivialEstimator["KeyToValueMappingTransformer"]):
    """Maps keys ``1..n`` back to their values; key 0 (and keys beyond ``n``) give the missing
    value of the value type (NaN, '', 0 or False).

    The values come from the key column's type (its :class:`~onnxpipe.schema.KeyValues`, set by
    ``map_value_to_key`` and by multiclass trainers on ``PredictedLabel``), as ML.NET reads its
    KeyValues annotation. ``key_values`` overrides them: an array or sequence, or the fitted
    :class:`ValueToKeyMappingTransformer` (or any object with a ``key_values`` array) that made
    the keys; it is needed only for a key column whose type carries no values.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        key_values: Sequence[Any] | np.ndarray | ValueToKeyMappingTransformer | None = None,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self._values: np.ndarray | None = None
        self._given_table: np.ndarray | None = None
        if key_values is None:
            return
        source = getattr(key_values, "key_values", key_values)
        if isinstance(source, str | bytes) or not isinstance(source, Iterable):
            raise _validation.invalid(self.step_name, "key_values", "a sequence of values or None", source)
        arr = source if isinstance(source, np.ndarray) else _infer_array(list(source), f"{self.step_name} key_values")
        arr = np.array(arr, dtype=arr.dtype, copy=True).reshape(-1)
        if not len(arr):
            raise InvalidArgumentError(f"{self.step_name}: key_values is empty")
        arr.flags.writeable = False
        self._values = arr
        self._given_table = _lookup_table(arr)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self._values)

    @property
    def key_values(self) -> np.ndarray | None:
        """The key values given to the constructor (None: read from the key column's type)."""
        return self._values

    def _key_values(self, input_schema: Schema) -> tuple[KeyType, np.ndarray | DType]:
        """The input key type and the values behind its keys (only their type in an estimator's
        promise before fit)."""
        ct = self._input_tensor(
            input_schema,
            is_key,
            "a key column (key<uint32,n>), e.g. from map_value_to_key or a multiclass PredictedLabel",
        )
        assert isinstance(ct, KeyType)
        if self._values is None:
            if ct.values is None and ct.count is None and ct.value_dtype is not None:
                return ct, ct.value_dtype
            if ct.values is None:
                raise ColumnTypeError(
                    f"{self.step_name}: input column {self.input_column_name!r} is {ct}, a key column without key "
                    "values; make it with map_value_to_key (whose values it then carries), or pass key_values=[...]"
                )
            return ct, ct.values.array
        if ct.count is not None and ct.count != len(self._values):
            raise ColumnTypeError(
                f"{self.step_name}: input column {self.input_column_name!r} is {ct} with {ct.count} keys, "
                f"but {len(self._values)} key values were given; pass the key values of the step that made this column"
            )
        return ct, self._values

    def _fitted_table(self, input_schema: Schema) -> np.ndarray:
        """The lookup table of the key values: made once for given values, once per KeyValues else."""
        ct, values = self._key_values(input_schema)
        if isinstance(values, DType):  # only a fitted pipeline's data flows, with its keys' values
            raise ColumnTypeError(f"{self.step_name}: the key column {self.input_column_name!r} has no key values yet")
        if self._given_table is not None:
            return self._given_table
        assert ct.values is not None
        return _key_values_table(ct.values)

    def output_schema(self, input_schema: Schema) -> Schema:
        ct, values = self._key_values(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        out = TensorType(values if isinstance(values, DType) else DType.from_numpy(values.dtype), ct.shape)
        return input_schema.with_columns(Column(self.output_column_name, out, slots))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        table = self._fitted_table(input_schema)
        last = len(table) - 1

        def lookup(flat: np.ndarray) -> np.ndarray:
            return table[np.minimum(flat.astype(np.int64), last)]

        return {self.output_column_name: elementwise(columns[self.input_column_name], lookup)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        table = self._fitted_table(input_schema)
        index = export_cast(ctx, ctx.value(self.input_column_name), DType.INT64)
        index = ctx.add_node("Min", [index, ctx.add_initializer(np.array(len(table) - 1, np.int64), "last")])[0]
        ctx.set_value(self.output_column_name, export_gather_table(ctx, index, table, "key_values"))


def _lookup_table(values: np.ndarray) -> np.ndarray:
    """``[missing, v1..vn, missing]`` for keys 0..n+1 (keys beyond n are clamped to the last entry)."""
    missing = np.array([missing_value(DType.from_numpy(values.dtype))], dtype=values.dtype)
    table = np.concatenate([missing, values, missing])
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=32)
def _key_values_table(values: KeyValues) -> np.ndarray:
    return _lookup_table(values.array)


def _infer_array(values: list[Any], what: str) -> np.ndarray:
    """An array of Python values with ML.NET's type rules: str, bool, int (int64), float (float32);
    numpy scalars keep their type."""
    if not values:
        return np.zeros(0, dtype=np.float32)
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, bool | np.bool_) for v in values):
        return np.array(values, dtype=bool)
    if any(isinstance(v, bool | np.bool_ | str) for v in values):
        kinds = sorted({type(v).__name__ for v in values})
        raise InvalidArgumentError(f"{what}: values of mixed types {kinds} cannot share one column type")
    np_types = {np.asarray(v).dtype for v in values if isinstance(v, np.generic)}
    if np_types and len(np_types) == 1 and all(isinstance(v, np.generic) for v in values):
        return np.array(values, dtype=np_types.pop())
    if all(isinstance(v, int | np.integer) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, int | float | np.number) for v in values):
        return np.array(values, dtype=np.float32)
    kinds = sorted({type(v).__name__ for v in values})
    raise InvalidArgumentError(f"{what}: values of type {kinds} are not supported; use str, bool, int or float")


# --------------------------------------------------------------------------------------------
# map_value


@component("map_value", catalog="transforms.conversion")
class ValueMappingTransformer(OneToOneStep, TrivialEstimator["ValueMappingTransformer"]):
    """Maps values through ``key_value_pairs``; values not in the mapping (and NaN) give the
    missing value of the value type (NaN, '', 0, False).

    The value type follows the mapping's values: ``str``, ``bool``, ``int`` (int64), ``float``
    (float32), or a numpy scalar type. ``treat_values_as_key_type=True`` outputs keys instead:
    the distinct values, in order of first appearance in the mapping, numbered ``1..n``.
    """

    def __init__(
        self,
        output_column_name: str,
        key_value_pairs: Mapping[Any, Any],
        input_column_name: str | None = None,
        *,
        treat_values_as_key_type: bool = False,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        if not isinstance(key_value_pairs, Mapping) or not key_value_pairs:
            raise _validation.invalid(
                self.step_name, "key_value_pairs", "a non-empty mapping of input value -> output value", key_value_pairs
            )
        self.key_value_pairs: dict[Any, Any] = dict(key_value_pairs)
        self.treat_values_as_key_type = _validation.boolean(
            treat_values_as_key_type, "treat_values_as_key_type", self.step_name
        )
        values = _infer_array(list(self.key_value_pairs.values()), f"{self.step_name} values")
        self._value_dtype = DType.from_numpy(values.dtype)
        if self.treat_values_as_key_type:
            collector = _KeyCollector(self._value_dtype, len(values) + 1)
            collector.add(values)
            if not collector.seen:
                raise InvalidArgumentError(f"{self.step_name}: every value is missing; keys need values")
            self._key_values = collector.keys("by_occurrence")
            codes = _KeyMapper(self._key_values)(values)
            self._table = np.concatenate([[0], codes]).astype(np.uint32)
        else:
            self._key_values = np.zeros(0, dtype=values.dtype)
            self._table = np.concatenate([np.array([missing_value(self._value_dtype)], dtype=values.dtype), values])
        self._table.flags.writeable = False

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), tuple(self.key_value_pairs.items()), self.treat_values_as_key_type)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.output_column_name, self.input_column_name, len(self.key_value_pairs)))

    @property
    def value_type(self) -> DType:
        """The element type of the mapped values."""
        return self._value_dtype

    @property
    def key_values(self) -> np.ndarray:
        """With ``treat_values_as_key_type``: the values behind keys ``1..n``."""
        return self._key_values

    def _keys(self, schema: Schema) -> tuple[TensorType, np.ndarray]:
        ct = self._input_tensor(schema, lambda t: not is_key(t), "a tensor column of strings, numbers or bools")
        keys = _coerce_values(self.key_value_pairs, ct.dtype, f"{self.step_name} keys")
        if ct.dtype.is_float and np.isnan(keys).any():
            raise InvalidArgumentError(
                f"{self.step_name}: NaN is a key of key_value_pairs, but NaN never equals a value; "
                "use replace_missing_values first to give missing values a value to map"
            )
        return ct, keys

    def output_schema(self, input_schema: Schema) -> Schema:
        ct, _ = self._keys(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        out: TensorType
        if self.treat_values_as_key_type:
            out = KeyType(len(self._key_values), KeyValues.of(self._key_values), shape=ct.shape)
        else:
            out = TensorType(self._value_dtype, ct.shape)
        return input_schema.with_columns(Column(self.output_column_name, out, slots))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        _, keys = self._keys(input_schema)
        mapper = _KeyMapper(keys)

        def lookup(flat: np.ndarray) -> np.ndarray:
            return self._table[mapper(flat).astype(np.int64)]

        return {self.output_column_name: elementwise(columns[self.input_column_name], lookup)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ct, keys = self._keys(input_schema)
        index = export_key_lookup(ctx, ctx.value(self.input_column_name), ct.dtype, keys)
        ctx.set_value(self.output_column_name, export_gather_table(ctx, index, self._table, "mapped_values"))


# --------------------------------------------------------------------------------------------
# convert_type

_WS = "[ \\t\\n\\r\\f]*"
# One grammar for Python (re) and ONNX (RE2 RegexFullMatch): decimal numbers, inf/infinity, nan.
FLOAT_PATTERN = (
    _WS + "[+-]?(?:(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)(?:[eE][+-]?[0-9]+)?"
    "|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])" + _WS
)
_FLOAT_RE = re.compile(FLOAT_PATTERN)
_INT_RE = re.compile(_WS + "[+-]?[0-9]+" + _WS)
_TRUE = ("true", "True", "TRUE", "1")
_FALSE = ("false", "False", "FALSE", "0")


def _parse_strings(flat: np.ndarray, dtype: DType, fail: Callable[[str, str], DataError]) -> np.ndarray:
    """Parse strings as ``dtype``: floats (unparsable -> NaN), integers and bools (unparsable -> error)."""
    if not len(flat):
        return np.zeros(0, dtype=dtype.numpy)
    uniq, inverse = np.unique(flat, return_inverse=True)
    parsed = np.zeros(len(uniq), dtype=dtype.numpy)
    for i, s in enumerate(uniq.tolist()):
        if dtype.is_float:
            with np.errstate(over="ignore"):
                parsed[i] = float(s) if _FLOAT_RE.fullmatch(s) else np.nan
        elif dtype is DType.BOOL:
            if s in _TRUE:
                parsed[i] = True
            elif s in _FALSE:
                parsed[i] = False
            else:
                raise fail(s, f"a bool is written as one of {', '.join(_TRUE + _FALSE)}")
        else:
            if not _INT_RE.fullmatch(s):
                raise fail(s, "it is not an integer")
            v = int(s)
            info = np.iinfo(dtype.numpy)
            if not info.min <= v <= info.max:
                raise fail(s, f"it is outside {dtype.value}'s range {info.min}..{info.max}")
            parsed[i] = v
    return parsed[inverse.reshape(-1)]


def _format_numbers(flat: np.ndarray, src: DType) -> np.ndarray:
    """Numbers as text, as ONNX Runtime's Cast writes them (floats with 8 significant digits)."""
    out = np.empty(len(flat), dtype=object)
    if src is DType.BOOL:
        out[:] = np.where(flat, "True", "False")
        return out
    if src.is_float:
        for i, v in enumerate(flat.tolist()):
            if v != v:
                out[i] = "NaN"
            elif v in (float("inf"), float("-inf")):
                out[i] = "INF" if v > 0 else "-INF"
            else:
                out[i] = f"{v:.8g}"  # C's "%.8g", as ONNX Runtime formats
        return out
    out[:] = [str(v) for v in flat.tolist()]
    return out


def _convert_numbers(flat: np.ndarray, src: DType, dst: DType, fail: Callable[[Any, str], DataError]) -> np.ndarray:
    if dst.is_float:
        with np.errstate(over="ignore"):
            return flat.astype(dst.numpy)
    if src.is_float:
        bad = np.isnan(flat)
        if bad.any():
            raise fail(
                flat[bad][0], "a missing value (NaN) has no " + ("bool" if dst is DType.BOOL else "integer") + " value"
            )
        if dst is DType.BOOL:
            return np.asarray(flat != 0, dtype=bool)
        truncated = np.trunc(flat.astype(np.float64))
        info = np.iinfo(dst.numpy)
        # float64 cannot hold 2**63-1 / 2**64-1: compare against the first value out of range.
        out_of_range = (truncated < float(info.min)) | (truncated >= float(info.max) + 1.0) | np.isinf(truncated)
        if out_of_range.any():
            raise fail(flat[out_of_range][0], f"it is outside {dst.value}'s range {info.min}..{info.max}")
        return truncated.astype(dst.numpy)
    if dst is DType.BOOL:
        return np.asarray(flat != 0, dtype=bool)
    if src is DType.BOOL:
        return flat.astype(dst.numpy)
    info = np.iinfo(dst.numpy)
    as_int = flat.astype(object) if src is DType.UINT64 or dst is DType.UINT64 else flat.astype(np.int64)
    out_of_range = (as_int < info.min) | (as_int > info.max)
    if np.any(out_of_range):
        raise fail(
            flat[np.asarray(out_of_range, dtype=bool)][0], f"it is outside {dst.value}'s range {info.min}..{info.max}"
        )
    return flat.astype(dst.numpy)


def _to_dtype(kind: DType | str, step: str) -> DType:
    # The conversions compute with numpy: the low-precision types (ml_dtypes) are not among them.
    kinds = [t.value for t in DType if not t.is_low_precision]
    if isinstance(kind, DType) and not kind.is_low_precision:
        return kind
    return DType(_validation.choice(kind.value if isinstance(kind, DType) else kind, "output_kind", step, kinds))


@component("convert_type", catalog="transforms.conversion")
class TypeConvertingTransformer(OneToOneStep, TrivialEstimator["TypeConvertingTransformer"]):
    """Converts a column's elements to ``output_kind`` (ML.NET's ConvertType).

    Rules: numbers and bools convert to any number type (a float to an integer truncates toward
    zero; NaN or a value out of the target's range is a DataError); numbers to bool are
    ``!= 0``; strings parse as numbers (floats: decimal, ``inf``/``infinity``/``nan`` in any case,
    surrounding whitespace allowed, anything else -> NaN; integers: an optional sign and digits,
    else DataError) or bools (``true``/``True``/``TRUE``/``1`` and the ``false`` forms, else
    DataError); numbers format as text the way ONNX Runtime's Cast does (integers in full, floats
    with 8 significant digits, ``NaN``, ``INF``, ``-INF``) and bools as ``True``/``False``.
    Key columns convert as their uint32 values.
    """

    def __init__(
        self, output_column_name: str, input_column_name: str | None = None, *, output_kind: DType | str = DType.FLOAT32
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.output_kind = _to_dtype(output_kind, self.step_name)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.output_kind)

    def fit(self, data: DataView) -> TypeConvertingTransformer:
        # Not Self: text to float fits a _BoundTypeConverter, another TypeConvertingTransformer.
        self.output_schema(data.schema)
        ct = cast(TensorType, data.schema[self.input_column_name].type)
        if ct.dtype is DType.STRING and self.output_kind.is_float:
            return _BoundTypeConverter(self.output_column_name, self.input_column_name, output_kind=self.output_kind)
        return self

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._input_tensor(
            input_schema, lambda t: not t.dtype.is_low_precision, "a tensor column of numbers, bools or strings"
        )
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(Column(self.output_column_name, TensorType(self.output_kind, ct.shape), slots))

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        src = cast(TensorType, input_schema[self.input_column_name].type).dtype
        dst = self.output_kind

        def fail(value: Any, reason: str) -> DataError:
            return DataError(
                f"{self.step_name}: cannot convert {value!r} in column {self.input_column_name!r} from {src.value} "
                f"to {dst.value}: {reason}; clean the data first (e.g. replace_missing_values), or convert to a "
                "float type, where unparsable text becomes NaN"
            )

        def convert(flat: np.ndarray) -> np.ndarray:
            if src is dst:
                return flat.copy()
            if dst is DType.STRING:
                return _format_numbers(flat, src)
            if src is DType.STRING:
                return _parse_strings(flat, dst, fail)
            return _convert_numbers(flat, src, dst, fail)

        return {self.output_column_name: elementwise(columns[self.input_column_name], convert)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        src = cast(TensorType, input_schema[self.input_column_name].type).dtype
        dst = self.output_kind
        x = ctx.value(self.input_column_name)
        if src is dst:
            out = ctx.add_node("Identity", [x])[0]
        elif src is DType.BOOL and dst is DType.STRING:
            words = [ctx.add_initializer(np.array([w], dtype=object), w) for w in ("True", "False")]
            out = ctx.add_node("Where", [x, *words])[0]
        elif src is DType.STRING and dst is DType.BOOL:
            flags = ctx.add_node(
                "LabelEncoder",
                [x],
                domain=_ML,
                keys_strings=[*_TRUE, *_FALSE],
                values_int64s=[1] * len(_TRUE) + [0] * len(_FALSE),
                default_int64=0,
            )[0]
            out = export_cast(ctx, flags, DType.BOOL)
        elif src is DType.STRING and dst.is_float:
            # Cast alone parses prefixes ("1.5x" -> 1.5) and fails on "" or "abc": validate first
            # with the same grammar as Python, and parse what fails as NaN.
            ctx.require_opset("", 20)
            valid = ctx.add_node("RegexFullMatch", [x], pattern=FLOAT_PATTERN)[0]
            nan = ctx.add_initializer(np.array(["NaN"], dtype=object), "nan_text")
            cleaned = ctx.add_node("Where", [valid, x, nan])[0]
            out = export_cast(ctx, cleaned, dst)
        else:
            out = export_cast(ctx, x, dst)
        ctx.set_value(self.output_column_name, out)


@component("convert_type")
class _BoundTypeConverter(TypeConvertingTransformer):
    """A fitted text -> float conversion: its export validates text with RegexFullMatch (opset 20)."""

    onnx_min_opset = 20

    def fit(self, data: DataView) -> Self:
        self.output_schema(data.schema)
        return self


# --------------------------------------------------------------------------------------------
# hash (MurmurHash3 x86 32: onnxpipe._hashing)

_HASH_SEED = 314489979
_SIGNED_32 = {DType.INT8: DType.INT32, DType.INT16: DType.INT32}
_UNSIGNED_32 = {DType.BOOL: DType.UINT32, DType.UINT8: DType.UINT32, DType.UINT16: DType.UINT32}


def _hash_prepare(flat: np.ndarray, ct: TensorType) -> tuple[np.ndarray, np.ndarray]:
    """The array to hash (widened, -0.0 -> 0.0) and where values are missing."""
    dtype = ct.dtype
    missing = missing_mask(flat, dtype, is_key(ct))
    if dtype in _SIGNED_32 or dtype in _UNSIGNED_32:
        return flat.astype((_SIGNED_32 | _UNSIGNED_32)[dtype].numpy), missing
    if dtype is DType.FLOAT16:
        flat = flat.astype(np.float32)
    if dtype.is_float:
        flat = np.where(flat == 0, np.zeros((), flat.dtype), flat)  # -0.0 and 0.0 hash alike
    return flat, missing


@component("hash", catalog="transforms.conversion")
class HashingTransformer(OneToOneStep, TrivialEstimator["HashingTransformer"]):
    """Hashes each element to a key ``1..2**number_of_bits`` (ML.NET's Hash); missing values (NaN,
    '', key 0) give key 0.

    The hash is MurmurHash3 x86 32 with ``seed`` of the element's bytes: UTF-8 for strings, the
    little-endian value for numbers (bools and 8/16-bit integers widened to 32 bits, float16 to
    float32, -0.0 as 0.0), masked to ``number_of_bits`` bits, plus one. ``use_ordered_hashing`` hashes
    each slot with its own seed (``MurmurRound(seed, slot index)``), so equal values in different
    slots get different keys.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        number_of_bits: int = 31,
        seed: int = _HASH_SEED,
        use_ordered_hashing: bool = False,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.number_of_bits = _validation.integer(number_of_bits, "number_of_bits", self.step_name, low=1, high=31)
        self.seed = _validation.integer(seed, "seed", self.step_name, low=0, high=2**32 - 1)
        self.use_ordered_hashing = _validation.boolean(use_ordered_hashing, "use_ordered_hashing", self.step_name)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.number_of_bits, self.seed, self.use_ordered_hashing)

    @property
    def key_count(self) -> int:
        return int(2**self.number_of_bits)

    def _check(self, schema: Schema) -> TensorType:
        ct = self._input_tensor(
            schema,
            lambda t: not (self.use_ordered_hashing and not t.is_known_shape),
            "a tensor column of strings, numbers, bools or keys"
            + (" with a known shape (ordered hashing numbers the slots)" if self.use_ordered_hashing else ""),
        )
        return ct

    def output_schema(self, input_schema: Schema) -> Schema:
        ct = self._check(input_schema)
        slots = input_schema[self.input_column_name].slot_names
        return input_schema.with_columns(
            Column(self.output_column_name, KeyType(self.key_count, shape=ct.shape), slots)
        )

    def _slot_seeds(self, ct: TensorType) -> np.ndarray:
        size = ct.size or 1
        return np.array([murmur_round(self.seed, i) for i in range(size)], dtype=np.uint32)

    def hash_flat(self, flat: np.ndarray, ct: TensorType, seeds: np.ndarray | None = None) -> np.ndarray:
        """Keys (uint32) of a flat array of one column's elements."""
        values, missing = _hash_prepare(flat, ct)
        if seeds is None:
            seeds = np.array([self.seed], dtype=np.uint32)
        mask = np.uint32(2**self.number_of_bits - 1)
        keys = np.asarray((murmur3_32(values, seeds) & mask) + np.uint32(1), dtype=np.uint32)
        keys[missing] = 0
        return keys

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        ct = self._check(input_schema)
        values = columns[self.input_column_name]
        if self.use_ordered_hashing:
            seeds = np.tile(self._slot_seeds(ct), n_rows)
            return {self.output_column_name: elementwise(values, lambda f: self.hash_flat(f, ct, seeds))}
        return {self.output_column_name: elementwise(values, lambda f: self.hash_flat(f, ct))}

    def export_keys(self, ctx: ExportContext, input_schema: Schema) -> str:
        """The keys as a uint32 ONNX value ``[N, *shape]``."""
        ct = self._check(input_schema)
        x = ctx.value(self.input_column_name)
        dtype = ct.dtype
        missing: str | None = None
        if dtype is DType.STRING:
            flags = ctx.add_node(
                "LabelEncoder", [x], domain=_ML, keys_strings=[""], values_int64s=[1], default_int64=0
            )[0]
            missing = export_cast(ctx, flags, DType.BOOL)
        elif dtype.is_float:
            if dtype is DType.FLOAT16:
                x = export_cast(ctx, x, DType.FLOAT32)
            missing = ctx.add_node("IsNaN", [x])[0]
            zero = ctx.add_initializer(np.zeros((), dtype=np.float64 if dtype is DType.FLOAT64 else np.float32), "zero")
            x = ctx.add_node("Add", [x, zero])[0]  # -0.0 + 0.0 = 0.0
        elif is_key(ct):
            missing = ctx.add_node("Equal", [x, ctx.add_initializer(np.zeros((), dtype=ct.dtype.numpy), "zero")])[0]
        if dtype in _SIGNED_32 or dtype in _UNSIGNED_32:
            x = export_cast(ctx, x, (_SIGNED_32 | _UNSIGNED_32)[dtype])
        if self.use_ordered_hashing:
            if ct.is_scalar:
                hashed = self._murmur(ctx, x, int(self._slot_seeds(ct)[0]))
            else:
                flat = ctx.add_node("Flatten", [x], axis=1)[0]
                parts = []
                for i, s in enumerate(self._slot_seeds(ct).tolist()):
                    index = ctx.add_initializer(np.array([i], dtype=np.int64), "slot")
                    part = ctx.add_node("Gather", [flat, index], axis=1)[0]
                    parts.append(self._murmur(ctx, part, int(s)))
                joined = ctx.add_node("Concat", parts, axis=1)[0] if len(parts) > 1 else parts[0]
                shape = ctx.add_initializer(np.array([-1, *ct.fixed_shape], dtype=np.int64), "shape")
                hashed = ctx.add_node("Reshape", [joined, shape])[0]
        else:
            hashed = self._murmur(ctx, x, self.seed)
        shift = ctx.add_initializer(np.array(32 - self.number_of_bits, dtype=np.uint32), "shift")
        if self.number_of_bits < 32:  # keep the low bits: BitwiseAnd needs opset 18, shifts work from 11
            hashed = ctx.add_node("BitShift", [hashed, shift], direction="LEFT")[0]
            hashed = ctx.add_node("BitShift", [hashed, shift], direction="RIGHT")[0]
        keys = ctx.add_node("Add", [hashed, ctx.add_initializer(np.array(1, dtype=np.uint32), "one")])[0]
        if missing is not None:
            zero_key = ctx.add_initializer(np.array(0, dtype=np.uint32), "missing_key")
            keys = ctx.add_node("Where", [missing, zero_key, keys])[0]
        return keys

    @staticmethod
    def _murmur(ctx: ExportContext, x: str, seed: int) -> str:
        return ctx.add_node("MurmurHash3", [x], domain="com.microsoft", seed=seed, positive=1)[0]

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        ctx.set_value(self.output_column_name, self.export_keys(ctx, input_schema))
