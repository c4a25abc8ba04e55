"""The whole notifier (uvicorn, FastStream, PostgreSQL, Apprise) against the real broker (Tansu)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import responses
from aiokafka import AIOKafkaProducer
from attune_contracts import Topic, make_envelope
from attune_contracts.credentials import development_issuer
from attune_contracts.messages import DeadLetter, MemberRole, MemberUpserted, NotificationRequested
from attune_contracts.sealing import installed_field_keys
from attune_contracts.trust import sender_of
from attune_notifier.bootstrap import build_app
from attune_notifier.config import NotifierSettings
from attune_runtime.tansu import free_port
from attune_runtime.testing import create_database, drop_database, eventually
from support.inprocess import read_topic, serving

from .conftest import HttpSink, SmtpSink

pytestmark = [pytest.mark.integration]

HOUSEHOLD_OF: dict[uuid.UUID, uuid.UUID] = {}


def auth(member: uuid.UUID) -> dict[str, str]:
    """The member's own credential (development key: the service runs in development)."""
    return {"Authorization": f"Bearer {development_issuer().member(HOUSEHOLD_OF[member], member)}"}


@dataclass
class Running:
    base: str
    app: Any
    bootstrap: str
    producer: AIOKafkaProducer

    async def produce(self, topic: Topic, value: bytes, household: uuid.UUID) -> None:
        await self.producer.send_and_wait(topic.value, value=value, key=str(household).encode())

    async def publish(self, payload: Any, household: uuid.UUID, **kw: Any) -> Any:
        from attune_contracts.registry import spec_of

        env = make_envelope(payload, household_id=household, producer=sender_of(payload), **kw)
        await self.produce(spec_of(type(payload)).topic, env.to_bytes(), household)
        return env

    def metric(self, name: str, **labels: str) -> float:
        return self.app.notifier.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module", params=[500, 1], ids=["batches", "one-by-one"])
