"""Events handled in batches (the batch subscriber's path): same outcome as one by one, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from attune_contracts import Envelope, make_envelope
from attune_contracts.messages import (
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    DeadLetter,
    HouseholdErased,
    MemberRole,
    MemberUpserted,
    NotificationRequested,
    RitualDue,
)
from attune_contracts.trust import sender_of
from attune_runtime.batch import BatchConsumer
from attune_runtime.consumer import ConsumerMetrics, ReliableConsumer, RetryPolicy
from attune_runtime.retry import Backoff
from attune_runtime.testing import FakeClock, KafkaRecord, eventually
from prometheus_client import CollectorRegistry

from .conftest import ANA, BEN, HOUSEHOLD, HttpSink, utc
from .harness import Harness, make_harness

pytestmark = [pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
async def h(db_url: str) -> Any:
    harness = await make_harness(db_url, FakeClock(utc(2026, 11, 26, 9, 0)))
    yield harness
    await harness.close()


def envelope(h: Harness, payload: Any, household: UUID = HOUSEHOLD) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=sender_of(payload), occurred_at=h.clock.now())


def request(member: UUID = ANA, body: str = "hello", purpose: str = "test.batch") -> NotificationRequested:
    return NotificationRequested(member_id=member, purpose=purpose, title="Batch", body=body)


async def test_a_redelivered_batch_sends_each_notification_once(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana", daily_cap=100)
    await h.channel(ANA, http_sink.url("json", "hook"))
    batch = [envelope(h, request(body=f"message {n}")) for n in range(20)]
    await h.handler.handle_batch(batch + batch[:3])  # the same event twice inside one batch, too
    await h.worker.drain()
    await h.handler.handle_batch(batch)  # Kafka delivers the whole batch again (no commit before a crash)
    await h.worker.drain()
    assert sorted(r.json["message"] for r in http_sink.received) == sorted(f"message {n}" for n in range(20))
    assert h.metric("attune_notifier_planned_total", purpose="request") == 20
    assert h.metric("attune_notifier_duplicates_total", purpose="request") == 23
    assert len(h.publisher.events("notification_sent")) == 20


async def test_in_a_batch_a_checkin_still_suppresses_the_due_message_before_it(h: Harness, http_sink: HttpSink) -> None:
    await h.handler.handle_batch([
        envelope(h, MemberUpserted(member_id=ANA, display_name="Ana", role=MemberRole.PARTNER, time_zone="UTC")),
        envelope(h, MemberUpserted(member_id=BEN, display_name="Ben", role=MemberRole.PARTNER, time_zone="UTC")),
    ])
    for member in (ANA, BEN):
        await h.channel(member, http_sink.url("json", f"to-{member}"))
    at = h.clock.now()
    due = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement", title="Evening",
                    participants=[ANA, BEN], scheduled_for=at, local_time=at.isoformat(), time_zone="UTC",
                    sensitive=False, deadline=at + timedelta(hours=12))
    done = CheckInRecorded(checkin_id=uuid4(), occurrence_id=due.occurrence_id, ritual_id=due.ritual_id,
                           template=due.template, member_id=ANA, status=CheckInStatus.DONE,
                           scheduled_for=at, recorded_at=at, source=CheckInSource.LINK)
    await h.handler.handle_batch([envelope(h, due), envelope(h, done)])
    await h.worker.drain()
    # Ana's check-in came after the due message in the same batch: both due messages were dropped,
    # and only Ben hears that Ana kept the ritual.
    dropped = h.publisher.events("notification_dropped")
    assert sorted(e["payload"]["member_id"] for e in dropped) == sorted([str(ANA), str(BEN)])
    assert {e["payload"]["reason"] for e in dropped} == {"already_done"}
    assert [r.path for r in http_sink.received] == [f"/to-{BEN}"]
    assert "Ana" in http_sink.received[0].json["message"] or "Ana" in http_sink.received[0].json["title"]


async def test_in_a_batch_nothing_is_kept_for_a_household_erased_between_its_events(h: Harness) -> None:
    await h.member(ANA, "Ana")
    other = uuid4()
    await h.member(BEN, "Ben", household=other)
    await h.handler.handle_batch([
        envelope(h, request(body="before")),
        envelope(h, request(member=BEN, body="other household"), household=other),
        envelope(h, HouseholdErased(erased_at=h.clock.now())),
        envelope(h, request(body="after")),
    ])
    assert await h.store.deliveries_for(ANA) == []
    assert [d.params["body"] for d in await h.store.deliveries_for(BEN)] == ["other household"]
    assert h.metric("attune_notifier_ignored_events_total", reason="household_erased") == 1


# ---- the batch subscriber's fallback, with the notifier's real handler ------------------------------


def Record(value: bytes, offset: int) -> KafkaRecord:
    return KafkaRecord(value, offset, key=str(HOUSEHOLD).encode())


@dataclass
class RecordingBroker:
    """Stands in for the Kafka broker the reliable consumer dead-letters through."""

    published: list[tuple[str, bytes]] = field(default_factory=list)

    async def publish(self, value: bytes, *, topic: str, **_: Any) -> None:
        self.published.append((topic, value))


class RefusingStore:
    """The real store, except that the database refuses any insert holding a 'poison' notification."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def insert_intents(self, intents: Any, now: Any) -> set[UUID]:
        if any(i.purpose == "test.poison" for i in intents):
            raise RuntimeError("value refused by the database")
        return await self._store.insert_intents(intents, now)


