"""The app's store: SQLAlchemy Core over SQLite (default) or PostgreSQL. Every write from an event is an
upsert or a delete keyed by the event's own ids, so a redelivered event changes nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from attune_runtime.deadletters import erase_dead_letter_key
from attune_runtime.sql import make_engine as shared_make_engine
from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..service import CheckIn, Invite, Occurrence, Ritual
from .tables import (
    HOUSEHOLD_TABLES,
    checkins,
    consents,
    date_nights,
    dead_letter_keys,
    erased_households,
    households,
    invites,
    members,
    moments,
    occurrences,
    rituals,
    sessions,
    streaks,
    summaries,
)


def make_engine(url: str) -> AsyncEngine:
    return shared_make_engine(url, server={"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True})


async def _upsert(conn: AsyncConnection, table: Table, keys: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert, or update the row with these keys (portable: SQLite and PostgreSQL)."""
    where = [table.c[k] == v for k, v in keys.items()]
    result = await conn.execute(update(table).where(*where).values(**values))
    if result.rowcount == 0:
        dialect = conn.dialect.name
        stmt: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table).values(**keys, **values).on_conflict_do_update(
                index_elements=list(keys), set_=values)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).values(**keys, **values).on_conflict_do_update(
                index_elements=list(keys), set_=values)
        await conn.execute(stmt)


def _ids(raw: str) -> tuple[UUID, ...]:
    return tuple(UUID(x) for x in json.loads(raw))


