"""``MLContext`` and its catalogs: thin, typed one-liners that build components.

As in ML.NET: output column first, input defaulting to output, keyword arguments. The context
carries the defaults every component shares (seed, GPU id, CPU fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import onnx
import pyarrow as pa

from onnxpipe import data as _data
from onnxpipe._files import write_file
from onnxpipe._limits import DEFAULT_MAX_BYTES, DEFAULT_VERIFY_TIMEOUT
from onnxpipe._task_catalogs import (
    BinaryClassificationCatalog,
    ClusteringCatalog,
    MulticlassClassificationCatalog,
    RegressionCatalog,
)
from onnxpipe.core import Transformer, TransformerChain
from onnxpipe.data import DataView
from onnxpipe.data._images import IMAGE_EXTENSIONS, load_from_image_folder
from onnxpipe.engine import PredictionEngine
from onnxpipe.errors import InvalidArgumentError
from onnxpipe.export import convert_to_onnx
from onnxpipe.persistence import load_model, save_model
from onnxpipe.schema import DType, Schema
from onnxpipe.transforms import categorical as _cat
from onnxpipe.transforms import conversion as _conv
from onnxpipe.transforms import feature_selection as _fs
from onnxpipe.transforms import images as _img
from onnxpipe.transforms import missing_values as _mv
from onnxpipe.transforms import normalization as _norm
from onnxpipe.transforms.columns import (
    ColumnConcatenatingTransformer,
    ColumnCopyingTransformer,
    ColumnSelectingTransformer,
)
from onnxpipe.transforms.custom import CustomMappingTransformer
from onnxpipe.transforms.labels import TopKLabelsTransformer
from onnxpipe.transforms.onnx_model import OnnxTransformer

__all__ = ["DataCatalog", "MLContext", "ModelCatalog", "TransformsCatalog"]

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
        separator: str = "\t",
        has_header: bool = False,
        allow_quoting: bool = True,
        missing_values: Sequence[str] = _data._loaders.DEFAULT_MISSING,
        max_row_bytes: int = _data._loaders.MAX_ROW_BYTES,
    ) -> DataView:
        """A delimited text file (CSV with ``separator=","``), streamed lazily. Fields of
        ``row_class`` read the file column of their ``LoadColumn`` index (a range makes a
        vector) or, with a header, of their name; a ``schema`` (e.g. a loaded model's input
        schema) reads columns by name, vectors from ``name.0``, ``name.1``... Missing values
        become NaN in float columns. A row longer than ``max_row_bytes`` (64 MiB) is a
        ParseError naming it, not an unbounded allocation."""
        return _data.load_from_text_file(
            path,
            row_class,
            schema=schema,
            separator=separator,
            has_header=has_header,
            allow_quoting=allow_quoting,
            missing_values=missing_values,
            max_row_bytes=max_row_bytes,
        )

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


class ConversionCatalog:
    """``ctx.transforms.conversion``: keys, value maps, type conversion and hashing."""

    def map_value_to_key(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_number_of_keys: int = 1_000_000,
        key_ordinality: _conv.KeyOrdinality = "by_occurrence",
        add_key_value_annotations_as_text: bool = False,
        keys: Sequence[Any] | None = None,
    ) -> _conv.ValueToKeyMappingEstimator:
        """Learn a value -> key (1..n) dictionary; unseen and missing values map to key 0."""
        return _conv.ValueToKeyMappingEstimator(
            output_column_name,
            input_column_name,
            maximum_number_of_keys=maximum_number_of_keys,
            key_ordinality=key_ordinality,
            add_key_value_annotations_as_text=add_key_value_annotations_as_text,
            keys=keys,
        )

    def map_key_to_value(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        key_values: Sequence[Any] | _conv.ValueToKeyMappingTransformer | None = None,
    ) -> _conv.KeyToValueMappingTransformer:
        """Keys back to their values (from a fitted ``map_value_to_key`` or a list of values)."""
        return _conv.KeyToValueMappingTransformer(output_column_name, input_column_name, key_values=key_values)

    def map_value(
        self,
        output_column_name: str,
        key_value_pairs: Mapping[Any, Any],
        input_column_name: str | None = None,
        *,
        treat_values_as_key_type: bool = False,
    ) -> _conv.ValueMappingTransformer:
        """Map values through a given dictionary."""
        return _conv.ValueMappingTransformer(
            output_column_name, key_value_pairs, input_column_name, treat_values_as_key_type=treat_values_as_key_type
        )

    def convert_type(
        self, output_column_name: str, input_column_name: str | None = None, *, output_kind: DType | str = DType.FLOAT32
    ) -> _conv.TypeConvertingTransformer:
        """Convert a column to another element type (numbers, bool, text)."""
        return _conv.TypeConvertingTransformer(output_column_name, input_column_name, output_kind=output_kind)

    def hash(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        number_of_bits: int = 31,
        seed: int = 314489979,
        use_ordered_hashing: bool = False,
    ) -> _conv.HashingTransformer:
        """MurmurHash3 of each value into a key of ``2**number_of_bits`` values."""
        return _conv.HashingTransformer(
            output_column_name,
            input_column_name,
            number_of_bits=number_of_bits,
            seed=seed,
            use_ordered_hashing=use_ordered_hashing,
        )


class CategoricalCatalog:
    """``ctx.transforms.categorical``: one-hot encodings."""

    def one_hot_encoding(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        output_kind: _cat.OneHotOutputKind = "indicator",
        maximum_number_of_keys: int = 1_000_000,
        key_ordinality: _conv.KeyOrdinality = "by_occurrence",
        keys: Sequence[Any] | None = None,
    ) -> _cat.OneHotEncodingEstimator:
        """Categories as indicator vectors (or bag counts, keys, binary codes)."""
        return _cat.OneHotEncodingEstimator(
            output_column_name,
            input_column_name,
            output_kind=output_kind,
            maximum_number_of_keys=maximum_number_of_keys,
            key_ordinality=key_ordinality,
            keys=keys,
        )

    def one_hot_hash_encoding(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        output_kind: _cat.OneHotOutputKind = "indicator",
        number_of_bits: int = 16,
        seed: int = 314489979,
        use_ordered_hashing: bool = False,
    ) -> _cat.OneHotHashEncodingTransformer:
        """One-hot encoding of hashed values (no dictionary to learn)."""
        return _cat.OneHotHashEncodingTransformer(
            output_column_name,
            input_column_name,
            output_kind=output_kind,
            number_of_bits=number_of_bits,
            seed=seed,
            use_ordered_hashing=use_ordered_hashing,
        )


class FeatureSelectionCatalog:
    """``ctx.transforms.feature_selection``."""

    def select_features_based_on_count(
        self, output_column_name: str, input_column_name: str | None = None, *, count: int = 1
    ) -> _fs.CountFeatureSelectingEstimator:
        """Keep the slots with at least ``count`` non-default values."""
        return _fs.CountFeatureSelectingEstimator(output_column_name, input_column_name, count=count)


class TransformsCatalog:
    """``ctx.transforms``: data transforms, including ``apply_onnx_model``."""

    def __init__(self, ctx: MLContext) -> None:
        self._ctx = ctx
        self.conversion = ConversionCatalog()
        self.categorical = CategoricalCatalog()
        self.feature_selection = FeatureSelectionCatalog()

    def copy_columns(self, output_column_name: str, input_column_name: str) -> ColumnCopyingTransformer:
        """Copy ``input_column_name`` to a new column ``output_column_name``."""
        return ColumnCopyingTransformer([(output_column_name, input_column_name)])

    def drop_columns(self, *column_names: str) -> ColumnSelectingTransformer:
        return ColumnSelectingTransformer(column_names, keep=False)

    def select_columns(self, *column_names: str) -> ColumnSelectingTransformer:
        """Keep only these columns, in this order."""
        return ColumnSelectingTransformer(column_names, keep=True)

    def concatenate(self, output_column_name: str, *input_column_names: str) -> ColumnConcatenatingTransformer:
        """Join scalar and vector columns of one element type into a vector column."""
        return ColumnConcatenatingTransformer(output_column_name, input_column_names)

    # ---------------------------------------------------------------- normalization

    def normalize_min_max(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = _norm.DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        fix_zero: bool = True,
    ) -> _norm.MinMaxNormalizingEstimator:
        """Scale each slot by its training min and max (to [0, 1], or [-1, 1] keeping 0 with fix_zero)."""
        return _norm.MinMaxNormalizingEstimator(
            output_column_name, input_column_name, maximum_example_count=maximum_example_count, fix_zero=fix_zero
        )

    def normalize_mean_variance(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = _norm.DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        fix_zero: bool = True,
        use_cdf: bool = False,
    ) -> _norm.MeanVarianceNormalizingEstimator:
        """Subtract each slot's training mean and divide by its standard deviation (or apply the normal CDF)."""
        return _norm.MeanVarianceNormalizingEstimator(
            output_column_name,
            input_column_name,
            maximum_example_count=maximum_example_count,
            fix_zero=fix_zero,
            use_cdf=use_cdf,
        )

    def normalize_log_mean_variance(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = _norm.DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        use_cdf: bool = False,
        fix_zero: bool = False,
    ) -> _norm.LogMeanVarianceNormalizingEstimator:
        """Mean-variance normalization of ``ln x`` (or its normal CDF)."""
        return _norm.LogMeanVarianceNormalizingEstimator(
            output_column_name,
            input_column_name,
            maximum_example_count=maximum_example_count,
            use_cdf=use_cdf,
            fix_zero=fix_zero,
        )

    def normalize_lp_norm(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        norm: _norm.NormFunction | str = _norm.NormFunction.L2,
        ensure_zero_mean: bool = False,
    ) -> _norm.LpNormalizingTransformer:
        """Divide each row by its L2 / L1 / infinity norm or standard deviation."""
        return _norm.LpNormalizingTransformer(
            output_column_name, input_column_name, norm=norm, ensure_zero_mean=ensure_zero_mean
        )

    def normalize_global_contrast(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        ensure_zero_mean: bool = True,
        ensure_unit_standard_deviation: bool = False,
        scale: float = 1.0,
    ) -> _norm.GlobalContrastNormalizingTransformer:
        """Per row: subtract the mean, divide by the standard deviation or L2 norm, times ``scale``."""
        return _norm.GlobalContrastNormalizingTransformer(
            output_column_name,
            input_column_name,
            ensure_zero_mean=ensure_zero_mean,
            ensure_unit_standard_deviation=ensure_unit_standard_deviation,
            scale=scale,
        )

    def normalize_robust_scaling(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = _norm.DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        center_data: bool = True,
        quantile_min: float = 25,
        quantile_max: float = 75,
    ) -> _norm.RobustScalingNormalizingEstimator:
        """Center on the median and scale by the inter-quantile range."""
        return _norm.RobustScalingNormalizingEstimator(
            output_column_name,
            input_column_name,
            maximum_example_count=maximum_example_count,
            center_data=center_data,
            quantile_min=quantile_min,
            quantile_max=quantile_max,
        )

    def normalize_binning(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        maximum_example_count: int = _norm.DEFAULT_MAXIMUM_EXAMPLE_COUNT,
        fix_zero: bool = True,
        maximum_bin_count: int = 1024,
    ) -> _norm.BinningNormalizingEstimator:
        """Equal-population bins per slot: ``bin index / (bins - 1)`` (exportable, unlike ML.NET's)."""
        return _norm.BinningNormalizingEstimator(
            output_column_name,
            input_column_name,
            maximum_example_count=maximum_example_count,
            fix_zero=fix_zero,
            maximum_bin_count=maximum_bin_count,
        )

    # ---------------------------------------------------------------- missing values

    def replace_missing_values(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        replacement_mode: _mv.ReplacementMode = "default",
        impute_by_slot: bool = True,
    ) -> _mv.MissingValueReplacingEstimator:
        """Replace NaN by 0 (default) or by each slot's training mean, minimum, maximum or most frequent value."""
        return _mv.MissingValueReplacingEstimator(
            output_column_name, input_column_name, replacement_mode=replacement_mode, impute_by_slot=impute_by_slot
        )

    def indicate_missing_values(
        self, output_column_name: str, input_column_name: str | None = None
    ) -> _mv.MissingValueIndicatorTransformer:
        """A bool column of the same shape: True where the value is missing."""
        return _mv.MissingValueIndicatorTransformer(output_column_name, input_column_name)

    # ---------------------------------------------------------------- images

    def load_images(
        self,
        output_column_name: str,
        image_folder: str | Path | None = None,
        input_column_name: str | None = None,
        *,
        on_error: _img.OnError = "raise",
    ) -> _img.ImageLoadingTransformer:
        """Decode the image file whose path (joined to ``image_folder``) is in each row into an image
        column (EXIF orientation applied; gray, RGB or RGBA). ``on_error="skip"`` drops the rows whose
        file is missing or cannot be decoded, with a SkippedRowWarning, instead of raising."""
        return _img.ImageLoadingTransformer(output_column_name, image_folder, input_column_name, on_error=on_error)

    def load_raw_image_bytes(
        self,
        output_column_name: str,
        image_folder: str | Path | None = None,
        input_column_name: str | None = None,
        *,
        on_error: _img.OnError = "raise",
    ) -> _img.RawImageBytesLoadingTransformer:
        """The undecoded bytes of each row's file as a uint8 vector, for models that decode images."""
        return _img.RawImageBytesLoadingTransformer(
            output_column_name, image_folder, input_column_name, on_error=on_error
        )

    def resize_images(
        self,
        output_column_name: str,
        image_width: int,
        image_height: int,
        input_column_name: str | None = None,
        *,
        resizing: _img.ResizingKind = "iso_crop",
        crop_anchor: _img.CropAnchor = "center",
    ) -> _img.ImageResizingTransformer:
        """Resize images to ``image_width`` x ``image_height``: ``iso_crop`` (scale to cover, crop at
        ``crop_anchor``), ``iso_pad`` (scale to fit, pad with black) or ``fill`` (stretch)."""
        return _img.ImageResizingTransformer(
            output_column_name,
            image_width,
            image_height,
            input_column_name,
            resizing=resizing,
            crop_anchor=crop_anchor,
        )

    def crop_images(
        self,
        output_column_name: str,
        image_width: int,
        image_height: int,
        input_column_name: str | None = None,
        *,
        crop_anchor: _img.CropAnchor = "center",
    ) -> _img.ImageCroppingTransformer:
        """Cut the ``image_width`` x ``image_height`` part at ``crop_anchor`` out of every image, without
        scaling (torchvision's ``CenterCrop``: ``resize_images(256, 256)`` then ``crop_images(224, 224)``);
        an image smaller than the crop is a ShapeError."""
        return _img.ImageCroppingTransformer(
            output_column_name, image_width, image_height, input_column_name, crop_anchor=crop_anchor
        )

    def extract_pixels(
        self,
        output_column_name: str,
        input_column_name: str | None = None,
        *,
        colors: str = "rgb",
        order: str = "argb",
        interleave: bool = False,
        offset: float | Sequence[float] = 0.0,
        scale: float | Sequence[float] = 1.0,
        output_as_float: bool = True,
    ) -> _img.ImagePixelExtractingTransformer:
        """Images of known size to a pixel vector ``(planes, height, width)`` (``interleave``:
        ``(height, width, planes)``) of ``(pixel - offset) * scale``; ``colors`` picks the planes
        (e.g. ``"rgb"``, ``"argb"``), ``order`` their order (e.g. ``"argb"``, ``"bgr"``).
        ``offset`` and ``scale`` are one number or one per plane: ImageNet's normalisation is
        ``offset=[123.675, 116.28, 103.53], scale=[1 / 58.395, 1 / 57.12, 1 / 57.375]``."""
        return _img.ImagePixelExtractingTransformer(
            output_column_name,
            input_column_name,
            colors=colors,
            order=order,
            interleave=interleave,
            offset=offset,
            scale=scale,
            output_as_float=output_as_float,
        )

    def convert_to_grayscale(
        self, output_column_name: str, input_column_name: str | None = None
    ) -> _img.ImageGrayscalingTransformer:
        """RGB / RGBA images to 1-channel gray images (Pillow's ``convert("L")``)."""
        return _img.ImageGrayscalingTransformer(output_column_name, input_column_name)

    # ---------------------------------------------------------------- labels

    def top_k_labels(
        self,
        output_column_name: str = "TopLabels",
        score_column_name: str = "Score",
        *,
        labels: Sequence[str] | None = None,
        labels_file: str | Path | None = None,
        k: int = 5,
        score_output_column_name: str = "TopScores",
    ) -> TopKLabelsTransformer:
        """The ``k`` best classes of a score vector: their labels (from ``labels`` or ``labels_file``,
        one per line) in ``output_column_name`` and their scores in ``score_output_column_name``,
        by descending score."""
        return TopKLabelsTransformer(
            output_column_name,
            score_column_name,
            labels=labels,
            labels_file=labels_file,
            k=k,
            score_output_column_name=score_output_column_name,
        )

    # ---------------------------------------------------------------- other

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

    def apply_onnx_model(
        self,
        model_file: str | Path | None = None,
        *,
        model_bytes: bytes | None = None,
        output_column_names: Sequence[str] | str | None = None,
        input_column_names: Sequence[str] | str | None = None,
        shape_dictionary: Mapping[str, Sequence[int | None]] | None = None,
        gpu_device_id: int | None = None,
        fallback_to_cpu: bool | None = None,
        inter_op_num_threads: int | None = None,
        intra_op_num_threads: int | None = None,
        batch_size: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify_timeout: float | None = DEFAULT_VERIFY_TIMEOUT,
    ) -> OnnxTransformer:
        """Score a pretrained ONNX model (from ``model_file`` or ``model_bytes``).

        Column names are the model's tensor names; all inputs / outputs are used when the names
        are omitted. ``shape_dictionary`` ({tensor: dims}, -1 for unknown) overrides unknown
        dimensions. ``gpu_device_id`` (default: the context's) runs on that CUDA device;
        without ``fallback_to_cpu`` a GPU that cannot be used is an error. ``batch_size`` rows
        are scored per ONNX Runtime call when the model's batch axis is free (default: about
        16 MiB of input per call).

        The model may come from anyone: it is checked before ONNX Runtime opens it. External
        data must be regular files inside the model's folder (none with ``model_bytes``); the
        tensors it declares, those constant folding would produce and the synthetic inputs used
        to check it must fit in ``max_bytes`` (default 4 GiB); a model with loops is run once on
        a synthetic row and must finish within ``verify_timeout`` seconds (default 10; None: not
        run). Refusals are ``ModelLoadError``.
        """
        gpu = gpu_device_id if gpu_device_id is not None else self._ctx.gpu_device_id
        fallback = fallback_to_cpu if fallback_to_cpu is not None else self._ctx.fallback_to_cpu
        return OnnxTransformer(
            model_file,
            model_bytes=model_bytes,
            output_column_names=[output_column_names] if isinstance(output_column_names, str) else output_column_names,
            input_column_names=[input_column_names] if isinstance(input_column_names, str) else input_column_names,
            shape_dictionary=shape_dictionary,
            gpu_device_id=gpu,
            fallback_to_cpu=fallback,
            inter_op_num_threads=inter_op_num_threads,
            intra_op_num_threads=intra_op_num_threads,
            batch_size=batch_size,
            max_bytes=max_bytes,
            verify_timeout=verify_timeout,
        )


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
        save_model(model, input_schema, file)

    def load(
        self,
        file: str | Path | BinaryIO,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify_timeout: float | None = DEFAULT_VERIFY_TIMEOUT,
        gpu_device_id: int | None = None,
        fallback_to_cpu: bool | None = None,
    ) -> tuple[Transformer, Schema]:
        """Load a model saved by :meth:`save`: returns ``(model, input_schema)``.

        Safe on files from untrusted sources: nothing in the file is executed, unpickled or
        imported, sizes are bounded by ``max_bytes``, a model's check on a synthetic row by
        ``verify_timeout`` seconds (see SECURITY.md), and a corrupted or tampered file raises
        ModelLoadError. A saved model records no device: its ``apply_onnx_model`` steps open on
        ``gpu_device_id`` / ``fallback_to_cpu`` (default: the context's), else on the CPU.
        """
        model, schema = load_model(file, max_bytes=max_bytes, verify_timeout=verify_timeout)
        gpu = gpu_device_id if gpu_device_id is not None else self._ctx.gpu_device_id
        fallback = fallback_to_cpu if fallback_to_cpu is not None else self._ctx.fallback_to_cpu
        if gpu is None:
            return model, schema
        steps = [s.on_device(gpu, fallback) if isinstance(s, OnnxTransformer) else s for s in model.steps]
        return (steps[0] if len(steps) == 1 else TransformerChain(steps)), schema

    def convert_to_onnx(
        self,
        model: Transformer,
        data: DataView | Schema,
        path_or_stream: str | Path | BinaryIO | None = None,
        *,
        opset: int | None = None,
        output_columns: Sequence[str] | None = None,
    ) -> onnx.ModelProto:
        """Convert a fitted pipeline to ONNX (only ``data``'s schema is used) and optionally
        write it. Fails with an ExportError naming the first step that cannot be exported."""
        if not isinstance(model, Transformer):
            raise InvalidArgumentError(
                f"convert_to_onnx needs a fitted model (a Transformer), got {type(model).__name__}; "
                "call .fit(data) first"
            )
        schema = data.schema if isinstance(data, DataView) else data
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
