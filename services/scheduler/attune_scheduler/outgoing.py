"""What the scheduler publishes, as outbox messages: the facts a command causes and the occurrences a ritual
emits, each in its envelope (ids derived from what caused it, so reprocessing cannot mint new ones).

Pure: the use cases call it (the firing batch off the event loop), the outbox repository only stores the result.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from attune_contracts import Envelope, headers_for, make_envelope, spec_of
from attune_contracts.types import Contract

from .model import Emitted, OutboxMessage, Ritual
from .recurrence import OCCURRENCE_NAMESPACE

PRODUCER = "scheduler"


def fact_event_id(command_event_id: uuid.UUID, index: int) -> uuid.UUID:
    """Facts caused by a command get ids derived from it, so reprocessing cannot mint new ones."""
    return uuid.uuid5(OCCURRENCE_NAMESPACE, f"{command_event_id}:fact:{index}")


def as_message(envelope: Envelope[Any], *, publish_at: datetime, template: str | None = None,
               due_at: datetime | None = None, ritual_id: uuid.UUID | None = None,
               catch_up_minutes: int | None = None) -> OutboxMessage:
    return OutboxMessage(
        event_id=envelope.event_id, household_id=envelope.household_id,
        topic=spec_of(type(envelope.payload)).topic.value, event_type=envelope.type,
        body=envelope.to_bytes().decode(), headers=headers_for(envelope), publish_at=publish_at,
        template=template, due_at=due_at, ritual_id=ritual_id, catch_up_minutes=catch_up_minutes,
    )


def fact_message(fact: Contract, cause: Envelope[Any], event_id: uuid.UUID, now: datetime) -> OutboxMessage:
    """A fact a command caused, published at once."""
    # A command refused for a NUL in its correlation id is answered without it (others store it as text).
    envelope = make_envelope(fact, household_id=cause.household_id, producer=PRODUCER,
                             correlation_id=cause.correlation_id.replace("\x00", ""), event_id=event_id,
                             occurred_at=now)
    return as_message(envelope, publish_at=now)


def facts_of(cause: Envelope[Any], facts: list[Contract], now: datetime) -> list[OutboxMessage]:
    return [fact_message(fact, cause, fact_event_id(cause.event_id, i), now) for i, fact in enumerate(facts)]


def occurrence_message(ritual: Ritual, item: Emitted, now: datetime) -> OutboxMessage:
    """An occurrence, reminder or skip a ritual emitted; one written ahead of time goes at its instant."""
    spec = spec_of(type(item.payload))
    # Written ahead of time, an event still says it occurred at its instant.
    occurred = item.publish_at if item.publish_at and item.publish_at > now else now
    envelope = spec.envelope(
        event_id=item.event_id, type=spec.type, version=spec.version, occurred_at=occurred,
        producer=PRODUCER, correlation_id=str(item.payload.occurrence_id),
        household_id=ritual.household_id, payload=item.payload,
    )
    return as_message(envelope, publish_at=item.publish_at or now, template=ritual.template, due_at=item.at,
                      ritual_id=ritual.id, catch_up_minutes=ritual.catch_up_minutes)
