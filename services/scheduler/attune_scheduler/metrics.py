"""The scheduler's Prometheus metrics, on an injected registry. Labels are bounded: template and reason."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.active_rituals = Gauge(
            "attune_scheduler_active_rituals", "Active rituals by template", ["template"], registry=registry)
        self.fired = Counter(
            "attune_scheduler_occurrences_fired_total", "RitualDue events written (one per occurrence)",
            ["template"], registry=registry)
        self.reminders = Counter(
            "attune_scheduler_reminders_total", "RitualReminder events written", ["template"], registry=registry)
        self.skipped = Counter(
            "attune_scheduler_skipped_total", "Occurrences or reminders not fired, by reason", ["reason"],
            registry=registry)
        self.fire_lag = Histogram(
            "attune_scheduler_fire_lag_seconds", "From an occurrence's scheduled instant to its RitualDue published",
            buckets=LAG_BUCKETS, registry=registry)
        self.outbox_backlog = Gauge(
            "attune_scheduler_outbox_backlog", "Outbox rows not yet published", registry=registry)
        self.read_ahead = Gauge(
            "attune_scheduler_outbox_read_ahead_rows", "Outbox rows held in memory ahead of their instant",
            registry=registry)
        self.published = Counter(
            "attune_scheduler_outbox_published_total", "Outbox rows published", registry=registry)
        self.commands = Counter(
            "attune_scheduler_commands_total", "Commands handled", ["type", "outcome"], registry=registry)
        self.loop_errors = Counter(
            "attune_scheduler_loop_errors_total", "Failed passes of the firing loop or relay", ["loop"],
            registry=registry)
