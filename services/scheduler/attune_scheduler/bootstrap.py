"""All the wiring, in one function whose defaults a test can replace. Nothing connects at import."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from attune_contracts import Topic
from attune_contracts.sealing import use_field_keys
from attune_runtime.app import ServiceAsgi, build_info, service_app
from attune_runtime.consumer import ConsumerMetrics, Readiness, RetryPolicy, subscribe
from attune_runtime.deadletters import OPEN_PATH, DeadLetterVault, open_route
from attune_runtime.http import HttpLimits
from attune_runtime.kafka import broker_publisher, ensure_topics, kafka_client_options, make_broker
from attune_runtime.retry import Backoff
from prometheus_client import CollectorRegistry

from .adapters.kafka import KafkaSink
from .adapters.sql import SqlStore
from .adapters.tables import dead_letter_keys, erased_households
from .clock import SystemClock
from .config import SchedulerSettings
from .consumer import command_handler, invalid_command_handler
from .handlers import COMMAND_TYPES
from .http import build_http_app
from .metrics import SchedulerMetrics
from .ports import Clock, Sink
from .scheduler import Scheduler

SERVICE = "scheduler"


def build_scheduler(
    settings: SchedulerSettings, *, store: SqlStore, clock: Clock, sink: Sink, registry: CollectorRegistry
) -> Scheduler:
    return Scheduler(
        store.unit_of_work, store, store.relay, clock, sink, SchedulerMetrics(registry),
        fire_batch_size=settings.fire_batch_size, fire_workers=settings.fire_workers,
        lookahead=timedelta(seconds=settings.lookahead_s),
        relay_batch_size=settings.relay_batch_size, relay_depth=settings.relay_depth,
        read_ahead=timedelta(seconds=settings.relay_read_ahead_s), read_ahead_rows=settings.relay_read_ahead_rows,
        max_sleep=timedelta(seconds=settings.max_sleep_s), relay_poll_s=settings.relay_poll_s,
        metrics_refresh_s=settings.metrics_refresh_s,
    )


def build_app(
    settings: SchedulerSettings,
    *,
    clock: Clock | None = None,
    store: SqlStore | None = None,
    sink: Sink | None = None,
    registry: CollectorRegistry | None = None,
) -> ServiceAsgi:
    """The scheduler as an ASGI app: Kafka consumer, firing loop, relay, /healthz /readyz /metrics."""
    registry = registry or CollectorRegistry()
    clock = clock or SystemClock()
    store = store or SqlStore.from_url(settings.database_url, relay_shards=settings.relay_shards, now=clock.now)
    kafka_sink: KafkaSink | None = None
    if sink is None:
        kafka_sink = KafkaSink(kafka_client_options(settings), client_id=f"attune-{SERVICE}-relay")
        sink = kafka_sink
    broker = make_broker(settings, service=SERVICE, registry=registry)
    readiness = Readiness()
    scheduler = build_scheduler(settings, store=store, clock=clock, sink=sink, registry=registry)
    use_field_keys(settings.field_keyring())  # private fields on Kafka: sealed out, opened in
    vault = DeadLetterVault(store.engine, dead_letter_keys, settings.dead_letter_keys(), service=SERVICE,
                            erased=erased_households)
    subscribe(
        broker, Topic.SCHEDULER_COMMANDS, service=SERVICE, group_id=settings.group_id,
        handler=command_handler(scheduler), metrics=ConsumerMetrics(registry), readiness=readiness,
        retry=RetryPolicy(settings.retry_max_attempts, Backoff(settings.retry_base_delay_s, settings.retry_max_delay_s)),
        accept=COMMAND_TYPES, session_timeout_ms=settings.kafka_session_timeout_ms,
        on_invalid=invalid_command_handler(broker_publisher(broker, service=SERVICE)), vault=vault,
    )

    async def database_reachable() -> bool:
        return await store.ping()

    readiness.add_check(database_reachable)
    build_info(registry, SERVICE, _version())

    async def start_up() -> None:
        await store.migrate()
        await vault.rewrap()  # after a DEAD_LETTER_KEY rotation, every data key under the new first key
        if settings.kafka_create_topics:
            await ensure_topics(settings)
        if kafka_sink is not None:
            await kafka_sink.start()

    async def start_loops() -> None:
        scheduler.start()

    async def shut_down() -> None:
        await scheduler.stop()
        if kafka_sink is not None:
            await kafka_sink.stop()
        await store.close()

    app = service_app(
        service=SERVICE, broker=broker, registry=registry, readiness=readiness,
        on_startup=[start_up], after_startup=[start_loops], on_shutdown=[shut_down],
        routes=[(OPEN_PATH, open_route(vault, settings.credential_verifier(), clock.now))],
        http_app=build_http_app(store, settings.credential_verifier(), clock.now, limits=HttpLimits.of(settings),
                                registry=registry),
        broker_start_timeout_s=settings.kafka_start_timeout_s,
    )
    app.scheduler = scheduler  # type: ignore[attr-defined]  # for tests and operators
    app.store = store  # type: ignore[attr-defined]
    app.vault = vault  # type: ignore[attr-defined]
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("attune")
    except PackageNotFoundError:  # pragma: no cover
        return "0"


__all__: list[Any] = ["build_app", "build_scheduler"]
