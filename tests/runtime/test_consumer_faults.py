"""Bad messages vs. a sick service, against the real broker (Tansu): the one-by-one and the batch consumers.

Each test here failed on the consumers before issue 11 (a record redelivered forever, a fetch lost, a good
message dead-lettered during an outage) and passes now.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy.exc as sa_exc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from asyncpg import exceptions as pg
from attune_contracts import Topic, make_envelope
from attune_contracts.messages import DeadLetter, LogMoment, MomentKind
from attune_contracts.trust import sender_of
from attune_runtime.batch import subscribe_batch
from attune_runtime.consumer import (
    KEEP_VALUE_BYTES,
    ConsumerMetrics,
    PermanentError,
    Readiness,
    ReliableConsumer,
    RetryPolicy,
    subscribe,
)
from attune_runtime.kafka import ensure_topics, make_broker
from attune_runtime.retry import Backoff
from attune_runtime.settings import ServiceSettings
from attune_runtime.testing import eventually
from prometheus_client import CollectorRegistry

pytestmark = [pytest.mark.integration]

HOUSEHOLD = uuid.UUID("00000000-0000-4000-8000-000000000011")
FAST_BUG_RETRIES = RetryPolicy(max_attempts=3, backoff=Backoff(base_s=0.05, max_s=0.1))


def moment() -> bytes:
    payload = LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.POSITIVE)
    return make_envelope(payload, household_id=HOUSEHOLD, producer=sender_of(payload)).to_bytes()


def event_id(value: bytes) -> str:
    return json.loads(value)["event_id"]


def database_down() -> Exception:
    """What SQLAlchemy raises while PostgreSQL restarts: an OperationalError around the driver's error."""
    return sa_exc.OperationalError("SELECT 1", {}, pg.CannotConnectNowError("the database system is starting up"))


async def make_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    await ensure_topics(ServiceSettings(kafka_bootstrap_servers=bootstrap), [Topic.DEAD_LETTER])


Record = tuple[bytes | None, list[tuple[str, bytes]]]


