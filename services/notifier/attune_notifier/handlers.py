"""The one Kafka handler: look up what the plan needs, plan, store, and wake the delivery loop."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID, uuid5

from attune_contracts import Envelope, Publisher
from attune_contracts.catalog import question_depth, question_key
from attune_contracts.messages import (
    AchievementRecorded,
    CheckInRecorded,
    HouseholdCredentialsRevoked,
    HouseholdErased,
    MemberUpserted,
    MilestoneReached,
    NotificationDropped,
    NotificationRequested,
    QuestionAsked,
    QuestionBank,
    RatioDropped,
    RitualDue,
    RitualMissed,
    RitualReminder,
    WeeklySummary,
)
from attune_contracts.registry import spec_of
from attune_runtime.faults import HouseholdErasedError

from . import content
from .adapters.sql import SqlStore
from .delivery import DeliveryWorker
from .metrics import NotifierMetrics
from .ports import Clock
from .service import OCCURRENCE_PURPOSES, Intent, Plan, check_members, named_members, plan

log = logging.getLogger("attune.notifier.handlers")

HANDLED = (RitualDue, RitualReminder, CheckInRecorded, RitualMissed, MilestoneReached, RatioDropped,
           AchievementRecorded, WeeklySummary, NotificationRequested, MemberUpserted, HouseholdErased,
           HouseholdCredentialsRevoked)
ACCEPTED_TYPES = frozenset(spec_of(model).type for model in HANDLED)
CURIOSITY_TEMPLATES = {"curiosity_question", "stay_curious", "curiosity"}
CHILD_QUESTION_TEMPLATES = {"parent_child_attunement"}  # the child's bank: the child reads it, the parent asks it
ERASED_REASON = ("this household was erased and stays erased; the notifier keeps nothing of it again "
                 "(a replayed or late message is refused)")
NEEDS_HOUSEHOLD = (CheckInRecorded, RitualMissed, MilestoneReached, RatioDropped, AchievementRecorded, WeeklySummary)


class NotifierHandler:
    def __init__(self, store: SqlStore, publisher: Publisher, worker: DeliveryWorker, metrics: NotifierMetrics,
                 *, clock: Clock) -> None:
        self.store, self.publisher, self.worker, self.metrics, self.clock = store, publisher, worker, metrics, clock

    async def __call__(self, env: Envelope[Any]) -> None:
        """One event (the per-message consumer, and the batch consumer's fallback)."""
        await self.handle_batch([env])

    async def handle_batch(self, batch: list[Envelope[Any]]) -> None:
        """Events in their Kafka order. The intents of consecutive events are stored together in one
        statement, flushed before anything that changes stored deliveries (an erasure, a suppression), so
        the outcome is the same as handling the events one by one. Everything here is idempotent: if the
        batch fails part-way, the consumer handles its events again one by one."""
        erased = await self.store.erased_among(
            {env.household_id for env in batch if not isinstance(env.payload, HouseholdErased)})
        if erased:
            # The tombstone: nothing of an erased household is stored again (a replayed MemberUpserted, a late
            # RitualDue). Refused with a reason; the consumer handles the rest of a batch one by one.
            raise HouseholdErasedError(ERASED_REASON)
        waiting: list[tuple[Envelope[Any], list[Intent]]] = []
        homes = await self.store.homes_of({m for env in batch for m in named_members(env.payload)})
        for env in batch:
            if isinstance(env.payload, HouseholdErased):
                await self._store(waiting)
                await self._erase(env)
                homes = {m: h for m, h in homes.items() if h != env.household_id}
                continue
            if isinstance(env.payload, HouseholdCredentialsRevoked):
                await self.store.revoke_credentials(env.household_id, env.payload.not_before)
                log.info("household credentials revoked", extra=_ids(env))
                continue
            check_members(env, homes)  # TrustViolation: the batch goes one by one, this event is dead-lettered
            decided = await self._plan(env)
            if decided.member is not None:
                await self.store.upsert_member(env.household_id, decided.member, self.clock())
                homes[decided.member.member_id] = env.household_id
            if decided.suppress_occurrence is not None:
                await self._store(waiting)
                await self._suppress(env, decided.suppress_occurrence)
            if decided.intents:
                waiting.append((env, decided.intents))
        await self._store(waiting)

    async def _plan(self, env: Envelope[Any]) -> Plan:
        payload = env.payload
        # A ritual that may include a child needs the roles too: a child gets the child's words.
        needs_household = isinstance(payload, NEEDS_HOUSEHOLD) or (
            isinstance(payload, RitualDue | RitualReminder) and content.may_include_children(payload.template))
        members = await self.store.household_members(env.household_id) if needs_household else {}
        question = child_question = None
        if isinstance(payload, RitualDue) and payload.template in CURIOSITY_TEMPLATES:
            bank = content.question_bank()
            index = await self.store.pick_question(payload.occurrence_id, env.household_id, payload.ritual_id,
                                                   len(bank), str(env.household_id), self.clock(),
                                                   depths=content.question_depths())
            question = bank[index % len(bank)]
            await self._asked(env, payload, QuestionBank.ADULT, question)
        elif isinstance(payload, RitualDue) and payload.template in CHILD_QUESTION_TEMPLATES:
            bank = content.child_question_bank()
            index = await self.store.pick_question(payload.occurrence_id, env.household_id, payload.ritual_id,
                                                   len(bank), f"{env.household_id}|child", self.clock())
            child_question = bank[index % len(bank)]
            await self._asked(env, payload, QuestionBank.CHILD, child_question)
        return plan(env, members, question=question, child_question=child_question)

    async def _asked(self, env: Envelope[Any], due: RitualDue, bank: QuestionBank, question: str) -> None:
        """Tell check-ins and the app which question this occurrence asks, so the household can answer it. The
        pick is stored per occurrence, so a redelivered RitualDue publishes the same question with the same
        event id. A failure raises: the RitualDue is retried (nothing of it is lost, the pick stays)."""
        await self.publisher.publish(QuestionAsked(
            occurrence_id=due.occurrence_id, ritual_id=due.ritual_id, template=due.template, bank=bank,
            question_key=question_key(question), depth=question_depth(question) if bank is QuestionBank.ADULT else None,
            scheduled_for=due.scheduled_for,
        ), household_id=env.household_id, correlation_id=env.correlation_id,
            event_id=uuid5(due.occurrence_id, "question_asked"))

    async def _erase(self, env: Envelope[Any]) -> None:
        counts = await self.store.erase_household(env.household_id, self.clock())
        self.metrics.erasures.inc()
        forget = getattr(self.worker.sender, "forget", None)
        if callable(forget):
            forget()  # cached plugins hold decrypted channel URLs
        log.info("household erased: %s", ", ".join(f"{n} {k}" for k, n in counts.items()), extra=_ids(env))

    async def _suppress(self, env: Envelope[Any], occurrence_id: UUID) -> None:
        for d in await self.store.suppress_occurrence(occurrence_id, OCCURRENCE_PURPOSES, self.clock()):
            self.metrics.suppressed.labels("already_done").inc()
            try:
                await self.publisher.publish(NotificationDropped(
                    notification_id=d.notification_id, cause_event_id=d.cause_event_id, cause_type=d.cause_type,
                    member_id=d.member_id, purpose=d.purpose, attempts=d.total_attempts, reason="already_done",
                ), household_id=d.household_id, correlation_id=env.correlation_id)
            except Exception as exc:  # noqa: BLE001 - the suppression stands; the event is informational
                log.warning("could not publish a suppression outcome: %s", type(exc).__name__, extra=_ids(env))

    async def _store(self, waiting: list[tuple[Envelope[Any], list[Intent]]]) -> None:
        """Insert the waiting events' intents in one go, count them, wake the delivery loop; empties `waiting`."""
        if not waiting:
            return
        new = await self.store.insert_intents([i for _, intents in waiting for i in intents], self.clock())
        nothing_new = [not any(i.notification_id in new for i in intents) for _, intents in waiting]
        erased = await self.store.erased_among(
            env.household_id for (env, _), none in zip(waiting, nothing_new) if none)
        counted: set[UUID] = set()
        for (env, intents), none in zip(waiting, nothing_new):
            if none and env.household_id in erased:
                self.metrics.ignored.labels("household_erased").inc()
                continue
            for intent in intents:
                # The same event twice in one batch: the first copy stored the row, the second is a duplicate.
                fresh = intent.notification_id in new and intent.notification_id not in counted
                counted.add(intent.notification_id)
                counter = self.metrics.planned if fresh else self.metrics.duplicates
                counter.labels(intent.purpose if intent.template != "request" else "request").inc()
        waiting.clear()
        if new:
            self.worker.wake()


def _ids(env: Envelope[Any]) -> dict[str, str]:
    return {"event_id": str(env.event_id), "event_type": env.type, "correlation_id": env.correlation_id}
