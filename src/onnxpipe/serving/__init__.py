"""``onnxpipe serve``: an inference server speaking the Open Inference Protocol (KServe V2) over
REST, with the binary tensor extension and adaptive batching (``pip install 'onnxpipe[serve]'``:
Starlette, uvicorn, orjson).

    from onnxpipe.serving import ModelRepository, create_app
    app = create_app(ModelRepository.open("models/"))  # an ASGI app; or run `onnxpipe serve models/`
"""

from __future__ import annotations

import dataclasses
import json
import os

from onnxpipe.serving._app import ServerSettings, create_app
from onnxpipe.serving._metrics import Metrics
from onnxpipe.serving._models import ModelRepository, RepositoryError, ServedModel

__all__ = ["ModelRepository", "RepositoryError", "ServedModel", "ServerSettings", "create_app", "serve"]


_WORKER_CONFIG = "ONNXPIPE_SERVE_WORKER_CONFIG"  # what each worker process of `serve(workers=N)` serves


def serve(
    location: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    settings: ServerSettings | None = None,
    grpc_port: int | None = None,
    workers: int = 1,
) -> None:
    """Load the model(s) at ``location`` and serve them until SIGINT/SIGTERM (uvicorn's graceful
    shutdown: stop accepting, finish in-flight requests). With ``grpc_port`` (0: any free port),
    the same models are also served over gRPC (KServe V2 ``GRPCInferenceService``, needs grpcio)
    on ``host:grpc_port``, in the same process and event loop, and stopped with uvicorn.

    ``workers`` > 1 runs that many server processes on the one port (uvicorn's worker mode): each
    loads the models itself, batches its own requests, counts its own ``/metrics`` and reloads
    changed files on its own; REST only."""
    import uvicorn

    repository = ModelRepository.open(location)  # fails here, once, for a bad model or repository
    if workers > 1:
        if grpc_port is not None:
            raise ValueError("gRPC is served by one process: use workers=1 with grpc_port")
        del repository
        config = {"location": str(location), "settings": dataclasses.asdict(settings or ServerSettings())}
        os.environ[_WORKER_CONFIG] = json.dumps(config)
        uvicorn.run(
            "onnxpipe.serving:_worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            ws="none",
            log_level="info",
            access_log=False,
        )
        return
    metrics = Metrics()
    app = create_app(repository, settings, metrics=metrics)
    if grpc_port is None:
        uvicorn.run(app, host=host, port=port, ws="none", log_level="info", access_log=False)
        return
    import asyncio
    import logging

    from onnxpipe.serving._grpc import GrpcServer

    async def run() -> None:
        grpc_server = GrpcServer(repository, settings, host=host, port=grpc_port, metrics=metrics)
        bound = await grpc_server.start()
        logging.getLogger("uvicorn.error").info("gRPC (KServe V2) on %s:%d", host, bound)
        try:
            await uvicorn.Server(
                uvicorn.Config(app, host=host, port=port, ws="none", log_level="info", access_log=False)
            ).serve()
        finally:
            await grpc_server.stop()

    asyncio.run(run())


def _worker_app() -> object:
    """The application of one worker process of ``serve(workers=N)`` (uvicorn imports it by name)."""
    config = json.loads(os.environ[_WORKER_CONFIG])
    return create_app(ModelRepository.open(config["location"]), ServerSettings(**config["settings"]))
