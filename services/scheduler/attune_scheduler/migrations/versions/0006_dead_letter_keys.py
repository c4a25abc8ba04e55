"""scheduler: a data key per household (and one for the service) that seals its dead letters; erasure deletes it

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_dead_letter_keys",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_dead_letter_keys")
