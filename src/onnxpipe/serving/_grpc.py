"""The Open Inference Protocol (KServe V2) over gRPC: the ``inference.GRPCInferenceService`` of
``proto/grpc_predict_v2.proto`` on a ``grpc.aio`` server, serving the same :class:`ModelRepository`
through the same request validation (``_protocol.parse_request``) and adaptive batching as REST.

Inputs come as typed ``contents`` or as ``raw_input_contents`` (little-endian; BYTES elements with
a 4-byte little-endian length prefix); outputs go back as ``raw_output_contents``, as
``tritonclient.grpc`` expects. Errors are gRPC status codes: NOT_FOUND for an unknown model or
version, INVALID_ARGUMENT (naming the input) for a bad request, RESOURCE_EXHAUSTED past a size
limit, UNAVAILABLE when the model's queue is full, DEADLINE_EXCEEDED past the request timeout and
UNAUTHENTICATED without the server's token (metadata ``authorization: Bearer <token>``; the health
RPCs ServerLive and ServerReady need none).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc
import numpy as np
import orjson

from onnxpipe import TensorType, __version__
from onnxpipe.errors import InvalidArgumentError, OnnxPipeError
from onnxpipe.serving._app import ServerSettings
from onnxpipe.serving._batching import Batcher
from onnxpipe.serving._metrics import ACCESS_LOG, Metrics, access_line
from onnxpipe.serving._models import DTYPE_OF_V2, ModelRepository, ServedModel, v2_datatype
from onnxpipe.serving._protocol import ProtocolError, _binary, parse_request
from onnxpipe.serving.proto import grpc_predict_v2_pb2 as pb

__all__ = ["GrpcServer"]

_log = logging.getLogger("onnxpipe.serving")
_SERVICE = "inference.GRPCInferenceService"

# the typed field of InferTensorContents that carries each datatype (FP16 has none: raw only)
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


_STATUS_OF_HTTP = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


# the HTTP status the same outcome gets over REST: gRPC calls are counted in /metrics with it
_HTTP_OF_STATUS = {v: k for k, v in _STATUS_OF_HTTP.items()} | {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.INTERNAL: 500,
}


def _status_of(error: ProtocolError) -> grpc.StatusCode:
    return _STATUS_OF_HTTP.get(error.status, grpc.StatusCode.INVALID_ARGUMENT)


def _from_contents(tensor: Any) -> bytes:
    """A typed ``contents`` tensor as the raw little-endian bytes the REST binary extension uses
    (so both transports share ``parse_request``'s checks)."""
    name, datatype = tensor.name, tensor.datatype
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        if datatype in DTYPE_OF_V2:
            raise ProtocolError(f"input {name!r}: {datatype} has no typed contents field; send raw_input_contents")
        return b""  # parse_request names the unsupported datatype
    values = list(getattr(tensor.contents, field))
    count = math.prod(tensor.shape)
    if len(values) != count:
        raise ProtocolError(f"input {name!r}: {len(values)} values in contents.{field} for a shape of {count} values")
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v)) + v for v in values)
    try:
        array = np.array(values, dtype=DTYPE_OF_V2[datatype].numpy)
    except OverflowError:
        raise ProtocolError(f"input {name!r}: a value is out of the range of {datatype}") from None
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _check_raw_size(tensor: Any, blob: bytes, k: int) -> None:
    dtype = DTYPE_OF_V2.get(tensor.datatype)
    if dtype is None or tensor.datatype == "BYTES" or any(d < 0 for d in tensor.shape):
        return  # parse_request says what is wrong
    need = math.prod(tensor.shape) * dtype.numpy.itemsize
    if len(blob) != need:
        raise ProtocolError(
            f"input {tensor.name!r}: raw_input_contents[{k}] has {len(blob)} bytes; its shape {list(tensor.shape)} "
            f"and datatype {tensor.datatype} need {need}"
        )


def _as_rest(request: Any) -> tuple[bytes, int]:
    """A ``ModelInferRequest`` as a REST binary-extension body (JSON header + tensor bytes) and
    the header's length."""
    raw: Sequence[bytes] = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; give one per input")
    inputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for k, tensor in enumerate(request.inputs):
        if raw and tensor.HasField("contents"):
            raise ProtocolError(f"input {tensor.name!r}: both contents and raw_input_contents are given")
        blob = raw[k] if raw else _from_contents(tensor)
        if raw:
            _check_raw_size(tensor, blob, k)
        blobs.append(blob)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    doc: dict[str, Any] = {"inputs": inputs}
    if request.id:
        doc["id"] = request.id
    if request.outputs:
        doc["outputs"] = [{"name": o.name} for o in request.outputs]
    head = orjson.dumps(doc)
    return b"".join([head, *blobs]), len(head)


async def _abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises


def _tensor_metadata(model: ServedModel, column: Any) -> Any:
    return pb.ModelMetadataResponse.TensorMetadata(**model.describe(column))


