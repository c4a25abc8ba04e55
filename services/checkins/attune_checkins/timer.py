"""The timer: missed occurrences at their deadline, weekly summaries on Sunday evening, and its sleep between."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from uuid import UUID

from attune_contracts.content import cadence_of
from attune_contracts.messages import RitualMissed

from . import reading, recount
from . import service as rules
from .context import Context
from .events import CausedEvents
from .model import Occurrence

log = logging.getLogger("attune.checkins")


def missed_cadence(rrule: str | None) -> str | None:
    """The cadence a RitualMissed carries, so its words fit the household's own rule ("tomorrow" for a daily
    ritual, "next week" for a weekly one, "next time" otherwise); None when the ritual's rule is not known here."""
    if not rrule:
        return None
    return cadence_of(rrule) or "other"


async def tick(app: Context) -> float:
    """Handle every deadline and summary that is due; return how long the timer may sleep."""
    now = app.clock.now()
    async with app.uow() as uow:
        await uow.occurrences.forget_announced(before=now - app.policy.announced_kept)
        await uow.links.forget_short_links(expired_before=now)
        overdue = await uow.occurrences.overdue(now)
        for occurrence_id in await uow.occurrences.answered_unclaimed(now):
            await uow.occurrences.close_occurrence(occurrence_id, now, missed=False)
    for occurrence in overdue:
        await close_missed(app, occurrence, now)
    async with app.uow() as uow:
        households = await uow.households.all_households()
    candidates: list[datetime | None] = []
    for household_id, zone in households:
        await maybe_summarise(app, household_id, zone, now)
        candidates.append(rules.next_summary_at(now, zone, app.policy.weekly_summary_hour))
    async with app.uow() as uow:
        candidates.append(await uow.occurrences.next_deadline())
    return rules.seconds_until_next(app.clock.now(), candidates, app.policy.timer_max_sleep_s)

async def close_missed(app: Context, occurrence: Occurrence, now: datetime) -> None:
    caused = CausedEvents(f"missed:{occurrence.occurrence_id}", occurrence.household_id,
                    str(occurrence.occurrence_id))
    async with app.uow() as uow:
        statuses = await uow.occurrences.occurrence_statuses(occurrence.occurrence_id)
        missed = rules.is_missed(occurrence, statuses, now)
        if not await uow.occurrences.close_occurrence(occurrence.occurrence_id, now, missed=missed):
            return  # another instance handled it
        if missed:
            app.metrics.missed.labels(app.metrics.template(occurrence.template)).inc()
            rrules, _ = await uow.rituals.ritual_states([occurrence.ritual_id])
            caused.add(RitualMissed(
                occurrence_id=occurrence.occurrence_id, ritual_id=occurrence.ritual_id,
                template=occurrence.template, participants=list(occurrence.participants),
                scheduled_for=occurrence.scheduled_for, deadline=occurrence.deadline,
                sensitive=occurrence.sensitive, cadence=missed_cadence(rrules.get(occurrence.ritual_id)),
            ), event_id=rules.derived_id("missed", occurrence.occurrence_id))
            await recount.refresh_rituals(app, uow, {occurrence.ritual_id: (occurrence, caused)})
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)

async def maybe_summarise(app: Context, household_id: UUID, zone: str, now: datetime) -> None:
    week_start, slot = rules.summary_slot(now, zone, app.policy.weekly_summary_hour)
    if now - slot > app.policy.weekly_summary_catch_up:
        return
    event_id = rules.derived_id("weekly", household_id, week_start)
    caused = CausedEvents(event_id, household_id, str(event_id))
    async with app.uow() as uow:
        if await uow.summaries.summary_sent(household_id, week_start):
            return
        data = await reading.week_data(uow, household_id, week_start, slot)
        if not data.occurrences and not data.moments:
            await uow.summaries.claim_summary(household_id, week_start, now)  # nothing to say this week
            return
        if not await uow.summaries.claim_summary(household_id, week_start, now):
            return
        app.metrics.summaries.inc()
        caused.add(rules.weekly_summary(week_start, data, slot), event_id=event_id)
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)

async def run_timer(app: Context, stop: asyncio.Event) -> None:
    """Sleep until the next deadline or summary (or until a new RitualDue wakes it), then handle it."""
    while not stop.is_set():
        app.wake.clear()
        try:
            delay = await app.tick()
        except Exception:
            log.exception("timer tick failed; trying again shortly")
            delay = 5.0
        sleeper = asyncio.ensure_future(app.clock.sleep(delay))
        woken = asyncio.ensure_future(app.wake.wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, woken, stopped):
                task.cancel()
