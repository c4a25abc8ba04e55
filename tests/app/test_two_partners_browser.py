"""Issue 14's whole two-partner story in one real-browser test: Ana and Ben, each in their own headless Chromium
profile, at 390x844. Ana starts the household and invites Ben; Ben joins with the link; they pick the evening
attunement, a date night and today's question from the catalog; each taps "Send reminders to this phone"; when the
evening attunement comes due, the notifier delivers it through Apprise's vapid:// plugin to a local push endpoint
that checks the VAPID signature and decrypts the RFC 8291 payload (http-ece) with each phone's keys; each checks
in on /today, sees the streak and the partner's "Ana kept it"; a kind moment moves the 5:1 ratio; both answer
today's question and each sees both answers. axe-core finds nothing serious on any screen.

What runs, and how the services meet:
- the app, under uvicorn on its own loop (SQLite), with its real command port replaced by a relay into the REAL
  scheduler's use cases (`Scheduler.handle`, its own SQLite store and outbox): the scheduler decides
  HouseholdRegistered, MemberUpserted, RitualScheduled and, when the shared clock reaches the ritual's minute,
  RitualDue (its firing loop's `fire_due`, its relay's `relay_once`);
- the REAL check-ins service (its HTTP API, which the app calls with each member's credential; its use cases and
  outbox relay), on the same loop;
- the REAL notifier, as its own process on the real broker (production mode): it gets the scheduler's facts
  from the broker, delivers Web Push, and asks today's question (QuestionAsked, read back from the broker).
The test carries each service's outgoing events to the others in process (app and check-ins) or onto the broker
(the notifier): the app's and check-ins' Kafka consumers are not what this test is about (tests/app/test_app_broker.py
and the check-ins suite run those). One clock (a FakeClock, moved by the test) is shared by the app, the scheduler
and check-ins so the ritual comes due now; the notifier keeps real time.

Headless Chromium reaches no push service: `PushManager.prototype.subscribe` is replaced in the page by one
returning the local endpoint's subscription (as tests/app/test_app_reach_browser.py does); the permission prompt
is answered "allow". Everything after that (worker registration, the POSTs, the notifier, Apprise) is real.

ATTUNE_APP_SCREENSHOTS=docs/app saves each screen at 390x844 there.
"""

from __future__ import annotations

import asyncio
import html
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.sql import make_engine
from attune_app.adapters.upstream import HttpCheckins
from attune_app.bootstrap import build
from attune_app.handlers import make_handler
from attune_checkins.adapters.migrate import upgrade as upgrade_checkins
from attune_checkins.adapters.sql import make_engine as checkins_engine
from attune_checkins.bootstrap import build as build_checkins
from attune_checkins.config import Settings as CheckinsSettings
from attune_contracts import Envelope, Topic, make_envelope, parse
from attune_contracts.messages import (
    CheckInRecorded,
    MemberUpserted,
    QuestionAsked,
    RitualDue,
    RitualReminder,
)
from attune_contracts.registry import spec_of
from attune_contracts.trust import sender_of
from attune_runtime.tansu import free_port
from attune_runtime.testing import FakeClock
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.metrics import SchedulerMetrics
from attune_scheduler.scheduler import Scheduler
from prometheus_client import CollectorRegistry
from support.inprocess import read_topic
from support.webpush_sink import WebPushSink, notifier_env, notifier_field_keys

from .conftest import settings_for
from .test_app_browser import _chromium, phone_screen, serious_violations, serving, shot, wait_for_url
from .test_app_reach_browser import PUBLIC, SIGNING, VAPID_PRIVATE, VAPID_PUBLIC, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ZONE = "Europe/Lisbon"
NOTIFIER_TYPES = (MemberUpserted, RitualDue, RitualReminder, CheckInRecorded)  # what the notifier is sent


