"""The web app against the real broker (Tansu) and PostgreSQL: a household created in the app reaches the
scheduler's command topic as RegisterHousehold from producer attune-app, and the facts it consumes (through the
shared reliable consumer, with its producer checks) show on the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from attune_app.bootstrap import App, build
from attune_contracts import Topic, make_envelope, parse
from attune_contracts.messages import HouseholdKind, HouseholdRegistered, MemberRole, MemberUpserted
from attune_runtime.testing import eventually
from support.inprocess import produce_records, read_topic, started

from .conftest import Browser, FakeCheckins, settings_for, start_household

pytestmark = [pytest.mark.integration]


@pytest.fixture
async def app(kafka_bootstrap: str, pg_url: str, unique: str) -> AsyncIterator[App]:
    settings = settings_for(pg_url, kafka_bootstrap_servers=kafka_bootstrap, kafka_session_timeout_ms=6000,
                            retry_base_delay_s=0.05, retry_max_delay_s=0.2).model_copy(
        update={"kafka_create_topics": True})
    async with started(build(settings, checkins=FakeCheckins(), group_id=f"attune-app-{unique}")) as parts:
        yield parts


async def read_ours(bootstrap: str, topic: Topic, household_id: UUID, *, until: Any, timeout: float = 30) -> list[Any]:
    """The envelopes of one household on a topic."""
    return await read_topic(bootstrap, topic, key=str(household_id).encode(), keep=parse, until=until, timeout=timeout)


async def produce(bootstrap: str, envelope: Any, topic: Topic = Topic.SCHEDULER_EVENTS) -> None:
    await produce_records(bootstrap, [(topic, envelope.to_bytes(), envelope.key)])


async def test_a_household_created_in_the_app_reaches_the_scheduler_and_its_facts_come_back(
        app: App, kafka_bootstrap: str) -> None:
    ana = Browser(app.http)
    try:
        response = await start_household(ana, name="Ana & Ben", you="Ana", zone="Europe/Lisbon")
        assert response.status_code == 303, response.text
        page = await ana.get("/household")
        assert "Ana &amp; Ben" in page.text

        # Which household is ours: the app's own read model knows (the browser never sees ids it needn't).
        from attune_app.adapters.tables import households
        from sqlalchemy import select

        async with app.store.engine.connect() as conn:
            (household_id,) = (await conn.execute(select(households.c.household_id))).one()

        commands = await read_ours(kafka_bootstrap, Topic.SCHEDULER_COMMANDS, household_id,
                                   until=lambda found: len(found) >= 2)
        assert [c.type for c in commands] == ["scheduler.register_household", "scheduler.upsert_member"]
        assert {c.producer for c in commands} == {"attune-app"}
        register = commands[0].payload
        assert (register.name, register.time_zone, register.kind) == ("Ana & Ben", "Europe/Lisbon",
                                                                      HouseholdKind.COUPLE)

        # The scheduler's facts, from the scheduler: shown. The same fact claiming to come from the app: refused.
        await produce(kafka_bootstrap, make_envelope(
            HouseholdRegistered(name="Ana & Ben", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE),
            household_id=household_id, producer="scheduler"))
        forged = uuid4()
        await produce(kafka_bootstrap, make_envelope(
            MemberUpserted(member_id=forged, display_name="Mallory", role=MemberRole.PARTNER,
                           time_zone="Europe/Lisbon"), household_id=household_id, producer="attune-app"))
        await produce(kafka_bootstrap, make_envelope(
            MemberUpserted(member_id=uuid4(), display_name="Benno", role=MemberRole.PARTNER, time_zone="Europe/Lisbon"),
            household_id=household_id, producer="scheduler"))

        async def ben_shows() -> bool:
            return "Benno" in (await ana.get("/household")).text

        await eventually(ben_shows, timeout=30)
        text = (await ana.get("/household")).text
        assert "Mallory" not in text and "Still being set up" not in text
    finally:
        await ana.close()


async def test_todays_question_arrives_on_its_topic_from_the_notifier_and_shows(app: App, kafka_bootstrap: str) -> None:
    import html
    from datetime import UTC, datetime, timedelta

    from attune_app.adapters.tables import households, members
    from attune_contracts import catalog
    from attune_contracts.messages import QuestionAsked, QuestionBank, RitualDue
    from sqlalchemy import select

    ana = Browser(app.http)
    try:
        assert (await start_household(ana, name="Ana & Ben", you="Ana", zone="UTC")).status_code == 303
        async with app.store.engine.connect() as conn:
            (household_id,) = (await conn.execute(select(households.c.household_id))).one()
            (ana_id,) = (await conn.execute(select(members.c.member_id))).one()
        now = datetime.now(UTC)
        due = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="curiosity_question",
                        title="Today's question", participants=[ana_id], scheduled_for=now, local_time=now.isoformat(),
                        time_zone="UTC", sensitive=False, deadline=now + timedelta(hours=12))
        await produce(kafka_bootstrap, make_envelope(due, household_id=household_id, producer="scheduler"),
                      Topic.RITUAL_OCCURRENCES)

        def asked(question: str, occurrence_id: UUID = due.occurrence_id) -> QuestionAsked:
            return QuestionAsked(occurrence_id=occurrence_id, ritual_id=due.ritual_id, template=due.template,
                                 bank=QuestionBank.ADULT, question_key=catalog.question_key(question),
                                 depth=catalog.question_depth(question), scheduled_for=now)

        real, forged, later = catalog.CURIOSITY_QUESTIONS[1:4]

        async def shows(question: str) -> bool:
            return question in html.unescape((await ana.get("/today")).text)

        await produce(kafka_bootstrap, make_envelope(asked(real), household_id=household_id, producer="notifier"),
                      Topic.QUESTIONS)
        await eventually(lambda: shows(real), timeout=30)
        # Only the notifier may say which question was asked: the same fact from the app is refused (the next
        # record on the same partition shows it was read past).
        await produce(kafka_bootstrap, make_envelope(asked(forged), household_id=household_id, producer="attune-app"),
                      Topic.QUESTIONS)
        await produce(kafka_bootstrap, make_envelope(asked(later, uuid4()), household_id=household_id,
                                                     producer="notifier"), Topic.QUESTIONS)
        await eventually(lambda: shows(later), timeout=30)
        page = html.unescape((await ana.get("/today")).text)
        assert "Today's question" in page and real in page and forged not in page
    finally:
        await ana.close()
