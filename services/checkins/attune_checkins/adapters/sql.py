"""The check-ins store on SQLAlchemy 2 async (SQLite by default, PostgreSQL in production and tests).

The outbox: every transaction that decides events writes them to `checkins_outbox` before it commits
(`SqlTx.enqueue`); the relay reads the oldest rows, publishes them and then deletes them. The relay's order
is the rows' id order, and two things make that the order of the commits, per household:
- on PostgreSQL the writer takes a transaction-scoped advisory lock on the household's shard (one of
  `OUTBOX_SHARDS`, in ascending order, once per transaction, just before inserting) and holds it until it
  commits, so a later transaction of the same household gets larger ids and commits after it; the relay
  can never see a household's row while an earlier one of that household is still uncommitted. SQLite has
  one writer at a time, so ids follow commits anyway.
- only one relay publishes at a time: on PostgreSQL it holds a session advisory lock (`_RELAY_LOCK`) for its
  whole pass (other instances' relays skip their turn); SQLite has one process.
The relay holds no transaction while it waits for the broker, so a broker outage blocks nobody.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

from attune_contracts.messages import CheckInSource, CheckInStatus
from attune_runtime.deadletters import erase_dead_letter_key
from attune_runtime.sql import make_engine as shared_make_engine
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import (
    Integer,
    String,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

from ..ports import OutboxRow
from ..service import Achievement, CheckIn, Household, Moment, Occurrence, Slot
from . import tables as t

OUTBOX_SHARDS = 64
_OUTBOX_LOCK_SPACE = 4172  # (space, shard) two-key advisory locks: apart from the one-key locks below
_RELAY_LOCK = 4172002


class NoteCipher:
    """Notes (and dreams) are encrypted at rest with Fernet; older keys stay readable for rotation."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one notes key is needed")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError):
            raise ValueError(
                "ATTUNE_CHECKINS_NOTES_KEY must be a Fernet key: "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from None

    def seal(self, text: str | None) -> bytes | None:
        return None if text is None else self._fernet.encrypt(text.encode())

    def open(self, token: bytes | None) -> str | None:
        if token is None:
            return None
        try:
            return self._fernet.decrypt(bytes(token)).decode()
        except InvalidToken:
            return "[note unreadable: encrypted with a key that is no longer configured]"


def make_engine(url: str) -> AsyncEngine:
    return shared_make_engine(
        url, server={"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True},
        # One connection: SQLite has one writer anyway, and serialising here means no "database is locked".
        sqlite={"pool_size": 1, "max_overflow": 0, "pool_timeout": 60, "connect_args": {"timeout": 30}},
        sqlite_memory={"poolclass": StaticPool})


class SqlStore:
    def __init__(self, engine: AsyncEngine, cipher: NoteCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[SqlTx]:
        async with self.engine.begin() as conn:
            yield SqlTx(conn, self.cipher)

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))
        return True

    async def close(self) -> None:
        await self.engine.dispose()

    # ---- the outbox relay -------------------------------------------------------------------------

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def relay_turn(self) -> AsyncIterator[bool]:
        """One relay at a time across instances, so each household's events leave in order. On PostgreSQL a
        session advisory lock on its own connection, outside any transaction, for the whole pass; False while
        another instance's relay holds it (a crashed holder's session ends and frees it). SQLite: always True."""
        if not self.postgres:
            yield True
            return
        async with self.engine.connect() as conn:
            got = bool((await conn.execute(text(f"SELECT pg_try_advisory_lock({_RELAY_LOCK})"))).scalar())
            await conn.commit()
            try:
                yield got
            finally:
                if got:
                    try:
                        await conn.execute(text(f"SELECT pg_advisory_unlock({_RELAY_LOCK})"))
                        await conn.commit()
                    except BaseException:
                        await conn.invalidate()  # closing the session releases the lock
                        raise

    async def outbox_rows(self, limit: int) -> list[OutboxRow]:
        """The oldest unpublished events, in the order they must leave."""
        o = t.outbox.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(o.id, o.event_id, o.household_id, o.topic, o.body, o.headers).order_by(o.id).limit(limit)
            )).all()
        return [OutboxRow(r.id, r.event_id, r.household_id, r.topic, r.body.encode(), dict(r.headers)) for r in rows]

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        """Forget rows the broker has acknowledged."""
        async with self.engine.begin() as conn:
            if self.postgres:  # one array parameter instead of hundreds of bound values
                await conn.execute(text("DELETE FROM checkins_outbox WHERE id = ANY(CAST(:ids AS bigint[]))"),
                                   {"ids": list(ids)})
                return
            for chunk in _chunks(list(ids)):
                await conn.execute(delete(t.outbox).where(t.outbox.c.id.in_(chunk)))

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        """How many events wait to be published, and when the oldest of them was written."""
        async with self.engine.connect() as conn:
            count, oldest = (await conn.execute(
                select(func.count(), func.min(t.outbox.c.created_at)).select_from(t.outbox)
            )).one()
        return int(count), oldest


