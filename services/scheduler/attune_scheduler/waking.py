"""What a ritual emits when it wakes, and where its cursors move: pure, no clock, no I/O.

`plan` points a ritual's cursors at its next occurrence and reminder (after a command changed it); `wake`
emits what is due up to a horizon and advances them (the firing loop); `too_late` turns an occurrence written
ahead of time into OccurrenceSkipped when the relay finds it beyond its catch-up window. Every recurrence
look-up is bounded (recurrence.py), so each call stays short.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from attune_contracts.catalog import TEMPLATES
from attune_contracts.messages import OccurrenceSkipped, RitualDue, RitualReminder, RitualState

from .model import Emitted, Ritual, WakeResult
from .recurrence import OCCURRENCE_NAMESPACE, Recurrence, occurrence_id, reminder_id

MIN_CATCH_UP = timedelta(minutes=1)
"""Even a catch-up window of 0 tolerates this much lag: firing always takes a moment."""
MAX_OCCURRENCES_PER_WAKE = 200
"""After a very long outage a ritual is worked through in slices, so one claim stays short."""


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
