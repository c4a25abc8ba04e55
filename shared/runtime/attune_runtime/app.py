"""One ASGI app per service: the FastStream broker plus /healthz, /readyz and /metrics."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Gauge, make_asgi_app

from .consumer import Readiness

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


def build_info(registry: CollectorRegistry, service: str, version: str) -> None:
    Gauge("attune_build_info", "Build information (always 1)", ["service", "version"], registry=registry).labels(
        service, version
    ).set(1)


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
) -> AsgiFastStream:
    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/healthz", health_app(service)),
            ("/readyz", ready_app(service, broker, readiness)),
            ("/metrics", make_asgi_app(registry)),
            *routes,
        ],
        on_startup=list(on_startup),
        after_startup=list(after_startup),
        on_shutdown=list(on_shutdown),
    )
