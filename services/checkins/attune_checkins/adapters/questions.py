"""The day's questions and their answers in the check-ins store. Answers are sealed with the notes cipher."""

from __future__ import annotations

from uuid import UUID

from attune_contracts.messages import QuestionAsked
from sqlalchemy import select

from ..model import Answer, Question
from . import tables as t
from .statements import Repository, insert_ignore


class SqlQuestions(Repository):
    """The day's question each occurrence asked, and each member's answer (sealed like a note)."""

    async def put_question(self, household_id: UUID, asked: QuestionAsked) -> None:
        """Remember an occurrence's question; its first QuestionAsked stays (a redelivery changes nothing)."""
        await self.conn.execute(insert_ignore(self.conn, t.questions_asked, {
            "occurrence_id": asked.occurrence_id, "household_id": household_id, "ritual_id": asked.ritual_id,
            "template": asked.template, "bank": asked.bank.value, "question_key": asked.question_key,
            "depth": asked.depth, "scheduled_for": asked.scheduled_for,
        }))

    async def question(self, occurrence_id: UUID) -> Question | None:
        q = t.questions_asked.c
        row = (await self.conn.execute(select(
            q.occurrence_id, q.household_id, q.ritual_id, q.template, q.bank, q.question_key, q.depth,
            q.scheduled_for,
        ).where(q.occurrence_id == occurrence_id))).one_or_none()
        return Question(*row) if row is not None else None

    async def answers(self, occurrence_id: UUID) -> dict[UUID, Answer]:
        a = t.question_answers.c
        rows = (await self.conn.execute(select(a.member_id, a.answer, a.answered_at).where(
            a.occurrence_id == occurrence_id))).all()
        return {r.member_id: Answer(r.member_id, self.cipher.open(r.answer) or "", r.answered_at) for r in rows}

    async def add_answer(self, household_id: UUID, occurrence_id: UUID, answer: Answer) -> bool:
        """Store a member's answer; False when they had already answered (their first answer stays)."""
        result = await self.conn.execute(insert_ignore(self.conn, t.question_answers, {
            "occurrence_id": occurrence_id, "member_id": answer.member_id, "household_id": household_id,
            "answer": self.cipher.seal(answer.text), "answered_at": answer.answered_at,
        }))
        return result.rowcount == 1
