"""A channel's retirement time: set when its destination is gone (a web push subscription answered 404/410).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_channels") as batch:
        batch.add_column(sa.Column("retired_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifier_channels") as batch:
        batch.drop_column("retired_at")
