"""``MLContext`` and its catalogs: thin, typed one-liners that build components.

As in ML.NET: output column first, input defaulting to output, keyword arguments. The context
carries the defaults every component shares (seed, GPU id, CPU fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar

import pyarrow as pa

from onnxpipe import data as _data
from onnxpipe._catalog import Catalog, entry
from onnxpipe._files import write_file
from onnxpipe._limits import DEFAULT_MAX_BYTES, DEFAULT_VERIFY_TIMEOUT
from onnxpipe._task_catalogs import (
    BinaryClassificationCatalog,
    ClusteringCatalog,
    MulticlassClassificationCatalog,
    RegressionCatalog,
)
from onnxpipe.core import Transformer, TransformerChain
from onnxpipe.data import ColumnInference, DataView
from onnxpipe.data._images import IMAGE_EXTENSIONS, load_from_image_folder
from onnxpipe.engine import PredictionEngine
from onnxpipe.errors import InvalidArgumentError
from onnxpipe.schema import Schema
from onnxpipe.transforms import categorical as _cat
from onnxpipe.transforms import conversion as _conv
from onnxpipe.transforms import feature_selection as _fs
from onnxpipe.transforms import images as _img
from onnxpipe.transforms import missing_values as _mv
from onnxpipe.transforms import normalization as _norm
from onnxpipe.transforms.columns import (
    ColumnConcatenatingTransformer,
    ColumnCopyingTransformer,
    ColumnDroppingTransformer,
    ColumnSelectingTransformer,
)
from onnxpipe.transforms.custom import CustomMappingTransformer
from onnxpipe.transforms.labels import TopKLabelsTransformer
from onnxpipe.transforms.onnx_model import OnnxTransformer
from onnxpipe.transforms.text import embedding as _embedding
from onnxpipe.transforms.text import featurize as _featurize
from onnxpipe.transforms.text import lda as _lda
from onnxpipe.transforms.text import ngrams as _ngrams
from onnxpipe.transforms.text import normalize as _text_normalize
from onnxpipe.transforms.text import stop_words as _stop_words
from onnxpipe.transforms.text import tokenize as _tokenize

if TYPE_CHECKING:
    import onnx

__all__ = ["DataCatalog", "MLContext", "ModelCatalog", "TextCatalog", "TransformsCatalog"]

In = TypeVar("In")
Out = TypeVar("Out")


class DataCatalog:
    """``ctx.data``: load data into DataViews and read it back as rows."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx

    def load_from_enumerable(self, rows: Iterable[Any], row_class: type, *, batch_size: int = 65536) -> DataView:
        """Rows (instances of ``row_class``, a schema class) as a DataView. ``[]`` gives an empty
        view with the class's schema, which is all ``fit`` needs for ``apply_onnx_model``."""
        return _data.load_from_enumerable(rows, row_class, batch_size=batch_size)

    def load_from_text_file(
        self,
        path: str | Path,
        row_class: type | None = None,
        *,
        schema: Schema | None = None,
        separator: str | None = None,
        has_header: bool | None = None,
        allow_quoting: bool = True,
        missing_values: Sequence[str] = _data._loaders.DEFAULT_MISSING,
        max_row_bytes: int = _data._loaders.MAX_ROW_BYTES,
        trim_leading_spaces: bool = True,
        schema_comment: bool = True,
    ) -> DataView:
        """A delimited text file (CSV with ``separator=","``), streamed lazily. Fields of
        ``row_class`` read the file column of their ``LoadColumn`` index (a range makes a
        vector) or, with a header, of their name; a ``schema`` (e.g. a loaded model's input
        schema) reads columns by name, vectors from ``name.0``, ``name.1``... Missing values
        become NaN in float columns. A row longer than ``max_row_bytes`` (64 MiB) is a
        ParseError naming it, not an unbounded allocation. Spaces at the start of a text field
        are dropped, as ML.NET's TextLoader drops them (``trim_leading_spaces=False`` keeps them).
        A file that starts with ML.NET's schema comment (``#@ TextLoader{``, as ``save_as_text``
        and ML.NET's ``SaveAsText`` write it) is read as it says when no ``row_class`` or
        ``schema`` is given; its separator and header apply unless given (the separator is tab
        and there is no header otherwise); ``schema_comment=False`` ignores it. See
        :func:`onnxpipe.data.load_from_text_file`."""
        return _data.load_from_text_file(
            path,
            row_class,
            schema=schema,
            separator=separator,
            has_header=has_header,
            allow_quoting=allow_quoting,
            missing_values=missing_values,
            max_row_bytes=max_row_bytes,
            trim_leading_spaces=trim_leading_spaces,
            schema_comment=schema_comment,
        )

    def infer_columns(self, path: str | Path, *, max_bytes: int = 1 << 20) -> ColumnInference:
        """Guess a delimited text file's separator, header and column types from its first
        ``max_bytes`` (ML.NET's ``InferColumns``); ``.load()`` reads the file with them, and
        ``.schema``, ``.separator`` and ``.has_header`` are what to pass ``load_from_text_file``.
        A file with ML.NET's schema comment (``#@ TextLoader{``) is not guessed at: they are the
        comment's (``.schema_comment`` is True)."""
        return _data.infer_columns(path, max_bytes=max_bytes)

    def save_as_text(
        self,
        data: DataView,
        path: str | Path,
        *,
        separator: str = "\t",
        header: bool = True,
        columns: Sequence[str] | None = None,
        schema: bool = True,
    ) -> int:
        """Write ``data`` to a delimited text file (ML.NET's ``SaveAsText``), after ML.NET's
        schema comment (``#@ TextLoader{ ... #@ }``, which ``load_from_text_file(path)`` reads the
        columns back with) unless ``schema=False``; see :func:`onnxpipe.data.save_as_text`.
        Returns the rows written."""
        return _data.save_as_text(data, path, separator=separator, header=header, columns=columns, schema=schema)

    def save_as_parquet(self, data: DataView, path: str | Path, *, columns: Sequence[str] | None = None) -> int:
        """Write ``data`` to Parquet, keeping onnxpipe's column types; see
        :func:`onnxpipe.data.save_as_parquet`. Returns the rows written."""
        return _data.save_as_parquet(data, path, columns=columns)

    def load_from_parquet(
        self, path: str | Path, *, batch_size: int = 65536, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> DataView:
        """A Parquet file, streamed row group by row group; a batch's text that would expand past
        ``max_bytes`` (a dictionary repeating one long value) is a DataError."""
        return _data.load_from_parquet(path, batch_size=batch_size, max_bytes=max_bytes)

    def load_from_arrow(self, data: pa.Table | pa.RecordBatch, *, batch_size: int = 65536) -> DataView:
        return _data.load_from_arrow(data, batch_size=batch_size)

    def load_from_pandas(self, df: Any, *, batch_size: int = 65536) -> DataView:
        return _data.load_from_pandas(df, batch_size=batch_size)

    def load_from_dict(self, columns: Mapping[str, Any], *, batch_size: int = 65536) -> DataView:
        return _data.load_from_dict(columns, batch_size=batch_size)

    def load_from_image_folder(
        self,
        folder: str | Path,
        *,
        use_folder_name_as_label: bool = True,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        recursive: bool = True,
    ) -> DataView:
        """The image files under ``folder``: ``ImagePath`` (absolute, sorted) and ``Label`` (the
        name of the folder holding each file). Follow with ``transforms.load_images``."""
        return load_from_image_folder(
            folder, use_folder_name_as_label=use_folder_name_as_label, extensions=extensions, recursive=recursive
        )

    def train_test_split(
        self,
        data: DataView,
        test_fraction: float = 0.1,
        *,
        seed: int | None = None,
        stratification_column: str | None = None,
    ) -> _data.TrainTestData:
        """Split lazily into ``.train_set`` and ``.test_set`` (same split every time for a seed,
        default: the context's). Rows sharing a ``stratification_column`` value stay together."""
        return _data.train_test_split(
            data,
            test_fraction,
            seed=self._ctx.seed if seed is None else seed,
            stratification_column=stratification_column,
        )

    def create_enumerable(self, data: DataView, row_class: type[Out]) -> Iterator[Out]:
        """Iterate ``data`` as ``row_class`` instances (fields matched by column name)."""
        return _data.create_enumerable(data, row_class)


class ConversionCatalog(Catalog):
    """``ctx.transforms.conversion``: keys, value maps, type conversion and hashing."""

    path = "transforms.conversion"

    map_value_to_key = entry(_conv.ValueToKeyMappingEstimator)
    map_key_to_value = entry(_conv.KeyToValueMappingTransformer)
    map_value = entry(_conv.ValueMappingTransformer)
    convert_type = entry(_conv.TypeConvertingTransformer)
    hash = entry(_conv.HashingTransformer)


class CategoricalCatalog(Catalog):
    """``ctx.transforms.categorical``: one-hot encodings."""

    path = "transforms.categorical"

    one_hot_encoding = entry(_cat.OneHotEncodingEstimator)
    one_hot_hash_encoding = entry(_cat.OneHotHashEncodingTransformer)


class FeatureSelectionCatalog(Catalog):
    """``ctx.transforms.feature_selection``."""

    path = "transforms.feature_selection"

    select_features_based_on_count = entry(_fs.CountFeatureSelectingEstimator)


class TextCatalog(Catalog):
    """``ctx.transforms.text``: text normalization, tokenizing, stop words, n-grams, featurizing,
    embeddings and LDA. Listed here so that each method is typed with what it builds; a text
    component registered with ``catalog="transforms.text"`` and not listed is found too, untyped."""

    path = "transforms.text"

    normalize_text = entry(_text_normalize.TextNormalizingTransformer)
    tokenize_into_words = entry(_tokenize.WordTokenizingTransformer)
    tokenize_into_characters_as_keys = entry(_tokenize.TokenizingByCharactersTransformer)
    remove_default_stop_words = entry(_stop_words.StopWordsRemovingTransformer)
    remove_stop_words = entry(_stop_words.CustomStopWordsRemovingTransformer)
    produce_ngrams = entry(_ngrams.NgramExtractingEstimator)
    produce_word_bags = entry(_ngrams.WordBagEstimator)
    produce_hashed_ngrams = entry(_ngrams.NgramHashingEstimator)
    produce_hashed_word_bags = entry(_ngrams.WordHashBagEstimator)
    featurize_text = entry(_featurize.TextFeaturizingEstimator)
    apply_word_embedding = entry(_embedding.WordEmbeddingEstimator)
    latent_dirichlet_allocation = entry(_lda.LatentDirichletAllocationEstimator)


class TransformsCatalog(Catalog):
    """``ctx.transforms``: data transforms, including ``apply_onnx_model``."""

    path = "transforms"

    def __init__(self, ctx: MLContext) -> None:
        super().__init__(ctx)
        self.conversion = ConversionCatalog(ctx)
        self.categorical = CategoricalCatalog(ctx)
        self.feature_selection = FeatureSelectionCatalog(ctx)
        self.text = TextCatalog(ctx)

    copy_columns = entry(ColumnCopyingTransformer)
    drop_columns = entry(ColumnDroppingTransformer)
    select_columns = entry(ColumnSelectingTransformer)
    concatenate = entry(ColumnConcatenatingTransformer)

    normalize_min_max = entry(_norm.MinMaxNormalizingEstimator)
    normalize_mean_variance = entry(_norm.MeanVarianceNormalizingEstimator)
    normalize_log_mean_variance = entry(_norm.LogMeanVarianceNormalizingEstimator)
    normalize_lp_norm = entry(_norm.LpNormalizingTransformer)
    normalize_global_contrast = entry(_norm.GlobalContrastNormalizingTransformer)
    normalize_robust_scaling = entry(_norm.RobustScalingNormalizingEstimator)
    normalize_binning = entry(_norm.BinningNormalizingEstimator)

    replace_missing_values = entry(_mv.MissingValueReplacingEstimator)
    indicate_missing_values = entry(_mv.MissingValueIndicatorTransformer)

    load_images = entry(_img.ImageLoadingTransformer)
    load_raw_image_bytes = entry(_img.RawImageBytesLoadingTransformer)
    resize_images = entry(_img.ImageResizingTransformer)
    crop_images = entry(_img.ImageCroppingTransformer)
    extract_pixels = entry(_img.ImagePixelExtractingTransformer)
    convert_to_grayscale = entry(_img.ImageGrayscalingTransformer)

    top_k_labels = entry(TopKLabelsTransformer)

    apply_onnx_model = entry(OnnxTransformer)

    def custom_mapping(
        self,
        fn: Callable[[In], Out],
        input_class: type[In],
        output_class: type[Out],
        contract_name: str | None = None,
    ) -> CustomMappingTransformer[In, Out]:
        """Run ``fn(row: input_class) -> output_class`` on every row (Python only: not exportable).

        Saving needs the mapping registered under ``contract_name`` with
        ``onnxpipe.register_custom_mapping`` (in the saving and in the loading process)."""
        return CustomMappingTransformer(fn, input_class, output_class, contract_name)


class ModelCatalog:
    """``ctx.model``: prediction engines, saving and loading, and ONNX export."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx

    def create_prediction_engine(
        self, model: Transformer, input_class: type[In], output_class: type[Out]
    ) -> PredictionEngine[In, Out]:
        """A typed single-row scorer; safe to share between threads."""
        if not isinstance(model, Transformer):
            raise InvalidArgumentError(
                f"create_prediction_engine needs a fitted model (a Transformer), got {type(model).__name__}; "
                "call .fit(data) on the pipeline first"
            )
        return PredictionEngine(model, input_class, output_class)

    def save(self, model: Transformer, input_schema: Schema | DataView | type, file: str | Path | BinaryIO) -> None:
        """Save a fitted model and its input schema to one zip (a path or a binary stream).

        The file holds a versioned JSON manifest, arrays as ``.npy`` (no pickle), the ONNX bytes of
        ``apply_onnx_model`` steps and LightGBM's own model text. A ``custom_mapping`` step is saved
        as its contract name when registered with ``onnxpipe.register_custom_mapping``; otherwise
        ModelSaveError names the step. See :mod:`onnxpipe.persistence`.
        """
        from onnxpipe.persistence import save_model

        save_model(model, input_schema, file)

    def load(
        self,
        file: str | Path | BinaryIO,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify_timeout: float | None = DEFAULT_VERIFY_TIMEOUT,
        gpu_device_id: int | None = None,
        fallback_to_cpu: bool | None = None,
        intra_op_num_threads: int | None = None,
    ) -> tuple[Transformer, Schema]:
        """Load a model saved by :meth:`save`: returns ``(model, input_schema)``.

        Safe on files from untrusted sources: nothing in the file is executed, unpickled or
        imported, sizes are bounded by ``max_bytes``, a model's check on a synthetic row by
        ``verify_timeout`` seconds (see SECURITY.md), and a corrupted or tampered file raises
        ModelLoadError. A saved model records no device: its ``apply_onnx_model`` steps open on
        ``gpu_device_id`` / ``fallback_to_cpu`` (default: the context's), else on the CPU, with
        ``intra_op_num_threads`` ONNX Runtime threads each (default: the saved step's, else ONNX
        Runtime's: one per core), e.g. to keep workers x threads <= cores.
        """
        from onnxpipe.persistence import load_model

        model, schema = load_model(file, max_bytes=max_bytes, verify_timeout=verify_timeout)
        gpu = gpu_device_id if gpu_device_id is not None else self._ctx.gpu_device_id
        fallback = fallback_to_cpu if fallback_to_cpu is not None else self._ctx.fallback_to_cpu
        if gpu is None and intra_op_num_threads is None:
            return model, schema
        steps = [
            s.reopened(gpu, fallback, intra_op_num_threads) if isinstance(s, OnnxTransformer) else s
            for s in model.steps
        ]
        return (steps[0] if len(steps) == 1 else TransformerChain(steps)), schema

    def convert_to_onnx(
        self,
        model: Transformer,
        data: DataView | Schema | Any,
        path_or_stream: str | Path | BinaryIO | None = None,
        *,
        opset: int | None = None,
        output_columns: Sequence[str] | Literal["all"] | None = None,
    ) -> onnx.ModelProto:
        """Convert a fitted pipeline to ONNX (only ``data``'s schema is used; any data ``fit``
        takes, or a Schema) and optionally write it. Fails with an ExportError naming the first
        step that cannot be exported.

        The model's outputs are the pipeline's results by default (the columns a step writes and
        no later step reads, e.g. ``Score`` and ``PredictedLabel``; what ``onnxpipe convert``
        exports), and its inputs only the columns they need, so an unused label is no input.
        ``output_columns="all"`` exports every column (ML.NET's choice), a list the named ones."""
        if not isinstance(model, Transformer):
            raise InvalidArgumentError(
                f"convert_to_onnx needs a fitted model (a Transformer), got {type(model).__name__}; "
                "call .fit(data) first"
            )
        from onnxpipe.export import convert_to_onnx

        schema = data if isinstance(data, Schema) else _data.as_data_view(data, "convert_to_onnx").schema
        proto = convert_to_onnx(model, schema, opset=opset, output_columns=output_columns)
        if path_or_stream is not None:
            payload = proto.SerializeToString()
            if isinstance(path_or_stream, str | Path):
                write_file(path_or_stream, payload, "the ONNX model")
            else:
                path_or_stream.write(payload)
        return proto


class MLContext:
    """The entry point: ``ctx = MLContext(seed=0)``, then ``ctx.data``, ``ctx.transforms``,
    ``ctx.model``, ``ctx.binary_classification``, ``ctx.multiclass_classification``,
    ``ctx.regression``, ``ctx.clustering``.

    ``gpu_device_id`` and ``fallback_to_cpu`` are the defaults for every ONNX model the
    context opens (as ML.NET's ``MLContext.GpuDeviceId`` / ``FallbackToCpu``).
    """

    def __init__(
        self, seed: int | None = None, *, gpu_device_id: int | None = None, fallback_to_cpu: bool = False
    ) -> None:
        if gpu_device_id is not None and gpu_device_id < 0:
            raise InvalidArgumentError(f"gpu_device_id must be a GPU index >= 0 or None, got {gpu_device_id}")
        self.seed = seed
        self.gpu_device_id = gpu_device_id
        self.fallback_to_cpu = fallback_to_cpu
        self.data = DataCatalog(self)
        self.transforms = TransformsCatalog(self)
        self.model = ModelCatalog(self)
        self.binary_classification = BinaryClassificationCatalog(self)
        self.multiclass_classification = MulticlassClassificationCatalog(self)
        self.regression = RegressionCatalog(self)
        self.clustering = ClusteringCatalog(self)

    def __repr__(self) -> str:
        return (
            f"MLContext(seed={self.seed}, gpu_device_id={self.gpu_device_id}, fallback_to_cpu={self.fallback_to_cpu})"
        )
