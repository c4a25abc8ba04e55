"""The one engine factory (attune_runtime.sql.make_engine): each service keeps its own pool set-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from attune_app.adapters.sql import make_engine as app_engine
from attune_checkins.adapters.sql import make_engine as checkins_engine
from attune_notifier.adapters.sql import make_engine as notifier_engine
from attune_runtime.sql import make_engine
from attune_scheduler.adapters.sql import make_engine as scheduler_engine
from sqlalchemy.pool import StaticPool

pytestmark = pytest.mark.unit

PG = "postgresql+asyncpg://attune@127.0.0.1:5432/never-connected"


@pytest.mark.parametrize(("factory", "size", "overflow", "pre_ping"), [
    (app_engine, 10, 10, True),
    (checkins_engine, 10, 10, True),
    (notifier_engine, 20, 10, False),
    (scheduler_engine, 10, 5, True),
])
async def test_each_service_keeps_its_server_pool(factory, size, overflow, pre_ping) -> None:  # type: ignore[no-untyped-def]
    engine = factory(PG)  # no connection is made until first use
    try:
        pool = engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow, pool._pre_ping) == (size, overflow, pre_ping)  # type: ignore[attr-defined]
        assert engine.sync_engine.hide_parameters
    finally:
        await engine.dispose()


async def test_a_sqlite_file_gets_its_directory_and_its_options(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "store.db"
    engine = checkins_engine(f"sqlite+aiosqlite:///{db}")
    try:
        assert db.parent.is_dir()
        pool = engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (1, 0, 60)  # type: ignore[attr-defined]
        assert engine.sync_engine.hide_parameters
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_takes_its_own_options_or_the_file_ones() -> None:
    checkins = checkins_engine("sqlite+aiosqlite:///:memory:")
    plain = make_engine("sqlite+aiosqlite://", sqlite={"poolclass": StaticPool})
    try:
        assert isinstance(checkins.sync_engine.pool, StaticPool)
        assert isinstance(plain.sync_engine.pool, StaticPool)
    finally:
        await checkins.dispose()
        await plain.dispose()
