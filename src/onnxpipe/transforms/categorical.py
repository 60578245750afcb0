"""Categorical features: ``one_hot_encoding`` and ``one_hot_hash_encoding`` (ML.NET's Categorical
catalog).

Both map each element to a key (learned values, or a hash) and then encode the key:

* ``"indicator"``: one float32 0/1 vector of ``n`` slots per input element, concatenated over
  the input's elements (ML.NET's MapKeyToVector);
* ``"bag"``: the indicator vectors summed over the input's elements (counts), ``n`` slots;
* ``"key"``: the key column itself;
* ``"binary"``: the key written in binary, most significant bit first, ``n.bit_length()`` slots
  per element (ML.NET's MapKeyToBinaryVector).

Missing and unseen values have key 0, which encodes as all zeros in every vector kind (as
scikit-learn's ``OneHotEncoder(handle_unknown="ignore")``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, TrivialEstimator, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._view import DataView
from onnxpipe.schema import Column, DType, KeyType, Schema, SparseVectorType, TensorType
from onnxpipe.transforms.conversion import (
    HashingTransformer,
    KeyOrdinality,
    OneToOneStep,
    ValueToKeyMappingEstimator,
    ValueToKeyMappingTransformer,
    export_cast,
)

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = [
    "OUTPUT_KINDS",
    "OneHotEncodingEstimator",
    "OneHotEncodingTransformer",
    "OneHotHashEncodingTransformer",
]

OneHotOutputKind = Literal["indicator", "bag", "key", "binary"]
OUTPUT_KINDS: tuple[str, ...] = ("indicator", "bag", "key", "binary")


def _slot_labels(column: Column, ct: TensorType) -> list[str] | None:
    """Names of the input's elements: its slot names, else ML.NET's ``[i]``; None for a scalar."""
    if ct.is_scalar or not ct.is_known_shape:
        return None
    size = ct.size or 0
    if column.slot_names is not None and len(column.slot_names) == size:
        return list(column.slot_names)
    return [f"[{i}]" for i in range(size)]


SPARSE_SLOTS = 1024
"""Indicator and bag vectors of at least this many slots are sparse (SparseVectorType): a row sets
at most one slot per input element."""


def _encoded_type(kind: str, width: int) -> TensorType:
    if kind in ("indicator", "bag") and width >= SPARSE_SLOTS:
        return SparseVectorType(DType.FLOAT32, width)
    return TensorType(DType.FLOAT32, (width,))


def _encoded_column(name: str, kind: str, column: Column, ct: TensorType, key: KeyType) -> Column:
    """The output column of one kind, for the keys of ``key`` (of unknown count before fit)."""
    if kind == "key":
        return Column(name, key.with_shape(ct.shape), column.slot_names)
    if key.count is None:
        return Column(name, TensorType(DType.FLOAT32, (None,)))
    n = key.count
    key_texts = list(key.values.texts) if key.values is not None else None
    if kind == "bag":
        return Column(name, _encoded_type(kind, n), tuple(key_texts) if key_texts else None)
    width = n if kind == "indicator" else n.bit_length()
    names = key_texts if kind == "indicator" else [f"Bit{width - 1 - j}" for j in range(width)]
    if not ct.is_known_shape:
        return Column(name, TensorType(DType.FLOAT32, (None,)))
    labels = _slot_labels(column, ct)
    if labels is None:
        return Column(name, _encoded_type(kind, width), tuple(names) if names else None)
    slots = tuple(f"{s}.{k}" for s in labels for k in names) if names else None
    return Column(name, _encoded_type(kind, len(labels) * width), slots)


def _encode_rows(codes: np.ndarray, n: int, kind: str) -> np.ndarray:
    """Encode keys ``codes [rows, size]`` (uint32) as float32 ``[rows, width]``."""
    rows, size = codes.shape
    if kind == "bag":
        out = np.zeros((rows, n), dtype=np.float32)
        r, s = np.nonzero(codes)
        np.add.at(out, (r, codes[r, s].astype(np.int64) - 1), 1.0)
        return out
    if kind == "indicator":
        out = np.zeros((rows, size, n), dtype=np.float32)
        r, s = np.nonzero(codes)
        out[r, s, codes[r, s].astype(np.int64) - 1] = 1.0
        return out.reshape(rows, size * n)
    bits = n.bit_length()
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    return ((codes[:, :, None] >> shifts) & np.uint32(1)).astype(np.float32).reshape(rows, size * bits)


def _encode_sparse(codes: np.ndarray, n: int, kind: str) -> Any:
    """Encode keys ``codes [rows, size]`` as a CSR matrix ``[rows, width]`` (bag counts summed)."""
    from scipy import sparse

    rows, size = codes.shape
    r, s = np.nonzero(codes)
    slot = codes[r, s].astype(np.int64) - 1
    width = n if kind == "bag" else size * n
    column = slot if kind == "bag" else s * n + slot
    ones = np.ones(len(r), dtype=np.float32)
    return sparse.csr_matrix((ones, (r, column)), shape=(rows, width))  # duplicates (bag) are summed


def _encode(codes: ColumnValues, n: int, kind: str, n_rows: int) -> ColumnValues:
    if kind == "key":
        return codes
    if isinstance(codes, np.ndarray):
        flat = codes.reshape(n_rows, -1)
        width = n if kind == "bag" else flat.shape[1] * n
        if kind in ("indicator", "bag") and width >= SPARSE_SLOTS:
            return cast("ColumnValues", _encode_sparse(flat, n, kind))
        return _encode_rows(flat, n, kind)
    return [_encode_rows(np.asarray(r).reshape(1, -1), n, kind)[0] for r in codes]


def _export_encode(ctx: ExportContext, keys: str, n: int, kind: str) -> str:
    """Encode a uint32 key value ``[N, *shape]`` as float32 ``[N, width]``."""
    if kind == "key":
        return keys
    k = export_cast(ctx, keys, DType.INT64)
    flatten_to = ctx.add_initializer(np.array([0, -1], dtype=np.int64), "flat_shape")
    if kind == "binary":
        last = ctx.add_initializer(np.array([-1], dtype=np.int64), "last_axis")
        k = ctx.add_node("Unsqueeze", [k, last])[0]
        powers = ctx.add_initializer(2 ** np.arange(n.bit_length() - 1, -1, -1, dtype=np.int64), "bit_weights")
        two = ctx.add_initializer(np.array(2, dtype=np.int64), "two")
        bits = ctx.add_node("Mod", [ctx.add_node("Div", [k, powers])[0], two])[0]
        return ctx.add_node("Reshape", [export_cast(ctx, bits, DType.FLOAT32), flatten_to])[0]
    # Compare each key with 1..n: key 0 (missing or unseen) becomes all zeros. Equal + Cast is
    # cheaper in ONNX Runtime than OneHot over depth n+1 followed by a Slice dropping slot 0.
    last = ctx.add_initializer(np.array([-1], dtype=np.int64), "last_axis")
    k = ctx.add_node("Unsqueeze", [k, last])[0]  # [N, *shape, 1]
    slots = ctx.add_initializer(np.arange(1, n + 1, dtype=np.int64), "key_slots")
    hot = export_cast(ctx, ctx.add_node("Equal", [k, slots])[0], DType.FLOAT32)  # [N, *shape, n]
    if kind == "indicator":
        return ctx.add_node("Reshape", [hot, flatten_to])[0]
    to_3d = ctx.add_initializer(np.array([0, -1, n], dtype=np.int64), "bag_shape")
    per_element = ctx.add_node("Reshape", [hot, to_3d])[0]
    axis1 = ctx.add_initializer(np.array([1], dtype=np.int64), "element_axis")
    return ctx.add_node("ReduceSum", [per_element, axis1], keepdims=0)[0]


# --------------------------------------------------------------------------------------------
# one_hot_encoding


@component("one_hot_encoding", catalog="transforms.categorical")
class OneHotEncodingEstimator(OneToOneStep, Estimator["OneHotEncodingTransformer"]):
    """Learns the distinct values of a column (as ``map_value_to_key``) and one-hot encodes them.

    Before fit the number of keys is unknown, so the promised output is a key column with
    :data:`~onnxpipe.transforms.conversion.UNKNOWN_KEY_COUNT` keys or a float32 vector of
    unknown size; with ``keys=[...]`` the promise is exact.
    """

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        output_kind: OneHotOutputKind = "indicator",
        maximum_number_of_keys: int = 1_000_000,
        key_ordinality: KeyOrdinality = "by_occurrence",
        keys: Sequence[Any] | np.ndarray | None = None,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.output_kind = cast(
            "OneHotOutputKind", _validation.choice(output_kind, "output_kind", self.step_name, OUTPUT_KINDS)
        )
        self._to_key = ValueToKeyMappingEstimator(
            self.output_column_name,
            self.input_column_name,
            maximum_number_of_keys=maximum_number_of_keys,
            key_ordinality=key_ordinality,
            keys=keys,
        )

    @property
    def maximum_number_of_keys(self) -> int:
        return self._to_key.maximum_number_of_keys

    @property
    def key_ordinality(self) -> KeyOrdinality:
        return self._to_key.key_ordinality

    @property
    def keys(self) -> tuple[Any, ...] | None:
        return self._to_key.keys

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.output_kind, self.maximum_number_of_keys, self.key_ordinality, self.keys)

    def output_schema(self, input_schema: Schema) -> Schema:
        key = self._to_key.output_schema(input_schema)[self.output_column_name].type
        column = input_schema[self.input_column_name]
        assert isinstance(column.type, TensorType) and isinstance(key, KeyType)
        return input_schema.with_columns(
            _encoded_column(self.output_column_name, self.output_kind, column, column.type, key)
        )

    def fit(self, data: DataView) -> OneHotEncodingTransformer:
        return OneHotEncodingTransformer(self.output_column_name, self.output_kind, self._to_key.fit(data))


@component("one_hot_encoding")
class OneHotEncodingTransformer(OneToOneStep, Transformer):
    """One-hot encodes a column with the keys of a fitted ``map_value_to_key`` transformer."""

    def __init__(
        self, output_column_name: str, output_kind: OneHotOutputKind, keys: ValueToKeyMappingTransformer
    ) -> None:
        if not isinstance(keys, ValueToKeyMappingTransformer):
            raise _validation.invalid(
                "one_hot_encoding",
                "keys",
                "a fitted map_value_to_key transformer",
                keys,
                fix="pass what fitting map_value_to_key returns",
            )
        self._set_columns(output_column_name, keys.input_column_name)
        self.output_kind = cast(
            "OneHotOutputKind", _validation.choice(output_kind, "output_kind", self.step_name, OUTPUT_KINDS)
        )
        self._to_key = keys

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.output_kind, self._to_key)

    def get_state(self) -> dict[str, Any]:
        return {"output_column_name": self.output_column_name, "output_kind": self.output_kind, "keys": self._to_key}

    @property
    def keys(self) -> np.ndarray:
        """The values behind keys ``1..n`` (slot ``i`` of an indicator vector is ``keys[i]``)."""
        return self._to_key.keys

    @property
    def key_count(self) -> int:
        return self._to_key.key_count

    @property
    def key_transformer(self) -> ValueToKeyMappingTransformer:
        return self._to_key

    def output_schema(self, input_schema: Schema) -> Schema:
        self._to_key.output_schema(input_schema)  # checks the input column and its type
        column = input_schema[self.input_column_name]
        assert isinstance(column.type, TensorType)
        key = self._to_key.key_type(column.type)
        out = _encoded_column(self.output_column_name, self.output_kind, column, column.type, key)
        return input_schema.with_columns(out)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        codes = self._to_key.map_columns(columns, input_schema, n_rows)[self.output_column_name]
        return {self.output_column_name: _encode(codes, self.key_count, self.output_kind, n_rows)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        keys = export_cast(ctx, self._to_key.export_index(ctx, input_schema), DType.UINT32)
        ctx.set_value(self.output_column_name, _export_encode(ctx, keys, self.key_count, self.output_kind))


# --------------------------------------------------------------------------------------------
# one_hot_hash_encoding


@component("one_hot_hash_encoding", catalog="transforms.categorical")
class OneHotHashEncodingTransformer(OneToOneStep, TrivialEstimator["OneHotHashEncodingTransformer"]):
    """Hashes each element (as ``hash``) to one of ``2**number_of_bits`` keys and one-hot encodes
    it; nothing is learned. Missing values (NaN, '') encode as all zeros."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        output_kind: OneHotOutputKind = "indicator",
        number_of_bits: int = 16,
        seed: int = 314489979,
        use_ordered_hashing: bool = False,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        self.output_kind = cast(
            "OneHotOutputKind", _validation.choice(output_kind, "output_kind", self.step_name, OUTPUT_KINDS)
        )
        _validation.integer(number_of_bits, "number_of_bits", self.step_name, low=1, high=30)
        self._hash = HashingTransformer(
            self.output_column_name,
            self.input_column_name,
            number_of_bits=number_of_bits,
            seed=seed,
            use_ordered_hashing=use_ordered_hashing,
        )

    @property
    def number_of_bits(self) -> int:
        return self._hash.number_of_bits

    @property
    def seed(self) -> int:
        return self._hash.seed

    @property
    def use_ordered_hashing(self) -> bool:
        return self._hash.use_ordered_hashing

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.output_kind, self.number_of_bits, self.seed, self.use_ordered_hashing)

    def output_schema(self, input_schema: Schema) -> Schema:
        self._hash.output_schema(input_schema)
        column = input_schema[self.input_column_name]
        assert isinstance(column.type, TensorType)
        out = _encoded_column(
            self.output_column_name, self.output_kind, column, column.type, KeyType(self._hash.key_count)
        )
        return input_schema.with_columns(out)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        codes = self._hash.map_columns(columns, input_schema, n_rows)[self.output_column_name]
        return {self.output_column_name: _encode(codes, self._hash.key_count, self.output_kind, n_rows)}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        keys = self._hash.export_keys(ctx, input_schema)
        ctx.set_value(self.output_column_name, _export_encode(ctx, keys, self._hash.key_count, self.output_kind))
