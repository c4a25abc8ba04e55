"""'We just connected' (step 4 of the article: stay close after sex). On demand, never scheduled, and private: a
member says yes to the button in their own session; once the two partners both have, either can press it and
their after-care starts (AfterCareStarted, which no service turns into a notification: nothing of it reaches a
lock screen). Arrives over the HTTP API with the member's own credential.

Check-ins does not know members' roles: the app, which does, never offers the button to a child; here it takes
exactly two people who each said yes themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID, uuid4

from attune_contracts.messages import AfterCareConsentChanged, AfterCareStarted

from .adapters.aftercare import AfterCareRows
from .service import Rejected
from .usecases import CheckinsService, Outbox


def partner_of(member_id: UUID, consented: Iterable[UUID]) -> UUID:
    """The one other person who said yes; Rejected, with words for the person who pressed it, when there is none."""
    yes = set(consented)
    if member_id not in yes:
        raise Rejected("say yes to this first, in your own settings")
    others = yes - {member_id}
    if not others:
        raise Rejected("this starts once both of you have said yes")
    if len(others) > 1:
        raise Rejected("this is for two partners, and more than two people said yes in this household")
    return next(iter(others))


class AfterCare:
    def __init__(self, service: CheckinsService) -> None:
        self.service = service

    async def export(self, household_id: UUID) -> dict[str, Any]:
        """Its part of the household's export: who said yes, and when each after-care was started (nothing else
        is kept of it)."""
        async with self.service.store.tx() as tx:
            rows = AfterCareRows(tx)
            consented, moments = await rows.consented(household_id), await rows.moments(household_id)
        return {"aftercare": {
            "consented": sorted(str(m) for m in consented),
            "started": [{"moment_id": str(m), "started_by": str(by), "started_at": at.isoformat()}
                        for m, by, at in moments]}}

    async def consent(self, household_id: UUID, member_id: UUID, given: bool) -> bool:
        request_id = uuid4()
        outbox = Outbox(request_id, household_id, str(request_id))
        async with self.service.store.tx() as tx:
            await self.service._member_of(tx, household_id, member_id)
            now = self.service.clock.now()
            changed = await AfterCareRows(tx).set_consent(household_id, member_id, given, now)
            if changed:
                outbox.add(AfterCareConsentChanged(member_id=member_id, given=given, changed_at=now))
            staged = await self.service._stage(tx, outbox)
        await self.service._committed(staged)
        return changed

    async def start(self, household_id: UUID, member_id: UUID, moment_id: UUID) -> bool:
        outbox = Outbox(moment_id, household_id, str(moment_id))
        async with self.service.store.tx() as tx:
            await self.service._member_of(tx, household_id, member_id)
            rows = AfterCareRows(tx)
            partner = partner_of(member_id, await rows.consented(household_id))
            now = self.service.clock.now()
            started = await rows.start(moment_id, household_id, member_id, now)
            if started:
                outbox.add(AfterCareStarted(moment_id=moment_id, started_by=member_id, partner_id=partner,
                                            started_at=now))
            staged = await self.service._stage(tx, outbox)
        await self.service._committed(staged)
        return started
