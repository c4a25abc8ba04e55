"""app: a data key per household (and one for the service) that seals its dead letters, deleted by erasure; the
erased households' ids, so that no key is made for one again

Revision ID: 0003_dead_letter_keys
Revises: 0002_ritual_command
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0003_dead_letter_keys"
down_revision = "0002_ritual_command"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_dead_letter_keys",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.create_table(
        "app_erased_households",
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("erased_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("household_id"),
    )


def downgrade() -> None:
    op.drop_table("app_erased_households")
    op.drop_table("app_dead_letter_keys")