def _json_ids(ids: Sequence[UUID]) -> str:
    return json.dumps([str(i) for i in ids])


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means not ready; /readyz says so
            return False

    async def close(self) -> None:
        await self.engine.dispose()

    # ---- households and members -------------------------------------------------------------------

    async def save_household(self, household_id: UUID, *, name: str, kind: str, time_zone: str, now: datetime,
                             confirmed: bool) -> None:
        async with self.engine.begin() as conn:
            values: dict[str, Any] = {"name": name, "kind": kind, "time_zone": time_zone, "updated_at": now}
            if confirmed:
                values["confirmed"] = True
                await _upsert(conn, households, {"household_id": household_id}, values)
            else:
                exists = await conn.scalar(select(households.c.household_id).where(
                    households.c.household_id == household_id))
                if exists is None:
                    await conn.execute(insert(households).values(household_id=household_id, confirmed=False,
                                                                 **values))

    async def save_member(self, member_id: UUID, household_id: UUID, *, display_name: str, role: str,
                          confirmed: bool) -> None:
        async with self.engine.begin() as conn:
            values: dict[str, Any] = {"household_id": household_id, "display_name": display_name, "role": role}
            if confirmed:
                values["confirmed"] = True
                await _upsert(conn, members, {"member_id": member_id}, values)
            else:
                exists = await conn.scalar(select(members.c.member_id).where(members.c.member_id == member_id))
                if exists is None:
                    await conn.execute(insert(members).values(member_id=member_id, confirmed=False, **values))

    async def household(self, household_id: UUID) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(households).where(households.c.household_id == household_id))).first()
        return dict(row._mapping) if row else None

    async def members_of(self, household_id: UUID) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(members).where(members.c.household_id == household_id)
                                      .order_by(members.c.display_name))
        return [dict(r._mapping) for r in rows]

    async def member_home(self, member_id: UUID) -> UUID | None:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(members.c.household_id).where(members.c.member_id == member_id))

    async def erase(self, household_id: UUID, now: datetime) -> None:
        """The household's read-model rows, sessions and invitations, and its dead-letter key, in one transaction:
        its dead letters on the topic can no longer be opened once its rows are gone. A tombstone stays (the id
        and when) so that no key is made for it again."""
        async with self.engine.begin() as conn:
            for table in HOUSEHOLD_TABLES:
                await conn.execute(delete(table).where(table.c.household_id == household_id))
            await erase_dead_letter_key(conn, dead_letter_keys, household_id)
            await conn.execute(delete(erased_households).where(erased_households.c.household_id == household_id))
            await conn.execute(insert(erased_households).values(household_id=household_id, erased_at=now))

    # ---- sessions and invitations -----------------------------------------------------------------

    async def add_session(self, token_hash: str, household_id: UUID, member_id: UUID, expires_at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(sessions).values(token_hash=token_hash, household_id=household_id,
                                                       member_id=member_id, expires_at=expires_at))

    async def session(self, token_hash: str, now: datetime) -> tuple[UUID, UUID] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(sessions.c.household_id, sessions.c.member_id).where(
                sessions.c.token_hash == token_hash, sessions.c.expires_at > now))).first()
        return (row.household_id, row.member_id) if row else None

    async def end_session(self, token_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))

    async def add_invite(self, token_hash: str, household_id: UUID, invited_by: UUID, role: str,
                         expires_at: datetime, member_id: UUID | None = None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(invites).values(token_hash=token_hash, household_id=household_id,
                                                      invited_by=invited_by, role=role, expires_at=expires_at,
                                                      member_id=member_id))

    async def invite(self, token_hash: str) -> Invite | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(invites).where(invites.c.token_hash == token_hash))).first()
        return Invite(row.household_id, row.role, row.expires_at, row.used_at, row.member_id) if row else None

    async def use_invite(self, token_hash: str, now: datetime) -> bool:
        """Mark the invitation used; False when another request used it first (single use, even in a race)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(update(invites).where(
                invites.c.token_hash == token_hash, invites.c.used_at.is_(None), invites.c.expires_at > now,
            ).values(used_at=now))
        return result.rowcount == 1

    async def release_invite(self, token_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(invites).where(invites.c.token_hash == token_hash).values(used_at=None))

    # ---- rituals and consent ----------------------------------------------------------------------

    async def save_ritual(self, ritual_id: UUID, household_id: UUID, *, template: str, title: str,
                          participants: Sequence[UUID], rrule: str, local_time: str, sensitive: bool, state: str,
                          next_due_at: datetime | None, requested: bool = False,
                          command_id: UUID | None = None) -> None:
        async with self.engine.begin() as conn:
            values: dict[str, Any] = {"household_id": household_id, "template": template, "title": title,
                      "participants": _json_ids(participants), "rrule": rrule, "local_time": local_time,
                      "sensitive": sensitive, "state": state, "next_due_at": next_due_at}
            if requested:  # our own request: never overwrite what the scheduler already said
                exists = await conn.scalar(select(rituals.c.ritual_id).where(rituals.c.ritual_id == ritual_id))
                if exists is None:
                    await conn.execute(insert(rituals).values(ritual_id=ritual_id, command_id=command_id, **values))
            else:
                await _upsert(conn, rituals, {"ritual_id": ritual_id}, values)

    async def refuse_ritual(self, command_id: UUID, household_id: UUID) -> None:
        """The scheduler refused the app's ScheduleRitual: the request is shown as not set up (never after the
        scheduler confirmed it)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(rituals).where(
                rituals.c.command_id == command_id, rituals.c.household_id == household_id,
                rituals.c.state == "requested").values(state="refused"))

    async def set_ritual_state(self, ritual_id: UUID, household_id: UUID, state: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(rituals).where(rituals.c.ritual_id == ritual_id,
                                                     rituals.c.household_id == household_id).values(state=state))

    async def delete_ritual(self, ritual_id: UUID, household_id: UUID) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(rituals).where(rituals.c.ritual_id == ritual_id,
                                                     rituals.c.household_id == household_id))
            await conn.execute(delete(consents).where(consents.c.ritual_id == ritual_id))

    async def set_consent(self, ritual_id: UUID, member_id: UUID, household_id: UUID, given: bool,
                          state: str | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(consents).where(consents.c.ritual_id == ritual_id,
                                                      consents.c.member_id == member_id))
            if given:
                await conn.execute(insert(consents).values(ritual_id=ritual_id, member_id=member_id,
                                                           household_id=household_id))
            if state is not None:
                await conn.execute(update(rituals).where(rituals.c.ritual_id == ritual_id,
                                                         rituals.c.household_id == household_id)
                                   .values(state=state))

    async def rituals_of(self, household_id: UUID) -> list[Ritual]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(rituals).where(rituals.c.household_id == household_id)
                                       .order_by(rituals.c.title))).all()
            given = (await conn.execute(select(consents.c.ritual_id, consents.c.member_id).where(
                consents.c.household_id == household_id))).all()
        by_ritual: dict[UUID, set[UUID]] = {}
        for ritual_id, member_id in given:
            by_ritual.setdefault(ritual_id, set()).add(member_id)
        return [Ritual(r.ritual_id, r.template, r.title, _ids(r.participants), r.rrule, r.local_time, r.sensitive,
                       r.state, frozenset(by_ritual.get(r.ritual_id, ()))) for r in rows]

    # ---- occurrences, check-ins, streaks, moments -------------------------------------------------

    async def save_occurrence(self, occ: Occurrence, household_id: UUID) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, occurrences, {"occurrence_id": occ.occurrence_id}, {
                "household_id": household_id, "ritual_id": occ.ritual_id, "template": occ.template,
                "title": occ.title, "participants": _json_ids(occ.participants), "scheduled_for": occ.scheduled_for,
                "deadline": occ.deadline, "sensitive": occ.sensitive})

    async def occurrence(self, occurrence_id: UUID, household_id: UUID) -> Occurrence | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(occurrences).where(
                occurrences.c.occurrence_id == occurrence_id, occurrences.c.household_id == household_id))).first()
        return _occurrence(row) if row else None

    async def occurrences_between(self, household_id: UUID, start: datetime, end: datetime) -> list[Occurrence]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(occurrences).where(
                occurrences.c.household_id == household_id, occurrences.c.scheduled_for >= start,
                occurrences.c.scheduled_for < end))
        return [_occurrence(r) for r in rows]

    def reading(self) -> AsyncConnection:
        """One connection for a page's reads (`async with store.reading() as conn`): each checkout costs a ping."""
        return self.engine.connect()

    async def today_view(self, household_id: UUID, start: datetime, end: datetime,
                         conn: AsyncConnection | None = None) -> tuple[
            dict[str, Any] | None, list[dict[str, Any]], list[Occurrence], list[CheckIn]]:
        """Everything the today page shows, on one connection (the page the whole household opens most; `conn`: the
        page's own, else one of its own)."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.today_view(household_id, start, end, own)
        row = (await conn.execute(select(households).where(households.c.household_id == household_id))).first()
        people = [dict(r._mapping) for r in await conn.execute(
            select(members).where(members.c.household_id == household_id).order_by(members.c.display_name))]
        found = [_occurrence(r) for r in await conn.execute(select(occurrences).where(
            occurrences.c.household_id == household_id, occurrences.c.scheduled_for >= start,
            occurrences.c.scheduled_for < end))]
        done: list[CheckIn] = []
        if found:
            done = [CheckIn(r.occurrence_id, r.member_id, r.status, r.closeness) for r in await conn.execute(
                select(checkins).where(checkins.c.household_id == household_id,
                                       checkins.c.occurrence_id.in_([o.occurrence_id for o in found])))]
        return (dict(row._mapping) if row else None), people, found, done

    async def save_checkin(self, checkin: CheckIn, household_id: UUID, recorded_at: datetime) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, checkins, {"occurrence_id": checkin.occurrence_id, "member_id": checkin.member_id},
                          {"household_id": household_id, "status": checkin.status, "closeness": checkin.closeness,
                           "recorded_at": recorded_at})

    async def checkins_for(self, household_id: UUID, occurrence_ids: Sequence[UUID]) -> list[CheckIn]:
        if not occurrence_ids:
            return []
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(checkins).where(checkins.c.household_id == household_id,
                                                             checkins.c.occurrence_id.in_(list(occurrence_ids))))
        return [CheckIn(r.occurrence_id, r.member_id, r.status, r.closeness) for r in rows]

    async def save_streak(self, ritual_id: UUID, household_id: UUID, template: str, length: int, best: int,
                          unit: str) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, streaks, {"ritual_id": ritual_id}, {
                "household_id": household_id, "template": template, "length": length, "best": best, "unit": unit})

    async def streaks_of(self, household_id: UUID) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(streaks, rituals.c.title).join(
                rituals, rituals.c.ritual_id == streaks.c.ritual_id, isouter=True).where(
                streaks.c.household_id == household_id))
        return [dict(r._mapping) for r in rows]

    async def save_moment(self, moment_id: UUID, household_id: UUID, member_id: UUID, kind: str,
                          happened_at: datetime) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, moments, {"moment_id": moment_id}, {
                "household_id": household_id, "member_id": member_id, "kind": kind, "happened_at": happened_at})

    async def moment_kinds_since(self, household_id: UUID, since: datetime) -> list[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(moments.c.kind, func.count()).where(
                moments.c.household_id == household_id, moments.c.happened_at >= since).group_by(moments.c.kind))
            return [kind for kind, n in rows for _ in range(n)]

    async def moments_since(self, household_id: UUID, since: datetime) -> list[tuple[datetime, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(moments.c.happened_at, moments.c.kind).where(
                moments.c.household_id == household_id, moments.c.happened_at >= since))
            return [(at, kind) for at, kind in rows]

    async def closeness_since(self, household_id: UUID, member_id: UUID, since: datetime) -> list[tuple[datetime, int]]:
        """One member's own closeness ratings (when recorded, the rating) since a moment."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(checkins.c.recorded_at, checkins.c.closeness).where(
                checkins.c.household_id == household_id, checkins.c.member_id == member_id,
                checkins.c.closeness.is_not(None), checkins.c.recorded_at >= since))
            return [(at, rating) for at, rating in rows]

    async def save_date_nights(self, ritual_id: UUID, household_id: UUID, kept: int, expected: int,
                               window_weeks: int) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, date_nights, {"ritual_id": ritual_id}, {
                "household_id": household_id, "kept": kept, "expected": expected, "window_weeks": window_weeks})

    async def date_nights_of(self, household_id: UUID) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(date_nights, rituals.c.title, rituals.c.participants).join(
                rituals, rituals.c.ritual_id == date_nights.c.ritual_id, isouter=True).where(
                date_nights.c.household_id == household_id).order_by(date_nights.c.ritual_id))
        # participants: None when the app has not heard of the ritual itself yet
        return [{**r._mapping, "participants": _ids(r.participants) if r.participants else None} for r in rows]

    async def save_summary(self, household_id: UUID, week_start: str, positive: int, negative: int,
                           focus_title: str, focus_text: str) -> None:
        async with self.engine.begin() as conn:
            await _upsert(conn, summaries, {"household_id": household_id}, {
                "week_start": week_start, "positive": positive, "negative": negative, "focus_title": focus_title,
                "focus_text": focus_text})

    async def summary_of(self, household_id: UUID) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(summaries).where(summaries.c.household_id == household_id))).first()
        return dict(row._mapping) if row else None


def _occurrence(r: Any) -> Occurrence:
    return Occurrence(r.occurrence_id, r.ritual_id, r.template, r.title, _ids(r.participants), r.scheduled_for,
                      r.deadline, r.sensitive)
