"""The local inbox in a real browser (Debian's headless Chromium): a reminder arrives, its Done button works."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import apprise
import httpx
import pytest
from attune_runtime.tansu import free_port
from support.chromium import chromium

pytestmark = [pytest.mark.e2e]


class _CheckinPage(BaseHTTPRequestHandler):
    """Stands in for the check-ins service's one-tap page; records which links were opened."""

    opened: ClassVar[list[str]] = []  # the server makes a handler per request

    def do_GET(self) -> None:
        self.opened.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body><h1>Recorded: done</h1></body></html>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def browser(tmp_path: Path):
    driver = chromium(tmp_path / "chromium", window=(430, 900))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def inbox():
    port, smtp = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "attune_cli.inbox", "--port", str(port), "--smtp-port", str(smtp)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/messages", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield port, smtp
    finally:
        process.terminate()
        process.wait(10)


def test_a_reminder_arrives_and_done_is_clicked(browser, inbox, tmp_path: Path) -> None:
    port, _ = inbox
    page_server = HTTPServer(("127.0.0.1", 0), _CheckinPage)
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    links = f"http://127.0.0.1:{page_server.server_port}/l"
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        assert "No messages yet" in browser.page_source

        notifier = apprise.Apprise()
        notifier.add(f"json://127.0.0.1:{port}/push/ana")
        assert notifier.notify(title="Evening attunement",
                               body=f"How did today feel?\nDone: {links}/k1.done-token\nSkip: {links}/k1.skip-token")

        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        card = WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card"))[0]
        assert "Evening attunement" in card.text and "to ana" in card.text
        browser.save_screenshot(str(tmp_path / "inbox.png"))
        assert (tmp_path / "inbox.png").stat().st_size > 1000
        card.find_element(By.CSS_SELECTOR, 'a[data-action="done"]').click()
        WebDriverWait(browser, 10).until(lambda d: "Recorded: done" in d.page_source)
        assert [path for path in _CheckinPage.opened if path.startswith("/l/")] == ["/l/k1.done-token"]
    finally:
        page_server.shutdown()
