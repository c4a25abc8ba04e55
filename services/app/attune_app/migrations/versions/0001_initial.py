"""The web app's first schema: its read model, sessions and invitations.

Revision ID: 0001_initial
Revises: 

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('checkins',
    sa.Column('occurrence_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('closeness', sa.Integer(), nullable=True),
    sa.Column('recorded_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('occurrence_id', 'member_id')
    )
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkins_household_id'), ['household_id'], unique=False)

    op.create_table('consents',
    sa.Column('ritual_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('ritual_id', 'member_id')
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_household_id'), ['household_id'], unique=False)

    op.create_table('households',
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('confirmed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('household_id')
    )
    op.create_table('invites',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('invited_by', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('expires_at', UtcDateTime(), nullable=False),
    sa.Column('used_at', UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invites_household_id'), ['household_id'], unique=False)

    op.create_table('members',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('confirmed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('member_id')
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_household_id'), ['household_id'], unique=False)

    op.create_table('moments',
    sa.Column('moment_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('happened_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('moment_id')
    )
    with op.batch_alter_table('moments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moments_household_id'), ['household_id'], unique=False)

    op.create_table('occurrences',
    sa.Column('occurrence_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('ritual_id', sa.Uuid(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('participants', sa.Text(), nullable=False),
    sa.Column('scheduled_for', UtcDateTime(), nullable=False),
    sa.Column('deadline', UtcDateTime(), nullable=False),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('occurrence_id')
    )
    op.create_table('rituals',
    sa.Column('ritual_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('participants', sa.Text(), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=False),
    sa.Column('local_time', sa.String(length=5), nullable=False),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('next_due_at', UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('ritual_id')
    )
    with op.batch_alter_table('rituals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rituals_household_id'), ['household_id'], unique=False)

    op.create_table('sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('expires_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_household_id'), ['household_id'], unique=False)

    op.create_table('streaks',
    sa.Column('ritual_id', sa.Uuid(), nullable=False),
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('length', sa.Integer(), nullable=False),
    sa.Column('best', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('ritual_id')
    )
    with op.batch_alter_table('streaks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_streaks_household_id'), ['household_id'], unique=False)

    op.create_table('summaries',
    sa.Column('household_id', sa.Uuid(), nullable=False),
    sa.Column('week_start', sa.String(length=10), nullable=False),
    sa.Column('positive', sa.Integer(), nullable=False),
    sa.Column('negative', sa.Integer(), nullable=False),
    sa.Column('focus_title', sa.String(length=200), nullable=False),
    sa.Column('focus_text', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('household_id')
    )



def downgrade() -> None:

    op.drop_table('summaries')
    with op.batch_alter_table('streaks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_streaks_household_id'))

    op.drop_table('streaks')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_household_id'))

    op.drop_table('sessions')
    with op.batch_alter_table('rituals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rituals_household_id'))

    op.drop_table('rituals')
    op.drop_table('occurrences')
    with op.batch_alter_table('moments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_moments_household_id'))

    op.drop_table('moments')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_household_id'))

    op.drop_table('members')
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invites_household_id'))

    op.drop_table('invites')
    op.drop_table('households')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_household_id'))

    op.drop_table('consents')
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkins_household_id'))

    op.drop_table('checkins')

