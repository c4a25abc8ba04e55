"""Commands no retry can make acceptable are answered with a rejection at once, on SQLite and PostgreSQL alike,
and nothing the scheduler computes keeps the event loop (the consumer's heartbeat) waiting.

Before: a NUL character failed the insert on PostgreSQL (DataError) and was stored on SQLite; a start date of
9999-12-31 raised ValueError; a zone change a ritual could not follow raised RecurrenceError. Each was retried
five times, then dead-lettered as handler_failed, and the sender never heard why. The rule of the issue, from
the year 1, held the event loop for seconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from attune_contracts import make_envelope
from attune_contracts.messages import RegisterHousehold, UpdateRitual, UpsertMember
from attune_runtime.testing import temporary_database
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.adapters.tables import rituals
from attune_scheduler.scheduler import Scheduler

from .clock import FakeClock
from .helpers import RecordingSink, command, household_with_partners, make_scheduler, schedule
from .test_postgres import seed_rituals

pytestmark = [pytest.mark.integration]

T = TypeVar("T")
REJECTED = "scheduler.command_rejected"
LONGEST_PAUSE_S = 1.0
"""The longest the event loop may be held: far below a heartbeat interval (2 s at a 10 s session timeout)."""


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        store = SqlStore.from_url(f"sqlite+aiosqlite:///{tmp_path}/scheduler.db")
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()
        return
    async with temporary_database() as url:
        store = SqlStore.from_url(url)
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()


async def rejections(scheduler: Scheduler, sink: RecordingSink) -> dict[uuid.UUID, str]:
    await scheduler.relay_once()
    return {r.command_event_id: r.reason for r in sink.payloads(REJECTED)}


async def while_ticking(work: Awaitable[T]) -> tuple[T, float]:
    """Run `work` while a ticker task measures the longest the event loop went without running it."""
    loop = asyncio.get_running_loop()
    longest, done = 0.0, False

    async def tick() -> None:
        nonlocal longest
        last = loop.time()
        while not done:
            await asyncio.sleep(0.01)
            longest = max(longest, loop.time() - last)
            last = loop.time()

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    try:
        result = await work
    finally:
        done = True
        await ticker
    return result, longest


# ---- NUL characters -----------------------------------------------------------------------------


async def test_a_nul_in_any_text_is_refused_with_a_reason_and_nothing_is_stored(
    any_store: SqlStore, clock: FakeClock, sink: RecordingSink,
) -> None:
    scheduler = make_scheduler(any_store, clock, sink)
    household = uuid.uuid4()
    named = command(RegisterHousehold(name="Ana\x00Ben", time_zone="Europe/London"), household)
    await scheduler.handle(named)
    assert await any_store.count("households") == 0

    household, (ana, ben) = await household_with_partners(scheduler, "Europe/London", household)
    member = command(UpsertMember(member_id=uuid.uuid4(), display_name="Cleo\x00"), household)
    titled = command(schedule(uuid.uuid4(), [ana, ben], title="Date\x00night"), household)
    correlated = make_envelope(schedule(uuid.uuid4(), [ana, ben]), household_id=household, producer="test",
                               correlation_id="c-\x00-1")
    for envelope in (member, titled, correlated):
        await scheduler.handle(envelope)
        await scheduler.handle(envelope)  # redelivered: answered once

    refused = await rejections(scheduler, sink)
    assert "name contains a NUL character" in refused[named.event_id]
    assert "display_name contains a NUL character" in refused[member.event_id]
    assert "title contains a NUL character" in refused[titled.event_id]
    assert "correlation_id contains a NUL character" in refused[correlated.event_id]
    assert len(sink.payloads(REJECTED)) == 4
    answer = next(e for e in sink.envelopes(REJECTED) if e.payload.command_event_id == correlated.event_id)
    assert answer.correlation_id == "c--1"  # answered without the NUL, so its readers can store it
    assert await any_store.count("members") == 2 and await any_store.count("rituals") == 0


# ---- dates and rules out of range ---------------------------------------------------------------


async def test_a_start_date_far_from_today_is_refused_with_a_reason(
    any_store: SqlStore, clock: FakeClock, sink: RecordingSink,
) -> None:
    scheduler = make_scheduler(any_store, clock, sink)
    household, people = await household_with_partners(scheduler, "Pacific/Kiritimati")
    ritual = uuid.uuid4()
    far = command(schedule(uuid.uuid4(), people, start=date(9999, 12, 31)), household)
    ancient = command(schedule(uuid.uuid4(), people, start=date(1, 1, 1)), household)
    forever = command(schedule(ritual, people, rrule="FREQ=DAILY;UNTIL=99991231T235959Z"), household)
    for envelope in (far, ancient, forever):
        await scheduler.handle(envelope)
    rare = command(schedule(uuid.uuid4(), people, rrule="FREQ=MONTHLY;INTERVAL=1000", start=date(2026, 6, 1)),
                   household)
    await scheduler.handle(rare)
    moved = command(UpdateRitual(ritual_id=ritual, start_date=date(9999, 12, 31)), household)
    await scheduler.handle(moved)

    refused = await rejections(scheduler, sink)
    assert "start_date 9999-12-31 is too far from today" in refused[far.event_id]
    assert "start_date 0001-01-01 is too far from today" in refused[ancient.event_id]
    assert "start_date 9999-12-31 is too far from today" in refused[moved.event_id]
    assert forever.event_id not in refused  # an UNTIL near the year 9999 means "no end", in any zone
    assert "no occurrence in the 10 years after today" in refused[rare.event_id]  # next: in the year 2109
    stored = await any_store.ritual(ritual)
    assert stored is not None and stored.start_date == date(2027, 1, 1)


async def test_a_zone_change_a_ritual_cannot_follow_is_refused_not_retried(
    any_store: SqlStore, clock: FakeClock, sink: RecordingSink,
) -> None:
    scheduler = make_scheduler(any_store, clock, sink)
    household, people = await household_with_partners(scheduler, "UTC")
    # Its one evening ends at 01:30 UTC the next night: 18:30 the same evening in Los Angeles, before 20:30.
    ritual = uuid.uuid4()
    await scheduler.handle(command(schedule(ritual, people, rrule="FREQ=DAILY;UNTIL=20270314T013000Z",
                                            start=date(2027, 3, 13)), household))
    move = command(RegisterHousehold(name="Ana & Ben", time_zone="America/Los_Angeles"), household)
    await scheduler.handle(move)

    refused = await rejections(scheduler, sink)
    assert f"ritual {ritual} cannot move to America/Los_Angeles" in refused[move.event_id]
    assert "ends (UNTIL) before its first occurrence" in refused[move.event_id]


# ---- the event loop stays free ------------------------------------------------------------------


async def test_the_issue_rule_is_refused_while_the_loop_keeps_ticking(
    any_store: SqlStore, clock: FakeClock, sink: RecordingSink,
) -> None:
    scheduler = make_scheduler(any_store, clock, sink)
    household, people = await household_with_partners(scheduler, "Europe/London")
    hostile = command(schedule(uuid.uuid4(), people, rrule="FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=999999999",
                               start=date(1, 1, 1), reminder_offsets_minutes=[1, 60, 240, 1440, 10080]), household)
    _, longest = await while_ticking(asyncio.wait_for(scheduler.handle(hostile), timeout=60))
    assert longest < LONGEST_PAUSE_S
    assert "too far from today" in (await rejections(scheduler, sink))[hostile.event_id]


async def test_waking_rituals_that_began_decades_ago_keeps_the_loop_ticking(
    any_store: SqlStore, clock: FakeClock, sink: RecordingSink,
) -> None:
    # Rows written long ago (or restored from a backup): no command refuses them now, yet they must fire.
    now = datetime(2027, 3, 13, 12, 0, tzinfo=UTC)
    made = await seed_rituals(any_store, 20, rrule="FREQ=MONTHLY;BYMONTHDAY=13,14", at="12:00", now=now,
                              zones=["Europe/London"])
    async with any_store.engine.begin() as conn:
        await conn.execute(rituals.update().values(
            start_date=date(1970, 1, 1), reminder_offsets=[1, 60, 240, 1440, 10080], next_reminder_at=now,
            reminder_cursor=now, wake_at=now))
    clock.set(datetime(2027, 3, 14, 12, 0, tzinfo=UTC))
    scheduler = make_scheduler(any_store, clock, sink)
    written, longest = await while_ticking(asyncio.wait_for(scheduler.fire_due(), timeout=120))
    assert longest < LONGEST_PAUSE_S
    assert written >= len(made)  # each fired its occurrence of the 14th
    await scheduler.relay_once()
    assert {p.ritual_id for p in sink.payloads("ritual.due")} == {r.id for r in made}
