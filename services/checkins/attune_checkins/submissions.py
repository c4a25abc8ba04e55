"""Check-ins: one submission (HTTP, a link, a single message) or a consumed batch's run of them in bulk.

Both paths build the CheckIn the same way (`checkin_of`), ask the rules whether it is new, unchanged, stale or
a replacement, and recount the touched rituals' streaks (recount.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from attune_contracts import Envelope
from attune_contracts.messages import CheckInCommandRejected, CheckInRecorded, CheckInSource, SubmitCheckIn

from . import recount
from . import service as rules
from .context import Context
from .events import CausedEvents
from .ports import UnitOfWork
from .service import CheckIn, Occurrence, Outcome, Rejected

log = logging.getLogger("attune.checkins")


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    checkin: CheckIn


def checkin_of(cmd: SubmitCheckIn, household_id: UUID, occurrence: Occurrence, *, submitted_at: datetime,
               now: datetime, source: CheckInSource | None = None) -> CheckIn:
    """The check-in a valid command records for its occurrence."""
    return CheckIn(
        checkin_id=rules.checkin_id_for(cmd.occurrence_id, cmd.member_id), occurrence_id=cmd.occurrence_id,
        member_id=cmd.member_id, household_id=household_id, ritual_id=occurrence.ritual_id,
        template=occurrence.template, status=cmd.status, snoozed_until=cmd.snoozed_until,
        closeness=cmd.closeness, note=cmd.note, source=source or cmd.source,
        submitted_at=rules.as_utc(submitted_at), recorded_at=now, scheduled_for=occurrence.scheduled_for,
    )


def recorded(app: Context, caused: CausedEvents, checkin: CheckIn, now: datetime) -> None:
    """Count a recorded check-in and announce it (the batch and single paths share this)."""
    app.metrics.recorded(checkin.status.value, checkin.template)
    caused.add(CheckInRecorded(
        checkin_id=checkin.checkin_id, occurrence_id=checkin.occurrence_id, ritual_id=checkin.ritual_id,
        template=checkin.template, member_id=checkin.member_id, status=checkin.status,
        snoozed_until=checkin.snoozed_until, closeness=checkin.closeness, has_note=bool(checkin.note),
        scheduled_for=checkin.scheduled_for, recorded_at=now, source=checkin.source,
    ))


def reject(app: Context, caused: CausedEvents, envelope: Envelope[Any], reason: str,
           member_id: UUID | None) -> None:
    """Tell a command's sender why nothing was recorded."""
    app.metrics.rejected.labels(envelope.type.split(".")[-1]).inc()
    log.info("refused %s: %s", envelope.type, reason,
             extra={"event_id": str(envelope.event_id), "event_type": envelope.type,
                    "correlation_id": envelope.correlation_id})
    caused.add(CheckInCommandRejected(
        command_event_id=envelope.event_id, command_type=envelope.type, reason=reason, member_id=member_id,
    ))


async def submit(app: Context, uow: UnitOfWork, caused: CausedEvents, household_id: UUID,
                 cmd: SubmitCheckIn, *, submitted_at: datetime, source: CheckInSource | None = None) -> SubmitResult:
    """One check-in. Raises Rejected (nothing recorded) with the reason."""
    occurrence = await uow.occurrences.occurrence(cmd.occurrence_id)
    household = await uow.households.household(household_id)
    rules.validate_checkin(
        household_id=household_id, occurrence=occurrence, occurrence_id=cmd.occurrence_id,
        member_id=cmd.member_id, members=household.members if household else None,
        closeness=cmd.closeness, note=cmd.note, submitted_at=submitted_at,
    )
    assert occurrence is not None  # noqa: S101 - narrows a type; refused above when None
    now = app.clock.now()
    checkin = checkin_of(cmd, household_id, occurrence, submitted_at=submitted_at, now=now, source=source)
    existing = await uow.checkins.checkin(cmd.occurrence_id, cmd.member_id)
    outcome = rules.decide_submission(existing, checkin)
    if outcome in (Outcome.UNCHANGED, Outcome.STALE):
        assert existing is not None  # noqa: S101 - narrows a type; rules return these only for an existing one
        return SubmitResult(outcome, existing)
    await uow.checkins.put_checkin(checkin, replace=outcome is Outcome.REPLACED)
    recorded(app, caused, checkin, now)
    await recount.refresh_rituals(app, uow, {occurrence.ritual_id: (occurrence, caused)})
    return SubmitResult(outcome, checkin)


