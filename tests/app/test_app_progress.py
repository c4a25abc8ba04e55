"""'How we're doing': the charts' pure core (series, geometry, words) and the page over HTTP with the real store:
each chart has its words and table, a child sees no ratio, a date night one doesn't take part in is not shown."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from attune_app import charts
from attune_contracts.messages import (
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    DateNightAdherenceUpdated,
    MomentKind,
    MomentLogged,
    RitualScheduled,
    RitualState,
)

from .conftest import Harness
from .families import family_with_a_child
from .test_app_http import fact, started

pytestmark = [pytest.mark.unit]

LISBON = "Europe/Lisbon"


def at(day: date, hour: int = 20) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# ---- pure core ------------------------------------------------------------------------------------


def test_closeness_is_averaged_per_local_day_and_a_day_without_ratings_breaks_the_line() -> None:
    today = date(2026, 6, 28)
    ratings = [(at(date(2026, 6, 20)), 2), (at(date(2026, 6, 20), 21), 4),  # two on one day: mean 3
               (at(date(2026, 6, 21)), 4),
               (at(date(2026, 6, 24)), 5),  # after a gap
               (datetime(2026, 6, 24, 23, 30, tzinfo=UTC), 1),  # 00:30 in Lisbon: the 25th
               (at(date(2026, 5, 1)), 5)]  # before the window: left out
    points = charts.closeness_by_day(ratings, LISBON, today)
    assert [(p.day.day, p.mean, p.ratings) for p in points] == [(20, 3.0, 2), (21, 4.0, 1), (24, 5.0, 1), (25, 1.0, 1)]
    chart = charts.closeness_chart(points, today)
    assert len(chart.segments) == 2 and len(chart.segments[0].split()) == 2 and len(chart.segments[1].split()) == 2
    ys = {label: y for y, label in chart.grid}
    assert ys["5"] < ys["3"] < ys["1"]  # higher closeness is drawn higher
    assert chart.dots[2][1] == ys["5"] and chart.dots[3][1] == ys["1"]
    assert chart.dots[0][0] < chart.dots[1][0] < chart.dots[2][0] <= charts.WIDTH - charts.RIGHT
    assert chart.summary.startswith("In the last four weeks you rated how close you felt 5 times, 3.2 of 5")
    assert "(25 Jun, 1.0) is lower than the first (20 Jun, 3.0)" in chart.summary
    assert chart.rows[0] == ("20 Jun", "3.0", 2)


def test_no_closeness_ratings_says_how_to_start() -> None:
    chart = charts.closeness_chart([], date(2026, 6, 28))
    assert chart.segments == [] and chart.rows == [] and "When you check in" in chart.summary


def test_moments_are_counted_by_local_week_with_empty_weeks_kept() -> None:
    today = date(2026, 6, 25)  # a Thursday; weeks start 1, 8, 15, 22 June
    moments = [(at(date(2026, 6, 22)), "positive"), (at(date(2026, 6, 23)), "positive"),
               (at(date(2026, 6, 24)), "negative"),
               (at(date(2026, 6, 2)), "positive"),
               (datetime(2026, 6, 14, 23, 30, tzinfo=UTC), "negative"),  # Monday 15th 00:30 in Lisbon
               (at(date(2026, 5, 20)), "positive")]  # before the window
    weeks = charts.moments_by_week(moments, LISBON, today)
    assert [(w.week_start.day, w.positive, w.negative) for w in weeks] == [
        (1, 1, 0), (8, 0, 0), (15, 0, 1), (22, 2, 1)]
    assert [w.ratio_words for w in weeks] == ["no hard ones", "none logged", "0.0 to 1", "2.0 to 1"]
    chart = charts.moments_chart(weeks)
    assert len(chart.bars) == 8 and [b.hard for b in chart.bars[:2]] == [False, True]
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.value == 2 and tallest.y + tallest.height == chart.baseline
    empty = chart.bars[2]
    assert empty.value == 0 and empty.height == 0
    assert chart.summary == ("Over the last four weeks: 3 kind moments and 2 hard, about 1.5 to 1; the aim is about "
                             "five kind for each hard one. This week so far: 2 kind, 1 hard.")
    assert chart.rows[-1] == ("22 Jun", 2, 1, "2.0 to 1")


def test_date_nights_marks_and_words() -> None:
    nights = charts.DateNights("Date night", kept=3, expected=4, window_weeks=4)
    assert nights.marks == [True, True, True, False]
    assert nights.words == "Date night: 3 of 4 kept in the last four weeks."
    assert "Lovely" in charts.DateNights("Date night", 4, 4, 4).words
    assert charts.DateNights("Date night", 0, 0, 4).marks == []


# ---- the page -------------------------------------------------------------------------------------


async def _rated(h: Harness, household_id: UUID, member_id: UUID, rating: int, when: datetime) -> None:
    await fact(h, CheckInRecorded(
        checkin_id=uuid4(), occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement",
        member_id=member_id, status=CheckInStatus.DONE, closeness=rating, scheduled_for=when, recorded_at=when,
        source=CheckInSource.API), household_id, producer="checkins")


async def _date_night(h: Harness, household_id: UUID, participants: list[UUID]) -> UUID:
    ritual_id = uuid4()
    await fact(h, RitualScheduled(
        ritual_id=ritual_id, template="date_night", title="Date night", participants=participants,
        rrule="FREQ=WEEKLY;BYDAY=FR", local_time="19:30", start_date=h.clock.now().date(), time_zone=LISBON,
        reminder_offsets_minutes=[], catch_up_minutes=60, sensitive=False, state=RitualState.ACTIVE), household_id)
    return ritual_id


async def test_the_progress_page_draws_each_chart_with_its_words_and_table(harness: Harness) -> None:
    ana = harness.browser()
    household_id, ana_id = await started(harness, ana)
    ben_id = uuid4()
    now = harness.clock.now()
    await _rated(harness, household_id, ana_id, 4, now - timedelta(days=2))
    await _rated(harness, household_id, ana_id, 5, now - timedelta(days=1))
    await _rated(harness, household_id, ben_id, 1, now - timedelta(days=1))  # Ben's own: not on Ana's chart
    for kind in ("positive", "positive", "negative"):
        await fact(harness, MomentLogged(moment_id=uuid4(), member_id=ana_id, kind=MomentKind(kind),
                                         happened_at=now - timedelta(hours=1)), household_id, producer="checkins")
    ritual_id = await _date_night(harness, household_id, [ana_id, ben_id])
    await fact(harness, DateNightAdherenceUpdated(ritual_id=ritual_id, kept=3, expected=4), household_id,
               producer="checkins")
    page = await ana.get("/progress")
    assert page.status_code == 200
    text = page.text
    assert "Date night: 3 of 4 kept in the last four weeks." in text
    assert "rated how close you felt 2 times, 4.5 of 5 on average" in text
    assert text.count("<circle") >= 2 + 4  # two closeness dots, four date-night marks
    assert 'role="img" aria-labelledby="closeness-title closeness-words"' in text
    assert 'aria-labelledby="moments-title moments-words"' in text
    assert "2 kind moments and 1 hard, about 2.0 to 1" in text
    assert "<td>2</td><td>1</td><td>2.0 to 1</td>" in text
    assert re.search(r'<rect[^>]*fill="url\(#hatch\)"', text)  # hard moments are hatched, not only coloured
    # A redelivered fact changes nothing; a newer one replaces the count.
    await fact(harness, DateNightAdherenceUpdated(ritual_id=ritual_id, kept=4, expected=4), household_id,
               producer="checkins")
    assert "Date night: 4 of 4 kept" in (await ana.get("/progress")).text


async def test_a_date_night_one_does_not_take_part_in_is_not_shown(harness: Harness) -> None:
    ana = harness.browser()
    household_id, _ = await started(harness, ana)
    others = await _date_night(harness, household_id, [uuid4(), uuid4()])
    await fact(harness, DateNightAdherenceUpdated(ritual_id=others, kept=1, expected=4), household_id,
               producer="checkins")
    assert "1 of 4 kept" not in (await ana.get("/progress")).text


async def test_another_households_facts_never_reach_the_charts(harness: Harness) -> None:
    ana, cleo = harness.browser(), harness.browser()
    await started(harness, ana)
    household_c, cleo_id = await started(harness, cleo, name="Cleo & Dan", you="Cleo")
    await fact(harness, MomentLogged(moment_id=uuid4(), member_id=cleo_id, kind=MomentKind.NEGATIVE,
                                     happened_at=harness.clock.now()), household_c, producer="checkins")
    await _rated(harness, household_c, cleo_id, 2, harness.clock.now())
    page = (await ana.get("/progress")).text
    assert "No kind or hard moments logged in the last four weeks yet." in page
    assert "No closeness ratings in the last four weeks yet." in page


async def test_a_child_sees_no_ratio_and_a_childs_words(harness: Harness) -> None:
    home = await family_with_a_child(harness)
    household_id, parent_id, parent, zoe = home.household_id, home.parent_id, home.parent, home.child
    await fact(harness, MomentLogged(moment_id=uuid4(), member_id=parent_id, kind=MomentKind.NEGATIVE,
                                     happened_at=harness.clock.now()), household_id, producer="checkins")
    child_page = (await zoe.get("/progress")).text
    assert "How you felt, last four weeks" in child_page
    assert "hard" not in child_page.lower() and "moments-title" not in child_page
    assert "Kind and hard moments" in (await parent.get("/progress")).text
