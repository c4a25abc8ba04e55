"""The SQL database (SQLAlchemy 2 async): SQLite by default, PostgreSQL for production and several instances.

`SqlStore` owns the engine and hands out what the rest needs: a unit of work per use case (repositories.py:
every state change and the messages it causes in one transaction), the outbox as the relay reads it
(relay.py, shards.py), and the read-only queries of the loops and the HTTP API. It runs no rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from attune_runtime.migrations import upgrade_on
from attune_runtime.sql import make_engine as shared_make_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..model import HouseholdView, Ritual
from .relay import SqlRelayOutbox
from .repositories import SqlHouseholds, SqlUnitOfWork, ritual_from_row
from .shards import DEFAULT_RELAY_SHARDS
from .tables import credential_revocations, households, members, outbox, processed_commands, rituals

_MIGRATION_LOCK = 810_101


def make_engine(url: str) -> AsyncEngine:
    return shared_make_engine(url, server={"pool_size": 10, "max_overflow": 5, "pool_pre_ping": True},
                              sqlite={"connect_args": {"timeout": 30}})


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SqlStore:
    def __init__(self, engine: AsyncEngine, *, relay_shards: int = DEFAULT_RELAY_SHARDS,
                 now: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.now = now
        # SQLite allows one writer; one process serialises its own transactions instead of hitting "locked".
        self._lock: asyncio.Lock | None = None if self.postgres else asyncio.Lock()
        self.relay = SqlRelayOutbox(engine, self._tx, relay_shards)

    @classmethod
    def from_url(cls, url: str, *, relay_shards: int = DEFAULT_RELAY_SHARDS,
                 now: Callable[[], datetime] = _utc_now) -> SqlStore:
        return cls(make_engine(url), relay_shards=relay_shards, now=now)

    def unit_of_work(self) -> SqlUnitOfWork:
        """A fresh unit of work (use it as `async with`); the outbox rows it writes are created `now()`."""
        return SqlUnitOfWork(self.engine, self._lock, self.now)

    async def close(self) -> None:
        await self.relay.release_shards()
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        if self._lock is None:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self._lock, self.engine.begin() as conn:
                yield conn

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest Alembic revision, or `revision` (safe with several instances starting
        at once)."""
        async with self._tx() as conn:
            await upgrade_on(conn, Path(__file__).resolve().parent.parent / "migrations", _MIGRATION_LOCK, revision)

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True

    # ---- reading (no transaction to speak of, nothing locked) -----------------------------------

    async def household(self, household_id: uuid.UUID) -> tuple[HouseholdView, int]:
        """The household as stored, and how many of its messages wait to be published."""
        async with self.engine.connect() as conn:
            view = await SqlHouseholds(conn).load(household_id, lock=False)
            waiting = (await conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.household_id == household_id)
            )).scalar_one()
        return view, waiting

    async def credentials_not_before(self, household_id: uuid.UUID) -> datetime | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(credential_revocations.c.not_before).where(
                credential_revocations.c.household_id == household_id))).scalar_one_or_none()

    async def next_wake_at(self) -> datetime | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.min(rituals.c.wake_at)))).scalar()

    async def active_by_template(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(rituals.c.template, sa.func.count()).where(rituals.c.state == "active")
                .group_by(rituals.c.template)
            )
            return {template: count for template, count in result}

    async def outbox_backlog(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one()

    async def ritual(self, ritual_id: uuid.UUID) -> Ritual | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(rituals).where(rituals.c.id == ritual_id))).first()
            return ritual_from_row(row) if row else None

    async def count(self, table: str) -> int:
        tables = {"households": households, "members": members, "rituals": rituals, "outbox": outbox,
                  "processed_commands": processed_commands}
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(tables[table]))).scalar_one()
