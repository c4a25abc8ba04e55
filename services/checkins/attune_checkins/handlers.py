"""Messages: a table from message type to a small use case, the batch path, and the thin Kafka entry points.

The reliable consumer parses and validates; `handle`/`handle_batch` open one unit of work, refuse what an erased
household sends (the tombstone), skip a redelivery, and call the use case its type maps to in `HANDLERS`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from attune_contracts import Envelope
from attune_contracts.messages import (
    CheckInCommandRejected,
    HouseholdCredentialsRevoked,
    HouseholdErased,
    HouseholdRegistered,
    LogMoment,
    MemberUpserted,
    QuestionAsked,
    RecordAchievement,
    RitualDeleted,
    RitualDue,
    RitualReminder,
    RitualScheduled,
    RitualUpdated,
    ShortLinkIssued,
    SubmitCheckIn,
)
from attune_contracts.registry import peek, spec_of
from attune_runtime.consumer import PermanentError
from attune_runtime.faults import HouseholdErasedError

from . import moments, submissions
from . import service as rules
from .context import Context
from .events import CausedEvents
from .model import Occurrence, Rejected
from .ports import UnitOfWork

log = logging.getLogger("attune.checkins")

COMMANDS = (SubmitCheckIn, LogMoment, RecordAchievement)
COMMAND_TYPES = frozenset(spec_of(c).type for c in COMMANDS)

Handler = Callable[[Context, UnitOfWork, Envelope[Any], CausedEvents], Awaitable[None]]


async def submit_checkin(app: Context, uow: UnitOfWork, envelope: Envelope[Any], caused: CausedEvents) -> None:
    await submissions.submit(app, uow, caused, envelope.household_id, envelope.payload,
                             submitted_at=envelope.occurred_at)


async def log_moment(app: Context, uow: UnitOfWork, envelope: Envelope[Any], caused: CausedEvents) -> None:
    await moments.log_moment(app, uow, caused, envelope.household_id, envelope.payload, envelope.occurred_at)


async def record_achievement(app: Context, uow: UnitOfWork, envelope: Envelope[Any],
                             caused: CausedEvents) -> None:
    await moments.record_achievement(app, uow, caused, envelope.household_id, envelope.payload)


async def ritual_due(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    due: RitualDue = envelope.payload
    _storable(envelope, template=due.template, title=due.title)
    await uow.households.put_household(envelope.household_id, due.time_zone, app.clock.now(), overwrite=False)
    if await uow.occurrences.add_occurrence(occurrence_of(envelope.household_id, due, deadline=due.deadline)):
        app.wake.set()  # the timer may need to wake earlier for this deadline
    await uow.occurrences.forget_announced(due.occurrence_id)


async def ritual_reminder(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    reminder: RitualReminder = envelope.payload
    _storable(envelope, template=reminder.template, title=reminder.title)
    await uow.households.put_household(envelope.household_id, reminder.time_zone, app.clock.now(), overwrite=False)
    await uow.occurrences.announce(occurrence_of(envelope.household_id, reminder, deadline=reminder.scheduled_for))


async def question_asked(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    """The day's question the notifier asked for an occurrence (questions.py reads and answers it)."""
    await uow.questions.put_question(envelope.household_id, envelope.payload)


