"""The app's pages through its HTTP interface, with the real store and fakes for the scheduler's command
topic and the check-ins API: each flow, and each refusal (CSRF, another household, a used join link)."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from attune_app.handlers import make_handler
from attune_contracts import make_envelope
from attune_contracts.messages import (
    GiveConsent,
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    RegisterHousehold,
    RitualDue,
    RitualScheduled,
    RitualState,
    ScheduleRitual,
    StreakUnit,
    StreakUpdated,
    UpsertMember,
)

from .conftest import Browser, Harness, start_household

pytestmark = [pytest.mark.unit]

LINK = re.compile(r'value="(http://app\.test/join/[A-Za-z0-9_\-]+)"')


async def fact(h: Harness, payload: object, household_id: UUID, producer: str = "scheduler") -> None:
    await make_handler(h.parts.store)(make_envelope(payload, household_id=household_id, producer=producer))


async def started(h: Harness, browser: Browser, **kw: str) -> tuple[UUID, UUID]:
    response = await start_household(browser, **kw)
    assert response.status_code == 303, response.text
    household_id, register = h.commands.sent[-2]
    member = h.commands.sent[-1][1]
    assert isinstance(register, RegisterHousehold) and isinstance(member, UpsertMember)
    return household_id, member.member_id


async def invite_link(browser: Browser, role: str = "partner") -> str:
    response = await browser.submit("/household", "/invite", {"role": role})
    assert response.status_code == 200, response.text
    found = LINK.search(response.text)
    assert found, "no join link on the page"
    assert "<svg" in response.text  # the QR code, inline
    return found.group(1).removeprefix("http://app.test")


async def test_creating_a_household_sends_the_commands_and_signs_you_in(harness: Harness) -> None:
    ana = harness.browser()
    response = await start_household(ana, name="Ana & Ben", you="Ana", zone="Europe/Lisbon")
    assert response.status_code == 303 and response.headers["location"] == "/household", response.text[-1500:]
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "attune_session" in v)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie  # development: not Secure (plain http on loopback)
    household_id, register = harness.commands.sent[0]
    assert register == RegisterHousehold(name="Ana & Ben", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE)
    member = harness.commands.sent[1][1]
    assert harness.commands.sent[1][0] == household_id and member.display_name == "Ana"
    page = await ana.get("/household")
    assert page.status_code == 200 and "Ana &amp; Ben" in page.text and "Still being set up" in page.text
    await fact(harness, HouseholdRegistered(name="Ana & Ben", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE),
               household_id)
    assert "Still being set up" not in (await ana.get("/household")).text


async def test_a_bad_time_zone_is_refused_with_words_and_nothing_is_sent(harness: Harness) -> None:
    ana = harness.browser()
    response = await start_household(ana, zone="Mars/Olympus")
    assert response.status_code == 422 and "time zone" in response.text
    assert harness.commands.sent == []


@pytest.mark.parametrize("token", [None, "", "0" * 64])
async def test_a_post_without_the_form_token_is_refused(harness: Harness, token: str | None) -> None:
    ana = harness.browser()
    await ana.get("/")  # the browser cookie exists: only the token is wrong
    data = {"household_name": "X", "kind": "couple", "your_name": "Ana", "role": "partner", "time_zone": "UTC"}
    if token is not None:
        data["csrf"] = token
    response = await ana.client.post("/start", data=data)
    assert response.status_code == 403
    assert harness.commands.sent == []


async def test_another_browsers_form_token_is_refused(harness: Harness) -> None:
    ana, mallory = harness.browser(), harness.browser()
    await started(harness, ana)
    token = await mallory.csrf("/")  # a token from another browser (another cookie)
    sent = len(harness.commands.sent)
    response = await ana.client.post("/invite", data={"csrf": token, "role": "partner"})
    assert response.status_code == 403
    assert len(harness.commands.sent) == sent


async def test_a_join_link_lets_one_person_in_once(harness: Harness) -> None:
    ana, ben, eve = harness.browser(), harness.browser(), harness.browser()
    household_id, _ = await started(harness, ana)
    link = await invite_link(ana)
    page = await ben.get(link)
    assert page.status_code == 200 and "Join Ana &amp; Ben" in page.text
    response = await ben.submit(link, link, {"your_name": "Ben"})
    assert response.status_code == 303 and response.headers["location"] == "/today"
    upsert = harness.commands.sent[-1]
    assert upsert[0] == household_id and upsert[1].display_name == "Ben" and upsert[1].role is MemberRole.PARTNER
    assert "Ben" in (await ben.get("/household")).text
    # Used: the link opens nothing for anyone else, and a replayed POST adds nobody.
    assert (await eve.get(link)).status_code == 410
    sent = len(harness.commands.sent)
    replay = await eve.client.post(link, data={"csrf": await eve.csrf("/"), "your_name": "Eve"})
    assert replay.status_code == 410 and "already been used" in replay.text
    assert len(harness.commands.sent) == sent


async def test_a_join_link_expires(harness: Harness) -> None:
    ana, ben = harness.browser(), harness.browser()
    await started(harness, ana)
    link = await invite_link(ana)
    harness.clock.advance(hours=73)
    response = await ben.get(link)
    assert response.status_code == 410 and "expired" in response.text
    assert (await ben.get("/join/not-a-token")).status_code == 410


async def test_only_the_hash_of_a_join_link_is_stored(harness: Harness) -> None:
    from attune_app.adapters.tables import invites
    from sqlalchemy import select

    ana = harness.browser()
    await started(harness, ana)
    token = (await invite_link(ana)).rsplit("/", 1)[1]
    async with harness.parts.store.engine.connect() as conn:
        stored = (await conn.execute(select(invites.c.token_hash))).scalars().all()
    assert len(stored) == 1 and token not in stored[0]


async def test_a_consumed_member_shows_on_the_page(harness: Harness) -> None:
    ana = harness.browser()
    household_id, _ = await started(harness, ana)
    zara = uuid4()
    await fact(harness, MemberUpserted(member_id=zara, display_name="Zara", role=MemberRole.CHILD,
                                       time_zone="Europe/Lisbon"), household_id)
    assert "Zara" in (await ana.get("/household")).text


async def test_another_households_ritual_and_occurrence_are_not_found(harness: Harness) -> None:
    ana, cleo = harness.browser(), harness.browser()
    household_a, ana_id = await started(harness, ana)
    await started(harness, cleo, name="Cleo & Dan", you="Cleo")
    ritual_id, occurrence_id = uuid4(), uuid4()
    now = harness.clock.now()
    await fact(harness, RitualScheduled(
        ritual_id=ritual_id, template="experiment", title="Try something new", participants=[ana_id],
        rrule="FREQ=WEEKLY;BYDAY=FR", local_time="20:00", start_date=now.date(), time_zone="Europe/Lisbon",
        reminder_offsets_minutes=[], catch_up_minutes=60, sensitive=True, state=RitualState.AWAITING_CONSENT),
        household_a)
    await fact(harness, RitualDue(
        occurrence_id=occurrence_id, ritual_id=ritual_id, template="evening_attunement", title="Evening attunement",
        participants=[ana_id], scheduled_for=now, local_time=now.isoformat(), time_zone="Europe/Lisbon",
        sensitive=False, deadline=now + timedelta(hours=12)), household_a)
    sent, posts = len(harness.commands.sent), len(harness.checkins.posts)
    consent = await cleo.submit("/rituals", f"/rituals/{ritual_id}/consent", {})
    checkin = await cleo.submit("/today", "/checkins", {"occurrence_id": str(occurrence_id), "status": "done"})
    assert consent.status_code == 404 and checkin.status_code == 404
    assert len(harness.commands.sent) == sent and len(harness.checkins.posts) == posts
    assert "Evening attunement" not in (await cleo.get("/today")).text
    assert "Evening attunement" in (await ana.get("/today")).text


async def test_pages_need_a_session(harness: Harness) -> None:
    stranger = harness.browser()
    for page in ("/today", "/rituals", "/household", "/progress"):
        response = await stranger.get(page)
        assert response.status_code == 303 and response.headers["location"] == "/"
    response = await stranger.submit("/", "/checkins", {"occurrence_id": str(uuid4()), "status": "done"})
    assert response.status_code == 401


async def test_scheduling_a_ritual_and_a_sensitive_one_waits_without_being_named(harness: Harness) -> None:
    ana, ben = harness.browser(), harness.browser()
    household_id, ana_id = await started(harness, ana)
    link = await invite_link(ana)
    await ben.submit(link, link, {"your_name": "Ben"})
    ben_id = harness.commands.sent[-1][1].member_id
    catalog = await ana.get("/rituals")
    assert "Step 1: Attune to each other" in catalog.text and "Why it matters" in catalog.text
    response = await ana.submit("/rituals", "/rituals", {"template": "date_night", "days": ["FR"],
                                                         "local_time": "19:30",
                                                         "participants": [str(ana_id), str(ben_id)]})
    assert response.status_code == 303
    scheduled = harness.commands.of(ScheduleRitual)[-1]
    assert scheduled.template == "date_night" and scheduled.rrule == "FREQ=WEEKLY;BYDAY=FR"
    assert scheduled.local_time == "19:30" and set(scheduled.participants) == {ana_id, ben_id}
    # A sensitive one: asking is Ana's consent; Ben sees that something waits, not what it is.
    await ana.submit("/rituals", "/rituals", {"template": "experiment_together", "participants": [str(ana_id), str(ben_id)]})
    experiment = harness.commands.of(ScheduleRitual)[-1]
    assert harness.commands.of(GiveConsent)[-1] == GiveConsent(ritual_id=experiment.ritual_id, member_id=ana_id)
    await fact(harness, RitualScheduled(
        ritual_id=experiment.ritual_id, template="experiment_together", title="Try something new together",
        participants=[ana_id, ben_id], rrule=experiment.rrule, local_time=experiment.local_time,
        start_date=experiment.start_date, time_zone="Europe/Lisbon", reminder_offsets_minutes=[],
        catch_up_minutes=60, sensitive=True, state=RitualState.AWAITING_CONSENT), household_id)
    from attune_contracts.messages import ConsentGiven

    await fact(harness, ConsentGiven(ritual_id=experiment.ritual_id, member_id=ana_id,
                                     state=RitualState.AWAITING_CONSENT), household_id)
    ben_page = (await ben.get("/rituals")).text
    mine = ben_page.split("Choose a ritual")[0]
    assert "A private ritual" in mine and "Try something new together" not in mine
    assert "Try something new together" in (await ana.get("/rituals")).text.split("Choose a ritual")[0]
    response = await ben.submit("/rituals", f"/rituals/{experiment.ritual_id}/consent", {})
    assert response.status_code == 303
    assert harness.commands.of(GiveConsent)[-1] == GiveConsent(ritual_id=experiment.ritual_id, member_id=ben_id)


async def test_a_ritual_the_scheduler_refuses_says_so(harness: Harness) -> None:
    from attune_contracts.messages import SchedulerCommandRejected

    ana = harness.browser()
    household_id, _ = await started(harness, ana)
    await ana.submit("/rituals", "/rituals", {"template": "date_night"})
    assert "Being set up" in (await ana.get("/rituals")).text
    command_id = harness.commands.event_ids[-1]
    await fact(harness, SchedulerCommandRejected(command_event_id=uuid4(), command_type="scheduler.schedule_ritual",
                                                 reason="not ours"), household_id)
    assert "Being set up" in (await ana.get("/rituals")).text  # another command's rejection changes nothing
    await fact(harness, SchedulerCommandRejected(command_event_id=command_id, command_type="scheduler.schedule_ritual",
                                                 reason="participants must be members"), household_id)
    page = html.unescape((await ana.get("/rituals")).text)
    assert "couldn't be set up" in page and "Being set up" not in page


async def test_checking_in_goes_to_the_checkins_api_as_that_member(harness: Harness) -> None:
    ana = harness.browser()
    household_id, ana_id = await started(harness, ana)
    occurrence_id, ritual_id, now = uuid4(), uuid4(), harness.clock.now()
    await fact(harness, RitualDue(
        occurrence_id=occurrence_id, ritual_id=ritual_id, template="evening_attunement", title="Evening attunement",
        participants=[ana_id], scheduled_for=now, local_time=now.isoformat(), time_zone="Europe/Lisbon",
        sensitive=False, deadline=now + timedelta(hours=12)), household_id)
    response = await ana.submit("/today", "/checkins", {"occurrence_id": str(occurrence_id), "status": "done",
                                                        "closeness": "4", "note": "we laughed"})
    assert response.status_code == 303
    assert harness.checkins.posts == [(household_id, ana_id, "checkins", {
        "occurrence_id": str(occurrence_id), "member_id": str(ana_id), "status": "done", "closeness": 4,
        "note": "we laughed"})]
    today = (await ana.get("/today")).text
    assert "You kept it" in today and "we laughed" not in today
    response = await ana.submit("/today", "/moments", {"kind": "positive"})
    assert response.status_code == 303 and harness.checkins.posts[-1][2] == "moments"
    assert "1 kind moment and no hard ones" in (await ana.get("/progress")).text
    await fact(harness, StreakUpdated(ritual_id=ritual_id, template="evening_attunement", length=3,
                                      unit=StreakUnit.DAYS, best=5), household_id, producer="checkins")
    assert "3 days in a row" in (await ana.get("/progress")).text


async def test_while_checkins_is_down_the_page_says_so_and_keeps_the_last_state(harness: Harness) -> None:
    ana = harness.browser()
    household_id, ana_id = await started(harness, ana)
    occurrence_id, now = uuid4(), harness.clock.now()
    await fact(harness, RitualDue(
        occurrence_id=occurrence_id, ritual_id=uuid4(), template="evening_attunement", title="Evening attunement",
        participants=[ana_id], scheduled_for=now, local_time=now.isoformat(), time_zone="Europe/Lisbon",
        sensitive=False, deadline=now + timedelta(hours=12)), household_id)
    harness.checkins.down = True
    response = await ana.submit("/today", "/checkins", {"occurrence_id": str(occurrence_id), "status": "done"})
    text = html.unescape(response.text)
    assert response.status_code == 503
    assert "couldn't reach check-ins" in text and "nothing was sent or saved" in text
    assert "Evening attunement" in text and "You kept it" not in text
    assert harness.checkins.posts == []
    # Every page says so until check-ins answers again; then the notice goes.
    later = html.unescape((await ana.get("/household")).text)
    assert "couldn't reach check-ins the last time we tried" in later and "Nothing is queued" in later
    harness.checkins.down = False
    response = await ana.submit("/today", "/checkins", {"occurrence_id": str(occurrence_id), "status": "done"})
    assert response.status_code == 303
    assert "couldn't reach" not in html.unescape((await ana.get("/today")).text)


async def test_while_the_broker_is_down_creating_a_household_says_so(harness: Harness) -> None:
    ana = harness.browser()
    harness.commands.down = True
    response = await start_household(ana)
    assert response.status_code == 503 and "couldn't reach the scheduler" in html.unescape(response.text)
    assert "attune_session" not in response.headers.get("set-cookie", "")


async def test_a_join_link_still_works_after_the_broker_was_down(harness: Harness) -> None:
    ana, ben = harness.browser(), harness.browser()
    await started(harness, ana)
    link = await invite_link(ana)
    harness.commands.down = True
    assert (await ben.submit(link, link, {"your_name": "Ben"})).status_code == 503
    harness.commands.down = False
    response = await ben.submit(link, link, {"your_name": "Ben"})
    assert response.status_code == 303 and harness.commands.sent[-1][1].display_name == "Ben"


async def test_static_assets_and_manifest_come_from_the_app(harness: Harness) -> None:
    browser = harness.browser()
    page = await browser.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "http://" not in page.text.replace("http://app.test", "") and "https://" not in page.text
    for asset in ("/static/app.css", "/static/zone.js", "/manifest.webmanifest"):
        assert (await browser.get(asset)).status_code == 200
    assert (await browser.get("/manifest.webmanifest")).json()["start_url"] == "/today"


async def test_a_sign_in_link_signs_an_existing_member_in_once(harness: Harness) -> None:
    ana, phone = harness.browser(), harness.browser()
    household_id, ana_id = await started(harness, ana)
    assert await harness.parts.service.sign_in_link(household_id, uuid4()) is None  # not a member the app knows
    assert await harness.parts.service.sign_in_link(uuid4(), ana_id) is None  # not that household's
    token = await harness.parts.service.sign_in_link(household_id, ana_id)
    assert token is not None
    page = await phone.get(f"/join/{token}")
    assert "Continue as Ana" in page.text and 'name="your_name"' not in page.text
    sent = len(harness.commands.sent)
    response = await phone.submit(f"/join/{token}", f"/join/{token}", {})
    assert response.status_code == 303 and len(harness.commands.sent) == sent  # nobody new is added
    assert "Ana (you)" in (await phone.get("/household")).text
    assert (await harness.browser().get(f"/join/{token}")).status_code == 410


def test_the_sign_in_tool_prints_a_link_for_a_known_member(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from attune_app.adapters.migrate import upgrade
    from attune_app.adapters.sql import SqlStore, make_engine
    from attune_app.signin import main

    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    household_id, member_id = uuid4(), uuid4()

    async def seed() -> None:
        store = SqlStore(make_engine(url))
        await upgrade(store.engine)
        await store.save_member(member_id, household_id, display_name="Ana", role="partner", confirmed=True)
        await store.close()

    asyncio.run(seed())
    monkeypatch.setenv("ATTUNE_APP_ENVIRONMENT", "development")
    monkeypatch.setenv("ATTUNE_APP_DATABASE_URL", url)
    monkeypatch.setenv("ATTUNE_APP_HTTP_PORT", "8104")
    main(["--household", str(household_id), "--member", str(member_id)])
    assert re.fullmatch(r"http://127\.0\.0\.1:8104/join/[A-Za-z0-9_\-]{40,}\n", capsys.readouterr().out)
    with pytest.raises(SystemExit, match="not known to the app"):
        main(["--household", str(household_id), "--member", str(uuid4())])
