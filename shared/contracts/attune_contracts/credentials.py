"""Who is calling: signed credentials with a scope, for every HTTP API of every service.

A credential is a JWT signed with Ed25519 (EdDSA). Only the issuer holds a signing key (the operator's CLI;
later the household app's back end); the services hold public keys only, so a service that leaks its
configuration lets nobody mint credentials. The header's `kid` picks the verification key, so keys rotate:
add the new public key to the services, sign with the new key, drop the old key once its credentials
are no longer wanted. One household's credentials are revoked together by the scheduler's
`HouseholdCredentialsRevoked` event: every credential of that household issued before `not_before` is refused.

Scopes:
- `household`: the household's own app and CLI; acts for the household, never reads a member's private notes.
- `member`: acts as that one member of that household; reads its own private notes and no one else's.
- `operator`: operations only (delivery inspection without message text); no household's personal data.

Settings hold keys as `kid:base64url(raw 32 bytes)`: a signing key is the Ed25519 private seed, a
verification key list is comma-separated public keys. `generate_key_pair` makes a fresh pair.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid4

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

ALGORITHM = "EdDSA"
AUDIENCE = "attune"
ISSUER = "attune"
MAX_TOKEN = 2000  # a credential is ~350 characters
CLOCK_SKEW = timedelta(seconds=60)
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Development only: a key everybody can derive (so `make run` needs no set-up). Services refuse it, and any
# key list that contains it, outside development.
DEV_KID = "dev"
_DEV_SEED = hashlib.sha256(b"attune-credentials-development-only").digest()


class Scope(StrEnum):
    HOUSEHOLD = "household"
    MEMBER = "member"
    OPERATOR = "operator"


class CredentialClaims(BaseModel):
    """What a verified credential says. `kid` is the key that signed it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    scope: Scope
    household_id: UUID | None = None
    member_id: UUID | None = None
    issued_at: datetime
    expires_at: datetime | None = None
    token_id: UUID
    kid: str

    @model_validator(mode="after")
    def _shape(self) -> CredentialClaims:
        if self.scope is Scope.OPERATOR and (self.household_id or self.member_id):
            raise ValueError("an operator credential names no household or member")
        if self.scope is not Scope.OPERATOR and self.household_id is None:
            raise ValueError(f"a {self.scope} credential names its household")
        if (self.scope is Scope.MEMBER) != (self.member_id is not None):
            raise ValueError("a member credential, and only a member credential, names its member")
        return self


