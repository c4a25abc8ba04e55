"""Every rule costs a bounded amount of work, whatever its DTSTART, COUNT, UNTIL and BY* parts.

The work is counted, not timed: the days dateutil examines, read from dateutil's own per-period day sets
(`dateutil.rrule._iterinfo`). One look-up may examine at most `LOOKUP_WORK` days (ten years plus a period
either side); the work per day is bounded by the caps on BY* lists (recurrence.MAX_LIST_VALUES, ...).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dateutil.rrule
import pytest
from attune_contracts import make_envelope
from attune_contracts.messages import HouseholdKind, MemberRole, ScheduleRitual
from attune_scheduler.decisions import decide
from attune_scheduler.model import Household, HouseholdView, Member, Ritual
from attune_scheduler.recurrence import LOOKAHEAD, Recurrence, RecurrenceError, zone
from attune_scheduler.waking import plan, wake
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

pytestmark = [pytest.mark.unit]

NOW = datetime(2027, 3, 13, 12, 0, tzinfo=UTC)
LOOKUP_WORK = LOOKAHEAD.days + 2 * 366 + 7 + 10
"""Days one look-up may examine: its window (ten years and a few days of margins) and a period either side."""
OFFSETS = [1, 60, 240, 1440, 10080]


class WorkMeter:
    """Counts the days dateutil examines, in dateutil's own `_iterinfo` (under any subclass of it)."""

    def __init__(self) -> None:
        self.days = 0


def _dateutil_iterinfo() -> type:
    current = dateutil.rrule._iterinfo  # type: ignore[attr-defined]
    return next(c for c in current.__mro__ if c.__module__ == "dateutil.rrule" and c.__name__ == "_iterinfo")


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkMeter]:
    found = WorkMeter()
    base = _dateutil_iterinfo()
    for name in ("ydayset", "mdayset", "wdayset", "ddayset"):
        original = getattr(base, name)

        def counted(self: Any, year: int, month: int, day: int, _original: Any = original) -> Any:
            dayset, start, end = _original(self, year, month, day)
            found.days += max(1, end - start)
            return dayset, start, end

        monkeypatch.setattr(base, name, counted)
    yield found


def clear_caches() -> None:
    """Compiled rules and answers are cached across tests; each test counts its own work from cold."""
    from attune_scheduler import recurrence, rrule_walk

    rrule_walk.compiled.cache_clear()
    recurrence._recurrence.cache_clear()
    recurrence._next_after_cached.cache_clear()


@pytest.fixture(autouse=True)
def cold_caches() -> None:
    clear_caches()


def ritual(rule: str, start: date, zone_name: str = "Europe/London", offsets: list[int] | None = None) -> Ritual:
    return Ritual(
        id=uuid.uuid4(), household_id=uuid.uuid4(), template="evening_attunement", title=None,
        participants=[uuid.uuid4()], rrule=rule, local_time="20:30", start_date=start, time_zone=zone_name,
        reminder_offsets=list(OFFSETS if offsets is None else offsets), catch_up_minutes=60, sensitive=False,
    )


# ---- the rules of the issue ---------------------------------------------------------------------


def test_the_issue_rule_from_the_year_one_is_refused_with_a_reason(meter: WorkMeter) -> None:
    # Before: accepted, then ~1.8 s per look-up and ~9.5 s with five reminder offsets.
    with pytest.raises(RecurrenceError) as refused:
        Recurrence.of("FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=999999999", "20:30", date(1, 1, 1), "Europe/London")
    assert "out of range" in refused.value.reason
    with pytest.raises(RecurrenceError) as refused:
        Recurrence.of("FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=999999999", "20:30", date(2027, 1, 1), "Europe/London")
    assert "COUNT=999999999 must be from 1 to 5000" in refused.value.reason
    assert meter.days == 0  # refused before dateutil walks a single day


@pytest.mark.parametrize("rule", [
    "FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=4000",       # COUNT: expanded from DTSTART before
    "FREQ=MONTHLY;BYMONTHDAY=1,15",               # MONTHLY: never fast-forwarded before
    "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",           # YEARLY: same
    "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29",         # sparse: hits every four years
    "FREQ=MONTHLY;INTERVAL=7;BYDAY=2FR;BYSETPOS=1",
])
def test_a_ritual_that_started_decades_ago_costs_a_few_look_ups(meter: WorkMeter, rule: str) -> None:
    old = ritual(rule, date(1970, 1, 1))
    try:
        Recurrence.of(rule, "20:30", old.start_date, old.time_zone)
    except RecurrenceError as refused:
        assert "COUNT" in refused.reason  # a COUNT not used up within ten years of its start
        return
    planned = plan(old, NOW)
    assert planned.next_due_at is None or planned.next_due_at > NOW
    woken = wake(planned, planned.wake_at or NOW, planned.wake_at or NOW)
    assert woken.emitted or planned.wake_at is None
    # compile (two walks) + plan (1 + 5 offsets) + wake (each offset twice, the occurrence twice)
    assert meter.days <= 20 * LOOKUP_WORK


