"""The SQL repositories, one per aggregate, and the unit of work that holds them in one transaction.

Plain storage: rows in, domain records out. The rules and the envelopes live elsewhere (decisions.py,
waking.py, outgoing.py); a use case (handlers.py) drives them. On PostgreSQL a household's rows are locked
FOR UPDATE while a command is decided, and due rituals are claimed FOR UPDATE SKIP LOCKED, so several
instances never fire the same occurrence; SQLite (one instance) serialises its transactions instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Self

import sqlalchemy as sa
from attune_contracts.messages import HouseholdKind, MemberRole
from attune_runtime.deadletters import erase_dead_letter_key
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from ..model import Household, HouseholdView, Member, OutboxMessage, Ritual
from .tables import (
    credential_revocations,
    dead_letter_keys,
    erased_households,
    households,
    members,
    outbox,
    processed_commands,
    rituals,
)


def ritual_from_row(row: Any) -> Ritual:
    return Ritual(
        id=row.id, household_id=row.household_id, template=row.template, title=row.title,
        participants=[uuid.UUID(p) for p in row.participants], rrule=row.rrule, local_time=row.local_time,
        start_date=row.start_date, time_zone=row.time_zone, reminder_offsets=list(row.reminder_offsets),
        catch_up_minutes=row.catch_up_minutes, sensitive=row.sensitive, paused=row.paused,
        consents=[uuid.UUID(c) for c in row.consents], next_due_at=row.next_due_at,
        next_reminder_at=row.next_reminder_at, reminder_cursor=row.reminder_cursor,
    )


def ritual_values(r: Ritual, now: datetime) -> dict[str, Any]:
    return {
        "id": r.id, "household_id": r.household_id, "template": r.template, "title": r.title,
        "participants": [str(p) for p in r.participants], "rrule": r.rrule, "local_time": r.local_time,
        "start_date": r.start_date, "time_zone": r.time_zone, "reminder_offsets": list(r.reminder_offsets),
        "catch_up_minutes": r.catch_up_minutes, "sensitive": r.sensitive, "paused": r.paused,
        "consents": [str(c) for c in r.consents], "state": r.state.value, "next_due_at": r.next_due_at,
        "next_reminder_at": r.next_reminder_at, "reminder_cursor": r.reminder_cursor, "wake_at": r.wake_at, "updated_at": now,
    }


def outbox_values(message: OutboxMessage, now: datetime) -> dict[str, Any]:
    return {
        "event_id": message.event_id, "household_id": message.household_id, "topic": message.topic,
        "event_type": message.event_type, "body": message.body, "headers": message.headers,
        "template": message.template, "due_at": message.due_at, "created_at": now, "ritual_id": message.ritual_id,
        "publish_at": message.publish_at, "catch_up_minutes": message.catch_up_minutes,
    }


class _Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"

    def _insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table) if self.postgres else sqlite.insert(table)

    def _locked(self, query: Any, lock: bool) -> Any:
        return query.with_for_update() if lock and self.postgres else query


class SqlHouseholds(_Repository):
    async def load(self, household_id: uuid.UUID, named: Iterable[uuid.UUID] = (), *,
                   lock: bool = True) -> HouseholdView:
        conn = self.conn
        view = HouseholdView(id=household_id, household=None)
        named = set(named)
        if named:  # where the members the command names live, if not here (screening.check_members)
            for m in await conn.execute(sa.select(members.c.member_id, members.c.household_id).where(
                    members.c.member_id.in_(named), members.c.household_id != household_id)):
                view.elsewhere[m.member_id] = m.household_id
        row = (await conn.execute(self._locked(sa.select(households).where(households.c.id == household_id),
                                               lock))).first()
        if row is None:
            view.erased_at = (await conn.execute(
                sa.select(erased_households.c.erased_at).where(erased_households.c.household_id == household_id)
            )).scalar_one_or_none()
            return view
        view.household = Household(row.id, row.name, row.time_zone, HouseholdKind(row.kind))
        for m in await conn.execute(sa.select(members).where(members.c.household_id == household_id)):
            view.members[m.member_id] = Member(m.member_id, m.display_name, MemberRole(m.role))
        # Locked: the firing loop (SKIP LOCKED) leaves these rituals alone until this command commits.
        of_household = sa.select(rituals).where(rituals.c.household_id == household_id)
        for r in await conn.execute(self._locked(of_household, lock)):
            view.rituals[r.id] = ritual_from_row(r)
        return view

    async def save(self, household: Household, now: datetime) -> None:
        values = {"id": household.id, "name": household.name, "time_zone": household.time_zone,
                  "kind": household.kind.value, "updated_at": now}
        stmt = self._insert(households).values(**values)
        await self.conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={
            k: stmt.excluded[k] for k in ("name", "time_zone", "kind", "updated_at")}))

    async def save_member(self, household_id: uuid.UUID, member: Member) -> None:
        stmt = self._insert(members).values(household_id=household_id, member_id=member.member_id,
                                            display_name=member.display_name, role=member.role.value)
        await self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["household_id", "member_id"],
            set_={"display_name": stmt.excluded.display_name, "role": stmt.excluded.role}))

    async def erase(self, household_id: uuid.UUID, now: datetime) -> None:
        conn = self.conn
        await conn.execute(rituals.delete().where(rituals.c.household_id == household_id))
        await conn.execute(members.delete().where(members.c.household_id == household_id))
        await conn.execute(households.delete().where(households.c.id == household_id))
        # Occurrences not yet published for an erased household are not sent at all.
        await conn.execute(outbox.delete().where(outbox.c.household_id == household_id))
        await conn.execute(self._insert(erased_households).values(household_id=household_id, erased_at=now)
                           .on_conflict_do_nothing(index_elements=["household_id"]))
        await erase_dead_letter_key(conn, dead_letter_keys, household_id)  # its dead letters: unreadable

    async def revoke_credentials(self, household_id: uuid.UUID, not_before: datetime) -> None:
        stmt = self._insert(credential_revocations).values(household_id=household_id, not_before=not_before)
        await self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["household_id"], set_={"not_before": stmt.excluded.not_before},
            where=credential_revocations.c.not_before < stmt.excluded.not_before))


class SqlRituals(_Repository):
    async def save(self, ritual: Ritual, now: datetime) -> None:
        values = ritual_values(ritual, now)
        stmt = self._insert(rituals).values(**values)
        await self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}))

    async def delete(self, ritual_ids: Sequence[uuid.UUID]) -> None:
        await self.conn.execute(rituals.delete().where(rituals.c.id.in_(ritual_ids)))

    async def claim_due(self, horizon: datetime, limit: int) -> list[Ritual]:
        claim = (sa.select(rituals).where(rituals.c.wake_at <= horizon).order_by(rituals.c.wake_at).limit(limit)
                 .with_for_update(skip_locked=True))
        rows = (await self.conn.execute(claim)).all()
        if not rows:
            return []
        # Off the event loop: a large batch of rows to records is CPU work the consumer must not wait behind.
        return await asyncio.to_thread(lambda: [ritual_from_row(r) for r in rows])

    async def advance(self, claimed: Sequence[Ritual], now: datetime) -> None:
        await self.conn.execute(
            rituals.update().where(rituals.c.id == sa.bindparam("rid")).values(
                next_due_at=sa.bindparam("next_due_at"), next_reminder_at=sa.bindparam("next_reminder_at"),
                reminder_cursor=sa.bindparam("reminder_cursor"), wake_at=sa.bindparam("wake_at"),
                updated_at=sa.bindparam("updated_at"),
            ),
            [{"rid": r.id, "next_due_at": r.next_due_at, "next_reminder_at": r.next_reminder_at,
              "reminder_cursor": r.reminder_cursor, "wake_at": r.wake_at, "updated_at": now} for r in claimed],
        )


class SqlOutbox(_Repository):
    async def add(self, messages: Sequence[OutboxMessage], now: datetime) -> None:
        if messages:
            await self.conn.execute(self._insert(outbox).on_conflict_do_nothing(index_elements=["event_id"]),
                                    [outbox_values(m, now) for m in messages])

    async def drop_ahead(self, ritual_ids: Sequence[uuid.UUID], after: datetime) -> None:
        await self.conn.execute(outbox.delete().where(outbox.c.ritual_id.in_(ritual_ids), outbox.c.publish_at > after))


class SqlProcessedCommands(_Repository):
    async def seen(self, event_id: uuid.UUID) -> bool:
        return (await self.conn.execute(
            sa.select(processed_commands.c.event_id).where(processed_commands.c.event_id == event_id))).first() is not None

    async def mark(self, event_id: uuid.UUID, command_type: str, outcome: str, now: datetime) -> None:
        await self.conn.execute(processed_commands.insert().values(
            event_id=event_id, command_type=command_type, outcome=outcome, processed_at=now))


class SqlUnitOfWork:
    """One transaction: rolled back when the block ends without `commit()`. SQLite: one at a time (`lock`)."""

    households: SqlHouseholds
    rituals: SqlRituals
    outbox: SqlOutbox
    commands: SqlProcessedCommands

    def __init__(self, engine: AsyncEngine, lock: asyncio.Lock | None, now: Callable[[], datetime]) -> None:
        self._engine, self._lock, self._now = engine, lock, now
        self._stack = contextlib.AsyncExitStack()
        self._tx: AsyncTransaction | None = None
        self.recorded: list[OutboxMessage] = []

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            conn = await stack.enter_async_context(self._engine.connect())
            self._tx = await conn.begin()
            self._stack = stack.pop_all()
        self.households, self.rituals = SqlHouseholds(conn), SqlRituals(conn)
        self.outbox, self.commands = SqlOutbox(conn), SqlProcessedCommands(conn)
        self.recorded = []
        return self

    def record(self, messages: Iterable[OutboxMessage]) -> None:
        self.recorded.extend(messages)

    async def commit(self) -> None:
        assert self._tx is not None  # noqa: S101 - narrows a type; set when the block began
        await self.outbox.add(self.recorded, self._now())
        await self._tx.commit()

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            self._tx = None
            await self._stack.aclose()
