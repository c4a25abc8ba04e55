"""The delivery loop: due rows out of the store, through the decisions, to a sender, outcome published.

Every state lives in the deliveries table (status, channel index, attempt, next_attempt_at), so a
restart picks up a retry schedule where it was. Rows are leased while in flight.

Duplicates, and how narrow their window is kept:
- Each row's outcome is queued for saving the moment its send returns (`write_behind.OutcomeWriter`,
  flushed within ~5 ms), and its outcome event is published only after the row is saved. A crash
  re-sends at most the sends that returned in those last milliseconds, not the round.
- The lease (`lease`, setting DELIVERY_LEASE_S, default 30 s) is how late a claimed reminder can be
  after a crash, and it must outlive a send in flight, or another instance would claim and send the row
  again while the first send is still going. So: a round claims no more rows than it can send at once
  (min(batch, concurrency)), every claimed row starts its send right away, each send is cut off at
  `send_timeout_s` (by the sender; by the loop CUTOFF_GRACE_S later if the sender does not), and the lease must be at least the send timeout plus LEASE_MARGIN_S (reading the
  round's members before the sends, saving after, clock skew between instances). A row whose lease no
  longer covers a whole send when its turn comes is given back unsent, never sent late.
- A send that times out may still arrive: it is recorded as outcome *unknown* and follows its own retry
  policy (`service.after_unknown`: once, after 2 minutes, on the next channel if any), never the
  ordinary failure schedule.
- `stop()` stops claiming at once, gives back rows not yet sent, waits for the sends in flight (each
  bounded by the send timeout) and saves their outcomes.
- One member's unreadable channel or preferences fail that member's deliveries only, with the reason in
  NotificationFailed / NotificationDeadLettered (never the URL or the key).

Sends in flight (issue 12): real gateways answer in hundreds of milliseconds, so throughput is sends in
flight / answer time. Two bounds:
- `concurrency` (DELIVERY_CONCURRENCY): rows claimed and not yet done, in all. The running loop does not
  wait for a round to finish before claiming the next: whenever enough rows are done (an eighth of the
  concurrency, or all), it claims as many as are free and starts them — so one slow send does not hold
  back the rows behind it, and the sends in flight stay near the concurrency.
- `per_host` (DELIVERY_PER_HOST_CONCURRENCY): sends in flight to one gateway (`gateway_of(url)`: scheme,
  host and port, or the fixed API host of services such as Pushover), so one slow service cannot take
  every slot. A claimed row whose gateway is full is not kept waiting in memory (every claimed row still
  starts its send at once, which the lease relies on): it is given back, due again PARK_S later (so behind
  the rows already due, which are claimed next), and for PARK_S the loop claims that many rows fewer, so
  a gateway that stays full costs one claim of its rows per PARK_S, not one per finished send. The
  gateway key is kept in memory only and never logged (for some services the host part is a token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from attune_contracts import Publisher, catalog
from attune_contracts import content as words
from attune_contracts.links import LinkAction, LinkSigner
from attune_contracts.messages import (
    ChannelKind,
    MemberRole,
    NotificationDeadLettered,
    NotificationDropped,
    NotificationFailed,
    NotificationSent,
    ShortLinkIssued,
)
from attune_runtime import shortlinks

from .adapters.sql import Delivery, RoundContext, SqlStore
from .links import ActionLinks, LinkMaker, link_ttl
from .metrics import NotifierMetrics
from .ports import Clock, Sender, SendResult
from .service import (
    OCCURRENCE_PURPOSES,
    Action,
    ChannelRef,
    Purpose,
    Recipient,
    RetryPlan,
    after_broken,
    after_failure,
    after_unknown,
    decide,
    is_neutral,
    local_day_start,
    render,
    route,
)
from .write_behind import OutcomeWriter, Write

log = logging.getLogger("attune.notifier.delivery")

WAITING_ERRORS = {
    "unknown_member": "the member is not known to the notifier (no MemberUpserted yet, or erased)",
    "no_channel": "the member has no channel for this kind of message",
}

# Beyond the send timeout, what a claimed row's lease must also cover: reading the round's members before
# the sends, saving the outcome after, and clock skew between instances.
LEASE_MARGIN_S = 10.0
# The sender gives up at the send timeout itself; the loop cuts a send off this much later in case it does not.
CUTOFF_GRACE_S = 2.0
# What a send must have left of its lease when it starts, beyond its cut-off: saving its outcome.
SAVE_MARGIN_S = 3.0
# How long `stop` waits for the outcomes in memory to be saved, after the sends in flight are done.
STOP_FLUSH_S = 5.0
# A row whose gateway host already has its share of sends in flight is given back, due again after this.
PARK_S = 0.1


def host_of(url: str) -> str:
    """The gateway a channel URL sends to (scheme, host, port). In memory only: never log it."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme.lower()}://{parts.hostname or ''}:{parts.port or ''}"
    except ValueError:
        return url.partition("://")[0].lower()


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
        send_timeout_s: float = 15.0,
        lease: timedelta = timedelta(seconds=30),
        idle_poll_s: float = 1.0,
        rng: random.Random | None = None,
        writer: OutcomeWriter | None = None,
        per_host: int | None = None,
        gateway_of: Callable[[str], str] | None = None,
    ) -> None:
        if lease.total_seconds() < send_timeout_s + LEASE_MARGIN_S:
            raise ValueError(f"the delivery lease ({lease.total_seconds():.0f}s) must outlive a send in flight: "
                             f"at least the send timeout ({send_timeout_s:.0f}s) plus {LEASE_MARGIN_S:.0f}s")
        self.store, self.sender, self.publisher, self.metrics = store, sender, publisher, metrics
        self.clock, self.signer, self.public_url = clock, signer, public_url.rstrip("/")
        self.links = LinkMaker(signer, public_url) if signer is not None else None
        self.retry = retry or RetryPlan()
        self.batch, self.lease, self.idle_poll_s = batch, lease, idle_poll_s
        self.concurrency, self.send_timeout_s = concurrency, send_timeout_s
        self.rng = rng or random.Random()  # noqa: S311 - retry jitter, not a secret
        self.writer = writer or OutcomeWriter(store.save_many)
        self._sending = asyncio.Semaphore(concurrency)
        self.per_host = min(per_host or concurrency, concurrency)
        self.gateway_of = gateway_of or getattr(sender, "gateway", None) or host_of
        self._host_in_flight: Counter[str] = Counter()
        self._claimed = 0  # rows claimed by the running loop and not yet done
        self._counted: dict[UUID, set[UUID]] = {}  # member -> sends started here, outcome not yet saved
        self._freed = asyncio.Event()  # a row of the running loop is done
        self._parked: deque[tuple[float, int]] = deque()  # (monotonic time, rows) given back, gateway full
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Handle one round of deliveries due now; return how many were claimed.

        Returns once every outcome of the round is saved and published (so the next round, and a test,
        sees them)."""
        if self._stopping:
            return 0
        # No more rows than can be sent at once: each starts its send right away, so the lease only has
        # to outlive one send, not a queue of them.
        due = await self.store.claim_due(self.clock(), min(self.batch, self.concurrency), self.lease)
        if not due:
            return 0
        await self._round(due)
        return len(due)

    async def _round(self, due: list[Delivery], on_done: Callable[[], None] | None = None) -> None:
        now = self.clock()
        ctx = await self.store.load_batch({d.member_id for d in due}, now - timedelta(hours=27))
        # Sends today per member, counted here once and then kept up to date within the round.
        sent_today = {
            m: sum(t >= local_day_start(now, r.zone) for t in ctx.sent.get(m, [])) for m, r in ctx.members.items()
        }
        # Rounds overlap (claim as you go): another round's sends, still out or not yet saved, count too.
        for m in sent_today:
            sent_today[m] += len(self._counted.get(m, set()) - ctx.sent_ids)
        batch = _Batch(ctx, sent_today, on_done=on_done)
        try:
            await self._run_round(due, batch)
            if log.isEnabledFor(logging.INFO):  # one line a round; each outcome's own line is at DEBUG
                log.info("delivery round: %d rows: %s", len(due),
                         ", ".join(f"{n} {status}" for status, n in sorted(Counter(d.status for d in due).items())))
        finally:  # saved (or left to their lease): the store's count takes over
            for d in due:
                self._counted.get(d.member_id, set()).discard(d.notification_id)
                if not self._counted.get(d.member_id, True):
                    del self._counted[d.member_id]

    async def _run_round(self, due: list[Delivery], batch: _Batch) -> None:
        try:
            await asyncio.gather(*(self._guarded(d, batch) for d in due))
        finally:
            if batch.released:
                await self._release(batch.released)
            if batch.parked:
                await self._release(batch.parked, self.clock() + timedelta(seconds=PARK_S))
        await self.writer.flush()

    async def _release(self, rows: list[Delivery], not_before: datetime | None = None) -> None:
        try:
            await self.store.release(rows, not_before)
        except Exception as exc:  # noqa: BLE001 - they come back after their lease instead
            log.warning("could not give back %d unsent deliveries (%s); they are retried after their lease",
                        len(rows), type(exc).__name__)

    def _record(self, write: Write) -> None:
        self.writer.put(write)

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
        except Exception as exc:
            ids = {"notification_id": str(delivery.notification_id)}
            if delivery.notification_id in batch.sending:  # it may have gone out: leave it to its lease
                log.exception("delivery %s failed after its send; it is retried after its lease",
                              delivery.notification_id, extra=ids)
                return
            # Failed before anything was sent (a message that cannot be rendered, say): a waiting failure, so
            # it is retried on a schedule and given up in the end, not re-tried every lease for ever.
            log.exception("delivery %s could not be prepared", delivery.notification_id, extra=ids)
            self._record(self._wait_for_route(
                delivery, self.clock(), "internal_error",
                f"the notifier could not prepare this message ({type(exc).__name__})"))
        finally:
            if batch.on_done is not None:
                batch.on_done()

    async def _process(self, d: Delivery, batch: _Batch) -> None:
        now = self.clock()
        ctx = batch.ctx
        if d.member_id in ctx.broken_members:
            self._record(self._wait_for_route(d, now, "member_unreadable", ctx.broken_members[d.member_id]))
            return
        if d.params_error is not None:  # its text is undecryptable with the current keys: nothing is sent
            self._record(self._wait_for_route(d, now, "params_unreadable", d.params_error))
            return
        recipient = ctx.members.get(d.member_id)
        channels = ctx.channels.get(d.member_id, [])
        routes = route(recipient, channels, category=d.category, purpose=d.purpose) if recipient else []
        decision = decide(now=now, recipient=recipient, routes=routes, channel_index=d.channel_index,
                          expires_at=d.expires_at, sent_today=batch.sent_today.get(d.member_id, 0))
        if decision.action is Action.DROP:
            d.status, d.reason, d.next_attempt_at = "dropped", decision.reason, None

            role = recipient.role if recipient is not None and decision.reason == "no_channel" else None

            async def dropped(reason: str = decision.reason) -> None:
                self.metrics.dropped.labels(reason).inc()
                if role is not None:
                    self.metrics.no_channel.labels(role if role in ROLES else "other").inc()
                await self._publish(d, NotificationDropped(**self._outcome(d), reason=reason))
            self._record((d, dropped))
            return
        if decision.action is Action.DEFER:
            d.status, d.reason, d.next_attempt_at = "deferred", decision.reason, decision.at

            async def deferred(reason: str = decision.reason) -> None:
                self.metrics.deferred.labels(reason).inc()
            self._record((d, deferred))
            return
        if decision.action is Action.RETRY:
            self._record(self._wait_for_route(d, now, decision.reason))
            return
        assert decision.channel is not None  # noqa: S101 - narrows a type; a send decision names a channel
        channel = decision.channel
        await self._until_outcomes_can_be_saved(d)
        if self._stopping or not self._lease_covers_a_send(d):
            batch.released.append(d)  # not sent: back to the store for whoever runs next
            return
        broken = ctx.broken_channels.get(channel.channel_id)
        url = ctx.urls.get(channel.channel_id)
        host = self.gateway_of(url) if url is not None and broken is None else None
        if host is not None and self._host_in_flight[host] >= self.per_host:
            batch.parked.append(d)  # its gateway has its share in flight: back to the store for a moment
            self._parked.append((time.monotonic(), 1))  # counted now: its place is freed at once
            return
        # Counted before the first await, so later rows of this round for the same member (and host) see it,
        # and until its outcome is saved, so do overlapping rounds (`_round`).
        batch.sent_today[d.member_id] = batch.sent_today.get(d.member_id, 0) + 1
        self._counted.setdefault(d.member_id, set()).add(d.notification_id)
        if host is None:
            self._record(await self._attempt(d, recipient, channel, routes, url, broken, batch.sending))
            return
        self._host_in_flight[host] += 1
        try:
            self._record(await self._attempt(d, recipient, channel, routes, url, broken, batch.sending))
        finally:
            self._host_in_flight[host] -= 1
            if self._host_in_flight[host] <= 0:
                del self._host_in_flight[host]

    async def _until_outcomes_can_be_saved(self, d: Delivery) -> None:
        """While outcomes cannot be saved (the database is away), a send is held back: its outcome would wait
        in memory, and a kill then would send it again. It goes once saves work, if its lease still covers it."""
        while not self.writer.saving and not self._stopping and self._lease_covers_a_send(d):
            await self.writer.wait_saving(0.25)

    def _lease_covers_a_send(self, d: Delivery) -> bool:
        """A send may start only if the row stays ours until the send has surely ended and been saved."""
        if d.claimed_until is None:
            return True  # not claimed through the store (a caller handing rows in directly)
        needed = timedelta(seconds=self.send_timeout_s + CUTOFF_GRACE_S + SAVE_MARGIN_S)
        return self.clock() + needed <= d.claimed_until

    async def _send(self, url: str, message: Any, kind: ChannelKind) -> SendResult:
        """The sender, cut off shortly after the send timeout whatever it does: a stop and the lease rely on
        that bound. (The sender's own timeout covers the network part only, and says so first.)"""
        cutoff = self.send_timeout_s + CUTOFF_GRACE_S
        try:
            # asyncio.timeout, not wait_for: no second task around every send (Python 3.11's wait_for wraps the
            # coroutine in one), only a timer on this one.
            async with asyncio.timeout(cutoff):
                return await self.sender.send(url, message)
        except TimeoutError:
            return SendResult(False, f"{kind} delivery timed out after {cutoff:g}s; it may still arrive",
                              unknown=True)

    def _wait_for_route(self, d: Delivery, now: datetime, reason: str, error: str | None = None) -> Write:
        d.total_attempts += 1
        d.last_error = error or WAITING_ERRORS.get(reason, reason)
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
                       routes: list[ChannelRef], url: str | None, broken: str | None,
                       sending: set[UUID]) -> Write:
        kind = channel.kind
        if broken is not None:  # e.g. undecryptable with the current keys: nothing is sent
            result = SendResult(False, broken, broken=True)
        elif url is None:  # deleted between claim and send
            result = SendResult(False, f"{kind} channel was removed")
        else:
            locale = recipient.locale if recipient else None
            links = self._link(d, locale)
            if links is not None and kind is ChannelKind.SMS:
                links = await self._short_link(d, links)
            message = render(d.template, d.params, kind, neutral=is_neutral(recipient, d.sensitive), link=links,
                             locale=locale)
            sending.add(d.notification_id)
            async with self._sending:
                result = await self._send(url, message, kind)
            self.metrics.attempts.labels(kind.value).inc()
        now = self.clock()
        d.attempt += 1
        d.total_attempts += 1
        d.channel_kind = kind.value
        if result.ok:
            d.status, d.reason, d.sent_at, d.next_attempt_at, d.last_error = "sent", None, now, None, None

            async def sent() -> None:
                latency = max(0.0, (now - d.occurred_at).total_seconds())
                self.metrics.deliveries.labels(kind.value, "sent").inc()
                self.metrics.latency.labels(kind.value).observe(latency)
                self.metrics.delivered_by_template.labels(template_label(d)).inc()
                await self._publish(d, NotificationSent(**self._outcome(d), delivered_at=now,
                                                        latency_seconds=latency))
            return d, sent
        d.last_error = result.error[:500] or f"{kind} delivery failed"
        if result.unknown:
            return self._unknown(d, kind, now, routes)
        if result.gone:  # the destination no longer exists (web push 404/410): retire it, never retry it
            if await self.store.retire_channel(channel.channel_id, now):
                self.metrics.channels_retired.labels(kind.value).inc()
            return self._broken(d, kind, now, routes, retired=True)
        if result.broken:
            return self._broken(d, kind, now, routes)
        plan = after_failure(now=now, attempt=d.attempt, channel_index=d.channel_index, channels=len(routes),
                             policy=self.retry, rng=self.rng, transient=result.transient,
                             retry_after_s=result.retry_after_s)
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

    def _unknown(self, d: Delivery, kind: ChannelKind, now: datetime, routes: list[ChannelRef]) -> Write:
        d.unknown_sends += 1
        self.metrics.deliveries.labels(kind.value, "unknown").inc()
        plan = after_unknown(now=now, unknown_sends=d.unknown_sends, channel_index=d.channel_index,
                             attempt=d.attempt, channels=len(routes), policy=self.retry)
        if plan.dead:
            d.status, d.reason, d.next_attempt_at = "unknown", "outcome_unknown", None

            async def given_up() -> None:
                self.metrics.dead_lettered.labels("outcome_unknown").inc()
                await self._publish(d, NotificationDeadLettered(
                    **self._outcome(d),
                    reason=f"outcome unknown: {d.unknown_sends} send(s) timed out and may have arrived; not tried "
                           f"again. Last: {d.last_error}"[:500]))
            return d, given_up
        d.status, d.reason = "failed", "outcome_unknown"
        d.channel_index, d.attempt, d.next_attempt_at = plan.channel_index, plan.attempt, plan.next_attempt_at

        async def retry_later() -> None:
            await self._publish(d, NotificationFailed(**self._outcome(d), error=d.last_error,
                                                      next_attempt_at=d.next_attempt_at))
        return d, retry_later

    def _broken(self, d: Delivery, kind: ChannelKind, now: datetime, routes: list[ChannelRef],
                retired: bool = False) -> Write:
        self.metrics.deliveries.labels(kind.value, "broken").inc()
        plan = after_broken(now=now, channel_index=d.channel_index, attempt=d.attempt, channels=len(routes))
        if retired and not plan.dead:  # routes leave a retired channel out: the next one moves into its place
            plan = dataclasses.replace(plan, channel_index=d.channel_index)
        if plan.dead:
            d.status, d.reason, d.next_attempt_at = "dead", "channel_broken", None

            async def dead() -> None:
                self.metrics.dead_lettered.labels("channel_broken").inc()
                await self._publish(d, NotificationDeadLettered(
                    **self._outcome(d), reason=f"{d.last_error}; no other channel to try"[:500]))
            return d, dead
        d.status, d.reason = "failed", "channel_broken"
        d.channel_index, d.attempt, d.next_attempt_at = plan.channel_index, plan.attempt, plan.next_attempt_at

        async def next_channel() -> None:
            await self._publish(d, NotificationFailed(**self._outcome(d), error=d.last_error,
                                                      next_attempt_at=d.next_attempt_at))
        return d, next_channel

    def _link(self, d: Delivery, locale: str | None) -> ActionLinks | None:
        """Done, Skip and Snooze links for a message about an occurrence (fresh tokens for each send), whose
        pages speak the reader's `locale`."""
        if self.links is None or d.occurrence_id is None or d.purpose not in OCCURRENCE_PURPOSES:
            return None
        now = self.clock()
        ttl = link_ttl(d.purpose, d.expires_at, now)
        tokens = self.links.tokens(household_id=d.household_id, occurrence_id=d.occurrence_id,
                                   member_id=d.member_id, ttl=ttl, now=now, locale=words.known_locale(locale))
        return ActionLinks({action: self.links.url(token) for action, token in tokens.items()},
                           done_token=tokens[LinkAction.DONE], expires_at=now + ttl)

    async def _short_link(self, d: Delivery, links: ActionLinks) -> ActionLinks:
        """An SMS's short Done link: a fresh code whose ShortLinkIssued (the code's hash, the token sealed with
        the code) is published before the SMS goes, so the check-ins service can resolve it. If it cannot be
        published, the SMS goes without a link rather than with one that would not work."""
        if self.links is None or links.done_token is None or links.expires_at is None:
            return links
        code = shortlinks.new_code()
        issued = ShortLinkIssued(code_id=shortlinks.code_id(code), sealed_token=shortlinks.seal(links.done_token, code),
                                 expires_at=links.expires_at)
        try:
            await self.publisher.publish(issued, household_id=d.household_id, correlation_id=str(d.cause_event_id))
        except Exception as exc:  # noqa: BLE001 - the message still goes, without its link
            log.warning("could not issue a short link (%s); the SMS goes without one", type(exc).__name__,
                        extra={"notification_id": str(d.notification_id)})
            return links
        return replace(links, short=self.links.short_url(code))

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
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: %s via %s, attempt %d", type(payload).__name__, d.purpose, d.channel_kind or "-",
                          d.total_attempts, extra={"notification_id": str(d.notification_id),
                                                   "correlation_id": str(d.cause_event_id)})
        except Exception as exc:  # noqa: BLE001
            log.warning("could not publish %s for %s: %s", type(payload).__name__, d.notification_id,
                        type(exc).__name__, extra={"notification_id": str(d.notification_id)})

    # ---- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="notifier-delivery")

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming at once; rows claimed but not yet sent are given back; the sends in flight are
        waited for (each is cut off at the send timeout, so by default the wait is that plus a margin) and
        their outcomes saved. Only a round still running after `grace_s` is cancelled: its sends' rows
        then come back after their lease."""
        grace = self.send_timeout_s + CUTOFF_GRACE_S + SAVE_MARGIN_S if grace_s is None else grace_s
        self._stopping = True
        self._wake.set()
        try:
            if self._task is not None:
                try:
                    await asyncio.wait_for(self._task, grace)
                except TimeoutError:
                    log.warning("the delivery round did not finish within %.0fs; its unsaved rows are retried "
                                "after their lease", grace)
            lost = await self.writer.close(STOP_FLUSH_S)
            if lost:
                log.error("%d delivery outcomes could not be saved before stopping; those messages go out "
                          "again after their lease", lost)
        finally:
            self._task = None
            self._stopping = False

    async def _loop(self) -> None:
        """Claim as rows are done, without waiting for a round to end (see the module docstring)."""
        rounds: set[asyncio.Task[None]] = set()
        step = max(1, min(self.batch, self.concurrency) // 8)  # fewer claims, each of several rows
        try:
            while not self._stopping:
                self._wake.clear()
                self._freed.clear()
                now = time.monotonic()
                while self._parked and self._parked[0][0] <= now - PARK_S:
                    self._parked.popleft()
                parked = sum(n for _, n in self._parked)
                free = min(self.batch, self.concurrency - self._claimed - parked)
                if free < step and (free < 1 or rounds):
                    await self._wait(self._freed, PARK_S if parked else self.idle_poll_s)
                    continue
                try:
                    due = await self.store.claim_due(self.clock(), free, self.lease)
                except Exception:
                    log.exception("claiming due deliveries failed")
                    due = []
                if due:
                    self._claimed += len(due)
                    task = asyncio.create_task(self._loop_round(due), name="notifier-delivery-round")
                    rounds.add(task)
                    task.add_done_callback(rounds.discard)
                    await asyncio.sleep(0)  # let the round start its sends before the next claim
                    continue
                # Nothing due: rows finishing make nothing new due, but parked rows soon are.
                await self._wait(None, PARK_S if self._parked else self.idle_poll_s)
            if rounds:  # stopping: the rounds give back what they have not sent and finish their sends
                await asyncio.gather(*rounds, return_exceptions=True)
        finally:
            for task in rounds:
                task.cancel()

    async def _loop_round(self, due: list[Delivery]) -> None:
        left = len(due)

        def done() -> None:  # each row frees its place as soon as it is done, not when its round is
            nonlocal left
            left -= 1
            self._claimed -= 1
            self._freed.set()

        try:
            await self._round(due, done)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery round failed; its unsent rows are retried after their lease")
        finally:
            self._claimed -= left
            self._freed.set()

    async def _wait(self, freed: asyncio.Event | None, timeout: float) -> None:
        waits = [asyncio.ensure_future(self._wake.wait())]
        if freed is not None:
            waits.append(asyncio.ensure_future(freed.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


def template_label(d: Delivery) -> str:
    """A bounded label: catalog ritual keys, the notifier's own purposes, or "request"/"other"."""
    if d.purpose in OCCURRENCE_PURPOSES:
        return d.category if catalog.template(d.category) is not None else "other"
    if d.template == "request":
        return "request"
    return d.purpose if d.purpose in PURPOSES else "other"


PURPOSES = frozenset(p.value for p in Purpose)
ROLES = frozenset(r.value for r in MemberRole)


@dataclass
class _Batch:
    ctx: RoundContext
    sent_today: dict[UUID, int]
    released: list[Delivery] = field(default_factory=list)
    parked: list[Delivery] = field(default_factory=list)  # their gateway host was full: given back for PARK_S
    on_done: Callable[[], None] | None = None  # called as each row is done (the running loop's count)
    sending: set[UUID] = field(default_factory=set)  # sends started: their rows are never re-recorded