@dataclass
class Bus:
    """What carries each service's events to the others: the scheduler's and check-ins' outgoing events to the
    app's and check-ins' handlers in process, and those the notifier consumes onto the real broker."""

    bootstrap: str
    app_handler: Any = None
    checkins: Any = None
    scheduler: Scheduler | None = None
    producer: AIOKafkaProducer | None = None
    seen: list[Envelope[Any]] = field(default_factory=list)

    async def deliver(self, envelope: Envelope[Any], *, to_checkins: bool = True) -> None:
        self.seen.append(envelope)
        if to_checkins:
            await self.checkins.service.handle(envelope)
        await self.app_handler(envelope)
        if isinstance(envelope.payload, NOTIFIER_TYPES):
            assert self.producer is not None
            await self.producer.send_and_wait(spec_of(type(envelope.payload)).topic.value,
                                              value=envelope.to_bytes(notifier_field_keys()),
                                              key=str(envelope.household_id).encode())

    # The scheduler's sink port: rows its relay publishes, in order.
    async def __call__(self, rows: Sequence[Any]) -> None:
        for row in rows:
            await self.deliver(parse(row.value))

    # Check-ins' record sink: (topic, key, value, headers) its relay publishes.
    async def send_all(self, records: list[Any]) -> None:
        for _, _, value, _ in records:
            await self.deliver(parse(value), to_checkins=False)

    # The app's command port: straight into the scheduler's use cases, as its consumer would hand them over.
    async def send(self, payload: Any, *, household_id: uuid.UUID) -> uuid.UUID:
        envelope = make_envelope(payload, household_id=household_id, producer=sender_of(payload))
        assert self.scheduler is not None
        await self.scheduler.handle(envelope)
        return envelope.event_id


