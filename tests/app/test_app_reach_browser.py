"""Reach my phone, end to end in real headless Chromium: Ana opens "Reach me" in the app and taps "Send reminders to
this phone"; subscribe.js registers the app's service worker at /sw.js, subscribes with the VAPID key the page got
from the notifier and posts the subscription to the app, which forwards it to the notifier with Ana's member
credential. A RitualReminder published as the scheduler on the real broker then reaches the local push endpoint
through Apprise's vapid:// plugin (the notifier runs as its own process, in production mode), which checks the
VAPID signature and decrypts the RFC 8291 payload: the words are the reminder's.

Headless Chromium reaches no push service, so `PushManager.prototype.subscribe` is replaced in the page by one
returning the local endpoint's subscription (as tests/webpush/test_subscribe_browser.py does); the permission
prompt is answered "allow". Everything else (worker registration, the POSTs, the notifier, Apprise) is real.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.sql import make_engine
from attune_app.bootstrap import build
from attune_contracts import make_envelope
from attune_contracts.credentials import generate_key_pair
from attune_contracts.messages import MemberRole, MemberUpserted, RitualReminder, UpsertMember
from attune_contracts.registry import spec_of
from attune_contracts.trust import sender_of
from attune_notifier.webpush import generate_private_key_text, load_private_key, public_key_text
from attune_runtime.tansu import free_port
from attune_runtime.testing import FakeClock
from support.webpush_sink import WebPushSink, notifier_env, notifier_field_keys

from .conftest import FakeCheckins, FakeCommands, settings_for
from .test_app_browser import _chromium, phone_screen, serious_violations, shot, wait_for_url

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VAPID_PRIVATE = generate_private_key_text()
VAPID_PUBLIC = public_key_text(load_private_key(VAPID_PRIVATE))
SIGNING, PUBLIC = generate_key_pair("app9")  # the app signs member credentials; the notifier trusts its half


@dataclass
class Running:
    app: str
    notifier: str
    sink: WebPushSink
    commands: FakeCommands
    log: Path


def wait_until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout  # a failure guard only
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def running(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Running]:
    import uvicorn

    port = free_port()
    log = tmp_path / "notifier.log"
    with WebPushSink(expected_public_key=VAPID_PUBLIC) as sink:
        env = notifier_env(sink, kafka_bootstrap=kafka_bootstrap, port=port, folder=tmp_path, credential_keys=PUBLIC,
                           vapid_private_key=VAPID_PRIVATE, link_kid="app9")
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "attune_notifier"], env=env, cwd=tmp_path,
                                       stdout=out, stderr=subprocess.STDOUT)
        notifier = f"http://127.0.0.1:{port}"
        server = None
        thread = None
        try:
            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"the notifier exited: {log.read_text()[-3000:]}")
                try:
                    return httpx.get(f"{notifier}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_until(ready, "the notifier to be ready", timeout=90)

            url = f"sqlite+aiosqlite:///{tmp_path}/app.db"

            async def migrate() -> None:
                engine = make_engine(url)
                await upgrade(engine)
                await engine.dispose()

            asyncio.run(migrate())
            commands = FakeCommands()
            parts = build(settings_for(url, signing_key=SIGNING, notifier_url=notifier), clock=FakeClock(
                datetime.now(UTC)), commands=commands, checkins=FakeCheckins())
            app_port = free_port()
            server = uvicorn.Server(uvicorn.Config(parts.http, host="127.0.0.1", port=app_port, log_level="warning",
                                                  lifespan="off"))
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
            thread.start()
            app = f"http://127.0.0.1:{app_port}"

            def app_ready() -> bool:
                try:
                    return httpx.get(f"{app}/static/app.css", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_until(app_ready, "the app to serve")
            yield Running(app, notifier, sink, commands, log)
        finally:
            if server is not None and thread is not None:
                server.should_exit = True
                thread.join(10)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def publish(bootstrap: str, payload: Any, household: uuid.UUID) -> None:
    """As the service that owns the fact (the scheduler): the notifier refuses other producers."""
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            env = make_envelope(payload, household_id=household, producer=sender_of(payload))
            await producer.send_and_wait(spec_of(type(payload)).topic.value, value=env.to_bytes(notifier_field_keys()),
                                         key=str(household).encode())
        finally:
            await producer.stop()

    asyncio.run(send())


def test_a_member_subscribes_from_the_page_and_the_reminder_reaches_the_phone(
        running: Running, kafka_bootstrap: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base = running.app
    ana = _chromium(tmp_path / "ana")
    try:
        phone_screen(ana)
        ana.get(base + "/")
        ana.find_element(By.ID, "household_name").send_keys("Ana & Ben")
        ana.find_element(By.ID, "your_name").send_keys("Ana")
        ana.find_element(By.CSS_SELECTOR, "form[action='/start'] button[type=submit]").click()
        wait_for_url(ana, base + "/household")
        household_id, member = running.commands.sent[-1][0], running.commands.sent[-1][1]
        assert isinstance(member, UpsertMember)
        ana_id = member.member_id
        # The scheduler tells everyone about Ana (the app's command went to a fake scheduler here).
        publish(kafka_bootstrap, MemberUpserted(member_id=ana_id, display_name="Ana", role=MemberRole.PARTNER,
                                                time_zone="Europe/Lisbon"), household_id)

        def button_shown() -> bool:
            ana.get(base + "/reach")
            return bool(ana.find_elements(By.CSS_SELECTOR, "[data-webpush]"))
        ana.implicitly_wait(0)
        wait_until(button_shown, "the notifier to know Ana")
        ana.implicitly_wait(10)
        button = ana.find_element(By.CSS_SELECTOR, "[data-webpush]")
        assert button.get_attribute("data-vapid-key") == VAPID_PUBLIC
        assert button.size["height"] >= 44
        shot(ana, "7-reach")
        assert serious_violations(ana) == []

        phone = running.sink.subscribe("ana-phone")
        ana.execute_script("""
            const subscription = arguments[0];
            Notification.requestPermission = async () => "granted";
            PushManager.prototype.getSubscription = async () => null;
            PushManager.prototype.subscribe = async function (options) {
              window.askedWith = Array.from(new Uint8Array(options.applicationServerKey));
              return {toJSON: () => subscription};
            };""", phone.as_json())
        button.click()
        wait_until(lambda: button.get_attribute("data-webpush-state") not in (None, "working"), "the tap's outcome")
        assert button.get_attribute("data-webpush-state") == "subscribed", ana.find_element(By.ID, "push-status").text
        assert "This phone will now receive your reminders." in ana.find_element(By.ID, "push-status").text
        # The app's own service worker, at the root scope.
        scope = ana.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.serviceWorker.getRegistration('/').then(r => done(r ? r.scope : null), e => done(String(e)));")
        assert scope == base + "/"
        ana.get(base + "/reach")
        assert "1. Notifications on a phone" in ana.find_element(By.TAG_NAME, "main").text

        at = datetime.now(UTC) + timedelta(minutes=30)
        publish(kafka_bootstrap, RitualReminder(
            occurrence_id=uuid.uuid4(), ritual_id=uuid.uuid4(), template="evening_attunement",
            title="Evening attunement", participants=[ana_id], scheduled_for=at, local_time=at.isoformat(),
            time_zone="Europe/Lisbon", sensitive=False, reminder_id=uuid.uuid4(), offset_minutes=30,
            remind_at=datetime.now(UTC)), household_id)
        wait_until(lambda: bool(running.sink.pushes_for(phone)) or bool(running.sink.rejected), "the push",
                   timeout=90)
        assert running.sink.rejected == []
        [push] = running.sink.pushes_for(phone)
        assert push.vapid_public_key == VAPID_PUBLIC  # signed with the notifier's key, the page's key
        assert push.json["title"] == "Coming up: Evening attunement"
        assert "Evening attunement is at" in push.json["body"]
        assert push.json["url"].startswith("https://checkins.example.org/l/")

        # ntfy and the narrowest phones: the topic's page with its QR code fits in 320 px.
        ana.find_element(By.CSS_SELECTOR, "form[action='/reach/ntfy'] button[type=submit]").click()
        assert ana.find_element(By.ID, "ntfy-link").get_attribute("value").startswith("https://ntfy.sh/attune-")
        qr = ana.find_element(By.CSS_SELECTOR, ".qr svg")
        assert qr.is_displayed()
        ana.execute_script("document.getElementById('ntfy-link').scrollIntoView()")
        shot(ana, "8-reach-ntfy")
        assert serious_violations(ana) == []
        phone_screen(ana, 320, 640)
        ana.get(base + "/reach")
        assert serious_violations(ana) == []
        assert ana.execute_script("return document.documentElement.scrollWidth") <= 320
    finally:
        ana.quit()
    logged = running.log.read_text()
    assert VAPID_PRIVATE not in logged and phone.as_json()["keys"]["auth"] not in logged
