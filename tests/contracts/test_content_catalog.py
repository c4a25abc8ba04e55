"""The one content catalog: every text a member may read is translated in every language (issue 15)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from attune_contracts import catalog, content

pytestmark = [pytest.mark.unit]

TRANSLATED = [language for language in content.LANGUAGES if language != content.SOURCE_LANGUAGE]


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_key_has_a_translation_with_the_same_placeholders(language: str) -> None:
    assert content.catalog_problems(language) == []


def test_a_message_key_lacking_a_translation_is_found(tmp_path: Path) -> None:
    po = content.po_path("de").read_text(encoding="utf-8")
    entry = 'msgid "Date night"\nmsgstr "Date-Abend"\n'
    assert entry in po
    gap = tmp_path / "gap.po"
    gap.write_text(po.replace(entry, 'msgid "Date night"\nmsgstr ""\n'), encoding="utf-8")
    assert content.catalog_problems("de", gap) == ["de: no translation of 'Date night'"]
    wrong = tmp_path / "wrong.po"
    wrong.write_text(po.replace('msgstr "Bald: {ritual}"', 'msgstr "Bald: {ritul}"'), encoding="utf-8")
    assert content.catalog_problems("de", wrong) == [
        "de: 'Coming up: {ritual}' -> 'Bald: {ritul}' changes the placeholders"]


def test_the_catalog_covers_every_ritual_reader_situation_and_question() -> None:
    ids = set(content.msgids())
    for template in catalog.TEMPLATES.values():
        assert {template.title, template.short_prompt, template.long_prompt} <= ids
        for role in ("partner", "parent", "child"):
            words = content.ritual_words(template.key, role)
            assert {words.title, words.prompt} <= ids
    assert set(catalog.CURIOSITY_QUESTIONS) <= ids
    for situation in content.SITUATIONS.values():
        assert situation.title in ids or situation.title == "{title}"
    for title, text in content.FOCUS_STEPS.values():
        assert {title, text} <= ids


def test_a_german_member_reads_german_and_anything_unknown_passes_through() -> None:
    tr = content.translator("de-DE")
    assert tr("Date night") == "Date-Abend"
    assert tr("Tomorrow is another chance.") == "Morgen ist eine neue Chance."
    assert tr("Our Friday pizza") == "Our Friday pizza"  # a ritual the household named itself
    assert content.translator("en-US")("Date night") == "Date night"
    assert content.translator("fr")("Date night") == "Date night"  # no French catalog yet: English words
    assert tr("") == ""  # not the catalog's header


@pytest.mark.parametrize("locale,when,day", [
    ("en-US", "7:00 PM on Friday", "November 27, 2026"),
    ("en-GB", "19:00 on Friday", "27 November 2026"),
    ("de", "Freitag um 19:00", "27. November 2026"),
    ("de-AT", "Freitag um 19:00", "27. November 2026"),
    (None, "19:00 on Friday", "27 November 2026"),
    ("not a locale", "19:00 on Friday", "27 November 2026"),
])
def test_times_and_dates_follow_the_locale(locale: str | None, when: str, day: str) -> None:
    at = datetime(2026, 11, 27, 19, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert content.format_when(at, locale) == when
    assert content.format_day(date(2026, 11, 27), locale) == day


@pytest.mark.parametrize("rrule,cadence", [
    ("FREQ=DAILY", "daily"), ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU", "daily"), ("FREQ=WEEKLY;BYDAY=FR", "weekly"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", None), ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", None), (None, None),
])
def test_cadence_of_a_rule(rrule: str | None, cadence: str | None) -> None:
    assert content.cadence_of(rrule) == cadence


# A question word, so the question can't be answered with a plain yes or no (in German: W-Fragen).
OPEN = {"en": r"\b(what|which|how|who|where|when|why)\b", "de": r"\b(was|wie|wo\w*|welch\w*|wer|wem|wen|wann|warum)\b"}


def test_the_question_banks_are_big_open_ended_distinct_and_in_three_depths() -> None:
    import re

    assert len(catalog.CURIOSITY_QUESTIONS) >= 150 and len(catalog.CHILD_QUESTIONS) >= 30
    assert set(catalog.QUESTION_DEPTHS) == {"light", "deeper", "dreams"}
    assert sum(catalog.QUESTION_DEPTHS.values(), ()) == catalog.CURIOSITY_QUESTIONS
    everything = catalog.CURIOSITY_QUESTIONS + catalog.CHILD_QUESTIONS
    assert len(set(everything)) == len(everything)  # no question twice, not even across the banks
    assert {catalog.question_depth(q) for q in catalog.QUESTIONS_DREAMS} == {"dreams"}
    tr = content.translator("de-DE")
    closed = []
    for question in everything:
        german = tr(question)
        assert question.endswith("?") and german.endswith("?") and german != question
        if not re.search(OPEN["en"], question, re.IGNORECASE) or not re.search(OPEN["de"], german, re.IGNORECASE):
            closed.append(f"{question} / {german}")
    assert closed == []
    assert tr(catalog.parent_asks("What made you laugh today?")) == "Frag dein Kind: Worüber hast du heute gelacht?"
