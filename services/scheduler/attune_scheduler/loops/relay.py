"""The outbox relay: publishes the outbox in order once `publish_at` has come, deleting each row in the
transaction that publishes it (the outbox holds only what is still to go), and turns an occurrence whose
instant passed beyond its catch-up window while the service was down into OccurrenceSkipped.

For a burst (100,000 rituals due in the same minute) the relay does as little as it can at the instant: rows
written ahead are read into memory shortly before (read_ahead.py), so at the instant a batch costs its claim
(locking and deleting its rows) and the producer's work; the next batch is claimed while the broker
acknowledges the last one.

Several instances split the publishing by shard (adapters/shards.py): each relay pass first takes its fair
share of the shards, then publishes only their rows. A relay that stops or is cancelled gives its shards back
once its pass in flight has ended; one that dies loses them with its connection, and the others take them
within a poll (`poll_s`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import MutableMapping, Sequence
from dataclasses import replace

from attune_contracts import headers_for, make_envelope, parse

from ..metrics import SchedulerMetrics
from ..model import OutboxRow
from ..ports import Clock, RelayOutbox, Sink
from ..waking import MIN_CATCH_UP, late_window, skipped_id, too_late
from .signals import RETRY_AFTER_ERROR_S, Signals

log = logging.getLogger("attune.scheduler")

_RELEASE_WAIT_S = 10.0


class RelayLoop:
    def __init__(self, outbox: RelayOutbox, clock: Clock, sink: Sink, metrics: SchedulerMetrics, signals: Signals,
                 read_ahead: MutableMapping[int, OutboxRow], *, batch_size: int, depth: int, poll_s: float) -> None:
        self.outbox, self.clock, self.sink, self.metrics, self.signals = outbox, clock, sink, metrics, signals
        self.read_ahead = read_ahead
        self.batch_size, self.poll_s = batch_size, poll_s
        # Batches in flight at once (PostgreSQL): the next is claimed while the broker acknowledges the last.
        self.depth = depth if outbox.concurrent else 1

    async def relay_once(self) -> int:
        """Publish everything due in the outbox, batch by batch; how many rows went (published or skipped).

        Only the shards this instance holds (PostgreSQL; SQLite: all). On PostgreSQL batches overlap: while the
        broker acknowledges one, the next is claimed and handed to the sink, which keeps their order. Each batch is
        deleted from the outbox by its own transaction once acknowledged.
        """
        shards = await self.outbox.shards()
        if shards is not None and not shards:
            return 0
        in_flight: deque[asyncio.Task[None]] = deque()
        total = 0
        after: int | None = None
        try:
            while True:
                claimed: asyncio.Future[tuple[int, int | None]] = asyncio.get_running_loop().create_future()
                in_flight.append(asyncio.create_task(self._batch(claimed, shards, after)))
                count, last = await claimed
                total += count
                if count < self.batch_size:
                    break
                # The next batch starts after this one's rows: it neither waits for nor skips them.
                after = last if self.outbox.concurrent else None
                while len(in_flight) >= self.depth:
                    await in_flight.popleft()
            while in_flight:
                await in_flight.popleft()
        finally:  # a failed batch ends the pass; the others still finish (or roll back) before it returns
            await asyncio.gather(*in_flight, return_exceptions=True)
        return total

    async def _batch(
        self, claimed: asyncio.Future[tuple[int, int | None]], shards: frozenset[int] | None, after: int | None
    ) -> None:
        try:
            async with self.outbox.claim(self.batch_size, self.clock.now(), self.read_ahead, shards, after) as rows:
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

    async def run(self) -> None:
        """Relay passes until stopped; then (or when cancelled) the shards are given back for others to take."""
        relay_pass: asyncio.Future[int] | None = None
        try:
            while True:
                self.signals.outbox_ready.clear()
                try:
                    # Shielded: a shutdown waits for a batch in flight, so it is deleted from the outbox, not sent twice.
                    relay_pass = asyncio.ensure_future(self.relay_once())
                    sent = await asyncio.shield(relay_pass)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.metrics.loop_errors.labels("relay").inc()
                    log.exception("relay pass failed; retrying")
                    await asyncio.sleep(RETRY_AFTER_ERROR_S)
                    continue
                if self.signals.stopping and not sent:
                    return
                if not sent:
                    await self._sleep()
        finally:
            # The shards go back only once the pass in flight has ended (bounded), so their next owner never
            # publishes beside it.
            if relay_pass is not None and not relay_pass.done():
                await asyncio.wait({relay_pass}, timeout=_RELEASE_WAIT_S)
                if relay_pass.done() and not relay_pass.cancelled() and relay_pass.exception() is not None:
                    log.warning("the relay pass in flight when the relay stopped failed: %s", relay_pass.exception())
            try:
                await self.outbox.release_shards()
            except Exception:  # the lock connection is dropped anyway, and PostgreSQL frees its locks
                log.exception("giving back the relay shards failed")

    async def _sleep(self) -> None:
        """Until the next row written ahead of time is due, a change, or the poll interval (other instances).

        Rows already due that this pass did not get are another instance's relay's to send: wait for the poll
        (or a change here) rather than ask again at once."""
        poll = asyncio.ensure_future(asyncio.sleep(self.poll_s))
        try:
            upcoming = await self.outbox.next_publish_at()
        except Exception:  # noqa: BLE001 - the poll below retries
            upcoming = None
        ready = self.signals.outbox_ready
        timed = asyncio.ensure_future(
            self.clock.wait_until(upcoming, ready) if upcoming is not None and upcoming > self.clock.now()
            else ready.wait()
        )
        try:
            await asyncio.wait({poll, timed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            poll.cancel()
            timed.cancel()
