"""'We just connected' (step 4 of the article: stay close after sex), in the app. On demand and private: each
partner says yes in their own session (through check-ins, which keeps the yes); once both have, /today shows
them a discreet button, and pressing it starts the after-care for the two of them: a card with the article's
words on both partners' /today, and nothing anywhere else (no notification, nothing on a lock screen).

Only a couple's grown-ups ever see any of it: never a child, never a parent-and-child household. A partner who
hasn't said yes learns only that "your partner would like to add something private", never what.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from attune_contracts.catalog import template as find_template

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from .adapters.aftercare import SqlAfterCare
    from .usecases import AppService, Session

TEMPLATE = "after_intimacy"
SHOWN_FOR = timedelta(hours=6)
"""How long a started after-care stays on the two partners' /today."""


@dataclass(frozen=True)
class AfterCareView:
    offered: bool  # this person may see anything of it at all
    mine: bool  # I said yes
    partner_asked: bool  # my partner said yes (shown unnamed while I haven't)
    ready: bool  # both said yes: the button shows
    active: bool  # an after-care of mine started lately: the card shows
    title: str
    prompt: str
    why: str


def eligible(kind: str, role: str | None) -> bool:
    return kind == "couple" and role not in (None, "child")


def aftercare_view(*, kind: str, members: Sequence[dict[str, Any]], viewer: UUID, consented: set[UUID],
                   started: Sequence[tuple[Sequence[UUID], datetime]], now: datetime) -> AfterCareView:
    found = find_template(TEMPLATE)
    role = next((m["role"] for m in members if m["member_id"] == viewer), None)
    if found is None or not eligible(kind, role):
        return AfterCareView(False, False, False, False, False, "", "", "")
    partners = {m["member_id"] for m in members if m["member_id"] != viewer and m["role"] != "child"}
    mine = viewer in consented
    partner_asked = bool(partners & consented)
    active = any(viewer in who and now - at <= SHOWN_FOR for who, at in started)
    return AfterCareView(True, mine, partner_asked, mine and partner_asked, active, found.discreet_title or found.title,
                         found.short_prompt, found.long_prompt)


class AfterCare:
    def __init__(self, service: AppService, store: SqlAfterCare) -> None:
        self.service, self.store = service, store

    async def view(self, session: Session, household: dict[str, Any] | None = None,
                   members: list[dict[str, Any]] | None = None, conn: AsyncConnection | None = None) -> AfterCareView:
        """`household` and `members`: what the page already read (read here when not given); `conn`: the page's
        connection."""
        if members is None:
            household = await self.service.store.household(session.household_id)
            members = await self.service.store.members_of(session.household_id)
        household = household or {}
        now = self.service.clock.now()
        role = next((m["role"] for m in members if m["member_id"] == session.member_id), None)
        consented: set[UUID] = set()
        started: list[tuple[tuple[UUID, ...], datetime]] = []
        if eligible(household.get("kind", ""), role):  # else nothing of it shows: no need to read who said yes
            consented, started = await self.store.state(session.household_id, now - SHOWN_FOR, conn)
        return aftercare_view(kind=household.get("kind", ""), members=members, viewer=session.member_id,
                              consented=consented, started=started, now=now)

    async def consent(self, session: Session, given: bool) -> bool:
        """False when this person may not see it at all (answered 404)."""
        if not (await self.view(session)).offered:
            return False
        await self.service._post(session.household_id, session.member_id, "aftercare/consent",
                                 {"member_id": str(session.member_id), "given": given})
        await self.store.set_consent(session.household_id, session.member_id, given)
        return True

    async def start(self, session: Session) -> bool:
        """False unless both partners said yes (answered 404: the button is not there)."""
        view = await self.view(session)
        if not view.ready:
            return False
        moment_id = uuid4()
        await self.service._post(session.household_id, session.member_id, "aftercare",
                                 {"member_id": str(session.member_id), "moment_id": str(moment_id)})
        # Shown at once to the one who pressed it; check-ins' AfterCareStarted names both partners a moment later.
        await self.store.save_moment(moment_id, session.household_id, [session.member_id], self.service.clock.now())
        return True
