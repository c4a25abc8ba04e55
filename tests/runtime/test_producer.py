"""BatchProducer: calls that overlap never overtake one another, even when the producer is slow to take batches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from attune_runtime.producer import BatchProducer

pytestmark = [pytest.mark.unit]

PARTITIONS = 6


class SlowProducer:
    """Records the batches handed to it, in order; yields to the event loop on every call, as a busy producer
    does when its buffer is full, so overlapping calls get every chance to overtake one another."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, int, list[bytes]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        await asyncio.sleep(0)
        return set(range(PARTITIONS))

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch()

    async def send_batch(self, batch: RecordingBatch, topic: str, *, partition: int) -> asyncio.Future[None]:
        await asyncio.sleep(0.001)
        assert batch.closed, "a batch is handed over complete, so it leaves without lingering"
        self.handed.append((topic, partition, batch.values))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class RecordingBatch:
    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.closed = False

    def append(self, *, timestamp: Any, key: bytes, value: bytes, headers: Any) -> object | None:
        if len(self.values) == 7:  # full: the producer starts the partition's next batch
            return None
        self.values.append(value)
        return object()

    def close(self) -> None:
        self.closed = True


def producer() -> tuple[BatchProducer, SlowProducer]:
    fake = SlowProducer()
    sending = BatchProducer({}, client_id="test")
    sending.use(fake)
    return sending, fake


async def test_a_later_call_never_overtakes_an_earlier_one_on_a_busy_producer() -> None:
    sending, fake = producer()
    records = [("t", b"one household", f"{i}".encode(), {"n": str(i)}) for i in range(60)]
    await asyncio.gather(sending.send_all(records[:20]), sending.send_all(records[20:40]),
                         sending.send_all(records[40:]))
    assert [v for _, _, values in fake.handed for v in values] == [value for _, _, value, _ in records]


async def test_each_key_keeps_one_partition_and_its_order() -> None:
    sending, fake = producer()
    keys = [f"household-{i}".encode() for i in range(10)]
    records = [("t", keys[i % 10], f"{i}".encode(), {}) for i in range(200)]
    await sending.prepare([("t", k) for k in keys[:5]])
    await sending.send_all(records)
    partition_of: dict[bytes, set[int]] = {}
    order: dict[bytes, list[int]] = {}
    for _, partition, values in fake.handed:
        for value in values:
            key = keys[int(value) % 10]
            partition_of.setdefault(key, set()).add(partition)
            order.setdefault(key, []).append(int(value))
    assert all(len(p) == 1 for p in partition_of.values())
    assert all(v == sorted(v) and len(v) == 20 for v in order.values())


async def test_not_started_says_so() -> None:
    with pytest.raises(ConnectionError, match="not started"):
        await BatchProducer({}, client_id="test").send("t", b"k", b"v", {})
