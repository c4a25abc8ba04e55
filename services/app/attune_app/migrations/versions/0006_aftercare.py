"""app: "we just connected" read model (who said yes; each after-care started)

Revision ID: 0006_aftercare
Revises: 0005_dreams
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0006_aftercare"
down_revision = "0005_dreams"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aftercare_consents",
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("household_id", "member_id"),
    )
    op.create_table(
        "aftercare_moments",
        sa.Column("moment_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("partners", sa.Text(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("moment_id"),
    )
    op.create_index(op.f("ix_aftercare_moments_household_id"), "aftercare_moments", ["household_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_aftercare_moments_household_id"), table_name="aftercare_moments")
    op.drop_table("aftercare_moments")
    op.drop_table("aftercare_consents")
