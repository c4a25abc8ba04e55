"""The notifier's decisions: who hears about an event, in which words, on which channel, and when.

No Kafka, no SQL, no Apprise here: every function takes what it needs and returns a decision.
"""

from __future__ import annotations

import functools
import html
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from attune_contracts import Envelope
from attune_contracts import content as catalog_words
from attune_contracts.catalog import parent_asks
from attune_contracts.links import LinkAction
from attune_contracts.messages import (
    AchievementRecorded,
    ChannelKind,
    CheckInRecorded,
    CheckInStatus,
    HouseholdErased,
    MemberUpserted,
    MilestoneReached,
    NotificationRequested,
    RatioDropped,
    RitualDue,
    RitualMissed,
    RitualReminder,
    WeeklySummary,
)
from attune_contracts.trust import TrustViolation, foreign_member, moved_member
from attune_runtime.retry import Backoff

from . import content
from .links import ActionLinks

NOTIFICATION_NAMESPACE = UUID("6f1d7a52-3c39-4b4e-9d0a-7b3f0c2a9e11")


class Purpose(StrEnum):
    RITUAL_DUE = "ritual_due"
    RITUAL_REMINDER = "ritual_reminder"
    SNOOZED_REMINDER = "snoozed_reminder"
    PARTNER_CHECKIN = "partner_checkin"
    MISSED_NUDGE = "missed_nudge"
    MILESTONE = "milestone"
    RATIO_DROPPED = "ratio_dropped"
    ACHIEVEMENT = "achievement"
    WEEKLY_SUMMARY = "weekly_summary"


# Purposes a check-in makes pointless while they still wait to be sent.
OCCURRENCE_PURPOSES = (Purpose.RITUAL_DUE.value, Purpose.RITUAL_REMINDER.value, Purpose.SNOOZED_REMINDER.value)
SNOOZE_RELEVANCE = timedelta(hours=2)

DEFAULT_KINDS: dict[str, tuple[ChannelKind, ...]] = {
    Purpose.WEEKLY_SUMMARY.value: (ChannelKind.EMAIL, ChannelKind.PUSH),
}

RELEVANCE = {
    Purpose.PARTNER_CHECKIN: timedelta(hours=12),
    Purpose.MISSED_NUDGE: timedelta(hours=12),
    Purpose.MILESTONE: timedelta(days=3),
    Purpose.RATIO_DROPPED: timedelta(days=3),
    Purpose.ACHIEVEMENT: timedelta(days=3),
    Purpose.WEEKLY_SUMMARY: timedelta(days=7),
}


def notification_id(cause: UUID | str, member_id: UUID, purpose: str) -> UUID:
    """The de-duplication key: the same cause, person and purpose always give the same id."""
    return uuid.uuid5(NOTIFICATION_NAMESPACE, f"{cause}|{member_id}|{purpose}")


# ---- people and their preferences ---------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    """A daily window in the member's zone; `start > end` means it spans midnight (22:00-07:00)."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def opens_after(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """When the window next ends (UTC), if `now` is inside it; None otherwise."""
        local = now.astimezone(zone)
        if not self.contains(local.time().replace(tzinfo=None)):
            return None
        day = local.date()
        if local.time().replace(tzinfo=None) >= self.end:
            day += timedelta(days=1)
        # Wall-clock arithmetic in the zone: across a DST change "07:00" stays 07:00 local.
        return datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> QuietHours | None:
        if not start or not end:
            return None
        return cls(time.fromisoformat(start), time.fromisoformat(end))


