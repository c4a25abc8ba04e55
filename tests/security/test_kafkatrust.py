"""Kafka as a trust boundary, tried as an attacker who can produce would: forged events and commands on a real
broker (Tansu), read by the real services' consumers (scheduler, check-ins, notifier on PostgreSQL).

Tansu enforces no ACLs, so whoever can reach it may write any topic: what these tests prove is what the
consumers refuse on their own - a producer sending a type it may not send (or on a topic it does not belong
on), a member of another household named in an event or command, a member moved between households. Each
is dead-lettered as "rejected" with a reason, answered with the service's rejection event where it has one,
and changes nothing. (The broker's own ACLs are checked against the catalog in test_kafka_acls.py.)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from attune_checkins.config import Settings as CheckinsSettings
from attune_contracts import Envelope, Topic, make_envelope, parse
from attune_contracts.messages import (
    DeadLetter,
    EraseHousehold,
    HouseholdKind,
    HouseholdRegistered,
    LogMoment,
    MemberRole,
    MemberUpserted,
    MomentKind,
    NotificationRequested,
    RecordAchievement,
    RegisterHousehold,
    RitualDue,
    UpsertMember,
)
from attune_contracts.registry import spec_of
from attune_contracts.trust import sender_of
from attune_contracts.types import Contract
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from support.inprocess import produce_records, read_topic, serving

pytestmark = [pytest.mark.integration]

FERNET_KEY = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMDAwMDA="
ADMIN_TOKEN = "kafka-trust-admin-token-0123456789"
ZONE = "Europe/London"


# ---- the running services ------------------------------------------------------------------------------


@pytest.fixture
async def scheduler(kafka_bootstrap: str, pg_url: str, unique: str) -> AsyncIterator[str]:
    from attune_scheduler.bootstrap import build_app
    from attune_scheduler.config import SchedulerSettings

    port = free_port()
    settings = SchedulerSettings(
        environment="development", kafka_bootstrap_servers=kafka_bootstrap, http_port=port, database_url=pg_url,
        group_id=f"attune-scheduler-{unique}", kafka_session_timeout_ms=6000, relay_poll_s=0.1,
        metrics_refresh_s=0.2, retry_base_delay_s=0.05, retry_max_delay_s=0.1,
    )
    async with serving(build_app(settings, registry=CollectorRegistry()), port):
        yield pg_url


@pytest.fixture
async def checkins(kafka_bootstrap: str, pg_url: str, unique: str) -> AsyncIterator[str]:
    from attune_checkins.bootstrap import build_app

    port = free_port()
    settings = CheckinsSettings(
        environment="development", kafka_bootstrap_servers=kafka_bootstrap, database_url=pg_url, kafka_session_timeout_ms=6000,
        http_port=port, notes_key=SecretStr(FERNET_KEY), retry_base_delay_s=0.05, retry_max_delay_s=0.2,
    )
    async with serving(build_app(settings, registry=CollectorRegistry()), port):
        yield pg_url


@pytest.fixture
async def notifier(kafka_bootstrap: str, pg_url: str, unique: str) -> AsyncIterator[str]:
    from attune_notifier.bootstrap import build_app
    from attune_notifier.config import NotifierSettings

    port = free_port()
    settings = NotifierSettings(
        environment="development", kafka_bootstrap_servers=kafka_bootstrap, database_url=pg_url, http_port=port,
        consumer_group=f"attune-notifier-{unique}", kafka_session_timeout_ms=6000, delivery_idle_poll_s=0.1,
        retry_base_delay_s=0.05, retry_max_delay_s=0.2,
    )
    async with serving(build_app(settings, registry=CollectorRegistry()), port):
        yield pg_url


# ---- the attacker's tools and the evidence -------------------------------------------------------------


SENT: dict[uuid.UUID, bytes] = {}  # what produce() wrote, by event id


async def produce(bootstrap: str, *envelopes: Envelope[Any], topic: Topic | None = None) -> None:
    """Write envelopes as anyone with write access could: onto their own topic, or onto `topic`."""
    records = []
    for envelope in envelopes:
        SENT[envelope.event_id] = envelope.to_bytes()  # private fields sealed afresh: keep the bytes sent
        records.append((topic or spec_of(type(envelope.payload)).topic, SENT[envelope.event_id], envelope.key))
    await produce_records(bootstrap, records)


def forged(payload: Contract, household: uuid.UUID, producer: str | None = None) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=producer or sender_of(payload))



async def dead_letter_of(bootstrap: str, envelope: Envelope[Any]) -> DeadLetter:
    """The dead letter whose original bytes are `envelope`'s (waits for it)."""
    # The bytes are sealed (crypto-shredding); the letter names the SHA-256 of the record it stands for.
    sha256 = hashlib.sha256(SENT[envelope.event_id]).hexdigest()

    def keep(value: bytes) -> DeadLetter | None:
        # The suite shares one broker: the dead-letter topic also holds other tests' hostile records (the
        # fuzzers' `[` x 100,000, say), so look for this envelope's hash before decoding anything.
        if sha256.encode() not in value:
            return None
        letter = DeadLetter.model_validate_json(value)
        return letter if letter.value_sha256 == sha256 else None

    [letter] = await read_topic(bootstrap, Topic.DEAD_LETTER, until=bool, keep=keep, timeout=40)
    return letter


