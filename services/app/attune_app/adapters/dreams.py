"""The dreams board's read model: upserts keyed by the facts' own ids (a redelivered fact changes nothing)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..dreams import Achievement, Dream
from .sql import _upsert
from .tables import achievements, dream_supports, dreams


class SqlDreams:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save_dream(self, dream: Dream, household_id: UUID) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, dreams, {"dream_id": dream.dream_id}, {
                "household_id": household_id, "member_id": dream.member_id, "dream": dream.text,
                "shared_at": dream.shared_at})

    async def save_support(self, dream_id: UUID, member_id: UUID, household_id: UUID) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, dream_supports, {"dream_id": dream_id, "member_id": member_id},
                          {"household_id": household_id})

    async def reached(self, dream: Dream, household_id: UUID, at: datetime) -> None:
        """Mark a dream reached (the first time counts); a dream not seen yet is added as reached."""
        async with self.engine.begin() as conn:
            await conn.execute(update(dreams).where(
                dreams.c.dream_id == dream.dream_id, dreams.c.household_id == household_id,
                dreams.c.reached_at.is_(None)).values(reached_at=at))
            known = (await conn.execute(select(dreams.c.dream_id).where(dreams.c.dream_id == dream.dream_id))).first()
            if known is None:
                await _upsert(conn, dreams, {"dream_id": dream.dream_id}, {
                    "household_id": household_id, "member_id": dream.member_id, "dream": dream.text,
                    "shared_at": at, "reached_at": at})

    async def save_achievement(self, achievement: Achievement, household_id: UUID) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, achievements, {"achievement_id": achievement.achievement_id}, {
                "household_id": household_id, "member_id": achievement.member_id, "dream": achievement.dream,
                "recorded_at": achievement.recorded_at})

    async def board(self, household_id: UUID) -> tuple[list[Dream], dict[UUID, set[UUID]], list[Achievement]]:
        """The household's dreams (oldest first), who supports each, and its other achievements (newest first)."""
        async with self.engine.connect() as conn:
            found = (await conn.execute(select(dreams).where(dreams.c.household_id == household_id)
                                        .order_by(dreams.c.shared_at, dreams.c.dream_id))).all()
            supports = (await conn.execute(select(dream_supports.c.dream_id, dream_supports.c.member_id).where(
                dream_supports.c.household_id == household_id))).all()
            done = (await conn.execute(select(achievements).where(achievements.c.household_id == household_id)
                                       .order_by(achievements.c.recorded_at.desc()))).all()
        by_dream: dict[UUID, set[UUID]] = {}
        for dream_id, member_id in supports:
            by_dream.setdefault(dream_id, set()).add(member_id)
        return ([Dream(r.dream_id, r.member_id, r.dream, r.shared_at, r.reached_at) for r in found], by_dream,
                [Achievement(r.achievement_id, r.member_id, r.dream, r.recorded_at) for r in done])

    async def dream(self, dream_id: UUID, household_id: UUID) -> Dream | None:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(dreams).where(dreams.c.dream_id == dream_id,
                                                         dreams.c.household_id == household_id))).first()
        return Dream(r.dream_id, r.member_id, r.dream, r.shared_at, r.reached_at) if r else None
