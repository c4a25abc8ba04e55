"""One ASGI app per service: the FastStream broker plus /healthz, /readyz and /metrics.

Start-up is all or nothing. FastStream 0.7.8's `AsgiFastStream` reports `lifespan.startup.complete` to
uvicorn after the on_startup hooks but *before* the broker starts; a broker start that then fails (Kafka
cut at that moment) shut the broker and database down while uvicorn kept serving HTTP: a zombie with no
consumer that never exits, so no `restart:` policy ever restarts it. `ServiceAsgi` runs the hooks and the
broker start inside start-up instead, so uvicorn serves only a started service and otherwise exits non-zero
("Application startup failed"). An unreachable broker is retried with capped backoff for a bounded time
first (a broker that comes up a little after the service is the normal case in compose), then start-up
fails. /healthz answers 503 if the broker is no longer running while the app serves, so a liveness check
restarts a service that lost its consumers rather than leaving it half alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiokafka.errors import KafkaError
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


def health_app(service: str, alive: Callable[[], bool] = lambda: True) -> ASGIApp:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not alive():
            await _json_response(503, {"status": "broker stopped", "service": service})(scope, receive, send)
            return
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
    name a format or a metric, so they are dropped and the default answer is given.

    With PROMETHEUS_MULTIPROC_DIR set (a notifier running ATTUNE_NOTIFIER_WORKERS > 1 sets it), every process
    keeps its metrics in files there and a scrape, whichever process answers it, reads them all
    (prometheus_client's multiprocess collector): counters and histograms are the sum over the processes."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
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


log = logging.getLogger("attune.runtime.app")

BROKER_RETRY_FIRST_DELAY_S = 0.5
BROKER_RETRY_MAX_DELAY_S = 5.0
# One start attempt may hang on a broker that accepts connections but never answers; it is cut after this
# long (or the rest of the retry window, if longer) so that start-up cannot hang for ever either.
BROKER_ATTEMPT_MIN_TIMEOUT_S = 15.0


class ServiceAsgi(AsgiFastStream):
    """AsgiFastStream whose start-up completes only once the broker has started (see the module docstring).

    AsgiFastStream matches exact paths only; anything else goes to the service's own HTTP app, if any.
    """

    def __init__(self, *args: Any, http_app: ASGIApp | None = None, broker_start_timeout_s: float = 60.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http_app = http_app
        self.broker_start_timeout_s = broker_start_timeout_s
        self.serving = False

    def alive(self) -> bool:
        """False once the app serves without a running broker: nothing consumes, only a restart helps."""
        return not self.serving or all(getattr(b, "running", False) for b in self.brokers)

    @contextlib.asynccontextmanager
    async def start_lifespan_context(self, run_extra_options: dict[str, Any] | None = None) -> AsyncIterator[None]:
        # Replaces AsgiFastStream's, which yields (startup complete) before the broker starts.
        run_extra_options = run_extra_options or self._run_extra_options
        async with self.lifespan_context(**run_extra_options):
            async with self._startup_logging(log_level=logging.INFO), self._start_hooks_context(**run_extra_options):
                try:
                    await self._start_brokers_retrying()
                except BaseException:
                    # The hooks ran (database open, workers made): close them as a normal shutdown would.
                    await self._stop_quietly()
                    raise
            self.serving = True
            try:
                yield
            finally:
                self.serving = False
                await self._shutdown()

    async def _start_brokers_retrying(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.broker_start_timeout_s
        delay = BROKER_RETRY_FIRST_DELAY_S
        attempt = 1
        while True:
            remaining = deadline - loop.time()
            try:
                async with asyncio.timeout(max(remaining, BROKER_ATTEMPT_MIN_TIMEOUT_S)):
                    await self._start_broker()
                if attempt > 1:
                    log.info("broker started", extra={"attempt": attempt})
                return
            except (KafkaError, OSError) as exc:  # OSError covers refused/reset connections and TimeoutError
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.error("broker did not start within %.0f s (%d attempts): %s; giving up, so that the "
                              "process exits and is restarted. Check KAFKA_BOOTSTRAP_SERVERS, that Kafka is up and "
                              "reachable from here, and the TLS/SASL settings", self.broker_start_timeout_s,
                              attempt, _describe(exc))
                    raise
                wait = min(delay, remaining)
                log.warning("broker start failed (attempt %d): %s; retrying in %.1f s for up to %.0f s more. Check "
                            "KAFKA_BOOTSTRAP_SERVERS, that Kafka is up and reachable from here, and the TLS/SASL "
                            "settings", attempt, _describe(exc), wait, remaining)
                await self._stop_brokers_quietly()  # a half-started broker (producer up, consumers not) is reset
                await asyncio.sleep(wait)
                delay = min(delay * 2, BROKER_RETRY_MAX_DELAY_S)
                attempt += 1

    async def _stop_brokers_quietly(self) -> None:
        for broker in self.brokers:
            try:
                await broker.stop()
            except Exception as exc:  # noqa: BLE001 - best effort on a broker that never fully started
                log.debug("stopping a broker that failed to start: %s", _describe(exc))

    async def _stop_quietly(self) -> None:
        try:
            await self._shutdown()
        except Exception as exc:  # noqa: BLE001 - the start-up error is the one to report
            log.warning("shutdown after a failed start-up failed too: %s", _describe(exc))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            self.http_app is not None
            and scope["type"] in ("http", "websocket")
            and all(scope["path"] != path for path, _ in self.routes)
        ):
            await self.http_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _describe(exc: BaseException) -> str:
    text, name = str(exc), type(exc).__name__
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"  # aiokafka's errors already name themselves


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
    broker_start_timeout_s: float = 60.0,
) -> ServiceAsgi:
    """The broker's lifecycle (with the hooks), health, readiness and metrics; `http_app` serves the rest.

    Start-up hooks run before the broker starts (migrations, topic creation); the http_app's own
    lifespan is not run, so put its start-up work in `on_startup`. Start-up completes only once the broker
    has started; an unreachable broker is retried for `broker_start_timeout_s`, then start-up fails.
    """
    lag = LagTracker(broker, registry, service)
    app = ServiceAsgi(
        broker,
        http_app=http_app,
        broker_start_timeout_s=broker_start_timeout_s,
        asgi_routes=[
            ("/healthz", health_app(service, alive=lambda: app.alive())),
            ("/readyz", ready_app(service, broker, readiness)),
            ("/metrics", metrics_app(registry)),
            *routes,
        ],
        on_startup=[_awaiting(h) for h in on_startup],
        after_startup=[*(_awaiting(h) for h in after_startup), _awaiting(lag.start)],
        on_shutdown=[lag.stop, *(_awaiting(h) for h in on_shutdown)],
    )
    return app
