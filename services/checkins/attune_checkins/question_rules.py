"""The day's question: who may answer it and who sees which answer. Pure: no SQL, no Kafka, no HTTP.

An answer is private until its reader has answered too: each member sees their own answer, and a partner's
only once they have given theirs (so nobody's answer is shaped by the other's). One answer per member per
occurrence: the first one stays (the same words again change nothing; different words are refused, because
the partner may already have read the first)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any
from uuid import UUID

from .model import Answer, Question

__all__ = ["Answer", "AnswerOutcome", "Question", "QuestionRefused", "answerers", "check_answer", "clean_answer",
           "visible_answers"]
from .service import MAX_NOTE, Occurrence


class AnswerOutcome(StrEnum):
    NEW = "new"
    UNCHANGED = "unchanged"


class QuestionRefused(Exception):
    """An answer or a read that cannot be allowed. `status` is the HTTP status; `reason` is for people."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def answerers(occurrence: Occurrence | None, members: Iterable[UUID]) -> frozenset[UUID]:
    """Who may answer: the occurrence's participants who are members of the household (all its members while
    the occurrence's RitualDue has not reached check-ins yet)."""
    members = frozenset(members)
    if occurrence is None or not occurrence.participants:
        return members
    return frozenset(occurrence.participants) & members


def clean_answer(text: str) -> str:
    """The answer as stored, or QuestionRefused(422) saying what is wrong with it."""
    text = text.strip()
    if not text:
        raise QuestionRefused(422, "the answer is empty: write a few words")
    if "\x00" in text:
        raise QuestionRefused(422, "the answer must not contain NUL characters (U+0000)")
    if len(text) > MAX_NOTE:
        raise QuestionRefused(422, f"the answer is {len(text)} characters long; at most {MAX_NOTE} are kept")
    return text


def check_answer(question: Question | None, household_id: UUID, allowed: frozenset[UUID], member_id: UUID,
                 text: str, existing: Answer | None) -> AnswerOutcome:
    """NEW when `member_id` may give this answer now, UNCHANGED when they gave these words already;
    QuestionRefused otherwise (404: no such question in this household; 403: not theirs to answer;
    409: they answered already with other words)."""
    if question is None or question.household_id != household_id:
        raise QuestionRefused(404, "no question was asked for this occurrence in this household")
    if member_id not in allowed:
        raise QuestionRefused(403, f"member {member_id} does not take part in this question")
    if existing is None:
        return AnswerOutcome.NEW
    if existing.text == text:
        return AnswerOutcome.UNCHANGED
    raise QuestionRefused(409, "you have answered this question already; your first answer stays as your "
                               "partner may have read it")


def visible_answers(answers: Mapping[UUID, Answer], allowed: Iterable[UUID],
                    viewer: UUID | None) -> list[dict[str, Any]]:
    """Each answerer's row as `viewer` (None: a household credential, no member) may see it: whether they
    answered and when, and the text only for the viewer's own answer, or anyone's once the viewer answered."""
    viewer_answered = viewer is not None and viewer in answers
    rows = []
    for member_id in sorted(set(allowed) | set(answers), key=str):
        answer = answers.get(member_id)
        shown = answer is not None and (member_id == viewer or viewer_answered)
        rows.append({
            "member_id": str(member_id), "answered": answer is not None,
            "answered_at": answer.answered_at.isoformat() if answer else None,
            "text": answer.text if shown and answer else None,
            "withheld": answer is not None and not shown,
        })
    return rows
