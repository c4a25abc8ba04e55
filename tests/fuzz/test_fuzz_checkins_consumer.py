"""Hostile records on every topic the check-ins service consumes, against the real broker and PostgreSQL.

Per topic: hypothesis-generated hostile records (and two near the 1 MiB limit) interleaved with valid probes.
Every record the contracts refuse is dead-lettered with a reason; every valid record (probe or hostile but
valid) is handled (its event id is in `processed_events`), rejected with a CheckInCommandRejected, or
dead-lettered with a reason; the last probes show no partition stalled; the service is still ready and its
memory grew by a bounded amount.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from attune_checkins.bootstrap import TOPICS, Checkins, build
from attune_checkins.config import Settings
from attune_checkins.usecases import HANDLED_TYPES
from attune_contracts import Envelope, Topic, make_envelope
from attune_contracts.messages import (
    HouseholdKind,
    HouseholdRegistered,
    LogMoment,
    MemberRole,
    MemberUpserted,
    MomentKind,
    RitualDue,
)
from attune_contracts.trust import sender_of
from attune_runtime.testing import temporary_database
from pydantic import SecretStr
from sqlalchemy import text
from support.inprocess import started

from .kafka import MIB, Fuzz, Sent, Watch, report, rss
from .strategies import boundary_records, draw_many, hostile_records, near_size_limit

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

FERNET_KEY = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMDAwMDA="
EXAMPLES = 45
RSS_BOUND = 300 * MIB  # generous: the point is "bounded", not "small" (the bug grew past 500 MB and on)


@contextlib.asynccontextmanager
async def running(fuzz_kafka: str, batch: int) -> AsyncIterator[Checkins]:
    """The service in batches (production's default) or one message at a time (`batch_max_records=1`)."""
    async with temporary_database() as url:
        settings = Settings(environment="development",
            kafka_bootstrap_servers=fuzz_kafka, database_url=url, kafka_session_timeout_ms=6000,
            notes_key=SecretStr(FERNET_KEY), retry_base_delay_s=0.05, retry_max_delay_s=0.2,
            batch_max_records=batch,
        )
        async with started(build(settings, group_id=f"attune-checkins-fuzz-{batch}", run_timer=False)) as parts:
            yield parts


@pytest.fixture(scope="module")
async def checkins(fuzz_kafka: str) -> AsyncIterator[Checkins]:
    async with running(fuzz_kafka, 500) as parts:
        yield parts


@pytest.fixture
async def checkins_one_by_one(fuzz_kafka: str) -> AsyncIterator[Checkins]:
    async with running(fuzz_kafka, 1) as parts:
        yield parts

async def _ready(parts: Checkins) -> bool:
    return bool((await parts.readiness.status())["ready"])


def env(payload: Any, household: UUID) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=sender_of(payload))


async def _ids(parts: Checkins, sql: str, ids: list[Any]) -> set[UUID]:
    if not ids:
        return set()
    async with parts.store.engine.connect() as conn:
        return set((await conn.execute(text(sql), {"ids": ids})).scalars().all())


# One message at a time first (the path the scheduler also runs, and the batch path's fallback), on one topic
# to keep the folder within two minutes: a new group reads its topics from the start, and this way it has
# few of the other runs' records to get through.
async def test_one_by_one_hostile_records_are_dead_lettered_and_valid_ones_still_flow(
    checkins_one_by_one: Checkins, fuzz_kafka: str,
) -> None:
    await fuzz_topic(Topic.CHECKINS_COMMANDS, checkins_one_by_one, fuzz_kafka)


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.value)
async def test_hostile_records_are_dead_lettered_and_valid_ones_still_flow(
    topic: Topic, checkins: Checkins, fuzz_kafka: str,
) -> None:
    await fuzz_topic(topic, checkins, fuzz_kafka)


async def fuzz_topic(topic: Topic, checkins: Checkins, fuzz_kafka: str) -> None:
    household, ana = uuid4(), uuid4()
    now = datetime.now(UTC)

    def make_probe() -> tuple[Envelope[Any], Any]:
        if topic is Topic.SCHEDULER_EVENTS:
            e = env(HouseholdRegistered(name="Probe", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE), uuid4())
        elif topic is Topic.RITUAL_OCCURRENCES:
            e = env(RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement",
                              title="Evening attunement", participants=[ana], scheduled_for=now,
                              local_time="20:30", time_zone="Europe/Lisbon", sensitive=False,
                              deadline=now + timedelta(hours=12)), household)
        else:
            e = env(LogMoment(moment_id=uuid4(), member_id=ana, kind=MomentKind.POSITIVE), household)
        return e, ("event", e.event_id)

    def valid_proof(envelope: Envelope[Any]) -> Any:
        if envelope.type == "scheduler.household_erased":
            # An erasure deletes the household's processed_events too, its own id included.
            return ("erased", envelope.household_id)
        return ("event", envelope.event_id) if envelope.type in HANDLED_TYPES else None

    async with Watch(fuzz_kafka, Topic.CHECKINS_EVENTS) as watch, \
            Fuzz(fuzz_kafka, watch, valid_proof=valid_proof,
                 consumer=f"checkins/attune-checkins-fuzz-{checkins.settings.batch_max_records}") as fuzz:
        zone = "Europe/Lisbon"
        for fact in (HouseholdRegistered(name="Ana", time_zone=zone, kind=HouseholdKind.COUPLE),
                     MemberUpserted(member_id=ana, display_name="Ana", role=MemberRole.PARTNER, time_zone=zone)):
            e = env(fact, household)
            await fuzz.probe(Topic.SCHEDULER_EVENTS, e, ("event", e.event_id), partition=0, label="set-up probe")

        async def handled(probes: list[Sent]) -> set[int]:
            events = await _ids(checkins, "SELECT event_id FROM processed_events WHERE event_id = ANY(:ids)",
                                [p.probe[1] for p in probes if p.probe[0] == "event"])
            erased = await _ids(checkins, "SELECT household_id FROM erased_households WHERE household_id = ANY(:ids)",
                                [p.probe[1] for p in probes if p.probe[0] == "erased"])
            rejected = {getattr(e.payload, "command_event_id", None) for e in watch.events}
            return {i for i, p in enumerate(probes) if p.probe[1] in events | erased | rejected}

        missing = await fuzz.account(handled, timeout=30)
        assert not missing, report("check-ins set-up", missing)
        fuzz.sent.clear()

        records = (draw_many(hostile_records(topic), EXAMPLES) + draw_many(boundary_records(topic), EXAMPLES // 2)
                   + near_size_limit(topic, uuid4()))
        before = rss()
        await fuzz.send_interleaved(topic, records, make_probe)

        missing = await fuzz.account(handled, timeout=60)
        print(f"check-ins on {topic.value}: {fuzz.summary()}")
        assert not missing, report(f"check-ins on {topic.value}", missing)
        assert not watch.broken_letters, f"dead letters that are not DeadLetter records: {watch.broken_letters[:3]}"
        grown = rss() - before
        print(f"  RSS grew by {grown / MIB:.0f} MiB")
        assert grown < RSS_BOUND, f"RSS grew by {grown / MIB:.0f} MiB"
        assert await _ready(checkins), await checkins.readiness.status()

