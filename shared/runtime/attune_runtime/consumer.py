"""The consumer error policy that loses nothing and is stopped by nothing.

FastStream's default ack policy commits before the handler runs, so a failing message is skipped.
Here every subscriber commits only after the message is finished, and what "finished" takes depends on
whose fault a failure is (attune_runtime.faults.classify):

- handled;
- the record is not an Attune message (any bytes, a tombstone, JSON nested 100,000 deep, a 5,000-digit
  number, undecodable headers...): dead-lettered as "invalid" with the reason, `on_invalid` runs, committed;
- the message is valid but no retry can make it acceptable (PermanentError, a value out of range, a
  constraint it violates): dead-lettered at once as "rejected" and `on_invalid(record, reason)` runs, so the
  service can tell the sender why;
- our infrastructure failed (database unreachable, pool timeout, broker unavailable, disk full): not the
  message's fault. The consumer pauses its partitions (no more prefetching), /readyz says what it is waiting
  for, and the SAME message is retried with capped backoff (<= 5 s, jitter) for as long as it takes; then
  the partitions resume. Nothing is dead-lettered or skipped, order is kept. One WARNING per outage.
- anything else is a bug in the handler: retried a bounded number of times with backoff, then
  dead-lettered as "handler_failed" and committed, so a poison message never blocks its partition.

The poll interval. aiokafka heartbeats from its own task, so a handler that awaits keeps the member in the
group; but once no poll (getone/getmany) has started for `max_poll_interval_ms`, the heartbeat task makes
the member leave the group: a rebalance, and its uncommitted messages handled again by another member.
An outage may last longer than any interval, and a batch of 500 bug retries would too, so no call of a
handler here outlives half of `max_poll_interval_ms` (the "hold", 150 s by default): when the hold is
spent, the consumer seeks each partition back to its first unfinished record, returns to the poll loop
(the commit that follows commits exactly the finished prefix), and, if it was waiting for infrastructure,
keeps the partitions paused until the next retry is due. The member stays in the group (polling a
paused partition is still polling), and the unfinished records come again, in order. A stop during an
outage hands the message back at once (within one backoff step) instead of holding the stop's grace
period: it was never committed, so the restarted process or another member takes it up.

A crash before the commit means Kafka redelivers; handlers are idempotent (keys derived from ids),
so a redelivery changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from aiokafka import ConsumerRebalanceListener, TopicPartition
from attune_contracts import ContractError, Envelope, Topic, parse
from attune_contracts.messages import DeadLetter
from attune_contracts.trust import producer_refusal
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry, Counter, Gauge

from .faults import Fault, HouseholdErasedError, PermanentError, Verdict, classify, describe
from .logs import message_context
from .retry import Backoff

if TYPE_CHECKING:
    from .deadletters import DeadLetterVault

__all__ = [
    "ConsumerMetrics", "Handler", "HouseholdErasedError", "InvalidHook", "PermanentError", "Readiness",
    "ReliableConsumer", "RetryPolicy", "reliable_subscriber", "subscribe",
]

log = logging.getLogger("attune.consumer")

Handler = Callable[[Envelope[Any]], Awaitable[None]]
InvalidHook = Callable[[Any, str], Awaitable[None]]

_CATALOG_TOPICS = frozenset(t.value for t in Topic)

# aiokafka's default, set explicitly: every call of a handler here returns within half of it (see above).
MAX_POLL_INTERVAL_MS = 300_000
# Waiting for infrastructure: retries start fast (a blip) and settle at one every ~5 s (a restart, a failover).
OUTAGE_BACKOFF = Backoff(base_s=0.2, max_s=5.0)

# What a dead letter keeps of a record: it must fit under the producer's max_request_size (1 MiB by
# default) once base64-encoded (x 4/3) with everything else, whatever the record was (Kafka accepts
# records up to its own limit, and a key or headers can be as large as a value).
KEEP_VALUE_BYTES = 512 * 1024
KEEP_KEY_BYTES = 4 * 1024
KEEP_HEADER_BYTES = 64 * 1024  # all header values together
MAX_HEADERS = 100  # DeadLetter's own bound


@dataclass(frozen=True)
class RetryPolicy:
    """For handler bugs only: infrastructure failures are waited out, permanent ones rejected at once."""

    max_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_lettered = Counter(
            "attune_consumer_dead_lettered_total", "Messages sent to the dead-letter topic",
            ["service", "topic", "error_kind"], registry=registry,
        )
        self.retries = Counter(
            "attune_consumer_retries_total", "Handler attempts that failed with a bug and were retried",
            ["service", "topic"], registry=registry,
        )
        self.ignored = Counter(
            "attune_consumer_ignored_total", "Valid messages of types this consumer does not handle",
            ["service", "topic"], registry=registry,
        )
        self.bugs = Counter(
            "attune_consumer_handler_bugs_total",
            "Handler attempts that failed with an exception that is neither the message's fault nor the "
            "infrastructure's (a bug)", ["service", "topic"], registry=registry,
        )
        self.infrastructure_waits = Counter(
            "attune_consumer_infrastructure_waits_total",
            "Attempts that failed because a dependency was down; the message was kept and retried",
            ["service", "topic", "dependency"], registry=registry,
        )
        self.untrusted = Counter(
            "attune_consumer_untrusted_total",
            "Valid messages refused because their producer may not send that type (on that topic)",
            ["service", "topic"], registry=registry,
        )
        self.paused = Gauge(
            "attune_consumer_paused", "1 while the consumer's partitions are paused, waiting for a dependency",
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


class _JoinListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    def __init__(self, readiness: Readiness, name: str) -> None:
        self._readiness, self._name = readiness, name

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # Called after every successful join, also with an empty assignment (more members than partitions).
        self._readiness.mark(self._name, True)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


def dead_letter_for(record: Any, *, reason: str, kind: str, consumer: str, attempts: int,
                    withhold_value: bool = False) -> DeadLetter:
    """The dead letter of `record`, small enough to publish whatever the record was: a value over
    KEEP_VALUE_BYTES keeps its first bytes, with the original length and sha256; an oversized key or
    headers are cut likewise. `truncated` says so. `withhold_value`: none of the value is kept (a message of
    an erased household), only its length and sha256."""
    value: bytes | None = record.value
    key: bytes | None = record.key
    truncated = False
    if value is not None and (len(value) > KEEP_VALUE_BYTES or withhold_value):
        truncated = True
    if key is not None and len(key) > KEEP_KEY_BYTES:
        key, truncated = key[:KEEP_KEY_BYTES], True
    headers: dict[str, str] = {}
    budget = KEEP_HEADER_BYTES
    for name, header_value in record.headers or ():
        raw = header_value or b""
        if len(headers) >= MAX_HEADERS or len(raw) + len(name) > budget:
            truncated = True
            continue
        budget -= len(raw) + len(name)
        headers[name[:256]] = _b64(raw) or ""
    return DeadLetter(
        reason=(reason or "no reason given")[:2000],
        error_kind=kind,
        consumer=consumer[:500],
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key_b64=_b64(key),
        value_b64=(_b64(value[:0 if withhold_value else KEEP_VALUE_BYTES]) or "") if value is not None else "",
        headers=headers,
        attempts=max(1, attempts),
        failed_at=datetime.now(UTC),
        value_length=len(value) if value is not None else None,
        value_sha256=hashlib.sha256(value).hexdigest() if value is not None else None,
        truncated=truncated,
    )


def household_of_key(key: bytes | None) -> UUID | None:
    """The household a record's Kafka key names (every Attune message is keyed by its household id), or None."""
    if key is None or len(key) > 64:
        return None
    try:
        return UUID(key.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def _of_erased_household(exc: BaseException) -> bool:
    current: BaseException | None = exc
    for _ in range(10):  # the exception or what it was raised from
        if current is None or isinstance(current, HouseholdErasedError):
            return current is not None
        current = current.__cause__
    return False


def envelope_context(envelope: Envelope[Any]) -> AbstractContextManager[None]:
    """Log lines inside carry the message's type, ids and correlation id (logs.message_context)."""
    return message_context(event_type=envelope.type, event_id=envelope.event_id,
                           correlation_id=envelope.correlation_id, household_id=envelope.household_id)


def log_handled(envelope: Envelope[Any]) -> None:
    """One INFO line per handled message, with its ids: what follows a correlation id across services."""
    log.info("handled %s", envelope.type)


class GiveBack(Exception):  # a signal, not an error
    """The hold of this call is spent: seek back to the unfinished records, poll, come back to them."""

    def __init__(self, resume_after_s: float) -> None:
        super().__init__(f"resume after {resume_after_s:.1f}s")
        self.resume_after_s = resume_after_s


_HINTS = {
    "database": "is the database up and reachable from here, is its disk full, is the connection pool big "
                "enough (pool timeouts)?",
    "kafka": "is the Kafka broker up and reachable from here?",
    "disk": "free some disk space on this host or on the database's.",
    "network": "are the services this one connects to (database, broker) up and reachable from here?",
}


def _partition(record: Any) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _can_pause(consumer: Any) -> bool:
    return all(hasattr(consumer, name) for name in ("pause", "resume", "assignment", "seek"))


class _Outage:
    """One consumer's wait for a dependency: paused partitions, /readyz red, one WARNING, metrics."""

    def __init__(self, owner: ReliableConsumer) -> None:
        self.owner = owner
        self.active = False
        self.since = 0.0
        self.attempt = 0
        self.dependency = ""
        self.topics: set[str] = set()

    @property
    def name(self) -> str:
        return f"consumer {self.owner.service}/{self.owner.group_id}"

    def begin(self, verdict: Verdict, exc: BaseException, topic: str, consumer: Any) -> None:
        owner = self.owner
        dependency = verdict.dependency or "a dependency"
        owner.metrics.infrastructure_waits.labels(owner.service, topic, dependency).inc()
        if not self.active:
            self.active, self.since, self.attempt, self.dependency = True, time.monotonic(), 0, dependency
            log.warning(
                "%s: waiting for %s (%s). Not the message's fault: its partitions are paused and the same "
                "message is retried every few seconds until it succeeds; nothing is dead-lettered or skipped. "
                "What to check: %s", self.name, dependency, describe(exc), _HINTS.get(dependency, f"is "
                f"{dependency} up and reachable from here?"),
            )
            if owner.readiness is not None:
                owner.readiness.waiting_for(self.name, dependency)
        if topic not in self.topics:
            self.topics.add(topic)
            owner.metrics.paused.labels(owner.service, topic).set(1)
        self.pause(consumer)  # again each time: a rebalance may have assigned new partitions, unpaused

    def next_delay(self) -> float:
        self.attempt += 1
        return OUTAGE_BACKOFF.delay(self.attempt)

    def end(self, consumer: Any) -> None:
        if not self.active:
            return
        owner = self.owner
        self.active = False
        self.resume(consumer)
        for topic in self.topics:
            owner.metrics.paused.labels(owner.service, topic).set(0)
        self.topics.clear()
        if owner.readiness is not None:
            owner.readiness.recovered(self.name)
        log.warning("%s: %s is back after %.1f s and %d retries; partitions resumed", self.name,
                    self.dependency, time.monotonic() - self.since, self.attempt)

    @staticmethod
    def pause(consumer: Any) -> None:
        if _can_pause(consumer):
            try:
                consumer.pause(*consumer.assignment())
            except Exception:
                log.debug("could not pause", exc_info=True)

    @staticmethod
    def resume(consumer: Any) -> None:
        if _can_pause(consumer):
            try:
                consumer.resume(*consumer.paused())
            except Exception:
                log.debug("could not resume", exc_info=True)

    def resume_later(self, consumer: Any, delay: float, partitions: set[TopicPartition]) -> None:
        def resume() -> None:
            self.resume(consumer)
            try:
                still_ours = bool(partitions & set(consumer.assignment()))
            except Exception:  # noqa: BLE001 - a stopped consumer has nothing left to wait for
                still_ours = False
            if self.active and not still_ours:
                self.end(consumer)  # the partitions went to another member: nothing left here to wait for

        asyncio.get_running_loop().call_later(delay, resume)


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
        readiness: Readiness | None = None,
        max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS,
        vault: DeadLetterVault | None = None,
    ) -> None:
        self.broker, self.service, self.group_id = broker, service, group_id
        self.vault = vault  # seals dead letters under their household's key (attune_runtime.deadletters)
        self.on_invalid = on_invalid
        self.handler, self.metrics, self.retry = handler, metrics, retry
        self.accept = frozenset(accept) if accept is not None else None
        self.readiness = readiness
        self.hold_s = max_poll_interval_ms / 1000 / 2
        self._sleep = sleep
        self.outage = _Outage(self)
        self.subscriber: Any = None  # FastStream's, once subscribed: a stop ends an outage wait early

    @property
    def stopping(self) -> bool:
        return self.subscriber is not None and not getattr(self.subscriber, "running", True)

    def deadline(self) -> float:
        return time.monotonic() + self.hold_s

    async def __call__(self, msg: KafkaMessage) -> None:
        """One FastStream message (or anything with `raw_message` and, to pause, `consumer`)."""
        record, consumer = msg.raw_message, getattr(msg, "consumer", None)
        try:
            await self.process(record, consumer, self.deadline())
        except GiveBack as back:
            self.give_back(consumer, [record], back.resume_after_s)

    async def process(self, record: Any, consumer: Any, deadline: float) -> None:
        """Finish one record (see the module docstring), or raise GiveBack."""
        try:
            envelope = parse(record.value)
        except ContractError as exc:
            await self.refuse(record, exc.reason, "invalid", 1, consumer, deadline)
            return
        if self.accept is not None and envelope.type not in self.accept:
            self.metrics.ignored.labels(self.service, record.topic).inc()
            return
        with envelope_context(envelope):
            if (refusal := self.untrusted(envelope, record)) is not None:
                await self.refuse(record, refusal, "rejected", 1, consumer, deadline,
                                  household_id=envelope.household_id)
                return
            await self.handle(envelope, record, consumer, deadline)

    def untrusted(self, envelope: Envelope[Any], record: Any) -> str | None:
        """Why a valid message must be refused before any handler sees it: its `producer` may not send its
        type, or not on this topic (attune_contracts.trust, from the topic catalog); None when it may."""
        refusal = producer_refusal(envelope, record.topic if record.topic in _CATALOG_TOPICS else None)
        if refusal is not None:
            self.metrics.untrusted.labels(self.service, record.topic).inc()
        return refusal

    async def handle(self, envelope: Envelope[Any], record: Any, consumer: Any, deadline: float) -> None:
        """Run the handler on a valid message until it is finished (see the module docstring), or GiveBack."""
        bugs = 0
        while True:
            try:
                await self.handler(envelope)
            except Exception as exc:
                verdict = classify(exc)
                if verdict.fault is Fault.INFRASTRUCTURE:
                    await self.wait_out(verdict, exc, record.topic, consumer, deadline)
                    continue
                self.outage.end(consumer)  # whatever failed, the dependency answered
                if verdict.fault is Fault.PERMANENT:
                    await self.refuse(record, describe(exc), "rejected", bugs + 1, consumer, deadline,
                                      withhold_value=_of_erased_household(exc), household_id=envelope.household_id)
                    return
                bugs += 1
                self.metrics.bugs.labels(self.service, record.topic).inc()
                reason = describe(exc, limit=1000)
                if bugs >= self.retry.max_attempts:
                    log.error("bug: %s failed %d times (%s); dead-lettering it", envelope.type, bugs, reason,
                              exc_info=exc)
                    await self.dead_letter(record, f"handler failed {bugs} times; last error: {reason}",
                                           "handler_failed", bugs, consumer, deadline,
                                           household_id=envelope.household_id)
                    return
                self.metrics.retries.labels(self.service, record.topic).inc()
                delay = self.retry.backoff.delay(bugs)
                log.warning("bug? attempt %d of %s failed (%s); retrying in %.2fs", bugs, envelope.type, reason,
                            delay)
                await self._sleep(delay)
            else:
                self.outage.end(consumer)
                log_handled(envelope)
                return

    async def wait_out(self, verdict: Verdict, exc: BaseException, topic: str, consumer: Any,
                       deadline: float) -> None:
        """After an infrastructure failure: pause, say so, sleep the backoff - or GiveBack if the hold is spent."""
        self.outage.begin(verdict, exc, topic, consumer)
        delay = self.outage.next_delay()
        if self.stopping:
            raise GiveBack(0.0)  # shutting down: hand it back now rather than hold the stop's grace period
        if time.monotonic() + delay > deadline:
            raise GiveBack(delay)
        await self._sleep(delay)
        if self.stopping:
            raise GiveBack(0.0)

    async def _with_infrastructure_waits(self, what: Callable[[], Awaitable[None]], topic: str, consumer: Any,
                                         deadline: float) -> None:
        while True:
            try:
                await what()
                return
            except Exception as exc:
                verdict = classify(exc)
                if verdict.fault is not Fault.INFRASTRUCTURE:
                    raise
                await self.wait_out(verdict, exc, topic, consumer, deadline)

    async def refuse(self, record: Any, reason: str, kind: str, attempts: int, consumer: Any,
                     deadline: float, *, withhold_value: bool = False, household_id: UUID | None = None) -> None:
        """An invalid or rejected message: `on_invalid` tells its sender why, then it is dead-lettered.

        The hook runs first so a dependency it needs being down is waited out like any other (the hook is
        idempotent: rejection ids derive from the message's); a bug in it is logged, never retried."""
        if self.on_invalid is not None:
            hook = self.on_invalid
            try:
                await self._with_infrastructure_waits(lambda: hook(record, reason), record.topic, consumer,
                                                      deadline)
            except GiveBack:
                raise
            except Exception:
                log.exception("on_invalid hook failed for %s[%d]@%d", record.topic, record.partition, record.offset)
        await self.dead_letter(record, reason, kind, attempts, consumer, deadline, withhold_value=withhold_value,
                               household_id=household_id)

    async def dead_letter(self, record: Any, reason: str, kind: str, attempts: int, consumer: Any,
                          deadline: float, *, withhold_value: bool = False, household_id: UUID | None = None) -> None:
        letter = dead_letter_for(record, reason=reason, kind=kind, consumer=f"{self.service}/{self.group_id}",
                                 attempts=attempts, withhold_value=withhold_value)
        vault = self.vault
        if vault is not None:
            whose = household_id if household_id is not None else household_of_key(record.key)

            async def seal() -> None:
                nonlocal letter
                letter = await vault.seal(letter, whose)

            # Never in the clear: a database outage is waited out like any other, before anything is published.
            await self._with_infrastructure_waits(seal, record.topic, consumer, deadline)
            reason = letter.reason

        async def publish() -> None:
            await self.broker.publish(
                letter.model_dump_json().encode(), topic=Topic.DEAD_LETTER.value, key=letter.key,
                headers={"reason": reason[:200].encode("ascii", "replace").decode(), "source_topic": record.topic},
            )

        # A broker outage is waited out; any other failure propagates: nacked, not committed, comes again.
        await self._with_infrastructure_waits(publish, record.topic, consumer, deadline)
        self.outage.end(consumer)
        self.metrics.dead_lettered.labels(self.service, record.topic, kind).inc()
        log.warning("dead-lettered %s[%d]@%d (%s): %s", record.topic, record.partition, record.offset, kind, reason)

    def give_back(self, consumer: Any, unfinished: list[Any], resume_after_s: float) -> None:
        """Seek every partition back to its first unfinished record; resume fetching after `resume_after_s`.

        The commit FastStream makes when the call returns then commits exactly the finished prefix."""
        earliest: dict[TopicPartition, int] = {}
        for record in unfinished:
            tp = _partition(record)
            earliest[tp] = min(earliest.get(tp, record.offset), record.offset)
        if not _can_pause(consumer):
            raise RuntimeError("cannot give records back without the Kafka consumer")  # nack: they come again
        for tp, offset in earliest.items():
            try:
                consumer.seek(tp, offset)
            except Exception:
                log.debug("could not seek %s", tp, exc_info=True)
        log.info("%s: handed %d record(s) back to the poll loop (hold of %.0f s spent); fetching again in %.1f s",
                 self.outage.name, len(unfinished), self.hold_s, resume_after_s)
        self.outage.resume_later(consumer, resume_after_s, set(earliest))


