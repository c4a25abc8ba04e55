"""What the check-ins use cases need from the outside world: a unit of work (one transaction, a repository per
aggregate, the events it collected), the clock, and where the relay publishes.

The SQL adapters (adapters/) implement these; tests/checkins/fakes.py implements them in memory and records
what was committed. The application layer imports only this module, never SQLAlchemy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from attune_contracts.messages import CheckInStatus, QuestionAsked

from .events import CausedEvents
from .model import Achievement, Answer, CheckIn, Dream, Household, Moment, Occurrence, Question, Slot


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class OutboxRow(NamedTuple):
    """An event waiting in the outbox: its envelope already serialised, as it will be sent."""

    id: int
    event_id: UUID
    household_id: UUID
    topic: str
    value: bytes
    headers: dict[str, str]


Record = tuple[str, bytes, bytes, Mapping[str, str]]
"""(topic, key, value, headers), as attune_runtime.producer.BatchProducer.send_all takes them"""


class RecordSink(Protocol):
    """Where the relay publishes: the BatchProducer in production; tests pass a fake that records."""

    async def send_all(self, records: Sequence[Record]) -> None: ...


class AlreadyExists(Exception):
    """A write met a row that another transaction wrote meanwhile (the same check-in from two paths at once).
    Nothing of the unit of work was kept; doing it again reads that row and decides with it."""


class Households(Protocol):
    """Households, their members and time zones, credential revocations, erasure and its tombstones."""

    async def household(self, household_id: UUID) -> Household | None: ...

    async def put_household(self, household_id: UUID, time_zone: str, now: datetime, *, overwrite: bool = True) -> None: ...

    async def add_member(self, household_id: UUID, member_id: UUID) -> None: ...

    async def members_of(self, household_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]: ...

    async def homes_of(self, member_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        """The households each member is known in here."""

    async def all_households(self) -> list[tuple[UUID, str]]: ...

    async def erased_at(self, household_id: UUID) -> datetime | None: ...

    async def erased_many(self, household_ids: Iterable[UUID]) -> dict[UUID, datetime]: ...

    async def erase(self, household_id: UUID, erased_at: datetime) -> dict[str, int]: ...

    async def count_household_rows(self, household_id: UUID) -> int: ...

    async def revoke_credentials(self, household_id: UUID, not_before: datetime) -> None:
        """Refuse the household's credentials issued before `not_before` (never moves back)."""

    async def credentials_not_before(self, household_id: UUID) -> datetime | None: ...


class ProcessedEvents(Protocol):
    """Event ids already applied: a redelivered message changes nothing."""

    async def claim_event(self, event_id: UUID, household_id: UUID | None, now: datetime) -> bool:
        """True the first time an event id is seen (and remembers it); False on a redelivery."""

    async def claim_events(self, events: list[tuple[UUID, UUID]], now: datetime) -> set[UUID]:
        """Remember many event ids at once; returns those seen for the first time."""


class Occurrences(Protocol):
    """Expected occurrences (from RitualDue), announced ones (from RitualReminder), and what the timer closes."""

    async def add_occurrence(self, occ: Occurrence) -> bool: ...

    async def announce(self, occ: Occurrence) -> bool:
        """Remember an occurrence a reminder announced (no deadline yet: only its RitualDue sets one)."""

    async def announced(self, occurrence_id: UUID) -> Occurrence | None:
        """An occurrence known only from its reminder (its deadline is its scheduled time, a placeholder)."""

    async def forget_announced(self, occurrence_id: UUID | None = None, *, before: datetime | None = None) -> int:
        """Drop an announcement (its RitualDue came), or every one scheduled before `before` (never due)."""

    async def occurrence(self, occurrence_id: UUID) -> Occurrence | None: ...

    async def occurrences_by_id(self, ids: Iterable[UUID]) -> dict[UUID, Occurrence]: ...

    async def household_occurrences(self, household_id: UUID, start: date, end: date) -> list[Occurrence]: ...

    async def done_by(self, occurrence_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]: ...

    async def overdue(self, now: datetime, limit: int = 500) -> list[Occurrence]:
        """Occurrences past their deadline, not yet reported missed, with no done/skipped answer."""

    async def answered_unclaimed(self, now: datetime, limit: int = 500) -> list[UUID]:
        """Past-deadline occurrences that were answered: closed quietly so the timer stops looking at them."""

    async def close_occurrence(self, occurrence_id: UUID, now: datetime, *, missed: bool) -> bool:
        """Mark a past-deadline occurrence as handled by the timer; False if another instance got there first."""

    async def next_deadline(self) -> datetime | None: ...

    async def occurrence_statuses(self, occurrence_id: UUID) -> list[CheckInStatus]: ...


