"""A member's locale (language, clock and date formats of their messages); NULL: the catalog's default.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_members") as batch:
        batch.add_column(sa.Column("locale", sa.String(35), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifier_members") as batch:
        batch.drop_column("locale")
