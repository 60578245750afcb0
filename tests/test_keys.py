"""Key columns as ML.NET has them: KeyType with its count and KeyValues on the schema, carried
through trainers, saved, exported, shown; and data in as users hold it (DataFrame, Arrow, dicts)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pytest

import onnxpipe as op
from onnxpipe.errors import ColumnTypeError, InvalidArgumentError, SchemaError, ShapeError
from onnxpipe.export import COLUMNS_METADATA_KEY
from onnxpipe.schema import Column, DType, KeyType, KeyValues, Schema, TensorType, column_type_from_json

SPECIES = np.array(["setosa", "versicolor", "virginica"], dtype=object)


def _flowers(n: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 2)) + y[:, None] * 2.5
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "Species": SPECIES[y]})


def _pipeline(ctx: op.MLContext) -> op.EstimatorChain:
    return (
        ctx.transforms.conversion.map_value_to_key("Label", "Species")
        .append(ctx.transforms.concatenate("Features", "a", "b"))
        .append(ctx.multiclass_classification.trainers.lbfgs_maximum_entropy())
        .append(ctx.transforms.conversion.map_key_to_value("Predicted", "PredictedLabel"))
    )


def test_key_type_count_values_and_text() -> None:
    key = KeyType(3, ["b", "a", "c"])
    assert key.count == 3 and key.values == KeyValues(DType.STRING, ("b", "a", "c"))
    assert key.value_dtype is DType.STRING and key.dtype is DType.UINT32
    assert str(key) == "key<uint32,3>{'b', 'a', 'c'}"
    assert str(KeyType(None, value_dtype=DType.FLOAT32)) == "key<uint32,?>{float32 values}"
    assert str(KeyType(7, shape=(2,))) == "key<uint32,7>[2]"
    assert KeyType(3) != TensorType(DType.UINT32) and KeyType(3) != KeyType(3, ["b", "a", "c"])
    assert KeyType(3, np.array([0.5, 1, 2], np.float32)).values.texts == ("0.5", "1.0", "2.0")  # type: ignore[union-attr]
    assert len({KeyType(2, ["x", "y"]), KeyType(2, ["x", "y"])}) == 1
    with pytest.raises(SchemaError, match=r"KeyType\(0\): the key count must be positive, or None when unknown"):
        KeyType(0)
    with pytest.raises(SchemaError, match="2 key values were given for 3 keys"):
        KeyType(3, ["x", "y"])
    with pytest.raises(SchemaError, match="keys are unsigned integers"):
        KeyType(3, dtype=DType.INT32)
    for ct in (KeyType(3, ["b", "a", "c"]), KeyType(None, value_dtype=DType.BOOL), KeyType(4, shape=(None,))):
        assert column_type_from_json(json.loads(json.dumps(op.schema.column_type_to_json(ct)))) == ct
    # How onnxpipe 0.1 described a key column still reads.
    assert column_type_from_json({"kind": "tensor", "dtype": "uint32", "shape": [], "key_count": 5}) == KeyType(5)


def test_key_idiom_on_a_dataframe_saves_loads_exports_and_maps_back() -> None:
    ctx = op.MLContext(seed=1)
    df = _flowers()
    estimator = _pipeline(ctx)
    promised = estimator.output_schema(ctx.data.load_from_pandas(df).schema)
    assert promised["Label"].type == KeyType(None, value_dtype=DType.STRING)
    assert promised["Predicted"].type == TensorType(DType.STRING)  # known before fit: the values' type
    model = estimator.fit(df)  # a DataFrame, as users hold it
    scored = model.transform(df)
    schema = scored.schema
    label = schema["Label"].type
    assert label == KeyType(3, SPECIES.tolist())
    assert schema["PredictedLabel"].type == label  # ML.NET: a key of the label's type, values included
    assert schema["Score"].slot_names == tuple(SPECIES)  # ML.NET's SlotNames: the class values
    predicted = scored.column("Predicted")
    assert (predicted == df["Species"].to_numpy()).mean() > 0.9
    assert "key<uint32,3>{'setosa', 'versicolor', 'virginica'}" in str(schema)
    assert "setosa" in str(scored.preview(2))
    # Saved and loaded: the key values travel with the schema.
    buffer = io.BytesIO()
    ctx.model.save(model, scored.schema.select(["a", "b", "Species"]), buffer)
    buffer.seek(0)
    loaded, _ = ctx.model.load(buffer)
    assert loaded.transform(df).schema["PredictedLabel"].type == label
    assert loaded.transform(df).column("Predicted").tolist() == predicted.tolist()
    # Exported: the results only (no Label input), the key type in the metadata, parity with transform.
    proto = ctx.model.convert_to_onnx(model, df)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["Score", "Predicted"]  # PredictedLabel is read by a later step
    every = ctx.model.convert_to_onnx(model, df, output_columns="all")
    assert sorted(i.name for i in every.graph.input) == ["Species", "a", "b"]
    columns = json.loads(next(p.value for p in every.metadata_props if p.key == COLUMNS_METADATA_KEY))
    key_json = next(c for c in columns if c["name"] == "PredictedLabel")["type"]
    assert column_type_from_json(key_json) == label
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {n: df[n].to_numpy().reshape(-1, 1) for n in ("a", "b")}
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    assert got["Predicted"].reshape(-1).tolist() == predicted.tolist()
    np.testing.assert_allclose(got["Score"], scored.column("Score"), rtol=1e-6, atol=1e-7)
    # The exported model applied again gives the same columns, key type included.
    reapplied = ctx.transforms.apply_onnx_model(model_bytes=every.SerializeToString()).fit(df).transform(df)
    assert reapplied.schema["PredictedLabel"].type == label


def test_map_key_to_value_needs_values_only_when_the_key_has_none() -> None:
    ctx = op.MLContext()
    data = ctx.data.load_from_dict({"k": np.array([1, 2, 0, 9], np.uint32), "t": np.array(["x", "y", "x", "z"])})
    hashed = ctx.transforms.conversion.hash("h", "t", number_of_bits=2).transform(data)
    with pytest.raises(ColumnTypeError, match=r"'h' is key<uint32,4>, a key column without key values"):
        ctx.transforms.conversion.map_key_to_value("v", "h").transform(hashed)
    given = ctx.transforms.conversion.map_key_to_value("v", "h", key_values=["a", "b", "c", "d"]).transform(hashed)
    assert given.schema["v"].type == TensorType(DType.STRING)
    with pytest.raises(ColumnTypeError, match="is uint32; expected a key column"):
        ctx.transforms.conversion.map_key_to_value("v", "k").transform(data)


def test_binary_and_regression_trainers_take_integer_features_at_fit_and_after() -> None:
    ctx = op.MLContext(seed=0)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 10, size=(200, 3))
    train = {"x": x, "Label": x.sum(axis=1) > 13}
    for trainer in (
        ctx.binary_classification.trainers.lbfgs_logistic_regression(feature_column_name="x"),
        ctx.binary_classification.trainers.light_gbm(feature_column_name="x", number_of_iterations=5),
    ):
        model = trainer.fit(train)
        as_float = model.transform({"x": x.astype(np.float32)}).column("Score")
        np.testing.assert_allclose(model.transform({"x": x}).column("Score"), as_float, rtol=1e-6)
        proto = ctx.model.convert_to_onnx(model, {"x": x})
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(["Score"], {"x": x})[0].reshape(-1), as_float, rtol=1e-6)


def test_data_in_as_users_hold_it() -> None:
    ctx = op.MLContext(seed=0)
    df = _flowers(30)
    table = pa.Table.from_pandas(df, preserve_index=False)
    arrays = {n: df[n].to_numpy() for n in df.columns}
    model = _pipeline(ctx).fit(ctx.data.load_from_pandas(df))
    expected = model.transform(df).column("Predicted").tolist()
    for data in (
        df,
        table,
        table.to_batches()[0],
        pa.RecordBatchReader.from_batches(table.schema, table.to_batches()),
        arrays,
    ):
        assert model.transform(data).column("Predicted").tolist() == expected
    metrics = ctx.multiclass_classification.evaluate(model.transform(table))
    assert metrics.micro_accuracy > 0.9
    split = ctx.data.train_test_split(df, test_fraction=0.3)
    assert split.train_set.count_rows() + split.test_set.count_rows() == 30
    assert len(ctx.multiclass_classification.cross_validate(df, _pipeline(ctx), number_of_folds=2)) == 2
    with pytest.raises(
        InvalidArgumentError, match=r"\.transform: expected a DataView, a pandas DataFrame, .* got list"
    ):
        model.transform([1, 2, 3])
    with pytest.raises(ShapeError, match="column 'b' has 2 rows, but 'a' has 3"):
        ctx.data.load_from_dict({"a": np.zeros(3), "b": np.zeros(2)})
    view = ctx.data.load_from_dict({"v": np.zeros((4, 2, 3), np.float32), "s": ["a", "b", "c", "d"]})
    assert view.schema == Schema(
        [Column("v", TensorType(DType.FLOAT32, (2, 3))), Column("s", TensorType(DType.STRING))]
    )


def test_prediction_engine_scores_a_dataframe() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Flower:
        a: float
        b: float

    @dataclasses.dataclass
    class Prediction:
        PredictedLabel: str

    ctx = op.MLContext(seed=0)
    df = _flowers(30)
    # A raw label needs no key steps (the DESIGN rule): PredictedLabel has the label's own values.
    pipeline = ctx.transforms.concatenate("Features", "a", "b").append(
        ctx.multiclass_classification.trainers.lbfgs_maximum_entropy(label_column_name="Species")
    )
    model = pipeline.fit(df)
    engine = ctx.model.create_prediction_engine(model, Flower, Prediction)
    from_frame = [p.PredictedLabel for p in engine.predict_batch(df[["a", "b"]].astype(np.float32))]
    from_rows = [
        p.PredictedLabel
        for p in engine.predict_batch([Flower(float(a), float(b)) for a, b in zip(df.a, df.b, strict=True)])
    ]
    assert from_frame == from_rows == model.transform(df).column("PredictedLabel").tolist()


@pytest.mark.parametrize(
    "trainer",
    [
        "lbfgs_logistic_regression",
        "sdca_logistic_regression",
        "averaged_perceptron",
        "light_gbm",
        "fast_tree",
    ],
)
def test_binary_trainers_read_a_key_label_as_its_values(trainer: str) -> None:
    ctx = op.MLContext(seed=0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    data = {"Features": x, "Raw": x[:, 0] + x[:, 1] > 0}
    build = getattr(ctx.binary_classification.trainers, trainer)
    keyed = ctx.transforms.conversion.map_value_to_key("Label", "Raw").append(build())
    plain = ctx.transforms.copy_columns("Label", "Raw").append(build())
    got = keyed.fit(data).transform(data).column("Score")
    np.testing.assert_array_equal(got, plain.fit(data).transform(data).column("Score"))


def test_regression_reads_a_key_label_as_its_values_and_refuses_text_keys() -> None:
    ctx = op.MLContext(seed=0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    y = np.round(x[:, 0] * 2).astype(np.float32)
    data = {"Features": x, "Raw": y, "Text": np.array(["a", "b"] * 30)}
    keyed = ctx.transforms.conversion.map_value_to_key("Label", "Raw").append(ctx.regression.trainers.ols())
    plain = ctx.transforms.copy_columns("Label", "Raw").append(ctx.regression.trainers.ols())
    np.testing.assert_allclose(
        keyed.fit(data).transform(data).column("Score"), plain.fit(data).transform(data).column("Score"), rtol=1e-6
    )
    text_key = ctx.transforms.conversion.map_value_to_key("Label", "Text").append(ctx.regression.trainers.ols())
    with pytest.raises(ColumnTypeError, match=r"label column 'Label' is key<uint32,\?>\{string values\}; a numeric"):
        text_key.fit(data)


def test_inspect_shows_the_key_columns_of_an_export_and_of_a_saved_pipeline(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from onnxpipe.cli import main

    ctx = op.MLContext()
    df = pd.DataFrame({"s": ["x", "y", "z\x1b[31m"] * 3})
    model = ctx.transforms.conversion.map_value_to_key("k", "s").fit(df)
    ctx.model.convert_to_onnx(model, df, tmp_path / "k.onnx")
    ctx.model.save(model, ctx.data.load_from_pandas(df).schema, tmp_path / "k.zip")
    for name in ("k.onnx", "k.zip"):
        result = CliRunner().invoke(main, ["inspect", str(tmp_path / name)], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "key<uint32,3>{'x', 'y', 'z\\x1b[31m'}" in result.output  # escaped, never a raw escape sequence
        assert "\x1b" not in result.output
