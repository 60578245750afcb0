"""onnxpipe.distributed on real local clusters: Dask ``LocalCluster`` with worker processes, Ray
local with fractional CPUs, Spark ``local[2,4]`` (Java from Debian's packages). Each engine's
scoring equals single-process ``transform`` bit for bit, a custom mapping works when its module
is importable on the workers (and says so when it is not), and a worker killed mid-job is
replaced by the engine's retry without losing or duplicating rows."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onnxpipe import MLContext, Schema, Transformer
from onnxpipe.distributed import ShippedModel
from onnxpipe.errors import InvalidArgumentError, ModelLoadError
from tests import distributed_mappings as mappings

# the engines' own deprecations (raised inside their code) are theirs to fix, not failures here
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    pytest.mark.filterwarnings("ignore:The minimum number of concurrent actors:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pyspark"),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dask"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed"),
]

ROOT = Path(__file__).resolve().parent.parent
# what worker processes started from here inherit: the marker of the kill test, and this folder
# on their path so that they import tests.distributed_mappings as the user's workers import theirs
_MARKER_DIR = Path(tempfile.mkdtemp(prefix="onnxpipe-distributed-"))
MARKER = _MARKER_DIR / "killed"
os.environ[mappings.KILL_MARKER] = str(MARKER)
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
os.environ["PYSPARK_PYTHON"] = sys.executable

ROWS, PARTS = 4000, 4
OUTPUTS = ["Features", "Score", "Probability", "PredictedLabel"]
ctx = MLContext(seed=0)


def _data() -> pa.Table:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((ROWS, 4)).astype(np.float32)
    return pa.table(
        {
            "id": np.arange(ROWS, dtype=np.int64),
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "d": x[:, 3],
            "Label": x[:, 0] + 0.5 * x[:, 1] - 0.25 * x[:, 2] > 0,
        }
    )


@dataclasses.dataclass(frozen=True)
class Case:
    folder: Path
    parts: Path  # the Parquet parts
    model: Transformer
    schema: Schema
    path: Path  # the saved model
    expected: pa.Table  # single-process transform


def _fit(steps: list[Any], data: pa.Table) -> Transformer:
    pipeline = steps[0]
    for s in steps[1:]:
        pipeline = pipeline.append(s)
    return pipeline.fit(data)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="onnxpipe-distributed-data-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(_MARKER_DIR, ignore_errors=True)


def _case(folder: Path, name: str, steps: list[Any]) -> Case:
    table = _data()
    parts = folder / name
    parts.mkdir()
    for k in range(PARTS):
        size = ROWS // PARTS
        pq.write_table(table.slice(k * size, size), parts / f"part-{k}.parquet")
    model = _fit(steps, table)
    view = ctx.data.load_from_arrow(table)
    path = folder / f"{name}.zip"
    ctx.model.save(model, view.schema, path)
    return Case(folder, parts, model, view.schema, path, model.transform(view).to_arrow())


def _linear() -> list[Any]:
    return [
        ctx.transforms.concatenate("Features", "a", "b", "c", "d"),
        ctx.binary_classification.trainers.sdca_logistic_regression(),
    ]


@pytest.fixture(scope="module")
def plain(folder: Path) -> Case:
    return _case(folder, "plain", _linear())


@pytest.fixture(scope="module")
def mapped(folder: Path) -> Case:
    mapping = ctx.transforms.custom_mapping(mappings.double_a, mappings.Row, mappings.Doubled, "tests-double-a")
    return _case(folder, "mapped", [mapping, *_linear()])


@pytest.fixture(scope="module")
def killing(folder: Path) -> Case:
    MARKER.touch()  # nobody dies in this process: the kill tests remove it before handing out work
    mapping = ctx.transforms.custom_mapping(
        mappings.double_a_but_kill_once, mappings.Row, mappings.Doubled, "tests-double-a-kill-once"
    )
    return _case(folder, "killing", [mapping, *_linear()])


def _assert_same(got: pa.Table, case: Case, columns: list[str] = OUTPUTS) -> None:
    """Every row once, in order, with ``transform``'s values bit for bit."""
    want = case.expected
    np.testing.assert_array_equal(np.asarray(got.column("id")), np.arange(ROWS))
    for name in columns:
        g, w = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_list(g.type) or pa.types.is_fixed_size_list(g.type):
            g, w = g.flatten(), w.flatten()
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by("id")


