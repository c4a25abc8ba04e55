"""What Attune accepts as a ritual's rule, start time, start date and zone, checked as text: every refusal
says why in words for people (RecurrenceError.reason). recurrence.py turns accepted rules into instants."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_PER_DAY = 4
"""A ritual of connection is a few moments a day at most; more than this is a mistake or abuse."""
LOOKAHEAD = timedelta(days=3653)
"""How far one look-up searches: ten years (a 29 February ritual waits eight years across 2100)."""
MAX_COUNT = 5000
"""COUNT at most this (daily for ten years is 3,653); leave COUNT out for a ritual without end."""
MAX_LIST_VALUES = 31
"""Values in one BY* list at most (BYMONTHDAY needs 31); dateutil's work per day grows with them."""
MAX_SETPOS_VALUES = 7
"""BYSETPOS values at most: dateutil re-filters a whole period once for each of them."""
MIN_START_DATE = date(1970, 1, 1)
MAX_START_DATE = date(2999, 12, 31)

# The rule parts we accept. BYSECOND: Attune schedules to the minute. DTSTART comes from start_date +
# local_time. BYEASTER is a dateutil extension, not RFC 5545.
_ALLOWED_PARTS = {
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYYEARDAY",
    "BYWEEKNO", "BYSETPOS", "WKST", "BYHOUR", "BYMINUTE",
}
_LIST_PARTS = {"BYDAY", "BYMONTHDAY", "BYMONTH", "BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE"}
_TOO_FREQUENT = {"SECONDLY", "MINUTELY", "HOURLY"}
_FREQS = {"YEARLY", "MONTHLY", "WEEKLY", "DAILY", *_TOO_FREQUENT}
_ZONE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")
_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,9}$")
_SIGNED = re.compile(r"^[+-]?[0-9]{1,3}$")
_WEEKDAY = re.compile(r"^([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
# Magnitudes allowed in each numeric BY* list (RFC 5545 3.3.10); zero only where it is a time of day.
_NUMBER_RANGES = {
    "BYMONTHDAY": (1, 31), "BYMONTH": (1, 12), "BYYEARDAY": (1, 366), "BYWEEKNO": (1, 53), "BYSETPOS": (1, 366),
    "BYHOUR": (0, 23), "BYMINUTE": (0, 59),
}
_UNSIGNED = {"BYMONTH", "BYHOUR", "BYMINUTE"}
_UNTIL_UTC = re.compile(r"^(\d{8})T(\d{6})Z$")
_UNTIL_LOCAL = re.compile(r"^(\d{8})T(\d{6})$")
_UNTIL_DATE = re.compile(r"^(\d{8})$")
# Past the supported start dates plus every window and margin, yet far from datetime.max: no overflow.
LAST_LOCAL = datetime(9000, 1, 1)
LAST_INSTANT = LAST_LOCAL.replace(tzinfo=UTC)
FIRST_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)


