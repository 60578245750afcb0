"""Sparse vector columns (ML.NET's VBuffer, scipy's CSR): schema, Arrow storage, DataView access,
steps and trainers that take them as they are, densification at the ONNX boundary."""

from __future__ import annotations

import io
import json

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest
from scipy import sparse

import onnxpipe as op
from onnxpipe._limits import MAX_DENSIFIED_VALUES
from onnxpipe.errors import SchemaError, ShapeError
from onnxpipe.schema import DType, SparseVectorType, TensorType, column_type_from_json, column_type_to_json
from onnxpipe.testing import check_onnx_parity

ctx = op.MLContext(seed=0)


def _bags(rows: int = 200, slots: int = 3000, seed: int = 0) -> tuple[sparse.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = sparse.random(rows, slots, density=0.02, format="csr", dtype=np.float32, random_state=rng)
    matrix.data[:] = np.rint(matrix.data * 3) + 1
    signal = np.asarray(matrix[:, :1500].sum(axis=1)).reshape(-1) - np.asarray(matrix[:, 1500:].sum(axis=1)).reshape(-1)
    return matrix, signal > 0


def test_sparse_vector_type() -> None:
    ct = SparseVectorType(DType.FLOAT32, 65536)
    assert str(ct) == "float32[65536] sparse" and ct.shape == (65536,) and ct.vector_size == 65536
    assert ct != TensorType(DType.FLOAT32, (65536,)) and isinstance(ct, TensorType)
    assert column_type_from_json(json.loads(json.dumps(column_type_to_json(ct)))) == ct
    with pytest.raises(SchemaError, match="a sparse vector holds numbers or bools, not string"):
        SparseVectorType(DType.STRING, 3)
    with pytest.raises(SchemaError, match="the size must be a number of slots"):
        SparseVectorType(DType.FLOAT32, -1)


def test_stored_without_densifying_and_read_back_as_csr(tmp_path: object) -> None:
    matrix, label = _bags()
    view = ctx.data.load_from_dict({"Features": matrix, "Label": label})
    assert view.schema["Features"].type == SparseVectorType(DType.FLOAT32, 3000)
    table = view.to_arrow()
    stored = table.column("Features").combine_chunks()
    assert len(stored.field("values").values) == matrix.nnz  # only the non-zero values are stored
    back = view.column("Features")
    assert sparse.issparse(back) and back.shape == matrix.shape and (back != matrix).nnz == 0
    # Parquet keeps the type (field metadata), so the column comes back sparse.
    path = str(tmp_path) + "/bags.parquet"  # type: ignore[operator]
    pq.write_table(table, path)
    again = ctx.data.load_from_parquet(path)
    assert again.schema == view.schema and (again.column("Features") != matrix).nnz == 0
    text = str(view.preview(2))
    assert "of 3000)" in text and "float32[3000] sparse" in text


def test_concatenate_with_dense_is_sparse_and_one_hot_hash_is_sparse() -> None:
    matrix, label = _bags(rows=50)
    dense = np.arange(100, dtype=np.float32).reshape(50, 2)
    data = ctx.data.load_from_dict({"Bag": matrix, "Num": dense, "Label": label})
    joined = ctx.transforms.concatenate("Features", "Num", "Bag").transform(data)
    assert joined.schema["Features"].type == SparseVectorType(DType.FLOAT32, 3002)
    assert joined.schema["Features"].slot_names is None  # the bag names no slots
    expected = sparse.hstack([sparse.csr_matrix(dense), matrix]).toarray()
    np.testing.assert_array_equal(joined.column("Features").toarray(), expected)
    texts = ctx.data.load_from_dict({"t": np.array(["a", "b", "c", "a"])})
    hashed = ctx.transforms.categorical.one_hot_hash_encoding("h", "t").transform(texts)
    assert hashed.schema["h"].type == SparseVectorType(DType.FLOAT32, 2**16)
    assert hashed.column("h").nnz == 4


@pytest.mark.parametrize(
    "trainer",
    ["lbfgs_logistic_regression", "sdca_logistic_regression", "averaged_perceptron", "linear_svm", "light_gbm"],
)
def test_binary_trainers_on_sparse_features_equal_dense_and_export(trainer: str) -> None:
    matrix, label = _bags()
    on_sparse = ctx.data.load_from_dict({"Features": matrix, "Label": label})
    on_dense = ctx.data.load_from_dict({"Features": matrix.toarray(), "Label": label})
    build = getattr(ctx.binary_classification.trainers, trainer)
    model = build().fit(on_sparse)
    scored = model.transform(on_sparse)
    dense_scored = build().fit(on_dense).transform(on_dense)
    np.testing.assert_allclose(scored.column("Score"), dense_scored.column("Score"), rtol=1e-5, atol=1e-5)
    if trainer != "light_gbm":  # 200 rows x 3,000 rare slots: too few rows per leaf for trees
        assert ctx.binary_classification.evaluate(scored).accuracy > 0.8
    check_onnx_parity(model, on_sparse, scored, True)  # the ONNX input is the dense [N, 3000] tensor
    proto = ctx.model.convert_to_onnx(model, on_sparse)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1] == 3000


