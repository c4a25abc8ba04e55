"""The delivery loop: due rows out of the store, through the decisions, to a sender, outcome published.

Every state lives in the deliveries table (status, channel index, attempt, next_attempt_at), so a
restart picks up a retry schedule where it was. Rows are leased while in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from attune_contracts import Publisher, catalog
from attune_contracts.links import LinkAction, LinkSigner
from attune_contracts.messages import (
    ChannelKind,
    NotificationDeadLettered,
    NotificationDropped,
    NotificationFailed,
    NotificationSent,
)

from .adapters.sql import Delivery, SqlStore
from .metrics import NotifierMetrics
from .ports import Clock, Sender
from .service import (
    OCCURRENCE_PURPOSES,
    Action,
    ChannelRef,
    Purpose,
    Recipient,
    RetryPlan,
    after_failure,
    decide,
    is_neutral,
    local_day_start,
    render,
    route,
)

log = logging.getLogger("attune.notifier.delivery")

WAITING_ERRORS = {
    "unknown_member": "the member is not known to the notifier (no MemberUpserted yet, or erased)",
    "no_channel": "the member has no channel for this kind of message",
}


class DeliveryWorker:
    def __init__(
        self,
        store: SqlStore,
        sender: Sender,
        publisher: Publisher,
        metrics: NotifierMetrics,
        *,
        clock: Clock,
        signer: LinkSigner | None = None,
        public_url: str = "",
        retry: RetryPlan | None = None,
        concurrency: int = 32,
        batch: int = 200,
        lease: timedelta = timedelta(minutes=5),
        idle_poll_s: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self.sender, self.publisher, self.metrics = store, sender, publisher, metrics
        self.clock, self.signer, self.public_url = clock, signer, public_url.rstrip("/")
        self.retry = retry or RetryPlan()
        self.batch, self.lease, self.idle_poll_s = batch, lease, idle_poll_s
        self.rng = rng or random.Random()
        self._sending = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Handle every delivery due now (one batch); return how many were handled."""
        now = self.clock()
        due = await self.store.claim_due(now, self.batch, self.lease)
        if not due:
            return 0
        members, channels, urls, sent = await self.store.load_batch(
            {d.member_id for d in due}, now - timedelta(hours=27))
        # Sends today per member, counted here once and then kept up to date within the batch.
        sent_today = {
            m: sum(t >= local_day_start(now, r.zone) for t in sent.get(m, [])) for m, r in members.items()
        }
        batch = _Batch(members, channels, urls, sent_today)
        await asyncio.gather(*(self._guarded(d, batch) for d in due))
        await self._write(batch.writes)
        return len(due)

    async def _write(self, writes: list[Write]) -> None:
        """Save a round's rows in one statement; then, for the rows really saved (not suppressed or erased
        meanwhile), count and publish their outcomes together."""
        if not writes:
            return
        try:
            saved = await self.store.save_many([d for d, _ in writes])
        except Exception:
            log.exception("could not save %d deliveries; they will be retried after their lease", len(writes))
            return
        announce = [after() for d, after in writes if after is not None and d.notification_id in saved]
        await asyncio.gather(*announce)

    async def drain(self, limit: int = 100) -> int:
        """Run until nothing is due now (tests and benchmarks)."""
        total = 0
        for _ in range(limit):
            handled = await self.run_once()
            total += handled
            if not handled:
                break
        return total

    async def _guarded(self, delivery: Delivery, batch: _Batch) -> None:
        try:
            await self._process(delivery, batch)
        except Exception:
            log.exception("delivery %s failed unexpectedly; it will be retried after its lease",
                          delivery.notification_id, extra={"notification_id": str(delivery.notification_id)})

    async def _process(self, d: Delivery, batch: _Batch) -> None:
        now = self.clock()
        recipient = batch.members.get(d.member_id)
        channels = batch.channels.get(d.member_id, [])
        routes = route(recipient, channels, category=d.category, purpose=d.purpose) if recipient else []
        decision = decide(now=now, recipient=recipient, routes=routes, channel_index=d.channel_index,
                          expires_at=d.expires_at, sent_today=batch.sent_today.get(d.member_id, 0))
        if decision.action is Action.DROP:
            d.status, d.reason, d.next_attempt_at = "dropped", decision.reason, None

            async def dropped(reason: str = decision.reason) -> None:
                self.metrics.dropped.labels(reason).inc()
                await self._publish(d, NotificationDropped(**self._outcome(d), reason=reason))
            batch.writes.append((d, dropped))
            return
        if decision.action is Action.DEFER:
            d.status, d.reason, d.next_attempt_at = "deferred", decision.reason, decision.at

            async def deferred(reason: str = decision.reason) -> None:
                self.metrics.deferred.labels(reason).inc()
            batch.writes.append((d, deferred))
            return
        if decision.action is Action.RETRY:
            batch.writes.append(self._wait_for_route(d, now, decision.reason))
            return
        assert decision.channel is not None
        # Counted before the first await, so later rows of this batch for the same member see it.
        batch.sent_today[d.member_id] = batch.sent_today.get(d.member_id, 0) + 1
        batch.writes.append(
            await self._attempt(d, recipient, decision.channel, routes, batch.urls.get(decision.channel.channel_id)))

    def _wait_for_route(self, d: Delivery, now: datetime, reason: str) -> Write:
        d.total_attempts += 1
        d.last_error = WAITING_ERRORS.get(reason, reason)
        if d.total_attempts >= self.retry.max_waiting_attempts:
            d.status, d.reason, d.next_attempt_at = "dead", reason, None

            async def dead() -> None:
                self.metrics.dead_lettered.labels(reason).inc()
                self.metrics.deliveries.labels("none", "dead").inc()
                await self._publish(d, NotificationDeadLettered(**self._outcome(d), reason=d.last_error))
            return d, dead
        delay = self.retry.backoff.delay(d.total_attempts, self.rng)
        d.status, d.reason, d.next_attempt_at = "failed", reason, now + timedelta(seconds=delay)

        async def waiting() -> None:
            await self._publish(d, NotificationFailed(**self._outcome(d), error=d.last_error,
                                                      next_attempt_at=d.next_attempt_at))
        return d, waiting

    async def _attempt(self, d: Delivery, recipient: Recipient | None, channel: ChannelRef,
                       routes: list[ChannelRef], url: str | None) -> Write:
        kind = channel.kind
        message = render(d.template, d.params, kind, neutral=is_neutral(recipient, d.sensitive),
                         link=self._link(d))
        if url is None:  # deleted between claim and send
            result_ok, error = False, f"{kind} channel was removed"
        else:
            async with self._sending:
                result = await self.sender.send(url, message)
            result_ok, error = result.ok, result.error
        now = self.clock()
        d.attempt += 1
        d.total_attempts += 1
        d.channel_kind = kind.value
        self.metrics.attempts.labels(kind.value).inc()
        if result_ok:
            d.status, d.reason, d.sent_at, d.next_attempt_at, d.last_error = "sent", None, now, None, None

            async def sent() -> None:
                latency = max(0.0, (now - d.occurred_at).total_seconds())
                self.metrics.deliveries.labels(kind.value, "sent").inc()
                self.metrics.latency.labels(kind.value).observe(latency)
                self.metrics.delivered_by_template.labels(template_label(d)).inc()
                await self._publish(d, NotificationSent(**self._outcome(d), delivered_at=now,
                                                        latency_seconds=latency))
            return d, sent
        d.last_error = error[:500] or f"{kind} delivery failed"
        plan = after_failure(now=now, attempt=d.attempt, channel_index=d.channel_index, channels=len(routes),
                             policy=self.retry, rng=self.rng)
        if plan.dead:
            d.status, d.reason, d.next_attempt_at = "dead", "attempts_exhausted", None

            async def dead() -> None:
                self.metrics.deliveries.labels(kind.value, "dead").inc()
                self.metrics.dead_lettered.labels("attempts_exhausted").inc()
                await self._publish(d, NotificationDeadLettered(
                    **self._outcome(d),
                    reason=f"{d.total_attempts} attempts on {len(routes)} channel(s) failed; last: {d.last_error}"))
            return d, dead
        d.status, d.reason = "failed", "retrying"
        d.channel_index, d.attempt, d.next_attempt_at = plan.channel_index, plan.attempt, plan.next_attempt_at

        async def failed() -> None:
            self.metrics.deliveries.labels(kind.value, "failed").inc()
            await self._publish(d, NotificationFailed(**self._outcome(d), error=d.last_error,
                                                      next_attempt_at=d.next_attempt_at))
        return d, failed

    def _link(self, d: Delivery) -> str | None:
        if self.signer is None or d.occurrence_id is None or d.purpose not in OCCURRENCE_PURPOSES:
            return None
        token = self.signer.mint(household_id=d.household_id, occurrence_id=d.occurrence_id,
                                 member_id=d.member_id, action=LinkAction.DONE, now=self.clock())
        return f"{self.public_url}/l/{token}"

    @staticmethod
    def _outcome(d: Delivery) -> dict[str, Any]:
        return {
            "notification_id": d.notification_id, "cause_event_id": d.cause_event_id, "cause_type": d.cause_type,
            "member_id": d.member_id, "purpose": d.purpose,
            "channel_kind": ChannelKind(d.channel_kind) if d.channel_kind else None,
            "attempts": d.total_attempts,
        }

    async def _publish(self, d: Delivery, payload: Any) -> None:
        # The row is already saved: an outcome event that cannot be published is logged, never re-sent.
        try:
            await self.publisher.publish(payload, household_id=d.household_id,
                                         correlation_id=str(d.cause_event_id))
            log.info("%s: %s via %s, attempt %d", type(payload).__name__, d.purpose, d.channel_kind or "-",
                     d.total_attempts, extra={"notification_id": str(d.notification_id),
                                              "correlation_id": str(d.cause_event_id)})
        except Exception as exc:  # noqa: BLE001
            log.warning("could not publish %s for %s: %s", type(payload).__name__, d.notification_id,
                        type(exc).__name__, extra={"notification_id": str(d.notification_id)})

    # ---- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="notifier-delivery")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let the round in progress finish (its messages are sent: their rows must be saved, or they would
        go out again after the lease); cancel it only if it takes longer than `grace_s`."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(self._task, grace_s)
            except TimeoutError:
                log.warning("the delivery round did not finish within %.0fs; its rows are retried after their lease",
                            grace_s)
            finally:
                self._task = None
                self._stopping = False

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery loop iteration failed")
                handled = 0
            if handled or self._stopping:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.idle_poll_s)
            except TimeoutError:
                pass


def template_label(d: Delivery) -> str:
    """A bounded label: catalog ritual keys, the notifier's own purposes, or "request"/"other"."""
    if d.purpose in OCCURRENCE_PURPOSES:
        return d.category if catalog.template(d.category) is not None else "other"
    if d.template == "request":
        return "request"
    return d.purpose if d.purpose in PURPOSES else "other"


PURPOSES = frozenset(p.value for p in Purpose)


# A row to save, and what to do (count, publish its outcome) once it is really saved.
Write = tuple[Delivery, Callable[[], Awaitable[None]] | None]


@dataclass
class _Batch:
    members: dict[UUID, Recipient]
    channels: dict[UUID, list[ChannelRef]]
    urls: dict[UUID, str]
    sent_today: dict[UUID, int]
    writes: list[Write] = field(default_factory=list)
