"""The day's question, answered by both: check-ins keeps the question each occurrence asked (QuestionAsked from
the notifier, which picks it; handlers.py stores it) and each member's answer, and tells others that someone
answered (QuestionAnswered, without the text). The texts are read through the HTTP API by the household's members
(question_rules says who sees what)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from attune_contracts.catalog import question_by_key
from attune_contracts.messages import QuestionAnswered

from . import service as rules
from .context import Context
from .events import CausedEvents
from .model import Answer, Question
from .ports import UnitOfWork
from .question_rules import (
    AnswerOutcome,
    QuestionRefused,
    answerers,
    check_answer,
    clean_answer,
    visible_answers,
)

__all__ = ["AnswerOutcome", "Question", "QuestionRefused", "answer", "text", "view"]


async def _allowed(uow: UnitOfWork, household_id: UUID, question: Question | None) -> frozenset[UUID]:
    household = await uow.households.household(household_id)
    occurrence = await uow.occurrences.occurrence(question.occurrence_id) if question is not None else None
    return answerers(occurrence, household.members if household else ())


async def view(app: Context, household_id: UUID, occurrence_id: UUID, viewer: UUID | None) -> dict[str, Any]:
    """The question and its answers as `viewer` may see them (None: a household credential)."""
    async with app.uow() as uow:
        question = await uow.questions.question(occurrence_id)
        if question is None or question.household_id != household_id:
            raise QuestionRefused(404, "no question was asked for this occurrence in this household")
        allowed = await _allowed(uow, household_id, question)
        answers = await uow.questions.answers(occurrence_id)
    return _json(question, visible_answers(answers, allowed, viewer))


async def text(app: Context, household_id: UUID, occurrence_id: UUID) -> str | None:
    """The words of the occurrence's question (the catalog's), or None when it asked none known here."""
    async with app.uow() as uow:
        question = await uow.questions.question(occurrence_id)
    if question is None or question.household_id != household_id:
        return None
    found = question_by_key(question.question_key)
    return found[1] if found else None


async def answer(app: Context, household_id: UUID, occurrence_id: UUID, member_id: UUID,
                 words: str) -> tuple[AnswerOutcome, dict[str, Any]]:
    """Record `member_id`'s answer (idempotent: the same words again change nothing)."""
    words = clean_answer(words)
    now = app.clock.now()
    caused = CausedEvents(rules.derived_id("answer", occurrence_id, member_id), household_id, str(occurrence_id))
    async with app.uow() as uow:
        question = await uow.questions.question(occurrence_id)
        allowed = await _allowed(uow, household_id, question)
        answers = await uow.questions.answers(occurrence_id)
        outcome = check_answer(question, household_id, allowed, member_id, words, answers.get(member_id))
        mine = Answer(member_id, words, now)
        if outcome is AnswerOutcome.NEW and await uow.questions.add_answer(household_id, occurrence_id, mine):
            answers[member_id] = mine
            caused.add(QuestionAnswered(occurrence_id=occurrence_id, member_id=member_id, answered_at=now,
                                        answers=len(answers)),
                       event_id=rules.derived_id("question_answered", occurrence_id, member_id))
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)
    assert question is not None  # noqa: S101 - check_answer refused a missing one
    return outcome, _json(question, visible_answers(answers, allowed, member_id))


def _json(question: Question, answers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "occurrence_id": str(question.occurrence_id), "ritual_id": str(question.ritual_id),
        "template": question.template, "bank": question.bank, "question_key": question.question_key,
        "depth": question.depth, "scheduled_for": question.scheduled_for.isoformat(), "answers": answers,
    }
