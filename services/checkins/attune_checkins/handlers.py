"""Thin Kafka entry points: the reliable consumer parses and validates; the use cases do the rest."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from attune_contracts import Envelope
from attune_contracts.registry import peek

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
        head = peek(record.value)
        if head is None or head.type not in COMMAND_TYPES:
            return  # not an envelope that says who sent it: nobody to answer
        await service.reject_invalid(
            event_id=head.event_id, household_id=head.household_id, command_type=head.type, reason=reason,
            member_id=_uuid(head.payload.get("member_id")), correlation_id=head.correlation_id,
        )

    return on_invalid
