"""the outbox holds only rows not yet published: the relay deletes a row in the transaction that publishes it

Deleting is much cheaper than marking sent (no new row version, no index entries), which is what lets a burst
of 100,000 occurrences leave in a few seconds. Rows already sent are dropped here; `sent_at` goes, and the
partial indexes on unsent rows become plain ones, with (publish_at, id) in the order the relay reads ahead.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from attune_scheduler.adapters.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_UNSENT = {"postgresql_where": sa.text("sent_at IS NULL"), "sqlite_where": sa.text("sent_at IS NULL")}


def upgrade() -> None:
    op.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL")
    op.drop_index("ix_outbox_unsent_publish_at", "outbox")
    op.drop_index("ix_outbox_unsent_ritual", "outbox")
    op.drop_index("ix_outbox_unsent", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("sent_at")
    op.create_index("ix_outbox_ritual", "outbox", ["ritual_id", "publish_at"])
    op.create_index("ix_outbox_publish_at", "outbox", ["publish_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_publish_at", "outbox")
    op.drop_index("ix_outbox_ritual", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("sent_at", UtcDateTime, nullable=True))
    op.create_index("ix_outbox_unsent", "outbox", ["id"], **_UNSENT)
    op.create_index("ix_outbox_unsent_ritual", "outbox", ["ritual_id", "publish_at"], **_UNSENT)
    op.create_index("ix_outbox_unsent_publish_at", "outbox", ["publish_at"], **_UNSENT)