@dataclass(frozen=True)
class Recipient:
    member_id: UUID
    household_id: UUID
    display_name: str
    time_zone: str = "UTC"
    role: str = "partner"
    quiet_hours: QuietHours | None = None
    discreet: bool = False
    daily_cap: int = 12
    categories: Mapping[str, tuple[ChannelKind, ...]] = field(default_factory=dict)
    locale: str = catalog_words.DEFAULT_LOCALE
    """The member's language and clock (a delivery preference; see attune_contracts.content)."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def kinds_for(self, category: str, purpose: str) -> tuple[ChannelKind, ...] | None:
        """Channel kinds allowed for a category (None: every channel, in the member's order)."""
        for key in (category, purpose, "*"):
            if key in self.categories:
                return tuple(self.categories[key])
        return DEFAULT_KINDS.get(purpose)


@dataclass(frozen=True)
class ChannelRef:
    channel_id: UUID
    kind: ChannelKind
    position: int


def route(recipient: Recipient, channels: Sequence[ChannelRef], *, category: str, purpose: str) -> list[ChannelRef]:
    """The channels to try, in order: the member's order, filtered (and ordered) by category preference."""
    ordered = sorted(channels, key=lambda c: (c.position, str(c.channel_id)))
    kinds = recipient.kinds_for(category, purpose)
    if kinds is None:
        return ordered
    rank = {kind: i for i, kind in enumerate(kinds)}
    return sorted((c for c in ordered if c.kind in rank), key=lambda c: (rank[c.kind], c.position))


# ---- what an event asks for ---------------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """One notification to one member, planned from one event."""

    notification_id: UUID
    household_id: UUID
    member_id: UUID
    cause_event_id: UUID
    cause_type: str
    purpose: str
    category: str
    template: str
    params: dict[str, Any]
    sensitive: bool
    occurred_at: datetime
    not_before: datetime
    expires_at: datetime | None
    occurrence_id: UUID | None = None
    ritual_id: UUID | None = None


@dataclass
class Plan:
    intents: list[Intent] = field(default_factory=list)
    suppress_occurrence: UUID | None = None
    erase_household: bool = False
    member: MemberUpserted | None = None
    ignored: str | None = None


def _intent(env: Envelope[Any], member_id: UUID, purpose: str, *, template: str, params: dict[str, Any],
            category: str, sensitive: bool = False, expires_at: datetime | None = None,
            not_before: datetime | None = None, occurrence_id: UUID | None = None,
            ritual_id: UUID | None = None, dedupe_cause: str | None = None) -> Intent:
    return Intent(
        notification_id=notification_id(dedupe_cause or env.event_id, member_id, purpose),
        household_id=env.household_id, member_id=member_id, cause_event_id=env.event_id, cause_type=env.type,
        purpose=purpose, category=category, template=template, params=params, sensitive=sensitive,
        occurred_at=env.occurred_at, not_before=not_before or env.occurred_at, expires_at=expires_at,
        occurrence_id=occurrence_id, ritual_id=ritual_id,
    )


def _ritual_params(template: str, title: str, sensitive: bool) -> tuple[dict[str, Any], bool, content.RitualContent]:
    words = content.ritual_content(template, title=title or None, sensitive=sensitive)
    # `ritual_key`: the catalog entry whose "why" (the article's reason) the email version carries.
    params: dict[str, Any] = {"ritual": words.title, "prompt": words.prompt, "ritual_key": template}
    if words.sensitive and words.discreet_title:
        params["discreet_title"] = words.discreet_title
    return params, words.sensitive, words


def _for(members: Mapping[UUID, Recipient], member_id: UUID, template: str, params: dict[str, Any]) -> dict[str, Any]:
    """One member's copy of a ritual's words: a child gets the child's words (`content.child_words`)."""
    who = members.get(member_id)
    if who is None or who.role != "child":
        return dict(params)
    mine = {k: v for k, v in params.items() if k not in ("discreet_title", "ritual_key")}
    mine.update(content.child_words(template))
    return mine


def _asked(params: dict[str, Any], who: Recipient | None, child_question: str | None) -> dict[str, Any]:
    """A member's copy with the child's question as its prompt: the child's own words, the parent's lead-in."""
    if child_question:
        params["prompt"] = child_question if who is not None and who.role == "child" else parent_asks(child_question)
    return params


def _when(local_iso: str) -> str:
    try:
        local = datetime.fromisoformat(local_iso)
    except ValueError:
        return "soon"
    return f"{local:%H:%M} on {local:%A}"


def named_members(payload: object) -> list[UUID]:
    """The members an event names: whose household `check_members` needs before anything is planned."""
    if isinstance(payload, NotificationRequested | MemberUpserted | CheckInRecorded | AchievementRecorded):
        return [payload.member_id]
    if isinstance(payload, RitualDue | RitualReminder | RitualMissed):
        return list(payload.participants)
    if isinstance(payload, WeeklySummary):
        return [t.member_id for t in payload.tallies]
    return []


def check_members(env: Envelope[Any], homes: Mapping[UUID, UUID]) -> None:
    """Kafka is a trust boundary: an event may only name members of its envelope's household (a
    NotificationRequested for another household's member would reach that member), and a MemberUpserted
    never moves a member to another household (their channels and one-tap links would follow). `homes`:
    the household each named member is known in here. TrustViolation: dead-lettered as "rejected"."""
    rule = moved_member if isinstance(env.payload, MemberUpserted) else foreign_member
    for member_id in named_members(env.payload):
        if (reason := rule(member_id, env.household_id, homes.get(member_id))) is not None:
            raise TrustViolation(reason)


def plan(env: Envelope[Any], members: Mapping[UUID, Recipient], *, question: str | None = None,
         child_question: str | None = None) -> Plan:
    """What an event asks of the notifier. `members` are the household's known members. `question`: today's
    curiosity question for the adults; `child_question`: one of the child's bank, which a child reads as it is
    and a parent as the question to ask (`catalog.parent_asks`)."""
    p = env.payload
    # Household news (a partner's check-in, milestones, the ratio, the weekly summary) is for the adults.
    adults = [m for m, r in members.items() if r.role != "child"]
    if isinstance(p, RitualDue):
        params, sensitive, words = _ritual_params(p.template, p.title, p.sensitive)
        if question:
            params["prompt"] = question
        expires = p.deadline
        if words.relevant_minutes is not None:
            expires = min(expires, p.scheduled_for + timedelta(minutes=words.relevant_minutes))
        return Plan([
            _intent(env, m, Purpose.RITUAL_DUE, template="ritual_due",
                    params=_asked(_for(members, m, p.template, params), members.get(m), child_question),
                    category=p.template,
                    sensitive=sensitive, expires_at=expires, occurrence_id=p.occurrence_id, ritual_id=p.ritual_id)
            for m in p.participants
        ])
    if isinstance(p, RitualReminder):
        params, sensitive, _ = _ritual_params(p.template, p.title, p.sensitive)
        params["when"] = _when(p.local_time)  # what a render falls back to; `when_local` in the member's clock
        params["when_local"] = p.local_time
        return Plan([
            _intent(env, m, f"{Purpose.RITUAL_REMINDER}", template="ritual_reminder",
                    params=_for(members, m, p.template, params),
                    category=p.template, sensitive=sensitive, expires_at=p.scheduled_for,
                    occurrence_id=p.occurrence_id, ritual_id=p.ritual_id)
            for m in p.participants
        ])
    if isinstance(p, CheckInRecorded):
        result = Plan()
        if p.status in (CheckInStatus.DONE, CheckInStatus.SKIPPED):
            result.suppress_occurrence = p.occurrence_id
        if p.status is CheckInStatus.SNOOZED and p.snoozed_until is not None:
            # The member asked to be reminded later: the same words, with a fresh link, at that time.
            params, sensitive, _ = _ritual_params(p.template, "", False)
            result.intents = [_intent(
                env, p.member_id, Purpose.SNOOZED_REMINDER, template="ritual_due",
                params=_for(members, p.member_id, p.template, params),
                category=p.template, sensitive=sensitive, not_before=p.snoozed_until,
                expires_at=p.snoozed_until + SNOOZE_RELEVANCE, occurrence_id=p.occurrence_id, ritual_id=p.ritual_id,
            )]
        if p.status is CheckInStatus.DONE:
            params, sensitive, _ = _ritual_params(p.template, "", False)
            who = members.get(p.member_id)
            params["name"] = who.display_name if who else catalog_words.YOUR_PARTNER
            result.intents = [
                _intent(env, m, Purpose.PARTNER_CHECKIN, template="partner_checkin", params=dict(params),
                        category=Purpose.PARTNER_CHECKIN, sensitive=sensitive,
                        expires_at=env.occurred_at + RELEVANCE[Purpose.PARTNER_CHECKIN], ritual_id=p.ritual_id)
                for m in adults if m != p.member_id
            ]
        return result
    if isinstance(p, RitualMissed):
        params, sensitive, _ = _ritual_params(p.template, "", p.sensitive)
        params.update(content.next_chance(p.template, p.cadence))
        intents = []
        for m in p.participants:
            zone = members[m].zone if m in members else ZoneInfo("UTC")
            local_day = p.deadline.astimezone(zone).date()
            # One gentle nudge per ritual, member and local day, however many occurrences were missed.
            intents.append(_intent(
                env, m, Purpose.MISSED_NUDGE, template="missed_nudge", params=_for(members, m, p.template, params),
                category=Purpose.MISSED_NUDGE, sensitive=sensitive,
                expires_at=env.occurred_at + RELEVANCE[Purpose.MISSED_NUDGE], ritual_id=p.ritual_id,
                dedupe_cause=f"missed|{p.ritual_id}|{local_day.isoformat()}",
            ))
        return Plan(intents)
    if isinstance(p, MilestoneReached):
        params, sensitive, _ = _ritual_params(p.template, "", False)
        params.update(length=p.length, unit=p.unit.value if p.length != 1 else p.unit.value.rstrip("s"))
        return Plan([
            _intent(env, m, Purpose.MILESTONE, template="milestone", params=dict(params),
                    category=Purpose.MILESTONE, sensitive=sensitive,
                    expires_at=env.occurred_at + RELEVANCE[Purpose.MILESTONE], ritual_id=p.ritual_id)
            for m in adults
        ])
    if isinstance(p, RatioDropped):
        params = {"positive": p.positive, "negative": p.negative, "window_days": p.window_days}
        return Plan([
            _intent(env, m, Purpose.RATIO_DROPPED, template="ratio_dropped", params=dict(params),
                    category=Purpose.RATIO_DROPPED, expires_at=env.occurred_at + RELEVANCE[Purpose.RATIO_DROPPED])
            for m in adults
        ])
    if isinstance(p, AchievementRecorded):
        who = members.get(p.member_id)
        params = {"name": who.display_name if who else catalog_words.YOUR_PARTNER, "dream": p.dream}
        return Plan([
            _intent(env, m, Purpose.ACHIEVEMENT, template="achievement", params=dict(params),
                    category=Purpose.ACHIEVEMENT, expires_at=env.occurred_at + RELEVANCE[Purpose.ACHIEVEMENT])
            for m in adults if m != p.member_id
        ])
    if isinstance(p, WeeklySummary):
        return Plan([
            _intent(env, m, Purpose.WEEKLY_SUMMARY, template="weekly_summary",
                    params=_summary_params(p, members, m), category=Purpose.WEEKLY_SUMMARY,
                    expires_at=env.occurred_at + RELEVANCE[Purpose.WEEKLY_SUMMARY])
            for m in adults
        ])
    if isinstance(p, NotificationRequested):
        params = {"title": p.title, "body": p.body}
        if p.discreet_title:
            params["discreet_title"] = p.discreet_title
        return Plan([_intent(env, p.member_id, p.purpose, template="request", params=params, category=p.category,
                             expires_at=p.expires_at)])
    if isinstance(p, MemberUpserted):
        return Plan(member=p)
    if isinstance(p, HouseholdErased):
        return Plan(erase_household=True)
    return Plan(ignored=env.type)


def _summary_params(p: WeeklySummary, members: Mapping[UUID, Recipient], member_id: UUID) -> dict[str, Any]:
    mine = [t for t in p.tallies if t.member_id == member_id] or list(p.tallies)
    # Rows as data (name, the ritual's msgid, kept, expected): a render words them in the member's language.
    rows = [[members[t.member_id].display_name if t.member_id in members else catalog_words.SOMEONE,
             content.summary_title(t.template), t.kept, t.expected] for t in p.tallies]
    # A focus on a sensitive ritual's step is worded as that ritual's reminders are, on every channel.
    focus_title, focus_text = content.focus_words(p.focus.step, p.focus.title, p.focus.text)
    return {
        "week_start": p.week_start.isoformat(), "week_end": p.week_end.isoformat(),
        "kept": sum(t.kept for t in mine), "expected": sum(t.expected for t in mine),
        "date_nights_kept": p.date_nights_kept_4w, "date_nights_expected": p.date_nights_expected_4w,
        "positive": p.positive_moments, "negative": p.negative_moments,
        "focus_title": focus_title, "focus_text": focus_text,
        "tallies": rows,
    }


# Which depth of question a household's curiosity ritual asks on its n-th pick: light most days, deeper twice a
# week, a dream once a week (a daily ritual: the dreams question lands on the same weekday each week).
DEPTH_WEEK: tuple[str, ...] = ("light", "light", "deeper", "light", "light", "deeper", "dreams")


def next_question_index(bank_size: int, used: Sequence[int], seed: str, depths: Sequence[str] = ()) -> int:
    """The next question in a household's own shuffled order, never repeating until the bank is used up.

    `used`: the household's earlier picks, oldest first; `seed` (the household id) fixes its order, so nothing
    beyond the picks is stored. `depths[i]`: the depth of question i (catalog.QUESTION_DEPTHS); with them, the
    n-th pick asks for DEPTH_WEEK[n % 7] and takes that depth's next unused question, or, once that depth is
    used up in this round, the next unused one of any depth. Each round of `bank_size` picks covers the bank."""
    if bank_size <= 0:
        return 0
    order = list(range(bank_size))
    random.Random(seed).shuffle(order)  # noqa: S311 - a seeded shuffle of questions, meant to be reproducible
    cycle = len(used) // bank_size
    seen = set(used[cycle * bank_size:])
    unused = [index for index in order if index not in seen]
    if not unused:  # picks from before the bank changed size: start again
        return order[0]
    if len(depths) == bank_size:
        wanted = DEPTH_WEEK[len(used) % len(DEPTH_WEEK)]
        for index in unused:
            if depths[index] == wanted:
                return index
    return unused[0]


# ---- when (and whether) to send -----------------------------------------------------------------


class Action(StrEnum):
    SEND = "send"
    DEFER = "defer"
    DROP = "drop"
    RETRY = "retry"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    at: datetime | None = None
    channel: ChannelRef | None = None


def decide(
    *,
    now: datetime,
    recipient: Recipient | None,
    routes: Sequence[ChannelRef],
    channel_index: int,
    expires_at: datetime | None,
    sent_today: int,
) -> Decision:
    """Whether a due delivery goes out now, waits (quiet hours, daily cap), or is dropped as stale."""
    if expires_at is not None and now >= expires_at:
        return Decision(Action.DROP, "stale")
    if recipient is None:
        return Decision(Action.RETRY, "unknown_member")
    zone = recipient.zone
    if recipient.quiet_hours is not None:
        opens = recipient.quiet_hours.opens_after(now, zone)
        if opens is not None:
            if expires_at is not None and opens >= expires_at:
                return Decision(Action.DROP, "stale")
            return Decision(Action.DEFER, "quiet_hours", at=opens)
    if sent_today >= recipient.daily_cap:
        tomorrow = datetime.combine(now.astimezone(zone).date() + timedelta(days=1), time(0), tzinfo=zone)
        at = tomorrow.astimezone(UTC)
        if expires_at is not None and at >= expires_at:
            return Decision(Action.DROP, "daily_cap")
        return Decision(Action.DEFER, "daily_cap", at=at)
    if not routes:
        # No channel for this message (none at all, or none the member allows for it: many children have no
        # phone of their own): skipped on purpose and counted, not retried into a dead letter. A channel added
        # later serves the next message.
        return Decision(Action.DROP, "no_channel")
    if channel_index >= len(routes):
        channel_index = len(routes) - 1
    return Decision(Action.SEND, channel=routes[channel_index])


def local_day_start(now: datetime, zone: ZoneInfo) -> datetime:
    return datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class RetryPlan:
    """Exponential backoff with jitter on one channel, then the next channel (defaults: 8 tries, ~30 min).

    A gateway that said "not now" (429, 408, a 5xx, or a connection that could not be made: `transient`) is
    tried again soon, on `transient_backoff` (first retry after 1-2 s, then 3-6 s, 9-18 s…, about as long in
    all as `backoff`), or when its Retry-After says, capped at `max_retry_after_s`; any other failure waits
    on `backoff` (first retry after 10-20 s). See `after_failure`.
    """

    attempts_per_channel: int = 8
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=20.0, max_s=900.0))
    transient_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=2.0, max_s=900.0, factor=3.0))
    max_retry_after_s: float = 300.0
    max_waiting_attempts: int = 12  # unknown member / no channel yet: keep trying for a while, then give up
    unknown_retry_delay: timedelta = timedelta(minutes=2)  # see `after_unknown`
    unknown_retries: int = 1  # see `after_unknown`


