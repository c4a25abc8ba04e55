"""The outbox table, written in the transaction that decided its events (see sql.py for the order)."""

from __future__ import annotations

import json
import zlib
from typing import Any

from sqlalchemy import text

from . import tables as t
from .statements import OUTBOX_LOCK_SPACE, OUTBOX_SHARDS, Repository, chunks, dialect_insert


class SqlOutbox(Repository):
    """The outbox table, written in the transaction that decided its events."""

    async def add(self, rows: list[dict[str, Any]]) -> None:
        """Write events to the outbox, to be published once this transaction has committed. Call once per
        transaction, at its end: on PostgreSQL it locks the households' shards (ascending, so two writers
        never wait for each other in a cycle) until the commit, which keeps each household's ids in commit
        order. An event id already waiting is not written twice."""
        if not rows:
            return
        if self.conn.dialect.name == "postgresql":
            shards = sorted({zlib.crc32(r["household_id"].bytes) % OUTBOX_SHARDS for r in rows})
            await self.conn.execute(text(
                f"SELECT pg_advisory_xact_lock({OUTBOX_LOCK_SPACE}, s) FROM unnest(CAST(:shards AS int[])) AS s"  # noqa: S608 - only a module constant; values are bound
            ), {"shards": shards})
            # One statement with one array parameter per column, whatever the batch size.
            await self.conn.execute(text(
                "INSERT INTO checkins_outbox (event_id, household_id, topic, event_type, body, headers, created_at) "
                "SELECT * FROM unnest(CAST(:event_id AS uuid[]), CAST(:household_id AS uuid[]), "
                "CAST(:topic AS text[]), CAST(:event_type AS text[]), CAST(:body AS text[]), "
                "CAST(:headers AS text[])::json[], CAST(:created_at AS timestamptz[])) "
                "ON CONFLICT (event_id) DO NOTHING"
            ), {
                "event_id": [r["event_id"] for r in rows], "household_id": [r["household_id"] for r in rows],
                "topic": [r["topic"] for r in rows], "event_type": [r["event_type"] for r in rows],
                "body": [r["body"] for r in rows], "headers": [json.dumps(r["headers"]) for r in rows],
                "created_at": [r["created_at"] for r in rows],
            })
            return
        for chunk in chunks(rows, 500):
            await self.conn.execute(
                dialect_insert(self.conn, t.outbox).on_conflict_do_nothing(index_elements=["event_id"]), chunk)
