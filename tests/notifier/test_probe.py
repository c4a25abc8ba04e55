"""'Send me a test': through the normal delivery path to a real local sink (Apprise's json://), with its outcome
recorded and published; only for oneself; rate limited per member; quiet hours honoured (and said)."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from attune_contracts.credentials import development_issuer, verifier_from_setting
from attune_notifier.api import build_http_app
from attune_notifier.probe import BODY
from attune_runtime.testing import FakeClock

from .conftest import ANA, BEN, HOUSEHOLD, HttpSink, utc
from .harness import Harness, make_harness, run_until_settled

pytestmark = [pytest.mark.integration]


def member_auth(member, household=HOUSEHOLD) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {development_issuer().member(household, member, now=utc(2026, 11, 26, 9))}"}


@pytest.fixture
async def h(tmp_path: Path):
    harness = await make_harness(f"sqlite+aiosqlite:///{tmp_path}/probe.db", FakeClock(utc(2026, 11, 26, 9)))
    await harness.member(ANA, "Ana")
    await harness.member(BEN, "Ben")
    yield harness
    await harness.close()


@pytest.fixture
async def client(h: Harness):
    woken: list[int] = []
    app = build_http_app(h.store, h.metrics, verifier=verifier_from_setting(None, development=True, setting="keys"),
                         clock=h.clock, wake=lambda: woken.append(1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as c:
        c.woken = woken  # type: ignore[attr-defined]
        yield c


async def test_a_test_goes_through_the_normal_path_and_says_how_it_went(
    h: Harness, client: httpx.AsyncClient, http_sink: HttpSink
) -> None:
    await h.channel(ANA, http_sink.url("json", "ana"))
    asked = await client.post(f"/v1/members/{ANA}/test", headers=member_auth(ANA))
    assert asked.status_code == 202 and asked.json()["status"] == "pending" and client.woken == [1]  # type: ignore[attr-defined]
    test_id = asked.json()["notification_id"]
    await run_until_settled(h)
    [received] = http_sink.received
    assert BODY in received.json["message"]
    outcome = (await client.get(f"/v1/members/{ANA}/test/{test_id}", headers=member_auth(ANA))).json()
    assert (outcome["status"], outcome["words"], outcome["channel_kind"], outcome["attempts"]) == (
        "sent", "sent", "push", 1)
    assert "127.0.0.1" not in str(outcome)  # never the channel's address
    [sent] = h.publisher.events("notification_sent")
    assert sent["payload"]["purpose"] == "test" and sent["payload"]["member_id"] == str(ANA)


async def test_without_a_working_channel_it_says_so(h: Harness, client: httpx.AsyncClient) -> None:
    test_id = (await client.post(f"/v1/members/{ANA}/test", headers=member_auth(ANA))).json()["notification_id"]
    await run_until_settled(h)
    outcome = (await client.get(f"/v1/members/{ANA}/test/{test_id}", headers=member_auth(ANA))).json()
    assert outcome["status"] in ("dead", "dropped") and outcome["status"] != "sent"


async def test_quiet_hours_hold_a_test_too(h: Harness, client: httpx.AsyncClient, http_sink: HttpSink) -> None:
    await h.channel(ANA, http_sink.url("json", "ana"))
    await h.store.update_preferences(ANA, {"quiet_start": "08:00", "quiet_end": "10:00"}, h.clock.now())
    test_id = (await client.post(f"/v1/members/{ANA}/test", headers=member_auth(ANA))).json()["notification_id"]
    await h.worker.drain()
    outcome = (await client.get(f"/v1/members/{ANA}/test/{test_id}", headers=member_auth(ANA))).json()
    # Quiet hours until 10:00 would hold it past its 15 minutes: not sent, and it says why.
    assert (outcome["status"], outcome["words"], outcome["reason"]) == ("dropped", "not sent", "stale")
    assert "quiet hours" in outcome["why"] and http_sink.received == []


async def test_only_for_oneself_and_rate_limited(h: Harness, client: httpx.AsyncClient) -> None:
    household = {"Authorization": f"Bearer {development_issuer().household(HOUSEHOLD, now=utc(2026, 11, 26, 9))}"}
    assert (await client.post(f"/v1/members/{ANA}/test", headers=household)).status_code == 403
    assert (await client.post(f"/v1/members/{ANA}/test", headers=member_auth(BEN))).status_code == 403
    other = uuid4()
    stranger = await client.post(f"/v1/members/{ANA}/test", headers=member_auth(ANA, other))
    assert stranger.status_code == 403
    test_id = (await client.post(f"/v1/members/{ANA}/test", headers=member_auth(ANA))).json()["notification_id"]
    assert (await client.get(f"/v1/members/{BEN}/test/{test_id}", headers=member_auth(BEN))).status_code == 404
    assert (await client.get(f"/v1/members/{ANA}/test/{test_id}", headers=member_auth(BEN))).status_code == 403
    statuses = [(await client.post(f"/v1/members/{ANA}/test", headers=member_auth(ANA))).status_code
                for _ in range(3)]
    assert statuses == [202, 202, 429]  # three in a burst (one above), then wait
    assert len([d for d in await h.store.deliveries_for(ANA) if d.purpose == "test"]) == 3
