"""'Send me a test' from the app, against the REAL notifier API and its REAL delivery worker in process (a sender that
records what it was given instead of a gateway): the test goes through the normal path for that member only, and
the page says whether it went; a second burst is refused with words; the notifier down says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.notifier import HttpNotifier
from attune_app.bootstrap import build
from attune_app.reach import probe_words
from attune_contracts import Publisher
from attune_contracts.credentials import verifier_from_setting
from attune_contracts.messages import MemberRole, MemberUpserted
from attune_notifier.adapters.sql import ChannelCipher, SqlStore, make_engine, migrate
from attune_notifier.api import build_http_app as build_notifier_api
from attune_notifier.delivery import DeliveryWorker
from attune_notifier.metrics import NotifierMetrics
from attune_notifier.ports import SendResult
from attune_notifier.service import Rendered
from attune_runtime.testing import FakeClock
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from .conftest import Browser, FakeCheckins, FakeCommands, Harness, settings_for, start_household

pytestmark = [pytest.mark.unit]


@dataclass
class RecordingSender:
    sent: list[tuple[str, Rendered]] = field(default_factory=list)
    ok: bool = True

    async def send(self, url: str, message: Rendered) -> SendResult:
        self.sent.append((url, message))
        return SendResult(ok=self.ok, error="" if self.ok else "refused")


@dataclass
class World:
    h: Harness
    store: SqlStore
    sender: RecordingSender
    published: list[bytes]

    async def signed_in(self, name: str) -> tuple[Browser, object]:
        browser = self.h.browser()
        assert (await start_household(browser, you=name)).status_code == 303
        household_id, member = self.h.commands.sent[-1][0], self.h.commands.sent[-1][1]
        await self.store.upsert_member(household_id, MemberUpserted(
            member_id=member.member_id, display_name=name, role=MemberRole.PARTNER, time_zone="Europe/Lisbon"),
            datetime.now(UTC))
        return browser, member.member_id


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/notifier.db")
    await migrate(engine)
    store = SqlStore(engine, ChannelCipher(Fernet.generate_key().decode()))
    published: list[bytes] = []

    async def publish(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
        published.append(value)

    sender, metrics = RecordingSender(), NotifierMetrics(CollectorRegistry())
    worker = DeliveryWorker(store, sender, Publisher(publish, producer="notifier"), metrics,
                            clock=lambda: datetime.now(UTC))
    tasks: set[asyncio.Task[int]] = set()

    def wake() -> None:  # the running worker's wake-up, played by one drain per request
        task = asyncio.get_running_loop().create_task(worker.drain())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    api = build_notifier_api(store, metrics, verifier=verifier_from_setting(None, development=True, setting="keys"),
                             clock=lambda: datetime.now(UTC), wake=wake)
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    notifier = HttpNotifier("http://notifier.test", settings.issuer(), timeout_s=5, ttl=timedelta(minutes=5),
                            transport=httpx.ASGITransport(app=api))
    clock, commands, checkins = FakeClock(datetime(2026, 6, 3, 17, 0, tzinfo=UTC)), FakeCommands(), FakeCheckins()
    parts = build(settings, clock=clock, commands=commands, checkins=checkins, notifier=notifier)
    await upgrade(parts.store.engine)
    h = Harness(parts, commands, checkins, clock)
    try:
        yield World(h, store, sender, published)
    finally:
        for browser in h.browsers:
            await browser.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await parts.close()
        await engine.dispose()


def test_the_words_for_each_outcome() -> None:
    assert probe_words({"status": "sent", "channel_kind": "push"}).startswith("Sent as a notification.")
    assert probe_words({"status": "sent", "channel_kind": None}).startswith("Sent.")
    assert probe_words({"status": "dropped", "why": "there is no way to reach you set up yet"}) == (
        "It couldn't be sent: there is no way to reach you set up yet.")
    assert probe_words({"status": "deferred", "why": "it's your quiet hours; it goes when they end"}) == (
        "Waiting: it's your quiet hours; it goes when they end.")
    assert "Check again" in probe_words({"status": "pending"})
    assert probe_words({"status": "failed", "why": "the channel didn't answer; trying again"}) == (
        "Not yet: the channel didn't answer; trying again.")


async def test_a_test_reaches_the_member_through_the_notifier_and_the_page_says_it_went(world: World) -> None:
    ana, ana_id = await world.signed_in("Ana")
    ben, ben_id = await world.signed_in("Ben")
    assert "Send me a test" not in (await ana.get("/reach")).text  # no channel yet: nothing to test
    await ana.submit("/reach", "/reach/ntfy", {})
    page = await ana.submit("/reach", "/reach/test", {})
    assert page.status_code == 200, page.text
    assert "Sent as a notification." in page.text and 'role="status"' in page.text
    [(url, message)] = world.sender.sent
    assert url.startswith("ntfys://ntfy.sh/attune-") and "This is the test you asked for" in message.body
    assert [d.member_id for d in await world.store.deliveries_for(ana_id)] == [ana_id]
    assert await world.store.deliveries_for(ben_id) == []
    assert any(b'"notifications.notification_sent"' in p and b'"purpose":"test"' in p for p in world.published)
    # Ben cannot read Ana's test.
    test_id = next(d.notification_id for d in await world.store.deliveries_for(ana_id))
    assert (await ben.get(f"/reach/test/{test_id}")).status_code == 404


async def test_a_burst_of_tests_is_refused_with_words(world: World) -> None:
    ana, _ = await world.signed_in("Ana")
    await ana.submit("/reach", "/reach/ntfy", {})
    for _ in range(3):
        assert (await ana.submit("/reach", "/reach/test", {})).status_code == 200
    fourth = await ana.submit("/reach", "/reach/test", {})
    assert fourth.status_code == 422 and "No test was sent: a test was sent a moment ago" in fourth.text
    assert len(world.sender.sent) == 3


async def test_a_refused_send_is_reported_as_not_sent(world: World) -> None:
    ana, _ = await world.signed_in("Ana")
    await ana.submit("/reach", "/reach/ntfy", {})
    world.sender.ok = False
    page = await ana.submit("/reach", "/reach/test", {})
    notice = page.text.split('<p class="notice" role="status">')[1].split("</p>")[0]
    assert "Not yet: the channel didn&#39;t answer; trying again." in notice and "Check again" in notice, notice


async def test_without_a_form_token_nothing_is_sent(world: World) -> None:
    ana, _ = await world.signed_in("Ana")
    await ana.submit("/reach", "/reach/ntfy", {})
    assert (await ana.client.post("/reach/test", data={"csrf": "0" * 64})).status_code == 403
    assert world.sender.sent == []
