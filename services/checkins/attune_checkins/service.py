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

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from uuid import UUID
from zoneinfo import ZoneInfo

from attune_contracts.catalog import TEMPLATES
from attune_contracts.content import FOCUS_STEPS
from attune_contracts.messages import (
    CheckInSource,
    CheckInStatus,
    LogMoment,
    MemberRitualTally,
    MemberUpserted,
    RecordAchievement,
    RitualDue,
    RitualReminder,
    StreakUnit,
    SubmitCheckIn,
    SuggestedFocus,
    WeeklySummary,
)
from attune_contracts.trust import TrustViolation, foreign_member, moved_member

NAMESPACE = UUID("6f1f6a0e-3b52-4d7a-9d6e-2f0c1b7a4c11")
MAX_NOTE = 2000
DAY_MILESTONES = (7, 30, 100)
WEEK_MILESTONES = (4, 12, 52)
RATIO_TARGET = 5.0
ADHERENCE_WEEKS = 4


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


# ---- values -------------------------------------------------------------------------------------


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


# ---- local time ---------------------------------------------------------------------------------


def local_date_of(instant: datetime, zone: str) -> date:
    return as_utc(instant).astimezone(ZoneInfo(zone)).date()


def week_start_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def period_of(day: date, unit: StreakUnit) -> date:
    return day if unit is StreakUnit.DAYS else week_start_of(day)


def unit_for(rrule: str | None, template: str) -> StreakUnit:
    """Rituals on several days a week count in days (a weekday-only ritual skips weekends, which have no
    occurrence); weekly or rarer ones count in weeks. Without an RRULE, the template's default rhythm decides."""
    if not rrule:
        known = TEMPLATES.get(template)
        rrule = known.rhythm.rrule if known is not None and known.rhythm is not None else None
    if rrule:
        parts = dict(p.split("=", 1) for p in rrule.upper().split(";") if "=" in p)
        freq = parts.get("FREQ", "")
        if freq in ("DAILY", "HOURLY", "MINUTELY"):
            return StreakUnit.DAYS
        if freq == "WEEKLY" and len([d for d in parts.get("BYDAY", "").split(",") if d]) > 1:
            return StreakUnit.DAYS
        if freq in ("WEEKLY", "MONTHLY", "YEARLY"):
            return StreakUnit.WEEKS
    weekly_words = ("date", "experiment", "dream", "invest")
    return StreakUnit.WEEKS if any(w in template for w in weekly_words) else StreakUnit.DAYS


def is_date_night(template: str) -> bool:
    return "date" in template and "night" in template


# ---- streaks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Streak:
    length: int
    best: int
    run_start: date | None


def compute_streak(
    occurrences: Iterable[tuple[Occurrence | Slot, bool]], unit: StreakUnit, now: datetime
) -> Streak:
    """`occurrences` pairs each occurrence with whether anyone marked it done."""
    periods: dict[date, list[bool]] = {}
    for occurrence, kept in occurrences:
        key = period_of(occurrence.local_date, unit)
        state = periods.setdefault(key, [False, False])
        state[0] |= kept
        state[1] |= occurrence.deadline > now
    run, best, run_start = 0, 0, None
    for key in sorted(periods):
        kept, still_open = periods[key]
        if kept:
            run += 1
            if run == 1:
                run_start = key
            best = max(best, run)
        elif not still_open:
            run, run_start = 0, None
    return Streak(run, best, run_start)


def milestones_crossed(before: int, after: int, unit: StreakUnit) -> list[int]:
    marks = DAY_MILESTONES if unit is StreakUnit.DAYS else WEEK_MILESTONES
    return [m for m in marks if before < m <= after]


def adherence(
    occurrences: Iterable[tuple[Occurrence | Slot, bool]], *, window_end: date, now: datetime, weeks: int = ADHERENCE_WEEKS
) -> tuple[int, int]:
    """(kept, expected) over the `weeks` * 7 local days ending on `window_end`.

    An occurrence still open and not yet kept is not expected yet: it cannot count against anyone.
    """
    window_start = window_end - timedelta(days=7 * weeks - 1)
    kept = expected = 0
    for occurrence, done in occurrences:
        if not window_start <= occurrence.local_date <= window_end or occurrence.scheduled_for > now:
            continue
        if done:
            kept += 1
            expected += 1
        elif occurrence.deadline <= now:
            expected += 1
    return kept, expected


# ---- the 5:1 ratio ------------------------------------------------------------------------------


def ratio_of(positive: int, negative: int) -> float | None:
    return None if negative == 0 else round(positive / negative, 3)


def ratio_transition(positive: int, negative: int, *, was_below: bool, min_moments: int) -> tuple[bool, bool]:
    """(below now, report a drop now). Reported once per crossing below 5:1."""
    if negative == 0 or positive / negative >= RATIO_TARGET:
        return False, False
    if positive + negative < min_moments:
        return was_below, False
    return True, not was_below


# ---- weekly summary -----------------------------------------------------------------------------


