"""Two partners in two real browsers (Debian's headless Chromium, separate profiles): one creates the household
(the zone guessed by the page's script), makes a join link, the other opens it and joins with their own session.
axe-core finds no serious or critical accessibility problem on any screen. The app runs under uvicorn with fakes for the scheduler's topic and the check-ins API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.sql import make_engine
from attune_app.bootstrap import build
from attune_app.handlers import make_handler
from attune_contracts import make_envelope
from attune_contracts.messages import (
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    MomentKind,
    MomentLogged,
    RegisterHousehold,
    RitualDue,
    RitualScheduled,
    RitualState,
    StreakUnit,
    StreakUpdated,
    UpsertMember,
)
from attune_contracts.trust import sender_of
from attune_runtime.tansu import free_port
from attune_runtime.testing import FakeClock
from support.chromium import chromium

from .conftest import FakeCheckins, FakeCommands, settings_for

# ATTUNE_APP_SCREENSHOTS=docs/app makes the test save each screen at 390x844 there (the README shows them).
SCREENSHOTS = os.environ.get("ATTUNE_APP_SCREENSHOTS")

pytestmark = [pytest.mark.e2e]


@dataclass
class Served:
    base: str
    commands: FakeCommands
    loop: asyncio.AbstractEventLoop
    store: Any

    def fact(self, payload: Any, household_id: Any) -> None:
        """A fact as the consumer would apply it, on the server's own loop (the store's connections live there)."""
        envelope = make_envelope(payload, household_id=household_id, producer=sender_of(payload))
        asyncio.run_coroutine_threadsafe(make_handler(self.store)(envelope), self.loop).result(10)


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"

    async def migrate() -> None:
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    commands = FakeCommands()
    parts = build(settings_for(url), clock=FakeClock(datetime.now(UTC)), commands=commands, checkins=FakeCheckins())
    with serving(parts.http) as (base, loop):
        yield Served(base, commands, loop, parts.store)


@contextlib.contextmanager
def serving(http: Any) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """The app under uvicorn on its own loop in a thread: (its base URL, that loop) until the block ends."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(http, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/static/app.css", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", loop
    finally:
        server.should_exit = True
        thread.join(10)


def _chromium(profile: Path) -> Any:
    # The phone's zone, as the page's script should find it.
    driver = chromium(profile, env={**os.environ, "TZ": "Europe/Lisbon"})
    driver.implicitly_wait(10)  # elements of the page a click leads to
    return driver


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


def wait_for_url(driver: Any, url: str) -> None:
    """A click that submits a form returns before the next page has loaded."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(expected_conditions.url_to_be(url))


def submit(driver: Any, selector: str) -> None:
    """Click a form's button and wait for the page the server answers with.

    A form may post back to the address it came from, so the URL cannot tell the new page has come. A mark set on
    the old page's window can: it goes with that page. While the page changes, Chromium may answer any question
    about it with an error (stale element, "Node with given id does not belong to the document", a destroyed
    execution context); those mean "not yet" and are waited out."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__attuneOldPage = true;")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.__attuneOldPage && document.readyState === 'complete';"))


def start_together(ana: Any, ben: Any, base: str) -> str:
    """Ana starts "Ana & Ben" and invites Ben; Ben joins from the link in his own browser. Returns the link."""
    from selenium.webdriver.common.by import By

    ana.get(base + "/")
    ana.find_element(By.ID, "household_name").send_keys("Ana & Ben")
    ana.find_element(By.ID, "your_name").send_keys("Ana")
    submit(ana, "form[action='/start'] button[type=submit]")
    wait_for_url(ana, base + "/household")
    submit(ana, "form[action='/invite'] button[type=submit]")
    link = str(ana.find_element(By.ID, "invite-link").get_attribute("value"))
    ben.get(link)
    ben.find_element(By.ID, "your_name").send_keys("Ben")
    submit(ben, "form button[type=submit]")
    wait_for_url(ben, base + "/today")
    return link


def phone_screen(driver: Any, width: int = 390, height: int = 844) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})


def shot(driver: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))