# --------------------------------------------------------------------------------------------
# shipping


def test_a_function_in_main_cannot_be_shipped(plain: Case) -> None:
    def local(row: mappings.Row) -> mappings.Doubled:
        return mappings.Doubled(row.a)

    local.__module__ = "__main__"
    model = ctx.transforms.custom_mapping(local, mappings.Row, mappings.Doubled).fit(plain.expected)
    with pytest.raises(InvalidArgumentError, match=r"defined in __main__, which workers cannot import"):
        ShippedModel.of(model, input_schema=plain.schema)


def test_a_transformer_needs_its_input_schema(plain: Case) -> None:
    with pytest.raises(InvalidArgumentError, match=r"needs its input schema"):
        ShippedModel.of(plain.model)
    with pytest.raises(InvalidArgumentError, match=r"expected a saved pipeline \(\.zip\) or an ONNX model"):
        ShippedModel.of(plain.folder / "model.pkl")


def test_shipped_models_score_like_transform_in_this_process(plain: Case) -> None:
    for source in (plain.path, plain.path.read_bytes()):
        shipped = ShippedModel.of(source, intra_op_num_threads=1)
        _assert_same(shipped.score(_data()), plain)
    by_object = ShippedModel.of(plain.model, input_schema=plain.schema)
    _assert_same(by_object.score(_data()), plain)


# --------------------------------------------------------------------------------------------
# Dask


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    pytest.importorskip("dask.dataframe", reason="needs the dask extra: pip install 'onnxpipe[dask]'")
    distributed = pytest.importorskip("distributed", reason="needs the dask extra: pip install 'onnxpipe[dask]'")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _dask_frame(case: Case) -> Any:
    import dask.dataframe as dd

    return dd.read_parquet(str(case.parts / "*.parquet"), dtype_backend="pyarrow")


def test_dask_scores_like_transform(dask_client: Any, plain: Case) -> None:
    import pandas as pd

    from onnxpipe.distributed import dask as op_dask

    scored = op_dask.score(_dask_frame(plain), plain.path)
    assert isinstance(scored.dtypes["Features"], pd.ArrowDtype)  # the meta: vectors stay Arrow lists
    assert pa.types.is_fixed_size_list(scored.dtypes["Features"].pyarrow_dtype)
    frame = scored.compute()
    assert list(frame.columns) == plain.expected.column_names
    _assert_same(pa.Table.from_pandas(frame, preserve_index=False), plain)
    results = op_dask.score(_dask_frame(plain), plain.model, input_schema=plain.schema, columns=["id", "Score"])
    _assert_same(pa.Table.from_pandas(results.compute(), preserve_index=False), plain, ["Score"])


def test_dask_runs_a_custom_mapping_importable_on_the_workers(dask_client: Any, mapped: Case) -> None:
    from onnxpipe.distributed import dask as op_dask

    frame = op_dask.score(_dask_frame(mapped), mapped.model, input_schema=mapped.schema).compute()
    _assert_same(pa.Table.from_pandas(frame, preserve_index=False), mapped, ["a2", *OUTPUTS])


def test_dask_says_when_the_workers_cannot_import_the_mapping(dask_client: Any, mapped: Case) -> None:
    from onnxpipe.distributed import dask as op_dask

    shipped = dataclasses.replace(ShippedModel.of(mapped.path), imports=("no_such_module_of_onnxpipe",))
    with pytest.raises(ModelLoadError, match=r"this worker cannot import 'no_such_module_of_onnxpipe'"):
        op_dask.score(_dask_frame(mapped), shipped).compute()


