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
"""

from __future__ import annotations

import heapq
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, WEEKLY, rrule, rrulestr

__all__ = [
    "MAX_PER_DAY",
    "OCCURRENCE_NAMESPACE",
    "Recurrence",
    "RecurrenceError",
    "occurrence_id",
    "parse_local_time",
    "reminder_id",
    "utc_iso",
    "zone",
]

MAX_PER_DAY = 4
"""A ritual of connection is a few moments a day at most; more than this is a mistake or abuse."""

OCCURRENCE_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-5e0a-9c3f-a77e0c0ffee1")
"""uuid5 namespace of occurrence and reminder ids. Never change it: ids must stay stable across releases."""

# The rule parts we accept. BYSECOND: Attune schedules to the minute. DTSTART comes from start_date +
# local_time. BYEASTER is a dateutil extension, not RFC 5545.
_ALLOWED_PARTS = {
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYYEARDAY",
    "BYWEEKNO", "BYSETPOS", "WKST", "BYHOUR", "BYMINUTE",
}
_TOO_FREQUENT = {"SECONDLY", "MINUTELY", "HOURLY"}
_FREQS = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY", *_TOO_FREQUENT}
_ZONE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_UNTIL_UTC = re.compile(r"^(\d{8})T(\d{6})Z$")
_UNTIL_LOCAL = re.compile(r"^(\d{8})T(\d{6})$")
_UNTIL_DATE = re.compile(r"^(\d{8})$")
# Any two local wall times that are 26 h apart are in the same order as instants, whatever the zone
# (UTC offsets lie between -12:00 and +14:00), so a candidate that old can be emitted safely.
_REORDER_MARGIN = timedelta(hours=26)
_EXISTENCE_HORIZON_YEARS = 5


class RecurrenceError(ValueError):
    """A rule, time or zone that Attune will not schedule. `reason` is written for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or RecurrenceError saying why not."""
    if not isinstance(name, str) or not _ZONE_SHAPE.match(name) or name in {"localtime", "posixrules", "Factory"}:
        raise RecurrenceError(f"{name!r} is not an IANA time zone name (for example 'Europe/London')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RecurrenceError(f"unknown IANA time zone {name!r} (for example 'America/New_York')") from None


def parse_local_time(text: str) -> time:
    match = _LOCAL_TIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise RecurrenceError(f"local time {text!r} must be HH:MM on a 24-hour clock, for example '20:30'")
    return time(int(match.group(1)), int(match.group(2)))


def utc_iso(instant: datetime) -> str:
    """The canonical text of an instant: second precision, UTC, 'Z'. Part of every occurrence id."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def occurrence_id(ritual_id: uuid.UUID, scheduled_for: datetime) -> uuid.UUID:
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{ritual_id}:{utc_iso(scheduled_for)}")


def reminder_id(occurrence: uuid.UUID, offset_minutes: int) -> uuid.UUID:
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{occurrence}:{offset_minutes}")


