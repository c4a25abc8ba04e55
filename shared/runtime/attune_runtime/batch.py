"""A batch subscriber with the same policy as the reliable consumer (attune_runtime.consumer).

Up to `max_records` records are parsed (`parse` refuses anything, a tombstone included, with a
ContractError). The valid ones are handled in ONE transaction (`batch_handler`):

- it succeeds: the invalid records are then dead-lettered (and `on_invalid` runs);
- it fails because our infrastructure did (database down, pool timeout, disk full): the WHOLE batch waits,
  partitions paused, /readyz red, and is retried as a batch until it succeeds - no one-by-one storm of
  500 messages each finding the database down;
- it fails otherwise (a bug, or one message that no retry can fix): every record goes through the
  per-message policy instead (rejected at once, or bounded retries then the dead-letter topic), so one
  poison message costs a slower batch, never a blocked partition.

The batch is bounded in time: no call outlives the consumer's hold (half of max_poll_interval_ms), or the
member would be kicked out of its group and the batch handled twice by a rebalance storm. When the hold
is spent (waiting for infrastructure, or 500 messages each retrying a bug), the records not yet finished
are handed back to the poll loop (each partition seeks back to its first unfinished record; the commit
then covers the finished prefix) and come again in the next poll, in order. Invalid records are
dead-lettered after the batch is handled, so a batch handed back never dead-letters them twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from attune_contracts import ContractError, Envelope, Topic, parse
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from .consumer import (
    MAX_POLL_INTERVAL_MS,
    GiveBack,
    Readiness,
    ReliableConsumer,
    envelope_context,
    log_handled,
    raw_bodies,
    reliable_subscriber,
)
from .consumer import log as consumer_log
from .faults import Fault, classify

log = logging.getLogger("attune.batch")

BatchHandler = Callable[[list[Envelope[Any]]], Awaitable[None]]


@dataclass
class _One:
    """What ReliableConsumer reads from a FastStream message: the body and the raw record."""

    body: bytes
    raw_message: Any


def _key(record: Any) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


class BatchConsumer:
    def __init__(self, reliable: ReliableConsumer, batch_handler: BatchHandler) -> None:
        self.reliable, self.batch_handler = reliable, batch_handler

    async def __call__(self, records: Iterable[Any], consumer: Any = None) -> None:
        records = list(records)
        done: set[tuple[str, int, int]] = set()
        try:
            await self._process(records, consumer, done, self.reliable.deadline())
        except GiveBack as back:
            self.reliable.give_back(consumer, [r for r in records if _key(r) not in done], back.resume_after_s)

    async def _process(self, records: list[Any], consumer: Any, done: set[tuple[str, int, int]],
                       deadline: float) -> None:
        reliable = self.reliable
        decoded: list[tuple[Any, Envelope[Any]]] = []
        invalid: list[tuple[Any, str, str, Any]] = []  # (record, reason, "invalid" or "rejected", household)
        for record in records:
            try:
                envelope = parse(record.value)  # whatever the value, even None: only ContractError
            except ContractError as exc:
                invalid.append((record, exc.reason, "invalid", None))
                continue
            if reliable.accept is not None and envelope.type not in reliable.accept:
                reliable.metrics.ignored.labels(reliable.service, record.topic).inc()
                done.add(_key(record))
                continue
            if (refusal := reliable.untrusted(envelope, record)) is not None:
                invalid.append((record, refusal, "rejected", envelope.household_id))
                continue
            decoded.append((record, envelope))
        if decoded and not await self._as_one_batch(decoded, consumer, deadline):
            await self._one_by_one(decoded, consumer, done, deadline)
        done.update(_key(record) for record, _ in decoded)
        for record, reason, kind, household_id in invalid:
            await reliable.refuse(record, reason, kind, 1, consumer, deadline, household_id=household_id)
            done.add(_key(record))

    async def _as_one_batch(self, decoded: list[tuple[Any, Envelope[Any]]], consumer: Any, deadline: float) -> bool:
        """True when the batch handler succeeded; False when its messages must go one by one."""
        reliable = self.reliable
        topic = decoded[0][0].topic
        while True:
            try:
                await self.batch_handler([envelope for _, envelope in decoded])
            except Exception as exc:  # noqa: BLE001 - whose fault it is decides what happens
                verdict = classify(exc)
                if verdict.fault is Fault.INFRASTRUCTURE:
                    await reliable.wait_out(verdict, exc, topic, consumer, deadline)  # the whole batch waits
                    continue
                reliable.outage.end(consumer)
                log.warning("batch of %d failed (%s: %s); handling its messages one by one", len(decoded),
                            verdict.fault.value, type(exc).__name__)
                return False
            reliable.outage.end(consumer)
            if consumer_log.isEnabledFor(logging.INFO):  # as the one-by-one path does, line by line
                for _, envelope in decoded:
                    with envelope_context(envelope):
                        log_handled(envelope)
            return True

    async def _one_by_one(self, decoded: list[tuple[Any, Envelope[Any]]], consumer: Any,
                          done: set[tuple[str, int, int]], deadline: float) -> None:
        for index, (record, envelope) in enumerate(decoded):
            if index and time.monotonic() > deadline:
                # Bugs retried message after message have spent the hold: the rest comes in the next poll.
                raise GiveBack(0.0)
            with envelope_context(envelope):
                await self.reliable.handle(envelope, record, consumer, deadline)
            done.add(_key(record))


def subscribe_batch(
    broker: KafkaBroker,
    *topics: Topic,
    reliable: ReliableConsumer,
    batch_handler: BatchHandler,
    readiness: Readiness,
    max_records: int = 500,
    session_timeout_ms: int = 10_000,
    skip_body_decoding: bool = True,
    max_poll_interval_ms: int | None = None,
) -> BatchConsumer:
    """`max_poll_interval_ms` defaults to the one `reliable` was built with (its hold is half of it).

    Bodies are never JSON-decoded by FastStream (the handler parses the raw records itself, and FastStream's
    decoding raises on hostile records); `skip_body_decoding` is kept for callers that still pass it."""
    del skip_body_decoding
    if reliable.readiness is None:
        reliable.readiness = readiness
    if max_poll_interval_ms is None:
        max_poll_interval_ms = int(reliable.hold_s * 2 * 1000)
    else:
        reliable.hold_s = max_poll_interval_ms / 1000 / 2
    consumer = BatchConsumer(reliable, batch_handler)
    subscriber = reliable_subscriber(
        broker, [t.value if isinstance(t, Topic) else t for t in topics], group_id=reliable.group_id,
        readiness=readiness, session_timeout_ms=session_timeout_ms, max_poll_interval_ms=max_poll_interval_ms,
        batch=True, max_records=max_records, batch_timeout_ms=50,
    )

    async def on_batch(msg: KafkaMessage) -> None:
        await consumer(msg.raw_message, getattr(msg, "consumer", None))

    subscriber(on_batch)
    reliable.subscriber = subscriber
    return consumer


__all__ = ["MAX_POLL_INTERVAL_MS", "BatchConsumer", "raw_bodies", "subscribe_batch"]
