"""The scheduler's decisions: which commands to accept, and what a ritual emits when it wakes up.

Pure: no Kafka, no SQL, no clock. The store loads a household, `decide` says what changes and which
facts to publish (or why the command is refused), and `wake` says which occurrences and reminders a
ritual emits at `now` and where its cursors move. Both run inside one store transaction.

A command that no retry could make acceptable is refused with a reason, never left to fail: `screen`
finds what can be seen in the command alone (a NUL character, which PostgreSQL cannot store in text; a
start_date outside `START_DATE_WINDOW`; a rule or local time that cannot be valid), before any row is
locked; `decide` refuses the rest (a rule that has no occurrence in the household's zone, ...). The cost
of every recurrence look-up is bounded (recurrence.py), so `decide` and `wake` stay short.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from attune_contracts import Envelope
from attune_contracts.catalog import TEMPLATES, Audience, Template
from attune_contracts.messages import (
    ConsentGiven,
    ConsentWithdrawn,
    DeleteRitual,
    EraseHousehold,
    GiveConsent,
    HouseholdCredentialsRevoked,
    HouseholdErased,
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    OccurrenceSkipped,
    PauseRitual,
    RegisterHousehold,
    ResumeRitual,
    RevokeHouseholdCredentials,
    RitualDeleted,
    RitualDue,
    RitualPaused,
    RitualReminder,
    RitualResumed,
    RitualScheduled,
    RitualState,
    RitualUpdated,
    SchedulerCommandRejected,
    ScheduleRitual,
    UpdateRitual,
    UpsertMember,
    WithdrawConsent,
)
from attune_contracts.trust import TrustViolation, foreign_member, moved_member
from attune_contracts.types import Contract

from .recurrence import (
    LOOKAHEAD,
    OCCURRENCE_NAMESPACE,
    Recurrence,
    RecurrenceError,
    check_rule,
    occurrence_id,
    parse_local_time,
    reminder_id,
)

MIN_CATCH_UP = timedelta(minutes=1)
"""Even a catch-up window of 0 tolerates this much lag: firing always takes a moment."""
MAX_OCCURRENCES_PER_WAKE = 200
"""After a very long outage a ritual is worked through in slices, so one claim stays short."""
START_DATE_WINDOW = (timedelta(days=366), timedelta(days=5 * 366))
"""A command's start_date lies at most a year before, and at most five years after, the day it is handled."""


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---- the household aggregate --------------------------------------------------------------------


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


def fact_event_id(command_event_id: uuid.UUID, index: int) -> uuid.UUID:
    """Facts caused by a command get ids derived from it, so reprocessing cannot mint new ones."""
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{command_event_id}:fact:{index}")


# ---- scheduling ---------------------------------------------------------------------------------


def plan(ritual: Ritual, now: datetime) -> Ritual:
    """Point an active ritual's cursors at its next occurrence and reminder; clear them otherwise.

    Occurrences already handled stay handled: an occurrence that is due but not yet fired (its cursor is
    at or before `now`) is kept, and everything written ahead of time for after `now` is re-planned
    (the store drops those pre-written events in the same transaction).
    """
    if ritual.state is not RitualState.ACTIVE:
        return replace(ritual, next_due_at=None, next_reminder_at=None, reminder_cursor=now)
    rec = ritual.recurrence()
    due_from = now if ritual.next_due_at is None else min(now, ritual.next_due_at - _TICK)
    reminders_from = now if ritual.reminder_cursor is None else min(now, ritual.reminder_cursor)
    return replace(
        ritual,
        next_due_at=rec.next_after(due_from),
        next_reminder_at=(
            rec.next_reminder_after(reminders_from, ritual.reminder_offsets) if ritual.reminder_offsets else None
        ),
        reminder_cursor=reminders_from,
    )


_TICK = timedelta(microseconds=1)


def _template_for(key: str) -> Template:
    found = TEMPLATES.get(key)
    if found is None:
        raise Refused(f"unknown ritual template {key!r}; known templates: {', '.join(sorted(TEMPLATES))}")
    if not found.schedulable:
        raise Refused(f"{found.title!r} ({key}) is on demand only and is never scheduled")
    return found


