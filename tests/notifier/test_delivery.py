"""Delivery through Apprise to real destinations, with the store on SQLite and PostgreSQL (no Kafka here)."""

from __future__ import annotations

import asyncio
import email
import json
from datetime import timedelta
from email.message import Message
from pathlib import Path
from uuid import uuid4

import pytest
import responses
from attune_contracts.messages import (
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    MemberRitualTally,
    NotificationRequested,
    RitualDue,
    RitualMissed,
    RitualReminder,
    SuggestedFocus,
    WeeklySummary,
)
from attune_notifier.service import RetryPlan
from attune_runtime.tansu import free_port
from attune_runtime.testing import FakeClock
from cryptography.fernet import Fernet

from .conftest import ANA, BEN, HOUSEHOLD, HttpSink, SmtpSink, utc
from .harness import PUBLIC_URL, Harness, make_harness, run_until_settled

pytestmark = [pytest.mark.integration]

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twiliotoken" + "9" * 21
TWILIO_URL = f"twilio://{TWILIO_SID}:{TWILIO_TOKEN}@15551230000/15557654321"
VONAGE_URL = "vonage://vonagekey1:vonagesecret9876@15551230000/15557650000"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/notifier.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 11, 26, 9, 0))


@pytest.fixture
async def h(sqlite_url: str, clock: FakeClock):
    harness = await make_harness(sqlite_url, clock)
    yield harness
    await harness.close()


def ritual_due(template: str = "evening_attunement", *, at, members=(ANA, BEN), sensitive=False, title="Evening attunement"):
    return RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template=template, title=title,
                     participants=list(members), scheduled_for=at, local_time=at.isoformat(),
                     time_zone="Europe/London", sensitive=sensitive, deadline=at + timedelta(hours=12))


def request(member=ANA, body="Three events were added to your calendar.", **kw):
    return NotificationRequested(member_id=member, purpose="calendar.sync", title="Calendar synced", body=body, **kw)


