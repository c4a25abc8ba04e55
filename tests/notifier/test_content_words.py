"""Words right for the one who reads them (issue 15): a child's words, discreet summaries, a missed ritual's
next chance by its cadence."""

from __future__ import annotations

import re
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest
from attune_contracts import make_envelope
from attune_contracts.messages import (
    ChannelKind,
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    MemberRitualTally,
    RitualDue,
    RitualMissed,
    RitualReminder,
    SuggestedFocus,
    WeeklySummary,
)
from attune_notifier.service import Action, ChannelRef, Recipient, decide, plan, render

from .conftest import ANA, BEN, HOUSEHOLD, utc

pytestmark = [pytest.mark.unit]

KID = UUID("00000000-0000-4000-8000-00000000c1d0")
INTIMATE = re.compile(r"kiss|sex|cuddl|intima|love|bed|naked|touch|experiment|stay close|hold each other", re.IGNORECASE)
ADULT_WORDS = re.compile(r"your child|tune in|phone away|for them", re.IGNORECASE)


def recipient(member: UUID, name: str, **kwargs) -> Recipient:
    return Recipient(member_id=member, household_id=HOUSEHOLD, display_name=name, **kwargs)


FAMILY = {BEN: recipient(BEN, "Ben", role="parent"), KID: recipient(KID, "Kim", role="child")}


def every_channel(intent, *, neutral: bool = False) -> list[str]:
    out = []
    for kind in ChannelKind:
        m = render(intent.template, intent.params, kind, neutral=neutral, link="https://x/l/tok")
        out.append(m.title + "\n" + m.body + "\n" + (m.html or ""))
    return out


def by_member(intents) -> dict[UUID, object]:
    return {i.member_id: i for i in intents}


# ---- 1. a child gets the child's words ------------------------------------------------------------


def _events():
    at = utc(2026, 11, 26, 19)
    common = {"occurrence_id": uuid4(), "ritual_id": uuid4(), "template": "parent_child_attunement",
              "participants": [BEN, KID], "scheduled_for": at}
    facts = {**common, "title": "Tune in to your child", "local_time": "2026-11-26T19:00:00+00:00",
             "time_zone": "UTC", "sensitive": False}
    return [
        RitualDue(**facts, deadline=at + timedelta(hours=12)),
        RitualReminder(**facts, reminder_id=uuid4(), offset_minutes=60, remind_at=at - timedelta(hours=1)),
        RitualMissed(**common, deadline=at + timedelta(hours=12)),
    ]


@pytest.mark.parametrize("event", _events(), ids=lambda e: type(e).__name__)
def test_a_child_gets_the_childs_words_and_the_parent_the_parents(event) -> None:
    intents = by_member(plan(make_envelope(event, household_id=HOUSEHOLD, producer="checkins"), FAMILY).intents)
    assert set(intents) == {BEN, KID}
    for text in every_channel(intents[KID]):
        assert not ADULT_WORDS.search(text), text
        assert not INTIMATE.search(text), text
        assert "Time together" in text
    assert any("Tune in to your child" in text for text in every_channel(intents[BEN]))


def test_a_child_who_snoozes_is_reminded_in_the_childs_words() -> None:
    event = CheckInRecorded(checkin_id=uuid4(), occurrence_id=uuid4(), ritual_id=uuid4(),
                            template="parent_child_attunement", member_id=KID, status=CheckInStatus.SNOOZED,
                            snoozed_until=utc(2026, 11, 26, 20), scheduled_for=utc(2026, 11, 26, 19),
                            recorded_at=utc(2026, 11, 26, 19, 5), source=CheckInSource.LINK)
    [intent] = plan(make_envelope(event, household_id=HOUSEHOLD, producer="checkins"), FAMILY).intents
    assert intent.member_id == KID
    for text in every_channel(intent):
        assert not ADULT_WORDS.search(text), text


def test_a_member_without_a_channel_is_skipped_on_purpose_not_retried() -> None:
    now = utc(2026, 11, 26, 19)
    kid = decide(now=now, recipient=FAMILY[KID], routes=[], channel_index=0, expires_at=None, sent_today=0)
    assert (kid.action, kid.reason) == (Action.DROP, "no_channel")
    # An adult with no channel for this message is skipped the same way (issue 15): a channel added later
    # serves the next message; this one is not retried into a dead letter.
    parent = decide(now=now, recipient=FAMILY[BEN], routes=[], channel_index=0, expires_at=None, sent_today=0)
    assert (parent.action, parent.reason) == (Action.DROP, "no_channel")
    # A member not known here yet still waits (their MemberUpserted may be on its way).
    unknown = decide(now=now, recipient=None, routes=[], channel_index=0, expires_at=None, sent_today=0)
    assert (unknown.action, unknown.reason) == (Action.RETRY, "unknown_member")
    with_phone = decide(now=now, recipient=FAMILY[KID], routes=[ChannelRef(uuid4(), ChannelKind.PUSH, 0)],
                        channel_index=0, expires_at=None, sent_today=0)
    assert with_phone.action is Action.SEND


