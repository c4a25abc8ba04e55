"""The outbox relay: publishes the events the use cases wrote to the outbox, after their transaction committed.

A pass takes the relay's turn (one relay at a time across instances on PostgreSQL, see adapters/sql.py),
reads the oldest rows in id order, hands them to the producer in that order, and deletes them once the
broker has acknowledged them. A failure (broker unreachable, database gone) ends the pass with nothing
deleted; the relay waits with a capped backoff and tries again, for as long as it takes, and the rows
leave in the same order when it succeeds. Nobody else waits for it: HTTP answers and the consumer only
wait for their own commit.

A row is deleted after the broker acknowledged it, so a crash (or a failed delete) between the two sends
it again on the next pass, with the same event id: consumers dedupe on event id. That is the only
duplicate window, one batch of at most `batch_size` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from attune_runtime.retry import Backoff

from .adapters.sql import SqlStore
from .metrics import Metrics
from .ports import Clock, RecordSink

log = logging.getLogger("attune.checkins.relay")

# From 0.2 s doubling to 5 s: a short broker blip costs little, a long outage is polled every few seconds.
RELAY_BACKOFF = Backoff(base_s=0.2, max_s=5.0)


class OutboxRelay:
    def __init__(
        self,
        store: SqlStore,
        sink: RecordSink,
        metrics: Metrics,
        clock: Clock,
        *,
        batch_size: int = 500,
        poll_s: float = 1.0,
        backoff: Backoff = RELAY_BACKOFF,
        connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store, self.sink, self.metrics, self.clock = store, sink, metrics, clock
        self.batch_size, self.poll_s, self.backoff = batch_size, poll_s, backoff
        # Connects the producer; tried again before each pass until it works, so the service starts (and
        # keeps its rows) even when the broker is not there yet.
        self._connect = connect
        self._connected = connect is None
        self._ready = asyncio.Event()
        self._pass = asyncio.Lock()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._gauges: asyncio.Task[None] | None = None
        self.metrics_interval_s = 5.0
        self.failures = 0  # consecutive failed passes
        metrics.outbox_oldest_age.set_function(self._oldest_age)
        self._oldest: datetime | None = None

    def _oldest_age(self) -> float:
        oldest = self._oldest
        return 0.0 if oldest is None else max(0.0, (self.clock.now() - oldest).total_seconds())

    async def wake(self) -> None:
        """Something was committed to the outbox: publish it now rather than at the next poll."""
        self._ready.set()

    async def relay_once(self) -> int:
        """Publish everything in the outbox, oldest first, batch by batch; how many events went."""
        if not self._connected:
            assert self._connect is not None  # noqa: S101 - narrows a type; start() set it
            await self._connect()
            self._connected = True
        sent = 0
        # One pass at a time in this process too (SQLite has no lock between processes, and needs none).
        async with self._pass, self.store.relay_turn() as mine:
            if not mine:
                return 0  # another instance's relay is publishing; it sends these rows too
            while True:
                rows = await self.store.outbox_rows(self.batch_size)
                if not rows:
                    break
                await self.sink.send_all([(r.topic, str(r.household_id).encode(), r.value, r.headers) for r in rows])
                await self.store.delete_outbox([r.id for r in rows])
                self.metrics.outbox_published.inc(len(rows))
                sent += len(rows)
                if len(rows) < self.batch_size:
                    break
        return sent

    async def refresh_metrics(self) -> None:
        pending, self._oldest = await self.store.outbox_stats()
        self.metrics.outbox_pending.set(pending)

    async def run(self) -> None:
        while True:
            self._ready.clear()
            # Shielded: a stop lets the pass in flight finish (bounded by stop()), so what the broker
            # acknowledged is also deleted rather than sent again after the restart.
            passing = asyncio.ensure_future(self.relay_once())
            try:
                sent = await asyncio.shield(passing)
                self.failures = 0
            except asyncio.CancelledError:
                passing.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - broker or database: both pass; wait and try again
                self.failures += 1
                self.metrics.outbox_relay_failures.inc()
                delay = self.backoff.delay(self.failures)
                log.warning("outbox relay pass failed (%s: %s); trying again in %.1fs (attempt %d)",
                            type(exc).__name__, exc, delay, self.failures)
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(Exception):
                await self.refresh_metrics()
            if self._stopping:
                return
            if sent < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), timeout=self.poll_s)

    async def run_gauges(self) -> None:
        """The outbox gauges on their own clock: a pass can wait on a broker that is down for ~40 s
        (the producer's request timeout), and that is exactly when the backlog must be visible."""
        while True:
            try:
                await self.refresh_metrics()
            except Exception:  # the database may be away too; the next round tries again
                log.debug("outbox gauges not refreshed", exc_info=True)
            await asyncio.sleep(self.metrics_interval_s)

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="checkins-outbox-relay")
            self._gauges = asyncio.create_task(self.run_gauges(), name="checkins-outbox-gauges")

    async def stop(self, *, drain_timeout: float = 5.0) -> None:
        """One last pass for what is already committed (bounded: with the broker down the rows simply wait
        in the outbox for the next start), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._gauges is not None:
            self._gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._gauges
            self._gauges = None
        self._stopping = True
        self._ready.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=drain_timeout)
        except TimeoutError:
            task.cancel()
        except Exception:
            log.exception("outbox relay failed while stopping")
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
