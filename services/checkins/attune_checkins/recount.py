"""Streaks, milestones and date-night adherence of the rituals a unit of work touched, recounted and announced."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from attune_contracts.messages import DateNightAdherenceUpdated, MilestoneReached, StreakUpdated

from . import service as rules
from .context import Context
from .events import CausedEvents
from .model import Occurrence
from .ports import UnitOfWork

# How far back a streak's history is read: the first window covers the date-night adherence (4 weeks) and
# most current runs; the next ones only for rituals whose run reaches back that far.
HISTORY_WINDOWS = (35, 140, 400)


async def refresh_rituals(app: Context, uow: UnitOfWork,
                          touched: dict[UUID, tuple[Occurrence, CausedEvents]]) -> None:
    """Recount streaks (and date-night adherence) of the touched rituals; announce what changed."""
    now = app.clock.now()
    rrules, stored = await uow.rituals.ritual_states(list(touched))
    units = {ritual_id: rules.unit_for(rrules.get(ritual_id), occurrence.template)
             for ritual_id, (occurrence, _) in touched.items()}
    today = min(rules.local_date_of(now, occ.time_zone) for occ, _ in touched.values())
    histories, streaks = await current_runs(uow, units, today, now)
    rows = []
    marks: list[tuple[UUID, UUID, date, int]] = []
    for ritual_id, (occurrence, caused) in touched.items():
        unit = units[ritual_id]
        history, streak = histories[ritual_id], streaks[ritual_id]
        previous = stored.get(ritual_id)
        prev_len, prev_best, prev_kept, prev_expected = previous or (0, 0, None, None)
        best = max(streak.best, prev_best)
        if previous is None or (prev_len, prev_best) != (streak.length, best):
            caused.add(StreakUpdated(ritual_id=ritual_id, template=occurrence.template,
                                     length=streak.length, unit=unit, best=best))
        for mark in rules.milestones_crossed(prev_len, streak.length, unit):
            assert streak.run_start is not None  # noqa: S101 - narrows a type; a streak with a length has a start
            marks.append((ritual_id, occurrence.household_id, streak.run_start, mark))
        kept, expected = None, None
        if rules.is_date_night(occurrence.template):
            today = rules.local_date_of(now, occurrence.time_zone)
            kept, expected = rules.adherence(history, window_end=today, now=now)
            if (kept, expected) != (prev_kept, prev_expected):
                caused.add(DateNightAdherenceUpdated(ritual_id=ritual_id, kept=kept, expected=expected))
        rows.append({"ritual_id": ritual_id, "household_id": occurrence.household_id,
                     "template": occurrence.template, "unit": unit.value, "length": streak.length,
                     "best": best, "adherence_kept": kept, "adherence_expected": expected})
    # Each milestone once per run, claimed for the whole batch in one statement.
    new_marks = await uow.rituals.claim_milestones(marks, now)
    for ritual_id, _, run_start, mark in marks:
        if (ritual_id, run_start, mark) in new_marks:
            occurrence, caused = touched[ritual_id]
            unit = units[ritual_id]
            app.metrics.milestones.labels(unit.value, str(mark)).inc()
            caused.add(MilestoneReached(ritual_id=ritual_id, template=occurrence.template, length=mark, unit=unit))
    await uow.rituals.put_streaks(rows)


async def current_runs(
    uow: UnitOfWork, units: dict[UUID, rules.StreakUnit], today: date, now: datetime
) -> tuple[dict[UUID, list[Any]], dict[UUID, rules.Streak]]:
    """Each ritual's recent history and current streak, reading back only as far as the streak goes.

    A current run is counted from now back to its first break, so the history is read back
    HISTORY_WINDOWS[0] local days, and further (the next window) only for rituals whose run reaches the
    start of what was read. HISTORY_WINDOWS[-1] (400 days) is enough for every milestone (100 days,
    52 weeks); a longer streak is reported as at least that long. The best streak is the stored one's
    maximum with what is counted here, so it never needs the whole history.
    """
    histories: dict[UUID, list[Any]] = {}
    streaks: dict[UUID, rules.Streak] = {}
    pending = list(units)
    for days in HISTORY_WINDOWS:
        since = rules.week_start_of(today - timedelta(days=days))  # whole weeks, whatever the unit
        found = await uow.rituals.ritual_histories(pending, since)
        longer = []
        for ritual_id in pending:
            history = histories[ritual_id] = found.get(ritual_id, [])
            unit = units[ritual_id]
            streak = streaks[ritual_id] = rules.compute_streak(history, unit, now)
            if streak.run_start is not None and streak.run_start == rules.period_of(history[0][0].local_date, unit):
                longer.append(ritual_id)  # unbroken back to the first period read: it may go on before
        if longer and days != HISTORY_WINDOWS[-1]:  # ... if the ritual has occurrences before `since`
            first = await uow.rituals.first_dates(longer)
            longer = [ritual_id for ritual_id in longer if first.get(ritual_id, since) < since]
        pending = longer
        if not pending:
            break
    return histories, streaks