async def submit_many(app: Context, uow: UnitOfWork, envelopes: list[Envelope[Any]]) -> None:
    """A consumed batch's run of check-ins in a few statements; collects their events into the unit of work."""
    now = app.clock.now()
    erased = await uow.households.erased_many({e.household_id for e in envelopes})
    fresh = [e for e in envelopes if e.household_id not in erased]
    for e in envelopes:
        if e.household_id in erased:  # the tombstone: refused, whenever the command says it was sent
            caused = CausedEvents(e.event_id, e.household_id, e.correlation_id)
            reject(app, caused, e, rules.erased_reason(erased[e.household_id]), e.payload.member_id)
            uow.collect(caused)
    claimed = await uow.processed.claim_events([(e.event_id, e.household_id) for e in fresh], now)
    seen: set[UUID] = set()
    todo = []
    for e in fresh:
        if e.event_id in claimed and e.event_id not in seen:
            seen.add(e.event_id)
            todo.append(e)
    if not todo:
        return
    occurrences = await uow.occurrences.occurrences_by_id({e.payload.occurrence_id for e in todo})
    # The household's members only decide the reason a non-participant is refused with: read them only then.
    members = await uow.households.members_of({
        e.household_id for e in todo
        if (o := occurrences.get(e.payload.occurrence_id)) is not None and e.payload.member_id not in o.participants
    })
    current = await uow.checkins.checkins_for({(e.payload.occurrence_id, e.payload.member_id) for e in todo})
    inserts: dict[UUID, CheckIn] = {}
    updates: dict[UUID, CheckIn] = {}
    touched: dict[UUID, Occurrence] = {}
    for envelope in todo:
        cmd: SubmitCheckIn = envelope.payload
        caused = CausedEvents(envelope.event_id, envelope.household_id, envelope.correlation_id)
        uow.collect(caused)
        occurrence = occurrences.get(cmd.occurrence_id)
        try:
            rules.validate_checkin(
                household_id=envelope.household_id, occurrence=occurrence, occurrence_id=cmd.occurrence_id,
                member_id=cmd.member_id, members=members.get(envelope.household_id),
                closeness=cmd.closeness, note=cmd.note, submitted_at=envelope.occurred_at,
            )
        except Rejected as exc:
            reject(app, caused, envelope, exc.reason, cmd.member_id)
            continue
        assert occurrence is not None  # noqa: S101 - narrows a type; refused above when None
        checkin = checkin_of(cmd, envelope.household_id, occurrence, submitted_at=envelope.occurred_at, now=now)
        key = (cmd.occurrence_id, cmd.member_id)
        outcome = rules.decide_submission(current.get(key), checkin)
        if outcome in (Outcome.UNCHANGED, Outcome.STALE):
            continue
        if checkin.checkin_id in inserts or outcome is Outcome.NEW:
            inserts[checkin.checkin_id] = checkin
        else:
            updates[checkin.checkin_id] = checkin
        current[key] = checkin
        touched[occurrence.ritual_id] = occurrence
        recorded(app, caused, checkin, now)
    await uow.checkins.put_checkins(list(inserts.values()), list(updates.values()))
    if touched:
        batch_id = rules.derived_id("batch", *sorted(str(e.event_id) for e in todo))
        boxes = {ritual_id: CausedEvents(rules.derived_id(batch_id, ritual_id), occ.household_id, str(batch_id))
                 for ritual_id, occ in touched.items()}
        await recount.refresh_rituals(app, uow, {r: (touched[r], boxes[r]) for r in touched})
        uow.collect(*boxes.values())
