"""The notifier's pure decisions: ids, recipients, quiet hours across DST, staleness, retries, words."""

from __future__ import annotations

import random
import re
from datetime import date, datetime, time, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from attune_contracts import make_envelope
from attune_contracts.messages import (
    AchievementRecorded,
    ChannelKind,
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
from attune_notifier import content
from attune_notifier.service import (
    Action,
    ChannelRef,
    QuietHours,
    Recipient,
    RetryPlan,
    after_failure,
    decide,
    fit_sms,
    next_question_index,
    notification_id,
    plan,
    render,
    route,
)

from .conftest import ANA, BEN, HOUSEHOLD, utc

pytestmark = [pytest.mark.unit]

INTIMATE = re.compile(r"kiss|sex|cuddl|intima|love|bed|naked|touch|experiment|stay close|hold each other", re.IGNORECASE)


def recipient(member: UUID = ANA, **kwargs) -> Recipient:
    return Recipient(member_id=member, household_id=HOUSEHOLD, display_name=kwargs.pop("name", "Ana"), **kwargs)


def due(template: str = "six_second_kiss_morning", *, scheduled: datetime, sensitive: bool = False, title: str = "Kiss",
        deadline: timedelta = timedelta(hours=12)) -> RitualDue:
    return RitualDue(
        occurrence_id=uuid4(), ritual_id=uuid4(), template=template, title=title, participants=[ANA, BEN],
        scheduled_for=scheduled, local_time=scheduled.isoformat(), time_zone="Europe/London", sensitive=sensitive,
        deadline=scheduled + deadline,
    )


def test_notification_id_is_stable_per_cause_member_and_purpose() -> None:
    cause = uuid4()
    assert notification_id(cause, ANA, "ritual_due") == notification_id(cause, ANA, "ritual_due")
    assert len({notification_id(cause, ANA, "ritual_due"), notification_id(cause, BEN, "ritual_due"),
                notification_id(cause, ANA, "ritual_reminder"), notification_id(uuid4(), ANA, "ritual_due")}) == 4


def test_redelivered_event_plans_the_same_notifications() -> None:
    env = make_envelope(due(scheduled=utc(2026, 11, 26, 7, 30)), household_id=HOUSEHOLD, producer="scheduler")
    first, second = plan(env, {}), plan(env, {})
    assert [i.notification_id for i in first.intents] == [i.notification_id for i in second.intents]
    assert {i.member_id for i in first.intents} == {ANA, BEN}


# ---- quiet hours --------------------------------------------------------------------------------


def test_quiet_hours_spanning_midnight_open_at_local_seven_after_the_clocks_go_back() -> None:
    # Europe/London leaves BST on Sunday 25 October 2026 at 02:00 local (01:00 UTC).
    quiet = QuietHours(time(22, 0), time(7, 0))
    zone = ZoneInfo("Europe/London")
    now = utc(2026, 10, 24, 22, 0)  # 23:00 BST on Saturday
    opens = quiet.opens_after(now, zone)
    assert opens == utc(2026, 10, 25, 7, 0)  # 07:00 GMT; a naive "+8h" would say 06:00 UTC
    assert opens.astimezone(zone).time() == time(7, 0)
    assert quiet.opens_after(utc(2026, 10, 25, 7, 0), zone) is None


def test_quiet_hours_open_at_local_seven_after_the_clocks_go_forward() -> None:
    # America/New_York springs forward on 8 March 2026 at 02:00 local.
    quiet = QuietHours(time(21, 30), time(7, 0))
    zone = ZoneInfo("America/New_York")
    now = utc(2026, 3, 8, 3, 0)  # 22:00 EST on Saturday 7 March
    assert quiet.opens_after(now, zone) == utc(2026, 3, 8, 11, 0)  # 07:00 EDT (UTC-4), not 12:00 UTC


def test_quiet_hours_defer_never_drop_until_the_window_opens() -> None:
    ana = recipient(time_zone="Europe/London", quiet_hours=QuietHours(time(22, 0), time(7, 0)))
    routes = [ChannelRef(uuid4(), ChannelKind.PUSH, 0)]
    decision = decide(now=utc(2026, 10, 24, 22, 30), recipient=ana, routes=routes, channel_index=0,
                      expires_at=utc(2026, 10, 26), sent_today=0)
    assert decision.action is Action.DEFER and decision.reason == "quiet_hours"
    assert decision.at == utc(2026, 10, 25, 7, 0)
    later = decide(now=decision.at, recipient=ana, routes=routes, channel_index=0,
                   expires_at=utc(2026, 10, 26), sent_today=0)
    assert later.action is Action.SEND and later.channel == routes[0]


def test_morning_kiss_reminder_is_stale_at_noon_and_dropped() -> None:
    ana = recipient(time_zone="Europe/London", quiet_hours=QuietHours(time(23, 0), time(12, 0)))
    env = make_envelope(due(scheduled=utc(2026, 11, 26, 7, 30)), household_id=HOUSEHOLD, producer="scheduler")
    [intent, _] = plan(env, {}).intents
    assert intent.expires_at == utc(2026, 11, 26, 9, 30)  # the kiss is relevant for two hours
    at_seven_thirty = decide(now=utc(2026, 11, 26, 7, 30), recipient=ana, routes=[ChannelRef(uuid4(), ChannelKind.PUSH, 0)],
                             channel_index=0, expires_at=intent.expires_at, sent_today=0)
    assert at_seven_thirty.action is Action.DROP and at_seven_thirty.reason == "stale"
    at_noon = decide(now=utc(2026, 11, 26, 12, 0), recipient=ana, routes=[], channel_index=0,
                     expires_at=intent.expires_at, sent_today=0)
    assert at_noon.action is Action.DROP and at_noon.reason == "stale"


def test_daily_cap_defers_to_the_next_local_day() -> None:
    ana = recipient(time_zone="America/New_York", daily_cap=2)
    d = decide(now=utc(2026, 11, 26, 20, 0), recipient=ana, routes=[ChannelRef(uuid4(), ChannelKind.PUSH, 0)],
               channel_index=0, expires_at=None, sent_today=2)
    assert d.action is Action.DEFER and d.reason == "daily_cap" and d.at == utc(2026, 11, 27, 5, 0)


def test_an_unknown_member_waits_and_a_member_without_a_channel_is_skipped() -> None:
    unknown = decide(now=utc(2026, 1, 1), recipient=None, routes=[], channel_index=0, expires_at=None, sent_today=0)
    assert (unknown.action, unknown.reason) == (Action.RETRY, "unknown_member")
    # Issue 15: no channel for this message is a choice (or no phone), not a fault: skipped and counted.
    bare = decide(now=utc(2026, 1, 1), recipient=recipient(), routes=[], channel_index=0, expires_at=None,
                  sent_today=0)
    assert (bare.action, bare.reason) == (Action.DROP, "no_channel")


# ---- retries and channels -----------------------------------------------------------------------


def test_eight_attempts_take_about_thirty_minutes_then_the_next_channel() -> None:
    policy = RetryPlan()
    rng = random.Random(7)
    now = utc(2026, 1, 1)
    waits = []
    for attempt in range(1, 8):
        step = after_failure(now=now, attempt=attempt, channel_index=0, channels=2, policy=policy, rng=rng)
        assert not step.dead and step.channel_index == 0
        waits.append((step.next_attempt_at - now).total_seconds())
    assert waits == sorted(waits) or max(waits) <= 900  # grows, capped at 15 minutes
    assert 15 * 60 <= sum(waits) <= 40 * 60
    ceilings = [policy.backoff.ceiling(a) for a in range(1, 8)]
    assert all(c / 2 <= w <= c for c, w in zip(ceilings, waits, strict=True))  # jitter within [ceiling/2, ceiling]
    fallback = after_failure(now=now, attempt=8, channel_index=0, channels=2, policy=policy, rng=rng)
    assert (fallback.dead, fallback.channel_index, fallback.attempt, fallback.next_attempt_at) == (False, 1, 0, now)
    assert after_failure(now=now, attempt=8, channel_index=1, channels=2, policy=policy, rng=rng).dead


def test_routes_follow_member_order_filtered_by_category() -> None:
    push, sms, email = (ChannelRef(uuid4(), k, i) for i, k in enumerate(ChannelKind))
    ana = recipient(categories={"date_night": (ChannelKind.SMS, ChannelKind.PUSH)})
    assert route(ana, [email, sms, push], category="six_second_kiss", purpose="ritual_due") == [push, sms, email]
    assert route(ana, [email, sms, push], category="date_night", purpose="ritual_due") == [sms, push]
    assert route(ana, [email, sms, push], category="weekly_summary", purpose="weekly_summary") == [email, push]


# ---- words --------------------------------------------------------------------------------------


@pytest.mark.parametrize("template,sensitive,discreet", [
    ("six_second_kiss_morning", False, True), ("experiment_together", True, False), ("after_intimacy", False, False),
])
def test_sensitive_or_discreet_messages_use_neutral_words_on_every_channel(template, sensitive, discreet) -> None:
    env = make_envelope(due(template, scheduled=utc(2026, 11, 26, 19), sensitive=sensitive, title="Kiss & cuddle"),
                        household_id=HOUSEHOLD, producer="scheduler")
    [intent, _] = plan(env, {}).intents
    assert intent.sensitive is (sensitive or content.catalog.template(template).sensitive)
    neutral = intent.sensitive or discreet
    assert neutral
    for kind in ChannelKind:
        message = render(intent.template, intent.params, kind, neutral=neutral, link="https://x/l/tok")
        assert not INTIMATE.search(message.title + message.body + (message.html or "")), message
    push = render(intent.template, intent.params, ChannelKind.PUSH, neutral=True)
    assert push.title in {"A moment for the two of you", "A little something for the two of you"}
    assert push.body == "Open Attune when you have a minute."


def test_push_sms_and_email_shapes_and_html_escaping() -> None:
    members = {ANA: recipient(name="Ana <script>"), BEN: recipient(BEN, name="Ben")}
    env = make_envelope(AchievementRecorded(achievement_id=uuid4(), member_id=ANA, dream="Run a <b>marathon</b> & more"),
                        household_id=HOUSEHOLD, producer="checkins")
    [intent] = plan(env, members).intents
    assert intent.member_id == BEN
    push = render(intent.template, intent.params, ChannelKind.PUSH, neutral=False)
    assert push.title == "Ana <script> moved a dream forward" and "marathon" in push.body
    assert len(push.title) <= 65
    email = render(intent.template, intent.params, ChannelKind.EMAIL, neutral=False)
    assert "&lt;b&gt;marathon&lt;/b&gt; &amp; more" in email.html and "<b>marathon" not in email.html
    assert "Ana &lt;script&gt;" in email.html and "<script>" not in email.html
    sms = render(intent.template, intent.params, ChannelKind.SMS, neutral=False)
    assert len(sms.body) <= 160 and sms.title == ""
    assert all(ord(ch) < 128 for ch in sms.body)  # curly quotes folded so it stays GSM-7, one segment


def test_sms_is_one_segment_where_possible() -> None:
    assert fit_sms("short") == "short"
    long = fit_sms("word " * 100)
    assert len(long) <= 160 and long.endswith("...")
    emoji = fit_sms("\U0001F49B " + "word " * 40)
    assert len(emoji) <= 70


def test_reminder_due_and_links_in_push_and_email_not_sms() -> None:
    r = RitualReminder(occurrence_id=uuid4(), ritual_id=uuid4(), template="date_night", title="Date night",
                       participants=[ANA], scheduled_for=utc(2026, 11, 27, 19), local_time="2026-11-27T19:00:00+00:00",
                       time_zone="Europe/London", sensitive=False, reminder_id=uuid4(), offset_minutes=1440,
                       remind_at=utc(2026, 11, 26, 19))
    [intent] = plan(make_envelope(r, household_id=HOUSEHOLD, producer="scheduler"), {}).intents
    assert intent.expires_at == r.scheduled_for and intent.occurrence_id == r.occurrence_id
    push = render(intent.template, intent.params, ChannelKind.PUSH, neutral=False, link="https://c/l/T")
    assert push.title == "Coming up: Date night" and "19:00 on Friday" in push.body and "https://c/l/T" in push.body
    email = render(intent.template, intent.params, ChannelKind.EMAIL, neutral=False, link="https://c/l/T")
    assert 'href="https://c/l/T"' in email.html
    assert "https://" not in render(intent.template, intent.params, ChannelKind.SMS, neutral=False, link="https://c/l/T").body


def test_checkin_tells_the_partner_and_suppresses_the_occurrence() -> None:
    members = {ANA: recipient(name="Ana"), BEN: recipient(BEN, name="Ben")}
    c = CheckInRecorded(checkin_id=uuid4(), occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement",
                        member_id=ANA, status=CheckInStatus.DONE, scheduled_for=utc(2026, 1, 1, 20),
                        recorded_at=utc(2026, 1, 1, 20, 5), source=CheckInSource.LINK)
    result = plan(make_envelope(c, household_id=HOUSEHOLD, producer="checkins"), members)
    assert result.suppress_occurrence == c.occurrence_id
    [intent] = result.intents
    assert intent.member_id == BEN and intent.params["name"] == "Ana"
    assert render(intent.template, intent.params, ChannelKind.PUSH, neutral=False).title == "Ana kept Evening attunement"


def test_missed_nudge_once_per_ritual_member_and_local_day() -> None:
    members = {ANA: recipient(time_zone="Europe/London")}
    ritual = uuid4()

    def missed(deadline: datetime) -> RitualMissed:
        return RitualMissed(occurrence_id=uuid4(), ritual_id=ritual, template="six_second_kiss_morning", participants=[ANA],
                            scheduled_for=deadline - timedelta(hours=1), deadline=deadline)

    ids = [plan(make_envelope(missed(d), household_id=HOUSEHOLD, producer="checkins"), members).intents[0].notification_id
           for d in (utc(2026, 11, 26, 9), utc(2026, 11, 26, 21), utc(2026, 11, 27, 9))]
    assert ids[0] == ids[1] != ids[2]


def test_weekly_summary_email_escapes_names_and_counts_own_tallies() -> None:
    ritual = uuid4()
    members = {ANA: recipient(name="Ana & co"), BEN: recipient(BEN, name="Ben")}
    s = WeeklySummary(week_start=date(2026, 11, 16), week_end=date(2026, 11, 22), tallies=[
        MemberRitualTally(member_id=ANA, ritual_id=ritual, template="six_second_kiss_morning", kept=5, expected=7),
        MemberRitualTally(member_id=BEN, ritual_id=ritual, template="six_second_kiss_morning", kept=6, expected=7)],
        date_nights_kept_4w=3, date_nights_expected_4w=4, positive_moments=20, negative_moments=3, ratio=6.7,
        focus=SuggestedFocus(step=5, title="Stay curious", text="Ask one open question a day."))
    intents = plan(make_envelope(s, household_id=HOUSEHOLD, producer="checkins"), members).intents
    ana = next(i for i in intents if i.member_id == ANA)
    email = render(ana.template, ana.params, ChannelKind.EMAIL, neutral=False)
    assert email.title.startswith("Your week together: 16 November 2026")  # the default locale, en_GB
    assert "Ana &amp; co" in email.html and "5 of 7" in email.html and "Stay curious" in email.html
    assert "5 of 7 rituals kept" in render(ana.template, ana.params, ChannelKind.PUSH, neutral=False).body


def test_generic_request_and_question_rotation_without_repeats() -> None:
    req = NotificationRequested(member_id=ANA, purpose="calendar.sync", title="Synced", body="3 events added")
    [intent] = plan(make_envelope(req, household_id=HOUSEHOLD, producer="calendar"), {}).intents
    assert intent.purpose == "calendar.sync" and intent.category == "general"
    used: list[int] = []
    for _ in range(12):
        used.append(next_question_index(12, used, "seed"))
    assert sorted(used) == list(range(12))
    used.append(next_question_index(12, used, "seed"))  # a new round starts once the bank is used up
    assert 0 <= used[-1] < 12


def test_household_news_goes_to_the_adults_only() -> None:
    kid = uuid4()
    members = {ANA: recipient(name="Ana"), BEN: recipient(BEN, name="Ben", role="parent"),
               kid: recipient(kid, name="Kim", role="child")}
    env = make_envelope(AchievementRecorded(achievement_id=uuid4(), member_id=ANA, dream="Learn the cello"),
                        household_id=HOUSEHOLD, producer="checkins")
    assert [i.member_id for i in plan(env, members).intents] == [BEN]


def test_an_unknown_outcome_is_retried_once_after_a_delay_on_the_next_channel_else_the_same() -> None:
    from attune_notifier.service import after_unknown

    now = datetime(2026, 11, 26, 9, tzinfo=ZoneInfo("UTC"))
    policy = RetryPlan()
    first = after_unknown(now=now, unknown_sends=1, channel_index=0, attempt=1, channels=2, policy=policy)
    assert (first.dead, first.channel_index, first.attempt) == (False, 1, 0)
    assert first.next_attempt_at == now + timedelta(minutes=2)
    alone = after_unknown(now=now, unknown_sends=1, channel_index=0, attempt=1, channels=1, policy=policy)
    assert (alone.dead, alone.channel_index, alone.attempt, alone.next_attempt_at) == (
        False, 0, 1, now + timedelta(minutes=2))
    second = after_unknown(now=now, unknown_sends=2, channel_index=1, attempt=1, channels=2, policy=policy)
    assert second.dead and second.next_attempt_at is None
    never = RetryPlan(unknown_retries=0)
    assert after_unknown(now=now, unknown_sends=1, channel_index=0, attempt=1, channels=2, policy=never).dead


def test_a_broken_channel_moves_to_the_next_at_once_or_ends_the_delivery() -> None:
    from attune_notifier.service import after_broken

    now = datetime(2026, 11, 26, 9, tzinfo=ZoneInfo("UTC"))
    moved = after_broken(now=now, channel_index=0, attempt=1, channels=2)
    assert (moved.dead, moved.channel_index, moved.attempt, moved.next_attempt_at) == (False, 1, 0, now)
    assert after_broken(now=now, channel_index=1, attempt=1, channels=2).dead


# ---- what a gateway's answer means for the next try (issue 12) ----------------------------------------

def test_retry_after_reads_seconds_and_http_dates_and_refuses_nonsense() -> None:
    from attune_notifier.adapters.apprise_sender import parse_retry_after

    now = utc(2026, 11, 30, 19, 0)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-5", now) == 0.0
    assert parse_retry_after("Mon, 30 Nov 2026 19:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 30 Nov 2026 18:00:00 GMT", now) == 0.0  # already past: at once
    for nonsense in (None, "", "soon", "nan", "inf", "Mon, 99 Foo 2026"):
        assert parse_retry_after(nonsense, now) is None, nonsense


def test_busy_gateways_are_transient_and_refusals_are_not() -> None:
    from attune_notifier.adapters.apprise_sender import Exchange, classify

    assert classify([Exchange(429, "3")]) == (True, 3.0, "HTTP 429")
    assert classify([Exchange(503, None)]) == (True, None, "HTTP 503")
    assert classify([Exchange(504, "x")])[:2] == (True, None)
    assert classify([Exchange(400, "3")]) == (False, None, "HTTP 400")  # the message is wrong: no Retry-After
    assert classify([Exchange(401)])[0] is False
    assert classify([Exchange(None, connected=False)])[0] is True  # nothing left: retry soon
    assert classify([Exchange(None)])[0] is False  # lost after connecting: may have arrived, no haste
    assert classify([]) == (False, None, "")  # Apprise failed before sending anything
    assert classify([Exchange(500), Exchange(429, "9")])[1] == 9.0  # the last answer counts


def test_a_busy_gateway_is_retried_in_seconds_and_retry_after_is_honoured_and_capped() -> None:
    now, plan, rng = utc(2026, 11, 30, 19, 0), RetryPlan(), random.Random(3)

    def wait(**kw: object) -> float:
        step = after_failure(now=now, attempt=1, channel_index=0, channels=1, policy=plan, rng=rng, **kw)
        assert step.next_attempt_at is not None
        return (step.next_attempt_at - now).total_seconds()

    assert all(1 <= wait(transient=True) <= 2 for _ in range(50))
    assert all(10 <= wait() <= 20 for _ in range(50))
    assert all(7 <= wait(transient=True, retry_after_s=7) <= 7.7 for _ in range(50))
    assert all(0 <= wait(transient=True, retry_after_s=0) <= 0.5 for _ in range(50))
    assert all(300 <= wait(transient=True, retry_after_s=86400) <= 330 for _ in range(50))
    last = after_failure(now=now, attempt=8, channel_index=0, channels=2, policy=plan, transient=True,
                         retry_after_s=1)
    assert (last.channel_index, last.attempt, last.next_attempt_at) == (1, 0, now)  # fail over as before


def test_a_household_hears_the_whole_bank_before_any_question_repeats_light_most_days_a_dream_weekly() -> None:
    from attune_contracts.catalog import CURIOSITY_QUESTIONS, QUESTION_DEPTHS, question_depth
    from attune_notifier.service import DEPTH_WEEK

    bank, depths = content.question_bank(), content.question_depths()
    assert bank == CURIOSITY_QUESTIONS and len(bank) >= 150
    assert {d: sum(1 for x in depths if x == d) for d in QUESTION_DEPTHS} == {
        d: len(qs) for d, qs in QUESTION_DEPTHS.items()}
    seed = str(HOUSEHOLD)
    used: list[int] = []
    for _ in range(len(bank)):
        used.append(next_question_index(len(bank), used, seed, depths))
    assert sorted(used) == list(range(len(bank)))  # every question once, none twice
    asked = [question_depth(bank[i]) for i in used]
    # The week's mix holds until light (the depth asked most) runs out; the rest of the round finishes the bank.
    light_lasts = len(QUESTION_DEPTHS["light"]) * len(DEPTH_WEEK) // DEPTH_WEEK.count("light")
    assert asked[:light_lasts] == [DEPTH_WEEK[n % len(DEPTH_WEEK)] for n in range(light_lasts)]
    assert asked[:7] == ["light", "light", "deeper", "light", "light", "deeper", "dreams"]
    # Deterministic from the household: the same picks again, and another household hears another order.
    again: list[int] = []
    for _ in range(len(bank)):
        again.append(next_question_index(len(bank), again, seed, depths))
    assert again == used
    other: list[int] = []
    for _ in range(20):
        other.append(next_question_index(len(bank), other, str(uuid4()), depths))
    assert other != used[:20]
    # The next round starts once the bank is used up, and again covers it without repeats.
    for _ in range(len(bank)):
        used.append(next_question_index(len(bank), used, seed, depths))
    assert sorted(used[len(bank):]) == list(range(len(bank)))


def test_the_child_reads_the_childs_question_and_the_parent_is_asked_to_put_it() -> None:
    from attune_contracts.catalog import CHILD_QUESTIONS, CURIOSITY_QUESTIONS

    kid = uuid4()
    members = {ANA: recipient(name="Ana", role="parent"), kid: recipient(kid, name="Kim", role="child")}
    at = utc(2026, 11, 20, 18)
    event = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="parent_child_attunement",
                      title="Tune in to your child", participants=[ANA, kid], scheduled_for=at,
                      local_time=at.isoformat(), time_zone="Europe/London", sensitive=False,
                      deadline=at + timedelta(hours=12))
    question = CHILD_QUESTIONS[1]
    env = make_envelope(event, household_id=HOUSEHOLD, producer="scheduler")
    intents = {i.member_id: i for i in plan(env, members, child_question=question).intents}
    assert intents[kid].params["prompt"] == question
    assert intents[ANA].params["prompt"] == f"Ask your child: {question}"
    for locale, child_words, parent_words in (
            (None, "What made you laugh today?", "Ask your child: What made you laugh today?"),
            ("de-DE", "Worüber hast du heute gelacht?", "Frag dein Kind: Worüber hast du heute gelacht?")):
        child = render("ritual_due", intents[kid].params, ChannelKind.PUSH, neutral=False, locale=locale)
        parent = render("ritual_due", intents[ANA].params, ChannelKind.PUSH, neutral=False, locale=locale)
        assert child.body == child_words and parent.body == parent_words
    # An adult's curiosity question never reaches a child, even one listed on the ritual.
    adults = plan(env, members, question=CURIOSITY_QUESTIONS[0]).intents
    prompts = {i.member_id: i.params["prompt"] for i in adults}
    assert prompts == {ANA: CURIOSITY_QUESTIONS[0], kid: content.child_words("parent_child_attunement")["prompt"]}
