"""Settings of the household's web app (environment prefix ATTUNE_APP_)."""

from __future__ import annotations

import hashlib
from typing import ClassVar

from attune_contracts.credentials import (
    CredentialIssuer,
    development_signing_key,
    parse_signing_key,
    public_setting,
    refuse_development_keys,
)
from attune_runtime.settings import CredentialKeysSettings, Environment
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

MAKE_SIGNING_KEY = "attune credentials keygen --kid app1  (the signing half)"


class Settings(CredentialKeysSettings):
    model_config = SettingsConfigDict(env_prefix="ATTUNE_APP_", extra="ignore", frozen=True)
    writes_dead_letters: ClassVar[bool] = True  # ATTUNE_APP_DEAD_LETTER_KEY required outside development
    seals_private_fields: ClassVar[bool] = True  # ATTUNE_APP_FIELD_KEYS required outside development

    http_port: int = Field(default=8104, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///./data/app.db"
    group_id: str = Field(default="attune-app", description="the Kafka consumer group of the read model")

    signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 key 'kid:base64url(seed)' that signs each person's member credential (their calls to "
                    "the check-ins API); its public half goes in the other services' CREDENTIAL_KEYS. Required "
                    "outside development",
    )
    public_url: str | None = Field(
        default=None, description="the address people open (https://...), used in invitation links and QR codes; "
                                  "required outside development (never taken from a request's Host header there)")
    credential_keys: str | None = Field(
        default=None, description="public keys that verify operator credentials (`attune dlq replay` opening the "
                                  "app's sealed dead letters), 'kid:key,kid2:key2' (`attune credentials keygen`); "
                                  "required outside development, where the development key is refused")
    checkins_url: str = Field(default="http://127.0.0.1:8102", description="base URL of the check-ins service API")
    notifier_url: str = Field(default="http://127.0.0.1:8103", description="base URL of the notifier's API (channels, "
                                                                         "web push, quiet hours)")
    ntfy_url: str = Field(default="https://ntfy.sh", description="the ntfy server a member's generated topic lives on "
                                                                "(its QR code opens it in the ntfy app)")
    email_url: SecretStr | None = Field(
        default=None, description="Apprise mail URL of the relay that sends household email (mailtos://user:pass@"
                                  "smtp.example.com?from=...); a member's address is added as to=. Unset: the "
                                  "settings page offers no email")
    upstream_timeout_s: float = Field(default=3.0, gt=0, le=30,
                                      description="how long a page waits for another service's API")
    invite_ttl_hours: int = Field(default=72, ge=1, le=24 * 14, description="how long a join link stays valid")
    session_days: int = Field(default=90, ge=1, le=400, description="how long a person stays signed in")
    credential_ttl_minutes: int = Field(default=10, ge=1, le=24 * 60,
                                        description="lifetime of the member credential each API call carries")

    secret_fields: tuple[str, ...] = ("signing_key",)
    secret_recipes: ClassVar[dict[str, str]] = {"signing_key": MAKE_SIGNING_KEY}
    # Its verifier checks the operator's credential on the dead-letter open route (the app accepts no other),
    # and is checked below, outside development only, after the signing key and the public URL.
    credential_keys_checked_at_start: ClassVar[bool] = False

    @model_validator(mode="after")
    def _usable_outside_development(self) -> Settings:
        if self.environment is Environment.DEVELOPMENT or self.signing_key is None:
            return self  # None outside development: refused by the base class with how to make one
        # Fail closed: the development key is published, anyone could act as any member with it.
        kid, key = parse_signing_key(self.signing_key.get_secret_value())  # type: ignore[union-attr]
        from attune_contracts.credentials import parse_public_keys

        refuse_development_keys(parse_public_keys(public_setting(kid, key)), "ATTUNE_APP_SIGNING_KEY")
        if not self.public_url:
            raise ValueError("ATTUNE_APP_PUBLIC_URL must be set outside development (the https address people "
                             "open; invitation links are built from it)")
        self.credential_verifier()  # refuses missing, malformed or development keys at start-up
        return self

    def signing_setting(self) -> str:
        if self.signing_key is None:
            if self.environment is not Environment.DEVELOPMENT:
                raise ValueError("ATTUNE_APP_SIGNING_KEY must be set outside development")
            return development_signing_key()
        return self.signing_key.get_secret_value()

    def issuer(self) -> CredentialIssuer:
        return CredentialIssuer(self.signing_setting())

    def form_key(self) -> bytes:
        """The key of the forms' CSRF tokens, derived from the signing key (one secret less to manage)."""
        return hashlib.sha256(b"attune-app-forms:" + self.signing_setting().encode()).digest()

    @property
    def secure_cookies(self) -> bool:
        return self.environment is not Environment.DEVELOPMENT
