"""What people did (owned by the check-ins service) and what it adds up to."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from ..registry import message
from ..topics import Topic
from ..types import Contract, Key, Note, PrivateText, Reason, ShortText, UtcDatetime

__all__ = [
    "AchievementRecorded",
    "AfterCareConsentChanged",
    "AfterCareStarted",
    "CheckInCommandRejected",
    "CheckInRecorded",
    "CheckInSource",
    "CheckInStatus",
    "DateNightAdherenceUpdated",
    "DreamShared",
    "DreamSupported",
    "LogMoment",
    "MemberRitualTally",
    "MilestoneReached",
    "MomentKind",
    "MomentLogged",
    "QuestionAnswered",
    "RatioDropped",
    "RecordAchievement",
    "RitualMissed",
    "StreakUnit",
    "StreakUpdated",
    "SubmitCheckIn",
    "SuggestedFocus",
    "WeeklySummary",
]

Rating = Annotated[int, Field(ge=1, le=5)]


class CheckInStatus(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    SNOOZED = "snoozed"


class CheckInSource(StrEnum):
    LINK = "link"
    API = "api"
    EVENT = "event"


class MomentKind(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class StreakUnit(StrEnum):
    DAYS = "days"
    WEEKS = "weeks"


# ---- commands -----------------------------------------------------------------------------------


@message("checkins.submit_checkin", kind="command", topic=Topic.CHECKINS_COMMANDS)
class SubmitCheckIn(Contract):
    """Record what a member did for one occurrence: done, skipped or snoozed until a time."""

    occurrence_id: UUID
    member_id: UUID
    status: CheckInStatus
    snoozed_until: UtcDatetime | None = None
    closeness: Rating | None = None
    note: Note | None = None
    source: CheckInSource = CheckInSource.EVENT

    @model_validator(mode="after")
    def _snooze_needs_time(self) -> SubmitCheckIn:
        if (self.status is CheckInStatus.SNOOZED) != (self.snoozed_until is not None):
            raise ValueError("snoozed_until is required when status is 'snoozed', and only then")
        return self


@message("checkins.log_moment", kind="command", topic=Topic.CHECKINS_COMMANDS)
class LogMoment(Contract):
    """A member logs a positive or negative interaction (the Gottman 5:1 ratio)."""

    moment_id: UUID
    member_id: UUID
    kind: MomentKind
    note: Note | None = None
    happened_at: UtcDatetime | None = None


@message("checkins.record_achievement", kind="command", topic=Topic.CHECKINS_COMMANDS)
class RecordAchievement(Contract):
    """A member records progress on a dream, so their partner can celebrate it."""

    achievement_id: UUID
    member_id: UUID
    dream: PrivateText
    note: Note | None = None


# ---- facts --------------------------------------------------------------------------------------


@message("checkins.checkin_recorded", kind="event", topic=Topic.CHECKINS_EVENTS)
class CheckInRecorded(Contract):
    """A member's check-in for an occurrence was recorded (notes stay private to the check-ins store)."""

    checkin_id: UUID
    occurrence_id: UUID
    ritual_id: UUID
    template: Key
    member_id: UUID
    status: CheckInStatus
    snoozed_until: UtcDatetime | None = None
    closeness: Rating | None = None
    has_note: bool = False
    scheduled_for: UtcDatetime
    recorded_at: UtcDatetime
    source: CheckInSource


@message("checkins.streak_updated", kind="event", topic=Topic.CHECKINS_EVENTS)
class StreakUpdated(Contract):
    """A ritual's streak for the household, counted in the household's local days or weeks."""

    ritual_id: UUID
    template: Key
    length: int = Field(ge=0)
    unit: StreakUnit
    best: int = Field(ge=0)


@message("checkins.milestone_reached", kind="event", topic=Topic.CHECKINS_EVENTS)
class MilestoneReached(Contract):
    """A streak reached a milestone (7, 30, 100 days; 4, 12, 52 weeks)."""

    ritual_id: UUID
    template: Key
    length: int = Field(ge=1)
    unit: StreakUnit


@message("checkins.date_night_adherence_updated", kind="event", topic=Topic.CHECKINS_EVENTS)
class DateNightAdherenceUpdated(Contract):
    """Date nights kept out of those expected in the last four weeks."""

    ritual_id: UUID
    kept: int = Field(ge=0)
    expected: int = Field(ge=0)
    window_weeks: int = Field(default=4, ge=1)