async def short_link_issued(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    issued: ShortLinkIssued = envelope.payload
    await uow.links.put_short_link(issued.code_id, envelope.household_id, issued.sealed_token, issued.expires_at)


async def household_registered(app: Context, uow: UnitOfWork, envelope: Envelope[Any],
                               _: CausedEvents) -> None:
    await uow.households.put_household(envelope.household_id, envelope.payload.time_zone, app.clock.now())


async def member_upserted(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    member: MemberUpserted = envelope.payload
    await uow.households.put_household(envelope.household_id, member.time_zone, app.clock.now(), overwrite=False)
    await uow.households.add_member(envelope.household_id, member.member_id)


async def ritual_scheduled(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    ritual: RitualScheduled | RitualUpdated = envelope.payload
    _storable(envelope, template=ritual.template, rrule=ritual.rrule)
    await uow.rituals.put_ritual(ritual.ritual_id, envelope.household_id, ritual.template, ritual.rrule)


async def ritual_deleted(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    await uow.rituals.delete_ritual(envelope.payload.ritual_id)


async def credentials_revoked(app: Context, uow: UnitOfWork, envelope: Envelope[Any],
                              _: CausedEvents) -> None:
    await uow.households.revoke_credentials(envelope.household_id, envelope.payload.not_before)


async def household_erased(app: Context, uow: UnitOfWork, envelope: Envelope[Any], _: CausedEvents) -> None:
    removed = await uow.households.erase(envelope.household_id, envelope.payload.erased_at)
    log.info("erased household: %d rows", sum(removed.values()),
             extra={"event_id": str(envelope.event_id), "household_id": str(envelope.household_id)})


HANDLERS: dict[type[Any], Handler] = {
    SubmitCheckIn: submit_checkin,
    LogMoment: log_moment,
    RecordAchievement: record_achievement,
    RitualDue: ritual_due,
    RitualReminder: ritual_reminder,
    QuestionAsked: question_asked,
    ShortLinkIssued: short_link_issued,
    HouseholdRegistered: household_registered,
    MemberUpserted: member_upserted,
    RitualScheduled: ritual_scheduled,
    RitualUpdated: ritual_scheduled,
    RitualDeleted: ritual_deleted,
    HouseholdCredentialsRevoked: credentials_revoked,
    HouseholdErased: household_erased,
}
HANDLED_TYPES = frozenset(spec_of(kind).type for kind in HANDLERS)


async def handle(app: Context, envelope: Envelope[Any]) -> None:
    caused = CausedEvents(envelope.event_id, envelope.household_id, envelope.correlation_id)
    async with app.uow() as uow:
        await check_members(uow, [envelope])
        await apply(app, uow, envelope, caused)
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)


async def apply(app: Context, uow: UnitOfWork, envelope: Envelope[Any], caused: CausedEvents) -> None:
    """One message in this unit of work: the tombstone, the redelivery check, then its use case."""
    payload, household_id = envelope.payload, envelope.household_id
    erased = await uow.households.erased_at(household_id)
    if erased is not None and not isinstance(payload, HouseholdErased):
        # The tombstone: nothing of an erased household comes back, whenever the message says it was sent.
        if isinstance(payload, COMMANDS):
            # Not even its id is kept; a redelivery answers with the same rejection (its id derives from this).
            submissions.reject(app, caused, envelope, rules.erased_reason(erased), payload.member_id)
            return
        raise HouseholdErasedError(rules.erased_reason(erased))
    if not await uow.processed.claim_event(envelope.event_id, household_id, app.clock.now()):
        return  # a redelivery: already applied
    try:
        await HANDLERS[type(payload)](app, uow, envelope, caused)
    except Rejected as exc:
        if not isinstance(payload, COMMANDS):
            raise
        submissions.reject(app, caused, envelope, exc.reason, payload.member_id)


async def handle_batch(app: Context, envelopes: list[Envelope[Any]]) -> None:
    """Many messages in one unit of work, with the same outcome as handling them one by one, except that a
    ritual's StreakUpdated is published once per batch with its final value. Consecutive check-ins are applied
    in bulk (a few statements for the whole run); anything else goes through `apply`. The batch's events are
    written to the outbox, in the order they were decided, just before the commit."""
    if not envelopes:
        return
    async with app.uow() as uow:
        await check_members(uow, envelopes)
        run: list[Envelope[Any]] = []
        for envelope in envelopes:
            if isinstance(envelope.payload, SubmitCheckIn):
                run.append(envelope)
                continue
            if run:
                await submissions.submit_many(app, uow, run)
                run = []
            caused = CausedEvents(envelope.event_id, envelope.household_id, envelope.correlation_id)
            await apply(app, uow, envelope, caused)
            uow.collect(caused)
        if run:
            await submissions.submit_many(app, uow, run)
        staged = await app.finish(uow)
    await app.committed(staged)


async def check_members(uow: UnitOfWork, envelopes: list[Envelope[Any]]) -> None:
    """TrustViolation (the whole batch then goes one by one) if a message names another household's member."""
    named = {m for e in envelopes for m in rules.named_members(e.payload)}
    if not named:
        return
    homes = await uow.households.homes_of(named)
    for envelope in envelopes:
        rules.check_members(envelope.payload, envelope.household_id, homes)


async def reject_invalid(app: Context, *, event_id: UUID, household_id: UUID, command_type: str, reason: str,
                         member_id: UUID | None, correlation_id: str) -> None:
    """A command that failed contract validation (rating 9, a note too long): tell the sender why."""
    app.metrics.rejected.labels(command_type.split(".")[-1][:40]).inc()
    caused = CausedEvents(event_id, household_id, correlation_id)
    caused.add(CheckInCommandRejected(command_event_id=event_id, command_type=command_type[:100],
                                      reason=reason[:2000], member_id=member_id),
               event_id=rules.derived_id("invalid", event_id))
    async with app.uow() as uow:
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)


def occurrence_of(household_id: UUID, facts: RitualDue | RitualReminder, *, deadline: Any) -> Occurrence:
    return Occurrence(
        occurrence_id=facts.occurrence_id, household_id=household_id, ritual_id=facts.ritual_id,
        template=facts.template, title=facts.title, participants=tuple(facts.participants),
        scheduled_for=facts.scheduled_for, deadline=deadline, time_zone=facts.time_zone,
        sensitive=facts.sensitive, announced=isinstance(facts, RitualReminder),
    )


def _storable(envelope: Envelope[Any], **texts: str | None) -> None:
    """A fact from another service whose text cannot be stored (NUL) is the message's fault, not ours:
    refused at once (the consumer dead-letters it with this reason) instead of retried as if transient."""
    try:
        rules.nul_free(**texts)
    except Rejected as exc:
        raise PermanentError(f"{envelope.type} {envelope.event_id}: {exc.reason}") from None


# ---- the Kafka entry points (bootstrap subscribes these) ----

def make_handler(app: Context) -> Callable[[Envelope[Any]], Awaitable[None]]:
    async def on_message(envelope: Envelope[Any]) -> None:
        await handle(app, envelope)

    return on_message


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def make_invalid_hook(app: Context) -> Callable[[Any, str], Awaitable[None]]:
    """An invalid check-ins command (rating 9, a note too long) is dead-lettered by the consumer;
    this also tells its sender why, as a CheckInCommandRejected, when the envelope says who sent it."""

    async def on_invalid(record: Any, reason: str) -> None:
        head = peek(record.value)
        if head is None or head.type not in COMMAND_TYPES:
            return  # not an envelope that says who sent it: nobody to answer
        await reject_invalid(
            app, event_id=head.event_id, household_id=head.household_id, command_type=head.type, reason=reason,
            member_id=_uuid(head.payload.get("member_id")), correlation_id=head.correlation_id,
        )

    return on_invalid
