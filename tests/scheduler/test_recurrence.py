"""The time core: RRULE + local time in real IANA zones, across DST, with no double fire and no skip."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from attune_scheduler.recurrence import (
    MAX_PER_DAY,
    Recurrence,
    RecurrenceError,
    occurrence_id,
    reminder_id,
    utc_iso,
)
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.unit]

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"]


def z(when: str) -> datetime:
    return datetime.fromisoformat(when)


# ---- the worked examples ------------------------------------------------------------------------


def test_spring_forward_nonexistent_time_fires_once_at_the_shifted_instant() -> None:
    rec = Recurrence.of("FREQ=DAILY", "02:30", date(2027, 3, 13), "America/New_York")
    got = rec.first(3)
    assert [utc_iso(i) for i in got] == ["2027-03-13T07:30:00Z", "2027-03-14T07:30:00Z", "2027-03-15T06:30:00Z"]
    assert [rec.to_local(i).isoformat() for i in got] == [
        "2027-03-13T02:30:00-05:00", "2027-03-14T03:30:00-04:00", "2027-03-15T02:30:00-04:00",
    ]


def test_fall_back_ambiguous_time_fires_once_the_first() -> None:
    rec = Recurrence.of("FREQ=DAILY", "01:30", date(2027, 11, 6), "America/New_York")
    got = rec.first(3)
    assert [utc_iso(i) for i in got] == ["2027-11-06T05:30:00Z", "2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"]
    assert rec.to_local(got[1]).utcoffset() == timedelta(hours=-4)  # EDT: the first 01:30


def test_lord_howe_half_hour_shift() -> None:
    # Lord Howe: 02:00 -> 02:30 on the first Sunday of October, 02:00 -> 01:30 on the first Sunday of April.
    rec = Recurrence.of("FREQ=DAILY", "02:15", date(2027, 10, 2), "Australia/Lord_Howe")
    local = [rec.to_local(i) for i in rec.first(3)]
    assert [t.strftime("%m-%d %H:%M%z") for t in local] == ["10-02 02:15+1030", "10-03 02:45+1100", "10-04 02:15+1100"]
    rec = Recurrence.of("FREQ=DAILY", "01:45", date(2027, 4, 3), "Australia/Lord_Howe")
    local = [rec.to_local(i) for i in rec.first(3)]
    assert [t.strftime("%m-%d %H:%M%z") for t in local] == ["04-03 01:45+1100", "04-04 01:45+1100", "04-05 01:45+1030"]


def test_chatham_gap_at_quarter_to_three() -> None:
    # Chatham: 02:45 -> 03:45 on the last Sunday of September 2027 (the 26th).
    rec = Recurrence.of("FREQ=DAILY", "03:00", date(2027, 9, 25), "Pacific/Chatham")
    local = [rec.to_local(i) for i in rec.first(3)]
    assert [t.strftime("%m-%d %H:%M%z") for t in local] == ["09-25 03:00+1245", "09-26 04:00+1345", "09-27 03:00+1345"]


def test_gap_and_shifted_time_on_the_same_instant_fire_once() -> None:
    rec = Recurrence.of("FREQ=DAILY;BYHOUR=2,3;BYMINUTE=30", "02:30", date(2027, 3, 13), "America/New_York")
    got = rec.between(z("2027-03-13T00:00:00Z"), z("2027-03-16T00:00:00Z"))
    assert [utc_iso(i) for i in got] == [
        "2027-03-13T07:30:00Z", "2027-03-13T08:30:00Z",
        "2027-03-14T07:30:00Z",  # 02:30 (does not exist) and 03:30 are the same instant: once
        "2027-03-15T06:30:00Z", "2027-03-15T07:30:00Z",
    ]


def test_a_whole_missing_day_fires_once_not_twice() -> None:
    # Samoa skipped 30 December 2011; the 30th's 09:00 lands on the 31st's 09:00.
    rec = Recurrence.of("FREQ=DAILY", "09:00", date(2011, 12, 29), "Pacific/Apia")
    got = rec.first(3)
    assert len(set(got)) == 3 and got == sorted(got)
    assert [rec.to_local(i).strftime("%m-%d %H:%M") for i in got] == ["12-29 09:00", "12-31 09:00", "01-01 09:00"]


def test_kolkata_has_no_dst() -> None:
    rec = Recurrence.of("FREQ=WEEKLY;BYDAY=FR", "20:00", date(2027, 1, 1), "Asia/Kolkata")
    assert all(utc_iso(i).endswith("T14:30:00Z") for i in rec.first(60))


def test_until_as_a_date_includes_that_day_and_utc_until_is_honoured() -> None:
    rec = Recurrence.of("FREQ=DAILY;UNTIL=20270105", "21:00", date(2027, 1, 1), "Europe/London")
    assert len(rec.first(100)) == 5
    rec = Recurrence.of("FREQ=DAILY;UNTIL=20270103T210000Z", "21:00", date(2027, 1, 1), "Europe/London")
    assert len(rec.first(100)) == 3
    rec = Recurrence.of("FREQ=WEEKLY;COUNT=4", "21:00", date(2027, 1, 1), "Europe/London")
    assert len(rec.first(100)) == 4 and rec.next_after(rec.first(4)[-1]) is None


def test_next_after_on_a_rule_that_started_years_ago() -> None:
    rec = Recurrence.of("FREQ=WEEKLY;INTERVAL=2;BYDAY=SU", "17:00", date(2020, 1, 5), "Europe/London")
    after = z("2027-06-01T00:00:00Z")
    expected = next(i for i in rec.instants() if i > after)
    assert rec.next_after(after) == expected


# ---- properties across real zones ---------------------------------------------------------------


def _transition_window(zone_name: str, year: int) -> list[date]:
    """Local dates from January to December of `year` (covers both transitions in every zone here)."""
    return [date(year, 1, 1) + timedelta(days=n) for n in range(366 if year % 4 == 0 else 365)]


@settings(max_examples=40, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    year=st.integers(2024, 2030),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
)
def test_daily_exactly_one_per_local_day_across_a_year(zone_name: str, year: int, hour: int, minute: int) -> None:
    tz = ZoneInfo(zone_name)
    rec = Recurrence.of("FREQ=DAILY", f"{hour:02d}:{minute:02d}", date(year, 1, 1), zone_name)
    days = _transition_window(zone_name, year)
    got = rec.first(len(days))
    assert len(got) == len(set(got)) == len(days)
    assert got == sorted(got)
    wanted = time(hour, minute)
    for day, instant in zip(days, got, strict=True):
        local = instant.astimezone(tz)
        # No skip: one per local day. A time in a spring-forward gap is moved forward by the gap.
        naive = datetime.combine(day, wanted)
        if local.replace(tzinfo=None) != naive:
            roundtrip = naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
            assert roundtrip != naive, f"{naive} exists in {zone_name} but fired at {local}"
            assert local.replace(tzinfo=None) - naive <= timedelta(hours=1)
        else:
            # An ambiguous time fires at the first of its two instants.
            earlier = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
            assert instant == earlier


@settings(max_examples=30, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    year=st.integers(2024, 2030),
    weekday=st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 30, 45]),
)
def test_weekly_exactly_one_per_week(zone_name: str, year: int, weekday: str, hour: int, minute: int) -> None:
    tz = ZoneInfo(zone_name)
    rec = Recurrence.of(f"FREQ=WEEKLY;BYDAY={weekday}", f"{hour:02d}:{minute:02d}", date(year, 1, 1), zone_name)
    got = rec.first(53)
    local_dates = [i.astimezone(tz).date() for i in got]
    assert got == sorted(got) and len(set(got)) == 53
    assert all((b - a).days == 7 for a, b in itertools.pairwise(local_dates))


@settings(max_examples=60, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    rule=st.sampled_from(["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TH", "FREQ=DAILY;INTERVAL=3",
                          "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA", "FREQ=MONTHLY;BYMONTHDAY=1,15",
                          "FREQ=DAILY;BYHOUR=7,18;BYMINUTE=30"]),
    start=st.dates(date(2022, 1, 1), date(2028, 12, 31)),
    offset_hours=st.integers(0, 24 * 800),
)
def test_next_after_agrees_with_full_expansion(zone_name: str, rule: str, start: date, offset_hours: int) -> None:
    rec = Recurrence.of(rule, "02:30", start, zone_name)
    after = datetime.combine(start, time(0), tzinfo=UTC) + timedelta(hours=offset_hours)
    expected = next(i for i in rec.instants() if i > after)
    assert rec.next_after(after) == expected
    assert rec.between(after, expected) == [expected]


# ---- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=SECONDLY", "too frequent"),
        ("FREQ=MINUTELY;INTERVAL=30", "too frequent"),
        ("FREQ=HOURLY", "too frequent"),
        ("FREQ=DAILY;BYHOUR=6,9,12,15,18", f"at most {MAX_PER_DAY} times a day"),
        ("FREQ=DAILY;BYMINUTE=0,10,20,30,40", f"at most {MAX_PER_DAY} times a day"),
        ("FREQ=DAILY;BYSECOND=5", "to the minute"),
        ("BYDAY=FR", "FREQ is missing"),
        ("FREQ=FORTNIGHTLY", "not a frequency"),
        ("FREQ=WEEKLY;BYDAY=XX", "invalid RRULE"),
        ("FREQ=DAILY;COUNT=abc", "whole number"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20280101", "COUNT or UNTIL"),
        ("FREQ=DAILY;DTSTART=20270101T100000", "DTSTART"),
        ("DTSTART:20270101T100000\nRRULE:FREQ=DAILY", "one RRULE line"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no occurrence"),
        ("FREQ=DAILY;UNTIL=20200101", "ends (UNTIL) before"),
        ("not a rule at all", "NAME=VALUE"),
        ("", "empty"),
    ],
)
def test_refused_with_a_reason(rule: str, words: str) -> None:
    with pytest.raises(RecurrenceError) as caught:
        Recurrence.of(rule, "20:00", date(2027, 1, 1), "Europe/London")
    assert words in caught.value.reason


@pytest.mark.parametrize(("zone_name", "words"), [
    ("Mars/Olympus_Mons", "unknown IANA time zone"), ("../../etc/passwd", "not an IANA"), ("localtime", "not an IANA"),
])
def test_unknown_zone_refused(zone_name: str, words: str) -> None:
    with pytest.raises(RecurrenceError) as caught:
        Recurrence.of("FREQ=DAILY", "20:00", date(2027, 1, 1), zone_name)
    assert words in caught.value.reason


@pytest.mark.parametrize("bad", ["24:00", "7:30", "07:60", "noon", ""])
def test_bad_local_time_refused(bad: str) -> None:
    with pytest.raises(RecurrenceError, match="HH:MM"):
        Recurrence.of("FREQ=DAILY", bad, date(2027, 1, 1), "Europe/London")


def test_rrule_prefix_and_lowercase_are_accepted() -> None:
    rec = Recurrence.of("RRULE:freq=weekly;byday=fr", "19:00", date(2027, 1, 1), "Europe/London")
    assert rec.to_local(rec.first(1)[0]).strftime("%a %H:%M") == "Fri 19:00"


# ---- ids and reminders --------------------------------------------------------------------------


def test_ids_are_deterministic_and_distinct() -> None:
    ritual = uuid.UUID("11111111-1111-4111-8111-111111111111")
    at = z("2027-03-14T07:30:00Z")
    same = at.astimezone(ZoneInfo("America/New_York"))
    assert occurrence_id(ritual, at) == occurrence_id(ritual, same)
    assert occurrence_id(ritual, at) != occurrence_id(ritual, at + timedelta(minutes=1))
    assert occurrence_id(ritual, at) == uuid.uuid5(
        uuid.UUID("6f1c2a4e-5b7d-5e0a-9c3f-a77e0c0ffee1"), f"{ritual}:2027-03-14T07:30:00Z"
    )
    occ = occurrence_id(ritual, at)
    assert reminder_id(occ, 1440) == uuid.uuid5(uuid.UUID("6f1c2a4e-5b7d-5e0a-9c3f-a77e0c0ffee1"), f"{occ}:1440")
    assert reminder_id(occ, 1440) != reminder_id(occ, 60)


def test_date_night_reminders_the_day_before_and_on_the_day() -> None:
    rec = Recurrence.of("FREQ=WEEKLY;BYDAY=FR", "19:00", date(2027, 1, 1), "Europe/London")
    start, end = z("2027-01-02T00:00:00Z"), z("2027-01-09T00:00:00Z")
    got = rec.reminders_between(start, end, [1440, 240])
    assert [(utc_iso(o), off, utc_iso(at)) for o, off, at in got] == [
        ("2027-01-08T19:00:00Z", 1440, "2027-01-07T19:00:00Z"),
        ("2027-01-08T19:00:00Z", 240, "2027-01-08T15:00:00Z"),
    ]
    assert rec.next_reminder_after(start, [1440, 240]) == z("2027-01-07T19:00:00Z")
    assert rec.next_reminder_after(z("2027-01-07T19:00:00Z"), [1440, 240]) == z("2027-01-08T15:00:00Z")


@pytest.mark.parametrize(("occurrence", "reminder"), [
    ("2027-03-28T18:00:00Z", "2027-03-27T19:00:00Z"),  # clocks go forward overnight: Sat 19:00 GMT
    ("2027-10-31T19:00:00Z", "2027-10-30T18:00:00Z"),  # clocks go back overnight: Sat 19:00 BST
    ("2027-04-04T18:00:00Z", "2027-04-03T18:00:00Z"),  # no change in between
])
def test_the_day_before_reminder_keeps_its_local_time_across_a_clock_change(occurrence: str, reminder: str) -> None:
    rec = Recurrence.of("FREQ=WEEKLY;BYDAY=SU", "19:00", date(2027, 3, 1), "Europe/London")
    at = z(occurrence)
    assert rec.to_local(at).strftime("%a %H:%M") == "Sun 19:00"
    assert rec.remind_at(at, 1440) == z(reminder)
    assert rec.to_local(z(reminder)).strftime("%a %H:%M") == "Sat 19:00"
    assert rec.reminders_between(z(reminder) - timedelta(minutes=1), z(reminder), [1440]) == [(at, 1440, z(reminder))]
    assert rec.next_reminder_after(z(reminder) - timedelta(hours=2), [1440]) == z(reminder)


def test_a_reminder_whose_local_time_does_not_exist_comes_at_the_shifted_instant() -> None:
    rec = Recurrence.of("FREQ=DAILY", "01:30", date(2027, 3, 1), "Europe/London")
    monday = z("2027-03-29T00:30:00Z")  # 01:30 BST
    # 01:30 on Sunday 28 March does not exist in London (01:00 GMT -> 02:00 BST): once, at 02:30 BST.
    assert rec.remind_at(monday, 1440) == z("2027-03-28T01:30:00Z")
    got = rec.reminders_between(z("2027-03-27T12:00:00Z"), z("2027-03-29T12:00:00Z"), [1440])
    assert [(utc_iso(o), utc_iso(at)) for o, _, at in got] == [
        ("2027-03-29T00:30:00Z", "2027-03-28T01:30:00Z"),
        ("2027-03-30T00:30:00Z", "2027-03-29T00:30:00Z"),
    ]


@pytest.mark.parametrize("rule", ["FREQ=DAILY", "FREQ=YEARLY"])
def test_a_ritual_can_start_on_29_february(rule: str) -> None:
    # Found by the property test above: the existence horizon used date.replace(year=...).
    rec = Recurrence.of(rule, "02:30", date(2028, 2, 29), "America/New_York")
    first = rec.next_after(datetime(2028, 2, 29, tzinfo=UTC))
    assert first == datetime(2028, 2, 29, 7, 30, tzinfo=UTC)
