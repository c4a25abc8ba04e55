"""Hostile records on every topic the notifier consumes, against the real broker and PostgreSQL.

Per topic: hypothesis-generated hostile records (and two near the 1 MiB limit) interleaved with valid probes
whose effect is visible in the notifier's store (a member row, or a delivery planned for the probe's event).
Every record the contracts refuse is dead-lettered with a reason; every probe is handled (one with a header
value that is not UTF-8 may be dead-lettered instead); the last probe on each partition shows none stalled;
/readyz is still green; memory grew by a bounded amount.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from attune_contracts import Envelope, Topic, make_envelope
from attune_contracts.messages import (
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    MemberRole,
    MemberUpserted,
    NotificationRequested,
    RitualDue,
)
from attune_contracts.trust import sender_of
from attune_notifier.bootstrap import TOPICS, build_app
from attune_notifier.config import NotifierSettings
from attune_runtime.tansu import free_port
from attune_runtime.testing import temporary_database
from sqlalchemy import text

from .apps import serving
from .kafka import MIB, Fuzz, Sent, Watch, report, rss
from .strategies import boundary_records, draw_many, hostile_records, near_size_limit

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

EXAMPLES = 45
RSS_BOUND = 300 * MIB


@contextlib.asynccontextmanager
async def running(fuzz_kafka: str, batch: int) -> AsyncIterator[tuple[str, Any]]:
    """The running notifier (in batches, or one event at a time): its base URL and its app."""
    async with temporary_database() as url:
        port = free_port()
        settings = NotifierSettings(environment="development",
            kafka_bootstrap_servers=fuzz_kafka, database_url=url, http_port=port,
            consumer_group=f"attune-notifier-fuzz-{batch}", kafka_session_timeout_ms=6000, delivery_idle_poll_s=0.2,
            retry_base_delay_s=0.05, retry_max_delay_s=0.2, batch_max_records=batch,
        )
        app = build_app(settings)
        async with serving(app, port) as base:
            yield base, app


@pytest.fixture(scope="module")
async def notifier(fuzz_kafka: str) -> AsyncIterator[tuple[str, Any]]:
    async with running(fuzz_kafka, 500) as running_one:
        yield running_one


@pytest.fixture
async def notifier_one_by_one(fuzz_kafka: str) -> AsyncIterator[tuple[str, Any]]:
    async with running(fuzz_kafka, 1) as running_one:
        yield running_one

def env(payload: Any, household: UUID) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=sender_of(payload))


async def _ids(app: Any, sql: str, ids: list[Any]) -> set[UUID]:
    if not ids:
        return set()
    async with app.notifier.store.engine.connect() as conn:
        return set((await conn.execute(text(sql), {"ids": ids})).scalars().all())


# One event at a time on one topic, first (see the check-ins module for why); every topic in batches.
async def test_one_by_one_hostile_records_are_dead_lettered_and_valid_ones_still_flow(
    notifier_one_by_one: tuple[str, Any], fuzz_kafka: str,
) -> None:
    await fuzz_topic(Topic.RITUAL_OCCURRENCES, notifier_one_by_one, fuzz_kafka)


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.value)
async def test_hostile_records_are_dead_lettered_and_valid_ones_still_flow(
    topic: Topic, notifier: tuple[str, Any], fuzz_kafka: str,
) -> None:
    await fuzz_topic(topic, notifier, fuzz_kafka)


async def fuzz_topic(topic: Topic, notifier: tuple[str, Any], fuzz_kafka: str) -> None:
    base, app = notifier
    household, ana = uuid4(), uuid4()
    now = datetime.now(UTC)

    def make_probe() -> tuple[Envelope[Any], Any]:
        """(envelope, ("member" | "cause", id)): what shows that it was handled."""
        if topic is Topic.SCHEDULER_EVENTS:
            member = uuid4()
            e = env(MemberUpserted(member_id=member, display_name="Probe", role=MemberRole.PARTNER,
                                   time_zone="Europe/Lisbon"), household)
            return e, ("member", member)
        if topic is Topic.RITUAL_OCCURRENCES:
            e = env(RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement",
                              title="Evening attunement", participants=[ana], scheduled_for=now,
                              local_time="20:30", time_zone="Europe/Lisbon", sensitive=False,
                              deadline=now + timedelta(hours=12)), household)
        elif topic is Topic.CHECKINS_EVENTS:
            e = env(CheckInRecorded(checkin_id=uuid4(), occurrence_id=uuid4(), ritual_id=uuid4(),
                                    template="evening_attunement", member_id=ana, status=CheckInStatus.SNOOZED,
                                    snoozed_until=now + timedelta(hours=1), scheduled_for=now, recorded_at=now,
                                    source=CheckInSource.LINK), household)
        else:
            e = env(NotificationRequested(member_id=ana, purpose="fuzz_probe", title="Probe", body="A probe."),
                    household)
        return e, ("cause", e.event_id)

    group = app.notifier.settings.consumer_group
    async with Watch(fuzz_kafka) as watch, Fuzz(fuzz_kafka, watch, consumer=f"notifier/{group}") as fuzz:

        async def handled(probes: list[Sent]) -> set[int]:
            members = await _ids(app, "SELECT member_id FROM notifier_members WHERE member_id = ANY(:ids)",
                                 [p.probe[1] for p in probes if p.probe[0] == "member"])
            causes = await _ids(app, "SELECT cause_event_id FROM notifier_deliveries WHERE cause_event_id = ANY(:ids)",
                                [p.probe[1] for p in probes if p.probe[0] == "cause"])
            return {i for i, p in enumerate(probes) if p.probe[1] in members | causes}

        ana_joins = env(MemberUpserted(member_id=ana, display_name="Ana", role=MemberRole.PARTNER,
                                       time_zone="Europe/Lisbon"), household)
        await fuzz.probe(Topic.SCHEDULER_EVENTS, ana_joins, ("member", ana), partition=0, label="set-up probe")
        missing = await fuzz.account(handled, timeout=30)
        assert not missing, report("notifier set-up", missing)
        fuzz.sent.clear()

        records = (draw_many(hostile_records(topic), EXAMPLES) + draw_many(boundary_records(topic), EXAMPLES // 2)
                   + near_size_limit(topic, uuid4()))
        before = rss()
        await fuzz.send_interleaved(topic, records, make_probe)

        missing = await fuzz.account(handled, timeout=60)
        print(f"notifier on {topic.value}: {fuzz.summary()}")
        assert not missing, report(f"notifier on {topic.value}", missing)
        assert not watch.broken_letters, f"dead letters that are not DeadLetter records: {watch.broken_letters[:3]}"
        grown = rss() - before
        print(f"  RSS grew by {grown / MIB:.0f} MiB")
        assert grown < RSS_BOUND, f"RSS grew by {grown / MIB:.0f} MiB"
        async with httpx.AsyncClient(base_url=base) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
