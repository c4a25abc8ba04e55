"""All the notifier's wiring in one place; every connection is made here, none at import."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from attune_contracts import Publisher, Topic
from attune_contracts.links import LinkSigner
from attune_contracts.sealing import use_field_keys
from attune_runtime.app import ServiceAsgi, build_info, service_app
from attune_runtime.batch import subscribe_batch
from attune_runtime.consumer import ConsumerMetrics, Readiness, ReliableConsumer, RetryPolicy, subscribe
from attune_runtime.deadletters import OPEN_PATH, DeadLetterVault, open_route
from attune_runtime.http import HttpLimits
from attune_runtime.kafka import broker_publisher, ensure_topics, kafka_client_options, make_broker
from attune_runtime.producer import BatchProducer
from attune_runtime.retry import Backoff
from prometheus_client import CollectorRegistry

from .adapters.apprise_sender import AppriseSender, install_log_guard
from .adapters.outcomes import CoalescingSend
from .adapters.sql import ChannelCipher, SqlStore, make_engine, migrate
from .adapters.tables import dead_letter_keys, erased_households
from .adapters.webpush_sender import SenderWithWebPush, WebPushSender
from .api import WebPushIntake, build_http_app
from .config import NotifierSettings
from .delivery import DeliveryWorker
from .handlers import ACCEPTED_TYPES, NotifierHandler
from .metrics import NotifierMetrics
from .ports import Clock, Sender
from .service import RetryPlan
from .warmup import PluginWarmer
from .webpush import public_key_text

SERVICE = "notifier"
TOPICS = (Topic.RITUAL_OCCURRENCES, Topic.CHECKINS_EVENTS, Topic.NOTIFICATION_REQUESTS, Topic.SCHEDULER_EVENTS)
log = logging.getLogger("attune.notifier")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Notifier:
    """The parts, for tests and tools: `app.notifier`."""

    settings: NotifierSettings
    store: SqlStore
    worker: DeliveryWorker
    handler: NotifierHandler
    metrics: NotifierMetrics
    registry: CollectorRegistry
    readiness: Readiness


def build_app(
    settings: NotifierSettings,
    *,
    clock: Clock = utc_now,
    sender: Sender | None = None,
    registry: CollectorRegistry | None = None,
    rng: random.Random | None = None,
    run_worker: bool = True,
) -> ServiceAsgi:
    install_log_guard()
    registry = registry or CollectorRegistry()
    build_info(registry, SERVICE, "0.1.0")
    metrics = NotifierMetrics(registry)
    readiness = Readiness()
    broker = make_broker(settings, service=SERVICE, registry=registry)
    publisher: Publisher = broker_publisher(broker, service=SERVICE)
    engine = make_engine(settings.database_url)
    store = SqlStore(engine, ChannelCipher(settings.channel_key.get_secret_value()))
    use_field_keys(settings.field_keyring())  # private fields on Kafka: sealed out, opened in
    vault = DeadLetterVault(engine, dead_letter_keys, settings.dead_letter_keys(), service=SERVICE,
                            erased=erased_households)
    signer = LinkSigner(settings.link_key_map(), settings.link_kid)
    if sender is None:
        apprise: AppriseSender | None = AppriseSender(
            timeout_s=settings.send_timeout_s, max_in_flight=settings.delivery_concurrency,
            per_host=settings.per_host_concurrency(), cache_size=settings.plugin_cache_size)
        sender = SenderWithWebPush(apprise, WebPushSender(settings.vapid_key(), settings.vapid_contact,
                                                          ttl_s=settings.webpush_ttl_s, timeout_s=settings.send_timeout_s))
    else:
        apprise = sender if isinstance(sender, AppriseSender) else None
    # Web push subscriptions are not Apprise URLs: the warmer parses only the others.
    warmer = PluginWarmer(store, apprise, settings.plugin_warm_interval_s) if apprise is not None else None
    # Delivery outcomes leave many to a produce call (adapters/outcomes.py), not one FastStream publish each.
    outcome_send = CoalescingSend(BatchProducer(
        kafka_client_options(settings), client_id=f"{settings.kafka_client_id or 'attune-notifier'}-outcomes"))
    worker = DeliveryWorker(
        store, sender,
        Publisher(outcome_send, producer=SERVICE), metrics, clock=clock, signer=signer, public_url=settings.checkins_public_url,
        retry=RetryPlan(attempts_per_channel=settings.delivery_attempts_per_channel,
                        backoff=Backoff(settings.delivery_retry_base_s, settings.delivery_retry_max_s),
                        transient_backoff=Backoff(settings.delivery_transient_retry_base_s,
                                                  settings.delivery_retry_max_s, factor=3.0),
                        max_retry_after_s=settings.delivery_retry_after_max_s,
                        unknown_retry_delay=timedelta(seconds=settings.delivery_unknown_retry_s)),
        concurrency=settings.delivery_concurrency, per_host=settings.per_host_concurrency(),
        batch=settings.delivery_batch,
        send_timeout_s=settings.send_timeout_s, lease=timedelta(seconds=settings.delivery_lease_s),
        idle_poll_s=settings.delivery_idle_poll_s, rng=rng,
    )
    handler = NotifierHandler(store, publisher, worker, metrics, clock=clock)
    retry = RetryPolicy(max_attempts=settings.retry_max_attempts,
                        backoff=Backoff(settings.retry_base_delay_s, settings.retry_max_delay_s))
    if settings.batch_max_records > 1:
        # A failing batch falls back to this per-message consumer (retries, then the dead-letter topic).
        reliable = ReliableConsumer(broker, service=SERVICE, group_id=settings.consumer_group, handler=handler,
                                    metrics=ConsumerMetrics(registry), retry=retry, accept=ACCEPTED_TYPES, vault=vault)
        subscribe_batch(broker, *TOPICS, reliable=reliable, batch_handler=handler.handle_batch,
                        readiness=readiness, max_records=settings.batch_max_records,
                        session_timeout_ms=settings.kafka_session_timeout_ms)
    else:
        subscribe(broker, *TOPICS, service=SERVICE, group_id=settings.consumer_group, handler=handler,
                  metrics=ConsumerMetrics(registry), readiness=readiness, accept=ACCEPTED_TYPES, retry=retry,
                  session_timeout_ms=settings.kafka_session_timeout_ms, vault=vault)

    async def database_ready() -> bool:
        return await store.ping()

    readiness.add_check(database_ready)

    async def start_up() -> None:
        await migrate(engine)
        await vault.rewrap()  # after a DEAD_LETTER_KEY rotation, every data key under the new first key
        await store.seal_plaintext_params()  # rows from before params were encrypted (issue 13)
        if settings.kafka_create_topics:
            await ensure_topics(settings)

    async def start_worker() -> None:
        if run_worker:
            worker.start()
            if warmer is not None:
                warmer.start()

    async def shut_down() -> None:
        if warmer is not None:
            await warmer.stop()
        await worker.stop()
        await outcome_send.stop()
        close = getattr(worker.sender, "close", None)
        if close is not None:  # the sender's kept-alive connections and send threads
            close()
        await engine.dispose()

    app = service_app(
        service=SERVICE, broker=broker, registry=registry, readiness=readiness,
        on_startup=[start_up], after_startup=[start_worker], on_shutdown=[shut_down],
        routes=[(OPEN_PATH, open_route(vault, settings.credential_verifier()))],
        http_app=build_http_app(store, metrics, verifier=settings.credential_verifier(), clock=clock,
                                limits=HttpLimits.of(settings), registry=registry,
                                webpush=WebPushIntake(public_key_text(settings.vapid_key()),
                                                      settings.webpush_hosts()),
                                wake=worker.wake),
        broker_start_timeout_s=settings.kafka_start_timeout_s,
    )
    app.vault = vault  # type: ignore[attr-defined]
    app.notifier = Notifier(settings, store, worker, handler, metrics, registry, readiness)  # type: ignore[attr-defined]
    return app
