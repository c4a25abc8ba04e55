"""The day's question, answered by both: check-ins keeps the question each occurrence asked (QuestionAsked from
the notifier, which picks it) and each member's answer, and tells others that someone answered (QuestionAnswered,
without the text). The texts are read through the HTTP API by the household's members (question_rules says who
sees what)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from attune_contracts.catalog import question_by_key
from attune_contracts.messages import QuestionAnswered, QuestionAsked

from . import service as rules
from .adapters import questions as stored
from .adapters.sql import SqlTx
from .question_rules import (
    Answer,
    AnswerOutcome,
    Question,
    QuestionRefused,
    answerers,
    check_answer,
    clean_answer,
    visible_answers,
)
from .usecases import CheckinsService, Outbox

__all__ = ["AnswerOutcome", "QuestionRefused", "Questions", "record_asked"]


async def record_asked(tx: SqlTx, household_id: UUID, asked: QuestionAsked) -> None:
    """A QuestionAsked consumed from Kafka (inside the consumer's transaction)."""
    await stored.put_question(tx, household_id, asked)


class Questions:
    """The question use cases over the check-ins service's store, clock and outbox."""

    def __init__(self, checkins: CheckinsService) -> None:
        self.checkins = checkins

    async def _allowed(self, tx: SqlTx, household_id: UUID, question: Question | None) -> frozenset[UUID]:
        household = await tx.household(household_id)
        occurrence = await tx.occurrence(question.occurrence_id) if question is not None else None
        return answerers(occurrence, household.members if household else ())

    async def view(self, household_id: UUID, occurrence_id: UUID, viewer: UUID | None) -> dict[str, Any]:
        """The question and its answers as `viewer` may see them (None: a household credential)."""
        async with self.checkins.store.tx() as tx:
            question = await stored.question(tx, occurrence_id)
            if question is None or question.household_id != household_id:
                raise QuestionRefused(404, "no question was asked for this occurrence in this household")
            allowed = await self._allowed(tx, household_id, question)
            answers = await stored.answers(tx, occurrence_id)
        return _json(question, visible_answers(answers, allowed, viewer))

    async def text(self, household_id: UUID, occurrence_id: UUID) -> str | None:
        """The words of the occurrence's question (the catalog's), or None when it asked none known here."""
        async with self.checkins.store.tx() as tx:
            question = await stored.question(tx, occurrence_id)
        if question is None or question.household_id != household_id:
            return None
        found = question_by_key(question.question_key)
        return found[1] if found else None

    async def answer(self, household_id: UUID, occurrence_id: UUID, member_id: UUID,
                     text: str) -> tuple[AnswerOutcome, dict[str, Any]]:
        """Record `member_id`'s answer (idempotent: the same words again change nothing)."""
        text = clean_answer(text)
        now = self.checkins.clock.now()
        outbox = Outbox(rules.derived_id("answer", occurrence_id, member_id), household_id, str(occurrence_id))
        async with self.checkins.store.tx() as tx:
            question = await stored.question(tx, occurrence_id)
            allowed = await self._allowed(tx, household_id, question)
            answers = await stored.answers(tx, occurrence_id)
            outcome = check_answer(question, household_id, allowed, member_id, text, answers.get(member_id))
            if outcome is AnswerOutcome.NEW and await stored.add_answer(
                    tx, household_id, occurrence_id, Answer(member_id, text, now)):
                answers[member_id] = Answer(member_id, text, now)
                outbox.add(QuestionAnswered(occurrence_id=occurrence_id, member_id=member_id, answered_at=now,
                                            answers=len(answers)),
                           event_id=rules.derived_id("question_answered", occurrence_id, member_id))
            staged = await self.checkins._stage(tx, outbox)
        await self.checkins._committed(staged)
        assert question is not None  # noqa: S101 - check_answer refused a missing one
        return outcome, _json(question, visible_answers(answers, allowed, member_id))


def _json(question: Question, answers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "occurrence_id": str(question.occurrence_id), "ritual_id": str(question.ritual_id),
        "template": question.template, "bank": question.bank, "question_key": question.question_key,
        "depth": question.depth, "scheduled_for": question.scheduled_for.isoformat(), "answers": answers,
    }
