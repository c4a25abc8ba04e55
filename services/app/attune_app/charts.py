"""The small charts of "How we're doing", pure: series from plain rows, then the geometry of a server-rendered SVG
and the words that say the same thing to a screen reader (and to anyone who would rather read than look).

No colour carries meaning alone: kind and hard moments are told apart by a filled bar and a hatched, outlined one,
each bar carries its number, and every chart comes with a sentence and a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

CLOSENESS_DAYS = 28
RATIO_WEEKS = 4

# One drawing size for every chart: the SVG scales to the page (320 px and up) through its viewBox.
WIDTH, HEIGHT = 300, 130
LEFT, RIGHT, TOP, BOTTOM = 26, 8, 10, 24


def _short(day: date) -> str:
    return f"{day.day} {day.strftime('%b')}"


# ---- closeness over time --------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCloseness:
    day: date
    mean: float
    ratings: int


def closeness_by_day(ratings: Iterable[tuple[datetime, int]], zone: str, today: date,
                     days: int = CLOSENESS_DAYS) -> list[DayCloseness]:
    """The mean of the ratings given on each of the household's local days in the window that ends today (days
    with no rating are left out: a gap, not a zero)."""
    tz, first = ZoneInfo(zone), today - timedelta(days=days - 1)
    by_day: dict[date, list[int]] = {}
    for at, rating in ratings:
        day = at.astimezone(tz).date()
        if first <= day <= today:
            by_day.setdefault(day, []).append(rating)
    return [DayCloseness(day, sum(r) / len(r), len(r)) for day, r in sorted(by_day.items())]


@dataclass(frozen=True)
class LineChart:
    segments: list[str]
    """SVG polyline points, one string per run of consecutive days (a day without a rating breaks the line)."""
    dots: list[tuple[float, float, str]]  # x, y, what the dot says (its SVG title)
    grid: list[tuple[float, str]]  # y, label
    ticks: list[tuple[float, str, str]]  # x, label, text-anchor (the ends stay inside the drawing)
    summary: str
    rows: list[tuple[str, str, int]]  # day, mean, how many ratings


def closeness_chart(points: Sequence[DayCloseness], today: date, days: int = CLOSENESS_DAYS) -> LineChart:
    first = today - timedelta(days=days - 1)
    span_x, span_y = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: date) -> float:
        return round(LEFT + span_x * (day - first).days / max(days - 1, 1), 1)

    def y(value: float) -> float:
        return round(TOP + span_y * (5 - value) / 4, 1)

    segments: list[list[str]] = []
    previous: date | None = None
    for point in points:
        if previous is None or (point.day - previous).days > 1:
            segments.append([])
        segments[-1].append(f"{x(point.day)},{y(point.mean)}")
        previous = point.day
    dots = [(x(p.day), y(p.mean), f"{_short(p.day)}: {p.mean:.1f} of 5") for p in points]
    grid = [(y(v), str(v)) for v in (1, 3, 5)]
    ticks = [(x(first + timedelta(days=d)), _short(first + timedelta(days=d)), anchor)
             for d, anchor in ((0, "start"), (days // 2, "middle"), (days - 1, "end"))]
    rows = [(_short(p.day), f"{p.mean:.1f}", p.ratings) for p in points]
    return LineChart([" ".join(s) for s in segments], dots, grid, ticks, closeness_words(points), rows)


def closeness_words(points: Sequence[DayCloseness]) -> str:
    if not points:
        return ("No closeness ratings in the last four weeks yet. When you check in, say how close you felt "
                "and it shows here.")
    total = sum(p.ratings for p in points)
    mean = sum(p.mean * p.ratings for p in points) / total
    words = (f"In the last four weeks you rated how close you felt {total} time{'' if total == 1 else 's'}, "
             f"{mean:.1f} of 5 on average")
    if len(points) >= 2:
        first, last = points[0], points[-1]
        trend = ("higher than" if last.mean > first.mean else "lower than" if last.mean < first.mean
                 else "the same as")
        words += f"; the latest day ({_short(last.day)}, {last.mean:.1f}) is {trend} the first ({_short(first.day)}, " \
                 f"{first.mean:.1f})"
    return words + "."


# ---- kind and hard moments by week ----------------------------------------------------------------


@dataclass(frozen=True)
class WeekMoments:
    week_start: date
    positive: int
    negative: int

    @property
    def ratio_words(self) -> str:
        if self.negative == 0:
            return "no hard ones" if self.positive else "none logged"
        return f"{self.positive / self.negative:.1f} to 1"


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def moments_by_week(moments: Iterable[tuple[datetime, str]], zone: str, today: date,
                    weeks: int = RATIO_WEEKS) -> list[WeekMoments]:
    """Kind and hard moments in each of the last `weeks` local weeks (Monday first), oldest first, empty weeks
    included (a week with nothing logged is worth seeing too)."""
    tz, this_week = ZoneInfo(zone), week_start(today)
    starts = [this_week - timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]
    counts = {start: [0, 0] for start in starts}
    for at, kind in moments:
        start = week_start(at.astimezone(tz).date())
        if start in counts and kind in ("positive", "negative"):
            counts[start][0 if kind == "positive" else 1] += 1
    return [WeekMoments(start, *counts[start]) for start in starts]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    hard: bool


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # x (centre of the week), label
    baseline: float
    summary: str
    rows: list[tuple[str, int, int, str]]  # week of, kind, hard, ratio words


def moments_chart(weeks: Sequence[WeekMoments]) -> BarChart:
    top = max([1, *(w.positive for w in weeks), *(w.negative for w in weeks)])
    span_x, span_y = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM - 12  # room for the numbers above the bars
    slot = span_x / max(len(weeks), 1)
    width = round(slot * 0.32, 1)
    baseline = HEIGHT - BOTTOM
    bars, ticks = [], []
    for i, week in enumerate(weeks):
        centre = LEFT + slot * (i + 0.5)
        for value, hard, left in ((week.positive, False, centre - width - 1), (week.negative, True, centre + 1)):
            height = round(span_y * value / top, 1)
            bars.append(Bar(round(left, 1), round(baseline - height, 1), width, height, value, hard))
        ticks.append((round(centre, 1), _short(week.week_start)))
    rows = [(_short(w.week_start), w.positive, w.negative, w.ratio_words) for w in weeks]
    return BarChart(bars, ticks, baseline, moments_words(weeks), rows)


def moments_words(weeks: Sequence[WeekMoments]) -> str:
    positive, negative = sum(w.positive for w in weeks), sum(w.negative for w in weeks)
    if positive == negative == 0:
        return "No kind or hard moments logged in the last four weeks yet."
    words = f"Over the last four weeks: {positive} kind moment{'' if positive == 1 else 's'} and {negative} hard"
    if negative:
        ratio = positive / negative
        words += (f", about {ratio:.1f} to 1" + (": right where it helps most" if ratio >= 5
                                                  else "; the aim is about five kind for each hard one"))
    latest = weeks[-1]
    return words + f". This week so far: {latest.positive} kind, {latest.negative} hard."


# ---- date nights kept -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DateNights:
    title: str
    kept: int
    expected: int
    window_weeks: int

    @property
    def marks(self) -> list[bool]:
        """One mark per expected date night: kept first (a filled circle with a tick), then the rest (a ring)."""
        kept = min(self.kept, self.expected)
        return [True] * kept + [False] * (self.expected - kept)

    @property
    def words(self) -> str:
        weeks = "four weeks" if self.window_weeks == 4 else f"{self.window_weeks} weeks"
        if self.expected == 0:
            return f"{self.title}: none were due in the last {weeks}."
        tail = " Lovely: keep it going." if self.kept >= self.expected else ""
        return f"{self.title}: {self.kept} of {self.expected} kept in the last {weeks}.{tail}"