async def service(kafka_bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    database_url = await create_database()
    port = free_port()
    settings = NotifierSettings(environment="development",
        kafka_bootstrap_servers=kafka_bootstrap, database_url=database_url, http_port=port,
        consumer_group=f"attune-notifier-{uuid.uuid4().hex[:6]}",
        kafka_session_timeout_ms=6000, delivery_idle_poll_s=0.1, retry_base_delay_s=0.05, retry_max_delay_s=0.2,
        delivery_retry_base_s=0.2, delivery_retry_max_s=0.5, delivery_attempts_per_channel=2,
        batch_max_records=request.param,
    )
    app = build_app(settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        async with serving(app, port) as base:
            yield Running(base, app, kafka_bootstrap, producer)
    finally:
        await producer.stop()
        await drop_database(database_url)


async def add_member(svc: Running, household: uuid.UUID, name: str = "Ana") -> uuid.UUID:
    member = uuid.uuid4()
    HOUSEHOLD_OF[member] = household
    await svc.publish(MemberUpserted(member_id=member, display_name=name, role=MemberRole.PARTNER,
                                     time_zone="Europe/London"), household)
    async with httpx.AsyncClient() as client:
        async def known() -> bool:
            return (await client.get(f"{svc.base}/v1/members/{member}/preferences", headers=auth(member))).status_code == 200
        await eventually(known, timeout=30)
    return member


async def add_channel(svc: Running, member: uuid.UUID, url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{svc.base}/v1/members/{member}/channels", json={"url": url}, headers=auth(member))



def outcomes_for(values: list[bytes], household: uuid.UUID) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, values) if e.get("household_id") == str(household)]


async def test_the_same_event_delivered_twice_by_kafka_sends_once(service: Running, http_sink: HttpSink) -> None:
    household = uuid.uuid4()
    ana = await add_member(service, household)
    assert (await add_channel(service, ana, http_sink.url("json", "hook"))).status_code == 201
    env = make_envelope(NotificationRequested(member_id=ana, purpose="test.dedupe", title="Hello", body="Once only"),
                        household_id=household, producer="calendar-sync")
    before = service.metric("attune_notifier_duplicates_total", purpose="request")
    await service.produce(Topic.NOTIFICATION_REQUESTS, env.to_bytes(), household)
    await service.produce(Topic.NOTIFICATION_REQUESTS, env.to_bytes(), household)
    await eventually(lambda: service.metric("attune_notifier_duplicates_total", purpose="request") == before + 1)
    await eventually(lambda: http_sink.received)
    values = await read_topic(service.bootstrap, Topic.NOTIFICATION_OUTCOMES,
                              until=lambda v: outcomes_for(v, household))
    await asyncio.sleep(0.5)
    assert [r.json["message"] for r in http_sink.received] == ["Once only"]
    [sent] = outcomes_for(values, household)
    assert sent["type"] == "notifications.notification_sent"
    assert sent["payload"]["cause_event_id"] == str(env.event_id)


async def test_bad_input_is_refused_clearly_nothing_is_lost_and_the_service_keeps_running(
    service: Running, http_sink: HttpSink
) -> None:
    household = uuid.uuid4()
    ana = await add_member(service, household)
    assert (await add_channel(service, ana, http_sink.url("json", "hook"))).status_code == 201
    good = make_envelope(NotificationRequested(member_id=ana, purpose="test.bad", title="Still here", body="ok"),
                         household_id=household, producer="calendar-sync")
    oversized = json.loads(good.to_bytes())
    oversized["event_id"] = str(uuid.uuid4())
    oversized["payload"]["body"] = installed_field_keys().seal(household, "body", "x" * 5000)  # sealed, too long
    unknown_version = json.loads(good.to_bytes())
    unknown_version["event_id"] = str(uuid.uuid4())
    unknown_version["version"] = 99
    topic = Topic.NOTIFICATION_REQUESTS
    await service.produce(topic, json.dumps(oversized).encode(), household)
    await service.produce(topic, json.dumps(unknown_version).encode(), household)
    await service.produce(topic, b"{definitely not json", household)
    stranger = uuid.uuid4()
    await service.publish(NotificationRequested(member_id=stranger, purpose="test.bad", title="Who", body="?"), household)
    await service.produce(topic, good.to_bytes(), household)

    await eventually(lambda: http_sink.received)
    assert [r.json["message"] for r in http_sink.received] == ["ok"]
    letters = [DeadLetter.model_validate_json(v) for v in await read_topic(
        service.bootstrap, Topic.DEAD_LETTER,
        until=lambda vs: sum(DeadLetter.model_validate_json(v).key == str(household).encode() for v in vs) >= 3)]
    mine = [letter for letter in letters if letter.key == str(household).encode()]
    reasons = sorted(letter.reason for letter in mine)
    assert any("payload.body" in r and "4000" in r for r in reasons), reasons
    assert any("unknown version 99" in r for r in reasons), reasons
    assert any(r.startswith("not JSON") for r in reasons), reasons
    assert all(letter.error_kind == "invalid" for letter in mine)
    outcomes = await read_topic(service.bootstrap, Topic.NOTIFICATION_OUTCOMES, until=lambda v: any(
        e["type"].endswith("notification_failed") for e in outcomes_for(v, household)))
    [failed] = [e for e in outcomes_for(outcomes, household) if e["type"].endswith("notification_failed")][:1]
    assert failed["payload"]["member_id"] == str(stranger)
    assert "not known to the notifier" in failed["payload"]["error"]
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{service.base}/readyz")).status_code == 200


SECRETS = {
    "json_password": "jsonPassw0rdSecret",
    "api_key": "XApiKeySecretValue42",
    "path_token": "pathTokenSecret777",
    "ntfy_password": "ntfyPassw0rdSecret",
    "mail_password": "mailPassw0rdSecret",
    "twilio_token": "twiliotoken" + "7" * 21,
    "vonage_secret": "vonageSecret55",
    "rejected_token": "rejectedTokenSecret99",
}


async def test_no_secret_reaches_any_log_line_event_or_metric(
    service: Running, http_sink: HttpSink, smtp_sink: SmtpSink
) -> None:
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setLevel(logging.DEBUG)
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", "apprise", "urllib3", "aiokafka", "faststream")}
    root.addHandler(capture)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    household = uuid.uuid4()
    s = SECRETS
    twilio_sid = "AC" + "5" * 32
    try:
        ana = await add_member(service, household, "Ana")
        ben = await add_member(service, household, "Ben")
        rejected = await add_channel(service, ana, f"twilio://{twilio_sid}:{s['rejected_token']}@1/2")
        assert rejected.status_code == 422 and s["rejected_token"] not in rejected.text
        urls = {
            ana: [
                f"mailto://user:{s['mail_password']}@127.0.0.1:{smtp_sink.port}?from=a@x.org&to=b@y.org&mode=insecure",
                f"json://user:{s['json_password']}@127.0.0.1:{http_sink.port}/{s['path_token']}?+X-Api-Key={s['api_key']}",
            ],
            ben: [
                f"vonage://vonagekey1:{s['vonage_secret']}@15551230000/15557650000",
                f"twilio://{twilio_sid}:{s['twilio_token']}@15551230000/15557654321",
                f"ntfy://ben:{s['ntfy_password']}@127.0.0.1:{http_sink.port}/attune-ben",
            ],
        }
        http_texts = [rejected.text]
        for member, member_urls in urls.items():
            for url in member_urls:
                response = await add_channel(service, member, url)
                assert response.status_code == 201, response.text
                http_texts.append(response.text)
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.add_passthru("http://127.0.0.1")
            mock.add(responses.POST, "https://rest.nexmo.com/sms/json", status=500)
            mock.add(responses.POST, f"https://api.twilio.com/2010-04-01/Accounts/{twilio_sid}/Messages.json",
                     json={"sid": "SM1"}, status=201)
            for member in (ana, ben):
                await service.publish(NotificationRequested(
                    member_id=member, purpose="test.secrets", title="Secret test", body="hello"), household)
            values = await read_topic(service.bootstrap, Topic.NOTIFICATION_OUTCOMES, timeout=60, until=lambda v: sum(
                e["type"].endswith("notification_sent") for e in outcomes_for(v, household)) >= 2)
        async with httpx.AsyncClient() as client:
            http_texts.append((await client.get(f"{service.base}/metrics")).text)
            for member in (ana, ben):
                http_texts.append((await client.get(f"{service.base}/v1/members/{member}/export", headers=auth(member))).text)
                http_texts.append((await client.get(f"{service.base}/v1/members/{member}/channels", headers=auth(member))).text)
        # A record the notifier cannot read, so this run leaves a dead letter of its own to sweep (with every
        # other one on the topic by then).
        await service.produce(Topic.NOTIFICATION_REQUESTS, b"{not json at all", household)
        dead = await read_topic(service.bootstrap, Topic.DEAD_LETTER, until=lambda vs: any(
            DeadLetter.model_validate_json(v).key == str(household).encode() for v in vs))
    finally:
        root.removeHandler(capture)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)

    # The secrets were really used: the sink saw the header, and email and SMS failures were retried elsewhere.
    hook = [r for r in http_sink.received if r.path == f"/{s['path_token']}"]
    assert hook and hook[0].headers["x-api-key"] == s["api_key"]
    ben_sent = [e for e in outcomes_for(values, household) if e["type"].endswith("notification_sent")
                and e["payload"]["member_id"] == str(ben)]
    assert ben_sent and ben_sent[0]["payload"]["channel_kind"] == "sms"  # Vonage failed twice, Twilio took it
    assert any(e["type"].endswith("notification_failed") for e in outcomes_for(values, household))

    logs = stream.getvalue()
    assert "apprise" in logs or "attune" in logs  # the capture really saw the run
    everything = {"logs": logs, "events": b"\n".join(values).decode(), "dead letters": b"\n".join(dead).decode(),
                  "http and metrics": "\n".join(http_texts)}
    for where, text in everything.items():
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} leaked into {where}"


