"""What the check-ins use cases need from the outside world."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple, Protocol
from uuid import UUID


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class OutboxRow(NamedTuple):
    """An event waiting in the outbox: its envelope already serialised, as it will be sent."""

    id: int
    event_id: UUID
    household_id: UUID
    topic: str
    value: bytes
    headers: dict[str, str]


Record = tuple[str, bytes, bytes, Mapping[str, str]]
"""(topic, key, value, headers), as attune_runtime.producer.BatchProducer.send_all takes them"""


class RecordSink(Protocol):
    """Where the relay publishes: the BatchProducer in production; tests pass a fake that records."""

    async def send_all(self, records: Sequence[Record]) -> None: ...
