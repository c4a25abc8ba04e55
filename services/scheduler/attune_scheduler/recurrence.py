"""When a ritual happens: an RFC 5545 RRULE plus a local HH:MM start, in the household's IANA zone.

This module is the only code that turns rules into instants; the firing loop, the command checks and
`attune preview` all call it, so what a person previews is what fires.

dateutil expands the rule in naive local wall-clock time (dateutil#1425: it does not handle DST
itself); each local time is then placed in the zone with fold=0:

- a local time that does not exist (spring forward) takes the offset from before the gap, which is
  the instant the clock would have shown had it not jumped: 02:30 in New York on the spring-forward
  day is 03:30 EDT (07:30Z). It fires once, at that shifted instant.
- a local time that happens twice (fall back) is the first of the two (fold=0). It fires once.

Two local times may land on the same instant (a time in the gap and the time the gap shifts it to);
the instant is emitted once.

Bounded cost, whatever the rule. dateutil walks a rule period by period from DTSTART, and stops only at
a match: a rule that started in the year 1, or with COUNT=999999999, or whose matches are decades apart,
could cost seconds per look-up. So:

- every look-up is a *walk* over a window: DTSTART is fast-forwarded by whole periods (DAILY, WEEKLY,
  MONTHLY and YEARLY alike; the BY* defaults dateutil takes from DTSTART are pinned first, so the rule
  means the same), and the walk stops at the window's end even where nothing matches. The window is
  `LOOKAHEAD` (ten years) unless the caller asks for a range; an occurrence further away than that is
  not found, so a rule whose next occurrence is more than ten years off counts as ended.
- every walk carries a budget of calendar days it may examine (derived from its window; exceeding it is
  a bug in that bound, and refuses the rule with a RecurrenceError rather than spinning).
- COUNT is turned into the UNTIL of its last occurrence when the rule is compiled: COUNT may be at most
  `MAX_COUNT`, and must be used up within `LOOKAHEAD` of start_date; then COUNT rules fast-forward too.
- start_date lies in `MIN_START_DATE`..`MAX_START_DATE`; a later UNTIL means "no end" (no instant
  arithmetic near the year 9999 can overflow). The commands bound start_date closer to now (service.py).
- each BY* list holds at most `MAX_LIST_VALUES` values, so the work per examined day is bounded too.

The walk's stop and budget are enforced inside dateutil's own loop: its per-period day sets are
computed by `dateutil.rrule._iterinfo`, which this module replaces with a subclass that, for walks
only, checks the window and counts the days (`_MeteredIterInfo`). Every other rule is untouched.
"""

from __future__ import annotations

import heapq
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateutil.rrule as _dateutil_rrule
from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr, weekday

__all__ = [
    "LOOKAHEAD",
    "MAX_COUNT",
    "MAX_LIST_VALUES",
    "MAX_PER_DAY",
    "MAX_SETPOS_VALUES",
    "MAX_START_DATE",
    "MIN_START_DATE",
    "OCCURRENCE_NAMESPACE",
    "Recurrence",
    "RecurrenceError",
    "check_rule",
    "check_start_date",
    "occurrence_id",
    "parse_local_time",
    "reminder_id",
    "utc_iso",
    "zone",
]

MAX_PER_DAY = 4
"""A ritual of connection is a few moments a day at most; more than this is a mistake or abuse."""
LOOKAHEAD = timedelta(days=3653)
"""How far one look-up searches: ten years (a 29 February ritual waits eight years across 2100)."""
MAX_COUNT = 5000
"""COUNT at most this (daily for ten years is 3,653); leave COUNT out for a ritual without end."""
MAX_LIST_VALUES = 31
"""Values in one BY* list at most (BYMONTHDAY needs 31); dateutil's work per day grows with them."""
MAX_SETPOS_VALUES = 7
"""BYSETPOS values at most: dateutil re-filters a whole period once for each of them."""
MIN_START_DATE = date(1970, 1, 1)
MAX_START_DATE = date(2999, 12, 31)

OCCURRENCE_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-5e0a-9c3f-a77e0c0ffee1")
"""uuid5 namespace of occurrence and reminder ids. Never change it: ids must stay stable across releases."""