def _tolerant_headers(record: Any) -> Any:
    """The record as FastStream's parser may see it: header values it can decode as UTF-8."""
    if all(isinstance(v, bytes) and _is_utf8(v) for _, v in record.headers or ()):
        return record
    headers = tuple((k, (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers)
    return dataclasses.replace(record, headers=headers)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def tolerant_parser(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's Kafka parser decodes every header value as UTF-8 before any handler runs, and a value
    that is not (or a null one) raises: the message is then neither handled nor nacked (its ack middleware
    parses it again, fails again), and the next commit moves past it - lost, and with a batch subscriber
    the whole fetch with it. Headers carry nothing we need, so FastStream sees them decoded with
    replacement characters, while the handler keeps the original record (its bytes go to a dead letter)."""
    if isinstance(msg, tuple):
        message = await original(tuple(_tolerant_headers(r) for r in msg))
    else:
        message = await original(_tolerant_headers(msg))
    message.raw_message = msg
    return message


async def raw_bodies(msg: Any) -> Any:
    """The decoder of every subscriber here: the handler parses the raw bytes itself (attune_contracts.parse).
    FastStream's own JSON decoding would raise on the same hostile records (RecursionError, ValueError)."""
    return msg.body


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
    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS,
    vault: DeadLetterVault | None = None,
) -> ReliableConsumer:
    """Register a reliable group subscriber for `handler` on `topics`.

    `on_invalid(record, reason)` runs before an undecodable, invalid or rejected message is dead-lettered.
    """
    consumer = ReliableConsumer(
        broker, service=service, group_id=group_id, handler=handler, metrics=metrics, retry=retry, accept=accept,
        on_invalid=on_invalid, readiness=readiness, max_poll_interval_ms=max_poll_interval_ms, vault=vault,
    )
    subscriber = reliable_subscriber(broker, [t.value if isinstance(t, Topic) else t for t in topics],
                                     group_id=group_id, readiness=readiness, session_timeout_ms=session_timeout_ms,
                                     max_poll_interval_ms=max_poll_interval_ms)

    async def on_message(msg: KafkaMessage) -> None:
        await consumer(msg)

    subscriber(on_message)
    consumer.subscriber = subscriber
    return consumer


def reliable_subscriber(
    broker: KafkaBroker, names: list[str], *, group_id: str, readiness: Readiness, session_timeout_ms: int,
    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS, **options: Any,
) -> Any:
    """The subscription every consumer here shares (one message at a time, or in batches with `options`):
    offsets committed only after handling (NACK on error), a new group starts at the earliest offset,
    readiness waits for the group to join, and no record can make FastStream fail before our handler runs
    (tolerant header parsing, raw bodies)."""
    return broker.subscriber(
        *names,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        listener=readiness.expect_group(f"{group_id}:{','.join(names)}"),
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(500, session_timeout_ms // 5),
        max_poll_interval_ms=max_poll_interval_ms,
        parser=tolerant_parser,
        decoder=raw_bodies,
        **options,
    )