async def test_a_poison_event_in_a_batch_is_dead_lettered_and_the_rest_delivered_once(
    h: Harness, http_sink: HttpSink
) -> None:
    await h.member(ANA, "Ana", daily_cap=100)
    await h.channel(ANA, http_sink.url("json", "hook"))
    h.handler.store = RefusingStore(h.store)  # type: ignore[assignment]
    broker = RecordingBroker()
    sleeps: list[float] = []

    async def no_sleep(delay: float) -> None:
        sleeps.append(delay)

    reliable = ReliableConsumer(broker, service="notifier", group_id="g",  # type: ignore[arg-type]
                                handler=h.handler, metrics=ConsumerMetrics(CollectorRegistry()),
                                retry=RetryPolicy(max_attempts=3, backoff=Backoff(0.01, 0.02)), sleep=no_sleep)
    consumer = BatchConsumer(reliable, h.handler.handle_batch)
    bodies = [f"message {n}" for n in range(6)]
    envs = [envelope(h, request(body=b)) for b in bodies]
    envs.insert(3, envelope(h, request(body="poison", purpose="test.poison")))
    records = [Record(e.to_bytes(), offset) for offset, e in enumerate(envs)]
    records.insert(5, Record(b"{not json", 99))

    await consumer(records)
    await h.worker.drain()

    letters = [DeadLetter.model_validate_json(v) for _, v in broker.published]
    assert sorted((letter.offset, letter.error_kind) for letter in letters) == [(3, "handler_failed"), (99, "invalid")]
    assert "value refused by the database" in next(x.reason for x in letters if x.offset == 3)
    assert len(sleeps) == 2  # the poison event was retried with backoff before it was dead-lettered
    assert sorted(r.json["message"] for r in http_sink.received) == sorted(bodies)
    assert len(h.publisher.events("notification_sent")) == len(bodies)


# ---- a delivery round's rows saved together ------------------------------------------------------


