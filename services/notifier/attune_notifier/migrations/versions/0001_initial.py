"""Members, channels, deliveries, question picks and erased households.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from attune_notifier.adapters.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_members",
        sa.Column("member_id", sa.Uuid(), primary_key=True),
        sa.Column("household_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("quiet_start", sa.String(5)),
        sa.Column("quiet_end", sa.String(5)),
        sa.Column("discreet", sa.Boolean(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "notifier_channels",
        sa.Column("channel_id", sa.Uuid(), primary_key=True),
        sa.Column("member_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("household_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "notifier_deliveries",
        sa.Column("notification_id", sa.Uuid(), primary_key=True),
        sa.Column("household_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("member_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("cause_event_id", sa.Uuid(), nullable=False),
        sa.Column("cause_type", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("occurrence_id", sa.Uuid(), index=True),
        sa.Column("ritual_id", sa.Uuid()),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("channel_index", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("total_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime()),
        sa.Column("claimed_until", UtcDateTime()),
        sa.Column("channel_kind", sa.String(10)),
        sa.Column("last_error", sa.Text()),
        sa.Column("sent_at", UtcDateTime()),
    )
    op.create_index("ix_notifier_deliveries_due", "notifier_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "notifier_question_picks",
        sa.Column("occurrence_id", sa.Uuid(), primary_key=True),
        sa.Column("household_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("ritual_id", sa.Uuid(), nullable=False),
        sa.Column("question_index", sa.Integer(), nullable=False),
        sa.Column("picked_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "notifier_erased_households",
        sa.Column("household_id", sa.Uuid(), primary_key=True),
        sa.Column("erased_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("notifier_erased_households", "notifier_question_picks", "notifier_deliveries",
                  "notifier_channels", "notifier_members"):
        op.drop_table(table)
