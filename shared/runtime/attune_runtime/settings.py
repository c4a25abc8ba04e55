"""One settings class per service, on this shared base. Only a service's main.py reads the environment."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from attune_contracts.credentials import CredentialVerifier, verifier_from_setting
from attune_contracts.sealing import DEV_FIELD_KEYS, MAKE_FIELD_KEY, FieldKeys
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .keyring import MAKE_FERNET_KEY

PLACEHOLDERS = {"", "changeme", "change-me", "changethis", "secret", "password", "dev", "development", "test", "xxx"}
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
MAKE_A_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 - a command that makes a secret, not one
# Development only (published): wraps the dead-letter data keys of a development service; refused elsewhere.
DEV_DEAD_LETTER_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"attune-dead-letter-development-only").digest()).decode()


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """Kafka, HTTP, storage and consumer-retry settings every service shares."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Environment = Field(
        default=Environment.PRODUCTION,
        description="production (the default), test or development; development (published keys, loopback only) "
                    "must be asked for, and every secret is checked outside it")
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated")
    kafka_client_id: str | None = Field(default=None, description="Kafka client id (default attune-<service>)")
    kafka_security_protocol: str = Field(default="PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
                                         description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str | None = Field(default=None, pattern="^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$",
                                             description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle for TLS to Kafka")
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000,
                                          description="consumer group session timeout; start-up waits about half of it")
    kafka_start_timeout_s: float = Field(default=60.0, ge=0,
                                         description="how long start-up retries an unreachable broker before the "
                                                     "process exits non-zero (to be restarted)")
    kafka_create_topics: bool = Field(default=True, description="create the catalog's missing topics at start-up")
    kafka_partitions: int | None = Field(default=None, ge=1, description="override the catalog's partition counts")
    kafka_replication_factor: int = Field(
        default=1, ge=1, le=16,
        description="copies of each partition for the topics this creates: 1 on one broker (development, compose), "
                    "3 in production (deploy/k8s sets it), so one broker lost loses nothing")
    kafka_min_insync_replicas: int = Field(
        default=1, ge=1, le=16,
        description="min.insync.replicas of the topics this creates: copies that must have a record before the "
                    "producer (acks=all) is told it is written; 2 in production, at most the replication factor")

    http_host: str = Field(default="127.0.0.1", description="address for /healthz, /readyz, /metrics and the API")
    http_port: int = Field(default=8000, ge=0, le=65535)
    http_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024,
                                     description="larger request bodies are refused with 413 before they are read")
    http_rate_per_s: float = Field(default=5.0, gt=0, le=10_000,
                                   description="HTTP API requests per second allowed to one credential (or to one "
                                               "client address when the request carries none)")
    http_rate_burst: int = Field(default=60, ge=1, le=100_000,
                                 description="requests one credential may make at once before HTTP_RATE_PER_S applies")
    database_url: str = "sqlite+aiosqlite:///./data/attune.db"
    log_json: bool = Field(default=True, description="JSON lines (production) or readable lines (make run)")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")

    dead_letter_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s), comma-separated, that wrap this service's per-household dead-letter keys (the "
                    "first wraps, all unwrap: rotate by putting a new key first); required outside development, "
                    "where a published key is the default")

    field_keys: SecretStr | None = Field(
        default=None,
        description="the same value in every service and the CLI (ATTUNE_FIELD_KEYS there): 'kid:base64,kid2:base64', 32-byte "
                    "keys that seal private text (names, notes, dreams, titles, message bodies) on Kafka; the first "
                    "seals, all open (rotate by putting a new key first); required outside development, where a "
                    "published key is the default")

    retry_max_attempts: int = Field(default=5, ge=1, le=20,
                                    description="handler attempts per message before it is dead-lettered")
    retry_base_delay_s: float = Field(default=0.2, gt=0, description="first retry delay (doubles, with jitter)")
    retry_max_delay_s: float = Field(default=10.0, gt=0, description="longest retry delay")

    secret_fields: tuple[str, ...] = ()
    # A service whose consumers dead-letter sets this: its DEAD_LETTER_KEY is then required outside development.
    writes_dead_letters: ClassVar[bool] = False
    # A service that writes or reads private fields on Kafka sets this: its FIELD_KEYS are then required
    # outside development (the bare base, used by tools to create topics, needs no keys).
    seals_private_fields: ClassVar[bool] = False
    # How to make a value for a secret field, when a random string is not the right shape (a Fernet key).
    secret_recipes: ClassVar[dict[str, str]] = {}

    def env_name(self, field: str) -> str:
        """The environment variable that sets `field` (ATTUNE_<SERVICE>_<FIELD>)."""
        return (self.model_config.get("env_prefix") or "") + field.upper()

    @model_validator(mode="after")
    def _min_insync_replicas_fit_the_copies(self) -> ServiceSettings:
        # More than the copies and every acks=all write to the topics created would be refused.
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(f"{self.env_name('kafka_min_insync_replicas')} ({self.kafka_min_insync_replicas}) must "
                             f"not exceed {self.env_name('kafka_replication_factor')} "
                             f"({self.kafka_replication_factor})")
        return self

    @model_validator(mode="after")
    def _development_listens_on_loopback_only(self) -> ServiceSettings:
        # Development runs on published keys: reachable from another machine, anyone could use them.
        if self.environment is Environment.DEVELOPMENT and self.http_host.strip("[]") not in LOOPBACK_HOSTS:
            raise ValueError(
                f"{self.env_name('http_host')}={self.http_host} is refused in development: a development service "
                f"runs on published keys, so it listens on loopback only (127.0.0.1, ::1 or localhost). "
                f"Set {self.env_name('environment')}=production with real secrets to listen elsewhere")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment is Environment.DEVELOPMENT:
            return self
        for name in self.secret_fields:
            value: Any = getattr(self, name)
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if raw is None or str(raw).strip().lower() in PLACEHOLDERS or len(str(raw)) < 16:
                raise ValueError(
                    f"{self.env_name(name)} is missing or a placeholder; outside development set it to a random value "
                    f"of at least 16 characters (make one with: {self.secret_recipes.get(name, MAKE_A_SECRET)}), or set "
                    f"{self.env_name('environment')}=development on this machine only"
                )
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # After every validator, so that a service missing several secrets still names its older ones first.
        if self.writes_dead_letters and self.dead_letter_key is None \
                and self.environment is not Environment.DEVELOPMENT:
            # Fail closed: without it, dead letters (names, notes, dreams) would outlive their household's erasure.
            message = (f"{self.env_name('dead_letter_key')} is missing; outside development set it to a Fernet key "
                       f"(make one with: {MAKE_FERNET_KEY}), or set {self.env_name('environment')}=development on "
                       f"this machine only")
            raise _settings_error(type(self).__name__, message)
        if self.seals_private_fields and self.field_keys is None and self.environment is not Environment.DEVELOPMENT:
            # Fail closed: without them, names, notes and dreams could not be sealed (nor read) on Kafka.
            raise _settings_error(type(self).__name__, (
                f"{self.env_name('field_keys')} is missing; outside development set it to the deployment's field keys, the same "
                f"in every service and the CLI (make one with: {MAKE_FIELD_KEY}), or set "
                f"{self.env_name('environment')}=development on this machine only"))

    @model_validator(mode="after")
    def _dead_letter_key_usable(self) -> ServiceSettings:
        from .deadletters import parse_dead_letter_keys

        name = self.env_name("dead_letter_key")
        if self.dead_letter_key is None:
            return self  # development's published key, or refused in __init__
        try:
            keys = parse_dead_letter_keys(self.dead_letter_key.get_secret_value())
        except ValueError:
            raise ValueError(f"{name} must be Fernet keys (32 url-safe base64 bytes), comma-separated; make one "
                             f"with: {MAKE_FERNET_KEY}") from None
        self.refuse_development_keys("dead_letter_key", keys, [DEV_DEAD_LETTER_KEY], MAKE_FERNET_KEY)
        return self

    @model_validator(mode="after")
    def _field_keys_usable(self) -> ServiceSettings:
        if self.field_keys is None:
            return self  # development's published key, or refused in __init__
        try:
            keys = FieldKeys.parse(self.field_keys.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"{self.env_name('field_keys')}: {exc}; make one with: {MAKE_FIELD_KEY}") from None
        if self.environment is not Environment.DEVELOPMENT \
                and set(keys.encoded()) & set(FieldKeys.parse(DEV_FIELD_KEYS).encoded()):
            raise ValueError(f"{self.env_name('field_keys')} holds the development key: it is published, so it is refused "
                             f"outside development (even beside real keys); make one with: {MAKE_FIELD_KEY}")
        return self

    def field_keyring(self) -> FieldKeys:
        """The keys that seal and open private fields on Kafka (the first seals)."""
        return FieldKeys.parse(self.field_keys.get_secret_value() if self.field_keys is not None else DEV_FIELD_KEYS)

    def dead_letter_keys(self) -> list[str]:
        """The Fernet keys wrapping the dead-letter data keys (the first wraps)."""
        from .deadletters import parse_dead_letter_keys

        if self.dead_letter_key is None:
            return [DEV_DEAD_LETTER_KEY]
        return parse_dead_letter_keys(self.dead_letter_key.get_secret_value())

    def refuse_development_keys(self, field: str, given: Iterable[str], development: Iterable[str], how: str) -> None:
        """Outside development, no key of a list (the current one or an old one kept for reading) may be a
        published development key: one such key among real ones still lets anyone forge or read."""
        if self.environment is Environment.DEVELOPMENT:
            return
        published = {d.strip() for d in development}
        if any(key.strip() in published for key in given):
            raise ValueError(
                f"{self.env_name(field)} is unset or holds a development key: those are published, so they are "
                f"refused outside development (even beside real keys); set it to real keys only, made with: {how}")


