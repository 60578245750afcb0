"""Every registered component through every conformance check (onnxpipe.testing), by discovery.

``EXAMPLES`` holds one small example per catalog component; the coverage test below fails when a
registered component type (an estimator, or the transformer an estimator fits) is in no example,
so a new component cannot be forgotten. Each (example, check) pair is one test.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import onnxpipe as op
from onnxpipe.core import EstimatorChain, TransformerChain
from onnxpipe.testing import CHECKS, Example, all_components, parametrize_with_checks, run_check
from tests.models import serialized

ctx = op.MLContext(seed=1)
T = ctx.transforms
ROWS = 12


def _features(seed: int = 0, width: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(ROWS, width)).astype(np.float32)


def _table(**columns: object) -> op.DataView:
    return ctx.data.load_from_arrow(pa.table(columns))


def _vector(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


FEATURES = _features()
NUMBERS = _table(
    Features=_vector(FEATURES),
    Value=pa.array(FEATURES[:, 0]),
    Positive=pa.array(np.abs(FEATURES[:, 1]) + 0.5),
    Label=pa.array(FEATURES[:, 0] + FEATURES[:, 1] > 0),
    Target=pa.array(FEATURES @ np.array([1, -2, 0.5, 3], np.float32) + 1),
    Count=pa.array(np.arange(ROWS, dtype=np.float32) % 4),
    Class=pa.array(np.arange(ROWS, dtype=np.int64) % 3),
    City=pa.array(["Pune", "Oslo", "Lima", "Oslo"] * (ROWS // 4)),
)
CITIES = ["Pune", "Oslo", "Lima"]
TEXT = _table(
    Text=pa.array(["Héllo, Wörld 42!", "ÇA VA? naïve café", "", "Straße № 7 — end."]),
    Words=pa.FixedSizeListArray.from_arrays(pa.array(["é", "Ab", "x", "ÿ", "Q", "ß", "", "Ω"]), 2),
)
WITH_MISSING = _table(Value=pa.array([1.0, None, 3.0, np.nan, 5.0, 2.0], pa.float32()))
BINARY = {"label_column_name": "Label", "feature_column_name": "Features"}
REGRESSION = {"label_column_name": "Target", "feature_column_name": "Features"}
MULTICLASS = {"label_column_name": "Class", "feature_column_name": "Features"}
TREES = {"number_of_iterations": 3, "number_of_leaves": 4, "minimum_example_count_per_leaf": 2}
FOREST = {"number_of_trees": 3, "number_of_leaves": 4, "minimum_example_count_per_leaf": 2}


def _images(folder: Path) -> op.DataView:
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, size=(6 + i, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return ctx.data.load_from_image_folder(folder, use_folder_name_as_label=False)


IMAGE_FOLDER = Path(tempfile.mkdtemp(prefix="onnxpipe-conformance-"))


def _embedding_file() -> Path:
    """A small word embedding file (a fastText-like header, then word and values)."""
    path = IMAGE_FOLDER / "embedding.txt"
    path.write_text("4 3\nHéllo, 0.5 -1 2\nWörld 1 1 1\ncafé -0.25 0 3\nend. 2 -2 0.5\n", encoding="utf-8")
    return path


def _image_examples() -> list[Example]:
    files = _images(IMAGE_FOLDER)
    loaded = T.load_images("Image", input_column_name="ImagePath")
    resized = loaded.append(T.resize_images("Small", 4, 4, "Image"))
    return [
        Example(loaded, files, exportable=False, id="load_images"),
        Example(T.load_raw_image_bytes("Bytes", input_column_name="ImagePath"), files, exportable=False),
        Example(resized, files, exportable=False, id="resize_images"),
        Example(loaded.append(T.crop_images("Cropped", 4, 4, "Image")), files, exportable=False, id="crop_images"),
        Example(loaded.append(T.convert_to_grayscale("Gray", "Image")), files, exportable=False, id="grayscale"),
        Example(resized.append(T.extract_pixels("Pixels", "Small")), files, exportable=False, id="extract_pixels"),
    ]


def _onnx_example() -> Example:
    """``Y = sigmoid(X @ W + B)`` over a float[N, 4] input."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Logit"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("Logit", TensorProto.FLOAT, ["N", 1])],
        [
            numpy_helper.from_array(rng.normal(size=(4, 1)).astype(np.float32), "W"),
            numpy_helper.from_array(np.ones(1, np.float32), "B"),
        ],
    )
    data = _table(X=_vector(FEATURES))
    return Example(T.apply_onnx_model(model_bytes=serialized(graph)), data, exportable=True)


