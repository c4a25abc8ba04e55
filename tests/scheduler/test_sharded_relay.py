"""The sharded relay on PostgreSQL: instances split the outbox by shard, each household's events leave once and in
order, and a dead instance's shards are taken over within seconds."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from attune_runtime.testing import eventually
from attune_scheduler.adapters.shards import ShardLost
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.adapters.tables import outbox
from attune_scheduler.clock import SystemClock
from attune_scheduler.model import OutboxRow
from attune_scheduler.scheduler import Scheduler

from .clock import FakeClock
from .helpers import RecordingSink, make_scheduler

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 13, 19, 0, tzinfo=UTC)
SHARDS = 8


class SlowSink(RecordingSink):
    """A broker that takes a little while to acknowledge each batch, so relays overlap in time."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def __call__(self, rows: Sequence[OutboxRow]) -> None:
        await asyncio.sleep(self.delay)
        await super().__call__(rows)


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[list[SqlStore]]:
    made = [SqlStore.from_url(pg_url, relay_shards=SHARDS) for _ in range(2)]
    for s in made:
        await s.migrate()
    try:
        yield made
    finally:
        for s in made:
            await s.close()


async def fill_outbox(
    store: SqlStore, households: int, per_household: int, publish_at: datetime = NOW - timedelta(seconds=1)
) -> list[uuid.UUID]:
    """Rows due now, the households' events interleaved (as a burst writes them)."""
    ids = [uuid.uuid4() for _ in range(households)]
    rows = [
        {"event_id": uuid.uuid4(), "household_id": h, "topic": "attune.occurrences.v1", "event_type": "test.event",
         "body": "{}", "headers": {}, "created_at": NOW, "publish_at": publish_at}
        for _ in range(per_household) for h in ids
    ]
    async with store.engine.begin() as conn:
        await conn.execute(outbox.insert(), rows)
    return ids


async def split_evenly(*schedulers: Scheduler) -> list[frozenset[int]]:
    """Let the relays agree on their shares (each refresh takes free shards up to its share, gives back the rest)."""
    held: list[frozenset[int]] = []
    for _ in range(3):
        held = [s for s in [await sch.relay.outbox.shards() for sch in schedulers] if s is not None]
    return held


def assert_each_household_in_id_order(rows: Sequence[OutboxRow]) -> None:
    first_seen: dict[uuid.UUID, list[int]] = defaultdict(list)
    seen: set[uuid.UUID] = set()
    for row in rows:
        if row.event_id in seen:  # a repeat (same id) is dropped by the consumer; order counts first copies
            continue
        seen.add(row.event_id)
        assert row.household_id is not None
        first_seen[row.household_id].append(row.id)
    for household, ids in first_seen.items():
        assert ids == sorted(ids), f"household {household} published out of order: {ids}"


async def test_two_relays_publish_disjoint_shards_each_event_once_each_household_in_order(
    stores: list[SqlStore],
) -> None:
    clock = FakeClock(NOW)
    sinks = [SlowSink(0.005), SlowSink(0.005)]
    a, b = (make_scheduler(s, clock, sink, relay_batch_size=50) for s, sink in zip(stores, sinks, strict=True))
    held_a, held_b = await split_evenly(a, b)
    assert held_a and held_b and not held_a & held_b and held_a | held_b == set(range(SHARDS))
    households = await fill_outbox(stores[0], 300, 10)
    a.start()
    b.start()
    try:
        await eventually(lambda: len(sinks[0].rows) + len(sinks[1].rows) >= 3000, timeout=60, interval=0.05)
        await asyncio.sleep(0.3)  # anything extra would show up now
    finally:
        await a.stop()
        await b.stop()
    published = sinks[0].rows + sinks[1].rows
    assert len(published) == 3000 and len({r.event_id for r in published}) == 3000, "an event went twice or not at all"
    assert await stores[0].outbox_backlog() == 0
    by_a = {r.household_id for r in sinks[0].rows}
    by_b = {r.household_id for r in sinks[1].rows}
    assert by_a and by_b, "both relays should have published"
    assert not by_a & by_b, "a household's events were published by both relays"
    assert by_a | by_b == set(households)
    for sink in sinks:
        assert_each_household_in_id_order(sink.rows)


async def terminate(store: SqlStore, pid: int) -> None:
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()


async def test_a_dead_instances_shards_are_taken_over_with_nothing_lost_or_sent_twice(
    stores: list[SqlStore],
) -> None:
    """Instance A dies mid-burst (its tasks cancelled and its lock connection cut, so nothing is given back in
    order): B takes A's shards within seconds, and every event still goes exactly once, each household in order."""
    clock = FakeClock(NOW)
    sink = SlowSink(0.01)  # one broker, both instances: the record is in publishing order
    a = make_scheduler(stores[0], clock, sink, relay_batch_size=20, relay_poll_s=0.1)
    b = make_scheduler(stores[1], clock, sink, relay_batch_size=20, relay_poll_s=0.1)
    held_a, held_b = await split_evenly(a, b)
    assert held_a and held_b
    await fill_outbox(stores[0], 200, 10)
    a.start()
    b.start()
    try:
        await eventually(lambda: len(sink.rows) > 300, timeout=30, interval=0.01)
        lock_pid = stores[0].relay.leases.pid if stores[0].relay.leases else None
        assert lock_pid is not None
        for task in a._tasks:
            task.cancel()
        await terminate(stores[1], lock_pid)
        killed_at = asyncio.get_running_loop().time()
        await asyncio.gather(*a._tasks, return_exceptions=True)
        assert len(sink.rows) < 2000, "the kill should land in the middle of the burst"
        await eventually(lambda: _holds_all(stores[1]), timeout=5, interval=0.05)
        took_over_in = asyncio.get_running_loop().time() - killed_at
        await eventually(lambda: len(sink.rows) >= 2000, timeout=60, interval=0.05)
        await asyncio.sleep(0.3)
    finally:
        await b.stop()
    assert took_over_in < 5
    assert sink.duplicates() == {}, "an event was published twice"
    assert len(sink.rows) == 2000
    assert await stores[0].outbox_backlog() == 0
    assert_each_household_in_id_order(sink.rows)


