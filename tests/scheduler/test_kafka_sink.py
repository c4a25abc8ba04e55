"""The relay's Kafka sink against the real broker: records land on the partition `send()` would pick, with their
headers, and overlapping calls keep their order per household."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from attune_scheduler.adapters.kafka import KafkaSink
from attune_scheduler.model import OutboxRow

pytestmark = [pytest.mark.integration]

PARTITIONS = 6


def row(i: int, topic: str, household: bytes) -> OutboxRow:
    return OutboxRow(i, uuid.uuid4(), topic, household, f'{{"n": {i}}}'.encode() + b" " * 600,
                     {"type": "ritual.due", "n": str(i)}, "ritual.due", None, None)


async def read_all(bootstrap: str, topic: str, want: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        got: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < want and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(records)
        return got
    finally:
        await consumer.stop()


async def test_overlapping_calls_keep_each_households_order_on_its_partition(kafka_bootstrap: str, unique: str) -> None:
    topic = f"sink-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    households = [str(uuid.uuid4()).encode() for _ in range(40)]
    rows = [row(i, topic, households[i % len(households)]) for i in range(3000)]
    sink = KafkaSink({"bootstrap_servers": kafka_bootstrap})
    await sink.start()
    try:
        await sink.prepare(rows[:500])  # some partitions worked out ahead, the rest on the way
        # Three calls overlapping, as the relay makes them; each returns once its records are acknowledged.
        await asyncio.gather(sink(rows[:1000]), sink(rows[1000:2000]), sink(rows[2000:]))
    finally:
        await sink.stop()

    got = await read_all(kafka_bootstrap, topic, len(rows))
    assert len(got) == len(rows)
    for record in got:
        assert record.partition == DefaultPartitioner()(record.key, list(range(PARTITIONS)), [])
        assert dict(record.headers)["type"] == b"ritual.due"
    for household in households:
        numbers = [int(dict(r.headers)["n"]) for r in sorted(got, key=lambda r: (r.partition, r.offset))
                   if r.key == household]
        assert numbers == sorted(numbers) and len(numbers) == len(rows) // len(households)


async def test_a_sink_not_started_refuses(unique: str) -> None:
    with pytest.raises(ConnectionError, match="not started"):
        await KafkaSink({"bootstrap_servers": "127.0.0.1:1"})([row(1, unique, b"h")])

