"""What the outbox relay sends: the envelopes make_envelope would build, on the payload's topic, keyed by
household, with the routing headers, in the order they were decided; and the producer underneath."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from attune_contracts import make_envelope, parse, spec_of
from attune_contracts.messages import CheckInStatus
from attune_contracts.publisher import headers_for

from .conftest import Harness


@pytest.mark.unit
async def test_the_relay_sends_what_make_envelope_builds_in_order(harness: Harness) -> None:
    h = harness
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 1, 1, 30, tzinfo=UTC))
    await h.send(due)
    h.sink.clear()
    h.clock.set(due.scheduled_for + timedelta(minutes=20))

    command = await h.check_in(due, h.ana, CheckInStatus.DONE, closeness=4)

    assert h.sink.types() == ["CheckInRecorded", "StreakUpdated"]
    for topic, key, value, headers in h.sink.records:
        sent = parse(value)
        expected = make_envelope(sent.payload, household_id=h.household, producer="checkins",
                                 correlation_id=command.correlation_id, event_id=sent.event_id,
                                 occurred_at=sent.occurred_at)
        assert sent == expected
        assert (topic, key, headers) == (spec_of(type(sent.payload)).topic.value, str(h.household).encode(),
                                         headers_for(expected))
    assert await h.count("checkins_outbox") == 0  # deleted once acknowledged


@pytest.mark.integration
async def test_send_all_delivers_every_record_in_order_across_full_producer_batches(kafka_bootstrap: str,
                                                                                  unique: str) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from attune_checkins.bootstrap import EventProducer
    from attune_checkins.config import Settings

    topic = f"checkins-send-all-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = EventProducer(Settings(environment="development", kafka_bootstrap_servers=kafka_bootstrap))
    await producer.start()
    households = [str(uuid4()).encode() for _ in range(4)]
    # ~1.4 MB, 4 keys on 3 partitions: one partition gets two keys (~700 KB), more than one 512 KB batch.
    records = [(topic, households[i % 4], f"{i:06d}".encode() * 170, {"n": str(i)}) for i in range(1400)]
    try:
        await producer.send_all(records)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{unique}")
    await consumer.start()
    seen: dict[bytes, list[int]] = {key: [] for key in households}
    try:
        async with asyncio.timeout(30):
            while sum(map(len, seen.values())) < len(records):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    for record in batch:
                        assert int(dict(record.headers)["n"]) == int(record.value[:6])
                        seen[record.key].append(int(record.value[:6]))
    finally:
        await consumer.stop()
    for i, key in enumerate(households):
        assert seen[key] == list(range(i, 1400, 4))  # every record once, in the order sent