def test_a_count_rule_fast_forwards_like_any_other(meter: WorkMeter) -> None:
    # Hours clear of London's clock changes: each of the 4,000 local times is its own instant.
    rec = Recurrence.of("FREQ=DAILY;BYHOUR=7,9,19,21;COUNT=4000", "20:30", date(2026, 6, 1), "Europe/London")
    compiled = meter.days
    assert compiled <= 2 * LOOKUP_WORK
    first = rec.next_after(datetime(2027, 1, 1, tzinfo=UTC))
    before = meter.days
    assert rec.next_after(datetime(2028, 6, 1, tzinfo=UTC)) is not None
    assert meter.days - before <= 10  # a few days from the fast-forwarded start, not two years of them
    assert first == datetime(2027, 1, 1, 7, 30, tzinfo=UTC)
    last = rec.first(4000)[-1]
    assert rec.next_after(last) is None and len(rec.first(5000)) == 4000


# ---- fast-forward changes nothing ---------------------------------------------------------------

_FREQS = ["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
_PARTS = {
    "INTERVAL": st.integers(1, 5).map(str),
    "BYDAY": st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU", "1MO", "-1FR", "2SA"]),
                      min_size=1, max_size=3, unique=True).map(",".join),
    "BYMONTHDAY": st.lists(st.sampled_from([1, 5, 15, 28, 29, 30, 31, -1]), min_size=1, max_size=3,
                           unique=True).map(lambda v: ",".join(map(str, v))),
    "BYMONTH": st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True).map(lambda v: ",".join(map(str, v))),
    "BYSETPOS": st.sampled_from(["1", "-1", "2,-1"]),
    "BYHOUR": st.sampled_from(["7", "7,19", "1,2"]),
    "WKST": st.sampled_from(["MO", "SU", "WE"]),
    "BYWEEKNO": st.sampled_from(["1", "20,40", "-1"]),
    "BYYEARDAY": st.sampled_from(["1", "100,200", "-1"]),
}


@st.composite
def rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(_FREQS))
    names = draw(st.lists(st.sampled_from(sorted(_PARTS)), max_size=3, unique=True))
    if "BYSETPOS" in names and not {"BYDAY", "BYMONTHDAY", "BYMONTH"} & set(names):
        names.remove("BYSETPOS")  # BYSETPOS over one candidate a period says nothing
    if freq in ("DAILY", "WEEKLY") and "BYDAY" in names:
        names.remove("BYDAY")
        names.append("BYDAY_PLAIN")
    parts = [f"FREQ={freq}"]
    for name in names:
        if name == "BYDAY_PLAIN":
            parts.append("BYDAY=" + draw(st.sampled_from(["MO", "TU,FR", "SA,SU"])))
        else:
            parts.append(f"{name}={draw(_PARTS[name])}")
    return ";".join(parts)


def _reference_next(rec: Recurrence, after: datetime) -> datetime | None:
    """The next occurrence by dateutil's own walk from DTSTART, with no fast-forward and no window."""
    compiled = rec._compiled
    plain = dateutil.rrule.rrule(**{
        "freq": compiled._freq, "dtstart": compiled._dtstart, "interval": compiled._interval,
        "wkst": compiled._wkst, "until": compiled._until, **compiled._original_rule,
    })
    horizon = after.replace(tzinfo=None) + LOOKAHEAD
    instants = []
    for local in plain:
        if local > horizon:
            break
        instants.append(rec.to_instant(local))
    later = sorted(i for i in set(instants) if i > after)
    return later[0] if later and later[0] <= after + LOOKAHEAD - timedelta(days=2) else None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=rules(),
    start=st.dates(date(2020, 1, 1), date(2027, 12, 31)),
    days_later=st.integers(0, 6 * 366),
    zone_name=st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]),
)
@example(rule="FREQ=MONTHLY;BYMONTHDAY=31", start=date(2020, 1, 31), days_later=2000, zone_name="Europe/London")
@example(rule="FREQ=YEARLY;INTERVAL=3", start=date(2020, 2, 29), days_later=1500, zone_name="Europe/London")
@example(rule="FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=SA,SU", start=date(2021, 3, 6), days_later=900,
         zone_name="America/New_York")
