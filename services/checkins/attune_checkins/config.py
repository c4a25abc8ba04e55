"""Settings of the check-ins service (environment prefix ATTUNE_CHECKINS_)."""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar

from attune_runtime.settings import MAKE_A_SECRET, MAKE_FERNET_KEY, CredentialKeysSettings, Environment
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

# Development only: fixed, well-known keys so `make run` works with zero set-up. Outside development
# the base class refuses missing or placeholder secrets, so these never reach production.
_DEV_SEED = "attune-checkins-development-only"
# The notifier's development default too, so links it mints in development verify here without set-up.
DEV_LINK_KEYS = "dev:attune-development-link-key-not-secret"


def _dev_value(what: str) -> str:
    return hashlib.sha256(f"{_DEV_SEED}:{what}".encode()).hexdigest()


DEV_NOTES_KEY = base64.urlsafe_b64encode(bytes.fromhex(_dev_value("notes_key"))).decode()


class Settings(CredentialKeysSettings):
    model_config = SettingsConfigDict(env_prefix="ATTUNE_CHECKINS_", extra="ignore", frozen=True)
    writes_dead_letters: ClassVar[bool] = True  # ATTUNE_CHECKINS_DEAD_LETTER_KEY required outside development
    seals_private_fields: ClassVar[bool] = True  # ATTUNE_CHECKINS_FIELD_KEYS required outside development

    http_port: int = Field(default=8102, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///./data/checkins.db"

    notes_key: SecretStr | None = Field(
        default=None, description="Fernet key (urlsafe base64, 32 bytes) that encrypts notes at rest"
    )
    notes_old_keys: SecretStr | None = Field(
        default=None, description="comma-separated older Fernet keys, still accepted for reading"
    )
    link_keys: SecretStr | None = Field(
        default=None, description="one-tap link keys as 'kid:secret,kid2:secret2' (shared with the notifier)"
    )
    link_current_kid: str | None = Field(default=None, description="the key id that signs; default: the first one")

    weekly_summary_hour: int = Field(default=19, ge=0, le=23, description="Sunday, local hour of the summary")
    weekly_summary_catch_up_hours: int = Field(default=12, ge=0, le=72)
    ratio_window_days: int = Field(default=14, ge=1, le=90)
    ratio_min_moments: int = Field(default=6, ge=1, le=1000)
    link_snooze_minutes: int = Field(default=60, ge=1, le=24 * 60)
    link_occurrence_wait_s: float = Field(default=5.0, ge=0, le=60)
    timer_max_sleep_s: float = Field(default=60.0, gt=0)
    batch_max_records: int = Field(
        default=500, ge=1, le=5000,
        description="messages handled per transaction; 1 = one message per transaction (no batch subscriber)",
    )

    outbox_batch_size: int = Field(default=500, ge=1, le=5000, description="events the relay publishes at once")
    outbox_poll_s: float = Field(
        default=1.0, gt=0, le=60,
        description="how often the relay looks at the outbox when not woken (rows written by other instances)",
    )
    outbox_max_backoff_s: float = Field(default=5.0, gt=0, le=300,
                                        description="longest wait between relay attempts while the broker is down")
    outbox_drain_timeout_s: float = Field(default=5.0, ge=0, le=60,
                                          description="how long a stop waits for the relay to publish what is left")
    secret_fields: tuple[str, ...] = ("notes_key", "link_keys")
    secret_recipes: ClassVar[dict[str, str]] = {"notes_key": MAKE_FERNET_KEY,
                                                "link_keys": "kid:$(" + MAKE_A_SECRET + ")"}

    @model_validator(mode="after")
    def _no_development_keys_elsewhere(self) -> Settings:
        # Every list: a real current key beside a development one still lets anyone forge links or tokens,
        # or read notes sealed with the published key.
        if self.environment is Environment.DEVELOPMENT:
            return self
        notes = [self.notes_key.get_secret_value()] if self.notes_key is not None else []
        old = self.notes_old_keys.get_secret_value().split(",") if self.notes_old_keys is not None else []
        self.refuse_development_keys("notes_key", notes, [DEV_NOTES_KEY], MAKE_FERNET_KEY)
        self.refuse_development_keys("notes_old_keys", old, [DEV_NOTES_KEY], MAKE_FERNET_KEY)
        if self.link_keys is not None:
            self.refuse_development_keys("link_keys", self.link_key_map().values(),
                                         [DEV_LINK_KEYS.partition(":")[2]], "kid:$(" + MAKE_A_SECRET + ")")
        return self

    @model_validator(mode="after")
    def _current_link_kid_is_listed(self) -> Settings:
        if self.link_current_kid is not None and (self.link_keys is not None
                                                  or self.environment is Environment.DEVELOPMENT):
            if self.link_current_kid not in self.link_key_map():
                raise ValueError(f"ATTUNE_CHECKINS_LINK_CURRENT_KID ({self.link_current_kid!r}) must name one of the "
                                 f"key ids in ATTUNE_CHECKINS_LINK_KEYS ({', '.join(self.link_key_map())})")
        return self

    def _dev(self, what: str) -> str:
        if self.environment is not Environment.DEVELOPMENT:
            raise ValueError(f"ATTUNE_CHECKINS_{what.upper()} must be set outside development")
        return _dev_value(what)

    def fernet_keys(self) -> list[bytes]:
        if self.notes_key is not None:
            keys = [self.notes_key.get_secret_value()]
        else:
            self._dev("notes_key")  # refuses outside development
            keys = [DEV_NOTES_KEY]
        if self.notes_old_keys is not None:
            keys += [k.strip() for k in self.notes_old_keys.get_secret_value().split(",") if k.strip()]
        return [k.encode() for k in keys]

    def link_key_map(self) -> dict[str, str]:
        if self.link_keys is None:
            self._dev("link_keys")  # refuses outside development
            raw = DEV_LINK_KEYS
        else:
            raw = self.link_keys.get_secret_value()
        keys: dict[str, str] = {}
        for item in raw.split(","):
            if not item.strip():
                continue
            kid, sep, secret = item.strip().partition(":")
            if not sep:
                raise ValueError("ATTUNE_CHECKINS_LINK_KEYS must look like 'kid:secret,kid2:secret2'")
            keys[kid.strip()] = secret.strip()
        return keys

    def current_link_kid(self) -> str:
        return self.link_current_kid or next(iter(self.link_key_map()))
