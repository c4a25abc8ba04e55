"""Today's question in two real browsers (issue 14: "a question answered by both shows both answers"): Ana and
Ben, each in their own Chromium profile, answer the day's question on /today; the app sends each answer to the
REAL check-ins HTTP API (in process, its own SQLite store) with that person's credential, and each sees the
other's answer only once both have answered. axe-core finds nothing serious; nothing scrolls sideways at 320 px."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.sql import make_engine
from attune_app.adapters.upstream import HttpCheckins
from attune_app.bootstrap import build
from attune_app.handlers import make_handler
from attune_checkins.adapters.migrate import upgrade as upgrade_checkins
from attune_checkins.adapters.sql import make_engine as checkins_engine
from attune_checkins.bootstrap import Checkins
from attune_checkins.bootstrap import build as build_checkins
from attune_checkins.config import Settings as CheckinsSettings
from attune_contracts import catalog, make_envelope
from attune_contracts.messages import (
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
)
from attune_contracts.trust import sender_of
from attune_runtime.testing import FakeClock

from .conftest import FakeCommands, settings_for
from .test_app_browser import (  # noqa: F401 - fixtures
    phone_screen,
    serious_violations,
    serving,
    shot,
    start_together,
    submit,
    two_phones,
    wait_for_url,
)
from .test_app_checkins_api import Sink
from .test_app_questions import asked_for, curiosity_due

pytestmark = [pytest.mark.e2e]

QUESTION = catalog.CURIOSITY_QUESTIONS[0]


@dataclass
class Served:
    base: str
    commands: FakeCommands
    loop: asyncio.AbstractEventLoop
    store: Any
    checkins: Checkins

    def fact(self, payload: Any, household_id: Any) -> None:
        """A fact as both services' consumers would apply it, on the server's own loop."""
        envelope = make_envelope(payload, household_id=household_id, producer=sender_of(payload))

        async def apply() -> None:
            await self.checkins.service.handle(envelope)
            await make_handler(self.store)(envelope)

        asyncio.run_coroutine_threadsafe(apply(), self.loop).result(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    url, checkins_url = f"sqlite+aiosqlite:///{tmp_path}/app.db", f"sqlite+aiosqlite:///{tmp_path}/checkins.db"

    async def migrate() -> None:
        for engine, up in ((make_engine(url), upgrade), (checkins_engine(checkins_url), upgrade_checkins)):
            await up(engine)
            await engine.dispose()

    asyncio.run(migrate())
    settings = settings_for(url)
    checkins = build_checkins(CheckinsSettings(environment="development", kafka_create_topics=False,
                                               database_url=checkins_url, http_rate_per_s=1000, http_rate_burst=1000),
                              sink=Sink(), run_timer=False)
    api = HttpCheckins("http://checkins.test", settings.issuer(), timeout_s=5, ttl=timedelta(minutes=5),
                       transport=httpx.ASGITransport(app=checkins.http))
    commands = FakeCommands()
    parts = build(settings, clock=FakeClock(datetime.now(UTC)), commands=commands, checkins=api)
    with serving(parts.http) as (base, loop):
        yield Served(base, commands, loop, parts.store, checkins)


def test_both_partners_answer_todays_question_and_each_sees_both(served: Served, two_phones: tuple[Any, Any]) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    base, commands = served.base, served.commands
    ana, ben = two_phones
    phone_screen(ana)
    phone_screen(ben)
    start_together(ana, ben, base)
    household_id, ana_id, ben_id = commands.sent[0][0], commands.sent[1][1].member_id, commands.sent[-1][1].member_id

    # The scheduler's facts, the curiosity ritual due now, and the notifier's pick for it.
    served.fact(HouseholdRegistered(name="Ana & Ben", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE),
                household_id)
    for member_id, name in ((ana_id, "Ana"), (ben_id, "Ben")):
        served.fact(MemberUpserted(member_id=member_id, display_name=name, role=MemberRole.PARTNER,
                                   time_zone="Europe/Lisbon"), household_id)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    due = curiosity_due([ana_id, ben_id], now, "Europe/Lisbon")
    served.fact(due, household_id)
    served.fact(asked_for(due, QUESTION), household_id)

    def question_text(driver: Any) -> str:
        return driver.find_element(By.CSS_SELECTOR, "section.question").text

    def answer(driver: Any, words: str) -> None:
        field = driver.find_element(By.CSS_SELECTOR, "section.question textarea")
        label = driver.find_element(By.CSS_SELECTOR, f"label[for='{field.get_attribute('id')}']")
        assert "Your answer" in label.text  # labelled for screen readers
        field.send_keys(words)
        submit(driver, "section.question button[type=submit]")  # back to /today: the same address, a new page
        wait_for_url(driver, base + "/today")

    ana.get(base + "/today")
    assert QUESTION in question_text(ana) and "Today's question" in question_text(ana)
    assert serious_violations(ana) == []
    answer(ana, "The walk home along the river")
    waiting = question_text(ana)
    assert "The walk home along the river" in waiting and "Waiting for Ben's answer" in waiting
    shot(ana, "9-question-waiting")
    assert serious_violations(ana) == []

    ben.get(base + "/today")
    before = question_text(ben)
    assert "Ana has answered" in before and "The walk home along the river" not in before
    answer(ben, "When you laughed at breakfast")
    for driver in (ana, ben):
        driver.get(base + "/today")
        both = question_text(driver)
        assert "The walk home along the river" in both and "When you laughed at breakfast" in both
        assert "Waiting" not in both
        assert not driver.find_elements(By.CSS_SELECTOR, "section.question textarea")  # answered: no form
    shot(ben, "10-question-both")
    assert serious_violations(ben) == []
    # At 320 px wide the two answers stack and nothing scrolls sideways; the answer button is a 44 px target.
    phone_screen(ben, 320, 640)
    ben.get(base + "/today")
    assert ben.execute_script("return document.documentElement.scrollWidth") <= 320
    assert serious_violations(ben) == []
    # A second question today (a child's ritual, say) brings a fresh form: its button is a 44 px target.
    served.fact(asked_for(curiosity_due([ana_id, ben_id], now, "Europe/Lisbon"), catalog.CURIOSITY_QUESTIONS[5]),
                household_id)
    ana.get(base + "/today")
    button = ana.find_element(By.CSS_SELECTOR, "section.question button[type=submit]")
    assert button.size["height"] >= 44
