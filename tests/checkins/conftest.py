"""Fakes and a harness for the check-ins tests: the real SQL store (SQLite file or PostgreSQL), a fake clock,
and a sink that records every event the outbox relay published. The harness publishes right after each commit
(the relay's pass runs as the service's `on_commit`), so a test reads what a use case announced at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from attune_checkins.adapters.migrate import upgrade
from attune_checkins.adapters.sql import NoteCipher, SqlStore, make_engine
from attune_checkins.bootstrap import Checkins, build
from attune_checkins.config import Settings
from attune_checkins.metrics import Metrics
from attune_checkins.ports import Record
from attune_checkins.relay import OutboxRelay
from attune_checkins.service import derived_id
from attune_checkins.usecases import CheckinsService, Policy
from attune_contracts import Envelope, make_envelope, parse, spec_of
from attune_contracts.credentials import development_issuer
from attune_contracts.links import LinkAction, LinkSigner
from attune_contracts.messages import (
    CheckInStatus,
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    RitualDue,
    SubmitCheckIn,
)
from attune_contracts.trust import sender_of
from attune_contracts.types import Contract
from attune_runtime.testing import FakeClock, temporary_database
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

FERNET_KEY = b"dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMDAwMDA="  # 32 bytes, urlsafe base64


@dataclass
class Published:
    payload: Contract
    household_id: UUID
    event_id: UUID | None
    correlation_id: str | None


class FakeSink:
    """Stands in for the producer: records what the relay sends, parsed back into envelopes."""

    def __init__(self) -> None:
        self.published: list[Published] = []
        self.records: list[Record] = []
        self.down = False  # True: every send fails, as with the broker unreachable

    async def send_all(self, records: list[Record]) -> None:
        if self.down:
            raise ConnectionError("broker unavailable")
        for topic, key, value, headers in records:
            envelope = parse(value)
            assert key == envelope.key and topic == spec_of(type(envelope.payload)).topic.value
            self.records.append((topic, key, value, headers))
            self.published.append(Published(envelope.payload, envelope.household_id, envelope.event_id,
                                            envelope.correlation_id))

    def event_ids(self) -> list[UUID]:
        return [p.event_id for p in self.published if p.event_id is not None]

    def of(self, kind: type) -> list[Any]:
        return [p.payload for p in self.published if isinstance(p.payload, kind)]

    def types(self) -> list[str]:
        return [type(p.payload).__name__ for p in self.published]

    def clear(self) -> None:
        self.published.clear()
        self.records.clear()


@dataclass
class Harness:
    service: CheckinsService
    store: SqlStore
    sink: FakeSink
    clock: FakeClock
    registry: CollectorRegistry
    relay: OutboxRelay
    household: UUID = field(default_factory=uuid4)
    ana: UUID = field(default_factory=uuid4)
    ben: UUID = field(default_factory=uuid4)
    zone: str = "America/New_York"

    async def send(self, payload: Contract, *, occurred_at: datetime | None = None, household: UUID | None = None,
                   event_id: UUID | None = None) -> Envelope[Any]:
        envelope = make_envelope(payload, household_id=household or self.household, producer=sender_of(payload),
                                 occurred_at=occurred_at or self.clock.now(), event_id=event_id)
        await self.service.handle(envelope)
        return envelope

    async def setup_household(self) -> None:
        await self.send(HouseholdRegistered(name="Ana & Ben", time_zone=self.zone, kind=HouseholdKind.COUPLE))
        for member, name in ((self.ana, "Ana"), (self.ben, "Ben")):
            await self.send(MemberUpserted(member_id=member, display_name=name, role=MemberRole.PARTNER,
                                           time_zone=self.zone))

    def due(self, ritual_id: UUID, scheduled_for: datetime, *, template: str = "evening_attunement",
            window: timedelta = timedelta(hours=14), participants: list[UUID] | None = None,
            title: str = "Evening attunement", sensitive: bool = False) -> RitualDue:
        from zoneinfo import ZoneInfo

        return RitualDue(
            occurrence_id=derived_id("occ", ritual_id, scheduled_for.isoformat()), ritual_id=ritual_id,
            template=template, title=title, participants=participants or [self.ana, self.ben],
            scheduled_for=scheduled_for, local_time=scheduled_for.astimezone(ZoneInfo(self.zone)).isoformat(),
            time_zone=self.zone, sensitive=sensitive, deadline=scheduled_for + window,
        )

    async def check_in(self, due: RitualDue, member: UUID, status: CheckInStatus = CheckInStatus.DONE, *,
                       at: datetime | None = None, **extra: Any) -> Envelope[Any]:
        return await self.send(SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=member, status=status,
                                             **extra), occurred_at=at or due.scheduled_for + timedelta(minutes=30))

    async def count(self, table: str) -> int:
        from sqlalchemy import text

        async with self.store.engine.connect() as conn:
            return (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def publish_now(relay: OutboxRelay) -> None:
    """The harness's on_commit: publish what was just committed (a sink that is down leaves it waiting)."""
    with contextlib.suppress(ConnectionError):
        await relay.relay_once()


