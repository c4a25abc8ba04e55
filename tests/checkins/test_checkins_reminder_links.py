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


async def test_a_used_or_expired_link_says_what_it_was_for_and_what_is_recorded(api: Api) -> None:
    """Issue 15: expired and used links lead somewhere useful (and never to an app that does not exist yet)."""
    token = api.mint()
    await api.client.post(f"/l/{token}", content="closeness=4", headers=FORM)
    again = await api.client.get(f"/l/{token}")
    assert again.status_code == 409 and "Already recorded" in again.text
    assert "Evening &lt;script&gt;" in again.text and "recorded as done. Closeness: 4 of 5." in again.text

    old = api.mint(LinkAction.DONE, member=api.h.ben, now=api.h.clock.now() - timedelta(hours=2),
                   ttl=timedelta(hours=1))
    expired = await api.client.get(f"/l/{old}")
    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert "Evening &lt;script&gt;" in expired.text and "Nothing is recorded for you yet." in expired.text
    assert "next reminder will bring fresh links" in expired.text and "Attune app" not in expired.text
    assert api.failures("expired") == 1

    # An expired link of another household shows nothing of this one.
    stranger = api.parts.signer.mint(household_id=uuid4(), occurrence_id=api.due.occurrence_id, member_id=api.h.ana,
                                     action=LinkAction.DONE, now=api.h.clock.now() - timedelta(hours=2),
                                     ttl=timedelta(hours=1))
    other = await api.client.get(f"/l/{stranger}")
    assert other.status_code == 410 and "Evening" not in other.text and "recorded" not in other.text


# ---- SMS short links ----------------------------------------------------------------------------


async def issue_short_link(api: Api, token: str, *, expires_at: datetime | None = None) -> str:
    """What the notifier does for an SMS: a code, and a ShortLinkIssued with its hash and the sealed token."""
    from attune_contracts.messages import ShortLinkIssued
    from attune_runtime import shortlinks

    code = shortlinks.new_code()
    await api.h.send(ShortLinkIssued(code_id=shortlinks.code_id(code), sealed_token=shortlinks.seal(token, code),
                                     expires_at=expires_at or api.h.clock.now() + timedelta(hours=36)))
    return code


async def test_an_sms_short_link_leads_to_its_one_tap_page_and_records_once(api: Api) -> None:
    token = api.mint()
    code = await issue_short_link(api, token)
    assert len(f"https://checkins.example.org/s/{code}") < 45
    hop = await api.client.get(f"/s/{code}")
    assert hop.status_code == 303 and hop.headers["location"] == f"/l/{token}"
    assert hop.headers["cache-control"] == "no-store" and api.h.sink.published == []  # opening records nothing
    page = await api.client.get(hop.headers["location"])
    assert page.status_code == 200 and page.text.count('name="closeness"') == 6
    done = await api.client.post(hop.headers["location"], content="closeness=3", headers=FORM)
    assert done.status_code == 200 and len(api.h.sink.of(CheckInRecorded)) == 1
    # Single use, as its token: the same code leads to "Already recorded", nothing more is recorded.
    again = await api.client.get((await api.client.get(f"/s/{code}")).headers["location"])
    assert again.status_code == 409 and "recorded as done" in again.text
    assert len(api.h.sink.of(CheckInRecorded)) == 1


async def test_short_links_unknown_expired_malformed_and_erased(api: Api) -> None:
    from attune_contracts.messages import HouseholdErased
    from attune_runtime import shortlinks

    unknown = await api.client.get(f"/s/{shortlinks.new_code()}")  # waited for, then refused
    assert unknown.status_code == 404 and "know this short link" in unknown.text
    assert api.failures("unknown_short_link") == 1
    for bad in ("short", "0O1lI0O1lI0O", "x" * 200):
        response = await api.client.get(f"/s/{bad}")
        assert response.status_code == 400 and "<h1>" in response.text
    expiring = await issue_short_link(api, api.mint(), expires_at=api.h.clock.now() + timedelta(minutes=5))
    api.h.clock.advance(minutes=6)
    expired = await api.client.get(f"/s/{expiring}")
    assert expired.status_code == 410 and "expired" in expired.text
    await api.parts.service.tick()
    assert await api.h.count("short_links") == 0  # tidied away after expiry

    kept = await issue_short_link(api, api.mint())
    assert await api.h.count("short_links") == 1
    await api.h.send(HouseholdErased(erased_at=api.h.clock.now()))
    assert await api.h.count("short_links") == 0
    assert (await api.client.get(f"/s/{kept}")).status_code == 404
