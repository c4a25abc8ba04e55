"""What the HTTP API reads: a household's summary, its history and everything held about it (export)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from . import service as rules
from .context import Context
from .model import CheckIn
from .ports import UnitOfWork


async def summary(app: Context, household_id: UUID) -> dict[str, Any] | None:
    now = app.clock.now()
    async with app.uow() as uow:
        household = await uow.households.household(household_id)
        if household is None:
            return None
        week_start = rules.week_start_of(rules.local_date_of(now, household.time_zone))
        data = await week_data(uow, household_id, week_start, now)
        week = rules.weekly_summary(week_start, data, now)
        positive, negative = await uow.moments.moment_counts(household_id, now - app.policy.ratio_window, now)
        streaks = await uow.rituals.household_streaks(household_id)
    return {
        "household_id": str(household_id),
        "time_zone": household.time_zone,
        "members": sorted(str(m) for m in household.members),
        "this_week": week.model_dump(mode="json"),
        "streaks": [
            {"ritual_id": str(s["ritual_id"]), "template": s["template"], "unit": s["unit"],
             "length": s["length"], "best": s["best"],
             **({"date_nights_kept_4w": s["adherence_kept"], "date_nights_expected_4w": s["adherence_expected"]}
                if s["adherence_kept"] is not None else {})}
            for s in streaks
        ],
        "ratio": {"window_days": app.policy.ratio_window.days, "positive": positive, "negative": negative,
                  "ratio": rules.ratio_of(positive, negative)},
    }


async def export(app: Context, household_id: UUID) -> dict[str, Any] | None:
    async with app.uow() as uow:
        household = await uow.households.household(household_id)
        if household is None:
            return None
        checkins, _ = await uow.checkins.history(household_id, offset=0, limit=10_000_000)
        moments = await uow.moments.moments(household_id)
        achievements = await uow.achievements.achievements(household_id)
        streaks = await uow.rituals.household_streaks(household_id)
        dreams, supports = await uow.dreams.all(household_id)
        consented, aftercare = await uow.aftercare.consented(household_id), await uow.aftercare.moments(household_id)
    return {
        "household_id": str(household_id), "time_zone": household.time_zone,
        "exported_at": app.clock.now().isoformat(),
        "members": sorted(str(m) for m in household.members),
        "checkins": [checkin_json(c) for c in checkins],
        "moments": [{"moment_id": str(m.moment_id), "member_id": str(m.member_id), "kind": m.kind,
                     "note": m.note, "happened_at": m.happened_at.isoformat()} for m in moments],
        "achievements": [{"achievement_id": str(a.achievement_id), "member_id": str(a.member_id),
                          "dream": a.dream, "note": a.note, "recorded_at": a.recorded_at.isoformat()}
                         for a in achievements],
        "streaks": [{k: (str(v) if isinstance(v, UUID) else v) for k, v in s.items() if k != "household_id"}
                    for s in streaks],
        # the dreams board (a dream's note is its author's, like every note) and "we just connected": who said
        # yes and when each after-care started (nothing else is kept of it)
        "dreams": [{"dream_id": str(d.dream_id), "member_id": str(d.member_id), "dream": d.dream, "note": d.note,
                    "shared_at": d.shared_at.isoformat(),
                    "reached_at": d.reached_at.isoformat() if d.reached_at else None} for d in dreams],
        "dream_supports": [{"dream_id": str(d), "supporter_id": str(m), "supported_at": at.isoformat()}
                           for d, m, at in supports],
        "aftercare": {"consented": sorted(str(m) for m in consented),
                      "started": [{"moment_id": str(m), "started_by": str(by), "started_at": at.isoformat()}
                                  for m, by, at in aftercare]},
    }


async def week_data(uow: UnitOfWork, household_id: UUID, week_start: date, until: datetime) -> rules.WeekData:
    household = await uow.households.household(household_id)
    zone = ZoneInfo(household.time_zone if household else "UTC")
    week_end = week_start + timedelta(days=6)
    occurrences = await uow.occurrences.household_occurrences(household_id, week_start - timedelta(days=21), week_end)
    done_by = await uow.occurrences.done_by(o.occurrence_id for o in occurrences)
    week_begins = datetime.combine(week_start, dtime(0), tzinfo=zone)
    moments = await uow.moments.moments(household_id, week_begins, until)
    achievements = await uow.achievements.achievements(household_id, until - timedelta(days=28))
    return rules.WeekData(occurrences, done_by, moments, len(achievements))


def checkin_json(c: CheckIn) -> dict[str, Any]:
    return {
        "checkin_id": str(c.checkin_id), "occurrence_id": str(c.occurrence_id), "member_id": str(c.member_id),
        "ritual_id": str(c.ritual_id), "template": c.template, "status": c.status.value,
        "snoozed_until": c.snoozed_until.isoformat() if c.snoozed_until else None, "closeness": c.closeness,
        "note": c.note, "source": c.source.value, "scheduled_for": c.scheduled_for.isoformat(),
        "submitted_at": c.submitted_at.isoformat(), "recorded_at": c.recorded_at.isoformat(),
    }
