"""Check-ins metrics on an injected registry. Labels are bounded: status, template, unit, reason."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

_MAX_TEMPLATES = 50


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.checkins = Counter(
            "attune_checkins_recorded_total", "Check-ins recorded (new or replacing an earlier answer)",
            ["status", "template"], registry=registry,
        )
        self.missed = Counter("attune_checkins_missed_total", "Occurrences whose deadline passed unanswered",
                              ["template"], registry=registry)
        self.milestones = Counter("attune_checkins_milestones_total", "Streak milestones reached",
                                  ["unit", "length"], registry=registry)
        self.ratio_drops = Counter("attune_checkins_ratio_drops_total",
                                   "Households whose positive:negative ratio fell below 5:1", registry=registry)
        self.link_failures = Counter("attune_checkins_link_failures_total", "One-tap links refused",
                                     ["reason"], registry=registry)
        self.rejected = Counter("attune_checkins_commands_rejected_total", "Commands refused",
                                ["command"], registry=registry)
        self.summaries = Counter("attune_checkins_weekly_summaries_total", "Weekly summaries published",
                                 registry=registry)
        self.moments = Counter("attune_checkins_moments_total", "Moments logged", ["kind"], registry=registry)
        self.outbox_pending = Gauge("attune_checkins_outbox_pending",
                                    "Events committed to the outbox, not yet acknowledged by the broker",
                                    registry=registry)
        self.outbox_oldest_age = Gauge("attune_checkins_outbox_oldest_age_seconds",
                                       "Age of the oldest event waiting in the outbox (0 when empty)",
                                       registry=registry)
        self.outbox_published = Counter("attune_checkins_outbox_published_total",
                                        "Events the relay published from the outbox", registry=registry)
        self.outbox_relay_failures = Counter("attune_checkins_outbox_relay_failures_total",
                                             "Relay passes that failed (broker or database unavailable)",
                                             registry=registry)
        self._templates: set[str] = set()
        self._recorded: dict[tuple[str, str], Any] = {}

    def recorded(self, status: str, template: str) -> None:
        """Count a recorded check-in (the labelled child is looked up once per status and template)."""
        child = self._recorded.get((status, template))
        if child is None:
            child = self.checkins.labels(status, self.template(template))
            if len(self._recorded) < 4 * _MAX_TEMPLATES:
                self._recorded[(status, template)] = child
        child.inc()

    def template(self, name: str) -> str:
        # Templates come from the scheduler's built-in set; cap anyway so a bug cannot explode the series.
        if name in self._templates or len(self._templates) < _MAX_TEMPLATES:
            self._templates.add(name)
            return name
        return "other"
