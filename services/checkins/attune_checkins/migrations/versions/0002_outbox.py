"""the transactional outbox: events written with the change that caused them, published after commit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 17:50:00
"""

from __future__ import annotations

import attune_checkins.adapters.tables
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'checkins_outbox',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('event_id', sa.Uuid(), nullable=False),
        sa.Column('household_id', sa.Uuid(), nullable=False),
        sa.Column('topic', sa.String(length=100), nullable=False),
        sa.Column('event_type', sa.String(length=100), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('created_at', attune_checkins.adapters.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('checkins_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkins_outbox_household_id'), ['household_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('checkins_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkins_outbox_household_id'))
    op.drop_table('checkins_outbox')