def test_dask_reruns_the_part_of_a_killed_worker(dask_client: Any, killing: Case) -> None:
    from onnxpipe.distributed import dask as op_dask

    MARKER.unlink(missing_ok=True)
    frame = op_dask.score(_dask_frame(killing), killing.path).compute()
    assert MARKER.exists()  # a worker did die
    _assert_same(pa.Table.from_pandas(frame, preserve_index=False), killing, ["a2", *OUTPUTS])


# --------------------------------------------------------------------------------------------
# Ray


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray.data", reason="needs the ray extra: pip install 'onnxpipe[ray]'")
    import ray as ray_core

    ray_core.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    try:
        yield ray
    finally:
        ray_core.shutdown()


def _ray_table(dataset: Any) -> pa.Table:
    import ray

    return pa.concat_tables(ray.get(dataset.to_arrow_refs()))


def test_ray_scores_like_transform(ray_session: Any, plain: Case) -> None:
    from onnxpipe.distributed.ray import Scorer, score

    dataset = ray_session.read_parquet(str(plain.parts))
    _assert_same(_ray_table(score(dataset, plain.path, concurrency=2, num_cpus=0.5)), plain)
    by_hand = dataset.map_batches(
        Scorer,
        fn_constructor_kwargs={"model": plain.path, "columns": ["id", "Score"]},
        batch_format="pyarrow",
        concurrency=1,
        num_cpus=0.5,
    )
    _assert_same(_ray_table(by_hand), plain, ["Score"])


def test_ray_reruns_the_part_of_a_killed_actor(ray_session: Any, killing: Case) -> None:
    from onnxpipe.distributed.ray import score

    MARKER.unlink(missing_ok=True)
    dataset = ray_session.read_parquet(str(killing.parts))
    table = _ray_table(score(dataset, killing.path, concurrency=2, num_cpus=0.5, batch_size=500))
    assert MARKER.exists()
    _assert_same(_sorted(table), killing, ["a2", *OUTPUTS])


# --------------------------------------------------------------------------------------------
# Spark


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="needs the spark extra: pip install 'onnxpipe[spark]'")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java: apt-get install default-jre-headless")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2,4]")  # 2 cores; a failed task is tried up to 4 times
        .appName("onnxpipe-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def test_spark_scores_like_transform(spark: Any, plain: Case) -> None:
    from onnxpipe.distributed import spark as op_spark

    scored = op_spark.score(spark.read.parquet(str(plain.parts)), plain.path)
    assert scored.schema["Features"].dataType.simpleString() == "array<float>"
    _assert_same(_sorted(scored.toArrow()), plain)


def test_spark_reruns_the_part_of_a_killed_python_worker(spark: Any, killing: Case) -> None:
    from onnxpipe.distributed import spark as op_spark

    MARKER.unlink(missing_ok=True)
    scored = op_spark.score(spark.read.parquet(str(killing.parts)), killing.model, input_schema=killing.schema)
    table = scored.toArrow()
    assert MARKER.exists()
    _assert_same(_sorted(table), killing, ["a2", *OUTPUTS])


# --------------------------------------------------------------------------------------------
# onnxpipe predict --engine


def _cli(*args: str) -> Any:
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "onnxpipe.cli", "predict", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ONNXPIPE_PROGRESS": "0"},
    )


