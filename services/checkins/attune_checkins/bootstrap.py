"""All the wiring of the check-ins service. Nothing connects at import; tests override any part."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from attune_contracts import Topic
from attune_contracts.links import LinkSigner
from attune_contracts.sealing import use_field_keys
from attune_runtime.app import ServiceAsgi, build_info, service_app
from attune_runtime.batch import subscribe_batch
from attune_runtime.consumer import ConsumerMetrics, Readiness, ReliableConsumer, RetryPolicy, subscribe
from attune_runtime.deadletters import OPEN_PATH, DeadLetterVault, open_route
from attune_runtime.http import HttpLimits
from attune_runtime.kafka import ensure_topics, kafka_client_options, make_broker
from attune_runtime.producer import BatchProducer
from attune_runtime.retry import Backoff
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from .adapters.migrate import upgrade
from .adapters.sql import NoteCipher, SqlStore, make_engine
from .adapters.tables import dead_letter_keys, erased_households
from .config import Settings
from .handlers import make_handler, make_invalid_hook
from .http import build_http_app
from .metrics import Metrics
from .ports import Clock, RecordSink, SystemClock
from .relay import OutboxRelay
from .usecases import HANDLED_TYPES, CheckinsService, Policy

SERVICE = "checkins"
GROUP_ID = "attune-checkins"
TOPICS = (Topic.CHECKINS_COMMANDS, Topic.RITUAL_OCCURRENCES, Topic.SCHEDULER_EVENTS, Topic.SHORT_LINKS, Topic.QUESTIONS)
log = logging.getLogger("attune.checkins")


class EventProducer(BatchProducer):
    """Its own aiokafka producer for the relay: a batch of outbox rows goes out together in a few large
    producer batches (one per partition), several times faster than one awaited broker.publish each."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(kafka_client_options(settings), client_id=f"attune-{SERVICE}-events")


_heap_frozen = False