def summary_slot(now: datetime, zone: str, hour: int) -> tuple[date, datetime]:
    """The latest Sunday `hour`:00 local at or before `now`: (its week's Monday, the instant in UTC)."""
    tz = ZoneInfo(zone)
    local_today = as_utc(now).astimezone(tz).date()
    sunday = local_today + timedelta(days=6 - local_today.weekday())
    for candidate in (sunday, sunday - timedelta(days=7)):
        at = datetime.combine(candidate, time(hour), tzinfo=tz).astimezone(UTC)
        if at <= now:
            return candidate - timedelta(days=6), at
    raise AssertionError("unreachable: last week's slot is always in the past")


def next_summary_at(now: datetime, zone: str, hour: int) -> datetime:
    _, last = summary_slot(now, zone, hour)
    local_last = last.astimezone(ZoneInfo(zone))
    nxt = datetime.combine(local_last.date() + timedelta(days=7), time(hour), tzinfo=ZoneInfo(zone))
    return nxt.astimezone(UTC)


# The focus of each of the article's steps (title, text): words from the one content catalog, where the
# notifier also finds them to translate.
STEPS: dict[int, tuple[str, str]] = FOCUS_STEPS

_STEP_WORDS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, ("attun", "feeling", "listen")),
    (2, ("date", "kiss")),
    (3, ("experiment", "new")),
    (4, ("after", "cuddle", "connected")),
    (5, ("curio", "question")),
    (6, ("dream", "achiev")),
)


def step_for_template(template: str) -> int | None:
    known = TEMPLATES.get(template)
    if known is not None and known.step[:1].isdigit():
        return int(known.step[:1])
    for step, words in _STEP_WORDS:
        if any(w in template for w in words):
            return step
    return None


def focus(step: int) -> SuggestedFocus:
    title, text = STEPS[step]
    return SuggestedFocus(step=step, title=title, text=text)


def choose_focus(
    *,
    tallies: Sequence[MemberRitualTally],
    date_nights_kept: int,
    date_nights_expected: int,
    positive: int,
    negative: int,
    achievements_4w: int,
) -> SuggestedFocus:
    """One step to work on: the ratio first, then date nights, then the weakest ritual, then dreams."""
    if negative and positive / negative < RATIO_TARGET:
        return focus(1)
    if date_nights_expected == 0 or date_nights_kept < date_nights_expected:
        return focus(2)
    by_template: dict[str, list[int]] = {}
    for tally in tallies:
        pair = by_template.setdefault(tally.template, [0, 0])
        pair[0] += tally.kept
        pair[1] += tally.expected
    weakest = sorted(
        ((kept / expected, template) for template, (kept, expected) in by_template.items() if expected and kept < expected),
    )
    for _, template in weakest:
        step = step_for_template(template)
        if step is not None:
            return focus(step)
    if achievements_4w == 0:
        return focus(6)
    return focus(5)


@dataclass(frozen=True)
class WeekData:
    """What a weekly summary is computed from, all for one household."""

    occurrences: Sequence[Occurrence]  # the week's and the 3 weeks before (date nights)
    done_by: dict[UUID, frozenset[UUID]]  # occurrence id -> members who marked it done
    moments: Sequence[Moment]  # the week's
    achievements_4w: int


def weekly_summary(week_start: date, data: WeekData, now: datetime) -> WeeklySummary:
    week_end = week_start + timedelta(days=6)
    tallies: dict[tuple[UUID, UUID], list] = {}
    date_nights: list[tuple[Occurrence, bool]] = []
    for occurrence in data.occurrences:
        done = data.done_by.get(occurrence.occurrence_id, frozenset())
        if is_date_night(occurrence.template):
            date_nights.append((occurrence, bool(done)))
        if not week_start <= occurrence.local_date <= week_end:
            continue
        for member in occurrence.participants:
            entry = tallies.setdefault((member, occurrence.ritual_id), [occurrence.template, 0, 0])
            entry[2] += 1
            entry[1] += member in done
    tally_list = [
        MemberRitualTally(member_id=member, ritual_id=ritual, template=t, kept=kept, expected=expected)
        for (member, ritual), (t, kept, expected) in sorted(tallies.items(), key=lambda i: (str(i[0][0]), i[1][0], str(i[0][1])))
    ]
    dn_kept, dn_expected = adherence(date_nights, window_end=week_end, now=now)
    positive = sum(1 for m in data.moments if m.kind == "positive")
    negative = sum(1 for m in data.moments if m.kind == "negative")
    return WeeklySummary(
        week_start=week_start,
        week_end=week_end,
        tallies=tally_list[:500],
        date_nights_kept_4w=dn_kept,
        date_nights_expected_4w=dn_expected,
        positive_moments=positive,
        negative_moments=negative,
        ratio=ratio_of(positive, negative),
        focus=choose_focus(
            tallies=tally_list, date_nights_kept=dn_kept, date_nights_expected=dn_expected,
            positive=positive, negative=negative, achievements_4w=data.achievements_4w,
        ),
    )


# ---- the timer ----------------------------------------------------------------------------------


def seconds_until_next(now: datetime, candidates: Iterable[datetime | None], max_sleep: float) -> float:
    """How long the timer may sleep: until the earliest upcoming deadline or summary, at most `max_sleep`."""
    upcoming = [c for c in candidates if c is not None]
    if not upcoming:
        return max_sleep
    return max(0.0, min(max_sleep, (min(upcoming) - now).total_seconds()))
