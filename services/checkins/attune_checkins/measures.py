"""What the records add up to: streak periods and units, streaks and milestones, date-night adherence,
the 5:1 ratio. Pure functions over plain values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from attune_contracts.catalog import TEMPLATES
from attune_contracts.messages import (
    StreakUnit,
)

from .model import Occurrence, Slot, week_start_of

DAY_MILESTONES = (7, 30, 100)
WEEK_MILESTONES = (4, 12, 52)
RATIO_TARGET = 5.0
ADHERENCE_WEEKS = 4


def period_of(day: date, unit: StreakUnit) -> date:
    return day if unit is StreakUnit.DAYS else week_start_of(day)


def unit_for(rrule: str | None, template: str) -> StreakUnit:
    """Rituals on several days a week count in days (a weekday-only ritual skips weekends, which have no
    occurrence); weekly or rarer ones count in weeks. Without an RRULE, the template's default rhythm decides."""
    if not rrule:
        known = TEMPLATES.get(template)
        rrule = known.rhythm.rrule if known is not None and known.rhythm is not None else None
    if rrule:
        parts = dict(p.split("=", 1) for p in rrule.upper().split(";") if "=" in p)
        freq = parts.get("FREQ", "")
        if freq in ("DAILY", "HOURLY", "MINUTELY"):
            return StreakUnit.DAYS
        if freq == "WEEKLY" and len([d for d in parts.get("BYDAY", "").split(",") if d]) > 1:
            return StreakUnit.DAYS
        if freq in ("WEEKLY", "MONTHLY", "YEARLY"):
            return StreakUnit.WEEKS
    weekly_words = ("date", "experiment", "dream", "invest")
    return StreakUnit.WEEKS if any(w in template for w in weekly_words) else StreakUnit.DAYS


def is_date_night(template: str) -> bool:
    return "date" in template and "night" in template


# ---- streaks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Streak:
    length: int
    best: int
    run_start: date | None


def compute_streak(
    occurrences: Iterable[tuple[Occurrence | Slot, bool]], unit: StreakUnit, now: datetime
) -> Streak:
    """`occurrences` pairs each occurrence with whether anyone marked it done."""
    periods: dict[date, list[bool]] = {}
    for occurrence, kept in occurrences:
        key = period_of(occurrence.local_date, unit)
        state = periods.setdefault(key, [False, False])
        state[0] |= kept
        state[1] |= occurrence.deadline > now
    run, best, run_start = 0, 0, None
    for key in sorted(periods):
        kept, still_open = periods[key]
        if kept:
            run += 1
            if run == 1:
                run_start = key
            best = max(best, run)
        elif not still_open:
            run, run_start = 0, None
    return Streak(run, best, run_start)


def milestones_crossed(before: int, after: int, unit: StreakUnit) -> list[int]:
    marks = DAY_MILESTONES if unit is StreakUnit.DAYS else WEEK_MILESTONES
    return [m for m in marks if before < m <= after]


def adherence(
    occurrences: Iterable[tuple[Occurrence | Slot, bool]], *, window_end: date, now: datetime, weeks: int = ADHERENCE_WEEKS
) -> tuple[int, int]:
    """(kept, expected) over the `weeks` * 7 local days ending on `window_end`.

    An occurrence still open and not yet kept is not expected yet: it cannot count against anyone.
    """
    window_start = window_end - timedelta(days=7 * weeks - 1)
    kept = expected = 0
    for occurrence, done in occurrences:
        if not window_start <= occurrence.local_date <= window_end or occurrence.scheduled_for > now:
            continue
        if done:
            kept += 1
            expected += 1
        elif occurrence.deadline <= now:
            expected += 1
    return kept, expected


# ---- the 5:1 ratio ------------------------------------------------------------------------------


def ratio_of(positive: int, negative: int) -> float | None:
    return None if negative == 0 else round(positive / negative, 3)


def ratio_transition(positive: int, negative: int, *, was_below: bool, min_moments: int) -> tuple[bool, bool]:
    """(below now, report a drop now). Reported once per crossing below 5:1."""
    if negative == 0 or positive / negative >= RATIO_TARGET:
        return False, False
    if positive + negative < min_moments:
        return was_below, False
    return True, not was_below
