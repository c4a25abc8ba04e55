"""The one Kafka handler: look up what the plan needs, plan, store, and wake the delivery loop."""

from __future__ import annotations

import logging
from typing import Any

from attune_contracts import Envelope, Publisher
from attune_contracts.messages import (
    AchievementRecorded,
    CheckInRecorded,
    HouseholdErased,
    MemberUpserted,
    MilestoneReached,
    NotificationDropped,
    NotificationRequested,
    RatioDropped,
    RitualDue,
    RitualMissed,
    RitualReminder,
    WeeklySummary,
)
from attune_contracts.registry import spec_of

from . import content
from .adapters.sql import SqlStore
from .delivery import DeliveryWorker
from .metrics import NotifierMetrics
from .ports import Clock
from .service import OCCURRENCE_PURPOSES, plan

log = logging.getLogger("attune.notifier.handlers")

HANDLED = (RitualDue, RitualReminder, CheckInRecorded, RitualMissed, MilestoneReached, RatioDropped,
           AchievementRecorded, WeeklySummary, NotificationRequested, MemberUpserted, HouseholdErased)
ACCEPTED_TYPES = frozenset(spec_of(model).type for model in HANDLED)
CURIOSITY_TEMPLATES = {"curiosity_question", "stay_curious", "curiosity"}
NEEDS_HOUSEHOLD = (CheckInRecorded, RitualMissed, MilestoneReached, RatioDropped, AchievementRecorded, WeeklySummary)


class NotifierHandler:
    def __init__(self, store: SqlStore, publisher: Publisher, worker: DeliveryWorker, metrics: NotifierMetrics,
                 *, clock: Clock) -> None:
        self.store, self.publisher, self.worker, self.metrics, self.clock = store, publisher, worker, metrics, clock

    async def __call__(self, env: Envelope[Any]) -> None:
        extra = {"event_id": str(env.event_id), "event_type": env.type, "correlation_id": env.correlation_id}
        payload = env.payload
        if isinstance(payload, HouseholdErased):
            counts = await self.store.erase_household(env.household_id, self.clock())
            self.metrics.erasures.inc()
            forget = getattr(self.worker.sender, "forget", None)
            if callable(forget):
                forget()  # cached plugins hold decrypted channel URLs
            log.info("household erased: %s", ", ".join(f"{n} {k}" for k, n in counts.items()), extra=extra)
            return
        members = await self.store.household_members(env.household_id) if isinstance(payload, NEEDS_HOUSEHOLD) else {}
        question = None
        if isinstance(payload, RitualDue) and payload.template in CURIOSITY_TEMPLATES:
            bank = content.question_bank()
            index = await self.store.pick_question(payload.occurrence_id, env.household_id, payload.ritual_id,
                                                   len(bank), str(env.household_id), self.clock())
            question = bank[index % len(bank)]
        decided = plan(env, members, question=question)
        now = self.clock()
        if decided.member is not None:
            await self.store.upsert_member(env.household_id, decided.member, now)
        if decided.suppress_occurrence is not None:
            for d in await self.store.suppress_occurrence(decided.suppress_occurrence, OCCURRENCE_PURPOSES, now):
                self.metrics.suppressed.labels("already_done").inc()
                try:
                    await self.publisher.publish(NotificationDropped(
                        notification_id=d.notification_id, cause_event_id=d.cause_event_id, cause_type=d.cause_type,
                        member_id=d.member_id, purpose=d.purpose, attempts=d.total_attempts, reason="already_done",
                    ), household_id=d.household_id, correlation_id=env.correlation_id)
                except Exception as exc:  # noqa: BLE001 - the suppression stands; the event is informational
                    log.warning("could not publish a suppression outcome: %s", type(exc).__name__, extra=extra)
        if decided.intents:
            new = await self.store.insert_intents(decided.intents, now)
            if not new and await self.store.is_erased(env.household_id):
                self.metrics.ignored.labels("household_erased").inc()
                return
            for intent in decided.intents:
                counter = self.metrics.planned if intent.notification_id in new else self.metrics.duplicates
                counter.labels(intent.purpose if intent.template != "request" else "request").inc()
            if new:
                self.worker.wake()
