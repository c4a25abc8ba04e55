"""outbox rows written ahead of time: ritual_id, publish_at, catch_up_minutes

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from attune_scheduler.adapters.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("ritual_id", sa.Uuid, nullable=True))
        batch.add_column(sa.Column("publish_at", UtcDateTime, nullable=True))
        batch.add_column(sa.Column("catch_up_minutes", sa.Integer, nullable=True))
    op.create_index("ix_outbox_unsent_ritual", "outbox", ["ritual_id", "publish_at"],
                    postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL"))
    op.create_index("ix_outbox_unsent_publish_at", "outbox", ["publish_at"],
                    postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent_publish_at", "outbox")
    op.drop_index("ix_outbox_unsent_ritual", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("catch_up_minutes")
        batch.drop_column("publish_at")
        batch.drop_column("ritual_id")