EXAMPLES: list[Example] = [
    Example(T.copy_columns("Copy", "Value"), NUMBERS, exportable=True),
    Example(T.select_columns("Value", "City"), NUMBERS, exportable=True),
    Example(T.drop_columns("City"), NUMBERS, exportable=True),
    Example(T.concatenate("Joined", "Value", "Features"), NUMBERS, exportable=True),
    Example(T.normalize_min_max("Features"), NUMBERS, exportable=True),
    Example(T.normalize_mean_variance("Features"), NUMBERS, exportable=True),
    Example(T.normalize_mean_variance("Cdf", "Features", use_cdf=True), NUMBERS, exportable=True),
    Example(T.normalize_log_mean_variance("Positive"), NUMBERS, exportable=True),
    Example(T.normalize_lp_norm("Features"), NUMBERS, exportable=True),
    Example(T.normalize_global_contrast("Features"), NUMBERS, exportable=True),
    Example(T.normalize_robust_scaling("Features"), NUMBERS, exportable=True),
    Example(T.normalize_binning("Features", maximum_bin_count=4), NUMBERS, exportable=True),
    Example(T.replace_missing_values("Value", replacement_mode="mean"), WITH_MISSING, exportable=True),
    Example(T.indicate_missing_values("Missing", "Value"), WITH_MISSING, exportable=True),
    Example(T.conversion.map_value_to_key("CityKey", "City"), NUMBERS, exportable=True),
    Example(
        T.conversion.map_value_to_key("CityKey", "City", keys=CITIES).append(
            T.conversion.map_key_to_value("CityBack", "CityKey", key_values=CITIES)
        ),
        NUMBERS,
        exportable=True,
        id="map_key_to_value",
    ),
    Example(T.conversion.map_value("Size", {"Pune": 3.0, "Oslo": 1.0, "Lima": 2.0}, "City"), NUMBERS, exportable=True),
    Example(T.conversion.convert_type("ClassFloat", "Class"), NUMBERS, exportable=True),
    Example(T.conversion.convert_type("Parsed", "Text"), _table(Text=pa.array(["1.5", "-2", "", "3e2"])), id="parse"),
    Example(T.conversion.hash("CityHash", "City", number_of_bits=8), NUMBERS, exportable=True),
    Example(T.categorical.one_hot_encoding("CityVector", "City"), NUMBERS, exportable=True),
    Example(T.categorical.one_hot_hash_encoding("CityHashed", "City", number_of_bits=3), NUMBERS, exportable=True),
    Example(T.feature_selection.select_features_based_on_count("Counted", "Count"), NUMBERS, exportable=True),
    Example(T.top_k_labels("Top", "Features", labels=["a", "b", "c", "d"], k=2), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.lbfgs_logistic_regression(**BINARY), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.averaged_perceptron(**BINARY), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.sdca_logistic_regression(**BINARY), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.sdca_non_calibrated(**BINARY, loss="hinge"), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.linear_svm(**BINARY), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.light_gbm(**BINARY, **TREES), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.fast_forest(**BINARY, **FOREST), NUMBERS, exportable=True),
    Example(ctx.binary_classification.trainers.fast_tree(**BINARY, **FOREST), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.ols(**REGRESSION), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.online_gradient_descent(**REGRESSION), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.sdca(**REGRESSION), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.lbfgs_poisson_regression("Positive", "Features"), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.light_gbm(**REGRESSION, **TREES), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.fast_forest(**REGRESSION, **FOREST), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.fast_tree(**REGRESSION, **FOREST), NUMBERS, exportable=True),
    Example(ctx.regression.trainers.fast_tree_tweedie("Positive", "Features", **FOREST), NUMBERS, exportable=True),
    Example(ctx.multiclass_classification.trainers.lbfgs_maximum_entropy(**MULTICLASS), NUMBERS, exportable=True),
    Example(ctx.multiclass_classification.trainers.naive_bayes(**MULTICLASS), NUMBERS, exportable=True),
    Example(ctx.multiclass_classification.trainers.sdca_maximum_entropy(**MULTICLASS), NUMBERS, exportable=True),
    Example(ctx.multiclass_classification.trainers.sdca_non_calibrated(**MULTICLASS), NUMBERS, exportable=True),
    Example(
        ctx.multiclass_classification.trainers.one_versus_all(
            ctx.binary_classification.trainers.averaged_perceptron(feature_column_name="Features"), "Class"
        ),
        NUMBERS,
        exportable=True,
    ),
    Example(ctx.multiclass_classification.trainers.light_gbm(**MULTICLASS, **TREES), NUMBERS, exportable=True),
    Example(ctx.clustering.trainers.kmeans("Features", number_of_clusters=3), NUMBERS, exportable=True),
    Example(
        T.normalize_min_max("Features").append(ctx.binary_classification.trainers.averaged_perceptron(**BINARY)),
        NUMBERS,
        exportable=True,
        id="chain",
    ),
    Example(T.text.normalize_text("Clean", "Text", keep_punctuations=False), TEXT, exportable=False),
    Example(T.text.normalize_text("Upper", "Words", case_mode="upper", keep_diacritics=True), TEXT, exportable=True),
    Example(T.text.tokenize_into_words("Tokens", "Text"), TEXT, exportable=True),
    Example(T.text.tokenize_into_characters_as_keys("Chars", "Text"), TEXT, exportable=True),
    Example(
        T.text.tokenize_into_words("Tokens", "Words").append(T.text.remove_default_stop_words("Clean", "Tokens")),
        TEXT,
        exportable=True,
        id="remove_default_stop_words",
    ),
    Example(
        T.text.tokenize_into_words("Tokens", "Text").append(
            T.text.remove_stop_words("Clean", "Tokens", stopwords=["va?"])
        ),
        TEXT,
        exportable=True,
        id="remove_stop_words",
    ),
    Example(
        T.text.tokenize_into_words("Tokens", "Text").append(
            T.text.apply_word_embedding("Embedding", "Tokens", custom_model_file=_embedding_file())
        ),
        TEXT,
        exportable=True,
        id="apply_word_embedding",
    ),
    Example(
        T.text.latent_dirichlet_allocation("Topics", "Count8", number_of_topics=2, maximum_number_of_iterations=5),
        _table(Count8=_vector(np.random.default_rng(3).poisson(1.0, size=(ROWS, 8)).astype(np.float32))),
        exportable=False,
    ),
    Example(T.text.produce_word_bags("Bag", "Text", weighting="tf_idf"), TEXT, exportable=True),
    Example(
        T.conversion.map_value_to_key("Keys", "Words").append(T.text.produce_ngrams("Grams", "Keys", weighting="idf")),
        TEXT,
        exportable=True,
        id="produce_ngrams",
    ),
    Example(
        T.text.produce_hashed_ngrams("Hashed", "Keys", number_of_bits=6, maximum_number_of_inverts=-1),
        T.conversion.map_value_to_key("Keys", "Words").fit(TEXT).transform(TEXT),
        exportable=False,
    ),
    Example(T.text.produce_hashed_word_bags("Hashed", "Text", number_of_bits=5), TEXT, exportable=False),
    Example(T.text.featurize_text("Features", "Text"), TEXT, exportable=False),
    Example(
        T.text.featurize_text("Features", "Text", keep_diacritics=True), TEXT, exportable=True, id="featurize_export"
    ),
    _onnx_example(),
    *_image_examples(),
]

