"""Reach me: the app's settings page against the REAL notifier HTTP API (in process). Each change goes to the
notifier with the member credential the app signs, and the notifier records it for that member only."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.notifier import HttpNotifier
from attune_app.bootstrap import build
from attune_contracts.credentials import verifier_from_setting
from attune_contracts.messages import MemberRole, MemberUpserted
from attune_notifier.adapters.sql import ChannelCipher, SqlStore, make_engine, migrate
from attune_notifier.api import WebPushIntake
from attune_notifier.api import build_http_app as build_notifier_api
from attune_notifier.metrics import NotifierMetrics
from attune_notifier.webpush import generate_private_key_text, load_private_key, public_key_text
from attune_runtime.testing import FakeClock
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from .conftest import Browser, FakeCheckins, FakeCommands, Harness, settings_for, start_household

pytestmark = [pytest.mark.unit]

VAPID_PUBLIC = public_key_text(load_private_key(generate_private_key_text()))
RELAY = "mailtos://attune:relay-password@smtp.example.org?from=reminders@example.org"
SUBSCRIPTION = {"endpoint": "https://127.0.0.1:9/push/abc", "expirationTime": None,
                "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                         "auth": "tBHItJI5svbpez7KI4CCXg"}}


class Down(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")


@dataclass
class Reach:
    h: Harness
    store: SqlStore

    async def channels(self, member_id: UUID) -> list[tuple[str, str]]:
        refs = await self.store.list_channels(member_id)
        return [(ref.kind.value, await self.store.channel_url(ref.channel_id) or "") for ref in refs]

    async def signed_in(self, name: str = "Ana", *, known: bool = True) -> tuple[Browser, UUID, UUID]:
        browser = self.h.browser()
        response = await start_household(browser, you=name)
        assert response.status_code == 303, response.text
        household_id, member = self.h.commands.sent[-1][0], self.h.commands.sent[-1][1]
        if known:  # what the notifier learns from the scheduler's MemberUpserted
            await self.store.upsert_member(household_id, MemberUpserted(
                member_id=member.member_id, display_name=name, role=MemberRole.PARTNER, time_zone="Europe/Lisbon"),
                datetime.now(UTC))
        return browser, household_id, member.member_id


@pytest.fixture
async def reach(tmp_path: Path) -> AsyncIterator[Reach]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/notifier.db")
    await migrate(engine)
    store = SqlStore(engine, ChannelCipher(Fernet.generate_key().decode()))
    api = build_notifier_api(store, NotifierMetrics(CollectorRegistry()),
                             verifier=verifier_from_setting(None, development=True, setting="keys"),
                             clock=lambda: datetime.now(UTC), webpush=WebPushIntake(VAPID_PUBLIC, ["127.0.0.1"]))
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/app.db", email_url=RELAY)
    notifier = HttpNotifier("http://notifier.test", settings.issuer(), timeout_s=5, ttl=timedelta(minutes=5),
                            transport=httpx.ASGITransport(app=api))
    clock, commands, checkins = FakeClock(datetime(2026, 6, 3, 17, 0, tzinfo=UTC)), FakeCommands(), FakeCheckins()
    parts = build(settings, clock=clock, commands=commands, checkins=checkins, notifier=notifier)
    await upgrade(parts.store.engine)
    h = Harness(parts, commands, checkins, clock)
    try:
        yield Reach(h, store)
    finally:
        for browser in h.browsers:
            await browser.close()
        await parts.close()
        await engine.dispose()


async def post_subscription(browser: Browser, token: str | None, body: Any = None) -> httpx.Response:
    headers = {"X-CSRF-Token": token} if token is not None else {}
    return await browser.client.post("/reach/webpush", json=SUBSCRIPTION if body is None else body, headers=headers)


async def test_the_service_worker_is_served_at_the_root_scope_and_the_page_wires_subscribe_js(reach: Reach) -> None:
    ana, _, _ = await reach.signed_in()
    worker = await ana.get("/sw.js")
    assert worker.status_code == 200 and "javascript" in worker.headers["content-type"]
    assert worker.headers["service-worker-allowed"] == "/" and 'addEventListener("push"' in worker.text
    assert (await ana.get("/static/push/subscribe.js")).status_code == 200
    page = await ana.get("/reach")
    assert page.status_code == 200, page.text
    assert f'data-vapid-key="{VAPID_PUBLIC}"' in page.text  # asked of the notifier
    assert 'data-subscribe-url="/reach/webpush"' in page.text and 'data-worker-url="/sw.js"' in page.text
    assert '<script src="/static/push/subscribe.js">' in page.text
    assert 'href="/reach" aria-current="page"' in page.text  # the nav link
    assert "Nothing yet" in page.text


async def test_a_subscription_goes_to_the_notifier_for_that_member_only_with_the_form_token(reach: Reach) -> None:
    ana, _, ana_id = await reach.signed_in("Ana")
    ben, _, ben_id = await reach.signed_in("Ben")
    assert (await post_subscription(ana, None)).status_code == 403
    assert (await post_subscription(ana, "0" * 64)).status_code == 403
    assert (await post_subscription(ana, await ben.csrf("/reach"))).status_code == 403  # another browser's token
    assert await reach.channels(ana_id) == []
    token = await ana.csrf("/reach")
    assert (await post_subscription(ana, token, {"endpoint": "x"})).status_code == 422
    answer = await post_subscription(ana, token)
    assert answer.status_code == 201, answer.text
    again = await post_subscription(ana, token)  # a second tap: still one channel
    assert again.json()["channel_id"] == answer.json()["channel_id"]
    [(kind, stored)] = await reach.channels(ana_id)
    assert kind == "push" and SUBSCRIPTION["keys"]["auth"] in stored
    assert await reach.channels(ben_id) == []
    # The notifier's own checks still apply: an endpoint not at an allowed push service is refused, with words.
    refused = await post_subscription(ana, token, {**SUBSCRIPTION, "endpoint": "https://169.254.169.254/x"})
    assert refused.status_code == 422 and "push service" in refused.json()["error"]
    page = await ana.get("/reach")
    assert "1. Notifications on a phone" in page.text
    assert (await ana.client.post("/reach/webpush", json=SUBSCRIPTION)).status_code == 403
    ana.client.cookies.delete("attune_session")
    assert (await post_subscription(ana, token)).status_code == 401


async def test_an_ntfy_topic_is_made_for_the_member_with_a_qr_code(reach: Reach) -> None:
    ana, _, ana_id = await reach.signed_in()
    page = await ana.submit("/reach", "/reach/ntfy", {})
    assert page.status_code == 200, page.text
    link = re.search(r'id="ntfy-link" readonly value="(https://ntfy\.sh/attune-[A-Za-z0-9_-]{24})"', page.text)
    assert link, page.text
    assert "<svg" in page.text and "QR code of your ntfy topic" in page.text
    topic = link.group(1).rsplit("/", 1)[1]
    assert await reach.channels(ana_id) == [("push", f"ntfys://ntfy.sh/{topic}")]
    second = await ana.submit("/reach", "/reach/ntfy", {})
    assert topic not in second.text  # a fresh topic each time, never guessable from the first


async def test_email_goes_through_the_relay_and_a_bad_address_is_refused_with_words(reach: Reach) -> None:
    ana, _, ana_id = await reach.signed_in()
    bad = await ana.submit("/reach", "/reach/email", {"address": "ana at home"})
    assert bad.status_code == 422 and "name@example.com" in bad.text
    sneaky = await ana.submit("/reach", "/reach/email", {"address": "ana@example.org&to=eve@example.org"})
    assert sneaky.status_code == 422
    assert await reach.channels(ana_id) == []
    done = await ana.submit("/reach", "/reach/email", {"address": "ana@example.org"})
    assert done.status_code == 303 and done.headers["location"] == "/reach"
    assert await reach.channels(ana_id) == [("email", RELAY + "&to=ana@example.org")]
    page = (await ana.get("/reach")).text
    assert "1. Email" in page and "relay-password" not in page and "ana@example.org" not in page


async def test_quiet_hours_and_discreet_mode_are_the_notifiers_preferences(reach: Reach) -> None:
    ana, _, ana_id = await reach.signed_in()
    saved = await ana.submit("/reach", "/reach/preferences", {"quiet_start": "22:00", "quiet_end": "07:00",
                                                              "discreet": "on"})
    assert saved.status_code == 303, saved.text
    member = await reach.store.get_member(ana_id)
    assert member is not None and member.discreet is True
    assert member.quiet_hours is not None and member.quiet_hours.start.strftime("%H:%M") == "22:00"
    page = (await ana.get("/reach")).text
    assert 'value="22:00"' in page and 'value="07:00"' in page and 'name="discreet" checked' in page
    bad = await ana.submit("/reach", "/reach/preferences", {"quiet_start": "22:00", "quiet_end": "22:00"})
    assert bad.status_code == 422 and "two different times" in bad.text
    cleared = await ana.submit("/reach", "/reach/preferences", {"quiet_start": "", "quiet_end": ""})
    assert cleared.status_code == 303
    member = await reach.store.get_member(ana_id)
    assert member is not None and member.quiet_hours is None and member.discreet is False


async def test_a_channel_is_removed_only_by_its_owner(reach: Reach) -> None:
    ana, _, ana_id = await reach.signed_in("Ana")
    ben, _, _ = await reach.signed_in("Ben")
    await ana.submit("/reach", "/reach/email", {"address": "ana@example.org"})
    [ref] = await reach.store.list_channels(ana_id)
    refused = await ben.submit("/reach", f"/reach/channels/{ref.channel_id}/remove", {})
    assert refused.status_code == 422 and "wasn't saved" in html.unescape(refused.text)
    assert len(await reach.channels(ana_id)) == 1
    removed = await ana.submit("/reach", f"/reach/channels/{ref.channel_id}/remove", {})
    assert removed.status_code == 303
    assert await reach.channels(ana_id) == []


async def test_a_member_the_notifier_has_not_heard_of_yet_is_told_so(reach: Reach) -> None:
    ana, _, _ = await reach.signed_in(known=False)
    page = await ana.get("/reach")
    assert page.status_code == 200 and "still being set up" in page.text
    assert "Make my ntfy topic" not in page.text and "data-webpush" not in page.text


async def test_with_the_notifier_down_the_page_says_so_and_nothing_is_queued(reach: Reach) -> None:
    ana, _, ana_id = await reach.signed_in()
    notifier = reach.h.parts.notifier
    assert notifier is not None
    working = notifier.client
    notifier.client = httpx.AsyncClient(base_url="http://notifier.test", transport=Down())
    try:
        page = await ana.get("/reach")
        assert page.status_code == 200 and "couldn't reach notifications" in html.unescape(page.text)
        assert "Make my ntfy topic" not in page.text  # no form that could not be sent
        sent = await ana.client.post("/reach/ntfy", data={"csrf": await ana.csrf("/today")})
        assert sent.status_code == 503 and "nothing was changed" in html.unescape(sent.text)
        assert "couldn't reach notifications" in html.unescape((await ana.get("/today")).text)
    finally:
        await notifier.client.aclose()
        notifier.client = working
    assert await reach.channels(ana_id) == []
    assert "couldn't reach notifications" not in html.unescape((await ana.get("/reach")).text)


async def test_without_a_session_the_page_sends_you_to_the_start(reach: Reach) -> None:
    stranger = reach.h.browser()
    answer = await stranger.get("/reach")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
