"""Fakes and builders shared by the scheduler tests."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from attune_contracts import Envelope, make_envelope, parse
from attune_contracts.messages import (
    MemberRole,
    RegisterHousehold,
    ScheduleRitual,
    UpsertMember,
)
from attune_contracts.trust import sender_of
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.metrics import SchedulerMetrics
from attune_scheduler.model import OutboxRow
from attune_scheduler.scheduler import Scheduler
from prometheus_client import CollectorRegistry


class RecordingSink:
    """Records every row it is asked to publish, in order; can be told to fail."""

    def __init__(self) -> None:
        self.rows: list[OutboxRow] = []
        self.fail_next = 0
        self.sent = asyncio.Event()

    async def __call__(self, rows: Sequence[OutboxRow]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unavailable (test)")
        self.rows.extend(rows)
        self.sent.set()

    def envelopes(self, type_: str | None = None) -> list[Envelope[Any]]:
        found = [parse(r.value) for r in self.rows]
        return [e for e in found if type_ is None or e.type == type_]

    def payloads(self, type_: str) -> list[Any]:
        return [e.payload for e in self.envelopes(type_)]

    def duplicates(self) -> dict[uuid.UUID, int]:
        counts = Counter(r.event_id for r in self.rows)
        return {k: n for k, n in counts.items() if n > 1}


def command(payload: Any, household: uuid.UUID, event_id: uuid.UUID | None = None) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=sender_of(payload), event_id=event_id)


def make_scheduler(store: SqlStore, clock: Any, sink: Any, **kw: Any) -> Scheduler:
    kw.setdefault("relay_poll_s", 0.05)
    return Scheduler(store.unit_of_work, store, store.relay, clock, sink, SchedulerMetrics(CollectorRegistry()), **kw)


async def household_with_partners(
    scheduler: Scheduler, zone: str = "America/New_York", household: uuid.UUID | None = None
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    household = household or uuid.uuid4()
    await scheduler.handle(command(RegisterHousehold(name="Ana & Ben", time_zone=zone), household))
    people = [uuid.uuid4(), uuid.uuid4()]
    for person, name in zip(people, ["Ana", "Ben"], strict=True):
        await scheduler.handle(command(UpsertMember(member_id=person, display_name=name, role=MemberRole.PARTNER),
                                       household))
    return household, people


def schedule(ritual: uuid.UUID, people: list[uuid.UUID], *, template: str = "evening_attunement",
             rrule: str = "FREQ=DAILY", at: str = "20:30", start: date = date(2027, 1, 1), **kw: Any) -> ScheduleRitual:
    return ScheduleRitual(ritual_id=ritual, template=template, participants=people, rrule=rrule, local_time=at,
                          start_date=start, **kw)
