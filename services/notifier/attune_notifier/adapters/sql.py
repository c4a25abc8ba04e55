"""The notifier's store on SQLAlchemy 2 async: SQLite by default, PostgreSQL for several instances."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from uuid import UUID, uuid4

from attune_contracts.content import normalise_locale
from attune_contracts.messages import ChannelKind, MemberUpserted
from attune_runtime.deadletters import erase_dead_letter_key
from attune_runtime.keyring import Keyring
from attune_runtime.migrations import upgrade
from attune_runtime.sql import make_engine as shared_make_engine
from cryptography.fernet import InvalidToken
from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ..service import ChannelRef, Intent, QuietHours, Recipient
from .tables import (
    channels,
    credential_revocations,
    dead_letter_keys,
    deliveries,
    erased_households,
    members,
    question_picks,
)

ACTIVE = ("pending", "deferred", "failed")
# The mark an in-flight delivery gets when its occurrence is checked in meanwhile (suppress_occurrence).
DONE_IN_FLIGHT = "already_done_in_flight"


def make_engine(url: str) -> AsyncEngine:
    return shared_make_engine(url, server={"pool_size": 20, "max_overflow": 10})


async def migrate(engine: AsyncEngine) -> None:
    # Several processes (ATTUNE_NOTIFIER_WORKERS) start at once: one migrates, the others wait for it.
    await upgrade(engine, str(resources.files("attune_notifier") / "migrations"), "attune_notifier.migrate")


class ChannelCipher:
    """Fernet encryption of channel URLs and of delivery params; several comma-separated keys allow rotation
    (first encrypts, all decrypt)."""

    def __init__(self, keys: str) -> None:
        self._fernet = Keyring(keys, setting="ATTUNE_NOTIFIER_CHANNEL_KEY").fernet

    def encrypt(self, url: str) -> bytes:
        return self._fernet.encrypt(url.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise ValueError("its stored URL could not be decrypted with the configured channel keys "
                             "(was the key that encrypted it retired?)") from None

    def seal_params(self, params: dict[str, Any]) -> str:
        """A delivery's message params (names, notes, ritual titles) as a Fernet token, stored as a JSON string."""
        return self._fernet.encrypt(json.dumps(params, separators=(",", ":")).encode()).decode("ascii")

    def open_params(self, stored: Any) -> dict[str, Any]:
        """Params as stored: a token (sealed by `seal_params`), or a JSON object written before params were
        encrypted, which is read as it is."""
        if isinstance(stored, dict):
            return stored
        try:
            value = json.loads(self._fernet.decrypt(str(stored).encode()))
        except (InvalidToken, UnicodeDecodeError, ValueError):
            raise ValueError("its stored message could not be decrypted with the configured channel keys "
                             "(was the key that encrypted it retired?)") from None
        if not isinstance(value, dict):
            raise ValueError("its stored message is not a set of params")  # noqa: TRY004 - one error type for callers
        return value


@dataclass
class RoundContext:
    """What a delivery round knows about its members: preferences, channels (decrypted), recent sends."""

    members: dict[UUID, Recipient]
    channels: dict[UUID, list[ChannelRef]]
    urls: dict[UUID, str]
    sent: dict[UUID, list[datetime]]
    broken_members: dict[UUID, str] = field(default_factory=dict)  # why, never a secret
    broken_channels: dict[UUID, str] = field(default_factory=dict)
    sent_ids: set[UUID] = field(default_factory=set)  # the notifications behind `sent`


@dataclass
class Delivery:
    notification_id: UUID
    household_id: UUID
    member_id: UUID
    cause_event_id: UUID
    cause_type: str
    purpose: str
    category: str
    template: str
    params: dict[str, Any]
    sensitive: bool
    occurrence_id: UUID | None
    ritual_id: UUID | None
    occurred_at: datetime
    created_at: datetime
    expires_at: datetime | None
    status: str
    reason: str | None
    channel_index: int
    attempt: int
    total_attempts: int
    next_attempt_at: datetime | None
    claimed_until: datetime | None
    channel_kind: str | None
    last_error: str | None
    sent_at: datetime | None
    unknown_sends: int = 0
    # Why its params could not be read (decrypted), never a secret; such a delivery is not sent.
    params_error: str | None = None

    @classmethod
    def of(cls, row: Any, cipher: ChannelCipher) -> Delivery:
        values = dict(row._mapping)
        try:
            values["params"] = cipher.open_params(values["params"])
        except ValueError as exc:
            values["params"], values["params_error"] = {}, f"the notification's text: {exc}"
        return cls(**values)


