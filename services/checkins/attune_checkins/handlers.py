"""Thin Kafka entry points: the reliable consumer parses and validates; the use cases do the rest."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from attune_contracts import Envelope

from .usecases import CheckinsService

COMMAND_TYPES = frozenset({"checkins.submit_checkin", "checkins.log_moment", "checkins.record_achievement"})


def make_handler(service: CheckinsService):  # type: ignore[no-untyped-def]
    async def handle(envelope: Envelope[Any]) -> None:
        await service.handle(envelope)

    return handle


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def make_invalid_hook(service: CheckinsService):  # type: ignore[no-untyped-def]
    """An invalid check-ins command (rating 9, a note too long) is dead-lettered by the consumer;
    this also tells its sender why, as a CheckInCommandRejected, when the envelope says who sent it."""

    async def on_invalid(record: Any, reason: str) -> None:
        try:
            head = json.loads(record.value)
        except (TypeError, ValueError):
            return  # not JSON at all: nobody to answer
        if not isinstance(head, dict) or head.get("type") not in COMMAND_TYPES:
            return
        event_id, household_id = _uuid(head.get("event_id")), _uuid(head.get("household_id"))
        if event_id is None or household_id is None:
            return
        payload = head.get("payload") if isinstance(head.get("payload"), dict) else {}
        await service.reject_invalid(
            event_id=event_id, household_id=household_id, command_type=str(head["type"]), reason=reason,
            member_id=_uuid(payload.get("member_id")),
            correlation_id=str(head.get("correlation_id") or event_id)[:128],
        )

    return on_invalid
