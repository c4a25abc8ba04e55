"""Occurrences: expected (RitualDue), announced ahead (RitualReminder), and closed by the timer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from uuid import UUID

from attune_contracts.messages import CheckInStatus
from sqlalchemy import and_, delete, exists, func, select, update

from ..model import Occurrence
from . import tables as t
from .statements import OCCURRENCE_COLUMNS, Repository, chunks, insert_ignore, occurrence_of_row


class SqlOccurrences(Repository):
    """Expected occurrences (from RitualDue), announced ones (from RitualReminder), and what the timer closes."""

    async def add_occurrence(self, occ: Occurrence) -> bool:
        result = await self.conn.execute(insert_ignore(self.conn, t.occurrences, {
            "occurrence_id": occ.occurrence_id, "household_id": occ.household_id, "ritual_id": occ.ritual_id,
            "template": occ.template, "title": occ.title, "participants": [str(p) for p in occ.participants],
            "scheduled_for": occ.scheduled_for, "deadline": occ.deadline, "local_date": occ.local_date,
            "time_zone": occ.time_zone, "sensitive": occ.sensitive, "closed_at": None, "missed": False,
        }))
        return result.rowcount == 1

    async def announce(self, occ: Occurrence) -> bool:
        """Remember an occurrence a reminder announced (no deadline yet: only its RitualDue sets one)."""
        if (await self.occurrence(occ.occurrence_id)) is not None:
            return False  # already due: the reminder came late, nothing to announce
        result = await self.conn.execute(insert_ignore(self.conn, t.announced_occurrences, {
            "occurrence_id": occ.occurrence_id, "household_id": occ.household_id, "ritual_id": occ.ritual_id,
            "template": occ.template, "title": occ.title, "participants": [str(p) for p in occ.participants],
            "scheduled_for": occ.scheduled_for, "time_zone": occ.time_zone, "sensitive": occ.sensitive,
        }))
        return result.rowcount == 1

    async def announced(self, occurrence_id: UUID) -> Occurrence | None:
        """An occurrence known only from its reminder (its deadline is its scheduled time, a placeholder)."""
        row = (await self.conn.execute(
            select(t.announced_occurrences).where(t.announced_occurrences.c.occurrence_id == occurrence_id)
        )).one_or_none()
        if row is None:
            return None
        return Occurrence(row.occurrence_id, row.household_id, row.ritual_id, row.template, row.title,
                          tuple(map(UUID, row.participants)), row.scheduled_for, row.scheduled_for, row.time_zone,
                          row.sensitive, announced=True)

    async def forget_announced(self, occurrence_id: UUID | None = None, *, before: datetime | None = None) -> int:
        """Drop an announcement (its RitualDue came), or every one scheduled before `before` (never due)."""
        table = t.announced_occurrences
        where = table.c.occurrence_id == occurrence_id if occurrence_id is not None else table.c.scheduled_for < before
        return (await self.conn.execute(delete(table).where(where))).rowcount

    async def occurrence(self, occurrence_id: UUID) -> Occurrence | None:
        row = (await self.conn.execute(
            select(*OCCURRENCE_COLUMNS).where(t.occurrences.c.occurrence_id == occurrence_id)
        )).one_or_none()
        return occurrence_of_row(row) if row else None

    async def occurrences_by_id(self, ids: Iterable[UUID]) -> dict[UUID, Occurrence]:
        found: dict[UUID, Occurrence] = {}
        for chunk in chunks(list(ids)):
            rows = (await self.conn.execute(
                select(*OCCURRENCE_COLUMNS).where(t.occurrences.c.occurrence_id.in_(chunk)))).all()
            found |= {r[0]: occurrence_of_row(r) for r in rows}
        return found

    async def household_occurrences(self, household_id: UUID, start: date, end: date) -> list[Occurrence]:
        rows = (await self.conn.execute(
            select(*OCCURRENCE_COLUMNS).where(
                t.occurrences.c.household_id == household_id,
                t.occurrences.c.local_date >= start, t.occurrences.c.local_date <= end,
            ).order_by(t.occurrences.c.scheduled_for)
        )).all()
        return [occurrence_of_row(r) for r in rows]

    async def done_by(self, occurrence_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        ids = list(occurrence_ids)
        found: dict[UUID, set[UUID]] = {}
        for chunk in range(0, len(ids), 500):
            rows = (await self.conn.execute(
                select(t.checkins.c.occurrence_id, t.checkins.c.member_id).where(
                    t.checkins.c.occurrence_id.in_(ids[chunk:chunk + 500]),
                    t.checkins.c.status == CheckInStatus.DONE.value,
                )
            )).all()
            for occ, member in rows:
                found.setdefault(occ, set()).add(member)
        return {k: frozenset(v) for k, v in found.items()}

    async def overdue(self, now: datetime, limit: int = 500) -> list[Occurrence]:
        """Occurrences past their deadline, not yet reported missed, with no done/skipped answer."""
        answered = exists().where(and_(
            t.checkins.c.occurrence_id == t.occurrences.c.occurrence_id,
            t.checkins.c.status.in_([CheckInStatus.DONE.value, CheckInStatus.SKIPPED.value]),
        ))
        rows = (await self.conn.execute(
            select(*OCCURRENCE_COLUMNS).where(
                t.occurrences.c.closed_at.is_(None), t.occurrences.c.deadline <= now, ~answered,
            ).order_by(t.occurrences.c.deadline).limit(limit)
        )).all()
        return [occurrence_of_row(r) for r in rows]

    async def answered_unclaimed(self, now: datetime, limit: int = 500) -> list[UUID]:
        """Past-deadline occurrences that were answered: closed quietly so the timer stops looking at them."""
        answered = exists().where(and_(
            t.checkins.c.occurrence_id == t.occurrences.c.occurrence_id,
            t.checkins.c.status.in_([CheckInStatus.DONE.value, CheckInStatus.SKIPPED.value]),
        ))
        return list((await self.conn.execute(
            select(t.occurrences.c.occurrence_id).where(
                t.occurrences.c.closed_at.is_(None), t.occurrences.c.deadline <= now, answered,
            ).limit(limit)
        )).scalars().all())

    async def close_occurrence(self, occurrence_id: UUID, now: datetime, *, missed: bool) -> bool:
        """Mark a past-deadline occurrence as handled by the timer; False if another instance got there first."""
        result = await self.conn.execute(
            update(t.occurrences)
            .where(t.occurrences.c.occurrence_id == occurrence_id, t.occurrences.c.closed_at.is_(None))
            .values(closed_at=now, missed=missed)
        )
        return result.rowcount == 1

    async def next_deadline(self) -> datetime | None:
        return (await self.conn.execute(
            select(func.min(t.occurrences.c.deadline)).where(t.occurrences.c.closed_at.is_(None))
        )).scalar_one_or_none()

    async def occurrence_statuses(self, occurrence_id: UUID) -> list[CheckInStatus]:
        return [CheckInStatus(s) for s in (await self.conn.execute(
            select(t.checkins.c.status).where(t.checkins.c.occurrence_id == occurrence_id)
        )).scalars().all()]
