"""The check-ins use cases: one transaction each, the rules from service.py, events kept in the outbox.

Every use case writes the events it decides to the outbox table in the same transaction as the change that
caused them (`_stage`), and only after the commit wakes the relay (`on_commit`), which publishes them. So
nothing waits on the broker (an HTTP answer, a one-tap link, a consumed batch), and an event is announced
only if its change was kept: a failed commit leaves no row behind. Event ids are derived from their cause,
so a redelivered message or a relay restart republishes the same ids (consumers dedupe on event id).
Kafka messages, HTTP requests and one-tap links all end up here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from attune_contracts import Envelope
from attune_contracts.content import cadence_of
from attune_contracts.links import LinkAction, LinkClaims
from attune_contracts.messages import (
    AchievementRecorded,
    CheckInCommandRejected,
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    DateNightAdherenceUpdated,
    HouseholdCredentialsRevoked,
    HouseholdErased,
    HouseholdRegistered,
    LogMoment,
    MemberUpserted,
    MilestoneReached,
    MomentLogged,
    QuestionAsked,
    RatioDropped,
    RecordAchievement,
    RitualDeleted,
    RitualDue,
    RitualMissed,
    RitualReminder,
    RitualScheduled,
    RitualUpdated,
    ShortLinkIssued,
    StreakUpdated,
    SubmitCheckIn,
)
from attune_contracts.publisher import headers_for
from attune_contracts.registry import spec_of
from attune_contracts.types import Contract
from attune_runtime import shortlinks
from attune_runtime.consumer import PermanentError
from attune_runtime.faults import HouseholdErasedError
from sqlalchemy.exc import IntegrityError

from . import service as rules
from .adapters.sql import SqlStore, SqlTx
from .metrics import Metrics
from .ports import Clock
from .service import Achievement, CheckIn, Moment, Occurrence, Outcome, Rejected

log = logging.getLogger("attune.checkins")

# How far back a streak's history is read: the first window covers the date-night adherence (4 weeks) and
# most current runs; the next ones only for rituals whose run reaches back that far.
HISTORY_WINDOWS = (35, 140, 400)

_LINK_POLL_S = 0.1
PRODUCER = "checkins"

HANDLED_TYPES = frozenset({
    "checkins.submit_checkin", "checkins.log_moment", "checkins.record_achievement",
    "ritual.due", "ritual.reminder", "notifications.short_link_issued",
    "scheduler.household_registered", "scheduler.member_upserted", "scheduler.ritual_scheduled",
    "scheduler.ritual_updated", "scheduler.ritual_deleted", "scheduler.household_erased",
    "scheduler.household_credentials_revoked", "notifications.question_asked",
})


def missed_cadence(rrule: str | None) -> str | None:
    """The cadence a RitualMissed carries, so its words fit the household's own rule ("tomorrow" for a daily
    ritual, "next week" for a weekly one, "next time" otherwise); None when the ritual's rule is not known here."""
    if not rrule:
        return None
    return cadence_of(rrule) or "other"


@dataclass(frozen=True)
class Policy:
    weekly_summary_hour: int = 19
    weekly_summary_catch_up: timedelta = timedelta(hours=12)
    ratio_window: timedelta = timedelta(days=14)
    ratio_min_moments: int = 6
    link_snooze: timedelta = timedelta(minutes=60)
    timer_max_sleep_s: float = 60.0
    # A link can be tapped before its RitualDue has reached this service (the notifier is fast; this
    # consumer may lag): wait this long for the occurrence before saying it is unknown.
    link_occurrence_wait_s: float = 5.0
    # An occurrence a reminder announced and whose RitualDue never came (the ritual was paused, deleted or
    # skipped meanwhile) is forgotten this long after its scheduled time.
    announced_kept: timedelta = timedelta(days=2)


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    checkin: CheckIn


class LinkRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Outbox:
    """Events decided in one transaction, with ids derived from the cause."""

    def __init__(self, cause: UUID | str, household_id: UUID, correlation_id: str) -> None:
        self.cause, self.household_id, self.correlation_id = cause, household_id, correlation_id
        self.events: list[tuple[Contract, UUID]] = []

    def add(self, payload: Contract, event_id: UUID | None = None) -> None:
        self.events.append((payload, event_id or rules.derived_id("out", self.cause, len(self.events))))


