"""Refusals visible in a command alone, and the trust check on the members it names: pure.

`screen` runs before any row is read or locked (a NUL character, which PostgreSQL cannot store in text; a
start_date outside `START_DATE_WINDOW`; a rule or local time that cannot be valid); `decide` runs it again.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from attune_contracts import Envelope
from attune_contracts.messages import GiveConsent, ScheduleRitual, UpdateRitual, UpsertMember, WithdrawConsent
from attune_contracts.trust import TrustViolation, foreign_member, moved_member
from attune_contracts.types import Contract

from .model import HouseholdView, Refused
from .recurrence import RecurrenceError, check_rule, parse_local_time

START_DATE_WINDOW = (timedelta(days=366), timedelta(days=5 * 366))
"""A command's start_date lies at most a year before, and at most five years after, the day it is handled."""


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
