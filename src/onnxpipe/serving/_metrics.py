"""Prometheus metrics (``GET /metrics``) and structured access logs.

Each application has its own :class:`prometheus_client.CollectorRegistry`, so several apps in one
process (tests, several servers) never share or collide on counters.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ACCESS_LOG", "Metrics", "access_line"]

ACCESS_LOG = logging.getLogger("onnxpipe.serving.access")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)
_PLAIN = re.compile(r"[A-Za-z0-9_./:\-]+")


def _reason(status: int) -> str:
    return {401: "unauthorized", 503: "overloaded", 504: "timeout"}.get(
        status, "server_error" if status >= 500 else "client_error"
    )


class Metrics:
    """The server's counters, histograms and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self.requests = Counter(
            "onnxpipe_requests",
            "Requests answered, by model, route and HTTP status.",
            ["model", "route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "onnxpipe_errors",
            "Requests answered with an error status, by model, route and reason.",
            ["model", "route", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "onnxpipe_request_duration_seconds",
            "Time from a request's arrival to its response, by model and route.",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "onnxpipe_batch_rows",
            "Rows in each scoring call (merged batches), by model.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "onnxpipe_queue_depth",
            "Requests waiting for or in scoring, by model.",
            ["model", "version"],
            registry=self.registry,
        )

    def observe(self, model: str, route: str, status: int, seconds: float) -> None:
        key = (model, route, status)
        children = self._children.get(key)
        if children is None:  # the label lookups once per (model, route, status): few, and all bounded
            errors = self.errors.labels(model, route, _reason(status)) if status >= 400 else None
            children = (self.requests.labels(model, route, str(status)), errors, self.latency.labels(model, route))
            self._children[key] = children
        requests, errors, latency = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _value(v: object) -> str:
    s = str(v)
    return s if _PLAIN.fullmatch(s) else json.dumps(s)


def access_line(method: str, path: str, status: int, duration_ms: float, model: str) -> str:
    """One access-log line: ``key=value`` pairs, values quoted (JSON strings) when not plain."""
    # the method is an HTTP token and the model a checked name or "-"; only the path can need quotes
    return f"method={method} path={_value(path)} status={status} duration_ms={duration_ms:.3f} model={model}"