def _freeze_startup_heap() -> None:
    """What exists after start-up (modules, schemas, validators, table metadata) lives as long as the
    process: out of the collector's generations, full collections stop walking it again and again (~20 µs
    of CPU per check-in, measured with bench/checkins_bench.py). Once per process: a frozen object that
    later becomes cyclic garbage is never freed, which matters only where services are built repeatedly."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


@dataclass
class Checkins:
    """The running parts, so tests and the benchmark can reach them."""

    settings: Settings
    service: CheckinsService
    store: SqlStore
    broker: KafkaBroker
    registry: CollectorRegistry
    readiness: Readiness
    http: FastAPI
    signer: LinkSigner
    relay: OutboxRelay
    asgi: ServiceAsgi | None = None
    run_timer: bool = True
    producer: EventProducer | None = None
    vault: DeadLetterVault | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _timer: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        """Before the broker starts: schema up to date, topics present. (The relay connects its producer
        itself, and keeps trying: check-ins are accepted while the broker is away.)"""
        await upgrade(self.store.engine)
        if self.vault is not None:
            await self.vault.rewrap()  # after a DEAD_LETTER_KEY rotation, every data key under the new first key
        if self.settings.kafka_create_topics:
            await ensure_topics(self.settings, [*TOPICS, Topic.CHECKINS_EVENTS, Topic.DEAD_LETTER])
        _freeze_startup_heap()

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        await self.store.close()

    async def start_timer(self) -> None:
        """The background tasks: the outbox relay, and the timer (missed occurrences, weekly summaries)."""
        self.relay.start()
        if self.run_timer and self._timer is None:
            self._stop.clear()
            self._timer = asyncio.create_task(self.service.run_timer(self._stop), name="checkins-timer")

    async def stop_timer(self) -> None:
        if self._timer is not None:
            self._stop.set()
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._timer
            self._timer = None
        await self.relay.stop(drain_timeout=self.settings.outbox_drain_timeout_s)

    async def start(self) -> None:
        """The whole service without uvicorn (tests, benchmark)."""
        await self.prepare()
        await self.broker.start()
        await self.start_timer()

    async def stop(self) -> None:
        await self.stop_timer()
        await self.broker.stop()
        await self.close()


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    sink: RecordSink | None = None,
    registry: CollectorRegistry | None = None,
    run_timer: bool = True,
    group_id: str = GROUP_ID,
) -> Checkins:
    registry = registry or CollectorRegistry()
    clock = clock or SystemClock()
    broker = make_broker(settings, service=SERVICE, registry=registry)
    readiness = Readiness()
    metrics = Metrics(registry)
    store = SqlStore(make_engine(settings.database_url), NoteCipher(settings.fernet_keys()))
    readiness.add_check(store.ping)
    use_field_keys(settings.field_keyring())  # private fields on Kafka: sealed out, opened in
    vault = DeadLetterVault(store.engine, dead_letter_keys, settings.dead_letter_keys(), service=SERVICE,
                            erased=erased_households)
    policy = Policy(
        weekly_summary_hour=settings.weekly_summary_hour,
        weekly_summary_catch_up=timedelta(hours=settings.weekly_summary_catch_up_hours),
        ratio_window=timedelta(days=settings.ratio_window_days),
        ratio_min_moments=settings.ratio_min_moments,
        link_snooze=timedelta(minutes=settings.link_snooze_minutes),
        link_occurrence_wait_s=settings.link_occurrence_wait_s,
        timer_max_sleep_s=settings.timer_max_sleep_s,
    )
    producer = None
    if sink is None:
        sink = producer = EventProducer(settings)
    relay = OutboxRelay(
        store, sink, metrics, clock, batch_size=settings.outbox_batch_size, poll_s=settings.outbox_poll_s,
        backoff=Backoff(0.2, settings.outbox_max_backoff_s), connect=producer.start if producer else None,
    )
    service = CheckinsService(store.unit_of_work, clock, metrics, policy, on_commit=relay.wake, producer=SERVICE)
    retry = RetryPolicy(max_attempts=settings.retry_max_attempts,
                        backoff=Backoff(settings.retry_base_delay_s, settings.retry_max_delay_s))
    if settings.batch_max_records > 1:
        reliable = ReliableConsumer(
            broker, service=SERVICE, group_id=group_id, handler=make_handler(service),
            metrics=ConsumerMetrics(registry), retry=retry, accept=HANDLED_TYPES,
            on_invalid=make_invalid_hook(service), vault=vault,
        )
        subscribe_batch(broker, *TOPICS, reliable=reliable, batch_handler=lambda batch: service.handle_batch(batch),
                        readiness=readiness, max_records=settings.batch_max_records,
                        session_timeout_ms=settings.kafka_session_timeout_ms, skip_body_decoding=True)
    else:
        subscribe(
            broker, *TOPICS, service=SERVICE, group_id=group_id, handler=make_handler(service),
            metrics=ConsumerMetrics(registry), readiness=readiness, retry=retry,
            accept=HANDLED_TYPES, session_timeout_ms=settings.kafka_session_timeout_ms,
            on_invalid=make_invalid_hook(service), vault=vault,
        )
    signer = LinkSigner(settings.link_key_map(), settings.current_link_kid())
    http = build_http_app(service, signer, settings.credential_verifier(), metrics, limits=HttpLimits.of(settings),
                          registry=registry)
    return Checkins(settings, service, store, broker, registry, readiness, http, signer, relay, run_timer=run_timer,
                    producer=producer, vault=vault)


def build_app(settings: Settings, *, clock: Clock | None = None, sink: RecordSink | None = None,
              registry: CollectorRegistry | None = None) -> ServiceAsgi:
    parts = build(settings, clock=clock, sink=sink, registry=registry)
    build_info(parts.registry, SERVICE, "1.0.0")
    parts.asgi = service_app(
        service=SERVICE, broker=parts.broker, registry=parts.registry, readiness=parts.readiness,
        on_startup=[parts.prepare], after_startup=[parts.start_timer],
        on_shutdown=[parts.stop_timer, parts.close], http_app=parts.http,
        routes=[(OPEN_PATH, open_route(parts.vault, settings.credential_verifier()))] if parts.vault else [],
        broker_start_timeout_s=settings.kafka_start_timeout_s,
    )
    parts.asgi.checkins = parts  # type: ignore[attr-defined]
    return parts.asgi
