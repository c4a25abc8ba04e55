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
  arithmetic near the year 9999 can overflow). The commands bound start_date closer to now (screening.py).
- each BY* list holds at most `MAX_LIST_VALUES` values, so the work per examined day is bounded too.

The walk's stop and budget are enforced inside dateutil's own loop: its per-period day sets are
computed by `dateutil.rrule._iterinfo`, which rrule_walk.py replaces with a subclass that, for walks
only, checks the window and counts the days (`_MeteredIterInfo`). Every other rule is untouched.
The rule's text is checked first (rrule_checks.py: every refusal says why, for people).
"""


from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule

from .rrule_checks import (
    LAST_INSTANT,
    LAST_LOCAL,
    LOOKAHEAD,
    MAX_COUNT,
    MAX_LIST_VALUES,
    MAX_PER_DAY,
    MAX_SETPOS_VALUES,
    MAX_START_DATE,
    MIN_START_DATE,
    RecurrenceError,
    check_rule,
    check_start_date,
    parse_local_time,
    zone,
)
from .rrule_walk import FAST_FORWARD_LEAD, REORDER_MARGIN, compiled, local_matches, period_start, plus, walk

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

OCCURRENCE_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-5e0a-9c3f-a77e0c0ffee1")
"""uuid5 namespace of occurrence and reminder ids. Never change it: ids must stay stable across releases."""

def utc_iso(instant: datetime) -> str:
    """The canonical text of an instant: second precision, UTC, 'Z'. Part of every occurrence id."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def occurrence_id(ritual_id: uuid.UUID, scheduled_for: datetime) -> uuid.UUID:
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{ritual_id}:{utc_iso(scheduled_for)}")


def reminder_id(occurrence: uuid.UUID, offset_minutes: int) -> uuid.UUID:
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{occurrence}:{offset_minutes}")


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
            local_from = after.astimezone(self._tz).replace(tzinfo=None) - REORDER_MARGIN
            start = period_start(rule, local_from - FAST_FORWARD_LEAD)
        else:
            local_from = start = rule._dtstart
        if until is not None:
            end = until.astimezone(UTC)
        else:  # from `after`, or from the first day if that is later
            first = self.to_instant(rule._dtstart)
            end = plus(first if after is None or after < first else after, LOOKAHEAD)
        end = min(end, LAST_INSTANT)
        if rule._until is not None and rule._until < local_from:
            return
        local_end = min(end.astimezone(self._tz).replace(tzinfo=None) + REORDER_MARGIN, LAST_LOCAL)
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

        for local in local_matches(walk(rule, start, local_end, since=local_from - FAST_FORWARD_LEAD)):
            if local < local_from:
                continue
            heapq.heappush(pending, self.to_instant(local))
            yield from ready(local.replace(tzinfo=UTC) - REORDER_MARGIN)
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
        upto = None if until is None else plus(until, lead + _ZONE_SHIFT_MARGIN)
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
    rrule_ = compiled(rule.strip() if isinstance(rule, str) else rule, local_time, start_date, time_zone)
    return Recurrence(rule, local_time, start_date, time_zone, rrule_, zone(time_zone))
