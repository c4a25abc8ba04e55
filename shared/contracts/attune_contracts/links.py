"""One-tap check-in links: a signed, expiring token naming occurrence, member and action.

The notifier mints them; the check-ins service verifies them. Tokens look like `<kid>.<signed claims>`:
the key id picks the verification key, so keys can rotate (add a new key, make it current, and drop
the old one once its links have expired). Signing is itsdangerous with HMAC-SHA256, salted per purpose
and version (SALT); expiry is checked against an injected clock.

Links of the first version (HMAC-SHA1, salt `attune.checkin-link.v1`) are refused: those still in inboxes
when this version is deployed get a page saying the reminder is out of date (they lived 36 hours at most).

A token may carry its reader's locale (`LinkClaims.locale`, added in contracts 1.2.0), so the page it opens
speaks the language of the message it came in. A check-ins service on 1.1.0 refuses such a token (closed
claims), so check-ins roll out before the notifier, as for any new field. The refusals' sentences are the
content catalog's msgids (`content.LINK_PAGE`), translated by the page that shows them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated
from uuid import UUID, uuid4

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import StringConstraints, ValidationError

from .content import LINK_PAGE
from .types import Contract, UtcDatetime

SALT = "attune.checkin-link.v2"
DIGEST = hashlib.sha256
# Recognised only to say why such a link no longer works; never accepted.
_OUTDATED_SALT = "attune.checkin-link.v1"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class LinkAction(StrEnum):
    DONE = "done"
    SKIP = "skip"
    SNOOZE = "snooze"


class LinkClaims(Contract):
    token_id: UUID
    household_id: UUID
    occurrence_id: UUID
    member_id: UUID
    action: LinkAction
    expires_at: UtcDatetime
    # The reader's locale when the link was sent ("de_DE"), so the page it opens speaks the message's language
    # and clock. Optional and left out of the token when unknown: a link minted before it existed still works.
    locale: Annotated[str, StringConstraints(min_length=2, max_length=35, pattern=r"^[A-Za-z0-9_-]+$")] | None = None


class LinkError(ValueError):
    """Why a link was refused. `reason` is a short label for metrics; str() is for people. `claims`: what an
    expired link (genuinely signed) said, so its page can tell what it was for and what is recorded."""

    def __init__(self, reason: str, message: str, claims: LinkClaims | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.claims = claims


def link_serializer(secret: str, salt: str = SALT) -> URLSafeSerializer:
    """What signs a link's claims: HMAC-SHA256 with the key, salted per purpose and version."""
    return URLSafeSerializer(secret, salt=salt, signer_kwargs={"digest_method": DIGEST})


class LinkSigner:
    def __init__(self, keys: Mapping[str, str], current_kid: str) -> None:
        if current_kid not in keys:
            raise ValueError(f"current link key id {current_kid!r} is not among the configured keys")
        for kid, secret in keys.items():
            if not _KID.match(kid):
                raise ValueError(f"link key id {kid!r} must be 1-32 letters, digits, '-' or '_'")
            if len(secret) < 16:
                raise ValueError(f"link key {kid!r} is shorter than 16 characters")
        self._serializers = {kid: link_serializer(secret) for kid, secret in keys.items()}
        # Minting signs as `URLSafeSerializer.dumps` does (see `_encode`), with the key derived once, not at each
        # token, and no signer object made per call: the notifier mints three a push (~30 % less CPU each).
        self._mint_key = hashlib.sha256(SALT.encode() + b"signer" + keys[current_kid].encode()).digest()
        self._outdated = {kid: URLSafeSerializer(secret, salt=_OUTDATED_SALT) for kid, secret in keys.items()}
        self.current_kid = current_kid

    def mint(
        self,
        *,
        household_id: UUID,
        occurrence_id: UUID,
        member_id: UUID,
        action: LinkAction,
        ttl: timedelta = timedelta(hours=36),
        now: datetime | None = None,
        locale: str | None = None,
    ) -> str:
        claims = LinkClaims(
            token_id=uuid4(), household_id=household_id, occurrence_id=occurrence_id, member_id=member_id,
            action=action, expires_at=(now or datetime.now(UTC)) + ttl, locale=locale,
        )
        return f"{self.current_kid}.{self._encode(claims)}"

    def _encode(self, claims: LinkClaims) -> str:
        """`link_serializer(key).dumps(claims.model_dump(mode="json", exclude_none=True))`, byte for byte (a test holds it to that):
        compact JSON, zlib-compressed when that is shorter (marked by a leading '.'), URL-safe base64 without
        padding, then '.' and the HMAC-SHA256 of that with the key derived as itsdangerous' "django-concat"."""
        raw = claims.model_dump_json(exclude_none=True).encode()
        packed = zlib.compress(raw)
        payload = (b"." + _b64(packed)) if len(packed) < len(raw) - 1 else _b64(raw)
        return (payload + b"." + _b64(hmac.new(self._mint_key, payload, DIGEST).digest())).decode()

    def verify(self, token: str, *, now: datetime | None = None) -> LinkClaims:
        kid, sep, body = token.partition(".")
        if not sep or not body or len(token) > 2048:
            raise LinkError("malformed", LINK_PAGE["incomplete"])
        serializer = self._serializers.get(kid)
        if serializer is None:
            raise LinkError("unknown_key", LINK_PAGE["unknown_key"])
        try:
            data = serializer.loads(body)
        except BadSignature:
            if self._outdated[kid].loads_unsafe(body)[0]:
                raise LinkError("outdated", LINK_PAGE["outdated"]) from None
            raise LinkError("bad_signature", LINK_PAGE["forged"]) from None
        try:
            claims = LinkClaims.model_validate_json(_as_json(data))
        except ValidationError:
            raise LinkError("malformed", LINK_PAGE["unreadable"]) from None
        if claims.expires_at <= (now or datetime.now(UTC)):
            raise LinkError("expired", LINK_PAGE["expired"], claims)
        return claims


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _as_json(data: object) -> str:
    import json

    return json.dumps(data)
