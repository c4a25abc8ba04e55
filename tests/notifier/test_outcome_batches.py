"""Delivery outcome events leave many to a produce call (adapters/outcomes.py), in order, each caller told
of its own record's fate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from uuid import uuid4

import pytest
from attune_contracts import Publisher
from attune_contracts.messages import NotificationDropped
from attune_notifier.adapters.outcomes import CoalescingSend
from attune_runtime.producer import BatchProducer, Record

from .conftest import ANA, HOUSEHOLD

pytestmark = [pytest.mark.unit]


class RecordingProducer(BatchProducer):
    def __init__(self, fail: bool = False) -> None:
        super().__init__({}, client_id="test")
        self.calls: list[list[Record]] = []
        self.fail, self.starts = fail, 0

    async def start(self) -> None:
        self.starts += 1
        self.client = object()

    async def send_all(self, records: Iterable[Record]) -> None:
        self.calls.append(list(records))
        await asyncio.sleep(0.01)  # the broker's acknowledgement
        if self.fail:
            raise ConnectionError("broker away")

    async def stop(self) -> None:
        self.client = None


def dropped(n: int) -> NotificationDropped:
    return NotificationDropped(notification_id=uuid4(), cause_event_id=uuid4(), cause_type="test", member_id=ANA,
                               purpose="test", channel_kind=None, attempts=n, reason="quiet_hours")


async def test_one_saved_batchs_outcomes_leave_in_one_produce_call_in_order() -> None:
    producer = RecordingProducer()
    send = CoalescingSend(producer)
    publisher = Publisher(send, producer="notifier")
    first = [publisher.publish(dropped(n), household_id=HOUSEHOLD) for n in range(50)]
    envelopes = await asyncio.gather(*first)
    assert producer.starts == 1 and len(producer.calls) == 1
    assert [value for _, _, value, _ in producer.calls[0]] == [e.to_bytes() for e in envelopes]
    assert [headers["event_id"] for _, _, _, headers in producer.calls[0]] == [str(e.event_id) for e in envelopes]
    assert {e.producer for e in envelopes} == {"notifier"}

    # Published while a produce call waits for its acknowledgement: the next call takes them all.
    ongoing = asyncio.ensure_future(asyncio.gather(*(publisher.publish(dropped(n), household_id=HOUSEHOLD)
                                                     for n in range(3))))
    await asyncio.sleep(0.001)
    later = await asyncio.gather(*(publisher.publish(dropped(n), household_id=HOUSEHOLD) for n in range(7)))
    await ongoing
    assert [len(c) for c in producer.calls] == [50, 3, 7]
    assert [value for _, _, value, _ in producer.calls[2]] == [e.to_bytes() for e in later]
    await send.stop()


async def test_a_failed_produce_call_fails_each_of_its_publishes() -> None:
    producer = RecordingProducer(fail=True)
    publisher = Publisher(CoalescingSend(producer), producer="notifier")
    results = await asyncio.gather(*(publisher.publish(dropped(n), household_id=HOUSEHOLD) for n in range(4)),
                                   return_exceptions=True)
    assert len(producer.calls) == 1
    assert all(isinstance(r, ConnectionError) for r in results), results
    producer.fail = False
    await publisher.publish(dropped(9), household_id=HOUSEHOLD)  # the next call goes through
    assert [len(c) for c in producer.calls] == [4, 1]


async def test_no_produce_call_carries_more_than_its_limit() -> None:
    producer = RecordingProducer()
    publisher = Publisher(CoalescingSend(producer, max_records=4), producer="notifier")
    await asyncio.gather(*(publisher.publish(dropped(n), household_id=HOUSEHOLD) for n in range(10)))
    assert [len(c) for c in producer.calls] == [4, 4, 2]
