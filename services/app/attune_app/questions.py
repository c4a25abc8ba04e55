"""Today's question, answered by both (issue 14). The notifier picks an occurrence's question (QuestionAsked: a
catalog key) and check-ins keeps the answers; the app shows the question from its read model, sends a person's
answer to check-ins with their own credential, and reads back what that person may see (a partner's answer only
once they have answered too; check-ins decides, the app only shows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from attune_contracts.catalog import question_by_key
from sqlalchemy.ext.asyncio import AsyncConnection

from .adapters import questions as stored
from .ports import Unavailable
from .usecases import AppService, Session

PARTNER = "Your partner"


@dataclass(frozen=True)
class PartnerAnswer:
    name: str
    answered: bool
    text: str | None  # shown only once the viewer has answered


@dataclass
class QuestionCard:
    occurrence_id: UUID
    text: str
    mine: str | None = None
    answered: bool = False  # the viewer answered (known from check-ins or from its QuestionAnswered)
    partners: list[PartnerAnswer] = field(default_factory=list)
    unavailable: bool = False  # check-ins did not answer: the question shows, the answers cannot

    @property
    def waiting_for(self) -> list[str]:
        return [p.name for p in self.partners if not p.answered]


def card(question: Mapping[str, Any], viewer: UUID, names: Mapping[UUID, str], askable: Iterable[UUID],
         answers: list[dict[str, Any]] | None) -> QuestionCard | None:
    """The card for `viewer`, or None when the catalog no longer knows the question's key. `answers`: check-ins'
    rows for the viewer (None: check-ins did not answer; the read model's "who answered" is shown instead)."""
    found = question_by_key(question["question_key"])
    if found is None:
        return None
    result = QuestionCard(question["occurrence_id"], found[1], unavailable=answers is None)
    if answers is None:
        answered = set(question.get("answered", ()))
        result.answered = viewer in answered
        result.partners = [PartnerAnswer(names.get(m, PARTNER), m in answered, None) for m in askable if m != viewer]
        return result
    rows = {UUID(r["member_id"]): r for r in answers}
    mine = rows.get(viewer)
    result.mine = mine["text"] if mine else None
    result.answered = bool(mine and mine["answered"])
    others = [m for m in dict.fromkeys([*askable, *rows]) if m != viewer]
    result.partners = [PartnerAnswer(names.get(m, PARTNER), bool(rows.get(m, {}).get("answered")),
                                     rows.get(m, {}).get("text")) for m in others]
    return result


async def today_questions(service: AppService, session: Session, household: Mapping[str, Any] | None,
                          members: list[dict[str, Any]], conn: AsyncConnection | None = None) -> list[QuestionCard]:
    """The questions of the household's local today that the viewer takes part in (`household` and `members`: what
    the today page already read)."""
    now = service.clock.now()
    if household is None:
        return []
    zone = ZoneInfo(household["time_zone"])
    today = now.astimezone(zone).date()
    names = {m["member_id"]: m["display_name"] for m in members}
    cards = []
    for question in await stored.questions_between(service.store, session.household_id, now - timedelta(hours=36),
                                                    now + timedelta(hours=36), conn):
        if question["scheduled_for"].astimezone(zone).date() != today:
            continue
        occurrence = await service.store.occurrence(question["occurrence_id"], session.household_id)
        askable = list(occurrence.participants) if occurrence else [m["member_id"] for m in members]
        if session.member_id not in askable:
            continue
        try:
            view = await service._through("check-ins", service.checkins.get(
                session.household_id, session.member_id, f"questions/{question['occurrence_id']}"))
            answers: list[dict[str, Any]] | None = list(view.get("answers", []))
        except Unavailable:
            answers = None
        found = card(question, session.member_id, names, askable, answers)
        if found is not None:
            cards.append(found)
    return cards


async def answer(service: AppService, session: Session, occurrence_id: UUID, text: str) -> bool:
    """Send the viewer's answer to check-ins as themselves; False when the occurrence asked no question the app
    knows of in their household (Refused / Unavailable from check-ins pass through)."""
    if await stored.question(service.store, occurrence_id, session.household_id) is None:
        return False
    await service._post(session.household_id, session.member_id,
                        f"questions/{occurrence_id}/answers", {"member_id": str(session.member_id), "text": text})
    # Shown at once; check-ins' QuestionAnswered says the same a moment later.
    await stored.save_answered(service.store, session.household_id, occurrence_id, session.member_id)
    return True

