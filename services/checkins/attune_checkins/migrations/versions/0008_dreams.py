"""checkins: the dreams board (a member's dream, sealed like notes; when it was reached; who supports it)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dreams",
        sa.Column("dream_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("dream_enc", sa.LargeBinary(), nullable=False),
        sa.Column("note_enc", sa.LargeBinary(), nullable=True),
        sa.Column("shared_at", UtcDateTime(), nullable=False),
        sa.Column("reached_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("dream_id"),
    )
    op.create_index(op.f("ix_dreams_household_id"), "dreams", ["household_id"], unique=False)
    op.create_table(
        "dream_supports",
        sa.Column("dream_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("supported_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dream_id", "member_id"),
    )
    op.create_index(op.f("ix_dream_supports_household_id"), "dream_supports", ["household_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dream_supports_household_id"), table_name="dream_supports")
    op.drop_table("dream_supports")
    op.drop_index(op.f("ix_dreams_household_id"), table_name="dreams")
    op.drop_table("dreams")
