"""The authenticated HTTP API: channels only through it, validated by Apprise, encrypted, never echoed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from attune_contracts.credentials import development_issuer, verifier_from_setting
from attune_contracts.messages import RitualReminder
from attune_notifier.adapters.tables import channels
from attune_notifier.api import build_http_app
from attune_runtime.testing import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from .conftest import ANA, BEN, HOUSEHOLD, HttpSink, utc
from .harness import Harness, make_harness, run_until_settled

pytestmark = [pytest.mark.integration]

# The household's credential (a member's own would do as well); the development key, as the harness runs.
AUTH = {"Authorization": f"Bearer {development_issuer().household(HOUSEHOLD, now=utc(2026, 11, 1, 0))}"}


@pytest.fixture
async def h(tmp_path: Path):
    harness = await make_harness(f"sqlite+aiosqlite:///{tmp_path}/api.db", FakeClock(utc(2026, 11, 26, 9)))
    await harness.member(ANA, "Ana")
    yield harness
    await harness.close()


@pytest.fixture
async def client(h: Harness):
    app = build_http_app(h.store, h.metrics, verifier=verifier_from_setting(None, development=True, setting="keys"),
                         clock=h.clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as c:
        yield c


async def test_every_route_needs_a_credential(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", f"/v1/members/{ANA}/preferences"), ("POST", f"/v1/members/{ANA}/channels"),
                         ("GET", f"/v1/members/{ANA}/export")]:
        assert (await client.request(method, path)).status_code == 401
        bad = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401


async def test_register_a_channel_stored_encrypted_and_listed_by_kind_only(
    h: Harness, client: httpx.AsyncClient, http_sink: HttpSink
) -> None:
    url = http_sink.url("json", "hook") + "?+X-Api-Key=header-secret-123456"
    response = await client.post(f"/v1/members/{ANA}/channels", json={"url": url}, headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "push" and "header-secret" not in response.text
    async with h.store.engine.connect() as conn:
        [stored] = (await conn.execute(select(channels.c.secret))).scalars().all()
    assert b"header-secret" not in stored and b"127.0.0.1" not in stored
    listed = (await client.get(f"/v1/members/{ANA}/channels", headers=AUTH)).json()
    assert [c["kind"] for c in listed] == ["push"] and "header-secret" not in str(listed)
    from .test_delivery import request

    await h.event(request())
    await run_until_settled(h)
    assert http_sink.received[0].headers["x-api-key"] == "header-secret-123456"  # the real URL was used


@pytest.mark.parametrize("url,why", [
    ("nope://secret-token-abc@host", "'nope://' is not a service Apprise knows"),
    ("twilio://ACshort:secret-token-abc@1/2", "Twilio plugin refused this URL"),
    ("just-some-secret-token-abc", "not an Apprise URL"),
    ("json://host/" + "secret-token-abc" * 200, "longer than 2048"),
])
async def test_invalid_apprise_url_is_a_422_that_says_why_without_echoing_it(
    client: httpx.AsyncClient, h: Harness, url: str, why: str
) -> None:
    response = await client.post(f"/v1/members/{ANA}/channels", json={"url": url}, headers=AUTH)
    assert response.status_code == 422
    assert why in response.text
    assert "secret-token-abc" not in response.text
    assert await h.store.list_channels(ANA) == []


async def test_unknown_member_is_a_clear_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/members/{BEN}/channels", json={"url": "ntfy://127.0.0.1/x"}, headers=AUTH)
    assert response.status_code == 404 and "unknown member" in response.json()["detail"]


async def test_preferences_round_trip_and_reject_bad_values(client: httpx.AsyncClient) -> None:
    body = {"time_zone": "America/New_York", "quiet_hours": {"start": "22:00", "end": "07:00"}, "discreet": True,
            "daily_cap": 5, "categories": {"date_night": ["sms", "push"], "weekly_summary": ["email"]}}
    response = await client.put(f"/v1/members/{ANA}/preferences", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    got = (await client.get(f"/v1/members/{ANA}/preferences", headers=AUTH)).json()
    assert {k: got[k] for k in body} == body
    assert (await client.put(f"/v1/members/{ANA}/preferences", json={"time_zone": "Mars/Olympus"},
                             headers=AUTH)).status_code == 422
    assert (await client.put(f"/v1/members/{ANA}/preferences", json={"quiet_hours": {"start": "25:00", "end": "07:00"}},
                             headers=AUTH)).status_code == 422
    cleared = await client.put(f"/v1/members/{ANA}/preferences", json={"quiet_hours": None}, headers=AUTH)
    assert cleared.json()["quiet_hours"] is None and cleared.json()["discreet"] is True


async def test_export_has_preferences_history_and_channels_by_kind_only(
    h: Harness, client: httpx.AsyncClient, http_sink: HttpSink
) -> None:
    url = http_sink.url("json", "private-path-xyz")
    assert (await client.post(f"/v1/members/{ANA}/channels", json={"url": url}, headers=AUTH)).status_code == 201
    from .test_delivery import request

    await h.event(request())
    await run_until_settled(h)
    export = (await client.get(f"/v1/members/{ANA}/export", headers=AUTH)).json()
    assert export["preferences"]["display_name"] == "Ana"
    assert export["channels"] == [{"kind": "push", "position": 0}]
    [delivery] = export["deliveries"]
    assert delivery["status"] == "sent" and delivery["channel_kind"] == "push" and delivery["attempts"] == 1
    assert "private-path-xyz" not in str(export) and "127.0.0.1" not in str(export)
    channel_id = (await client.get(f"/v1/members/{ANA}/channels", headers=AUTH)).json()[0]["channel_id"]
    assert (await client.delete(f"/v1/members/{ANA}/channels/{channel_id}", headers=AUTH)).status_code == 204
    assert (await client.delete(f"/v1/members/{ANA}/channels/{uuid4()}", headers=AUTH)).status_code == 404


# ---- hostile input: always a 4xx that says what is wrong, never a 5xx, never an echo ---------------

HOSTILE_URLS = [
    ("json://127.0.0.1/secret-token-abc\x00", "control character"),
    ("ntfy://127.0.0.1/secret-token-abc\x1b[2J", "control character"),
    ("json://127.0.0.1/secret-token-abc\x7f", "control character"),
    ("json://127.0.0.1/secret-token-abc\u200b", "invalid or invisible"),
    ("json://127.0.0.1/secret-token-abc\ue000", "invalid or invisible"),
    ("\x00json://127.0.0.1/secret-token-abc", "control character"),
]


@pytest.mark.parametrize("url,why", HOSTILE_URLS)
async def test_a_channel_url_with_nul_or_control_characters_is_a_422_that_says_so(
    client: httpx.AsyncClient, h: Harness, url: str, why: str
) -> None:
    response = await client.post(f"/v1/members/{ANA}/channels", json={"url": url}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert why in response.text and "secret-token-abc" not in response.text
    assert await h.store.list_channels(ANA) == []


@pytest.mark.parametrize("raw,why", [
    (b'{"url": "json://127.0.0.1/secret-token-abc\\ud800"}', "invalid or invisible"),  # a lone surrogate
    (b'{"url": "json://127.0.0.1/x", "position": 1e309}', "position"),
    (b'{"url": "json://127.0.0.1/x", "position": 99999999999999999999999}', "position"),
    (b'{"url": "json://127.0.0.1/x", "kind": "pigeon"}', "kind"),
    (b'{"url": 12}', "url"),
    (b'{"url": null}', "url"),
    (b'{"url": ["json://127.0.0.1/x"]}', "url"),
    (b'["json://127.0.0.1/x"]', "dict"),
    (b'{"url": "json://127.0.0.1/x", "extra": 1}', "extra"),
    (b'{"url": "json://127.0.0.1/x"', "json"),
    (b'\xff\xfe', "json"),
    (b'[' * 60_000, "json"),
    (b'[' * 100_000, "larger than 65536 bytes"),  # refused before parsing
    (b'', "body"),
])
async def test_a_hostile_channel_body_is_a_4xx_that_says_what_is_wrong(
    client: httpx.AsyncClient, h: Harness, raw: bytes, why: str
) -> None:
    response = await client.post(f"/v1/members/{ANA}/channels", content=raw,
                                 headers={**AUTH, "content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert why in response.text.lower(), response.text
    assert "secret-token-abc" not in response.text
    assert await h.store.list_channels(ANA) == []


@pytest.mark.parametrize("body", [
    {"time_zone": "Europe/London\x00"}, {"time_zone": "../../etc/passwd"}, {"time_zone": "x" * 5000},
    {"quiet_hours": {"start": "22:00\x00", "end": "07:00"}}, {"categories": {"date\x00night": ["push"]}},
    {"categories": {"*": ["pigeon"]}}, {"categories": {f"c{n}": ["push"] for n in range(100)}},
    {"daily_cap": 10**30}, {"daily_cap": -1}, {"discreet": "maybe"}, {"unknown": 1},
])
async def test_hostile_preferences_are_a_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.put(f"/v1/members/{ANA}/preferences", json=body, headers=AUTH)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("path", ["/v1/members/not-a-uuid/preferences", "/v1/members/%00/channels",
                                  f"/v1/members/{ANA}/channels/not-a-uuid"])
async def test_hostile_ids_in_the_path_are_a_4xx(client: httpx.AsyncClient, path: str) -> None:
    for method in ("GET", "DELETE", "POST", "PUT"):
        response = await client.request(method, path, headers=AUTH, json={})
        assert 400 <= response.status_code < 500, (method, response.status_code, response.text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["url", "kind", "position", "time_zone", "quiet_hours", "start", "end", "discreet",
                         "daily_cap", "categories", "*"]) | st.text(max_size=8), inner, max_size=5),
    max_leaves=12))
async def test_fuzzed_bodies_never_get_a_5xx(client: httpx.AsyncClient, body: Any) -> None:
    for method, path in (("POST", f"/v1/members/{ANA}/channels"), ("PUT", f"/v1/members/{ANA}/preferences")):
        response = await client.request(method, path, json=body, headers=AUTH)
        assert response.status_code < 500, (method, body, response.text)


async def test_the_household_export_takes_the_household_credential_of_that_household_only(h: Harness) -> None:
    from uuid import UUID

    from attune_contracts.messages import HouseholdErased

    from .conftest import HOUSEHOLD

    issuer, now = development_issuer(), utc(2026, 11, 1, 0)
    app = build_http_app(h.store, h.metrics, verifier=verifier_from_setting(None, development=True, setting="keys"), clock=h.clock)
    path = f"/v1/households/{HOUSEHOLD}/export"
    other = UUID("22222222-2222-4222-8222-222222222222")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as c:
        assert (await c.get(path)).status_code == 401
        theirs = {"Authorization": f"Bearer {issuer.household(other, now=now)}"}
        assert (await c.get(path, headers=theirs)).status_code == 403
        member = {"Authorization": f"Bearer {issuer.member(HOUSEHOLD, ANA, now=now)}"}
        assert (await c.get(path, headers=member)).status_code == 403  # would read the other members' history
        operator = {"Authorization": f"Bearer {issuer.operator(now=now)}"}
        assert (await c.get(path, headers=operator)).status_code == 403
        exported = (await c.get(path, headers=AUTH)).json()
        assert [m["preferences"]["display_name"] for m in exported["members"]] == ["Ana"]
        await h.event(HouseholdErased(erased_at=h.clock.now()))
        assert (await c.get(path, headers=AUTH)).status_code == 410


async def test_a_members_locale_is_a_preference_that_changes_their_words(client: httpx.AsyncClient, h: Harness,
                                                                          http_sink: HttpSink) -> None:
    assert (await client.get(f"/v1/members/{ANA}/preferences", headers=AUTH)).json()["locale"] == "en_GB"
    response = await client.put(f"/v1/members/{ANA}/preferences", json={"locale": "de-DE"}, headers=AUTH)
    assert response.status_code == 200 and response.json()["locale"] == "de_DE", response.text
    for bad in ("xx-QQ", "de\x00", "../de", "d" * 60):
        assert (await client.put(f"/v1/members/{ANA}/preferences", json={"locale": bad},
                                 headers=AUTH)).status_code == 422, bad

    await h.channel(ANA, http_sink.url("json", "ana"))
    at = h.clock.now()
    await h.event(RitualReminder(
        occurrence_id=uuid4(), ritual_id=uuid4(), template="date_night", title="Date night", participants=[ANA],
        scheduled_for=at + timedelta(days=1), local_time="2026-11-27T19:00:00+00:00", time_zone="Europe/London",
        sensitive=False, reminder_id=uuid4(), offset_minutes=24 * 60, remind_at=at))
    assert await h.worker.drain() == 1
    [push] = [r.json for r in http_sink.received]
    assert push["title"] == "Bald: Date-Abend"
    assert push["message"].startswith("Date-Abend: Freitag um 19:00.") and "Erledigt: http" in push["message"]

    back = await client.put(f"/v1/members/{ANA}/preferences", json={"locale": None}, headers=AUTH)
    assert back.json()["locale"] == "en_GB"  # the default again: English, 24-hour clock