def _recipient(row: Any) -> Recipient:
    return Recipient(
        member_id=row.member_id, household_id=row.household_id, display_name=row.display_name,
        time_zone=row.time_zone, role=row.role, quiet_hours=QuietHours.parse(row.quiet_start, row.quiet_end),
        discreet=row.discreet, daily_cap=row.daily_cap,
        categories={k: tuple(ChannelKind(x) for x in v) for k, v in (row.categories or {}).items()},
        locale=normalise_locale(row.locale),
    )


# PostgreSQL: a batch of intents as one INSERT over arrays (one prepared statement whatever the batch size);
# the NOT EXISTS keeps erased households out and ON CONFLICT keeps a redelivered event from adding a row.
_ARRAYS = {
    "notification_id": "uuid", "household_id": "uuid", "member_id": "uuid", "cause_event_id": "uuid",
    "cause_type": "text", "purpose": "text", "category": "text", "template": "text", "params": "text",
    "sensitive": "boolean", "occurrence_id": "uuid", "ritual_id": "uuid", "occurred_at": "timestamptz",
    "expires_at": "timestamptz", "next_attempt_at": "timestamptz",
}
_INSERT_MANY = text(
    "INSERT INTO notifier_deliveries (notification_id, household_id, member_id, cause_event_id, cause_type, "  # noqa: S608 - names from _ARRAYS
    "purpose, category, template, params, sensitive, occurrence_id, ritual_id, occurred_at, created_at, "
    "expires_at, status, channel_index, attempt, total_attempts, next_attempt_at) "
    "SELECT i.notification_id, i.household_id, i.member_id, i.cause_event_id, i.cause_type, i.purpose, "
    "i.category, i.template, CAST(i.params AS json), i.sensitive, i.occurrence_id, i.ritual_id, i.occurred_at, "
    "CAST(:created_at AS timestamptz), i.expires_at, 'pending', 0, 0, 0, i.next_attempt_at "
    f"FROM unnest({', '.join(f'CAST(:{name} AS {kind}[])' for name, kind in _ARRAYS.items())}) "
    f"AS i({', '.join(_ARRAYS)}) "
    "WHERE NOT EXISTS (SELECT 1 FROM notifier_erased_households e WHERE e.household_id = i.household_id) "
    "ON CONFLICT (notification_id) DO NOTHING RETURNING notification_id"
)
_SAVED_TYPES = {
    "status": "text", "reason": "text", "channel_index": "integer", "attempt": "integer",
    "total_attempts": "integer", "next_attempt_at": "timestamptz", "channel_kind": "text", "last_error": "text",
    "sent_at": "timestamptz", "unknown_sends": "integer",
}
# A delivery round's rows written back in one UPDATE; a row suppressed or erased meanwhile is left alone. A row
# whose occurrence was checked in while it was in flight (reason DONE_IN_FLIGHT, still active) keeps the send's
# outcome when it was final (sent: the person did get it), and is dropped instead of retried.
_ACTIVE_SQL = ", ".join(repr(a) for a in ACTIVE)
_DROP_RETRY = f"d.reason = '{DONE_IN_FLIGHT}' AND u.status IN ({_ACTIVE_SQL})"
_SAVE_SET = {n: f"u.{n}" for n in _SAVED_TYPES} | {
    "status": f"CASE WHEN {_DROP_RETRY} THEN 'dropped' ELSE u.status END",
    "reason": f"CASE WHEN {_DROP_RETRY} THEN 'already_done' ELSE u.reason END",
    "next_attempt_at": f"CASE WHEN {_DROP_RETRY} THEN NULL ELSE u.next_attempt_at END",
}
_SAVE_MANY = text(
    f"UPDATE notifier_deliveries AS d SET claimed_until = NULL, {', '.join(f'{n} = {v}' for n, v in _SAVE_SET.items())} "  # noqa: S608 - constant names
    f"FROM unnest(CAST(:notification_id AS uuid[]), "
    f"{', '.join(f'CAST(:{n} AS {kind}[])' for n, kind in _SAVED_TYPES.items())}) "
    f"AS u(notification_id, {', '.join(_SAVED_TYPES)}) "
    f"WHERE d.notification_id = u.notification_id AND d.status IN ({_ACTIVE_SQL}) "
    "RETURNING d.notification_id"
)


