"""Every message in every language (issue 15): the limits of each channel, a German member's German words and
24-hour clock, an en-US member's 12-hour clock, discreet mode in every language, and one golden file a person
can read (tests/notifier/golden/messages.md; ATTUNE_UPDATE_GOLDEN=1 rewrites it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import pytest
from attune_contracts import catalog, content, make_envelope
from attune_contracts.messages import (
    AchievementRecorded,
    ChannelKind,
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    MemberRitualTally,
    MilestoneReached,
    RatioDropped,
    RitualDue,
    RitualMissed,
    RitualReminder,
    StreakUnit,
    SuggestedFocus,
    WeeklySummary,
)
from attune_notifier.service import Intent, Recipient, localise, plan, render, sms_segment_limit

from .conftest import ANA, BEN, HOUSEHOLD, utc

pytestmark = [pytest.mark.unit]

KID = UUID("00000000-0000-4000-8000-00000000c1d0")
LOCALES = ("en_GB", "en_US", "de_DE")
GOLDEN = Path(__file__).with_name("golden") / "messages.md"
NS = UUID("4b0c9d3e-2f7a-4c55-9e61-0d8f7a3b2c10")
AT = utc(2026, 11, 25, 18)  # a Wednesday, 19:00 in Berlin
LOCAL = "2026-11-25T19:00:00+01:00"


def _id(*parts: object) -> UUID:
    return uuid5(NS, "|".join(map(str, parts)))


def members_for(template: str, *, discreet: bool = False) -> dict[UUID, Recipient]:
    family = catalog.Audience.FAMILY in catalog.TEMPLATES[template].audience
    if family:
        return {BEN: Recipient(BEN, HOUSEHOLD, "Benedikt", role="parent", discreet=discreet),
                KID: Recipient(KID, HOUSEHOLD, "Kim", role="child", discreet=discreet)}
    return {ANA: Recipient(ANA, HOUSEHOLD, "Alexandra", discreet=discreet),
            BEN: Recipient(BEN, HOUSEHOLD, "Benedikt", discreet=discreet)}


def ritual_events(template: str, participants: list[UUID]) -> Iterator[tuple[str, Any]]:
    known = catalog.TEMPLATES[template]
    occurrence, ritual = _id("occ", template), _id("ritual", template)
    facts = {"occurrence_id": occurrence, "ritual_id": ritual, "template": template, "title": known.title,
             "participants": participants, "scheduled_for": AT, "local_time": LOCAL, "time_zone": "Europe/Berlin",
             "sensitive": known.sensitive}
    yield "reminder ahead", RitualReminder(**facts, reminder_id=_id("rem", template), offset_minutes=24 * 60,
                                           remind_at=AT - timedelta(days=1))
    yield "due", RitualDue(**facts, deadline=AT + timedelta(hours=12))
    yield "partner kept it", CheckInRecorded(
        checkin_id=_id("ci", template), occurrence_id=occurrence, ritual_id=ritual, template=template,
        member_id=participants[0], status=CheckInStatus.DONE, scheduled_for=AT, recorded_at=AT,
        source=CheckInSource.LINK)
    yield "missed", RitualMissed(occurrence_id=occurrence, ritual_id=ritual, template=template,
                                 participants=participants, scheduled_for=AT, deadline=AT + timedelta(hours=12),
                                 sensitive=known.sensitive)
    yield "streak milestone", MilestoneReached(ritual_id=ritual, template=template, length=12, unit=StreakUnit.DAYS)


def household_events() -> Iterator[tuple[str, Any]]:
    yield "ratio gentle nudge", RatioDropped(positive=12, negative=4, ratio=3.0, window_days=14)
    yield "dream achieved", AchievementRecorded(achievement_id=_id("ach"), member_id=ANA,
                                                dream="Run the Berlin half marathon")
    tallies = [MemberRitualTally(member_id=m, ritual_id=_id("ritual", t), template=t, kept=5, expected=7)
               for m in (ANA, BEN) for t in ("evening_attunement", "date_night", "experiment_together")]
    for step in (2, 3):
        title, text = content.FOCUS_STEPS[step]
        yield f"weekly summary, focus step {step}", WeeklySummary(
            week_start=date(2026, 11, 16), week_end=date(2026, 11, 22), tallies=tallies, date_nights_kept_4w=3,
            date_nights_expected_4w=4, positive_moments=20, negative_moments=3, ratio=6.7,
            focus=SuggestedFocus(step=step, title=title, text=text))


def planned(event: Any, members: dict[UUID, Recipient]) -> list[Intent]:
    env = make_envelope(event, household_id=HOUSEHOLD, producer="checkins", event_id=_id("event", repr(event)))
    return sorted(plan(env, members).intents, key=lambda i: str(i.member_id))


def every_message() -> Iterator[tuple[str, Intent, Recipient]]:
    """(label, intent, reader) for every ritual x reader x situation, then the household's own messages."""
    for template in catalog.TEMPLATES:
        members = members_for(template)
        for situation, event in ritual_events(template, list(members)):
            roles = set()
            for intent in planned(event, members):
                reader = members[intent.member_id]
                if reader.role not in roles:  # one of each reader: both partners read the same words
                    roles.add(reader.role)
                    yield f"{template} · {reader.role} · {situation}", intent, reader
    members = members_for("date_night")
    for situation, event in household_events():
        for intent in planned(event, members)[:1]:
            yield f"household · partner · {situation}", intent, members[intent.member_id]


