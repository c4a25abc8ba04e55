"""Prometheus config, alert rules (with promtool's own unit tests) and the Grafana dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.unit]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "attune.json").read_text())


def promtool(*args: str, cwd: Path = DEPLOY) -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package (apt-get install prometheus)")
    run = subprocess.run([tool, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def test_prometheus_config_is_valid() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert "SUCCESS: 9 rules found" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "tests/alerts_test.yml")


def test_every_alert_points_to_its_runbook_section() -> None:
    runbook = (DEPLOY / "RUNBOOK.md").read_text().lower()
    for rule in yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"][0]["rules"]:
        anchor = rule["alert"].lower()
        assert f"runbook.md#{anchor}" in rule["annotations"]["description"].lower()
        assert f"## {anchor}" in runbook.replace("`", ""), f"RUNBOOK.md needs a '## {rule['alert']}' section"


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def test_dashboard_file_is_what_the_builder_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dashboard", DEPLOY / "grafana" / "build_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.build() == DASHBOARD, "run python deploy/grafana/build_dashboard.py"


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # promtool parses every expression of a rule file; each panel query becomes a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}", "expr": expr} for n, expr in enumerate(dashboard_exprs())]}]}
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(dashboard_exprs())} rules found" in promtool("check", "rules", "dashboard_rules.yml",
                                                                         cwd=tmp_path)


def metric_names(expr: str) -> set[str]:
    return {name for name in re.findall(r"\b((?:attune|faststream)_[a-z0-9_]+)", expr)}


def exported_metric_names() -> set[str]:
    """Every metric family the three services and the runtime register, read from fresh registries."""
    from attune_checkins.metrics import Metrics as CheckinsMetrics
    from attune_notifier.metrics import NotifierMetrics
    from attune_runtime.consumer import ConsumerMetrics
    from attune_runtime.lag import LagTracker
    from attune_scheduler.metrics import SchedulerMetrics
    from faststream.kafka import KafkaBroker
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    for metrics in (CheckinsMetrics, NotifierMetrics, SchedulerMetrics, ConsumerMetrics):
        metrics(registry)
    LagTracker(KafkaBroker(), registry, "x")
    KafkaPrometheusMiddleware(registry=registry)
    return {family.name for family in registry.collect()}


def family(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)


def test_every_dashboard_and_alert_metric_exists() -> None:
    exported = exported_metric_names()
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    used |= metric_names((DEPLOY / "alerts.yml").read_text())
    missing = {name for name in used if family(name) not in exported}
    assert not missing, f"queries name metrics no service exports: {sorted(missing)}"
    assert len(DASHBOARD["panels"]) >= 10
