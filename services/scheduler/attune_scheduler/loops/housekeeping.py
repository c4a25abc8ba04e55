"""Housekeeping: the gauges that need a count from the store (active rituals per template, outbox backlog)."""

from __future__ import annotations

import asyncio
import logging

from attune_contracts.catalog import TEMPLATES

from ..metrics import SchedulerMetrics
from ..ports import Reads
from .signals import Signals

log = logging.getLogger("attune.scheduler")


class HousekeepingLoop:
    def __init__(self, reads: Reads, metrics: SchedulerMetrics, signals: Signals, *, every_s: float) -> None:
        self.reads, self.metrics, self.signals, self.every_s = reads, metrics, signals, every_s

    async def refresh_metrics(self) -> None:
        active = await self.reads.active_by_template()
        schedulable = [key for key, t in TEMPLATES.items() if t.schedulable]
        for template in {*active, *schedulable}:
            self.metrics.active_rituals.labels(template).set(active.get(template, 0))
        self.metrics.outbox_backlog.set(await self.reads.outbox_backlog())

    async def run(self) -> None:
        while not self.signals.stopping:
            try:
                await self.refresh_metrics()
            except Exception:
                self.metrics.loop_errors.labels("housekeeping").inc()
                log.exception("housekeeping failed")
            await asyncio.sleep(self.every_s)
