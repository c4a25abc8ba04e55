"""Commands in, facts out; occurrences fired on time with a fake clock (SQLite store, recording sink)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest
from attune_contracts.messages import (
    DeleteRitual,
    EraseHousehold,
    GiveConsent,
    MemberRole,
    PauseRitual,
    RegisterHousehold,
    ResumeRitual,
    RevokeHouseholdCredentials,
    RitualState,
    UpdateRitual,
    UpsertMember,
    WithdrawConsent,
)
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.recurrence import occurrence_id, reminder_id

from .clock import FakeClock
from .helpers import RecordingSink, command, household_with_partners, make_scheduler, schedule

pytestmark = [pytest.mark.unit]


def z(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def drain(scheduler) -> None:
    await scheduler.fire_due()
    while await scheduler.relay_once():
        pass


async def test_commands_produce_facts_and_a_redelivery_changes_nothing(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s)
    ritual = uuid.uuid4()
    cmd = command(schedule(ritual, people), household)
    await s.handle(cmd)
    await s.handle(cmd)  # redelivered: same event id
    await drain(s)
    types = [e.type for e in sink.envelopes()]
    assert types == ["scheduler.household_registered", "scheduler.member_upserted", "scheduler.member_upserted",
                     "scheduler.ritual_scheduled"]
    fact = sink.payloads("scheduler.ritual_scheduled")[0]
    assert fact.state is RitualState.ACTIVE and fact.title == "Evening attunement"
    # 20:30 EST on 13 March 2027 = 01:30Z on the 14th.
    assert fact.next_due_at == z("2027-03-14T01:30:00Z")
    assert all(e.household_id == household for e in sink.envelopes())
    assert sink.envelopes("scheduler.ritual_scheduled")[0].correlation_id == cmd.correlation_id
    assert await store.count("rituals") == 1 and await store.count("processed_commands") == 4


async def test_ritual_due_fires_on_time_once_with_deterministic_id(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s)
    ritual = uuid.uuid4()
    await s.handle(command(schedule(ritual, people, at="02:30", start=date(2027, 3, 13)), household))
    clock.set(z("2027-03-14T07:29:59Z"))
    await drain(s)
    assert sink.payloads("ritual.due") == []
    clock.set(z("2027-03-14T07:30:00Z"))  # 02:30 does not exist that day: fires at 03:30 EDT
    await drain(s)
    await drain(s)
    (due,) = sink.payloads("ritual.due")
    assert due.scheduled_for == z("2027-03-14T07:30:00Z")
    assert due.local_time == "2027-03-14T03:30:00-04:00"
    assert due.occurrence_id == occurrence_id(ritual, due.scheduled_for)
    assert sink.envelopes("ritual.due")[0].event_id == due.occurrence_id
    assert due.deadline == due.scheduled_for + timedelta(hours=14)
    assert due.participants == people and due.template == "evening_attunement" and not due.sensitive
    assert (await store.ritual(ritual)).next_due_at == z("2027-03-15T06:30:00Z")


async def test_date_night_reminders_day_before_and_on_the_day(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s, zone="Europe/London")
    ritual = uuid.uuid4()
    clock.set(z("2027-01-04T09:00:00Z"))  # a Monday
    await s.handle(command(schedule(ritual, people, template="date_night", rrule="FREQ=WEEKLY;BYDAY=FR",
                                    at="19:00", reminder_offsets_minutes=[1440, 240]), household))
    for _ in range(24 * 5):
        clock.advance(timedelta(hours=1))
        await drain(s)
    reminders = sink.payloads("ritual.reminder")
    assert [(r.offset_minutes, r.remind_at) for r in reminders] == [
        (1440, z("2027-01-07T19:00:00Z")), (240, z("2027-01-08T15:00:00Z")),
    ]
    occ = occurrence_id(ritual, z("2027-01-08T19:00:00Z"))
    assert [r.reminder_id for r in reminders] == [reminder_id(occ, 1440), reminder_id(occ, 240)]
    (due,) = sink.payloads("ritual.due")
    assert due.occurrence_id == occ
    order = [e.type for e in sink.envelopes() if e.type.startswith("ritual.")]
    assert order == ["ritual.reminder", "ritual.reminder", "ritual.due"]


async def test_catch_up_after_three_hour_outage(store: SqlStore, clock: FakeClock, sink: RecordingSink) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s, zone="Europe/London")
    start = z("2027-01-04T09:00:00Z")
    clock.set(start)
    # Four rituals due at 10:00, 11:00, 11:30, 11:45; catch-up window 60 minutes; the service is down 09:00-12:00.
    times = {at: uuid.uuid4() for at in ("10:00", "11:00", "11:30", "11:45")}
    for at, ritual in times.items():
        await s.handle(command(schedule(ritual, people, at=at, catch_up_minutes=60), household))
    await drain(s)
    clock.set(start + timedelta(hours=3))
    await drain(s)
    fired = {p.ritual_id: p for p in sink.payloads("ritual.due")}
    skipped = {p.ritual_id: p for p in sink.payloads("ritual.occurrence_skipped")}
    assert set(fired) == {times["11:00"], times["11:30"], times["11:45"]}
    assert set(skipped) == {times["10:00"]}
    assert "2 h late" in skipped[times["10:00"]].reason and "catch-up window of 1 h" in skipped[times["10:00"]].reason
    # Nothing again: each occurrence is handled once.
    await drain(s)
    assert len(sink.payloads("ritual.due")) == 3 and len(sink.payloads("ritual.occurrence_skipped")) == 1
    assert s.metrics.skipped.labels("outside_catch_up")._value.get() == 1


@pytest.mark.parametrize(
    ("change", "reason_words"),
    [
        ({"rrule": "FREQ=SECONDLY"}, "too frequent"),
        ({"rrule": "FREQ=DAILY;BYHOUR=1,2,3,4,5,6"}, "at most 4 times a day"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=ZZ"}, "invalid RRULE"),
        ({"template": "nope"}, "unknown ritual template"),
        ({"template": "after_intimacy"}, "never scheduled"),
    ],
)
async def test_bad_schedules_are_refused_with_a_reason(
    store: SqlStore, clock: FakeClock, sink: RecordingSink, change: dict, reason_words: str
) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s)
    cmd = command(schedule(uuid.uuid4(), people).model_copy(update=change), household)
    await s.handle(cmd)
    await drain(s)
    (rejected,) = sink.payloads("scheduler.command_rejected")
    assert rejected.command_event_id == cmd.event_id and rejected.command_type == "scheduler.schedule_ritual"
    assert reason_words in rejected.reason
    assert await store.count("rituals") == 0


async def test_refusals_for_missing_household_members_and_rituals(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    stranger = uuid.uuid4()
    await s.handle(command(UpsertMember(member_id=uuid.uuid4(), display_name="X"), uuid.uuid4()))
    household, people = await household_with_partners(s)
    await s.handle(command(schedule(uuid.uuid4(), [people[0], stranger]), household))
    await s.handle(command(PauseRitual(ritual_id=uuid.uuid4()), household))
    reasons = [r.reason for r in sink.payloads("scheduler.command_rejected")] if await s.relay_once() else []
    assert len(reasons) == 3
    assert "not registered" in reasons[0]
    assert "not members of this household" in reasons[1]
    assert "no ritual" in reasons[2]


async def test_sensitive_ritual_waits_for_every_consent_and_stops_on_withdrawal(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    household, (ana, ben) = await household_with_partners(s, zone="Europe/London")
    clock.set(z("2027-01-04T09:00:00Z"))
    ritual = uuid.uuid4()
    await s.handle(command(schedule(ritual, [ana, ben], template="experiment_together",
                                    rrule="FREQ=DAILY", at="21:00"), household))
    resume = command(ResumeRitual(ritual_id=ritual), household)
    await s.handle(resume)
    await s.handle(command(GiveConsent(ritual_id=ritual, member_id=ana), household))
    clock.set(z("2027-01-05T09:00:00Z"))
    await drain(s)
    assert sink.payloads("ritual.due") == []  # only one of two has consented
    (rejected,) = sink.payloads("scheduler.command_rejected")
    assert rejected.command_event_id == resume.event_id and "consent" in rejected.reason
    scheduled = sink.payloads("scheduler.ritual_scheduled")[0]
    assert scheduled.sensitive and scheduled.state is RitualState.AWAITING_CONSENT and scheduled.next_due_at is None

    await s.handle(command(GiveConsent(ritual_id=ritual, member_id=ben), household))
    clock.set(z("2027-01-05T21:00:00Z"))
    await drain(s)
    given = sink.payloads("scheduler.consent_given")
    assert [g.state for g in given] == [RitualState.AWAITING_CONSENT, RitualState.ACTIVE]
    (due,) = sink.payloads("ritual.due")
    assert due.sensitive and due.scheduled_for == z("2027-01-05T21:00:00Z")

    await s.handle(command(WithdrawConsent(ritual_id=ritual, member_id=ben), household))
    clock.set(z("2027-01-07T22:00:00Z"))
    await drain(s)
    assert len(sink.payloads("ritual.due")) == 1
    assert sink.payloads("scheduler.consent_withdrawn")[0].state is RitualState.AWAITING_CONSENT


async def test_pause_resume_update_delete(store: SqlStore, clock: FakeClock, sink: RecordingSink) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s, zone="Asia/Kolkata")
    ritual = uuid.uuid4()
    clock.set(z("2027-01-04T00:00:00Z"))
    await s.handle(command(schedule(ritual, people, at="20:00"), household))  # 14:30Z daily
    await s.handle(command(PauseRitual(ritual_id=ritual), household))
    clock.set(z("2027-01-06T00:00:00Z"))
    await drain(s)
    assert sink.payloads("ritual.due") == []
    await s.handle(command(ResumeRitual(ritual_id=ritual), household))
    await s.handle(command(UpdateRitual(ritual_id=ritual, local_time="21:00", title="Our evening talk"), household))
    clock.set(z("2027-01-06T15:30:00Z"))
    await drain(s)
    (due,) = sink.payloads("ritual.due")
    assert due.scheduled_for == z("2027-01-06T15:30:00Z") and due.title == "Our evening talk"
    updated = sink.payloads("scheduler.ritual_updated")[0]
    assert updated.local_time == "21:00" and updated.next_due_at == z("2027-01-06T15:30:00Z")
    assert sink.payloads("scheduler.ritual_resumed")[0].next_due_at == z("2027-01-06T14:30:00Z")
    await s.handle(command(DeleteRitual(ritual_id=ritual), household))
    clock.set(z("2027-01-09T00:00:00Z"))
    await drain(s)
    assert len(sink.payloads("ritual.due")) == 1 and await store.count("rituals") == 0
    assert sink.payloads("scheduler.ritual_deleted")[0].ritual_id == ritual


async def test_household_zone_change_moves_instants_but_keeps_local_times(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s, zone="Europe/London")
    ritual = uuid.uuid4()
    clock.set(z("2027-01-04T00:00:00Z"))
    await s.handle(command(schedule(ritual, people, at="20:00"), household))
    await s.handle(command(RegisterHousehold(name="Ana & Ben", time_zone="Asia/Kolkata"), household))
    clock.set(z("2027-01-04T14:30:00Z"))
    await drain(s)
    (due,) = sink.payloads("ritual.due")
    assert due.local_time == "2027-01-04T20:00:00+05:30" and due.time_zone == "Asia/Kolkata"


async def test_revoking_credentials_announces_the_cut_off_for_that_household_only(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    household, _ = await household_with_partners(s)
    await s.handle(command(RevokeHouseholdCredentials(), household))
    await s.handle(command(RevokeHouseholdCredentials(), uuid.uuid4()))  # not registered: refused with a reason
    await drain(s)
    (revoked,) = sink.envelopes("scheduler.household_credentials_revoked")
    assert revoked.household_id == household and revoked.payload.not_before == clock.now()
    (rejected,) = sink.payloads("scheduler.command_rejected")
    assert "not registered" in rejected.reason
    # Kept for the scheduler's own API; a later revocation moves it forward, never back.
    assert await store.credentials_not_before(household) == clock.now()
    clock.advance(timedelta(minutes=5))
    await s.handle(command(RevokeHouseholdCredentials(), household))
    assert await store.credentials_not_before(household) == clock.now()


async def test_erase_household_deletes_everything_and_says_so(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s)
    other, other_people = await household_with_partners(s)
    await s.handle(command(schedule(uuid.uuid4(), people), household))
    await s.handle(command(schedule(uuid.uuid4(), other_people), other))
    await s.handle(command(EraseHousehold(requested_by=people[0]), household))
    await drain(s)
    (erased,) = sink.envelopes("scheduler.household_erased")
    assert erased.household_id == household
    assert await store.count("households") == 1 and await store.count("members") == 2
    assert await store.count("rituals") == 1


async def test_no_command_brings_an_erased_household_back(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    import httpx
    from attune_contracts.credentials import development_issuer, verifier_from_setting
    from attune_scheduler.http import build_http_app

    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s)
    await s.handle(command(schedule(uuid.uuid4(), people), household))
    await s.handle(command(EraseHousehold(requested_by=people[0]), household))
    later = [RegisterHousehold(name="Ana & Ben", time_zone="Europe/London"),
             UpsertMember(member_id=people[0], display_name="Ana", role=MemberRole.PARTNER),
             schedule(uuid.uuid4(), people)]
    for replayed in later:  # as a replay with a fresh event id would come, or a late command
        await s.handle(command(replayed, household))
    await s.handle(command(EraseHousehold(requested_by=people[0]), household))  # erasing again is harmless
    await drain(s)
    refused = sink.payloads("scheduler.command_rejected")
    assert [r.command_type for r in refused] == ["scheduler.register_household", "scheduler.upsert_member",
                                                 "scheduler.schedule_ritual"]
    assert all("erased" in r.reason and "new household" in r.reason for r in refused)
    assert len(sink.envelopes("scheduler.household_erased")) == 2
    assert await store.count("households") == 0 and await store.count("members") == 0
    assert await store.count("rituals") == 0
    app = build_http_app(store, verifier_from_setting(None, development=True, setting="keys"), clock.now)
    credential = development_issuer().household(household, now=clock.now())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduler") as client:
        answer = await client.get(f"/v1/households/{household}/export",
                                  headers={"Authorization": f"Bearer {credential}"})
    assert answer.status_code == 410 and "erased" in answer.json()["detail"]


async def test_children_cannot_join_partner_rituals(store: SqlStore, clock: FakeClock, sink: RecordingSink) -> None:
    s = make_scheduler(store, clock, sink)
    household, (parent, _) = await household_with_partners(s)
    child = uuid.uuid4()
    await s.handle(command(UpsertMember(member_id=child, display_name="Kid", role=MemberRole.CHILD), household))
    await s.handle(command(schedule(uuid.uuid4(), [parent, child], template="date_night",
                                    rrule="FREQ=WEEKLY;BYDAY=FR"), household))
    await s.handle(command(schedule(uuid.uuid4(), [parent, child], template="parent_child_attunement",
                                    at="19:00"), household))
    await drain(s)
    (rejected,) = sink.payloads("scheduler.command_rejected")
    assert "child" in rejected.reason
    assert len(sink.payloads("scheduler.ritual_scheduled")) == 1


async def test_relay_failure_keeps_rows_and_sends_them_later_in_order(
    store: SqlStore, clock: FakeClock, sink: RecordingSink
) -> None:
    s = make_scheduler(store, clock, sink)
    _household, _people = await household_with_partners(s)
    sink.fail_next = 1
    with pytest.raises(ConnectionError):
        await s.relay_once()
    assert sink.rows == [] and await store.outbox_backlog() == 3
    assert await s.relay_once() == 3
    assert [r.id for r in sink.rows] == sorted(r.id for r in sink.rows)
    assert await store.outbox_backlog() == 0 and await s.relay_once() == 0


async def test_a_year_of_daily_firing_across_both_transitions(
    store: SqlStore, sink: RecordingSink
) -> None:
    clock = FakeClock(z("2027-01-01T00:00:00Z"))
    s = make_scheduler(store, clock, sink)
    household, people = await household_with_partners(s, zone="Australia/Lord_Howe")
    ritual = uuid.uuid4()
    await s.handle(command(schedule(ritual, people, at="02:15", start=date(2027, 1, 1)), household))
    end = z("2028-01-01T00:00:00Z")
    while (upcoming := await store.next_wake_at()) is not None and upcoming < end:
        clock.set(upcoming)  # jump straight to each wake-up, as the loop's sleep would
        await drain(s)
    dues = sink.payloads("ritual.due")
    local_days = [datetime.fromisoformat(d.local_time).date() for d in dues]
    assert len(dues) == len({d.occurrence_id for d in dues}) == 365
    # The clock starts at 11:00 on 1 January in Lord Howe, after that day's 02:15.
    assert local_days == [date(2027, 1, 2) + timedelta(days=n) for n in range(365)]  # no skip, no double
    assert not sink.payloads("ritual.occurrence_skipped")
    # Lord Howe springs forward 02:00 -> 02:30 on 3 October 2027: that day 02:15 fires at 02:45.
    shifted = [d for d in dues if d.local_time[11:16] != "02:15"]
    assert [d.local_time for d in shifted] == ["2027-10-03T02:45:00+11:00"]