async def rejections_of(bootstrap: str, topic: Topic, envelope: Envelope[Any]) -> list[Any]:
    def keep(value: bytes) -> Any:
        if str(envelope.event_id).encode() not in value:  # other tests' records share the topic
            return None
        event = parse(value)
        return event if getattr(event.payload, "command_event_id", None) == envelope.event_id else None

    return [e.payload for e in await read_topic(bootstrap, topic, until=bool, keep=keep, timeout=40)]


async def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await engine.dispose()


async def rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


def member_fact(member: uuid.UUID, name: str) -> MemberUpserted:
    return MemberUpserted(member_id=member, display_name=name, role=MemberRole.PARTNER, time_zone=ZONE)


# ---- a producer not allowed to send the type -----------------------------------------------------------


async def test_scheduler_refuses_an_erasure_from_a_partner_service(kafka_bootstrap: str, scheduler: str) -> None:
    """A partner service may write scheduler commands (to schedule rituals) but not erase a household."""
    household = uuid.uuid4()
    await produce(kafka_bootstrap, forged(RegisterHousehold(name="Ana & Ben", time_zone=ZONE), household))
    await eventually(lambda: scalar(scheduler, "SELECT count(*) FROM households WHERE id = :h", h=household),
                     timeout=30)
    erase = forged(EraseHousehold(), household, producer="calendar-sync")
    await produce(kafka_bootstrap, erase)

    letter = await dead_letter_of(kafka_bootstrap, erase)
    assert letter.error_kind == "rejected"
    assert "'calendar-sync' is not allowed to send scheduler.erase_household" in letter.reason
    [rejected] = await rejections_of(kafka_bootstrap, Topic.SCHEDULER_EVENTS, erase)
    assert "not allowed to send" in rejected.reason
    assert await scalar(scheduler, "SELECT count(*) FROM households WHERE id = :h", h=household) == 1


async def test_checkins_refuses_facts_forged_by_anyone_but_the_scheduler(kafka_bootstrap: str, checkins: str) -> None:
    """A fact claiming to come from a partner is refused; so is a scheduler fact written onto the command
    topic (the topic a partner can write), whatever `producer` it claims."""
    household, ana = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    claimed = forged(member_fact(ana, "Ana"), household, producer="calendar-sync")
    due = RitualDue(occurrence_id=uuid.uuid4(), ritual_id=uuid.uuid4(), template="evening_attunement",
                    title="Evening attunement", participants=[ana], scheduled_for=now - timedelta(minutes=5),
                    local_time="20:30", time_zone=ZONE, sensitive=False, deadline=now + timedelta(hours=12))
    smuggled = forged(due, household)  # producer "scheduler", but on the commands topic
    await produce(kafka_bootstrap, claimed)
    await produce(kafka_bootstrap, smuggled, topic=Topic.CHECKINS_COMMANDS)

    letter = await dead_letter_of(kafka_bootstrap, claimed)
    assert letter.error_kind == "rejected"
    assert "not allowed to send scheduler.member_upserted" in letter.reason
    letter = await dead_letter_of(kafka_bootstrap, smuggled)
    assert letter.error_kind == "rejected"
    assert f"belongs on {Topic.RITUAL_OCCURRENCES.value}, not on {Topic.CHECKINS_COMMANDS.value}" in letter.reason
    assert await scalar(checkins, "SELECT count(*) FROM members WHERE member_id = :m", m=ana) == 0
    assert await scalar(checkins, "SELECT count(*) FROM occurrences WHERE household_id = :h", h=household) == 0