def test_two_partners_create_and_join_in_their_own_browsers(app_server: Served, two_phones: tuple[Any, Any],
                                                            tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base, commands = app_server.base, app_server.commands
    ana, ben = two_phones
    phone_screen(ana)
    phone_screen(ben)
    ana.get(base + "/")
    shot(ana, "1-start")
    assert serious_violations(ana) == []
    zone = ana.find_element(By.ID, "time_zone")
    assert zone.get_attribute("value") == "Europe/Lisbon"  # guessed by static/zone.js
    ana.find_element(By.ID, "household_name").send_keys("Ana & Ben")
    ana.find_element(By.ID, "your_name").send_keys("Ana")
    submit(ana, "form[action='/start'] button[type=submit]")
    wait_for_url(ana, base + "/household")
    assert isinstance(commands.sent[0][1], RegisterHousehold) and commands.sent[0][1].time_zone == "Europe/Lisbon"
    submit(ana, "form[action='/invite'] button[type=submit]")
    link = ana.find_element(By.ID, "invite-link").get_attribute("value")
    assert link.startswith(base + "/join/")
    assert ana.find_element(By.CSS_SELECTOR, ".qr svg").is_displayed()
    shot(ana, "2-invite")
    assert serious_violations(ana) == []

    ben.get(link)
    assert "Join Ana & Ben" in ben.find_element(By.TAG_NAME, "h1").text
    shot(ben, "3-join")
    assert serious_violations(ben) == []
    ben.find_element(By.ID, "your_name").send_keys("Ben")
    submit(ben, "form button[type=submit]")
    wait_for_url(ben, base + "/today")
    joined = commands.sent[-1]
    assert isinstance(joined[1], UpsertMember) and joined[1].display_name == "Ben" and joined[0] == commands.sent[0][0]
    # Each has their own session: Ben's page is his, Ana's shows him in the household.
    ben.get(base + "/household")
    assert "Ben (you)" in ben.find_element(By.TAG_NAME, "main").text
    ana.get(base + "/household")
    assert "Ben" in ana.find_element(By.TAG_NAME, "main").text and "Ana (you)" in ana.find_element(
        By.TAG_NAME, "main").text
    # The scheduler's and the check-ins' facts arrive: a ritual due tonight that Ben kept, a streak, moments.
    household_id, ana_id, ben_id = commands.sent[0][0], commands.sent[1][1].member_id, joined[1].member_id
    app_server.fact(HouseholdRegistered(name="Ana & Ben", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE),
                    household_id)
    for member_id, name in ((ana_id, "Ana"), (ben_id, "Ben")):
        app_server.fact(MemberUpserted(member_id=member_id, display_name=name, role=MemberRole.PARTNER,
                                       time_zone="Europe/Lisbon"), household_id)
    ritual_id, occurrence_id, now = uuid4(), uuid4(), datetime.now(UTC).replace(second=0, microsecond=0)
    app_server.fact(RitualScheduled(
        ritual_id=ritual_id, template="evening_attunement", title="Evening attunement",
        participants=[ana_id, ben_id], rrule="FREQ=DAILY", local_time=now.strftime("%H:%M"), start_date=now.date(),
        time_zone="UTC", reminder_offsets_minutes=[], catch_up_minutes=90, sensitive=False,
        state=RitualState.ACTIVE), household_id)
    app_server.fact(RitualDue(
        occurrence_id=occurrence_id, ritual_id=ritual_id, template="evening_attunement", title="Evening attunement",
        participants=[ana_id, ben_id], scheduled_for=now, local_time=now.isoformat(), time_zone="UTC",
        sensitive=False, deadline=now + timedelta(hours=12)), household_id)
    app_server.fact(CheckInRecorded(
        checkin_id=uuid4(), occurrence_id=occurrence_id, ritual_id=ritual_id, template="evening_attunement",
        member_id=ben_id, status=CheckInStatus.DONE, closeness=5, scheduled_for=now, recorded_at=now,
        source=CheckInSource.API), household_id)
    app_server.fact(StreakUpdated(ritual_id=ritual_id, template="evening_attunement", length=4,
                                  unit=StreakUnit.DAYS, best=6), household_id)
    for kind in (MomentKind.POSITIVE,) * 6 + (MomentKind.NEGATIVE,):
        app_server.fact(MomentLogged(moment_id=uuid4(), member_id=ana_id, kind=kind, happened_at=now), household_id)
    ana.get(base + "/today")
    assert "Ben kept it" in ana.find_element(By.TAG_NAME, "main").text
    shot(ana, "4-today")
    ana.get(base + "/rituals")
    shot(ana, "5-rituals")
    ana.get(base + "/progress")
    progress = ana.find_element(By.TAG_NAME, "main").text
    assert "4 days in a row" in progress and "6 kind moments to 1 hard" in progress
    shot(ana, "6-progress")
    # The link worked once: a third look says so.
    ben.get(link)
    assert "can't be used" in ben.find_element(By.TAG_NAME, "h1").text
    # At 320 px wide (the narrowest phones), nothing needs sideways scrolling, not even the QR code.
    phone_screen(ana, 320, 640)
    for page in ("/today", "/rituals", "/progress"):
        ana.get(base + page)
        assert serious_violations(ana) == [], page
        assert ana.execute_script("return window.innerWidth") == 320
        assert ana.execute_script("return document.documentElement.scrollWidth") <= 320, page
    ana.get(base + "/household")
    submit(ana, "form[action='/invite'] button[type=submit]")
    ana.find_element(By.ID, "invite-link")  # the page with the QR code
    assert ana.execute_script("return document.documentElement.scrollWidth") <= 320
