"""One settings class per service, on this shared base. Only a service's main.py reads the environment."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"", "changeme", "change-me", "changethis", "secret", "password", "dev", "development", "test", "xxx"}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """Kafka, HTTP, storage and consumer-retry settings every service shares."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Environment = Field(default=Environment.DEVELOPMENT,
                                     description="development, test or production; secrets are checked outside development")
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

    http_host: str = Field(default="127.0.0.1", description="address for /healthz, /readyz, /metrics and the API")
    http_port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///./data/attune.db"
    log_json: bool = Field(default=True, description="JSON lines (production) or readable lines (make run)")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")

    retry_max_attempts: int = Field(default=5, ge=1, le=20,
                                    description="handler attempts per message before it is dead-lettered")
    retry_base_delay_s: float = Field(default=0.2, gt=0, description="first retry delay (doubles, with jitter)")
    retry_max_delay_s: float = Field(default=10.0, gt=0, description="longest retry delay")

    secret_fields: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment is Environment.DEVELOPMENT:
            return self
        for name in self.secret_fields:
            value: Any = getattr(self, name)
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if raw is None or str(raw).strip().lower() in PLACEHOLDERS or len(str(raw)) < 16:
                env = (self.model_config.get("env_prefix") or "") + name.upper()
                raise ValueError(
                    f"{env} is missing or a placeholder; outside development set it to a random value "
                    f"of at least 16 characters (for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return self