def neutral(intent: Intent, reader: Recipient) -> bool:
    return intent.sensitive or reader.discreet


# ---- limits -----------------------------------------------------------------------------------------------


def unclipped(intent: Intent, locale: str) -> dict[str, str]:
    """The texts a render starts from, before any clipping: what must fit each channel's limit."""
    tr = content.translator(locale)
    if intent.sensitive:
        title = tr(intent.params.get("discreet_title") or content.NEUTRAL_TITLE)
        return {"title": title, "body": tr(content.NEUTRAL_BODY), "sms": f"Attune: {title}. {tr(content.NEUTRAL_BODY)}",
                "subject": title}
    situation = content.SITUATIONS[intent.template]
    words = localise(intent.params, locale)

    class Blank(dict):  # type: ignore[type-arg]
        def __missing__(self, key: str) -> str:
            return ""

    filled = Blank(words)
    return {part: tr(getattr(situation, part)).format_map(filled) for part in ("title", "body", "sms", "subject")}


def over_limits(label: str, intent: Intent) -> Iterator[str]:
    """What of one message exceeds its channel's limit, in any language."""
    for locale in LOCALES:
        for part, text in unclipped(intent, locale).items():
            if part == "sms":
                folded = render(intent.template, intent.params, ChannelKind.SMS, neutral=intent.sensitive,
                                locale=locale).body
                limit = sms_segment_limit(text.translate({0x201E: '"', 0x201C: '"', 0x201D: '"'}))
                if len(text) > limit or folded.endswith("..."):
                    yield f"{label} [{locale}] sms {len(text)}>{limit}: {text}"
            elif len(text) > content.LIMITS[part]:
                yield f"{label} [{locale}] {part} {len(text)}>{content.LIMITS[part]}: {text}"


def test_every_message_fits_its_channel_in_every_language() -> None:
    over = []
    for label, intent, _ in every_message():
        over += over_limits(label, intent)
    assert over == []


def question_messages() -> Iterator[tuple[str, Intent, Recipient]]:
    """Today's question as each reader gets it: every adult question (curiosity_question), every question of the
    child's bank as the child reads it and as the parent is asked to put it (parent_child_attunement)."""
    for template, questions, kw in (("curiosity_question", catalog.CURIOSITY_QUESTIONS, "question"),
                                    ("parent_child_attunement", catalog.CHILD_QUESTIONS, "child_question")):
        members = members_for(template)
        due = next(event for situation, event in ritual_events(template, list(members)) if situation == "due")
        env = make_envelope(due, household_id=HOUSEHOLD, producer="scheduler", event_id=_id("event", template))
        for question in questions:
            for intent in plan(env, members, **{kw: question}).intents:
                reader = members[intent.member_id]
                yield f"{template} · {reader.role} · {question}", intent, reader


