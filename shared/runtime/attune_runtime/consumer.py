"""The consumer error policy that loses nothing.

FastStream's default ack policy commits before the handler runs, so a failing message is skipped.
Here every subscriber commits only after the message is finished, and "finished" means one of:

- handled;
- not decodable or not valid against the contracts: published to the dead-letter topic with the
  reason, original bytes, headers, topic/partition/offset, then committed (no retry can fix it);
- the handler kept failing: retried in place with exponential backoff and jitter, a bounded number
  of times, then dead-lettered and committed, so a poison message never blocks its partition.

A crash before the commit means Kafka redelivers; handlers are idempotent (keys derived from ids),
so a redelivery changes nothing. If even the dead-letter publish fails, the message is not
committed (nack) and comes again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRebalanceListener
from attune_contracts import ContractError, Envelope, Topic, parse
from attune_contracts.messages import DeadLetter
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry, Counter

from .faults import PermanentError
from .logs import message_context
from .retry import Backoff

log = logging.getLogger("attune.consumer")

Handler = Callable[[Envelope[Any]], Awaitable[None]]
InvalidHook = Callable[[Any, str], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_lettered = Counter(
            "attune_consumer_dead_lettered_total", "Messages sent to the dead-letter topic",
            ["service", "topic", "error_kind"], registry=registry,
        )
        self.retries = Counter(
            "attune_consumer_retries_total", "Handler attempts that failed and were retried",
            ["service", "topic"], registry=registry,
        )
        self.ignored = Counter(
            "attune_consumer_ignored_total", "Valid messages of types this consumer does not handle",
            ["service", "topic"], registry=registry,
        )


class Readiness:
    """Ready once every consumer group has joined, every extra check passes, and nothing is waiting for a
    dependency (a consumer waiting out a database outage says so with `waiting_for`)."""

    def __init__(self) -> None:
        self._joined: dict[str, bool] = {}
        self._checks: list[Callable[[], Awaitable[bool]]] = []
        self._waiting: dict[str, str] = {}

    def expect_group(self, name: str) -> _JoinListener:
        self._joined[name] = False
        return _JoinListener(self, name)

    def add_check(self, check: Callable[[], Awaitable[bool]]) -> None:
        self._checks.append(check)

    def mark(self, name: str, joined: bool) -> None:
        self._joined[name] = joined

    def waiting_for(self, who: str, dependency: str) -> None:
        """`who` (a consumer, a worker) cannot work until `dependency` ("database", "kafka", "disk") is back."""
        self._waiting[who] = dependency

    def recovered(self, who: str) -> None:
        self._waiting.pop(who, None)

    @property
    def waiting(self) -> dict[str, str]:
        return dict(self._waiting)

    async def status(self) -> dict[str, Any]:
        waiting = sorted(name for name, ok in self._joined.items() if not ok)
        failed = []
        for check in self._checks:
            try:
                if not await check():
                    failed.append(getattr(check, "__name__", "check"))
            except Exception as exc:  # noqa: BLE001 - a failing check means "not ready", with why
                failed.append(f"{getattr(check, '__name__', 'check')}: {type(exc).__name__}")
        blocked = dict(sorted(self._waiting.items()))
        return {"ready": not waiting and not failed and not blocked, "waiting_for_groups": waiting,
                "failed_checks": failed, "waiting_for": blocked}


class _JoinListener(ConsumerRebalanceListener):
    def __init__(self, readiness: Readiness, name: str) -> None:
        self._readiness, self._name = readiness, name

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # Called after every successful join, also with an empty assignment (more members than partitions).
        self._readiness.mark(self._name, True)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


def envelope_context(envelope: Envelope[Any]) -> AbstractContextManager[None]:
    """Log lines inside carry the message's type, ids and correlation id (logs.message_context)."""
    return message_context(event_type=envelope.type, event_id=envelope.event_id,
                           correlation_id=envelope.correlation_id, household_id=envelope.household_id)


def log_handled(envelope: Envelope[Any]) -> None:
    """One INFO line per handled message, with its ids: what follows a correlation id across services."""
    log.info("handled %s", envelope.type)


