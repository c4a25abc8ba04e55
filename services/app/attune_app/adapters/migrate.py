"""Bring the store's schema up to date with Alembic (called at start-up; safe to run on every start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(engine: AsyncEngine) -> None:
    def run(connection) -> None:  # type: ignore[no-untyped-def]
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several instances may start at once: one migrates, the others wait for it.
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4172004)")
        await conn.run_sync(run)