async def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    """All in one go, before the consumer starts: they arrive in the same fetch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=str(HOUSEHOLD).encode(), headers=headers)
                   for value, headers in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def letters_for(bootstrap: str, source_topic: str, *, want: int, settle: float = 2.0,
                      timeout: float = 30) -> list[DeadLetter]:
    """Every dead letter of `source_topic`: waits for `want`, then `settle` seconds more for any duplicate."""
    consumer = AIOKafkaConsumer(Topic.DEAD_LETTER.value, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"dlq-reader-{uuid.uuid4().hex[:8]}", max_partition_fetch_bytes=4 << 20,
                                fetch_max_bytes=16 << 20)
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        deadline = time.monotonic() + timeout
        settled_at: float | None = None
        while time.monotonic() < deadline and (settled_at is None or time.monotonic() < settled_at):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    letter = DeadLetter.model_validate_json(record.value)
                    if letter.source_topic == source_topic:
                        found.append(letter)
            if settled_at is None and len(found) >= want:
                settled_at = time.monotonic() + settle
    finally:
        await consumer.stop()
    return sorted(found, key=lambda letter: letter.offset)


@dataclass
class Running:
    broker: Any
    registry: CollectorRegistry
    readiness: Readiness
    joins: list[bool]

    @property
    def kafka_consumer(self) -> Any:
        [subscriber] = self.broker.subscribers
        return subscriber.consumer

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"service": "test", **labels})


async def start(bootstrap: str, topic: str, group: str, *, handler: Callable[[Any], Awaitable[None]],
                batch_handler: Callable[[list[Any]], Awaitable[None]] | None = None,
                on_invalid: Any = None, max_poll_interval_ms: int = 300_000) -> Running:
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap)
    registry = CollectorRegistry()
    broker = make_broker(settings, service="test", registry=registry)
    readiness = Readiness()
    joins: list[bool] = []
    mark = readiness.mark

    def counting_mark(name: str, joined: bool) -> None:  # every join of the group, i.e. every rebalance
        joins.append(joined)
        mark(name, joined)

    readiness.mark = counting_mark  # type: ignore[method-assign]
    metrics = ConsumerMetrics(registry)
    if batch_handler is None:
        subscribe(broker, topic, service="test", group_id=group, handler=handler, metrics=metrics,
                  readiness=readiness, retry=FAST_BUG_RETRIES, session_timeout_ms=6000, on_invalid=on_invalid,
                  max_poll_interval_ms=max_poll_interval_ms)
    else:
        reliable = ReliableConsumer(broker, service="test", group_id=group, handler=handler, metrics=metrics,
                                    retry=FAST_BUG_RETRIES, on_invalid=on_invalid,
                                    max_poll_interval_ms=max_poll_interval_ms)
        subscribe_batch(broker, topic, reliable=reliable, batch_handler=batch_handler,  # type: ignore[arg-type]
                        readiness=readiness, max_records=100, session_timeout_ms=6000)
    await broker.start()
    return Running(broker, registry, readiness, joins)


@dataclass
class Recorder:
    """A handler (and batch handler) that records what it was given; `fail` decides whether an attempt raises."""

    fail: Callable[[str], BaseException | None] = lambda _event_id: None
    calls: list[str] = field(default_factory=list)
    handled: list[str] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)

    async def __call__(self, envelope: Any) -> None:
        eid = str(envelope.event_id)
        self.calls.append(eid)
        if (exc := self.fail(eid)) is not None:
            raise exc
        self.handled.append(eid)

    async def batch(self, envelopes: list[Any]) -> None:
        ids = [str(e.event_id) for e in envelopes]
        self.batches.append(ids)
        for eid in ids:
            if (exc := self.fail(eid)) is not None:
                raise exc
        self.handled.extend(ids)


# ---- records that are not messages ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["one by one", "batch"])
async def test_hostile_records_are_dead_lettered_once_and_valid_ones_in_the_same_fetch_handled(
    kafka_bootstrap: str, unique: str, mode: str
) -> None:
    topic = f"faults-hostile-{mode[0]}-{unique}"
    await make_topic(kafka_bootstrap, topic)
    with_bad_header, after = moment(), moment()
    await produce(kafka_bootstrap, topic, [
        (None, []),                                   # 0: a tombstone
        (b"[" * 100_000, []),                         # 1: RecursionError in any JSON decoder
        (b"1" * 5000, []),                            # 2: ValueError: more digits than Python converts
        (with_bad_header, [("trace", b"\xff\xfe\x00")]),  # 3: valid, with a header that is not UTF-8
        (b'{"type": "x"}', [("h", b"\xc3\x28")]),     # 4: invalid, and its header is not UTF-8 either
        (after, []),                                  # 5: valid
    ])
    handler = Recorder()
    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=handler,
                          batch_handler=handler.batch if mode == "batch" else None)
    try:
        await eventually(lambda: event_id(after) in handler.handled, timeout=30)
        letters = await letters_for(kafka_bootstrap, topic, want=4)
        assert [letter.offset for letter in letters] == [0, 1, 2, 4]  # each exactly once
        assert all(letter.error_kind == "invalid" for letter in letters)
        assert "tombstone" in letters[0].reason and letters[0].value_length is None
        assert "nested too deeply" in letters[1].reason and letters[1].value == b"[" * 100_000
        assert "digits" in letters[2].reason
        assert letters[3].headers == {"h": "wyg="}  # the original bytes, base64
        assert sorted(handler.handled) == sorted([event_id(with_bad_header), event_id(after)])
        assert (await running.readiness.status())["ready"] is True
    finally:
        await running.broker.stop()


@pytest.mark.parametrize("mode", ["one by one", "batch"])
async def test_private_text_not_sealed_for_this_household_is_dead_lettered_with_the_reason(
    kafka_bootstrap: str, unique: str, mode: str
) -> None:
    """A producer that writes a note in plaintext, or replays another household's sealed note, is refused before
    any handler sees it; the next message is handled."""
    topic = f"faults-private-{mode[0]}-{unique}"
    await make_topic(kafka_bootstrap, topic)
    noted = LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.POSITIVE, note="our first dance")
    plaintext = json.loads(make_envelope(noted, household_id=HOUSEHOLD, producer=sender_of(noted)).to_bytes())
    plaintext["payload"]["note"] = "our first dance"
    elsewhere = make_envelope(noted, household_id=uuid.uuid4(), producer=sender_of(noted)).to_bytes()
    moved = json.loads(elsewhere)
    moved["household_id"] = str(HOUSEHOLD)
    sealed_here, after = make_envelope(noted, household_id=HOUSEHOLD, producer=sender_of(noted)).to_bytes(), moment()
    await produce(kafka_bootstrap, topic, [(json.dumps(plaintext).encode(), []), (json.dumps(moved).encode(), []),
                                           (sealed_here, []), (after, [])])
    handler = Recorder()
    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=handler,
                          batch_handler=handler.batch if mode == "batch" else None)
    try:
        await eventually(lambda: event_id(after) in handler.handled, timeout=30)
        letters = await letters_for(kafka_bootstrap, topic, want=2)
        assert [(letter.offset, letter.error_kind, letter.reason) for letter in letters] == [
            (0, "invalid", ("invalid checkins.log_moment v1: payload.note: private field not sealed (plaintext is "
                            "refused on the wire)")),
            (1, "invalid", ("invalid checkins.log_moment v1: payload.note: private field does not open: sealed for "
                            "another household or field, or damaged"))]
        assert sorted(handler.handled) == sorted([event_id(sealed_here), event_id(after)])
    finally:
        await running.broker.stop()


@pytest.mark.parametrize("mode", ["one by one", "batch"])
async def test_a_record_near_the_size_limit_is_dead_lettered_once_cut_to_fit(
    kafka_bootstrap: str, unique: str, mode: str
) -> None:
    topic = f"faults-huge-{mode[0]}-{unique}"
    await make_topic(kafka_bootstrap, topic)
    huge = b'{"type": "' + b"x" * 999_980 + b'"}'
    assert len(huge) >= 990_000
    after = moment()
    await produce(kafka_bootstrap, topic, [(huge, [("h", b"v")]), (after, [])])
    handler = Recorder()
    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=handler,
                          batch_handler=handler.batch if mode == "batch" else None)
    try:
        await eventually(lambda: handler.handled, timeout=30)
        [letter] = await letters_for(kafka_bootstrap, topic, want=1, settle=3)
        assert letter.offset == 0 and letter.truncated is True
        assert letter.value_length == len(huge) and letter.value_sha256 == hashlib.sha256(huge).hexdigest()
        assert letter.value == huge[:KEEP_VALUE_BYTES]
        assert len(letter.model_dump_json()) < 1_000_000  # under the producer's max_request_size (1 MiB)
        assert handler.handled == [event_id(after)]
    finally:
        await running.broker.stop()


# ---- messages no retry can fix -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["one by one", "batch"])
async def test_a_permanent_error_is_rejected_at_once_and_the_sender_told(
    kafka_bootstrap: str, unique: str, mode: str
) -> None:
    topic = f"faults-permanent-{mode[0]}-{unique}"
    await make_topic(kafka_bootstrap, topic)
    nul, far, good = moment(), moment(), moment()
    await produce(kafka_bootstrap, topic, [(nul, []), (far, []), (good, [])])
    refused = {
        event_id(nul): sa_exc.DBAPIError("INSERT ...", ("Ana\x00",), pg.CharacterNotInRepertoireError(
            'invalid byte sequence for encoding "UTF8": 0x00')),
        event_id(far): PermanentError("start date 9999-12-31 is too far in the future"),
    }
    handler = Recorder(fail=refused.get)
    told: list[tuple[int, str]] = []

    async def on_invalid(record: Any, reason: str) -> None:
        told.append((record.offset, reason))

    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=handler, on_invalid=on_invalid,
                          batch_handler=handler.batch if mode == "batch" else None)
    try:
        await eventually(lambda: event_id(good) in handler.handled, timeout=30)
        letters = await letters_for(kafka_bootstrap, topic, want=2)
        assert [(letter.offset, letter.error_kind, letter.attempts) for letter in letters] == [
            (0, "rejected", 1), (1, "rejected", 1)]
        assert letters[0].reason == 'CharacterNotInRepertoireError: invalid byte sequence for encoding "UTF8": 0x00'
        assert letters[1].reason == "start date 9999-12-31 is too far in the future"
        assert told == [(0, letters[0].reason), (1, letters[1].reason)]
        assert handler.calls.count(event_id(nul)) == 1 and handler.calls.count(event_id(far)) == 1  # no retries
        assert running.metric("attune_consumer_retries_total", topic=topic) is None
        assert running.metric("attune_consumer_dead_lettered_total", topic=topic, error_kind="rejected") == 2
    finally:
        await running.broker.stop()


async def test_a_bug_is_retried_a_bounded_number_of_times_and_counted(kafka_bootstrap: str, unique: str) -> None:
    topic = f"faults-bug-{unique}"
    await make_topic(kafka_bootstrap, topic)
    buggy, good = moment(), moment()
    await produce(kafka_bootstrap, topic, [(buggy, []), (good, [])])
    handler = Recorder(fail=lambda eid: KeyError("member_id") if eid == event_id(buggy) else None)
    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=handler)
    try:
        await eventually(lambda: handler.handled, timeout=30)
        [letter] = await letters_for(kafka_bootstrap, topic, want=1)
        assert letter.error_kind == "handler_failed" and letter.attempts == 3
        assert "KeyError" in letter.reason
        assert handler.calls.count(event_id(buggy)) == 3
        assert running.metric("attune_consumer_handler_bugs_total", topic=topic) == 3
    finally:
        await running.broker.stop()


# ---- our own infrastructure down -------------------------------------------------------------------

class Outage:
    """The database is down from the first attempt until `seconds` later."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None

    def __call__(self, _event_id: str) -> BaseException | None:
        if self.started is None:
            self.started = time.monotonic()
        return database_down() if self.down else None

    @property
    def down(self) -> bool:
        return self.started is None or time.monotonic() - self.started < self.seconds


