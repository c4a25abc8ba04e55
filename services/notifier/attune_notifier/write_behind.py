"""Write-behind for delivery outcomes: each row is saved moments after its send returns, not with its round.

Why: a message that went out but whose row was not saved goes out again once its lease ends. Saving a
whole round at its end made that window as wide as the round (up to 200 sends, tens of seconds against a
slow gateway); a crash, a stop or a failed save in it sent every message of the round twice.

How: `put` queues a row as soon as its outcome is known; one flusher task saves what is queued in one
statement (`SqlStore.save_many`) when `max_rows` are waiting or `interval_s` (5 ms) after the first one,
then publishes the outcomes of the rows really saved (never before: an announced outcome is always on
disk). The flusher is its own task, so a delivery round that is cancelled or fails still has the rows it
queued saved. A failed save is retried with capped backoff for as long as it takes (the rows stay in
memory and their claims in the store), except rows the database refuses outright (DataError,
IntegrityError), which are saved one by one so only the bad one is left to its lease. While saves fail,
`saving` is False and the delivery loop starts no new send (a row sent then could only be re-sent).

Publishing never holds up saving: the outcomes of a saved batch are published by a task of their own,
after those of the batch before (so they leave in order), while the flusher goes on saving. (It used to
await them: a broker cut or a slow acknowledgement then left every row queued meanwhile unsaved for
seconds, and a kill in those seconds re-sent them all.)

The window that remains: a kill -9 between a send returning and its row being saved loses that row's
outcome (the message goes out again after the lease): `interval_s` plus one save (a few milliseconds on
an idle machine, longer when the event loop or the database is busy), or as long as the database is
unreachable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from attune_runtime.retry import Backoff
from sqlalchemy.exc import DataError, IntegrityError

from .adapters.sql import Delivery

log = logging.getLogger("attune.notifier.delivery")

# A row to save, and what to do (count, publish its outcome) once it is really saved.
Write = tuple[Delivery, Callable[[], Awaitable[None]] | None]
SaveMany = Callable[[Sequence[Delivery]], Awaitable[set[UUID]]]


class OutcomeWriter:
    def __init__(self, save_many: SaveMany, *, interval_s: float = 0.005, max_rows: int = 64,
                 backoff: Backoff | None = None) -> None:
        self._save_many = save_many
        self.interval_s, self.max_rows = interval_s, max_rows
        self.backoff = backoff or Backoff(base_s=0.05, max_s=2.0)
        self._queue: list[Write] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._announcing: asyncio.Task[None] | None = None  # the latest batch's outcomes being published
        self._saving = asyncio.Event()  # set while saves work: cleared by a failed save, set by the next success
        self._saving.set()

    @property
    def saving(self) -> bool:
        """False while the last save failed (the database is away): outcomes wait in memory."""
        return self._saving.is_set()

    async def wait_saving(self, timeout_s: float) -> None:
        """Return once saves work again, or after `timeout_s`."""
        try:
            await asyncio.wait_for(self._saving.wait(), timeout_s)
        except TimeoutError:
            pass

    @property
    def pending(self) -> int:
        """Rows queued or being saved (not yet durable)."""
        return len(self._queue) + (self._in_flight if self._task is not None and not self._task.done() else 0)

    def put(self, write: Write) -> None:
        self._queue.append(write)
        if len(self._queue) >= self.max_rows:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="notifier-outcome-writer")

    async def flush(self) -> None:
        """Return once every row queued before the call is saved and its outcome published."""
        self._full.set()  # someone waits: no point waiting for more rows
        while self._task is not None and not self._task.done():
            # Shielded: a caller that is cancelled (a round cut short) must not cancel the saving.
            await asyncio.shield(self._task)
        if self._announcing is not None and not self._announcing.done():
            await asyncio.shield(self._announcing)  # the last batch's waits for every earlier one

    async def close(self, timeout_s: float) -> int:
        """Flush for up to `timeout_s`; return how many rows could not be saved (they go out again after
        their lease)."""
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
            return 0
        except TimeoutError:
            lost = self.pending
            if self._task is not None:
                self._task.cancel()
            if self._announcing is not None:
                self._announcing.cancel()  # saved rows: only their outcome events are not published
            self._saving.set()  # nothing left that fails to save
            self._queue.clear()
            return lost

    async def _run(self) -> None:
        # The task ends when the queue is empty; the next `put` starts another (no task outlives its work).
        while self._queue:
            if len(self._queue) < self.max_rows:
                try:
                    await asyncio.wait_for(self._full.wait(), self.interval_s)
                except TimeoutError:
                    pass
            self._full.clear()
            rows, self._queue = self._queue, []
            self._in_flight = len(rows)
            try:
                saved = await self._save(rows)
            finally:
                self._in_flight = 0
            announce = [after for d, after in rows if after is not None and d.notification_id in saved]
            if announce:
                self._announcing = asyncio.create_task(self._announce(self._announcing, announce),
                                                       name="notifier-outcome-announcer")

    @staticmethod
    async def _announce(before: asyncio.Task[None] | None, announce: list[Callable[[], Awaitable[None]]]) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)  # in order: the earlier batch's first
        await asyncio.gather(*(after() for after in announce), return_exceptions=True)

    async def _save(self, rows: list[Write]) -> set[UUID]:
        failures = 0
        while True:
            try:
                written = await self._save_many([d for d, _ in rows])
                self._saving.set()
                return written
            except (DataError, IntegrityError):
                self._saving.set()  # the database answered
                if len(rows) > 1:  # find the one row the database refuses; save the others
                    saved: set[UUID] = set()
                    for row in rows:
                        saved |= await self._save([row])
                    return saved
                log.error("the database refused delivery %s's outcome; it goes out again after its lease",
                          rows[0][0].notification_id, extra={"notification_id": str(rows[0][0].notification_id)})
                return set()
            except Exception as exc:  # noqa: BLE001 - the database is away: keep the rows, try again
                self._saving.clear()
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("could not save %d delivery outcomes (%s, try %d); retrying", len(rows),
                                type(exc).__name__, failures)
                await asyncio.sleep(self.backoff.delay(failures))
