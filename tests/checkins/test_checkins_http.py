"""The HTTP API and one-tap link pages, in process (httpx ASGITransport), over the real store on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from attune_checkins.config import Settings
from attune_contracts.credentials import development_issuer
from attune_contracts.links import LinkAction, LinkSigner
from attune_contracts.messages import CheckInRecorded, CheckInSource, CheckInStatus, MomentLogged

from .conftest import KEYS, Api, FakeSink

pytestmark = [pytest.mark.unit]

# ---- one-tap links ------------------------------------------------------------------------------


async def test_a_valid_link_shows_a_page_then_records_once(api: Api) -> None:
    token = api.mint()
    page = await api.client.get(f"/l/{token}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert 'name="viewport"' in page.text and page.text.count('name="closeness"') == 6
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert api.h.sink.published == []  # opening the page (or a link preview fetching it) records nothing

    done = await api.client.post(f"/l/{token}", content="closeness=4",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "Recorded" in done.text and "4 of 5" in done.text
    [recorded] = api.h.sink.of(CheckInRecorded)
    assert (recorded.member_id, recorded.status, recorded.closeness, recorded.source) == (
        api.h.ana, CheckInStatus.DONE, 4, CheckInSource.LINK)

    again = await api.client.post(f"/l/{token}", content="closeness=5",
                                  headers={"content-type": "application/x-www-form-urlencoded"})
    reopened = await api.client.get(f"/l/{token}")
    assert again.status_code == 409 and reopened.status_code == 409 and "already been used" in again.text
    assert len(api.h.sink.of(CheckInRecorded)) == 1
    assert api.failures("replayed") == 2
    history, _ = await api.parts.service.history(api.h.household, page=1, page_size=5)
    assert [(c.status, c.closeness) for c in history] == [(CheckInStatus.DONE, 4)]


async def test_a_link_tapped_before_its_ritual_due_arrives_waits_for_it(api: Api) -> None:
    early = api.h.due(uuid4(), datetime(2027, 3, 2, 1, 40, tzinfo=UTC))
    token = api.mint(occurrence=early.occurrence_id)

    async def arrives_a_moment_later() -> None:
        await asyncio.sleep(0.2)
        await api.h.send(early)

    page, _ = await asyncio.gather(api.client.get(f"/l/{token}"), arrives_a_moment_later())
    assert page.status_code == 200 and "Evening attunement" in page.text
    done = await api.client.post(f"/l/{token}", content="closeness=5",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "Recorded" in done.text
    assert [r.occurrence_id for r in api.h.sink.of(CheckInRecorded)] == [early.occurrence_id]
    assert api.failures("unknown_occurrence") == 0


async def test_skip_and_snooze_links(api: Api) -> None:
    skipped = await api.client.post(f"/l/{api.mint(LinkAction.SKIP, member=api.h.ben)}")
    snoozed = await api.client.post(f"/l/{api.mint(LinkAction.SNOOZE)}")
    assert skipped.status_code == 200 and snoozed.status_code == 200
    by_member = {r.member_id: r for r in api.h.sink.of(CheckInRecorded)}
    assert by_member[api.h.ben].status is CheckInStatus.SKIPPED
    assert by_member[api.h.ana].status is CheckInStatus.SNOOZED
    assert by_member[api.h.ana].snoozed_until == api.h.clock.now() + timedelta(minutes=60)


async def test_a_link_signed_with_the_previous_key_still_works(api: Api) -> None:
    old = LinkSigner(KEYS, "k0")
    response = await api.client.post(f"/l/{api.mint(signer=old)}")
    assert response.status_code == 200 and len(api.h.sink.of(CheckInRecorded)) == 1


async def test_refused_links_get_clear_pages_and_are_counted(api: Api) -> None:
    good = api.mint()
    kid, _, body = good.partition(".")
    tampered = f"{kid}.{body[:-3]}{'A' if body[-3] != 'A' else 'B'}{body[-2:]}"
    signature = body.rpartition(".")[2]
    other_claims = LinkSigner({"k1": "an-entirely-different-secret"}, "k1").mint(
        household_id=api.h.household, occurrence_id=api.due.occurrence_id, member_id=api.h.ben,
        action=LinkAction.DONE, now=api.h.clock.now())
    swapped = f"{kid}.{other_claims.partition('.')[2].rpartition('.')[0]}.{signature}"
    cases = [
        ("forged", "k1.eyJ0b2tlbl9pZCI6ICJ4In0.c2lnbmF0dXJl", 400, "bad_signature", "changed"),
        ("garbage", "not-a-link", 400, "malformed", "incomplete"),
        ("tampered", tampered, 400, "bad_signature", "changed"),
        ("claims swapped", swapped, 400, "bad_signature", "changed"),
        ("wrong key, same id", other_claims, 400, "bad_signature", "changed"),
        ("unknown key id", LinkSigner({"k9": "some-other-secret-123456"}, "k9").mint(
            household_id=api.h.household, occurrence_id=api.due.occurrence_id, member_id=api.h.ana,
            action=LinkAction.DONE), 400, "unknown_key", "key"),
        ("expired", api.mint(now=api.h.clock.now() - timedelta(hours=2), ttl=timedelta(hours=1)), 410, "expired",
         "expired"),
        ("unknown occurrence", api.mint(occurrence=uuid4()), 404, "unknown_occurrence", "could not find"),
    ]
    for name, token, status, reason, words in cases:
        before = api.failures(reason)
        for method in ("GET", "POST"):
            response = await api.client.request(method, f"/l/{token}")
            assert response.status_code == status, (name, method, response.text)
            assert words in response.text and "<h1>" in response.text, name
        assert api.failures(reason) == before + 2, name
    assert api.h.sink.published == []


async def test_a_bad_rating_or_a_late_tap_is_refused_without_using_the_link(api: Api) -> None:
    token = api.mint()
    bad = await api.client.post(f"/l/{token}", content="closeness=9",
                                headers={"content-type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 400 and "1 to 5" in bad.text and api.failures("bad_rating") == 1
    api.h.clock.set(api.due.deadline + timedelta(minutes=1))
    # Its links outlive the deadline: a late tap says so in words (no form the service would refuse with a
    # timestamp), and what is recorded.
    opened = await api.client.get(f"/l/{token}")
    late = await api.client.post(f"/l/{token}")
    for page in (opened, late):
        assert page.status_code == 410 and "Check-ins for it were open until" in page.text, page.text
        assert "Nothing is recorded for you yet." in page.text and "closeness" not in page.text
    assert api.h.sink.published == [] and api.failures("closed") == 2 and api.failures("rejected") == 0


async def test_link_routes_through_the_service_app(tmp_path: Path) -> None:
    from attune_checkins.bootstrap import build_app

    settings = Settings(environment="development", database_url=f"sqlite+aiosqlite:///{tmp_path}/app.db")
    app = build_app(settings, sink=FakeSink())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as client:
        assert (await client.get("/l/nope")).status_code == 400
        assert (await client.get("/healthz")).status_code == 200
        metrics = await client.get("/metrics")
        assert 'attune_checkins_link_failures_total{reason="malformed"} 1.0' in metrics.text
    await app.checkins.store.close()  # type: ignore[attr-defined]


# ---- JSON API -----------------------------------------------------------------------------------


async def test_requests_need_a_credential_of_the_household(api: Api) -> None:
    url = f"/v1/households/{api.h.household}/summary"
    missing = await api.client.get(url)
    assert missing.status_code == 401 and "Authorization" in missing.json()["error"]
    other = development_issuer().household(uuid4(), now=api.h.clock.now())
    wrong = await api.client.get(url, headers={"Authorization": f"Bearer {other}"})
    assert wrong.status_code == 403 and "needs a household or member credential" in wrong.json()["error"]
    assert (await api.client.get(url, headers=api.headers)).status_code == 200


async def test_submit_history_moment_summary_and_export(api: Api) -> None:
    base = f"/v1/households/{api.h.household}"
    body = {"occurrence_id": str(api.due.occurrence_id), "member_id": str(api.h.ana), "status": "done",
            "closeness": 5, "note": "long walk <3"}
    created = await api.client.post(f"{base}/checkins", json=body, headers=api.headers)
    assert created.status_code == 201 and created.json()["outcome"] == "new"
    same = await api.client.post(f"{base}/checkins", json=body, headers=api.headers)
    assert same.status_code == 200 and same.json()["outcome"] == "unchanged"
    ben = {**body, "member_id": str(api.h.ben), "status": "skipped", "closeness": None, "note": None}
    assert (await api.client.post(f"{base}/checkins", json=ben, headers=api.headers)).status_code == 201
    assert [r.source for r in api.h.sink.of(CheckInRecorded)] == [CheckInSource.API, CheckInSource.API]

    page1 = (await api.client.get(f"{base}/checkins?page=1&page_size=1", headers=api.headers)).json()
    page2 = (await api.client.get(f"{base}/checkins?page=2&page_size=1", headers=api.headers)).json()
    assert page1["total"] == 2 and page1["next_page"] == 2 and page2["next_page"] is None
    assert {page1["items"][0]["member_id"], page2["items"][0]["member_id"]} == {str(api.h.ana), str(api.h.ben)}

    moment_id = str(uuid4())
    moment = {"member_id": str(api.h.ben), "kind": "positive", "note": "made coffee", "moment_id": moment_id}
    assert (await api.client.post(f"{base}/moments", json=moment, headers=api.headers)).status_code == 201
    assert (await api.client.post(f"{base}/moments", json=moment, headers=api.headers)).json()["created"] is False
    assert len(api.h.sink.of(MomentLogged)) == 1

    summary = (await api.client.get(f"{base}/summary", headers=api.headers)).json()
    assert summary["ratio"] == {"window_days": 14, "positive": 1, "negative": 0, "ratio": None}
    assert summary["streaks"][0]["length"] == 1 and summary["this_week"]["week_start"] == "2027-03-01"

    # Private notes go to their author only: the household credential sees none, each member its own.
    exported = (await api.client.get(f"{base}/export", headers=api.headers)).json()
    assert [c["note"] for c in exported["checkins"]] == [None, None]
    assert [m["note"] for m in exported["moments"]] == [None]
    as_ana = {"Authorization": f"Bearer {development_issuer().member(api.h.household, api.h.ana, now=api.h.clock.now())}"}
    exported = (await api.client.get(f"{base}/export", headers=as_ana)).json()
    assert sorted(c["note"] or "" for c in exported["checkins"]) == ["", "long walk <3"]
    assert [m["note"] for m in exported["moments"]] == [None]


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"closeness": 9}, 422, "closeness: Input should be less than or equal to 5"),
        ({"note": "x" * 2001}, 422, "note: String should have at most 2000 characters"),
        ({"occurrence_id": "00000000-0000-4000-8000-000000000000"}, 422, "unknown occurrence"),
        ({"member_id": "00000000-0000-4000-8000-000000000001"}, 422, "is not in this household"),
        ({"status": "snoozed"}, 422, "snoozed_until is required"),
        ({"status": "maybe"}, 422, "status: Input should be"),
    ],
)
async def test_bad_submissions_say_what_is_wrong(api: Api, change: dict, status: int, words: str) -> None:
    body = {"occurrence_id": str(api.due.occurrence_id), "member_id": str(api.h.ana), "status": "done", **change}
    response = await api.client.post(f"/v1/households/{api.h.household}/checkins", json=body, headers=api.headers)
    assert response.status_code == status and words in response.json()["error"], response.text
    assert await api.h.count("checkins") == 0 and api.h.sink.published == []


async def test_invalid_json_body_is_a_clear_422(api: Api) -> None:
    response = await api.client.post(f"/v1/households/{api.h.household}/checkins", content=b"{not json",
                                     headers={**api.headers, "content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["error"]


async def test_unknown_household_is_404_and_the_openapi_document_exists(api: Api) -> None:
    stranger = uuid4()
    headers = {"Authorization": f"Bearer {development_issuer().household(stranger, now=api.h.clock.now())}"}
    response = await api.client.get(f"/v1/households/{stranger}/summary", headers=headers)
    assert response.status_code == 404 and "not known" in response.json()["error"]
    spec = (await api.client.get("/openapi.json")).json()
    assert "/v1/households/{household_id}/checkins" in spec["paths"]
