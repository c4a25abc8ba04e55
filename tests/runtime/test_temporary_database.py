"""The one helper that makes (and removes) a throw-away PostgreSQL database for tests, benches and the e2e stack."""

from __future__ import annotations

import asyncpg
import pytest
from attune_runtime import testing
from attune_runtime.tansu import free_port
from attune_runtime.testing import PG_ADMIN_DSN, create_database, drop_database, temporary_database

pytestmark = pytest.mark.integration


async def exists(name: str) -> bool:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_each_database_is_new_empty_and_dropped_even_with_a_connection_open() -> None:
    first, second = await create_database("attune_probe"), await create_database("attune_probe")
    try:
        assert first != second and first.startswith("postgresql+asyncpg://")
        name = first.rsplit("/", 1)[1]
        assert name.startswith("attune_probe_") and await exists(name)
        conn = await asyncpg.connect(first.replace("+asyncpg", ""))
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        await drop_database(first)  # the open connection is closed for it (WITH (FORCE))
        assert not await exists(name)
    finally:
        await drop_database(first)
        await drop_database(second)
    assert not await exists(second.rsplit("/", 1)[1])


async def test_the_block_form_drops_the_database_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with temporary_database() as url:
            name = url.rsplit("/", 1)[1]
            assert await exists(name)
            raise RuntimeError("boom")
    assert not await exists(name)


async def test_postgresql_down_says_where_it_looked_and_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    monkeypatch.setattr(testing, "PG_ADMIN_DSN", nowhere)
    with pytest.raises(testing.PostgresUnavailable, match=r"127\.0\.0\.1.*make postgres"):
        await create_database()


async def test_the_pg_url_fixture_yields_a_database_of_its_own(pg_url: str) -> None:
    assert await exists(pg_url.rsplit("/", 1)[1])
