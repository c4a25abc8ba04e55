"""app: the dreams board's read model (dreams, who supports them, achievements to celebrate)

Revision ID: 0005_dreams
Revises: 0004_date_nights
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0005_dreams"
down_revision = "0004_date_nights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dreams",
        sa.Column("dream_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("dream", sa.String(200), nullable=False),
        sa.Column("shared_at", UtcDateTime(), nullable=False),
        sa.Column("reached_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("dream_id"),
    )
    op.create_index(op.f("ix_dreams_household_id"), "dreams", ["household_id"], unique=False)
    op.create_table(
        "dream_supports",
        sa.Column("dream_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("dream_id", "member_id"),
    )
    op.create_index(op.f("ix_dream_supports_household_id"), "dream_supports", ["household_id"], unique=False)
    op.create_table(
        "achievements",
        sa.Column("achievement_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("dream", sa.String(200), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("achievement_id"),
    )
    op.create_index(op.f("ix_achievements_household_id"), "achievements", ["household_id"], unique=False)


def downgrade() -> None:
    for table in ("achievements", "dream_supports", "dreams"):
        op.drop_index(op.f(f"ix_{table}_household_id"), table_name=table)
        op.drop_table(table)
