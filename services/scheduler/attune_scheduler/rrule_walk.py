"""Walking a rule within bounds: dateutil's expansion with a window it stops at and a budget of days it may
examine, whatever the rule (recurrence.py says why; `_MeteredIterInfo` is where it is enforced)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import dateutil.rrule as _dateutil_rrule
from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr, weekday

from .rrule_checks import (
    LAST_INSTANT,
    LOOKAHEAD,
    RecurrenceError,
    check_start_date,
    clip,
    local_until,
    parse_local_time,
    split_rule,
    zone,
)

# Any two local wall times that are 26 h apart are in the same order as instants, whatever the zone
# (UTC offsets lie between -12:00 and +14:00), so a candidate that old can be emitted safely.
REORDER_MARGIN = timedelta(hours=26)
EXISTENCE_HORIZON_YEARS = 5
# A walk examines at most its window's days plus one period either side (a year, and a week across it).
WALK_SLACK_DAYS = 2 * 366 + 7
# How far before its window a look-up's DTSTART is fast-forwarded to (room for a period straddling it).
FAST_FORWARD_LEAD = timedelta(days=2)


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


def walk(
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
    walk.budget = max(0, (walk.stop - (since or start).date()).days) + WALK_SLACK_DAYS
    walk.examined = 0
    return walk


def period_start(rule: rrule, target: datetime) -> datetime:
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


def local_matches(walk: _Walk) -> Iterator[datetime]:
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
            raise RecurrenceError(f"this rule cannot be evaluated ({type(exc).__name__}: {clip(str(exc))})") from None
        if local.date() > walk.stop:
            return
        yield local


def plus(instant: datetime, delta: timedelta) -> datetime:
    try:
        return min(instant + delta, LAST_INSTANT)
    except OverflowError:
        return LAST_INSTANT


# ---- compiling a rule ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def compiled(rule: str, local_time: str, start_date: date, zone_name: str) -> rrule:
    tz = zone(zone_name)
    at = parse_local_time(local_time)
    check_start_date(start_date)
    parts = split_rule(rule)
    if "UNTIL" in parts:
        parts["UNTIL"] = local_until(parts["UNTIL"], tz)
    text = ";".join(f"{k}={v}" for k, v in parts.items())
    dtstart = datetime.combine(start_date, at)
    try:
        parsed = rrulestr(text, dtstart=dtstart)
    except Exception as exc:  # noqa: BLE001 - dateutil's parser raises many kinds on hostile text
        raise RecurrenceError(f"invalid RRULE {clip(rule)!r}: {clip(str(exc), 200)}") from None
    if not isinstance(parsed, rrule):  # pragma: no cover - rrulestr returns an rruleset only for several lines
        raise RecurrenceError("give one RRULE line only")
    if parsed._count is not None:
        parsed = _count_as_until(parsed)
    # An impossible rule (February 30th) would make dateutil search to the year 9999.
    # relativedelta, not replace(year=...): a ritual starting on 29 February has a horizon on the 28th.
    horizon = dtstart + relativedelta(years=EXISTENCE_HORIZON_YEARS)
    if next(local_matches(walk(parsed, dtstart, horizon)), None) is None:
        if parsed._until is not None and parsed._until < horizon:
            raise RecurrenceError("this rule ends (UNTIL) before its first occurrence")
        raise RecurrenceError(
            f"this rule produces no occurrence in the {EXISTENCE_HORIZON_YEARS} years after start_date"
        )
    return parsed


def _count_as_until(parsed: rrule) -> rrule:
    """The same rule with UNTIL at its last occurrence instead of COUNT, so that it can be fast-forwarded."""
    count, last, seen = parsed._count, None, 0
    for local in local_matches(walk(parsed, parsed._dtstart, parsed._dtstart + LOOKAHEAD, keep_count=True)):
        last, seen = local, seen + 1
    if last is None:
        raise RecurrenceError(f"this rule produces no occurrence in the {LOOKAHEAD.days // 365} years after start_date")
    if seen < count:
        raise RecurrenceError(
            f"COUNT={count} is not used up within {LOOKAHEAD.days // 365} years of start_date; "
            "use a smaller COUNT, an UNTIL date, or neither"
        )
    return parsed.replace(count=None, until=last)


