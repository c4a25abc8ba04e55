"""The notifier's metrics, on an injected registry. Labels are bounded: kind, outcome, reason, purpose."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.planned = Counter("attune_notifier_planned_total", "Notifications planned from events",
                               ["purpose"], registry=registry)
        self.duplicates = Counter("attune_notifier_duplicates_total",
                                  "Notifications already planned (a redelivered or repeated cause)",
                                  ["purpose"], registry=registry)
        self.deliveries = Counter("attune_notifier_deliveries_total", "Delivery outcomes by channel kind",
                                  ["channel_kind", "outcome"], registry=registry)
        self.delivered_by_template = Counter(
            "attune_notifier_delivered_by_template_total",
            "Notifications delivered, by ritual template (catalog keys) or message purpose",
            ["template"], registry=registry,
        )
        self.attempts = Counter("attune_notifier_delivery_attempts_total", "Delivery attempts by channel kind",
                                ["channel_kind"], registry=registry)
        self.latency = Histogram(
            "attune_notifier_event_to_delivered_seconds", "From the cause event to delivery",
            ["channel_kind"], registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
        )
        self.deferred = Counter("attune_notifier_deferred_total", "Deliveries deferred (quiet hours, daily cap)",
                                ["reason"], registry=registry)
        self.dropped = Counter("attune_notifier_dropped_total", "Deliveries dropped (stale, over the cap)",
                               ["reason"], registry=registry)
        self.no_channel = Counter("attune_notifier_no_channel_total",
                                  "Notifications skipped on purpose: the member has no channel for them",
                                  ["role"], registry=registry)
        self.suppressed = Counter("attune_notifier_suppressed_total",
                                  "Pending deliveries suppressed (occurrence already done)", ["reason"],
                                  registry=registry)
        self.dead_lettered = Counter("attune_notifier_dead_lettered_total",
                                     "Notifications given up after every attempt on every channel",
                                     ["reason"], registry=registry)
        self.channel_registrations = Counter("attune_notifier_channel_registrations_total",
                                             "Channel registrations by kind and outcome",
                                             ["channel_kind", "outcome"], registry=registry)
        self.channels_retired = Counter("attune_notifier_channels_retired_total",
                                        "Channels retired because their destination is gone (web push 404/410)",
                                        ["channel_kind"], registry=registry)
        self.erasures = Counter("attune_notifier_household_erasures_total", "Households erased", registry=registry)
        self.ignored = Counter("attune_notifier_ignored_events_total", "Events ignored (erased household)",
                               ["reason"], registry=registry)
