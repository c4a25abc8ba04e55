"""Households and what is kept per household: members, zone, revoked credentials, erasure, applied event ids."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from attune_runtime.deadletters import erase_dead_letter_key
from sqlalchemy import delete, func, select, text, update

from ..model import Household
from . import tables as t
from .statements import Repository, chunks, insert_ignore, insert_ignore_many


class SqlHouseholds(Repository):
    """Households, their members and time zones, credential revocations, erasure and its tombstones."""

    async def household(self, household_id: UUID) -> Household | None:
        zone = (await self.conn.execute(
            select(t.households.c.time_zone).where(t.households.c.household_id == household_id)
        )).scalar_one_or_none()
        if zone is None:
            return None
        ids = (await self.conn.execute(
            select(t.members.c.member_id).where(t.members.c.household_id == household_id)
        )).scalars().all()
        return Household(household_id, zone, frozenset(ids))

    async def put_household(self, household_id: UUID, time_zone: str, now: datetime, *, overwrite: bool = True) -> None:
        inserted = await self.conn.execute(insert_ignore(
            self.conn, t.households, {"household_id": household_id, "time_zone": time_zone, "updated_at": now}
        ))
        if inserted.rowcount == 0 and overwrite:
            await self.conn.execute(update(t.households).where(t.households.c.household_id == household_id)
                                    .values(time_zone=time_zone, updated_at=now))

    async def add_member(self, household_id: UUID, member_id: UUID) -> None:
        await self.conn.execute(insert_ignore(self.conn, t.members, {"household_id": household_id, "member_id": member_id}))

    async def members_of(self, household_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        return await self._members_by(t.members.c.household_id, t.members.c.member_id, household_ids)

    async def homes_of(self, member_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        """The households each member is known in here."""
        return await self._members_by(t.members.c.member_id, t.members.c.household_id, member_ids)

    async def _members_by(self, key: Any, value: Any, keys: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        found: dict[UUID, set[UUID]] = {}
        for chunk in chunks(list(keys)):
            for k, v in (await self.conn.execute(select(key, value).where(key.in_(chunk)))).all():
                found.setdefault(k, set()).add(v)
        return {k: frozenset(v) for k, v in found.items()}

    async def all_households(self) -> list[tuple[UUID, str]]:
        return [(h, z) for h, z in (await self.conn.execute(
            select(t.households.c.household_id, t.households.c.time_zone)
        )).all()]

    async def erased_at(self, household_id: UUID) -> datetime | None:
        return (await self.conn.execute(
            select(t.erased_households.c.erased_at).where(t.erased_households.c.household_id == household_id)
        )).scalar_one_or_none()

    async def erased_many(self, household_ids: Iterable[UUID]) -> dict[UUID, datetime]:
        ids = list(household_ids)
        rows = (await self.conn.execute(select(t.erased_households).where(
            t.erased_households.c.household_id.in_(ids)))).all() if ids else []
        return {h: e for h, e in rows}

    async def erase(self, household_id: UUID, erased_at: datetime) -> dict[str, int]:
        removed = {}
        for table in t.HOUSEHOLD_TABLES:
            result = await self.conn.execute(delete(table).where(table.c.household_id == household_id))
            removed[table.name] = result.rowcount
        await self.conn.execute(insert_ignore(
            self.conn, t.erased_households, {"household_id": household_id, "erased_at": erased_at}
        ))
        removed[t.dead_letter_keys.name] = await erase_dead_letter_key(self.conn, t.dead_letter_keys, household_id)
        return removed  # an erasure again keeps the first tombstone

    async def count_household_rows(self, household_id: UUID) -> int:
        total = 0
        for table in t.HOUSEHOLD_TABLES:
            total += (await self.conn.execute(
                select(func.count()).select_from(table).where(table.c.household_id == household_id)
            )).scalar_one()
        return int(total)

    async def revoke_credentials(self, household_id: UUID, not_before: datetime) -> None:
        """Refuse the household's credentials issued before `not_before` (never moves back)."""
        table = t.credential_revocations
        inserted = await self.conn.execute(insert_ignore(
            self.conn, table, {"household_id": household_id, "not_before": not_before}))
        if inserted.rowcount == 0:
            await self.conn.execute(update(table).where(table.c.household_id == household_id,
                                                        table.c.not_before < not_before).values(not_before=not_before))

    async def credentials_not_before(self, household_id: UUID) -> datetime | None:
        table = t.credential_revocations
        return (await self.conn.execute(
            select(table.c.not_before).where(table.c.household_id == household_id))).scalar_one_or_none()


class SqlProcessedEvents(Repository):
    """Event ids already applied: a redelivered message changes nothing."""

    async def claim_event(self, event_id: UUID, household_id: UUID | None, now: datetime) -> bool:
        """True the first time an event id is seen (and remembers it); False on a redelivery."""
        result = await self.conn.execute(
            insert_ignore(self.conn, t.processed_events,
                           {"event_id": event_id, "household_id": household_id, "processed_at": now})
        )
        return result.rowcount == 1

    async def claim_events(self, events: list[tuple[UUID, UUID]], now: datetime) -> set[UUID]:
        """Remember many event ids at once; returns those seen for the first time."""
        unique = list({event_id: household for event_id, household in events}.items())
        if not unique:
            return set()
        if self.conn.dialect.name == "postgresql":
            # One statement with three array parameters, whatever the batch size (no giant VALUES list).
            rows = await self.conn.execute(text(
                "INSERT INTO processed_events (event_id, household_id, processed_at) "
                "SELECT e, h, :now FROM unnest(CAST(:events AS uuid[]), CAST(:households AS uuid[])) AS u(e, h) "
                "ON CONFLICT DO NOTHING RETURNING event_id"
            ), {"events": [e for e, _ in unique], "households": [h for _, h in unique], "now": now})
            return set(rows.scalars().all())
        claimed: set[UUID] = set()
        for start in range(0, len(unique), 300):
            chunk = unique[start:start + 300]
            statement = insert_ignore_many(self.conn, t.processed_events, [
                {"event_id": e, "household_id": h, "processed_at": now} for e, h in chunk
            ]).returning(t.processed_events.c.event_id)
            claimed |= set((await self.conn.execute(statement)).scalars().all())
        return claimed
