"""Read-ahead: rows written ahead of time are read into memory `window` before their instant (at most
`max_rows`), so at the instant the relay only claims them and hands them to the producer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from ..metrics import SchedulerMetrics
from ..model import OutboxRow
from ..ports import Clock, RelayOutbox, Sink
from .signals import RETRY_AFTER_ERROR_S, Signals

log = logging.getLogger("attune.scheduler")

BATCH = 5000
_EVICT_EVERY = timedelta(seconds=30)
_EVICT_AFTER = timedelta(minutes=5)


class ReadAheadLoop:
    def __init__(self, outbox: RelayOutbox, clock: Clock, sink: Sink, metrics: SchedulerMetrics, signals: Signals,
                 *, window: timedelta, max_rows: int, poll_s: float) -> None:
        self.outbox, self.clock, self.sink, self.metrics, self.signals = outbox, clock, sink, metrics, signals
        self.window, self.max_rows, self.poll_s = window, max_rows, poll_s
        self.rows: dict[int, OutboxRow] = {}
        """Rows read ahead, by outbox id: the relay takes (pops) them as it claims them."""
        self._cursor: tuple[datetime, int] | None = None
        self._last_evicted = datetime.min.replace(tzinfo=UTC)

    async def read_once(self) -> int:
        """Read the next rows due within the read-ahead window into memory; how many were read."""
        now = self.clock.now()
        if now - self._last_evicted > _EVICT_EVERY:
            self._evict(now)
        room = min(self.max_rows - len(self.rows), BATCH)
        if room <= 0:
            return 0
        rows = await self.outbox.read_ahead(self._cursor, now + self.window, room)
        if rows:
            for row in rows:
                self.rows.setdefault(row.id, row)
            last = rows[-1]
            assert last.publish_at is not None  # the query selects rows by publish_at  # noqa: S101 - narrows a type
            self._cursor = (last.publish_at, last.id)
            prepare = getattr(self.sink, "prepare", None)
            if prepare is not None:
                await prepare(rows)
        self.metrics.read_ahead.set(len(self.rows))
        return len(rows)

    def _evict(self, now: datetime) -> None:
        """Forget rows read ahead that were never claimed here long after their instant: another instance sent
        them, or a change to their ritual deleted them. (A row forgotten too early is only read again.)"""
        self._last_evicted = now
        stale = [i for i, row in self.rows.items() if row.publish_at is None or now - row.publish_at > _EVICT_AFTER]
        for i in stale:
            del self.rows[i]

    async def run(self) -> None:
        while not self.signals.stopping:
            self.signals.written_ahead.clear()
            try:
                read = await self.read_once()
            except Exception:
                self.metrics.loop_errors.labels("read_ahead").inc()
                log.exception("reading the outbox ahead failed; retrying")
                await asyncio.sleep(RETRY_AFTER_ERROR_S)
                continue
            if read < BATCH:  # caught up: look again when more is written, or as time moves on
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.signals.written_ahead.wait(), timeout=self.poll_s)
