"""How the check-ins use cases are tuned (from the settings; tests shorten the waits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Policy:
    weekly_summary_hour: int = 19
    weekly_summary_catch_up: timedelta = timedelta(hours=12)
    ratio_window: timedelta = timedelta(days=14)
    ratio_min_moments: int = 6
    link_snooze: timedelta = timedelta(minutes=60)
    timer_max_sleep_s: float = 60.0
    # A link can be tapped before its RitualDue has reached this service (the notifier is fast; this
    # consumer may lag): wait this long for the occurrence before saying it is unknown.
    link_occurrence_wait_s: float = 5.0
    # An occurrence a reminder announced and whose RitualDue never came (the ritual was paused, deleted or
    # skipped meanwhile) is forgotten this long after its scheduled time.
    announced_kept: timedelta = timedelta(days=2)
