"""subscribe.js in real headless Chromium: a tap asks for permission, registers the service worker, subscribes
with the VAPID public key and POSTs the subscription (with the CSRF header) to the page's data- URL.

Headless Chromium here reaches no push service, so `PushManager.subscribe` is replaced in the page by one that
records the key it was given and returns a subscription from the local push endpoint (tests/support); the
app's browser test can do the same. Everything else (permission flow, worker registration, the POST) is real.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from attune_notifier.webpush import (
    b64url_decode,
    generate_private_key_text,
    load_private_key,
    public_key_text,
)
from support.chromium import chromium

pytestmark = [pytest.mark.e2e]

PUSH_DIR = Path(__file__).resolve().parents[2] / "services/app/attune_app/static/push"
VAPID_PUBLIC = public_key_text(load_private_key(generate_private_key_text()))
SUBSCRIPTION = {"endpoint": "https://127.0.0.1:9/push/abc", "expirationTime": None,
                "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                         "auth": "tBHItJI5svbpez7KI4CCXg"}}
PAGE = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Settings</title></head><body>
<button type="button" data-webpush data-vapid-key="{VAPID_PUBLIC}" data-subscribe-url="/settings/push"
        data-worker-url="/static/push/sw.js" data-csrf-token="csrf-123" data-status="push-status">
  Send reminders to this phone</button>
<p id="push-status" role="status" aria-live="polite"></p>
<script src="/static/push/subscribe.js"></script></body></html>"""


class _App(BaseHTTPRequestHandler):
    posted: ClassVar[list[tuple[dict[str, str], Any]]] = []

    def do_GET(self) -> None:
        if self.path == "/":
            self._answer(200, "text/html", PAGE.encode())
        elif self.path in ("/static/push/subscribe.js", "/static/push/sw.js"):
            self._answer(200, "text/javascript", (PUSH_DIR / self.path.rsplit("/", 1)[1]).read_bytes())
        else:
            self._answer(404, "text/plain", b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.posted.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
        self._answer(201, "application/json", b"{}")

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app_server() -> Iterator[str]:
    _App.posted = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = chromium(tmp_path / "chromium")
    try:
        yield driver
    finally:
        driver.quit()


def stub_push(browser: Any, permission: str) -> None:
    browser.execute_script("""
        const [permission, subscription] = arguments;
        Notification.requestPermission = async () => permission;
        PushManager.prototype.getSubscription = async () => null;
        PushManager.prototype.subscribe = async function (options) {
          window.askedFor = {key: Array.from(new Uint8Array(options.applicationServerKey)),
                             userVisibleOnly: options.userVisibleOnly};
          return {toJSON: () => subscription};
        };""", permission, SUBSCRIPTION)


def state_after_tap(browser: Any) -> str:
    browser.find_element("css selector", "[data-webpush]").click()
    deadline = time.monotonic() + 30  # a failure guard only
    while time.monotonic() < deadline:
        state = browser.find_element("css selector", "[data-webpush]").get_attribute("data-webpush-state")
        if state not in (None, "working"):
            return state
        time.sleep(0.1)
    raise AssertionError("subscribe.js never finished")


def test_a_tap_subscribes_with_the_vapid_key_and_posts_the_subscription(browser: Any, app_server: str) -> None:
    browser.get(app_server + "/")
    stub_push(browser, "granted")
    assert state_after_tap(browser) == "subscribed"

    [(headers, body)] = _App.posted
    assert body == SUBSCRIPTION and headers["x-csrf-token"] == "csrf-123"
    asked = browser.execute_script("return window.askedFor")
    assert bytes(asked["key"]) == b64url_decode(VAPID_PUBLIC) and asked["userVisibleOnly"] is True
    assert browser.execute_script("return navigator.serviceWorker.getRegistration('/static/push/')") is not None
    status = browser.find_element("id", "push-status").text
    assert status == "This phone will now receive your reminders."


def test_a_refusal_posts_nothing_and_says_how_to_change_it_later(browser: Any, app_server: str) -> None:
    browser.get(app_server + "/")
    stub_push(browser, "denied")
    assert state_after_tap(browser) == "denied"
    assert _App.posted == []
    assert "turn them on in your browser's settings" in browser.find_element("id", "push-status").text
