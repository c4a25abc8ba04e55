"""Thin Kafka entry point: the shared reliable consumer parses, checks the producer and dead-letters; this
turns each fact into a read-model write. Every write is keyed by the fact's own ids (idempotent)."""

from __future__ import annotations

from typing import Any

from attune_contracts import Envelope
from attune_contracts.messages import (
    AchievementRecorded,
    AfterCareConsentChanged,
    AfterCareStarted,
    CheckInRecorded,
    ConsentGiven,
    ConsentWithdrawn,
    DateNightAdherenceUpdated,
    DreamShared,
    DreamSupported,
    HouseholdErased,
    HouseholdRegistered,
    MemberUpserted,
    MomentLogged,
    QuestionAnswered,
    QuestionAsked,
    RitualDeleted,
    RitualDue,
    RitualPaused,
    RitualResumed,
    RitualScheduled,
    RitualUpdated,
    SchedulerCommandRejected,
    StreakUpdated,
    WeeklySummary,
)
from attune_contracts.trust import foreign_member
from attune_runtime.faults import PermanentError

from .adapters import questions
from .adapters.aftercare import SqlAfterCare
from .adapters.dreams import SqlDreams
from .adapters.sql import SqlStore
from .dreams import Achievement, Dream
from .service import CheckIn, Occurrence

HANDLED_TYPES = frozenset({
    "scheduler.household_registered", "scheduler.member_upserted", "scheduler.ritual_scheduled",
    "scheduler.ritual_updated", "scheduler.ritual_paused", "scheduler.ritual_resumed", "scheduler.ritual_deleted",
    "scheduler.consent_given", "scheduler.consent_withdrawn", "scheduler.household_erased", "ritual.due",
    "scheduler.command_rejected", "checkins.checkin_recorded", "checkins.streak_updated", "checkins.moment_logged",
    "checkins.weekly_summary", "checkins.date_night_adherence_updated", "checkins.dream_shared",
    "checkins.dream_supported", "checkins.achievement_recorded", "checkins.aftercare_consent_changed",
    "checkins.aftercare_started", "notifications.question_asked", "checkins.question_answered",
})


def make_handler(store: SqlStore):  # type: ignore[no-untyped-def]
    dreams, aftercare = SqlDreams(store.engine), SqlAfterCare(store.engine)

    async def check_member(member_id: Any, household_id: Any) -> None:
        reason = foreign_member(member_id, household_id, await store.member_home(member_id))
        if reason is not None:
            raise PermanentError(reason)

    async def handle(envelope: Envelope[Any]) -> None:
        p, hid = envelope.payload, envelope.household_id
        match p:
            case HouseholdRegistered():
                await store.save_household(hid, name=p.name, kind=p.kind.value, time_zone=p.time_zone,
                                           now=envelope.occurred_at, confirmed=True)
            case MemberUpserted():
                await check_member(p.member_id, hid)
                await store.save_member(p.member_id, hid, display_name=p.display_name, role=p.role.value,
                                        confirmed=True)
            case RitualScheduled() | RitualUpdated():
                await store.save_ritual(p.ritual_id, hid, template=p.template, title=p.title,
                                        participants=p.participants, rrule=p.rrule, local_time=p.local_time,
                                        sensitive=p.sensitive, state=p.state.value, next_due_at=p.next_due_at)
            case RitualPaused():
                await store.set_ritual_state(p.ritual_id, hid, "paused")
            case RitualResumed():
                await store.set_ritual_state(p.ritual_id, hid, "active")
            case RitualDeleted():
                await store.delete_ritual(p.ritual_id, hid)
            case ConsentGiven() | ConsentWithdrawn():
                await store.set_consent(p.ritual_id, p.member_id, hid, isinstance(p, ConsentGiven), p.state.value)
            case SchedulerCommandRejected() if p.command_type == "scheduler.schedule_ritual":
                await store.refuse_ritual(p.command_event_id, hid)
            case HouseholdErased():
                await store.erase(hid, envelope.occurred_at)
            case RitualDue():
                await store.save_occurrence(Occurrence(p.occurrence_id, p.ritual_id, p.template, p.title,
                                                       tuple(p.participants), p.scheduled_for, p.deadline,
                                                       p.sensitive), hid)
            case CheckInRecorded():
                await store.save_checkin(CheckIn(p.occurrence_id, p.member_id, p.status.value, p.closeness), hid,
                                         p.recorded_at)
            case StreakUpdated():
                await store.save_streak(p.ritual_id, hid, p.template, p.length, p.best, p.unit.value)
            case MomentLogged():
                await store.save_moment(p.moment_id, hid, p.member_id, p.kind.value, p.happened_at)
            case DateNightAdherenceUpdated():
                await store.save_date_nights(p.ritual_id, hid, p.kept, p.expected, p.window_weeks)
            case DreamShared():
                await check_member(p.member_id, hid)
                await dreams.save_dream(Dream(p.dream_id, p.member_id, p.dream, p.shared_at), hid)
            case DreamSupported():
                await check_member(p.member_id, hid)
                await dreams.save_support(p.dream_id, p.member_id, hid)
            case AchievementRecorded() if p.dream_id is not None:
                await check_member(p.member_id, hid)
                await dreams.reached(Dream(p.dream_id, p.member_id, p.dream, envelope.occurred_at), hid,
                                     envelope.occurred_at)
            case AchievementRecorded():
                await check_member(p.member_id, hid)
                await dreams.save_achievement(Achievement(p.achievement_id, p.member_id, p.dream,
                                                          envelope.occurred_at), hid)
            case AfterCareConsentChanged():
                await check_member(p.member_id, hid)
                await aftercare.set_consent(hid, p.member_id, p.given)
            case AfterCareStarted():
                for member_id in (p.started_by, p.partner_id):
                    await check_member(member_id, hid)
                await aftercare.save_moment(p.moment_id, hid, [p.started_by, p.partner_id], p.started_at)
            case QuestionAsked():
                await questions.save_question(store, hid, p.occurrence_id, question_key=p.question_key,
                                              bank=p.bank.value, scheduled_for=p.scheduled_for)
            case QuestionAnswered():
                await check_member(p.member_id, hid)
                await questions.save_answered(store, hid, p.occurrence_id, p.member_id)
            case WeeklySummary():
                await store.save_summary(hid, p.week_start.isoformat(), p.positive_moments, p.negative_moments,
                                         p.focus.title, p.focus.text)

    return handle
