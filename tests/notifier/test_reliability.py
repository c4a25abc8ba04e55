"""Issue 11: a duplicate window of one send, not one round; a short lease; stop; unknown outcomes; broken channels.

The store is PostgreSQL where several instances or leases matter, SQLite elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from attune_contracts import Envelope, make_envelope
from attune_contracts.messages import ChannelKind, NotificationRequested, RitualDue
from attune_contracts.trust import sender_of
from attune_notifier.adapters.apprise_sender import AppriseSender
from attune_notifier.adapters.sql import ChannelCipher, SqlStore
from attune_notifier.adapters.tables import members
from attune_notifier.ports import SendResult
from attune_notifier.service import Rendered
from attune_runtime.testing import FakeClock, eventually
from cryptography.fernet import Fernet
from sqlalchemy import update

from .conftest import ANA, BEN, HOUSEHOLD, HttpSink, SlowSink, utc
from .harness import Harness, make_harness

pytestmark = [pytest.mark.integration]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 11, 26, 9, 0))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
    return request.getfixturevalue("pg_url")


class ScriptedSender:
    """Records every send; a send whose URL contains one of `hang` never returns; the others take `delay_s`."""

    def __init__(self, *, delay_s: float = 0.0, hang: tuple[str, ...] = ()) -> None:
        self.delay_s, self.hang = delay_s, hang
        self.started: list[str] = []
        self.sent: list[str] = []

    async def send(self, url: str, message: Rendered) -> SendResult:
        self.started.append(message.body)
        if any(h in url for h in self.hang):
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay_s)
        self.sent.append(message.body)
        return SendResult(True)


def envelope(h: Harness, payload: Any, household: UUID = HOUSEHOLD) -> Envelope[Any]:
    return make_envelope(payload, household_id=household, producer=sender_of(payload), occurred_at=h.clock.now())


def request(body: str, member: UUID = ANA) -> NotificationRequested:
    return NotificationRequested(member_id=member, purpose="test.reliability", title="Hello", body=body)


async def rows_by_body(h: Harness, member: UUID = ANA) -> dict[str, Any]:
    return {d.params["body"]: d for d in await h.store.deliveries_for(member)}


# ---- 1. the outcome of each send is saved as it returns -----------------------------------------


async def test_sends_that_returned_are_saved_even_when_their_round_is_cut_short(
    pg_url: str, clock: FakeClock
) -> None:
    """The round is cancelled (a crash of the loop, a stop's grace running out) while one send hangs:
    the five sends that had returned are saved and announced, and only the hanging one goes out again."""
    sender = ScriptedSender(hang=("hangs",))
    h = await make_harness(pg_url, clock, sender=sender)
    try:
        await h.member(ANA, "Ana", daily_cap=100)
        await h.member(BEN, "Ben", daily_cap=100)
        await h.channel(ANA, "json://127.0.0.1:9/fine")
        await h.channel(BEN, "json://127.0.0.1:9/hangs")
        await h.handler.handle_batch([envelope(h, request(f"fast {n}")) for n in range(5)]
                                     + [envelope(h, request("slow", member=BEN))])
        round_ = asyncio.create_task(h.worker.run_once())
        await eventually(lambda: len(sender.sent) == 5 and "slow" in sender.started, timeout=5)
        round_.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await round_

        async def five_saved() -> bool:
            rows = await rows_by_body(h)
            return len(rows) == 5 and all(r.status == "sent" and r.claimed_until is None for r in rows.values())

        await eventually(five_saved, timeout=3)
        await eventually(lambda: len(h.publisher.events("notification_sent")) == 5, timeout=3)

        again = ScriptedSender()
        h.worker.sender = again
        clock.advance(minutes=6)  # past any lease: a sent row left unsaved would go out again now
        await h.worker.drain()
        assert again.sent == ["slow"]  # only the send that never returned is tried again
        assert sorted(sender.sent) == sorted(f"fast {n}" for n in range(5))
    finally:
        await h.close()


async def test_a_failed_save_is_retried_until_it_lands_and_nothing_goes_out_twice(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SqlStore.save_many
    failures = {"left": 2}

    async def flaky(self: SqlStore, batch: Any) -> set[UUID]:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionResetError("the database went away")
        return await real(self, batch)

    monkeypatch.setattr(SqlStore, "save_many", flaky)
    sender = ScriptedSender()
    h = await make_harness(db_url, clock, sender=sender)
    try:
        await h.member(ANA, "Ana", daily_cap=100)
        await h.channel(ANA, "json://127.0.0.1:9/fine")
        await h.handler.handle_batch([envelope(h, request(f"m{n}")) for n in range(3)])
        assert await asyncio.wait_for(h.worker.run_once(), 10) == 3
        assert failures["left"] == 0
        assert {r.status for r in (await rows_by_body(h)).values()} == {"sent"}
        assert len(h.publisher.events("notification_sent")) == 3
        clock.advance(minutes=6)
        await h.worker.drain()
        assert sorted(sender.sent) == ["m0", "m1", "m2"]
    finally:
        await h.close()


# ---- 2. the lease ------------------------------------------------------------------------------


async def test_after_a_crash_a_claimed_reminder_is_late_by_at_most_the_lease(pg_url: str, clock: FakeClock) -> None:
    key = Fernet.generate_key().decode()
    crashed = await make_harness(pg_url, clock, key=key, sender=ScriptedSender(hang=("127.0.0.1",)))
    survivor_sender = ScriptedSender()
    survivor = await make_harness(pg_url, clock, key=key, sender=survivor_sender, lease=timedelta(seconds=30))
    try:
        await crashed.member(ANA, "Ana")
        await crashed.channel(ANA, "json://127.0.0.1:9/ana")
        await crashed.event(request("due now"))
        round_ = asyncio.create_task(crashed.worker.run_once())
        await eventually(lambda: crashed.worker.sender.started, timeout=5)
        round_.cancel()  # kill -9 while the send is in flight
        with contextlib.suppress(asyncio.CancelledError):
            await round_
        [row] = await crashed.store.deliveries_for(ANA)
        assert row.claimed_until == clock.now() + timedelta(seconds=30)  # the default lease, not five minutes

        clock.advance(seconds=29)
        assert await survivor.worker.drain() == 0  # still leased to the instance that died
        clock.advance(seconds=1)
        assert await survivor.worker.drain() == 1
        assert survivor_sender.sent == ["due now"]
    finally:
        await crashed.close()
        await survivor.close()


def test_the_lease_is_a_setting_that_must_outlive_a_send() -> None:
    from attune_notifier.config import NotifierSettings
    from pydantic import ValidationError

    settings = NotifierSettings(environment="development")
    assert settings.delivery_lease_s == 30 and settings.send_timeout_s == 15
    assert NotifierSettings(environment="development", delivery_lease_s=90, send_timeout_s=60).delivery_lease_s == 90
    with pytest.raises(ValidationError, match=r"DELIVERY_LEASE_S .* must be at least"):
        NotifierSettings(environment="development", delivery_lease_s=20, send_timeout_s=15)


async def test_a_row_whose_lease_no_longer_covers_a_send_is_given_back_unsent(
    db_url: str, clock: FakeClock
) -> None:
    sender = ScriptedSender()
    h = await make_harness(db_url, clock, sender=sender)
    try:
        await h.member(ANA, "Ana")
        await h.channel(ANA, "json://127.0.0.1:9/ana")
        await h.event(request("late"))
        load = h.store.load_batch

        async def slow_load(*args: Any) -> Any:
            clock.advance(seconds=20)  # the database took 20 s to answer: 10 s of a 30 s lease are left
            return await load(*args)

        h.store.load_batch = slow_load  # type: ignore[method-assign]
        await h.worker.run_once()
        assert sender.started == []
        [row] = await h.store.deliveries_for(ANA)
        assert row.status == "pending" and row.claimed_until is None  # free for any instance at once
        h.store.load_batch = load  # type: ignore[method-assign]
        await h.worker.drain()
        assert sender.sent == ["late"]
    finally:
        await h.close()


# ---- 3. stop -----------------------------------------------------------------------------------


async def test_a_stop_mid_round_waits_for_the_sends_in_flight_and_claims_nothing_more(
    db_url: str, clock: FakeClock
) -> None:
    sender = ScriptedSender(delay_s=0.3)
    h = await make_harness(db_url, clock, sender=sender, concurrency=4)
    try:
        await h.member(ANA, "Ana", daily_cap=100)
        await h.channel(ANA, "json://127.0.0.1:9/ana")
        await h.handler.handle_batch([envelope(h, request(f"m{n}")) for n in range(10)])
        h.worker.start()
        await eventually(lambda: len(sender.started) == 4, timeout=5)
        await asyncio.wait_for(h.worker.stop(), 5)
        assert len(sender.sent) == 4 and len(sender.started) == 4  # in flight finished; nothing new began
        rows = await rows_by_body(h)
        assert sorted(b for b, r in rows.items() if r.status == "sent") == sorted(sender.sent)
        assert all(r.claimed_until is None for r in rows.values())  # the rest wait, unclaimed, for anyone
        assert len(h.publisher.events("notification_sent")) == 4
        clock.advance(minutes=6)
        await h.worker.drain()
        assert sorted(sender.sent) == sorted(f"m{n}" for n in range(10))  # each once
    finally:
        await h.close()


async def test_a_stop_waits_no_longer_than_the_send_timeout_and_saves_the_hung_sends_as_unknown(
    db_url: str, clock: FakeClock
) -> None:
    sender = ScriptedSender(hang=("127.0.0.1",))
    h = await make_harness(db_url, clock, sender=sender, send_timeout_s=0.5, lease=timedelta(seconds=11))
    try:
        await h.member(ANA, "Ana", daily_cap=100)
        await h.channel(ANA, "json://127.0.0.1:9/ana")
        await h.handler.handle_batch([envelope(h, request(f"m{n}")) for n in range(2)])
        h.worker.start()
        await eventually(lambda: len(sender.started) == 2, timeout=5)
        await asyncio.wait_for(h.worker.stop(), 6)
        rows = await rows_by_body(h)
        assert {(r.status, r.reason, r.unknown_sends) for r in rows.values()} == {("failed", "outcome_unknown", 1)}
        assert all(r.next_attempt_at == clock.now() + timedelta(minutes=2) for r in rows.values())
    finally:
        await h.close()


# ---- 4. unknown outcomes -----------------------------------------------------------------------


async def test_a_timed_out_push_is_retried_once_after_a_delay_on_the_next_channel(
    db_url: str, clock: FakeClock
) -> None:
    sender = ScriptedSender(hang=("/slow-push",))
    h = await make_harness(db_url, clock, sender=sender, send_timeout_s=0.2, lease=timedelta(seconds=11))
    try:
        await h.member(ANA, "Ana")
        await h.channel(ANA, "json://127.0.0.1:9/slow-push")
        await h.channel(ANA, "mailto://127.0.0.1:9?from=a@example.org&to=ana@example.org&mode=insecure")
        await h.event(request("are you there"))
        await h.worker.drain()
        [failed] = h.publisher.events("notification_failed")
        assert "timed out" in failed["payload"]["error"] and "may still arrive" in failed["payload"]["error"]
        assert datetime.fromisoformat(failed["payload"]["next_attempt_at"]) == clock.now() + timedelta(minutes=2)
        assert await h.worker.drain() == 0  # not retried on the ordinary schedule
        clock.advance(seconds=119)
        assert await h.worker.drain() == 0
        clock.advance(seconds=1)
        await h.worker.drain()
        [sent] = h.publisher.events("notification_sent")
        assert sent["payload"]["channel_kind"] == "email" and sent["payload"]["attempts"] == 2
        assert sender.started == ["are you there"] * 2
        assert h.metric("attune_notifier_deliveries_total", channel_kind="push", outcome="unknown") == 1
    finally:
        await h.close()


async def test_a_second_unknown_outcome_ends_the_delivery_as_unknown(db_url: str, clock: FakeClock) -> None:
    sender = ScriptedSender(hang=("127.0.0.1",))
    h = await make_harness(db_url, clock, sender=sender, send_timeout_s=0.2, lease=timedelta(seconds=11))
    try:
        await h.member(ANA, "Ana")
        await h.channel(ANA, "json://127.0.0.1:9/only")
        await h.event(request("hello"))
        for _ in range(5):
            await h.worker.drain()
            clock.advance(minutes=30)
        assert len(sender.started) == 2  # the first send and its one retry, never more
        [row] = await h.store.deliveries_for(ANA)
        assert (row.status, row.reason, row.unknown_sends) == ("unknown", "outcome_unknown", 2)
        [dead] = h.publisher.events("notification_dead_lettered")
        assert dead["payload"]["reason"].startswith("outcome unknown: 2 send(s) timed out and may have arrived")
        assert "127.0.0.1" not in dead["payload"]["reason"]
    finally:
        await h.close()


async def test_apprise_reports_a_slow_gateway_as_unknown_not_as_a_failure(slow_sink: SlowSink) -> None:
    """Apprise's plugins give up reading after 4 s and call it a plain failure (retried at once); the sender
    raises that above its own timeout, so a gateway slower than the timeout is an unknown outcome."""
    slow_sink.delay_s = 6.0
    sender = AppriseSender(timeout_s=4.5)
    result = await sender.send(slow_sink.url("json", "slow"), Rendered(ChannelKind.PUSH, "T", "body"))
    assert not result.ok and result.unknown, result
    assert "may still arrive" in result.error and "127.0.0.1" not in result.error


# ---- 5. one member's broken channel fails that member only ---------------------------------------


async def test_a_channel_undecryptable_after_its_key_was_retired_fails_only_its_members_delivery(
    db_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    h = await make_harness(db_url, clock, key=old_key)
    try:
        await h.member(ANA, "Ana")
        await h.member(BEN, "Ben")
        secret_path = "ana-secret-token-123"
        await h.channel(ANA, http_sink.url("json", secret_path))  # encrypted with the old key
        h.store.cipher = ChannelCipher(new_key)  # the old key is retired
        await h.channel(BEN, http_sink.url("json", "ben"))
        at = clock.now()
        await h.event(RitualDue(occurrence_id=UUID(int=7), ritual_id=UUID(int=8), template="evening_attunement",
                                title="Evening", participants=[ANA, BEN], scheduled_for=at,
                                local_time=at.isoformat(), time_zone="UTC", sensitive=False,
                                deadline=at + timedelta(hours=12)))
        assert await h.worker.run_once() == 2  # one round with both
        assert [r.path for r in http_sink.received] == ["/ben"]
        [dead] = h.publisher.events("notification_dead_lettered")
        assert dead["payload"]["member_id"] == str(ANA)
        assert "could not be decrypted with the configured channel keys" in dead["payload"]["reason"]
        assert secret_path not in str(h.publisher.sent) and old_key not in str(h.publisher.sent)
        [row] = [d for d in await h.store.deliveries_for(ANA)]
        assert (row.status, row.reason) == ("dead", "channel_broken")
    finally:
        await h.close()


async def test_an_undecryptable_channel_falls_back_at_once_to_the_members_next_channel(
    sqlite_url_fixture: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    h = await make_harness(sqlite_url_fixture, clock, key=old_key)
    try:
        await h.member(ANA, "Ana")
        await h.channel(ANA, http_sink.url("json", "old"))
        h.store.cipher = ChannelCipher(new_key)
        await h.channel(ANA, http_sink.url("ntfy", "new"))
        await h.event(request("hello"))
        await h.worker.drain()
        assert [r.json["topic"] for r in http_sink.received] == ["new"]
        [failed] = h.publisher.events("notification_failed")
        assert "could not be decrypted" in failed["payload"]["error"]
        [sent] = h.publisher.events("notification_sent")
        assert sent["payload"]["attempts"] == 2
    finally:
        await h.close()


async def test_a_member_whose_stored_time_zone_no_longer_exists_does_not_stall_the_round(
    db_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    h = await make_harness(db_url, clock)
    try:
        await h.member(ANA, "Ana")
        await h.member(BEN, "Ben")
        await h.channel(ANA, http_sink.url("json", "ana"))
        await h.channel(BEN, http_sink.url("json", "ben"))
        async with h.store.engine.begin() as conn:  # e.g. a zone dropped from a newer tzdata
            await conn.execute(update(members).where(members.c.member_id == ANA).values(time_zone="Mars/Olympus"))
        await h.handler.handle_batch([envelope(h, request("to ana")), envelope(h, request("to ben", member=BEN))])
        assert await h.worker.run_once() == 2
        assert [r.path for r in http_sink.received] == ["/ben"]
        [failed] = h.publisher.events("notification_failed")
        assert failed["payload"]["member_id"] == str(ANA)
        assert "stored preferences could not be read" in failed["payload"]["error"]
    finally:
        await h.close()


@pytest.fixture
def sqlite_url_fixture(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/notifier.db"


# ---- 7. sends in flight as configured ----------------------------------------------------------


async def test_sends_in_flight_reach_the_configured_concurrency_against_a_slow_gateway(
    sqlite_url_fixture: str, clock: FakeClock, slow_sink: SlowSink
) -> None:
    """Apprise's shared pool has CPUs + 4 threads (6 here) unless the sender sizes it: then a slow gateway
    saw at most 6 requests at once whatever DELIVERY_CONCURRENCY said."""
    slow_sink.delay_s = 0.3
    sender = AppriseSender(timeout_s=10, max_in_flight=32)
    h = await make_harness(sqlite_url_fixture, clock, sender=sender, concurrency=32)
    try:
        await h.member(ANA, "Ana", daily_cap=200)
        await h.channel(ANA, slow_sink.url("json", "hook"))
        await h.handler.handle_batch([envelope(h, request(f"m{n}")) for n in range(64)])
        assert await h.worker.drain() == 64
        assert slow_sink.received == 64
        assert slow_sink.most_in_flight >= 20, slow_sink.most_in_flight
        assert len(h.publisher.events("notification_sent")) == 64
    finally:
        await h.close()


# ---- 6. hostile values from other services -----------------------------------------------------


async def test_a_member_name_with_a_nul_byte_is_stored_without_it_on_postgresql(
    pg_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    """PostgreSQL text cannot hold NUL: the fact used to fail with a DataError (rejected), leaving the member
    unknown and every reminder to them undelivered. A name is only shown, so it is stored without it."""
    from attune_contracts.messages import MemberRole, MemberUpserted

    h = await make_harness(pg_url, clock)
    try:
        await h.event(MemberUpserted(member_id=ANA, display_name="Ana\x00\x07", role=MemberRole.PARTNER,
                                     time_zone="UTC"))
        member = await h.store.get_member(ANA)
        assert member is not None and member.display_name == "Ana"
        await h.channel(ANA, http_sink.url("json", "ana"))
        await h.event(request("hello"))
        await h.worker.drain()
        assert [r.json["message"] for r in http_sink.received] == ["hello"]
    finally:
        await h.close()


async def test_a_message_that_cannot_be_rendered_fails_alone_on_a_schedule_not_every_lease(
    sqlite_url_fixture: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    from attune_notifier.service import Intent, notification_id

    h = await make_harness(sqlite_url_fixture, clock)
    try:
        await h.member(ANA, "Ana")
        await h.member(BEN, "Ben")
        await h.channel(ANA, http_sink.url("json", "ana"))
        await h.channel(BEN, http_sink.url("json", "ben"))
        broken = Intent(notification_id=notification_id("x", ANA, "p"), household_id=HOUSEHOLD, member_id=ANA,
                        cause_event_id=UUID(int=5), cause_type="test", purpose="p", category="general",
                        template="no_such_template", params={}, sensitive=False, occurred_at=clock.now(),
                        not_before=clock.now(), expires_at=None)
        await h.store.insert_intents([broken], clock.now())
        await h.event(request("to ben", member=BEN))
        assert await h.worker.run_once() == 2
        assert [r.path for r in http_sink.received] == ["/ben"]
        [failed] = h.publisher.events("notification_failed")
        assert failed["payload"]["member_id"] == str(ANA)
        assert failed["payload"]["error"] == "the notifier could not prepare this message (KeyError)"
        row = await h.store.get_delivery(broken.notification_id)
        assert row is not None and row.status == "failed" and row.claimed_until is None
        for _ in range(20):  # given up in the end, not retried for ever
            clock.advance(hours=1)
            await h.worker.drain()
        row = await h.store.get_delivery(broken.notification_id)
        assert row is not None and row.status == "dead"
    finally:
        await h.close()