@pytest.mark.parametrize("answer", ["sent", "refused"])
async def test_a_round_saves_every_row_once_and_a_check_in_meanwhile_lets_the_send_decide(db_url: str,
                                                                                          answer: str) -> None:
    from attune_notifier.ports import SendResult

    clock = FakeClock(utc(2026, 11, 26, 9, 0))
    at = clock.now()
    due = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement", title="Evening",
                    participants=[ANA], scheduled_for=at, local_time=at.isoformat(), time_zone="UTC",
                    sensitive=False, deadline=at + timedelta(hours=12))

    class CheckInWhileSending:
        """Ana checks in while her due message is in flight: the send decides. Sent stays sent (she got it;
        recording it dropped undercounted deliveries), a refusal is dropped instead of retried."""

        def __init__(self) -> None:
            self.sent: list[str] = []
            self.harness: Harness | None = None

        async def send(self, url: str, message: Any) -> SendResult:
            self.sent.append(message.body)
            if message.body not in {f"m{n}" for n in range(5)}:  # the due message
                assert self.harness is not None
                assert await self.harness.store.suppress_occurrence(due.occurrence_id, ["ritual_due"], clock.now()) == []
                if answer == "refused":
                    return SendResult(False, "gateway answered 503")
            return SendResult(True)

    sender = CheckInWhileSending()
    h = await make_harness(db_url, clock, sender=sender)
    sender.harness = h
    try:
        await h.member(ANA, "Ana", daily_cap=100)
        await h.channel(ANA, "json://127.0.0.1:9/unused")
        await h.handler.handle_batch([envelope(h, due)] + [envelope(h, request(body=f"m{n}")) for n in range(5)])
        assert await h.worker.run_once() == 6
        rows = {d.params.get("body", "due"): d for d in await h.store.deliveries_for(ANA)}
        if answer == "sent":
            assert rows["due"].status == "sent" and rows["due"].claimed_until is None
        else:
            assert rows["due"].status == "dropped" and rows["due"].reason == "already_done"
            assert rows["due"].next_attempt_at is None
        assert all(rows[f"m{n}"].status == "sent" and rows[f"m{n}"].claimed_until is None for n in range(5))
        sent = h.publisher.events("notification_sent")
        expected = [str(rows[f"m{n}"].notification_id) for n in range(5)]
        expected += [str(rows["due"].notification_id)] if answer == "sent" else []
        assert sorted(e["payload"]["notification_id"] for e in sent) == sorted(expected)
        clock.advance(hours=1)  # long past any retry: the refused one is not sent again
        assert await h.worker.run_once() == 0 and len(sender.sent) == 6
    finally:
        await h.close()


async def test_stopping_the_loop_lets_its_round_finish_so_no_message_goes_out_twice(
    db_url: str, http_sink: HttpSink
) -> None:
    from attune_notifier.adapters.apprise_sender import AppriseSender

    clock = FakeClock(utc(2026, 11, 26, 9, 0))
    stopping: list[asyncio.Task[None]] = []

    class StopMidRound(AppriseSender):
        """The service is told to stop while the fifth message is being sent (the middle of round two)."""

        calls = 0

        async def send(self, url: str, message: Any) -> Any:
            self.calls += 1
            if self.calls == 5:
                stopping.append(asyncio.create_task(h.worker.stop()))
            return await super().send(url, message)

    h = await make_harness(db_url, clock, sender=StopMidRound(timeout_s=10))
    try:
        await h.member(ANA, "Ana", daily_cap=100)
        await h.channel(ANA, http_sink.url("json", "hook"))
        h.worker.batch = 3
        h.worker.idle_poll_s = 0.05
        await h.handler.handle_batch([envelope(h, request(body=f"m{n}")) for n in range(10)])
        h.worker.start()
        await eventually(lambda: stopping and stopping[0].done())
        assert len(http_sink.received) == 6  # round two finished, and no round started after the stop
        sent_before_restart = len(h.publisher.events("notification_sent"))
        assert sent_before_restart == 6
        clock.advance(minutes=6)  # past the lease: a row sent but left unsaved would be claimed and sent again
        await h.worker.drain()
        assert sorted(r.json["message"] for r in http_sink.received) == sorted(f"m{n}" for n in range(10))
        assert len(h.publisher.events("notification_sent")) == 10
    finally:
        await h.close()


async def test_a_delivery_round_writes_one_log_line_not_one_per_message(
    h: Harness, http_sink: HttpSink, caplog: pytest.LogCaptureFixture
) -> None:
    await h.member(ANA, "Ana", daily_cap=100)
    await h.channel(ANA, http_sink.url("json", "hook"))
    await h.handler.handle_batch([envelope(h, request(body=f"m{n}")) for n in range(6)])
    with caplog.at_level(logging.INFO, logger="attune.notifier.delivery"):
        assert await h.worker.run_once() == 6
    lines = [r.getMessage() for r in caplog.records if r.name == "attune.notifier.delivery"]
    assert lines == ["delivery round: 6 rows: 6 sent"]
    assert len(http_sink.received) == 6
