"""The check-ins rules: pure decisions over plain values (no Kafka, no SQL, no clock of its own).

Rules, in one place:

- A check-in is keyed by (occurrence, member): `checkin_id` is uuid5 of the two, stable everywhere.
- A second submission for the same key: identical content (status, snooze time, closeness, note)
  changes nothing and emits nothing, whatever its event id; a submission made *earlier* than the one
  stored (by its envelope's `occurred_at`) is stale and ignored; otherwise it replaces the stored one
  and a new `CheckInRecorded` is emitted. So the latest answer wins, and redelivery is harmless.
- A submission is refused (nothing recorded, `CheckInCommandRejected`) when the occurrence is unknown
  or belongs to another household, the member is not in the household or not a participant, the
  closeness is outside 1-5, the note is longer than 2,000 characters, or it was made after the deadline.
- A period (the household's local day, or its local Monday-Sunday week) is kept when at least one
  occurrence in it was marked done by anyone. A streak counts consecutive kept periods among those that
  had an occurrence; a period that is still open (a deadline not yet passed) and not yet kept neither
  counts nor breaks it. Periods are taken from the scheduled instant in the household's zone, so a
  check-in after local midnight still counts for the occurrence's own day, and DST changes (23- or
  25-hour days) do not matter.
- An occurrence is missed when its deadline has passed and nobody answered it with done or skipped
  (a snooze alone is not an answer).
- The ratio drops when positive:negative moments over the window fall below 5:1 with at least
  `min_moments` moments; it is reported once per crossing and re-armed when the ratio is back at 5:1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from uuid import UUID

from attune_contracts.messages import (
    CheckInStatus,
    LogMoment,
    MemberUpserted,
    RecordAchievement,
    RitualDue,
    RitualReminder,
    SubmitCheckIn,
)
from attune_contracts.trust import TrustViolation, foreign_member, moved_member

from .measures import (
    ADHERENCE_WEEKS,
    DAY_MILESTONES,
    RATIO_TARGET,
    WEEK_MILESTONES,
    Streak,
    adherence,
    compute_streak,
    is_date_night,
    milestones_crossed,
    period_of,
    ratio_of,
    ratio_transition,
    unit_for,
)
from .model import (
    MAX_NOTE,
    NAMESPACE,
    Achievement,
    CheckIn,
    Household,
    Moment,
    Occurrence,
    Rejected,
    Slot,
    as_utc,
    checkin_id_for,
    derived_id,
    erased_reason,
    local_date_of,
    week_start_of,
)
from .weekly import (
    WeekData,
    choose_focus,
    focus,
    next_summary_at,
    step_for_template,
    summary_slot,
    weekly_summary,
)

# ---- who a message may name ---------------------------------------------------------------------


def named_members(payload: object) -> list[UUID]:
    """The members a message names (whose households `check_members` needs)."""
    if isinstance(payload, SubmitCheckIn | LogMoment | RecordAchievement | MemberUpserted):
        return [payload.member_id]
    if isinstance(payload, RitualDue | RitualReminder):
        return list(payload.participants)
    return []


def check_members(payload: object, household_id: UUID, homes: Mapping[UUID, frozenset[UUID]]) -> None:
    """Kafka is a trust boundary: a message may only name members of its envelope's household, and a
    MemberUpserted never moves a member known in another household. `homes`: the households each named
    member is known in here. TrustViolation: dead-lettered as "rejected" (a command is also answered with
    CheckInCommandRejected)."""
    rule = moved_member if isinstance(payload, MemberUpserted) else foreign_member
    for member_id in named_members(payload):
        elsewhere = sorted(h for h in homes.get(member_id, ()) if h != household_id)
        if elsewhere and (reason := rule(member_id, household_id, elsewhere[0])) is not None:
            raise TrustViolation(reason)


# ---- check-ins ----------------------------------------------------------------------------------


def nul_free(**texts: str | None) -> None:
    """PostgreSQL text cannot hold U+0000 and no person means one: refuse it, by field name, before it is
    stored (on PostgreSQL it would be a DataError deep in a transaction; on SQLite it would be kept)."""
    for name, value in texts.items():
        if value is not None and "\x00" in value:
            raise Rejected(f"{name} must not contain NUL characters (U+0000)")


def validate_checkin(
    *,
    household_id: UUID,
    occurrence: Occurrence | None,
    occurrence_id: UUID,
    member_id: UUID,
    members: frozenset[UUID] | None,
    closeness: int | None,
    note: str | None,
    submitted_at: datetime,
) -> Occurrence:
    """Refuse what cannot be recorded; return the occurrence it belongs to."""
    if closeness is not None and not 1 <= closeness <= 5:
        raise Rejected(f"closeness must be between 1 and 5, got {closeness}")
    if note is not None and len(note) > MAX_NOTE:
        raise Rejected(f"note is {len(note)} characters; the limit is {MAX_NOTE}")
    nul_free(note=note)
    if occurrence is None or occurrence.household_id != household_id:
        raise Rejected(
            f"unknown occurrence {occurrence_id}: no RitualDue for it in this household (wrong id, or not due yet)"
        )
    if members and member_id not in members and member_id not in occurrence.participants:
        raise Rejected(f"member {member_id} is not in this household")
    if member_id not in occurrence.participants:
        raise Rejected(f"member {member_id} is not a participant of this occurrence of '{occurrence.template}'")
    if as_utc(submitted_at) > occurrence.deadline:
        raise Rejected(
            f"the occurrence closed at {occurrence.deadline.isoformat()}; check-ins are accepted until its deadline"
        )
    return occurrence


class Outcome(Enum):
    NEW = "new"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    STALE = "stale"


def decide_submission(existing: CheckIn | None, incoming: CheckIn) -> Outcome:
    if existing is None:
        return Outcome.NEW
    if existing.same_answer(incoming):
        return Outcome.UNCHANGED
    if incoming.submitted_at < existing.submitted_at:
        return Outcome.STALE
    return Outcome.REPLACED


def is_missed(occurrence: Occurrence, statuses: Iterable[CheckInStatus], now: datetime) -> bool:
    answered = any(s in (CheckInStatus.DONE, CheckInStatus.SKIPPED) for s in statuses)
    return occurrence.closed_at is None and occurrence.deadline <= now and not answered


# ---- the timer ----------------------------------------------------------------------------------


def seconds_until_next(now: datetime, candidates: Iterable[datetime | None], max_sleep: float) -> float:
    """How long the timer may sleep: until the earliest upcoming deadline or summary, at most `max_sleep`."""
    upcoming = [c for c in candidates if c is not None]
    if not upcoming:
        return max_sleep
    return max(0.0, min(max_sleep, (min(upcoming) - now).total_seconds()))


# The rules are imported from here (`from . import service as rules`): the values, measures and weekly summary too.
__all__ = [
    "ADHERENCE_WEEKS",
    "DAY_MILESTONES",
    "MAX_NOTE",
    "NAMESPACE",
    "RATIO_TARGET",
    "WEEK_MILESTONES",
    "Achievement",
    "CheckIn",
    "Household",
    "Moment",
    "Occurrence",
    "Outcome",
    "Rejected",
    "Slot",
    "Streak",
    "WeekData",
    "adherence",
    "as_utc",
    "check_members",
    "checkin_id_for",
    "choose_focus",
    "compute_streak",
    "decide_submission",
    "derived_id",
    "erased_reason",
    "focus",
    "is_date_night",
    "is_missed",
    "local_date_of",
    "milestones_crossed",
    "named_members",
    "next_summary_at",
    "nul_free",
    "period_of",
    "ratio_of",
    "ratio_transition",
    "seconds_until_next",
    "step_for_template",
    "summary_slot",
    "unit_for",
    "validate_checkin",
    "week_start_of",
    "weekly_summary",
]
