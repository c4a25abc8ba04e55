"""Today's question on /today (issue 14): shown from the app's read model (QuestionAsked), answered through the
REAL check-ins API in process as each partner, and each sees the other's answer only once both have answered."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from attune_app.adapters.migrate import upgrade as upgrade_app
from attune_app.adapters.upstream import HttpCheckins
from attune_app.bootstrap import build as build_app
from attune_app.handlers import make_handler
from attune_checkins.bootstrap import Checkins
from attune_contracts import catalog, make_envelope
from attune_contracts.messages import (
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    QuestionAnswered,
    QuestionAsked,
    QuestionBank,
    RitualDue,
)
from attune_contracts.trust import sender_of

from .conftest import Browser, FakeCommands, Harness, settings_for, start_household
from .test_app_checkins_api import Sink, checkins  # noqa: F401 - `checkins`: the real check-ins service (a fixture)
from .test_app_http import fact, invite_link, started

pytestmark = [pytest.mark.unit]

QUESTION = catalog.CURIOSITY_QUESTIONS[3]


def asked_for(due: RitualDue, question: str = QUESTION, bank: QuestionBank = QuestionBank.ADULT) -> QuestionAsked:
    return QuestionAsked(occurrence_id=due.occurrence_id, ritual_id=due.ritual_id, template=due.template, bank=bank,
                         question_key=catalog.question_key(question),
                         depth=catalog.question_depth(question) if bank is QuestionBank.ADULT else None,
                         scheduled_for=due.scheduled_for)


def curiosity_due(participants: list[UUID], now: datetime, zone: str = "UTC") -> RitualDue:
    return RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="curiosity_question",
                     title="Today's question", participants=participants, scheduled_for=now,
                     local_time=now.isoformat(), time_zone=zone, sensitive=False, deadline=now + timedelta(hours=12))


async def test_both_partners_answer_through_checkins_and_each_then_sees_both(
        checkins: tuple[Checkins, Sink], tmp_path: Path) -> None:  # noqa: F811
    service, sink = checkins
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    api = HttpCheckins("http://checkins.test", settings.issuer(), timeout_s=5, ttl=timedelta(minutes=5),
                       transport=httpx.ASGITransport(app=service.http))
    commands = FakeCommands()
    app = build_app(settings, commands=commands, checkins=api)
    await upgrade_app(app.store.engine)
    ana, ben = Browser(app.http), Browser(app.http)
    try:
        assert (await start_household(ana, zone="UTC")).status_code == 303
        household_id, ana_member = commands.sent[1]
        link = await invite_link(ana)
        assert (await ben.submit(link, link, {"your_name": "Ben"})).status_code == 303
        ben_member = commands.sent[-1][1]
        ana_id, ben_id = ana_member.member_id, ben_member.member_id
        due = curiosity_due([ana_id, ben_id], datetime.now(UTC))
        facts = [HouseholdRegistered(name="Ana & Ben", time_zone="UTC", kind=HouseholdKind.COUPLE),
                 MemberUpserted(member_id=ana_id, display_name="Ana", role=MemberRole.PARTNER, time_zone="UTC"),
                 MemberUpserted(member_id=ben_id, display_name="Ben", role=MemberRole.PARTNER, time_zone="UTC"),
                 due, asked_for(due)]
        for payload in facts:  # what both services consume from Kafka
            envelope = make_envelope(payload, household_id=household_id, producer=sender_of(payload))
            await service.service.handle(envelope)
            await make_handler(app.store)(envelope)

        page = html.unescape((await ana.get("/today")).text)
        assert "Today's question" in page and QUESTION in page and "Share my answer" in page
        action = f"/questions/{due.occurrence_id}/answer"
        assert (await ana.submit("/today", action, {"answer": "The walk by the river"})).status_code == 303
        ana_page = html.unescape((await ana.get("/today")).text)
        assert "The walk by the river" in ana_page and "Waiting for Ben's answer" in ana_page
        ben_page = html.unescape((await ben.get("/today")).text)
        assert "Ana has answered" in ben_page and "The walk by the river" not in ben_page
        assert (await ben.submit("/today", action, {"answer": "Your laugh at breakfast"})).status_code == 303
        for browser in (ana, ben):
            page = html.unescape((await browser.get("/today")).text)
            assert "The walk by the river" in page and "Your laugh at breakfast" in page and "Waiting" not in page
        # A second, different answer is refused with check-ins' words; the first stays.
        again = await ana.submit("/today", action, {"answer": "Something else"})
        assert again.status_code == 422 and "answered this question already" in html.unescape(again.text)
        from attune_runtime.testing import eventually

        def answered() -> list[Any]:
            return [e for e in sink.events if isinstance(e, QuestionAnswered)]

        found = await eventually(lambda: len(answered()) >= 2, timeout=10) and answered()
        assert [(e.member_id, e.answers) for e in found] == [(ana_id, 1), (ben_id, 2)]
    finally:
        await ana.close()
        await ben.close()
        await api.close()
        await app.store.close()


async def test_the_question_shows_while_checkins_is_down_and_an_answer_is_not_queued(harness: Harness) -> None:
    ana = harness.browser()
    household_id, ana_id = await started(harness, ana, zone="Europe/Lisbon")
    ben_id = uuid4()
    await fact(harness, MemberUpserted(member_id=ben_id, display_name="Ben", role=MemberRole.PARTNER,
                                       time_zone="Europe/Lisbon"), household_id)
    due = curiosity_due([ana_id, ben_id], harness.clock.now(), "Europe/Lisbon")
    await fact(harness, due, household_id)
    await fact(harness, asked_for(due), household_id, producer="notifier")
    await fact(harness, QuestionAnswered(occurrence_id=due.occurrence_id, member_id=ben_id,
                                         answered_at=harness.clock.now(), answers=1), household_id, producer="checkins")
    harness.checkins.down = True
    page = html.unescape((await ana.get("/today")).text)
    assert QUESTION in page and "can't load the answers just now" in page
    response = await ana.submit("/today", f"/questions/{due.occurrence_id}/answer", {"answer": "Tea"})
    assert response.status_code == 503 and "wasn't sent" in html.unescape(response.text)
    assert harness.checkins.posts == []
    harness.checkins.down = False
    # Check-ins answers again: what it says Ana may see is shown (Ben answered; his words are withheld from her).
    harness.checkins.views[f"questions/{due.occurrence_id}"] = {"answers": [
        {"member_id": str(ben_id), "answered": True, "text": None, "withheld": True},
        {"member_id": str(ana_id), "answered": False, "text": None, "withheld": False}]}
    page = html.unescape((await ana.get("/today")).text)
    assert "Ben has answered. Share yours" in page and "can't load" not in page
    assert harness.checkins.gets[-1] == (household_id, ana_id, f"questions/{due.occurrence_id}")
    response = await ana.submit("/today", f"/questions/{due.occurrence_id}/answer", {"answer": "Tea"})
    assert response.status_code == 303
    assert harness.checkins.posts == [(household_id, ana_id, f"questions/{due.occurrence_id}/answers",
                                       {"member_id": str(ana_id), "text": "Tea"})]


async def test_another_households_question_and_a_question_not_asked_are_not_found(harness: Harness) -> None:
    ana, eve = harness.browser(), harness.browser()
    household_id, ana_id = await started(harness, ana)
    await started(harness, eve, name="Eve & Sam", you="Eve")
    due = curiosity_due([ana_id], harness.clock.now(), "Europe/Lisbon")
    await fact(harness, due, household_id)
    await fact(harness, asked_for(due), household_id, producer="notifier")
    assert QUESTION not in html.unescape((await eve.get("/today")).text)
    response = await eve.submit("/today", f"/questions/{due.occurrence_id}/answer", {"answer": "hi"})
    assert response.status_code == 404
    response = await ana.submit("/today", f"/questions/{uuid4()}/answer", {"answer": "hi"})
    assert response.status_code == 404
    empty = await ana.submit("/today", f"/questions/{due.occurrence_id}/answer", {"answer": "   "})
    assert empty.status_code == 422 and "empty" in empty.text
    assert harness.checkins.posts == []
