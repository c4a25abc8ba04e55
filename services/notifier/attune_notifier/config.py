"""The notifier's settings. Secrets: the channel encryption key, the link keys and the VAPID key (credential keys
are public)."""

from __future__ import annotations

import base64
import hashlib
from typing import ClassVar

from attune_runtime.keyring import parse_keys
from attune_runtime.settings import MAKE_A_SECRET, MAKE_FERNET_KEY, CredentialKeysSettings, Environment
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from .webpush import DEV_VAPID_PRIVATE_KEY, MAKE_VAPID_KEY, load_private_key

# Development only: stable so a local database stays readable across restarts; refused elsewhere.
DEV_CHANNEL_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"attune-notifier-development-only").digest()).decode()
DEV_LINK_KEYS = "dev:attune-development-link-key-not-secret"


class NotifierSettings(CredentialKeysSettings):
    model_config = SettingsConfigDict(env_prefix="ATTUNE_NOTIFIER_", extra="ignore", frozen=True)
    writes_dead_letters: ClassVar[bool] = True  # ATTUNE_NOTIFIER_DEAD_LETTER_KEY required outside development
    seals_private_fields: ClassVar[bool] = True  # ATTUNE_NOTIFIER_FIELD_KEYS required outside development

    http_port: int = Field(default=8103, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///./data/notifier.db"

    channel_key: SecretStr = Field(default=SecretStr(DEV_CHANNEL_KEY),
                                   description="Fernet key(s), comma-separated; the first encrypts")
    link_keys: SecretStr = Field(default=SecretStr(DEV_LINK_KEYS),
                                 description="one-tap link signing keys as kid:secret, comma-separated")
    link_kid: str = "dev"
    checkins_public_url: str = "http://127.0.0.1:8102"

    delivery_concurrency: int = Field(default=256, ge=1, le=1000,
                                      description="sends in flight at once (the notifier's send pool is sized to match); "
                                                  "gateways answer in 0.2-1 s, so this is roughly pushes per second")
    delivery_per_host_concurrency: int = Field(
        default=0, ge=0, le=1000,
        description="sends in flight at once to one gateway (scheme, host and port), so one slow service cannot "
                    "take every slot; 0 = three quarters of DELIVERY_CONCURRENCY",
    )
    plugin_cache_size: int = Field(
        default=20000, ge=16, le=1_000_000,
        description="channel URLs kept parsed as Apprise plugins (about 1 KB each, decrypted in memory): at least "
                    "the channels of everyone reminded in one burst, or each push there parses its URL first "
                    "(0.3-0.6 ms of CPU)",
    )
    plugin_warm_interval_s: float = Field(
        default=30.0, ge=0, le=86400,
        description="how often new channels are parsed ahead of their first send (all of them at start-up); "
                    "0 = never, each channel is parsed at its first send",
    )
    delivery_batch: int = Field(default=200, ge=1, le=5000,
                                description="due deliveries claimed per round, at most DELIVERY_CONCURRENCY (each "
                                            "claimed row starts its send at once)")
    delivery_attempts_per_channel: int = Field(default=8, ge=1, le=20)
    delivery_retry_base_s: float = Field(default=20.0, gt=0)
    delivery_retry_max_s: float = Field(default=900.0, gt=0)
    delivery_transient_retry_base_s: float = Field(
        default=2.0, gt=0,
        description="first retry after a gateway answered 429, 408 or 5xx or could not be reached: 1-2 s by "
                    "default, tripling (3-6 s, 9-18 s…) up to DELIVERY_RETRY_MAX_S; other failures wait on "
                    "DELIVERY_RETRY_BASE_S",
    )
    delivery_retry_after_max_s: float = Field(
        default=300.0, gt=0, le=86400,
        description="a gateway's Retry-After (seconds or a date) is honoured up to this long",
    )
    delivery_idle_poll_s: float = Field(default=1.0, gt=0)
    send_timeout_s: float = Field(default=15.0, gt=0, le=300,
                                  description="a send still going after this is cut off; its outcome is unknown")
    delivery_lease_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="how long a claimed delivery stays claimed: how late a reminder can be after a crash; "
                    "must outlive a send in flight (at least SEND_TIMEOUT_S + 10)",
    )
    delivery_unknown_retry_s: float = Field(
        default=120.0, ge=0, le=86400,
        description="a send that timed out (outcome unknown) is tried once more after this, on the next channel "
                    "if any (see service.after_unknown)",
    )
    workers: int = Field(
        default=1, ge=1, le=32,
        description="processes in this instance (uvicorn workers), each a whole notifier: consuming its share "
                    "of the partitions, serving HTTP on the shared port, and delivering from the shared table "
                    "(claims skip each other's rows: FOR UPDATE SKIP LOCKED); PostgreSQL only",
    )
    consumer_group: str = "attune-notifier"
    batch_max_records: int = Field(
        default=500, ge=1, le=5000,
        description="events per batch (their intents stored in one statement, offsets committed once); "
                    "1 = one event at a time (no batch subscriber)",
    )

    vapid_private_key: SecretStr = Field(
        default=SecretStr(DEV_VAPID_PRIVATE_KEY),
        description="the VAPID key that signs web pushes (P-256: 32 bytes base64url, or a PEM; make one with "
                    f"`{MAKE_VAPID_KEY}`). Browsers subscribe with its public key (GET /v1/webpush/vapid-public-key): "
                    "changing it ends every web push subscription")
    vapid_contact: str = Field(
        default="webpush@attune.invalid", pattern=r"^[^@\s/?#]+@[^@\s/?#]+$",
        description="the e-mail address push services may write to about these pushes (the VAPID JWT's sub)")
    webpush_push_hosts: str = Field(
        default="fcm.googleapis.com,updates.push.services.mozilla.com,*.push.services.mozilla.com,"
                "web.push.apple.com,*.push.apple.com,*.notify.windows.com",
        description="push service hosts a web push subscription's endpoint may be at, comma-separated ('*.' "
                    "matches subdomains): the notifier POSTs to that endpoint, so no other host is accepted")
    webpush_ttl_s: int = Field(
        default=4 * 3600, ge=0, le=28 * 86400,
        description="how long a push service keeps a web push for a phone that is off or asleep (TTL header)")

    secret_fields: tuple[str, ...] = ("channel_key", "link_keys", "vapid_private_key")
    secret_recipes: ClassVar[dict[str, str]] = {"vapid_private_key": MAKE_VAPID_KEY}

    @field_validator("vapid_private_key")
    @classmethod
    def _vapid_key_loads(cls, value: SecretStr) -> SecretStr:
        load_private_key(value.get_secret_value())  # the ValueError never quotes the key
        return value

    def vapid_key(self) -> ec.EllipticCurvePrivateKey:
        return load_private_key(self.vapid_private_key.get_secret_value())

    def webpush_hosts(self) -> list[str]:
        return [h.strip() for h in self.webpush_push_hosts.split(",") if h.strip()]

    @field_validator("channel_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        parse_keys(value.get_secret_value(), setting="ATTUNE_NOTIFIER_CHANNEL_KEY")
        return value

    def per_host_concurrency(self) -> int:
        if self.delivery_per_host_concurrency:
            return min(self.delivery_per_host_concurrency, self.delivery_concurrency)
        return max(1, self.delivery_concurrency * 3 // 4)

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> NotifierSettings:
        from .delivery import LEASE_MARGIN_S

        if self.delivery_lease_s < self.send_timeout_s + LEASE_MARGIN_S:
            raise ValueError(
                f"ATTUNE_NOTIFIER_DELIVERY_LEASE_S ({self.delivery_lease_s:g}) must be at least "
                f"ATTUNE_NOTIFIER_SEND_TIMEOUT_S ({self.send_timeout_s:g}) + {LEASE_MARGIN_S:g}: a lease that ends "
                f"while a send is in flight lets another instance send the same message again")
        return self

    @model_validator(mode="after")
    def _workers_need_postgresql(self) -> NotifierSettings:
        if self.workers > 1 and not self.database_url.startswith("postgresql"):
            raise ValueError("ATTUNE_NOTIFIER_WORKERS above 1 needs PostgreSQL (ATTUNE_NOTIFIER_DATABASE_URL): "
                             "the processes share the deliveries table through FOR UPDATE SKIP LOCKED")
        return self

    @model_validator(mode="after")
    def _no_development_secrets_elsewhere(self) -> NotifierSettings:
        # Every list: a real current key beside a development one still lets anyone forge links or read channels.
        if self.environment is Environment.DEVELOPMENT:
            return self
        self.refuse_development_keys("channel_key", self.channel_key.get_secret_value().split(","),
                                     [DEV_CHANNEL_KEY], MAKE_FERNET_KEY)
        self.refuse_development_keys("vapid_private_key", [self.vapid_private_key.get_secret_value()],
                                     [DEV_VAPID_PRIVATE_KEY], MAKE_VAPID_KEY)
        self.refuse_development_keys("link_keys", self.link_key_map().values(), [DEV_LINK_KEYS.partition(":")[2]],
                                     "kid:$(" + MAKE_A_SECRET + ")")
        return self

    @model_validator(mode="after")
    def _link_kid_is_listed(self) -> NotifierSettings:
        if self.link_kid not in self.link_key_map():
            raise ValueError(f"ATTUNE_NOTIFIER_LINK_KID ({self.link_kid!r}) must name one of the key ids in "
                             f"ATTUNE_NOTIFIER_LINK_KEYS ({', '.join(self.link_key_map())}): it picks the key that signs")
        return self

    def link_key_map(self) -> dict[str, str]:
        pairs = [p.split(":", 1) for p in self.link_keys.get_secret_value().split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError("ATTUNE_NOTIFIER_LINK_KEYS must look like kid:secret[,kid:secret]")
        return {kid.strip(): secret.strip() for kid, secret in pairs}
