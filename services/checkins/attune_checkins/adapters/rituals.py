"""Rituals, the history a streak is counted from, and the stored streaks and milestones."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from attune_contracts.messages import CheckInStatus
from sqlalchemy import Integer, String, and_, exists, func, literal, null, select, text, union_all, update

from ..model import Slot
from . import tables as t
from .statements import Repository, chunks, dialect_insert, insert_ignore, insert_ignore_many


class SqlRituals(Repository):
    """Rituals (their rule), the history streaks are counted from, stored streaks and milestones."""

    async def put_ritual(self, ritual_id: UUID, household_id: UUID, template: str, rrule: str | None) -> None:
        inserted = await self.conn.execute(insert_ignore(self.conn, t.rituals, {
            "ritual_id": ritual_id, "household_id": household_id, "template": template, "rrule": rrule,
            "deleted": False,
        }))
        if inserted.rowcount == 0:
            await self.conn.execute(update(t.rituals).where(t.rituals.c.ritual_id == ritual_id)
                                    .values(template=template, rrule=rrule, deleted=False))

    async def delete_ritual(self, ritual_id: UUID) -> None:
        await self.conn.execute(update(t.rituals).where(t.rituals.c.ritual_id == ritual_id).values(deleted=True))

    async def ritual_rrule(self, ritual_id: UUID) -> str | None:
        return (await self.conn.execute(
            select(t.rituals.c.rrule).where(t.rituals.c.ritual_id == ritual_id)
        )).scalar_one_or_none()

    async def ritual_states(self, ritual_ids: Iterable[UUID]) -> tuple[
            dict[UUID, str | None], dict[UUID, tuple[int, int, int | None, int | None]]]:
        """Each ritual's RRULE and stored streak (length, best, adherence kept, expected), in one round trip."""
        rrules: dict[UUID, str | None] = {}
        streaks: dict[UUID, tuple[int, int, int | None, int | None]] = {}
        r, s = t.rituals.c, t.streaks.c
        no_int = null().cast(Integer)
        for chunk in chunks(list(ritual_ids)):
            rows = (await self.conn.execute(union_all(
                select(literal(0), r.ritual_id, r.rrule, no_int, no_int, no_int, no_int).where(r.ritual_id.in_(chunk)),
                select(literal(1), s.ritual_id, null().cast(String), s.length, s.best, s.adherence_kept,
                       s.adherence_expected).where(s.ritual_id.in_(chunk)),
            ))).all()
            for source, ritual_id, rrule, length, best, kept, expected in rows:
                if source == 0:
                    rrules[ritual_id] = rrule
                else:
                    streaks[ritual_id] = (length, best, kept, expected)
        return rrules, streaks

    async def ritual_histories(self, ritual_ids: Iterable[UUID], since: date) -> dict[UUID, list[tuple[Slot, bool]]]:
        """Each ritual's occurrences from local date `since` (only what streaks need), with whether anyone
        marked each one done."""
        done = exists().where(and_(
            t.checkins.c.occurrence_id == t.occurrences.c.occurrence_id, t.checkins.c.status == CheckInStatus.DONE.value,
        ))
        o = t.occurrences.c
        found: dict[UUID, list[tuple[Slot, bool]]] = {}
        for chunk in chunks(list(ritual_ids)):
            rows = (await self.conn.execute(
                select(o.ritual_id, o.local_date, o.scheduled_for, o.deadline, done.label("kept"))
                .where(o.ritual_id.in_(chunk), o.local_date >= since)
                .order_by(o.scheduled_for)
            )).all()
            for ritual_id, local_date, scheduled_for, deadline, kept in rows:
                found.setdefault(ritual_id, []).append((Slot(local_date, scheduled_for, deadline), bool(kept)))
        return found

    async def first_dates(self, ritual_ids: Iterable[UUID]) -> dict[UUID, date]:
        """Each ritual's earliest occurrence's local date (the index on ritual and date answers it)."""
        o = t.occurrences.c
        found: dict[UUID, date] = {}
        for chunk in chunks(list(ritual_ids)):
            found.update((ritual_id, first) for ritual_id, first in (await self.conn.execute(
                select(o.ritual_id, func.min(o.local_date)).where(o.ritual_id.in_(chunk)).group_by(o.ritual_id)
            )).all())
        return found

    async def put_streaks(self, rows: list[dict[str, Any]]) -> None:
        """Upsert many streak rows in one statement; a row without adherence keeps the stored one."""
        if rows and self.conn.dialect.name == "postgresql":
            await self.conn.execute(text(
                "INSERT INTO streaks (ritual_id, household_id, template, unit, length, best, adherence_kept, "
                "adherence_expected) SELECT * FROM unnest(CAST(:ritual_id AS uuid[]), CAST(:household_id AS uuid[]), "
                "CAST(:template AS text[]), CAST(:unit AS text[]), CAST(:length AS int[]), CAST(:best AS int[]), "
                "CAST(:adherence_kept AS int[]), CAST(:adherence_expected AS int[])) "
                "ON CONFLICT (ritual_id) DO UPDATE SET template = excluded.template, unit = excluded.unit, "
                "length = excluded.length, best = excluded.best, "
                "adherence_kept = coalesce(excluded.adherence_kept, streaks.adherence_kept), "
                "adherence_expected = coalesce(excluded.adherence_expected, streaks.adherence_expected)"
            ), {column: [r[column] for r in rows] for column in rows[0]})
            return
        for chunk in chunks(rows, 100):
            statement = dialect_insert(self.conn, t.streaks).values(chunk)
            new = statement.excluded
            await self.conn.execute(statement.on_conflict_do_update(index_elements=["ritual_id"], set_={
                "template": new.template, "unit": new.unit, "length": new.length, "best": new.best,
                "adherence_kept": func.coalesce(new.adherence_kept, t.streaks.c.adherence_kept),
                "adherence_expected": func.coalesce(new.adherence_expected, t.streaks.c.adherence_expected),
            }))

    async def household_streaks(self, household_id: UUID) -> list[dict[str, Any]]:
        rows = (await self.conn.execute(
            select(t.streaks).where(t.streaks.c.household_id == household_id).order_by(t.streaks.c.template)
        )).mappings().all()
        return [dict(r) for r in rows]

    async def claim_milestones(self, marks: list[tuple[UUID, UUID, date, int]], now: datetime) -> set[tuple[UUID, date, int]]:
        """Record (ritual, household, run start, length) milestones; the ones not recorded before, in one statement."""
        if not marks:
            return set()
        m = t.milestones.c
        rows = [{"ritual_id": ritual_id, "run_start": run_start, "length": length, "household_id": household_id,
                 "reached_at": now} for ritual_id, household_id, run_start, length in marks]
        result = await self.conn.execute(
            insert_ignore_many(self.conn, t.milestones, rows).returning(m.ritual_id, m.run_start, m.length))
        return {(r.ritual_id, r.run_start, r.length) for r in result}
