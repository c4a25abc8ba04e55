"""Occurrences written ahead of time (lookahead): published at their instant, dropped when their ritual
changes first, and skipped with a reason if the service was down when they came due.

Each test runs twice: with the relay reading rows at their instant, and with the rows already read into
memory ahead of it (`read_ahead`), where a change to the ritual must still win over the copy in memory."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from attune_contracts.messages import EraseHousehold, PauseRitual, ResumeRitual, UpdateRitual
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.recurrence import occurrence_id

from .clock import FakeClock
from .helpers import RecordingSink, command, household_with_partners, make_scheduler, schedule

pytestmark = [pytest.mark.unit]

AHEAD = timedelta(minutes=5)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(params=["read at the instant", "read ahead"])
def read_ahead(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "read ahead")


def scheduler(store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool):
    return make_scheduler(store, clock, sink, lookahead=AHEAD, read_ahead=AHEAD,
                          read_ahead_rows=1000 if read_ahead else 0)


async def drain(s) -> None:
    await s.fire_due()
    await s.reading_ahead.read_once()
    while await s.relay_once():
        pass


async def setup(store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool, **kw):
    clock.set(z("2027-01-04T09:00:00Z"))
    s = scheduler(store, clock, sink, read_ahead)
    household, people = await household_with_partners(s, zone="Europe/London")
    ritual = uuid.uuid4()
    await s.handle(command(schedule(ritual, people, at="20:00", **kw), household))
    await drain(s)
    return s, household, people, ritual


async def test_written_ahead_published_at_its_instant_not_before(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool
) -> None:
    s, _, _, ritual = await setup(store, clock, sink, read_ahead)
    clock.set(z("2027-01-04T19:56:00Z"))
    await drain(s)
    assert await store.outbox_backlog() == 1  # written, waiting for 20:00
    assert sink.payloads("ritual.due") == []
    assert (await store.ritual(ritual)).next_due_at == z("2027-01-05T20:00:00Z")
    clock.set(z("2027-01-04T19:59:59Z"))
    await drain(s)
    assert sink.payloads("ritual.due") == []
    assert await store.relay.next_publish_at() == z("2027-01-04T20:00:00Z")
    clock.set(z("2027-01-04T20:00:00Z"))
    await drain(s)
    (due,) = sink.payloads("ritual.due")
    assert due.occurrence_id == occurrence_id(ritual, z("2027-01-04T20:00:00Z"))
    await drain(s)
    assert len(sink.payloads("ritual.due")) == 1


async def test_pause_after_writing_ahead_drops_the_event(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool
) -> None:
    s, household, _, ritual = await setup(store, clock, sink, read_ahead)
    clock.set(z("2027-01-04T19:57:00Z"))
    await drain(s)
    assert len(s.reading_ahead.rows) == (1 if read_ahead else 0)  # the copy in memory, which the pause must beat
    await s.handle(command(PauseRitual(ritual_id=ritual), household))
    clock.set(z("2027-01-04T20:00:00Z"))
    await drain(s)
    assert sink.payloads("ritual.due") == []
    await s.handle(command(ResumeRitual(ritual_id=ritual), household))
    clock.set(z("2027-01-05T20:00:00Z"))
    await drain(s)
    (due,) = sink.payloads("ritual.due")
    assert due.scheduled_for == z("2027-01-05T20:00:00Z")


async def test_update_after_writing_ahead_fires_once_with_the_new_settings(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool
) -> None:
    s, household, _, ritual = await setup(store, clock, sink, read_ahead)
    clock.set(z("2027-01-04T19:57:00Z"))
    await drain(s)
    await s.handle(command(UpdateRitual(ritual_id=ritual, title="Our talk"), household))
    await drain(s)
    clock.set(z("2027-01-04T20:00:00Z"))
    await drain(s)
    (due,) = sink.payloads("ritual.due")
    assert due.title == "Our talk" and due.scheduled_for == z("2027-01-04T20:00:00Z")


async def test_outage_after_writing_ahead_becomes_skipped_with_reason(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool
) -> None:
    s, _, _, ritual = await setup(store, clock, sink, read_ahead, catch_up_minutes=60)
    clock.set(z("2027-01-04T19:56:00Z"))
    await drain(s)
    assert await store.outbox_backlog() == 1
    clock.set(z("2027-01-04T23:00:00Z"))  # down from 19:56 to 23:00
    while await s.relay_once():
        pass
    assert sink.payloads("ritual.due") == []
    (skipped,) = sink.payloads("ritual.occurrence_skipped")
    assert skipped.occurrence_id == occurrence_id(ritual, z("2027-01-04T20:00:00Z"))
    assert "3 h late" in skipped.reason and "catch-up window of 1 h" in skipped.reason
    assert s.metrics.skipped.labels("outside_catch_up")._value.get() == 1


async def test_outage_inside_the_window_still_fires(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool
) -> None:
    s, _, _, _ = await setup(store, clock, sink, read_ahead, catch_up_minutes=60)
    clock.set(z("2027-01-04T19:56:00Z"))
    await drain(s)
    clock.set(z("2027-01-04T20:45:00Z"))
    while await s.relay_once():
        pass
    assert len(sink.payloads("ritual.due")) == 1 and sink.payloads("ritual.occurrence_skipped") == []


async def test_erase_after_writing_ahead_sends_nothing_more(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool
) -> None:
    s, household, _, _ = await setup(store, clock, sink, read_ahead)
    clock.set(z("2027-01-04T19:57:00Z"))
    await drain(s)
    await s.handle(command(EraseHousehold(), household))
    clock.set(z("2027-01-04T20:00:00Z"))
    await drain(s)
    assert sink.payloads("ritual.due") == []
    assert [e.type for e in sink.envelopes()][-1] == "scheduler.household_erased"


async def test_reminders_written_ahead(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, read_ahead: bool
) -> None:
    clock.set(z("2027-01-04T09:00:00Z"))
    s = scheduler(store, clock, sink, read_ahead)
    household, people = await household_with_partners(s, zone="Europe/London")
    ritual = uuid.uuid4()
    await s.handle(command(schedule(ritual, people, template="date_night", rrule="FREQ=WEEKLY;BYDAY=FR",
                                    at="19:00", reminder_offsets_minutes=[1440, 240]), household))
    stops = ["2027-01-07T18:56:00Z", "2027-01-07T19:00:00Z", "2027-01-08T14:58:00Z", "2027-01-08T15:00:00Z",
             "2027-01-08T18:55:00Z", "2027-01-08T19:00:00Z", "2027-01-08T19:01:00Z"]
    seen = []
    for stop in stops:
        clock.set(z(stop))
        await drain(s)
        seen.append(len(sink.envelopes("ritual.reminder")) + 10 * len(sink.envelopes("ritual.due")))
    assert seen == [0, 1, 1, 2, 2, 12, 12]
