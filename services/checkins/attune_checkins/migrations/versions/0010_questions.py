"""checkins: the day's question of an occurrence and each member's answer (encrypted like a note)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from attune_runtime.sql import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "questions_asked",
        sa.Column("occurrence_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("ritual_id", sa.Uuid(), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(16), nullable=False),
        sa.Column("question_key", sa.String(64), nullable=False),
        sa.Column("depth", sa.String(16), nullable=True),
        sa.Column("scheduled_for", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("occurrence_id"),
    )
    op.create_index("ix_questions_asked_household_id", "questions_asked", ["household_id"])
    op.create_table(
        "question_answers",
        sa.Column("occurrence_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.Column("answered_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("occurrence_id", "member_id"),
    )
    op.create_index("ix_question_answers_household_id", "question_answers", ["household_id"])


def downgrade() -> None:
    op.drop_index("ix_question_answers_household_id", "question_answers")
    op.drop_table("question_answers")
    op.drop_index("ix_questions_asked_household_id", "questions_asked")
    op.drop_table("questions_asked")
