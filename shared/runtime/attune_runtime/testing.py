"""Test plumbing written once: a fresh Tansu broker per session, throw-away PostgreSQL databases, unique names,
and the one fake clock every service's tests move by hand.

Loaded by tests/conftest.py (`pytest_plugins = ["attune_runtime.testing"]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .tansu import Tansu

PG_ADMIN_DSN = os.environ.get("ATTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-compatible broker (Tansu) on a free port, fresh for this test session."""
    log_path = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    broker = Tansu(log_path=log_path).start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names."""
    return uuid.uuid4().hex[:10]


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL that tests and benches create their throw-away databases on is not running."""


async def _pg_execute(sql: str) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
    except OSError as exc:
        raise PostgresUnavailable(
            f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({exc}); start it with `make postgres`") from exc
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(prefix: str = "attune_t") -> str:
    """A new empty database with a unique name on the test PostgreSQL; returns its SQLAlchemy async URL.
    Pair it with `drop_database` (or use `temporary_database`, which does both)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _pg_execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def drop_database(url: str) -> None:
    """Drop what `create_database` made (given its URL or bare name), closing any connection still open to it."""
    name = url.rsplit("/", 1)[-1]
    await _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def temporary_database(prefix: str = "attune_t") -> AsyncIterator[str]:
    """A throw-away database for the length of the block (tests' `pg_url` fixture, benches, the e2e stack)."""
    url = await create_database(prefix)
    try:
        yield url
    finally:
        await drop_database(url)


async def eventually(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:  # noqa: ASYNC109 - said in its failure
    """Poll `predicate` (sync or async) until it returns something truthy; fail with a message otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class FakeClock:
    """Time stands still until a test moves it; what sleeps on it wakes when its deadline passes.

    One API for every service's clock port: `now()` (check-ins, app, scheduler), calling the clock itself (the
    notifier's port is a plain `Callable[[], datetime]`), `sleep(seconds)` that advances instead of waiting
    (check-ins' relay back-off; each wait is kept in `slept`), and `wait_until(deadline, wake)` (the scheduler's
    firing loop)."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._moved = asyncio.Event()
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def __call__(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, delta: timedelta | None = None, /, **parts: float) -> None:
        """`advance(timedelta(minutes=5))` or `advance(minutes=5)`."""
        self.set(self._now + (delta or timedelta()) + timedelta(**parts))

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds=seconds)
        await asyncio.sleep(0)

    async def wait_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        """Return once the clock reaches `deadline` or `wake` is set, whichever comes first."""
        while self._now < deadline and not wake.is_set():
            moved = asyncio.ensure_future(self._moved.wait())
            woken = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({moved, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                woken.cancel()


@dataclass
class KafkaRecord:
    """What a consumer reads off the broker (aiokafka's ConsumerRecord), for feeding consumers directly."""

    value: bytes
    offset: int
    topic: str = "attune.notifications.requests"
    partition: int = 0
    key: bytes | None = None
    headers: tuple[Any, ...] = ()
    timestamp: int = 0



def as_in_a_terminal(module: str, *args: str) -> list[str]:
    """The argv that runs `python -m module args` as from a terminal, for a test that stops it with Ctrl-C
    (SIGINT). A shell's background job (`make test &` without job control) starts with SIGINT ignored, and an
    ignored signal is inherited: the child would never see the test's Ctrl-C. (Not `preexec_fn`: it is unsafe
    in a process with threads.)"""
    import sys

    code = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.argv[0] = {module!r}; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", code, *args]