class CredentialKeysSettings(ServiceSettings):
    """A service whose API verifies credentials: the public keys, checked at start-up (missing, malformed or
    development keys are refused outside development)."""

    credential_keys: str | None = Field(
        default=None, description="public keys that verify API credentials, 'kid:key,kid2:key2' "
                                  "(`attune credentials keygen`); the development key is refused elsewhere")
    # False: the service checks them itself, in its own validator (the app, after its signing key).
    credential_keys_checked_at_start: ClassVar[bool] = True

    @model_validator(mode="after")
    def _credential_keys_usable(self) -> CredentialKeysSettings:
        if self.credential_keys_checked_at_start:
            self.credential_verifier()  # refuses missing, malformed or development keys at start-up
        return self

    def credential_verifier(self) -> CredentialVerifier:
        return verifier_from_setting(self.credential_keys, development=self.environment is Environment.DEVELOPMENT,
                                     setting=self.env_name("credential_keys"))


def _settings_error(title: str, message: str) -> ValidationError:
    return ValidationError.from_exception_data(title, [InitErrorDetails(
        type=PydanticCustomError("value_error", "Value error, {message}", {"message": message}), loc=(), input={})])


Settings = TypeVar("Settings", bound=ServiceSettings)


def load_settings(cls: type[Settings]) -> Settings:
    """The service's settings from the environment, or exit non-zero with what to set (no traceback)."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix") or ""
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in error.get("loc", ()))
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            lines.append(f"  - {prefix}{where.upper()}: {message}" if where else f"  - {message}")
        raise SystemExit(f"{prefix.rstrip('_').lower() or 'attune'}: cannot start, the settings are not usable:\n"
                         + "\n".join(lines)) from None
