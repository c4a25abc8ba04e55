"""Bring the store's schema up to date with Alembic (called at start-up; safe to run on every start)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from attune_runtime import migrations
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    return migrations.alembic_config(MIGRATIONS, url)


# PostgreSQL advisory lock: several instances may start at once; one migrates, the others wait for it.
MIGRATION_LOCK = 4172001


async def upgrade(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine, MIGRATIONS, MIGRATION_LOCK)