# Registered types no example can cover here, and why.
NOT_COVERED = {
    "CustomMappingTransformer": "runs a user function; covered by tests/test_pipeline.py with savable=False",
}


@parametrize_with_checks(EXAMPLES)
def test_conformance(example: Example, check: str) -> None:
    run_check(example, check)


def _types_in(example: Example) -> set[type]:
    model = example.estimator.fit(example.data)
    steps = [*getattr(example.estimator, "steps", (example.estimator,)), *model.steps]
    found = {type(s) for s in steps}
    for step in model.steps:  # components held by others (one_versus_all's binary models)
        found.update(type(v) for v in step.get_state().values() if isinstance(v, op.Transformer | op.Estimator))
        for value in step.get_state().values():
            if isinstance(value, list | tuple):
                found.update(type(v) for v in value if isinstance(v, op.Transformer))
    return found


def test_every_registered_component_is_in_an_example() -> None:
    covered: set[type] = {EstimatorChain, TransformerChain}
    for example in EXAMPLES:
        covered |= _types_in(example)
    missing = [
        name
        for name, cls in all_components()
        if cls.__module__.startswith("onnxpipe.") and cls not in covered and name not in NOT_COVERED
    ]
    assert not missing, f"registered components in no conformance example: {missing}; add one to EXAMPLES"


