"""occurrences announced by a reminder, so a reminder's link works before its ritual is due

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:40:00
"""

from __future__ import annotations

import attune_checkins.adapters.tables
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'announced_occurrences',
        sa.Column('occurrence_id', sa.Uuid(), nullable=False),
        sa.Column('household_id', sa.Uuid(), nullable=False),
        sa.Column('ritual_id', sa.Uuid(), nullable=False),
        sa.Column('template', sa.String(length=64), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('participants', sa.JSON(), nullable=False),
        sa.Column('scheduled_for', attune_checkins.adapters.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column('time_zone', sa.String(length=64), nullable=False),
        sa.Column('sensitive', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('occurrence_id'),
    )
    with op.batch_alter_table('announced_occurrences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announced_occurrences_household_id'), ['household_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_announced_occurrences_scheduled_for'), ['scheduled_for'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('announced_occurrences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_announced_occurrences_scheduled_for'))
        batch_op.drop_index(batch_op.f('ix_announced_occurrences_household_id'))
    op.drop_table('announced_occurrences')
