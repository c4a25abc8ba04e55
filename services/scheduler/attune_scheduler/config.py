"""The scheduler's settings (environment prefix ATTUNE_SCHEDULER_)."""

from __future__ import annotations

from typing import ClassVar

from attune_runtime.settings import CredentialKeysSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class SchedulerSettings(CredentialKeysSettings):
    model_config = SettingsConfigDict(env_prefix="ATTUNE_SCHEDULER_", extra="ignore", frozen=True)
    writes_dead_letters: ClassVar[bool] = True  # ATTUNE_SCHEDULER_DEAD_LETTER_KEY required outside development
    seals_private_fields: ClassVar[bool] = True  # ATTUNE_SCHEDULER_FIELD_KEYS required outside development

    http_port: int = Field(default=8101, ge=0, le=65535)
    credential_keys: str | None = Field(
        default=None, description="public keys that verify API credentials (the household export), 'kid:key,kid2:key2' "
                                  "(`attune credentials keygen`); the development key is refused elsewhere"
    )
    database_url: str = "sqlite+aiosqlite:///./data/scheduler.db"
    group_id: str = "attune-scheduler"
    fire_batch_size: int = Field(default=500, ge=1, le=10_000, description="rituals claimed per transaction")
    fire_workers: int = Field(default=2, ge=1, le=16, description="batches claimed side by side (PostgreSQL)")
    lookahead_s: float = Field(
        default=120.0, ge=0, le=3600,
        description="write occurrences this far ahead to the outbox; the relay publishes each at its instant",
    )
    relay_batch_size: int = Field(default=2000, ge=1, le=50_000, description="outbox rows published per batch")
    relay_depth: int = Field(
        default=2, ge=1, le=8,
        description="relay batches in flight at once (PostgreSQL): the next is claimed while the last is acknowledged",
    )
    relay_shards: int = Field(
        default=16, ge=1, le=1024,
        description="relay shards (PostgreSQL): each household's events belong to one, and each shard is published by"
        " one instance at a time; the same on every instance. More shards than instances, so they split evenly",
    )
    relay_read_ahead_s: float = Field(
        default=30.0, ge=0, le=3600, description="read outbox rows written ahead into memory this long before their instant",
    )
    relay_read_ahead_rows: int = Field(
        default=100_000, ge=0, le=2_000_000,
        description="most outbox rows held in memory ahead of their instant (about 2 KB each); 0 turns reading ahead off",
    )
    max_sleep_s: float = Field(default=30.0, gt=0, description="longest sleep without looking for due rituals")
    relay_poll_s: float = Field(default=1.0, gt=0)
    metrics_refresh_s: float = Field(default=5.0, gt=0)