def test_fast_forward_finds_what_a_walk_from_dtstart_finds(rule: str, start: date, days_later: int,
                                                          zone_name: str) -> None:
    try:
        rec = Recurrence.of(rule, "02:30", start, zone_name)
    except RecurrenceError:
        return  # refused rules are covered below
    after = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(days=days_later, hours=5)
    expected = _reference_next(rec, after)
    got = rec.next_after(after)
    if expected is not None:
        assert got == expected
    assert rec.between(after, after + timedelta(days=60)) == [
        i for i in itertools.takewhile(lambda i: i <= after + timedelta(days=60), rec.instants(after))]


# ---- hostile values: refused with a reason, never another exception ------------------------------


@pytest.mark.parametrize(("rule", "start", "zone_name", "words"), [
    ("FREQ=DAILY", date(9999, 12, 31), "Europe/London", "out of range"),
    ("FREQ=DAILY", date(1, 1, 1), "Asia/Tokyo", "out of range"),
    ("FREQ=DAILY;INTERVAL=\u00b2", date(2027, 1, 1), "Europe/London", "INTERVAL"),       # '²'.isdigit()
    ("FREQ=DAILY;COUNT=\u0663", date(2027, 1, 1), "Europe/London", "COUNT"),             # Arabic-Indic 3
    ("FREQ=DAILY;UNTIL=20271399T000000Z", date(2027, 1, 1), "Europe/London", "UNTIL"),    # month 13
    ("FREQ=DAILY;UNTIL=00010101T000000Z", date(2027, 1, 1), "America/New_York", "before its first occurrence"),
    ("FREQ=DAILY;COUNT=0", date(2027, 1, 1), "Europe/London", "from 1 to 5000"),
    ("FREQ=DAILY;COUNT=5000", date(2027, 1, 1), "Europe/London", "not used up within 10 years"),
    ("FREQ=YEARLY;BYMONTHDAY=" + ",".join(str(d) for d in range(1, 33)), date(2027, 1, 1), "Europe/London",
     "more than 31 values"),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,2,3,4,5,6,7,8", date(2027, 1, 1), "Europe/London",
     "BYSETPOS lists more than 7"),
    ("FREQ=MONTHLY;BYDAY=+99999999999999999999MO", date(2027, 1, 1), "Europe/London", "not a weekday"),
    ("FREQ=YEARLY;BYDAY=53MO;BYMONTH=2", date(2027, 1, 1), "Europe/London", "cannot be evaluated"),
    ("FREQ=MONTHLY;BYMONTHDAY=0", date(2027, 1, 1), "Europe/London", "out of range"),
    ("FREQ=DAILY;BYHOUR=-1", date(2027, 1, 1), "Europe/London", "out of range"),
    ("FREQ=DAILY", date(2027, 1, 1), "America", "unknown IANA time zone"),
    ("FREQ=DAILY", date(2027, 1, 1), "Etc/GMT+99", "unknown IANA time zone"),
    ("FREQ=DAILY", date(2027, 1, 1), "../../etc/passwd", "not an IANA"),
    ("FREQ=DAILY", date(2027, 1, 1), "Europe/" + "x" * 100_000, "not an IANA"),
])
def test_hostile_values_are_refused_with_a_reason(rule: str, start: date, zone_name: str, words: str) -> None:
    with pytest.raises(RecurrenceError) as refused:
        Recurrence.of(rule, "20:30", start, zone_name)
    assert words in refused.value.reason
    assert len(refused.value.reason) < 400


def test_an_until_near_the_year_9999_means_no_end_in_any_zone() -> None:
    # Before: OverflowError converting 9999-12-31T23:59:59Z to UTC+14 (retried, then dead-lettered).
    rec = Recurrence.of("FREQ=DAILY;UNTIL=99991231T235959Z", "20:30", date(2027, 1, 1), "Pacific/Kiritimati")
    assert rec.next_after(NOW) is not None
    assert plan(ritual("FREQ=DAILY;UNTIL=99991231T235959Z", date(2027, 1, 1), "Pacific/Kiritimati"), NOW).next_due_at


def test_zone_names_that_are_folders_or_files_are_unknown_zones() -> None:
    for name in ("America", "Etc", "US", "Europe/London/x"):
        with pytest.raises(RecurrenceError, match="unknown IANA time zone"):
            zone(name)


