"""The outbox as the relay reads it: rows due now claimed in id order (within this instance's shards) and
deleted by the transaction that publishes them; rows due soon read ahead into memory.

On PostgreSQL batches may overlap and the shards are leased (shards.py); SQLite has one process and one relay:
every shard, no locks, one transaction at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from sys import intern
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..model import OutboxRow
from .shards import ShardLeases, shard_of
from .tables import BigId, UtcDateTime, outbox

_RELAY_COLUMNS = (outbox.c.id, outbox.c.event_id, outbox.c.topic, outbox.c.household_id, outbox.c.body,
                  outbox.c.headers, outbox.c.event_type, outbox.c.template, outbox.c.due_at,
                  outbox.c.catch_up_minutes, outbox.c.publish_at)


class SqlRelayOutbox:
    def __init__(self, engine: AsyncEngine, transaction: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
                 relay_shards: int) -> None:
        self.engine, self._tx = engine, transaction
        self.postgres = engine.dialect.name == "postgresql"
        self.concurrent = self.postgres
        self.relay_shard_count = relay_shards
        self.leases = ShardLeases(engine, relay_shards) if self.postgres else None

    async def shards(self) -> frozenset[int] | None:
        """The shards this instance's relay may publish now; None: all of them (SQLite, one process).

        Called at the start of every relay pass: it takes free shards up to a fair share, and gives back the
        ones above it, so a new instance gets its share and a dead one's shards are taken within a poll.
        """
        if self.leases is None:
            return None
        return await self.leases.refresh()

    async def release_shards(self) -> None:
        """Give back every shard (the relay stopped); others take them at their next poll."""
        if self.leases is not None:
            await self.leases.release()

    @contextlib.asynccontextmanager
    async def claim(
        self, limit: int, now: datetime, read_ahead: MutableMapping[int, OutboxRow],
        shards: frozenset[int] | None = None, after: int | None = None,
    ) -> AsyncIterator[list[OutboxRow]]:
        """The oldest rows due by `now` (at most `limit`) in `shards` (None: all), after id `after`, deleted in a
        transaction that commits when the block ends: publish inside it. A failure rolls back and the rows go
        again later (at least once, with the same event ids).

        On PostgreSQL the rows are locked without skipping: a row still held by another transaction (the last
        batch of an instance whose shard this one has just taken) is waited for, never overtaken; the relay's
        own overlapping batches do not meet, as each claims after the last id of the one before (`after`). The
        shards are checked to be still this instance's after the rows are locked: if its lock connection died
        meanwhile (another may own them now), the batch rolls back unpublished (`ShardLost`).

        Rows already in `read_ahead` are taken from it (popped); only the others are read here.
        """
        async with self._tx() as conn:
            query = sa.select(outbox.c.id, outbox.c.event_id).where(outbox.c.publish_at <= now)
            if self.postgres:
                if shards is not None:
                    if not shards:
                        yield []
                        return
                    if len(shards) < self.relay_shard_count:  # holding them all (one instance): no filter
                        query = query.where(shard_of(self.relay_shard_count) == sa.any_(
                            sa.bindparam("shards", sorted(shards), type_=ARRAY(sa.Integer))))
                if after is not None:
                    query = query.where(outbox.c.id > after)
                query = query.order_by(outbox.c.id).limit(limit).with_for_update()
            else:  # one process, one transaction at a time
                query = query.order_by(outbox.c.id).limit(limit)
            claimed = [(r.id, r.event_id) for r in await conn.execute(query)]
            if not claimed:
                yield []
                return
            if shards is not None and self.leases is not None:
                await self.leases.verify(conn, shards)
            # A row in memory counts only if it is the same event: SQLite reuses the id of a deleted last row.
            ready = {i: row for i, event_id in claimed
                     if (row := read_ahead.pop(i, None)) is not None and row.event_id == event_id}
            missing = [i for i, _ in claimed if i not in ready]
            if missing:
                ready.update((row.id, row) for row in await self._outbox_rows(conn, self._id_in(missing)))
            await conn.execute(outbox.delete().where(self._id_in([i for i, _ in claimed])))
            yield [ready[i] for i, _ in claimed]

    async def read_ahead(self, after: tuple[datetime, int] | None, until: datetime, limit: int) -> list[OutboxRow]:
        """Unsent rows to be published by `until`, in (publish_at, id) order after `after`: what the relay keeps
        in memory ahead of their instant."""
        conditions = [outbox.c.publish_at <= until]
        if after is not None:
            conditions.append(sa.tuple_(outbox.c.publish_at, outbox.c.id) > sa.tuple_(
                sa.literal(after[0], UtcDateTime), sa.literal(after[1], BigId)))
        async with self.engine.connect() as conn:
            return await self._outbox_rows(conn, *conditions, order_by=(outbox.c.publish_at, outbox.c.id),
                                           limit=limit)

    def _id_in(self, ids: list[int]) -> Any:
        if self.postgres:  # one array parameter instead of thousands of bound values
            return outbox.c.id == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(sa.BigInteger)))
        return outbox.c.id.in_(ids)

    @staticmethod
    async def _outbox_rows(
        conn: AsyncConnection, *where: Any, order_by: Sequence[Any] = (), limit: int | None = None
    ) -> list[OutboxRow]:
        query = sa.select(*_RELAY_COLUMNS).where(*where).order_by(*order_by).limit(limit)
        # Rows read ahead stay in memory (~1.7 KB each): the strings every row repeats are shared, not copied.
        return [
            OutboxRow(r.id, r.event_id, intern(r.topic), str(r.household_id).encode(), r.body.encode(),
                      {intern(k): v for k, v in r.headers.items()}, intern(r.event_type),
                      intern(r.template) if r.template else None, r.due_at, r.household_id, r.catch_up_minutes,
                      r.publish_at)
            for r in await conn.execute(query)
        ]

    async def next_publish_at(self) -> datetime | None:
        """When the earliest row written ahead of time becomes due for publishing."""
        async with self.engine.connect() as conn:
            return (await conn.execute(
                sa.select(sa.func.min(outbox.c.publish_at))
            )).scalar()
