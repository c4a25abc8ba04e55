"""The SQL store (SQLAlchemy 2 async): SQLite by default, PostgreSQL for production and several instances.

Every state change and the events it causes are written in one transaction (the outbox); the relay
publishes outbox rows afterwards. Due rituals are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL,
so several instances never fire the same occurrence; SQLite (one instance) serialises writers instead.
The pure work inside a transaction (`decide` for a command, `wake` for a claimed batch) runs in a worker
thread, so the event loop, and with it the Kafka consumer's heartbeat, never waits for it.

The relay is sharded (PostgreSQL): a row's shard is abs(hashtext(household_id) % N), N =
ATTUNE_SCHEDULER_RELAY_SHARDS, worked out by the database, so the row layout is unchanged and all of a
household's rows share one shard. Each shard is published by the one instance holding its session advisory
lock (`ShardLeases`), in id order, so N instances publish side by side and each household's events keep their
order; a dead instance's connection closes, its locks go with it, and the others take its shards at their
next poll. SQLite has one process and one relay: every shard, no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from sys import intern
from typing import Any

import sqlalchemy as sa
from attune_contracts import Envelope, headers_for, make_envelope, spec_of
from attune_contracts.messages import SchedulerCommandRejected
from attune_contracts.types import Contract
from attune_runtime.deadletters import erase_dead_letter_key
from attune_runtime.migrations import upgrade_on
from attune_runtime.sql import make_engine as shared_make_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..ports import OutboxRow
from ..service import (
    Emitted,
    Household,
    HouseholdView,
    Member,
    Outcome,
    Ritual,
    WakeResult,
    fact_event_id,
    named_members,
)
from .tables import (
    BigId,
    UtcDateTime,
    credential_revocations,
    dead_letter_keys,
    erased_households,
    households,
    members,
    outbox,
    processed_commands,
    rituals,
)

log = logging.getLogger("attune.scheduler")

PRODUCER = "scheduler"
_MIGRATION_LOCK = 810_101
_SHARD_LOCK = 810_102  # (810102, shard): held by the instance whose relay publishes that shard
_RELAY_PRESENCE = 810_103  # (810103, shard count): held shared by every running relay
DEFAULT_RELAY_SHARDS = 16
_RELAY_COLUMNS = (outbox.c.id, outbox.c.event_id, outbox.c.topic, outbox.c.household_id, outbox.c.body,
                  outbox.c.headers, outbox.c.event_type, outbox.c.template, outbox.c.due_at,
                  outbox.c.catch_up_minutes, outbox.c.publish_at)


@dataclass
class FireReport:
    claimed: int = 0
    emitted: list[Emitted] = field(default_factory=list)
    templates: dict[uuid.UUID, str] = field(default_factory=dict)
    stale_reminders: int = 0
    failed: int = 0


def make_engine(url: str) -> AsyncEngine:
    return shared_make_engine(url, server={"pool_size": 10, "max_overflow": 5, "pool_pre_ping": True},
                              sqlite={"connect_args": {"timeout": 30}})


def _ritual_from_row(row: Any) -> Ritual:
    return Ritual(
        id=row.id, household_id=row.household_id, template=row.template, title=row.title,
        participants=[uuid.UUID(p) for p in row.participants], rrule=row.rrule, local_time=row.local_time,
        start_date=row.start_date, time_zone=row.time_zone, reminder_offsets=list(row.reminder_offsets),
        catch_up_minutes=row.catch_up_minutes, sensitive=row.sensitive, paused=row.paused,
        consents=[uuid.UUID(c) for c in row.consents], next_due_at=row.next_due_at,
        next_reminder_at=row.next_reminder_at, reminder_cursor=row.reminder_cursor,
    )


def _ritual_values(r: Ritual, now: datetime) -> dict[str, Any]:
    return {
        "id": r.id, "household_id": r.household_id, "template": r.template, "title": r.title,
        "participants": [str(p) for p in r.participants], "rrule": r.rrule, "local_time": r.local_time,
        "start_date": r.start_date, "time_zone": r.time_zone, "reminder_offsets": list(r.reminder_offsets),
        "catch_up_minutes": r.catch_up_minutes, "sensitive": r.sensitive, "paused": r.paused,
        "consents": [str(c) for c in r.consents], "state": r.state.value, "next_due_at": r.next_due_at,
        "next_reminder_at": r.next_reminder_at, "reminder_cursor": r.reminder_cursor, "wake_at": r.wake_at, "updated_at": now,
    }


class SqlStore:
    def __init__(self, engine: AsyncEngine, *, relay_shards: int = DEFAULT_RELAY_SHARDS) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.relay_shard_count = relay_shards
        self._leases = ShardLeases(engine, relay_shards) if self.postgres else None
        # SQLite allows one writer; one process serialises its own transactions instead of hitting "locked".
        self._lock: asyncio.Lock | None = None if self.postgres else asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, relay_shards: int = DEFAULT_RELAY_SHARDS) -> SqlStore:
        return cls(make_engine(url), relay_shards=relay_shards)

    async def close(self) -> None:
        await self.release_relay_shards()
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        if self._lock is None:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self._lock, self.engine.begin() as conn:
                yield conn

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert(table) if self.postgres else sqlite.insert(table))

    # ---- schema --------------------------------------------------------------------------------

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest Alembic revision, or `revision` (safe with several instances starting
        at once)."""
        async with self._tx() as conn:
            await upgrade_on(conn, Path(__file__).resolve().parent.parent / "migrations", _MIGRATION_LOCK, revision)

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True

    # ---- commands ------------------------------------------------------------------------------

    async def _load_view(self, conn: AsyncConnection, household_id: uuid.UUID,
                         named: Iterable[uuid.UUID] = (), *, lock: bool = True) -> HouseholdView:
        view = HouseholdView(id=household_id, household=None)
        named = set(named)
        if named:  # where the members the command names live, if not here (service.check_members)
            for m in await conn.execute(sa.select(members.c.member_id, members.c.household_id).where(
                    members.c.member_id.in_(named), members.c.household_id != household_id)):
                view.elsewhere[m.member_id] = m.household_id
        query = sa.select(households).where(households.c.id == household_id)
        row = (await conn.execute(query.with_for_update() if lock and self.postgres else query)).first()
        if row is None:
            view.erased_at = (await conn.execute(
                sa.select(erased_households.c.erased_at).where(erased_households.c.household_id == household_id)
            )).scalar_one_or_none()
            return view
        from attune_contracts.messages import HouseholdKind, MemberRole

        view.household = Household(row.id, row.name, row.time_zone, HouseholdKind(row.kind))
        for m in await conn.execute(sa.select(members).where(members.c.household_id == household_id)):
            view.members[m.member_id] = Member(m.member_id, m.display_name, MemberRole(m.role))
        # Locked: the firing loop (SKIP LOCKED) leaves these rituals alone until this command commits.
        of_household = sa.select(rituals).where(rituals.c.household_id == household_id)
        for r in await conn.execute(of_household.with_for_update() if lock and self.postgres else of_household):
            view.rituals[r.id] = _ritual_from_row(r)
        return view

    async def export(self, household_id: uuid.UUID) -> dict[str, Any] | None:
        """What the scheduler holds about a household, as JSON; {"erased_at": ...} for an erased one; None: unknown."""
        async with self.engine.connect() as conn:
            view = await self._load_view(conn, household_id, lock=False)
            if view.household is None:
                return {"erased_at": view.erased_at.isoformat()} if view.erased_at is not None else None
            commands = (await conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.household_id == household_id)
            )).scalar_one()
        h = view.household
        return {
            "household_id": str(h.id), "name": h.name, "time_zone": h.time_zone, "kind": h.kind.value,
            "members": [{"member_id": str(m.member_id), "display_name": m.display_name, "role": m.role.value}
                        for m in view.members.values()],
            "rituals": [{
                "ritual_id": str(r.id), "template": r.template, "title": r.title,
                "participants": [str(p) for p in r.participants], "rrule": r.rrule, "local_time": r.local_time,
                "start_date": r.start_date.isoformat(), "time_zone": r.time_zone,
                "reminder_offsets_minutes": list(r.reminder_offsets), "catch_up_minutes": r.catch_up_minutes,
                "sensitive": r.sensitive, "paused": r.paused, "consents": [str(c) for c in r.consents],
                "state": r.state.value, "next_due_at": r.next_due_at.isoformat() if r.next_due_at else None,
            } for r in view.rituals.values()],
            "events_waiting_to_be_published": commands,
        }

    async def handle_command(
        self,
        envelope: Envelope[Any],
        now: datetime,
        decide: Callable[[HouseholdView, Envelope[Any], datetime], Outcome],
    ) -> Outcome | None:
        """Decide and apply one command with its facts, once. None: this event id was handled before."""
        async with self._tx() as conn:
            seen = (await conn.execute(
                sa.select(processed_commands.c.event_id).where(processed_commands.c.event_id == envelope.event_id)
            )).first()
            if seen is not None:
                return None
            view = await self._load_view(conn, envelope.household_id, named_members(envelope.payload))
            # Off the event loop: a household's rituals are re-planned here (bounded per ritual, but a zone
            # change re-plans them all), and the consumer's heartbeat must not wait for it.
            outcome = await asyncio.to_thread(decide, view, envelope, now)
            await self._apply(conn, envelope.household_id, outcome, now)
            await self._record(conn, envelope, outcome, now)
            return outcome

    async def reject(self, envelope: Envelope[Any], reason: str, now: datetime) -> Outcome | None:
        """Answer a command refused before anything was loaded: its rejection and its id, once, and no lock
        on the household. None: this event id was handled before."""
        async with self._tx() as conn:
            seen = (await conn.execute(
                sa.select(processed_commands.c.event_id).where(processed_commands.c.event_id == envelope.event_id)
            )).first()
            if seen is not None:
                return None
            outcome = Outcome(facts=[SchedulerCommandRejected(
                command_event_id=envelope.event_id, command_type=envelope.type, reason=reason[:2000])],
                rejected=reason)
            await self._record(conn, envelope, outcome, now)
            return outcome

    async def _record(self, conn: AsyncConnection, envelope: Envelope[Any], outcome: Outcome, now: datetime) -> None:
        await self._enqueue(conn, [
            self._fact_row(fact, envelope, fact_event_id(envelope.event_id, i), now)
            for i, fact in enumerate(outcome.facts)
        ])
        await conn.execute(processed_commands.insert().values(
            event_id=envelope.event_id, command_type=envelope.type,
            outcome="rejected" if outcome.rejected else "accepted", processed_at=now,
        ))

    async def credentials_not_before(self, household_id: uuid.UUID) -> datetime | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(credential_revocations.c.not_before).where(
                credential_revocations.c.household_id == household_id))).scalar_one_or_none()

    async def _apply(self, conn: AsyncConnection, household_id: uuid.UUID, outcome: Outcome, now: datetime) -> None:
        if outcome.credentials_not_before is not None:
            stmt = self._insert(credential_revocations).values(household_id=household_id,
                                                               not_before=outcome.credentials_not_before)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["household_id"], set_={"not_before": stmt.excluded.not_before},
                where=credential_revocations.c.not_before < stmt.excluded.not_before))
        if outcome.erase:
            await conn.execute(rituals.delete().where(rituals.c.household_id == household_id))
            await conn.execute(members.delete().where(members.c.household_id == household_id))
            await conn.execute(households.delete().where(households.c.id == household_id))
            # Occurrences not yet published for an erased household are not sent at all.
            await conn.execute(outbox.delete().where(outbox.c.household_id == household_id))
            await conn.execute(self._insert(erased_households).values(household_id=household_id, erased_at=now)
                               .on_conflict_do_nothing(index_elements=["household_id"]))
            await erase_dead_letter_key(conn, dead_letter_keys, household_id)  # its dead letters: unreadable
            return
        if outcome.household is not None:
            h = outcome.household
            values = {"id": h.id, "name": h.name, "time_zone": h.time_zone, "kind": h.kind.value, "updated_at": now}
            stmt = self._insert(households).values(**values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={
                k: stmt.excluded[k] for k in ("name", "time_zone", "kind", "updated_at")}))
        for m in outcome.members:
            stmt = self._insert(members).values(household_id=household_id, member_id=m.member_id,
                                               display_name=m.display_name, role=m.role.value)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["household_id", "member_id"],
                set_={"display_name": stmt.excluded.display_name, "role": stmt.excluded.role}))
        touched = [r.id for r in outcome.rituals] + list(outcome.deleted_rituals)
        if touched:
            await conn.execute(outbox.delete().where(
                outbox.c.ritual_id.in_(touched), outbox.c.publish_at > now))
        for r in outcome.rituals:
            values = _ritual_values(r, now)
            stmt = self._insert(rituals).values(**values)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}))
        if outcome.deleted_rituals:
            await conn.execute(rituals.delete().where(rituals.c.id.in_(outcome.deleted_rituals)))

    @staticmethod
    def _fact_row(fact: Contract, cause: Envelope[Any], event_id: uuid.UUID, now: datetime) -> dict[str, Any]:
        # A command refused for a NUL in its correlation id is answered without it (others store it as text).
        envelope = make_envelope(fact, household_id=cause.household_id, producer=PRODUCER,
                                 correlation_id=cause.correlation_id.replace("\x00", ""), event_id=event_id,
                                 occurred_at=now)
        return _outbox_values(envelope, now, template=None, due_at=None, ritual_id=None, publish_at=now,
                              catch_up_minutes=None)

    async def _enqueue(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        if rows:
            await conn.execute(self._insert(outbox).on_conflict_do_nothing(index_elements=["event_id"]), rows)

    # ---- firing --------------------------------------------------------------------------------

    async def fire_due(
        self, now: datetime, limit: int, wake: Callable[[Ritual, datetime, datetime], WakeResult],
        horizon: datetime | None = None,
    ) -> FireReport:
        """Claim up to `limit` rituals whose wake time is before `horizon` (default now), write their events
        to the outbox and advance them: one transaction."""
        report = FireReport()
        horizon = horizon or now
        async with self._tx() as conn:
            claim = (
                sa.select(rituals).where(rituals.c.wake_at <= horizon).order_by(rituals.c.wake_at).limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = (await conn.execute(claim)).all()
            report.claimed = len(rows)
            if not rows:
                return report
            # The claimed rituals are woken in a worker thread: each wake is bounded (recurrence.py), but a
            # batch of them is CPU work the event loop (and the consumer's heartbeat) must not wait behind.
            events, updates = await asyncio.to_thread(_wake_batch, rows, wake, now, horizon, report)
            await self._enqueue(conn, events)
            await conn.execute(
                rituals.update().where(rituals.c.id == sa.bindparam("rid")).values(
                    next_due_at=sa.bindparam("next_due_at"), next_reminder_at=sa.bindparam("next_reminder_at"),
                    reminder_cursor=sa.bindparam("reminder_cursor"), wake_at=sa.bindparam("wake_at"),
                    updated_at=sa.bindparam("updated_at"),
                ),
                updates,
            )
        return report

    async def next_wake_at(self) -> datetime | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.min(rituals.c.wake_at)))).scalar()

    # ---- outbox relay --------------------------------------------------------------------------

    async def relay_shards(self) -> frozenset[int] | None:
        """The shards this instance's relay may publish now; None: all of them (SQLite, one process).

        Called at the start of every relay pass: it takes free shards up to a fair share, and gives back the
        ones above it, so a new instance gets its share and a dead one's shards are taken within a poll.
        """
        if self._leases is None:
            return None
        return await self._leases.refresh()

    async def release_relay_shards(self) -> None:
        """Give back every shard (the relay stopped); others take them at their next poll."""
        if self._leases is not None:
            await self._leases.release()

    @contextlib.asynccontextmanager
    async def claim(
        self, limit: int, now: datetime, read_ahead: MutableMapping[int, OutboxRow],
        shards: frozenset[int] | None = None, after: int | None = None,
    ) -> AsyncIterator[list[OutboxRow]]:
        """The oldest rows due by `now` (at most `limit`) in `shards` (None: all), after id `after`, deleted in a
        transaction that commits when the block ends: publish inside it. A failure rolls back and the rows go
        again later (at least once, with the same event ids).

        On PostgreSQL the rows are locked without skipping: a row still held by another transaction (the last
        batch of an instance whose shard this one has just taken) is waited for, never overtaken; the relay's
        own overlapping batches do not meet, as each claims after the last id of the one before (`after`). The
        shards are checked to be still this instance's after the rows are locked: if its lock connection died
        meanwhile (another may own them now), the batch rolls back unpublished (`ShardLost`).

        Rows already in `read_ahead` are taken from it (popped); only the others are read here.
        """
        async with self._tx() as conn:
            query = sa.select(outbox.c.id, outbox.c.event_id).where(outbox.c.publish_at <= now)
            if self.postgres:
                if shards is not None:
                    if not shards:
                        yield []
                        return
                    if len(shards) < self.relay_shard_count:  # holding them all (one instance): no filter
                        query = query.where(_shard_of(self.relay_shard_count) == sa.any_(
                            sa.bindparam("shards", sorted(shards), type_=ARRAY(sa.Integer))))
                if after is not None:
                    query = query.where(outbox.c.id > after)
                query = query.order_by(outbox.c.id).limit(limit).with_for_update()
            else:  # one process, one transaction at a time
                query = query.order_by(outbox.c.id).limit(limit)
            claimed = [(r.id, r.event_id) for r in await conn.execute(query)]
            if not claimed:
                yield []
                return
            if shards is not None and self._leases is not None:
                await self._leases.verify(conn, shards)
            # A row in memory counts only if it is the same event: SQLite reuses the id of a deleted last row.
            ready = {i: row for i, event_id in claimed
                     if (row := read_ahead.pop(i, None)) is not None and row.event_id == event_id}
            missing = [i for i, _ in claimed if i not in ready]
            if missing:
                ready.update((row.id, row) for row in await self._outbox_rows(conn, self._id_in(missing)))
            await conn.execute(outbox.delete().where(self._id_in([i for i, _ in claimed])))
            yield [ready[i] for i, _ in claimed]

    async def read_ahead(self, after: tuple[datetime, int] | None, until: datetime, limit: int) -> list[OutboxRow]:
        """Unsent rows to be published by `until`, in (publish_at, id) order after `after`: what the relay keeps
        in memory ahead of their instant."""
        conditions = [outbox.c.publish_at <= until]
        if after is not None:
            conditions.append(sa.tuple_(outbox.c.publish_at, outbox.c.id) > sa.tuple_(
                sa.literal(after[0], UtcDateTime), sa.literal(after[1], BigId)))
        async with self.engine.connect() as conn:
            return await self._outbox_rows(conn, *conditions, order_by=(outbox.c.publish_at, outbox.c.id),
                                           limit=limit)

    def _id_in(self, ids: list[int]) -> Any:
        if self.postgres:  # one array parameter instead of thousands of bound values
            return outbox.c.id == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(sa.BigInteger)))
        return outbox.c.id.in_(ids)

    @staticmethod
    async def _outbox_rows(
        conn: AsyncConnection, *where: Any, order_by: Sequence[Any] = (), limit: int | None = None
    ) -> list[OutboxRow]:
        query = sa.select(*_RELAY_COLUMNS).where(*where).order_by(*order_by).limit(limit)
        # Rows read ahead stay in memory (~1.7 KB each): the strings every row repeats are shared, not copied.
        return [
            OutboxRow(r.id, r.event_id, intern(r.topic), str(r.household_id).encode(), r.body.encode(),
                      {intern(k): v for k, v in r.headers.items()}, intern(r.event_type),
                      intern(r.template) if r.template else None, r.due_at, r.household_id, r.catch_up_minutes,
                      r.publish_at)
            for r in await conn.execute(query)
        ]

    async def next_publish_at(self) -> datetime | None:
        """When the earliest row written ahead of time becomes due for publishing."""
        async with self.engine.connect() as conn:
            return (await conn.execute(
                sa.select(sa.func.min(outbox.c.publish_at))
            )).scalar()

    async def outbox_backlog(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                sa.select(sa.func.count()).select_from(outbox)
            )).scalar_one()

    # ---- reading -------------------------------------------------------------------------------

    async def active_by_template(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(rituals.c.template, sa.func.count()).where(rituals.c.state == "active")
                .group_by(rituals.c.template)
            )
            return {template: count for template, count in result}

    async def ritual(self, ritual_id: uuid.UUID) -> Ritual | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(rituals).where(rituals.c.id == ritual_id))).first()
            return _ritual_from_row(row) if row else None

    async def count(self, table: str) -> int:
        tables = {"households": households, "members": members, "rituals": rituals, "outbox": outbox,
                  "processed_commands": processed_commands}
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(tables[table]))).scalar_one()


