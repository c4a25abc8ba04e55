"""Moments (and the 5:1 ratio they add up to) and achievements, for a member of a known household."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from attune_contracts.messages import (
    AchievementRecorded,
    LogMoment,
    MomentLogged,
    RatioDropped,
    RecordAchievement,
)

from . import service as rules
from .context import Context
from .events import CausedEvents
from .model import Achievement, Moment, Rejected
from .ports import UnitOfWork


async def member_of(uow: UnitOfWork, household_id: UUID, member_id: UUID) -> None:
    household = await uow.households.household(household_id)
    if household is None:
        raise Rejected(f"household {household_id} is unknown here (no HouseholdRegistered seen for it)")
    if member_id not in household.members:
        raise Rejected(f"member {member_id} is not in this household")


async def log_moment(app: Context, uow: UnitOfWork, caused: CausedEvents, household_id: UUID,
                     cmd: LogMoment, sent_at: datetime) -> bool:
    """Record a moment once (by its id); announce it, and a drop below 5:1 once per crossing."""
    now = app.clock.now()
    rules.nul_free(note=cmd.note)
    await member_of(uow, household_id, cmd.member_id)
    happened_at = cmd.happened_at or rules.as_utc(sent_at)
    if happened_at > now + timedelta(minutes=5):
        raise Rejected(f"happened_at {happened_at.isoformat()} is in the future")
    moment = Moment(cmd.moment_id, household_id, cmd.member_id, cmd.kind.value, cmd.note, happened_at, now)
    if not await uow.moments.add_moment(moment):
        return False  # the same moment id again: already counted
    app.metrics.moments.labels(cmd.kind.value).inc()
    caused.add(MomentLogged(moment_id=cmd.moment_id, member_id=cmd.member_id, kind=cmd.kind,
                            happened_at=happened_at))
    window = app.policy.ratio_window
    positive, negative = await uow.moments.moment_counts(household_id, now - window, now)
    was_below = await uow.moments.ratio_below(household_id)
    below, dropped = rules.ratio_transition(positive, negative, was_below=was_below,
                                            min_moments=app.policy.ratio_min_moments)
    if below != was_below:
        await uow.moments.set_ratio_below(household_id, below)
    if dropped:
        app.metrics.ratio_drops.inc()
        caused.add(RatioDropped(positive=positive, negative=negative, ratio=positive / negative,
                                window_days=window.days))
    return True


async def record_achievement(app: Context, uow: UnitOfWork, caused: CausedEvents, household_id: UUID,
                             cmd: RecordAchievement) -> None:
    rules.nul_free(dream=cmd.dream, note=cmd.note)
    await member_of(uow, household_id, cmd.member_id)
    achievement = Achievement(cmd.achievement_id, household_id, cmd.member_id, cmd.dream, cmd.note, app.clock.now())
    if await uow.achievements.add_achievement(achievement):
        caused.add(AchievementRecorded(achievement_id=cmd.achievement_id, member_id=cmd.member_id, dream=cmd.dream))
