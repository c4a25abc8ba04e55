"""A parent-and-child household for the tests of a child's version: the parent starts it, the child joins by link
with their own session, and the scheduler's MemberUpserted tells the app she is a child."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from attune_contracts.messages import MemberRole, MemberUpserted

from .conftest import Browser, Harness
from .test_app_http import fact, invite_link, started


@dataclass
class Family:
    household_id: UUID
    parent_id: UUID
    child_id: UUID
    parent: Browser
    child: Browser


async def family_with_a_child(h: Harness) -> Family:
    parent = h.browser()
    household_id, parent_id = await started(h, parent, kind="family")
    link = await invite_link(parent, role="child")
    child = h.browser()
    await child.submit(link, link, {"your_name": "Zoe"})
    child_id = h.commands.sent[-1][1].member_id
    await fact(h, MemberUpserted(member_id=child_id, display_name="Zoe", role=MemberRole.CHILD,
                                 time_zone="Europe/Lisbon"), household_id)
    return Family(household_id, parent_id, child_id, parent, child)
