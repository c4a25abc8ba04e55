"""The migration Jobs of deploy/k8s run `python -m attune_cli.migrate <service>`: the schema at head, twice."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = [pytest.mark.integration]


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", ["scheduler", "checkins", "notifier", pytest.param("app", marks=pytest.mark.skipif(
    importlib.util.find_spec("attune_app") is None, reason="services/app has not landed in this tree yet"))])
async def test_the_migration_job_brings_an_empty_database_to_head_and_is_safe_to_rerun(
        service: str, pg_url: str) -> None:
    env = {**os.environ, f"ATTUNE_{service.upper()}_DATABASE_URL": pg_url}
    for _ in range(2):  # a Job retried, or run again on the next release: nothing to do the second time
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "attune_cli.migrate", service], env=env,
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"{service}: schema up to date" in done.stdout
    tables = await _tables(pg_url)
    assert any(t.endswith("alembic_version") for t in tables) and len(tables) > 3, tables


def test_the_migration_job_refuses_without_its_database_url() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    done = subprocess.run([sys.executable, "-m", "attune_cli.migrate", "scheduler"], check=False, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ATTUNE_SCHEDULER_DATABASE_URL" in done.stderr
    done = subprocess.run([sys.executable, "-m", "attune_cli.migrate", "nobody"], check=False, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr
