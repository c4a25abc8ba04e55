"""Relay shards (PostgreSQL): which instance publishes which households' outbox rows.

A row's shard is abs(hashtext(household_id) % N), N = ATTUNE_SCHEDULER_RELAY_SHARDS, worked out by the
database, so the row layout is unchanged and all of a household's rows share one shard. Each shard is
published by the one instance holding its session advisory lock (`ShardLeases`), in id order, so N instances
publish side by side and each household's events keep their order; a dead instance's connection closes, its
locks go with it, and the others take its shards at their next poll.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .tables import outbox

log = logging.getLogger("attune.scheduler")

SHARD_LOCK = 810_102  # (810102, shard): held by the instance whose relay publishes that shard
RELAY_PRESENCE = 810_103  # (810103, shard count): held shared by every running relay
DEFAULT_RELAY_SHARDS = 16


class ShardLost(RuntimeError):
    """A relay batch found its shard no longer held by this instance (its lock connection died): not published."""


def shard_of(shards: int) -> Any:
    """A row's relay shard, worked out by the database from its household (so every instance agrees, and all of
    a household's rows share one shard), with no column to keep in step when the shard count changes."""
    return sa.func.abs(sa.func.hashtext(sa.cast(outbox.c.household_id, sa.Text)) % shards)


_TAKEN = (
    "SELECT objid::int8 AS shard FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid::int8 = :cls"
)
_HELD = sa.text(_TAKEN + " AND pid = :pid")
_PRESENCE = sa.text(
    "SELECT objid::int8 AS shards, count(DISTINCT pid) AS relays FROM pg_locks"
    " WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::int8 = :cls GROUP BY objid"
)


class ShardLeases:
    """The relay shards one instance holds: PostgreSQL session advisory locks (810102, shard) on a connection
    of their own, kept open while the relay runs.

    Every running relay also holds (810103, shard count) in shared mode: its presence, so each can count the
    relays and take a fair share, ceil(shards / relays); one holding more gives the surplus back between
    passes, one holding fewer try-locks free ones. When an instance dies its connection closes and PostgreSQL
    drops its locks: the others take its shards at their next poll. Relays configured with different shard
    counts would split households differently, so while they disagree none of them publishes (logged).
    """

    def __init__(self, engine: AsyncEngine, shards: int) -> None:
        self.engine, self.shards = engine, shards
        self.conn: AsyncConnection | None = None
        self.pid: int | None = None
        self.held: set[int] = set()

    async def refresh(self) -> frozenset[int]:
        try:
            if self.conn is None:
                self.conn = await self.engine.connect()
                self.pid = (await self.conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
                await self.conn.execute(sa.text("SELECT pg_advisory_lock_shared(:cls, :n)"),
                                        {"cls": RELAY_PRESENCE, "n": self.shards})
            conn = self.conn
            relays = {r.shards: r.relays for r in await conn.execute(_PRESENCE, {"cls": RELAY_PRESENCE})}
            if set(relays) != {self.shards}:
                log.error("relays disagree on the shard count (%s): publishing nothing until they agree",
                          sorted(relays))
                fair = 0
            else:
                fair = -(-self.shards // max(1, relays[self.shards]))
            for shard in sorted(self.held, reverse=True)[:max(0, len(self.held) - fair)]:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:cls, :s)"), {"cls": SHARD_LOCK, "s": shard})
                self.held.discard(shard)
            assert self.pid is not None  # noqa: S101 - narrows a type; set when the lock connection opened
            taken: set[int] = set()
            if len(self.held) < fair:  # try only shards nobody holds, not every shard on every pass
                taken = {r.shard for r in await conn.execute(sa.text(_TAKEN), {"cls": SHARD_LOCK})}
            start = self.pid % self.shards  # instances start their search at different shards
            for step in range(self.shards):
                if len(self.held) >= fair:
                    break
                shard = (start + step) % self.shards
                if shard not in self.held and shard not in taken and (await conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:cls, :s)"), {"cls": SHARD_LOCK, "s": shard}
                )).scalar_one():
                    self.held.add(shard)
            await conn.commit()  # session locks outlive the transaction; nothing is left open
        except BaseException:
            await self._drop()
            raise
        return frozenset(self.held)

    async def verify(self, conn: AsyncConnection, shards: frozenset[int]) -> None:
        """Inside a claim's transaction, after its rows are locked: are `shards` still held by this instance?"""
        held = {r.shard for r in await conn.execute(_HELD, {"cls": SHARD_LOCK, "pid": self.pid})}
        if not shards <= held:
            self.held &= held
            raise ShardLost(f"relay shards {sorted(shards - held)} are no longer held by this instance")

    async def release(self) -> None:
        if self.conn is None:
            return
        try:
            await self.conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
            await self.conn.commit()
        except BaseException:
            await self._drop()
            raise
        await self._drop()

    async def _drop(self) -> None:
        """Close the lock connection (PostgreSQL releases every lock it held)."""
        conn, self.conn, self.pid, self.held = self.conn, None, None, set()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

