"""app: date nights kept in the last four weeks per date-night ritual (DateNightAdherenceUpdated), for "How we're
doing"

Revision ID: 0004_date_nights
Revises: 0003_dead_letter_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_date_nights"
down_revision = "0003_dead_letter_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "date_nights",
        sa.Column("ritual_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("kept", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("window_weeks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("ritual_id"),
    )
    op.create_index(op.f("ix_date_nights_household_id"), "date_nights", ["household_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_date_nights_household_id"), table_name="date_nights")
    op.drop_table("date_nights")
