"""What the scheduler needs from the world, as Protocols: the SQL adapters and the test fakes implement them.

A use case works inside one `UnitOfWork`: it loads through the repositories (one per aggregate), records the
messages to publish (`record`), and `commit()`s; leaving the block without committing rolls everything back.
The relay reads the outbox through `RelayOutbox` and hands rows to a `Sink`; everything asks a `Clock`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, Self

from .model import Household, HouseholdView, Member, OutboxMessage, OutboxRow, Ritual


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def wait_until(self, deadline: datetime, wake: asyncio.Event) -> None: ...


class Households(Protocol):
    async def load(self, household_id: uuid.UUID, named: Iterable[uuid.UUID] = (), *,
                   lock: bool = True) -> HouseholdView:
        """The household, its members and rituals (locked against the firing loop until commit), its tombstone,
        and the households of the `named` members that live elsewhere."""
        ...

    async def save(self, household: Household, now: datetime) -> None: ...

    async def save_member(self, household_id: uuid.UUID, member: Member) -> None: ...

    async def erase(self, household_id: uuid.UUID, now: datetime) -> None:
        """Delete the household with its members, rituals and unsent messages; keep its tombstone."""
        ...

    async def revoke_credentials(self, household_id: uuid.UUID, not_before: datetime) -> None:
        """Refuse credentials issued before `not_before` (only ever moved later)."""
        ...


class Rituals(Protocol):
    async def save(self, ritual: Ritual, now: datetime) -> None: ...

    async def delete(self, ritual_ids: Sequence[uuid.UUID]) -> None: ...

    async def claim_due(self, horizon: datetime, limit: int) -> list[Ritual]:
        """Up to `limit` rituals that wake by `horizon`, earliest first, held until commit (others skip them)."""
        ...

    async def advance(self, rituals: Sequence[Ritual], now: datetime) -> None:
        """Store the claimed rituals' moved cursors."""
        ...


class Outbox(Protocol):
    async def add(self, messages: Sequence[OutboxMessage], now: datetime) -> None:
        """Store messages to publish (a message whose event id is already there is left as it is)."""
        ...

    async def drop_ahead(self, ritual_ids: Sequence[uuid.UUID], after: datetime) -> None:
        """Forget what was written ahead of time for these rituals, to be published after `after`."""
        ...


class ProcessedCommands(Protocol):
    async def seen(self, event_id: uuid.UUID) -> bool: ...

    async def mark(self, event_id: uuid.UUID, command_type: str, outcome: str, now: datetime) -> None: ...


class UnitOfWork(Protocol):
    households: Households
    rituals: Rituals
    outbox: Outbox
    commands: ProcessedCommands
    recorded: list[OutboxMessage]
    """What this unit has collected to publish; `commit` writes it to the outbox with everything else."""

    def record(self, messages: Iterable[OutboxMessage]) -> None: ...

    async def commit(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class RelayOutbox(Protocol):
    """The outbox as the relay sees it: claimed in id order within this instance's shards, read ahead."""

    concurrent: bool
    """Whether batches may overlap (several transactions at once); False on SQLite (one writer)."""

    async def shards(self) -> frozenset[int] | None:
        """The shards this instance may publish now (None: all of them)."""
        ...

    async def release_shards(self) -> None: ...

    def claim(self, limit: int, now: datetime, read_ahead: MutableMapping[int, OutboxRow],
              shards: frozenset[int] | None = None, after: int | None = None,
              ) -> AbstractAsyncContextManager[list[OutboxRow]]:
        """The oldest rows due by `now`, deleted in a transaction that commits when the block ends."""
        ...

    async def read_ahead(self, after: tuple[datetime, int] | None, until: datetime, limit: int) -> list[OutboxRow]: ...

    async def next_publish_at(self) -> datetime | None: ...


class Reads(Protocol):
    """What the loops and the HTTP API read outside any unit of work (nothing locked)."""

    async def household(self, household_id: uuid.UUID) -> tuple[HouseholdView, int]:
        """The household as stored, and how many of its messages wait to be published."""
        ...

    async def credentials_not_before(self, household_id: uuid.UUID) -> datetime | None: ...

    async def next_wake_at(self) -> datetime | None: ...

    async def active_by_template(self) -> dict[str, int]: ...

    async def outbox_backlog(self) -> int: ...


class Sink(Protocol):
    """Publishes outbox rows in order; when the call returns, every row is acknowledged by the broker.

    The relay overlaps calls (the next batch is handed over while the last is acknowledged): rows of a later
    call must not overtake an earlier call's. A sink may also offer `async prepare(rows)`, which the relay
    calls for rows it reads ahead of their instant (the Kafka sink works out their partitions there).
    """

    async def __call__(self, rows: Sequence[OutboxRow]) -> None: ...