@message("checkins.ritual_missed", kind="event", topic=Topic.CHECKINS_EVENTS)
class RitualMissed(Contract):
    """An occurrence's deadline passed with no check-in from anyone."""

    occurrence_id: UUID
    ritual_id: UUID
    template: Key
    participants: Annotated[list[UUID], Field(min_length=1, max_length=20)]
    scheduled_for: UtcDatetime
    deadline: UtcDatetime
    sensitive: bool = False
    cadence: Literal["daily", "weekly", "other"] | None = Field(
        default=None, description="The ritual's own rhythm, from its RRULE: plainly daily, plainly weekly, or "
        "other (weekdays only, every other week, ...); None: the producer does not say, and a consumer goes by "
        "the template's default rhythm")


@message("checkins.moment_logged", kind="event", topic=Topic.CHECKINS_EVENTS)
class MomentLogged(Contract):
    """A positive or negative moment was logged."""

    moment_id: UUID
    member_id: UUID
    kind: MomentKind
    happened_at: UtcDatetime


@message("checkins.ratio_dropped", kind="event", topic=Topic.CHECKINS_EVENTS)
class RatioDropped(Contract):
    """Positive to negative moments over the window fell below the 5:1 aim."""

    positive: int = Field(ge=0)
    negative: int = Field(ge=1)
    ratio: float = Field(ge=0)
    window_days: int = Field(ge=1)


@message("checkins.achievement_recorded", kind="event", topic=Topic.CHECKINS_EVENTS)
class AchievementRecorded(Contract):
    """A member recorded progress on a dream: a moment for their partner to celebrate."""

    achievement_id: UUID
    member_id: UUID
    dream: PrivateText
    dream_id: UUID | None = Field(default=None, description="The shared dream this reaches (DreamShared), if any.")


@message("checkins.dream_shared", kind="event", topic=Topic.CHECKINS_EVENTS)
class DreamShared(Contract):
    """A member put a dream on the household's dreams board (step 6: invest in each other's dreams)."""

    dream_id: UUID
    member_id: UUID
    dream: PrivateText
    shared_at: UtcDatetime


@message("checkins.dream_supported", kind="event", topic=Topic.CHECKINS_EVENTS)
class DreamSupported(Contract):
    """A member said "I support this" to another member's dream."""

    dream_id: UUID
    owner_id: UUID
    member_id: UUID
    supported_at: UtcDatetime


@message("checkins.aftercare_consent_changed", kind="event", topic=Topic.CHECKINS_EVENTS)
class AfterCareConsentChanged(Contract):
    """A member said yes (or no longer) to the private "we just connected" button (step 4, on demand)."""

    member_id: UUID
    given: bool
    changed_at: UtcDatetime


@message("checkins.aftercare_started", kind="event", topic=Topic.CHECKINS_EVENTS)
class AfterCareStarted(Contract):
    """Two partners who both said yes pressed "we just connected": their after-care (step 4) starts, privately.
    Never turned into a notification: only the two partners' own pages show it."""

    moment_id: UUID
    started_by: UUID
    partner_id: UUID = Field(description="the other partner who said yes")
    started_at: UtcDatetime


@message("checkins.question_answered", kind="event", topic=Topic.CHECKINS_EVENTS)
class QuestionAnswered(Contract):
    """A member answered the day's question of one occurrence. The answer's text stays in check-ins (members
    of the household read it through its API, the partner's only once they have answered themselves)."""

    occurrence_id: UUID
    member_id: UUID
    answered_at: UtcDatetime
    answers: int = Field(ge=1, description="how many of the household's members have answered it so far")


class MemberRitualTally(Contract):
    member_id: UUID
    ritual_id: UUID
    template: Key
    kept: int = Field(ge=0)
    expected: int = Field(ge=0)


class SuggestedFocus(Contract):
    step: int = Field(ge=1, le=6)
    title: ShortText
    text: Annotated[str, StringConstraints(min_length=1, max_length=600)]


@message("checkins.weekly_summary", kind="event", topic=Topic.CHECKINS_EVENTS)
class WeeklySummary(Contract):
    """The household's week: kept vs expected per person and ritual, date nights, ratio, one focus."""

    week_start: date
    week_end: date
    tallies: Annotated[list[MemberRitualTally], Field(max_length=500)]
    date_nights_kept_4w: int = Field(ge=0)
    date_nights_expected_4w: int = Field(ge=0)
    positive_moments: int = Field(ge=0)
    negative_moments: int = Field(ge=0)
    ratio: float | None = None
    focus: SuggestedFocus


@message("checkins.command_rejected", kind="event", topic=Topic.CHECKINS_EVENTS)
class CheckInCommandRejected(Contract):
    """A check-ins command was refused; `reason` says why."""

    command_event_id: UUID
    command_type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    reason: Reason
    member_id: UUID | None = None