# PostgreSQL: the delivery loop's statements, written once as fixed SQL over arrays (`= ANY(:ids)`). Built with
# Core at each call they cost a statement tree, a cache key and, for `IN (...)`, a new SQL text (and a new
# server-side prepare) for every list length; these are one text each, prepared once per connection. The
# `.columns(...)` give each result column its table type, so rows come back exactly as from the Core query.
_DELIVERY_COLUMNS = ", ".join(c.name for c in deliveries.c)
_CLAIM_IDS = text(
    f"SELECT notification_id FROM notifier_deliveries WHERE status IN ({_ACTIVE_SQL}) "  # noqa: S608 - constants
    "AND next_attempt_at <= :now AND (claimed_until IS NULL OR claimed_until <= :now) "
    "ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED"
).columns(deliveries.c.notification_id)
_CLAIM_ROWS = text(
    "UPDATE notifier_deliveries SET claimed_until = :until "  # noqa: S608 - constant names
    f"WHERE notification_id = ANY(CAST(:ids AS uuid[])) RETURNING {_DELIVERY_COLUMNS}"
).columns(*deliveries.c)
_ROUND_MEMBERS = text(
    f"SELECT {', '.join(c.name for c in members.c)} FROM notifier_members "  # noqa: S608 - constant names
    "WHERE member_id = ANY(CAST(:ids AS uuid[]))"
).columns(*members.c)
_ROUND_CHANNELS = text(
    "SELECT channel_id, member_id, kind, position, secret FROM notifier_channels "
    "WHERE member_id = ANY(CAST(:ids AS uuid[])) AND retired_at IS NULL ORDER BY position"
).columns(channels.c.channel_id, channels.c.member_id, channels.c.kind, channels.c.position, channels.c.secret)
_ROUND_SENT = text(
    "SELECT member_id, sent_at, notification_id FROM notifier_deliveries "
    "WHERE member_id = ANY(CAST(:ids AS uuid[])) AND status = 'sent' AND sent_at >= :since"
).columns(deliveries.c.member_id, deliveries.c.sent_at, deliveries.c.notification_id)