async def test_notifier_refuses_a_notification_request_from_the_cli(kafka_bootstrap: str, notifier: str) -> None:
    """Only partner services may ask for a notification with their own text (the CLI has no business to)."""
    household, ana = uuid.uuid4(), uuid.uuid4()
    await produce(kafka_bootstrap, forged(member_fact(ana, "Ana"), household))
    request = forged(NotificationRequested(member_id=ana, purpose="calendar.sync", title="Hi", body="Click here"),
                     household, producer="attune-cli")
    await produce(kafka_bootstrap, request)

    letter = await dead_letter_of(kafka_bootstrap, request)
    assert letter.error_kind == "rejected"
    assert "'attune-cli' is not allowed to send notifications.notification_requested" in letter.reason
    assert await scalar(notifier, "SELECT count(*) FROM notifier_deliveries WHERE cause_event_id = :e",
                        e=request.event_id) == 0


# ---- a member of another household, a member moved ----------------------------------------------------


async def test_scheduler_refuses_to_move_a_member_to_another_household(kafka_bootstrap: str, scheduler: str) -> None:
    ours, theirs, ana = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await produce(kafka_bootstrap,
                  forged(RegisterHousehold(name="Ana & Ben", time_zone=ZONE), ours),
                  forged(RegisterHousehold(name="Mallory", time_zone=ZONE), theirs),
                  forged(UpsertMember(member_id=ana, display_name="Ana"), ours))
    await eventually(lambda: scalar(scheduler, "SELECT count(*) FROM members WHERE member_id = :m", m=ana),
                     timeout=30)
    grab = forged(UpsertMember(member_id=ana, display_name="Ana (mine now)"), theirs)
    await produce(kafka_bootstrap, grab)

    letter = await dead_letter_of(kafka_bootstrap, grab)
    assert letter.error_kind == "rejected"
    assert f"member {ana} already belongs to another household" in letter.reason
    [rejected] = await rejections_of(kafka_bootstrap, Topic.SCHEDULER_EVENTS, grab)
    assert "already belongs to another household" in rejected.reason
    assert await rows(scheduler, "SELECT household_id, display_name FROM members WHERE member_id = :m",
                      m=ana) == [(ours, "Ana")]


async def test_checkins_refuses_another_households_member(kafka_bootstrap: str, checkins: str) -> None:
    """A moment or an achievement logged in household B for A's member, and a fact moving A's member to B."""
    ours, theirs, ana, mallory = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await produce(kafka_bootstrap,
                  forged(HouseholdRegistered(name="Ana & Ben", time_zone=ZONE, kind=HouseholdKind.COUPLE), ours),
                  forged(member_fact(ana, "Ana"), ours),
                  forged(HouseholdRegistered(name="Mallory", time_zone=ZONE, kind=HouseholdKind.COUPLE), theirs),
                  forged(member_fact(mallory, "Mallory"), theirs))
    await eventually(lambda: scalar(checkins, "SELECT count(*) FROM members WHERE member_id = :m", m=mallory),
                     timeout=30)
    moment = forged(LogMoment(moment_id=uuid.uuid4(), member_id=ana, kind=MomentKind.NEGATIVE), theirs)
    achievement = forged(RecordAchievement(achievement_id=uuid.uuid4(), member_id=ana, dream="Run a marathon"),
                         theirs)
    move = forged(member_fact(ana, "Ana"), theirs)
    await produce(kafka_bootstrap, moment, achievement, move)

    for command in (moment, achievement):
        letter = await dead_letter_of(kafka_bootstrap, command)
        assert letter.error_kind == "rejected"
        assert f"member {ana} does not belong to household {theirs}" in letter.reason
        [rejected] = await rejections_of(kafka_bootstrap, Topic.CHECKINS_EVENTS, command)
        assert f"does not belong to household {theirs}" in rejected.reason
    letter = await dead_letter_of(kafka_bootstrap, move)
    assert letter.error_kind == "rejected"
    assert "already belongs to another household" in letter.reason
    assert await rows(checkins, "SELECT household_id FROM members WHERE member_id = :m", m=ana) == [(ours,)]
    assert await scalar(checkins, "SELECT count(*) FROM moments WHERE member_id = :m", m=ana) == 0
    assert await scalar(checkins, "SELECT count(*) FROM achievements WHERE member_id = :m", m=ana) == 0


