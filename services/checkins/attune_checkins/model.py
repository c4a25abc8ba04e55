"""The check-ins values (occurrences, check-ins, moments, achievements, households), their ids and
the household's local calendar: plain data, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from attune_contracts.messages import (
    CheckInSource,
    CheckInStatus,
)

NAMESPACE = UUID("6f1f6a0e-3b52-4d7a-9d6e-2f0c1b7a4c11")
MAX_NOTE = 2000


_NAMESPACE_SHA1 = hashlib.sha1(NAMESPACE.bytes, usedforsecurity=False)


def derived_id(*parts: object) -> UUID:
    """Deterministic ids: the same cause always yields the same id (check-ins, events we publish).

    uuid5(NAMESPACE, "part:part:..."), with the namespace's share of the SHA-1 computed once."""
    digest = _NAMESPACE_SHA1.copy()
    digest.update(":".join(map(str, parts)).encode())
    return UUID(bytes=digest.digest()[:16], version=5)


def checkin_id_for(occurrence_id: UUID, member_id: UUID) -> UUID:
    return derived_id("checkin", occurrence_id, member_id)


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Occurrence:
    occurrence_id: UUID
    household_id: UUID
    ritual_id: UUID
    template: str
    title: str
    participants: tuple[UUID, ...]
    scheduled_for: datetime
    deadline: datetime
    time_zone: str
    sensitive: bool = False
    closed_at: datetime | None = None  # when the timer handled its deadline
    missed: bool = False
    # Known only from its RitualReminder: not due yet, nothing can be recorded for it (`deadline` is a placeholder).
    announced: bool = False

    @property
    def local_date(self) -> date:
        return local_date_of(self.scheduled_for, self.time_zone)


@dataclass(frozen=True, slots=True)
class Slot:
    """What streaks and adherence need of an occurrence (an Occurrence has the same attributes)."""

    local_date: date
    scheduled_for: datetime
    deadline: datetime


@dataclass(frozen=True)
class CheckIn:
    checkin_id: UUID
    occurrence_id: UUID
    member_id: UUID
    household_id: UUID
    ritual_id: UUID
    template: str
    status: CheckInStatus
    snoozed_until: datetime | None
    closeness: int | None
    note: str | None
    source: CheckInSource
    submitted_at: datetime
    recorded_at: datetime
    scheduled_for: datetime

    def same_answer(self, other: CheckIn) -> bool:
        return (self.status, self.snoozed_until, self.closeness, self.note) == (
            other.status, other.snoozed_until, other.closeness, other.note,
        )


@dataclass(frozen=True)
class Moment:
    moment_id: UUID
    household_id: UUID
    member_id: UUID
    kind: str
    note: str | None
    happened_at: datetime
    recorded_at: datetime


@dataclass(frozen=True)
class Achievement:
    achievement_id: UUID
    household_id: UUID
    member_id: UUID
    dream: str
    note: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class Dream:
    """A dream on the dreams board (dreams.py); its words and note are sealed at rest."""

    dream_id: UUID
    household_id: UUID
    member_id: UUID
    dream: str
    note: str | None
    shared_at: datetime
    reached_at: datetime | None = None


@dataclass(frozen=True)
class Question:
    """The day's question an occurrence asked (QuestionAsked: a catalog key; questions.py)."""

    occurrence_id: UUID
    household_id: UUID
    ritual_id: UUID
    template: str
    bank: str
    question_key: str
    depth: str | None
    scheduled_for: datetime


@dataclass(frozen=True)
class Answer:
    """A member's answer to an occurrence's question; sealed at rest like a note."""

    member_id: UUID
    text: str
    answered_at: datetime


@dataclass(frozen=True)
class Household:
    household_id: UUID
    time_zone: str
    members: frozenset[UUID] = field(default_factory=frozenset)


class Rejected(Exception):
    """A command that cannot be applied; `reason` is for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def erased_reason(erased_at: datetime) -> str:
    """Why anything for an erased household is refused (a replayed or late command or event)."""
    return (f"this household was erased on {erased_at.date().isoformat()} and stays erased; nothing of it is "
            "recorded again (a replayed or late message is refused)")


def local_date_of(instant: datetime, zone: str) -> date:
    return as_utc(instant).astimezone(ZoneInfo(zone)).date()


def week_start_of(day: date) -> date:
    return day - timedelta(days=day.weekday())