class RecurrenceError(ValueError):
    """A rule, time or zone that Attune will not schedule. `reason` is written for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or RecurrenceError saying why not."""
    if (not isinstance(name, str) or len(name) > 64 or not _ZONE_SHAPE.match(name)
            or name in {"localtime", "posixrules", "Factory"}):
        shown = name[:64] + "..." if isinstance(name, str) and len(name) > 64 else name
        raise RecurrenceError(f"{shown!r} is not an IANA time zone name (for example 'Europe/London')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory of zones, e.g. 'America'
        raise RecurrenceError(f"unknown IANA time zone {name!r} (for example 'America/New_York')") from None


def parse_local_time(text: str) -> time:
    match = _LOCAL_TIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise RecurrenceError(f"local time {text!r} must be HH:MM on a 24-hour clock, for example '20:30'")
    return time(int(match.group(1)), int(match.group(2)))


def check_start_date(start_date: date) -> None:
    if not isinstance(start_date, date) or isinstance(start_date, datetime):
        raise RecurrenceError("start_date must be a calendar date, for example 2027-03-13")
    if not MIN_START_DATE <= start_date <= MAX_START_DATE:
        raise RecurrenceError(
            f"start_date {start_date.isoformat()} is out of range: Attune schedules from "
            f"{MIN_START_DATE.isoformat()} to {MAX_START_DATE.isoformat()}"
        )


def check_rule(text: str) -> None:
    """RecurrenceError if `text` cannot be a valid rule whatever the zone and start date."""
    split_rule(text)


def split_rule(text: str) -> dict[str, str]:
    """The rule's parts, checked for everything that does not need the zone or the start date."""
    if not isinstance(text, str) or not text.strip():
        raise RecurrenceError("the recurrence rule is empty; for example 'FREQ=WEEKLY;BYDAY=FR'")
    body = text.strip()
    if "\n" in body or "\r" in body:
        raise RecurrenceError("give one RRULE line only (no DTSTART, RDATE or EXDATE lines)")
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "DTSTART" in body.upper():
        raise RecurrenceError(
            "DTSTART does not belong inside the rule: the first day is start_date and the time is local_time"
        )
    parts: dict[str, str] = {}
    for chunk in body.split(";"):
        if not chunk:
            continue
        name, sep, value = chunk.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise RecurrenceError(f"invalid RRULE: {clip(chunk)!r} is not NAME=VALUE")
        if name in parts:
            raise RecurrenceError(f"invalid RRULE: {name} appears twice")
        if name == "BYSECOND":
            raise RecurrenceError("BYSECOND is not supported: rituals are scheduled to the minute")
        if name not in _ALLOWED_PARTS:
            raise RecurrenceError(f"invalid RRULE: unknown or unsupported part {clip(name)!r}")
        parts[name] = value.strip().upper()
    if "FREQ" not in parts:
        raise RecurrenceError("invalid RRULE: FREQ is missing; for example 'FREQ=DAILY' or 'FREQ=WEEKLY;BYDAY=FR'")
    if parts["FREQ"] not in _FREQS:
        raise RecurrenceError(f"invalid RRULE: FREQ={clip(parts['FREQ'])} is not a frequency")
    if parts["FREQ"] in _TOO_FREQUENT:
        raise RecurrenceError(
            f"FREQ={parts['FREQ']} is too frequent for a ritual: use DAILY, WEEKLY, MONTHLY or YEARLY "
            f"(at most {MAX_PER_DAY} times a day)"
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("invalid RRULE: use COUNT or UNTIL, not both")
    for name in _LIST_PARTS & parts.keys():
        if _count_list(parts, name) > MAX_LIST_VALUES:
            raise RecurrenceError(f"invalid RRULE: {name} lists more than {MAX_LIST_VALUES} values")
    for name, (low, high) in _NUMBER_RANGES.items():
        for value in parts.get(name, "").split(","):
            if value and (not _SIGNED.match(value) or not low <= abs(int(value)) <= high
                          or (value.startswith("-") and name in _UNSIGNED)):
                raise RecurrenceError(f"invalid RRULE: {name} value {clip(value)!r} is out of range")
    for value in parts.get("BYDAY", "").split(","):
        day = _WEEKDAY.match(value)
        if value and (not day or (day.group(1) and not 1 <= abs(int(day.group(1))) <= 53)):
            raise RecurrenceError(f"invalid RRULE: BYDAY value {clip(value)!r} is not a weekday like MO, 1FR or -1SU")
    if _count_list(parts, "BYSETPOS") > MAX_SETPOS_VALUES:
        raise RecurrenceError(f"invalid RRULE: BYSETPOS lists more than {MAX_SETPOS_VALUES} values")
    per_day = _count_list(parts, "BYHOUR") * _count_list(parts, "BYMINUTE")
    if per_day > MAX_PER_DAY:
        raise RecurrenceError(
            f"this rule fires up to {per_day} times a day; a ritual may happen at most {MAX_PER_DAY} times a day"
        )
    if "COUNT" in parts:
        if not _WHOLE_NUMBER.match(parts["COUNT"]):
            raise RecurrenceError(f"invalid RRULE: COUNT={clip(parts['COUNT'])} must be a whole number")
        if not 1 <= int(parts["COUNT"]) <= MAX_COUNT:
            raise RecurrenceError(
                f"invalid RRULE: COUNT={parts['COUNT']} must be from 1 to {MAX_COUNT} "
                "(leave COUNT out for a ritual without end)"
            )
    if "INTERVAL" in parts and (not _WHOLE_NUMBER.match(parts["INTERVAL"])
                                or not 1 <= int(parts["INTERVAL"]) <= 1000):
        raise RecurrenceError(
            f"invalid RRULE: INTERVAL={clip(parts['INTERVAL'])} must be a whole number from 1 to 1000")
    return parts


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _count_list(parts: dict[str, str], name: str) -> int:
    return len([v for v in parts[name].split(",") if v]) if name in parts else 1


def local_until(value: str, tz: ZoneInfo) -> str:
    """UNTIL as naive local time, since the rule is expanded in naive local time. Past `LAST_LOCAL`: no end."""
    try:
        if m := _UNTIL_UTC.match(value):
            instant = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            if instant >= LAST_INSTANT:
                local = LAST_LOCAL
            elif instant < FIRST_INSTANT:  # before any start date: the rule ends before it begins
                local = FIRST_INSTANT.replace(tzinfo=None)
            else:
                local = instant.astimezone(tz).replace(tzinfo=None)
        elif m := _UNTIL_LOCAL.match(value):
            local = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
        elif m := _UNTIL_DATE.match(value):
            # A DATE is inclusive of that whole day (RFC 5545).
            local = datetime.strptime(m.group(1), "%Y%m%d").replace(hour=23, minute=59, second=59)
        else:
            local = None
    except (ValueError, OverflowError):
        local = None
    if local is None:
        raise RecurrenceError(
            f"invalid RRULE: UNTIL={clip(value)} must be a date (20271231) or a UTC time (20271231T230000Z)")
    return min(local, LAST_LOCAL).strftime("%Y%m%dT%H%M%S")


