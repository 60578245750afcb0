"""``onnxpipe serve``: an inference server speaking the Open Inference Protocol (KServe V2) over
REST, with the binary tensor extension and adaptive batching (``pip install 'onnxpipe[serve]'``:
Starlette, uvicorn, orjson).

    from onnxpipe.serving import ModelRepository, create_app
    app = create_app(ModelRepository.open("models/"))  # an ASGI app; or run `onnxpipe serve models/`
"""

from __future__ import annotations

from onnxpipe.serving._app import ServerSettings, create_app
from onnxpipe.serving._models import ModelRepository, RepositoryError, ServedModel

__all__ = ["ModelRepository", "RepositoryError", "ServedModel", "ServerSettings", "create_app", "serve"]


def serve(
    location: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    settings: ServerSettings | None = None,
) -> None:
    """Load the model(s) at ``location`` and serve them until SIGINT/SIGTERM (uvicorn's graceful
    shutdown: stop accepting, finish in-flight requests)."""
    import uvicorn

    app = create_app(ModelRepository.open(location), settings)
    uvicorn.run(app, host=host, port=port, ws="none", log_level="info")
