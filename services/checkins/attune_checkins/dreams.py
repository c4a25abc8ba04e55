"""The dreams board (step 6 of the article: invest in each other's dreams). A member shares a dream, their partner
says "I support this", and when its owner reaches it an achievement is recorded for the household to celebrate.

Arrives over the HTTP API with the member's own credential; each change is one unit of work that writes its rows
and collects its events (DreamShared, DreamSupported, AchievementRecorded with the dream's id). Retries are
harmless: a dream's id is the caller's, a support is one per member, and reaching a dream twice records one
achievement (its id derives from the dream's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID, uuid4

from attune_contracts.messages import AchievementRecorded, DreamShared, DreamSupported

from . import service as rules
from .context import Context
from .events import CausedEvents
from .model import Achievement, Dream, Rejected
from .moments import member_of
from .ports import UnitOfWork

__all__ = ["Dream", "Unknown", "achievement_id_of", "reach", "reach_refusal", "share", "support", "support_refusal"]

Work = Callable[[UnitOfWork, CausedEvents, datetime], Awaitable[bool]]


class Unknown(Exception):
    """No such dream in this household (answered 404, as if it did not exist)."""


def support_refusal(dream: Dream, supporter: UUID) -> str | None:
    """Why this member cannot say "I support this" to this dream, or None."""
    if dream.member_id == supporter:
        return "a dream is supported by the others in the household, not by its owner"
    return None


def reach_refusal(dream: Dream, member_id: UUID) -> str | None:
    if dream.member_id != member_id:
        return "only the person whose dream it is can say they reached it"
    return None


def achievement_id_of(dream_id: UUID) -> UUID:
    """Reaching a dream is one achievement, whoever retries."""
    return rules.derived_id("dream-reached", dream_id)


async def _change(app: Context, household_id: UUID, member_id: UUID, work: Work) -> bool:
    """Run `work(uow, caused, now)` in one unit of work after checking the member is of the household; its
    events are written with it. Returns what `work` returned."""
    request_id = uuid4()
    caused = CausedEvents(request_id, household_id, str(request_id))
    async with app.uow() as uow:
        await member_of(uow, household_id, member_id)
        result = await work(uow, caused, app.clock.now())
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)
    return result


async def _allowed(uow: UnitOfWork, dream_id: UUID, household_id: UUID, member_id: UUID,
                   refusal: Callable[[Dream, UUID], str | None]) -> Dream:
    """The household's dream, if `refusal` lets this member act on it; Unknown or Rejected otherwise."""
    dream = await uow.dreams.dream(dream_id, household_id)
    if dream is None:
        raise Unknown()
    why = refusal(dream, member_id)
    if why is not None:
        raise Rejected(why)
    return dream


async def share(app: Context, household_id: UUID, member_id: UUID, text: str, note: str | None,
                dream_id: UUID) -> bool:
    rules.nul_free(dream=text, note=note)

    async def work(uow: UnitOfWork, caused: CausedEvents, now: datetime) -> bool:
        if not await uow.dreams.add_dream(Dream(dream_id, household_id, member_id, text, note, now)):
            return False  # this id again: a retry (or someone else's id, which changes nothing)
        caused.add(DreamShared(dream_id=dream_id, member_id=member_id, dream=text, shared_at=now))
        return True

    return await _change(app, household_id, member_id, work)


async def support(app: Context, household_id: UUID, dream_id: UUID, member_id: UUID) -> bool:
    async def work(uow: UnitOfWork, caused: CausedEvents, now: datetime) -> bool:
        dream = await _allowed(uow, dream_id, household_id, member_id, support_refusal)
        if not await uow.dreams.support(dream_id, household_id, member_id, now):
            return False
        caused.add(DreamSupported(dream_id=dream_id, owner_id=dream.member_id, member_id=member_id, supported_at=now))
        return True

    return await _change(app, household_id, member_id, work)


async def reach(app: Context, household_id: UUID, dream_id: UUID, member_id: UUID) -> bool:
    async def work(uow: UnitOfWork, caused: CausedEvents, now: datetime) -> bool:
        dream = await _allowed(uow, dream_id, household_id, member_id, reach_refusal)
        if not await uow.dreams.reach(dream_id, now):
            return False
        achievement_id = achievement_id_of(dream_id)
        await uow.achievements.add_achievement(
            Achievement(achievement_id, household_id, member_id, dream.dream, None, now))
        caused.add(AchievementRecorded(achievement_id=achievement_id, member_id=member_id, dream=dream.dream,
                                       dream_id=dream_id))
        return True

    return await _change(app, household_id, member_id, work)
