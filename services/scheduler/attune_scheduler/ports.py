"""What the scheduler needs from the world, as Protocols (the adapters and the test fakes implement them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outgoing message, as the relay reads it from the outbox."""

    id: int
    event_id: uuid.UUID
    topic: str
    key: bytes
    value: bytes
    headers: dict[str, str]
    event_type: str
    template: str | None
    due_at: datetime | None
    household_id: uuid.UUID | None = None
    catch_up_minutes: int | None = None
    publish_at: datetime | None = None


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def wait_until(self, deadline: datetime, wake: asyncio.Event) -> None: ...


class Sink(Protocol):
    """Publishes outbox rows in order; when the call returns, every row is acknowledged by the broker.

    The relay overlaps calls (the next batch is handed over while the last is acknowledged): rows of a later
    call must not overtake an earlier call's. A sink may also offer `async prepare(rows)`, which the relay
    calls for rows it reads ahead of their instant (the Kafka sink works out their partitions there).
    """

    async def __call__(self, rows: Sequence[OutboxRow]) -> None: ...
