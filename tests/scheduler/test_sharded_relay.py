"""The sharded relay on PostgreSQL: instances split the outbox by shard, each household's events leave once and in
order, and a dead instance's shards are taken over within seconds."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from attune_runtime.testing import eventually
from attune_scheduler.adapters.sql import ShardLost, SqlStore
from attune_scheduler.adapters.tables import outbox
from attune_scheduler.clock import FakeClock
from attune_scheduler.ports import OutboxRow
from attune_scheduler.scheduler import Scheduler

from .helpers import RecordingSink, make_scheduler

pytestmark = [pytest.mark.integration]

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


async def fill_outbox(store: SqlStore, households: int, per_household: int) -> list[uuid.UUID]:
    """Rows due now, the households' events interleaved (as a burst writes them)."""
    ids = [uuid.uuid4() for _ in range(households)]
    rows = [
        {"event_id": uuid.uuid4(), "household_id": h, "topic": "attune.occurrences.v1", "event_type": "test.event",
         "body": "{}", "headers": {}, "created_at": NOW, "publish_at": NOW - timedelta(seconds=1)}
        for _ in range(per_household) for h in ids
    ]
    async with store.engine.begin() as conn:
        await conn.execute(outbox.insert(), rows)
    return ids


async def split_evenly(*schedulers: Scheduler) -> list[frozenset[int]]:
    """Let the relays agree on their shares (each refresh takes free shards up to its share, gives back the rest)."""
    held: list[frozenset[int]] = []
    for _ in range(3):
        held = [s for s in [await sch.store.relay_shards() for sch in schedulers] if s is not None]
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
        lock_pid = stores[0]._leases.pid if stores[0]._leases else None
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
    return store._leases is not None and store._leases.held == set(range(SHARDS))


async def test_a_relay_whose_lock_connection_dies_publishes_nothing_more_from_those_shards(
    stores: list[SqlStore],
) -> None:
    """The lock connection is cut after a pass took its shards, but the instance lives on: the batch it claims is
    rolled back unsent (the shards may be someone else's by then); a later pass takes a share on a new connection."""
    clock = FakeClock(NOW)
    sink = RecordingSink()
    a = make_scheduler(stores[0], clock, sink, relay_batch_size=10)
    await fill_outbox(stores[0], 5, 4)
    shards = await stores[0].relay_shards()
    assert shards == set(range(SHARDS))
    assert stores[0]._leases is not None and stores[0]._leases.pid is not None
    await terminate(stores[1], stores[0]._leases.pid)
    with pytest.raises(ShardLost):
        async with stores[0].claim(10, NOW, {}, shards) as rows:
            await sink(rows)
    assert sink.rows == [] and await stores[0].outbox_backlog() == 20
    with pytest.raises(sa.exc.DBAPIError):  # the next pass finds its lock connection gone and drops it
        await a.relay_once()
    while await a.relay_once():
        pass
    assert len(sink.rows) == 20 and sink.duplicates() == {}
    assert_each_household_in_id_order(sink.rows)
