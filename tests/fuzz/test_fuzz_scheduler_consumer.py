"""Hostile records on the scheduler's command topic, against the real broker and PostgreSQL.

Two kinds: hypothesis-generated hostile records (as for every consumer), and commands the contracts accept
but whose RRULE, start date, local time or time zone is hostile (COUNT=999999999 from year 1, BYSETPOS
that never matches, Lord Howe's half-hour DST, ...). Every record the contracts refuse is dead-lettered with
a reason; every command the contracts accept is answered (a fact with its correlation id, or a
SchedulerCommandRejected naming it) or dead-lettered with a reason; the probes (RegisterHousehold of a new
household) interleaved and sent last are handled within the wait, so nothing stalled the consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from attune_contracts import Envelope, Topic, make_envelope
from attune_contracts.messages import MemberRole, RegisterHousehold, ScheduleRitual, UpsertMember
from attune_contracts.trust import sender_of
from attune_runtime.tansu import free_port
from attune_runtime.testing import temporary_database
from attune_scheduler.bootstrap import build_app
from attune_scheduler.config import SchedulerSettings
from attune_scheduler.handlers import COMMAND_TYPES
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from .apps import serving
from .kafka import MIB, Fuzz, Sent, Watch, report, rss
from .samples import example_envelope
from .strategies import (
    HOSTILE_ZONES,
    Record,
    boundary_records,
    draw_many,
    dumps,
    hostile_records,
    hostile_rrules,
    near_size_limit,
)

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

EXAMPLES = 45
RSS_BOUND = 300 * MIB


@pytest.fixture(scope="module")
async def scheduler(fuzz_kafka: str) -> AsyncIterator[str]:
    """The running scheduler's base URL."""
    async with temporary_database() as url:
        port = free_port()
        settings = SchedulerSettings(
            environment="development", kafka_bootstrap_servers=fuzz_kafka, http_port=port, database_url=url, group_id="attune-scheduler-fuzz",
            kafka_session_timeout_ms=6000, relay_poll_s=0.1, metrics_refresh_s=0.5, retry_base_delay_s=0.05,
            retry_max_delay_s=0.2,
        )
        app = build_app(settings, registry=CollectorRegistry())
        async with serving(app, port) as base:
            yield base


def command(payload: Any, household: uuid.UUID) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=sender_of(payload))


@st.composite
def hostile_schedules(draw: st.DrawFn, household: uuid.UUID, members: list[uuid.UUID],
                      ritual: uuid.UUID) -> Record:
    """A ScheduleRitual, UpdateRitual or RegisterHousehold for a real household with hostile recurrence or zone."""
    from attune_contracts.registry import lookup

    kind = draw(st.sampled_from(["scheduler.schedule_ritual", "scheduler.update_ritual",
                                 "scheduler.register_household"]))
    env = example_envelope(lookup(kind, 1), household)  # type: ignore[arg-type]
    p = env["payload"]
    if kind == "scheduler.register_household":
        p["time_zone"] = draw(st.sampled_from(HOSTILE_ZONES))
    else:
        if kind == "scheduler.schedule_ritual":
            p["template"] = draw(st.sampled_from(["evening_attunement", "date_night", "experiment_together"]))
            p["participants"] = [str(m) for m in members]
        else:
            p["ritual_id"] = str(ritual)
        p["rrule"] = draw(hostile_rrules())
        p["start_date"] = draw(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))).isoformat()
        p["local_time"] = draw(st.sampled_from(["02:30", "00:00", "23:59", "01:59", "03:00"]))
        p["reminder_offsets_minutes"] = draw(st.lists(st.integers(min_value=1, max_value=7 * 24 * 60), max_size=5))
    return Record(f"{kind}:hostile_recurrence_or_zone", dumps(env), str(household).encode())


def the_issues_rules(household: uuid.UUID, members: list[uuid.UUID]) -> list[Record]:
    """The rules the issue timed: ~1.8 s a lookup from year 1, ~9.5 s with five reminder offsets."""
    rules = [("FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=999999999", [1, 2, 3, 4, 5]),
             ("FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=999999999", []),
             ("FREQ=MONTHLY;BYMONTHDAY=31;BYSETPOS=-1;COUNT=999999", [60, 1440]),
             ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", [10])]
    return [Record("the issue's rule from year 1", command(ScheduleRitual(
        ritual_id=uuid.uuid4(), template="evening_attunement", participants=members, rrule=rule, local_time="02:30",
        start_date=date(1, 1, 1), reminder_offsets_minutes=offsets), household).to_bytes(), str(household).encode())
        for rule, offsets in rules]


async def test_hostile_commands_are_dead_lettered_or_rejected_and_commands_still_flow(
    scheduler: str, fuzz_kafka: str,
) -> None:
    household, ana, ben, ritual = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    topic = Topic.SCHEDULER_COMMANDS

    def make_probe() -> tuple[Envelope[Any], Any]:
        e = command(RegisterHousehold(name="Probe", time_zone="Europe/Lisbon"), uuid.uuid4())
        return e, (e.event_id, e.correlation_id)

    def valid_proof(envelope: Envelope[Any]) -> Any:
        return (envelope.event_id, envelope.correlation_id) if envelope.type in COMMAND_TYPES else None

    async with Watch(fuzz_kafka, Topic.SCHEDULER_EVENTS) as watch, \
            Fuzz(fuzz_kafka, watch, valid_proof=valid_proof, consumer="scheduler/attune-scheduler-fuzz") as fuzz:

        async def handled(probes: list[Sent]) -> set[int]:
            return {i for i, p in enumerate(probes) if watch.answered(*p.probe)}

        set_up = [
            command(RegisterHousehold(name="Ana & Ben", time_zone="America/New_York"), household),
            command(UpsertMember(member_id=ana, display_name="Ana", role=MemberRole.PARTNER), household),
            command(UpsertMember(member_id=ben, display_name="Ben", role=MemberRole.PARTNER), household),
            command(ScheduleRitual(ritual_id=ritual, template="evening_attunement", participants=[ana, ben],
                                   rrule="FREQ=DAILY", local_time="20:30", start_date=date(2027, 1, 1)), household),
        ]
        for e in set_up:
            await fuzz.probe(topic, e, (e.event_id, e.correlation_id), partition=0, label="set-up probe")
        missing = await fuzz.account(handled, timeout=30)
        assert not missing, report("scheduler set-up", missing)
        fuzz.sent.clear()

        records = (draw_many(hostile_records(topic), EXAMPLES) + draw_many(boundary_records(topic), EXAMPLES // 2)
                   + draw_many(hostile_schedules(household, [ana, ben], ritual), EXAMPLES // 2)
                   + the_issues_rules(household, [ana, ben])
                   + near_size_limit(topic, uuid.uuid4()))
        before = rss()
        await fuzz.send_interleaved(topic, records, make_probe)

        missing = await fuzz.account(handled, timeout=60)
        print(f"scheduler on {topic.value}: {fuzz.summary()}")
        assert not missing, report(f"scheduler on {topic.value}", missing)
        reached = [s for s in fuzz.sent if s.refused is None and "hostile_recurrence" in s.record.label]
        assert len(reached) >= 5, "too few hostile rules got past the contracts to reach the recurrence code"
        assert not watch.broken_letters, f"dead letters that are not DeadLetter records: {watch.broken_letters[:3]}"
        grown = rss() - before
        print(f"  RSS grew by {grown / MIB:.0f} MiB")
        assert grown < RSS_BOUND, f"RSS grew by {grown / MIB:.0f} MiB"
        async with httpx.AsyncClient(base_url=scheduler) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
