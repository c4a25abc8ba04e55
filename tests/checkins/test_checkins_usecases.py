"""The use cases over the real SQL store (an SQLite file), a fake clock and a recording sink."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from attune_contracts.messages import (
    AchievementRecorded,
    CheckInCommandRejected,
    CheckInRecorded,
    CheckInStatus,
    DateNightAdherenceUpdated,
    HouseholdErased,
    HouseholdKind,
    HouseholdRegistered,
    LogMoment,
    MemberRole,
    MemberUpserted,
    MilestoneReached,
    MomentKind,
    MomentLogged,
    RatioDropped,
    RecordAchievement,
    RitualMissed,
    RitualScheduled,
    RitualState,
    StreakUnit,
    StreakUpdated,
    SubmitCheckIn,
    WeeklySummary,
)
from attune_contracts.trust import TrustViolation
from attune_runtime.consumer import PermanentError
from attune_runtime.faults import HouseholdErasedError
from sqlalchemy import text

from .conftest import Harness

UTC0 = datetime(2027, 3, 1, 12, tzinfo=UTC)


@pytest.mark.unit
async def test_checkin_is_recorded_once_and_redelivery_changes_nothing(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC))  # Mon 1 March, 20:30 in New York
    due_envelope = await h.send(due)
    h.clock.set(due.scheduled_for + timedelta(minutes=40))
    envelope = await h.check_in(due, h.ana, closeness=4, note="we talked about work")
    recorded = h.sink.of(CheckInRecorded)
    assert len(recorded) == 1 and recorded[0].closeness == 4 and recorded[0].has_note
    assert recorded[0].status is CheckInStatus.DONE and recorded[0].member_id == h.ana
    assert h.sink.of(StreakUpdated)[0].length == 1
    published = len(h.sink.published)

    await h.service.handle(envelope)  # the very same message again
    await h.service.handle(due_envelope)  # and the RitualDue again
    await h.check_in(due, h.ana, closeness=4, note="we talked about work")  # same answer, new event id
    assert len(h.sink.published) == published
    assert await h.count("checkins") == 1 and await h.count("occurrences") == 1


@pytest.mark.unit
async def test_a_later_different_answer_replaces_the_first_and_an_earlier_one_is_ignored(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC))
    await h.send(due)
    t = due.scheduled_for
    await h.check_in(due, h.ana, CheckInStatus.SNOOZED, at=t + timedelta(minutes=5),
                     snoozed_until=t + timedelta(hours=1))
    await h.check_in(due, h.ana, CheckInStatus.DONE, at=t + timedelta(hours=1), closeness=5)
    await h.check_in(due, h.ana, CheckInStatus.SKIPPED, at=t + timedelta(minutes=10))  # stale: made earlier
    statuses = [r.status for r in h.sink.of(CheckInRecorded)]
    assert statuses == [CheckInStatus.SNOOZED, CheckInStatus.DONE]
    assert len({r.checkin_id for r in h.sink.of(CheckInRecorded)}) == 1
    history, total = await h.service.history(h.household, page=1, page_size=10)
    assert total == 1 and history[0].status is CheckInStatus.DONE and history[0].closeness == 5


@pytest.mark.parametrize("case", ["unknown occurrence", "stranger", "not participant", "too late",
                                  "other household"])
@pytest.mark.unit
async def test_bad_checkins_are_rejected_with_a_reason_and_nothing_recorded(harness: Harness, case: str) -> None:
    h = harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC), participants=[h.ana])
    await h.send(due)
    h.sink.clear()
    command = SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=h.ana, status=CheckInStatus.DONE)
    at, household = due.scheduled_for, None
    if case == "unknown occurrence":
        command = command.model_copy(update={"occurrence_id": uuid4()})
    elif case == "stranger":
        command = command.model_copy(update={"member_id": uuid4()})
    elif case == "not participant":
        command = command.model_copy(update={"member_id": h.ben})
    elif case == "too late":
        at = due.deadline + timedelta(minutes=1)
    else:
        household = uuid4()
        # Another household's member: not a bad check-in but a forged one (Kafka is a trust boundary). The
        # consumer dead-letters it as "rejected" and answers with CheckInCommandRejected (its on_invalid hook).
        with pytest.raises(TrustViolation, match=f"member {h.ana} does not belong to household {household}"):
            await h.send(command, occurred_at=at, household=household)
        assert h.sink.published == [] and await h.count("checkins") == 0
        return
    envelope = await h.send(command, occurred_at=at, household=household)
    [rejected] = h.sink.of(CheckInCommandRejected)
    assert rejected.command_event_id == envelope.event_id and rejected.command_type == "checkins.submit_checkin"
    expected = {"unknown occurrence": "unknown occurrence", "stranger": "is not in this household",
                "not participant": "is not a participant", "too late": "closed at",
                }[case]
    assert expected in rejected.reason
    assert h.sink.types() == ["CheckInCommandRejected"]
    assert await h.count("checkins") == 0
    await h.service.handle(envelope)  # redelivered: not rejected twice
    assert len(h.sink.published) == 1


@pytest.mark.unit
async def test_missed_is_published_at_the_deadline_by_the_timer(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    answered, unanswered, snoozed = (h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC)) for _ in range(3))
    for due in (answered, unanswered, snoozed):
        await h.send(due)
    await h.check_in(answered, h.ben, CheckInStatus.SKIPPED)
    await h.check_in(snoozed, h.ana, CheckInStatus.SNOOZED, snoozed_until=snoozed.scheduled_for + timedelta(hours=2))
    h.sink.clear()
    h.clock.set(unanswered.deadline - timedelta(seconds=1))
    h.service.policy = h.service.policy.__class__(weekly_summary_catch_up=timedelta(0))
    delay = await h.service.tick()
    assert h.sink.of(RitualMissed) == [] and delay == pytest.approx(1.0)

    h.clock.set(unanswered.deadline)
    await h.service.tick()
    missed = h.sink.of(RitualMissed)
    assert sorted(m.occurrence_id for m in missed) == sorted([unanswered.occurrence_id, snoozed.occurrence_id])
    assert missed[0].deadline == unanswered.deadline and missed[0].participants == [h.ana, h.ben]
    assert h.registry.get_sample_value("attune_checkins_missed_total", {"template": "evening_attunement"}) == 2
    count = len(h.sink.published)
    h.clock.advance(minutes=5)
    await h.service.tick()
    assert len(h.sink.published) == count  # reported once


@pytest.mark.unit
async def test_timer_loop_sleeps_until_the_deadline_then_reports(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC), window=timedelta(minutes=30))
    h.clock.set(due.scheduled_for)
    await h.send(due)
    h.service.policy = h.service.policy.__class__(timer_max_sleep_s=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(h.service.run_timer(stop))
    try:
        for _ in range(200):
            if h.sink.of(RitualMissed):
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    [missed] = h.sink.of(RitualMissed)
    assert missed.occurrence_id == due.occurrence_id
    assert h.clock.slept[0] == pytest.approx(30 * 60)  # one sleep straight to the deadline
    assert h.clock.now() >= due.deadline


async def test_seven_days_give_one_milestone_across_dst(any_harness: Harness) -> None:
    h = any_harness
    await h.setup_household()
    ritual = uuid4()
    milestones = []
    for day in range(9):  # Mon 8 .. Tue 16 March 2027, 21:00 local; DST starts Sunday 14th
        local = datetime(2027, 3, 8 + day, 21, 0)
        from zoneinfo import ZoneInfo

        scheduled = local.replace(tzinfo=ZoneInfo(h.zone)).astimezone(UTC)
        due = h.due(ritual, scheduled, window=timedelta(hours=4))
        h.clock.set(scheduled)
        await h.send(due)
        h.clock.set(scheduled + timedelta(minutes=20))
        await h.check_in(due, h.ana, at=h.clock.now())
        if day == 2:  # the partner answers too: same day, no new streak length
            await h.check_in(due, h.ben, at=h.clock.now())
        milestones = h.sink.of(MilestoneReached)
    assert [(m.length, m.unit) for m in milestones] == [(7, StreakUnit.DAYS)]
    lengths = [s.length for s in h.sink.of(StreakUpdated)]
    assert lengths == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert h.registry.get_sample_value("attune_checkins_milestones_total", {"unit": "days", "length": "7"}) == 1


@pytest.mark.unit
async def test_date_night_adherence_is_published(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    ritual = uuid4()
    fridays = [h.due(ritual, datetime(2027, 2, 20, 0, tzinfo=UTC) + timedelta(weeks=i), template="date_night",
                     title="Date night", window=timedelta(days=2)) for i in range(3)]
    for i, due in enumerate(fridays):
        h.clock.set(due.scheduled_for)
        await h.send(due)
        if i != 1:
            await h.check_in(due, h.ben, at=due.scheduled_for + timedelta(hours=3))
        h.clock.set(due.deadline)
        await h.service.tick()
    updates = [(u.kept, u.expected) for u in h.sink.of(DateNightAdherenceUpdated)]
    assert updates[-1] == (2, 3)
    assert h.sink.of(RitualMissed)[0].occurrence_id == fridays[1].occurrence_id


@pytest.mark.unit
async def test_ratio_drop_is_published_once_per_crossing(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    kinds = ["positive"] * 5 + ["negative"] * 2 + ["positive"] * 6 + ["negative"] * 3
    for kind in kinds:
        h.clock.advance(minutes=10)
        await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind(kind)))
    drops = h.sink.of(RatioDropped)
    # 5:2 drops; back to 11:2 (>= 5) re-arms; 11:3 drops again.
    assert [(d.positive, d.negative, d.window_days) for d in drops] == [(5, 2, 14), (11, 3, 14)]
    assert len(h.sink.of(MomentLogged)) == len(kinds)
    assert h.registry.get_sample_value("attune_checkins_ratio_drops_total") == 2


@pytest.mark.unit
async def test_moments_outside_the_window_do_not_count(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    old = h.clock.now() - timedelta(days=15)
    for _ in range(4):
        await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind.NEGATIVE, happened_at=old))
    for _ in range(6):
        await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind.POSITIVE))
    assert h.sink.of(RatioDropped) == []


@pytest.mark.unit
async def test_moment_and_achievement_from_a_stranger_are_rejected(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    await h.send(LogMoment(moment_id=uuid4(), member_id=uuid4(), kind=MomentKind.POSITIVE))
    await h.send(RecordAchievement(achievement_id=uuid4(), member_id=uuid4(), dream="run a marathon"))
    reasons = [r.reason for r in h.sink.of(CheckInCommandRejected)]
    assert len(reasons) == 2 and all("is not in this household" in r for r in reasons)
    achievement = RecordAchievement(achievement_id=uuid4(), member_id=h.ben, dream="finish the novel")
    await h.send(achievement)
    await h.send(achievement)  # same achievement id, new event id
    [recorded] = h.sink.of(AchievementRecorded)
    assert (recorded.member_id, recorded.dream) == (h.ben, "finish the novel")
    assert await h.count("moments") == 0 and await h.count("achievements") == 1


async def test_text_with_nul_is_refused_by_field_and_nothing_is_stored(any_harness: Harness) -> None:
    """PostgreSQL text refuses U+0000 (a DataError deep in the transaction); SQLite would keep it. Commands
    are refused with a reason for the sender; a fact from another service is the message's fault
    (PermanentError: the consumer dead-letters it at once instead of retrying it as if transient)."""
    h = any_harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 1, 1, 30, tzinfo=UTC))
    await h.send(due)
    h.sink.clear()
    await h.check_in(due, h.ana, note="nul\x00here")
    await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind.POSITIVE, note="\x00"))
    await h.send(RecordAchievement(achievement_id=uuid4(), member_id=h.ana, dream="a\x00b"))
    reasons = [r.reason for r in h.sink.of(CheckInCommandRejected)]
    assert reasons == ["note must not contain NUL characters (U+0000)"] * 2 + [
        "dream must not contain NUL characters (U+0000)"]

    bad_due = h.due(uuid4(), datetime(2027, 3, 1, 1, 30, tzinfo=UTC), title="Evening\x00attunement")
    with pytest.raises(PermanentError, match="title must not contain NUL"):
        await h.send(bad_due)
    assert [await h.count(t) for t in ("checkins", "moments", "achievements")] == [0, 0, 0]
    assert await h.count("occurrences") == 1  # only the good one


@pytest.mark.unit
async def test_weekly_summary_on_sunday_evening_matches_the_hand_computed_week(harness: Harness) -> None:
    """Week Mon 8 - Sun 14 March 2027 in New York (DST starts on the Sunday).

    Evening attunement daily 20:30, Ana and Ben: Ana did Mon-Fri (5 of 7), Ben Mon and Wed (2 of 7).
    Date night Fridays 19:00: Feb 12 (both; outside the 4 weeks), Feb 19 (both), Feb 26 (nobody),
    Mar 5 (Ben), Mar 12 (Ana) -> 3 kept of 4 in the 4 weeks; this week Ana 1/1, Ben 0/1.
    Moments this week: 4 positive, 2 negative (one more negative on Sunday 7th, the week before) -> 2.0.
    """
    from zoneinfo import ZoneInfo

    h = harness
    zone = ZoneInfo(h.zone)
    await h.setup_household()
    attune, date_night = uuid4(), uuid4()

    def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2027, month, day, hour, minute, tzinfo=zone).astimezone(UTC)

    fridays = {(2, 12): {h.ana, h.ben}, (2, 19): {h.ana, h.ben}, (2, 26): set(), (3, 5): {h.ben}, (3, 12): {h.ana}}
    events: list[tuple[datetime, object]] = []
    for (month, day), doers in fridays.items():
        due = h.due(date_night, at(month, day, 19), template="date_night", title="Date night",
                    window=timedelta(days=2))
        events.append((due.scheduled_for, due))
        events += [(due.scheduled_for + timedelta(hours=4), (due, m)) for m in doers]
    for i in range(7):
        due = h.due(attune, at(3, 8 + i, 20, 30), window=timedelta(hours=14))
        events.append((due.scheduled_for, due))
        doers = ({h.ana} if i < 5 else set()) | ({h.ben} if i in (0, 2) else set())
        events += [(due.scheduled_for + timedelta(hours=1), (due, m)) for m in doers]
    events.sort(key=lambda e: e[0])
    h.service.policy = h.service.policy.__class__(weekly_summary_catch_up=timedelta(0))
    for when, item in events:
        h.clock.set(when)
        if isinstance(item, tuple):
            await h.check_in(item[0], item[1], at=when)
        else:
            await h.send(item)
    for when, kind in [(at(3, 7, 22), "negative"), (at(3, 9, 8), "positive"), (at(3, 10, 8), "positive"),
                       (at(3, 11, 8), "negative"), (at(3, 12, 8), "positive"), (at(3, 13, 8), "positive"),
                       (at(3, 14, 8), "negative")]:
        h.clock.set(max(h.clock.now(), when))
        await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind(kind), happened_at=when))

    h.service.policy = h.service.policy.__class__()
    h.clock.set(at(3, 14, 18, 59))
    await h.service.tick()
    assert h.sink.of(WeeklySummary) == []
    h.clock.set(at(3, 14, 19))
    assert at(3, 14, 19) == datetime(2027, 3, 14, 23, tzinfo=UTC)
    await h.service.tick()
    await h.service.tick()
    [summary] = h.sink.of(WeeklySummary)
    assert (summary.week_start, summary.week_end) == (date(2027, 3, 8), date(2027, 3, 14))
    got = {(t.member_id, t.ritual_id): (t.kept, t.expected) for t in summary.tallies}
    assert got == {(h.ana, attune): (5, 7), (h.ben, attune): (2, 7), (h.ana, date_night): (1, 1),
                   (h.ben, date_night): (0, 1)}
    assert (summary.date_nights_kept_4w, summary.date_nights_expected_4w) == (3, 4)
    assert (summary.positive_moments, summary.negative_moments, summary.ratio) == (4, 2, 2.0)
    assert summary.focus.step == 1
    [envelope_id] = [p.event_id for p in h.sink.published if isinstance(p.payload, WeeklySummary)]
    assert envelope_id is not None


@pytest.mark.unit
async def test_notes_are_encrypted_at_rest_and_exported_in_clear(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC))
    await h.send(due)
    secret_note = "we finally talked about the move to Lisbon"
    await h.check_in(due, h.ana, note=secret_note)
    await h.send(LogMoment(moment_id=uuid4(), member_id=h.ben, kind=MomentKind.POSITIVE, note="flowers!"))
    async with h.store.engine.connect() as conn:
        raw = [bytes(r[0]) for r in (await conn.execute(text("SELECT note_enc FROM checkins"))).all()]
    assert raw and all(secret_note.encode() not in value for value in raw)
    exported = await h.service.export(h.household)
    assert exported is not None
    assert [c["note"] for c in exported["checkins"]] == [secret_note]
    assert [m["note"] for m in exported["moments"]] == ["flowers!"]


@pytest.mark.unit
async def test_household_erased_deletes_everything_and_old_events_stay_out(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC))
    due_envelope = await h.send(due)
    await h.check_in(due, h.ana, note="private")
    await h.send(LogMoment(moment_id=uuid4(), member_id=h.ben, kind=MomentKind.POSITIVE))
    other = Harness(h.service, h.store, h.sink, h.clock, h.registry, h.relay)
    await other.setup_household()
    async with h.store.unit_of_work() as uow:
        assert await uow.households.count_household_rows(h.household) > 5
    h.clock.advance(hours=1)
    await h.send(HouseholdErased(erased_at=h.clock.now()))
    async with h.store.unit_of_work() as uow:
        assert await uow.households.count_household_rows(h.household) == 0
        assert await uow.households.household(other.household) is not None  # the neighbours keep theirs
    with pytest.raises(HouseholdErasedError):  # a redelivery from before the erasure: refused (dead letter)
        await h.service.handle(due_envelope)
    async with h.store.unit_of_work() as uow:
        assert await uow.households.count_household_rows(h.household) == 0
    assert await h.service.export(h.household) is None


@pytest.mark.unit
async def test_an_erased_household_stays_erased_whatever_a_later_message_says(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    await h.send(HouseholdErased(erased_at=h.clock.now()))
    h.clock.advance(hours=1)
    # Sent after the erasure, or claiming to be: a replay with a fresh id and date, a forged re-registration.
    for fact in (HouseholdRegistered(name="Ana & Ben", time_zone=h.zone, kind=HouseholdKind.COUPLE),
                 MemberUpserted(member_id=h.ana, display_name="Ana", role=MemberRole.PARTNER, time_zone=h.zone)):
        with pytest.raises(HouseholdErasedError, match="erased"):
            await h.send(fact)
    await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind.POSITIVE, note="we laughed"))
    [refused] = h.sink.of(CheckInCommandRejected)
    assert "erased" in refused.reason and refused.member_id == h.ana
    async with h.store.unit_of_work() as uow:
        assert await uow.households.count_household_rows(h.household) == 0
        assert await uow.households.household(h.household) is None
    assert await h.service.export(h.household) is None


@pytest.mark.unit
async def test_a_batch_has_the_same_outcome_as_one_by_one(harness: Harness) -> None:
    from attune_contracts import make_envelope

    h = harness
    await h.setup_household()
    first, second = (h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC)) for _ in range(2))
    h.clock.set(first.scheduled_for + timedelta(minutes=50))

    def envelope(payload: object, minutes: int) -> object:
        return make_envelope(payload, household_id=h.household, producer="test",
                             occurred_at=first.scheduled_for + timedelta(minutes=minutes))

    ana_done = envelope(SubmitCheckIn(occurrence_id=first.occurrence_id, member_id=h.ana,
                                      status=CheckInStatus.DONE), 10)
    batch = [
        envelope(first, 0),
        ana_done, ana_done,  # redelivered inside the same batch
        envelope(SubmitCheckIn(occurrence_id=second.occurrence_id, member_id=h.ana,
                               status=CheckInStatus.DONE), 11),  # its RitualDue comes later in the batch
        envelope(second, 12),
        envelope(SubmitCheckIn(occurrence_id=second.occurrence_id, member_id=h.ben,
                               status=CheckInStatus.SKIPPED), 13),
        envelope(SubmitCheckIn(occurrence_id=first.occurrence_id, member_id=h.ana,
                               status=CheckInStatus.DONE, closeness=5), 14),  # replaces the first answer
        envelope(SubmitCheckIn(occurrence_id=first.occurrence_id, member_id=uuid4(),
                               status=CheckInStatus.DONE), 15),
    ]
    await h.service.handle_batch(batch)  # type: ignore[arg-type]
    recorded = [(r.occurrence_id, r.member_id, r.status, r.closeness) for r in h.sink.of(CheckInRecorded)]
    assert recorded == [
        (first.occurrence_id, h.ana, CheckInStatus.DONE, None),
        (second.occurrence_id, h.ben, CheckInStatus.SKIPPED, None),
        (first.occurrence_id, h.ana, CheckInStatus.DONE, 5),
    ]
    reasons = [r.reason for r in h.sink.of(CheckInCommandRejected)]
    assert len(reasons) == 2 and "unknown occurrence" in reasons[0] and "not in this household" in reasons[1]
    assert sorted((s.ritual_id == first.ritual_id, s.length) for s in h.sink.of(StreakUpdated)) == [(False, 0), (True, 1)]
    count = len(h.sink.published)
    await h.service.handle_batch(batch)  # type: ignore[arg-type]  # the whole batch redelivered
    assert len(h.sink.published) == count
    history, total = await h.service.history(h.household, page=1, page_size=10)
    assert total == 2 and {(c.member_id, c.closeness) for c in history} == {(h.ana, 5), (h.ben, None)}


@pytest.mark.unit
async def test_a_batch_tells_a_stranger_from_a_member_who_is_not_a_participant(harness: Harness) -> None:
    from attune_contracts import make_envelope

    h = harness
    await h.setup_household()
    ana_only = h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC), participants=[h.ana])
    await h.send(ana_only)
    h.clock.set(ana_only.scheduled_for + timedelta(minutes=50))
    batch = [make_envelope(SubmitCheckIn(occurrence_id=ana_only.occurrence_id, member_id=member,
                                         status=CheckInStatus.DONE),
                           household_id=h.household, producer="test", occurred_at=h.clock.now())
             for member in (h.ben, uuid4(), h.ana)]

    await h.service.handle_batch(batch)

    reasons = [r.reason for r in h.sink.of(CheckInCommandRejected)]
    assert len(reasons) == 2
    assert "not a participant" in reasons[0] and "not in this household" in reasons[1]
    assert [r.member_id for r in h.sink.of(CheckInRecorded)] == [h.ana]


async def _two_rituals_batch(h: Harness) -> list[object]:
    from attune_contracts import make_envelope

    await h.setup_household()
    dues = [h.due(uuid4(), datetime(2027, 3, 2, 1, 30, tzinfo=UTC)) for _ in range(2)]
    for due in dues:
        await h.send(due)
    h.clock.set(dues[0].scheduled_for + timedelta(minutes=50))
    return [make_envelope(SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=member, status=CheckInStatus.DONE),
                          household_id=h.household, producer="test", occurred_at=h.clock.now())
            for due in dues for member in (h.ana, h.ben)]


@pytest.mark.unit
async def test_a_batch_publishes_after_its_commit_in_decided_order(harness: Harness) -> None:
    h = harness
    batch = await _two_rituals_batch(h)
    h.sink.clear()

    await h.service.handle_batch(batch)  # type: ignore[arg-type]

    assert h.sink.types() == ["CheckInRecorded"] * 4 + ["StreakUpdated"] * 2
    assert [(r.occurrence_id, r.member_id) for r in h.sink.of(CheckInRecorded)] == [
        (e.payload.occurrence_id, e.payload.member_id) for e in batch]  # type: ignore[attr-defined]
    assert await h.count("checkins") == 4 and await h.count("checkins_outbox") == 0


@pytest.mark.unit
async def test_a_batch_is_recorded_with_the_broker_down_and_announced_once_it_is_back(harness: Harness) -> None:
    h = harness
    batch = await _two_rituals_batch(h)
    h.sink.clear()
    h.sink.down = True

    await h.service.handle_batch(batch)  # type: ignore[arg-type]

    # Kept, with its events waiting in the outbox: the consumer commits its offsets, nothing is retried.
    assert await h.count("checkins") == 4 and await h.count("checkins_outbox") == 6
    assert h.sink.published == []
    h.sink.down = False
    assert await h.relay.relay_once() == 6
    assert h.sink.types() == ["CheckInRecorded"] * 4 + ["StreakUpdated"] * 2
    assert await h.count("checkins_outbox") == 0


async def _days_kept(h: Harness, ritual, days: int, *, skip: set[int] = frozenset(), weekly: bool = False,
                     template: str = "evening_attunement") -> list[int]:
    """`days` occurrences (daily, or weekly) ending today, kept by Ana except those in `skip`; the streak
    lengths published after each."""
    start = datetime(2027, 6, 1, 1, 0, tzinfo=UTC)
    for i in range(days):
        scheduled = start + (timedelta(weeks=i) if weekly else timedelta(days=i))
        due = h.due(ritual, scheduled, template=template, window=timedelta(hours=4))
        h.clock.set(scheduled)
        await h.send(due)
        if i not in skip:
            await h.check_in(due, h.ana, at=scheduled + timedelta(minutes=20))
        h.clock.set(scheduled + timedelta(hours=5))
    return [s.length for s in h.sink.of(StreakUpdated) if s.ritual_id == ritual]


async def test_a_run_longer_than_the_first_window_is_counted_whole(any_harness: Harness) -> None:
    h = any_harness
    await h.setup_household()
    ritual = uuid4()
    lengths = await _days_kept(h, ritual, 60)
    assert lengths == list(range(1, 61))  # past 35 days the history is read further back, and still adds up
    assert [m.length for m in h.sink.of(MilestoneReached)] == [7, 30]


async def test_a_weekly_run_is_counted_whole_past_the_first_window(any_harness: Harness) -> None:
    h = any_harness
    await h.setup_household()
    ritual = uuid4()
    lengths = await _days_kept(h, ritual, 14, weekly=True, template="dreams_checkin")
    assert lengths == list(range(1, 15))
    assert [(m.length, m.unit) for m in h.sink.of(MilestoneReached)] == [(4, StreakUnit.WEEKS), (12, StreakUnit.WEEKS)]


def spy_on_history_reads(h: Harness) -> list[date]:
    """How far back each history read went, in order."""
    read_back: list[date] = []
    start_unit = h.service.uow

    def spying_unit():
        context = start_unit()

        class Spy:
            async def __aenter__(self):
                uow = await context.__aenter__()
                reads = uow.rituals.ritual_histories

                async def ritual_histories(ids, since):
                    read_back.append(since)
                    return await reads(ids, since)

                uow.rituals.ritual_histories = ritual_histories
                return uow

            async def __aexit__(self, *exc):
                return await context.__aexit__(*exc)

        return Spy()

    h.service.uow = spying_unit
    return read_back


@pytest.mark.unit
async def test_a_run_after_a_break_reads_only_the_first_window(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    read_back = spy_on_history_reads(h)
    lengths = await _days_kept(h, uuid4(), 70, skip={40})
    assert lengths[-1] == 29 and max(lengths) == 40
    last_day = datetime(2027, 6, 1, tzinfo=UTC).date() + timedelta(days=69)
    assert read_back[-1] >= last_day - timedelta(days=35 + 7)  # one window read: the break is inside it


@pytest.mark.unit
async def test_a_new_rituals_unbroken_run_is_read_once(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    read_back = spy_on_history_reads(h)
    lengths = await _days_kept(h, uuid4(), 10)
    assert lengths == list(range(1, 11))
    assert len(read_back) == 10  # one read per check-in: nothing before the first window to look for


@pytest.mark.parametrize("rrule,cadence", [
    ("FREQ=WEEKLY;BYDAY=MO", "weekly"),  # the household made a daily template weekly: "next week", not "tomorrow"
    ("FREQ=DAILY", "daily"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", "other"),
    (None, None),  # a ritual check-ins has not heard of: the notifier goes by the template's default
])
@pytest.mark.unit
async def test_a_missed_ritual_carries_the_cadence_of_its_own_rule(harness: Harness, rrule: str | None,
                                                                   cadence: str | None) -> None:
    h = harness
    await h.setup_household()
    ritual = uuid4()
    if rrule is not None:
        await h.send(RitualScheduled(
            ritual_id=ritual, template="evening_attunement", title="Evening attunement", participants=[h.ana, h.ben],
            rrule=rrule, local_time="20:30", start_date=date(2027, 3, 1), time_zone=h.zone,
            reminder_offsets_minutes=[], catch_up_minutes=60, sensitive=False, state=RitualState.ACTIVE))
    due = h.due(ritual, datetime(2027, 3, 2, 1, 30, tzinfo=UTC))
    await h.send(due)
    h.service.policy = h.service.policy.__class__(weekly_summary_catch_up=timedelta(0))
    h.clock.set(due.deadline)
    await h.service.tick()
    [missed] = h.sink.of(RitualMissed)
    assert missed.cadence == cadence
