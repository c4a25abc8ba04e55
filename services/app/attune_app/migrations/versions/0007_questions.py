"""app: the day's question of an occurrence and who has answered it (the texts stay in check-ins)

Revision ID: 0007_questions
Revises: 0006_aftercare
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0007_questions"
down_revision = "0006_aftercare"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "questions",
        sa.Column("occurrence_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("question_key", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(16), nullable=False),
        sa.Column("scheduled_for", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("occurrence_id"),
    )
    op.create_index("ix_questions_household_id", "questions", ["household_id"])
    op.create_table(
        "question_answered",
        sa.Column("occurrence_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("occurrence_id", "member_id"),
    )
    op.create_index("ix_question_answered_household_id", "question_answered", ["household_id"])


def downgrade() -> None:
    op.drop_index("ix_question_answered_household_id", "question_answered")
    op.drop_table("question_answered")
    op.drop_index("ix_questions_household_id", "questions")
    op.drop_table("questions")
