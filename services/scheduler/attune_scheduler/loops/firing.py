"""The firing loop: sleeps until the earliest wake time in the store (or until a command changes something),
then claims due rituals in batches and writes their events to the outbox in the unit of work that advances
them. With a lookahead it does so ahead of time: each event carries `publish_at` (its instant), and a command
that changes the ritual first drops it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ..handlers import fire_batch
from ..metrics import SchedulerMetrics
from ..model import FireReport
from ..ports import Clock, Reads, UnitOfWorkFactory
from .signals import RETRY_AFTER_ERROR_S, Signals

log = logging.getLogger("attune.scheduler")

_LOCKED_ELSEWHERE_RETRY_S = 0.05


class FiringLoop:
    def __init__(self, unit_of_work: UnitOfWorkFactory, reads: Reads, clock: Clock, metrics: SchedulerMetrics,
                 signals: Signals, *, batch_size: int, workers: int, lookahead: timedelta,
                 max_sleep: timedelta) -> None:
        self.unit_of_work, self.reads, self.clock, self.metrics = unit_of_work, reads, clock, metrics
        self.signals = signals
        self.batch_size, self.workers, self.lookahead, self.max_sleep = batch_size, workers, lookahead, max_sleep

    async def fire_due(self) -> int:
        """Work through everything due now, batch by batch; the number of events written.

        Several workers claim batches side by side (SKIP LOCKED on PostgreSQL), so one batch's database
        round trips overlap with the next batch's Python work. Order is kept per ritual, not across rituals.
        """
        if self.workers == 1:
            return await self._worker()
        return sum(await asyncio.gather(*(self._worker() for _ in range(self.workers))))

    async def _worker(self) -> int:
        written = 0
        while True:
            now = self.clock.now()
            report = await fire_batch(self.unit_of_work(), now, self.batch_size, now + self.lookahead)
            self._count(report)
            written += len(report.emitted)
            if report.emitted:
                self.signals.outbox_ready.set()
                self.signals.written_ahead.set()
            if report.claimed < self.batch_size or self.signals.stopping:
                return written

    def _count(self, report: FireReport) -> None:
        for item in report.emitted:
            template = report.templates[item.event_id]
            kind = type(item.payload).__name__
            if kind == "RitualDue":
                self.metrics.fired.labels(template).inc()
            elif kind == "RitualReminder":
                self.metrics.reminders.labels(template).inc()
            else:
                self.metrics.skipped.labels(item.skip_reason or "other").inc()
        if report.stale_reminders:
            self.metrics.skipped.labels("stale_reminder").inc(report.stale_reminders)
        if report.failed:
            self.metrics.loop_errors.labels("ritual").inc(report.failed)
            log.error("%d rituals could not be expanded and were stopped", report.failed)

    async def run(self) -> None:
        while not self.signals.stopping:
            self.signals.changed.clear()
            try:
                await self.fire_due()
                upcoming = await self.reads.next_wake_at()
            except Exception:
                self.metrics.loop_errors.labels("firing").inc()
                log.exception("firing pass failed; retrying")
                upcoming = self.clock.now() + timedelta(seconds=RETRY_AFTER_ERROR_S)
            ceiling = self.clock.now() + self.max_sleep
            deadline = ceiling if upcoming is None else min(upcoming - self.lookahead, ceiling)
            if self.signals.stopping:
                break
            if deadline <= self.clock.now():
                # Due rows remain that this pass could not claim (another instance holds them): look again
                # shortly rather than spin.
                await asyncio.sleep(_LOCKED_ELSEWHERE_RETRY_S)
                continue
            await self.clock.wait_until(deadline, self.signals.changed)
