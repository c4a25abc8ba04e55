"""Issue 15 in a real browser (Debian's headless Chromium): the day-before date-night reminder's links, tapped
the evening before, show what is coming and when they will work; after the date the same Done link checks in.
The check-ins HTTP app is served by uvicorn on loopback over the real store; the events arrive as the scheduler
publishes them; the SMS's short link is issued as the notifier issues it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from attune_contracts.messages import CheckInRecorded, CheckInStatus
from attune_runtime.tansu import free_port
from support.chromium import chromium

from .conftest import Api
from .test_checkins_reminder_links import date_night, issue_short_link

pytestmark = [pytest.mark.integration]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = chromium(tmp_path / "chromium")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def served(api: Api) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api.parts.http, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def test_the_day_before_reminder_link_in_a_browser(api: Api, served: str, browser: Any,
                                                         tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    at = api.h.clock.now() + timedelta(days=1)
    reminder, due = date_night(api, at)
    await api.h.send(reminder)
    done = api.mint(occurrence=due.occurrence_id)
    # Ben reads German: his SMS's short link leads to the page in German.
    ben = api.mint(occurrence=due.occurrence_id, member=api.h.ben, locale="de_DE")
    code = await issue_short_link(api, ben)
    api.h.clock.advance(hours=2)  # the evening before

    def visit(url: str) -> tuple[str, str]:
        browser.get(url)
        return browser.find_element(By.TAG_NAME, "h1").text, browser.find_element(By.TAG_NAME, "main").text

    title, text = await asyncio.to_thread(visit, f"{served}/l/{done}")
    assert title == "Coming up" and "Date night" in text and "this same link lets you check in" in text, text
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "coming-up.png"))
    title, text = await asyncio.to_thread(visit, f"{served}/s/{code}")  # the SMS's short link, same page
    assert title == "Bald ist es so weit" and browser.current_url.startswith(f"{served}/l/")
    assert "Date-Abend" in text and "kannst du mit diesem Link einchecken" in text, text
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
    assert api.h.sink.published == []

    await api.h.send(due, occurred_at=at)
    api.h.clock.set(at + timedelta(hours=3))  # after the date, the same link

    def check_in() -> str:
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        browser.get(f"{served}/l/{done}")
        browser.find_element(By.CSS_SELECTOR, 'button[value="5"]').click()
        # The click submits a form: read the page that answers it, not the one still showing (a loaded machine).
        # Waiting for the old page to go stale once failed with "Node ... does not belong to the document" (the
        # page swapped mid-query, load ~12): wait for the answer's heading instead, through such errors.
        WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(
            lambda driver: driver.find_element(By.TAG_NAME, "h1").text != "Nice one!")
        return browser.find_element(By.TAG_NAME, "main").text

    text = await asyncio.to_thread(check_in)
    assert "Recorded" in text and "5 of 5" in text, text

    def narrow(url: str) -> tuple[str, int, int]:
        browser.set_window_size(320, 640)
        browser.get(url)
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        return browser.find_element(By.TAG_NAME, "main").text, *width

    text, scroll_width, inner_width = await asyncio.to_thread(narrow, f"{served}/l/{ben}")
    # The German confirm page on a 320 px screen: its longer words wrap, nothing scrolls sideways.
    assert "Einfach als erledigt eintragen" in text and scroll_width <= inner_width, (scroll_width, inner_width)
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "bestaetigen-320.png"))
    [recorded] = api.h.sink.of(CheckInRecorded)
    assert (recorded.occurrence_id, recorded.status, recorded.closeness) == (due.occurrence_id, CheckInStatus.DONE, 5)