def test_every_check_is_run_and_skips_name_known_checks() -> None:
    assert len(CHECKS) >= 10
    for _, cls in all_components():
        for name, reason in cls.conformance_skips.items():
            assert name in CHECKS and reason.strip(), (cls, name)


@pytest.mark.usefixtures("isolated_registry")
def test_a_user_component_is_discovered_and_checked() -> None:
    from onnxpipe.core import TrivialEstimator, component
    from onnxpipe.schema import Schema

    @component("doubled", catalog="transforms")
    class Doubled(TrivialEstimator):
        """Twice a float column."""

        def __init__(self, output_column_name: str, input_column_name: str | None = None) -> None:
            self.output_column_name = output_column_name
            self.input_column_name = input_column_name or output_column_name

        def output_schema(self, input_schema: Schema) -> Schema:
            column = input_schema.require(self.input_column_name, self.step_name)
            return input_schema.with_columns(op.Column(self.output_column_name, column.type))

        def input_columns(self, input_schema: Schema) -> list[str]:
            return [self.input_column_name]

        def map_columns(self, columns, input_schema, n_rows):  # type: ignore[no-untyped-def]
            return {self.output_column_name: np.asarray(columns[self.input_column_name]) * 2}

        def export_onnx(self, ctx_, input_schema):  # type: ignore[no-untyped-def]
            two = ctx_.add_initializer(np.array(2, np.float32), "two")
            (doubled,) = ctx_.add_node("Mul", [ctx_.value(self.input_column_name), two])
            ctx_.set_value(self.output_column_name, doubled)

    assert ("test_a_user_component_is_discovered_and_checked.<locals>.Doubled", Doubled) in all_components()
    step = op.MLContext().transforms.doubled("Twice", "Value")  # found by the catalog without editing it
    assert isinstance(step, Doubled) and step.step_name == "doubled(Twice <- Value)"
    example = Example(step, NUMBERS, exportable=True)
    for check in CHECKS:
        if check not in ("save_load_round_trip", "pickle_round_trip"):  # a class local to a test
            run_check(example, check)


@pytest.fixture(scope="module", autouse=True)
def _remove_images() -> Iterator[None]:
    yield
    shutil.rmtree(IMAGE_FOLDER, ignore_errors=True)
