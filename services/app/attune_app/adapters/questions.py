"""The day's questions in the app's read model: which question each occurrence asked, and who answered it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from .sql import SqlStore, _upsert
from .tables import question_answered, questions


async def save_question(store: SqlStore, household_id: UUID, occurrence_id: UUID, *, question_key: str, bank: str,
                        scheduled_for: datetime) -> None:
    async with store.engine.begin() as conn:
        await _upsert(conn, questions, {"occurrence_id": occurrence_id}, {
            "household_id": household_id, "question_key": question_key, "bank": bank,
            "scheduled_for": scheduled_for})


async def save_answered(store: SqlStore, household_id: UUID, occurrence_id: UUID, member_id: UUID) -> None:
    async with store.engine.begin() as conn:
        await _upsert(conn, question_answered, {"occurrence_id": occurrence_id, "member_id": member_id},
                      {"household_id": household_id})


async def questions_between(store: SqlStore, household_id: UUID, start: datetime, end: datetime,
                            conn: AsyncConnection | None = None) -> list[dict[str, Any]]:
    """The household's questions asked in [start, end), earliest first, each with the members who answered (`conn`:
    the page's connection, else one of its own)."""
    if conn is None:
        async with store.engine.connect() as own:
            return await questions_between(store, household_id, start, end, own)
    rows = (await conn.execute(select(questions).where(
        questions.c.household_id == household_id, questions.c.scheduled_for >= start,
        questions.c.scheduled_for < end).order_by(questions.c.scheduled_for))).mappings().all()
    ids = [r["occurrence_id"] for r in rows]
    answered = (await conn.execute(select(question_answered.c.occurrence_id, question_answered.c.member_id).where(
        question_answered.c.occurrence_id.in_(ids)))).all() if ids else []
    who: dict[UUID, set[UUID]] = {}
    for occurrence_id, member_id in answered:
        who.setdefault(occurrence_id, set()).add(member_id)
    return [{**r, "answered": who.get(r["occurrence_id"], set())} for r in rows]


async def question(store: SqlStore, occurrence_id: UUID, household_id: UUID) -> dict[str, Any] | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(questions).where(
            questions.c.occurrence_id == occurrence_id, questions.c.household_id == household_id))).mappings().first()
    return dict(row) if row else None