@pytest.mark.parametrize("mode", ["one by one", "batch"])
async def test_a_database_outage_pauses_the_consumer_and_loses_nothing(
    kafka_bootstrap: str, unique: str, mode: str
) -> None:
    topic = f"faults-outage-{mode[0]}-{unique}"
    await make_topic(kafka_bootstrap, topic)
    values = [moment() for _ in range(3)]
    await produce(kafka_bootstrap, topic, [(v, []) for v in values])
    outage = Outage(seconds=4)
    handler = Recorder(fail=outage)
    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=handler,
                          batch_handler=handler.batch if mode == "batch" else None)
    try:
        await eventually(lambda: len(handler.calls) + len(handler.batches) >= 2, timeout=30)
        assert outage.down
        status = await running.readiness.status()
        assert status["ready"] is False and list(status["waiting_for"].values()) == ["database"]
        consumer = running.kafka_consumer
        assert consumer.paused() and consumer.paused() == consumer.assignment()
        assert running.metric("attune_consumer_paused", topic=topic) == 1

        await eventually(lambda: len(handler.handled) == 3, timeout=30)
        assert handler.handled == [event_id(v) for v in values]  # in order, each once
        if mode == "batch":
            assert handler.calls == []  # the whole batch waited: no one-by-one fallback storm
        else:
            assert handler.calls.count(event_id(values[0])) > 2
        assert await letters_for(kafka_bootstrap, topic, want=0, settle=1) == []
        assert (await running.readiness.status())["ready"] is True
        assert not consumer.paused()
        assert running.metric("attune_consumer_paused", topic=topic) == 0
        assert running.metric("attune_consumer_infrastructure_waits_total", topic=topic, dependency="database") >= 2
        assert running.joins == [True]  # no rebalance
    finally:
        await running.broker.stop()


