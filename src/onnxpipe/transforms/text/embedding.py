"""``apply_word_embedding`` (ML.NET's WordEmbeddingEstimator with a custom model file).

The estimator reads a local text embedding file at ``fit`` (never a download): one word per line
followed by its values, separated by a space or a tab. As ML.NET does, every line but the first
is parsed and the dimension is the first parsed line's; a line that does not parse or has another
dimension is skipped with a warning; the first line is used only if it parses to that dimension
(so a fastText ``count dim`` header is ignored); a repeated word keeps its first vector.

Reading is bounded: at most ``maximum_file_bytes`` of file and ``maximum_dimension`` values per
line (a longer line is refused before it is split), text in UTF-8 without NUL bytes; a file that
breaks a bound is a :class:`~onnxpipe.errors.DataError` naming the file and the line.

The fitted :class:`WordEmbeddingTransformer` holds the vocabulary and the vectors (not the
path). For a row of tokens it outputs ``float32[3 * dim]``: the element-wise minimum, mean and
maximum of the vectors of the tokens found (unknown tokens are ignored); with none found, the
minimum is float32's largest value, the mean 0 and the maximum float32's lowest value (ML.NET's
``float.MaxValue`` / ``float.MinValue``). Exported to ONNX as a ``LabelEncoder`` (word → row) and
``Gather`` over tables that end with those sentinels, then ``ReduceMin`` / ``ReduceSum`` /
``ReduceMax`` along the tokens.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpipe import _validation
from onnxpipe.core import Estimator, Transformer, component
from onnxpipe.data._convert import ColumnValues
from onnxpipe.data._view import DataView
from onnxpipe.errors import DataError, DataFileNotFoundError, InvalidArgumentError, OnnxPipeWarning
from onnxpipe.schema import Column, DType, Schema, TensorType
from onnxpipe.transforms.conversion import OneToOneStep

if TYPE_CHECKING:
    from onnxpipe.export import ExportContext

__all__ = ["WordEmbeddingEstimator", "WordEmbeddingTransformer", "read_embedding_file"]

_FLOAT_MAX = np.finfo(np.float32).max
_FLOAT_MIN = np.finfo(np.float32).min
_SEPARATORS = re.compile("[ \t]")
_CHARS_PER_VALUE = 64  # the longest value text a line may spend per value before it is refused


def _check_tokens(step: OneToOneStep, schema: Schema) -> TensorType:
    return step._input_tensor(schema, lambda t: t.dtype is DType.STRING and t.rank == 1, "a vector of text tokens")


def _parse_values(text: str) -> np.ndarray | None:
    """The values of one line (after its word), or None when one does not parse (ML.NET skips the line)."""
    if "_" in text:  # Python's float() accepts digit separators, .NET's parser does not
        return None
    try:
        return np.array(_SEPARATORS.split(text), dtype=np.float32)
    except ValueError:
        return None


def read_embedding_file(
    path: str | os.PathLike[str], *, maximum_dimension: int = 10_000, maximum_file_bytes: int = 2 << 30
) -> tuple[np.ndarray, np.ndarray]:
    """The words (object array) and vectors (``float32[words, dim]``) of a text embedding file,
    read with ML.NET's rules (see the module's docstring) and within the bounds."""
    file = Path(path)
    if not file.is_file():
        raise DataFileNotFoundError(f"word embedding file {str(file)!r} does not exist or is not a file")
    size = file.stat().st_size
    if size > maximum_file_bytes:
        raise DataError(
            f"word embedding file {str(file)!r} has {size:,} bytes, more than maximum_file_bytes={maximum_file_bytes:,}"
        )
    line_limit = (maximum_dimension + 1) * _CHARS_PER_VALUE
    words: list[str] = []
    vectors: list[np.ndarray] = []
    seen: set[str] = set()
    dimension: int | None = None
    first: str | None = None
    with file.open("rb") as f:
        number = 0
        while True:
            raw = f.readline(line_limit + 1)
            if not raw:
                break
            number += 1
            where = f"word embedding file {str(file)!r}, line {number}"
            if len(raw) > line_limit and not raw.endswith(b"\n"):
                raise DataError(
                    f"{where} is longer than {line_limit:,} bytes: more than maximum_dimension={maximum_dimension:,} "
                    "values (or not an embedding file)"
                )
            if b"\0" in raw:
                raise DataError(f"{where} holds NUL bytes: not a text embedding file")
            try:
                line = raw.decode("utf-8").rstrip()
            except UnicodeDecodeError as exc:
                raise DataError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            if number == 1:
                first = line
                continue
            if not line.strip():
                warnings.warn(f"{where}: an empty line, skipped", OnnxPipeWarning, stacklevel=2)
                continue
            cut = _SEPARATORS.search(line)
            if cut is None:
                warnings.warn(f"{where}: a word without values, skipped", OnnxPipeWarning, stacklevel=2)
                continue
            word, rest = line[: cut.start()], line[cut.end() :]
            count = len(_SEPARATORS.findall(rest)) + 1
            if count > maximum_dimension:
                raise DataError(f"{where} has {count:,} values, more than maximum_dimension={maximum_dimension:,}")
            values = _parse_values(rest)
            if values is None:
                warnings.warn(f"{where}: a value does not parse as a number, skipped", OnnxPipeWarning, stacklevel=2)
                continue
            if dimension is None:
                dimension = len(values)
            elif len(values) != dimension:
                warnings.warn(
                    f"{where}: {len(values)} values where the first line read has {dimension}, skipped",
                    OnnxPipeWarning,
                    stacklevel=2,
                )
                continue
            if word not in seen:
                seen.add(word)
                words.append(word)
                vectors.append(values)
    if first:  # used only if it parses to the dimension (a "count dim" header does not)
        parts = _SEPARATORS.split(first)
        if len(parts) - 1 > maximum_dimension:
            raise DataError(
                f"word embedding file {str(file)!r}, line 1 has {len(parts) - 1:,} values, more than "
                f"maximum_dimension={maximum_dimension:,}"
            )
        values = _parse_values(" ".join(parts[1:])) if len(parts) > 1 and all(parts[1:]) else None
        if values is not None and dimension in (None, len(values)) and parts[0] not in seen:
            dimension = len(values)
            words.append(parts[0])
            vectors.append(values)
    if not vectors:
        raise DataError(f"word embedding file {str(file)!r} has no word vectors")
    return np.array(words, dtype=object), np.stack(vectors).astype(np.float32)


@component("apply_word_embedding", catalog="transforms.text")
class WordEmbeddingEstimator(OneToOneStep, Estimator["WordEmbeddingTransformer"]):
    """Turn a vector of text tokens into ``[min ‖ mean ‖ max]`` of their word vectors, read from
    the local embedding file ``custom_model_file`` at ``fit`` (ML.NET's ``ApplyWordEmbedding``
    with a custom model; pretrained downloads are not offered). ``maximum_dimension`` and
    ``maximum_file_bytes`` bound what the file may hold."""

    def __init__(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        custom_model_file: str | os.PathLike[str],
        maximum_dimension: int = 10_000,
        maximum_file_bytes: int = 2 << 30,
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        if not isinstance(custom_model_file, str | os.PathLike) or not str(custom_model_file):
            raise _validation.invalid(
                self.step_name, "custom_model_file", "the path of an embedding file", custom_model_file
            )
        self.custom_model_file = str(custom_model_file)
        self.maximum_dimension = _validation.integer(maximum_dimension, "maximum_dimension", self.step_name, low=1)
        self.maximum_file_bytes = _validation.integer(maximum_file_bytes, "maximum_file_bytes", self.step_name, low=1)

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self.custom_model_file, self.maximum_dimension, self.maximum_file_bytes)

    def output_schema(self, input_schema: Schema) -> Schema:
        _check_tokens(self, input_schema)
        return input_schema.with_columns(Column(self.output_column_name, TensorType(DType.FLOAT32, (None,))))

    def fit(self, data: DataView) -> WordEmbeddingTransformer:
        _check_tokens(self, data.schema)
        try:
            words, vectors = read_embedding_file(
                self.custom_model_file,
                maximum_dimension=self.maximum_dimension,
                maximum_file_bytes=self.maximum_file_bytes,
            )
        except (DataError, DataFileNotFoundError) as exc:
            raise type(exc)(f"{self.step_name}: {exc}") from None
        return WordEmbeddingTransformer(self.output_column_name, self.input_column_name, words, vectors)


@component("apply_word_embedding")
class WordEmbeddingTransformer(OneToOneStep, Transformer):
    """``[min ‖ mean ‖ max]`` of the vectors of a row's tokens found in ``words`` (``vectors``
    holds one ``float32`` row per word). Exportable to ONNX."""

    def __init__(
        self, output_column_name: str, input_column_name: str | None, words: np.ndarray, vectors: np.ndarray
    ) -> None:
        self._set_columns(output_column_name, input_column_name)
        words = np.array([str(w) for w in np.asarray(words, dtype=object).reshape(-1).tolist()], dtype=object)
        vectors = np.array(vectors, dtype=np.float32, copy=True)
        if vectors.ndim != 2 or vectors.shape[0] != len(words) or not len(words) or not vectors.shape[1]:
            raise InvalidArgumentError(
                f"{self.step_name}: vectors must be float32[words, dim] with one row per word, got {vectors.shape} "
                f"for {len(words)} words"
            )
        if len(set(words.tolist())) != len(words):
            raise InvalidArgumentError(f"{self.step_name}: words holds a word twice")
        words.flags.writeable = False
        vectors.flags.writeable = False
        self._words = words
        self._vectors = vectors
        self._index = {w: i for i, w in enumerate(words.tolist())}

    @property
    def words(self) -> np.ndarray:
        return self._words

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors

    @property
    def dimension(self) -> int:
        return int(self._vectors.shape[1])

    def get_state(self) -> dict[str, Any]:
        return {
            "output_column_name": self.output_column_name,
            "input_column_name": self.input_column_name,
            "words": self._words,
            "vectors": self._vectors,
        }

    def _params(self) -> tuple[object, ...]:
        return (*super()._params(), self._words, self._vectors)

    def output_schema(self, input_schema: Schema) -> Schema:
        _check_tokens(self, input_schema)
        return input_schema.with_columns(
            Column(self.output_column_name, TensorType(DType.FLOAT32, (3 * self.dimension,)))
        )

    def embed(self, tokens: list[str]) -> np.ndarray:
        """One row's ``[min ‖ mean ‖ max]``."""
        found = [self._index[t] for t in tokens if t in self._index]
        d = self.dimension
        if not found:
            return np.concatenate([np.full(d, _FLOAT_MAX), np.zeros(d), np.full(d, _FLOAT_MIN)]).astype(np.float32)
        rows = self._vectors[found]
        total = np.cumsum(rows, axis=0, dtype=np.float32)[-1]  # in order, in float32, as ML.NET sums
        mean = total / np.float32(len(found))
        return np.concatenate([rows.min(axis=0), mean, rows.max(axis=0)]).astype(np.float32)

    def map_columns(
        self, columns: Mapping[str, ColumnValues], input_schema: Schema, n_rows: int
    ) -> dict[str, ColumnValues]:
        _check_tokens(self, input_schema)
        values = columns[self.input_column_name]
        rows = values.reshape(n_rows, -1) if isinstance(values, np.ndarray) else values
        out = np.zeros((n_rows, 3 * self.dimension), np.float32)
        for i, row in enumerate(rows):
            out[i] = self.embed([str(v) for v in np.asarray(row).reshape(-1).tolist()])
        return {self.output_column_name: out}

    def export_onnx(self, ctx: ExportContext, input_schema: Schema) -> None:
        _check_tokens(self, input_schema)
        x = ctx.value(self.input_column_name)  # [N, C]
        v, d = self._vectors.shape
        (index,) = ctx.add_node(
            "LabelEncoder",
            [x],
            domain="ai.onnx.ml",
            keys_strings=self._words.tolist(),
            values_int64s=list(range(v)),
            default_int64=v,  # unknown (and padding "") -> the sentinel row
        )
        # One more column of the sentinel, so that a row without tokens reduces over something.
        pads = ctx.add_initializer(np.array([0, 0, 0, 1], np.int64), "pads")
        (index,) = ctx.add_node("Pad", [index, pads, ctx.add_initializer(np.array(v, np.int64), "sentinel")])
        axis = ctx.add_initializer(np.array([1], np.int64), "token_axis")

        def reduce(op: str, last: float, hint: str) -> str:
            table = ctx.add_initializer(np.vstack([self._vectors, np.full((1, d), last, np.float32)]), hint)
            (gathered,) = ctx.add_node("Gather", [table, index], axis=0)  # [N, C + 1, d]
            if op == "ReduceSum" or ctx.opset >= 18:
                return ctx.add_node(op, [gathered, axis], keepdims=0)[0]
            return ctx.add_node(op, [gathered], axes=[1], keepdims=0)[0]

        low = reduce("ReduceMin", float(_FLOAT_MAX), "embedding_min")
        high = reduce("ReduceMax", float(_FLOAT_MIN), "embedding_max")
        total = reduce("ReduceSum", 0.0, "embedding_sum")
        from onnx import TensorProto

        (found,) = ctx.add_node("Less", [index, ctx.add_initializer(np.array(v, np.int64), "vocabulary_size")])
        (count,) = ctx.add_node(
            "ReduceSum", [ctx.add_node("Cast", [found], to=TensorProto.FLOAT)[0], axis], keepdims=1
        )  # [N, 1]
        (count,) = ctx.add_node("Max", [count, ctx.add_initializer(np.array(1, np.float32), "one")])
        (mean,) = ctx.add_node("Div", [total, count])
        ctx.set_value(self.output_column_name, ctx.add_node("Concat", [low, mean, high], axis=1)[0])
