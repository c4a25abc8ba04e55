"""a tombstone per erased household, so that no replayed command brings it back

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from attune_scheduler.adapters.tables import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erased_households",
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("erased_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("household_id"),
    )


def downgrade() -> None:
    op.drop_table("erased_households")
