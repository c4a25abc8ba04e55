"""The scheduler's own tables. Every instant is stored in UTC."""

from __future__ import annotations

import sqlalchemy as sa
from attune_runtime.deadletters import dead_letter_keys_table
from attune_runtime.sql import UtcDateTime

metadata = sa.MetaData()

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

households = sa.Table(
    "households", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

members = sa.Table(
    "members", metadata,
    sa.Column("household_id", sa.Uuid, sa.ForeignKey("households.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("member_id", sa.Uuid, primary_key=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
)

rituals = sa.Table(
    "rituals", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("household_id", sa.Uuid, sa.ForeignKey("households.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("title", sa.String(200), nullable=True),
    sa.Column("participants", sa.JSON, nullable=False),
    sa.Column("rrule", sa.String(500), nullable=False),
    sa.Column("local_time", sa.String(5), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("reminder_offsets", sa.JSON, nullable=False),
    sa.Column("catch_up_minutes", sa.Integer, nullable=False),
    sa.Column("sensitive", sa.Boolean, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("consents", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("next_due_at", UtcDateTime, nullable=True),
    sa.Column("next_reminder_at", UtcDateTime, nullable=True),
    sa.Column("reminder_cursor", UtcDateTime, nullable=True),
    sa.Column("wake_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_rituals_wake_at", "wake_at"),
    sa.Index("ix_rituals_state_template", "state", "template"),
)

# RevokeHouseholdCredentials: the household's credentials issued before not_before are refused. Not personal
# data, and kept through an erasure so an erased household's old credentials stay refused.
credential_revocations = sa.Table(
    "credential_revocations", metadata,
    sa.Column("household_id", sa.Uuid, primary_key=True),
    sa.Column("not_before", UtcDateTime, nullable=False),
)

processed_commands = sa.Table(
    "processed_commands", metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("command_type", sa.String(100), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("processed_at", UtcDateTime, nullable=False),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("household_id", sa.Uuid, nullable=False, index=True),
    sa.Column("topic", sa.String(100), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("template", sa.String(64), nullable=True),
    sa.Column("due_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Written ahead of time: published at publish_at, not before; dropped if its ritual changes first.
    sa.Column("ritual_id", sa.Uuid, nullable=True),
    sa.Column("publish_at", UtcDateTime, nullable=True),
    sa.Column("catch_up_minutes", sa.Integer, nullable=True),
    # Only rows not yet published: the relay deletes each in the transaction that publishes it.
    sa.Index("ix_outbox_ritual", "ritual_id", "publish_at"),
    sa.Index("ix_outbox_publish_at", "publish_at", "id"),
)

# A tombstone per erased household: nothing (a replayed RegisterHousehold, UpsertMember, ...) brings it back.
erased_households = sa.Table(
    "erased_households", metadata,
    sa.Column("household_id", sa.Uuid, primary_key=True),
    sa.Column("erased_at", UtcDateTime, nullable=False),
)

# Seals this service's dead letters, one key per household: erasing a household deletes its row.
dead_letter_keys = dead_letter_keys_table(metadata, "scheduler")