def _check_participants(view: HouseholdView, participants: list[uuid.UUID], tpl: Template) -> None:
    if len(set(participants)) != len(participants):
        raise Refused("participants lists the same member twice")
    unknown = [str(p) for p in participants if p not in view.members]
    if unknown:
        raise Refused(f"participants {', '.join(unknown)} are not members of this household; add them first")
    roles = {view.members[p].role for p in participants}
    if Audience.FAMILY not in tpl.audience and MemberRole.CHILD in roles:
        raise Refused(f"{tpl.title!r} is a ritual for partners; a child cannot take part in it")
    if tpl.sensitive and MemberRole.CHILD in roles:
        raise Refused(f"{tpl.title!r} is sensitive and only for adult partners")


def _check_time(rrule: str, local_time: str, start_date: date, time_zone: str, now: datetime) -> Recurrence:
    try:
        rec = Recurrence.of(rrule, local_time, start_date, time_zone)
        # A look-up searches ten years ahead (recurrence.LOOKAHEAD): a rule that has not ended yet but has
        # nothing in that time would be accepted and never fire.
        if rec.next_after(now) is None and not rec.has_ended(now):
            raise Refused(
                f"this rule has no occurrence in the {LOOKAHEAD.days // 365} years after today; "
                "a ritual must happen at least that often"
            )
        return rec
    except RecurrenceError as exc:
        raise Refused(exc.reason) from None


def _planned(ritual: Ritual, now: datetime, why: str = "") -> Ritual:
    """`plan`, with a rule that cannot be evaluated (in this zone, from now) refused rather than raised."""
    try:
        return plan(ritual, now)
    except RecurrenceError as exc:
        raise Refused(f"{why}{exc.reason}") from None
    except (OverflowError, ValueError) as exc:  # datetime arithmetic out of range: no retry can fix it
        raise Refused(f"{why}the schedule reaches a date out of range ({exc})") from None


def _ritual_fact(cls: type[RitualScheduled | RitualUpdated], r: Ritual) -> Contract:
    return cls(
        ritual_id=r.id, template=r.template, title=r.display_title, participants=list(r.participants),
        rrule=r.rrule, local_time=r.local_time, start_date=r.start_date, time_zone=r.time_zone,
        reminder_offsets_minutes=list(r.reminder_offsets), catch_up_minutes=r.catch_up_minutes,
        sensitive=r.sensitive, state=r.state, next_due_at=r.next_due_at,
    )


def _needs_household(view: HouseholdView) -> Household:
    if view.household is None:
        raise Refused("this household is not registered; send RegisterHousehold first")
    return view.household


def _needs_ritual(view: HouseholdView, ritual_id: uuid.UUID) -> Ritual:
    _needs_household(view)
    found = view.rituals.get(ritual_id)
    if found is None:
        raise Refused(f"there is no ritual {ritual_id} in this household")
    return found


def screen(envelope: Envelope[Any], now: datetime) -> str | None:
    """Why this command can be refused without looking at any stored state, or None.

    Cheap and pure: the caller runs it before taking any lock, and `decide` runs it again.
    """
    text = _text_problem(envelope.correlation_id, "correlation_id") or _text_problem(envelope.producer, "producer")
    if text:
        return text
    cmd = envelope.payload
    for name in type(cmd).model_fields:
        if problem := _text_problem(getattr(cmd, name), name):
            return problem
    fields = cmd.model_fields_set
    try:
        if isinstance(cmd, ScheduleRitual | UpdateRitual):
            if "start_date" in fields and cmd.start_date is not None:
                _check_start_window(cmd.start_date, now)
            if "rrule" in fields and cmd.rrule is not None:
                check_rule(cmd.rrule)
            if "local_time" in fields and cmd.local_time is not None:
                parse_local_time(cmd.local_time)
    except (RecurrenceError, Refused) as refusal:
        return refusal.reason
    return None