def test_every_question_fits_a_push_and_one_sms_with_its_lead_in_in_every_language() -> None:
    seen, over = set(), []
    for label, intent, _ in question_messages():
        seen.add(intent.params["prompt"])
        over += over_limits(label, intent)
    assert over == []
    assert set(catalog.CURIOSITY_QUESTIONS) | set(catalog.CHILD_QUESTIONS) <= seen
    assert {catalog.parent_asks(q) for q in catalog.CHILD_QUESTIONS} <= seen


def test_a_text_over_its_limit_is_caught() -> None:
    _, intent, _ = next(m for m in every_message() if m[1].template == "ritual_due")
    long_title = dict(intent.params, ritual="A ritual whose household gave it a very long name indeed, far too long")
    long = Intent(**{**intent.__dict__, "params": long_title})
    assert len(unclipped(long, "de_DE")["title"]) > content.LIMITS["title"]
    push = render(long.template, long.params, ChannelKind.PUSH, neutral=False, locale="de_DE")
    assert len(push.title) <= content.LIMITS["title"] and push.title.endswith("\u2026")


def test_the_limit_check_fails_on_a_text_too_long_in_one_language(monkeypatch: pytest.MonkeyPatch) -> None:
    """A translation that no longer fits a lock screen is caught, named by language and channel."""
    _, intent, _ = next(m for m in every_message() if m[1].template == "ritual_due" and not m[1].sensitive)
    assert list(over_limits("due", intent)) == []
    real, title = content.translator, content.SITUATIONS["ritual_due"].title
    wordy = "Zeit für euer Ritual, das heute ansteht: {ritual}"

    def translator(locale: str | None) -> Any:
        tr = real(locale)
        german = content.normalise_locale(locale).startswith("de")
        return lambda text: wordy if german and text == title else tr(text)

    monkeypatch.setattr(content, "translator", translator)
    over = list(over_limits("due", intent))
    assert len(over) == 1 and "[de_DE] title" in over[0], over


# ---- language and clock -------------------------------------------------------------------------------


def _reminder(locale: str) -> dict[ChannelKind, Any]:
    members = {ANA: Recipient(ANA, HOUSEHOLD, "Ana", locale=locale)}
    event = dict(ritual_events("date_night", [ANA]))["reminder ahead"]
    [intent] = planned(event, members)
    return {kind: render(intent.template, intent.params, kind, neutral=False, link="https://x/l/tok",
                         locale=members[ANA].locale) for kind in ChannelKind}


def test_a_german_member_gets_german_words_and_a_24_hour_clock() -> None:
    push, sms, email = (_reminder("de_DE")[k] for k in (ChannelKind.PUSH, ChannelKind.SMS, ChannelKind.EMAIL))
    assert push.title == "Bald: Date-Abend"
    assert push.body.startswith("Date-Abend: Mittwoch um 19:00. Nur ihr zwei")
    assert "Erledigt: https://x/l/tok" in push.body
    assert sms.body == "Attune: Date-Abend, Mittwoch um 19:00."
    assert email.title == "Bald: Date-Abend, Mittwoch um 19:00"
    assert "<h3>Warum es hilft</h3><p>Hört nicht auf, miteinander auszugehen" in email.html
    assert "Als erledigt markieren" in email.html
    for message in (push, sms, email):
        text = message.title + message.body + (message.html or "")
        assert not re.search(r"\b(PM|AM|Wednesday|Coming up|Date night)\b", text), text


def test_an_en_us_member_gets_a_12_hour_clock_and_en_gb_a_24_hour_one() -> None:
    us = _reminder("en_US")
    assert us[ChannelKind.PUSH].body.startswith("Date night is at 7:00 PM on Wednesday.")
    assert us[ChannelKind.SMS].body == "Attune: Date night at 7:00 PM on Wednesday."
    assert "19:00" not in us[ChannelKind.EMAIL].body
    assert "Why it helps" in us[ChannelKind.EMAIL].html and "weekly date night" in us[ChannelKind.EMAIL].body
    gb = _reminder("en_GB")
    assert gb[ChannelKind.PUSH].body.startswith("Date night is at 19:00 on Wednesday.")


