"""The dreams board (step 6 of the article: invest in each other's dreams): what each person sees of it, and what
they can do there. Changes go through the check-ins API with the person's own credential; the board itself is
built from check-ins' events (DreamShared, DreamSupported, AchievementRecorded).

A child sees their own dreams only (who supports them, and theirs reached); the grown-ups see every dream of the
household, a child's too, so that they can cheer it on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from attune_contracts.types import Note, ShortText
from pydantic import TypeAdapter, ValidationError

from .ports import Refused

if TYPE_CHECKING:
    from .adapters.dreams import SqlDreams
    from .usecases import AppService, Session

CELEBRATE_FOR = timedelta(days=14)
_TEXT = TypeAdapter(ShortText)
_NOTE = TypeAdapter(Note)


@dataclass(frozen=True)
class Dream:
    dream_id: UUID
    member_id: UUID
    text: str
    shared_at: datetime
    reached_at: datetime | None = None


@dataclass(frozen=True)
class Achievement:
    """Progress on a dream recorded without the board (RecordAchievement)."""

    achievement_id: UUID
    member_id: UUID
    dream: str
    recorded_at: datetime


@dataclass
class DreamView:
    dream_id: UUID
    owner: str
    text: str
    mine: bool
    supporters: list[str] = field(default_factory=list)
    may_support: bool = False
    i_support: bool = False
    may_reach: bool = False
    reached: bool = False


def _name(member_id: UUID, viewer: UUID, names: dict[UUID, str]) -> str:
    return "You" if member_id == viewer else names.get(member_id, "Your partner")


def board_views(dreams: Sequence[Dream], supports: dict[UUID, set[UUID]], names: dict[UUID, str], viewer: UUID,
                *, child: bool) -> list[DreamView]:
    views = []
    for dream in dreams:
        mine = dream.member_id == viewer
        if child and not mine:
            continue
        backers = supports.get(dream.dream_id, set())
        views.append(DreamView(
            dream_id=dream.dream_id, owner=_name(dream.member_id, viewer, names), text=dream.text, mine=mine,
            supporters=sorted(_name(m, viewer, names) for m in backers),
            may_support=not mine and viewer not in backers and dream.reached_at is None,
            i_support=viewer in backers, may_reach=mine and dream.reached_at is None,
            reached=dream.reached_at is not None))
    return views


def celebrations(dreams: Sequence[Dream], achievements: Sequence[Achievement], names: dict[UUID, str],
                 viewer: UUID, now: datetime, *, child: bool) -> list[str]:
    """Dreams reached and achievements of the last two weeks, newest first, in words ("Ana reached a dream")."""
    found: list[tuple[datetime, UUID, str, str]] = []
    for dream in dreams:
        if dream.reached_at is not None and now - dream.reached_at <= CELEBRATE_FOR:
            found.append((dream.reached_at, dream.member_id, dream.text, "reached a dream"))
    for done in achievements:
        if now - done.recorded_at <= CELEBRATE_FOR:
            found.append((done.recorded_at, done.member_id, done.dream, "moved a dream forward"))
    words = []
    for _, member_id, text, what in sorted(found, key=lambda f: f[0], reverse=True):
        if child and member_id != viewer:
            continue
        who = _name(member_id, viewer, names)
        tail = "Well done!" if member_id == viewer else "Celebrate it together!"
        words.append(f"{who} {what}: \u201c{text}\u201d. {tail}")
    return words


def dream_text(raw: str) -> str:
    """The dream in the person's own words, as the contract takes it (1 to 200 characters)."""
    try:
        return _TEXT.validate_python(raw)
    except ValidationError:
        raise Refused("Write your dream in a few words (up to 200 characters).") from None


class Dreams:
    def __init__(self, service: AppService, store: SqlDreams) -> None:
        self.service, self.store = service, store

    async def board(self, session: Session, *, child: bool) -> tuple[list[DreamView], list[str]]:
        dreams, supports, achievements = await self.store.board(session.household_id)
        names = {m["member_id"]: m["display_name"] for m in await self.service.store.members_of(session.household_id)}
        return (board_views(dreams, supports, names, session.member_id, child=child),
                celebrations(dreams, achievements, names, session.member_id, self.service.clock.now(), child=child))

    async def share(self, session: Session, text: str, note: str | None) -> UUID:
        dream = Dream(uuid4(), session.member_id, dream_text(text), self.service.clock.now())
        body: dict[str, Any] = {"member_id": str(session.member_id), "dream": dream.text,
                                "dream_id": str(dream.dream_id)}
        if note:
            try:
                body["note"] = _NOTE.validate_python(note)
            except ValidationError:
                raise Refused("That note is too long (up to 2,000 characters).") from None
        await self.service._post(session.household_id, session.member_id, "dreams", body)
        await self.store.save_dream(dream, session.household_id)  # check-ins' DreamShared says the same soon
        return dream.dream_id

    async def support(self, session: Session, dream_id: UUID, *, child: bool) -> bool:
        """False when it isn't a dream of this household the person may support (answered 404): their own is not,
        and a child sees (and so supports) none but their own."""
        dream = await self.store.dream(dream_id, session.household_id)
        if dream is None or dream.member_id == session.member_id or child:
            return False
        await self.service._post(session.household_id, session.member_id, f"dreams/{dream_id}/support",
                                 {"member_id": str(session.member_id)})
        await self.store.save_support(dream_id, session.member_id, session.household_id)
        return True

    async def reach(self, session: Session, dream_id: UUID) -> bool:
        """Only its owner says a dream is reached; False otherwise (answered 404)."""
        dream = await self.store.dream(dream_id, session.household_id)
        if dream is None or dream.member_id != session.member_id:
            return False
        await self.service._post(session.household_id, session.member_id, f"dreams/{dream_id}/reached",
                                 {"member_id": str(session.member_id)})
        await self.store.reached(dream, session.household_id, self.service.clock.now())
        return True