async def _holds_all(store: SqlStore) -> bool:
    return store.relay.leases is not None and store.relay.leases.held == set(range(SHARDS))


async def test_a_relay_whose_lock_connection_dies_publishes_nothing_more_from_those_shards(
    stores: list[SqlStore],
) -> None:
    """The lock connection is cut after a pass took its shards, but the instance lives on: the batch it claims is
    rolled back unsent (the shards may be someone else's by then); a later pass takes a share on a new connection."""
    clock = FakeClock(NOW)
    sink = RecordingSink()
    a = make_scheduler(stores[0], clock, sink, relay_batch_size=10)
    await fill_outbox(stores[0], 5, 4)
    shards = await stores[0].relay.shards()
    assert shards == set(range(SHARDS))
    assert stores[0].relay.leases is not None and stores[0].relay.leases.pid is not None
    await terminate(stores[1], stores[0].relay.leases.pid)
    with pytest.raises(ShardLost):
        async with stores[0].relay.claim(10, NOW, {}, shards) as rows:
            await sink(rows)
    assert sink.rows == [] and await stores[0].outbox_backlog() == 20
    with pytest.raises(sa.exc.DBAPIError):  # the next pass finds its lock connection gone and drops it
        await a.relay_once()
    while await a.relay_once():
        pass
    assert len(sink.rows) == 20 and sink.duplicates() == {}
    assert_each_household_in_id_order(sink.rows)


async def test_an_instance_killed_with_sigkill_has_its_shards_taken_over_within_seconds(
    stores: list[SqlStore], pg_url: str, tmp_path: Path
) -> None:
    """A relay in its own process, killed -9 mid-burst: its connections die with it, PostgreSQL drops its locks,
    and the instance left takes every shard within seconds. Nothing is lost; the only repeats are the killed
    instance's batches in flight (acknowledged, not yet deleted: at least once, same event ids), and each
    household's events still arrive in order (counting first copies, as the consumers dedupe)."""
    out = tmp_path / "killed.txt"
    process = _relay_process(pg_url, out)
    sink = SlowSink(0.01)
    survivor = make_scheduler(stores[1], SystemClock(), sink, relay_batch_size=20, relay_poll_s=0.1)
    try:
        assert process.stdout is not None
        assert (await asyncio.to_thread(process.stdout.readline)).strip() == "ready"
        survivor.start()
        await eventually(lambda: _relays_present(stores[1], 2), timeout=10, interval=0.05)
        await eventually(lambda: bool(stores[1].relay.leases and len(stores[1].relay.leases.held) == SHARDS // 2),
                         timeout=10, interval=0.05)
        await fill_outbox(stores[0], 200, 10, publish_at=datetime.now(UTC) - timedelta(seconds=1))
        await eventually(lambda: out.exists() and len(out.read_text().splitlines()) > 100, timeout=30, interval=0.01)
        process.send_signal(signal.SIGKILL)
        killed_at = asyncio.get_running_loop().time()
        await asyncio.to_thread(process.wait, 10)
        await eventually(lambda: _holds_all(stores[1]), timeout=5, interval=0.05)
        took_over_in = asyncio.get_running_loop().time() - killed_at
        await eventually(lambda: _drained(stores[1]), timeout=60, interval=0.1)
        await asyncio.sleep(0.3)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        await survivor.stop()
    assert took_over_in < 5
    killed_rows = [line.split() for line in out.read_text().splitlines()]
    published = [OutboxRow(int(i), uuid.UUID(e), "", b"", b"", {}, "", None, None, uuid.UUID(h))
                 for e, h, i in killed_rows] + list(sink.rows)
    assert 0 < len(killed_rows) < 2000, "the kill should land in the middle of the burst"
    assert len({r.event_id for r in published}) == 2000, "an event was lost"
    repeats = len(published) - 2000
    print(f"killed instance sent {len(killed_rows)}, survivor {len(sink.rows)}, repeats {repeats}, "
          f"takeover {took_over_in:.2f} s")
    assert repeats <= 2 * 20, f"{repeats} repeats: more than the killed instance's batches in flight"
    assert_each_household_in_id_order(published)


def _relay_process(pg_url: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scheduler.relay_runner", pg_url, str(SHARDS), str(out), "0.05"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


async def _relays_present(store: SqlStore, n: int) -> bool:
    async with store.engine.connect() as conn:
        return (await conn.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::int8 = 810103 AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ))).scalar_one() == n


async def _drained(store: SqlStore) -> bool:
    return await store.outbox_backlog() == 0
