"""Moments (and the 5:1 ratio state), achievements and the weekly summaries already sent."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from sqlalchemy import func, select, update

from ..model import Achievement, Moment
from . import tables as t
from .statements import Repository, insert_ignore


class SqlMoments(Repository):
    """Moments and the 5:1 ratio state."""

    async def add_moment(self, m: Moment) -> bool:
        result = await self.conn.execute(insert_ignore(self.conn, t.moments, {
            "moment_id": m.moment_id, "household_id": m.household_id, "member_id": m.member_id, "kind": m.kind,
            "note_enc": self.cipher.seal(m.note), "happened_at": m.happened_at, "recorded_at": m.recorded_at,
        }))
        return result.rowcount == 1

    async def moment_counts(self, household_id: UUID, start: datetime, end: datetime) -> tuple[int, int]:
        rows = (await self.conn.execute(
            select(t.moments.c.kind, func.count()).where(
                t.moments.c.household_id == household_id,
                t.moments.c.happened_at >= start, t.moments.c.happened_at <= end,
            ).group_by(t.moments.c.kind)
        )).all()
        counts = dict(rows)
        return int(counts.get("positive", 0)), int(counts.get("negative", 0))

    async def moments(self, household_id: UUID, start: datetime | None = None,
                      end: datetime | None = None) -> list[Moment]:
        query = select(t.moments).where(t.moments.c.household_id == household_id)
        if start is not None:
            query = query.where(t.moments.c.happened_at >= start)
        if end is not None:
            query = query.where(t.moments.c.happened_at <= end)
        rows = (await self.conn.execute(query.order_by(t.moments.c.happened_at))).mappings().all()
        return [Moment(r["moment_id"], r["household_id"], r["member_id"], r["kind"], self.cipher.open(r["note_enc"]),
                       r["happened_at"], r["recorded_at"]) for r in rows]

    async def ratio_below(self, household_id: UUID) -> bool:
        return bool((await self.conn.execute(
            select(t.ratio_state.c.below).where(t.ratio_state.c.household_id == household_id)
        )).scalar_one_or_none())

    async def set_ratio_below(self, household_id: UUID, below: bool) -> None:
        inserted = await self.conn.execute(insert_ignore(
            self.conn, t.ratio_state, {"household_id": household_id, "below": below}
        ))
        if inserted.rowcount == 0:
            await self.conn.execute(update(t.ratio_state).where(t.ratio_state.c.household_id == household_id)
                                    .values(below=below))


class SqlAchievements(Repository):
    """Achievements (dreams realised); dream and note sealed."""

    async def add_achievement(self, a: Achievement) -> bool:
        result = await self.conn.execute(insert_ignore(self.conn, t.achievements, {
            "achievement_id": a.achievement_id, "household_id": a.household_id, "member_id": a.member_id,
            "dream_enc": self.cipher.seal(a.dream), "note_enc": self.cipher.seal(a.note), "recorded_at": a.recorded_at,
        }))
        return result.rowcount == 1

    async def achievements(self, household_id: UUID, since: datetime | None = None) -> list[Achievement]:
        query = select(t.achievements).where(t.achievements.c.household_id == household_id)
        if since is not None:
            query = query.where(t.achievements.c.recorded_at >= since)
        rows = (await self.conn.execute(query.order_by(t.achievements.c.recorded_at))).mappings().all()
        return [Achievement(r["achievement_id"], r["household_id"], r["member_id"], self.cipher.open(r["dream_enc"]) or "",
                            self.cipher.open(r["note_enc"]), r["recorded_at"]) for r in rows]


class SqlSummaries(Repository):
    """Which weekly summaries were sent."""

    async def summary_sent(self, household_id: UUID, week_start: date) -> bool:
        return (await self.conn.execute(select(t.weekly_summaries.c.sent_at).where(
            t.weekly_summaries.c.household_id == household_id, t.weekly_summaries.c.week_start == week_start,
        ))).first() is not None

    async def claim_summary(self, household_id: UUID, week_start: date, now: datetime) -> bool:
        result = await self.conn.execute(insert_ignore(self.conn, t.weekly_summaries, {
            "household_id": household_id, "week_start": week_start, "sent_at": now,
        }))
        return result.rowcount == 1
