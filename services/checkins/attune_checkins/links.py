"""One-tap links and SMS short links: what a link would record, what it recorded, and recording it once.

A link can be tapped before this service has heard of its occurrence (the notifier is quick; this consumer may
lag): previews and short codes wait up to `Policy.link_occurrence_wait_s` for it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from attune_contracts.links import LinkAction, LinkClaims
from attune_contracts.messages import CheckInSource, CheckInStatus, SubmitCheckIn
from attune_runtime import shortlinks

from . import service as rules
from . import submissions
from .context import Context
from .events import CausedEvents
from .model import CheckIn, Occurrence
from .submissions import SubmitResult

_LINK_POLL_S = 0.1


class LinkRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def link_preview(app: Context, claims: LinkClaims) -> tuple[Occurrence, datetime | None]:
    """What a link would record, and when it was used if it already was.

    A reminder's link can be tapped before its ritual (the day-before date-night reminder): the
    occurrence its RitualReminder announced is returned at once, marked `announced` (nothing can be
    recorded for it yet). An occurrence not known yet, or announced and already past its time, is waited
    for (up to `link_occurrence_wait_s`): a validly signed link names one, and its RitualDue may still be
    on its way here. Still only announced after the wait: returned as announced all the same.
    """
    deadline = asyncio.get_running_loop().time() + app.policy.link_occurrence_wait_s
    while True:
        async with app.uow() as uow:
            occurrence = await uow.occurrences.occurrence(claims.occurrence_id)
            if occurrence is not None and occurrence.household_id == claims.household_id:
                return occurrence, await uow.links.token_used_at(claims.token_id)
            announced = await uow.occurrences.announced(claims.occurrence_id) if occurrence is None else None
        if announced is not None and announced.household_id != claims.household_id:
            announced = None
        if announced is not None and app.clock.now() < announced.scheduled_for:
            return announced, None
        if occurrence is not None or asyncio.get_running_loop().time() >= deadline:
            if announced is not None:
                return announced, None
            raise LinkRefused("unknown_occurrence", "We could not find this ritual any more.")
        await asyncio.sleep(_LINK_POLL_S)

async def resolve_short_link(app: Context, code: str) -> str:
    """The one-tap token an SMS's short code stands for. Its ShortLinkIssued may still be on its way here
    (an SMS is quick): waited for like a link's occurrence. LinkRefused if unknown or expired."""
    key = shortlinks.code_id(code)
    deadline = asyncio.get_running_loop().time() + app.policy.link_occurrence_wait_s
    while True:
        async with app.uow() as uow:
            found = await uow.links.short_link(key)
        if found is not None:
            _, sealed, expires_at = found
            if expires_at <= app.clock.now():
                raise LinkRefused("expired", "This link has expired. The next reminder will bring fresh links.")
            token = shortlinks.unseal(sealed, code)
            if token is None:  # not sealed with this code: not one of ours
                raise LinkRefused("bad_signature", "This link has been changed or was not made by Attune.")
            return token
        if asyncio.get_running_loop().time() >= deadline:
            raise LinkRefused("unknown_short_link", "We don't know this short link. It may be mistyped, or "
                                                    "so old that it has been tidied away.")
        await asyncio.sleep(_LINK_POLL_S)

async def link_outcome(app: Context, claims: LinkClaims) -> tuple[Occurrence | None, CheckIn | None]:
    """For a used or expired link's page: its occurrence (if still known, in the link's household) and what
    is recorded for its member. No waiting: this only explains a link that no longer records anything."""
    async with app.uow() as uow:
        occurrence = await uow.occurrences.occurrence(claims.occurrence_id)
        if occurrence is None or occurrence.household_id != claims.household_id:
            return None, None
        return occurrence, await uow.checkins.checkin(claims.occurrence_id, claims.member_id)

async def use_link(app: Context, claims: LinkClaims, closeness: int | None) -> SubmitResult:
    """Record a one-tap link's check-in once; a second use of the same token is refused."""
    now = app.clock.now()
    status = {LinkAction.DONE: CheckInStatus.DONE, LinkAction.SKIP: CheckInStatus.SKIPPED,
              LinkAction.SNOOZE: CheckInStatus.SNOOZED}[claims.action]
    cmd = SubmitCheckIn(
        occurrence_id=claims.occurrence_id, member_id=claims.member_id, status=status,
        snoozed_until=now + app.policy.link_snooze if status is CheckInStatus.SNOOZED else None,
        closeness=closeness if status is CheckInStatus.DONE else None, source=CheckInSource.LINK,
    )
    caused = CausedEvents(claims.token_id, claims.household_id, str(claims.occurrence_id))
    async with app.uow() as uow:
        checkin_id = rules.checkin_id_for(claims.occurrence_id, claims.member_id)
        if not await uow.links.use_token(claims.token_id, claims.household_id, checkin_id, now, claims.expires_at):
            raise LinkRefused("replayed", "This link has already been used; your answer was recorded then.")
        result = await submissions.submit(app, uow, caused, claims.household_id, cmd, submitted_at=now)
        uow.collect(caused)
        staged = await app.finish(uow)
    await app.committed(staged)
    return result
