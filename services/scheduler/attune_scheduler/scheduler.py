"""The running scheduler: command handling, the firing loop and the outbox relay.

The firing loop sleeps until the earliest wake time in the store (or until a command changes
something), claims due rituals in batches, and writes their events to the outbox in the same
transaction that advances them. With a lookahead it does so ahead of time: each event carries
`publish_at` (its instant), and a command that changes the ritual first drops it. The relay publishes
the outbox in order once `publish_at` has come, marks rows sent, and turns an occurrence whose instant
passed beyond its catch-up window while the service was down into OccurrenceSkipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from attune_contracts import Envelope, headers_for, make_envelope, parse

from .adapters.sql import FireReport, SqlStore
from .metrics import SchedulerMetrics
from .ports import Clock, OutboxRow, Sink
from .service import MIN_CATCH_UP, decide, late_window, skipped_id, too_late, wake

log = logging.getLogger("attune.scheduler")

_RETRY_AFTER_ERROR_S = 1.0
_LOCKED_ELSEWHERE_RETRY_S = 0.05


class Scheduler:
    def __init__(
        self,
        store: SqlStore,
        clock: Clock,
        sink: Sink,
        metrics: SchedulerMetrics,
        *,
        fire_batch_size: int = 500,
        relay_batch_size: int = 2000,
        max_sleep: timedelta = timedelta(seconds=30),
        relay_poll_s: float = 1.0,
        metrics_refresh_s: float = 5.0,
        outbox_retention: timedelta = timedelta(hours=24),
        fire_workers: int = 1,
        lookahead: timedelta = timedelta(0),
    ) -> None:
        self.store, self.clock, self.sink, self.metrics = store, clock, sink, metrics
        self.fire_batch_size, self.relay_batch_size = fire_batch_size, relay_batch_size
        self.max_sleep, self.relay_poll_s = max_sleep, relay_poll_s
        self.metrics_refresh_s, self.outbox_retention = metrics_refresh_s, outbox_retention
        self.fire_workers = fire_workers if store.postgres else 1
        # Occurrences up to `lookahead` ahead are written to the outbox early (publish_at = their instant),
        # so a burst of rituals due in the same minute costs only the relay's work when it comes.
        self.lookahead = lookahead
        self.changed = asyncio.Event()
        self.outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # ---- commands ------------------------------------------------------------------------------

    async def handle(self, envelope: Envelope[Any]) -> None:
        """Handle one scheduler command (a redelivered one changes nothing)."""
        outcome = await self.store.handle_command(envelope, self.clock.now(), decide)
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
        self.changed.set()
        self.outbox_ready.set()

    # ---- firing --------------------------------------------------------------------------------

    async def fire_due(self) -> int:
        """Work through everything due now, batch by batch; the number of events written.

        Several workers claim batches side by side (SKIP LOCKED on PostgreSQL), so one batch's database
        round trips overlap with the next batch's Python work. Order is kept per ritual, not across rituals.
        """
        if self.fire_workers == 1:
            return await self._fire_worker()
        return sum(await asyncio.gather(*(self._fire_worker() for _ in range(self.fire_workers))))

    async def _fire_worker(self) -> int:
        written = 0
        while True:
            now = self.clock.now()
            report = await self.store.fire_due(now, self.fire_batch_size, wake, now + self.lookahead)
            self._count(report)
            written += len(report.emitted)
            if report.emitted:
                self.outbox_ready.set()
            if report.claimed < self.fire_batch_size or self._stopping:
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

    async def run_firing(self) -> None:
        while not self._stopping:
            self.changed.clear()
            try:
                await self.fire_due()
                upcoming = await self.store.next_wake_at()
            except Exception:
                self.metrics.loop_errors.labels("firing").inc()
                log.exception("firing pass failed; retrying")
                upcoming = self.clock.now() + timedelta(seconds=_RETRY_AFTER_ERROR_S)
            ceiling = self.clock.now() + self.max_sleep
            deadline = ceiling if upcoming is None else min(upcoming - self.lookahead, ceiling)
            if self._stopping:
                break
            if deadline <= self.clock.now():
                # Due rows remain that this pass could not claim (another instance holds them): look again
                # shortly rather than spin.
                await asyncio.sleep(_LOCKED_ELSEWHERE_RETRY_S)
                continue
            await self.clock.wait_until(deadline, self.changed)

    # ---- relay ---------------------------------------------------------------------------------

    async def relay_once(self) -> int:
        rows = await self.store.relay(self.relay_batch_size, self._publish, self.clock.now)
        return len(rows)

    async def _publish(self, rows: Sequence[OutboxRow]) -> None:
        rows = self._late_rows_skipped(rows)
        if rows:
            await self.sink(rows)
        sent_at = self.clock.now()
        self.metrics.published.inc(len(rows))
        for row in rows:
            if row.event_type == "ritual.due" and row.due_at is not None:
                self.metrics.fire_lag.observe(max(0.0, (sent_at - row.due_at).total_seconds()))

    def _late_rows_skipped(self, rows: Sequence[OutboxRow]) -> list[OutboxRow]:
        """Events written ahead of time whose instant passed beyond the catch-up window while the service was
        down: an occurrence becomes OccurrenceSkipped (with the reason), a reminder is dropped."""
        now = self.clock.now()
        out: list[OutboxRow] = []
        for row in rows:
            if row.catch_up_minutes is None or row.due_at is None or now - row.due_at <= MIN_CATCH_UP:
                out.append(row)
                continue
            if row.event_type == "ritual.reminder":
                if now - row.due_at > late_window(row.catch_up_minutes):
                    self.metrics.skipped.labels("stale_reminder").inc()
                    continue
                out.append(row)
            elif row.event_type == "ritual.due":
                envelope = parse(row.value)
                skipped = too_late(envelope.payload, row.catch_up_minutes, now)
                if skipped is None:
                    out.append(row)
                    continue
                self.metrics.skipped.labels("outside_catch_up").inc()
                replacement = make_envelope(
                    skipped, household_id=envelope.household_id, producer=envelope.producer,
                    correlation_id=envelope.correlation_id, event_id=skipped_id(skipped.occurrence_id),
                    occurred_at=now,
                )
                out.append(replace(row, event_id=replacement.event_id, value=replacement.to_bytes(),
                                   headers=headers_for(replacement), event_type=replacement.type))
            else:
                out.append(row)
        return out

    async def run_relay(self) -> None:
        while True:
            self.outbox_ready.clear()
            try:
                # Shielded: a shutdown waits for a batch in flight, so it is marked sent, not sent twice.
                sent = await asyncio.shield(self.relay_once())
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.loop_errors.labels("relay").inc()
                log.exception("relay pass failed; retrying")
                await asyncio.sleep(_RETRY_AFTER_ERROR_S)
                continue
            if self._stopping and not sent:
                return
            if not sent:
                await self._relay_sleep()

    async def _relay_sleep(self) -> None:
        """Until the next row written ahead of time is due, a change, or the poll interval (other instances)."""
        poll = asyncio.ensure_future(asyncio.sleep(self.relay_poll_s))
        try:
            upcoming = await self.store.next_publish_at()
        except Exception:  # noqa: BLE001 - the poll below retries
            upcoming = None
        timed = asyncio.ensure_future(
            self.clock.wait_until(upcoming, self.outbox_ready) if upcoming is not None else self.outbox_ready.wait()
        )
        try:
            await asyncio.wait({poll, timed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            poll.cancel()
            timed.cancel()

    # ---- housekeeping --------------------------------------------------------------------------

    async def refresh_metrics(self) -> None:
        active = await self.store.active_by_template()
        for template in {*active, *(_known_templates())}:
            self.metrics.active_rituals.labels(template).set(active.get(template, 0))
        self.metrics.outbox_backlog.set(await self.store.outbox_backlog())

    async def run_housekeeping(self) -> None:
        while not self._stopping:
            try:
                await self.refresh_metrics()
                await self.store.prune_sent(self.clock.now() - self.outbox_retention)
            except Exception:
                self.metrics.loop_errors.labels("housekeeping").inc()
                log.exception("housekeeping failed")
            await asyncio.sleep(self.metrics_refresh_s)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self.run_firing(), name="scheduler-firing"),
            asyncio.create_task(self.run_relay(), name="scheduler-relay"),
            asyncio.create_task(self.run_housekeeping(), name="scheduler-housekeeping"),
        ]

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Stop firing; let the relay publish what is already in the outbox (bounded), then stop."""
        self._stopping = True
        self.changed.set()
        self.outbox_ready.set()
        firing, relay, housekeeping = self._tasks or (None, None, None)
        if housekeeping is not None:
            housekeeping.cancel()
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


def _known_templates() -> list[str]:
    from attune_contracts.catalog import TEMPLATES

    return [key for key, t in TEMPLATES.items() if t.schedulable]
