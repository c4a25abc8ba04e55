"""The weekly summary: its Sunday-evening slot in the household's zone, the week's tallies, and the one
focus it suggests from the article's six steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from attune_contracts.catalog import TEMPLATES
from attune_contracts.content import FOCUS_STEPS
from attune_contracts.messages import (
    MemberRitualTally,
    SuggestedFocus,
    WeeklySummary,
)

from .measures import RATIO_TARGET, adherence, is_date_night, ratio_of
from .model import Moment, Occurrence, as_utc


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
