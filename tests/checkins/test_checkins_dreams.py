"""The dreams board over the check-ins API, in process over the real store: share, support, reach, and every
refusal (someone else's name, one's own dream, another household's dream, a reach by the partner)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from attune_checkins.dreams import Dream, achievement_id_of, reach_refusal, support_refusal
from attune_contracts.credentials import development_issuer
from attune_contracts.messages import AchievementRecorded, DreamShared, DreamSupported, HouseholdErased

from .conftest import Api

pytestmark = [pytest.mark.unit]


def as_member(api: Api, member: UUID, household: UUID | None = None) -> dict[str, str]:
    token = development_issuer().member(household or api.h.household, member, now=api.h.clock.now())
    return {"Authorization": f"Bearer {token}"}


def test_the_rules_of_support_and_reach() -> None:
    ana, ben = uuid4(), uuid4()
    dream = Dream(uuid4(), uuid4(), ana, "Walk the Camino", None, datetime(2027, 3, 1, tzinfo=UTC))
    assert support_refusal(dream, ben) is None and "not by its owner" in (support_refusal(dream, ana) or "")
    assert reach_refusal(dream, ana) is None and "only the person" in (reach_refusal(dream, ben) or "")
    assert achievement_id_of(dream.dream_id) == achievement_id_of(dream.dream_id) != achievement_id_of(uuid4())


async def test_share_support_and_reach_a_dream(api: Api) -> None:
    base = f"/v1/households/{api.h.household}/dreams"
    ana, ben = as_member(api, api.h.ana), as_member(api, api.h.ben)
    dream_id = str(uuid4())
    body = {"member_id": str(api.h.ana), "dream": "  Walk the Camino together  ", "note": "since 2019",
            "dream_id": dream_id}
    shared = await api.client.post(base, json=body, headers=ana)
    assert shared.status_code == 201 and shared.json() == {"dream_id": dream_id, "created": True}
    assert (await api.client.post(base, json=body, headers=ana)).json()["created"] is False  # a retry
    [event] = api.h.sink.of(DreamShared)
    assert (event.dream_id, event.member_id, event.dream) == (UUID(dream_id), api.h.ana, "Walk the Camino together")
    async with api.h.store.engine.connect() as conn:
        from sqlalchemy import text

        stored = (await conn.execute(text("SELECT dream_enc FROM dreams"))).scalar_one()
    assert b"Camino" not in stored  # sealed at rest like notes

    supported = await api.client.post(f"{base}/{dream_id}/support", json={"member_id": str(api.h.ben)}, headers=ben)
    again = await api.client.post(f"{base}/{dream_id}/support", json={"member_id": str(api.h.ben)}, headers=ben)
    assert supported.status_code == 201 and again.status_code == 200 and again.json()["changed"] is False
    [support] = api.h.sink.of(DreamSupported)
    assert (support.owner_id, support.member_id) == (api.h.ana, api.h.ben)

    reached = await api.client.post(f"{base}/{dream_id}/reached", json={"member_id": str(api.h.ana)}, headers=ana)
    twice = await api.client.post(f"{base}/{dream_id}/reached", json={"member_id": str(api.h.ana)}, headers=ana)
    assert reached.status_code == 201 and twice.status_code == 200
    [achievement] = api.h.sink.of(AchievementRecorded)
    assert (achievement.member_id, achievement.dream, str(achievement.dream_id)) == (
        api.h.ana, "Walk the Camino together", dream_id)
    assert await api.h.count("achievements") == 1  # it counts in the weekly summary like any achievement


async def test_refusals(api: Api) -> None:
    base = f"/v1/households/{api.h.household}/dreams"
    ana, ben = as_member(api, api.h.ana), as_member(api, api.h.ben)
    dream_id = str(uuid4())
    await api.client.post(base, json={"member_id": str(api.h.ana), "dream": "A garden", "dream_id": dream_id},
                          headers=ana)
    published = len(api.h.sink.published)
    # Ben cannot share in Ana's name, nor support as her.
    as_ana = await api.client.post(base, json={"member_id": str(api.h.ana), "dream": "x"}, headers=ben)
    assert as_ana.status_code == 403
    own = await api.client.post(f"{base}/{dream_id}/support", json={"member_id": str(api.h.ana)}, headers=ana)
    assert own.status_code == 422 and "not by its owner" in own.json()["error"]
    by_partner = await api.client.post(f"{base}/{dream_id}/reached", json={"member_id": str(api.h.ben)}, headers=ben)
    assert by_partner.status_code == 422 and "only the person" in by_partner.json()["error"]
    unknown = await api.client.post(f"{base}/{uuid4()}/support", json={"member_id": str(api.h.ben)}, headers=ben)
    assert unknown.status_code == 404
    empty = await api.client.post(base, json={"member_id": str(api.h.ana), "dream": "   "}, headers=ana)
    assert empty.status_code == 422 and "dream" in empty.json()["error"]
    nul = await api.client.post(base, json={"member_id": str(api.h.ana), "dream": "a\x00b"}, headers=ana)
    assert nul.status_code == 422 and "NUL" in nul.json()["error"]
    # Another household's member with their own valid credential: refused for this household, and their own
    # household does not hold this dream.
    cleo, other = uuid4(), uuid4()
    foreign = await api.client.post(f"{base}/{dream_id}/support", json={"member_id": str(cleo)},
                                    headers=as_member(api, cleo, other))
    assert foreign.status_code in (401, 403)
    theirs = await api.client.post(f"/v1/households/{other}/dreams/{dream_id}/support",
                                   json={"member_id": str(cleo)}, headers=as_member(api, cleo, other))
    assert theirs.status_code == 422 and "unknown here" in theirs.json()["error"]
    assert len(api.h.sink.published) == published


async def test_erasing_the_household_removes_its_dreams(api: Api) -> None:
    base = f"/v1/households/{api.h.household}/dreams"
    ana, ben = as_member(api, api.h.ana), as_member(api, api.h.ben)
    dream_id = str(uuid4())
    await api.client.post(base, json={"member_id": str(api.h.ana), "dream": "A garden", "dream_id": dream_id},
                          headers=ana)
    await api.client.post(f"{base}/{dream_id}/support", json={"member_id": str(api.h.ben)}, headers=ben)
    await api.h.send(HouseholdErased(erased_at=api.h.clock.now()))
    assert await api.h.count("dreams") == 0 and await api.h.count("dream_supports") == 0


async def test_the_export_holds_the_board_and_the_after_care_with_notes_for_their_author_only(api: Api) -> None:
    base = f"/v1/households/{api.h.household}"
    ana, ben = as_member(api, api.h.ana), as_member(api, api.h.ben)
    dream_id = str(uuid4())
    await api.client.post(f"{base}/dreams", json={"member_id": str(api.h.ana), "dream": "A garden", "note": "roses",
                                                  "dream_id": dream_id}, headers=ana)
    await api.client.post(f"{base}/dreams/{dream_id}/support", json={"member_id": str(api.h.ben)}, headers=ben)
    for member, headers in ((api.h.ana, ana), (api.h.ben, ben)):
        await api.client.post(f"{base}/aftercare/consent", json={"member_id": str(member), "given": True},
                              headers=headers)
    await api.client.post(f"{base}/aftercare", json={"member_id": str(api.h.ana)}, headers=ana)
    as_ana = (await api.client.get(f"{base}/export", headers=ana)).json()
    as_ben = (await api.client.get(f"{base}/export", headers=ben)).json()
    assert [(d["dream"], d["note"]) for d in as_ana["dreams"]] == [("A garden", "roses")]
    assert [(d["dream"], d["note"], d["note_withheld"]) for d in as_ben["dreams"]] == [("A garden", None, True)]
    assert [s["supporter_id"] for s in as_ana["dream_supports"]] == [str(api.h.ben)]
    assert sorted(as_ana["aftercare"]["consented"]) == sorted([str(api.h.ana), str(api.h.ben)])
    assert [m["started_by"] for m in as_ben["aftercare"]["started"]] == [str(api.h.ana)]