class CheckinsService:
    def __init__(self, store: SqlStore, clock: Clock, metrics: Metrics, policy: Policy = Policy(), *,
                 on_commit: Callable[[], Awaitable[None]] | None = None, producer: str = PRODUCER) -> None:
        self.store, self.clock, self.metrics, self.policy = store, clock, metrics, policy
        # Called after each commit that wrote events (the relay's wake-up); a test may publish there and then.
        self.on_commit = on_commit
        self.producer = producer
        self.wake = asyncio.Event()

    def _recorded(self, outbox: Outbox, checkin: CheckIn, now: datetime) -> None:
        """Count a recorded check-in and queue its CheckInRecorded (the batch and single paths share this)."""
        self.metrics.recorded(checkin.status.value, checkin.template)
        outbox.add(CheckInRecorded(
            checkin_id=checkin.checkin_id, occurrence_id=checkin.occurrence_id, ritual_id=checkin.ritual_id,
            template=checkin.template, member_id=checkin.member_id, status=checkin.status,
            snoozed_until=checkin.snoozed_until, closeness=checkin.closeness, has_note=bool(checkin.note),
            scheduled_for=checkin.scheduled_for, recorded_at=now, source=checkin.source,
        ))

    async def _stage(self, tx: SqlTx, *outboxes: Outbox) -> bool:
        """Write the outboxes' events, in order, to the outbox table of this transaction; True if any."""
        now = self.clock.now()
        rows = []
        for o in outboxes:
            for payload, event_id in o.events:
                spec = spec_of(type(payload))
                # What make_envelope builds (and validates), without looking up the generic class per event.
                envelope = spec.envelope(
                    event_id=event_id, type=spec.type, version=spec.version, occurred_at=now,
                    producer=self.producer, correlation_id=o.correlation_id or str(event_id),
                    household_id=o.household_id, payload=payload,
                )
                rows.append({"event_id": event_id, "household_id": o.household_id, "topic": spec.topic.value,
                             "event_type": spec.type, "body": envelope.to_bytes().decode(),
                             "headers": headers_for(envelope), "created_at": now})
        await tx.enqueue(rows)
        return bool(rows)

    async def _committed(self, staged: bool) -> None:
        if staged and self.on_commit is not None:
            await self.on_commit()

    # ---- Kafka messages -------------------------------------------------------------------------

    async def handle(self, envelope: Envelope[Any]) -> None:
        outbox = Outbox(envelope.event_id, envelope.household_id, envelope.correlation_id)
        async with self.store.tx() as tx:
            await self._check_members(tx, [envelope])
            await self._apply(tx, envelope, outbox)
            staged = await self._stage(tx, outbox)
        await self._committed(staged)

    async def _apply(self, tx: SqlTx, envelope: Envelope[Any], outbox: Outbox) -> None:
        payload, household_id = envelope.payload, envelope.household_id
        now = self.clock.now()
        erased = await tx.erased_at(household_id)
        if erased is not None and not isinstance(payload, HouseholdErased):
            # The tombstone: nothing of an erased household comes back, whenever the message says it was sent.
            if isinstance(payload, SubmitCheckIn | LogMoment | RecordAchievement):
                # Not even its id is kept; a redelivery answers with the same rejection (its id derives from this).
                self._reject(outbox, envelope, rules.erased_reason(erased), payload.member_id)
                return
            raise HouseholdErasedError(rules.erased_reason(erased))
        if not await tx.claim_event(envelope.event_id, household_id, now):
            return  # a redelivery: already applied
        match payload:
            case SubmitCheckIn():
                try:
                    await self._submit(tx, outbox, household_id, payload, submitted_at=envelope.occurred_at)
                except Rejected as exc:
                    self._reject(outbox, envelope, exc.reason, payload.member_id)
            case LogMoment():
                try:
                    await self._log_moment(tx, outbox, household_id, payload, envelope.occurred_at)
                except Rejected as exc:
                    self._reject(outbox, envelope, exc.reason, payload.member_id)
            case RecordAchievement():
                try:
                    await self._record_achievement(tx, outbox, household_id, payload)
                except Rejected as exc:
                    self._reject(outbox, envelope, exc.reason, payload.member_id)
            case RitualDue():
                _storable(envelope, template=payload.template, title=payload.title)
                await self._ritual_due(tx, household_id, payload)
            case RitualReminder():
                _storable(envelope, template=payload.template, title=payload.title)
                await tx.put_household(household_id, payload.time_zone, now, overwrite=False)
                await tx.announce(_occurrence_of(household_id, payload, deadline=payload.scheduled_for))
            case QuestionAsked():
                from .questions import record_asked  # questions.py builds on this module

                await record_asked(tx, household_id, payload)
            case ShortLinkIssued():
                await tx.put_short_link(payload.code_id, household_id, payload.sealed_token, payload.expires_at)
            case HouseholdRegistered():
                await tx.put_household(household_id, payload.time_zone, now)
            case MemberUpserted():
                await tx.put_household(household_id, payload.time_zone, now, overwrite=False)
                await tx.add_member(household_id, payload.member_id)
            case RitualScheduled() | RitualUpdated():
                _storable(envelope, template=payload.template, rrule=payload.rrule)
                await tx.put_ritual(payload.ritual_id, household_id, payload.template, payload.rrule)
            case RitualDeleted():
                await tx.delete_ritual(payload.ritual_id)
            case HouseholdCredentialsRevoked():
                await tx.revoke_credentials(household_id, payload.not_before)
            case HouseholdErased():
                removed = await tx.erase(household_id, payload.erased_at)
                log.info("erased household: %d rows", sum(removed.values()),
                         extra={"event_id": str(envelope.event_id), "household_id": str(household_id)})

    async def handle_batch(self, envelopes: list[Envelope[Any]]) -> None:
        """Many messages in one transaction, with the same outcome as handling them one by one, except that
        a ritual's StreakUpdated is published once per batch with its final value. Consecutive check-ins
        are applied in bulk (a few statements for the whole run); anything else goes through `_apply`.
        The batch's events are written to the outbox, in the order they were decided, just before the commit."""
        if not envelopes:
            return
        staged: list[Outbox] = []
        async with self.store.tx() as tx:
            await self._check_members(tx, envelopes)
            run: list[Envelope[Any]] = []
            for envelope in envelopes:
                if isinstance(envelope.payload, SubmitCheckIn):
                    run.append(envelope)
                    continue
                if run:
                    await self._submit_many(tx, run, staged)
                    run = []
                outbox = Outbox(envelope.event_id, envelope.household_id, envelope.correlation_id)
                await self._apply(tx, envelope, outbox)
                staged.append(outbox)
            if run:
                await self._submit_many(tx, run, staged)
            any_staged = await self._stage(tx, *staged)
        await self._committed(any_staged)

    @staticmethod
    async def _check_members(tx: SqlTx, envelopes: list[Envelope[Any]]) -> None:
        """TrustViolation (the whole batch then goes one by one) if a message names another household's member."""
        named = {m for e in envelopes for m in rules.named_members(e.payload)}
        if not named:
            return
        homes = await tx.homes_of(named)
        for envelope in envelopes:
            rules.check_members(envelope.payload, envelope.household_id, homes)

    async def _submit_many(self, tx: SqlTx, envelopes: list[Envelope[Any]], staged: list[Outbox]) -> None:
        now = self.clock.now()
        households = {e.household_id for e in envelopes}
        erased = await tx.erased_many(households)
        fresh = [e for e in envelopes if e.household_id not in erased]
        for e in envelopes:
            if e.household_id in erased:  # the tombstone: refused, whenever the command says it was sent
                outbox = Outbox(e.event_id, e.household_id, e.correlation_id)
                self._reject(outbox, e, rules.erased_reason(erased[e.household_id]), e.payload.member_id)
                staged.append(outbox)
        claimed = await tx.claim_events([(e.event_id, e.household_id) for e in fresh], now)
        seen: set[UUID] = set()
        todo = []
        for e in fresh:
            if e.event_id in claimed and e.event_id not in seen:
                seen.add(e.event_id)
                todo.append(e)
        if not todo:
            return
        occurrences = await tx.occurrences_by_id({e.payload.occurrence_id for e in todo})
        # The household's members only decide the reason a non-participant is refused with: read them only then.
        members = await tx.members_of({
            e.household_id for e in todo
            if (o := occurrences.get(e.payload.occurrence_id)) is not None and e.payload.member_id not in o.participants
        })
        current = await tx.checkins_for(
            {(e.payload.occurrence_id, e.payload.member_id) for e in todo})
        inserts: dict[UUID, CheckIn] = {}
        updates: dict[UUID, CheckIn] = {}
        touched: dict[UUID, Occurrence] = {}
        outboxes = []
        for envelope in todo:
            cmd: SubmitCheckIn = envelope.payload
            outbox = Outbox(envelope.event_id, envelope.household_id, envelope.correlation_id)
            outboxes.append(outbox)
            occurrence = occurrences.get(cmd.occurrence_id)
            try:
                rules.validate_checkin(
                    household_id=envelope.household_id, occurrence=occurrence, occurrence_id=cmd.occurrence_id,
                    member_id=cmd.member_id, members=members.get(envelope.household_id),
                    closeness=cmd.closeness, note=cmd.note, submitted_at=envelope.occurred_at,
                )
            except Rejected as exc:
                self._reject(outbox, envelope, exc.reason, cmd.member_id)
                continue
            assert occurrence is not None  # noqa: S101 - narrows a type; refused above when None
            checkin = CheckIn(
                checkin_id=rules.checkin_id_for(cmd.occurrence_id, cmd.member_id),
                occurrence_id=cmd.occurrence_id, member_id=cmd.member_id, household_id=envelope.household_id,
                ritual_id=occurrence.ritual_id, template=occurrence.template, status=cmd.status,
                snoozed_until=cmd.snoozed_until, closeness=cmd.closeness, note=cmd.note, source=cmd.source,
                submitted_at=rules.as_utc(envelope.occurred_at), recorded_at=now,
                scheduled_for=occurrence.scheduled_for,
            )
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
            self._recorded(outbox, checkin, now)
        staged += outboxes
        await tx.put_checkins(list(inserts.values()), list(updates.values()))
        if touched:
            batch_id = rules.derived_id("batch", *sorted(str(e.event_id) for e in todo))
            boxes = {ritual_id: Outbox(rules.derived_id(batch_id, ritual_id), occ.household_id, str(batch_id))
                     for ritual_id, occ in touched.items()}
            await self._refresh_rituals(tx, {r: (touched[r], boxes[r]) for r in touched})
            staged += boxes.values()

    def _reject(self, outbox: Outbox, envelope: Envelope[Any], reason: str, member_id: UUID | None) -> None:
        self.metrics.rejected.labels(envelope.type.split(".")[-1]).inc()
        log.info("refused %s: %s", envelope.type, reason,
                 extra={"event_id": str(envelope.event_id), "event_type": envelope.type,
                        "correlation_id": envelope.correlation_id})
        outbox.add(CheckInCommandRejected(
            command_event_id=envelope.event_id, command_type=envelope.type, reason=reason, member_id=member_id,
        ))

    async def reject_invalid(self, *, event_id: UUID, household_id: UUID, command_type: str, reason: str,
                             member_id: UUID | None, correlation_id: str) -> None:
        """A command that failed contract validation (rating 9, a note too long): tell the sender why."""
        self.metrics.rejected.labels(command_type.split(".")[-1][:40]).inc()
        outbox = Outbox(event_id, household_id, correlation_id)
        outbox.add(CheckInCommandRejected(command_event_id=event_id, command_type=command_type[:100],
                                          reason=reason[:2000], member_id=member_id),
                   event_id=rules.derived_id("invalid", event_id))
        async with self.store.tx() as tx:
            staged = await self._stage(tx, outbox)
        await self._committed(staged)

    async def _ritual_due(self, tx: SqlTx, household_id: UUID, due: RitualDue) -> None:
        now = self.clock.now()
        await tx.put_household(household_id, due.time_zone, now, overwrite=False)
        occurrence = _occurrence_of(household_id, due, deadline=due.deadline)
        if await tx.add_occurrence(occurrence):
            self.wake.set()  # the timer may need to wake earlier for this deadline
        await tx.forget_announced(due.occurrence_id)

    # ---- check-ins ------------------------------------------------------------------------------

    async def _submit(self, tx: SqlTx, outbox: Outbox, household_id: UUID, cmd: SubmitCheckIn, *,
                      submitted_at: datetime, source: CheckInSource | None = None) -> SubmitResult:
        occurrence = await tx.occurrence(cmd.occurrence_id)
        household = await tx.household(household_id)
        rules.validate_checkin(
            household_id=household_id, occurrence=occurrence, occurrence_id=cmd.occurrence_id,
            member_id=cmd.member_id, members=household.members if household else None,
            closeness=cmd.closeness, note=cmd.note, submitted_at=submitted_at,
        )
        assert occurrence is not None  # noqa: S101 - narrows a type; refused above when None
        now = self.clock.now()
        checkin = CheckIn(
            checkin_id=rules.checkin_id_for(cmd.occurrence_id, cmd.member_id), occurrence_id=cmd.occurrence_id,
            member_id=cmd.member_id, household_id=household_id, ritual_id=occurrence.ritual_id,
            template=occurrence.template, status=cmd.status, snoozed_until=cmd.snoozed_until,
            closeness=cmd.closeness, note=cmd.note, source=source or cmd.source,
            submitted_at=rules.as_utc(submitted_at), recorded_at=now, scheduled_for=occurrence.scheduled_for,
        )
        existing = await tx.checkin(cmd.occurrence_id, cmd.member_id)
        outcome = rules.decide_submission(existing, checkin)
        if outcome in (Outcome.UNCHANGED, Outcome.STALE):
            assert existing is not None  # noqa: S101 - narrows a type; rules return these only for an existing one
            return SubmitResult(outcome, existing)
        await tx.put_checkin(checkin, replace=outcome is Outcome.REPLACED)
        self._recorded(outbox, checkin, now)
        await self._refresh_ritual(tx, outbox, occurrence)
        return SubmitResult(outcome, checkin)

    async def _refresh_ritual(self, tx: SqlTx, outbox: Outbox, occurrence: Occurrence) -> None:
        await self._refresh_rituals(tx, {occurrence.ritual_id: (occurrence, outbox)})

    async def _refresh_rituals(self, tx: SqlTx, touched: dict[UUID, tuple[Occurrence, Outbox]]) -> None:
        """Recount streaks (and date-night adherence) of the touched rituals; publish what changed."""
        now = self.clock.now()
        rrules, stored = await tx.ritual_states(list(touched))
        units = {ritual_id: rules.unit_for(rrules.get(ritual_id), occurrence.template)
                 for ritual_id, (occurrence, _) in touched.items()}
        today = min(rules.local_date_of(now, occ.time_zone) for occ, _ in touched.values())
        histories, streaks = await self._current_runs(tx, units, today, now)
        rows = []
        marks: list[tuple[UUID, UUID, date, int]] = []
        for ritual_id, (occurrence, outbox) in touched.items():
            unit = units[ritual_id]
            history, streak = histories[ritual_id], streaks[ritual_id]
            previous = stored.get(ritual_id)
            prev_len, prev_best, prev_kept, prev_expected = previous or (0, 0, None, None)
            best = max(streak.best, prev_best)
            if previous is None or (prev_len, prev_best) != (streak.length, best):
                outbox.add(StreakUpdated(ritual_id=ritual_id, template=occurrence.template,
                                         length=streak.length, unit=unit, best=best))
            for mark in rules.milestones_crossed(prev_len, streak.length, unit):
                assert streak.run_start is not None  # noqa: S101 - narrows a type; a streak with a length has a start
                marks.append((ritual_id, occurrence.household_id, streak.run_start, mark))
            kept, expected = None, None
            if rules.is_date_night(occurrence.template):
                today = rules.local_date_of(now, occurrence.time_zone)
                kept, expected = rules.adherence(history, window_end=today, now=now)
                if (kept, expected) != (prev_kept, prev_expected):
                    outbox.add(DateNightAdherenceUpdated(ritual_id=ritual_id, kept=kept, expected=expected))
            rows.append({"ritual_id": ritual_id, "household_id": occurrence.household_id,
                         "template": occurrence.template, "unit": unit.value, "length": streak.length,
                         "best": best, "adherence_kept": kept, "adherence_expected": expected})
        # Each milestone once per run, claimed for the whole batch in one statement.
        new_marks = await tx.claim_milestones(marks, now)
        for ritual_id, _, run_start, mark in marks:
            if (ritual_id, run_start, mark) in new_marks:
                occurrence, outbox = touched[ritual_id]
                unit = units[ritual_id]
                self.metrics.milestones.labels(unit.value, str(mark)).inc()
                outbox.add(MilestoneReached(ritual_id=ritual_id, template=occurrence.template, length=mark, unit=unit))
        await tx.put_streaks(rows)

    async def _current_runs(
        self, tx: SqlTx, units: dict[UUID, rules.StreakUnit], today: date, now: datetime
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
            found = await tx.ritual_histories(pending, since)
            longer = []
            for ritual_id in pending:
                history = histories[ritual_id] = found.get(ritual_id, [])
                unit = units[ritual_id]
                streak = streaks[ritual_id] = rules.compute_streak(history, unit, now)
                if streak.run_start is not None and streak.run_start == rules.period_of(history[0][0].local_date, unit):
                    longer.append(ritual_id)  # unbroken back to the first period read: it may go on before
            if longer and days != HISTORY_WINDOWS[-1]:  # ... if the ritual has occurrences before `since`
                first = await tx.first_dates(longer)
                longer = [ritual_id for ritual_id in longer if first.get(ritual_id, since) < since]
            pending = longer
            if not pending:
                break
        return histories, streaks

    # ---- moments and achievements ---------------------------------------------------------------

    async def _member_of(self, tx: SqlTx, household_id: UUID, member_id: UUID) -> None:
        household = await tx.household(household_id)
        if household is None:
            raise Rejected(f"household {household_id} is unknown here (no HouseholdRegistered seen for it)")
        if member_id not in household.members:
            raise Rejected(f"member {member_id} is not in this household")

    async def _log_moment(self, tx: SqlTx, outbox: Outbox, household_id: UUID, cmd: LogMoment,
                          sent_at: datetime) -> bool:
        now = self.clock.now()
        rules.nul_free(note=cmd.note)
        await self._member_of(tx, household_id, cmd.member_id)
        happened_at = cmd.happened_at or rules.as_utc(sent_at)
        if happened_at > now + timedelta(minutes=5):
            raise Rejected(f"happened_at {happened_at.isoformat()} is in the future")
        moment = Moment(cmd.moment_id, household_id, cmd.member_id, cmd.kind.value, cmd.note, happened_at, now)
        if not await tx.add_moment(moment):
            return False  # the same moment id again: already counted
        self.metrics.moments.labels(cmd.kind.value).inc()
        outbox.add(MomentLogged(moment_id=cmd.moment_id, member_id=cmd.member_id, kind=cmd.kind,
                                happened_at=happened_at))
        positive, negative = await tx.moment_counts(household_id, now - self.policy.ratio_window, now)
        was_below = await tx.ratio_below(household_id)
        below, dropped = rules.ratio_transition(positive, negative, was_below=was_below,
                                                min_moments=self.policy.ratio_min_moments)
        if below != was_below:
            await tx.set_ratio_below(household_id, below)
        if dropped:
            self.metrics.ratio_drops.inc()
            outbox.add(RatioDropped(positive=positive, negative=negative, ratio=positive / negative,
                                    window_days=self.policy.ratio_window.days))
        return True

    async def _record_achievement(self, tx: SqlTx, outbox: Outbox, household_id: UUID,
                                  cmd: RecordAchievement) -> None:
        rules.nul_free(dream=cmd.dream, note=cmd.note)
        await self._member_of(tx, household_id, cmd.member_id)
        achievement = Achievement(cmd.achievement_id, household_id, cmd.member_id, cmd.dream, cmd.note,
                                  self.clock.now())
        if await tx.add_achievement(achievement):
            outbox.add(AchievementRecorded(achievement_id=cmd.achievement_id, member_id=cmd.member_id,
                                           dream=cmd.dream))

    # ---- HTTP and links -------------------------------------------------------------------------

    async def submit(self, household_id: UUID, cmd: SubmitCheckIn) -> SubmitResult:
        """A check-in from the HTTP API. Raises Rejected (nothing recorded) with the reason."""
        for attempt in (1, 2):
            request_id = uuid4()
            # Correlated with the occurrence, so one reminder can be followed from scheduler to check-in.
            outbox = Outbox(request_id, household_id, str(cmd.occurrence_id))
            try:
                async with self.store.tx() as tx:
                    result = await self._submit(tx, outbox, household_id, cmd, submitted_at=self.clock.now())
                    staged = await self._stage(tx, outbox)
                await self._committed(staged)
                return result
            except IntegrityError:
                if attempt == 2:
                    raise  # the same check-in was being written by another path at the same moment: once more
        raise AssertionError("unreachable")

    async def log_moment(self, household_id: UUID, cmd: LogMoment) -> bool:
        request_id = uuid4()
        outbox = Outbox(request_id, household_id, str(request_id))
        async with self.store.tx() as tx:
            created = await self._log_moment(tx, outbox, household_id, cmd, self.clock.now())
            staged = await self._stage(tx, outbox)
        await self._committed(staged)
        return created

    async def link_preview(self, claims: LinkClaims) -> tuple[Occurrence, datetime | None]:
        """What a link would record, and when it was used if it already was.

        A reminder's link can be tapped before its ritual (the day-before date-night reminder): the
        occurrence its RitualReminder announced is returned at once, marked `announced` (nothing can be
        recorded for it yet). An occurrence not known yet, or announced and already past its time, is waited
        for (up to `link_occurrence_wait_s`): a validly signed link names one, and its RitualDue may still be
        on its way here. Still only announced after the wait: returned as announced all the same.
        """
        deadline = asyncio.get_running_loop().time() + self.policy.link_occurrence_wait_s
        while True:
            async with self.store.tx() as tx:
                occurrence = await tx.occurrence(claims.occurrence_id)
                if occurrence is not None and occurrence.household_id == claims.household_id:
                    return occurrence, await tx.token_used_at(claims.token_id)
                announced = await tx.announced(claims.occurrence_id) if occurrence is None else None
            if announced is not None and announced.household_id != claims.household_id:
                announced = None
            if announced is not None and self.clock.now() < announced.scheduled_for:
                return announced, None
            if occurrence is not None or asyncio.get_running_loop().time() >= deadline:
                if announced is not None:
                    return announced, None
                raise LinkRefused("unknown_occurrence", "We could not find this ritual any more.")
            await asyncio.sleep(_LINK_POLL_S)

    async def resolve_short_link(self, code: str) -> str:
        """The one-tap token an SMS's short code stands for. Its ShortLinkIssued may still be on its way here
        (an SMS is quick): waited for like a link's occurrence. LinkRefused if unknown or expired."""
        key = shortlinks.code_id(code)
        deadline = asyncio.get_running_loop().time() + self.policy.link_occurrence_wait_s
        while True:
            async with self.store.tx() as tx:
                found = await tx.short_link(key)
            if found is not None:
                _, sealed, expires_at = found
                if expires_at <= self.clock.now():
                    raise LinkRefused("expired", "This link has expired. The next reminder will bring fresh links.")
                token = shortlinks.unseal(sealed, code)
                if token is None:  # not sealed with this code: not one of ours
                    raise LinkRefused("bad_signature", "This link has been changed or was not made by Attune.")
                return token
            if asyncio.get_running_loop().time() >= deadline:
                raise LinkRefused("unknown_short_link", "We don't know this short link. It may be mistyped, or "
                                                        "so old that it has been tidied away.")
            await asyncio.sleep(_LINK_POLL_S)

    async def link_outcome(self, claims: LinkClaims) -> tuple[Occurrence | None, CheckIn | None]:
        """For a used or expired link's page: its occurrence (if still known, in the link's household) and what
        is recorded for its member. No waiting: this only explains a link that no longer records anything."""
        async with self.store.tx() as tx:
            occurrence = await tx.occurrence(claims.occurrence_id)
            if occurrence is None or occurrence.household_id != claims.household_id:
                return None, None
            return occurrence, await tx.checkin(claims.occurrence_id, claims.member_id)

    async def use_link(self, claims: LinkClaims, closeness: int | None) -> SubmitResult:
        """Record a one-tap link's check-in once; a second use of the same token is refused."""
        now = self.clock.now()
        status = {LinkAction.DONE: CheckInStatus.DONE, LinkAction.SKIP: CheckInStatus.SKIPPED,
                  LinkAction.SNOOZE: CheckInStatus.SNOOZED}[claims.action]
        cmd = SubmitCheckIn(
            occurrence_id=claims.occurrence_id, member_id=claims.member_id, status=status,
            snoozed_until=now + self.policy.link_snooze if status is CheckInStatus.SNOOZED else None,
            closeness=closeness if status is CheckInStatus.DONE else None, source=CheckInSource.LINK,
        )
        outbox = Outbox(claims.token_id, claims.household_id, str(claims.occurrence_id))
        async with self.store.tx() as tx:
            checkin_id = rules.checkin_id_for(claims.occurrence_id, claims.member_id)
            if not await tx.use_token(claims.token_id, claims.household_id, checkin_id, now, claims.expires_at):
                raise LinkRefused("replayed", "This link has already been used; your answer was recorded then.")
            result = await self._submit(tx, outbox, claims.household_id, cmd, submitted_at=now)
            staged = await self._stage(tx, outbox)
        await self._committed(staged)
        return result

    # ---- reading --------------------------------------------------------------------------------

    async def summary(self, household_id: UUID) -> dict[str, Any] | None:
        now = self.clock.now()
        async with self.store.tx() as tx:
            household = await tx.household(household_id)
            if household is None:
                return None
            week_start = rules.week_start_of(rules.local_date_of(now, household.time_zone))
            data = await self._week_data(tx, household_id, week_start, now)
            week = rules.weekly_summary(week_start, data, now)
            positive, negative = await tx.moment_counts(household_id, now - self.policy.ratio_window, now)
            streaks = await tx.household_streaks(household_id)
        return {
            "household_id": str(household_id),
            "time_zone": household.time_zone,
            "members": sorted(str(m) for m in household.members),
            "this_week": week.model_dump(mode="json"),
            "streaks": [
                {"ritual_id": str(s["ritual_id"]), "template": s["template"], "unit": s["unit"],
                 "length": s["length"], "best": s["best"],
                 **({"date_nights_kept_4w": s["adherence_kept"], "date_nights_expected_4w": s["adherence_expected"]}
                    if s["adherence_kept"] is not None else {})}
                for s in streaks
            ],
            "ratio": {"window_days": self.policy.ratio_window.days, "positive": positive, "negative": negative,
                      "ratio": rules.ratio_of(positive, negative)},
        }

    async def credentials_not_before(self, household_id: UUID) -> datetime | None:
        async with self.store.tx() as tx:
            return await tx.credentials_not_before(household_id)

    async def history(self, household_id: UUID, *, page: int, page_size: int) -> tuple[list[CheckIn], int]:
        async with self.store.tx() as tx:
            return await tx.history(household_id, offset=(page - 1) * page_size, limit=page_size)

    async def export(self, household_id: UUID) -> dict[str, Any] | None:
        async with self.store.tx() as tx:
            household = await tx.household(household_id)
            if household is None:
                return None
            checkins, _ = await tx.history(household_id, offset=0, limit=10_000_000)
            moments = await tx.moments(household_id)
            achievements = await tx.achievements(household_id)
            streaks = await tx.household_streaks(household_id)
        return {
            "household_id": str(household_id), "time_zone": household.time_zone,
            "exported_at": self.clock.now().isoformat(),
            "members": sorted(str(m) for m in household.members),
            "checkins": [checkin_json(c) for c in checkins],
            "moments": [{"moment_id": str(m.moment_id), "member_id": str(m.member_id), "kind": m.kind,
                         "note": m.note, "happened_at": m.happened_at.isoformat()} for m in moments],
            "achievements": [{"achievement_id": str(a.achievement_id), "member_id": str(a.member_id),
                              "dream": a.dream, "note": a.note, "recorded_at": a.recorded_at.isoformat()}
                             for a in achievements],
            "streaks": [{k: (str(v) if isinstance(v, UUID) else v) for k, v in s.items() if k != "household_id"}
                        for s in streaks],
        }

    # ---- the timer: missed occurrences and weekly summaries -------------------------------------

    async def tick(self) -> float:
        """Handle every deadline and summary that is due; return how long the timer may sleep."""
        now = self.clock.now()
        async with self.store.tx() as tx:
            await tx.forget_announced(before=now - self.policy.announced_kept)
            await tx.forget_short_links(expired_before=now)
            overdue = await tx.overdue(now)
            for occurrence_id in await tx.answered_unclaimed(now):
                await tx.close_occurrence(occurrence_id, now, missed=False)
        for occurrence in overdue:
            await self._close_missed(occurrence, now)
        async with self.store.tx() as tx:
            households = await tx.all_households()
        candidates: list[datetime | None] = []
        for household_id, zone in households:
            await self._maybe_summarise(household_id, zone, now)
            candidates.append(rules.next_summary_at(now, zone, self.policy.weekly_summary_hour))
        async with self.store.tx() as tx:
            candidates.append(await tx.next_deadline())
        return rules.seconds_until_next(self.clock.now(), candidates, self.policy.timer_max_sleep_s)

    async def _close_missed(self, occurrence: Occurrence, now: datetime) -> None:
        outbox = Outbox(f"missed:{occurrence.occurrence_id}", occurrence.household_id,
                        str(occurrence.occurrence_id))
        async with self.store.tx() as tx:
            statuses = await tx.occurrence_statuses(occurrence.occurrence_id)
            missed = rules.is_missed(occurrence, statuses, now)
            if not await tx.close_occurrence(occurrence.occurrence_id, now, missed=missed):
                return  # another instance handled it
            if missed:
                self.metrics.missed.labels(self.metrics.template(occurrence.template)).inc()
                rrules, _ = await tx.ritual_states([occurrence.ritual_id])
                outbox.add(RitualMissed(
                    occurrence_id=occurrence.occurrence_id, ritual_id=occurrence.ritual_id,
                    template=occurrence.template, participants=list(occurrence.participants),
                    scheduled_for=occurrence.scheduled_for, deadline=occurrence.deadline,
                    sensitive=occurrence.sensitive, cadence=missed_cadence(rrules.get(occurrence.ritual_id)),
                ), event_id=rules.derived_id("missed", occurrence.occurrence_id))
                await self._refresh_ritual(tx, outbox, occurrence)
            staged = await self._stage(tx, outbox)
        await self._committed(staged)

    async def _week_data(self, tx: SqlTx, household_id: UUID, week_start: date, until: datetime) -> rules.WeekData:
        household = await tx.household(household_id)
        zone = ZoneInfo(household.time_zone if household else "UTC")
        week_end = week_start + timedelta(days=6)
        occurrences = await tx.household_occurrences(household_id, week_start - timedelta(days=21), week_end)
        done_by = await tx.done_by(o.occurrence_id for o in occurrences)
        week_begins = datetime.combine(week_start, dtime(0), tzinfo=zone)
        moments = await tx.moments(household_id, week_begins, until)
        achievements = await tx.achievements(household_id, until - timedelta(days=28))
        return rules.WeekData(occurrences, done_by, moments, len(achievements))

    async def _maybe_summarise(self, household_id: UUID, zone: str, now: datetime) -> None:
        week_start, slot = rules.summary_slot(now, zone, self.policy.weekly_summary_hour)
        if now - slot > self.policy.weekly_summary_catch_up:
            return
        event_id = rules.derived_id("weekly", household_id, week_start)
        outbox = Outbox(event_id, household_id, str(event_id))
        async with self.store.tx() as tx:
            if await tx.summary_sent(household_id, week_start):
                return
            data = await self._week_data(tx, household_id, week_start, slot)
            if not data.occurrences and not data.moments:
                await tx.claim_summary(household_id, week_start, now)  # nothing to say this week
                return
            if not await tx.claim_summary(household_id, week_start, now):
                return
            self.metrics.summaries.inc()
            outbox.add(rules.weekly_summary(week_start, data, slot), event_id=event_id)
            staged = await self._stage(tx, outbox)
        await self._committed(staged)

    async def run_timer(self, stop: asyncio.Event) -> None:
        """Sleep until the next deadline or summary (or until a new RitualDue wakes it), then handle it."""
        while not stop.is_set():
            self.wake.clear()
            try:
                delay = await self.tick()
            except Exception:
                log.exception("timer tick failed; trying again shortly")
                delay = 5.0
            sleeper = asyncio.ensure_future(self.clock.sleep(delay))
            woken = asyncio.ensure_future(self.wake.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({sleeper, woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, woken, stopped):
                    task.cancel()


def _occurrence_of(household_id: UUID, facts: RitualDue | RitualReminder, *, deadline: datetime) -> Occurrence:
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


def checkin_json(c: CheckIn) -> dict[str, Any]:
    return {
        "checkin_id": str(c.checkin_id), "occurrence_id": str(c.occurrence_id), "member_id": str(c.member_id),
        "ritual_id": str(c.ritual_id), "template": c.template, "status": c.status.value,
        "snoozed_until": c.snoozed_until.isoformat() if c.snoozed_until else None, "closeness": c.closeness,
        "note": c.note, "source": c.source.value, "scheduled_for": c.scheduled_for.isoformat(),
        "submitted_at": c.submitted_at.isoformat(), "recorded_at": c.recorded_at.isoformat(),
    }

