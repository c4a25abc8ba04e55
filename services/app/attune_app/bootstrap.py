"""All the wiring of the web app. Nothing connects at import; tests override any part."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from attune_contracts import Topic
from attune_contracts.sealing import use_field_keys
from attune_runtime.app import ServiceAsgi, build_info, service_app
from attune_runtime.consumer import ConsumerMetrics, Readiness, RetryPolicy, subscribe
from attune_runtime.deadletters import OPEN_PATH, DeadLetterVault, open_route
from attune_runtime.http import HttpLimits
from attune_runtime.kafka import ensure_topics, make_broker
from attune_runtime.retry import Backoff
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from .adapters.migrate import upgrade
from .adapters.notifier import HttpNotifier
from .adapters.sql import SqlStore, make_engine
from .adapters.tables import dead_letter_keys, erased_households
from .adapters.upstream import BrokerCommands, HttpCheckins
from .config import Settings
from .handlers import HANDLED_TYPES, make_handler
from .http import HttpOptions, build_http_app
from .ports import CheckinsApi, Clock, Commands, SystemClock
from .usecases import AppService, Policy

SERVICE = "app"
TOPICS = (Topic.SCHEDULER_EVENTS, Topic.RITUAL_OCCURRENCES, Topic.CHECKINS_EVENTS, Topic.QUESTIONS)


@dataclass
class App:
    """The running parts, so tests can reach them."""

    settings: Settings
    service: AppService
    store: SqlStore
    broker: KafkaBroker
    registry: CollectorRegistry
    readiness: Readiness
    http: FastAPI
    checkins: CheckinsApi
    asgi: ServiceAsgi | None = None
    notifier: HttpNotifier | None = None
    vault: DeadLetterVault | None = None

    async def prepare(self) -> None:
        await upgrade(self.store.engine)
        if self.vault is not None:
            await self.vault.rewrap()  # after a DEAD_LETTER_KEY rotation, every data key under the new first key
        if self.settings.kafka_create_topics:
            await ensure_topics(self.settings, [*TOPICS, Topic.SCHEDULER_COMMANDS, Topic.DEAD_LETTER])

    async def close(self) -> None:
        for client in (self.checkins, self.notifier):
            close = getattr(client, "close", None)
            if close is not None:
                await close()
        await self.store.close()

    async def start(self) -> None:
        """The whole service without uvicorn (tests)."""
        await self.prepare()
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()
        await self.close()


def build(settings: Settings, *, clock: Clock | None = None, commands: Commands | None = None,
          checkins: CheckinsApi | None = None, registry: CollectorRegistry | None = None,
          group_id: str | None = None, notifier: HttpNotifier | None = None) -> App:
    registry = registry or CollectorRegistry()
    broker = make_broker(settings, service=SERVICE, registry=registry)
    readiness = Readiness()
    store = SqlStore(make_engine(settings.database_url))
    readiness.add_check(store.ping)
    use_field_keys(settings.field_keyring())  # private fields on Kafka: sealed out, opened in
    vault = DeadLetterVault(store.engine, dead_letter_keys, settings.dead_letter_keys(), service=SERVICE,
                            erased=erased_households)
    issuer = settings.issuer()
    checkins = checkins or HttpCheckins(settings.checkins_url, issuer, timeout_s=settings.upstream_timeout_s,
                                        ttl=timedelta(minutes=settings.credential_ttl_minutes))
    notifier = notifier or HttpNotifier(settings.notifier_url, issuer, timeout_s=settings.upstream_timeout_s,
                                        ttl=timedelta(minutes=settings.credential_ttl_minutes))
    service = AppService(store, commands or BrokerCommands(broker), checkins, clock or SystemClock(),
                         Policy(invite_ttl=timedelta(hours=settings.invite_ttl_hours),
                                session_ttl=timedelta(days=settings.session_days)))
    subscribe(
        broker, *TOPICS, service=SERVICE, group_id=group_id or settings.group_id, handler=make_handler(store),
        metrics=ConsumerMetrics(registry), readiness=readiness,
        retry=RetryPolicy(max_attempts=settings.retry_max_attempts,
                          backoff=Backoff(settings.retry_base_delay_s, settings.retry_max_delay_s)),
        accept=HANDLED_TYPES, session_timeout_ms=settings.kafka_session_timeout_ms, vault=vault,
    )
    http = build_http_app(service, HttpOptions(
        form_key=settings.form_key(), secure_cookies=settings.secure_cookies, public_url=settings.public_url,
        session_max_age_s=settings.session_days * 86400, limits=HttpLimits.of(settings), ntfy_url=settings.ntfy_url,
        email_relay=settings.email_url.get_secret_value() if settings.email_url else None), registry=registry,
        notifier=notifier)
    return App(settings, service, store, broker, registry, readiness, http, checkins, notifier=notifier, vault=vault)


def build_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> ServiceAsgi:
    parts = build(settings, registry=registry)
    build_info(parts.registry, SERVICE, "0.1.0")
    parts.asgi = service_app(
        service=SERVICE, broker=parts.broker, registry=parts.registry, readiness=parts.readiness,
        on_startup=[parts.prepare], on_shutdown=[parts.close], http_app=parts.http,
        routes=[(OPEN_PATH, open_route(parts.vault, settings.credential_verifier()))] if parts.vault else [],
        broker_start_timeout_s=settings.kafka_start_timeout_s,
    )
    parts.asgi.app_parts = parts  # type: ignore[attr-defined]
    return parts.asgi