async def make_harness(url: str, now: datetime, policy: Policy | None = None) -> Harness:
    store = SqlStore(make_engine(url), NoteCipher([FERNET_KEY]))
    await upgrade(store.engine)
    registry = CollectorRegistry()
    clock, sink = FakeClock(now), FakeSink()
    metrics = Metrics(registry)
    relay = OutboxRelay(store, sink, metrics, clock)
    service = CheckinsService(store.unit_of_work, clock, metrics, policy or Policy(), on_commit=lambda: publish_now(relay))
    return Harness(service, store, sink, clock, registry, relay)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await make_harness(f"sqlite+aiosqlite:///{tmp_path}/checkins.db", datetime(2027, 3, 1, 12, tzinfo=UTC))
    try:
        yield h
    finally:
        await h.store.close()


# Each case carries its own marker: the SQLite one is a unit test, the PostgreSQL one an integration test.
@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.unit),
                        pytest.param("postgresql", marks=pytest.mark.integration)])
async def any_harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The harness on SQLite and on the machine's PostgreSQL (for statements that differ by dialect)."""
    async with contextlib.AsyncExitStack() as stack:
        url = (f"sqlite+aiosqlite:///{tmp_path}/checkins.db" if request.param == "sqlite"
               else await stack.enter_async_context(temporary_database()))
        h = await make_harness(url, datetime(2027, 3, 1, 12, tzinfo=UTC))
        try:
            yield h
        finally:
            await h.store.close()


# ---- the HTTP app in process (httpx ASGITransport) over the real store on SQLite -----------------------

KEYS = {"k1": "current-link-secret-0123456789", "k0": "older-link-secret-0123456789"}


@dataclass
class Api:
    parts: Checkins
    h: Harness
    client: httpx.AsyncClient
    due: RitualDue

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {development_issuer().household(self.h.household, now=self.h.clock.now())}"}

    def mint(self, action: LinkAction = LinkAction.DONE, *, member: UUID | None = None, signer: LinkSigner | None = None,
             occurrence: UUID | None = None, now: datetime | None = None, ttl: timedelta = timedelta(hours=36),
             locale: str | None = None) -> str:
        return (signer or self.parts.signer).mint(
            household_id=self.h.household, occurrence_id=occurrence or self.due.occurrence_id,
            member_id=member or self.h.ana, action=action, now=now or self.h.clock.now(), ttl=ttl, locale=locale,
        )

    def failures(self, reason: str) -> float:
        return self.parts.registry.get_sample_value("attune_checkins_link_failures_total", {"reason": reason}) or 0


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(environment="development",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/api.db", notes_key=SecretStr(FERNET_KEY.decode()),
        link_keys=SecretStr(",".join(f"{k}:{v}" for k, v in KEYS.items())), link_current_kid="k1",
        link_occurrence_wait_s=1.0,
    )
    clock, sink = FakeClock(datetime(2027, 3, 2, 1, 45, tzinfo=UTC)), FakeSink()
    parts = build(settings, clock=clock, sink=sink, run_timer=False)
    parts.service.on_commit = lambda: publish_now(parts.relay)  # published at once, as in the harness
    await upgrade(parts.store.engine)
    h = Harness(parts.service, parts.store, sink, clock, parts.registry, parts.relay)
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC), title="Evening <script>alert(1)</script>")
    await h.send(due)
    sink.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parts.http), base_url="http://checkins") as client:
        yield Api(parts, h, client, due)
    await parts.store.close()
