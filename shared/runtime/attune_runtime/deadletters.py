"""Crypto-shredding of dead letters: what a consumer gave up on stays readable only while its household exists.

A dead letter keeps a message's original bytes (names, notes, dreams) and a reason that may quote them, for
7 days on a topic anyone with the operator's read access can read, and no record on a Kafka topic can be
deleted one by one. So they are not written in the clear: the bytes, the headers and the whole reason are
sealed with AES-256-GCM under a data key of the (service, household), kept in that service's own database
and wrapped there by the service's dead-letter key (ATTUNE_<SERVICE>_DEAD_LETTER_KEY, Fernet keys: the
first wraps, every one unwraps, so it rotates like the other keyrings). Erasing a household deletes its data
key in the same transaction as its rows: every dead letter of it, on any partition and in any copy, can
no longer be opened by anyone.

Whose key: the envelope's household when the message parsed; otherwise the record's Kafka key when it is a
household id (every Attune message is keyed by its household, so an undecodable one usually still says
whose it was); otherwise the service-wide key, which no erasure destroys: undecodable bytes with no
household stay readable until the topic's retention (7 days) removes them.

What stays in the clear: the Kafka key (a household id), where the record came from, its length and
SHA-256, the kind of failure, and a reason the service wrote in its own words (contract and trust refusals,
driver messages with their values hidden); a handler bug's reason keeps only the exception's class.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from attune_contracts.messages import DeadLetter, SealedDeadLetter
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, MetaData, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .keyring import Keyring, parse_keys
from .sql import UtcDateTime

__all__ = [
    "OPEN_PATH", "SERVICE_WIDE", "DeadLetterKeyErased", "DeadLetterVault", "OpenedDeadLetter",
    "dead_letter_keys_table", "erase_dead_letter_key", "household_scope", "open_route", "parse_dead_letter_keys",
]

log = logging.getLogger("attune.deadletters")

SERVICE_WIDE = "service"
NONCE_BYTES = 12


class DeadLetterKeyErased(Exception):
    """The data key of a sealed dead letter is gone: its household was erased (or the letter is another
    service's, or was sealed under a key this service no longer holds)."""


def household_scope(household_id: UUID | None) -> str:
    return f"household:{household_id}" if household_id is not None else SERVICE_WIDE


def dead_letter_keys_table(metadata: MetaData, service: str) -> Table:
    """The table of a service's dead-letter data keys (one row per household that has dead letters, and one
    for the service), in that service's own metadata: `<service>_dead_letter_keys`."""
    return Table(
        f"{service}_dead_letter_keys", metadata,
        Column("scope", String(64), primary_key=True),  # "household:<uuid>" or "service"
        Column("wrapped_key", Text, nullable=False),  # Fernet token of the 32-byte AES-GCM key
        Column("created_at", UtcDateTime(), nullable=False),
    )


async def erase_dead_letter_key(conn: AsyncConnection, table: Table, household_id: UUID) -> int:
    """Delete a household's dead-letter key (inside the erasure's own transaction): its dead letters are
    unreadable from then on. Returns the rows deleted (0 or 1)."""
    result = await conn.execute(delete(table).where(table.c.scope == household_scope(household_id)))
    return int(result.rowcount or 0)


def parse_dead_letter_keys(raw: str) -> list[str]:
    """The Fernet keys of a DEAD_LETTER_KEY setting (comma-separated; the first wraps). ValueError if unusable."""
    return parse_keys(raw, setting="DEAD_LETTER_KEY")


@dataclass(frozen=True)
class OpenedDeadLetter:
    reason: str
    value: bytes | None  # None for a tombstone; b"" when the value was withheld (an erased household's)
    headers: dict[str, str]  # values base64, as in DeadLetter.headers


def _aad(letter: DeadLetter, service: str, scope: str) -> bytes:
    # Binds the ciphertext to where it belongs: moved to another letter or another household's key, it fails.
    return json.dumps([service, scope, letter.source_topic, letter.partition, letter.offset,
                       letter.value_sha256]).encode()


def public_reason(reason: str, kind: str) -> str:
    """What of a reason stays readable on the topic. Refusals are the service's own words (contract and trust
    checks, PermanentError texts, driver messages with their values hidden); a handler bug's text may be
    anything an exception carried, so only its class is kept."""
    if kind != "handler_failed":
        return reason
    head, sep, last = reason.partition("; last error: ")
    if not sep:
        return "handler failed (the error text is sealed)"
    return f"{head}; last error: {last.split(':', 1)[0].strip()[:100]} (the error text is sealed)"


class DeadLetterVault:
    """Seals and opens one service's dead letters with per-household data keys kept in its database."""

    def __init__(self, engine: AsyncEngine, table: Table, keys: Iterable[str], *, service: str,
                 erased: Table | None = None) -> None:
        """`erased`: the service's tombstones (a `household_id` column): no key is ever made again for a household
        that was erased, and a late letter of it keeps none of its bytes."""
        self.engine, self.table, self.service, self.erased = engine, table, service, erased
        keys = parse_keys(list(keys), setting="DEAD_LETTER_KEY")
        self._first, self._wrap = Fernet(keys[0].encode()), Keyring(keys, setting="DEAD_LETTER_KEY").fernet

    async def _data_key(self, scope: str, *, create: bool) -> bytes | None:
        table = self.table
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(table.c.wrapped_key).where(table.c.scope == scope))).first()
            if row is not None:
                try:
                    return self._wrap.decrypt(row[0].encode())
                except InvalidToken:
                    if not create:
                        raise DeadLetterKeyErased(
                            f"the {self.service} dead-letter key of {scope} is wrapped by a key that is no longer in "
                            f"DEAD_LETTER_KEY: put the old key back after the first one to read it") from None
                # Sealing must not stop the consumer: the old letters stay unreadable, new ones get a new key.
                log.warning("the %s dead-letter key of %s was wrapped by a retired DEAD_LETTER_KEY; replacing it "
                            "(letters sealed under the old one cannot be opened)", self.service, scope)
                await conn.execute(delete(table).where(table.c.scope == scope))
            if not create:
                return None
            fresh = AESGCM.generate_key(bit_length=256)
            await conn.execute(self._insert_ignore(conn, {
                "scope": scope, "wrapped_key": self._wrap.encrypt(fresh).decode(), "created_at": datetime.now(UTC)}))
            row = (await conn.execute(select(table.c.wrapped_key).where(table.c.scope == scope))).first()
        assert row is not None  # noqa: S101 - inserted above, or by a concurrent instance
        return self._wrap.decrypt(row[0].encode())

    async def _was_erased(self, household_id: UUID) -> bool:
        if self.erased is None:
            return False
        async with self.engine.connect() as conn:
            return (await conn.execute(select(self.erased.c.household_id)
                                       .where(self.erased.c.household_id == household_id))).first() is not None

    def _insert_ignore(self, conn: AsyncConnection, values: dict[str, Any]) -> Any:
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        return insert(self.table).values(**values).on_conflict_do_nothing(index_elements=[self.table.c.scope])

    async def seal(self, letter: DeadLetter, household_id: UUID | None) -> DeadLetter:
        """`letter` with its value, headers and full reason sealed under the household's key (made on first
        use), or the service-wide one when `household_id` is None."""
        scope = household_scope(household_id)
        if household_id is not None and await self._was_erased(household_id):
            # A late or replayed record of an erased household: a new key would outlive the erasure.
            return letter.model_copy(update={
                "reason": public_reason(letter.reason, letter.error_kind)[:1900]
                + " (its household was erased: none of its bytes are kept)",
                "value_b64": "", "headers": {}, "truncated": letter.value_length is not None or letter.truncated})
        key = await self._data_key(scope, create=True)
        assert key is not None  # noqa: S101 - created when missing
        # The value goes in raw, not as base64 inside the JSON: a letter near the size limit must still fit.
        meta = json.dumps({"reason": letter.reason, "headers": letter.headers}).encode()
        secret = len(meta).to_bytes(4, "big") + meta + base64.b64decode(letter.value_b64)
        nonce = os.urandom(NONCE_BYTES)
        sealed = SealedDeadLetter(service=self.service, scope=scope, nonce_b64=base64.b64encode(nonce).decode(),
                                  ciphertext_b64=base64.b64encode(
                                      AESGCM(key).encrypt(nonce, secret, _aad(letter, self.service, scope))).decode())
        return letter.model_copy(update={
            "reason": public_reason(letter.reason, letter.error_kind), "value_b64": "", "headers": {},
            "sealed": sealed})

    async def open(self, letter: DeadLetter) -> OpenedDeadLetter:
        """The sealed part of `letter`, or DeadLetterKeyErased when its key is gone (its household erased)."""
        sealed = letter.sealed
        if sealed is None:
            return OpenedDeadLetter(letter.reason, letter.value if letter.value_length is not None else None,
                                    dict(letter.headers))
        if sealed.service != self.service:
            raise DeadLetterKeyErased(f"this dead letter was sealed by {sealed.service}, not {self.service}")
        key = await self._data_key(sealed.scope, create=False)
        if key is None:
            raise DeadLetterKeyErased(
                "this dead letter can no longer be read or replayed: its household was erased, and its key with it"
                if sealed.scope != SERVICE_WIDE else f"{self.service} no longer holds its service-wide dead-letter key")
        try:
            secret = AESGCM(key).decrypt(base64.b64decode(sealed.nonce_b64), base64.b64decode(sealed.ciphertext_b64),
                                         _aad(letter, self.service, sealed.scope))
        except InvalidTag:
            raise DeadLetterKeyErased("this dead letter does not open with its key: it was altered, or its household "
                                      "was erased and later had dead letters again under a new key") from None
        size = int.from_bytes(secret[:4], "big")
        meta = json.loads(secret[4:4 + size])
        value = secret[4 + size:] if letter.value_length is not None else None
        return OpenedDeadLetter(meta["reason"], value, meta["headers"])

    async def rewrap(self) -> int:
        """Re-wrap every data key under the first DEAD_LETTER_KEY (after a rotation); returns the rows changed.
        Keys wrapped by a key no longer listed are left alone (their letters stay unreadable until it is back)."""
        changed = 0
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(self.table.c.scope, self.table.c.wrapped_key))).all()
            for scope, wrapped in rows:
                try:
                    self._first.decrypt(wrapped.encode())
                    continue  # already under the first key
                except InvalidToken:
                    pass
                try:
                    rotated = self._wrap.rotate(wrapped.encode()).decode()
                except InvalidToken:
                    continue
                await conn.execute(self.table.update().where(self.table.c.scope == scope).values(wrapped_key=rotated))
                changed += 1
        return changed