@pytest.mark.parametrize("engine", ["dask", "ray", "spark"])
def test_cli_scores_a_parquet_data_set_on_each_engine(plain: Case, tmp_path: Path, engine: str) -> None:
    pytest.importorskip({"dask": "distributed", "ray": "ray", "spark": "pyspark"}[engine])
    if engine == "spark" and shutil.which("java") is None:
        pytest.skip("Spark needs Java: apt-get install default-jre-headless")
    out = tmp_path / "out"
    done = _cli(
        str(plain.path), "-i", str(plain.parts / "*.parquet"), "-o", str(out), "--engine", engine, "--workers", "2"
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {ROWS} rows in {PARTS} parts to {out} ({engine})" in done.stderr
    parts = sorted(out.iterdir())
    assert [p.name for p in parts] == [f"part-{k:05d}.parquet" for k in range(PARTS)]  # nothing else left
    for k, part in enumerate(parts):  # each part is what single-process predict writes for its file
        single = tmp_path / f"single-{k}.parquet"
        alone = _cli(str(plain.path), "-i", str(plain.parts / f"part-{k}.parquet"), "-o", str(single))
        assert alone.returncode == 0, alone.stderr
        assert pq.read_table(part).equals(pq.read_table(single), check_metadata=True)  # types kept alike


def test_cli_engine_arguments_are_checked(plain: Case, tmp_path: Path) -> None:
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"not used")
    done = _cli(str(onnx_file), "-i", str(plain.parts), "-o", str(tmp_path / "o"), "--engine", "dask")
    assert done.returncode == 2 and "--engine scores saved pipelines (.zip)" in done.stderr
    done = _cli(
        str(plain.path), "-i", str(tmp_path / "nothing-*.parquet"), "-o", str(tmp_path / "o"), "--engine", "dask"
    )
    assert done.returncode == 2 and "no Parquet files in" in done.stderr
    done = _cli(str(plain.path), "-i", str(plain.parts / "part-0.parquet"), "-o", str(tmp_path), "--workers", "2")
    assert done.returncode == 2 and "--workers needs --engine" in done.stderr


# --------------------------------------------------------------------------------------------
# LightGBM trains on Dask


def test_light_gbm_trains_on_a_dask_frame(dask_client: Any, tmp_path: Path) -> None:
    import dask.dataframe as dd
    import onnxruntime as ort
    import pandas as pd

    pytest.importorskip("lightgbm")
    from onnxpipe.distributed import dask as op_dask
    from onnxpipe.trainers.trees import LightGbmModel

    rng = np.random.default_rng(3)
    n = 30_000
    x = rng.standard_normal((n, 6)).astype(np.float32)
    logit = x[:, 0] - 2 * x[:, 1] * x[:, 2] + np.sin(3 * x[:, 3]) + 0.5 * rng.standard_normal(n)
    table = pa.table({**{f"x{i}": x[:, i] for i in range(6)}, "Label": logit > 0})
    train, test = table.slice(0, 20_000), ctx.data.load_from_arrow(table.slice(20_000))
    featurize = ctx.transforms.concatenate("Features", *[f"x{i}" for i in range(6)])
    trainer = ctx.binary_classification.trainers.light_gbm(number_of_iterations=50)

    def auc(model: Transformer) -> float:
        from sklearn.metrics import roc_auc_score

        return float(
            roc_auc_score(np.asarray(table.slice(20_000).column("Label")), model.transform(test).column("Probability"))
        )

    single = featurize.append(trainer).fit(train)
    featurizer = featurize.fit(train)
    frame = dd.from_pandas(train.to_pandas(types_mapper=pd.ArrowDtype), npartitions=4)
    features = op_dask.score(frame, featurizer, input_schema=ctx.data.load_from_arrow(train).schema)
    trained = trainer.fit(features)  # lightgbm.dask on the cluster's two workers
    assert isinstance(trained, LightGbmModel)
    on_dask = featurizer.append(trained)
    assert abs(auc(on_dask) - auc(single)) < 0.005
    path = tmp_path / "model.zip"  # saved and exported like any other fitted pipeline
    ctx.model.save(on_dask, ctx.data.load_from_arrow(train).schema, path)
    loaded, _ = ctx.model.load(path)
    np.testing.assert_array_equal(loaded.transform(test).column("Score"), on_dask.transform(test).column("Score"))
    onnx_model = ctx.model.convert_to_onnx(on_dask, test)
    feeds = {f"x{i}": x[20_000:, i : i + 1] for i in range(6)}
    scores = ort.InferenceSession(onnx_model.SerializeToString()).run(["Score"], feeds)[0]
    np.testing.assert_allclose(scores.reshape(-1), on_dask.transform(test).column("Score"), rtol=1e-5, atol=1e-5)

    with pytest.raises(InvalidArgumentError, match=r"covers binary classification and regression"):
        ctx.multiclass_classification.trainers.light_gbm().fit(features)
