"""Events decided in one unit of work, with ids derived from their cause, and the outbox rows they become.

A redelivered message, a relay restart or a retried request derives the same ids again, so consumers can
dedupe on event id. The rows are what the outbox relay sends: the envelope already serialised, its headers,
its topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from attune_contracts.publisher import headers_for
from attune_contracts.registry import spec_of
from attune_contracts.types import Contract

from .model import derived_id


class CausedEvents:
    """The events one cause (a message, a request, a token, a deadline) decided, in order."""

    def __init__(self, cause: UUID | str, household_id: UUID, correlation_id: str) -> None:
        self.cause, self.household_id, self.correlation_id = cause, household_id, correlation_id
        self.events: list[tuple[Contract, UUID]] = []

    def add(self, payload: Contract, event_id: UUID | None = None) -> None:
        self.events.append((payload, event_id or derived_id("out", self.cause, len(self.events))))

    def payloads(self) -> list[Contract]:
        return [payload for payload, _ in self.events]


def outbox_rows(bags: Iterable[CausedEvents], *, now: datetime, producer: str) -> list[dict[str, Any]]:
    """The outbox rows of these events, in order."""
    rows = []
    for bag in bags:
        for payload, event_id in bag.events:
            spec = spec_of(type(payload))
            # What make_envelope builds (and validates), without looking up the generic class per event.
            envelope = spec.envelope(
                event_id=event_id, type=spec.type, version=spec.version, occurred_at=now,
                producer=producer, correlation_id=bag.correlation_id or str(event_id),
                household_id=bag.household_id, payload=payload,
            )
            rows.append({"event_id": event_id, "household_id": bag.household_id, "topic": spec.topic.value,
                         "event_type": spec.type, "body": envelope.to_bytes().decode(),
                         "headers": headers_for(envelope), "created_at": now})
    return rows
