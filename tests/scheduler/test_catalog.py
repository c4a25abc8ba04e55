"""The ritual catalog and the question bank are valid data the scheduler can fire."""

from __future__ import annotations

from datetime import date

import pytest
from attune_contracts.catalog import CURIOSITY_QUESTIONS, TEMPLATES, Audience
from attune_scheduler.recurrence import Recurrence

pytestmark = [pytest.mark.unit]

REQUIRED = {
    "evening_attunement", "date_night", "six_second_kiss_morning", "six_second_kiss_evening",
    "experiment_together", "after_intimacy", "curiosity_question", "dreams_checkin", "positive_moments",
    "parent_child_attunement",
}


def test_every_ritual_from_the_design_is_there() -> None:
    assert set(TEMPLATES) >= REQUIRED


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_template_is_complete_and_its_rhythm_is_schedulable(key: str) -> None:
    t = TEMPLATES[key]
    assert t.key == key and t.title and t.step
    assert 10 <= len(t.short_prompt) <= 120, "short prompts must fit a lock screen"
    assert len(t.long_prompt) > len(t.short_prompt)
    if t.sensitive:
        assert t.discreet_title and t.discreet_title != t.title
    if t.rhythm is not None:
        rec = Recurrence.of(t.rhythm.rrule, t.rhythm.local_time, date(2027, 1, 1), "Europe/London")
        assert rec.first(3)
    assert all(1 <= m <= 7 * 24 * 60 for m in t.reminder_offsets_minutes)
    assert 0 <= t.catch_up_minutes <= 24 * 60 and t.checkin_window_minutes > 0


def test_sensitivity_and_on_demand() -> None:
    assert TEMPLATES["experiment_together"].sensitive and TEMPLATES["after_intimacy"].sensitive
    assert not TEMPLATES["after_intimacy"].schedulable
    assert not TEMPLATES["date_night"].sensitive
    assert sorted(TEMPLATES["date_night"].reminder_offsets_minutes) == [240, 1440]  # on the day, the day before
    assert TEMPLATES["parent_child_attunement"].audience == (Audience.FAMILY,)


def test_question_bank() -> None:
    assert len(CURIOSITY_QUESTIONS) >= 30
    assert len(set(CURIOSITY_QUESTIONS)) == len(CURIOSITY_QUESTIONS)
    assert all(q.endswith("?") and len(q) < 200 for q in CURIOSITY_QUESTIONS)
    # Open-ended: not answerable with yes or no.
    closed_starts = ("do ", "are ", "is ", "did ", "have ", "can ", "will ", "would you ")
    assert not [q for q in CURIOSITY_QUESTIONS if q.lower().startswith(closed_starts)]