def test_a_renamed_ritual_keeps_its_own_name_in_german() -> None:
    members = {ANA: Recipient(ANA, HOUSEHOLD, "Ana", locale="de")}
    facts = dict(ritual_events("date_night", [ANA]))["due"].model_dump()
    [intent] = planned(RitualDue(**{**facts, "title": "Pizza Friday"}), members)
    push = render(intent.template, intent.params, ChannelKind.PUSH, neutral=False, locale="de")
    assert push.title == "Pizza Friday" and push.body.startswith("Nur ihr zwei")


def test_the_weekly_summary_is_in_the_members_language_and_calendar() -> None:
    members = {m: Recipient(m, HOUSEHOLD, n, locale="de_DE") for m, n in ((ANA, "Ana"), (BEN, "Ben"))}
    summary = dict(household_events())["weekly summary, focus step 2"]
    intent = planned(summary, members)[0]
    email = render(intent.template, intent.params, ChannelKind.EMAIL, neutral=False, locale="de_DE")
    assert email.title == "Eure Woche: 16. November 2026 bis 22. November 2026"
    assert "<td>Abendliches Einstimmen</td><td>5 von 7</td>" in email.html
    assert "<td>Eine Kleinigkeit für euch zwei</td>" in email.html  # the sensitive ritual by its discreet title
    assert "<h3>Weiter miteinander ausgehen</h3>" in email.html


@pytest.mark.parametrize("cadence,words", [
    ("daily", "Tomorrow is another chance."), ("weekly", "Next week is another chance."),
    ("other", "There's always a next time."), (None, "Next week is another chance."),  # date night's default
])
def test_a_missed_ritual_is_worded_by_the_households_own_cadence(cadence: str | None, words: str) -> None:
    members = {ANA: Recipient(ANA, HOUSEHOLD, "Ana")}
    event = dict(ritual_events("date_night", [ANA]))["missed"].model_copy(update={"cadence": cadence})
    [intent] = planned(event, members)
    assert words in render(intent.template, intent.params, ChannelKind.PUSH, neutral=False).body


# ---- discreet mode, every language --------------------------------------------------------------------

INTIMATE = re.compile(r"kiss|sex|cuddl|intima|love|bed|naked|touch|experiment|stay close|hold each other|"
                      r"kuss|küss|kuschel|intim|schlafzimmer|bett|berühr|nah beieinander|ausprobier|haltet einander",
                      re.IGNORECASE)


@pytest.mark.parametrize("template", [k for k, t in catalog.TEMPLATES.items() if t.sensitive])
@pytest.mark.parametrize("discreet", [False, True])
def test_no_sensitive_ritual_shows_its_real_words_anywhere_in_any_language(template: str, discreet: bool) -> None:
    known = catalog.TEMPLATES[template]
    members = members_for(template, discreet=discreet)
    focus_title, focus_text = content.FOCUS_STEPS[int(known.step[:1])]
    tallies = [MemberRitualTally(member_id=m, ritual_id=_id("ritual", template), template=template, kept=0,
                                 expected=1) for m in members]
    summary = WeeklySummary(week_start=date(2026, 11, 16), week_end=date(2026, 11, 22), tallies=tallies,
                            date_nights_kept_4w=4, date_nights_expected_4w=4, positive_moments=20,
                            negative_moments=2, focus=SuggestedFocus(step=int(known.step[:1]), title=focus_title,
                                                                     text=focus_text))
    snoozed = CheckInRecorded(checkin_id=_id("snz"), occurrence_id=_id("occ", template), ritual_id=_id("ritual", template),
                              template=template, member_id=ANA, status=CheckInStatus.SNOOZED,
                              snoozed_until=AT + timedelta(hours=1), scheduled_for=AT, recorded_at=AT,
                              source=CheckInSource.LINK)
    events = [*(e for _, e in ritual_events(template, list(members))), snoozed, summary]
    kinds = set()
    for event in events:
        for intent in planned(event, members):
            kinds.add(intent.purpose)
            for locale in LOCALES:
                tr = content.translator(locale)
                real = [tr(known.title), tr(known.short_prompt), tr(known.long_prompt), tr(focus_title), tr(focus_text)]
                for kind in ChannelKind:
                    m = render(intent.template, intent.params, kind, link="https://x/l/tok", locale=locale,
                               neutral=neutral(intent, members[intent.member_id]))
                    text = f"{m.title}\n{m.body}\n{m.html or ''}"
                    assert not any(words in text for words in real), (intent.purpose, locale, text)
                    assert not INTIMATE.search(text.replace("https://x/l/tok", "")), (intent.purpose, locale, text)
    assert kinds == {"ritual_reminder", "ritual_due", "partner_checkin", "missed_nudge", "milestone",
                     "snoozed_reminder", "weekly_summary"}


