"""The dreams board (step 6 of the article: invest in each other's dreams). A member shares a dream, their partner
says "I support this", and when its owner reaches it an achievement is recorded for the household to celebrate.

Arrives over the HTTP API with the member's own credential; each change is one transaction that writes its rows
and its events to the outbox (DreamShared, DreamSupported, AchievementRecorded with the dream's id). Retries are
harmless: a dream's id is the caller's, a support is one per member, and reaching a dream twice records one
achievement (its id derives from the dream's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from attune_contracts.messages import AchievementRecorded, DreamShared, DreamSupported

from . import service as rules
from .adapters.sql import SqlTx
from .service import Achievement, Rejected
from .usecases import CheckinsService, Outbox

if TYPE_CHECKING:
    from .adapters.dreams import DreamRows

    Work = Callable[[SqlTx, DreamRows, Outbox, datetime], Awaitable[bool]]


@dataclass(frozen=True)
class Dream:
    dream_id: UUID
    household_id: UUID
    member_id: UUID
    dream: str
    note: str | None
    shared_at: datetime
    reached_at: datetime | None = None


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


async def _allowed(rows: DreamRows, dream_id: UUID, household_id: UUID,
                   refusal_of: Callable[[Dream, UUID], str | None], member_id: UUID) -> Dream:
    """The household's dream this member may act on: Unknown (404) or Rejected (422, with the rule's words)."""
    dream = await rows.get(dream_id, household_id)
    if dream is None:
        raise Unknown()
    refusal = refusal_of(dream, member_id)
    if refusal is not None:
        raise Rejected(refusal)
    return dream


class Dreams:
    def __init__(self, service: CheckinsService) -> None:
        self.service = service

    async def _change(self, household_id: UUID, member_id: UUID, work: Work) -> bool:
        """Run `work(tx, rows, outbox, now)` in one transaction after checking the member is of the household;
        stage its events; returns what work returned."""
        from .adapters.dreams import DreamRows  # it returns this module's Dream

        request_id = uuid4()
        outbox = Outbox(request_id, household_id, str(request_id))
        async with self.service.store.tx() as tx:
            await self.service._member_of(tx, household_id, member_id)
            result = await work(tx, DreamRows(tx), outbox, self.service.clock.now())
            staged = await self.service._stage(tx, outbox)
        await self.service._committed(staged)
        return result

    async def export(self, household_id: UUID) -> dict[str, Any]:
        """The board's part of the household's export (a dream's note is its author's, like every note)."""
        from .adapters.dreams import DreamRows

        async with self.service.store.tx() as tx:
            dreams, supports = await DreamRows(tx).all(household_id)
        return {
            "dreams": [{"dream_id": str(d.dream_id), "member_id": str(d.member_id), "dream": d.dream, "note": d.note,
                        "shared_at": d.shared_at.isoformat(),
                        "reached_at": d.reached_at.isoformat() if d.reached_at else None} for d in dreams],
            "dream_supports": [{"dream_id": str(d), "supporter_id": str(m), "supported_at": at.isoformat()}
                               for d, m, at in supports],
        }

    async def share(self, household_id: UUID, member_id: UUID, text: str, note: str | None,
                    dream_id: UUID) -> bool:
        rules.nul_free(dream=text, note=note)

        async def work(tx: SqlTx, rows: DreamRows, outbox: Outbox, now: datetime) -> bool:
            if not await rows.add(Dream(dream_id, household_id, member_id, text, note, now)):
                return False  # this id again: a retry (or someone else's id, which changes nothing)
            outbox.add(DreamShared(dream_id=dream_id, member_id=member_id, dream=text, shared_at=now))
            return True

        return await self._change(household_id, member_id, work)

    async def support(self, household_id: UUID, dream_id: UUID, member_id: UUID) -> bool:
        async def work(tx: SqlTx, rows: DreamRows, outbox: Outbox, now: datetime) -> bool:
            dream = await _allowed(rows, dream_id, household_id, support_refusal, member_id)
            if not await rows.support(dream_id, household_id, member_id, now):
                return False
            outbox.add(DreamSupported(dream_id=dream_id, owner_id=dream.member_id, member_id=member_id,
                                      supported_at=now))
            return True

        return await self._change(household_id, member_id, work)

    async def reach(self, household_id: UUID, dream_id: UUID, member_id: UUID) -> bool:
        async def work(tx: SqlTx, rows: DreamRows, outbox: Outbox, now: datetime) -> bool:
            dream = await _allowed(rows, dream_id, household_id, reach_refusal, member_id)
            if not await rows.reach(dream_id, now):
                return False
            achievement_id = achievement_id_of(dream_id)
            await tx.add_achievement(Achievement(achievement_id, household_id, member_id, dream.dream, None, now))
            outbox.add(AchievementRecorded(achievement_id=achievement_id, member_id=member_id, dream=dream.dream,
                                           dream_id=dream_id))
            return True

        return await self._change(household_id, member_id, work)