def _text_problem(value: Any, where: str) -> str | None:
    """A NUL character cannot be stored in PostgreSQL text; it is refused on every database alike."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where} contains a NUL character (\\x00), which Attune does not store; remove it"
    elif isinstance(value, list | tuple):
        for item in value:
            if problem := _text_problem(item, where):
                return problem
    return None


def _check_start_window(start_date: date, now: datetime) -> None:
    # UTC's date: a day either way of the household's, and the window is a year wide on that side.
    today = now.date()
    earliest, latest = today - START_DATE_WINDOW[0], today + START_DATE_WINDOW[1]
    if not earliest <= start_date <= latest:
        raise Refused(
            f"start_date {start_date.isoformat()} is too far from today: give a date from "
            f"{earliest.isoformat()} to {latest.isoformat()}"
        )


def named_members(cmd: Contract) -> list[uuid.UUID]:
    """The members a command names (whose household the store looks up for `check_members`)."""
    if isinstance(cmd, UpsertMember | GiveConsent | WithdrawConsent):
        return [cmd.member_id]
    if isinstance(cmd, ScheduleRitual | UpdateRitual):
        return list(cmd.participants or ())
    return []


def check_members(view: HouseholdView, cmd: Contract) -> None:
    """Kafka is a trust boundary: a command may only name members of its envelope's household, and a member
    never moves between households (UpsertMember of another household's member). TrustViolation: dead-
    lettered as "rejected", with a SchedulerCommandRejected for the sender."""
    for member_id in named_members(cmd):
        home = view.elsewhere.get(member_id)
        rule = moved_member if isinstance(cmd, UpsertMember) else foreign_member
        if (reason := rule(member_id, view.id, home)) is not None:
            raise TrustViolation(reason)


def decide(view: HouseholdView, envelope: Envelope[Any], now: datetime) -> Outcome:
    """Accept (changes + facts) or refuse (a SchedulerCommandRejected saying why) one command.

    Every ritual the outcome saves has been re-planned from `now`: the store drops the events it had
    written ahead of time for that ritual, so a pause, an update or a withdrawn consent takes effect at once.
    """
    cmd = envelope.payload
    check_members(view, cmd)
    try:
        if (reason := screen(envelope, now)) is not None:
            raise Refused(reason)
        outcome = _decide(view, cmd, now)
    except Refused as refusal:
        return Outcome(
            facts=[SchedulerCommandRejected(
                command_event_id=envelope.event_id, command_type=envelope.type, reason=refusal.reason[:2000],
            )],
            rejected=refusal.reason,
        )
    return outcome


def erased_reason(erased_at: datetime) -> str:
    return (
        f"this household was erased on {erased_at.date().isoformat()} and stays erased; nothing can be added to "
        "it again (a replayed or late command is refused). To start over, register a new household with a new id"
    )


def _decide(view: HouseholdView, cmd: Contract, now: datetime) -> Outcome:
    if view.erased_at is not None:
        if isinstance(cmd, EraseHousehold):
            # Nothing is left to delete; said again, so that every service holds the tombstone.
            return Outcome(facts=[HouseholdErased(erased_at=view.erased_at)])
        raise Refused(erased_reason(view.erased_at))

    if isinstance(cmd, RegisterHousehold):
        household = Household(view.id, cmd.name, cmd.time_zone, cmd.kind)
        out = Outcome(household=household, facts=[HouseholdRegistered(
            name=cmd.name, time_zone=cmd.time_zone, kind=cmd.kind)])
        if view.household is not None and view.household.time_zone != cmd.time_zone:
            # The rituals keep their local wall-clock times; their instants move with the zone.
            for ritual in view.rituals.values():
                moved = _planned(replace(ritual, time_zone=cmd.time_zone), now,
                                 f"ritual {ritual.id} cannot move to {cmd.time_zone}: ")
                out.rituals.append(moved)
                out.facts.append(_ritual_fact(RitualUpdated, moved))
            for member in view.members.values():
                out.facts.append(MemberUpserted(member_id=member.member_id, display_name=member.display_name,
                                                role=member.role, time_zone=cmd.time_zone))
        return out

    if isinstance(cmd, UpsertMember):
        household = _needs_household(view)
        member = Member(cmd.member_id, cmd.display_name, cmd.role)
        return Outcome(members=[member], facts=[MemberUpserted(
            member_id=cmd.member_id, display_name=cmd.display_name, role=cmd.role, time_zone=household.time_zone)])

    if isinstance(cmd, ScheduleRitual):
        household = _needs_household(view)
        if cmd.ritual_id in view.rituals:
            raise Refused(f"ritual {cmd.ritual_id} already exists; change it with UpdateRitual")
        tpl = _template_for(cmd.template)
        _check_participants(view, list(cmd.participants), tpl)
        _check_time(cmd.rrule, cmd.local_time, cmd.start_date, household.time_zone, now)
        ritual = _planned(Ritual(
            id=cmd.ritual_id, household_id=view.id, template=cmd.template, title=cmd.title,
            participants=list(cmd.participants), rrule=cmd.rrule, local_time=cmd.local_time,
            start_date=cmd.start_date, time_zone=household.time_zone,
            reminder_offsets=sorted(set(cmd.reminder_offsets_minutes)), catch_up_minutes=cmd.catch_up_minutes,
            sensitive=tpl.sensitive,
        ), now)
        return Outcome(rituals=[ritual], facts=[_ritual_fact(RitualScheduled, ritual)])

    if isinstance(cmd, UpdateRitual):
        current = _needs_ritual(view, cmd.ritual_id)
        tpl = _template_for(current.template)
        changes: dict[str, Any] = {}
        for name, attr in (("participants", "participants"), ("rrule", "rrule"), ("local_time", "local_time"),
                           ("start_date", "start_date"), ("catch_up_minutes", "catch_up_minutes"),
                           ("title", "title"), ("reminder_offsets_minutes", "reminder_offsets")):
            if name in cmd.model_fields_set:
                value = getattr(cmd, name)
                if value is None and name != "title":
                    continue
                changes[attr] = list(value) if isinstance(value, list) else value
        if "reminder_offsets" in changes:
            changes["reminder_offsets"] = sorted(set(changes["reminder_offsets"]))
        updated = replace(current, **changes)
        if "participants" in changes:
            _check_participants(view, updated.participants, tpl)
            updated.consents = [m for m in updated.consents if m in updated.participants]
        _check_time(updated.rrule, updated.local_time, updated.start_date, updated.time_zone, now)
        updated = _planned(updated, now)
        return Outcome(rituals=[updated], facts=[_ritual_fact(RitualUpdated, updated)])

    if isinstance(cmd, PauseRitual):
        current = _needs_ritual(view, cmd.ritual_id)
        paused = _planned(replace(current, paused=True), now)
        return Outcome(rituals=[paused], facts=[RitualPaused(ritual_id=current.id)])

    if isinstance(cmd, ResumeRitual):
        current = _needs_ritual(view, cmd.ritual_id)
        if current.sensitive and not current.all_consented:
            waiting = len(set(current.participants) - set(current.consents))
            raise Refused(
                f"this ritual is sensitive and cannot run until every participant has consented "
                f"({waiting} still to consent)"
            )
        resumed = _planned(replace(current, paused=False), now)
        return Outcome(rituals=[resumed], facts=[RitualResumed(ritual_id=current.id, next_due_at=resumed.next_due_at)])

    if isinstance(cmd, DeleteRitual):
        current = _needs_ritual(view, cmd.ritual_id)
        return Outcome(deleted_rituals=[current.id], facts=[RitualDeleted(ritual_id=current.id)])

    if isinstance(cmd, GiveConsent | WithdrawConsent):
        current = _needs_ritual(view, cmd.ritual_id)
        if cmd.member_id not in current.participants:
            raise Refused(f"member {cmd.member_id} does not take part in this ritual, so cannot consent to it")
        if not current.sensitive:
            raise Refused(f"{current.display_title!r} is not a sensitive ritual; it needs no consent")
        consents = [m for m in current.consents if m != cmd.member_id]
        if isinstance(cmd, GiveConsent):
            consents.append(cmd.member_id)
        changed = _planned(replace(current, consents=consents), now)
        fact_cls = ConsentGiven if isinstance(cmd, GiveConsent) else ConsentWithdrawn
        return Outcome(rituals=[changed], facts=[
            fact_cls(ritual_id=current.id, member_id=cmd.member_id, state=changed.state)])

    if isinstance(cmd, EraseHousehold):
        return Outcome(erase=True, facts=[HouseholdErased(erased_at=now)])

    if isinstance(cmd, RevokeHouseholdCredentials):
        _needs_household(view)
        return Outcome(facts=[HouseholdCredentialsRevoked(not_before=now)], credentials_not_before=now)

    raise Refused(f"the scheduler does not handle {type(cmd).__name__} commands")


# ---- firing -------------------------------------------------------------------------------------


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


def _occurrence_fields(ritual: Ritual, rec: Recurrence, scheduled_for: datetime) -> dict[str, Any]:
    return {
        "occurrence_id": occurrence_id(ritual.id, scheduled_for), "ritual_id": ritual.id, "template": ritual.template,
        "title": ritual.display_title, "participants": list(ritual.participants), "scheduled_for": scheduled_for,
        "local_time": rec.to_local(scheduled_for).isoformat(), "time_zone": ritual.time_zone, "sensitive": ritual.sensitive,
    }


def late_window(catch_up_minutes: int) -> timedelta:
    return max(timedelta(minutes=catch_up_minutes), MIN_CATCH_UP)


def wake(ritual: Ritual, now: datetime, horizon: datetime | None = None) -> WakeResult:
    """Emit what is due up to `horizon` (reminders and occurrences, in time order) and advance the cursors.

    `horizon` (default `now`) lets the scheduler write events ahead of time: an event for a future instant
    carries `publish_at`, and the relay publishes it at that instant, not before. An occurrence already
    later than its catch-up window (after downtime) is emitted as OccurrenceSkipped with a reason, never
    fired late. A reminder that late is dropped (counted, not sent).
    """
    horizon = now if horizon is None or horizon < now else horizon
    result = WakeResult()
    if ritual.state is not RitualState.ACTIVE:
        ritual.next_due_at = ritual.next_reminder_at = None
        return result
    rec = ritual.recurrence()
    tpl = TEMPLATES[ritual.template]
    window = late_window(ritual.catch_up_minutes)

    if ritual.reminder_offsets and ritual.next_reminder_at is not None and ritual.next_reminder_at <= horizon:
        start = ritual.reminder_cursor or (ritual.next_reminder_at - _TICK)
        for occurrence, offset, remind_at in rec.reminders_between(start, horizon, ritual.reminder_offsets):
            if now - remind_at > window:
                result.stale_reminders += 1
                continue
            fields = _occurrence_fields(ritual, rec, occurrence)
            rid = reminder_id(fields["occurrence_id"], offset)
            result.emitted.append(Emitted(
                RitualReminder(**fields, reminder_id=rid, offset_minutes=offset, remind_at=remind_at), rid, remind_at,
                publish_at=remind_at))
        ritual.reminder_cursor = horizon
        ritual.next_reminder_at = rec.next_reminder_after(horizon, ritual.reminder_offsets)

    handled = 0
    while ritual.next_due_at is not None and ritual.next_due_at <= horizon and handled < MAX_OCCURRENCES_PER_WAKE:
        due = ritual.next_due_at
        fields = _occurrence_fields(ritual, rec, due)
        lag = now - due
        if lag > window:
            result.emitted.append(Emitted(
                OccurrenceSkipped(**fields, reason=skip_reason(lag, window)), skipped_id(fields["occurrence_id"]),
                due, "outside_catch_up"))
        else:
            deadline = due + timedelta(minutes=tpl.checkin_window_minutes)
            result.emitted.append(Emitted(
                RitualDue(**fields, deadline=deadline), fields["occurrence_id"], due, publish_at=due))
        ritual.next_due_at = rec.next_after(due)
        handled += 1

    result.emitted.sort(key=lambda e: e.at)
    return result


def skip_reason(lag: timedelta, window: timedelta) -> str:
    return (
        f"not fired: found {_human(lag)} late (after downtime), beyond this ritual's catch-up window "
        f"of {_human(window)}"
    )


def skipped_id(occurrence: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{occurrence}:skipped")


def too_late(due: RitualDue, catch_up_minutes: int, now: datetime) -> OccurrenceSkipped | None:
    """A RitualDue written ahead of time whose instant passed beyond its catch-up window (the service was
    down in between) is published as skipped instead of late."""
    window = late_window(catch_up_minutes)
    lag = now - due.scheduled_for
    if lag <= window:
        return None
    fields = due.model_dump(exclude={"deadline"})
    return OccurrenceSkipped(**fields, reason=skip_reason(lag, window))


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    return f"{minutes} min"
