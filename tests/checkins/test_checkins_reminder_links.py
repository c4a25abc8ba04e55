"""A reminder's one-tap link tapped before its ritual (issue 15): the day-before date-night reminder carries a
link, and check-ins learn the occurrence from the RitualReminder, so the link answers with what is coming and
when it will work instead of "We could not find this ritual any more"; once the RitualDue comes, the same link
checks in. Through the real flow: events handled by the service, the link page over HTTP, the real store."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from attune_checkins.service import derived_id
from attune_contracts.links import LinkAction
from attune_contracts.messages import CheckInRecorded, CheckInStatus, RitualDue, RitualMissed, RitualReminder

from .conftest import Api

pytestmark = [pytest.mark.unit]

FORM = {"content-type": "application/x-www-form-urlencoded"}


def date_night(api: Api, at: datetime) -> tuple[RitualReminder, RitualDue]:
    """Friday's date night, its day-before reminder, and its RitualDue (as the scheduler publishes them)."""
    ritual = uuid4()
    occurrence = derived_id("occ", ritual, at.isoformat())
    facts = {"occurrence_id": occurrence, "ritual_id": ritual, "template": "date_night", "title": "Date night",
             "participants": [api.h.ana, api.h.ben], "scheduled_for": at,
             "local_time": at.astimezone(ZoneInfo(api.h.zone)).isoformat(), "time_zone": api.h.zone,
             "sensitive": False}
    reminder = RitualReminder(**facts, reminder_id=uuid4(), offset_minutes=24 * 60, remind_at=at - timedelta(days=1))
    return reminder, RitualDue(**facts, deadline=at + timedelta(hours=14))


async def test_the_day_before_link_says_what_is_coming_then_checks_in_once_due(api: Api) -> None:
    at = api.h.clock.now() + timedelta(days=1)
    reminder, due = date_night(api, at)
    await api.h.send(reminder)
    token = api.mint(occurrence=due.occurrence_id)  # the reminder's Done link, minted as it is sent

    api.h.clock.advance(hours=3)  # the evening before
    page = await api.client.get(f"/l/{token}")
    assert page.status_code == 200, page.text
    assert "Coming up" in page.text and "Date night" in page.text and "could not find" not in page.text
    assert "this same link lets you check in" in page.text
    local = at.astimezone(ZoneInfo(api.h.zone))
    assert local.strftime("%H:%M") in page.text  # when it is, on the household's clock
    tapped = await api.client.post(f"/l/{token}", content="closeness=5", headers=FORM)
    assert tapped.status_code == 409 and "Coming up" in tapped.text
    assert api.h.sink.published == [] and api.failures("not_yet_due") == 1
    assert api.failures("unknown_occurrence") == 0

    await api.h.send(due, occurred_at=at)
    assert await api.h.count("announced_occurrences") == 0  # the RitualDue replaces the announcement
    api.h.clock.set(at + timedelta(hours=3))  # after the date: the same link now checks in
    page = await api.client.get(f"/l/{token}")
    assert page.status_code == 200 and page.text.count('name="closeness"') == 6
    done = await api.client.post(f"/l/{token}", content="closeness=5", headers=FORM)
    assert done.status_code == 200 and "Recorded" in done.text
    [recorded] = api.h.sink.of(CheckInRecorded)
    assert (recorded.occurrence_id, recorded.member_id, recorded.status) == (due.occurrence_id, api.h.ana,
                                                                              CheckInStatus.DONE)


async def test_a_reminder_alone_counts_for_nothing_and_is_forgotten(api: Api) -> None:
    """A ritual paused after its reminder: no RitualDue ever comes. The announcement is never missed, never in
    a streak or summary, and is pruned after a while; its link then says it cannot find it, as before."""
    at = api.h.clock.now() + timedelta(hours=6)
    reminder, due = date_night(api, at)
    await api.h.send(reminder)
    assert await api.h.count("announced_occurrences") == 1 and await api.h.count("occurrences") == 1  # the fixture's
    api.h.clock.set(at + timedelta(days=1))
    await api.parts.service.tick()
    assert due.occurrence_id not in {m.occurrence_id for m in api.h.sink.of(RitualMissed)}
    # Past its time and still not due: the page waits a moment for the RitualDue, then says it is opening.
    token = api.mint(occurrence=due.occurrence_id)
    late = await api.client.get(f"/l/{token}")
    assert late.status_code == 200 and "try this link again" in late.text
    api.h.clock.set(at + timedelta(days=2, minutes=1))
    await api.parts.service.tick()
    assert await api.h.count("announced_occurrences") == 0
    gone = await api.client.get(f"/l/{api.mint(occurrence=due.occurrence_id)}")
    assert gone.status_code == 404 and "could not find" in gone.text


async def test_a_late_reminder_does_not_shadow_its_due_occurrence(api: Api) -> None:
    reminder, due = date_night(api, api.h.clock.now())
    await api.h.send(due)
    await api.h.send(reminder)  # redelivered after the due: nothing to announce
    assert await api.h.count("announced_occurrences") == 0
    done = await api.client.post(f"/l/{api.mint(LinkAction.SKIP, occurrence=due.occurrence_id)}")
    assert done.status_code == 200 and api.h.sink.of(CheckInRecorded)[0].status is CheckInStatus.SKIPPED


async def test_a_reminder_for_another_households_link_is_not_shown(api: Api) -> None:
    """The announcement belongs to the household in its envelope; a link of another household naming the same
    occurrence id finds nothing."""
    reminder, due = date_night(api, api.h.clock.now() + timedelta(days=1))
    await api.h.send(reminder)
    stranger = api.parts.signer.mint(household_id=uuid4(), occurrence_id=due.occurrence_id, member_id=api.h.ana,
                                     action=LinkAction.DONE, now=api.h.clock.now())
    page = await api.client.get(f"/l/{stranger}")
    assert page.status_code == 404 and "Date night" not in page.text