class GrpcServer:
    """``inference.GRPCInferenceService`` for ``repository`` on ``host:port`` (port 0: any free
    one; :meth:`start` returns it). Start and stop it on the event loop that serves it."""

    def __init__(
        self,
        repository: ModelRepository,
        settings: ServerSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        """``metrics``: the REST app's (``create_app(..., metrics=)``), so that ``/metrics`` counts
        gRPC calls too, under routes ``grpc_<Method>``."""
        self.repository = repository
        self.metrics = metrics
        self.settings = settings or ServerSettings()
        self.host = host
        self.port = port
        # One batcher per served model object, made on first use: a hot reload (run by the REST
        # app on the shared repository) swaps model objects, and the next call gets a new batcher.
        self.batchers: dict[int, Batcher] = {}
        self._server: Any = None

    async def _batcher_for(self, model: ServedModel) -> Batcher:
        b = self.batchers.get(id(model))
        if b is None or b.model is not model:
            settings = self.settings
            m = self.metrics
            b = self.batchers[id(model)] = Batcher(
                model,
                settings.max_batch_size,
                settings.max_batch_delay_ms,
                settings.max_queue,
                on_batch=None if m is None else m.batch_rows.labels(model.name, model.version).observe,
                on_depth=None if m is None else m.queue_depth.labels(model.name, model.version).set,
            )
            served = {id(m) for m in self.repository.all()}
            for key, old in list(self.batchers.items()):  # retire the batchers of models no longer served
                if key not in served and old.pending == 0:
                    del self.batchers[key]
                    await old.close()
        return b

    async def start(self) -> int:
        """Listen and serve; the bound port."""
        limit = self.settings.max_body_bytes
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)]
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, self._handlers()),))
        port = int(server.add_insecure_port(f"{self.host}:{self.port}"))
        if port == 0:
            raise OSError(f"cannot listen for gRPC on {self.host}:{self.port}")
        await server.start()
        self._server = server
        self.port = port
        return port

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting, let in-flight calls finish for up to ``grace`` seconds."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        for b in self.batchers.values():
            await b.close()

    def _handlers(self) -> dict[str, Any]:
        token = self.settings.token
        expected = f"Bearer {token}".encode() if token is not None else None

        def unary(method: str, fn: Callable[[Any, Any], Awaitable[Any]], request_type: Any, open_: bool = False) -> Any:
            async def guarded(request: Any, context: Any) -> Any:
                start = time.perf_counter()
                status = 500
                try:
                    if expected is not None and not open_:
                        given = dict(context.invocation_metadata() or ()).get("authorization", "")
                        if not hmac.compare_digest(str(given).encode(), expected):
                            await _abort(
                                context,
                                grpc.StatusCode.UNAUTHENTICATED,
                                "this server needs metadata 'authorization: Bearer <token>' with its token",
                            )
                    response = await fn(request, context)
                    status = 200
                    return response
                except BaseException:
                    status = _HTTP_OF_STATUS.get(context.code(), 500)
                    raise
                finally:
                    self._observe(method, request, status, time.perf_counter() - start)

            return grpc.unary_unary_rpc_method_handler(
                guarded,
                request_deserializer=request_type.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )

        return {
            "ServerLive": unary("ServerLive", self._server_live, pb.ServerLiveRequest, open_=True),
            "ServerReady": unary("ServerReady", self._server_ready, pb.ServerReadyRequest, open_=True),
            "ModelReady": unary("ModelReady", self._model_ready, pb.ModelReadyRequest),
            "ServerMetadata": unary("ServerMetadata", self._server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": unary("ModelMetadata", self._model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": unary("ModelInfer", self._model_infer, pb.ModelInferRequest),
        }

    def _observe(self, method: str, request: Any, status: int, seconds: float) -> None:
        """Count the call in ``/metrics`` and log it as one access line (``method=GRPC``)."""
        name = getattr(request, "model_name", None) or getattr(request, "name", None)
        model = name if name in self.repository.names else "-"  # unknown names: no new label values
        if self.metrics is not None:
            self.metrics.observe(model, f"grpc_{method}", status, seconds)
        ACCESS_LOG.info(access_line("GRPC", f"/{_SERVICE}/{method}", status, seconds * 1000, model))

    async def _model(self, name: str, version: str, context: Any) -> ServedModel:
        try:
            return self.repository.get(name, version or None)
        except InvalidArgumentError as exc:
            await _abort(context, grpc.StatusCode.NOT_FOUND, str(exc))

    async def _server_live(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def _server_ready(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    async def _server_metadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="onnxpipe", version=__version__, extensions=[])

    async def _model_ready(self, request: Any, context: Any) -> Any:
        await self._model(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=True)

    async def _model_metadata(self, request: Any, context: Any) -> Any:
        model = await self._model(request.name, request.version, context)
        if request.version:
            versions = [model.version]
        else:
            versions = sorted(
                (m.version for m in self.repository.all() if m.name == model.name),
                key=lambda v: (1, int(v), "") if v.isdigit() else (0, 0, v),
            )
        return pb.ModelMetadataResponse(
            name=model.name,
            versions=versions,
            platform=model.platform,
            inputs=[_tensor_metadata(model, c) for c in model.inputs],
            outputs=[_tensor_metadata(model, c) for c in model.outputs],
        )

    async def _model_infer(self, request: Any, context: Any) -> Any:
        model = await self._model(request.model_name, request.model_version, context)
        settings = self.settings
        try:
            body, head_length = _as_rest(request)
            parsed = parse_request(model, body, str(head_length), settings.max_rows, settings.max_values)
            batcher = await self._batcher_for(model)
            results = await asyncio.wait_for(
                batcher.score(parsed.schema, parsed.columns, parsed.rows), settings.request_timeout_s
            )
        except TimeoutError:
            message = f"the request took longer than the server's {settings.request_timeout_s:g} s"
            await _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, message)
        except ProtocolError as exc:
            await _abort(context, _status_of(exc), str(exc))
        except OnnxPipeError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"model {model.name!r}: {exc}")
        except Exception as exc:  # a bug or a runtime failure: say so, keep serving
            _log.exception("inference failed")
            await _abort(context, grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}")
        types = {c.name: c.type for c in model.outputs}
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=parsed.id or "")
        for o in parsed.outputs:
            array = results[o.name]
            ct = types[o.name]
            datatype = v2_datatype(ct.dtype) if isinstance(ct, TensorType) else None
            response.outputs.add(name=o.name, datatype=datatype or "BYTES", shape=list(array.shape))
            response.raw_output_contents.append(_binary(array))
        return response
