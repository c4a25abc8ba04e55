"""'We just connected' over the check-ins API, in process over the real store: it starts only once both partners
said yes themselves; one's own yes only; another household's member is refused; nothing of it is a notification."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from attune_checkins.aftercare import partner_of
from attune_checkins.service import Rejected
from attune_contracts.credentials import development_issuer
from attune_contracts.messages import AfterCareConsentChanged, AfterCareStarted, HouseholdErased

from .conftest import Api

pytestmark = [pytest.mark.unit]


def as_member(api: Api, member: UUID, household: UUID | None = None) -> dict[str, str]:
    token = development_issuer().member(household or api.h.household, member, now=api.h.clock.now())
    return {"Authorization": f"Bearer {token}"}


def test_it_takes_exactly_two_people_who_said_yes() -> None:
    ana, ben, cleo = uuid4(), uuid4(), uuid4()
    assert partner_of(ana, {ana, ben}) == ben
    for consented, words in (({ben}, "say yes to this first"), ({ana}, "both of you"),
                             ({ana, ben, cleo}, "more than two")):
        with pytest.raises(Rejected, match=words):
            partner_of(ana, consented)


async def test_it_starts_once_both_said_yes(api: Api) -> None:
    base = f"/v1/households/{api.h.household}/aftercare"
    ana, ben = as_member(api, api.h.ana), as_member(api, api.h.ben)
    assert (await api.client.post(f"{base}/consent", json={"member_id": str(api.h.ana), "given": True},
                                  headers=ana)).json() == {"given": True, "changed": True}
    early = await api.client.post(base, json={"member_id": str(api.h.ana)}, headers=ana)
    assert early.status_code == 422 and "both of you" in early.json()["error"]
    await api.client.post(f"{base}/consent", json={"member_id": str(api.h.ben), "given": True}, headers=ben)
    again = await api.client.post(f"{base}/consent", json={"member_id": str(api.h.ben), "given": True}, headers=ben)
    assert again.json()["changed"] is False
    assert [(e.member_id, e.given) for e in api.h.sink.of(AfterCareConsentChanged)] == [
        (api.h.ana, True), (api.h.ben, True)]
    moment_id = str(uuid4())
    started = await api.client.post(base, json={"member_id": str(api.h.ben), "moment_id": moment_id}, headers=ben)
    retried = await api.client.post(base, json={"member_id": str(api.h.ben), "moment_id": moment_id}, headers=ben)
    assert started.status_code == 201 and retried.status_code == 200
    [event] = api.h.sink.of(AfterCareStarted)
    assert (event.started_by, event.partner_id) == (api.h.ben, api.h.ana)
    # Ana takes her yes back: it no longer starts.
    await api.client.post(f"{base}/consent", json={"member_id": str(api.h.ana), "given": False}, headers=ana)
    assert (await api.client.post(base, json={"member_id": str(api.h.ben)}, headers=ben)).status_code == 422


async def test_refusals(api: Api) -> None:
    base = f"/v1/households/{api.h.household}/aftercare"
    ben = as_member(api, api.h.ben)
    for_ana = await api.client.post(f"{base}/consent", json={"member_id": str(api.h.ana), "given": True}, headers=ben)
    assert for_ana.status_code == 403  # nobody says yes for someone else
    cleo, other = uuid4(), uuid4()
    foreign = await api.client.post(f"{base}/consent", json={"member_id": str(cleo), "given": True},
                                    headers=as_member(api, cleo, other))
    assert foreign.status_code in (401, 403)
    stranger = await api.client.post(f"/v1/households/{api.h.household}/aftercare/consent",
                                     json={"member_id": str(cleo), "given": True},
                                     headers=as_member(api, cleo))  # a credential naming a non-member
    assert stranger.status_code == 422 and "not in this household" in stranger.json()["error"]
    assert api.h.sink.published == []


async def test_erasure_removes_it(api: Api) -> None:
    base = f"/v1/households/{api.h.household}/aftercare"
    for member in (api.h.ana, api.h.ben):
        await api.client.post(f"{base}/consent", json={"member_id": str(member), "given": True},
                              headers=as_member(api, member))
    await api.client.post(base, json={"member_id": str(api.h.ana)}, headers=as_member(api, api.h.ana))
    await api.h.send(HouseholdErased(erased_at=api.h.clock.now()))
    assert await api.h.count("aftercare_consents") == 0 and await api.h.count("aftercare_moments") == 0
