"""The use cases: each loads through a unit of work, calls the pure rules, records what to publish, commits.

`handle_command` serves every scheduler command: the rule for its type comes from `decisions.RULES` (the
table from command type to decision); loading the household and applying what the rule decided are the same
for all of them. `fire_batch` serves the firing loop: claim due rituals, wake them, advance them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from attune_contracts import Envelope, spec_of
from attune_contracts.messages import SchedulerCommandRejected

from .decisions import RULES, decide
from .model import FireReport, OutboxMessage, Outcome, Ritual, WakeResult
from .outgoing import facts_of, occurrence_message
from .ports import UnitOfWork
from .screening import named_members, screen
from .waking import wake

COMMAND_TYPES = frozenset(spec_of(command).type for command in RULES)


async def handle_command(uow: UnitOfWork, envelope: Envelope[Any], now: datetime) -> Outcome | None:
    """Decide and apply one command with its facts, once. None: this event id was handled before.

    A command refused on its face (`screen`: a NUL character, a start date far from today, a rule that cannot
    be valid) is answered with its rejection before the household is even read or locked.
    """
    reason = screen(envelope, now)
    async with uow:
        if await uow.commands.seen(envelope.event_id):
            return None
        if reason is not None:
            outcome = Outcome(facts=[SchedulerCommandRejected(
                command_event_id=envelope.event_id, command_type=envelope.type, reason=reason[:2000])],
                rejected=reason)
        else:
            view = await uow.households.load(envelope.household_id, named_members(envelope.payload))
            # Off the event loop: a household's rituals are re-planned here (bounded per ritual, but a zone
            # change re-plans them all), and the consumer's heartbeat must not wait for it.
            outcome = await asyncio.to_thread(decide, view, envelope, now)
            await _apply(uow, envelope.household_id, outcome, now)
        uow.record(facts_of(envelope, outcome.facts, now))
        await uow.commands.mark(envelope.event_id, envelope.type, "rejected" if outcome.rejected else "accepted", now)
        await uow.commit()
    return outcome


async def _apply(uow: UnitOfWork, household_id: uuid.UUID, outcome: Outcome, now: datetime) -> None:
    if outcome.credentials_not_before is not None:
        await uow.households.revoke_credentials(household_id, outcome.credentials_not_before)
    if outcome.erase:
        await uow.households.erase(household_id, now)
        return
    if outcome.household is not None:
        await uow.households.save(outcome.household, now)
    for member in outcome.members:
        await uow.households.save_member(household_id, member)
    touched = [r.id for r in outcome.rituals] + list(outcome.deleted_rituals)
    if touched:  # what was written ahead for a changed ritual goes; its new plan is written afresh
        await uow.outbox.drop_ahead(touched, now)
    for ritual in outcome.rituals:
        await uow.rituals.save(ritual, now)
    if outcome.deleted_rituals:
        await uow.rituals.delete(outcome.deleted_rituals)


async def fire_batch(uow: UnitOfWork, now: datetime, limit: int, horizon: datetime | None = None) -> FireReport:
    """Claim up to `limit` rituals whose wake time is before `horizon` (default now), record their events and
    advance them: one unit of work."""
    report = FireReport()
    horizon = horizon or now
    async with uow:
        due = await uow.rituals.claim_due(horizon, limit)
        report.claimed = len(due)
        if not due:
            return report
        # Woken in a worker thread: each wake is bounded (recurrence.py), but a batch of them is CPU work the
        # event loop (and the consumer's heartbeat) must not wait behind.
        uow.record(await asyncio.to_thread(_wake_all, due, now, horizon, report))
        await uow.rituals.advance(due, now)
        await uow.commit()
    return report


def _wake_all(due: Sequence[Ritual], now: datetime, horizon: datetime, report: FireReport) -> list[OutboxMessage]:
    """Wake each claimed ritual (moving its cursors) and build its messages: pure."""
    messages: list[OutboxMessage] = []
    for ritual in due:
        try:
            result = wake(ritual, now, horizon)
        except Exception:  # noqa: BLE001 - one broken ritual must not stop every other household
            report.failed += 1
            ritual.next_due_at = ritual.next_reminder_at = None
            result = WakeResult()
        report.stale_reminders += result.stale_reminders
        for item in result.emitted:
            report.emitted.append(item)
            report.templates[item.event_id] = ritual.template
            messages.append(occurrence_message(ritual, item, now))
    return messages
