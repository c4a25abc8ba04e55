"""The outcome writer's window: how long a send that went out stays unsaved (a kill -9 in it sends it again).

- publishing a batch's outcomes (Kafka: a broker cut, a slow acknowledgement) never holds up saving the next
  rows; the outcomes still leave in order, and `flush` still waits for them;
- while saves fail (the database is away), the delivery loop starts no new send: its outcome could only wait in
  memory, and a kill then would send it again. It goes once saves work again, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from attune_contracts.messages import NotificationRequested
from attune_notifier.write_behind import OutcomeWriter
from attune_runtime.testing import eventually

from .conftest import ANA, HttpSink, WallClock
from .harness import make_harness


class Saves:
    def __init__(self) -> None:
        self.batches: list[list[UUID]] = []
        self.down = False

    async def __call__(self, rows: Sequence[Any]) -> set[UUID]:
        if self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        self.batches.append([d.notification_id for d in rows])
        return {d.notification_id for d in rows}

    @property
    def saved(self) -> list[UUID]:
        return [n for batch in self.batches for n in batch]


def row() -> Any:
    return SimpleNamespace(notification_id=uuid4())


async def test_a_slow_publish_does_not_hold_up_saving_the_next_outcomes() -> None:
    saves, broker_back = Saves(), asyncio.Event()
    published: list[str] = []

    async def first() -> None:
        await broker_back.wait()  # a broker cut: the outcome event waits
        published.append("first")

    async def second() -> None:
        published.append("second")

    writer = OutcomeWriter(saves)
    a, b = row(), row()
    writer.put((a, first))
    await eventually(lambda: saves.saved == [a.notification_id], timeout=2)
    writer.put((b, second))
    # Saved within moments although the first outcome is still being published (before: only once it was).
    await eventually(lambda: saves.saved == [a.notification_id, b.notification_id], timeout=1)
    flushed = asyncio.ensure_future(writer.flush())
    await asyncio.sleep(0.2)
    assert not flushed.done(), "flush returned before the outcomes were published"
    assert published == [], "the second outcome overtook the first"
    broker_back.set()
    await asyncio.wait_for(flushed, 2)
    assert published == ["first", "second"]


async def test_saves_report_whether_they_work() -> None:
    saves = Saves()
    writer = OutcomeWriter(saves)
    assert writer.saving
    saves.down = True
    writer.put((row(), None))
    await eventually(lambda: not writer.saving, timeout=2)
    saves.down = False
    await asyncio.wait_for(writer.wait_saving(5), 6)
    assert writer.saving and len(saves.saved) == 1


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/notifier.db"


async def test_no_send_starts_while_outcomes_cannot_be_saved(sqlite_url: str, http_sink: HttpSink) -> None:
    """One send at a time. The first send's outcome cannot be saved (the database is away): the second
    message is held back instead of sent with an outcome a kill would lose; it goes once saves work."""
    h = await make_harness(sqlite_url, WallClock(), concurrency=1)  # type: ignore[arg-type]
    real_save_many = h.store.save_many
    down, failed = asyncio.Event(), []

    async def save_many(rows: Sequence[Any]) -> set[UUID]:
        if down.is_set():
            failed.append(len(rows))
            raise ConnectionRefusedError(111, "Connect call failed")
        return await real_save_many(rows)

    h.worker.writer = OutcomeWriter(save_many)
    try:
        await h.member(ANA, "Ana", daily_cap=100)
        await h.channel(ANA, http_sink.url("json", "ana"))
        down.set()
        for n in range(2):
            await h.event(NotificationRequested(member_id=ANA, purpose="test.outage", title="Hello",
                                                body=f"n{n}"))
        h.worker.start()
        await eventually(lambda: len(http_sink.received) >= 1 and failed, timeout=20)
        await asyncio.sleep(1.5)
        assert len(http_sink.received) == 1, "a message was sent while its outcome could not be saved"
        down.clear()
        await eventually(lambda: len(http_sink.received) >= 2, timeout=20)
        await eventually(lambda: len(h.publisher.events("notification_sent")) == 2, timeout=20)
        assert sorted(r.json["message"] for r in http_sink.received) == ["n0", "n1"]
    finally:
        await h.worker.stop()
        await h.close()
