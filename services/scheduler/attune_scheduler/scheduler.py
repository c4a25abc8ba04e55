"""The running scheduler: takes commands, and runs the firing loop, the outbox relay, the read-ahead and
housekeeping (loops/, one a module) side by side, waking one another through `Signals` rather than polling.

Everything it touches is a port (ports.py): a unit of work per use case, the store's reads, the outbox as
the relay sees it, the clock and the sink. bootstrap.py hands it the SQL and Kafka adapters; tests, fakes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from attune_contracts import Envelope

from .handlers import handle_command
from .loops.firing import FiringLoop
from .loops.housekeeping import HousekeepingLoop
from .loops.read_ahead import ReadAheadLoop
from .loops.relay import RelayLoop
from .loops.signals import Signals
from .metrics import SchedulerMetrics
from .ports import Clock, Reads, RelayOutbox, Sink, UnitOfWorkFactory

log = logging.getLogger("attune.scheduler")


class Scheduler:
    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        reads: Reads,
        outbox: RelayOutbox,
        clock: Clock,
        sink: Sink,
        metrics: SchedulerMetrics,
        *,
        fire_batch_size: int = 500,
        relay_batch_size: int = 2000,
        max_sleep: timedelta = timedelta(seconds=30),
        relay_poll_s: float = 1.0,
        metrics_refresh_s: float = 5.0,
        fire_workers: int = 1,
        lookahead: timedelta = timedelta(0),
        relay_depth: int = 2,
        read_ahead: timedelta = timedelta(seconds=30),
        read_ahead_rows: int = 100_000,
    ) -> None:
        self.unit_of_work, self.clock, self.sink, self.metrics = unit_of_work, clock, sink, metrics
        self.signals = Signals()
        # Occurrences up to `lookahead` ahead are written to the outbox early (publish_at = their instant),
        # so a burst of rituals due in the same minute costs only the relay's work when it comes.
        # Several firing workers only where the database takes several writers at once (PostgreSQL).
        self.firing = FiringLoop(unit_of_work, reads, clock, metrics, self.signals, batch_size=fire_batch_size,
                                 workers=fire_workers if outbox.concurrent else 1, lookahead=lookahead,
                                 max_sleep=max_sleep)
        self.reading_ahead = ReadAheadLoop(outbox, clock, sink, metrics, self.signals, window=read_ahead,
                                           max_rows=read_ahead_rows, poll_s=relay_poll_s)
        self.relay = RelayLoop(outbox, clock, sink, metrics, self.signals, self.reading_ahead.rows,
                               batch_size=relay_batch_size, depth=relay_depth, poll_s=relay_poll_s)
        self.housekeeping = HousekeepingLoop(reads, metrics, self.signals, every_s=metrics_refresh_s)
        self._tasks: list[asyncio.Task[None]] = []

    async def handle(self, envelope: Envelope[Any]) -> None:
        """Handle one scheduler command (a redelivered one changes nothing), then wake the loops."""
        outcome = await handle_command(self.unit_of_work(), envelope, self.clock.now())
        extra = {"event_id": str(envelope.event_id), "event_type": envelope.type,
                 "correlation_id": envelope.correlation_id}
        if outcome is None:
            self.metrics.commands.labels(envelope.type, "duplicate").inc()
            log.info("command %s already handled", envelope.type, extra=extra)
            return
        if outcome.rejected:
            self.metrics.commands.labels(envelope.type, "rejected").inc()
            log.info("refused %s: %s", envelope.type, outcome.rejected, extra=extra)
        else:
            self.metrics.commands.labels(envelope.type, "accepted").inc()
        self.signals.changed.set()
        self.signals.outbox_ready.set()

    async def fire_due(self) -> int:
        return await self.firing.fire_due()

    async def relay_once(self) -> int:
        return await self.relay.relay_once()

    def start(self) -> None:
        self.signals.stopping = False
        self._tasks = [
            asyncio.create_task(self.firing.run(), name="scheduler-firing"),
            asyncio.create_task(self.relay.run(), name="scheduler-relay"),
            asyncio.create_task(self.housekeeping.run(), name="scheduler-housekeeping"),
        ]
        if self.reading_ahead.max_rows > 0 and self.firing.lookahead > timedelta(0):
            self._tasks.append(asyncio.create_task(self.reading_ahead.run(), name="scheduler-read-ahead"))

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Stop firing; let the relay publish what is already in the outbox (bounded), then stop."""
        self.signals.stopping = True
        self.signals.changed.set()
        self.signals.outbox_ready.set()
        firing, relay, *background = self._tasks or (None, None)
        for task in background:  # housekeeping, read-ahead
            task.cancel()
        # The firing pass in progress commits (or not) as a whole; then the relay drains the outbox.
        for task in (firing, relay):
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout=drain_timeout)
                except TimeoutError:
                    task.cancel()
                except Exception:
                    log.exception("scheduler task %s failed while stopping", task.get_name())
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