@dataclass
class Story:
    app: str
    loop: asyncio.AbstractEventLoop
    clock: FakeClock
    bus: Bus
    sink: WebPushSink
    log: Path

    def run(self, work: Awaitable[Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)  # type: ignore[arg-type]

    def settle(self) -> None:
        """Let the scheduler fire what is due by the shared clock and relay it; check-ins' relay runs on its own."""
        async def once() -> None:
            assert self.bus.scheduler is not None
            await self.bus.scheduler.fire_due()
            while await self.bus.scheduler.relay_once():
                pass
            await asyncio.sleep(0.5)  # check-ins' relay loop picks up what its use cases committed

        self.run(once())

    def events(self, kind: type) -> list[Any]:
        return [e.payload for e in self.bus.seen if isinstance(e.payload, kind)]


@pytest.fixture
def story(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Story]:
    notifier_port = free_port()
    log = tmp_path / "notifier.log"
    with WebPushSink(expected_public_key=VAPID_PUBLIC) as sink:
        env = notifier_env(sink, kafka_bootstrap=kafka_bootstrap, port=notifier_port, folder=tmp_path,
                           credential_keys=PUBLIC, vapid_private_key=VAPID_PRIVATE, link_kid="app9")
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "attune_notifier"], env=env, cwd=tmp_path,
                                       stdout=out, stderr=subprocess.STDOUT)
        notifier = f"http://127.0.0.1:{notifier_port}"
        try:
            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"the notifier exited: {log.read_text()[-3000:]}")
                try:
                    return httpx.get(f"{notifier}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_until(ready, "the notifier to be ready", timeout=90)
            yield from _services(kafka_bootstrap, tmp_path, notifier, sink, log)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _services(bootstrap: str, folder: Path, notifier: str, sink: WebPushSink, log: Path) -> Iterator[Story]:
    app_url, checkins_url = f"sqlite+aiosqlite:///{folder}/app.db", f"sqlite+aiosqlite:///{folder}/checkins.db"
    scheduler_url = f"sqlite+aiosqlite:///{folder}/scheduler.db"

    async def migrate() -> None:
        for engine, up in ((make_engine(app_url), upgrade), (checkins_engine(checkins_url), upgrade_checkins)):
            await up(engine)
            await engine.dispose()
        store = SqlStore.from_url(scheduler_url)
        await store.migrate()
        await store.close()

    asyncio.run(migrate())
    clock = FakeClock(datetime.now(UTC).replace(second=0, microsecond=0))
    bus = Bus(bootstrap)
    settings = settings_for(app_url, signing_key=SIGNING, notifier_url=notifier)
    checkins = build_checkins(CheckinsSettings(environment="development", kafka_create_topics=False,
                                               database_url=checkins_url, credential_keys=PUBLIC,
                                               http_rate_per_s=1000, http_rate_burst=1000),
                              clock=clock, sink=bus, run_timer=False)
    api = HttpCheckins("http://checkins.test", settings.issuer(), timeout_s=5, ttl=timedelta(minutes=5),
                       transport=httpx.ASGITransport(app=checkins.http))
    parts = build(settings, clock=clock, commands=bus, checkins=api)
    scheduler_store = SqlStore.from_url(scheduler_url)
    bus.checkins, bus.app_handler = checkins, make_handler(parts.store)
    bus.scheduler = Scheduler(scheduler_store.unit_of_work, scheduler_store, scheduler_store.relay, clock, bus,
                              SchedulerMetrics(CollectorRegistry()), relay_poll_s=0.05)
    with serving(parts.http) as (base, loop):
        story = Story(base, loop, clock, bus, sink, log)

        async def start() -> None:
            bus.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
            await bus.producer.start()
            checkins.relay.start()

        async def stop() -> None:
            await checkins.relay.stop(drain_timeout=1)
            assert bus.producer is not None
            await bus.producer.stop()
            await api.close()
            for store in (checkins.store, scheduler_store, parts.store):
                await store.close()

        story.run(start())
        try:
            yield story
        finally:
            story.run(stop())


def main_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return html.unescape(driver.find_element(By.TAG_NAME, "main").text)


def subscribe_this_phone(driver: Any, story: Story, name: str) -> Any:
    """Tap "Send reminders to this phone" on /reach: the page's script subscribes and posts it to the app."""
    from selenium.webdriver.common.by import By

    def button_shown() -> bool:  # the notifier learns the member from the scheduler's MemberUpserted
        driver.get(story.app + "/reach")
        return bool(driver.find_elements(By.CSS_SELECTOR, "[data-webpush]"))
    driver.implicitly_wait(0)
    wait_until(button_shown, f"the notifier to know {name}")
    driver.implicitly_wait(10)
    button = driver.find_element(By.CSS_SELECTOR, "[data-webpush]")
    assert button.get_attribute("data-vapid-key") == VAPID_PUBLIC
    phone = story.sink.subscribe(f"{name}-phone")
    driver.execute_script("""
        const subscription = arguments[0];
        Notification.requestPermission = async () => "granted";
        PushManager.prototype.getSubscription = async () => null;
        PushManager.prototype.subscribe = async function () { return {toJSON: () => subscription}; };""",
                          phone.as_json())
    button.click()
    wait_until(lambda: button.get_attribute("data-webpush-state") not in (None, "working"), "the tap's outcome")
    assert button.get_attribute("data-webpush-state") == "subscribed", driver.find_element(By.ID, "push-status").text
    assert "This phone will now receive your reminders." in driver.find_element(By.ID, "push-status").text
    return phone


def submit(driver: Any, button: Any) -> None:
    """Tap a form's button and wait for the page it leads to. These forms lead back to the page they are on (the
    URL does not change), so the wait is for the old page to go: its elements are stale once the new one loads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(old))
    driver.find_element(By.TAG_NAME, "main")


def pick(driver: Any, base: str, template: str, local_time: str | None = None) -> None:
    """Open a ritual's card on /rituals, keep its defaults (or set its time), add it."""
    from selenium.webdriver.common.by import By

    driver.get(base + "/rituals")
    form = driver.find_element(By.XPATH, f"//input[@name='template'][@value='{template}']/..")
    driver.execute_script("arguments[0].closest('details').open = true", form)
    if local_time is not None:
        driver.execute_script("arguments[0].value = arguments[1]", form.find_element(By.NAME, "local_time"),
                              local_time)
    submit(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))