@pytest.mark.slow
async def test_an_outage_longer_than_the_poll_interval_hands_the_message_back_without_a_rebalance(
    kafka_bootstrap: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With max_poll_interval_ms=6000 a handler that waited 10 s would get the member kicked out of the group;
    instead the consumer returns to the poll loop every 3 s (paused) and takes the same message up again."""
    topic = f"faults-long-{unique}"
    await make_topic(kafka_bootstrap, topic)
    values = [moment() for _ in range(3)]
    await produce(kafka_bootstrap, topic, [(v, []) for v in values])
    handler = Recorder(fail=Outage(seconds=10))
    caplog.set_level(logging.INFO, logger="attune.consumer")
    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=handler, max_poll_interval_ms=6000)
    try:
        await eventually(lambda: len(handler.handled) == 3, timeout=40)
        assert handler.handled == [event_id(v) for v in values]
        assert {eid for eid in handler.calls[:-2]} == {event_id(values[0])}  # nothing overtook the first
        assert sum("handed 1 record(s) back" in r.getMessage() for r in caplog.records) >= 2
        assert running.joins == [True]  # the member never left the group
        assert sum("waiting for database" in r.getMessage() for r in caplog.records) == 1  # one WARNING per outage
        assert await letters_for(kafka_bootstrap, topic, want=0, settle=1) == []
    finally:
        await running.broker.stop()


@pytest.mark.slow
async def test_a_batch_of_bugs_never_outlives_the_poll_interval(kafka_bootstrap: str, unique: str) -> None:
    """24 messages each retried for a bug take longer than the 3 s hold: the batch is handed back part-way,
    and every message is still dead-lettered exactly once, with no rebalance."""
    topic = f"faults-bound-{unique}"
    await make_topic(kafka_bootstrap, topic)
    values = [moment() for _ in range(24)]
    await produce(kafka_bootstrap, topic, [(v, []) for v in values])
    handler = Recorder(fail=lambda _eid: RuntimeError("bug"))

    async def slow_bug(envelope: Any) -> None:  # ~0.1 s an attempt, 3 attempts a message: ~7 s in all
        await asyncio.sleep(0.1)
        await handler(envelope)

    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=slow_bug, batch_handler=handler.batch,
                          max_poll_interval_ms=6000)
    try:
        letters = await letters_for(kafka_bootstrap, topic, want=24, settle=2, timeout=60)
        assert [letter.offset for letter in letters] == list(range(24))
        assert all(letter.error_kind == "handler_failed" for letter in letters)
        assert len(handler.batches) >= 2  # handed back at least once: the rest came in a later poll
        assert running.joins == [True]
    finally:
        await running.broker.stop()



async def test_a_consumer_stopped_mid_outage_leaves_the_message_to_the_next_one(kafka_bootstrap: str, unique: str) -> None:
    """A deploy or a kill during the outage: the message waited for was never committed, so it comes again."""
    topic, group = f"faults-stop-{unique}", f"g-{unique}"
    await make_topic(kafka_bootstrap, topic)
    value = moment()
    await produce(kafka_bootstrap, topic, [(value, [])])
    down = Recorder(fail=lambda _eid: database_down())
    running = await start(kafka_bootstrap, topic, group, handler=down)
    try:
        await eventually(lambda: len(down.calls) >= 2, timeout=30)
    finally:
        async with asyncio.timeout(15):  # a stop does not wait for the outage to end
            await running.broker.stop()

    healthy = Recorder()
    running = await start(kafka_bootstrap, topic, group, handler=healthy)
    try:
        await eventually(lambda: healthy.handled, timeout=30)
        assert healthy.handled == [event_id(value)]
        assert await letters_for(kafka_bootstrap, topic, want=0, settle=1) == []
    finally:
        await running.broker.stop()


class TcpCut:
    """A TCP proxy in front of PostgreSQL that the test can cut (every connection reset, new ones refused)
    and restore: the database "restarts" for this test only, never for the machine's other users."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()


@pytest.mark.slow
async def test_a_real_database_cut_is_waited_out_and_every_message_stored_once(
    kafka_bootstrap: str, unique: str, pg_url: str
) -> None:
    """The handler writes to PostgreSQL through a proxy that is cut for a few seconds, as a restart or failover
    would: real asyncpg/SQLAlchemy errors (reset, refused, closed connection in the pool), no fakes."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    proxy = TcpCut()
    await proxy.open()
    engine = create_async_engine(pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE handled (n serial PRIMARY KEY, event_id uuid UNIQUE)"))
    topic = f"faults-pg-{unique}"
    await make_topic(kafka_bootstrap, topic)
    values = [moment() for _ in range(3)]
    await produce(kafka_bootstrap, topic, [(v, []) for v in values])
    attempts: list[str] = []

    async def store(envelope: Any) -> None:
        attempts.append(type(envelope).__name__)
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO handled (event_id) VALUES (:e)"), {"e": envelope.event_id})

    await proxy.cut()  # pooled connections die too: the first attempt meets a closed connection
    running = await start(kafka_bootstrap, topic, f"g-{unique}", handler=store)
    try:
        await eventually(lambda: len(attempts) >= 3, timeout=30)
        status = await running.readiness.status()
        assert status["ready"] is False and list(status["waiting_for"].values()) == ["database"]
        await proxy.open()  # the database is back, on the same port

        async def stored() -> list[str]:
            async with engine.connect() as conn:
                rows = await conn.execute(sa.text("SELECT event_id FROM handled ORDER BY n"))
                return [str(row[0]) for row in rows]

        await eventually(lambda: _count(stored, 3), timeout=30)
        assert await stored() == [event_id(v) for v in values]  # each once, in order
        assert await letters_for(kafka_bootstrap, topic, want=0, settle=1) == []
        assert (await running.readiness.status())["ready"] is True
    finally:
        await running.broker.stop()
        await engine.dispose()
        await proxy.cut()


async def _count(query: Callable[[], Awaitable[list[str]]], want: int) -> bool:
    try:
        return len(await query()) == want
    except Exception:  # noqa: BLE001 - the pool may still hold a connection from before the cut
        return False
