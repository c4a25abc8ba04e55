"""'We just connected': the read model of who said yes and of each after-care started (keyed by the facts' ids)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .sql import _ids, _json_ids, _upsert
from .tables import aftercare_consents, aftercare_moments


class SqlAfterCare:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def set_consent(self, household_id: UUID, member_id: UUID, given: bool) -> None:
        async with self.engine.begin() as conn:
            if given:
                insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)
                await conn.execute(insert(aftercare_consents).values(household_id=household_id, member_id=member_id)
                                   .on_conflict_do_nothing())
            else:
                await conn.execute(delete(aftercare_consents).where(
                    aftercare_consents.c.household_id == household_id, aftercare_consents.c.member_id == member_id))

    async def save_moment(self, moment_id: UUID, household_id: UUID, partners: list[UUID], at: datetime) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, aftercare_moments, {"moment_id": moment_id}, {
                "household_id": household_id, "partners": _json_ids(partners), "started_at": at})

    async def state(self, household_id: UUID, since: datetime, conn: AsyncConnection | None = None) -> tuple[
            set[UUID], list[tuple[tuple[UUID, ...], datetime]]]:
        """Who said yes, and the after-cares started since a moment (partners, when; `conn`: the page's connection,
        else one of its own)."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.state(household_id, since, own)
        consented = set((await conn.execute(select(aftercare_consents.c.member_id).where(
            aftercare_consents.c.household_id == household_id))).scalars())
        moments = (await conn.execute(select(aftercare_moments.c.partners, aftercare_moments.c.started_at).where(
            aftercare_moments.c.household_id == household_id, aftercare_moments.c.started_at >= since))).all()
        return consented, [(_ids(p), at) for p, at in moments]