@dataclass(frozen=True)
class AfterFailure:
    dead: bool
    channel_index: int
    attempt: int
    next_attempt_at: datetime | None


def after_failure(*, now: datetime, attempt: int, channel_index: int, channels: int, policy: RetryPlan,
                  rng: random.Random | None = None, transient: bool = False,
                  retry_after_s: float | None = None) -> AfterFailure:
    """`attempt` is the number of attempts made so far on the current channel, this one included.

    The next try on the same channel waits, in this order of precedence:
    - `retry_after_s` (the gateway's Retry-After), never less, capped at `policy.max_retry_after_s`, plus a
      jitter of up to a tenth of it (at least 0.5 s) so the sends a gateway refused together do not return
      together;
    - `policy.transient_backoff` when the gateway was only busy or briefly away (`transient`);
    - `policy.backoff` for any other failure (the gateway refused this message, or Apprise could not send it).
    Attempts count the same either way: after `attempts_per_channel` the next channel, then dead.
    """
    if attempt < policy.attempts_per_channel:
        if retry_after_s is not None:
            wait = min(max(0.0, retry_after_s), policy.max_retry_after_s)
            delay = wait + (rng or random).uniform(0, max(0.5, wait / 10))
        elif transient:
            delay = policy.transient_backoff.delay(attempt, rng)
        else:
            delay = policy.backoff.delay(attempt, rng)
        return AfterFailure(False, channel_index, attempt, now + timedelta(seconds=delay))
    if channel_index + 1 < channels:
        return AfterFailure(False, channel_index + 1, 0, now)
    return AfterFailure(True, channel_index, attempt, None)


