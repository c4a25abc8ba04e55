"""The check-ins service against the real broker (Tansu) and PostgreSQL: redelivery changes nothing,
bad input is refused with a reason, nothing is recorded, and the service keeps going."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from attune_checkins.bootstrap import Checkins, build
from attune_checkins.config import Settings
from attune_contracts import Envelope, Topic, make_envelope, parse, sealing
from attune_contracts.messages import (
    CheckInCommandRejected,
    CheckInRecorded,
    CheckInStatus,
    DeadLetter,
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    RitualDue,
    StreakUpdated,
    SubmitCheckIn,
)
from attune_contracts.trust import sender_of
from attune_contracts.types import Contract
from attune_runtime.testing import eventually
from pydantic import SecretStr
from sqlalchemy import text
from support.inprocess import produce_records, read_topic

from .conftest import FERNET_KEY

pytestmark = [pytest.mark.integration]


@pytest.fixture(params=[500, 1], ids=["batch", "one-by-one"])
async def service(request: pytest.FixtureRequest, kafka_bootstrap: str, pg_url: str,
                  unique: str) -> AsyncIterator[Checkins]:
    settings = Settings(environment="development",
        kafka_bootstrap_servers=kafka_bootstrap, database_url=pg_url, kafka_session_timeout_ms=6000,
        notes_key=SecretStr(FERNET_KEY.decode()), retry_base_delay_s=0.05, retry_max_delay_s=0.2,
        batch_max_records=request.param,
    )
    parts = build(settings, group_id=f"attune-checkins-{unique}")
    await parts.start()
    try:
        await eventually(lambda: _ready(parts), timeout=30)
        yield parts
    finally:
        await parts.stop()


async def _ready(parts: Checkins) -> bool:
    return bool((await parts.readiness.status())["ready"])


async def produce(bootstrap: str, topic: Topic, *values: bytes, key: UUID) -> None:
    await produce_records(bootstrap, [(topic, value, str(key).encode()) for value in values])


def env(payload: Contract, household: UUID, **kw: Any) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=sender_of(payload), **kw)


async def rows(parts: Checkins, sql: str, **params: Any) -> int:
    async with parts.store.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def test_redelivery_changes_nothing_and_bad_input_is_refused(service: Checkins, kafka_bootstrap: str,
                                                                    unique: str) -> None:
    household, ana, ben, ritual = uuid4(), uuid4(), uuid4(), uuid4()
    zone = "Europe/Lisbon"
    now = datetime.now(UTC)
    due = RitualDue(
        occurrence_id=uuid4(), ritual_id=ritual, template=f"attune_{unique}", title="Evening attunement",
        participants=[ana, ben], scheduled_for=now - timedelta(minutes=10), local_time="20:30", time_zone=zone,
        sensitive=False, deadline=now + timedelta(hours=12),
    )
    facts = [
        env(HouseholdRegistered(name="Ana & Ben", time_zone=zone, kind=HouseholdKind.COUPLE), household),
        *(env(MemberUpserted(member_id=m, display_name=n, role=MemberRole.PARTNER, time_zone=zone), household)
          for m, n in ((ana, "Ana"), (ben, "Ben"))),
    ]
    await produce(kafka_bootstrap, Topic.SCHEDULER_EVENTS, *(e.to_bytes() for e in facts), key=household)
    due_bytes = env(due, household).to_bytes()
    await produce(kafka_bootstrap, Topic.RITUAL_OCCURRENCES, due_bytes, due_bytes, key=household)  # redelivered
    await eventually(lambda: rows(service, "SELECT count(*) FROM occurrences WHERE household_id = :h",
                                  h=household), timeout=30)

    def submit(member: UUID, **kw: Any) -> Envelope[Any]:
        return env(SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=member, status=CheckInStatus.DONE, **kw),
                   household)

    good = submit(ana, closeness=4, note="a good talk")
    template = json.loads(submit(ben).to_bytes())

    def raw(change: dict[str, Any]) -> tuple[UUID, bytes]:
        event_id = uuid4()
        body = {**template, "event_id": str(event_id), "payload": {**template["payload"], **change}}
        return event_id, json.dumps(body).encode()

    rating_id, rating_9 = raw({"closeness": 9})
    # Sealed like every note on the wire (a plaintext one is refused before its length is read).
    note_id, long_note = raw({"note": sealing.installed_field_keys().seal(household, "note", "x" * 2001)})
    unknown = env(SubmitCheckIn(occurrence_id=uuid4(), member_id=ben, status=CheckInStatus.DONE), household)
    stranger = submit(uuid4())
    sentinel = submit(ben, closeness=5)
    not_json = b"{this is not json " + str(household).encode()
    await produce(
        kafka_bootstrap, Topic.CHECKINS_COMMANDS,
        good.to_bytes(), good.to_bytes(),  # the same submission delivered twice
        rating_9, long_note, unknown.to_bytes(), stranger.to_bytes(), not_json,
        sentinel.to_bytes(),
        key=household,
    )
    await eventually(lambda: rows(service, "SELECT count(*) FROM checkins WHERE member_id = :m", m=ben), timeout=30)

    def ours(value: bytes) -> Any:
        envelope = parse(value)
        return envelope if envelope.household_id == household else None

    events = await read_topic(kafka_bootstrap, Topic.CHECKINS_EVENTS, keep=ours,
                              until=lambda found: sum(isinstance(e.payload, CheckInRecorded) for e in found) >= 2
                              and sum(isinstance(e.payload, CheckInCommandRejected) for e in found) >= 4)
    await asyncio.sleep(1.0)  # anything extra (a duplicate) would have arrived by now
    events = await read_topic(kafka_bootstrap, Topic.CHECKINS_EVENTS, keep=ours,
                              until=lambda found: len(found) >= len(events), timeout=10)

    recorded = [e.payload for e in events if isinstance(e.payload, CheckInRecorded)]
    assert sorted((r.member_id, r.closeness) for r in recorded) == sorted([(ana, 4), (ben, 5)])
    assert all(r.occurrence_id == due.occurrence_id for r in recorded)
    rejected = {e.payload.command_event_id: e.payload.reason for e in events
                if isinstance(e.payload, CheckInCommandRejected)}
    assert set(rejected) == {rating_id, note_id, unknown.event_id, stranger.event_id}
    assert "closeness" in rejected[rating_id] and "less than or equal to 5" in rejected[rating_id]
    assert "note" in rejected[note_id] and "2000" in rejected[note_id]
    assert "unknown occurrence" in rejected[unknown.event_id]
    assert "is not in this household" in rejected[stranger.event_id]
    streaks = [e.payload for e in events if isinstance(e.payload, StreakUpdated)]
    assert [s.length for s in streaks] == [1]  # the second partner's check-in keeps the day at 1
    assert len(events) == len(recorded) + len(rejected) + len(streaks)  # nothing twice

    assert await rows(service, "SELECT count(*) FROM checkins WHERE household_id = :h", h=household) == 2
    assert await rows(service, "SELECT count(*) FROM occurrences WHERE household_id = :h", h=household) == 1
    note_enc = await rows(service, "SELECT note_enc FROM checkins WHERE member_id = :m", m=ana)
    assert b"a good talk" not in bytes(note_enc)

    # Dead letters are sealed (attune_runtime.deadletters): found by the SHA-256 of the original they name.
    ours = {hashlib.sha256(v).hexdigest() for v in (rating_9, long_note, not_json)}

    def letter(value: bytes) -> DeadLetter | None:
        found = DeadLetter.model_validate_json(value)
        return found if found.value_sha256 in ours and found.sealed is not None else None

    letters = await read_topic(kafka_bootstrap, Topic.DEAD_LETTER, keep=letter, until=lambda found: len(found) >= 3)
    assert sorted(letter.error_kind for letter in letters) == ["invalid"] * 3
    assert any(letter.reason.startswith("not JSON") for letter in letters)
    assert (await service.readiness.status())["ready"] is True
    assert service.registry.get_sample_value(
        "attune_checkins_recorded_total", {"status": "done", "template": f"attune_{unique}"}) == 2


async def test_a_question_asked_on_its_topic_can_be_answered_once_and_the_answer_is_announced_without_text(
        service: Checkins, kafka_bootstrap: str) -> None:
    import httpx
    from attune_contracts import catalog
    from attune_contracts.credentials import development_issuer
    from attune_contracts.messages import QuestionAnswered, QuestionAsked, QuestionBank

    household, ana, ben = uuid4(), uuid4(), uuid4()
    now = datetime.now(UTC)
    due = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="curiosity_question", title="Today's question",
                    participants=[ana, ben], scheduled_for=now, local_time=now.isoformat(), time_zone="UTC",
                    sensitive=False, deadline=now + timedelta(hours=12))
    question = catalog.CURIOSITY_QUESTIONS[0]
    asked = env(QuestionAsked(occurrence_id=due.occurrence_id, ritual_id=due.ritual_id, template=due.template,
                              bank=QuestionBank.ADULT, question_key=catalog.question_key(question),
                              depth=catalog.question_depth(question), scheduled_for=now), household)
    await produce(kafka_bootstrap, Topic.SCHEDULER_EVENTS,
                  env(HouseholdRegistered(name="A & B", time_zone="UTC", kind=HouseholdKind.COUPLE), household).to_bytes(),
                  *[env(MemberUpserted(member_id=m, display_name=n, role=MemberRole.PARTNER, time_zone="UTC"),
                        household).to_bytes() for m, n in ((ana, "Ana"), (ben, "Ben"))], key=household)
    await produce(kafka_bootstrap, Topic.RITUAL_OCCURRENCES, env(due, household).to_bytes(), key=household)
    await produce(kafka_bootstrap, Topic.QUESTIONS, asked.to_bytes(), asked.to_bytes(), key=household)  # redelivered
    # Three topics, read independently: wait until the members, the occurrence and the question are all here.
    for table, count in (("members", 2), ("occurrences", 1), ("questions_asked", 1)):
        async def arrived(table: str = table, count: int = count) -> bool:
            return await rows(service, f"SELECT count(*) FROM {table} WHERE household_id = :h", h=household) == count

        await eventually(arrived, timeout=30)
    token = development_issuer().member(household, ana)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.http), base_url="http://c") as client:
        answered = await client.post(f"/v1/households/{household}/questions/{due.occurrence_id}/answers",
                                     json={"member_id": str(ana), "text": "Tea on the balcony"},
                                     headers={"Authorization": f"Bearer {token}"})
    assert answered.status_code == 201, answered.text
    assert await rows(service, "SELECT count(*) FROM questions_asked WHERE household_id = :h", h=household) == 1

    def ours(value: bytes) -> Any:
        envelope = parse(value)
        return envelope if envelope.household_id == household and isinstance(envelope.payload, QuestionAnswered) else None

    found = await read_topic(kafka_bootstrap, Topic.CHECKINS_EVENTS, keep=ours, until=lambda f: len(f) >= 1)
    assert (found[0].payload.member_id, found[0].payload.answers, found[0].producer) == (ana, 1, "checkins")
    assert b"balcony" not in found[0].to_bytes()
