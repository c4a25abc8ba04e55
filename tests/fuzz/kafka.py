"""Sending hostile records to a service's topics and accounting for every one of them.

`Fuzz.send` writes the records (raw aiokafka: any key, any header bytes, a tombstone, a value near the
1 MiB limit) and remembers where each landed. `Watch` reads the dead-letter topic and the event topics.
`Fuzz.account` then waits until every record is accounted for: each one the contracts refuse must be on the
dead-letter topic (matched by topic, partition and offset) with a reason, and every probe (a valid message
sent among and after the hostile ones) must have taken effect. What is missing after the wait is reported
record by record, so a failure says which input stalled or vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from attune_contracts import Envelope, Topic, parse
from attune_contracts.messages import DeadLetter

from .strategies import Record

MIB = 1024 * 1024


def refused_by_contracts(value: bytes | None) -> str | None:
    """Why the contracts refuse these bytes (any exception counts: it is the message's fault), or None."""
    if value is None:
        return "tombstone"
    try:
        parse(value)
    except Exception as exc:  # noqa: BLE001 - RecursionError and ValueError are refusals too
        return f"{type(exc).__name__}"
    return None


@dataclass
class Sent:
    record: Record
    topic: str
    partition: int
    offset: int
    refused: str | None  # set when the contracts refuse the value: it must be dead-lettered
    probe: Any = None  # for a probe: what proves it was handled (see Fuzz.probe)

    @property
    def where(self) -> tuple[str, int, int]:
        return self.topic, self.partition, self.offset


class Watch:
    """Everything on the dead-letter topic and the given event topics, read from the start, in the background."""

    def __init__(self, bootstrap: str, *event_topics: Topic) -> None:
        self.dead: dict[tuple[str, int, int], list[DeadLetter]] = {}
        self.broken_letters: list[bytes] = []
        self.events: list[Envelope[Any]] = []
        self.consumer = AIOKafkaConsumer(
            Topic.DEAD_LETTER.value, *(t.value for t in event_topics), bootstrap_servers=bootstrap,
            auto_offset_reset="earliest", group_id=None, max_partition_fetch_bytes=4 * MIB, fetch_max_bytes=16 * MIB,
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    if record.topic == Topic.DEAD_LETTER.value:
                        try:
                            letter = DeadLetter.model_validate_json(record.value)
                        except Exception:  # noqa: BLE001 - a dead letter that is not one is a finding
                            self.broken_letters.append(record.value[:300])
                            continue
                        self.dead.setdefault((letter.source_topic, letter.partition, letter.offset), []).append(letter)
                    else:
                        with contextlib.suppress(Exception):
                            self.events.append(parse(record.value))

    def answered(self, event_id: uuid.UUID, correlation_id: str) -> bool:
        """A command was answered: a rejection names it, or an event carries its correlation id."""
        for e in self.events:
            if getattr(e.payload, "command_event_id", None) == event_id or e.correlation_id == correlation_id:
                return True
        return False


@dataclass
class Fuzz:
    bootstrap: str
    watch: Watch
    partitions: int = 3
    # Whose dead letters count: "service/group" as DeadLetter.consumer says (None: anyone's).
    consumer: str | None = None
    # For a hostile record the contracts accept: what proves it was handled (None: nothing to prove).
    valid_proof: Callable[[Envelope[Any]], Any] | None = None
    sent: list[Sent] = field(default_factory=list)
    _producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Self:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=False,
                                          max_request_size=4 * MIB, linger_ms=5)
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._producer is not None
        await self._producer.stop()

    async def send(self, topic: Topic, records: list[Record], *, partition: int | None = None,
                   probe: Any = None) -> list[Sent]:
        """Send in order, spread over the first `partitions` partitions (or all to `partition`)."""
        assert self._producer is not None
        futures = []
        for i, record in enumerate(records):
            p = partition if partition is not None else i % self.partitions
            futures.append(await self._producer.send(topic.value, record.value, key=record.key, partition=p,
                                                     headers=record.headers or None))
        sent = []
        for record, future in zip(records, futures, strict=True):
            meta = await future
            refused = refused_by_contracts(record.value)
            proof = probe
            if proof is None and refused is None and self.valid_proof is not None:
                proof = self.valid_proof(parse(record.value))  # type: ignore[arg-type]
            sent.append(Sent(record, meta.topic, meta.partition, meta.offset, refused, proof))
        self.sent += sent
        return sent

    async def probe(self, topic: Topic, envelope: Envelope[Any], proof: Any, *, partition: int,
                    headers: list[tuple[str, bytes]] | None = None, label: str = "probe") -> Sent:
        """A valid message whose effect `proof` (see `account`) must show up."""
        record = Record(label, envelope.to_bytes(), envelope.key, headers or [])
        (sent,) = await self.send(topic, [record], partition=partition, probe=proof)
        return sent

    async def send_interleaved(self, topic: Topic, records: list[Record],
                               make_probe: Callable[[], tuple[Envelope[Any], Any]], *, every: int = 8) -> None:
        """The hostile records in chunks, a probe after each chunk (one in three with a header value that is
        not UTF-8), and a last probe on every partition: a stalled partition, or a fetch dropped whole,
        leaves probes unhandled."""
        chunks = [records[i:i + every] for i in range(0, len(records), every)]
        for n, chunk in enumerate(chunks):
            await self.send(topic, chunk)
            envelope, proof = make_probe()
            headers = [("trace", b"\xff\xfe not utf-8")] if n % 3 == 2 else None
            await self.probe(topic, envelope, proof, partition=n % self.partitions, headers=headers,
                             label="probe with a header that is not UTF-8" if headers else "probe")
        for p in range(self.partitions):
            envelope, proof = make_probe()
            await self.probe(topic, envelope, proof, partition=p, label="last probe")

    def letter(self, sent: Sent) -> DeadLetter | None:
        for letter in self.watch.dead.get(sent.where, ()):
            if self.consumer is None or letter.consumer == self.consumer:
                return letter
        return None

    async def account(
        self,
        handled: Callable[[list[Sent]], Awaitable[set[int]]],
        *,
        timeout: float,
    ) -> list[str]:
        """Wait up to `timeout` s; return one line per record not accounted for (empty: all were).

        `handled(probes)` returns the indexes (in `probes`) of those whose effect is visible.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        probes = [s for s in self.sent if s.probe is not None]
        while True:
            missing = []
            for s in self.sent:
                letter = self.letter(s)
                if s.refused is not None:
                    if letter is None:
                        missing.append(f"not dead-lettered (contracts say {s.refused}): {s.where} {s.record!r}")
                    elif not letter.reason.strip():
                        missing.append(f"dead-lettered without a reason: {s.where} {s.record!r}")
                    elif (wrong := _unfaithful(letter, s.record.value)) is not None:
                        missing.append(f"dead letter {wrong}: {s.where} {s.record!r}")
            done = await handled(probes)
            for i, s in enumerate(probes):
                if i in done:
                    continue
                letter = self.letter(s)
                # A valid but hostile record may be refused by the handler; a probe with hostile headers may
                # be dead-lettered for them. Clean probes must be handled.
                if letter is not None and (s.record.headers or not s.record.label.endswith("probe")):
                    continue
                why = f" (dead-lettered: {letter.reason[:200]})" if letter is not None else ""
                missing.append(f"valid message not handled{why}: {s.where} {s.record!r}")
            if not missing or loop.time() > deadline:
                return missing
            await asyncio.sleep(0.2)


    def summary(self) -> str:
        """What was sent and what became of it, for the log (pytest -s) and the notes."""
        refused = [s for s in self.sent if s.refused is not None]
        kinds: dict[str, int] = {}
        for s in self.sent:
            letter = self.letter(s)
            if letter is not None:
                kinds[letter.error_kind] = kinds.get(letter.error_kind, 0) + 1
        probes = sum(1 for s in self.sent if s.record.label.endswith("probe") or "probe with" in s.record.label)
        valid = len(self.sent) - len(refused) - probes
        return (f"{len(self.sent)} records: {len(refused)} refused by the contracts, {valid} hostile but valid, "
                f"{probes} probes; dead letters by kind {kinds}")


def _unfaithful(letter: DeadLetter, value: bytes | None) -> str | None:
    """What is wrong with a dead letter's copy of the record (None: it is the bytes, or their head with the
    length and hash of the whole, when the whole would not fit under the producer's limit)."""
    if value is None:
        return None if not letter.value_b64 and letter.value_length is None else "invents a value for a tombstone"
    if letter.value_length != len(value) or letter.value_sha256 != hashlib.sha256(value).hexdigest():
        return f"has length {letter.value_length} / hash {letter.value_sha256} for {len(value)} bytes"
    if letter.sealed is not None:
        return None if not letter.value_b64 else "keeps bytes in the clear beside its sealed copy"
    kept = letter.value
    if letter.truncated:
        return None if value.startswith(kept) and len(kept) < len(value) else "is cut but not the record's head"
    return None if kept == value else "holds other bytes than the record"


def rss() -> int:
    return psutil.Process().memory_info().rss


def report(title: str, lines: list[str], limit: int = 25) -> str:
    shown = "\n  ".join(lines[:limit])
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"{title}: {len(lines)} record(s) not accounted for\n  {shown}{more}"
