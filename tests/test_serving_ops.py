"""``onnxpipe serve`` operations and the routes for people: Prometheus ``/metrics``, access logs,
bearer-token auth, the queue bound (503 + Retry-After) and timeout (504), the typed JSON
``predict`` route, ``/openapi.json``, ``/docs`` and the page at ``/`` — on the real server, over
plain HTTP on an ephemeral loopback port."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("orjson", reason="the serve extra (orjson) is not installed")
pytest.importorskip("prometheus_client", reason="the serve extra (prometheus-client) is not installed")

from prometheus_client.parser import text_string_to_metric_families

from onnxpipe import Transformer
from onnxpipe.serving import ModelRepository, ServerSettings
from tests import models
from tests.test_serving import _Server, _training_data, ctx, trained  # noqa: F401 - the shared trained pipeline fixture

CRAFTED = '<script>alert("x")</script>'
TOKEN = "s3cret-token"


def _crafted_model() -> bytes:
    """A bare model whose input column is named like markup: ``CRAFTED float[N] -> y = -x``."""
    graph = helper.make_graph(
        [helper.make_node("Neg", [CRAFTED], ["y"])],
        "crafted",
        [helper.make_tensor_value_info(CRAFTED, TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
    )
    return models.serialized(graph)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, trained: Transformer) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("repo")
    for version in ("1", "2"):
        (root / "income" / version).mkdir(parents=True)
        ctx.model.save(trained, ctx.data.load_from_dict(_training_data()), root / "income" / version / "model.zip")
    (root / "half" / "1").mkdir(parents=True)
    (root / "half" / "1" / "model.onnx").write_bytes(models.float16_scale())
    (root / "crafted" / "1").mkdir(parents=True)
    (root / "crafted" / "1" / "model.onnx").write_bytes(_crafted_model())
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[_Server]:
    settings = ServerSettings(max_batch_size=32, max_batch_delay_ms=2.0, max_body_bytes=1 << 20, max_rows=1000)
    with _Server(ModelRepository.open(repository), settings) as s:
        yield s


def _income_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, float]]]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, n).astype(np.float32)
    hours = rng.uniform(10, 60, n).astype(np.float32)
    return age, hours, [{"age": float(a), "hours": float(h)} for a, h in zip(age, hours, strict=True)]


# --------------------------------------------------------------------------------------------
# predict


@pytest.mark.parametrize("path", ["/v2/models/income/predict", "/v2/models/income/versions/1/predict"])
def test_predict_rows_equal_transform(server: _Server, trained: Transformer, path: str) -> None:  # noqa: F811
    age, hours, rows = _income_rows(9, seed=3)
    status, headers, body = server.request("POST", path, {"rows": rows})
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["model_name"] == "income"
    assert doc["model_version"] == ("1" if "/versions/" in path else "2")
    expected = trained.transform(ctx.data.load_from_dict({"age": age, "hours": hours})).columns(
        ["Score", "Probability", "PredictedLabel"]
    )
    assert len(doc["rows"]) == 9
    assert all(set(r) == {"Score", "Probability", "PredictedLabel"} for r in doc["rows"])
    for name in ("Score", "Probability"):
        got = np.array([r[name] for r in doc["rows"]], dtype=np.float32)
        np.testing.assert_array_equal(got, expected[name])
    assert [r["PredictedLabel"] for r in doc["rows"]] == [bool(v) for v in expected["PredictedLabel"]]


def test_predict_vectors_are_lists(server: _Server) -> None:
    status, _, body = server.request("POST", "/v2/models/half/predict", {"rows": [{"h": [1, 2, 3]}, {"h": [4, 5, 6]}]})
    assert status == 200, body
    assert json.loads(body)["rows"] == [{"y": [0.5, 1.0, 1.5]}, {"y": [2.0, 2.5, 3.0]}]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (None, "rows"),
        ([], "rows"),
        ([{"age": 30.0}], "'hours'"),
        ([{"age": 30.0, "hours": 40.0, "zip": 1}], "'zip'"),
        ([{"age": 30.0, "hours": 40.0}, {"age": 31.0}], "row 1"),
        ([{"age": "old", "hours": 40.0}], "'age'"),
        ([1, 2], "object"),
    ],
)
def test_predict_bad_rows_are_400(server: _Server, rows: Any, message: str) -> None:
    status, _, body = server.request("POST", "/v2/models/income/predict", {"rows": rows})
    assert status == 400, body
    assert message in json.loads(body)["error"]


def test_predict_unknown_model_and_bad_json(server: _Server) -> None:
    status, _, body = server.request("POST", "/v2/models/nope/predict", {"rows": [{}]})
    assert status == 404 and "nope" in json.loads(body)["error"]
    status, _, body = server.request("POST", "/v2/models/income/predict", b"{not json")
    assert status == 400 and "JSON" in json.loads(body)["error"]


# --------------------------------------------------------------------------------------------
# OpenAPI, /docs and /


def test_openapi_document(server: _Server) -> None:
    status, headers, body = server.request("GET", "/openapi.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in (
        "/v2/models/income/predict",
        "/v2/models/income/versions/1/predict",
        "/v2/models/income/versions/2/predict",
        "/v2/models/half/predict",
    ):
        assert "post" in paths[path], path
    schemas = doc["components"]["schemas"]
    row = schemas["income.v2.request"]["properties"]["rows"]["items"]
    assert row["required"] == ["age", "hours"]
    assert row["properties"]["age"]["type"] == "number"
    out = schemas["income.v2.response"]["properties"]["rows"]["items"]["properties"]
    assert out["PredictedLabel"]["type"] == "boolean"
    h = schemas["half.v1.request"]["properties"]["rows"]["items"]["properties"]["h"]
    assert (h["type"], h["minItems"], h["maxItems"], h["items"]["type"]) == ("array", 3, 3, "number")
    for ref in ("#/components/schemas/income.v2.request",):
        assert paths["/v2/models/income/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": ref
        }


def _assert_self_contained(headers: dict[str, str], page: str) -> None:
    assert headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    assert CRAFTED not in page and 'alert("x")' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_index_lists_models_and_escapes_names(server: _Server) -> None:
    status, headers, body = server.request("GET", "/")
    assert status == 200
    page = body.decode()
    _assert_self_contained(headers, page)
    for name in ("income", "half", "crafted", "age", "hours", "PredictedLabel", "Score"):
        assert f"<code>{name}</code>" in page, name
    assert 'data-url="/v2/models/income/versions/2/predict"' in page
    assert page.count('<form class="try"') == 4  # income 1 and 2, half, crafted


def test_docs_render_openapi_as_tables(server: _Server) -> None:
    status, headers, body = server.request("GET", "/docs")
    assert status == 200
    page = body.decode()
    _assert_self_contained(headers, page)
    assert "POST /v2/models/income/predict" in page
    assert "array [3] of number" in page  # half's h


def test_crafted_column_name_round_trips(server: _Server) -> None:
    status, _, body = server.request("POST", "/v2/models/crafted/predict", {"rows": [{CRAFTED: 2.5}]})
    assert status == 200, body
    assert json.loads(body)["rows"] == [{"y": -2.5}]


# --------------------------------------------------------------------------------------------
# metrics and access logs


def _families(server: _Server) -> dict[str, Any]:
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def _value(family: Any, sample: str, **labels: str) -> float:
    return float(
        sum(
            s.value for s in family.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )
    )


def test_metrics_count_requests_errors_latency_and_batches(server: _Server) -> None:
    before = _families(server)
    _, _, rows = _income_rows(3, seed=4)
    assert server.request("POST", "/v2/models/income/predict", {"rows": rows})[0] == 200
    assert server.request("POST", "/v2/models/income/predict", {"rows": [{"age": 1.0}]})[0] == 400
    assert server.request("GET", "/v2/models/nope")[0] == 404
    after = _families(server)
    requests = after["onnxpipe_requests"]
    assert requests.type == "counter"

    def delta(name: str, sample: str, **labels: str) -> float:
        old = _value(before[name], sample, **labels) if name in before else 0.0
        return _value(after[name], sample, **labels) - old

    assert delta("onnxpipe_requests", "onnxpipe_requests_total", model="income", route="predict", status="200") == 1
    assert delta("onnxpipe_requests", "onnxpipe_requests_total", model="income", route="predict", status="400") == 1
    assert delta("onnxpipe_requests", "onnxpipe_requests_total", model="-", route="model_metadata", status="404") == 1
    assert delta("onnxpipe_errors", "onnxpipe_errors_total", model="income", reason="client_error") == 1
    latency = after["onnxpipe_request_duration_seconds"]
    assert latency.type == "histogram"
    assert delta("onnxpipe_request_duration_seconds", "onnxpipe_request_duration_seconds_count", route="predict") == 2
    assert delta("onnxpipe_batch_rows", "onnxpipe_batch_rows_count", model="income", version="2") >= 1
    assert delta("onnxpipe_batch_rows", "onnxpipe_batch_rows_sum", model="income", version="2") >= 3
    depth = after["onnxpipe_queue_depth"]
    assert depth.type == "gauge"
    assert _value(depth, "onnxpipe_queue_depth", model="income", version="2") == 0


def test_access_log_one_line_per_request(server: _Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="onnxpipe.serving.access")
    _, _, rows = _income_rows(1, seed=5)
    assert server.request("POST", "/v2/models/income/predict", {"rows": rows})[0] == 200
    deadline = time.monotonic() + 5
    while not any("/predict" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    line = next(r.getMessage() for r in caplog.records if "/predict" in r.getMessage())
    fields = dict(part.split("=", 1) for part in line.split(" "))
    assert fields["method"] == "POST"
    assert fields["path"] == "/v2/models/income/predict"
    assert fields["status"] == "200"
    assert fields["model"] == "income"
    assert float(fields["duration_ms"]) >= 0


# --------------------------------------------------------------------------------------------
# auth, queue bound, timeout


def test_bearer_token(repository: Path) -> None:
    with _Server(ModelRepository.open(repository), ServerSettings(token=TOKEN)) as s:
        assert s.request("GET", "/v2/health/live")[0] == 200  # health stays open
        assert s.request("GET", "/v2/health/ready")[0] == 200
        for path in ("/v2", "/v2/models/income", "/metrics", "/openapi.json", "/", "/docs"):
            status, headers, body = s.request("GET", path)
            assert status == 401, path
            assert headers["www-authenticate"].startswith("Bearer")
            assert "error" in json.loads(body)
            assert s.request("GET", path, headers={"Authorization": "Bearer wrong"})[0] == 401
            assert s.request("GET", path, headers={"Authorization": TOKEN})[0] == 401  # no scheme
            assert s.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200, path
        _, _, rows = _income_rows(2, seed=6)
        assert s.request("POST", "/v2/models/income/predict", {"rows": rows})[0] == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert s.request("POST", "/v2/models/income/predict", {"rows": rows}, good)[0] == 200
        metrics = s.request("GET", "/metrics", headers=good)[2].decode()
        assert 'reason="unauthorized"' in metrics


def test_queue_bound_is_503_and_timeout_is_504(repository: Path) -> None:
    repo = ModelRepository.open(repository)
    model = repo.get("income")
    gate = threading.Event()
    score = model.score

    def slow(*args: Any) -> dict[str, np.ndarray]:
        gate.wait(20)
        return score(*args)

    model.score = slow  # type: ignore[method-assign]
    settings = ServerSettings(max_queue=1, request_timeout_s=3.0, max_batch_delay_ms=1.0)
    _, _, rows = _income_rows(1, seed=7)
    try:
        with _Server(repo, settings) as s, ThreadPoolExecutor(1) as pool:
            first = pool.submit(s.request, "POST", "/v2/models/income/predict", {"rows": rows})
            deadline = time.monotonic() + 5
            queued = 'onnxpipe_queue_depth{model="income",version="2"} 1.0'
            while queued not in s.request("GET", "/metrics")[2].decode():
                assert time.monotonic() < deadline, "the first request never queued"
                time.sleep(0.02)
            status, headers, body = s.request("POST", "/v2/models/income/predict", {"rows": rows})
            assert status == 503, body
            assert headers["retry-after"] == "1"
            assert "queued" in json.loads(body)["error"]
            status, headers, body = first.result(10)
            assert status == 504, body
            assert "timeout" in json.loads(body)["error"] or "longer" in json.loads(body)["error"]
            gate.set()
            # once the model answers again, so does the server
            assert s.request("POST", "/v2/models/income/predict", {"rows": rows})[0] == 200
            metrics = s.request("GET", "/metrics")[2].decode()
            assert 'reason="overloaded"' in metrics and 'reason="timeout"' in metrics
    finally:
        gate.set()


# --------------------------------------------------------------------------------------------
# the page in a real browser (optional)


def test_page_in_headless_chromium(server: _Server, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("needs Chromium and its driver: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    by = pytest.importorskip("selenium.webdriver.common.by").By
    wait = pytest.importorskip("selenium.webdriver.support.ui").WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # no background traffic: the machine's network is closed, and the test must not wait on it
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        form = browser.find_element(by.CSS_SELECTOR, 'form[data-url="/v2/models/half/versions/1/predict"]')
        area = form.find_element(by.NAME, "rows")
        area.clear()
        area.send_keys('{"rows": [{"h": [2, 4, 6]}]}')
        form.find_element(by.CSS_SELECTOR, "button").click()
        out = form.find_element(by.TAG_NAME, "pre")
        wait(browser, 10).until(lambda _: out.text.startswith("200"))
        assert json.loads(out.text.split("\n", 1)[1])["rows"] == [{"y": [1.0, 2.0, 3.0]}]
    finally:
        browser.quit()
