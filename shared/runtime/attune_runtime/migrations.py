"""Bring a service's schema up to date with Alembic, on PostgreSQL under a transaction advisory lock: several
instances (and the migration Job) may start at once; one migrates, the others wait for it, then find the
schema at head and do nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def alembic_config(script_location: str | Path, url: str | None = None) -> Any:
    """The Alembic configuration of a service's migrations folder (and, for Alembic's own commands, a URL)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade_on(conn: AsyncConnection, script_location: str | Path, lock_key: int | str,
                     revision: str = "head") -> None:
    """Upgrade within `conn`'s transaction. `lock_key`: the service's own advisory lock, a number, or a name
    hashed by PostgreSQL's hashtext()."""
    from alembic import command

    def run(sync_conn: Any) -> None:
        config = alembic_config(script_location)
        config.attributes["connection"] = sync_conn
        command.upgrade(config, revision)

    if conn.dialect.name == "postgresql":
        if isinstance(lock_key, str):
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": lock_key})
        else:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
    await conn.run_sync(run)


async def upgrade(engine: AsyncEngine, script_location: str | Path, lock_key: int | str,
                  revision: str = "head") -> None:
    async with engine.begin() as conn:
        await upgrade_on(conn, script_location, lock_key, revision)
