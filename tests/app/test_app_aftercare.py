"""'We just connected' in the app: who ever sees it (a couple's grown-ups only), each one's own yes through the
check-ins API, the button only once both said yes, the after-care card on both partners' /today from check-ins'
AfterCareStarted, and that no service turns any of it into a notification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from attune_app.aftercare import aftercare_view
from attune_contracts.messages import (
    AfterCareConsentChanged,
    AfterCareStarted,
)

from .conftest import Harness
from .families import family_with_a_child
from .test_app_http import fact, invite_link, started

pytestmark = [pytest.mark.unit]

NOW = datetime(2026, 6, 3, 22, 0, tzinfo=UTC)


def test_who_sees_what() -> None:
    ana, ben, zoe = uuid4(), uuid4(), uuid4()
    couple = [{"member_id": ana, "role": "partner"}, {"member_id": ben, "role": "partner"}]
    family = [{"member_id": ana, "role": "parent"}, {"member_id": zoe, "role": "child"}]

    def view(kind, members, viewer, consented=frozenset(), started=()):  # type: ignore[no-untyped-def]
        return aftercare_view(kind=kind, members=members, viewer=viewer, consented=set(consented),
                              started=list(started), now=NOW)

    assert not view("family", family, ana).offered and not view("family", family, zoe).offered
    assert not view("couple", [*couple, {"member_id": zoe, "role": "child"}], zoe).offered
    nobody = view("couple", couple, ana)
    assert nobody.offered and not nobody.mine and not nobody.partner_asked and not nobody.ready
    assert nobody.title == "A moment for the two of you"  # the discreet title, never the catalog's own
    asked = view("couple", couple, ben, {ana})
    assert asked.partner_asked and not asked.ready
    assert view("couple", couple, ana, {ana, ben}).ready
    card = view("couple", couple, ben, {ana, ben}, [((ana, ben), NOW - timedelta(hours=1))])
    assert card.active
    assert not view("couple", couple, ben, {ana, ben}, [((ana, ben), NOW - timedelta(hours=7))]).active


async def test_both_say_yes_then_the_button_starts_it_privately(harness: Harness) -> None:
    ana, ben = harness.browser(), harness.browser()
    household_id, ana_id = await started(harness, ana)
    link = await invite_link(ana)
    await ben.submit(link, link, {"your_name": "Ben"})
    ben_id = harness.commands.sent[-1][1].member_id
    assert "We just connected" not in (await ana.get("/today")).text
    rituals = (await ana.get("/rituals")).text
    assert "Yes, I'd like this<" in rituals and "Your partner would like" not in rituals

    assert (await ana.submit("/rituals", "/aftercare/consent", {"given": "yes"})).status_code == 303
    assert harness.checkins.posts[-1][1:] == (ana_id, "aftercare/consent", {"member_id": str(ana_id), "given": True})
    # Ben learns only that something private awaits (the named offer is the catalog's, the same for everyone).
    await fact(harness, AfterCareConsentChanged(member_id=ana_id, given=True, changed_at=harness.clock.now()),
               household_id, producer="checkins")
    assert "Your partner would like to add something private" in (await ben.get("/rituals")).text
    assert (await ana.submit("/today", "/aftercare", {})).status_code == 404  # not both yet: no button
    await ben.submit("/rituals", "/aftercare/consent", {"given": "yes"})
    await fact(harness, AfterCareConsentChanged(member_id=ben_id, given=True, changed_at=harness.clock.now()),
               household_id, producer="checkins")

    today = (await ana.get("/today")).text
    assert "We just connected" in today
    assert (await ana.submit("/today", "/aftercare", {})).status_code == 303
    assert harness.checkins.posts[-1][2] == "aftercare"
    moment_id = UUID(harness.checkins.posts[-1][3]["moment_id"])
    assert "A moment for the two of you" in (await ana.get("/today")).text
    await fact(harness, AfterCareStarted(moment_id=moment_id, started_by=ana_id, partner_id=ben_id,
                                         started_at=harness.clock.now()), household_id, producer="checkins")
    ben_today = (await ben.get("/today")).text
    assert "A moment for the two of you" in ben_today and "Intimacy doesn" in ben_today
    harness.clock.advance(hours=7)
    assert "A moment for the two of you" not in (await ben.get("/today")).text


async def test_a_child_and_another_household_never_see_it(harness: Harness) -> None:
    home = await family_with_a_child(harness)
    parent, zoe = home.parent, home.child
    posts = len(harness.checkins.posts)
    for browser in (parent, zoe):
        for page in ("/today", "/rituals"):
            text = (await browser.get(page)).text
            assert "We just connected" not in text and "two of you" not in text and "Intimacy" not in text
        assert (await browser.submit("/dreams", "/aftercare/consent", {"given": "yes"})).status_code == 404
        assert (await browser.submit("/dreams", "/aftercare", {})).status_code == 404
    assert len(harness.checkins.posts) == posts


def test_no_service_turns_it_into_a_notification() -> None:
    from attune_notifier.handlers import ACCEPTED_TYPES

    assert not {t for t in ACCEPTED_TYPES if "aftercare" in t}
