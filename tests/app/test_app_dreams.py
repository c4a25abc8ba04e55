"""The dreams board: its pure views (who sees what, the words of a celebration) and the pages over HTTP with the
real store and a fake check-ins API that records what it was sent; each refusal (another household's dream, one's
own dream to support, the partner's dream to reach, a child and the grown-ups' dreams), and check-ins down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from attune_app.dreams import Achievement, Dream, board_views, celebrations
from attune_contracts.messages import (
    AchievementRecorded,
    DreamShared,
    DreamSupported,
    MemberRole,
    MemberUpserted,
)

from .conftest import Browser, Harness
from .families import family_with_a_child
from .test_app_http import fact, invite_link, started

pytestmark = [pytest.mark.unit]

NOW = datetime(2026, 6, 3, 17, 0, tzinfo=UTC)


def test_the_board_as_each_person_sees_it() -> None:
    ana, ben, zoe = uuid4(), uuid4(), uuid4()
    names = {ana: "Ana", ben: "Ben", zoe: "Zoe"}
    walk = Dream(uuid4(), ana, "Walk the Camino", NOW)
    bike = Dream(uuid4(), zoe, "Ride without stabilisers", NOW, reached_at=NOW - timedelta(days=1))
    supports = {walk.dream_id: {ben}}
    as_ben = board_views([walk, bike], supports, names, ben, child=False)
    assert [(v.owner, v.mine, v.supporters, v.may_support, v.i_support, v.may_reach) for v in as_ben] == [
        ("Ana", False, ["You"], False, True, False), ("Zoe", False, [], False, False, False)]  # reached: done
    as_ana = board_views([walk, bike], supports, names, ana, child=False)
    assert (as_ana[0].owner, as_ana[0].supporters, as_ana[0].may_support, as_ana[0].may_reach) == (
        "You", ["Ben"], False, True)
    as_zoe = board_views([walk, bike], supports, names, zoe, child=True)
    assert [v.text for v in as_zoe] == ["Ride without stabilisers"]  # a child sees only their own


def test_celebrations_name_who_reached_what_for_two_weeks() -> None:
    ana, ben = uuid4(), uuid4()
    names = {ana: "Ana", ben: "Ben"}
    reached = Dream(uuid4(), ana, "Run 10 km", NOW - timedelta(days=20), reached_at=NOW - timedelta(days=2))
    old = Dream(uuid4(), ana, "Learn Greek", NOW - timedelta(days=90), reached_at=NOW - timedelta(days=30))
    step = Achievement(uuid4(), ben, "Write a book", NOW - timedelta(days=1))
    assert celebrations([reached, old], [step], names, ben, NOW, child=False) == [
        "You moved a dream forward: \u201cWrite a book\u201d. Well done!",
        "Ana reached a dream: \u201cRun 10 km\u201d. Celebrate it together!"]
    assert celebrations([reached], [step], names, ana, NOW, child=True) == [
        "You reached a dream: \u201cRun 10 km\u201d. Well done!"]


async def _couple(h: Harness) -> tuple[UUID, UUID, UUID, Browser, Browser]:
    ana, ben = h.browser(), h.browser()
    household_id, ana_id = await started(h, ana)
    link = await invite_link(ana)
    await ben.submit(link, link, {"your_name": "Ben"})
    ben_id = h.commands.sent[-1][1].member_id
    return household_id, ana_id, ben_id, ana, ben


async def test_share_support_and_reach_through_the_checkins_api_as_oneself(harness: Harness) -> None:
    household_id, ana_id, ben_id, ana, ben = await _couple(harness)
    shared = await ana.submit("/dreams", "/dreams", {"dream": "  Walk the Camino  ", "note": "since 2019"})
    assert shared.status_code == 303
    hid, member, path, body = harness.checkins.posts[-1]
    assert (hid, member, path, body["member_id"], body["dream"], body["note"]) == (
        household_id, ana_id, "dreams", str(ana_id), "Walk the Camino", "since 2019")
    dream_id = body["dream_id"]
    page = (await ben.get("/dreams")).text
    assert "Walk the Camino" in page and "Ana&#39;s dream" in page and "I support this" in page
    assert "since 2019" not in page  # the note is its author's
    assert (await ben.submit("/dreams", f"/dreams/{dream_id}/support", {})).status_code == 303
    assert harness.checkins.posts[-1][1:] == (ben_id, f"dreams/{dream_id}/support", {"member_id": str(ben_id)})
    assert "Ben supports this" in (await ana.get("/dreams")).text
    assert (await ana.submit("/dreams", f"/dreams/{dream_id}/reached", {})).status_code == 303
    assert harness.checkins.posts[-1][1:] == (ana_id, f"dreams/{dream_id}/reached", {"member_id": str(ana_id)})
    assert "Ana reached a dream: \u201cWalk the Camino\u201d. Celebrate it together!" in (await ben.get("/dreams")).text


async def test_refusals_send_nothing(harness: Harness) -> None:
    _household_id, _ana_id, _ben_id, ana, ben = await _couple(harness)
    await ana.submit("/dreams", "/dreams", {"dream": "A garden"})
    dream_id = harness.checkins.posts[-1][3]["dream_id"]
    cleo = harness.browser()
    await started(harness, cleo, name="Cleo & Dan", you="Cleo")
    posts = len(harness.checkins.posts)
    assert (await cleo.submit("/dreams", f"/dreams/{dream_id}/support", {})).status_code == 404  # other household
    assert "A garden" not in (await cleo.get("/dreams")).text
    assert (await ana.submit("/dreams", f"/dreams/{dream_id}/support", {})).status_code == 404  # her own
    assert (await ben.submit("/dreams", f"/dreams/{dream_id}/reached", {})).status_code == 404  # not his
    assert (await ben.submit("/dreams", "/dreams", {"dream": "   "})).status_code == 422
    assert (await ben.submit("/dreams", "/dreams", {"dream": "x" * 201})).status_code == 422
    no_token = await ben.client.post(f"/dreams/{dream_id}/support", data={"csrf": "0" * 64})
    assert no_token.status_code == 403
    assert len(harness.checkins.posts) == posts


async def test_while_checkins_is_down_nothing_is_shown_as_saved(harness: Harness) -> None:
    _, _, _, ana, _ = await _couple(harness)
    harness.checkins.down = True
    response = await ana.submit("/dreams", "/dreams", {"dream": "Sail to the islands"})
    assert response.status_code == 503 and "nothing was sent or saved" in response.text
    assert "Sail to the islands" not in (await ana.get("/dreams")).text


async def test_the_board_is_built_from_checkins_events_and_a_redelivery_changes_nothing(harness: Harness) -> None:
    household_id, ana_id, ben_id, ana, _ben = await _couple(harness)
    for member_id, name in ((ana_id, "Ana"), (ben_id, "Ben")):
        await fact(harness, MemberUpserted(member_id=member_id, display_name=name, role=MemberRole.PARTNER,
                                           time_zone="Europe/Lisbon"), household_id)
    dream_id, now = uuid4(), harness.clock.now()
    events = [DreamShared(dream_id=dream_id, member_id=ben_id, dream="Learn the cello", shared_at=now),
              DreamSupported(dream_id=dream_id, owner_id=ben_id, member_id=ana_id, supported_at=now),
              AchievementRecorded(achievement_id=uuid4(), member_id=ben_id, dream="Learn the cello", dream_id=dream_id),
              AchievementRecorded(achievement_id=uuid4(), member_id=ana_id, dream="Speak Greek")]
    for event in events + events:
        await fact(harness, event, household_id, producer="checkins")
    page = (await ana.get("/dreams")).text
    assert page.count("Learn the cello</strong>") == 1 and "You support this" in page
    assert "Ben reached a dream: \u201cLearn the cello\u201d" in page
    assert page.count("You moved a dream forward: \u201cSpeak Greek\u201d") == 1


async def test_a_child_sees_a_childs_board_and_not_the_grown_ups_dreams(harness: Harness) -> None:
    home = await family_with_a_child(harness)
    parent, zoe = home.parent, home.child
    await parent.submit("/dreams", "/dreams", {"dream": "A quiet weekend away, just us"})
    grown_up_dream = harness.checkins.posts[-1][3]["dream_id"]
    await zoe.submit("/dreams", "/dreams", {"dream": "Ride without stabilisers"})
    page = (await zoe.get("/dreams")).text
    assert "My dreams" in page and "Ride without stabilisers" in page and "weekend away" not in page
    posts = len(harness.checkins.posts)
    # Not shown, so not hers to act on either, even by its id.
    assert (await zoe.submit("/dreams", f"/dreams/{grown_up_dream}/support", {})).status_code == 404
    assert len(harness.checkins.posts) == posts
    parent_page = (await parent.get("/dreams")).text
    assert "Ride without stabilisers" in parent_page and "Zoe&#39;s dream" in parent_page
