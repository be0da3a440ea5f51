"""JSON logs carrying a request id, an access log line per request, and Prometheus metrics."""

import contextvars
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.collector import QuietCollector

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
# A client may pass its own request id so its logs and ours line up; anything else is replaced.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")

access_log = logging.getLogger("carbon_gateway.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    """One JSON object per line on stderr, each with the request id of the request being served."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our access log replaces uvicorn's, which has no request id.
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    """The app's own registry, so that several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cg_http_requests_total",
            "HTTP requests served",
            ["method", "path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cg_http_request_duration_seconds",
            "Time to serve an HTTP request",
            ["method", "path"],
            registry=self.registry,
        )
        self.full_collections = Histogram(
            "cg_gc_full_collection_seconds",
            "Pause of each full garbage collection, run in quiet moments (app/collector.py)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )

    async def endpoint(self, _request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestContextMiddleware:
    """Gives every HTTP request an id (echoed in `X-Request-Id`), logs it and measures it.

    Pure ASGI and lean, since every request, a cache hit's ~100 µs included, passes through:
    the metrics' labelled children kept (prometheus_client's `labels()` takes a lock and
    builds a tuple on every call), the access-log line built only when its level is on."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, collector: QuietCollector | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.collector = collector
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope.get("headers") or ())
        token = request_id_var.set(request_id)
        id_header = (b"x-request-id", request_id.encode())
        status = {"code": 500}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif message["type"] == "websocket.accept":
                status["code"] = 101
            elif message["type"] == "websocket.close":
                # A socket's outcome is its close code (4403, 4400, 4408…), logged beside 101.
                status["close_code"] = message.get("code", 1000)
            await send(message)

        # A socket is not "in flight" for the collector (it may stay open for hours), but each
        # message it receives is activity.
        collector = self.collector if scope["type"] == "http" else None
        if collector is not None:
            collector.request_started()
        elif self.collector is not None:
            receive = _touching(receive, self.collector)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if collector is not None:
                collector.request_ended()
            elapsed = time.perf_counter() - started
            path = _metric_path(scope)
            if scope["type"] == "http":
                self._count(scope["method"], path, str(status["code"]), elapsed)
            if access_log.isEnabledFor(logging.INFO):
                fields = _access_fields(scope, status["code"], elapsed)
                if "close_code" in status:
                    fields["close_code"] = status["close_code"]
                access_log.info("request", extra=fields)
            request_id_var.reset(token)

    def _count(self, method: str, path: str, status: str, elapsed: float) -> None:
        counter = self._counters.get((method, path, status))
        timer = self._timers.get((method, path))
        if counter is None or timer is None:
            counter = self.metrics.requests.labels(method, path, status)
            timer = self.metrics.latency.labels(method, path)
            # Paths are the client's to choose (404s): keep only the first few label sets.
            if len(self._counters) < MAX_KEPT_LABEL_SETS:
                self._counters[(method, path, status)] = counter
                self._timers[(method, path)] = timer
        counter.inc()
        timer.observe(elapsed)


MAX_KEPT_LABEL_SETS = 1024


def _touching(receive: Receive, collector: QuietCollector) -> Receive:
    async def receive_and_touch() -> Message:
        message = await receive()
        collector.touch()
        return message

    return receive_and_touch


def _request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's own request id when it sent a well-formed one, else a random one (128
    bits, hex; os.urandom is a fifth of uuid4's cost)."""
    for name, value in headers:
        if name == b"x-request-id":
            offered = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.fullmatch(offered):
                return offered
            break
    return os.urandom(16).hex()


def _metric_path(scope: Scope) -> str:
    # Certificate ids are unbounded; fold them so metrics keep a small label set.
    path: str = scope.get("path", "")
    return "/certificates/{id}" if path.startswith("/certificates/") else path


def _access_fields(scope: Scope, status: int, elapsed: float) -> dict[str, Any]:
    return {
        "method": scope.get("method", "WEBSOCKET"),
        "path": scope.get("path"),
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
    }
