"""What the check-ins use cases need from the outside world."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from attune_contracts.types import Contract


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Outgoing(NamedTuple):
    """One event to publish, with what its envelope needs."""

    payload: Contract
    household_id: UUID
    correlation_id: str | None
    event_id: UUID | None


class EventSink(Protocol):
    """attune_contracts.Publisher fits; tests pass a fake that records what was published."""

    async def publish(
        self, payload: Contract, *, household_id: UUID, correlation_id: str | None = None,
        event_id: UUID | None = None,
    ) -> Any: ...


class BatchEventSink(EventSink, Protocol):
    """A sink that can also publish many events at once, in order, returning when all are acknowledged
    (the service uses it when the sink has it; otherwise it publishes them one by one)."""

    async def publish_all(self, events: Sequence[Outgoing]) -> None: ...
