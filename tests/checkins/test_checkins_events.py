"""The production event sink: the envelopes it sends for a batch are the ones make_envelope would build,
on the payload's topic, keyed by household, with the routing headers, in order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from attune_checkins.bootstrap import KafkaEventSink
from attune_checkins.ports import Outgoing
from attune_contracts import Topic, make_envelope, parse
from attune_contracts.messages import CheckInRecorded, CheckInSource, CheckInStatus, StreakUnit, StreakUpdated
from attune_contracts.publisher import headers_for

pytestmark = [pytest.mark.unit]


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, dict[str, str]]] = []

    async def send(self, topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
        self.sent.append((topic, key, value, headers))

    async def send_all(self, records: list[tuple[str, bytes, bytes, dict[str, str]]]) -> None:
        self.sent += records


async def test_publish_all_sends_what_make_envelope_builds_in_order() -> None:
    producer = RecordingProducer()
    sink = KafkaEventSink(producer, producer="checkins")  # type: ignore[arg-type]
    household, ritual, now = uuid4(), uuid4(), datetime(2027, 3, 1, 12, tzinfo=UTC)
    recorded = CheckInRecorded(
        checkin_id=uuid4(), occurrence_id=uuid4(), ritual_id=ritual, template="evening_attunement",
        member_id=uuid4(), status=CheckInStatus.DONE, closeness=4, has_note=True, scheduled_for=now,
        recorded_at=now, source=CheckInSource.EVENT,
    )
    streak = StreakUpdated(ritual_id=ritual, template="evening_attunement", length=3, unit=StreakUnit.DAYS, best=5)
    events = [Outgoing(recorded, household, "corr-1", uuid4()), Outgoing(streak, household, None, uuid4())]

    await sink.publish_all(events)

    assert len(producer.sent) == 2
    for (topic, key, value, headers), event in zip(producer.sent, events, strict=True):
        sent = parse(value)
        expected = make_envelope(event.payload, household_id=household, producer="checkins",
                                 correlation_id=event.correlation_id, event_id=event.event_id,
                                 occurred_at=sent.occurred_at)
        assert sent == expected
        assert (topic, key, headers) == (Topic.CHECKINS_EVENTS.value, str(household).encode(), headers_for(expected))
    assert parse(producer.sent[1][2]).correlation_id == str(events[1].event_id)


async def test_single_publish_goes_through_the_same_producer() -> None:
    producer = RecordingProducer()
    sink = KafkaEventSink(producer, producer="checkins")  # type: ignore[arg-type]
    household, ritual = uuid4(), uuid4()
    streak = StreakUpdated(ritual_id=ritual, template="evening_attunement", length=1, unit=StreakUnit.DAYS, best=1)

    envelope: Any = await sink.publish(streak, household_id=household)

    assert [parse(value) for _, _, value, _ in producer.sent] == [envelope]


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
    producer = EventProducer(Settings(kafka_bootstrap_servers=kafka_bootstrap))
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
