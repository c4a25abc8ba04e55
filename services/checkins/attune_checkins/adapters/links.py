"""One-tap link tokens already used, and SMS short links waiting for their tap."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select

from . import tables as t
from .statements import Repository, insert_ignore


class SqlLinks(Repository):
    """Used one-tap tokens and SMS short links."""

    async def use_token(self, token_id: UUID, household_id: UUID, checkin_id: UUID | None, now: datetime,
                        expires_at: datetime) -> bool:
        result = await self.conn.execute(insert_ignore(self.conn, t.used_link_tokens, {
            "token_id": token_id, "household_id": household_id, "checkin_id": checkin_id, "used_at": now,
            "expires_at": expires_at,
        }))
        return result.rowcount == 1

    async def token_used_at(self, token_id: UUID) -> datetime | None:
        return (await self.conn.execute(
            select(t.used_link_tokens.c.used_at).where(t.used_link_tokens.c.token_id == token_id)
        )).scalar_one_or_none()

    async def put_short_link(self, code_id: str, household_id: UUID, sealed_token: str, expires_at: datetime) -> None:
        await self.conn.execute(insert_ignore(self.conn, t.short_links, {
            "code_id": code_id, "household_id": household_id, "sealed_token": sealed_token, "expires_at": expires_at,
        }))

    async def short_link(self, code_id: str) -> tuple[UUID, str, datetime] | None:
        """(household, sealed token, expiry) of a short link's code, by the code's hash."""
        row = (await self.conn.execute(
            select(t.short_links.c.household_id, t.short_links.c.sealed_token, t.short_links.c.expires_at)
            .where(t.short_links.c.code_id == code_id))).one_or_none()
        return (row[0], row[1], row[2]) if row else None

    async def forget_short_links(self, expired_before: datetime) -> int:
        return (await self.conn.execute(
            delete(t.short_links).where(t.short_links.c.expires_at < expired_before))).rowcount
