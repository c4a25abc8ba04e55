"""'We just connected': consents and after-care moments."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select

from . import tables as t
from .statements import Repository, insert_ignore


class SqlAfterCare(Repository):
    """Who said yes to 'we just connected', and each after-care started."""

    async def consented(self, household_id: UUID) -> set[UUID]:
        rows = await self.conn.execute(select(t.aftercare_consents.c.member_id).where(
            t.aftercare_consents.c.household_id == household_id))
        return set(rows.scalars())

    async def moments(self, household_id: UUID) -> list[tuple[UUID, UUID, datetime]]:
        rows = await self.conn.execute(select(
            t.aftercare_moments.c.moment_id, t.aftercare_moments.c.started_by, t.aftercare_moments.c.started_at).where(
            t.aftercare_moments.c.household_id == household_id).order_by(t.aftercare_moments.c.started_at))
        return [(m, by, at) for m, by, at in rows]

    async def set_consent(self, household_id: UUID, member_id: UUID, given: bool, now: datetime) -> bool:
        """True when it changed."""
        table = t.aftercare_consents
        if given:
            statement = insert_ignore(self.conn, table, {"household_id": household_id, "member_id": member_id,
                                                         "given_at": now})
        else:
            statement = delete(table).where(table.c.household_id == household_id, table.c.member_id == member_id)
        return (await self.conn.execute(statement)).rowcount == 1

    async def start(self, moment_id: UUID, household_id: UUID, member_id: UUID, now: datetime) -> bool:
        """False when this moment id is already stored (a retry)."""
        return (await self.conn.execute(insert_ignore(self.conn, t.aftercare_moments, {
            "moment_id": moment_id, "household_id": household_id, "started_by": member_id, "started_at": now,
        }))).rowcount == 1