async def test_a_curiosity_ritual_due_publishes_its_question_on_the_questions_topic(service: Running) -> None:
    from datetime import UTC, datetime, timedelta

    from attune_contracts import catalog
    from attune_contracts.messages import RitualDue

    household = uuid.uuid4()
    ana = await add_member(service, household)
    now = datetime.now(UTC)
    due = RitualDue(occurrence_id=uuid.uuid4(), ritual_id=uuid.uuid4(), template="curiosity_question",
                    title="Today's question", participants=[ana], scheduled_for=now, local_time=now.isoformat(),
                    time_zone="Europe/London", sensitive=False, deadline=now + timedelta(hours=12))
    env = await service.publish(due, household)
    await service.produce(Topic.RITUAL_OCCURRENCES, env.to_bytes(), household)  # redelivered
    values = await read_topic(service.bootstrap, Topic.QUESTIONS, until=lambda v: len(outcomes_for(v, household)) >= 2)
    asked = outcomes_for(values, household)
    assert {a["event_id"] for a in asked} == {asked[0]["event_id"]}  # the same fact, the same id, both times
    first = asked[0]
    assert (first["type"], first["producer"], first["payload"]["occurrence_id"]) == (
        "notifications.question_asked", "notifier", str(due.occurrence_id))
    bank, text = catalog.question_by_key(first["payload"]["question_key"]) or ("", "")
    assert bank == "adult" and first["payload"]["depth"] == catalog.question_depth(text)