# ---- the golden file ----------------------------------------------------------------------------------


def golden() -> str:
    out = ["# Every message, every language",
           "",
           "Generated by tests/notifier/test_i18n.py (`ATTUNE_UPDATE_GOLDEN=1` rewrites it); read it to review the",
           "words. Each block: the push (title / body), the SMS, the email (subject / plain text; the HTML says the",
           "same). Sensitive rituals show their discreet words, as every channel does. Links left out.",
           ""]
    for label, intent, reader in every_message():
        for locale in LOCALES:
            push, sms, email = (render(intent.template, intent.params, kind, locale=locale,
                                       neutral=neutral(intent, reader)) for kind in ChannelKind)
            out += [f"## {label} · {locale}", "", "```",
                    f"push:    {push.title}", *(f"         {line}" for line in push.body.splitlines()),
                    f"sms:     {sms.body}",
                    f"subject: {email.title}", *(f"         {line}" for line in email.body.splitlines() if line),
                    "```", ""]
    out += ["# Today's question: every question, every language", "",
            "The push body of each question as its reader gets it (curiosity_question by depth; the child's bank of",
            "parent_child_attunement as the child and as the parent read it); the title and channels are as above.", ""]
    sections: dict[str, list[str]] = {}
    for label, intent, reader in question_messages():
        template = label.split(" · ")[0]
        kind = catalog.question_depth(intent.params["prompt"]) if template == "curiosity_question" else reader.role
        lines = sections.setdefault(f"{template} · {kind}", [])
        body = render("ritual_due", intent.params, ChannelKind.PUSH, locale="en_GB", neutral=neutral(intent, reader)).body
        if f"en_GB: {body}" in lines:
            continue  # both partners read the same words
        for locale in LOCALES[::2]:  # en_GB and de_DE: en_US reads the same words
            lines.append(f"{locale}: " + render("ritual_due", intent.params, ChannelKind.PUSH, locale=locale,
                                                neutral=neutral(intent, reader)).body)
    for section, lines in sections.items():
        out += [f"## {section} ({len(lines) // 2})", "", "```", *lines, "```", ""]
    out += ["# The one-tap link pages: every text, every language", "",
            "What the check-ins service shows after a Done / Skip / Snooze link or an SMS's short link is tapped, in",
            "the language of the message it came in (content.LINK_PAGE; {placeholders} as the page fills them).", "",
            "```"]
    for key, text in content.LINK_PAGE.items():
        out += [f"{key}:", *(f"  {locale}: {content.translator(locale)(text)}" for locale in LOCALES[::2])]
    out += ["```", ""]
    return "\n".join(out)


def test_the_golden_file_shows_every_message_as_rendered() -> None:
    text = golden()
    if os.environ.get("ATTUNE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.read_text(encoding="utf-8") == text, "stale: run with ATTUNE_UPDATE_GOLDEN=1 and review the diff"


def test_a_partner_the_notifier_does_not_know_is_your_partner_in_german() -> None:
    members = {BEN: Recipient(BEN, HOUSEHOLD, "Ben", locale="de")}  # Ana checked in; she is not known here yet
    event = dict(ritual_events("date_night", [ANA, BEN]))["partner kept it"]
    [intent] = planned(event, members)
    push = render(intent.template, intent.params, ChannelKind.PUSH, neutral=False, locale="de")
    assert push.title == "Dein Schatz: Date-Abend erledigt"  # warm, and right for a partner of any gender
