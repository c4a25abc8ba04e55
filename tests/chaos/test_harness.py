"""The chaos suite's own parts do what the suite relies on: the proxy really cuts and really comes back,
the sink records what it was sent and answers slowly, the private PostgreSQL really goes away."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from attune_contracts.links import LinkAction, LinkSigner
from attune_runtime.tansu import _answers, binary, free_port

from .postgres import PostgresUnavailable, PrivatePostgres
from .proxy import TcpProxy
from .scenario import Ledger, _resent_after_a_kill
from .sink import Arrival, SlowSink

pytestmark = [pytest.mark.chaos]


async def _echo_server() -> tuple[asyncio.AbstractServer, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_cut_resets_open_connections_refuses_new_ones_then_accepts_again() -> None:
    server, port = await _echo_server()
    proxy = await TcpProxy(free_port(), port).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
        writer.write(b"ping")
        assert await reader.read(4) == b"ping"

        cut = asyncio.ensure_future(proxy.cut(1.0))
        await asyncio.sleep(0.2)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            writer.write(b"again")
            await writer.drain()
            if not await reader.read(5):
                raise asyncio.IncompleteReadError(b"", 5)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.listen_port)

        await cut
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.listen_port)
        writer.write(b"back")
        assert await reader.read(4) == b"back"
        writer.close()
        assert proxy.cuts == 1
    finally:
        await proxy.stop()
        server.close()


async def test_kafka_clients_find_their_way_back_through_the_proxy_after_a_cut() -> None:
    # Tansu advertises the proxy's address, so metadata sends clients back through the proxy.
    proxy_port, broker_port = free_port(), free_port()
    process = subprocess.Popen(
        [binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    proxy = await TcpProxy(proxy_port, broker_port).start()
    try:
        deadline = time.monotonic() + 20
        while not _answers(broker_port):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        producer = AIOKafkaProducer(bootstrap_servers=proxy.address, enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait("chaos-harness", b"before", key=b"one partition")
            await proxy.cut(1.5)
            await asyncio.wait_for(producer.send_and_wait("chaos-harness", b"after", key=b"one partition"), 30)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("chaos-harness", bootstrap_servers=proxy.address, auto_offset_reset="earliest")
        await consumer.start()
        try:
            seen: list[bytes] = []
            async with asyncio.timeout(30):
                while len(seen) < 2:
                    for records in (await consumer.getmany(timeout_ms=300)).values():
                        seen += [r.value for r in records]
        finally:
            await consumer.stop()
        assert seen == [b"before", b"after"]
        assert proxy.connections >= 2  # every connection went through the proxy, including after the cut
    finally:
        await proxy.stop()
        process.terminate()
        process.wait(10)


async def test_the_sink_records_each_post_with_its_path_and_answers_after_a_delay() -> None:
    sink = await SlowSink(delay_s=(0.2, 0.3), seed=1).start()
    try:
        async with httpx.AsyncClient() as client:
            started = time.monotonic()
            answer = await client.post(f"http://127.0.0.1:{sink.port}/m/abc", json={"title": "t", "message": "m"})
            took = time.monotonic() - started
        assert answer.status_code == 200
        assert took >= 0.2
        assert [(a.path, a.body, a.abandoned) for a in sink.arrivals] == [
            ("/m/abc", {"title": "t", "message": "m"}, False)]
    finally:
        await sink.stop()


async def test_the_sink_notes_a_sender_that_died_before_its_answer() -> None:
    sink = await SlowSink(delay_s=(0.3, 0.3)).start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        body = b'{"title": "t", "message": "m"}'
        writer.write(b"POST /m/x HTTP/1.1\r\nHost: sink\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()  # as a process killed mid-send: the kernel closes its socket
        await asyncio.sleep(0.4)
        assert [(a.path, a.abandoned) for a in sink.arrivals] == [("/m/x", True)]
    finally:
        await sink.stop()


@pytest.fixture
async def postgres() -> AsyncIterator[PrivatePostgres]:
    try:
        cluster = PrivatePostgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield await cluster.start()
    finally:
        await cluster.destroy()


async def test_the_private_postgres_goes_away_and_comes_back(postgres: PrivatePostgres) -> None:
    url = await postgres.create_database("harness")
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT 1") == 1
    restart = asyncio.ensure_future(postgres.restart(1.0))
    await asyncio.sleep(0.5)
    with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
        await conn.fetchval("SELECT 1")
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(dsn, timeout=2)
    await restart
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()


async def test_a_commit_acknowledged_before_an_abrupt_stop_survives_it(postgres: PrivatePostgres) -> None:
    """What a real server promises: a transaction whose COMMIT returned is there after a crash. With
    `synchronous_commit=off` the private cluster acknowledged commits whose WAL was still in shared memory, and
    its abrupt stop lost them: a service that had committed a batch and then its Kafka offsets lost the batch
    for good (a chaos run had every check-in refused: the occurrences were gone from the check-ins database)."""
    dsn = (await postgres.create_database("durable")).replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE kept (n int PRIMARY KEY)")
    for n in range(300):  # one transaction each, as a consumer's batches are
        await conn.execute("INSERT INTO kept VALUES ($1)", n)
    await postgres.restart(0.1)  # at once: no time for a WAL writer to catch up
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT count(*) FROM kept") == 300
    await conn.close()


def test_a_second_copy_is_excused_only_when_the_first_was_in_flight_at_a_notifier_kill() -> None:
    # Reached the gateway at 100, answered at 100.4; the notifier may take `slack` (2.5) to save its outcome.
    first, again = Arrival("/m/a", {}, at=100.0, answered_at=100.4), Arrival("/m/a", {}, at=400.0)
    assert _resent_after_a_kill([again, first], kills=[100.2], slack=2.5) == 1  # killed mid-send: excused
    assert _resent_after_a_kill([again, first], kills=[102.8], slack=2.5) == 1  # answered, not yet saved: excused
    assert _resent_after_a_kill([first, again], kills=[103.0], slack=2.5) == 0  # saved long before the kill
    assert _resent_after_a_kill([first, again], kills=[99.0], slack=2.5) == 0  # the kill came before the send
    assert _resent_after_a_kill([first], kills=[101.0], slack=2.5) == 0
    # Killed while the database was down (99-109) or just after: outcomes answered since just before the outage
    # could not be saved.
    assert _resent_after_a_kill([first, again], kills=[108.0], slack=2.5, outages=[(99.0, 109.0)]) == 1
    assert _resent_after_a_kill([first, again], kills=[111.0], slack=2.5, outages=[(99.0, 109.0)]) == 1
    assert _resent_after_a_kill([first, again], kills=[112.0], slack=2.5, outages=[(99.0, 109.0)]) == 0
    assert _resent_after_a_kill([first, again], kills=[108.0], slack=2.5, outages=[(104.0, 109.0)]) == 0
    # Read by the gateway 0.5 s after the kill (this test's loop was held up), its sender gone by the answer.
    late = Arrival("/m/a", {}, at=100.5, answered_at=100.9, abandoned=True)
    assert _resent_after_a_kill([late, again], kills=[100.0], slack=2.5) == 1
    assert _resent_after_a_kill([dataclasses.replace(late, abandoned=False), again], kills=[100.0], slack=2.5) == 0


def test_the_ledger_sorts_reminders_by_member_and_occurrence_and_tells_partner_news_apart() -> None:
    signer = LinkSigner({"k": "a-link-key-of-some-length"}, "k")
    member, occurrence, household = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = signer.mint(household_id=household, occurrence_id=occurrence, member_id=member, action=LinkAction.DONE)
    link = f"http://127.0.0.1:1/l/{token}"
    ledger = Ledger(signer)
    ledger.update([
        Arrival(f"/m/{member}", {"title": "Evening attunement", "message": f"Listen.\nDone? Tap: {link}"}, at=1.0),
        Arrival(f"/m/{member}", {"title": "B1 kept Evening attunement", "message": "B1 just checked in."}, at=2.0),
        Arrival(f"/m/{uuid.uuid4()}", {"title": "Evening attunement", "message": f"Done? Tap: {link}"}, at=3.0),
    ])
    assert list(ledger.reminders) == [(member, occurrence)] and ledger.links[(member, occurrence)] == link
    assert list(ledger.partner_news) == [member]
    assert len(ledger.other) == 1  # someone else's link at this member's address