def after_unknown(*, now: datetime, unknown_sends: int, channel_index: int, attempt: int, channels: int,
                  policy: RetryPlan) -> AfterFailure:
    """What follows a send whose outcome is unknown (it timed out after the request may have left).

    The policy, and why:
    - Never retried on the ordinary failure schedule (20 s later, up to 8 times): a gateway that is
      slow, not dead, delivers most of those messages late, and each retry would be one more copy on
      the person's phone. That is what doubled reminders.
    - Not given up at once either: a timeout can also mean the message never left, and a reminder
      that never arrives breaks the promise as surely as one that arrives twice.
    - So an unknown outcome is retried `policy.unknown_retries` times (default once) per delivery,
      after `policy.unknown_retry_delay` (default 2 minutes): long enough for a late push to land and
      for the person to act on it (a check-in made meanwhile suppresses the retry, as for any pending
      reminder), short enough to still be on time for a ritual.
    - The retry goes to the member's next channel if there is one (another medium: a copy by email
      after a push that did arrive is less intrusive than the same push twice, and it avoids the gateway
      that just hung), else to the same channel.
    - One unknown outcome too many (`unknown_sends` counts this one) ends the delivery with status
      `unknown`: no more tries, published as NotificationDeadLettered with a reason saying so.
    So a delivery reaches a person at most `1 + unknown_retries` times, and only when a gateway
    timed out yet delivered.
    """
    if unknown_sends > policy.unknown_retries:
        return AfterFailure(True, channel_index, attempt, None)
    at = now + policy.unknown_retry_delay
    if channel_index + 1 < channels:
        return AfterFailure(False, channel_index + 1, 0, at)
    return AfterFailure(False, channel_index, attempt, at)


