"""Clocks: the real one, and a fake one tests move by hand. The firing loop only ever asks a Clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

_EARLY_TIMER_SLACK = 0.002  # event-loop timers may fire a hair early; never wake before the deadline


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        """Sleep until `deadline`, or until `wake` is set, whichever comes first."""
        delay = (deadline - self.now()).total_seconds()
        if delay <= 0 or wake.is_set():
            return
        try:
            await asyncio.wait_for(wake.wait(), timeout=delay + _EARLY_TIMER_SLACK)
        except TimeoutError:
            pass


class FakeClock:
    """Time stands still until a test calls `advance` or `set`; sleepers wake when their deadline passes."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)

    async def wait_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        while self._now < deadline and not wake.is_set():
            moved = asyncio.ensure_future(self._moved.wait())
            woken = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({moved, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                woken.cancel()
