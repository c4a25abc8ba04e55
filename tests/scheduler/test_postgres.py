"""On PostgreSQL: two instances share the work with zero duplicates and zero missing; restarts lose nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from attune_contracts.messages import RegisterHousehold, UpsertMember
from attune_runtime.testing import eventually
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.adapters.tables import households, members, rituals
from attune_scheduler.model import Ritual
from attune_scheduler.recurrence import Recurrence, occurrence_id
from attune_scheduler.waking import plan

from .clock import FakeClock
from .helpers import RecordingSink, command, make_scheduler, schedule

pytestmark = [pytest.mark.integration]

START = datetime(2027, 3, 13, 0, 0, tzinfo=UTC)
ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"]


@pytest.fixture
async def second_store(pg_url: str, pg_store: SqlStore) -> AsyncIterator[SqlStore]:
    s = SqlStore.from_url(pg_url)
    await s.migrate()  # a second instance migrating the same database is a no-op
    try:
        yield s
    finally:
        await s.close()


async def seed_rituals(store: SqlStore, n: int, *, rrule: str, at: str, now: datetime,
                       catch_up: int = 180, zones: list[str] = ZONES) -> list[Ritual]:
    """Insert `n` households with one ritual each straight into the tables (fast set-up for volume tests)."""
    made: list[Ritual] = []
    async with store.engine.begin() as conn:
        hh_rows, member_rows, ritual_rows = [], [], []
        for i in range(n):
            household, person = uuid.uuid4(), uuid.uuid4()
            zone = zones[i % len(zones)]
            hh_rows.append({"id": household, "name": f"H{i}", "time_zone": zone, "kind": "couple", "updated_at": now})
            member_rows.append({"household_id": household, "member_id": person, "display_name": "A", "role": "partner"})
            ritual = plan(Ritual(
                id=uuid.uuid4(), household_id=household, template="evening_attunement", title=None,
                participants=[person], rrule=rrule, local_time=at, start_date=date(2027, 3, 1), time_zone=zone,
                reminder_offsets=[], catch_up_minutes=catch_up, sensitive=False,
            ), now)
            made.append(ritual)
            ritual_rows.append({
                "id": ritual.id, "household_id": household, "template": ritual.template, "title": None,
                "participants": [str(person)], "rrule": rrule, "local_time": at, "start_date": ritual.start_date,
                "time_zone": zone, "reminder_offsets": [], "catch_up_minutes": catch_up, "sensitive": False, "paused": False,
                "consents": [], "state": "active", "next_due_at": ritual.next_due_at, "next_reminder_at": None,
                "reminder_cursor": now, "wake_at": ritual.wake_at, "updated_at": now,
            })
        await conn.execute(households.insert(), hh_rows)
        await conn.execute(members.insert(), member_rows)
        await conn.execute(rituals.insert(), ritual_rows)
    return made


def expected_ids(made: list[Ritual], start: datetime, end: datetime) -> set[uuid.UUID]:
    ids = set()
    for r in made:
        rec = Recurrence.of(r.rrule, r.local_time, r.start_date, r.time_zone)
        ids |= {occurrence_id(r.id, i) for i in rec.between(start, end)}
    return ids


@pytest.mark.parametrize("lookahead", [timedelta(0), timedelta(minutes=20)], ids=["at-instant", "written-ahead"])
async def test_two_instances_ten_thousand_occurrences_no_duplicate_none_missing(
    pg_store: SqlStore, second_store: SqlStore, lookahead: timedelta
) -> None:
    clock = FakeClock(START)
    sink = RecordingSink()
    made = await seed_rituals(pg_store, 1000, rrule="FREQ=DAILY;BYHOUR=0,6,12,18;BYMINUTE=0", at="00:00", now=START)
    a = make_scheduler(pg_store, clock, sink, fire_batch_size=40, fire_workers=2, lookahead=lookahead)
    b = make_scheduler(second_store, clock, sink, fire_batch_size=40, fire_workers=2, lookahead=lookahead)
    end = START + timedelta(hours=60)
    want = expected_ids(made, START, end)
    assert len(want) == 10_000  # 1,000 rituals x 4 a day x 2.5 days, across DST in five zones
    a.start()
    b.start()
    try:
        while clock.now() < end:
            clock.advance(timedelta(minutes=30))
            await asyncio.sleep(0)
            await eventually(lambda: _settled(pg_store, clock.now()), timeout=60)
        await eventually(lambda: len(sink.payloads("ritual.due")) >= len(want), timeout=60, interval=0.2)
    finally:
        await a.stop()
        await b.stop()
    dues = sink.payloads("ritual.due")
    got = [d.occurrence_id for d in dues]
    assert sink.duplicates() == {}, "an event was published twice"
    assert len(got) == len(set(got)) == 10_000
    assert set(got) == want, f"missing {len(want - set(got))}, unexpected {len(set(got) - want)}"
    assert not sink.payloads("ritual.occurrence_skipped")
    fired_a = sum(s.value for m in a.metrics.fired.collect() for s in m.samples if s.name.endswith("_total"))
    fired_b = sum(s.value for m in b.metrics.fired.collect() for s in m.samples if s.name.endswith("_total"))
    assert fired_a + fired_b == 10_000
    assert fired_a > 0 and fired_b > 0, "both instances should have claimed work"


async def _settled(store: SqlStore, now: datetime) -> bool:
    """Everything due by `now` is fired and published. (The fake clock must not run ahead of the relay: an
    occurrence published hours of fake time after its instant is rightly turned into OccurrenceSkipped.)"""
    upcoming, publish = await store.next_wake_at(), await store.relay.next_publish_at()
    return (upcoming is None or upcoming > now) and (publish is None or publish > now)


async def test_restart_in_the_middle_of_a_burst(pg_store: SqlStore, second_store: SqlStore) -> None:
    clock = FakeClock(START)
    sink = RecordingSink()
    made = await seed_rituals(pg_store, 3000, rrule="FREQ=DAILY", at="09:00", now=START, zones=["Europe/London"])
    first_due = min(r.next_due_at for r in made)
    last_due = max(r.next_due_at for r in made)
    assert first_due == last_due  # one burst: every ritual due at the same instant
    first = make_scheduler(pg_store, clock, sink, fire_batch_size=25, relay_batch_size=100)
    first.start()
    clock.set(last_due)
    # Stop the first instance as soon as part of the burst is out.
    await eventually(lambda: len(sink.rows) > 200, timeout=30, interval=0.001)
    await first.stop()
    sent_before_restart = len(sink.payloads("ritual.due"))
    assert 0 < sent_before_restart < 3000, "the restart should land in the middle of the burst"
    second = make_scheduler(second_store, clock, sink)
    second.start()
    try:
        await eventually(lambda: len(sink.payloads("ritual.due")) >= 3000, timeout=60, interval=0.1)
        await asyncio.sleep(0.3)  # anything extra would show up now
    finally:
        await second.stop()
    want = expected_ids(made, first_due - timedelta(seconds=1), last_due)
    got = [d.occurrence_id for d in sink.payloads("ritual.due")]
    assert sink.duplicates() == {} and len(got) == len(set(got)) == 3000
    assert set(got) == want


async def test_crash_in_the_middle_of_a_burst_loses_nothing(pg_store: SqlStore, second_store: SqlStore) -> None:
    """A crash (tasks cancelled, no orderly stop) mid-burst: the next instance publishes the rest."""
    clock = FakeClock(START)
    sink = RecordingSink()
    made = await seed_rituals(pg_store, 2000, rrule="FREQ=DAILY", at="09:00", now=START, zones=["Europe/London"])
    crashing = make_scheduler(pg_store, clock, sink, fire_batch_size=25, relay_batch_size=50)
    crashing.start()
    clock.set(max(r.next_due_at for r in made))
    await eventually(lambda: len(sink.rows) > 100, timeout=30, interval=0.001)
    for task in crashing._tasks:
        task.cancel()
    await asyncio.gather(*crashing._tasks, return_exceptions=True)
    survivor = make_scheduler(second_store, clock, sink)
    survivor.start()
    try:
        await eventually(lambda: len({d.occurrence_id for d in sink.payloads("ritual.due")}) >= 2000,
                         timeout=60, interval=0.1)
    finally:
        await survivor.stop()
    got = {d.occurrence_id for d in sink.payloads("ritual.due")}
    assert got == expected_ids(made, START, clock.now())
    # At-least-once: a crash between publish and mark may repeat a row, always with the same event id.
    assert all(n <= 2 for n in sink.duplicates().values())
    assert await pg_store.outbox_backlog() == 0


async def test_commands_on_postgres_and_redelivery(pg_store: SqlStore) -> None:
    clock = FakeClock(START)
    sink = RecordingSink()
    s = make_scheduler(pg_store, clock, sink)
    household, person = uuid.uuid4(), uuid.uuid4()
    register = command(RegisterHousehold(name="Ana & Ben", time_zone="Pacific/Chatham"), household)
    await s.handle(register)
    await s.handle(register)
    await s.handle(command(UpsertMember(member_id=person, display_name="Ana"), household))
    ritual = uuid.uuid4()
    await s.handle(command(schedule(ritual, [person], rrule="FREQ=WEEKLY;BYDAY=SU", at="03:00"), household))
    while await s.relay_once():
        pass
    assert [e.type for e in sink.envelopes()] == [
        "scheduler.household_registered", "scheduler.member_upserted", "scheduler.ritual_scheduled"]
    async with pg_store.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(households))).scalar_one() == 1