def after_broken(*, now: datetime, channel_index: int, attempt: int, channels: int) -> AfterFailure:
    """A channel that cannot work as stored (undecryptable with the current keys, a URL that no longer
    loads): no retry can fix it, so the next channel is tried at once; with none left, the delivery is
    dead. Only this member's delivery is affected; the operator sees why in the outcome's reason."""
    if channel_index + 1 < channels:
        return AfterFailure(False, channel_index + 1, 0, now)
    return AfterFailure(True, channel_index, attempt, None)


# ---- words --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    kind: ChannelKind
    title: str
    body: str
    html: str | None = None
    link: str | None = None  # the Done link, also written in the body (a web push's tap opens it)
    link_text: str = ""  # the links' lines at the end of a push body (a web push shows the body without them)

    @property
    def text(self) -> str:
        return self.body


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


PUSH_TITLE_MAX = catalog_words.LIMITS["title"]
PUSH_BODY_MAX = catalog_words.LIMITS["body"]
SMS_GSM_MAX = 160
SMS_UCS2_MAX = 70
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_SMS_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                           "\u2014": "-", "\u2026": "...", "\u201e": '"', "\u202f": " ", "\u00a0": " "})
_SPACE = re.compile(r"\s+")


def _clip(text: str, limit: int, ellipsis: str = "\u2026") -> str:
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ellipsis)]
    if " " in cut[limit // 2:]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,.;:") + ellipsis


def sms_segment_limit(text: str) -> int:
    return SMS_GSM_MAX if all(ch in _GSM7 for ch in text) else SMS_UCS2_MAX


def fit_sms(text: str) -> str:
    """One SMS segment where possible: fold typographic quotes to GSM-7, then clip at a word."""
    text = _SPACE.sub(" ", text.translate(_SMS_FOLD)).strip()
    limit = sms_segment_limit(text)
    return text if len(text) <= limit else _clip(text, limit, "...")


def localise(params: Mapping[str, Any], locale: str | None) -> dict[str, Any]:
    """A message's params in the member's language: the catalog's words translated (a renamed ritual, a name or
    a dream pass through), the ritual's time in their clock and the summary's days in their calendar."""
    tr = catalog_words.translator(locale)
    out = {k: (tr(v) if k in catalog_words.TRANSLATED_PARAMS and isinstance(v, str) else v) for k, v in params.items()}
    if params.get("name") in (catalog_words.YOUR_PARTNER, catalog_words.SOMEONE):  # no name known: our words
        out["name"] = tr(params["name"])
    if params.get("when_local"):
        out["when"] = _when_words(str(params["when_local"]), locale)
    elif isinstance(params.get("when"), str):
        out["when"] = tr(params["when"])
    for key in ("week_start", "week_end"):
        try:
            out[key] = catalog_words.format_day(date.fromisoformat(str(params[key])), locale)
        except (KeyError, ValueError):
            pass
    return out


@functools.lru_cache(maxsize=4096)  # the members of a household share their rituals' times; CLDR formatting is slow
def _when_words(local_iso: str, locale: str | None) -> str:
    try:
        return catalog_words.format_when(datetime.fromisoformat(local_iso), locale)
    except ValueError:
        return catalog_words.translator(locale)(catalog_words.SOON)


def _tally_rows(params: Mapping[str, Any], tr: Callable[[str], str]) -> str:
    rows = params.get("tallies")
    if not isinstance(rows, list):
        return str(params.get("tally_rows_html", ""))  # a summary planned before the rows were data
    cells = "".join(
        f"<tr><td>{html.escape(tr(str(name)) if name == catalog_words.SOMEONE else str(name))}</td><td>{html.escape(tr(str(title)))}</td><td>{html.escape(tr(catalog_words.TALLY_ROW).format(kept=kept, expected=expected))}</td></tr>"
        for name, title, kept, expected in rows
    )
    return f"<table>{cells}</table>" if cells else ""


def _why(template_key: str, params: Mapping[str, Any]) -> str | None:
    """The article's reason for a ritual, for the email version of its reminders (never a child's: no key)."""
    if template_key not in ("ritual_due", "ritual_reminder") or not params.get("ritual_key"):
        return None
    return catalog_words.ritual_words(str(params["ritual_key"])).why


def render(template_key: str, params: Mapping[str, Any], kind: ChannelKind, *, neutral: bool,
           link: str | ActionLinks | None = None, templates: Mapping[str, content.Template] | None = None,
           locale: str | None = None) -> Rendered:
    """The message for one channel kind in the member's `locale` (None: the default). `neutral` (sensitive
    ritual or discreet member) hides the subject. `link`: the one-tap links (`links.ActionLinks`; a plain URL
    is a Done link). Push and email list every link; an SMS carries only the short Done link, and only whole,
    after text clipped to leave it room."""
    tr = catalog_words.translator(locale)
    links = ActionLinks.of(link)
    link_text = links.text(tr) if links else ""
    link_html = links.html(tr) if links else ""
    done = links.urls.get(LinkAction.DONE) if links else None
    if neutral:
        title = tr(str(params.get("discreet_title") or content.NEUTRAL_TITLE))
        body = tr(content.NEUTRAL_BODY)
        if kind is ChannelKind.SMS:
            return Rendered(kind, "", _sms(f"Attune: {title}. {body}", links, tr))
        if kind is ChannelKind.EMAIL:
            html_body = f"<p>{html.escape(body)}</p>" + link_html
            text = body + (f"\n\n{link_text}" if link_text else "")
            return Rendered(kind, title, text, html_body)
        return Rendered(kind, _clip(title, PUSH_TITLE_MAX), body + (f"\n{link_text}" if link_text else ""),
                        link=done, link_text=link_text)
    template = (templates or content.TEMPLATES)[template_key]
    words = localise(params, locale)
    plain = _Blank({k: v for k, v in words.items() if not k.endswith("_html")})
    if kind is ChannelKind.SMS:
        return Rendered(kind, "", _sms(tr(template.sms).format_map(plain), links, tr))
    if kind is ChannelKind.EMAIL:
        escaped = _Blank({k: (v if k.endswith("_html") else html.escape(str(v))) for k, v in words.items()})
        escaped["tally_rows"] = _tally_rows(params, tr)
        html_body = tr(template.html).format_map(escaped)
        text = tr(template.body).format_map(plain)
        if why := _why(template_key, params):
            html_body += f"<h3>{html.escape(tr(catalog_words.WHY_HEADING))}</h3><p>{html.escape(tr(why))}</p>"
            text += f"\n\n{tr(why)}"
        html_body += link_html
        text += f"\n\n{link_text}" if link_text else ""
        return Rendered(kind, _clip(tr(template.subject).format_map(plain), 150), text, html_body)
    body = _clip(tr(template.body).format_map(plain), PUSH_BODY_MAX)
    if link_text:
        body += "\n" + link_text
    return Rendered(kind, _clip(tr(template.title).format_map(plain), PUSH_TITLE_MAX), body, link=done,
                    link_text=link_text)

def _sms(text: str, links: ActionLinks | None, tr: Callable[[str], str]) -> str:
    """One segment where possible: the text clipped to leave room for the short link, which is never cut."""
    suffix = links.sms_suffix(tr) if links else ""
    if not suffix:
        return fit_sms(text)
    text = _SPACE.sub(" ", text.translate(_SMS_FOLD)).strip()
    limit = sms_segment_limit(text + suffix) - len(suffix)
    return (text if len(text) <= limit else _clip(text, limit, "...")) + suffix


def is_neutral(recipient: Recipient | None, sensitive: bool) -> bool:
    return sensitive or (recipient is not None and recipient.discreet)

