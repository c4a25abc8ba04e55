"""Check-ins metrics: recorded check-ins counted per status and template, templates capped."""

from __future__ import annotations

import pytest
from attune_checkins.metrics import Metrics
from prometheus_client import CollectorRegistry

pytestmark = [pytest.mark.unit]


def test_recorded_counts_per_status_and_template_and_caps_templates() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    for _ in range(3):
        metrics.recorded("done", "evening_attunement")
    metrics.recorded("skipped", "evening_attunement")
    for i in range(60):
        metrics.recorded("done", f"template_{i}")

    def count(status: str, template: str) -> float | None:
        return registry.get_sample_value("attune_checkins_recorded_total", {"status": status, "template": template})

    assert count("done", "evening_attunement") == 3
    assert count("skipped", "evening_attunement") == 1
    assert count("done", "template_0") == 1
    assert count("done", "template_59") is None  # past the cap of 50 templates
    assert count("done", "other") == 60 - 49
