"""per-household credential revocations (RevokeHouseholdCredentials): credentials issued before not_before are refused

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from attune_scheduler.adapters.tables import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credential_revocations",
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("household_id"),
    )


def downgrade() -> None:
    op.drop_table("credential_revocations")
