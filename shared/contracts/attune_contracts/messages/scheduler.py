"""Households, members, rituals and consent (owned by the scheduler), and the occurrences it fires."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from ..registry import message
from ..topics import Topic
from ..types import Contract, IanaZone, Key, MemberIds, Name, PrivateText, Reason, UtcDatetime

__all__ = [
    "ConsentGiven",
    "ConsentWithdrawn",
    "DeleteRitual",
    "EraseHousehold",
    "GiveConsent",
    "HouseholdCredentialsRevoked",
    "HouseholdErased",
    "HouseholdKind",
    "HouseholdRegistered",
    "MemberRole",
    "MemberUpserted",
    "OccurrenceSkipped",
    "PauseRitual",
    "RegisterHousehold",
    "ResumeRitual",
    "RevokeHouseholdCredentials",
    "RitualDeleted",
    "RitualDue",
    "RitualPaused",
    "RitualReminder",
    "RitualResumed",
    "RitualScheduled",
    "RitualState",
    "RitualUpdated",
    "ScheduleRitual",
    "SchedulerCommandRejected",
    "UpdateRitual",
    "UpsertMember",
    "WithdrawConsent",
]

RRule = Annotated[str, StringConstraints(min_length=6, max_length=500, strip_whitespace=True)]
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
ReminderOffsets = Annotated[list[Annotated[int, Field(ge=1, le=7 * 24 * 60)]], Field(max_length=5)]


class HouseholdKind(StrEnum):
    COUPLE = "couple"
    FAMILY = "family"


class MemberRole(StrEnum):
    PARTNER = "partner"
    PARENT = "parent"
    CHILD = "child"


class RitualState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    AWAITING_CONSENT = "awaiting_consent"


# ---- commands -----------------------------------------------------------------------------------


@message("scheduler.register_household", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class RegisterHousehold(Contract):
    """Create a household (or change its name and time zone); the envelope's household_id names it."""

    name: Name
    time_zone: IanaZone
    kind: HouseholdKind = HouseholdKind.COUPLE


