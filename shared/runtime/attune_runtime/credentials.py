"""The household credential every service checks today: an HMAC of the household's id with a server secret.

One secret for the three services (ATTUNE_<SERVICE>_HOUSEHOLD_TOKEN_SECRET, the same value), so the one token a
household holds opens its own data in each of them. Each service checks it in one FastAPI dependency of its
own, which the credential work (household / member / operator scopes) replaces in one place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from uuid import UUID

from pydantic import Field, SecretStr, model_validator

from .settings import PLACEHOLDERS, Environment, ServiceSettings

TOKEN_PREFIX = "hh1_"
# Development only (the check-ins service's long-standing default), so `make run` works with zero set-up.
_DEV_SEED = "attune-checkins-development-only"


def household_token(secret: bytes, household_id: UUID) -> str:
    digest = hmac.new(secret, f"attune.checkins.household:{household_id}".encode(), hashlib.sha256).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_matches(secret: bytes, household_id: UUID, given: str) -> bool:
    return hmac.compare_digest(given.encode(), household_token(secret, household_id).encode())


def development_token_secret() -> bytes:
    return hashlib.sha256(f"{_DEV_SEED}:household_token_secret".encode()).hexdigest().encode()


def check_household(secret: bytes | None, household_id: UUID, authorization: str | None, *, setting: str) -> UUID:
    """The household's id if `authorization` carries its token; else the HTTP error to answer (503 when the
    service has no secret to check with, named by `setting`)."""
    from fastapi import HTTPException

    if secret is None:
        raise HTTPException(503, f"household access is off here: set {setting} "
                                 "(the check-ins service's household token secret)")
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing 'Authorization: Bearer <household token>' header",
                            headers={"WWW-Authenticate": "Bearer"})
    if not token_matches(secret, household_id, authorization[7:].strip()):
        raise HTTPException(403, "this token is not valid for this household", headers={"WWW-Authenticate": "Bearer"})
    return household_id


class HouseholdTokenSettings(ServiceSettings):
    """A service that checks the household token without minting it (the scheduler, the notifier)."""

    household_token_secret: SecretStr | None = Field(
        default=None, description="the check-ins service's household token secret (the same value): a household's "
        "token opens its own data here. Unset outside development: those endpoints answer 503",
    )

    @model_validator(mode="after")
    def _no_weak_token_secret(self) -> HouseholdTokenSettings:
        if self.household_token_secret is not None and self.environment is not Environment.DEVELOPMENT:
            raw = self.household_token_secret.get_secret_value()
            if raw.strip().lower() in PLACEHOLDERS or len(raw) < 16:
                raise ValueError(f"{self.model_config.get('env_prefix', '')}HOUSEHOLD_TOKEN_SECRET is a placeholder "
                                 "or too short; set the check-ins service's value")
        return self

    def token_secret(self) -> bytes | None:
        """The household token secret; None (household access is off) when unset outside development."""
        if self.household_token_secret is not None:
            return self.household_token_secret.get_secret_value().encode()
        return development_token_secret() if self.environment is Environment.DEVELOPMENT else None
