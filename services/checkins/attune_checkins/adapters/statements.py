"""What the SQL repositories share: the connection they work in, dialect-aware inserts, chunking, occurrence rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from ..model import Occurrence
from . import tables as t

OUTBOX_SHARDS = 64
OUTBOX_LOCK_SPACE = 4172  # (space, shard) two-key advisory locks: apart from the relay's one-key lock


class NoteSealer(Protocol):
    """What a repository needs of the notes cipher (adapters/notes.py)."""

    def seal(self, text: str | None) -> bytes | None: ...

    def open(self, token: bytes | None) -> str | None: ...


class Repository:
    """A repository reads and writes in its unit of work's transaction; the unit of work commits."""

    def __init__(self, conn: AsyncConnection, cipher: NoteSealer) -> None:
        self.conn = conn
        self.cipher = cipher


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def insert_ignore(conn: AsyncConnection, table: Table, values: dict[str, Any]) -> Any:
    return dialect_insert(conn, table).values(**values).on_conflict_do_nothing()


def insert_ignore_many(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> Any:
    return dialect_insert(conn, table).values(rows).on_conflict_do_nothing()


def chunks(items: list[Any], size: int = 1000) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# In the order of Occurrence's fields.
OCCURRENCE_COLUMNS = [t.occurrences.c[name] for name in (
    "occurrence_id", "household_id", "ritual_id", "template", "title", "participants", "scheduled_for", "deadline",
    "time_zone", "sensitive", "closed_at", "missed",
)]


def occurrence_of_row(row: Any) -> Occurrence:
    """An Occurrence from a row of OCCURRENCE_COLUMNS."""
    (occurrence_id, household_id, ritual_id, template, title, participants, scheduled_for, deadline, time_zone,
     sensitive, closed_at, missed) = row
    return Occurrence(occurrence_id, household_id, ritual_id, template, title, tuple(map(UUID, participants)),
                      scheduled_for, deadline, time_zone, sensitive, closed_at, bool(missed))