class ReliableConsumer:
    """Wraps a handler of contract envelopes with the policy above."""

    def __init__(
        self,
        broker: KafkaBroker,
        *,
        service: str,
        group_id: str,
        handler: Handler,
        metrics: ConsumerMetrics,
        retry: RetryPolicy = RetryPolicy(),
        accept: Iterable[str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_invalid: InvalidHook | None = None,
    ) -> None:
        self.broker, self.service, self.group_id = broker, service, group_id
        self.on_invalid = on_invalid
        self.handler, self.metrics, self.retry = handler, metrics, retry
        self.accept = frozenset(accept) if accept is not None else None
        self._sleep = sleep

    async def __call__(self, msg: KafkaMessage) -> None:
        record = msg.raw_message
        try:
            envelope = parse(msg.body)
        except ContractError as exc:
            await self._dead_letter(record, exc.reason, "invalid", attempts=1)
            if self.on_invalid is not None:
                try:
                    # e.g. tell the sender of an invalid command why it was refused
                    await self.on_invalid(record, exc.reason)
                except Exception:
                    log.exception("on_invalid hook failed for %s[%d]@%d", record.topic, record.partition,
                                  record.offset)
            return
        if self.accept is not None and envelope.type not in self.accept:
            self.metrics.ignored.labels(self.service, record.topic).inc()
            return
        with envelope_context(envelope):
            await self._handle(envelope, record)

    async def _handle(self, envelope: Envelope[Any], record: Any) -> None:
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                await self.handler(envelope)
                log_handled(envelope)
                return
            except PermanentError as exc:
                await self._dead_letter(record, f"refused by handler: {exc}", "handler_failed", attempts=attempt)
                return
            except Exception as exc:  # noqa: BLE001 - any other failure is treated as transient
                reason = f"{type(exc).__name__}: {exc}"
                if attempt == self.retry.max_attempts:
                    log.error("giving up on %s after %d attempts: %s", envelope.type, attempt, reason)
                    await self._dead_letter(
                        record, f"handler failed {attempt} times; last error: {reason}", "handler_failed",
                        attempts=attempt,
                    )
                    return
                self.metrics.retries.labels(self.service, record.topic).inc()
                delay = self.retry.backoff.delay(attempt)
                log.warning("attempt %d of %s failed (%s); retrying in %.2fs", attempt, envelope.type, reason, delay)
                await self._sleep(delay)

    async def _dead_letter(self, record: Any, reason: str, kind: str, *, attempts: int) -> None:
        letter = DeadLetter(
            reason=reason[:2000],
            error_kind=kind,
            consumer=f"{self.service}/{self.group_id}",
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key_b64=_b64(record.key),
            value_b64=_b64(record.value) or "",
            headers={k: _b64(v) or "" for k, v in (record.headers or ())},
            attempts=attempts,
            failed_at=datetime.now(UTC),
        )
        # If this raises, the message is nacked, not committed: it comes again, nothing is lost.
        await self.broker.publish(
            letter.model_dump_json().encode(), topic=Topic.DEAD_LETTER.value, key=record.key,
            headers={"reason": reason[:200].encode("ascii", "replace").decode(), "source_topic": record.topic},
        )
        self.metrics.dead_lettered.labels(self.service, record.topic, kind).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)


def subscribe(
    broker: KafkaBroker,
    *topics: Topic | str,
    service: str,
    group_id: str,
    handler: Handler,
    metrics: ConsumerMetrics,
    readiness: Readiness,
    retry: RetryPolicy = RetryPolicy(),
    accept: Iterable[str] | None = None,
    session_timeout_ms: int = 10_000,
    on_invalid: InvalidHook | None = None,
) -> ReliableConsumer:
    """Register a reliable group subscriber for `handler` on `topics`.

    `on_invalid(record, reason)` runs after an undecodable or invalid message was dead-lettered.
    """
    consumer = ReliableConsumer(
        broker, service=service, group_id=group_id, handler=handler, metrics=metrics, retry=retry, accept=accept,
        on_invalid=on_invalid,
    )
    subscriber = reliable_subscriber(broker, [t.value if isinstance(t, Topic) else t for t in topics],
                                     group_id=group_id, readiness=readiness, session_timeout_ms=session_timeout_ms)

    async def on_message(msg: KafkaMessage) -> None:
        await consumer(msg)

    subscriber(on_message)
    return consumer


def reliable_subscriber(
    broker: KafkaBroker, names: list[str], *, group_id: str, readiness: Readiness, session_timeout_ms: int,
    **options: Any,
) -> Any:
    """The subscription every consumer here shares (one message at a time, or in batches with `options`):
    offsets committed only after handling (NACK on error), a new group starts at the earliest offset, and
    readiness waits for the group to join."""
    return broker.subscriber(
        *names,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        listener=readiness.expect_group(f"{group_id}:{','.join(names)}"),
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(500, session_timeout_ms // 5),
        **options,
    )