class CheckIns(Protocol):
    """Check-ins, one per (occurrence, member); notes sealed with the notes keyring."""

    async def checkin(self, occurrence_id: UUID, member_id: UUID) -> CheckIn | None: ...

    async def checkins_for(self, pairs: set[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], CheckIn]: ...

    async def put_checkin(self, ci: CheckIn, *, replace: bool) -> None: ...

    async def put_checkins(self, new: list[CheckIn], replaced: list[CheckIn]) -> None: ...

    async def history(self, household_id: UUID, *, offset: int, limit: int) -> tuple[list[CheckIn], int]: ...


class Rituals(Protocol):
    """Rituals (their rule), the history streaks are counted from, stored streaks and milestones."""

    async def put_ritual(self, ritual_id: UUID, household_id: UUID, template: str, rrule: str | None) -> None: ...

    async def delete_ritual(self, ritual_id: UUID) -> None: ...

    async def ritual_rrule(self, ritual_id: UUID) -> str | None: ...

    async def ritual_states(self, ritual_ids: Iterable[UUID]) -> tuple[
            dict[UUID, str | None], dict[UUID, tuple[int, int, int | None, int | None]]]:
        """Each ritual's RRULE and stored streak (length, best, adherence kept, expected), in one round trip."""

    async def ritual_histories(self, ritual_ids: Iterable[UUID], since: date) -> dict[UUID, list[tuple[Slot, bool]]]:
        """Each ritual's occurrences from local date `since` (only what streaks need), with whether anyone
        marked each one done."""

    async def first_dates(self, ritual_ids: Iterable[UUID]) -> dict[UUID, date]:
        """Each ritual's earliest occurrence's local date (the index on ritual and date answers it)."""

    async def put_streaks(self, rows: list[dict[str, Any]]) -> None:
        """Upsert many streak rows in one statement; a row without adherence keeps the stored one."""

    async def household_streaks(self, household_id: UUID) -> list[dict[str, Any]]: ...

    async def claim_milestones(self, marks: list[tuple[UUID, UUID, date, int]], now: datetime) -> set[tuple[UUID, date, int]]:
        """Record (ritual, household, run start, length) milestones; the ones not recorded before, in one statement."""


class Moments(Protocol):
    """Moments and the 5:1 ratio state."""

    async def add_moment(self, m: Moment) -> bool: ...

    async def moment_counts(self, household_id: UUID, start: datetime, end: datetime) -> tuple[int, int]: ...

    async def moments(self, household_id: UUID, start: datetime | None = None,
                      end: datetime | None = None) -> list[Moment]: ...

    async def ratio_below(self, household_id: UUID) -> bool: ...

    async def set_ratio_below(self, household_id: UUID, below: bool) -> None: ...


class Achievements(Protocol):
    """Achievements (dreams realised); dream and note sealed."""

    async def add_achievement(self, a: Achievement) -> bool: ...

    async def achievements(self, household_id: UUID, since: datetime | None = None) -> list[Achievement]: ...


