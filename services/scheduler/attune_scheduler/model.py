"""The scheduler's domain records: the household aggregate (household, members, rituals), what a command
changes (`Outcome`), what a ritual emits when it wakes (`WakeResult`) and the messages the outbox holds.

Plain data, no I/O: the rules (decisions.py, waking.py) read and return them, the repositories store them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from attune_contracts.catalog import TEMPLATES
from attune_contracts.messages import (
    HouseholdKind,
    MemberRole,
    OccurrenceSkipped,
    RitualDue,
    RitualReminder,
    RitualState,
)
from attune_contracts.types import Contract

from .recurrence import Recurrence


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Household:
    id: uuid.UUID
    name: str
    time_zone: str
    kind: HouseholdKind


@dataclass
class Member:
    member_id: uuid.UUID
    display_name: str
    role: MemberRole


@dataclass
class Ritual:
    id: uuid.UUID
    household_id: uuid.UUID
    template: str
    title: str | None
    participants: list[uuid.UUID]
    rrule: str
    local_time: str
    start_date: date
    time_zone: str
    reminder_offsets: list[int]
    catch_up_minutes: int
    sensitive: bool
    paused: bool = False
    consents: list[uuid.UUID] = field(default_factory=list)
    next_due_at: datetime | None = None
    next_reminder_at: datetime | None = None
    reminder_cursor: datetime | None = None

    @property
    def state(self) -> RitualState:
        if self.paused:
            return RitualState.PAUSED
        if self.sensitive and not self.all_consented:
            return RitualState.AWAITING_CONSENT
        return RitualState.ACTIVE

    @property
    def all_consented(self) -> bool:
        return set(self.participants) <= set(self.consents)

    @property
    def wake_at(self) -> datetime | None:
        times = [t for t in (self.next_due_at, self.next_reminder_at) if t is not None]
        return min(times) if times and self.state is RitualState.ACTIVE else None

    @property
    def display_title(self) -> str:
        return self.title or TEMPLATES[self.template].title

    def recurrence(self) -> Recurrence:
        return Recurrence.of(self.rrule, self.local_time, self.start_date, self.time_zone)


@dataclass
class HouseholdView:
    """What `decide` sees: the household (None if not registered), its members and its rituals."""

    id: uuid.UUID
    household: Household | None
    members: dict[uuid.UUID, Member] = field(default_factory=dict)
    rituals: dict[uuid.UUID, Ritual] = field(default_factory=dict)
    erased_at: datetime | None = None
    """Set once the household was erased: its tombstone, which no later command can lift."""
    elsewhere: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    """Members the command names that belong to ANOTHER household: member id -> that household."""


@dataclass
class Outcome:
    """What to write and publish, in one transaction."""

    facts: list[Contract] = field(default_factory=list)
    household: Household | None = None
    members: list[Member] = field(default_factory=list)
    rituals: list[Ritual] = field(default_factory=list)
    deleted_rituals: list[uuid.UUID] = field(default_factory=list)
    erase: bool = False
    rejected: str | None = None
    credentials_not_before: datetime | None = None
    """The household's credentials issued before this are refused (kept for the scheduler's own HTTP API)."""


@dataclass(frozen=True)
class Emitted:
    """One outgoing occurrence event, with what the outbox and the metrics need to know about it."""

    payload: RitualDue | RitualReminder | OccurrenceSkipped
    event_id: uuid.UUID
    at: datetime
    """The instant it was scheduled for (the occurrence, or the reminder time)."""
    skip_reason: str | None = None
    """A bounded reason code for metrics when it was skipped."""
    publish_at: datetime | None = None
    """Not before this instant (events written ahead of time); None: at once."""


@dataclass
class WakeResult:
    emitted: list[Emitted] = field(default_factory=list)
    stale_reminders: int = 0


@dataclass
class FireReport:
    """What one firing batch did: for the metrics and the log."""

    claimed: int = 0
    emitted: list[Emitted] = field(default_factory=list)
    templates: dict[uuid.UUID, str] = field(default_factory=dict)
    stale_reminders: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to publish, as the outbox stores it: its envelope already serialised, and what the relay
    needs to know about it without parsing (the template and instant for metrics, when to publish it, the
    catch-up window that turns it into OccurrenceSkipped when it is found too late)."""

    event_id: uuid.UUID
    household_id: uuid.UUID
    topic: str
    event_type: str
    body: str
    headers: dict[str, str]
    publish_at: datetime
    template: str | None = None
    due_at: datetime | None = None
    ritual_id: uuid.UUID | None = None
    catch_up_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outgoing message, as the relay reads it from the outbox."""

    id: int
    event_id: uuid.UUID
    topic: str
    key: bytes
    value: bytes
    headers: dict[str, str]
    event_type: str
    template: str | None
    due_at: datetime | None
    household_id: uuid.UUID | None = None
    catch_up_minutes: int | None = None
    publish_at: datetime | None = None
