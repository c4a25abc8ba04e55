"""households, members, rituals, processed commands, outbox

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from attune_scheduler.adapters.tables import BigId, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "households",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "members",
        sa.Column("household_id", sa.Uuid, sa.ForeignKey("households.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Uuid, primary_key=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_table(
        "rituals",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("household_id", sa.Uuid, sa.ForeignKey("households.id", ondelete="CASCADE"), nullable=False),
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
    )
    op.create_index("ix_rituals_household_id", "rituals", ["household_id"])
    op.create_index("ix_rituals_wake_at", "rituals", ["wake_at"])
    op.create_index("ix_rituals_state_template", "rituals", ["state", "template"])
    op.create_table(
        "processed_commands",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("command_type", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("processed_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("household_id", sa.Uuid, nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("template", sa.String(64), nullable=True),
        sa.Column("due_at", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_outbox_household_id", "outbox", ["household_id"])
    op.create_index("ix_outbox_unsent", "outbox", ["id"], postgresql_where=sa.text("sent_at IS NULL"),
                    sqlite_where=sa.text("sent_at IS NULL"))


def downgrade() -> None:
    for table in ("outbox", "processed_commands", "rituals", "members", "households"):
        op.drop_table(table)
