"""The notifier's own tables. All times are stored in UTC."""

from __future__ import annotations

from attune_runtime.deadletters import dead_letter_keys_table
from attune_runtime.sql import UtcDateTime
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

metadata = MetaData()

members = Table(
    "notifier_members", metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("display_name", String(100), nullable=False),
    Column("role", String(20), nullable=False, default="partner"),
    Column("time_zone", String(64), nullable=False, default="UTC"),
    Column("quiet_start", String(5)),
    Column("quiet_end", String(5)),
    Column("discreet", Boolean, nullable=False, default=False),
    Column("daily_cap", Integer, nullable=False, default=12),
    Column("categories", JSON, nullable=False, default=dict),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("locale", String(35)),  # NULL: attune_contracts.content.DEFAULT_LOCALE
)

channels = Table(
    "notifier_channels", metadata,
    Column("channel_id", Uuid, primary_key=True),
    Column("member_id", Uuid, nullable=False, index=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("position", Integer, nullable=False),
    Column("secret", LargeBinary, nullable=False),  # Fernet token of the Apprise URL
    Column("created_at", UtcDateTime(), nullable=False),
    # Set when the gateway said the destination no longer exists (a web push 404/410): never routed to again.
    Column("retired_at", UtcDateTime()),
)

deliveries = Table(
    "notifier_deliveries", metadata,
    Column("notification_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False, index=True),
    Column("cause_event_id", Uuid, nullable=False),
    Column("cause_type", String(100), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("template", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("sensitive", Boolean, nullable=False, default=False),
    Column("occurrence_id", Uuid, index=True),
    Column("ritual_id", Uuid),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime()),
    Column("status", String(12), nullable=False),  # pending deferred failed sent dead dropped unknown
    Column("reason", String(64)),
    Column("channel_index", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=0),
    Column("total_attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime()),
    Column("claimed_until", UtcDateTime()),
    Column("channel_kind", String(10)),
    Column("last_error", Text),
    Column("sent_at", UtcDateTime()),
    # Sends whose outcome was unknown (timed out); bounds the copies a person can get (service.after_unknown).
    Column("unknown_sends", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_notifier_deliveries_due", "status", "next_attempt_at"),
)

question_picks = Table(
    "notifier_question_picks", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("ritual_id", Uuid, nullable=False),
    Column("question_index", Integer, nullable=False),
    Column("picked_at", UtcDateTime(), nullable=False),
)

erased_households = Table(
    "notifier_erased_households", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("erased_at", UtcDateTime(), nullable=False),
)

# The scheduler's HouseholdCredentialsRevoked: credentials of the household issued before not_before are refused.
# Kept through an erasure (no personal data), so an erased household's old credentials stay refused.
credential_revocations = Table(
    "notifier_credential_revocations", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("not_before", UtcDateTime(), nullable=False),
)

# Seals this service's dead letters, one key per household: erasing a household deletes its row.
dead_letter_keys = dead_letter_keys_table(metadata, "notifier")
