"""The app's decisions, pure (no Kafka, no SQL, no HTTP): tokens, what a person may see, and the pages' views.

Everything a page shows is built here from plain rows, so the rules (a sensitive ritual is never named to
someone who hasn't opted in; a private note is never shown; the ratio) are tested without any I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from attune_contracts.catalog import TEMPLATES, Audience, Template

# The article's six steps, in its order, with the words a person reads above each group of rituals.
STEPS: tuple[tuple[str, str], ...] = (
    ("1", "Attune to each other's feelings"),
    ("2", "Keep dating"),
    ("3", "Try something new together"),
    ("4", "Stay close after intimacy"),
    ("5", "Stay curious about each other"),
    ("6", "Invest in each other's dreams"),
)
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAY_NAMES = dict(zip(WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True))


# ---- tokens ---------------------------------------------------------------------------------------


def new_token() -> str:
    """A random secret for a cookie or a join link (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a session or invitation token: a stolen database opens nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def form_token(key: bytes, browser: str) -> str:
    """The CSRF token of every form of one browser: an HMAC of its browser cookie (double submit, signed)."""
    return hmac.new(key, b"form:" + browser.encode(), hashlib.sha256).hexdigest()


def form_token_valid(key: bytes, browser: str | None, sent: str | None) -> bool:
    if not browser or not sent:
        return False
    return hmac.compare_digest(form_token(key, browser), sent)


@dataclass(frozen=True)
class Invite:
    household_id: UUID
    role: str
    expires_at: datetime
    used_at: datetime | None
    member_id: UUID | None = None
    """Set: a sign-in link for this existing member (no new member is added)."""


def invite_refusal(invite: Invite | None, now: datetime) -> str | None:
    """Why a join link cannot be used (words for the person holding it), or None when it can."""
    if invite is None:
        return "This invitation link isn't one we know. Ask for a fresh one."
    if invite.used_at is not None:
        return "This invitation has already been used. Each link lets one person in; ask for a new one."
    if now >= invite.expires_at:
        return "This invitation has expired. Ask for a new one; links last a few days."
    return None


# ---- rituals --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ritual:
    ritual_id: UUID
    template: str
    title: str
    participants: tuple[UUID, ...]
    rrule: str
    local_time: str
    sensitive: bool
    state: str
    consented: frozenset[UUID] = frozenset()


@dataclass(frozen=True)
class RitualView:
    ritual_id: UUID
    title: str
    when: str
    state_words: str
    may_consent: bool


def audience_of(kind: str) -> Audience:
    return Audience.FAMILY if kind == "family" else Audience.COUPLE


def catalog_by_step(kind: str) -> list[tuple[str, str, list[Template]]]:
    """The schedulable templates for this kind of household, grouped by the article's steps, in order (the
    on-demand after-care of step 4 is started from "today", not scheduled)."""
    audience = audience_of(kind)
    groups: list[tuple[str, str, list[Template]]] = []
    for number, words in STEPS:
        found = [t for t in TEMPLATES.values()
                 if t.schedulable and t.step.startswith(number + " ") and audience in t.audience]
        if found:
            groups.append((number, words, found))
    return groups


def rrule_for(days: Iterable[str], default: str) -> str:
    """Weekly on the chosen days, or the template's own rhythm when none is chosen."""
    chosen = [d for d in WEEKDAYS if d in set(days)]
    if not chosen:
        return default
    if len(chosen) == 7:
        return "FREQ=DAILY"
    return "FREQ=WEEKLY;BYDAY=" + ",".join(chosen)


def describe_rhythm(rrule: str, local_time: str) -> str:
    parts = dict(p.split("=", 1) for p in rrule.split(";") if "=" in p)
    freq = parts.get("FREQ", "")
    if freq == "DAILY":
        return f"every day at {local_time}"
    if freq == "WEEKLY":
        days = [WEEKDAY_NAMES.get(d, d) for d in parts.get("BYDAY", "").split(",") if d]
        return f"every {', '.join(days) or 'week'} at {local_time}"
    return f"at {local_time}"


_STATE_WORDS = {
    "active": "On",
    "paused": "Paused",
    "requested": "Being set up…",
    "awaiting_consent": "Waiting for everyone to say yes",
    "refused": "This one couldn't be set up. Try adding it again, perhaps with other days or people",
}


def ritual_views(rituals: Sequence[Ritual], viewer: UUID) -> list[RitualView]:
    """What one person sees of the household's rituals. A sensitive ritual that is not active yet is shown by
    name only to those who already said yes; the others see that something awaits their answer, unnamed, so
    that nobody learns what their partner asked for before choosing freely."""
    views = []
    for ritual in rituals:
        if viewer not in ritual.participants:
            continue
        hidden = ritual.sensitive and ritual.state != "active" and viewer not in ritual.consented
        views.append(RitualView(
            ritual_id=ritual.ritual_id,
            title="A private ritual" if hidden else ritual.title,
            when="" if hidden else describe_rhythm(ritual.rrule, ritual.local_time),
            state_words=("Your partner would like to add something private; it starts only if you say yes too"
                         if hidden else _STATE_WORDS.get(ritual.state, ritual.state)),
            may_consent=ritual.sensitive and ritual.state == "awaiting_consent" and viewer not in ritual.consented,
        ))
    return views


# ---- today and progress ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    occurrence_id: UUID
    ritual_id: UUID
    template: str
    title: str
    participants: tuple[UUID, ...]
    scheduled_for: datetime
    deadline: datetime
    sensitive: bool


@dataclass(frozen=True)
class CheckIn:
    occurrence_id: UUID
    member_id: UUID
    status: str
    closeness: int | None


@dataclass
class TodayItem:
    occurrence_id: UUID
    title: str
    at: str
    open: bool
    mine: str | None  # my status, if I checked in
    others: list[tuple[str, str]] = field(default_factory=list)  # (name, their status words)


STATUS_WORDS = {"done": "kept it", "skipped": "skipped it", "snoozed": "snoozed it"}


def local_day(now: datetime, zone: str) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


def today_items(occurrences: Sequence[Occurrence], checkins: Sequence[CheckIn], names: dict[UUID, str],
                viewer: UUID, now: datetime, zone: str) -> list[TodayItem]:
    """The viewer's occurrences that fall on their household's today, with who kept what, earliest first."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    by_occurrence: dict[UUID, list[CheckIn]] = {}
    for checkin in checkins:
        by_occurrence.setdefault(checkin.occurrence_id, []).append(checkin)
    items = []
    for occ in sorted(occurrences, key=lambda o: o.scheduled_for):
        if viewer not in occ.participants or occ.scheduled_for.astimezone(tz).date() != today:
            continue
        done = by_occurrence.get(occ.occurrence_id, [])
        mine = next((c.status for c in done if c.member_id == viewer), None)
        others = [(names.get(c.member_id, "Your partner"), STATUS_WORDS.get(c.status, c.status))
                  for c in done if c.member_id != viewer]
        items.append(TodayItem(occ.occurrence_id, occ.title, occ.scheduled_for.astimezone(tz).strftime("%H:%M"),
                               open=now < occ.deadline, mine=mine, others=others))
    return items


@dataclass(frozen=True)
class Ratio:
    positive: int
    negative: int

    @property
    def words(self) -> str:
        if self.positive == 0 and self.negative == 0:
            return "No moments logged yet. Noticing the good ones is a fine place to start."
        kind = f"{self.positive} kind moment{'' if self.positive == 1 else 's'}"
        if self.negative == 0:
            return f"{kind} and no hard ones. Lovely."
        ratio = self.positive / self.negative
        tail = ("right where it helps most" if ratio >= 5
                else "couples who thrive tend to have about five kind moments for each hard one")
        return f"{kind} to {self.negative} hard, about {ratio:.1f} to 1: {tail}."


def ratio_of(kinds: Iterable[str]) -> Ratio:
    positive = negative = 0
    for kind in kinds:
        if kind == "positive":
            positive += 1
        elif kind == "negative":
            negative += 1
    return Ratio(positive, negative)


RATIO_WINDOW = timedelta(days=14)