async def test_json_and_ntfy_pushes_reach_a_real_http_sink(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana")
    await h.member(BEN, "Ben")
    await h.channel(ANA, http_sink.url("json", "hook"))
    await h.channel(BEN, http_sink.url("ntfy", "attune-ben"))
    due = ritual_due(at=h.clock.now())
    await h.event(due)
    assert await h.worker.drain() == 2

    by_path = {r.path: r.json for r in http_sink.received}
    assert by_path["/hook"]["title"] == "Evening attunement"
    assert "listen" in by_path["/hook"]["message"].lower() or "day" in by_path["/hook"]["message"].lower()
    assert by_path["/"]["topic"] == "attune-ben" and by_path["/"]["title"] == "Evening attunement"
    # The one-tap link verifies with the shared signer and names this occurrence and member.
    link = next(w for w in by_path["/hook"]["message"].split() if w.startswith(PUBLIC_URL))
    claims = h.signer.verify(link.removeprefix(f"{PUBLIC_URL}/l/"), now=h.clock.now())
    assert (claims.occurrence_id, claims.member_id, claims.household_id) == (due.occurrence_id, ANA, HOUSEHOLD)

    sent = h.publisher.events("notification_sent")
    assert {e["payload"]["member_id"] for e in sent} == {str(ANA), str(BEN)}
    assert all(e["payload"]["channel_kind"] == "push" and e["payload"]["attempts"] == 1 for e in sent)
    assert h.metric("attune_notifier_deliveries_total", channel_kind="push", outcome="sent") == 2
    assert h.metric("attune_notifier_event_to_delivered_seconds_count", channel_kind="push") == 2
    assert h.metric("attune_notifier_delivered_by_template_total", template="evening_attunement") == 2


async def test_email_digest_has_text_and_html_parts(h: Harness, smtp_sink: SmtpSink) -> None:
    await h.member(ANA, "Ana <the brave>")
    await h.channel(ANA, smtp_sink.url("ana@example.org"))
    ritual = uuid4()
    await h.event(WeeklySummary(
        week_start=h.clock.now().date() - timedelta(days=7), week_end=h.clock.now().date() - timedelta(days=1),
        tallies=[MemberRitualTally(member_id=ANA, ritual_id=ritual, template="date_night", kept=1, expected=1)],
        date_nights_kept_4w=3, date_nights_expected_4w=4, positive_moments=12, negative_moments=2, ratio=6.0,
        focus=SuggestedFocus(step=5, title="Stay curious", text="Ask one open question a day & listen.")))
    await h.worker.drain()
    [raw] = smtp_sink.box.messages
    message = email.message_from_bytes(raw)
    assert message["Subject"].startswith("Your week together")
    assert message["To"] == "ana@example.org"
    parts: dict[str, Message] = {p.get_content_type(): p for p in message.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    html_part = parts["text/html"].get_payload(decode=True).decode()
    text_part = parts["text/plain"].get_payload(decode=True).decode()
    assert "Ana &lt;the brave&gt;" in html_part and "<the brave>" not in html_part
    assert "open question a day &amp; listen" in html_part
    assert "Stay curious" in text_part and "<h2>" not in text_part
    [sent] = h.publisher.events("notification_sent")
    assert sent["payload"]["channel_kind"] == "email"


async def test_twilio_and_vonage_sms_go_through_apprises_real_plugins(h: Harness) -> None:
    await h.member(ANA, "Ana")
    await h.member(BEN, "Ben")
    await h.channel(ANA, TWILIO_URL)
    await h.channel(BEN, VONAGE_URL)
    at = h.clock.now() + timedelta(days=1)
    reminder = RitualReminder(
        occurrence_id=uuid4(), ritual_id=uuid4(), template="date_night", title="Date night", participants=[ANA, BEN],
        scheduled_for=at, local_time=at.isoformat(), time_zone="Europe/London", sensitive=False,
        reminder_id=uuid4(), offset_minutes=1440, remind_at=h.clock.now())
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
                 json={"sid": "SM1"}, status=201)
        mock.add(responses.POST, "https://rest.nexmo.com/sms/json", json={"messages": [{"status": "0"}]}, status=200)
        await h.event(reminder)
        assert await h.worker.drain() == 2
        bodies = {call.request.url: call.request.body for call in mock.calls}
    from urllib.parse import parse_qs

    twilio = parse_qs(bodies[f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"])
    assert twilio["To"] == ["+15557654321"] and twilio["From"] == ["+15551230000"]
    assert twilio["Body"][0].startswith("Attune: Date night at 09:00 on Friday") and len(twilio["Body"][0]) <= 160
    vonage = parse_qs(bodies["https://rest.nexmo.com/sms/json"])
    assert vonage["to"] == ["15557650000"] and vonage["text"][0].startswith("Attune: Date night at")
    assert len(vonage["text"][0]) <= 160
    assert h.metric("attune_notifier_deliveries_total", channel_kind="sms", outcome="sent") == 2


async def test_retry_with_backoff_then_succeed(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana")
    await h.channel(ANA, http_sink.url("json", "hook"))
    http_sink.fail_next = 2
    start = h.clock.now()
    await h.event(request())
    await run_until_settled(h)
    assert len(http_sink.refused) == 2 and len(http_sink.received) == 1
    failed = h.publisher.events("notification_failed")
    assert [e["payload"]["attempts"] for e in failed] == [1, 2]
    waits = [(utc_of(e["payload"]["next_attempt_at"]) - start).total_seconds() for e in failed]
    # A 500 is the gateway's trouble, not the message's: first retry after 1-2 s, then 3-6 s later (issue 12).
    assert 1 <= waits[0] <= 2 and 3 <= waits[1] - waits[0] <= 6.5, waits
    [sent] = h.publisher.events("notification_sent")
    assert sent["payload"]["attempts"] == 3
    assert h.metric("attune_notifier_delivery_attempts_total", channel_kind="push") == 3


async def first_retry_wait(h: Harness, http_sink: HttpSink, member=ANA) -> float:
    """One failed answer, then success: how long after the first try the second was planned."""
    await h.member(member, "Ana")
    await h.channel(member, http_sink.url("json", "hook"))
    start = h.clock.now()
    sent_before = len(h.publisher.events("notification_sent"))
    await h.event(request(member=member))
    await run_until_settled(h)
    assert len(http_sink.refused) == 1 and len(http_sink.received) == 1
    http_sink.refused.clear(), http_sink.received.clear()
    [failed] = [e for e in h.publisher.events("notification_failed") if e["payload"]["member_id"] == str(member)]
    assert len(h.publisher.events("notification_sent")) == sent_before + 1
    return (utc_of(failed["payload"]["next_attempt_at"]) - start).total_seconds()


async def test_a_429_with_retry_after_in_seconds_is_retried_after_it_not_20_s_later(
        h: Harness, http_sink: HttpSink) -> None:
    """The gateway says when: 7 s. A 400 with the same header says the message or channel is wrong, not that
    the gateway is busy: it keeps the ordinary backoff (10-20 s)."""
    http_sink.fail_next, http_sink.fail_status, http_sink.retry_after = 1, 429, "7"
    wait = await first_retry_wait(h, http_sink)
    assert 7 <= wait <= 7.7 + 0.1, wait  # never before Retry-After; jitter up to a tenth of it
    http_sink.fail_next, http_sink.fail_status = 1, 400
    wait = await first_retry_wait(h, http_sink, member=BEN)
    assert 10 <= wait <= 20, wait


async def test_a_503_with_retry_after_as_an_http_date_is_retried_then(h: Harness, http_sink: HttpSink) -> None:
    from datetime import UTC, datetime
    from email.utils import format_datetime

    http_sink.fail_next, http_sink.fail_status = 1, 503
    # The gateway's date is wall-clock time (whole seconds), whatever the harness's clock says.
    http_sink.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=42), usegmt=True)
    wait = await first_retry_wait(h, http_sink)
    assert 40.5 <= wait <= 42 + 4.3, wait


async def test_a_retry_after_of_a_day_is_capped(h: Harness, http_sink: HttpSink) -> None:
    http_sink.fail_next, http_sink.fail_status, http_sink.retry_after = 1, 429, "86400"
    wait = await first_retry_wait(h, http_sink)
    assert 300 <= wait <= 330, wait  # RetryPlan.max_retry_after_s



def utc_of(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


async def test_after_the_last_failure_on_one_channel_the_next_one_is_used(
    sqlite_url: str, clock: FakeClock, http_sink: HttpSink, smtp_sink: SmtpSink
) -> None:
    h = await make_harness(sqlite_url, clock, retry=RetryPlan(attempts_per_channel=3))
    try:
        await h.member(ANA, "Ana")
        await h.channel(ANA, f"json://127.0.0.1:{free_port()}/nobody-listens")
        await h.channel(ANA, smtp_sink.url())
        await h.event(request())
        await run_until_settled(h)
        assert len(smtp_sink.box.messages) == 1
        kinds = [e["payload"]["channel_kind"] for e in h.publisher.events("notification_failed")]
        assert kinds == ["push", "push", "push"]
        [sent] = h.publisher.events("notification_sent")
        assert sent["payload"]["channel_kind"] == "email" and sent["payload"]["attempts"] == 4
    finally:
        await h.close()


async def test_every_channel_failing_dead_letters_the_notification(sqlite_url: str, clock: FakeClock) -> None:
    h = await make_harness(sqlite_url, clock, retry=RetryPlan(attempts_per_channel=2))
    try:
        await h.member(ANA, "Ana")
        await h.channel(ANA, f"json://127.0.0.1:{free_port()}/a")
        await h.channel(ANA, f"ntfy://127.0.0.1:{free_port()}/b")
        await h.event(request())
        await run_until_settled(h)
        [dead] = h.publisher.events("notification_dead_lettered")
        assert dead["payload"]["attempts"] == 4 and "2 channel(s)" in dead["payload"]["reason"]
        assert h.metric("attune_notifier_dead_lettered_total", reason="attempts_exhausted") == 1
    finally:
        await h.close()


async def test_restart_in_the_middle_of_a_retry_schedule_continues_it(
    pg_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    key = Fernet.generate_key().decode()
    first = await make_harness(pg_url, clock, key=key)
    await first.member(ANA, "Ana")
    await first.channel(ANA, http_sink.url("json", "hook"))
    http_sink.fail_next = 3
    await first.event(request())
    await first.worker.drain()
    clock.set(await first.store.next_due_at())
    await first.worker.drain()
    assert len(http_sink.refused) == 2
    planned = await first.store.next_due_at()
    await first.close()  # the process goes away between attempts 2 and 3

    second = await make_harness(pg_url, clock, key=key, seed=2)
    try:
        assert await second.worker.drain() == 0  # nothing is due before the planned time
        clock.set(planned)
        await run_until_settled(second)
        assert len(http_sink.refused) == 3 and len(http_sink.received) == 1
        [sent] = second.publisher.events("notification_sent")
        assert sent["payload"]["attempts"] == 4  # the schedule went on; it did not start again
    finally:
        await second.close()


async def test_quiet_hours_defer_across_the_dst_change_then_deliver(
    sqlite_url: str, http_sink: HttpSink
) -> None:
    clock = FakeClock(utc(2026, 10, 24, 22, 0))  # 23:00 BST; the clocks go back at 02:00
    h = await make_harness(sqlite_url, clock)
    try:
        await h.member(ANA, "Ana", zone="Europe/London", quiet_start="22:00", quiet_end="07:00")
        await h.channel(ANA, http_sink.url("json", "hook"))
        env = await h.event(request())
        await h.worker.drain()
        assert http_sink.received == []
        row = (await h.store.deliveries_for(ANA))[0]
        assert row.status == "deferred" and row.next_attempt_at == utc(2026, 10, 25, 7, 0)  # 07:00 GMT
        assert h.metric("attune_notifier_deferred_total", reason="quiet_hours") == 1
        clock.set(utc(2026, 10, 25, 6, 59))
        assert await h.worker.drain() == 0
        clock.set(utc(2026, 10, 25, 7, 0))
        await h.worker.drain()
        assert len(http_sink.received) == 1
        [sent] = h.publisher.events("notification_sent")
        assert sent["payload"]["cause_event_id"] == str(env.event_id)
        assert sent["payload"]["latency_seconds"] == 9 * 3600  # 22:00 UTC to 07:00 UTC
    finally:
        await h.close()


async def test_a_morning_kiss_reminder_deferred_to_noon_is_dropped_and_counted(
    sqlite_url: str, http_sink: HttpSink
) -> None:
    clock = FakeClock(utc(2026, 11, 26, 7, 30))
    h = await make_harness(sqlite_url, clock)
    try:
        await h.member(ANA, "Ana", quiet_start="23:00", quiet_end="12:00")
        await h.member(BEN, "Ben")
        await h.channel(ANA, http_sink.url("json", "ana"))
        await h.channel(BEN, http_sink.url("json", "ben"))
        await h.event(ritual_due("six_second_kiss_morning", at=clock.now(), title="Six-second kiss goodbye"))
        await h.worker.drain()
        assert [r.path for r in http_sink.received] == ["/ben"]
        [dropped] = h.publisher.events("notification_dropped")
        assert dropped["payload"]["member_id"] == str(ANA) and dropped["payload"]["reason"] == "stale"
        assert h.metric("attune_notifier_dropped_total", reason="stale") == 1
    finally:
        await h.close()


async def test_checkin_tells_the_partner_and_suppresses_a_pending_reminder(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana", quiet_start="08:00", quiet_end="10:00")  # Ana's reminder waits till 10
    await h.member(BEN, "Ben")
    await h.channel(ANA, http_sink.url("json", "ana"))
    await h.channel(BEN, http_sink.url("json", "ben"))
    due = ritual_due(at=h.clock.now())
    await h.event(due)
    await h.worker.drain()
    assert [r.path for r in http_sink.received] == ["/ben"]
    await h.event(CheckInRecorded(
        checkin_id=uuid4(), occurrence_id=due.occurrence_id, ritual_id=due.ritual_id, template=due.template,
        member_id=BEN, status=CheckInStatus.DONE, scheduled_for=due.scheduled_for, recorded_at=h.clock.now(),
        source=CheckInSource.LINK))
    [dropped] = h.publisher.events("notification_dropped")
    assert dropped["payload"]["member_id"] == str(ANA) and dropped["payload"]["reason"] == "already_done"
    assert h.metric("attune_notifier_suppressed_total", reason="already_done") == 1
    h.clock.set(utc(2026, 11, 26, 10, 0))
    await run_until_settled(h)
    ana = [r.json for r in http_sink.received if r.path == "/ana"]
    assert [m["title"] for m in ana] == ["Ben kept Evening attunement"]  # the reminder itself never went


async def test_the_same_event_twice_sends_once_and_missed_nudges_once_a_day(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana")
    await h.channel(ANA, http_sink.url("json", "hook"))
    from attune_contracts import make_envelope

    env = make_envelope(request(), household_id=HOUSEHOLD, producer="test", occurred_at=h.clock.now())
    await h.handler(env)
    await h.handler(env)
    ritual = uuid4()
    for hours in (1, 3):
        await h.event(RitualMissed(occurrence_id=uuid4(), ritual_id=ritual, template="evening_attunement",
                                   participants=[ANA], scheduled_for=h.clock.now() - timedelta(hours=hours + 1),
                                   deadline=h.clock.now() - timedelta(hours=hours)))
    await h.worker.drain()
    assert sorted(r.json["title"] for r in http_sink.received) == [
        "Calendar synced", "Evening attunement: see you tomorrow"]
    assert h.metric("attune_notifier_duplicates_total", purpose="request") == 1
    assert h.metric("attune_notifier_duplicates_total", purpose="missed_nudge") == 1


async def test_a_child_gets_the_childs_words_and_one_without_a_channel_is_skipped_not_dead_lettered(
    h: Harness, http_sink: HttpSink
) -> None:
    from attune_contracts.messages import MemberRole, MemberUpserted

    kim, leo = uuid4(), uuid4()
    for member, name, role in ((BEN, "Ben", MemberRole.PARENT), (kim, "Kim", MemberRole.CHILD),
                               (leo, "Leo", MemberRole.CHILD)):
        await h.store.upsert_member(HOUSEHOLD, MemberUpserted(
            member_id=member, display_name=name, role=role, time_zone="Europe/London"), h.clock.now())
    await h.channel(BEN, http_sink.url("json", "ben"))
    await h.channel(kim, http_sink.url("json", "kim"))  # Leo has no phone
    await h.event(ritual_due("parent_child_attunement", at=h.clock.now(), members=(BEN, kim, leo),
                             title="Tune in to your child"))
    await h.worker.drain()
    sent = {r.path: r.json for r in http_sink.received}
    assert sent["/ben"]["title"] == "Tune in to your child"
    assert sent["/kim"]["title"] == "Time together" and "your child" not in sent["/kim"]["message"]
    [dropped] = h.publisher.events("notification_dropped")
    assert dropped["payload"]["member_id"] == str(leo) and dropped["payload"]["reason"] == "no_channel"
    assert h.metric("attune_notifier_dropped_total", reason="no_channel") == 1
    assert h.publisher.events("notification_failed") == []
    await run_until_settled(h)
    assert h.publisher.events("notification_dead_lettered") == []


async def test_daily_cap_defers_the_rest_to_tomorrow(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana", daily_cap=2)
    await h.channel(ANA, http_sink.url("json", "hook"))
    for n in range(3):
        await h.event(request(body=f"message {n}"))
        await h.worker.drain()
    assert len(http_sink.received) == 2
    assert h.metric("attune_notifier_deferred_total", reason="daily_cap") == 1
    h.clock.set(utc(2026, 11, 27, 0, 0))
    await h.worker.drain()
    assert len(http_sink.received) == 3


async def test_unknown_member_is_retried_with_a_clear_error_and_delivered_once_known(
    h: Harness, http_sink: HttpSink
) -> None:
    await h.event(request(member=BEN))
    await h.worker.drain()
    [failed] = h.publisher.events("notification_failed")
    assert "not known to the notifier" in failed["payload"]["error"]
    await h.member(BEN, "Ben")
    await h.channel(BEN, http_sink.url("json", "hook"))
    h.clock.set(utc_of(failed["payload"]["next_attempt_at"]))
    await h.worker.drain()
    assert len(http_sink.received) == 1


async def test_household_erasure_deletes_members_channels_and_history(h: Harness, http_sink: HttpSink) -> None:
    from attune_contracts.messages import HouseholdErased
    from attune_runtime.faults import HouseholdErasedError

    await h.member(ANA, "Ana")
    await h.channel(ANA, http_sink.url("json", "hook"))
    await h.event(request())
    await h.worker.drain()
    await h.event(HouseholdErased(erased_at=h.clock.now()))
    assert await h.store.get_member(ANA) is None
    assert await h.store.list_channels(ANA) == []
    assert await h.store.deliveries_for(ANA) == []
    assert await h.store.is_erased(HOUSEHOLD)
    with pytest.raises(HouseholdErasedError):  # a late event for an erased household is refused (dead letter)
        await h.event(request(body="late"))
    assert await h.store.deliveries_for(ANA) == []


async def test_two_instances_on_postgresql_never_send_the_same_notification_twice(
    pg_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    key = Fernet.generate_key().decode()
    one = await make_harness(pg_url, clock, key=key, seed=1)
    two = await make_harness(pg_url, clock, key=key, seed=2)
    try:
        await one.member(ANA, "Ana", daily_cap=100)
        await one.channel(ANA, http_sink.url("json", "hook"))
        for n in range(30):
            await one.event(request(body=f"message {n}"))
        one.worker.batch = two.worker.batch = 4  # small rounds, so the two really interleave

        async def work(h: Harness) -> int:
            handled = 0
            while await h.store.next_due_at() is not None:
                claimed = await h.worker.run_once()
                assert claimed <= 4  # never more than a round asks for, even with the other instance busy
                handled += claimed
                await asyncio.sleep(0)
            return handled

        handled = await asyncio.gather(work(one), work(two))
        assert sum(handled) == 30 and min(handled) > 0
        bodies = [r.json["message"] for r in http_sink.received]
        assert sorted(bodies) == sorted(f"message {n}" for n in range(30))
    finally:
        await one.close()
        await two.close()


async def test_curiosity_question_rotates_without_repeats_and_is_stable_per_occurrence(
    h: Harness, http_sink: HttpSink
) -> None:
    from attune_contracts import make_envelope
    from attune_contracts.catalog import CURIOSITY_QUESTIONS, question_by_key

    await h.member(ANA, "Ana", daily_cap=100)
    await h.channel(ANA, http_sink.url("json", "hook"))
    ritual = uuid4()
    envelopes = []
    for day in range(5):
        at = h.clock.now() + timedelta(minutes=day)
        due = RitualDue(occurrence_id=uuid4(), ritual_id=ritual, template="curiosity_question", title="Today's question",
                        participants=[ANA], scheduled_for=at, local_time=at.isoformat(), time_zone="Europe/London",
                        sensitive=False, deadline=at + timedelta(hours=12))
        envelopes.append(make_envelope(due, household_id=HOUSEHOLD, producer="test", occurred_at=h.clock.now()))
    for env in envelopes:
        await h.handler(env)
    await h.handler(envelopes[0])  # redelivered: same question, nothing new
    await h.worker.drain()
    asked = [next(q for q in CURIOSITY_QUESTIONS if q in r.json["message"]) for r in http_sink.received]
    assert len(asked) == 5 and len(set(asked)) == 5
    # Each occurrence's question is a published fact (its key, never its text): the one Ana was sent, the same
    # event again (same id) when the RitualDue comes again.
    facts = h.publisher.events("question_asked")
    assert [f["payload"]["occurrence_id"] for f in facts] == [str(e.payload.occurrence_id) for e in envelopes] + [
        str(envelopes[0].payload.occurrence_id)]
    assert facts[0]["event_id"] == facts[-1]["event_id"] and facts[0]["payload"] == facts[-1]["payload"]
    assert {f["producer"] for f in facts} == {"notifier"}
    assert sorted(question_by_key(f["payload"]["question_key"]) for f in facts[:5]) == sorted(
        ("adult", q) for q in asked)
    assert all(f["payload"]["bank"] == "adult" and f["payload"]["depth"] for f in facts)
    assert not any(q in json.dumps(f) for f in facts for q in asked)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
async def h_any_db(any_db_url: str, clock: FakeClock):
    harness = await make_harness(any_db_url, clock)
    yield harness
    await harness.close()


async def test_the_stored_picks_follow_the_weeks_depth_mix_and_a_child_gets_the_childs_question(
    h_any_db: Harness, http_sink: HttpSink
) -> None:
    h = h_any_db
    from attune_contracts import make_envelope
    from attune_contracts.catalog import CHILD_QUESTIONS, question_depth
    from attune_contracts.messages import MemberRole, MemberUpserted
    from attune_notifier import content
    from attune_notifier.service import DEPTH_WEEK

    bank = content.question_bank()
    curiosity = uuid4()
    picks = []
    for day in range(len(DEPTH_WEEK)):
        picks.append(await h.store.pick_question(uuid4(), HOUSEHOLD, curiosity, len(bank), str(HOUSEHOLD),
                                                 h.clock.now() + timedelta(minutes=day), depths=content.question_depths()))
    assert [question_depth(bank[i]) for i in picks] == list(DEPTH_WEEK)

    kid = uuid4()
    for member, name, role in ((ANA, "Ana", MemberRole.PARENT), (kid, "Kim", MemberRole.CHILD)):
        await h.store.upsert_member(HOUSEHOLD, MemberUpserted(member_id=member, display_name=name, role=role,
                                                              time_zone="Europe/London"), h.clock.now())
        await h.store.update_preferences(member, {"daily_cap": 100}, h.clock.now())
        await h.channel(member, http_sink.url("json", name))
    at = h.clock.now()
    due = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="parent_child_attunement",
                    title="Tune in to your child", participants=[ANA, kid], scheduled_for=at,
                    local_time=at.isoformat(), time_zone="Europe/London", sensitive=False,
                    deadline=at + timedelta(hours=12))
    await h.handler(make_envelope(due, household_id=HOUSEHOLD, producer="test", occurred_at=h.clock.now()))
    await h.worker.drain()
    by_path = {r.path: r.json["message"] for r in http_sink.received}
    assert len(by_path) == 2
    [question] = [q for q in CHILD_QUESTIONS if q in by_path["/Kim"]]
    assert f"Ask your child: {question}" in by_path["/Ana"]


async def test_a_snoozed_checkin_reminds_again_later_unless_done_first(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana")
    await h.channel(ANA, http_sink.url("json", "ana"))
    due = ritual_due(at=h.clock.now(), members=(ANA,))

    def checkin(status: CheckInStatus, **kw) -> CheckInRecorded:
        return CheckInRecorded(checkin_id=uuid4(), occurrence_id=due.occurrence_id, ritual_id=due.ritual_id,
                               template=due.template, member_id=ANA, status=status, scheduled_for=due.scheduled_for,
                               recorded_at=h.clock.now(), source=CheckInSource.LINK, **kw)

    await h.event(due)
    await h.worker.drain()
    await h.event(checkin(CheckInStatus.SNOOZED, snoozed_until=h.clock.now() + timedelta(minutes=30)))
    await h.worker.drain()
    assert len(http_sink.received) == 1  # nothing more until the snooze ends
    h.clock.advance(minutes=30)
    await h.worker.drain()
    assert [r.json["title"] for r in http_sink.received] == ["Evening attunement"] * 2
    assert PUBLIC_URL in http_sink.received[1].json["message"]  # a fresh one-tap link
    await h.event(checkin(CheckInStatus.SNOOZED, snoozed_until=h.clock.now() + timedelta(minutes=30)))
    await h.event(checkin(CheckInStatus.DONE))  # done before the second snooze ends: no reminder
    h.clock.advance(minutes=30)
    await run_until_settled(h)
    assert len(http_sink.received) == 2


async def test_the_sender_keeps_one_plugin_per_channel_and_sends_each_message_once(http_sink: HttpSink) -> None:
    from attune_contracts.messages import ChannelKind
    from attune_notifier.adapters.apprise_sender import AppriseSender
    from attune_notifier.service import Rendered

    sender = AppriseSender(timeout_s=10)
    urls = [http_sink.url("json", f"to-{n}") for n in range(3)]
    results = await asyncio.gather(*(sender.send(urls[n % 3], Rendered(ChannelKind.PUSH, "T", f"m{n}"))
                                     for n in range(12)))
    assert all(r.ok for r in results)
    assert sorted(r.json["message"] for r in http_sink.received) == sorted(f"m{n}" for n in range(12))
    assert sorted({r.path for r in http_sink.received}) == ["/to-0", "/to-1", "/to-2"]
    assert sorted(sender._plugins) == sorted(urls)
    # Each send ran on a copy with its own throttle clock: the cached plugins themselves never sent.
    assert all(plugin._last_io_datetime is None for plugin in sender._plugins.values())
    sender.close()
