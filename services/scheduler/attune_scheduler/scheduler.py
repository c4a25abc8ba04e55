"""The running scheduler: command handling, the firing loop and the outbox relay.

The firing loop sleeps until the earliest wake time in the store (or until a command changes
something), claims due rituals in batches, and writes their events to the outbox in the same
transaction that advances them. With a lookahead it does so ahead of time: each event carries
`publish_at` (its instant), and a command that changes the ritual first drops it. The relay publishes
the outbox in order once `publish_at` has come, deleting each row in the transaction that publishes
it (the outbox holds only what is still to go), and turns an occurrence whose instant
passed beyond its catch-up window while the service was down into OccurrenceSkipped.

For a burst (100,000 rituals due in the same minute) the relay does as little as it can at the instant:
rows written ahead are read into memory shortly before (`read_ahead`), so at the instant a batch costs its
claim (locking and deleting its rows) and the producer's work; the next batch is claimed while the broker
acknowledges the last one.

Several instances split the publishing by shard (adapters/sql.py: `ShardLeases`): each relay pass first takes
its fair share of the shards (free ones up to ceil(shards / relays), giving back any surplus), then publishes
only their rows. A relay that stops or is cancelled gives its shards back once its pass in flight has ended;
one that dies loses them with its connection, and the others take them within a poll (`relay_poll_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from attune_contracts import Envelope, headers_for, make_envelope, parse

from .adapters.sql import FireReport, SqlStore
from .metrics import SchedulerMetrics
from .ports import Clock, OutboxRow, Sink
from .service import MIN_CATCH_UP, decide, late_window, screen, skipped_id, too_late, wake

log = logging.getLogger("attune.scheduler")

_RETRY_AFTER_ERROR_S = 1.0
_READ_AHEAD_BATCH = 5000
_EVICT_EVERY = timedelta(seconds=30)
_EVICT_AFTER = timedelta(minutes=5)
_LOCKED_ELSEWHERE_RETRY_S = 0.05
_RELEASE_WAIT_S = 10.0


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
        fire_workers: int = 1,
        lookahead: timedelta = timedelta(0),
        relay_depth: int = 2,
        read_ahead: timedelta = timedelta(seconds=30),
        read_ahead_rows: int = 100_000,
    ) -> None:
        self.store, self.clock, self.sink, self.metrics = store, clock, sink, metrics
        self.fire_batch_size, self.relay_batch_size = fire_batch_size, relay_batch_size
        self.max_sleep, self.relay_poll_s = max_sleep, relay_poll_s
        self.metrics_refresh_s = metrics_refresh_s
        self.fire_workers = fire_workers if store.postgres else 1
        # Occurrences up to `lookahead` ahead are written to the outbox early (publish_at = their instant),
        # so a burst of rituals due in the same minute costs only the relay's work when it comes.
        self.lookahead = lookahead
        # Batches in flight at once (PostgreSQL): the next is claimed while the broker acknowledges the last.
        self.relay_depth = relay_depth if store.postgres else 1
        # Rows written ahead are read into memory `read_ahead` before their instant (at most `read_ahead_rows`),
        # so at the instant the relay only claims them and hands them to the producer.
        self.read_ahead_window, self.read_ahead_rows = read_ahead, read_ahead_rows
        self.read_ahead: dict[int, OutboxRow] = {}
        self._read_ahead_cursor: tuple[datetime, int] | None = None
        self.written_ahead = asyncio.Event()
        self._last_evicted = datetime.min.replace(tzinfo=UTC)
        self.changed = asyncio.Event()
        self.outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # ---- commands ------------------------------------------------------------------------------

    async def handle(self, envelope: Envelope[Any]) -> None:
        """Handle one scheduler command (a redelivered one changes nothing).

        A command refused on its face (`screen`: a NUL character, a start date far from today, a rule that
        cannot be valid) is answered with its rejection before the household is even read or locked.
        """
        now = self.clock.now()
        reason = screen(envelope, now)
        if reason is not None:
            outcome = await self.store.reject(envelope, reason, now)
        else:
            outcome = await self.store.handle_command(envelope, now, decide)
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
                self.written_ahead.set()
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
        """Publish everything due in the outbox, batch by batch; how many rows went (published or skipped).

        Only the shards this instance holds (PostgreSQL; SQLite: all). On PostgreSQL batches overlap: while the
        broker acknowledges one, the next is claimed and handed to the sink, which keeps their order. Each batch is
        deleted from the outbox by its own transaction once acknowledged.
        """
        shards = await self.store.relay_shards()
        if shards is not None and not shards:
            return 0
        in_flight: deque[asyncio.Task[None]] = deque()
        total = 0
        after: int | None = None
        try:
            while True:
                claimed: asyncio.Future[tuple[int, int | None]] = asyncio.get_running_loop().create_future()
                in_flight.append(asyncio.create_task(self._relay_batch(claimed, shards, after)))
                count, last = await claimed
                total += count
                if count < self.relay_batch_size:
                    break
                # The next batch starts after this one's rows: it neither waits for nor skips them.
                after = last if self.store.postgres else None
                while len(in_flight) >= self.relay_depth:
                    await in_flight.popleft()
            while in_flight:
                await in_flight.popleft()
        finally:  # a failed batch ends the pass; the others still finish (or roll back) before it returns
            await asyncio.gather(*in_flight, return_exceptions=True)
        return total

    async def _relay_batch(
        self, claimed: asyncio.Future[tuple[int, int | None]], shards: frozenset[int] | None, after: int | None
    ) -> None:
        try:
            async with self.store.claim(
                self.relay_batch_size, self.clock.now(), self.read_ahead, shards, after
            ) as rows:
                claimed.set_result((len(rows), rows[-1].id if rows else None))
                if rows:
                    await self._publish(rows)
        except BaseException as exc:
            if not claimed.done():
                claimed.set_exception(exc)
            raise

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
        """Relay passes until stopped; then (or when cancelled) the shards are given back for others to take."""
        relay_pass: asyncio.Future[int] | None = None
        try:
            while True:
                self.outbox_ready.clear()
                try:
                    # Shielded: a shutdown waits for a batch in flight, so it is deleted from the outbox, not sent twice.
                    relay_pass = asyncio.ensure_future(self.relay_once())
                    sent = await asyncio.shield(relay_pass)
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
        finally:
            # The shards go back only once the pass in flight has ended (bounded), so their next owner never
            # publishes beside it.
            if relay_pass is not None and not relay_pass.done():
                await asyncio.wait({relay_pass}, timeout=_RELEASE_WAIT_S)
                if relay_pass.done() and not relay_pass.cancelled() and relay_pass.exception() is not None:
                    log.warning("the relay pass in flight when the relay stopped failed: %s", relay_pass.exception())
            try:
                await self.store.release_relay_shards()
            except Exception:  # the lock connection is dropped anyway, and PostgreSQL frees its locks
                log.exception("giving back the relay shards failed")

    async def _relay_sleep(self) -> None:
        """Until the next row written ahead of time is due, a change, or the poll interval (other instances).

        Rows already due that this pass did not get are another instance's relay's to send: wait for the poll
        (or a change here) rather than ask again at once."""
        poll = asyncio.ensure_future(asyncio.sleep(self.relay_poll_s))
        try:
            upcoming = await self.store.next_publish_at()
        except Exception:  # noqa: BLE001 - the poll below retries
            upcoming = None
        timed = asyncio.ensure_future(
            self.clock.wait_until(upcoming, self.outbox_ready)
            if upcoming is not None and upcoming > self.clock.now() else self.outbox_ready.wait()
        )
        try:
            await asyncio.wait({poll, timed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            poll.cancel()
            timed.cancel()

    async def read_ahead_once(self) -> int:
        """Read the next rows due within the read-ahead window into memory; how many were read."""
        now = self.clock.now()
        if now - self._last_evicted > _EVICT_EVERY:
            self._evict(now)
        room = min(self.read_ahead_rows - len(self.read_ahead), _READ_AHEAD_BATCH)
        if room <= 0:
            return 0
        rows = await self.store.read_ahead(self._read_ahead_cursor, now + self.read_ahead_window, room)
        if rows:
            for row in rows:
                self.read_ahead.setdefault(row.id, row)
            last = rows[-1]
            assert last.publish_at is not None  # the query selects rows by publish_at  # noqa: S101 - narrows a type
            self._read_ahead_cursor = (last.publish_at, last.id)
            prepare = getattr(self.sink, "prepare", None)
            if prepare is not None:
                await prepare(rows)
        self.metrics.read_ahead.set(len(self.read_ahead))
        return len(rows)

    def _evict(self, now: datetime) -> None:
        """Forget rows read ahead that were never claimed here long after their instant: another instance sent
        them, or a change to their ritual deleted them. (A row forgotten too early is only read again.)"""
        self._last_evicted = now
        stale = [i for i, row in self.read_ahead.items() if row.publish_at is None or now - row.publish_at > _EVICT_AFTER]
        for i in stale:
            del self.read_ahead[i]

    async def run_read_ahead(self) -> None:
        while not self._stopping:
            self.written_ahead.clear()
            try:
                read = await self.read_ahead_once()
            except Exception:
                self.metrics.loop_errors.labels("read_ahead").inc()
                log.exception("reading the outbox ahead failed; retrying")
                await asyncio.sleep(_RETRY_AFTER_ERROR_S)
                continue
            if read < _READ_AHEAD_BATCH:  # caught up: look again when more is written, or as time moves on
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.written_ahead.wait(), timeout=self.relay_poll_s)

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
        if self.read_ahead_rows > 0 and self.lookahead > timedelta(0):
            self._tasks.append(asyncio.create_task(self.run_read_ahead(), name="scheduler-read-ahead"))

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Stop firing; let the relay publish what is already in the outbox (bounded), then stop."""
        self._stopping = True
        self.changed.set()
        self.outbox_ready.set()
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


def _known_templates() -> list[str]:
    from attune_contracts.catalog import TEMPLATES

    return [key for key, t in TEMPLATES.items() if t.schedulable]
