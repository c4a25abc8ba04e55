"""The front door, end to end: three services as separate processes on the real broker and PostgreSQL.

A household with push (`json://`) and email (`mailto://`) channels, a ritual due within the minute, the push
arriving at the inbox's HTTP sink and the email at its SMTP server, the one-tap link followed,
`CheckInRecorded` published, and `attune status` showing it. A real Prometheus scrapes the three services
meanwhile, and the funnel is read back through its HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from attune_contracts import Topic, parse
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually

from .stack import ROOT, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ZONE = "Europe/London"


@pytest.fixture
async def stack(tmp_path: Path):
    running = Stack(tmp_path)
    try:
        yield await running.start()
    finally:
        await running.stop()


def cli_env(stack: Stack, state: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ATTUNE_KAFKA": stack.broker.bootstrap,
        "ATTUNE_CHECKINS_URL": stack.services["checkins"].url,
        "ATTUNE_NOTIFIER_URL": stack.services["notifier"].url,
        "ATTUNE_SIGNING_KEY": stack.credential_keys[0],  # the operator's CLI: it issues credentials
        "ATTUNE_CLI_STATE": str(state),
        "COLUMNS": "200",
        **extra,
    }


async def attune(env: dict[str, str], *args: str) -> dict:
    run = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "attune_cli.main", *args, "--json"],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"attune {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"
    return json.loads(run.stdout)


class Prometheus:
    def __init__(self, workdir: Path, targets: dict[str, int]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "attune", "static_configs": [
                {"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}} for name, port in targets.items()]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: `make test` installs Debian's prometheus package")
        self.process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def query(self, expr: str) -> dict:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": expr}, timeout=5)
            return response.json()

    async def value(self, expr: str) -> float | None:
        try:
            result = (await self.query(expr)).get("data", {}).get("result", [])
        except httpx.HTTPError:
            return None
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def next_local_minute(zone: str, lead_s: int = 20) -> datetime:
    now = datetime.now(ZoneInfo(zone))
    target = (now + timedelta(seconds=lead_s)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return target


async def checkin_recorded(bootstrap: str, household: str, timeout: float = 60) -> dict:
    return await first_event(bootstrap, Topic.CHECKINS_EVENTS, "checkins.checkin_recorded", household, timeout)


async def first_event(bootstrap: str, topic: Topic, kind: str, household: str, timeout: float = 60,
                      where: Callable[[dict], bool] = lambda event: True) -> dict:
    """The first event of `kind` on `topic` for the household (and `where`), as its JSON."""
    consumer = AIOKafkaConsumer(topic.value, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"e2e-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    for record in records:
                        if household.encode() not in record.value:  # others' records first (hostile JSON too)
                            continue
                        event = parse(record.value)
                        if event.type == kind and str(event.household_id) == household:
                            found = json.loads(record.value)
                            if where(found):
                                return found
    finally:
        await consumer.stop()


async def test_reminder_to_phone_to_one_tap_checkin(stack: Stack, tmp_path: Path) -> None:
    prometheus = Prometheus(tmp_path, {name: running.port for name, running in stack.services.items()})
    try:
        await run_scenario(stack, tmp_path, prometheus)
    except BaseException:
        print(stack.logs())
        raise
    finally:
        prometheus.stop()


async def run_scenario(stack: Stack, tmp_path: Path, prometheus: Prometheus) -> None:
    env = cli_env(stack, tmp_path / "cli-state.json")
    household = (await attune(env, "household", "create", "--name", "Ana & Ben", "--tz", ZONE))["household_id"]
    sink = f"127.0.0.1:{stack.smtp_port}?from=attune@localhost&mode=insecure"
    # Ana's phone gets pushes (email is her fallback); Ben reads email.
    ana = await attune(env, "member", "add", "Ana", "--push", f"json://127.0.0.1:{stack.inbox_port}/push/ana",
                       "--email", f"mailto://{sink}&to=ana@localhost")
    assert [c["kind"] for c in ana["channels"]] == ["push", "email"]
    ben = await attune(env, "member", "add", "Ben", "--email", f"mailto://{sink}&to=ben@localhost")
    assert [c["kind"] for c in ben["channels"]] == ["email"]

    due = next_local_minute(ZONE)
    ritual = await attune(env, "ritual", "add", "evening_attunement", "--with", "Ana", "--with", "Ben",
                          "--time", due.strftime("%H:%M"), "--rrule", "FREQ=DAILY", "--start", due.date().isoformat())
    assert ritual["state"] == "active"

    # The push reaches Ana's phone (the inbox's HTTP sink) and the email Ben's mailbox (its SMTP server),
    # each with one-tap links.
    arrived = await eventually(lambda: _both(stack, {("push", "ana"), ("email", "ben@localhost")}), timeout=150)
    ana_push = next(m for m in arrived if m["to"] == "ana")
    assert ana_push["title"] and ana_push["links"], ana_push
    ben_email = next(m for m in arrived if m["to"] == "ben@localhost")
    assert ben_email["title"] and ben_email["body"] and ben_email["html_body"], ben_email
    assert ben_email["links"], ben_email
    assert f'href="{ben_email["links"][0]}"' in ben_email["html_body"].replace("&amp;", "&"), ben_email["html_body"]

    # Ana taps "done" on her phone: the confirmation page, then a closeness rating of 5.
    done_link = next(url for url in ana_push["links"] if "/l/" in url)
    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(done_link)
        assert page.status_code == 200, page.text
        recorded = await client.post(done_link, data={"closeness": "5"})
        assert recorded.status_code == 200, recorded.text
        replay = await client.post(done_link, data={"closeness": "5"})
        assert replay.status_code in (200, 409, 410)

    event = await checkin_recorded(stack.broker.bootstrap, household)
    assert event["payload"]["template"] == "evening_attunement"
    # One reminder can be followed end to end: RitualDue, its deliveries and the check-in share a correlation id.
    occurrence = event["payload"]["occurrence_id"]
    assert event["correlation_id"] == occurrence
    notifier_lines = [json.loads(line) for line in stack.services["notifier"].log.read_text().splitlines()
                      if line.startswith("{") and occurrence in line]
    assert {"handled ritual.due"} <= {line["msg"] for line in notifier_lines}, notifier_lines
    # Each send's own log line is DEBUG (one INFO line per delivery round); its outcome event carries the id.
    sent = await first_event(stack.broker.bootstrap, Topic.NOTIFICATION_OUTCOMES, "notifications.notification_sent",
                             household, where=lambda e: e["payload"]["member_id"] == ana["member_id"])
    assert sent["correlation_id"] == occurrence and sent["producer"] == "notifier", sent
    assert event["payload"]["source"] == "link" and event["payload"]["closeness"] == 5

    # `attune status` shows it, with the household's credential only (no signing key).
    token = (await attune(env, "credentials", "issue", "household"))["credential"]
    household_only = {k: v for k, v in env.items() if k != "ATTUNE_SIGNING_KEY"}
    status = await attune({**household_only, "ATTUNE_HOUSEHOLD_TOKEN": token}, "status")
    recent = status["recent_checkins"]
    assert recent and recent[0]["status"] == "done" and recent[0]["closeness"] == 5
    assert any(d["status"] == "sent" for d in status["deliveries"]["ana"])

    # The funnel, read back through Prometheus: fired -> delivered -> checked in.
    template = 'template="evening_attunement"'
    await eventually(lambda: _equals(prometheus, f"sum(attune_scheduler_occurrences_fired_total{{{template}}})", 1),
                     timeout=60)
    sent = len([m for m in await stack.inbox_messages() if m["kind"] in ("push", "email")])
    await eventually(lambda: _equals(
        prometheus, 'sum(attune_notifier_deliveries_total{outcome="sent"})', sent), timeout=60)
    await eventually(lambda: _equals(
        prometheus, f'sum(attune_checkins_recorded_total{{status="done",{template}}})', 1), timeout=60)
    assert await prometheus.value('count(up{job="attune"} == 1)') == 3

    # Every dashboard query parses and runs against the live data.
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "attune.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            answer = await prometheus.query(target["expr"])
            assert answer["status"] == "success", (panel["title"], answer)


async def _both(stack: Stack, wanted: set[tuple[str, str]]) -> list[dict] | None:
    found = await stack.inbox_messages()
    return found if wanted <= {(m["kind"], m["to"]) for m in found} else None


async def _equals(prometheus: Prometheus, expr: str, expected: float) -> bool:
    return await prometheus.value(expr) == expected


