"""What every service's store shares: the engine factory and column types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator


def make_engine(url: str, *, server: Mapping[str, Any] | None = None, sqlite: Mapping[str, Any] | None = None,
                sqlite_memory: Mapping[str, Any] | None = None) -> AsyncEngine:
    """An async engine whose error text never carries bound parameters (names, notes, channel URLs): not in
    logs, not in dead letters. A SQLite file's directory is created. Each service keeps its own pool set-up:
    `server` are the engine options for a database server (PostgreSQL), `sqlite` those for a SQLite file and
    `sqlite_memory` those for an in-memory SQLite (default: the same as `sqlite`)."""
    parsed = make_url(url)
    options: dict[str, Any] = {"hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            options.update((sqlite if sqlite_memory is None else sqlite_memory) or {})
        else:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            options.update(sqlite or {})
    else:
        options.update(server or {})
    return create_async_engine(url, **options)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out. PostgreSQL keeps a timestamptz; SQLite naive UTC text, so that
    comparisons in SQL stay correct. A naive datetime is refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
