from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from attune_scheduler.adapters.sql import SqlStore

from .clock import FakeClock
from .helpers import RecordingSink


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore.from_url(f"sqlite+aiosqlite:///{tmp_path}/scheduler.db")
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[SqlStore]:
    s = SqlStore.from_url(pg_url)
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2027, 3, 13, 12, 0, tzinfo=UTC))


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
