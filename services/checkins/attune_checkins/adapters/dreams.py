"""The dreams board's rows. The dream's words and note are sealed at rest like every note here."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update

from ..model import Dream
from . import tables as t
from .statements import Repository, insert_ignore


class SqlDreams(Repository):
    """Dreams (words and note sealed), who supports each, and when its owner reached it."""

    async def add_dream(self, dream: Dream) -> bool:
        """False when this dream id is already stored (a retry)."""
        result = await self.conn.execute(insert_ignore(self.conn, t.dreams, {
            "dream_id": dream.dream_id, "household_id": dream.household_id, "member_id": dream.member_id,
            "dream_enc": self.cipher.seal(dream.dream), "note_enc": self.cipher.seal(dream.note),
            "shared_at": dream.shared_at, "reached_at": dream.reached_at,
        }))
        return result.rowcount == 1

    async def dream(self, dream_id: UUID, household_id: UUID) -> Dream | None:
        row = (await self.conn.execute(select(t.dreams).where(
            t.dreams.c.dream_id == dream_id, t.dreams.c.household_id == household_id))).mappings().first()
        if row is None:
            return None
        return Dream(row["dream_id"], row["household_id"], row["member_id"], self.cipher.open(row["dream_enc"]) or "",
                     self.cipher.open(row["note_enc"]), row["shared_at"], row["reached_at"])

    async def all(self, household_id: UUID) -> tuple[list[Dream], list[tuple[UUID, UUID, datetime]]]:
        """The household's dreams, oldest first, and its supports (dream, member, when)."""
        rows = (await self.conn.execute(select(t.dreams).where(t.dreams.c.household_id == household_id)
                                        .order_by(t.dreams.c.shared_at))).mappings().all()
        supports = (await self.conn.execute(select(
            t.dream_supports.c.dream_id, t.dream_supports.c.member_id, t.dream_supports.c.supported_at).where(
            t.dream_supports.c.household_id == household_id))).all()
        return ([Dream(r["dream_id"], r["household_id"], r["member_id"], self.cipher.open(r["dream_enc"]) or "",
                       self.cipher.open(r["note_enc"]), r["shared_at"], r["reached_at"]) for r in rows],
                [(d, m, at) for d, m, at in supports])

    async def support(self, dream_id: UUID, household_id: UUID, member_id: UUID, now: datetime) -> bool:
        """False when this member already supports it."""
        result = await self.conn.execute(insert_ignore(self.conn, t.dream_supports, {
            "dream_id": dream_id, "member_id": member_id, "household_id": household_id, "supported_at": now}))
        return result.rowcount == 1

    async def reach(self, dream_id: UUID, now: datetime) -> bool:
        """Mark it reached; False when it already was."""
        result = await self.conn.execute(update(t.dreams).where(
            t.dreams.c.dream_id == dream_id, t.dreams.c.reached_at.is_(None)).values(reached_at=now))
        return result.rowcount == 1
