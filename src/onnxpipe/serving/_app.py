"""The Starlette application: the Open Inference Protocol (KServe V2) REST routes."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onnxpipe import __version__
from onnxpipe.errors import InvalidArgumentError, OnnxPipeError
from onnxpipe.serving._batching import Batcher
from onnxpipe.serving._models import ModelRepository, ServedModel
from onnxpipe.serving._protocol import HEADER_LENGTH, ProtocolError, encode_response, parse_request

__all__ = ["ServerSettings", "create_app"]

_log = logging.getLogger("onnxpipe.serving")


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    max_batch_size: int = 64
    max_batch_delay_ms: float = 2.0
    max_body_bytes: int = 64 * 2**20
    max_rows: int = 65536
    max_values: int = 2**27  # values in one input tensor


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


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


def create_app(repository: ModelRepository, settings: ServerSettings | None = None) -> Starlette:
    """An ASGI application serving ``repository`` (run it with uvicorn)."""
    settings = settings or ServerSettings()
    batchers: dict[tuple[str, str], Batcher] = {
        (m.name, m.version): Batcher(m, settings.max_batch_size, settings.max_batch_delay_ms) for m in repository.all()
    }

    def model_of(request: Request) -> ServedModel:
        version = request.path_params.get("version")
        try:
            return repository.get(request.path_params["name"], version)
        except InvalidArgumentError as exc:
            raise ProtocolError(str(exc), 404) from None

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        return _json({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return _json({"name": "onnxpipe", "version": __version__, "extensions": ["binary_tensor_data"]})

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
        return _json(doc)

    async def model_ready(request: Request) -> Response:
        try:
            model = model_of(request)
        except ProtocolError as exc:
            return _error(str(exc), exc.status)
        return _json({"name": model.name, "ready": True})

    async def infer(request: Request) -> Response:
        try:
            model = model_of(request)
            body = await _read_body(request, settings.max_body_bytes)
            parsed = parse_request(
                model, body, request.headers.get(HEADER_LENGTH), settings.max_rows, settings.max_values
            )
            results = await batchers[(model.name, model.version)].score(parsed.schema, parsed.columns, parsed.rows)
            content, json_length = encode_response(model, parsed, results)
        except ProtocolError as exc:
            return _error(str(exc), exc.status)
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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for b in batchers.values():
            await b.close()

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
