"""Web Push to a member's phone through Apprise's real vapid:// plugin, to a local push endpoint that checks the
VAPID signature and decrypts the RFC 8291 payload as the browser would (tests/support/webpush_sink.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from attune_contracts.credentials import development_issuer, verifier_from_setting
from attune_contracts.messages import RitualReminder
from attune_notifier.adapters.apprise_sender import AppriseSender
from attune_notifier.adapters.tables import channels
from attune_notifier.adapters.webpush_sender import SenderWithWebPush, WebPushSender
from attune_notifier.api import WebPushIntake, build_http_app
from attune_notifier.webpush import generate_private_key_text, load_private_key, public_key_text
from attune_runtime.testing import FakeClock
from prometheus_client import generate_latest
from sqlalchemy import select
from support.webpush_sink import WebPushSink

from .conftest import ANA, BEN, HOUSEHOLD, HttpSink, utc
from .harness import Harness, make_harness

pytestmark = [pytest.mark.integration]

VAPID_PRIVATE = generate_private_key_text()
VAPID_KEY = load_private_key(VAPID_PRIVATE)
VAPID_PUBLIC = public_key_text(VAPID_KEY)


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebPushSink]:
    with WebPushSink(expected_public_key=VAPID_PUBLIC) as running:
        # The notifier sends with `requests`: trust the sink's throw-away CA, as a real push service's is trusted.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_file))
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 11, 26, 18, 0))


@pytest.fixture
async def h(tmp_path: Path, clock: FakeClock):
    sender = SenderWithWebPush(AppriseSender(timeout_s=10),
                               WebPushSender(VAPID_KEY, "webpush@attune.example.org", timeout_s=10))
    harness = await make_harness(f"sqlite+aiosqlite:///{tmp_path}/notifier.db", clock, sender=sender)
    yield harness
    await harness.close()


def reminder(h: Harness, *, template: str = "evening_attunement", title: str = "Evening attunement",
             sensitive: bool = False, members: tuple[Any, ...] = (ANA,)) -> RitualReminder:
    at = h.clock.now() + timedelta(minutes=30)
    return RitualReminder(occurrence_id=uuid4(), ritual_id=uuid4(), template=template, title=title,
                          participants=list(members), scheduled_for=at, local_time=at.isoformat(),
                          time_zone="Europe/London", sensitive=sensitive, reminder_id=uuid4(), offset_minutes=30,
                          remind_at=h.clock.now())


async def subscribe(h: Harness, sink: WebPushSink, member: Any = ANA, position: int | None = None) -> Any:
    """What POST /v1/members/{id}/channels/webpush stores, without the HTTP layer (tested below)."""
    from attune_notifier.service import ChannelKind
    from attune_notifier.webpush import WebPushSubscription

    browser = sink.subscribe(f"phone-{member}")
    raw = browser.as_json()
    checked = WebPushSubscription.checked(raw["endpoint"], raw["keys"]["p256dh"], raw["keys"]["auth"],
                                          allowed_hosts=["127.0.0.1"])
    recipient = await h.store.get_member(member)
    assert recipient is not None
    ref = await h.store.add_channel(recipient, ChannelKind.PUSH, checked.to_secret(), position, h.clock.now())
    return browser, ref


async def test_a_reminder_reaches_the_phone_through_apprise_vapid_with_the_right_words(
        h: Harness, sink: WebPushSink) -> None:
    await h.member(ANA, "Ana")
    browser, _ = await subscribe(h, sink)
    await h.event(reminder(h))
    assert await h.worker.drain() == 1

    assert sink.rejected == []
    [push] = sink.pushes_for(browser)
    assert push.claims["aud"] == sink.origin and push.claims["sub"] == "mailto:webpush@attune.example.org"
    assert push.vapid_public_key == VAPID_PUBLIC
    assert push.headers["ttl"] == str(4 * 3600)  # kept for a phone that is asleep, not the URL's 60 s at most
    message = push.json
    assert message["title"] == "Coming up: Evening attunement"
    assert "Evening attunement is at" in message["body"]
    assert message["url"].startswith("https://checkins.example.org/l/")
    assert message["url"] not in message["body"]  # the link is the tap, not text on the lock screen
    [sent] = h.publisher.events("notification_sent")
    assert sent["payload"]["channel_kind"] == "push"


async def test_a_discreet_member_gets_no_ritual_title_on_the_lock_screen(h: Harness, sink: WebPushSink) -> None:
    await h.member(ANA, "Ana", discreet=True)
    browser, _ = await subscribe(h, sink)
    await h.event(reminder(h, template="try_something_new", title="Try something new", sensitive=True))
    assert await h.worker.drain() == 1

    [push] = sink.pushes_for(browser)
    words = push.text.lower()
    assert "something new" not in words and "experiment" not in words
    assert push.json["title"] and push.json["url"]  # a neutral title, and the tap still opens the check-in


async def test_a_410_retires_the_subscription_and_the_next_channel_gets_it(
        h: Harness, sink: WebPushSink, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana")
    browser, web = await subscribe(h, sink, position=0)
    await h.channel(ANA, http_sink.url("json", "ana"), position=1)
    sink.gone(browser)

    await h.event(reminder(h))
    await h.worker.drain()
    assert [r.status for r in sink.rejected] == [410]
    assert len(http_sink.received) == 1  # the same reminder, on the member's next channel, without waiting
    [retired_at] = [t for c, t in await h.store.channel_states(ANA) if c.channel_id == web.channel_id]
    assert retired_at == h.clock.now()
    assert h.metric("attune_notifier_channels_retired_total", channel_kind="push") == 1

    await h.event(reminder(h))  # the next reminder never knocks on the gone subscription again
    await h.worker.drain()
    assert len(sink.rejected) == 1 and len(http_sink.received) == 2


async def test_a_410_with_no_other_channel_gives_up_at_once(h: Harness, sink: WebPushSink) -> None:
    await h.member(ANA, "Ana")
    browser, _ = await subscribe(h, sink)
    sink.gone(browser)
    await h.event(reminder(h))
    await h.worker.drain()
    h.clock.advance(hours=2)
    await h.worker.drain()
    assert len(sink.rejected) == 1  # not retried with backoff, as an ordinary failure would be
    [dead] = h.publisher.events("notification_dead_lettered")
    assert "gone" in dead["payload"]["reason"]


async def test_the_vapid_key_is_never_in_logs_or_metrics(h: Harness, sink: WebPushSink,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await h.member(ANA, "Ana")
    browser, _ = await subscribe(h, sink)
    sink.gone(browser)
    await h.event(reminder(h))
    await h.worker.drain()
    browser2, _ = await subscribe(h, sink)
    await h.event(reminder(h))
    await h.worker.drain()
    assert len(sink.pushes_for(browser2)) == 1

    from cryptography.hazmat.primitives import serialization

    pem = VAPID_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    secrets = [VAPID_PRIVATE, pem.splitlines()[1], str(VAPID_KEY.private_numbers().private_value),
               browser.as_json()["keys"]["auth"], browser2.as_json()["keys"]["auth"]]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    metrics = generate_latest(h.registry).decode()
    for secret in secrets:
        assert secret not in logged
        assert secret not in metrics


# ---- the HTTP API: public key, subscriptions with a member credential ---------------------------------

def member_auth(member: Any) -> dict[str, str]:
    token = development_issuer().member(HOUSEHOLD, member, now=utc(2026, 11, 1, 0))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(h: Harness) -> Any:
    await h.member(ANA, "Ana")
    await h.member(BEN, "Ben")
    app = build_http_app(h.store, h.metrics, verifier=verifier_from_setting(None, development=True, setting="keys"),
                         clock=h.clock, webpush=WebPushIntake(VAPID_PUBLIC, ["127.0.0.1", "*.push.apple.com"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as c:
        yield c


async def test_the_public_key_is_served_without_a_credential_and_holds_no_secret(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/webpush/vapid-public-key")
    assert answer.status_code == 200
    assert answer.json() == {"public_key": VAPID_PUBLIC}
    assert VAPID_PRIVATE not in answer.text


async def test_a_member_adds_their_browser_subscription_stored_encrypted_and_it_delivers(
        h: Harness, client: httpx.AsyncClient, sink: WebPushSink) -> None:
    browser = sink.subscribe("ana-phone")
    path = f"/v1/members/{ANA}/channels/webpush"
    assert (await client.post(path, json=browser.as_json())).status_code == 401
    assert (await client.post(path, json=browser.as_json(), headers=member_auth(BEN))).status_code == 403
    answer = await client.post(path, json=browser.as_json(), headers=member_auth(ANA))
    assert answer.status_code == 201, answer.text
    assert answer.json()["kind"] == "push"
    async with h.store.engine.connect() as conn:
        [stored] = (await conn.execute(select(channels.c.secret))).scalars().all()
    assert b"127.0.0.1" not in stored and browser.as_json()["keys"]["auth"].encode() not in stored
    again = await client.post(path, json=browser.as_json(), headers=member_auth(ANA))  # a second tap
    assert again.status_code == 200 and again.json()["channel_id"] == answer.json()["channel_id"]
    listed = (await client.get(f"/v1/members/{ANA}/channels", headers=member_auth(ANA))).json()
    assert listed == [{"channel_id": answer.json()["channel_id"], "kind": "push", "position": 0, "retired": False}]

    await h.event(reminder(h))
    await h.worker.drain()
    assert [p.json["title"] for p in sink.pushes_for(browser)] == ["Coming up: Evening attunement"]

    sink.gone(browser)
    await h.event(reminder(h))
    await h.worker.drain()
    listed = (await client.get(f"/v1/members/{ANA}/channels", headers=member_auth(ANA))).json()
    assert listed[0]["retired"] is True


@pytest.mark.parametrize("change,why", [
    ({"endpoint": "http://127.0.0.1:1/push/x"}, "https://"),
    ({"endpoint": "https://169.254.169.254/latest/meta-data"}, "not at a push service"),
    ({"endpoint": "https://user:pw@127.0.0.1/push/x"}, "credentials"),
    ({"keys": {"p256dh": "AAAA", "auth": "c2l4dGVlbiBieXRlcyEhIQ"}}, "p256dh"),
    ({"keys": {"p256dh": None, "auth": "short"}}, ""),
])
async def test_a_bad_subscription_is_a_422_that_says_why(client: httpx.AsyncClient, sink: WebPushSink,
                                                         change: dict[str, Any], why: str) -> None:
    body = {**sink.subscribe().as_json(), **change}
    answer = await client.post(f"/v1/members/{ANA}/channels/webpush", json=body, headers=member_auth(ANA))
    assert answer.status_code == 422
    assert why in answer.text
    assert "169.254" not in answer.text


async def test_vapid_urls_are_refused_on_the_generic_channel_route(client: httpx.AsyncClient) -> None:
    """vapid:// names key and subscription files the plugin would read on the notifier's machine."""
    for url in ("vapid://me@example.org/x?keyfile=/etc/shadow&subfile=/etc/passwd", "webpush:{}"):
        answer = await client.post(f"/v1/members/{ANA}/channels", json={"url": url}, headers=member_auth(ANA))
        assert answer.status_code == 422
        assert "/channels/webpush" in answer.text and "shadow" not in answer.text
