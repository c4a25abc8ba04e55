"""SMS short links: a code's hash and its one-tap token sealed with the code

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:50:00
"""

from __future__ import annotations

import attune_checkins.adapters.tables
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'short_links',
        sa.Column('code_id', sa.String(length=64), nullable=False),
        sa.Column('household_id', sa.Uuid(), nullable=False),
        sa.Column('sealed_token', sa.Text(), nullable=False),
        sa.Column('expires_at', attune_checkins.adapters.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('code_id'),
    )
    with op.batch_alter_table('short_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_short_links_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_short_links_household_id'), ['household_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('short_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_short_links_household_id'))
        batch_op.drop_index(batch_op.f('ix_short_links_expires_at'))
    op.drop_table('short_links')
