"""The newer screens in real browsers (two Chromium profiles = two partners): the charts of "How we're doing", the
dreams board (Ana shares, Ben supports, Ana reaches it, Ben sees it celebrated) and "we just connected" (both say
yes, the button, the card). axe-core finds no serious or critical problem on any of them, at 390 and 320 px."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from attune_contracts.messages import (
    AfterCareConsentChanged,
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    DateNightAdherenceUpdated,
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    MomentKind,
    MomentLogged,
    RitualScheduled,
    RitualState,
)

from .test_app_browser import (  # noqa: F401 - fixtures
    Served,
    app_server,
    phone_screen,
    serious_violations,
    shot,
    start_together,
    submit,
    two_phones,
    wait_for_url,
)

pytestmark = [pytest.mark.e2e]


def main_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "main").text


def check_narrow(driver: Any, base: str, page: str) -> None:
    phone_screen(driver, 320, 640)
    driver.get(base + page)
    assert serious_violations(driver) == [], page
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 320, page
    phone_screen(driver)


def test_charts_dreams_and_we_just_connected(app_server: Served, two_phones: tuple[Any, Any]) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    base, commands = app_server.base, app_server.commands
    ana, ben = two_phones
    phone_screen(ana)
    phone_screen(ben)
    start_together(ana, ben, base)
    household_id, ana_id, ben_id = commands.sent[0][0], commands.sent[1][1].member_id, commands.sent[-1][1].member_id
    app_server.fact(HouseholdRegistered(name="Ana & Ben", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE),
                    household_id)
    for member_id, name in ((ana_id, "Ana"), (ben_id, "Ben")):
        app_server.fact(MemberUpserted(member_id=member_id, display_name=name, role=MemberRole.PARTNER,
                                       time_zone="Europe/Lisbon"), household_id)

    # Four weeks of facts from check-ins: Ana's closeness ratings, moments, date nights kept.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for days_ago, rating in ((20, 3), (19, 3), (15, 4), (12, 2), (9, 4), (6, 4), (5, 5), (2, 4), (1, 5)):
        at = now - timedelta(days=days_ago)
        app_server.fact(CheckInRecorded(
            checkin_id=uuid4(), occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement",
            member_id=ana_id, status=CheckInStatus.DONE, closeness=rating, scheduled_for=at, recorded_at=at,
            source=CheckInSource.API), household_id)
    for days_ago, kind in ((22, "positive"), (21, "negative"), (16, "positive"), (15, "positive"), (8, "positive"),
                           (8, "positive"), (7, "negative"), (3, "positive"), (2, "positive"), (1, "positive"),
                           (0, "positive")):
        app_server.fact(MomentLogged(moment_id=uuid4(), member_id=ben_id, kind=MomentKind(kind),
                                     happened_at=now - timedelta(days=days_ago)), household_id)
    date_night = uuid4()
    app_server.fact(RitualScheduled(
        ritual_id=date_night, template="date_night", title="Date night", participants=[ana_id, ben_id],
        rrule="FREQ=WEEKLY;BYDAY=FR", local_time="19:30", start_date=now.date(), time_zone="Europe/Lisbon",
        reminder_offsets_minutes=[], catch_up_minutes=60, sensitive=False, state=RitualState.ACTIVE), household_id)
    app_server.fact(DateNightAdherenceUpdated(ritual_id=date_night, kept=3, expected=4), household_id)

    ana.get(base + "/progress")
    progress = main_text(ana)
    assert "Date night: 3 of 4 kept in the last four weeks." in progress
    assert "you rated how close you felt 9 times" in progress and "Over the last four weeks: 9 kind" in progress
    assert len(ana.find_elements(By.CSS_SELECTOR, "figure.chart svg[role=img]")) == 2
    ana.execute_script("document.getElementById('closeness-title').scrollIntoView()")  # the charts, not the top
    shot(ana, "9-progress-charts")
    assert serious_violations(ana) == []
    check_narrow(ana, base, "/progress")

    # The dreams board: Ana shares, Ben supports, Ana reaches it, Ben sees it celebrated.
    ana.get(base + "/dreams")
    ana.find_element(By.ID, "dream").send_keys("Walk the Camino together")
    submit(ana, "form[action='/dreams'] button[type=submit]")
    wait_for_url(ana, base + "/dreams")
    ben.get(base + "/dreams")
    assert "Walk the Camino together" in main_text(ben)
    submit(ben, "form[action$='/support'] button")
    wait_for_url(ben, base + "/dreams")
    ana.get(base + "/dreams")
    assert "Ben supports this" in main_text(ana)
    submit(ana, "form[action$='/reached'] button")
    wait_for_url(ana, base + "/dreams")
    ben.get(base + "/dreams")
    assert "Ana reached a dream: \u201cWalk the Camino together\u201d. Celebrate it together!" in main_text(ben)
    shot(ben, "10-dreams")
    assert serious_violations(ben) == []
    check_narrow(ben, base, "/dreams")

    # We just connected: each says yes in their own session; then the discreet button; then the card.
    for driver, member_id in ((ana, ana_id), (ben, ben_id)):
        driver.get(base + "/rituals")
        driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=aftercare-offer] details summary").click()
        submit(driver, "form[action='/aftercare/consent'] button[value=yes]")
        wait_for_url(driver, base + "/rituals")
        app_server.fact(AfterCareConsentChanged(member_id=member_id, given=True, changed_at=now), household_id)
    ana.get(base + "/today")
    assert "We just connected" in main_text(ana)
    assert serious_violations(ana) == []
    submit(ana, "form[action='/aftercare'] button")
    wait_for_url(ana, base + "/today")
    assert "A moment for the two of you" in main_text(ana)
    shot(ana, "11-we-just-connected")
    assert serious_violations(ana) == []
    check_narrow(ana, base, "/today")