# ---- arbitrary input: refused with a reason, or a bounded amount of work --------------------------

_RULE_CHUNKS = st.one_of(
    st.sampled_from([
        "FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY", "FREQ=YEARLY", "FREQ=HOURLY", "FREQ=SECONDLY",
        "COUNT=999999999", "COUNT=1", "COUNT=4000", "UNTIL=99991231", "UNTIL=20270101T000000Z", "UNTIL=00010101",
        "INTERVAL=1000", "INTERVAL=7", "BYHOUR=1,2,3,4", "BYMINUTE=0,30", "BYDAY=MO,TU,WE,TH,FR,SA,SU",
        "BYDAY=-1SU", "BYDAY=53MO", "BYMONTHDAY=29", "BYMONTHDAY=31,-31", "BYMONTH=2", "BYMONTH=13",
        "BYYEARDAY=366", "BYYEARDAY=-366,1", "BYWEEKNO=53", "BYWEEKNO=-53,1", "BYSETPOS=-1", "BYSETPOS=1,2,3,4,5,6,7",
        "WKST=SU", "RRULE:FREQ=DAILY", "DTSTART=19700101", "BYSECOND=1", "FREQ=", "=", ";;",
        "BYMONTHDAY=" + ",".join(str(d) for d in range(1, 32)),
        "BYYEARDAY=" + ",".join(str(d) for d in range(300, 331)),
    ]),
    st.text(alphabet="FREQ=DAILYBYHOUR,;0123456789-+TZ\u00b2\x00 ", max_size=30),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
@given(
    chunks=st.lists(_RULE_CHUNKS, min_size=1, max_size=6),
    start=st.dates(date(1, 1, 1), date(9999, 12, 31)) | st.dates(date(2025, 1, 1), date(2030, 12, 31)),
    local_time=st.sampled_from(["20:30", "00:00", "02:30", "23:59", "24:00", "7:30"]),
    offsets=st.lists(st.integers(1, 7 * 24 * 60), max_size=5),
    zone_name=st.sampled_from(["Europe/London", "Pacific/Kiritimati", "Pacific/Apia", "America/St_Johns",
                               "Australia/Lord_Howe", "UTC"]),
)
@example(chunks=["FREQ=DAILY", "BYHOUR=1,2,3,4", "COUNT=999999999"], start=date(1, 1, 1), local_time="20:30",
         offsets=OFFSETS, zone_name="Europe/London")
@example(chunks=["FREQ=DAILY", "BYHOUR=1,2,3,4", "COUNT=999999999"], start=date(2026, 6, 1), local_time="20:30",
         offsets=OFFSETS, zone_name="Europe/London")
@example(chunks=["FREQ=DAILY", "UNTIL=99991231"], start=date(9999, 12, 31), local_time="20:30", offsets=[1],
         zone_name="Pacific/Kiritimati")
def test_any_rule_is_refused_with_a_reason_or_evaluated_in_bounded_work(
    meter: WorkMeter, chunks: list[str], start: date, local_time: str, offsets: list[int], zone_name: str,
) -> None:
    clear_caches()
    meter.days = 0  # one example at a time
    household, person = uuid.uuid4(), uuid.uuid4()
    view = HouseholdView(id=household, household=Household(household, "H", zone_name, HouseholdKind.COUPLE),
                         members={person: Member(person, "A", MemberRole.PARTNER)})
    try:
        command = ScheduleRitual(ritual_id=uuid.uuid4(), template="evening_attunement", participants=[person],
                                 rrule=";".join(chunks), local_time=local_time, start_date=start,
                                 reminder_offsets_minutes=offsets)
    except ValidationError:
        return  # the contract refuses it: dead-lettered and answered before the scheduler sees it
    outcome = decide(view, make_envelope(command, household_id=household, producer="fuzz"), NOW)
    if outcome.rejected:
        assert outcome.facts[0].reason == outcome.rejected[:2000] and outcome.rejected.strip()
        assert meter.days <= 8 * LOOKUP_WORK
        return
    (scheduled,) = outcome.rituals
    for _ in range(3):  # fire it three times, as the loop would
        if scheduled.wake_at is None:
            break
        wake(scheduled, scheduled.wake_at, scheduled.wake_at)
    # compile: two walks; plan: 1 + 5; each wake: 5 + 5 + a few
    assert meter.days <= (8 + 3 * 14) * LOOKUP_WORK
