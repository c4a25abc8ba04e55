"""The real clock. The loops only ever ask a Clock (ports.py); tests hand them one they move by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

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
