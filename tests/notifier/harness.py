"""The notifier's parts wired without Kafka: real store (SQLite or PostgreSQL), real Apprise, recorded outcomes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from attune_contracts import make_envelope
from attune_contracts.links import LinkSigner
from attune_contracts.messages import MemberRole, MemberUpserted
from attune_contracts.trust import sender_of
from attune_notifier.adapters.apprise_sender import AppriseSender, validate_channel_url
from attune_notifier.adapters.sql import ChannelCipher, SqlStore, make_engine, migrate
from attune_notifier.delivery import DeliveryWorker
from attune_notifier.handlers import NotifierHandler
from attune_notifier.metrics import NotifierMetrics
from attune_notifier.service import RetryPlan
from attune_runtime.testing import FakeClock
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from .conftest import HOUSEHOLD, RecordingPublisher

LINK_KEYS = {"k1": "a-test-link-key-of-enough-length"}
PUBLIC_URL = "https://checkins.example.org"


@dataclass
class Harness:
    store: SqlStore
    worker: DeliveryWorker
    handler: NotifierHandler
    publisher: RecordingPublisher
    clock: FakeClock
    metrics: NotifierMetrics
    registry: CollectorRegistry
    signer: LinkSigner

    async def event(self, payload: Any, household: UUID = HOUSEHOLD) -> Any:
        env = make_envelope(payload, household_id=household, producer=sender_of(payload), occurred_at=self.clock.now())
        await self.handler(env)
        return env

    async def member(self, member_id: UUID, name: str, *, zone: str = "Europe/London",
                     household: UUID = HOUSEHOLD, **prefs: Any) -> None:
        await self.store.upsert_member(household, MemberUpserted(
            member_id=member_id, display_name=name, role=MemberRole.PARTNER, time_zone=zone), self.clock.now())
        if prefs:
            await self.store.update_preferences(member_id, prefs, self.clock.now())

    async def channel(self, member_id: UUID, url: str, position: int | None = None) -> None:
        kind = validate_channel_url(url)
        recipient = await self.store.get_member(member_id)
        assert recipient is not None
        await self.store.add_channel(recipient, kind, url, position, self.clock.now())

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def close(self) -> None:
        await self.store.engine.dispose()


async def make_harness(db_url: str, clock: FakeClock, *, key: str | None = None, sender: Any = None,
                       retry: RetryPlan | None = None, seed: int = 1, concurrency: int = 8,
                       **worker_options: Any) -> Harness:
    engine = make_engine(db_url)
    await migrate(engine)
    store = SqlStore(engine, ChannelCipher(key or Fernet.generate_key().decode()))
    registry = CollectorRegistry()
    metrics = NotifierMetrics(registry)
    publisher = RecordingPublisher()
    signer = LinkSigner(LINK_KEYS, "k1")
    worker = DeliveryWorker(store, sender or AppriseSender(timeout_s=10), publisher, metrics, clock=clock,
                            signer=signer, public_url=PUBLIC_URL, retry=retry or RetryPlan(),
                            rng=random.Random(seed), concurrency=concurrency, **worker_options)
    handler = NotifierHandler(store, publisher, worker, metrics, clock=clock)
    return Harness(store, worker, handler, publisher, clock, metrics, registry, signer)


async def run_until_settled(h: Harness, *, max_rounds: int = 40) -> None:
    """Drain, then jump the clock to the next planned attempt, until nothing is left to do."""
    for _ in range(max_rounds):
        await h.worker.drain()
        nxt = await h.store.next_due_at()
        if nxt is None:
            return
        h.clock.set(max(h.clock.now(), nxt))
    raise AssertionError("deliveries did not settle")
