"""Thin Kafka entry point: every scheduler command goes to the Scheduler (which decides and records)."""

from __future__ import annotations

import uuid
from typing import Any

from attune_contracts import Envelope, Publisher
from attune_contracts.messages import SchedulerCommandRejected
from attune_contracts.registry import peek
from attune_runtime.consumer import Handler, InvalidHook

from .handlers import COMMAND_TYPES
from .scheduler import Scheduler


def command_handler(scheduler: Scheduler) -> Handler:
    async def handle(envelope: Envelope[Any]) -> None:
        await scheduler.handle(envelope)

    return handle


def invalid_command_handler(publisher: Publisher) -> InvalidHook:
    """Answer a command that failed contract validation, or that the handler found permanently wrong (already
    dead-lettered), with a rejection its sender reads.

    The rejection's id is derived from the command's, so a redelivered invalid command answers with the same
    event. Bytes that are not even an envelope have nobody to answer. A NUL character is taken out of the
    correlation id (it may be why the command failed; the services that read rejections store it as text).
    """

    async def on_invalid(record: Any, reason: str) -> None:
        head = peek(record.value)
        if head is None or head.type not in COMMAND_TYPES:
            return
        await publisher.publish(
            SchedulerCommandRejected(command_event_id=head.event_id, command_type=head.type, reason=reason[:2000]),
            household_id=head.household_id,
            correlation_id=head.correlation_id.replace("\x00", "") or str(head.event_id),
            event_id=uuid.uuid5(head.event_id, "rejected"),
        )

    return on_invalid