# ---- the operator's way in: replay opens a sealed letter through its own service ---------------------------

OPEN_PATH = "/v1/dead-letters/open"
# A dead letter fits under the producer's 1 MiB request; the route reads no more than this of a body.
OPEN_MAX_BODY_BYTES = 2 * 1024 * 1024


def open_route(vault: DeadLetterVault, verifier: Any, now: Any = lambda: datetime.now(UTC)) -> Any:
    """`POST /v1/dead-letters/open` (an ASGI app): an operator credential sends a dead letter as read from the
    topic and gets back its reason, value and headers (base64), or 410 when its household was erased. The
    credential is checked before any of the body is read; no key ever leaves the service, so a copy the
    operator kept of a letter stays unreadable after the erasure."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def answer(status: int, body: dict[str, Any]) -> None:
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})

        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            await answer(405, {"detail": "POST a dead letter (as `attune dlq list --json` shows it) to open it"})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        authorization = headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            await answer(401, {"detail": "this needs an operator credential: 'Authorization: Bearer <credential>' "
                                         "(`attune credentials issue operator` makes one)"})
            return
        try:
            claims = verifier.verify(authorization[7:].strip(), now=now())
        except Exception as exc:  # noqa: BLE001 - CredentialError and anything malformed: 401 with why
            await answer(401, {"detail": str(exc)[:300] or "credential refused"})
            return
        if str(getattr(claims.scope, "value", claims.scope)) != "operator":
            await answer(403, {"detail": "opening dead letters needs an operator credential; a household's or a "
                                         "member's reaches no dead letters"})
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > OPEN_MAX_BODY_BYTES:
                await answer(413, {"detail": "larger than any dead letter"})
                return
            if not message.get("more_body"):
                break
        try:
            letter = DeadLetter.model_validate_json(bytes(body))
        except ValueError as exc:
            await answer(400, {"detail": f"not a dead letter: {str(exc).splitlines()[0][:200]}"})
            return
        try:
            opened = await vault.open(letter)
        except DeadLetterKeyErased as exc:
            await answer(410, {"detail": str(exc)})
            return
        await answer(200, {"reason": opened.reason, "headers": opened.headers,
                           "value_b64": base64.b64encode(opened.value).decode() if opened.value is not None else None})

    return app
