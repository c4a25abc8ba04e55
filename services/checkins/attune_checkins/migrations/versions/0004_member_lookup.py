"""look members up by id alone: which household a member named on Kafka belongs to

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 21:20:00
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_members_member_id', 'members', ['member_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_members_member_id', table_name='members')