def _split_rule(text: str) -> dict[str, str]:
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
            raise RecurrenceError(f"invalid RRULE: {chunk!r} is not NAME=VALUE")
        if name in parts:
            raise RecurrenceError(f"invalid RRULE: {name} appears twice")
        if name == "BYSECOND":
            raise RecurrenceError("BYSECOND is not supported: rituals are scheduled to the minute")
        if name not in _ALLOWED_PARTS:
            raise RecurrenceError(f"invalid RRULE: unknown or unsupported part {name!r}")
        parts[name] = value.strip().upper()
    if "FREQ" not in parts:
        raise RecurrenceError("invalid RRULE: FREQ is missing; for example 'FREQ=DAILY' or 'FREQ=WEEKLY;BYDAY=FR'")
    if parts["FREQ"] not in _FREQS:
        raise RecurrenceError(f"invalid RRULE: FREQ={parts['FREQ']} is not a frequency")
    if parts["FREQ"] in _TOO_FREQUENT:
        raise RecurrenceError(
            f"FREQ={parts['FREQ']} is too frequent for a ritual: use DAILY, WEEKLY, MONTHLY or YEARLY "
            f"(at most {MAX_PER_DAY} times a day)"
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("invalid RRULE: use COUNT or UNTIL, not both")
    return parts


def _count_list(parts: dict[str, str], name: str) -> int:
    return len([v for v in parts[name].split(",") if v]) if name in parts else 1


def _local_until(value: str, tz: ZoneInfo) -> str:
    """UNTIL as naive local time, since the rule is expanded in naive local time."""
    if m := _UNTIL_UTC.match(value):
        instant = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        return instant.astimezone(tz).strftime("%Y%m%dT%H%M%S")
    if _UNTIL_LOCAL.match(value):
        return value
    if m := _UNTIL_DATE.match(value):
        return f"{m.group(1)}T235959"  # a DATE is inclusive of that whole day (RFC 5545)
    raise RecurrenceError(f"invalid RRULE: UNTIL={value} must be a date (20271231) or a UTC time (20271231T230000Z)")


@lru_cache(maxsize=4096)
def _compiled(rule: str, local_time: str, start_date: date, zone_name: str) -> tuple[rrule, dict[str, str]]:
    tz = zone(zone_name)
    at = parse_local_time(local_time)
    parts = _split_rule(rule)
    per_day = _count_list(parts, "BYHOUR") * _count_list(parts, "BYMINUTE")
    if per_day > MAX_PER_DAY:
        raise RecurrenceError(
            f"this rule fires up to {per_day} times a day; a ritual may happen at most {MAX_PER_DAY} times a day"
        )
    if "UNTIL" in parts:
        parts["UNTIL"] = _local_until(parts["UNTIL"], tz)
    if "COUNT" in parts and not parts["COUNT"].isdigit():
        raise RecurrenceError(f"invalid RRULE: COUNT={parts['COUNT']} must be a whole number")
    if "INTERVAL" in parts and (not parts["INTERVAL"].isdigit() or not 1 <= int(parts["INTERVAL"]) <= 1000):
        raise RecurrenceError(f"invalid RRULE: INTERVAL={parts['INTERVAL']} must be a whole number from 1 to 1000")
    text = ";".join(f"{k}={v}" for k, v in parts.items())
    dtstart = datetime.combine(start_date, at)
    try:
        parsed = rrulestr(text, dtstart=dtstart)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise RecurrenceError(f"invalid RRULE {rule!r}: {exc}") from None
    if not isinstance(parsed, rrule):  # pragma: no cover - rrulestr returns an rruleset only for several lines
        raise RecurrenceError("give one RRULE line only")
    if parsed._count == 0:
        raise RecurrenceError("invalid RRULE: COUNT must be at least 1")
    # An impossible rule (February 30th) would make dateutil search to the year 9999.
    # relativedelta, not replace(year=...): a ritual starting on 29 February has a horizon on the 28th.
    horizon = min(dtstart + relativedelta(years=_EXISTENCE_HORIZON_YEARS), datetime(9999, 12, 31))
    probe = parsed.replace(until=min(parsed._until, horizon) if parsed._until else horizon, count=None)
    if probe.after(dtstart, inc=True) is None:
        if parsed._until is not None and parsed._until < horizon:
            raise RecurrenceError("this rule ends (UNTIL) before its first occurrence")
        raise RecurrenceError(
            f"this rule produces no occurrence in the {_EXISTENCE_HORIZON_YEARS} years after start_date"
        )
    return parsed, parts


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
        if not isinstance(start_date, date) or isinstance(start_date, datetime):
            raise RecurrenceError("start_date must be a calendar date, for example 2027-03-13")
        return _recurrence(rule, local_time, start_date, time_zone)

    # -- placing local wall-clock times in the zone ------------------------------------------------

    def to_instant(self, local: datetime) -> datetime:
        """A naive local time as a UTC instant: gap -> shifted forward, overlap -> the first (fold=0)."""
        return local.replace(tzinfo=self._tz, fold=0).astimezone(UTC)

    def to_local(self, instant: datetime) -> datetime:
        return instant.astimezone(self._tz)

    # -- expansion ---------------------------------------------------------------------------------

    def _rule_from(self, local_from: datetime) -> rrule:
        """The rule, its DTSTART moved forward by whole periods where that cannot change the result.

        dateutil always iterates from DTSTART; a daily ritual that started years ago would otherwise
        cost a thousand steps per look-up.
        """
        rule = self._compiled
        if rule._count is not None or rule._freq not in (DAILY, WEEKLY):
            return rule
        period_days = rule._interval * (7 if rule._freq == WEEKLY else 1)
        start = rule._dtstart
        target = local_from - timedelta(days=2)
        periods = (target - start).days // period_days
        if periods <= 0:
            return rule
        return rule.replace(dtstart=start + timedelta(days=periods * period_days))

    def instants(self, after: datetime | None = None, *, inclusive: bool = False) -> Iterator[datetime]:
        """Occurrences in time order, each once, strictly after `after` (or from the start)."""
        if after is not None:
            after = after.astimezone(UTC)
            local_from = after.astimezone(self._tz).replace(tzinfo=None) - _REORDER_MARGIN
            rule = self._rule_from(local_from)
        else:
            local_from, rule = None, self._compiled
        pending: list[datetime] = []
        last: datetime | None = None

        def ready(bound: datetime | None) -> Iterator[datetime]:
            nonlocal last
            while pending and (bound is None or pending[0] < bound):
                instant = heapq.heappop(pending)
                if last is not None and instant <= last:
                    continue  # two local times on one instant: once
                last = instant
                if after is None or instant > after or (inclusive and instant == after):
                    yield instant

        iterator = iter(rule) if local_from is None else rule.xafter(local_from, inc=True)
        for local in iterator:
            heapq.heappush(pending, self.to_instant(local))
            yield from ready(local.replace(tzinfo=UTC) - _REORDER_MARGIN)
        yield from ready(None)

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after `after`, or None when the rule has ended."""
        # Many rituals share a rhythm (the catalog's defaults): when a burst of them is due at once,
        # the answer is computed once. The key is the whole schedule plus the instant.
        return _next_after_cached(self, after.astimezone(UTC))

    def _next_after_uncached(self, after: datetime) -> datetime | None:
        return next(self.instants(after), None)

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Occurrences with start < instant <= end."""
        found = []
        for instant in self.instants(start):
            if instant > end:
                break
            found.append(instant)
        return found

    def first(self, count: int) -> list[datetime]:
        """The first `count` occurrences from start_date (for previews)."""
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

    def _reminders(self, after: datetime, offset_minutes: int) -> Iterator[tuple[datetime, datetime]]:
        """(occurrence, remind_at) for one offset, in time order, from the first whose reminder can follow `after`."""
        for occurrence in self.instants(after + timedelta(minutes=offset_minutes) - _ZONE_SHIFT_MARGIN):
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
            for occurrence, at in self._reminders(start, offset):
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
    compiled, _ = _compiled(rule.strip() if isinstance(rule, str) else rule, local_time, start_date, time_zone)
    return Recurrence(rule, local_time, start_date, time_zone, compiled, zone(time_zone))
