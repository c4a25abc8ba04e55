"""Sends in flight as configured (issue 12), against the realistic gateway (`bench/gateway.py`).

The running delivery loop (what the service runs, not `drain`) with real Apprise and a real clock:
- a slow gateway sees as many requests at once as DELIVERY_CONCURRENCY says, and no more;
- one gateway answering in 3 s does not hold back the deliveries to another answering in 0.05 s:
  sends in flight per gateway host are bounded, and the loop claims as rows are done, not per round;
- a gateway answering 429 with Retry-After gets the message again when it said, not 20 s later.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from attune_contracts import make_envelope
from attune_contracts.messages import NotificationRequested
from attune_notifier.adapters.apprise_sender import AppriseSender
from attune_runtime.testing import eventually

from .conftest import ANA, BEN, HOUSEHOLD, WallClock
from .harness import make_harness

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gateway import Gateway  # bench/ is not a package: found through sys.path above

pytestmark = [pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
    return request.getfixturevalue("pg_url")


def requests(h: Any, member: Any, count: int, tag: str) -> list[Any]:
    return [make_envelope(NotificationRequested(member_id=member, purpose="test.burst", title="Burst",
                                                body=f"{tag}{n}"), household_id=HOUSEHOLD, producer="test",
                          occurred_at=h.clock.now()) for n in range(count)]


async def test_a_slow_gateway_sees_as_many_sends_at_once_as_the_concurrency_says(db_url: str) -> None:
    """200 due, concurrency 64, every answer 0.5 s: at some moment at least 90 % of 64 requests are open at
    the gateway (before Apprise's pool was sized: 6; before the loop claimed as rows were done, a round
    waited for its slowest send), never more than 64, and each message arrives once."""
    gw = await Gateway(delay_s=(0.5, 0.5), seed=1).start()
    sender = AppriseSender(timeout_s=10, max_in_flight=64)
    h = await make_harness(db_url, WallClock(), sender=sender, concurrency=64, batch=200)  # type: ignore[arg-type]
    try:
        await h.member(ANA, "Ana", daily_cap=1000)
        await h.channel(ANA, gw.url("m/ana"))
        await h.handler.handle_batch(requests(h, ANA, 200, "n"))
        h.worker.start()
        await eventually(lambda: len(gw.arrivals) >= 200, timeout=60)
        await eventually(lambda: len(h.publisher.events("notification_sent")) == 200, timeout=30)
        assert gw.max_in_flight >= 64 * 0.9, gw.max_in_flight
        assert gw.max_in_flight <= 64, gw.max_in_flight
        bodies = [a.body["message"] for a in gw.arrivals]
        assert sorted(bodies) == sorted(f"n{n}" for n in range(200))
    finally:
        await h.worker.stop()
        await gw.stop()
        await h.close()


async def test_a_slow_gateway_does_not_starve_a_fast_one(db_url: str) -> None:
    """Ana's gateway answers in 3 s, Ben's in 0.05 s; Ana's 40 are due first. Concurrency 16, at most 8 per
    gateway: all of Ben's 40 arrive while Ana's gateway has seen no more than two waves of 8 (before: every
    slot held by Ana's sends, Ben's waited ~9 s for three rounds of them)."""
    slow = await Gateway(delay_s=(3.0, 3.0), seed=1).start()
    fast = await Gateway(delay_s=(0.05, 0.05), seed=2).start()
    sender = AppriseSender(timeout_s=10, max_in_flight=16)
    h = await make_harness(db_url, WallClock(), sender=sender, concurrency=16, batch=200,  # type: ignore[arg-type]
                           per_host=8)
    try:
        await h.member(ANA, "Ana", daily_cap=1000)
        await h.member(BEN, "Ben", daily_cap=1000)
        await h.channel(ANA, slow.url("m/ana"))
        await h.channel(BEN, fast.url("m/ben"))
        await h.handler.handle_batch(requests(h, ANA, 40, "slow"))
        await h.handler.handle_batch(requests(h, BEN, 40, "fast"))
        h.worker.start()
        await eventually(lambda: len(fast.arrivals) >= 40, timeout=30)
        slow_seen = len(slow.arrivals)
        assert slow_seen <= 16, slow_seen
        assert slow.max_in_flight <= 8, slow.max_in_flight
        assert sorted(a.body["message"] for a in fast.arrivals) == sorted(f"fast{n}" for n in range(40))
    finally:
        await h.worker.stop()
        await slow.stop()
        await fast.stop()
        await h.close()


async def test_a_429_with_retry_after_is_sent_again_when_the_gateway_said(db_url: str) -> None:
    """The running loop on the wall clock: the gateway answers the first POST 429 with `Retry-After: 2`, then
    200. The message arrives again 2 s after the refusal (plus up to 0.5 s jitter, the loop's 0.2 s idle poll
    and Apprise), not 10-20 s later as before issue 12's retry policy, and once."""
    gw = await Gateway(delay_s=(0.05, 0.05), seed=1, script=[429], retry_after="2").start()
    sender = AppriseSender(timeout_s=10, max_in_flight=8)
    h = await make_harness(db_url, WallClock(), sender=sender, concurrency=8, idle_poll_s=0.2)  # type: ignore[arg-type]
    try:
        await h.member(ANA, "Ana", daily_cap=1000)
        await h.channel(ANA, gw.url("m/ana"))
        await h.handler.handle_batch(requests(h, ANA, 1, "n"))
        h.worker.start()
        await eventually(lambda: len(gw.delivered()) >= 1, timeout=30)
        refused, delivered = gw.arrivals
        assert refused.status == 429 and delivered.status == 200
        gap = delivered.at - refused.at
        assert 2.0 <= gap <= 4.5, gap
        await eventually(lambda: len(h.publisher.events("notification_sent")) == 1, timeout=10)
        assert len(gw.delivered()) == 1
    finally:
        await h.worker.stop()
        await gw.stop()
        await h.close()


async def test_overlapping_rounds_keep_the_daily_cap(db_url: str) -> None:
    """Claim-as-you-go: a round starts while another's sends are still out. Ana's cap is 2 a day and 5 are due;
    rounds of one row each, the gateway answering in 1 s: only 2 reach her phone, the rest wait for tomorrow."""
    gw = await Gateway(delay_s=(1.0, 1.0), seed=1).start()
    sender = AppriseSender(timeout_s=10, max_in_flight=8)
    h = await make_harness(db_url, WallClock(), sender=sender, concurrency=8, batch=1,  # type: ignore[arg-type]
                           idle_poll_s=0.1)
    try:
        await h.member(ANA, "Ana", daily_cap=2)
        await h.channel(ANA, gw.url("m/ana"))
        await h.handler.handle_batch(requests(h, ANA, 5, "n"))
        h.worker.start()
        await eventually(lambda: h.metric("attune_notifier_deferred_total", reason="daily_cap") >= 3, timeout=30)
        assert len(gw.arrivals) == 2, [a.body["message"] for a in gw.arrivals]
    finally:
        await h.worker.stop()
        await gw.stop()
        await h.close()