def _dialect_insert(conn: AsyncConnection, table: t.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _insert_ignore(conn: AsyncConnection, table: t.Table, values: dict[str, Any]) -> Any:
    return _dialect_insert(conn, table).values(**values).on_conflict_do_nothing()


def _insert_ignore_many(conn: AsyncConnection, table: t.Table, rows: list[dict[str, Any]]) -> Any:
    return _dialect_insert(conn, table).values(rows).on_conflict_do_nothing()


def _chunks(items: list[Any], size: int = 1000) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SqlTx:
    """One transaction. Every method reads or writes through it; the caller commits by leaving `tx()`."""

    def __init__(self, conn: AsyncConnection, cipher: NoteCipher) -> None:
        self.conn = conn
        self.cipher = cipher

    # ---- the outbox -----------------------------------------------------------------------------

    async def enqueue(self, rows: list[dict[str, Any]]) -> None:
        """Write events to the outbox, to be published once this transaction has committed. Call once per
        transaction, at its end: on PostgreSQL it locks the households' shards (ascending, so two writers
        never wait for each other in a cycle) until the commit, which keeps each household's ids in commit
        order. An event id already waiting is not written twice."""
        if not rows:
            return
        if self.conn.dialect.name == "postgresql":
            shards = sorted({zlib.crc32(r["household_id"].bytes) % OUTBOX_SHARDS for r in rows})
            await self.conn.execute(text(
                f"SELECT pg_advisory_xact_lock({_OUTBOX_LOCK_SPACE}, s) FROM unnest(CAST(:shards AS int[])) AS s"  # noqa: S608 - only a module constant; values are bound
            ), {"shards": shards})
            # One statement with one array parameter per column, whatever the batch size.
            await self.conn.execute(text(
                "INSERT INTO checkins_outbox (event_id, household_id, topic, event_type, body, headers, created_at) "
                "SELECT * FROM unnest(CAST(:event_id AS uuid[]), CAST(:household_id AS uuid[]), "
                "CAST(:topic AS text[]), CAST(:event_type AS text[]), CAST(:body AS text[]), "
                "CAST(:headers AS text[])::json[], CAST(:created_at AS timestamptz[])) "
                "ON CONFLICT (event_id) DO NOTHING"
            ), {
                "event_id": [r["event_id"] for r in rows], "household_id": [r["household_id"] for r in rows],
                "topic": [r["topic"] for r in rows], "event_type": [r["event_type"] for r in rows],
                "body": [r["body"] for r in rows], "headers": [json.dumps(r["headers"]) for r in rows],
                "created_at": [r["created_at"] for r in rows],
            })
            return
        for chunk in _chunks(rows, 500):
            await self.conn.execute(
                _dialect_insert(self.conn, t.outbox).on_conflict_do_nothing(index_elements=["event_id"]), chunk)

    # ---- idempotency ----------------------------------------------------------------------------

    async def claim_event(self, event_id: UUID, household_id: UUID | None, now: datetime) -> bool:
        """True the first time an event id is seen (and remembers it); False on a redelivery."""
        result = await self.conn.execute(
            _insert_ignore(self.conn, t.processed_events,
                           {"event_id": event_id, "household_id": household_id, "processed_at": now})
        )
        return result.rowcount == 1

    async def revoke_credentials(self, household_id: UUID, not_before: datetime) -> None:
        """Refuse the household's credentials issued before `not_before` (never moves back)."""
        table = t.credential_revocations
        inserted = await self.conn.execute(_insert_ignore(
            self.conn, table, {"household_id": household_id, "not_before": not_before}))
        if inserted.rowcount == 0:
            await self.conn.execute(update(table).where(table.c.household_id == household_id,
                                                        table.c.not_before < not_before).values(not_before=not_before))

    async def credentials_not_before(self, household_id: UUID) -> datetime | None:
        table = t.credential_revocations
        return (await self.conn.execute(
            select(table.c.not_before).where(table.c.household_id == household_id))).scalar_one_or_none()

    async def erased_at(self, household_id: UUID) -> datetime | None:
        return (await self.conn.execute(
            select(t.erased_households.c.erased_at).where(t.erased_households.c.household_id == household_id)
        )).scalar_one_or_none()

    # ---- bulk reads and writes (the batch path) --------------------------------------------------

    async def erased_many(self, household_ids: Iterable[UUID]) -> dict[UUID, datetime]:
        ids = list(household_ids)
        rows = (await self.conn.execute(select(t.erased_households).where(
            t.erased_households.c.household_id.in_(ids)))).all() if ids else []
        return {h: e for h, e in rows}

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
            statement = _insert_ignore_many(self.conn, t.processed_events, [
                {"event_id": e, "household_id": h, "processed_at": now} for e, h in chunk
            ]).returning(t.processed_events.c.event_id)
            claimed |= set((await self.conn.execute(statement)).scalars().all())
        return claimed

    async def occurrences_by_id(self, ids: Iterable[UUID]) -> dict[UUID, Occurrence]:
        found: dict[UUID, Occurrence] = {}
        for chunk in _chunks(list(ids)):
            rows = (await self.conn.execute(
                select(*_OCCURRENCE_COLUMNS).where(t.occurrences.c.occurrence_id.in_(chunk)))).all()
            found |= {r[0]: _occurrence(r) for r in rows}
        return found

    async def members_of(self, household_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        return await self._members_by(t.members.c.household_id, t.members.c.member_id, household_ids)

    async def homes_of(self, member_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        """The households each member is known in here."""
        return await self._members_by(t.members.c.member_id, t.members.c.household_id, member_ids)

    async def _members_by(self, key: Any, value: Any, keys: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        found: dict[UUID, set[UUID]] = {}
        for chunk in _chunks(list(keys)):
            for k, v in (await self.conn.execute(select(key, value).where(key.in_(chunk)))).all():
                found.setdefault(k, set()).add(v)
        return {k: frozenset(v) for k, v in found.items()}

    async def checkins_for(self, pairs: set[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], CheckIn]:
        found: dict[tuple[UUID, UUID], CheckIn] = {}
        for chunk in _chunks(list({occ for occ, _ in pairs})):
            rows = (await self.conn.execute(
                select(t.checkins).where(t.checkins.c.occurrence_id.in_(chunk)))).mappings().all()
            for row in rows:
                key = (row["occurrence_id"], row["member_id"])
                if key in pairs:
                    found[key] = self._checkin(row)
        return found

    async def put_checkins(self, new: list[CheckIn], replaced: list[CheckIn]) -> None:
        if new and self.conn.dialect.name == "postgresql":
            # One statement with one array parameter per column, whatever the batch size.
            columns: dict[str, tuple[str, list[Any]]] = {
                "checkin_id": ("uuid", [c.checkin_id for c in new]),
                "occurrence_id": ("uuid", [c.occurrence_id for c in new]),
                "member_id": ("uuid", [c.member_id for c in new]),
                "household_id": ("uuid", [c.household_id for c in new]),
                "ritual_id": ("uuid", [c.ritual_id for c in new]),
                "template": ("text", [c.template for c in new]),
                "scheduled_for": ("timestamptz", [c.scheduled_for for c in new]),
                "status": ("text", [c.status.value for c in new]),
                "snoozed_until": ("timestamptz", [c.snoozed_until for c in new]),
                "closeness": ("int", [c.closeness for c in new]),
                "note_enc": ("bytea", [self.cipher.seal(c.note) for c in new]),
                "source": ("text", [c.source.value for c in new]),
                "submitted_at": ("timestamptz", [c.submitted_at for c in new]),
                "recorded_at": ("timestamptz", [c.recorded_at for c in new]),
            }
            arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, (kind, _) in columns.items())
            await self.conn.execute(
                text(f"INSERT INTO checkins ({', '.join(columns)}) SELECT * FROM unnest({arrays})"),  # noqa: S608 - column names and types from the literal dict above; values are bound
                {name: values for name, (_, values) in columns.items()},
            )
        elif new:
            await self.conn.execute(insert(t.checkins), [self._checkin_row(c) for c in new])
        for checkin in replaced:
            await self.put_checkin(checkin, replace=True)

    def _checkin_row(self, ci: CheckIn) -> dict[str, Any]:
        return {
            "checkin_id": ci.checkin_id, "occurrence_id": ci.occurrence_id, "member_id": ci.member_id,
            "household_id": ci.household_id, "ritual_id": ci.ritual_id, "template": ci.template,
            "scheduled_for": ci.scheduled_for, "status": ci.status.value, "snoozed_until": ci.snoozed_until,
            "closeness": ci.closeness, "note_enc": self.cipher.seal(ci.note), "source": ci.source.value,
            "submitted_at": ci.submitted_at, "recorded_at": ci.recorded_at,
        }

    async def ritual_histories(self, ritual_ids: Iterable[UUID], since: date) -> dict[UUID, list[tuple[Slot, bool]]]:
        """Each ritual's occurrences from local date `since` (only what streaks need), with whether anyone
        marked each one done."""
        done = exists().where(and_(
            t.checkins.c.occurrence_id == t.occurrences.c.occurrence_id, t.checkins.c.status == CheckInStatus.DONE.value,
        ))
        o = t.occurrences.c
        found: dict[UUID, list[tuple[Slot, bool]]] = {}
        for chunk in _chunks(list(ritual_ids)):
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
        for chunk in _chunks(list(ritual_ids)):
            found.update((ritual_id, first) for ritual_id, first in (await self.conn.execute(
                select(o.ritual_id, func.min(o.local_date)).where(o.ritual_id.in_(chunk)).group_by(o.ritual_id)
            )).all())
        return found

    async def ritual_states(self, ritual_ids: Iterable[UUID]) -> tuple[
            dict[UUID, str | None], dict[UUID, tuple[int, int, int | None, int | None]]]:
        """Each ritual's RRULE and stored streak (length, best, adherence kept, expected), in one round trip."""
        rrules: dict[UUID, str | None] = {}
        streaks: dict[UUID, tuple[int, int, int | None, int | None]] = {}
        r, s = t.rituals.c, t.streaks.c
        no_int = null().cast(Integer)
        for chunk in _chunks(list(ritual_ids)):
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
        for chunk in _chunks(rows, 100):
            statement = _dialect_insert(self.conn, t.streaks).values(chunk)
            new = statement.excluded
            await self.conn.execute(statement.on_conflict_do_update(index_elements=["ritual_id"], set_={
                "template": new.template, "unit": new.unit, "length": new.length, "best": new.best,
                "adherence_kept": func.coalesce(new.adherence_kept, t.streaks.c.adherence_kept),
                "adherence_expected": func.coalesce(new.adherence_expected, t.streaks.c.adherence_expected),
            }))

    # ---- households and rituals -----------------------------------------------------------------

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
        inserted = await self.conn.execute(_insert_ignore(
            self.conn, t.households, {"household_id": household_id, "time_zone": time_zone, "updated_at": now}
        ))
        if inserted.rowcount == 0 and overwrite:
            await self.conn.execute(update(t.households).where(t.households.c.household_id == household_id)
                                    .values(time_zone=time_zone, updated_at=now))

    async def add_member(self, household_id: UUID, member_id: UUID) -> None:
        await self.conn.execute(_insert_ignore(self.conn, t.members, {"household_id": household_id, "member_id": member_id}))

    async def put_ritual(self, ritual_id: UUID, household_id: UUID, template: str, rrule: str | None) -> None:
        inserted = await self.conn.execute(_insert_ignore(self.conn, t.rituals, {
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

    # ---- occurrences ----------------------------------------------------------------------------

    async def add_occurrence(self, occ: Occurrence) -> bool:
        result = await self.conn.execute(_insert_ignore(self.conn, t.occurrences, {
            "occurrence_id": occ.occurrence_id, "household_id": occ.household_id, "ritual_id": occ.ritual_id,
            "template": occ.template, "title": occ.title, "participants": [str(p) for p in occ.participants],
            "scheduled_for": occ.scheduled_for, "deadline": occ.deadline, "local_date": occ.local_date,
            "time_zone": occ.time_zone, "sensitive": occ.sensitive, "closed_at": None, "missed": False,
        }))
        return result.rowcount == 1

    async def put_short_link(self, code_id: str, household_id: UUID, sealed_token: str, expires_at: datetime) -> None:
        await self.conn.execute(_insert_ignore(self.conn, t.short_links, {
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

    async def announce(self, occ: Occurrence) -> bool:
        """Remember an occurrence a reminder announced (no deadline yet: only its RitualDue sets one)."""
        if (await self.occurrence(occ.occurrence_id)) is not None:
            return False  # already due: the reminder came late, nothing to announce
        result = await self.conn.execute(_insert_ignore(self.conn, t.announced_occurrences, {
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
            select(*_OCCURRENCE_COLUMNS).where(t.occurrences.c.occurrence_id == occurrence_id)
        )).one_or_none()
        return _occurrence(row) if row else None

    async def household_occurrences(self, household_id: UUID, start: date, end: date) -> list[Occurrence]:
        rows = (await self.conn.execute(
            select(*_OCCURRENCE_COLUMNS).where(
                t.occurrences.c.household_id == household_id,
                t.occurrences.c.local_date >= start, t.occurrences.c.local_date <= end,
            ).order_by(t.occurrences.c.scheduled_for)
        )).all()
        return [_occurrence(r) for r in rows]

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
            select(*_OCCURRENCE_COLUMNS).where(
                t.occurrences.c.closed_at.is_(None), t.occurrences.c.deadline <= now, ~answered,
            ).order_by(t.occurrences.c.deadline).limit(limit)
        )).all()
        return [_occurrence(r) for r in rows]

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

    # ---- check-ins ------------------------------------------------------------------------------

    async def checkin(self, occurrence_id: UUID, member_id: UUID) -> CheckIn | None:
        row = (await self.conn.execute(select(t.checkins).where(
            t.checkins.c.occurrence_id == occurrence_id, t.checkins.c.member_id == member_id,
        ))).mappings().one_or_none()
        return self._checkin(row) if row else None

    async def put_checkin(self, ci: CheckIn, *, replace: bool) -> None:
        values = {
            "status": ci.status.value, "snoozed_until": ci.snoozed_until, "closeness": ci.closeness,
            "note_enc": self.cipher.seal(ci.note), "source": ci.source.value, "submitted_at": ci.submitted_at,
            "recorded_at": ci.recorded_at,
        }
        if replace:
            await self.conn.execute(update(t.checkins).where(t.checkins.c.checkin_id == ci.checkin_id).values(**values))
        else:
            await self.conn.execute(insert(t.checkins).values(
                checkin_id=ci.checkin_id, occurrence_id=ci.occurrence_id, member_id=ci.member_id,
                household_id=ci.household_id, ritual_id=ci.ritual_id, template=ci.template,
                scheduled_for=ci.scheduled_for, **values,
            ))

    async def history(self, household_id: UUID, *, offset: int, limit: int) -> tuple[list[CheckIn], int]:
        where = t.checkins.c.household_id == household_id
        total = (await self.conn.execute(select(func.count()).select_from(t.checkins).where(where))).scalar_one()
        rows = (await self.conn.execute(
            select(t.checkins).where(where)
            .order_by(t.checkins.c.scheduled_for.desc(), t.checkins.c.checkin_id).offset(offset).limit(limit)
        )).mappings().all()
        return [self._checkin(r) for r in rows], int(total)

    def _checkin(self, row: Any) -> CheckIn:
        return CheckIn(
            checkin_id=row["checkin_id"], occurrence_id=row["occurrence_id"], member_id=row["member_id"],
            household_id=row["household_id"], ritual_id=row["ritual_id"], template=row["template"],
            status=CheckInStatus(row["status"]), snoozed_until=row["snoozed_until"], closeness=row["closeness"],
            note=self.cipher.open(row["note_enc"]), source=CheckInSource(row["source"]),
            submitted_at=row["submitted_at"], recorded_at=row["recorded_at"], scheduled_for=row["scheduled_for"],
        )

    # ---- streaks, milestones, adherence ---------------------------------------------------------

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
            _insert_ignore_many(self.conn, t.milestones, rows).returning(m.ritual_id, m.run_start, m.length))
        return {(r.ritual_id, r.run_start, r.length) for r in result}

    # ---- moments and achievements ---------------------------------------------------------------

    async def add_moment(self, m: Moment) -> bool:
        result = await self.conn.execute(_insert_ignore(self.conn, t.moments, {
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
        inserted = await self.conn.execute(_insert_ignore(
            self.conn, t.ratio_state, {"household_id": household_id, "below": below}
        ))
        if inserted.rowcount == 0:
            await self.conn.execute(update(t.ratio_state).where(t.ratio_state.c.household_id == household_id)
                                    .values(below=below))

    async def add_achievement(self, a: Achievement) -> bool:
        result = await self.conn.execute(_insert_ignore(self.conn, t.achievements, {
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

    # ---- weekly summaries -----------------------------------------------------------------------

    async def all_households(self) -> list[tuple[UUID, str]]:
        return [(h, z) for h, z in (await self.conn.execute(
            select(t.households.c.household_id, t.households.c.time_zone)
        )).all()]

    async def summary_sent(self, household_id: UUID, week_start: date) -> bool:
        return (await self.conn.execute(select(t.weekly_summaries.c.sent_at).where(
            t.weekly_summaries.c.household_id == household_id, t.weekly_summaries.c.week_start == week_start,
        ))).first() is not None

    async def claim_summary(self, household_id: UUID, week_start: date, now: datetime) -> bool:
        result = await self.conn.execute(_insert_ignore(self.conn, t.weekly_summaries, {
            "household_id": household_id, "week_start": week_start, "sent_at": now,
        }))
        return result.rowcount == 1

    # ---- links ----------------------------------------------------------------------------------

    async def use_token(self, token_id: UUID, household_id: UUID, checkin_id: UUID | None, now: datetime,
                        expires_at: datetime) -> bool:
        result = await self.conn.execute(_insert_ignore(self.conn, t.used_link_tokens, {
            "token_id": token_id, "household_id": household_id, "checkin_id": checkin_id, "used_at": now,
            "expires_at": expires_at,
        }))
        return result.rowcount == 1

    async def token_used_at(self, token_id: UUID) -> datetime | None:
        return (await self.conn.execute(
            select(t.used_link_tokens.c.used_at).where(t.used_link_tokens.c.token_id == token_id)
        )).scalar_one_or_none()

    # ---- privacy --------------------------------------------------------------------------------

    async def erase(self, household_id: UUID, erased_at: datetime) -> dict[str, int]:
        removed = {}
        for table in t.HOUSEHOLD_TABLES:
            result = await self.conn.execute(delete(table).where(table.c.household_id == household_id))
            removed[table.name] = result.rowcount
        await self.conn.execute(_insert_ignore(
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


# In the order of Occurrence's fields.
_OCCURRENCE_COLUMNS = [t.occurrences.c[name] for name in (
    "occurrence_id", "household_id", "ritual_id", "template", "title", "participants", "scheduled_for", "deadline",
    "time_zone", "sensitive", "closed_at", "missed",
)]


def _occurrence(row: Any) -> Occurrence:
    """An Occurrence from a row of _OCCURRENCE_COLUMNS."""
    (occurrence_id, household_id, ritual_id, template, title, participants, scheduled_for, deadline, time_zone,
     sensitive, closed_at, missed) = row
    return Occurrence(occurrence_id, household_id, ritual_id, template, title, tuple(map(UUID, participants)),
                      scheduled_for, deadline, time_zone, sensitive, closed_at, bool(missed))
