"""The pure check-ins rules: streaks in local days across DST and midnight, milestones, ratio, summaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

import pytest
from attune_checkins import service as rules
from attune_checkins.service import CheckIn, Moment, Occurrence, Outcome, Rejected
from attune_contracts.messages import CheckInSource, CheckInStatus, MemberRitualTally, StreakUnit

pytestmark = [pytest.mark.unit]

NY = ZoneInfo("America/New_York")
HOUSEHOLD, RITUAL, ANA, BEN = uuid4(), uuid4(), uuid4(), uuid4()


def occ(local: datetime, *, window: timedelta = timedelta(hours=3), ritual: UUID = RITUAL,
        template: str = "evening_attunement", zone: str = "America/New_York") -> Occurrence:
    scheduled = local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return Occurrence(uuid4(), HOUSEHOLD, ritual, template, "t", (ANA, BEN), scheduled, scheduled + window, zone)


def daily(start: date, days: int, hour: int = 21, minute: int = 0) -> list[Occurrence]:
    return [occ(datetime(start.year, start.month, start.day, hour, minute) + timedelta(days=i)) for i in range(days)]


# ---- streaks ------------------------------------------------------------------------------------


def test_daily_streak_runs_through_the_spring_forward_day() -> None:
    # 2027-03-14 is the 23-hour day in New York; 21:00 local is 02:00 UTC before it, 01:00 UTC after it.
    occurrences = daily(date(2027, 3, 8), 9)  # 8th .. 16th
    assert occurrences[5].scheduled_for == datetime(2027, 3, 14, 2, tzinfo=UTC)  # Sat 13th, EST
    assert occurrences[6].scheduled_for == datetime(2027, 3, 15, 1, tzinfo=UTC)  # Sun 14th, EDT
    assert occurrences[6].scheduled_for - occurrences[5].scheduled_for == timedelta(hours=23)
    now = datetime(2027, 3, 17, 12, tzinfo=UTC)
    streak = rules.compute_streak([(o, True) for o in occurrences], StreakUnit.DAYS, now)
    assert streak == rules.Streak(length=9, best=9, run_start=date(2027, 3, 8))


def test_daily_streak_runs_through_the_fall_back_day() -> None:
    occurrences = daily(date(2027, 11, 4), 7)  # 2027-11-07 has 25 hours
    now = datetime(2027, 11, 11, tzinfo=UTC)
    assert rules.compute_streak([(o, True) for o in occurrences], StreakUnit.DAYS, now).length == 7


def test_local_midnight_decides_the_day_not_utc() -> None:
    # 23:50 local is 03:50/04:50 UTC the next day: by UTC dates these would be "the same day" twice or skip one.
    late = daily(date(2027, 3, 10), 7, hour=23, minute=50)
    now = datetime(2027, 3, 20, tzinfo=UTC)
    assert [o.local_date for o in late] == [date(2027, 3, 10) + timedelta(days=i) for i in range(7)]
    assert rules.compute_streak([(o, True) for o in late], StreakUnit.DAYS, now).length == 7
    # Two occurrences ten minutes apart either side of local midnight are two different days.
    before, after = occ(datetime(2027, 3, 12, 23, 55)), occ(datetime(2027, 3, 13, 0, 5))
    assert rules.compute_streak([(before, True), (after, True)], StreakUnit.DAYS, now).length == 2
    assert before.scheduled_for.date() == after.scheduled_for.date()  # same UTC day


def test_a_closed_unkept_day_breaks_the_streak_and_an_open_one_does_not() -> None:
    occurrences = daily(date(2027, 3, 1), 5)
    now = datetime(2027, 3, 6, 12, tzinfo=UTC)
    kept = [True, True, False, True, True]
    streak = rules.compute_streak(list(zip(occurrences, kept, strict=True)), StreakUnit.DAYS, now)
    assert (streak.length, streak.best, streak.run_start) == (2, 2, date(2027, 3, 4))
    # Today's occurrence still open and not yet done: the streak stands at yesterday's length.
    today = occ(datetime(2027, 3, 6, 21))
    streak = rules.compute_streak([*zip(occurrences, kept, strict=True), (today, False)], StreakUnit.DAYS,
                                  datetime(2027, 3, 7, 1, tzinfo=UTC))
    assert streak.length == 2
    # Once its deadline has passed unkept, the streak is over.
    streak = rules.compute_streak([*zip(occurrences, kept, strict=True), (today, False)], StreakUnit.DAYS,
                                  datetime(2027, 3, 7, 12, tzinfo=UTC))
    assert (streak.length, streak.best) == (0, 2)


def test_two_occurrences_a_day_keep_the_day_if_either_is_done() -> None:
    morning = daily(date(2027, 3, 1), 3, hour=7)
    evening = daily(date(2027, 3, 1), 3, hour=18)
    now = datetime(2027, 3, 5, tzinfo=UTC)
    pairs = [(morning[0], True), (evening[0], False), (morning[1], False), (evening[1], True),
             (morning[2], False), (evening[2], False)]
    assert rules.compute_streak(pairs, StreakUnit.DAYS, now).best == 2


def test_weekly_streak_counts_local_monday_to_sunday_weeks() -> None:
    fridays = [occ(datetime(2027, 2, 5, 19) + timedelta(weeks=i), window=timedelta(days=2),
                   template="date_night") for i in range(6)]
    now = datetime(2027, 3, 20, tzinfo=UTC)
    streak = rules.compute_streak([(o, True) for o in fridays], StreakUnit.WEEKS, now)
    assert (streak.length, streak.run_start) == (6, date(2027, 2, 1))
    # A Sunday-night occurrence at 23:30 local belongs to that week, though it is Monday in UTC.
    sunday_late = occ(datetime(2027, 3, 21, 23, 30), window=timedelta(hours=2))
    assert sunday_late.scheduled_for.weekday() == 0 and sunday_late.local_date.weekday() == 6
    assert rules.period_of(sunday_late.local_date, StreakUnit.WEEKS) == date(2027, 3, 15)


def test_weekday_only_ritual_counts_in_days_and_weekends_do_not_break_it() -> None:
    assert rules.unit_for("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "six_second_kiss_morning") is StreakUnit.DAYS
    assert rules.unit_for("FREQ=WEEKLY;BYDAY=FR", "date_night") is StreakUnit.WEEKS
    assert rules.unit_for("FREQ=DAILY", "anything") is StreakUnit.DAYS
    assert rules.unit_for(None, "date_night") is StreakUnit.WEEKS
    weekdays = [o for o in daily(date(2027, 3, 1), 14, hour=7) if o.local_date.weekday() < 5]
    assert rules.compute_streak([(o, True) for o in weekdays], StreakUnit.DAYS,
                                datetime(2027, 3, 20, tzinfo=UTC)).length == 10


@pytest.mark.parametrize(
    ("before", "after", "unit", "crossed"),
    [(6, 7, StreakUnit.DAYS, [7]), (7, 8, StreakUnit.DAYS, []), (5, 31, StreakUnit.DAYS, [7, 30]),
     (99, 100, StreakUnit.DAYS, [100]), (3, 4, StreakUnit.WEEKS, [4]), (11, 12, StreakUnit.WEEKS, [12]),
     (51, 52, StreakUnit.WEEKS, [52]), (7, 0, StreakUnit.DAYS, [])],
)
def test_milestones(before: int, after: int, unit: StreakUnit, crossed: list[int]) -> None:
    assert rules.milestones_crossed(before, after, unit) == crossed


def test_date_night_adherence_over_four_weeks() -> None:
    fridays = [occ(datetime(2027, 2, 5, 19) + timedelta(weeks=i), window=timedelta(days=2),
                   template="date_night") for i in range(6)]  # Feb 5 .. Mar 12
    kept = [True, True, False, True, True, False]
    now = datetime(2027, 3, 13, 12, tzinfo=UTC)  # Mar 12's is still open (deadline Mar 14)
    # Window: Feb 14 .. Mar 13: Feb 19 (False), Feb 26 (True), Mar 5 (True), Mar 12 (open, not counted)
    assert rules.adherence(list(zip(fridays, kept, strict=True)), window_end=date(2027, 3, 13), now=now) == (2, 3)
    assert rules.adherence(list(zip(fridays, kept, strict=True)), window_end=date(2027, 3, 15),
                           now=datetime(2027, 3, 15, 12, tzinfo=UTC)) == (2, 4)


# ---- check-in rules -----------------------------------------------------------------------------


def test_validation_reasons() -> None:
    o = occ(datetime(2027, 3, 1, 21))
    ok = {"household_id": HOUSEHOLD, "occurrence": o, "occurrence_id": o.occurrence_id, "member_id": ANA,
              "members": frozenset({ANA, BEN}), "closeness": 3, "note": "fine", "submitted_at": o.scheduled_for}
    assert rules.validate_checkin(**ok) is o
    cases = {
        "closeness must be between 1 and 5, got 9": {"closeness": 9},
        "note is 2001 characters; the limit is 2000": {"note": "x" * 2001},
        "unknown occurrence": {"occurrence": None},
        "is not in this household": {"member_id": uuid4()},
        "not a participant": {"members": frozenset({ANA, BEN, (carol := uuid4())}), "member_id": carol},
        "the occurrence closed at": {"submitted_at": o.deadline + timedelta(seconds=1)},
    }
    for expected, change in cases.items():
        with pytest.raises(Rejected) as caught:
            rules.validate_checkin(**{**ok, **change})
        assert expected in caught.value.reason
    with pytest.raises(Rejected, match="unknown occurrence"):
        rules.validate_checkin(**{**ok, "household_id": uuid4()})  # someone else's occurrence


def _checkin(status: CheckInStatus, at: datetime, closeness: int | None = None) -> CheckIn:
    o = occ(datetime(2027, 3, 1, 21))
    return CheckIn(rules.checkin_id_for(o.occurrence_id, ANA), o.occurrence_id, ANA, HOUSEHOLD, RITUAL,
                   "evening_attunement", status, None, closeness, None, CheckInSource.EVENT, at, at, o.scheduled_for)


def test_second_submission_rule() -> None:
    t0 = datetime(2027, 3, 2, 2, tzinfo=UTC)
    first = _checkin(CheckInStatus.DONE, t0, 4)
    assert rules.decide_submission(None, first) is Outcome.NEW
    assert rules.decide_submission(first, _checkin(CheckInStatus.DONE, t0 + timedelta(minutes=5), 4)) is Outcome.UNCHANGED
    assert rules.decide_submission(first, _checkin(CheckInStatus.DONE, t0 + timedelta(minutes=5), 5)) is Outcome.REPLACED
    assert rules.decide_submission(first, _checkin(CheckInStatus.SKIPPED, t0 - timedelta(minutes=5))) is Outcome.STALE
    assert rules.checkin_id_for(first.occurrence_id, ANA) == first.checkin_id  # stable key


def test_missed_needs_a_passed_deadline_and_no_done_or_skip() -> None:
    o = occ(datetime(2027, 3, 1, 21))
    assert not rules.is_missed(o, [], o.deadline - timedelta(seconds=1))
    assert rules.is_missed(o, [], o.deadline)
    assert rules.is_missed(o, [CheckInStatus.SNOOZED], o.deadline)
    assert not rules.is_missed(o, [CheckInStatus.SKIPPED], o.deadline)
    assert not rules.is_missed(o, [CheckInStatus.DONE, CheckInStatus.SNOOZED], o.deadline)


# ---- ratio --------------------------------------------------------------------------------------


def test_ratio_drop_is_reported_once_per_crossing() -> None:
    below = False
    reports = []
    # (positive, negative) after each moment
    for pos, neg in [(5, 0), (5, 1), (5, 2), (4, 2), (5, 2), (10, 2), (10, 3), (10, 4)]:
        below, dropped = rules.ratio_transition(pos, neg, was_below=below, min_moments=6)
        reports.append(dropped)
    assert reports == [False, False, True, False, False, False, True, False]


def test_ratio_needs_a_minimum_number_of_moments() -> None:
    assert rules.ratio_transition(1, 1, was_below=False, min_moments=6) == (False, False)
    assert rules.ratio_transition(3, 3, was_below=False, min_moments=6) == (True, True)
    assert rules.ratio_of(7, 0) is None and rules.ratio_of(9, 2) == 4.5


# ---- weekly summary -----------------------------------------------------------------------------


def test_summary_slot_is_sunday_evening_local_across_dst() -> None:
    # Sunday 2027-03-14 is the spring-forward day: 19:00 EDT is 23:00 UTC (it was 00:00 UTC a week before).
    week_start, at = rules.summary_slot(datetime(2027, 3, 14, 23, 0, tzinfo=UTC), "America/New_York", 19)
    assert (week_start, at) == (date(2027, 3, 8), datetime(2027, 3, 14, 23, 0, tzinfo=UTC))
    week_start, at = rules.summary_slot(datetime(2027, 3, 14, 22, 59, tzinfo=UTC), "America/New_York", 19)
    assert (week_start, at) == (date(2027, 3, 1), datetime(2027, 3, 8, 0, 0, tzinfo=UTC))
    assert rules.next_summary_at(datetime(2027, 3, 10, tzinfo=UTC), "America/New_York", 19) == datetime(
        2027, 3, 14, 23, tzinfo=UTC)
    assert rules.next_summary_at(datetime(2027, 3, 10, tzinfo=UTC), "Asia/Tokyo", 19) == datetime(
        2027, 3, 14, 10, tzinfo=UTC)


def test_weekly_summary_against_a_hand_computed_week() -> None:
    attune, date_night = uuid4(), uuid4()
    evenings = [occ(datetime(2027, 3, 8, 20, 30) + timedelta(days=i), ritual=attune, window=timedelta(hours=14))
                for i in range(7)]  # Mon 8 .. Sun 14
    fridays = [occ(datetime(2027, 2, 12, 19) + timedelta(weeks=i), ritual=date_night, template="date_night",
                   window=timedelta(days=2)) for i in range(5)]  # Feb 12 (outside the 4 weeks), 19, 26, Mar 5, 12
    done_by = {evenings[i].occurrence_id: frozenset({ANA}) for i in range(5)}
    for i in (0, 2):
        done_by[evenings[i].occurrence_id] = frozenset({ANA, BEN})
    done_by[fridays[0].occurrence_id] = frozenset({ANA, BEN})
    done_by[fridays[1].occurrence_id] = frozenset({ANA, BEN})
    done_by[fridays[3].occurrence_id] = frozenset({BEN})
    done_by[fridays[4].occurrence_id] = frozenset({ANA})
    moments = [Moment(uuid4(), HOUSEHOLD, ANA, kind, None, datetime(2027, 3, 10, tzinfo=UTC), datetime.now(UTC))
               for kind in ["positive"] * 4 + ["negative"] * 2]
    slot = datetime(2027, 3, 14, 23, tzinfo=UTC)
    data = rules.WeekData([*fridays, *evenings], done_by, moments, achievements_4w=1)
    summary = rules.weekly_summary(date(2027, 3, 8), data, slot)

    assert (summary.week_start, summary.week_end) == (date(2027, 3, 8), date(2027, 3, 14))
    got = {(t.member_id, t.ritual_id): (t.kept, t.expected) for t in summary.tallies}
    assert got == {(ANA, attune): (5, 7), (BEN, attune): (2, 7), (ANA, date_night): (1, 1), (BEN, date_night): (0, 1)}
    # Date nights Feb 15 .. Mar 14: Feb 19 kept, Feb 26 not, Mar 5 kept, Mar 12 kept.
    assert (summary.date_nights_kept_4w, summary.date_nights_expected_4w) == (3, 4)
    assert (summary.positive_moments, summary.negative_moments, summary.ratio) == (4, 2, 2.0)
    assert summary.focus.step == 1  # the ratio is the first thing to work on


def test_focus_order() -> None:
    def tally(template: str, kept: int, expected: int) -> MemberRitualTally:
        return MemberRitualTally(member_id=ANA, ritual_id=uuid4(), template=template, kept=kept, expected=expected)

    base = {"tallies": [], "date_nights_kept": 4, "date_nights_expected": 4, "positive": 10, "negative": 1, "achievements_4w": 1}
    assert rules.choose_focus(**{**base, "positive": 4}).step == 1
    assert rules.choose_focus(**{**base, "date_nights_kept": 2}).step == 2
    assert rules.choose_focus(**{**base, "date_nights_expected": 0, "date_nights_kept": 0}).step == 2
    tallies = [tally("evening_attunement", 6, 7), tally("curiosity_question", 2, 7)]
    assert rules.choose_focus(**{**base, "tallies": tallies}).step == 5
    assert rules.choose_focus(**{**base, "tallies": [tally("evening_attunement", 7, 7)], "achievements_4w": 0}).step == 6
    focus = rules.choose_focus(**base)
    assert focus.step == 5 and focus.title and len(focus.text) <= 600


def test_timer_sleeps_until_the_next_deadline_or_summary() -> None:
    now = datetime(2027, 3, 1, tzinfo=UTC)
    assert rules.seconds_until_next(now, [now + timedelta(seconds=90), None], 60) == 60
    assert rules.seconds_until_next(now, [now + timedelta(seconds=5), now + timedelta(hours=1)], 60) == 5
    assert rules.seconds_until_next(now, [now - timedelta(seconds=5)], 60) == 0
    assert rules.seconds_until_next(now, [None], 60) == 60


def test_derived_ids_are_uuid5_of_the_joined_parts_and_never_change() -> None:
    # Check-in ids and published event ids are stored and deduplicated on: the formula may not drift.
    occurrence, member = UUID("0b5c1f7e-8f0a-4a59-9d55-6a3c0a0f2a11"), UUID("6d0f3a7c-1e2b-4c3d-8e4f-5a6b7c8d9e0f")
    assert rules.checkin_id_for(occurrence, member) == uuid5(rules.NAMESPACE, f"checkin:{occurrence}:{member}")
    assert rules.derived_id("out", occurrence, 0) == uuid5(rules.NAMESPACE, f"out:{occurrence}:0")
    assert rules.derived_id("weekly", member, date(2027, 3, 1)) == uuid5(rules.NAMESPACE, f"weekly:{member}:2027-03-01")
