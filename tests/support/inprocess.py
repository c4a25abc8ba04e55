"""A service running inside the test process, and the raw broker access its tests need.

`started(parts)` starts what a service's `build(settings)` returned (consumers, relay; no HTTP) and returns once
its readiness says ready; `serving(app, port)` runs a service's ASGI app (its `build_app(settings)`, which owns the consumers, the relay and
the HTTP routes) under uvicorn on 127.0.0.1 and returns once `/readyz` answers 200, so the test starts against a
service that has joined its group; `produce` and `read_topic` write and read a topic as any client of the broker
would (no contracts in the way: hostile bytes go on as they are).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol, TypeVar

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from attune_contracts import Topic
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually

P = TypeVar("P", bound="Startable")

__all__ = ["free_port", "produce_records", "read_topic", "serving", "started", "wait_ready"]


async def wait_ready(base_url: str, *, timeout: float = 60, interval: float = 0.2) -> None:
    """Until `GET base_url/readyz` answers 200 (a refused connection counts as not yet)."""
    async with httpx.AsyncClient() as client:
        async def ready() -> bool:
            try:
                return (await client.get(f"{base_url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=timeout, interval=interval)


class Startable(Protocol):
    """What every service's `build(settings)` returns: its parts, started and stopped together."""

    readiness: Any

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def started(parts: P, *, ready_timeout: float = 30) -> AsyncIterator[P]:
    """Start `parts` for the length of the block, once their readiness (consumer groups joined) says ready."""
    await parts.start()
    try:
        async def ready() -> bool:
            return bool((await parts.readiness.status())["ready"])

        await eventually(ready, timeout=ready_timeout)
        yield parts
    finally:
        await parts.stop()


@contextlib.asynccontextmanager
async def serving(app: Any, port: int, *, ready_timeout: float = 60) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1:`port` (the port its settings were given) until the block ends; yields its base URL
    once it is ready, and stops it as SIGTERM would (the app's shutdown runs: consumers leave, the relay drains)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base_url, timeout=ready_timeout)
        yield base_url
    finally:
        server.should_exit = True
        await task


async def produce_records(bootstrap: str, records: Iterable[tuple[Topic | str, bytes, bytes | None]]) -> None:
    """Write (topic, value, key) records in order, each acknowledged before the next."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for topic, value, key in records:
            await producer.send_and_wait(topic.value if isinstance(topic, Topic) else topic, value=value, key=key)
    finally:
        await producer.stop()


def _as_is(value: bytes) -> bytes:
    return value


async def read_topic(bootstrap: str, topic: Topic, *, until: Callable[[list[Any]], bool],
                     keep: Callable[[bytes], Any] = _as_is, key: bytes | None = None, timeout: float = 30) -> list[Any]:
    """Read `topic` from its start until `until(found)` holds; `found` holds `keep(value)` of each record, those
    for which `keep` returns None left out. With `key`, records with another key are skipped before `keep` sees
    them (the suite's shared broker also carries other tests' hostile records). TimeoutError after `timeout` s."""
    consumer = AIOKafkaConsumer(topic.value, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while not until(found):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    values = (r.value for r in records if key is None or r.key == key)
                    found += [item for item in map(keep, values) if item is not None]
    finally:
        await consumer.stop()
    return found