@message("scheduler.upsert_member", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class UpsertMember(Contract):
    """Add a member to a household, or change their name and role."""

    member_id: UUID
    display_name: Name
    role: MemberRole = MemberRole.PARTNER


class RitualSpec(Contract):
    """What a ritual is: template, who, when (RRULE + local time in the household's zone), and reminders."""

    template: Key
    participants: MemberIds
    rrule: RRule = Field(description="RFC 5545 RRULE without DTSTART, e.g. FREQ=WEEKLY;BYDAY=FR")
    local_time: LocalTime = Field(description="HH:MM in the household's time zone")
    start_date: date
    reminder_offsets_minutes: ReminderOffsets = Field(default_factory=list)
    catch_up_minutes: int = Field(default=60, ge=0, le=24 * 60)
    title: PrivateText | None = None


@message("scheduler.schedule_ritual", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class ScheduleRitual(RitualSpec):
    """Create a ritual for the household. Sensitive templates stay inactive until every participant consents."""

    ritual_id: UUID


@message("scheduler.update_ritual", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class UpdateRitual(Contract):
    """Change some of a ritual's settings; fields left out keep their value."""

    ritual_id: UUID
    participants: MemberIds | None = None
    rrule: RRule | None = None
    local_time: LocalTime | None = None
    start_date: date | None = None
    reminder_offsets_minutes: ReminderOffsets | None = None
    catch_up_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    title: PrivateText | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> UpdateRitual:
        if not self.model_fields_set - {"ritual_id"}:
            raise ValueError("an update must change at least one field")
        return self


class RitualRef(Contract):
    ritual_id: UUID


@message("scheduler.pause_ritual", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class PauseRitual(RitualRef):
    """Stop firing a ritual until it is resumed."""


@message("scheduler.resume_ritual", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class ResumeRitual(RitualRef):
    """Fire a paused ritual again, from the next occurrence on."""


@message("scheduler.delete_ritual", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class DeleteRitual(RitualRef):
    """Remove a ritual for good."""


class ConsentRef(Contract):
    ritual_id: UUID
    member_id: UUID


@message("scheduler.give_consent", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class GiveConsent(ConsentRef):
    """A participant opts in to a sensitive ritual."""


@message("scheduler.withdraw_consent", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class WithdrawConsent(ConsentRef):
    """A participant opts out of a sensitive ritual; it stops at once."""


@message("scheduler.erase_household", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class EraseHousehold(Contract):
    """Delete the household everywhere (each service deletes its own records on HouseholdErased)."""

    requested_by: UUID | None = None


@message("scheduler.revoke_household_credentials", kind="command", topic=Topic.SCHEDULER_COMMANDS)
class RevokeHouseholdCredentials(Contract):
    """Refuse every credential of the household issued until now (household, member); issue new ones after."""

    requested_by: UUID | None = None


# ---- facts --------------------------------------------------------------------------------------


@message("scheduler.household_registered", kind="event", topic=Topic.SCHEDULER_EVENTS)
class HouseholdRegistered(Contract):
    """A household exists (or changed its name or time zone)."""

    name: Name
    time_zone: IanaZone
    kind: HouseholdKind


@message("scheduler.member_upserted", kind="event", topic=Topic.SCHEDULER_EVENTS)
class MemberUpserted(Contract):
    """A member belongs to the household with this name and role."""

    member_id: UUID
    display_name: Name
    role: MemberRole
    time_zone: IanaZone


class RitualFact(Contract):
    ritual_id: UUID
    template: Key
    title: PrivateText
    participants: MemberIds
    rrule: RRule
    local_time: LocalTime
    start_date: date
    time_zone: IanaZone
    reminder_offsets_minutes: ReminderOffsets
    catch_up_minutes: int = Field(ge=0, le=24 * 60)
    sensitive: bool
    state: RitualState
    next_due_at: UtcDatetime | None = None


@message("scheduler.ritual_scheduled", kind="event", topic=Topic.SCHEDULER_EVENTS)
class RitualScheduled(RitualFact):
    """A ritual was created; its full settings and state."""


@message("scheduler.ritual_updated", kind="event", topic=Topic.SCHEDULER_EVENTS)
class RitualUpdated(RitualFact):
    """A ritual's settings changed; its full settings and state after the change."""


@message("scheduler.ritual_paused", kind="event", topic=Topic.SCHEDULER_EVENTS)
class RitualPaused(RitualRef):
    """A ritual stopped firing."""


@message("scheduler.ritual_resumed", kind="event", topic=Topic.SCHEDULER_EVENTS)
class RitualResumed(RitualRef):
    """A ritual fires again."""

    next_due_at: UtcDatetime | None = None


@message("scheduler.ritual_deleted", kind="event", topic=Topic.SCHEDULER_EVENTS)
class RitualDeleted(RitualRef):
    """A ritual was removed."""


@message("scheduler.consent_given", kind="event", topic=Topic.SCHEDULER_EVENTS)
class ConsentGiven(ConsentRef):
    """A participant opted in; `state` says whether the ritual is now active."""

    state: RitualState


@message("scheduler.consent_withdrawn", kind="event", topic=Topic.SCHEDULER_EVENTS)
class ConsentWithdrawn(ConsentRef):
    """A participant opted out; the ritual is awaiting consent again."""

    state: RitualState


@message("scheduler.household_erased", kind="event", topic=Topic.SCHEDULER_EVENTS)
class HouseholdErased(Contract):
    """The household is gone: every service deletes all it holds about it."""

    erased_at: UtcDatetime


@message("scheduler.household_credentials_revoked", kind="event", topic=Topic.SCHEDULER_EVENTS)
class HouseholdCredentialsRevoked(Contract):
    """Every credential of the household issued before `not_before` is refused from now on."""

    not_before: UtcDatetime


@message("scheduler.command_rejected", kind="event", topic=Topic.SCHEDULER_EVENTS)
class SchedulerCommandRejected(Contract):
    """A scheduler command was refused; `reason` says why and what to do."""

    command_event_id: UUID
    command_type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    reason: Reason


# ---- occurrences --------------------------------------------------------------------------------


class OccurrenceFacts(Contract):
    occurrence_id: UUID = Field(description="uuid5 of ritual id and scheduled instant: stable across redelivery")
    ritual_id: UUID
    template: Key
    title: PrivateText
    participants: MemberIds
    scheduled_for: UtcDatetime
    local_time: Annotated[str, StringConstraints(max_length=40)] = Field(
        description="the scheduled instant in the household's zone, ISO 8601 with offset"
    )
    time_zone: IanaZone
    sensitive: bool


@message("ritual.due", kind="event", topic=Topic.RITUAL_OCCURRENCES)
class RitualDue(OccurrenceFacts):
    """An occurrence of a ritual is due now; check-ins are accepted until `deadline`."""

    deadline: UtcDatetime


@message("ritual.reminder", kind="event", topic=Topic.RITUAL_OCCURRENCES)
class RitualReminder(OccurrenceFacts):
    """A heads-up `offset_minutes` before an occurrence (e.g. the day before date night), counted on the
    household's wall clock: the day-before reminder keeps its local time across a clock change."""

    reminder_id: UUID = Field(description="uuid5 of occurrence id and offset")
    offset_minutes: int = Field(ge=1, le=7 * 24 * 60)
    remind_at: UtcDatetime


@message("ritual.occurrence_skipped", kind="event", topic=Topic.RITUAL_OCCURRENCES)
class OccurrenceSkipped(OccurrenceFacts):
    """An occurrence was not fired (found outside its catch-up window after downtime, for example)."""

    reason: Reason
