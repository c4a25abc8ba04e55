"""The consumer error policy against the real broker (Tansu): nothing lost, nothing blocked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from attune_contracts import Topic, make_envelope
from attune_contracts.messages import DeadLetter, LogMoment, MomentKind
from attune_contracts.trust import sender_of
from attune_runtime.consumer import ConsumerMetrics, Readiness, RetryPolicy, subscribe
from attune_runtime.kafka import ensure_topics, make_broker
from attune_runtime.retry import Backoff
from attune_runtime.settings import ServiceSettings
from attune_runtime.testing import eventually
from prometheus_client import CollectorRegistry

pytestmark = [pytest.mark.integration]

HOUSEHOLD = uuid.UUID("00000000-0000-4000-8000-000000000001")


def moment(kind: MomentKind = MomentKind.POSITIVE) -> bytes:
    payload = LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=kind)
    return make_envelope(payload, household_id=HOUSEHOLD, producer=sender_of(payload)).to_bytes()


async def make_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    await ensure_topics(ServiceSettings(kafka_bootstrap_servers=bootstrap), [Topic.DEAD_LETTER])


async def produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=str(HOUSEHOLD).encode(), headers=[("h", b"v")])
    finally:
        await producer.stop()


async def dead_letters_for(bootstrap: str, source_topic: str, want: int, timeout: float = 20) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(Topic.DEAD_LETTER.value, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"dlq-reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        async with asyncio.timeout(timeout):
            while len(found) < want:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        letter = DeadLetter.model_validate_json(record.value)
                        if letter.source_topic == source_topic:
                            found.append(letter)
    finally:
        await consumer.stop()
    return found


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.fail_times = fail_times
        self.calls: list[str] = []
        self.handled: list[str] = []

    async def __call__(self, envelope: Any) -> None:
        self.calls.append(str(envelope.event_id))
        if len(self.calls) <= self.fail_times:
            raise ConnectionError("database briefly unavailable")
        self.handled.append(str(envelope.event_id))


async def run_consumer(bootstrap: str, topic: str, group: str, handler: Any, *, attempts: int = 3):
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap)
    registry = CollectorRegistry()
    broker = make_broker(settings, service="test", registry=registry)
    readiness = Readiness()
    subscribe(
        broker, topic, service="test", group_id=group, handler=handler, metrics=ConsumerMetrics(registry),
        readiness=readiness, retry=RetryPolicy(max_attempts=attempts, backoff=Backoff(base_s=0.05, max_s=0.2)),
        session_timeout_ms=6000,
    )
    await broker.start()
    return broker, registry, readiness


async def test_invalid_message_is_dead_lettered_and_the_next_one_processed(kafka_bootstrap: str, unique: str) -> None:
    topic = f"policy-invalid-{unique}"
    await make_topic(kafka_bootstrap, topic)
    good = moment()
    await produce(kafka_bootstrap, topic, b"{not json", moment().replace(b'"positive"', b'"lukewarm"'), good)

    handler = Recorder()
    broker, registry, readiness = await run_consumer(kafka_bootstrap, topic, f"g-{unique}", handler)
    try:
        await eventually(lambda: handler.handled, timeout=30)
        assert handler.handled == [json.loads(good)["event_id"]]
        letters = await dead_letters_for(kafka_bootstrap, topic, want=2)
        assert [letter.offset for letter in letters] == [0, 1]
        assert letters[0].reason.startswith("not JSON")
        assert letters[0].value == b"{not json"
        assert "payload.kind" in letters[1].reason and letters[1].error_kind == "invalid"
        assert letters[0].headers == {"h": "dg=="}  # base64 of b"v"
        assert letters[0].key == str(HOUSEHOLD).encode()
        assert (await readiness.status())["ready"] is True
        assert registry.get_sample_value(
            "attune_consumer_dead_lettered_total", {"service": "test", "topic": topic, "error_kind": "invalid"}
        ) == 2
    finally:
        await broker.stop()


async def test_transient_failure_is_retried_then_processed_once(kafka_bootstrap: str, unique: str) -> None:
    topic = f"policy-retry-{unique}"
    await make_topic(kafka_bootstrap, topic)
    value = moment()
    await produce(kafka_bootstrap, topic, value)

    handler = Recorder(fail_times=2)
    broker, registry, _ = await run_consumer(kafka_bootstrap, topic, f"g-{unique}", handler)
    try:
        await eventually(lambda: handler.handled, timeout=30)
        await asyncio.sleep(0.5)
        event_id = json.loads(value)["event_id"]
        assert handler.calls == [event_id] * 3
        assert handler.handled == [event_id]
        # A connection error is the infrastructure's fault: waited out, not counted against the bug retries.
        assert registry.get_sample_value("attune_consumer_infrastructure_waits_total",
                                         {"service": "test", "topic": topic, "dependency": "network"}) == 2
        assert registry.get_sample_value("attune_consumer_retries_total", {"service": "test", "topic": topic}) is None
    finally:
        await broker.stop()


async def test_poison_message_is_dead_lettered_after_bounded_retries(kafka_bootstrap: str, unique: str) -> None:
    topic = f"policy-poison-{unique}"
    await make_topic(kafka_bootstrap, topic)
    poison, after = moment(), moment()
    await produce(kafka_bootstrap, topic, poison, after)
    poison_id = json.loads(poison)["event_id"]

    async def handler(envelope: Any) -> None:
        if str(envelope.event_id) == poison_id:
            raise RuntimeError("bug in handler")
        processed.append(str(envelope.event_id))

    processed: list[str] = []
    broker, _, _ = await run_consumer(kafka_bootstrap, topic, f"g-{unique}", handler, attempts=3)
    try:
        await eventually(lambda: processed, timeout=30)
        assert processed == [json.loads(after)["event_id"]]
        [letter] = await dead_letters_for(kafka_bootstrap, topic, want=1)
        assert letter.attempts == 3 and letter.error_kind == "handler_failed"
        assert "RuntimeError: bug in handler" in letter.reason
        assert letter.value == poison
    finally:
        await broker.stop()


CRASHING_CONSUMER = textwrap.dedent(
    """
    import asyncio, os, sys
    from prometheus_client import CollectorRegistry
    from attune_runtime.consumer import ConsumerMetrics, Readiness, subscribe
    from attune_runtime.kafka import make_broker
    from attune_runtime.settings import ServiceSettings

    async def crash(envelope):
        print("handling", envelope.event_id, flush=True)
        os._exit(17)  # the process dies mid-handler, before any commit

    async def main():
        registry = CollectorRegistry()
        broker = make_broker(ServiceSettings(kafka_bootstrap_servers=sys.argv[1]), service="t", registry=registry)
        subscribe(broker, sys.argv[2], service="t", group_id=sys.argv[3], handler=crash,
                  metrics=ConsumerMetrics(registry), readiness=Readiness(), session_timeout_ms=6000)
        await broker.start()
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_consumer_killed_before_commit_gets_the_message_again(kafka_bootstrap: str, unique: str) -> None:
    topic, group = f"policy-crash-{unique}", f"g-{unique}"
    await make_topic(kafka_bootstrap, topic)
    value = moment()
    await produce(kafka_bootstrap, topic, value)

    crashed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_CONSUMER, kafka_bootstrap, topic, group,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(crashed.communicate(), 60)
    assert crashed.returncode == 17, err.decode()[-2000:]
    assert out.decode().startswith("handling " + json.loads(value)["event_id"])

    handler = Recorder()
    broker, _, _ = await run_consumer(kafka_bootstrap, topic, group, handler)
    try:
        await eventually(lambda: handler.handled, timeout=40)
        assert handler.handled == [json.loads(value)["event_id"]]
    finally:
        await broker.stop()
