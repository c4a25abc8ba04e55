"""Two partners in two real browsers (Debian's headless Chromium, separate profiles): one creates the household
(the zone guessed by the page's script), makes a join link, the other opens it and joins with their own session.
axe-core finds no serious or critical accessibility problem on any screen. The app runs under uvicorn with fakes for the scheduler's topic and the check-ins API."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.sql import make_engine
from attune_app.bootstrap import build
from attune_contracts.messages import RegisterHousehold, UpsertMember
from attune_runtime.tansu import free_port

from .conftest import FakeCheckins, FakeClock, FakeCommands, settings_for

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[tuple[str, FakeCommands]]:
    import uvicorn

    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"

    async def migrate() -> None:
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    commands = FakeCommands()
    parts = build(settings_for(url), clock=FakeClock(datetime.now(UTC)), commands=commands, checkins=FakeCheckins())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(parts.http, host="127.0.0.1", port=port, log_level="warning",
                                          lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/static/app.css", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", commands
    finally:
        server.should_exit = True
        thread.join(10)


def _chromium(profile: Path) -> Any:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them from Debian's packages")
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=390,844"):
        options.add_argument(flag)
    # The phone's zone, as the page's script should find it.
    return webdriver.Chrome(service=Service(driver_path, env={**os.environ, "TZ": "Europe/Lisbon"}), options=options)


def serious_violations(driver: Any) -> list[str]:
    """axe-core (bundled with axe-selenium-python) on the page as shown: the serious and critical findings."""
    import axe_selenium_python

    script = Path(axe_selenium_python.__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
    driver.execute_script(script.read_text())
    result = driver.execute_async_script(
        "var done = arguments[arguments.length - 1]; axe.run(document).then(done, function (e) { done(String(e)); });")
    assert isinstance(result, dict), result
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in result["violations"]
            if v.get("impact") in ("serious", "critical")]


@pytest.fixture
def two_phones(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    ana = _chromium(tmp_path / "ana")
    try:
        ben = _chromium(tmp_path / "ben")
        try:
            yield ana, ben
        finally:
            ben.quit()
    finally:
        ana.quit()


def test_two_partners_create_and_join_in_their_own_browsers(app_server: tuple[str, FakeCommands],
                                                            two_phones: tuple[Any, Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base, commands = app_server
    ana, ben = two_phones
    ana.get(base + "/")
    assert serious_violations(ana) == []
    zone = ana.find_element(By.ID, "time_zone")
    assert zone.get_attribute("value") == "Europe/Lisbon"  # guessed by static/zone.js
    ana.find_element(By.ID, "household_name").send_keys("Ana & Ben")
    ana.find_element(By.ID, "your_name").send_keys("Ana")
    ana.find_element(By.CSS_SELECTOR, "form[action='/start'] button[type=submit]").click()
    assert ana.current_url == base + "/household"
    assert isinstance(commands.sent[0][1], RegisterHousehold) and commands.sent[0][1].time_zone == "Europe/Lisbon"
    ana.find_element(By.CSS_SELECTOR, "form[action='/invite'] button[type=submit]").click()
    link = ana.find_element(By.ID, "invite-link").get_attribute("value")
    assert link.startswith(base + "/join/")
    assert ana.find_element(By.CSS_SELECTOR, ".qr svg").is_displayed()
    ana.save_screenshot(str(tmp_path / "invite.png"))
    assert serious_violations(ana) == []

    ben.get(link)
    assert "Join Ana & Ben" in ben.find_element(By.TAG_NAME, "h1").text
    assert serious_violations(ben) == []
    ben.find_element(By.ID, "your_name").send_keys("Ben")
    ben.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert ben.current_url == base + "/today"
    joined = commands.sent[-1]
    assert isinstance(joined[1], UpsertMember) and joined[1].display_name == "Ben" and joined[0] == commands.sent[0][0]
    # Each has their own session: Ben's page is his, Ana's shows him in the household.
    ben.get(base + "/household")
    assert "Ben (you)" in ben.find_element(By.TAG_NAME, "main").text
    ana.get(base + "/household")
    assert "Ben" in ana.find_element(By.TAG_NAME, "main").text and "Ana (you)" in ana.find_element(
        By.TAG_NAME, "main").text
    # The link worked once: a third look says so.
    ben.get(link)
    assert "can't be used" in ben.find_element(By.TAG_NAME, "h1").text
    # At 320 px wide (the narrowest phones), nothing needs sideways scrolling, not even the QR code.
    ana.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": 320, "height": 640, "deviceScaleFactor": 1, "mobile": True})
    for page in ("/today", "/rituals", "/progress"):
        ana.get(base + page)
        assert serious_violations(ana) == [], page
        assert ana.execute_script("return window.innerWidth") == 320
        assert ana.execute_script("return document.documentElement.scrollWidth") <= 320, page
    ana.get(base + "/household")
    ana.find_element(By.CSS_SELECTOR, "form[action='/invite'] button[type=submit]").click()
    assert ana.execute_script("return document.documentElement.scrollWidth") <= 320