# ---- 2. summaries never show a sensitive ritual's real words ----------------------------------------


@pytest.mark.parametrize("step,title,text", [
    (3, "Try something new together",
     "Pick one small new thing to try together this week, and talk afterwards about what you both enjoyed."),
    (4, "Stay close afterwards",
     "Take a few unhurried minutes to stay close, cuddle and say something kind before getting on with the day."),
])
@pytest.mark.parametrize("discreet", [False, True])
def test_the_weekly_summary_shows_no_sensitive_ritual_by_its_real_words(step, title, text, discreet) -> None:
    members = {ANA: recipient(ANA, "Ana", discreet=discreet), BEN: recipient(BEN, "Ben", discreet=discreet)}
    ritual = uuid4()
    summary = WeeklySummary(
        week_start=date(2026, 11, 16), week_end=date(2026, 11, 22), tallies=[
            MemberRitualTally(member_id=ANA, ritual_id=ritual, template="experiment_together", kept=0, expected=1),
            MemberRitualTally(member_id=BEN, ritual_id=uuid4(), template="evening_attunement", kept=6, expected=7)],
        date_nights_kept_4w=4, date_nights_expected_4w=4, positive_moments=20, negative_moments=2, ratio=10.0,
        focus=SuggestedFocus(step=step, title=title, text=text))
    intents = plan(make_envelope(summary, household_id=HOUSEHOLD, producer="checkins"), members).intents
    assert len(intents) == 2
    for intent in intents:
        for rendered in every_channel(intent, neutral=discreet or intent.sensitive):
            assert title not in rendered and "Try something new" not in rendered, rendered
            assert not INTIMATE.search(rendered), rendered
    ana = by_member(intents)[ANA]
    if not discreet:
        email = render(ana.template, ana.params, ChannelKind.EMAIL, neutral=False)
        assert "Evening attunement" in email.html and "0 of 1" in email.html  # the rest of the summary stays
        push = render(ana.template, ana.params, ChannelKind.PUSH, neutral=False)
        assert "Focus: A " in push.body and "for the two of you" in push.body


def test_the_weekly_summary_keeps_an_ordinary_focus() -> None:
    members = {ANA: recipient(ANA, "Ana")}
    summary = WeeklySummary(
        week_start=date(2026, 11, 16), week_end=date(2026, 11, 22), tallies=[], date_nights_kept_4w=4,
        date_nights_expected_4w=4, positive_moments=20, negative_moments=2,
        focus=SuggestedFocus(step=5, title="Stay curious", text="Ask one open question a day."))
    [intent] = plan(make_envelope(summary, household_id=HOUSEHOLD, producer="checkins"), members).intents
    email = render(intent.template, intent.params, ChannelKind.EMAIL, neutral=False)
    assert "Stay curious" in email.html and "Ask one open question a day." in email.html


# ---- 3. a missed ritual's next chance fits its cadence -------------------------------------------


def _missed(template: str) -> list[str]:
    at = utc(2026, 11, 27, 19)
    event = RitualMissed(occurrence_id=uuid4(), ritual_id=uuid4(), template=template, participants=[ANA],
                         scheduled_for=at, deadline=at + timedelta(hours=12))
    [intent] = plan(make_envelope(event, household_id=HOUSEHOLD, producer="checkins"),
                    {ANA: recipient(ANA, "Ana")}).intents
    return every_channel(intent)


def test_a_missed_weekly_ritual_waits_for_next_week_not_tomorrow() -> None:
    for text in _missed("date_night"):
        assert not re.search(r"tomorrow|today", text, re.IGNORECASE), text
        assert re.search(r"next week", text, re.IGNORECASE), text


def test_a_missed_daily_ritual_waits_for_tomorrow() -> None:
    for text in _missed("evening_attunement"):
        assert "Tomorrow is another chance." in text, text


@pytest.mark.parametrize("template", ["six_second_kiss_morning", "a_custom_ritual"])
def test_a_missed_ritual_of_another_rhythm_gets_cadence_neutral_words(template) -> None:
    for text in _missed(template):
        assert not re.search(r"tomorrow|today|next week", text, re.IGNORECASE), text
        assert "next time" in text, text


def test_every_missed_nudge_fits_one_sms_segment_and_a_push_title() -> None:
    from attune_contracts import catalog

    for key in catalog.TEMPLATES:
        at = utc(2026, 11, 27, 19)
        event = RitualMissed(occurrence_id=uuid4(), ritual_id=uuid4(), template=key, participants=[ANA, KID],
                             scheduled_for=at, deadline=at + timedelta(hours=12))
        for intent in plan(make_envelope(event, household_id=HOUSEHOLD, producer="checkins"),
                           {ANA: recipient(ANA, "Ana"), KID: FAMILY[KID]}).intents:
            sms = render(intent.template, intent.params, ChannelKind.SMS, neutral=intent.sensitive)
            push = render(intent.template, intent.params, ChannelKind.PUSH, neutral=intent.sensitive)
            assert not sms.body.endswith("...") and len(sms.body) <= 160, sms
            assert not push.title.endswith("\u2026"), push

