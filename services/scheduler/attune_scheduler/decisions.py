"""Which commands the scheduler accepts, and what each changes: pure, one small rule per command type.

`decide` looks the command's rule up in `RULES` (command type -> rule). A rule reads the household as loaded
(`HouseholdView`) and returns an `Outcome` (what changes, which facts to publish), or raises `Refused` with a
reason its sender can act on; `decide` turns that into a SchedulerCommandRejected. Every ritual an outcome
saves has been re-planned from `now` (waking.plan).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
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
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    PauseRitual,
    RegisterHousehold,
    ResumeRitual,
    RevokeHouseholdCredentials,
    RitualDeleted,
    RitualPaused,
    RitualResumed,
    RitualScheduled,
    RitualUpdated,
    SchedulerCommandRejected,
    ScheduleRitual,
    UpdateRitual,
    UpsertMember,
    WithdrawConsent,
)
from attune_contracts.types import Contract

from .model import Household, HouseholdView, Member, Outcome, Refused, Ritual
from .recurrence import LOOKAHEAD, Recurrence, RecurrenceError
from .screening import check_members, screen
from .waking import plan

Rule = Callable[[HouseholdView, Any, datetime], Outcome]
"""One command type's decision: (the household as loaded, the command, now) -> Outcome, or Refused."""


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


def register_household(view: HouseholdView, cmd: RegisterHousehold, now: datetime) -> Outcome:
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


def upsert_member(view: HouseholdView, cmd: UpsertMember, now: datetime) -> Outcome:
    household = _needs_household(view)
    member = Member(cmd.member_id, cmd.display_name, cmd.role)
    return Outcome(members=[member], facts=[MemberUpserted(
        member_id=cmd.member_id, display_name=cmd.display_name, role=cmd.role, time_zone=household.time_zone)])


def schedule_ritual(view: HouseholdView, cmd: ScheduleRitual, now: datetime) -> Outcome:
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


_UPDATABLE = (("participants", "participants"), ("rrule", "rrule"), ("local_time", "local_time"),
              ("start_date", "start_date"), ("catch_up_minutes", "catch_up_minutes"), ("title", "title"),
              ("reminder_offsets_minutes", "reminder_offsets"))


def update_ritual(view: HouseholdView, cmd: UpdateRitual, now: datetime) -> Outcome:
    current = _needs_ritual(view, cmd.ritual_id)
    tpl = _template_for(current.template)
    changes: dict[str, Any] = {}
    for name, attr in _UPDATABLE:
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


def pause_ritual(view: HouseholdView, cmd: PauseRitual, now: datetime) -> Outcome:
    current = _needs_ritual(view, cmd.ritual_id)
    paused = _planned(replace(current, paused=True), now)
    return Outcome(rituals=[paused], facts=[RitualPaused(ritual_id=current.id)])


def resume_ritual(view: HouseholdView, cmd: ResumeRitual, now: datetime) -> Outcome:
    current = _needs_ritual(view, cmd.ritual_id)
    if current.sensitive and not current.all_consented:
        waiting = len(set(current.participants) - set(current.consents))
        raise Refused(
            f"this ritual is sensitive and cannot run until every participant has consented "
            f"({waiting} still to consent)"
        )
    resumed = _planned(replace(current, paused=False), now)
    return Outcome(rituals=[resumed], facts=[RitualResumed(ritual_id=current.id, next_due_at=resumed.next_due_at)])


def delete_ritual(view: HouseholdView, cmd: DeleteRitual, now: datetime) -> Outcome:
    current = _needs_ritual(view, cmd.ritual_id)
    return Outcome(deleted_rituals=[current.id], facts=[RitualDeleted(ritual_id=current.id)])


def give_consent(view: HouseholdView, cmd: GiveConsent, now: datetime) -> Outcome:
    current, others = _consenting(view, cmd)
    changed = _planned(replace(current, consents=[*others, cmd.member_id]), now)
    return Outcome(rituals=[changed], facts=[
        ConsentGiven(ritual_id=current.id, member_id=cmd.member_id, state=changed.state)])


def withdraw_consent(view: HouseholdView, cmd: WithdrawConsent, now: datetime) -> Outcome:
    current, others = _consenting(view, cmd)
    changed = _planned(replace(current, consents=others), now)
    return Outcome(rituals=[changed], facts=[
        ConsentWithdrawn(ritual_id=current.id, member_id=cmd.member_id, state=changed.state)])


def _consenting(view: HouseholdView, cmd: GiveConsent | WithdrawConsent) -> tuple[Ritual, list[uuid.UUID]]:
    """The sensitive ritual a consent names, and the consents of its other participants."""
    current = _needs_ritual(view, cmd.ritual_id)
    if cmd.member_id not in current.participants:
        raise Refused(f"member {cmd.member_id} does not take part in this ritual, so cannot consent to it")
    if not current.sensitive:
        raise Refused(f"{current.display_title!r} is not a sensitive ritual; it needs no consent")
    return current, [m for m in current.consents if m != cmd.member_id]


def erase_household(view: HouseholdView, cmd: EraseHousehold, now: datetime) -> Outcome:
    return Outcome(erase=True, facts=[HouseholdErased(erased_at=now)])


def revoke_credentials(view: HouseholdView, cmd: RevokeHouseholdCredentials, now: datetime) -> Outcome:
    _needs_household(view)
    return Outcome(facts=[HouseholdCredentialsRevoked(not_before=now)], credentials_not_before=now)


RULES: dict[type[Contract], Rule] = {
    RegisterHousehold: register_household,
    UpsertMember: upsert_member,
    ScheduleRitual: schedule_ritual,
    UpdateRitual: update_ritual,
    PauseRitual: pause_ritual,
    ResumeRitual: resume_ritual,
    DeleteRitual: delete_ritual,
    GiveConsent: give_consent,
    WithdrawConsent: withdraw_consent,
    EraseHousehold: erase_household,
    RevokeHouseholdCredentials: revoke_credentials,
}


def _decide(view: HouseholdView, cmd: Contract, now: datetime) -> Outcome:
    if view.erased_at is not None:
        if isinstance(cmd, EraseHousehold):
            # Nothing is left to delete; said again, so that every service holds the tombstone.
            return Outcome(facts=[HouseholdErased(erased_at=view.erased_at)])
        raise Refused(erased_reason(view.erased_at))
    rule = RULES.get(type(cmd))
    if rule is None:
        raise Refused(f"the scheduler does not handle {type(cmd).__name__} commands")
    return rule(view, cmd, now)


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
