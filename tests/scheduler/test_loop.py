"""The loop sleeps until the next due instant (no busy poll), is woken early by changes; migrations match the tables."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from attune_runtime.testing import eventually
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.adapters.tables import metadata

from .clock import FakeClock
from .helpers import RecordingSink, command, household_with_partners, make_scheduler, schedule


class RecordingClock(FakeClock):
    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.deadlines: list[datetime] = []

    async def wait_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        self.deadlines.append(deadline)
        await super().wait_until(deadline, wake)


class CountingStore(SqlStore):
    """Counts the firing passes (each ends by asking when the next ritual wakes)."""

    fire_calls = 0

    async def next_wake_at(self):
        self.fire_calls += 1
        return await super().next_wake_at()


def z(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.unit
async def test_sleeps_until_the_next_due_instant_and_wakes_early_on_change(tmp_path, sink: RecordingSink) -> None:
    store = CountingStore.from_url(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    await store.migrate()
    clock = RecordingClock(z("2027-03-13T12:00:00Z"))
    s = make_scheduler(store, clock, sink, max_sleep=timedelta(days=2))
    household, people = await household_with_partners(s, zone="Europe/London")
    s.start()
    try:
        await eventually(lambda: clock.deadlines, timeout=5)
        assert clock.deadlines[-1] == z("2027-03-15T12:00:00Z")  # nothing scheduled: the longest sleep
        await asyncio.sleep(0.3)
        calls_while_idle = store.fire_calls
        assert calls_while_idle <= 2, "the loop must sleep, not poll"
        # A new ritual wakes the loop early; it then sleeps exactly until the ritual is due.
        await s.handle(command(schedule(uuid.uuid4(), people, at="18:45"), household))
        await eventually(lambda: clock.deadlines[-1] == z("2027-03-13T18:45:00Z"), timeout=5)
        clock.set(z("2027-03-13T18:44:59Z"))
        await asyncio.sleep(0.1)
        assert sink.payloads("ritual.due") == []
        clock.set(z("2027-03-13T18:45:00Z"))
        await eventually(lambda: sink.payloads("ritual.due"), timeout=5)
        (due,) = sink.payloads("ritual.due")
        assert due.scheduled_for == z("2027-03-13T18:45:00Z")
        await eventually(lambda: clock.deadlines[-1] == z("2027-03-14T18:45:00Z"), timeout=5)
    finally:
        await s.stop()
        await store.close()


async def _assert_migrations_match(url: str) -> None:
    store = SqlStore.from_url(url)
    try:
        await store.migrate()
        await store.migrate()  # idempotent

        def diff(sync_conn):
            return compare_metadata(MigrationContext.configure(sync_conn), metadata)

        async with store.engine.connect() as conn:
            changes = await conn.run_sync(diff)
        assert changes == []
    finally:
        await store.close()


@pytest.mark.unit
async def test_migrations_match_the_tables_on_sqlite(tmp_path) -> None:
    await _assert_migrations_match(f"sqlite+aiosqlite:///{tmp_path}/m.db")


@pytest.mark.integration
async def test_migrations_match_the_tables_on_postgresql(pg_url: str) -> None:
    await _assert_migrations_match(pg_url)


async def _upgrade_keeps_only_unsent_rows(url: str) -> None:
    """0003 drops rows an older version had already published (and kept for a day), never one still to go."""
    import sqlalchemy as sa
    from attune_scheduler.adapters.tables import UtcDateTime

    old_outbox = sa.table(
        "outbox", sa.column("id", sa.Integer), sa.column("event_id", sa.Uuid), sa.column("household_id", sa.Uuid),
        sa.column("topic", sa.String), sa.column("event_type", sa.String), sa.column("body", sa.Text),
        sa.column("headers", sa.JSON), sa.column("created_at", UtcDateTime), sa.column("sent_at", UtcDateTime),
        sa.column("publish_at", UtcDateTime))
    at = datetime.fromisoformat("2027-01-04T19:00:00+00:00")
    store = SqlStore.from_url(url)
    try:
        await store.migrate("0002")
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(old_outbox), [
                {"id": n, "event_id": uuid.uuid4(), "household_id": uuid.uuid4(), "topic": "t",
                 "event_type": "ritual.due", "body": "{}", "headers": {}, "created_at": at, "sent_at": sent,
                 "publish_at": at}
                for n, sent in ((1, at), (2, None))])
        await store.migrate()
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT id FROM outbox"))).scalars().all() == [2]
    finally:
        await store.close()


@pytest.mark.unit
async def test_upgrade_keeps_only_unsent_outbox_rows_on_sqlite(tmp_path) -> None:
    await _upgrade_keeps_only_unsent_rows(f"sqlite+aiosqlite:///{tmp_path}/u.db")


@pytest.mark.integration
async def test_upgrade_keeps_only_unsent_outbox_rows_on_postgresql(pg_url: str) -> None:
    await _upgrade_keeps_only_unsent_rows(pg_url)
