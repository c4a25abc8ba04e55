"""Writes deploy/grafana/dashboards/attune.json (run: python deploy/grafana/build_dashboard.py).

Kept as code so every panel's query is a plain string the tests can check against Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path

PANELS = [
    # (title, unit, [(legend, expr)]), laid out two per row.
    ("Funnel per template: fired → delivered → checked in (1h)", "short", [
        ("fired {{template}}", 'sum by (template) (increase(attune_scheduler_occurrences_fired_total[1h]))'),
        ("delivered {{template}}", 'sum by (template) (increase(attune_notifier_delivered_by_template_total[1h]))'),
        ("checked in {{template}}", 'sum by (template) (increase(attune_checkins_recorded_total{status="done"}[1h]))'),
        ("missed {{template}}", 'sum by (template) (increase(attune_checkins_missed_total[1h]))'),
    ]),
    ("Active rituals by template", "short", [
        ("{{template}}", "sum by (template) (attune_scheduler_active_rituals)"),
    ]),
    ("Fire lag (scheduled → RitualDue published)", "s", [
        ("p50", "histogram_quantile(0.5, sum by (le) (rate(attune_scheduler_fire_lag_seconds_bucket[5m])))"),
        ("p99", "histogram_quantile(0.99, sum by (le) (rate(attune_scheduler_fire_lag_seconds_bucket[5m])))"),
    ]),
    ("Event → delivered latency", "s", [
        ("p50 {{channel_kind}}", "histogram_quantile(0.5, sum by (le, channel_kind) (rate(attune_notifier_event_to_delivered_seconds_bucket[5m])))"),
        ("p99 {{channel_kind}}", "histogram_quantile(0.99, sum by (le, channel_kind) (rate(attune_notifier_event_to_delivered_seconds_bucket[5m])))"),
    ]),
    ("Deliveries by channel kind and outcome (rate)", "ops", [
        ("{{channel_kind}} {{outcome}}", "sum by (channel_kind, outcome) (rate(attune_notifier_deliveries_total[5m]))"),
    ]),
    ("Delivery failure ratio", "percentunit", [
        ("failed / all", 'sum(rate(attune_notifier_deliveries_total{outcome!="sent"}[15m])) / clamp_min(sum(rate(attune_notifier_deliveries_total[15m])), 1e-9)'),
    ]),
    ("Skipped, deferred, dropped, suppressed (1h)", "short", [
        ("skipped after downtime {{reason}}", "sum by (reason) (increase(attune_scheduler_skipped_total[1h]))"),
        ("deferred {{reason}}", "sum by (reason) (increase(attune_notifier_deferred_total[1h]))"),
        ("dropped {{reason}}", "sum by (reason) (increase(attune_notifier_dropped_total[1h]))"),
        ("suppressed {{reason}}", "sum by (reason) (increase(attune_notifier_suppressed_total[1h]))"),
    ]),
    ("Dead-lettered (1h)", "short", [
        ("consumer {{service}} {{error_kind}}", "sum by (service, error_kind) (increase(attune_consumer_dead_lettered_total[1h]))"),
        ("notifications {{reason}}", "sum by (reason) (increase(attune_notifier_dead_lettered_total[1h]))"),
        ("untrusted producer {{service}} {{topic}}",
         "sum by (service, topic) (increase(attune_consumer_untrusted_total[1h]))"),
    ]),
    # Broker-side (kafka_exporter: log end - committed offset), so a stopped consumer's lag still shows.
    ("Consumer lag by group and topic (broker)", "short", [
        ("{{consumergroup}} {{topic}}",
         'sum by (consumergroup, topic) (kafka_consumergroup_lag{consumergroup=~"attune-.+"})'),
    ]),
    ("Scheduler outbox backlog", "short", [
        ("backlog", "max(attune_scheduler_outbox_backlog)"),
    ]),
    ("Messages consumed by service (rate)", "ops", [
        ("{{app_name}} {{handler}} {{status}}", "sum by (app_name, handler, status) (rate(faststream_received_processed_messages_total[5m]))"),
    ]),
    ("Services up", "short", [
        ("{{service}}", 'up{job="attune"}'),
    ]),
]


def build() -> dict:
    panels = []
    for index, (title, unit, targets) in enumerate(PANELS):
        panels.append({
            "id": index + 1,
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [
                {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend,
                 "datasource": {"type": "prometheus", "uid": "prometheus"}}
                for n, (legend, expr) in enumerate(targets)
            ],
        })
    return {
        "uid": "attune-overview",
        "title": "Attune overview",
        "tags": ["attune"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).parent / "dashboards" / "attune.json"
    out.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {out}")
