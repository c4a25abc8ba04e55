"""per-household credential revocations (the scheduler's HouseholdCredentialsRevoked)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'checkins_credential_revocations',
        sa.Column('household_id', sa.Uuid(), nullable=False),
        sa.Column('not_before', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('household_id'),
    )


def downgrade() -> None:
    op.drop_table('checkins_credential_revocations')
