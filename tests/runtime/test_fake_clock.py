"""The one test clock every service's tests share: it moves only when told, and what sleeps on it wakes then."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from attune_runtime.testing import FakeClock

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_time_stands_still_until_moved_and_is_kept_in_utc() -> None:
    clock = FakeClock(datetime(2026, 11, 26, 10, 0, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == START and clock.now().tzinfo is UTC
    assert clock() == clock.now()  # the notifier's port: the clock is called
    clock.advance(minutes=5)
    clock.advance(timedelta(seconds=30), seconds=30)
    assert clock.now() == START + timedelta(minutes=6)
    clock.set(START)
    assert clock.now() == START


async def test_sleep_advances_instead_of_waiting_and_records_each_wait() -> None:
    clock = FakeClock(START)
    await clock.sleep(1800)
    await clock.sleep(0.5)
    assert clock.slept == [1800, 0.5]
    assert clock.now() == START + timedelta(minutes=30, seconds=0.5)


async def test_a_waiter_wakes_when_the_clock_passes_its_deadline_not_before() -> None:
    clock, wake = FakeClock(START), asyncio.Event()
    waiter = asyncio.create_task(clock.wait_until(START + timedelta(minutes=10), wake))
    clock.advance(minutes=9)
    await asyncio.sleep(0.01)
    assert not waiter.done()
    clock.advance(minutes=1)
    await asyncio.wait_for(waiter, 1)


async def test_a_waiter_wakes_when_woken_though_the_clock_stands_still() -> None:
    clock, wake = FakeClock(START), asyncio.Event()
    waiter = asyncio.create_task(clock.wait_until(START + timedelta(days=1), wake))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    wake.set()
    await asyncio.wait_for(waiter, 1)
