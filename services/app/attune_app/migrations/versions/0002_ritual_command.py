"""Remember the ScheduleRitual's event id of a ritual the app asked for, to match the scheduler's rejection;
sign-in links for members who already exist (made by `python -m attune_app.signin`).

Revision ID: 0002_ritual_command
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ritual_command"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rituals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("command_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_rituals_command_id"), ["command_id"], unique=False)
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.drop_column("member_id")
    with op.batch_alter_table("rituals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rituals_command_id"))
        batch_op.drop_column("command_id")
