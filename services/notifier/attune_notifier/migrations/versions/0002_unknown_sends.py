"""Deliveries count their sends of unknown outcome (timed out), so their retries are bounded.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_deliveries") as batch:
        batch.add_column(sa.Column("unknown_sends", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("notifier_deliveries") as batch:
        batch.drop_column("unknown_sends")