class Dreams(Protocol):
    """The dreams board: dreams (words and note sealed), who supports each, and when its owner reached it."""

    async def add_dream(self, dream: Dream) -> bool:
        """False when this dream id is already stored (a retry)."""

    async def dream(self, dream_id: UUID, household_id: UUID) -> Dream | None: ...

    async def all(self, household_id: UUID) -> tuple[list[Dream], list[tuple[UUID, UUID, datetime]]]:
        """The household's dreams, oldest first, and its supports (dream, member, when): its export."""

    async def support(self, dream_id: UUID, household_id: UUID, member_id: UUID, now: datetime) -> bool:
        """False when this member already supports it."""

    async def reach(self, dream_id: UUID, now: datetime) -> bool:
        """Mark it reached; False when it already was."""


class AfterCare(Protocol):
    """'We just connected': who said yes to it, and each after-care started."""

    async def consented(self, household_id: UUID) -> set[UUID]: ...

    async def moments(self, household_id: UUID) -> list[tuple[UUID, UUID, datetime]]:
        """Each after-care started (moment, started by, when), oldest first: its export."""

    async def set_consent(self, household_id: UUID, member_id: UUID, given: bool, now: datetime) -> bool:
        """True when it changed."""

    async def start(self, moment_id: UUID, household_id: UUID, member_id: UUID, now: datetime) -> bool:
        """False when this moment id is already stored (a retry)."""


class Questions(Protocol):
    """The day's question each occurrence asked, and each member's answer (sealed like a note)."""

    async def put_question(self, household_id: UUID, asked: QuestionAsked) -> None:
        """Remember an occurrence's question; its first QuestionAsked stays (a redelivery changes nothing)."""

    async def question(self, occurrence_id: UUID) -> Question | None: ...

    async def answers(self, occurrence_id: UUID) -> dict[UUID, Answer]: ...

    async def add_answer(self, household_id: UUID, occurrence_id: UUID, answer: Answer) -> bool:
        """Store a member's answer; False when they had already answered (their first answer stays)."""


class Summaries(Protocol):
    """Which weekly summaries were sent."""

    async def summary_sent(self, household_id: UUID, week_start: date) -> bool: ...

    async def claim_summary(self, household_id: UUID, week_start: date, now: datetime) -> bool: ...


class Links(Protocol):
    """Used one-tap tokens and SMS short links."""

    async def use_token(self, token_id: UUID, household_id: UUID, checkin_id: UUID | None, now: datetime,
                        expires_at: datetime) -> bool: ...

    async def token_used_at(self, token_id: UUID) -> datetime | None: ...

    async def put_short_link(self, code_id: str, household_id: UUID, sealed_token: str, expires_at: datetime) -> None: ...

    async def short_link(self, code_id: str) -> tuple[UUID, str, datetime] | None:
        """(household, sealed token, expiry) of a short link's code, by the code's hash."""

    async def forget_short_links(self, expired_before: datetime) -> int: ...


class OutboxTable(Protocol):
    """The outbox table, written in the transaction that decided its events."""

    async def add(self, rows: list[dict[str, Any]]) -> None:
        """Write events to the outbox, to be published once this transaction has committed. Call once per
        transaction, at its end: on PostgreSQL it locks the households' shards (ascending, so two writers
        never wait for each other in a cycle) until the commit, which keeps each household's ids in commit
        order. An event id already waiting is not written twice."""


class UnitOfWork(Protocol):
    """One transaction: the repositories read and write in it; `collect` keeps the events it decided, and
    `commit` keeps both (events go to the outbox table in the same transaction). Leaving the `async with`
    without an error commits too; an error rolls everything back, events included."""

    households: Households
    processed: ProcessedEvents
    occurrences: Occurrences
    checkins: CheckIns
    rituals: Rituals
    moments: Moments
    achievements: Achievements
    dreams: Dreams
    aftercare: AfterCare
    questions: Questions
    summaries: Summaries
    links: Links
    outbox: OutboxTable
    collected: list[CausedEvents]

    def collect(self, *events: CausedEvents) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Starts a unit of work: `async with uow_factory() as uow: ...`."""

    def __call__(self) -> AbstractAsyncContextManager[UnitOfWork]: ...
