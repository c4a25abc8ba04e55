"""One ASGI app per service: the FastStream broker plus /healthz, /readyz and /metrics."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Gauge, make_asgi_app

from .consumer import Readiness
from .lag import LagTracker

ASGIApp = Callable[..., Awaitable[None]]


def _json_response(status: int, body: dict[str, Any]) -> ASGIApp:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return app


def health_app(service: str) -> ASGIApp:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _json_response(200, {"status": "ok", "service": service})(scope, receive, send)

    return app


def ready_app(service: str, broker: KafkaBroker, readiness: Readiness) -> ASGIApp:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = await readiness.status()
        connected = bool(getattr(broker, "running", False))
        status["broker_connected"] = connected
        ok = status["ready"] and connected
        await _json_response(200 if ok else 503, {"service": service, **status})(scope, receive, send)

    return app


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def metrics_app(registry: CollectorRegistry) -> ASGIApp:
    """prometheus_client's ASGI app, minus its one crash: it decodes the Accept header and the query string as
    UTF-8 and raises on anything else (a 500 for a scraper's stray byte). Bytes that are not UTF-8 cannot
    name a format or a metric, so they are dropped and the default answer is given."""
    inner = make_asgi_app(registry)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            query = scope.get("query_string", b"")
            scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers", ()) if _is_utf8(k) and _is_utf8(v)],
                     "query_string": query if _is_utf8(query) else b""}
        await inner(scope, receive, send)

    return app


def build_info(registry: CollectorRegistry, service: str, version: str) -> None:
    Gauge("attune_build_info", "Build information (always 1)", ["service", "version"], registry=registry).labels(
        service, version
    ).set(1)


class ServiceAsgi(AsgiFastStream):
    """AsgiFastStream matches exact paths only; anything else goes to the service's own HTTP app, if any."""

    def __init__(self, *args: Any, http_app: ASGIApp | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http_app = http_app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            self.http_app is not None
            and scope["type"] in ("http", "websocket")
            and all(scope["path"] != path for path, _ in self.routes)
        ):
            await self.http_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _awaiting(hook: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    """Hooks may be plain functions, coroutine functions, or lambdas returning a coroutine."""

    async def run() -> None:
        result = hook()
        if inspect.isawaitable(result):
            await result

    return run


def service_app(
    *,
    service: str,
    broker: KafkaBroker,
    registry: CollectorRegistry,
    readiness: Readiness,
    routes: Sequence[tuple[str, ASGIApp]] = (),
    on_startup: Sequence[Callable[..., Any]] = (),
    after_startup: Sequence[Callable[..., Any]] = (),
    on_shutdown: Sequence[Callable[..., Any]] = (),
    http_app: ASGIApp | None = None,
) -> ServiceAsgi:
    """The broker's lifecycle (with the hooks), health, readiness and metrics; `http_app` serves the rest.

    Start-up hooks run before the broker starts (migrations, topic creation); the http_app's own
    lifespan is not run, so put its start-up work in `on_startup`.
    """
    lag = LagTracker(broker, registry, service)
    return ServiceAsgi(
        broker,
        http_app=http_app,
        asgi_routes=[
            ("/healthz", health_app(service)),
            ("/readyz", ready_app(service, broker, readiness)),
            ("/metrics", metrics_app(registry)),
            *routes,
        ],
        on_startup=[_awaiting(h) for h in on_startup],
        after_startup=[*(_awaiting(h) for h in after_startup), _awaiting(lag.start)],
        on_shutdown=[lag.stop, *(_awaiting(h) for h in on_shutdown)],
    )
