"""The Starlette application: the Open Inference Protocol (KServe V2) REST routes, the typed JSON
``predict`` route, its OpenAPI document and pages, and operations (``/metrics``, access logs,
timeouts, queue bounds, bearer-token authentication)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import io
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, Router

from onnxpipe import __version__
from onnxpipe.errors import InvalidArgumentError, OnnxPipeError
from onnxpipe.serving._batching import Batcher, OverloadedError
from onnxpipe.serving._metrics import ACCESS_LOG, Metrics, access_line
from onnxpipe.serving._models import ModelRepository, ServedModel
from onnxpipe.serving._page import (
    content_security_policy,
    openapi,
    render_docs,
    render_index,
    rows_request,
    rows_response,
)
from onnxpipe.serving._protocol import HEADER_LENGTH, ProtocolError, _json, encode_response, parse_request

__all__ = ["ServerSettings", "create_app"]

_log = logging.getLogger("onnxpipe.serving")


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    max_batch_size: int = 64
    max_batch_delay_ms: float = 0.0  # requests arriving while a batch scores merge into the next anyway
    max_body_bytes: int = 64 * 2**20
    max_rows: int = 65536
    max_values: int = 2**27  # values in one input tensor
    request_timeout_s: float = 30.0  # longer requests are answered with 504
    max_queue: int = 1024  # requests per model waiting for or in scoring; more: 503 + Retry-After
    token: str | None = None  # when set, every route but health needs "Authorization: Bearer <token>"
    reload_interval_s: float = 2.0  # how often the repository's files are checked for changes (0: never)


_OPEN_ROUTES = frozenset({"live", "ready"})  # health: never behind the token


def _json_response(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json_response({"error": message}, status)


def _protocol_error(exc: ProtocolError) -> Response:
    response = _error(str(exc), exc.status)
    if isinstance(exc, OverloadedError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _authorized(request: Request, expected: bytes) -> bool:
    given = request.headers.get("authorization", "").encode("utf-8", "replace")
    return hmac.compare_digest(given, expected)


def _page_response(render: Callable[[str], str]) -> Response:
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(
        render(nonce),
        headers={
            "Content-Security-Policy": content_security_policy(nonce),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


_ACCESS_FLUSH_S = 0.5  # how long an access line may wait in the buffer of the default handler


class _BufferedStderrHandler(logging.StreamHandler):
    """Each line formatted as it comes, written to stderr in blocks: the periodic :meth:`drain`
    (or a full 64 KiB buffer) writes them, instead of one system call per request."""

    def __init__(self) -> None:
        try:
            fd = os.dup(sys.stderr.fileno())
        except (AttributeError, OSError, ValueError):  # stderr replaced by an object without a file
            super().__init__(sys.stderr)
            self._owned = False
            return
        raw = io.BufferedWriter(io.FileIO(fd, "w"), buffer_size=65536)
        super().__init__(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))
        self._owned = True

    def flush(self) -> None:  # called by emit after every record: leave the lines in the buffer
        pass

    def drain(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.stream.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.drain()
            if self._owned:
                self.stream.close()
        super().close()


def _default_access_log() -> _BufferedStderrHandler | None:
    """Access lines go to stderr when nobody configured logging (the CLI), written every
    :data:`_ACCESS_FLUSH_S`; otherwise wherever the application's logging sends
    ``onnxpipe.serving.access``."""
    if ACCESS_LOG.hasHandlers():
        return None
    handler = _BufferedStderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(logging.INFO)
    return handler


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read in chunks and refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ProtocolError("Content-Length must be a number")
        if int(declared) > limit:
            raise ProtocolError(f"the request body has {int(declared):,} bytes, more than the limit of {limit:,}", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"the request body has more than the limit of {limit:,} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    repository: ModelRepository, settings: ServerSettings | None = None, *, metrics: Metrics | None = None
) -> Router:
    """An ASGI application serving ``repository`` (run it with uvicorn); ``metrics``: counters to
    share with a gRPC server of the same repository (else its own)."""
    settings = settings or ServerSettings()
    if settings.token is not None and not settings.token.strip():
        raise ValueError("ServerSettings.token must not be empty (None: no authentication)")
    metrics = metrics or Metrics()
    # one Batcher per served model object (id): a reloaded model gets a new one, while requests
    # already given the old model finish on the old one, which is closed once idle
    batchers: dict[int, Batcher] = {}

    def batcher_for(model: ServedModel) -> Batcher:
        b = batchers.get(id(model))
        if b is None or b.model is not model:
            b = batchers[id(model)] = Batcher(
                model,
                settings.max_batch_size,
                settings.max_batch_delay_ms,
                settings.max_queue,
                on_batch=metrics.batch_rows.labels(model.name, model.version).observe,
                on_depth=metrics.queue_depth.labels(model.name, model.version).set,
            )
        return b

    for m in repository.all():
        batcher_for(m)

    async def retire_batchers() -> None:
        served = {id(m) for m in repository.all()}
        for key, b in list(batchers.items()):
            if key not in served and b.pending == 0:
                del batchers[key]
                await b.close()

    expected_auth = f"Bearer {settings.token}".encode() if settings.token is not None else None
    derived: dict[str, Any] = {}

    def current() -> tuple[dict[str, str], Any]:
        """The latest version of each model and the OpenAPI document, for what is served now."""
        if derived.get("generation") != repository.generation:
            latest = {name: repository.get(name).version for name in repository.names}
            doc = openapi(repository.all(), latest, __version__, settings.token is not None)
            derived.update(generation=repository.generation, latest=latest, openapi=doc)
        return derived["latest"], derived["openapi"]

    def model_of(request: Request) -> ServedModel:
        version = request.path_params.get("version")
        try:
            return repository.get(request.path_params["name"], version)
        except InvalidArgumentError as exc:
            raise ProtocolError(str(exc), 404) from None

    def endpoint(
        route: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the token (unless a health route) and the timeout, counted in the
        metrics and logged as one access line."""

        async def run(request: Request) -> Response:
            start = time.perf_counter()
            if expected_auth is not None and route not in _OPEN_ROUTES and not _authorized(request, expected_auth):
                response = _error("this server needs 'Authorization: Bearer <token>' with its token", 401)
                response.headers["WWW-Authenticate"] = 'Bearer realm="onnxpipe"'
            else:
                try:
                    async with asyncio.timeout(settings.request_timeout_s):  # no task of its own, unlike wait_for
                        response = await handler(request)
                except TimeoutError:
                    response = _error(
                        f"the request took longer than the server's {settings.request_timeout_s:g} s", 504
                    )
            seconds = time.perf_counter() - start
            name = request.path_params.get("name")
            model = name if name in repository.names else "-"  # unknown names: no new label values
            metrics.observe(model, route, response.status_code, seconds)
            path = request.scope["path"]
            ACCESS_LOG.info(access_line(request.method, path, response.status_code, seconds * 1000, model))
            return response

        return run

    async def live(request: Request) -> Response:
        return _json_response({"live": True})

    async def ready(request: Request) -> Response:
        return _json_response({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return _json_response({"name": "onnxpipe", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def model_metadata(request: Request) -> Response:
        try:
            model = model_of(request)
        except ProtocolError as exc:
            return _error(str(exc), exc.status)
        doc = model.metadata()
        if "version" not in request.path_params:
            doc["versions"] = sorted(
                (m.version for m in repository.all() if m.name == model.name),
                key=lambda v: (1, int(v), "") if v.isdigit() else (0, 0, v),
            )
        errors = repository.errors_of(model.name, request.path_params.get("version"))
        if errors:
            doc["reload_errors"] = errors
        return _json_response(doc)

    async def model_ready(request: Request) -> Response:
        try:
            model = model_of(request)
        except ProtocolError as exc:
            return _error(str(exc), exc.status)
        doc: dict[str, Any] = {"name": model.name, "ready": True}
        errors = repository.errors_of(model.name, request.path_params.get("version"))
        if errors:  # still ready (an older file serves), but the newer one failed to load
            doc["reload_errors"] = errors
        return _json_response(doc)

    async def infer(request: Request) -> Response:
        try:
            model = model_of(request)
            body = await _read_body(request, settings.max_body_bytes)
            parsed = parse_request(
                model, body, request.headers.get(HEADER_LENGTH), settings.max_rows, settings.max_values
            )
            results = await batcher_for(model).score(parsed.schema, parsed.columns, parsed.rows)
            content, json_length = encode_response(model, parsed, results)
        except ProtocolError as exc:
            return _protocol_error(exc)
        except OnnxPipeError as exc:
            return _error(f"model {request.path_params['name']!r}: {exc}", 400)
        except Exception as exc:  # a bug or a runtime failure: say so, keep serving
            _log.exception("inference failed")
            return _error(f"inference failed: {type(exc).__name__}: {exc}", 500)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    async def predict(request: Request) -> Response:
        try:
            model = model_of(request)
            body = await _read_body(request, settings.max_body_bytes)
            v2_body = rows_request(model, _json(body), settings.max_rows)
            parsed = parse_request(model, v2_body, None, settings.max_rows, settings.max_values)
            results = await batcher_for(model).score(parsed.schema, parsed.columns, parsed.rows)
            return _json_response(rows_response(model, results))
        except ProtocolError as exc:
            return _protocol_error(exc)
        except OnnxPipeError as exc:
            return _error(f"model {request.path_params['name']!r}: {exc}", 400)
        except Exception as exc:  # a bug or a runtime failure: say so, keep serving
            _log.exception("prediction failed")
            return _error(f"prediction failed: {type(exc).__name__}: {exc}", 500)

    async def metrics_page(request: Request) -> Response:
        content, media_type = metrics.render()
        return Response(content, headers={"Content-Type": media_type})

    async def openapi_json(request: Request) -> Response:
        return _json_response(current()[1])

    async def docs(request: Request) -> Response:
        return _page_response(lambda nonce: render_docs(current()[1], nonce))

    async def index(request: Request) -> Response:
        return _page_response(
            lambda nonce: render_index(repository.all(), current()[0], settings.token is not None, nonce)
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Router) -> AsyncIterator[None]:
        access = _default_access_log()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(flush_loop(access))] if access is not None else []
        if settings.reload_interval_s > 0 and repository.location is not None:
            tasks.append(loop.create_task(reload_loop()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if access is not None:
                ACCESS_LOG.removeHandler(access)
                access.close()
            for b in list(batchers.values()):
                await b.close()

    async def flush_loop(handler: _BufferedStderrHandler) -> None:
        while True:
            await asyncio.sleep(_ACCESS_FLUSH_S)
            handler.drain()

    async def reload_loop() -> None:
        """Poll the repository's files; new models load in a worker thread, beside the old."""
        while True:
            await asyncio.sleep(settings.reload_interval_s)
            try:
                await asyncio.to_thread(repository.reload)
                await retire_batchers()
            except Exception:  # never let a reload bug stop the server
                _log.exception("reloading the model repository failed")

    routes = [  # Starlette tries them in order: the inference routes first
        Route("/v2/models/{name}/infer", endpoint("infer", infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", endpoint("infer", infer), methods=["POST"]),
        Route("/v2/models/{name}/predict", endpoint("predict", predict), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/predict", endpoint("predict", predict), methods=["POST"]),
        Route("/v2/health/live", endpoint("live", live)),
        Route("/v2/health/ready", endpoint("ready", ready)),
        Route("/v2", endpoint("server_metadata", server_metadata)),
        Route("/v2/models/{name}", endpoint("model_metadata", model_metadata)),
        Route("/v2/models/{name}/versions/{version}", endpoint("model_metadata", model_metadata)),
        Route("/v2/models/{name}/ready", endpoint("model_ready", model_ready)),
        Route("/v2/models/{name}/versions/{version}/ready", endpoint("model_ready", model_ready)),
        Route("/metrics", endpoint("metrics", metrics_page)),
        Route("/openapi.json", endpoint("openapi", openapi_json)),
        Route("/docs", endpoint("docs", docs)),
        Route("/", endpoint("index", index)),
    ]
    # a bare Router: every handler answers its own errors, so Starlette's two exception middlewares
    # would only add a layer per request (uvicorn still answers 500 to anything that escapes)
    return Router(routes=routes, lifespan=lifespan)