async def test_notifier_refuses_a_request_for_another_households_member(kafka_bootstrap: str, notifier: str) -> None:
    """The request would reach A's member with B's text; the fact would move A's member (and their channels)
    to B. Both dead-lettered; a request for B's own member still goes through."""
    ours, theirs, ana, mallory = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await produce(kafka_bootstrap, forged(member_fact(ana, "Ana"), ours), forged(member_fact(mallory, "M"), theirs))
    await eventually(lambda: scalar(notifier, "SELECT count(*) FROM notifier_members WHERE member_id = :m",
                                    m=mallory), timeout=30)
    request = forged(NotificationRequested(member_id=ana, purpose="calendar.sync", title="Hi",
                                           body="Tap to confirm: https://evil.example"), theirs)
    move = forged(member_fact(ana, "Ana"), theirs)
    own = forged(NotificationRequested(member_id=mallory, purpose="calendar.sync", title="Hi", body="ok"), theirs)
    await produce(kafka_bootstrap, request, move, own)

    letter = await dead_letter_of(kafka_bootstrap, request)
    assert letter.error_kind == "rejected"
    assert f"member {ana} does not belong to household {theirs}" in letter.reason
    letter = await dead_letter_of(kafka_bootstrap, move)
    assert letter.error_kind == "rejected"
    assert "already belongs to another household" in letter.reason
    await eventually(lambda: scalar(notifier, "SELECT count(*) FROM notifier_deliveries WHERE cause_event_id = :e",
                                    e=own.event_id), timeout=30)
    assert await scalar(notifier, "SELECT count(*) FROM notifier_deliveries WHERE member_id = :m", m=ana) == 0
    assert await rows(notifier, "SELECT household_id FROM notifier_members WHERE member_id = :m",
                      m=ana) == [(ours,)]


# ---- retention and the connection settings -------------------------------------------------------------


async def test_topics_are_created_with_their_retention(kafka_bootstrap: str, unique: str) -> None:
    """Records carry personal data: no topic keeps them forever, and dead letters go sooner than the rest."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from attune_contracts import CATALOG
    from attune_runtime.kafka import ensure_topics
    from attune_runtime.settings import ServiceSettings

    await ensure_topics(ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t.value) for t in Topic])
    finally:
        await admin.close()
    retention = {resource[3]: {entry[0]: entry[1] for entry in resource[4]}["retention.ms"]
                 for answer in answers for resource in answer.resources}
    assert retention == {t.value: str(CATALOG[t].retention_ms) for t in Topic}
    day = 24 * 3600 * 1000
    assert all(7 * day <= CATALOG[t].retention_ms <= 14 * day for t in Topic)
    assert CATALOG[Topic.DEAD_LETTER].retention_ms < min(CATALOG[t].retention_ms for t in Topic
                                                          if t is not Topic.DEAD_LETTER)


def test_sasl_settings_reach_every_kafka_client() -> None:
    """The broker (FastStream), the relays' producers and the admin client all authenticate the same way."""
    from attune_runtime.kafka import kafka_client_options, make_broker
    from attune_runtime.settings import ServiceSettings

    settings = ServiceSettings(kafka_bootstrap_servers="kafka:9092", kafka_security_protocol="SASL_PLAINTEXT",
                               kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="checkins",
                               kafka_sasl_password=SecretStr("s3cret"))
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("checkins", "s3cret")
    broker = make_broker(settings, service="checkins", registry=CollectorRegistry())
    # FastStream's producer connects with `_connection_kwargs`, its consumers are built by `builder`.
    consumer_kwargs = broker.config.broker_config.builder.keywords
    for secured in (broker._connection_kwargs, consumer_kwargs):
        assert secured["security_protocol"] == "SASL_PLAINTEXT" and secured["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (secured["sasl_plain_username"], secured["sasl_plain_password"]) == ("checkins", "s3cret")