class CredentialError(ValueError):
    """Why a credential was refused. `reason` is a short label for metrics; str() is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _split(item: str, what: str) -> tuple[str, bytes]:
    kid, sep, value = item.strip().partition(":")
    kid = kid.strip()
    if not sep or not _KID.match(kid):
        raise ValueError(f"{what} must look like 'kid:key' with a kid of 1-32 letters, digits, '-' or '_'")
    try:
        raw = _unb64(value.strip())
    except ValueError:
        raise ValueError(f"{what} {kid!r} is not base64url") from None
    if len(raw) != 32:
        raise ValueError(f"{what} {kid!r} must be 32 bytes (base64url of a raw Ed25519 key)")
    return kid, raw


def parse_signing_key(text: str) -> tuple[str, Ed25519PrivateKey]:
    """'kid:base64url(seed)' -> (kid, private key)."""
    kid, raw = _split(text, "the signing key")
    return kid, Ed25519PrivateKey.from_private_bytes(raw)


def parse_public_keys(text: str) -> dict[str, Ed25519PublicKey]:
    """'kid:base64url(public),kid2:...' -> {kid: public key}."""
    keys: dict[str, Ed25519PublicKey] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        kid, raw = _split(item, "verification key")
        if kid in keys:
            raise ValueError(f"verification key id {kid!r} appears twice")
        keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
    if not keys:
        raise ValueError("no verification keys given")
    return keys


def public_setting(kid: str, key: Ed25519PrivateKey) -> str:
    return f"{kid}:{_b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))}"


def signing_setting(kid: str, key: Ed25519PrivateKey) -> str:
    return f"{kid}:{_b64(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))}"


def generate_key_pair(kid: str) -> tuple[str, str]:
    """(signing key setting for the issuer, verification key setting for the services)."""
    if not _KID.match(kid):
        raise ValueError("a key id is 1-32 letters, digits, '-' or '_'")
    key = Ed25519PrivateKey.generate()
    return signing_setting(kid, key), public_setting(kid, key)


def development_signing_key() -> str:
    return signing_setting(DEV_KID, Ed25519PrivateKey.from_private_bytes(_DEV_SEED))


def development_public_keys() -> str:
    return public_setting(DEV_KID, Ed25519PrivateKey.from_private_bytes(_DEV_SEED))


def refuse_development_keys(keys: Mapping[str, Ed25519PublicKey], setting: str) -> None:
    """Outside development: the public development key (or its kid) anywhere in a key list is refused."""
    dev = Ed25519PrivateKey.from_private_bytes(_DEV_SEED).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    for kid, key in keys.items():
        if kid == DEV_KID or key.public_bytes(Encoding.Raw, PublicFormat.Raw) == dev:
            raise ValueError(f"{setting} contains the development key (kid {kid!r}), which anyone can sign "
                             f"with; outside development use only keys made by `attune credentials keygen`")


class CredentialIssuer:
    """Mints credentials. Only the operator's tools hold one; services never do."""

    def __init__(self, signing_key: str) -> None:
        self.kid, self._key = parse_signing_key(signing_key)

    def issue(self, scope: Scope, *, household_id: UUID | None = None, member_id: UUID | None = None,
              now: datetime | None = None, ttl: timedelta | None = None) -> str:
        issued = (now or datetime.now(UTC)).astimezone(UTC)
        claims = CredentialClaims(scope=scope, household_id=household_id, member_id=member_id, issued_at=issued,
                                  expires_at=issued + ttl if ttl else None, token_id=uuid4(), kid=self.kid)
        body: dict[str, object] = {
            "iss": ISSUER, "aud": AUDIENCE, "scope": scope.value, "jti": str(claims.token_id),
            # Milliseconds: a credential issued just after a revocation (same second) must still be accepted.
            # Rounded down, so a credential issued before a revocation never looks issued after it.
            "iat": math.floor(issued.timestamp() * 1000) / 1000,
        }
        if household_id is not None:
            body["household_id"] = str(household_id)
        if member_id is not None:
            body["member_id"] = str(member_id)
        if claims.expires_at is not None:
            body["exp"] = math.floor(claims.expires_at.timestamp() * 1000) / 1000
        return jwt.encode(body, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def household(self, household_id: UUID, **kw: object) -> str:
        return self.issue(Scope.HOUSEHOLD, household_id=household_id, **kw)  # type: ignore[arg-type]

    def member(self, household_id: UUID, member_id: UUID, **kw: object) -> str:
        return self.issue(Scope.MEMBER, household_id=household_id, member_id=member_id, **kw)  # type: ignore[arg-type]

    def operator(self, **kw: object) -> str:
        return self.issue(Scope.OPERATOR, **kw)  # type: ignore[arg-type]


class CredentialVerifier:
    """Checks a credential's signature (by its kid), audience, expiry and shape. Revocation is the caller's
    (it needs the household's `not_before`, which each service stores)."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        if not keys:
            raise ValueError("a verifier needs at least one key")
        self._keys = dict(keys)

    @classmethod
    def from_setting(cls, text: str, *, development: bool, setting: str) -> CredentialVerifier:
        keys = parse_public_keys(text)
        if not development:
            refuse_development_keys(keys, setting)
        return cls(keys)

    def verify(self, token: str, *, now: datetime) -> CredentialClaims:
        if not token or len(token) > MAX_TOKEN:
            raise CredentialError("malformed", "this is not an Attune credential (empty or far too long)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise CredentialError("malformed", "this is not an Attune credential (not a signed token)") from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise CredentialError("malformed", "this is not an Attune credential (not signed the way Attune signs: EdDSA with a kid)")
        key = self._keys.get(kid)
        if key is None:
            raise CredentialError("unknown_key", "this credential was signed with a key this service does not "
                                                 "accept (retired, or never issued by Attune); ask for a new one")
        try:
            body = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                              options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                       "require": ["iat", "jti", "scope", "aud", "iss"]})
        except jwt.InvalidSignatureError:
            raise CredentialError("bad_signature", "this credential's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise CredentialError("malformed", f"this credential is not valid: {exc}") from None
        try:
            claims = CredentialClaims(
                scope=body["scope"], household_id=body.get("household_id"), member_id=body.get("member_id"),
                issued_at=datetime.fromtimestamp(float(body["iat"]), UTC), token_id=body["jti"], kid=kid,
                expires_at=datetime.fromtimestamp(float(body["exp"]), UTC) if body.get("exp") is not None else None,
            )
        except (ValidationError, ValueError, TypeError, OverflowError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else type(exc).__name__
            raise CredentialError("malformed", f"this credential's claims are not valid ({reason})") from None
        if claims.issued_at > now + CLOCK_SKEW:
            raise CredentialError("not_yet_valid", "this credential is issued in the future; check the issuer's clock")
        if claims.expires_at is not None and claims.expires_at <= now:
            raise CredentialError("expired", "this credential has expired; ask for a new one "
                                             "(attune credentials issue ...)")
        return claims


def verifier_from_setting(value: str | None, *, development: bool, setting: str) -> CredentialVerifier:
    """A service's verifier from its setting: the development key only in development, refused elsewhere."""
    if value is None or not value.strip():
        if not development:
            raise ValueError(f"{setting} must be set outside development: the public keys that verify credentials "
                             f"('kid:key,kid2:key2'; make a pair with `attune credentials keygen --kid k1`)")
        value = development_public_keys()
    return CredentialVerifier.from_setting(value, development=development, setting=setting)


def development_issuer() -> CredentialIssuer:
    """Signs with the development key: accepted only by services running in development (and tests)."""
    return CredentialIssuer(development_signing_key())