class ShardLost(RuntimeError):
    """A relay batch found its shard no longer held by this instance (its lock connection died): not published."""


def _shard_of(shards: int) -> Any:
    """A row's relay shard, worked out by the database from its household (so every instance agrees, and all of
    a household's rows share one shard), with no column to keep in step when the shard count changes."""
    return sa.func.abs(sa.func.hashtext(sa.cast(outbox.c.household_id, sa.Text)) % shards)


_TAKEN = (
    "SELECT objid::int8 AS shard FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid::int8 = :cls"
)
_HELD = sa.text(_TAKEN + " AND pid = :pid")
_PRESENCE = sa.text(
    "SELECT objid::int8 AS shards, count(DISTINCT pid) AS relays FROM pg_locks"
    " WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::int8 = :cls GROUP BY objid"
)


class ShardLeases:
    """The relay shards one instance holds: PostgreSQL session advisory locks (810102, shard) on a connection
    of their own, kept open while the relay runs.

    Every running relay also holds (810103, shard count) in shared mode: its presence, so each can count the
    relays and take a fair share, ceil(shards / relays); one holding more gives the surplus back between
    passes, one holding fewer try-locks free ones. When an instance dies its connection closes and PostgreSQL
    drops its locks: the others take its shards at their next poll. Relays configured with different shard
    counts would split households differently, so while they disagree none of them publishes (logged).
    """

    def __init__(self, engine: AsyncEngine, shards: int) -> None:
        self.engine, self.shards = engine, shards
        self.conn: AsyncConnection | None = None
        self.pid: int | None = None
        self.held: set[int] = set()

    async def refresh(self) -> frozenset[int]:
        try:
            if self.conn is None:
                self.conn = await self.engine.connect()
                self.pid = (await self.conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
                await self.conn.execute(sa.text("SELECT pg_advisory_lock_shared(:cls, :n)"),
                                        {"cls": _RELAY_PRESENCE, "n": self.shards})
            conn = self.conn
            relays = {r.shards: r.relays for r in await conn.execute(_PRESENCE, {"cls": _RELAY_PRESENCE})}
            if set(relays) != {self.shards}:
                log.error("relays disagree on the shard count (%s): publishing nothing until they agree",
                          sorted(relays))
                fair = 0
            else:
                fair = -(-self.shards // max(1, relays[self.shards]))
            for shard in sorted(self.held, reverse=True)[:max(0, len(self.held) - fair)]:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:cls, :s)"), {"cls": _SHARD_LOCK, "s": shard})
                self.held.discard(shard)
            assert self.pid is not None  # noqa: S101 - narrows a type; set when the lock connection opened
            taken: set[int] = set()
            if len(self.held) < fair:  # try only shards nobody holds, not every shard on every pass
                taken = {r.shard for r in await conn.execute(sa.text(_TAKEN), {"cls": _SHARD_LOCK})}
            start = self.pid % self.shards  # instances start their search at different shards
            for step in range(self.shards):
                if len(self.held) >= fair:
                    break
                shard = (start + step) % self.shards
                if shard not in self.held and shard not in taken and (await conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:cls, :s)"), {"cls": _SHARD_LOCK, "s": shard}
                )).scalar_one():
                    self.held.add(shard)
            await conn.commit()  # session locks outlive the transaction; nothing is left open
        except BaseException:
            await self._drop()
            raise
        return frozenset(self.held)

    async def verify(self, conn: AsyncConnection, shards: frozenset[int]) -> None:
        """Inside a claim's transaction, after its rows are locked: are `shards` still held by this instance?"""
        held = {r.shard for r in await conn.execute(_HELD, {"cls": _SHARD_LOCK, "pid": self.pid})}
        if not shards <= held:
            self.held &= held
            raise ShardLost(f"relay shards {sorted(shards - held)} are no longer held by this instance")

    async def release(self) -> None:
        if self.conn is None:
            return
        try:
            await self.conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
            await self.conn.commit()
        except BaseException:
            await self._drop()
            raise
        await self._drop()

    async def _drop(self) -> None:
        """Close the lock connection (PostgreSQL releases every lock it held)."""
        conn, self.conn, self.pid, self.held = self.conn, None, None, set()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()


