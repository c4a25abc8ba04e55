"""Delivery outcome events, many to a produce call (issue 12).

Each saved batch of outcomes (`write_behind.OutcomeWriter`) publishes its events together; through
FastStream each was one `broker.publish` (its middleware, one aiokafka `send` with its future and pure-Python
murmur2 partitioning): 0.3-0.7 ms of CPU per push in the 19:00 burst. `CoalescingSend` is a `Publisher`'s
send function that gathers the records of every call made in the same turn of the event loop (and those
made while the previous produce call waits for its acknowledgement) into one
`attune_runtime.producer.BatchProducer.send_all`: one producer batch per partition, as the scheduler's relay
does. Each call still returns only once its own record is acknowledged, or raises what the produce call
raised; records keep the order of the calls (each household's events stay in order on its partition).

The producer is started on first use, so a broker that is away at that moment fails those publishes (the
delivery loop logs them, as before) and the next call tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from attune_runtime.producer import BatchProducer, Record

# Records per produce call at most; more wait for the next one.
MAX_RECORDS = 1000


class CoalescingSend:
    def __init__(self, producer: BatchProducer, *, max_records: int = MAX_RECORDS) -> None:
        self.producer, self.max_records = producer, max_records
        self._queue: list[tuple[Record, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self.calls = 0  # produce calls made (tests, benchmarks)

    async def __call__(self, topic: str, key: bytes, value: bytes, headers: Mapping[str, str]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_seen)  # a caller cancelled meanwhile never reads its outcome
        self._queue.append(((topic, key, value, headers), done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="notifier-outcome-producer")
        await asyncio.shield(done)  # a cancelled caller must not fail the others' records

    async def _run(self) -> None:
        await asyncio.sleep(0)  # the other calls of this turn (one saved batch's outcomes) queue theirs
        while self._queue:
            items, self._queue = self._queue[: self.max_records], self._queue[self.max_records:]
            try:
                await self._started()
                await self.producer.send_all([record for record, _ in items])
            except Exception as exc:  # noqa: BLE001 - each caller gets it and logs its own event
                for _, done in items:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in items:
                    if not done.done():
                        done.set_result(None)
            self.calls += 1

    async def _started(self) -> None:
        if self.producer.client is None:
            async with self._starting:
                if self.producer.client is None:
                    await self.producer.start()

    async def stop(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.producer.stop()


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
