"""Consumer lag per group, topic and partition, sampled from each subscriber's own consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger("attune.lag")


class LagTracker:
    def __init__(self, broker: KafkaBroker, registry: CollectorRegistry, service: str, interval_s: float = 5.0) -> None:
        self.broker, self.service, self.interval_s = broker, service, interval_s
        self.lag = Gauge("attune_consumer_lag", "Messages not yet consumed (end offset - position)",
                         ["service", "group", "topic", "partition"], registry=registry)
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> dict[tuple[str, str, int], int]:
        seen: dict[tuple[str, str, int], int] = {}
        for subscriber in getattr(self.broker, "subscribers", []):
            consumer: Any = getattr(subscriber, "consumer", None)
            group = getattr(subscriber, "group_id", None)
            if consumer is None or not group:
                continue
            assigned = list(consumer.assignment())
            if not assigned:
                continue
            ends = await consumer.end_offsets(assigned)
            for tp in assigned:
                try:
                    position = await consumer.position(tp)
                except Exception:  # noqa: S112, BLE001 - partition revoked between calls; partition revoked between calls; nothing to log
                    continue
                lag = max(0, ends[tp] - position)
                seen[(group, tp.topic, tp.partition)] = lag
                self.lag.labels(self.service, group, tp.topic, str(tp.partition)).set(lag)
        return seen

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # noqa: BLE001 - a metric must never take the service down
                log.debug("lag sample failed: %s", exc)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self.service}-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