def test_two_partners_set_up_get_reminded_keep_it_and_see_each_other(story: Story, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base = story.app
    ana, ben = _chromium(tmp_path / "ana"), _chromium(tmp_path / "ben")
    phones: dict[str, Any] = {}
    try:
        for phone in (ana, ben):
            phone_screen(phone)
        # 1. Ana starts the household (the zone comes from her phone) and invites Ben.
        ana.get(base + "/")
        assert ana.find_element(By.ID, "time_zone").get_attribute("value") == ZONE
        ana.find_element(By.ID, "household_name").send_keys("Ana & Ben")
        ana.find_element(By.ID, "your_name").send_keys("Ana")
        ana.find_element(By.CSS_SELECTOR, "form[action='/start'] button[type=submit]").click()
        wait_for_url(ana, base + "/household")
        ana.find_element(By.CSS_SELECTOR, "form[action='/invite'] button[type=submit]").click()
        link = ana.find_element(By.ID, "invite-link").get_attribute("value")
        assert ana.find_element(By.CSS_SELECTOR, ".qr svg").is_displayed()
        shot(ana, "story-1-invite")
        assert serious_violations(ana) == []

        # 2. Ben opens the link in his own browser and joins.
        ben.get(link)
        assert "Join Ana & Ben" in ben.find_element(By.TAG_NAME, "h1").text
        ben.find_element(By.ID, "your_name").send_keys("Ben")
        ben.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait_for_url(ben, base + "/today")
        story.settle()  # the scheduler's HouseholdRegistered and MemberUpserted reach the app and the notifier
        ben.get(base + "/household")
        assert "Ben (you)" in main_text(ben) and "Ana" in main_text(ben)
        ana.get(base + "/household")
        assert "Ana (you)" in main_text(ana) and "Ben" in main_text(ana)
        assert "Still being set up" not in main_text(ana)  # the scheduler's answer came back

        # 3. They pick the evening attunement (due two minutes from now, for the story), a date night (the
        # catalog's Friday evening) and today's question, at the same minute.
        due_at = story.clock.now() + timedelta(minutes=2)
        local = due_at.astimezone(ZoneInfo(ZONE)).strftime("%H:%M")
        pick(ana, base, "evening_attunement", local)
        pick(ben, base, "date_night")
        pick(ana, base, "curiosity_question", local)
        story.settle()
        ana.get(base + "/rituals")
        mine = main_text(ana).split("Choose a ritual")[0]
        assert f"Evening attunement · every day at {local}" in mine
        assert "Date night · every Fri at 19:00" in mine  # the catalog's defaults, kept
        assert f"Today's question · every day at {local}" in mine
        assert "Being set up" not in mine and mine.splitlines().count("On") == 3  # the scheduler's RitualScheduled, for each
        shot(ana, "story-2-rituals")
        assert serious_violations(ana) == []

        # 4. Each subscribes to Web Push from the app.
        phones.update(ana=subscribe_this_phone(ana, story, "ana"), ben=subscribe_this_phone(ben, story, "ben"))
        shot(ben, "story-3-reach")
        assert serious_violations(ben) == []

        # 5. The minute comes: the scheduler fires, the notifier pushes to both phones through vapid://.
        story.clock.set(due_at)
        story.settle()
        due = [d for d in story.events(RitualDue) if d.template == "evening_attunement"]
        assert len(due) == 1
        for name, phone in phones.items():
            def pushed(phone: Any = phone) -> bool:
                return any("Evening attunement" in p.json.get("title", "") for p in story.sink.pushes_for(phone))
            wait_until(lambda: pushed() or bool(story.sink.rejected), f"the push to {name}'s phone", timeout=90)
            assert story.sink.rejected == []
            push = next(p for p in story.sink.pushes_for(phone) if "Evening attunement" in p.json["title"])
            assert push.vapid_public_key == VAPID_PUBLIC
            assert push.json["title"] == "Evening attunement", push.json
            assert "Ten minutes for each other" in push.json["body"], push.json

        # 6. Each checks in from /today; the partner's "kept it" and the streak appear.
        def check_in(driver: Any, closeness: str, note: str = "") -> None:
            driver.get(base + "/today")
            item = driver.find_element(By.XPATH, "//li[strong[text()='Evening attunement']]")
            item.find_element(By.CSS_SELECTOR, f"input[name=closeness][value='{closeness}']").click()
            item.find_element(By.TAG_NAME, "textarea").send_keys(note)
            submit(driver, item.find_element(By.CSS_SELECTOR, "button[value=done]"))

        ana.get(base + "/today")
        assert "Evening attunement" in main_text(ana)
        shot(ana, "story-4-today")
        assert serious_violations(ana) == []
        check_in(ana, "4", "Tea on the balcony, finally")
        story.settle()
        assert "You kept it" in main_text(ana)
        ben.get(base + "/today")
        assert "Ana kept it" in main_text(ben)
        assert "Tea on the balcony" not in ben.page_source  # a private note: only its author's
        check_in(ben, "5")
        story.settle()
        ana.get(base + "/today")
        assert "Ben kept it" in main_text(ana)
        ana.get(base + "/progress")
        progress = main_text(ana)
        assert "Evening attunement: 1 day in a row" in progress, progress
        assert "No moments logged yet" in progress

        # 7. A kind moment moves the ratio.
        ben.get(base + "/today")
        submit(ben, ben.find_element(By.CSS_SELECTOR, "form[action='/moments'] button[value=positive]"))
        story.settle()
        ana.get(base + "/progress")
        after = main_text(ana)
        assert "1 kind moment and no hard ones. Lovely." in after and "No moments logged yet" not in after, after
        shot(ana, "story-5-progress")
        assert serious_violations(ana) == []

        # 8. Today's question, asked by the notifier, answered by both: each sees both answers.
        def asked() -> list[Any]:
            return story.events(QuestionAsked)

        def read_question() -> None:
            """The notifier's QuestionAsked for our curiosity ritual, off the broker, to the app and check-ins."""
            ours = {d.ritual_id for d in story.events(RitualDue) if d.template == "curiosity_question"}
            found = story.run(read_topic(
                story.bus.bootstrap, Topic.QUESTIONS, keep=parse, timeout=60,
                until=lambda got: any(isinstance(e.payload, QuestionAsked) and e.payload.ritual_id in ours
                                      for e in got)), timeout=90)
            for envelope in found:
                if isinstance(envelope.payload, QuestionAsked) and envelope.payload.ritual_id in ours:
                    story.run(story.bus.deliver(envelope))

        read_question()
        assert asked()

        def answer(driver: Any, words: str) -> None:
            driver.get(base + "/today")
            driver.find_element(By.CSS_SELECTOR, "section.question textarea").send_keys(words)
            submit(driver, driver.find_element(By.CSS_SELECTOR, "section.question button[type=submit]"))

        answer(ana, "The walk home along the river")
        assert "Waiting for Ben's answer" in ana.find_element(By.CSS_SELECTOR, "section.question").text
        answer(ben, "When you laughed at breakfast")
        for driver in (ana, ben):
            driver.get(base + "/today")
            both = driver.find_element(By.CSS_SELECTOR, "section.question").text
            assert "The walk home along the river" in both and "When you laughed at breakfast" in both
        shot(ben, "story-6-question")
        assert serious_violations(ben) == []
        # The narrowest phones: nothing scrolls sideways, nothing serious for axe.
        phone_screen(ana, 320, 640)
        for page in ("/today", "/rituals", "/progress", "/reach"):
            ana.get(base + page)
            assert ana.execute_script("return document.documentElement.scrollWidth") <= 320, page
            assert serious_violations(ana) == [], page
    finally:
        ana.quit()
        ben.quit()
    logged = story.log.read_text()
    assert VAPID_PRIVATE not in logged
    assert all(p.as_json()["keys"]["auth"] not in logged for p in phones.values())
