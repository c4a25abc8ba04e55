"""'We just connected' (step 4 of the article: stay close after sex). On demand, never scheduled, and private: a
member says yes to the button in their own session; once the two partners both have, either can press it and
their after-care starts (AfterCareStarted, which no service turns into a notification: nothing of it reaches a
lock screen). Arrives over the HTTP API with the member's own credential.

Check-ins does not know members' roles: the app, which does, never offers the button to a child; here it takes
exactly two people who each said yes themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID, uuid4

from attune_contracts.messages import AfterCareConsentChanged, AfterCareStarted

from .context import Context
from .events import CausedEvents
from .model import Rejected
from .moments import member_of


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


async def consent(app: Context, household_id: UUID, member_id: UUID, given: bool) -> bool:
    """A member's own yes (or no); True when it changed."""
    request_id = uuid4()
    caused = CausedEvents(request_id, household_id, str(request_id))
    async with app.uow() as uow:
        await member_of(uow, household_id, member_id)
        now = app.clock.now()
        changed = await uow.aftercare.set_consent(household_id, member_id, given, now)
        if changed:
            caused.add(AfterCareConsentChanged(member_id=member_id, given=given, changed_at=now))
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)
    return changed


async def start(app: Context, household_id: UUID, member_id: UUID, moment_id: UUID) -> bool:
    """Start an after-care for the two who said yes; False when this moment id was already started (a retry)."""
    caused = CausedEvents(moment_id, household_id, str(moment_id))
    async with app.uow() as uow:
        await member_of(uow, household_id, member_id)
        partner = partner_of(member_id, await uow.aftercare.consented(household_id))
        now = app.clock.now()
        started = await uow.aftercare.start(moment_id, household_id, member_id, now)
        if started:
            caused.add(AfterCareStarted(moment_id=moment_id, started_by=member_id, partner_id=partner,
                                        started_at=now))
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)
    return started