def _columns_of(intents: Sequence[Intent], now: datetime, cipher: ChannelCipher) -> dict[str, Any]:
    def aware(value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:  # as the column type does: never guess a zone
            raise ValueError("naive datetimes are not stored: pass an aware UTC datetime")
        return value

    return {
        "created_at": aware(now),
        "notification_id": [i.notification_id for i in intents], "household_id": [i.household_id for i in intents],
        "member_id": [i.member_id for i in intents], "cause_event_id": [i.cause_event_id for i in intents],
        "cause_type": [i.cause_type for i in intents], "purpose": [i.purpose for i in intents],
        "category": [i.category for i in intents], "template": [i.template for i in intents],
        "params": [json.dumps(cipher.seal_params(i.params)) for i in intents], "sensitive": [i.sensitive for i in intents],
        "occurrence_id": [i.occurrence_id for i in intents], "ritual_id": [i.ritual_id for i in intents],
        "occurred_at": [aware(i.occurred_at) for i in intents], "expires_at": [aware(i.expires_at) for i in intents],
        "next_attempt_at": [aware(max(now, i.not_before)) for i in intents],
    }


class SqlStore:
    def __init__(self, engine: AsyncEngine, cipher: ChannelCipher) -> None:
        self.engine = engine
        # Single statements run without BEGIN/COMMIT round trips; each is atomic on its own.
        self.auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.cipher = cipher
        self._insert_stmt: Any = None
        self._save_stmt: Any = None
        self._postgres = engine.dialect.name == "postgresql"

    def _insert(self, table: Any) -> Any:
        if self._postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # ---- members --------------------------------------------------------------------------------

    async def upsert_member(self, household_id: UUID, fact: MemberUpserted, now: datetime) -> None:
        """Store what the scheduler says about a member. The name is only ever shown in messages, so control
        characters (a NUL, which PostgreSQL text cannot hold) are dropped from it rather than refusing the
        fact, which would leave the member unreachable."""
        name = "".join(ch for ch in fact.display_name if unicodedata.category(ch) != "Cc").strip() or "Someone"
        values = {"household_id": household_id, "display_name": name, "role": fact.role.value,
                  "time_zone": fact.time_zone, "updated_at": now}
        stmt = self._insert(members).values(
            member_id=fact.member_id, discreet=False, daily_cap=12, categories={}, **values,
        ).on_conflict_do_update(index_elements=[members.c.member_id], set_=values,
                                # never moves a member to another household (service.check_members says why)
                                where=members.c.household_id == household_id)
        async with self.engine.begin() as conn:
            erased = (await conn.execute(select(erased_households.c.household_id)
                                         .where(erased_households.c.household_id == household_id))).first()
            if erased is None:
                await conn.execute(stmt)

    async def homes_of(self, member_ids: Iterable[UUID]) -> dict[UUID, UUID]:
        """The household each of these members belongs to here (members not known here are left out)."""
        ids = list(member_ids)
        found: dict[UUID, UUID] = {}
        if not ids:
            return found
        async with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = await conn.execute(select(members.c.member_id, members.c.household_id)
                                          .where(members.c.member_id.in_(ids[start:start + 500])))
                found.update({row.member_id: row.household_id for row in rows})
        return found

    async def get_member(self, member_id: UUID) -> Recipient | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(members).where(members.c.member_id == member_id))).first()
        return _recipient(row) if row else None

    async def household_members(self, household_id: UUID) -> dict[UUID, Recipient]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(members).where(members.c.household_id == household_id))).all()
        return {row.member_id: _recipient(row) for row in rows}

    async def update_preferences(self, member_id: UUID, changes: dict[str, Any], now: datetime) -> Recipient | None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(members).where(members.c.member_id == member_id).values(**changes, updated_at=now)
            )
            if result.rowcount == 0:
                return None
        return await self.get_member(member_id)

    # ---- channels -------------------------------------------------------------------------------

    async def add_channel(self, recipient: Recipient, kind: ChannelKind, url: str, position: int | None,
                          now: datetime) -> ChannelRef:
        channel_id = uuid4()
        async with self.engine.begin() as conn:
            if position is None:
                top = (await conn.execute(
                    select(func.max(channels.c.position)).where(channels.c.member_id == recipient.member_id)
                )).scalar()
                position = 0 if top is None else top + 1
            await conn.execute(insert(channels).values(
                channel_id=channel_id, member_id=recipient.member_id, household_id=recipient.household_id,
                kind=kind.value, position=position, secret=self.cipher.encrypt(url), created_at=now,
            ))
        return ChannelRef(channel_id, kind, position)

    async def list_channels(self, member_id: UUID) -> list[ChannelRef]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(channels.c.channel_id, channels.c.kind, channels.c.position)
                .where(channels.c.member_id == member_id).order_by(channels.c.position)
            )).all()
        return [ChannelRef(r.channel_id, ChannelKind(r.kind), r.position) for r in rows]

    async def channel_states(self, member_id: UUID) -> list[tuple[ChannelRef, datetime | None]]:
        """The member's channels in order, each with when it was retired (None: in use)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(channels.c.channel_id, channels.c.kind, channels.c.position, channels.c.retired_at)
                .where(channels.c.member_id == member_id).order_by(channels.c.position)
            )).all()
        return [(ChannelRef(r.channel_id, ChannelKind(r.kind), r.position), r.retired_at) for r in rows]

    async def channel_holding(self, member_id: UUID, secret: str) -> ChannelRef | None:
        """The member's channel in use whose stored URL (or subscription) is exactly `secret`, if any. Tokens are
        salted, so each of the member's few channels is opened and compared."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(channels.c.channel_id, channels.c.kind, channels.c.position, channels.c.secret)
                .where(channels.c.member_id == member_id, channels.c.retired_at.is_(None))
            )).all()
        for r in rows:
            try:
                if self.cipher.decrypt(r.secret) == secret:
                    return ChannelRef(r.channel_id, ChannelKind(r.kind), r.position)
            except ValueError:
                continue
        return None

    async def retire_channel(self, channel_id: UUID, now: datetime) -> bool:
        """Stop routing to a channel whose destination is gone; kept (and listed as retired) until deleted."""
        async with self.engine.begin() as conn:
            result = await conn.execute(update(channels).where(
                channels.c.channel_id == channel_id, channels.c.retired_at.is_(None)).values(retired_at=now))
        return result.rowcount > 0

    async def load_batch(self, member_ids: Iterable[UUID], sent_since: datetime) -> RoundContext:
        """Everything one delivery round needs about its members, read on one connection.

        A member or channel that cannot be read (a channel undecryptable with the current keys, a stored
        time zone that no longer exists) is reported in `broken_*`, never raised: it must fail that
        member's deliveries only, not the round (which would fail again every lease, for everyone in it).
        """
        ids = list(set(member_ids))
        ctx = RoundContext({}, {m: [] for m in ids}, {}, {m: [] for m in ids})
        if not ids:
            return ctx
        async with self.auto.connect() as conn:
            if self._postgres:
                people = (await conn.execute(_ROUND_MEMBERS, {"ids": ids})).all()
                rows = (await conn.execute(_ROUND_CHANNELS, {"ids": ids})).all()
                times = (await conn.execute(_ROUND_SENT, {"ids": ids, "since": sent_since})).all()
            else:
                people = (await conn.execute(select(members).where(members.c.member_id.in_(ids)))).all()
                rows = (await conn.execute(
                    select(channels.c.channel_id, channels.c.member_id, channels.c.kind, channels.c.position,
                           channels.c.secret).where(channels.c.member_id.in_(ids), channels.c.retired_at.is_(None))
                    .order_by(channels.c.position)
                )).all()
                times = (await conn.execute(
                    select(deliveries.c.member_id, deliveries.c.sent_at, deliveries.c.notification_id)
                    .where(deliveries.c.member_id.in_(ids), deliveries.c.status == "sent",
                           deliveries.c.sent_at >= sent_since)
                )).all()
        for r in people:
            try:
                recipient = _recipient(r)
                recipient.zone  # noqa: B018 - a zone missing from tzdata fails here, not mid-round
            except Exception as exc:  # noqa: BLE001 - bad stored data of one member
                ctx.broken_members[r.member_id] = (
                    f"the member's stored preferences could not be read ({type(exc).__name__})")
                continue
            ctx.members[r.member_id] = recipient
        for r in rows:
            try:
                kind = ChannelKind(r.kind)
            except ValueError:
                continue  # an unknown kind is never routed to
            ctx.channels[r.member_id].append(ChannelRef(r.channel_id, kind, r.position))
            try:
                ctx.urls[r.channel_id] = self.cipher.decrypt(r.secret)
            except ValueError as exc:
                ctx.broken_channels[r.channel_id] = f"{kind} channel {exc}"
        for r in times:
            ctx.sent[r.member_id].append(r.sent_at)
            ctx.sent_ids.add(r.notification_id)
        return ctx

    async def channel_urls_since(self, since: datetime | None, limit: int,
                                 known: set[UUID] | None = None) -> tuple[dict[UUID, str], datetime | None]:
        """The newest `limit` channels created after `since` (all when None) that are not in `known`, with their
        URLs, and the latest creation time among those read: for warming the sender's plugin cache. Only the
        channels returned are decrypted; undecryptable ones are skipped (their deliveries report them)."""
        query = (select(channels.c.channel_id, channels.c.secret, channels.c.created_at)
                 .order_by(channels.c.created_at.desc()).limit(limit))
        if since is not None:
            query = query.where(channels.c.created_at > since)
        async with self.auto.connect() as conn:
            rows = (await conn.execute(query)).all()
        urls: dict[UUID, str] = {}
        for r in rows:
            if known is not None and r.channel_id in known:
                continue
            try:
                urls[r.channel_id] = self.cipher.decrypt(r.secret)
            except ValueError:
                continue
        return urls, (rows[0].created_at if rows else since)

    async def channel_url(self, channel_id: UUID) -> str | None:
        async with self.engine.connect() as conn:
            token = (await conn.execute(select(channels.c.secret).where(channels.c.channel_id == channel_id))).scalar()
        return None if token is None else self.cipher.decrypt(token)

    async def delete_channel(self, member_id: UUID, channel_id: UUID) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(channels).where(
                and_(channels.c.channel_id == channel_id, channels.c.member_id == member_id)))
        return result.rowcount > 0

    # ---- deliveries -----------------------------------------------------------------------------

    async def insert_intents(self, intents: Sequence[Intent], now: datetime) -> set[UUID]:
        """Store new notifications; return the ids that were new (a redelivered event adds nothing).

        On PostgreSQL a whole batch is one statement over arrays; each row is still checked against erased
        households and de-duplicated by notification id inside that statement.
        """
        if not intents:
            return set()
        if self._postgres:
            async with self.auto.connect() as conn:
                result = await conn.execute(_INSERT_MANY, _columns_of(intents, now, self.cipher))
                return {r[0] for r in result.all()}
        rows = [{
            "notification_id": i.notification_id, "household_id": i.household_id, "member_id": i.member_id,
            "cause_event_id": i.cause_event_id, "cause_type": i.cause_type, "purpose": i.purpose,
            "category": i.category, "template": i.template, "params": self.cipher.seal_params(i.params), "sensitive": i.sensitive,
            "occurrence_id": i.occurrence_id, "ritual_id": i.ritual_id, "occurred_at": i.occurred_at,
            "created_at": now, "expires_at": i.expires_at, "status": "pending", "reason": None,
            "channel_index": 0, "attempt": 0, "total_attempts": 0,
            "next_attempt_at": max(now, i.not_before), "claimed_until": None, "channel_kind": None,
            "last_error": None, "sent_at": None, "unknown_sends": 0,
        } for i in intents]
        inserted: set[UUID] = set()
        async with self.auto.connect() as conn:
            for row in rows:
                inserted.update(r[0] for r in (await conn.execute(self._insert_intent, row)).all())
        return inserted

    @property
    def _insert_intent(self) -> Any:
        """One statement per row: nothing stored for an erased household, nothing twice for a redelivery."""
        if self._insert_stmt is None:
            names = [c.name for c in deliveries.c]
            source = (select(*[bindparam(c.name, type_=c.type) for c in deliveries.c])
                      .where(~exists().where(erased_households.c.household_id == bindparam("household_id"))))
            self._insert_stmt = (self._insert(deliveries).from_select(names, source)
                                 .on_conflict_do_nothing(index_elements=[deliveries.c.notification_id])
                                 .returning(deliveries.c.notification_id))
        return self._insert_stmt

    async def seal_plaintext_params(self, page: int = 500) -> int:
        """Encrypt the params of rows written before params were encrypted (plain JSON objects); returns how
        many. Run at start-up after `migrate`: reading such a row works without it, but a dump would not
        stay blind to them. Safe to run from several processes at once (a row already sealed is skipped)."""
        kind = "json_typeof" if self._postgres else "json_type"
        plain = text(f"{kind}(notifier_deliveries.params) = 'object'")
        sealed = 0
        while True:
            async with self.engine.begin() as conn:
                rows = (await conn.execute(select(deliveries.c.notification_id, deliveries.c.params)
                                           .where(plain).limit(page))).all()
                done = 0
                for row in rows:
                    if isinstance(row.params, dict):
                        done += (await conn.execute(
                            update(deliveries).where(deliveries.c.notification_id == row.notification_id, plain)
                            .values(params=self.cipher.seal_params(row.params)))).rowcount
            sealed += done
            if len(rows) < page or done == 0:
                return sealed

    async def revoke_credentials(self, household_id: UUID, not_before: datetime) -> None:
        """Refuse the household's credentials issued before `not_before` (never moves back)."""
        async with self.engine.begin() as conn:
            inserted = await conn.execute(self._insert(credential_revocations).values(
                household_id=household_id, not_before=not_before).on_conflict_do_nothing())
            if inserted.rowcount == 0:
                await conn.execute(update(credential_revocations).where(
                    credential_revocations.c.household_id == household_id,
                    credential_revocations.c.not_before < not_before).values(not_before=not_before))

    async def credentials_not_before(self, household_id: UUID) -> datetime | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(credential_revocations.c.not_before).where(
                credential_revocations.c.household_id == household_id))).scalar_one_or_none()

    async def recent_deliveries(self, *, status: str | None, household_id: UUID | None, limit: int) -> list[Delivery]:
        query = select(deliveries).order_by(deliveries.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if household_id is not None:
            query = query.where(deliveries.c.household_id == household_id)
        async with self.engine.connect() as conn:
            return [Delivery.of(r, self.cipher) for r in (await conn.execute(query)).all()]

    async def erased_among(self, household_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(set(household_ids))
        if not ids:
            return set()
        async with self.engine.connect() as conn:
            return {r[0] for r in (await conn.execute(select(erased_households.c.household_id)
                                                      .where(erased_households.c.household_id.in_(ids)))).all()}

    async def suppress_occurrence(self, occurrence_id: UUID, purposes: Sequence[str], now: datetime,
                                  reason: str = "already_done") -> list[Delivery]:
        """Drop the occurrence's deliveries still waiting (returned); one being sent right now is only marked:
        its send decides (sent stays sent, since the person got it; a retry becomes dropped, see `save_many`)."""
        waiting = or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until <= now)
        of_it = and_(deliveries.c.occurrence_id == occurrence_id, deliveries.c.status.in_(ACTIVE),
                     deliveries.c.purpose.in_(list(purposes)))
        async with self.engine.begin() as conn:
            rows = (await conn.execute(
                update(deliveries).where(of_it, waiting)
                .values(status="dropped", reason=reason, next_attempt_at=None, claimed_until=None)
                .returning(*deliveries.c)
            )).all()
            await conn.execute(update(deliveries).where(of_it, ~waiting).values(reason=DONE_IN_FLIGHT))
        return [Delivery.of(r, self.cipher) for r in rows]

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[Delivery]:
        """Take due deliveries for `lease`; several instances on PostgreSQL skip each other's rows."""
        if self._postgres:
            # Two statements in one transaction: folded into one UPDATE ... IN (subquery), PostgreSQL may
            # re-run the skip-locked subquery and claim more rows than asked (a test caught it).
            async with self.engine.begin() as conn:
                ids = [r[0] for r in (await conn.execute(_CLAIM_IDS, {"now": now, "limit": limit})).all()]
                if not ids:
                    return []
                rows = (await conn.execute(_CLAIM_ROWS, {"ids": ids, "until": now + lease})).all()
            return sorted((Delivery.of(r, self.cipher) for r in rows), key=lambda d: d.next_attempt_at or now)
        due = and_(
            deliveries.c.status.in_(ACTIVE), deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until <= now),
        )
        query = select(deliveries.c.notification_id).where(due).order_by(deliveries.c.next_attempt_at).limit(limit)
        async with self.engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(query)).all()]
            if not ids:
                return []
            rows = (await conn.execute(
                update(deliveries).where(deliveries.c.notification_id.in_(ids))
                .values(claimed_until=now + lease).returning(*deliveries.c)
            )).all()
        return sorted((Delivery.of(r, self.cipher) for r in rows), key=lambda d: d.next_attempt_at or now)

    async def next_due_at(self) -> datetime | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(func.min(deliveries.c.next_attempt_at)).where(deliveries.c.status.in_(ACTIVE))
            )).scalar()

    _SAVED = tuple(_SAVED_TYPES)

    async def save(self, delivery: Delivery) -> bool:
        """Write back a claimed delivery, unless it was suppressed or erased meanwhile."""
        return delivery.notification_id in await self.save_many([delivery])

    @property
    def _save(self) -> Any:
        if self._save_stmt is None:
            drop_retry = and_(deliveries.c.reason == DONE_IN_FLIGHT, bindparam("b_status").in_(ACTIVE))
            values = {k: bindparam(f"b_{k}", type_=deliveries.c[k].type) for k in self._SAVED}
            values |= {
                "status": case((drop_retry, "dropped"), else_=bindparam("b_status")),
                "reason": case((drop_retry, "already_done"), else_=bindparam("b_reason")),
                "next_attempt_at": case((drop_retry, None), else_=bindparam("b_next_attempt_at",
                                                                       type_=deliveries.c.next_attempt_at.type)),
            }
            self._save_stmt = (
                update(deliveries)
                .where(deliveries.c.notification_id == bindparam("b_id"), deliveries.c.status.in_(ACTIVE))
                .values(claimed_until=None, **values)
            )
        return self._save_stmt

    async def save_many(self, batch: Sequence[Delivery]) -> set[UUID]:
        """`save` for a delivery round; returns the ids written (the others were suppressed or erased meanwhile)."""
        if not batch:
            return set()
        if self._postgres:
            params: dict[str, Any] = {"notification_id": [d.notification_id for d in batch]}
            for name in self._SAVED:
                params[name] = [getattr(d, name) for d in batch]
            async with self.auto.connect() as conn:
                return {r[0] for r in (await conn.execute(_SAVE_MANY, params)).all()}
        async with self.auto.connect() as conn:
            saved = set()
            for d in batch:
                result = await conn.execute(self._save, {"b_id": d.notification_id,
                                                         **{f"b_{k}": getattr(d, k) for k in self._SAVED}})
                if result.rowcount > 0:
                    saved.add(d.notification_id)
            return saved

    async def release(self, batch: Sequence[Delivery], not_before: datetime | None = None) -> None:
        """Give claimed rows back without an outcome (not sent: the worker is stopping, or their lease ran
        short), so any instance can take them at once instead of after the lease; with `not_before`, due
        again then, behind the rows already due (their gateway host is busy). A row claimed again by someone
        else meanwhile (its lease differs) is left alone."""
        values: dict[str, Any] = {"claimed_until": None}
        if not_before is not None:
            values["next_attempt_at"] = not_before
        async with self.auto.connect() as conn:
            for d in batch:
                await conn.execute(update(deliveries).where(
                    deliveries.c.notification_id == d.notification_id,
                    deliveries.c.claimed_until == d.claimed_until).values(**values))

    async def get_delivery(self, notification_id: UUID) -> Delivery | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(deliveries).where(deliveries.c.notification_id == notification_id))).first()
        return Delivery.of(row, self.cipher) if row else None

    async def deliveries_for(self, member_id: UUID) -> list[Delivery]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(deliveries).where(deliveries.c.member_id == member_id).order_by(deliveries.c.created_at)
            )).all()
        return [Delivery.of(r, self.cipher) for r in rows]

    async def pick_question(self, occurrence_id: UUID, household_id: UUID, ritual_id: UUID, bank_size: int,
                            seed: str, now: datetime, depths: Sequence[str] = ()) -> int:
        from ..service import next_question_index

        async with self.engine.begin() as conn:
            found = (await conn.execute(select(question_picks.c.question_index)
                                        .where(question_picks.c.occurrence_id == occurrence_id))).scalar()
            if found is not None:
                return int(found)
            used = [r[0] for r in (await conn.execute(
                select(question_picks.c.question_index)
                .where(question_picks.c.household_id == household_id, question_picks.c.ritual_id == ritual_id)
                .order_by(question_picks.c.picked_at)
            )).all()]
            index = next_question_index(bank_size, used, seed, depths)
            await conn.execute(self._insert(question_picks).values(
                occurrence_id=occurrence_id, household_id=household_id, ritual_id=ritual_id,
                question_index=index, picked_at=now,
            ).on_conflict_do_nothing(index_elements=[question_picks.c.occurrence_id]))
            return int((await conn.execute(select(question_picks.c.question_index)
                                           .where(question_picks.c.occurrence_id == occurrence_id))).scalar())

    async def erase_household(self, household_id: UUID, now: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with self.engine.begin() as conn:
            for name, table in (("deliveries", deliveries), ("channels", channels), ("members", members),
                                ("question_picks", question_picks)):
                counts[name] = (await conn.execute(delete(table).where(table.c.household_id == household_id))).rowcount
            counts["dead_letter_keys"] = await erase_dead_letter_key(conn, dead_letter_keys, household_id)
            await conn.execute(self._insert(erased_households).values(household_id=household_id, erased_at=now)
                               .on_conflict_do_nothing(index_elements=[erased_households.c.household_id]))
        return counts

    async def is_erased(self, household_id: UUID) -> bool:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(erased_households.c.household_id)
                                       .where(erased_households.c.household_id == household_id))).first() is not None

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))
        return True
