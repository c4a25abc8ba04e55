"""The check-ins store on SQLAlchemy 2 async (SQLite by default, PostgreSQL in production and tests): the engine,
units of work (adapters/unit_of_work.py, a repository per aggregate) and what the outbox relay reads.

The outbox: every transaction that decides events writes them to `checkins_outbox` before it commits
(`SqlOutbox.add`, in the unit of work); the relay reads the oldest rows, publishes them and then deletes them. The relay's order
is the rows' id order, and two things make that the order of the commits, per household:
- on PostgreSQL the writer takes a transaction-scoped advisory lock on the household's shard (one of
  `OUTBOX_SHARDS`, in ascending order, once per transaction, just before inserting) and holds it until it
  commits, so a later transaction of the same household gets larger ids and commits after it; the relay
  can never see a household's row while an earlier one of that household is still uncommitted. SQLite has
  one writer at a time, so ids follow commits anyway.
- only one relay publishes at a time: on PostgreSQL it holds a session advisory lock (`_RELAY_LOCK`) for its
  whole pass (other instances' relays skip their turn); SQLite has one process.
The relay holds no transaction while it waits for the broker, so a broker outage blocks nobody.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from attune_runtime.sql import make_engine as shared_make_engine
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

from ..ports import OutboxRow
from . import tables as t
from .notes import NoteCipher
from .statements import OUTBOX_SHARDS, chunks
from .unit_of_work import SqlUnitOfWork

__all__ = ["OUTBOX_SHARDS", "NoteCipher", "SqlStore", "make_engine"]

_RELAY_LOCK = 4172002


def make_engine(url: str) -> AsyncEngine:
    return shared_make_engine(
        url, server={"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True},
        # One connection: SQLite has one writer anyway, and serialising here means no "database is locked".
        sqlite={"pool_size": 1, "max_overflow": 0, "pool_timeout": 60, "connect_args": {"timeout": 30}},
        sqlite_memory={"poolclass": StaticPool})


class SqlStore:
    def __init__(self, engine: AsyncEngine, cipher: NoteCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    def unit_of_work(self) -> SqlUnitOfWork:
        """One transaction: `async with store.unit_of_work() as uow: ...` (ports.UnitOfWork)."""
        return SqlUnitOfWork(self.engine, self.cipher)

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))
        return True

    async def close(self) -> None:
        await self.engine.dispose()

    # ---- the outbox relay -------------------------------------------------------------------------

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def relay_turn(self) -> AsyncIterator[bool]:
        """One relay at a time across instances, so each household's events leave in order. On PostgreSQL a
        session advisory lock on its own connection, outside any transaction, for the whole pass; False while
        another instance's relay holds it (a crashed holder's session ends and frees it). SQLite: always True."""
        if not self.postgres:
            yield True
            return
        async with self.engine.connect() as conn:
            got = bool((await conn.execute(text(f"SELECT pg_try_advisory_lock({_RELAY_LOCK})"))).scalar())
            await conn.commit()
            try:
                yield got
            finally:
                if got:
                    try:
                        await conn.execute(text(f"SELECT pg_advisory_unlock({_RELAY_LOCK})"))
                        await conn.commit()
                    except BaseException:
                        await conn.invalidate()  # closing the session releases the lock
                        raise

    async def outbox_rows(self, limit: int) -> list[OutboxRow]:
        """The oldest unpublished events, in the order they must leave."""
        o = t.outbox.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(o.id, o.event_id, o.household_id, o.topic, o.body, o.headers).order_by(o.id).limit(limit)
            )).all()
        return [OutboxRow(r.id, r.event_id, r.household_id, r.topic, r.body.encode(), dict(r.headers)) for r in rows]

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        """Forget rows the broker has acknowledged."""
        async with self.engine.begin() as conn:
            if self.postgres:  # one array parameter instead of hundreds of bound values
                await conn.execute(text("DELETE FROM checkins_outbox WHERE id = ANY(CAST(:ids AS bigint[]))"),
                                   {"ids": list(ids)})
                return
            for chunk in chunks(list(ids)):
                await conn.execute(delete(t.outbox).where(t.outbox.c.id.in_(chunk)))

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        """How many events wait to be published, and when the oldest of them was written."""
        async with self.engine.connect() as conn:
            count, oldest = (await conn.execute(
                select(func.count(), func.min(t.outbox.c.created_at)).select_from(t.outbox)
            )).one()
        return int(count), oldest