def _outbox_values(envelope: Envelope[Any], now: datetime, *, template: str | None, due_at: datetime | None,
                   ritual_id: uuid.UUID | None, publish_at: datetime, catch_up_minutes: int | None) -> dict[str, Any]:
    return {
        "event_id": envelope.event_id, "household_id": envelope.household_id,
        "topic": spec_of(type(envelope.payload)).topic.value, "event_type": envelope.type,
        "body": envelope.to_bytes().decode(), "headers": headers_for(envelope), "template": template,
        "due_at": due_at, "created_at": now, "ritual_id": ritual_id, "publish_at": publish_at,
        "catch_up_minutes": catch_up_minutes,
    }


def _wake_batch(
    rows: Sequence[Any], wake: Callable[[Ritual, datetime, datetime], WakeResult], now: datetime,
    horizon: datetime, report: FireReport,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Wake each claimed ritual: its outbox rows and its cursor updates (pure; runs off the event loop)."""
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for row in rows:
        ritual = _ritual_from_row(row)
        try:
            result = wake(ritual, now, horizon)
        except Exception:  # noqa: BLE001 - one broken ritual must not stop every other household
            report.failed += 1
            ritual.next_due_at = ritual.next_reminder_at = None
            result = WakeResult()
        report.stale_reminders += result.stale_reminders
        for item in result.emitted:
            report.emitted.append(item)
            report.templates[item.event_id] = ritual.template
            spec = spec_of(type(item.payload))
            # Written ahead of time, an event still says it occurred at its instant.
            occurred = item.publish_at if item.publish_at and item.publish_at > now else now
            envelope = spec.envelope(
                event_id=item.event_id, type=spec.type, version=spec.version, occurred_at=occurred,
                producer=PRODUCER, correlation_id=str(item.payload.occurrence_id),
                household_id=ritual.household_id, payload=item.payload,
            )
            events.append(_outbox_values(
                envelope, now, template=ritual.template, due_at=item.at, ritual_id=ritual.id,
                publish_at=item.publish_at or now, catch_up_minutes=ritual.catch_up_minutes))
        updates.append({
            "rid": ritual.id, "next_due_at": ritual.next_due_at, "next_reminder_at": ritual.next_reminder_at,
            "reminder_cursor": ritual.reminder_cursor, "wake_at": ritual.wake_at, "updated_at": now,
        })
    return events, updates