@pytest.mark.parametrize("trainer", ["lbfgs_maximum_entropy", "naive_bayes", "sdca_maximum_entropy", "light_gbm"])
def test_multiclass_trainers_on_sparse_features(trainer: str) -> None:
    matrix, label = _bags()
    classes = label.astype(np.int64) + (np.asarray(matrix[:, :10].sum(axis=1)).reshape(-1) > 0)
    data = ctx.data.load_from_dict({"Features": matrix, "Label": classes})
    dense = ctx.data.load_from_dict({"Features": matrix.toarray(), "Label": classes})
    build = getattr(ctx.multiclass_classification.trainers, trainer)
    model = build().fit(data)
    scored = model.transform(data)
    np.testing.assert_allclose(scored.column("Score"), build().fit(dense).transform(dense).column("Score"), atol=1e-5)
    check_onnx_parity(model, data, scored, True)


def test_a_dense_only_step_densifies_within_a_limit_and_says_so_beyond() -> None:
    matrix, _ = _bags(rows=20)
    data = ctx.data.load_from_dict({"Features": matrix})
    scaled = ctx.transforms.normalize_lp_norm("Features").transform(data)
    expected = matrix.toarray() / np.linalg.norm(matrix.toarray(), axis=1, keepdims=True).clip(1e-30)
    got = scaled.column("Features")
    got = got.toarray() if sparse.issparse(got) else np.asarray(got)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    slots = MAX_DENSIFIED_VALUES // 4 + 1
    huge = sparse.csr_matrix((np.ones(5, np.float32), (np.arange(5), np.arange(5))), shape=(5, slots))
    big = ctx.data.load_from_dict({"Features": huge})
    with pytest.raises(ShapeError, match=r"normalize_lp_norm\(Features\): column 'Features' is a sparse vector of"):
        ctx.transforms.normalize_lp_norm("Features").transform(big).column("Features")


def test_saved_model_with_a_sparse_input_round_trips() -> None:
    matrix, label = _bags()
    data = ctx.data.load_from_dict({"Features": matrix, "Label": label})
    model = ctx.binary_classification.trainers.lbfgs_logistic_regression().fit(data)
    buffer = io.BytesIO()
    ctx.model.save(model, data.schema, buffer)
    buffer.seek(0)
    loaded, schema = ctx.model.load(buffer)
    assert schema["Features"].type == SparseVectorType(DType.FLOAT32, 3000)
    np.testing.assert_array_equal(loaded.transform(data).column("Score"), model.transform(data).column("Score"))


@pytest.mark.parametrize(
    "trainer", ["sdca_logistic_regression", "averaged_perceptron", "lbfgs_logistic_regression", "linear_svm"]
)
def test_linear_trainers_take_sparse_features_too_large_to_densify(trainer: str) -> None:
    rows, slots = 2200, 1 << 15  # 72M values dense: past the densify limit, 11k stored
    rng = np.random.default_rng(5)
    columns = rng.integers(0, slots, size=(rows, 5))
    matrix = sparse.csr_matrix(
        (np.ones(rows * 5, np.float32), (np.repeat(np.arange(rows), 5), columns.reshape(-1))), shape=(rows, slots)
    )
    label = (columns < slots // 2).sum(axis=1) >= 3
    data = ctx.data.load_from_dict({"Features": matrix, "Label": label})
    model = getattr(ctx.binary_classification.trainers, trainer)().fit(data)
    assert ctx.binary_classification.evaluate(model.transform(data)).area_under_roc_curve > 0.75


def test_kmeans_on_sparse_features_equals_dense() -> None:
    matrix = sparse.random(300, 50, density=0.2, format="csr", dtype=np.float32, random_state=0)
    on_sparse = ctx.data.load_from_dict({"Features": matrix})
    on_dense = ctx.data.load_from_dict({"Features": matrix.toarray()})
    trainer = ctx.clustering.trainers.kmeans(number_of_clusters=4)
    model = trainer.fit(on_sparse)
    np.testing.assert_allclose(model.centroids, trainer.fit(on_dense).centroids, atol=1e-12)
    scored = model.transform(on_sparse)
    np.testing.assert_allclose(scored.column("Score"), model.transform(on_dense).column("Score"), atol=1e-5)
    check_onnx_parity(model, on_sparse, scored, True)