# The rule parts we accept. BYSECOND: Attune schedules to the minute. DTSTART comes from start_date +
# local_time. BYEASTER is a dateutil extension, not RFC 5545.
_ALLOWED_PARTS = {
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYYEARDAY",
    "BYWEEKNO", "BYSETPOS", "WKST", "BYHOUR", "BYMINUTE",
}
_LIST_PARTS = {"BYDAY", "BYMONTHDAY", "BYMONTH", "BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE"}
_TOO_FREQUENT = {"SECONDLY", "MINUTELY", "HOURLY"}
_FREQS = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY", *_TOO_FREQUENT}
_ZONE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,9}$")
_SIGNED = re.compile(r"^[+-]?[0-9]{1,3}$")
_WEEKDAY = re.compile(r"^([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
# Magnitudes allowed in each numeric BY* list (RFC 5545 3.3.10); zero only where it is a time of day.
_NUMBER_RANGES = {
    "BYMONTHDAY": (1, 31), "BYMONTH": (1, 12), "BYYEARDAY": (1, 366), "BYWEEKNO": (1, 53), "BYSETPOS": (1, 366),
    "BYHOUR": (0, 23), "BYMINUTE": (0, 59),
}
_UNSIGNED = {"BYMONTH", "BYHOUR", "BYMINUTE"}
_UNTIL_UTC = re.compile(r"^(\d{8})T(\d{6})Z$")
_UNTIL_LOCAL = re.compile(r"^(\d{8})T(\d{6})$")
_UNTIL_DATE = re.compile(r"^(\d{8})$")
# Any two local wall times that are 26 h apart are in the same order as instants, whatever the zone
# (UTC offsets lie between -12:00 and +14:00), so a candidate that old can be emitted safely.
_REORDER_MARGIN = timedelta(hours=26)
_EXISTENCE_HORIZON_YEARS = 5
# Past the supported start dates plus every window and margin, yet far from datetime.max: no overflow.
_LAST_LOCAL = datetime(9000, 1, 1)
_LAST_INSTANT = _LAST_LOCAL.replace(tzinfo=UTC)
_FIRST_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
# A walk examines at most its window's days plus one period either side (a year, and a week across it).
_WALK_SLACK_DAYS = 2 * 366 + 7
# How far before its window a look-up's DTSTART is fast-forwarded to (room for a period straddling it).
_FAST_FORWARD_LEAD = timedelta(days=2)


class RecurrenceError(ValueError):
    """A rule, time or zone that Attune will not schedule. `reason` is written for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or RecurrenceError saying why not."""
    if (not isinstance(name, str) or len(name) > 64 or not _ZONE_SHAPE.match(name)
            or name in {"localtime", "posixrules", "Factory"}):
        shown = name[:64] + "..." if isinstance(name, str) and len(name) > 64 else name
        raise RecurrenceError(f"{shown!r} is not an IANA time zone name (for example 'Europe/London')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory of zones, e.g. 'America'
        raise RecurrenceError(f"unknown IANA time zone {name!r} (for example 'America/New_York')") from None


def parse_local_time(text: str) -> time:
    match = _LOCAL_TIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise RecurrenceError(f"local time {text!r} must be HH:MM on a 24-hour clock, for example '20:30'")
    return time(int(match.group(1)), int(match.group(2)))


def check_start_date(start_date: date) -> None:
    if not isinstance(start_date, date) or isinstance(start_date, datetime):
        raise RecurrenceError("start_date must be a calendar date, for example 2027-03-13")
    if not MIN_START_DATE <= start_date <= MAX_START_DATE:
        raise RecurrenceError(
            f"start_date {start_date.isoformat()} is out of range: Attune schedules from "
            f"{MIN_START_DATE.isoformat()} to {MAX_START_DATE.isoformat()}"
        )


def utc_iso(instant: datetime) -> str:
    """The canonical text of an instant: second precision, UTC, 'Z'. Part of every occurrence id."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def occurrence_id(ritual_id: uuid.UUID, scheduled_for: datetime) -> uuid.UUID:
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{ritual_id}:{utc_iso(scheduled_for)}")


def reminder_id(occurrence: uuid.UUID, offset_minutes: int) -> uuid.UUID:
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{occurrence}:{offset_minutes}")


def check_rule(text: str) -> None:
    """RecurrenceError if `text` cannot be a valid rule whatever the zone and start date."""
    _split_rule(text)


def _split_rule(text: str) -> dict[str, str]:
    """The rule's parts, checked for everything that does not need the zone or the start date."""
    if not isinstance(text, str) or not text.strip():
        raise RecurrenceError("the recurrence rule is empty; for example 'FREQ=WEEKLY;BYDAY=FR'")
    body = text.strip()
    if "\n" in body or "\r" in body:
        raise RecurrenceError("give one RRULE line only (no DTSTART, RDATE or EXDATE lines)")
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "DTSTART" in body.upper():
        raise RecurrenceError(
            "DTSTART does not belong inside the rule: the first day is start_date and the time is local_time"
        )
    parts: dict[str, str] = {}
    for chunk in body.split(";"):
        if not chunk:
            continue
        name, sep, value = chunk.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise RecurrenceError(f"invalid RRULE: {_clip(chunk)!r} is not NAME=VALUE")
        if name in parts:
            raise RecurrenceError(f"invalid RRULE: {name} appears twice")
        if name == "BYSECOND":
            raise RecurrenceError("BYSECOND is not supported: rituals are scheduled to the minute")
        if name not in _ALLOWED_PARTS:
            raise RecurrenceError(f"invalid RRULE: unknown or unsupported part {_clip(name)!r}")
        parts[name] = value.strip().upper()
    if "FREQ" not in parts:
        raise RecurrenceError("invalid RRULE: FREQ is missing; for example 'FREQ=DAILY' or 'FREQ=WEEKLY;BYDAY=FR'")
    if parts["FREQ"] not in _FREQS:
        raise RecurrenceError(f"invalid RRULE: FREQ={_clip(parts['FREQ'])} is not a frequency")
    if parts["FREQ"] in _TOO_FREQUENT:
        raise RecurrenceError(
            f"FREQ={parts['FREQ']} is too frequent for a ritual: use DAILY, WEEKLY, MONTHLY or YEARLY "
            f"(at most {MAX_PER_DAY} times a day)"
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("invalid RRULE: use COUNT or UNTIL, not both")
    for name in _LIST_PARTS & parts.keys():
        if _count_list(parts, name) > MAX_LIST_VALUES:
            raise RecurrenceError(f"invalid RRULE: {name} lists more than {MAX_LIST_VALUES} values")
    for name, (low, high) in _NUMBER_RANGES.items():
        for value in parts.get(name, "").split(","):
            if value and (not _SIGNED.match(value) or not low <= abs(int(value)) <= high
                          or (value.startswith("-") and name in _UNSIGNED)):
                raise RecurrenceError(f"invalid RRULE: {name} value {_clip(value)!r} is out of range")
    for value in parts.get("BYDAY", "").split(","):
        day = _WEEKDAY.match(value)
        if value and (not day or (day.group(1) and not 1 <= abs(int(day.group(1))) <= 53)):
            raise RecurrenceError(f"invalid RRULE: BYDAY value {_clip(value)!r} is not a weekday like MO, 1FR or -1SU")
    if _count_list(parts, "BYSETPOS") > MAX_SETPOS_VALUES:
        raise RecurrenceError(f"invalid RRULE: BYSETPOS lists more than {MAX_SETPOS_VALUES} values")
    per_day = _count_list(parts, "BYHOUR") * _count_list(parts, "BYMINUTE")
    if per_day > MAX_PER_DAY:
        raise RecurrenceError(
            f"this rule fires up to {per_day} times a day; a ritual may happen at most {MAX_PER_DAY} times a day"
        )
    if "COUNT" in parts:
        if not _WHOLE_NUMBER.match(parts["COUNT"]):
            raise RecurrenceError(f"invalid RRULE: COUNT={_clip(parts['COUNT'])} must be a whole number")
        if not 1 <= int(parts["COUNT"]) <= MAX_COUNT:
            raise RecurrenceError(
                f"invalid RRULE: COUNT={parts['COUNT']} must be from 1 to {MAX_COUNT} "
                "(leave COUNT out for a ritual without end)"
            )
    if "INTERVAL" in parts and (not _WHOLE_NUMBER.match(parts["INTERVAL"])
                                or not 1 <= int(parts["INTERVAL"]) <= 1000):
        raise RecurrenceError(
            f"invalid RRULE: INTERVAL={_clip(parts['INTERVAL'])} must be a whole number from 1 to 1000")
    return parts


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _count_list(parts: dict[str, str], name: str) -> int:
    return len([v for v in parts[name].split(",") if v]) if name in parts else 1


def _local_until(value: str, tz: ZoneInfo) -> str:
    """UNTIL as naive local time, since the rule is expanded in naive local time. Past `_LAST_LOCAL`: no end."""
    try:
        if m := _UNTIL_UTC.match(value):
            instant = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            if instant >= _LAST_INSTANT:
                local = _LAST_LOCAL
            elif instant < _FIRST_INSTANT:  # before any start date: the rule ends before it begins
                local = _FIRST_INSTANT.replace(tzinfo=None)
            else:
                local = instant.astimezone(tz).replace(tzinfo=None)
        elif m := _UNTIL_LOCAL.match(value):
            local = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
        elif m := _UNTIL_DATE.match(value):
            # A DATE is inclusive of that whole day (RFC 5545).
            local = datetime.strptime(m.group(1), "%Y%m%d").replace(hour=23, minute=59, second=59)
        else:
            local = None
    except (ValueError, OverflowError):
        local = None
    if local is None:
        raise RecurrenceError(
            f"invalid RRULE: UNTIL={_clip(value)} must be a date (20271231) or a UTC time (20271231T230000Z)")
    return min(local, _LAST_LOCAL).strftime("%Y%m%dT%H%M%S")


# ---- walking a rule within bounds ---------------------------------------------------------------


class _WindowEnd(Exception):
    """dateutil reached a period after the walk's window: nothing more to find in it."""


class _OverBudget(Exception):
    """A walk examined more days than its bound allows (the bound is wrong: refuse, do not spin)."""


class _Walk(rrule):
    """A dateutil rule for one look-up: its loop stops at `stop` (a date) and after `budget` examined days."""

    stop: date
    budget: int
    examined: int


class _MeteredIterInfo(_dateutil_rrule._iterinfo):  # type: ignore[name-defined,misc]
    """dateutil's per-period day sets, which for a `_Walk` also check its window and count its days.

    No `__slots__` here: dateutil's __init__ sets every name in `self.__slots__`, which must stay its own.
    """

    def ydayset(self, year: int, month: int, day: int) -> Any:
        found = super().ydayset(year, month, day)
        _account(self.rrule, date(year, 1, 1), found)
        return found

    def mdayset(self, year: int, month: int, day: int) -> Any:
        found = super().mdayset(year, month, day)
        _account(self.rrule, date(year, month, 1), found)
        return found

    def wdayset(self, year: int, month: int, day: int) -> Any:
        found = super().wdayset(year, month, day)
        _account(self.rrule, date(year, month, day), found)
        return found

    def ddayset(self, year: int, month: int, day: int) -> Any:
        found = super().ddayset(year, month, day)
        _account(self.rrule, date(year, month, day), found)
        return found


def _account(rule: Any, first_day: date, found: tuple[Any, int, int]) -> None:
    if not isinstance(rule, _Walk):
        return
    if first_day > rule.stop:
        raise _WindowEnd
    rule.examined += max(1, found[2] - found[1])
    if rule.examined > rule.budget:
        raise _OverBudget


def _install_meter() -> None:
    # dateutil's _iter builds `_iterinfo(self)` by its module-global name at every walk.
    base = getattr(_dateutil_rrule, "_iterinfo", None)
    needed = ("ydayset", "mdayset", "wdayset", "ddayset", "rebuild")
    if base is None or not all(hasattr(base, n) for n in needed):  # pragma: no cover - a dateutil upgrade
        raise ImportError("dateutil.rrule._iterinfo changed: the bounded recurrence walk cannot be installed")
    if base is not _MeteredIterInfo:
        _dateutil_rrule._iterinfo = _MeteredIterInfo  # type: ignore[attr-defined]


_install_meter()


def _walk(
    rule: rrule, start: datetime, stop: datetime, *, since: datetime | None = None, keep_count: bool = False
) -> _Walk:
    """`rule` from `start` (a period boundary of it, or its own DTSTART), walked no further than `stop`.

    Every BY* default dateutil derives from DTSTART (the weekday of a WEEKLY rule, the day of a MONTHLY
    one, the hour and minute of all) is passed explicitly, so a later DTSTART changes nothing but where
    the walk begins. `since`: where the window begins, when `start` is a period boundary before it.
    """
    weekdays = [*(rule._byweekday or ()), *(weekday(d, n) for d, n in (rule._bynweekday or ()))]
    monthdays = (*rule._bymonthday, *rule._bynmonthday)
    walk = _Walk(
        rule._freq, dtstart=start, interval=rule._interval, wkst=rule._wkst, until=rule._until,
        count=rule._count if keep_count else None, bysetpos=rule._bysetpos, bymonth=rule._bymonth,
        bymonthday=monthdays or None, byyearday=rule._byyearday, byweekno=rule._byweekno,
        byweekday=weekdays or None, byhour=rule._byhour, byminute=rule._byminute, bysecond=rule._bysecond,
    )
    walk.stop = stop.date()
    # The first period begins at `start`; every later one begins after `since` and at or before `stop`.
    walk.budget = max(0, (walk.stop - (since or start).date()).days) + _WALK_SLACK_DAYS
    walk.examined = 0
    return walk


def _period_start(rule: rrule, target: datetime) -> datetime:
    """The start of the latest period of `rule` that begins at or before `target` (DTSTART if none)."""
    start = rule._dtstart
    if target <= start:
        return start
    interval = rule._interval
    if rule._freq in (DAILY, WEEKLY):
        period = interval * (7 if rule._freq == WEEKLY else 1)
        periods = (target.date() - start.date()).days // period
        day = start.date() + timedelta(days=periods * period)
    elif rule._freq == MONTHLY:
        months = (target.year - start.year) * 12 + target.month - start.month
        index = start.year * 12 + start.month - 1 + (months // interval) * interval
        day = date(index // 12, index % 12 + 1, 1)
    else:
        assert rule._freq == YEARLY  # noqa: S101 - the only frequency left
        day = date(start.year + ((target.year - start.year) // interval) * interval, 1, 1)
    begin = datetime.combine(day, time(0))
    return max(start, begin)


def _local_matches(walk: _Walk) -> Iterator[datetime]:
    """The walk's local times, ending quietly at its window; a broken bound is a RecurrenceError."""
    iterator = iter(walk)
    while True:
        try:
            local = next(iterator)
        except (StopIteration, _WindowEnd):
            return
        except _OverBudget:
            raise RecurrenceError(
                "this rule needs more work to evaluate than Attune allows; simplify its BY* parts"
            ) from None
        except (IndexError, ValueError, OverflowError) as exc:  # dateutil choking on a combination of parts
            raise RecurrenceError(f"this rule cannot be evaluated ({type(exc).__name__}: {_clip(str(exc))})") from None
        if local.date() > walk.stop:
            return
        yield local


def _plus(instant: datetime, delta: timedelta) -> datetime:
    try:
        return min(instant + delta, _LAST_INSTANT)
    except OverflowError:
        return _LAST_INSTANT


# ---- compiling a rule ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _compiled(rule: str, local_time: str, start_date: date, zone_name: str) -> rrule:
    tz = zone(zone_name)
    at = parse_local_time(local_time)
    check_start_date(start_date)
    parts = _split_rule(rule)
    if "UNTIL" in parts:
        parts["UNTIL"] = _local_until(parts["UNTIL"], tz)
    text = ";".join(f"{k}={v}" for k, v in parts.items())
    dtstart = datetime.combine(start_date, at)
    try:
        parsed = rrulestr(text, dtstart=dtstart)
    except Exception as exc:  # noqa: BLE001 - dateutil's parser raises many kinds on hostile text
        raise RecurrenceError(f"invalid RRULE {_clip(rule)!r}: {_clip(str(exc), 200)}") from None
    if not isinstance(parsed, rrule):  # pragma: no cover - rrulestr returns an rruleset only for several lines
        raise RecurrenceError("give one RRULE line only")
    if parsed._count is not None:
        parsed = _count_as_until(parsed)
    # An impossible rule (February 30th) would make dateutil search to the year 9999.
    # relativedelta, not replace(year=...): a ritual starting on 29 February has a horizon on the 28th.
    horizon = dtstart + relativedelta(years=_EXISTENCE_HORIZON_YEARS)
    if next(_local_matches(_walk(parsed, dtstart, horizon)), None) is None:
        if parsed._until is not None and parsed._until < horizon:
            raise RecurrenceError("this rule ends (UNTIL) before its first occurrence")
        raise RecurrenceError(
            f"this rule produces no occurrence in the {_EXISTENCE_HORIZON_YEARS} years after start_date"
        )
    return parsed


def _count_as_until(parsed: rrule) -> rrule:
    """The same rule with UNTIL at its last occurrence instead of COUNT, so that it can be fast-forwarded."""
    count, last, seen = parsed._count, None, 0
    for local in _local_matches(_walk(parsed, parsed._dtstart, parsed._dtstart + LOOKAHEAD, keep_count=True)):
        last, seen = local, seen + 1
    if last is None:
        raise RecurrenceError(f"this rule produces no occurrence in the {LOOKAHEAD.days // 365} years after start_date")
    if seen < count:
        raise RecurrenceError(
            f"COUNT={count} is not used up within {LOOKAHEAD.days // 365} years of start_date; "
            "use a smaller COUNT, an UNTIL date, or neither"
        )
    return parsed.replace(count=None, until=last)


@dataclass(frozen=True)
class Recurrence:
    """A validated schedule. Build it with `Recurrence.of(...)`; every method returns UTC instants."""

    rule: str
    local_time: str
    start_date: date
    time_zone: str
    _compiled: rrule = field(repr=False, compare=False)
    _tz: ZoneInfo = field(repr=False, compare=False)

    @classmethod
    def of(cls, rule: str, local_time: str, start_date: date, time_zone: str) -> Recurrence:
        """Validate and compile; raise RecurrenceError with a reason for people otherwise."""
        check_start_date(start_date)
        return _recurrence(rule, local_time, start_date, time_zone)

    # -- placing local wall-clock times in the zone ------------------------------------------------

    def to_instant(self, local: datetime) -> datetime:
        """A naive local time as a UTC instant: gap -> shifted forward, overlap -> the first (fold=0)."""
        return local.replace(tzinfo=self._tz, fold=0).astimezone(UTC)

    def to_local(self, instant: datetime) -> datetime:
        return instant.astimezone(self._tz)

    # -- expansion ---------------------------------------------------------------------------------

    def instants(
        self, after: datetime | None = None, *, inclusive: bool = False, until: datetime | None = None
    ) -> Iterator[datetime]:
        """Occurrences in time order, each once, strictly after `after` (or from the start), up to `until`.

        `until` defaults to `LOOKAHEAD` after `after` (or after the first day): a look-up never walks further.
        """
        rule = self._compiled
        if after is not None:
            after = after.astimezone(UTC)
            local_from = after.astimezone(self._tz).replace(tzinfo=None) - _REORDER_MARGIN
            start = _period_start(rule, local_from - _FAST_FORWARD_LEAD)
        else:
            local_from = start = rule._dtstart
        if until is not None:
            end = until.astimezone(UTC)
        else:  # from `after`, or from the first day if that is later
            first = self.to_instant(rule._dtstart)
            end = _plus(first if after is None or after < first else after, LOOKAHEAD)
        end = min(end, _LAST_INSTANT)
        if rule._until is not None and rule._until < local_from:
            return
        local_end = min(end.astimezone(self._tz).replace(tzinfo=None) + _REORDER_MARGIN, _LAST_LOCAL)
        pending: list[datetime] = []
        last: datetime | None = None

        def ready(bound: datetime | None) -> Iterator[datetime]:
            nonlocal last
            while pending and (bound is None or pending[0] < bound):
                instant = heapq.heappop(pending)
                if last is not None and instant <= last:
                    continue  # two local times on one instant: once
                last = instant
                if instant > end:
                    pending.clear()
                    return
                if after is None or instant > after or (inclusive and instant == after):
                    yield instant

        for local in _local_matches(_walk(rule, start, local_end, since=local_from - _FAST_FORWARD_LEAD)):
            if local < local_from:
                continue
            heapq.heappush(pending, self.to_instant(local))
            yield from ready(local.replace(tzinfo=UTC) - _REORDER_MARGIN)
            if last is not None and last > end:
                return
        yield from ready(None)

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after `after`, or None when the rule has ended (or is `LOOKAHEAD` away)."""
        # Many rituals share a rhythm (the catalog's defaults): when a burst of them is due at once,
        # the answer is computed once. The key is the whole schedule plus the instant.
        return _next_after_cached(self, after.astimezone(UTC))

    def _next_after_uncached(self, after: datetime) -> datetime | None:
        return next(self.instants(after), None)

    def has_ended(self, at: datetime) -> bool:
        """Whether the rule's UNTIL (or its last COUNT occurrence) lies before `at`."""
        until = self._compiled._until
        return until is not None and self.to_instant(until) < at

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Occurrences with start < instant <= end (the work grows with the range asked for)."""
        return list(self.instants(start, until=end))

    def first(self, count: int) -> list[datetime]:
        """The first `count` occurrences from start_date within `LOOKAHEAD` (for previews)."""
        found = []
        for instant in self.instants():
            if len(found) >= count:
                break
            found.append(instant)
        return found

    # -- reminders ---------------------------------------------------------------------------------
    # An offset counts on the household's wall clock: the day-before reminder for a 19:00 date night comes at
    # 19:00 the evening before, also when the clocks change in between (a fixed 1,440 minutes would land at
    # 18:00 or 20:00). A reminder time that does not exist moves forward; one that occurs twice comes first.

    def remind_at(self, occurrence: datetime, offset_minutes: int) -> datetime:
        local = occurrence.astimezone(self._tz).replace(tzinfo=None) - timedelta(minutes=offset_minutes)
        return self.to_instant(local)

    def _reminders(
        self, after: datetime, offset_minutes: int, until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """(occurrence, remind_at) for one offset, in time order, from the first whose reminder can follow `after`."""
        lead = timedelta(minutes=offset_minutes)
        upto = None if until is None else _plus(until, lead + _ZONE_SHIFT_MARGIN)
        for occurrence in self.instants(after + lead - _ZONE_SHIFT_MARGIN, until=upto):
            yield occurrence, self.remind_at(occurrence, offset_minutes)

    def next_reminder_after(self, after: datetime, offsets_minutes: list[int] | tuple[int, ...]) -> datetime | None:
        """The first instant strictly after `after` at which some reminder is due."""
        best: datetime | None = None
        for offset in set(offsets_minutes):
            for _, at in self._reminders(after, offset):
                if at > after:
                    best = at if best is None else min(best, at)
                    break
        return best

    def reminders_between(
        self, start: datetime, end: datetime, offsets_minutes: list[int] | tuple[int, ...]
    ) -> list[tuple[datetime, int, datetime]]:
        """(occurrence, offset, remind_at) for every reminder with start < remind_at <= end, in time order."""
        found = []
        for offset in set(offsets_minutes):
            for occurrence, at in self._reminders(start, offset, until=end):
                if occurrence - timedelta(minutes=offset) > end + _ZONE_SHIFT_MARGIN:
                    break
                if start < at <= end:
                    found.append((occurrence, offset, at))
        found.sort(key=lambda item: (item[2], item[0], item[1]))
        return found


# The most a zone's UTC offset changes at once, with room to spare (DST is 30 min to 2 h; zones have jumped
# a whole day): wall-clock reminders are looked for this far either side of the fixed-offset guess.
_ZONE_SHIFT_MARGIN = timedelta(hours=26)


@lru_cache(maxsize=65_536)
def _next_after_cached(rec: Recurrence, after: datetime) -> datetime | None:
    return rec._next_after_uncached(after)


@lru_cache(maxsize=65_536)
def _recurrence(rule: str, local_time: str, start_date: date, time_zone: str) -> Recurrence:
    compiled = _compiled(rule.strip() if isinstance(rule, str) else rule, local_time, start_date, time_zone)
    return Recurrence(rule, local_time, start_date, time_zone, compiled, zone(time_zone))
