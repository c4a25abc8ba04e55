"""Erasure as an attacker and an auditor see it, against the three real services (production mode, PostgreSQL,
a real broker): one export gathers every service; after the household's erasure a replay of its commands and
events is refused with a reason and brings nothing back; a sweep of every table of every service, every log
line and every topic (the dead-letter topic included) finds none of its names, notes, dreams or channel URLs.

The scenario runs once (it takes about a minute); each test reads what it found.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from attune_contracts import Topic
from attune_contracts.credentials import CredentialIssuer
from attune_contracts.messages import RecordAchievement, ScheduleRitual
from attune_runtime.testing import PG_ADMIN_DSN, eventually
from chaos.scenario import read_topic
from e2e.stack import SERVICES, Stack

# Three services, a broker and PostgreSQL on a shared two-core machine: starting them alone can take minutes.
pytestmark = pytest.mark.timeout(1200)


class PatientStack(Stack):
    """The shared machine can be slow to import three services at once: give each more time to be ready."""

    async def wait_ready(self, running: Any, timeout: float = 300) -> None:
        await super().wait_ready(running, timeout)


@dataclass
class Findings:
    marker: str
    secrets: dict[str, str]
    export: dict[str, Any] = field(default_factory=dict)
    exports_after: dict[str, int] = field(default_factory=dict)
    scheduler_rejections: list[dict[str, Any]] = field(default_factory=list)
    checkins_rejections: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    in_tables: dict[str, list[str]] = field(default_factory=dict)
    in_logs: dict[str, list[str]] = field(default_factory=dict)
    in_topics: dict[str, list[str]] = field(default_factory=dict)
    replayed: int = 0
    # Crypto-shredding: one sealed dead letter of the household per service, opened before and after the erasure.
    sealed_letters: dict[str, dict[str, Any]] = field(default_factory=dict)
    opened_before: dict[str, int] = field(default_factory=dict)
    opened_after: dict[str, tuple[int, str]] = field(default_factory=dict)
    dead_letter_keys_left: list[str] = field(default_factory=list)


def _found(text: str, secrets: dict[str, str]) -> list[str]:
    return [what for what, value in secrets.items() if value in text]


async def _read_topic(bootstrap: str, topic: str) -> list[Any]:
    return await read_topic(bootstrap, topic, idle_s=1.0)


def _cli_env(stack: Stack, state: Path, token: str | None = None) -> dict[str, str]:
    env = {
        **os.environ, "ATTUNE_KAFKA": stack.broker.bootstrap, "ATTUNE_CLI_STATE": str(state), "COLUMNS": "200",
        "ATTUNE_SCHEDULER_URL": stack.services["scheduler"].url, "ATTUNE_CHECKINS_URL": stack.services["checkins"].url,
        "ATTUNE_NOTIFIER_URL": stack.services["notifier"].url,
    }
    if token:
        env["ATTUNE_HOUSEHOLD_TOKEN"] = token
    return env


async def _attune(env: dict[str, str], *args: str, as_json: bool = True) -> Any:
    run = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "attune_cli.main", *args,
                                                   *(["--json"] if as_json else [])],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"attune {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"
    return json.loads(run.stdout)


async def _scenario(workdir: Path) -> Findings:
    m = uuid.uuid4().hex[:10]
    secrets = {"household name": f"Casa{m}", "member name": f"Zephyrine{m}", "partner name": f"Quillon{m}",
               "ritual title": f"Lanterns{m}", "moment note": f"moment-note-{m}", "dream": f"dream-{m}",
               "achievement note": f"achieved-{m}", "channel URL": f"chan{m}"}
    found = Findings(m, secrets)
    stack = PatientStack(workdir)
    try:
        await stack.start()
        state = workdir / "cli-state.json"
        env = _cli_env(stack, state)
        household = uuid.UUID((await _attune(env, "household", "create", "--name", secrets["household name"],
                                             "--tz", "Europe/London"))["household_id"])
        token = CredentialIssuer(stack.credential_keys[0]).household(household)
        env = _cli_env(stack, state, token)
        ana = uuid.UUID((await _attune(env, "member", "add", secrets["member name"], "--push",
                                       f"json://127.0.0.1:{stack.inbox_port}/push/{secrets['channel URL']}"))["member_id"])
        ben = uuid.UUID((await _attune(env, "member", "add", secrets["partner name"]))["member_id"])
        from attune_cli import bus

        await bus.send_and_wait(stack.broker.bootstrap, ScheduleRitual(
            ritual_id=uuid.uuid4(), template="evening_attunement", title=secrets["ritual title"], participants=[ana, ben],
            rrule="FREQ=DAILY", local_time="21:00", start_date=date.today()), household_id=household,
            answer_topic=Topic.SCHEDULER_EVENTS, timeout=120)
        checkins = stack.services["checkins"].url
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=10, headers=auth) as client:
            async def moment_logged() -> bool:
                answer = await client.post(f"{checkins}/v1/households/{household}/moments",
                                           json={"member_id": str(ana), "kind": "positive",
                                                 "note": secrets["moment note"]})
                return answer.status_code in (200, 201)

            await eventually(moment_logged, timeout=120, interval=0.5)  # check-ins knows Ana now
            await bus.publish(stack.broker.bootstrap, RecordAchievement(
                achievement_id=uuid.uuid4(), member_id=ana, dream=secrets["dream"], note=secrets["achievement note"]),
                household_id=household)

            async def complete() -> dict[str, Any] | None:
                document = await _attune(env, "export", as_json=False)
                s = document["services"]
                ok = (s["scheduler"] and s["scheduler"]["rituals"] and s["checkins"] and s["checkins"]["achievements"]
                      and s["notifier"] and len(s["notifier"]["members"]) == 2)
                return document if ok else None

            found.export = await eventually(complete, timeout=180, interval=1)

            # What an attacker replays later: the household's commands and the facts about it, as they were sent.
            to_replay = []
            for topic in (Topic.SCHEDULER_COMMANDS, Topic.SCHEDULER_EVENTS, Topic.CHECKINS_COMMANDS):
                to_replay += [r for r in await _read_topic(stack.broker.bootstrap, topic.value)
                              if r.key == str(household).encode()]

            # Each service seals a dead letter of the household under its key (a record that is not an envelope,
            # keyed by the household), which the operator can open through that service until the erasure.
            operator = {"Authorization": f"Bearer {CredentialIssuer(stack.credential_keys[0]).operator()}"}
            bogus = {topic.value: json.dumps({"type": "bogus", "household_id": str(household), "payload": {},
                                              "event_id": str(uuid.uuid4())}).encode()
                     for topic in (Topic.SCHEDULER_COMMANDS, Topic.SCHEDULER_EVENTS)}
            producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, enable_idempotence=False)
            await producer.start()
            try:
                for topic_name, value in bogus.items():
                    await producer.send_and_wait(topic_name, value, key=str(household).encode())
            finally:
                await producer.stop()
            hashes = [hashlib.sha256(v).hexdigest().encode() for v in bogus.values()]

            async def sealed_by_each() -> dict[str, dict[str, Any]] | None:
                letters = {}
                for r in await _read_topic(stack.broker.bootstrap, Topic.DEAD_LETTER.value):
                    if any(h in r.value for h in hashes) and (letter := json.loads(r.value)).get("sealed"):
                        letters[letter["sealed"]["service"]] = letter
                return letters if set(letters) == set(SERVICES) else None

            found.sealed_letters = await eventually(sealed_by_each, timeout=120, interval=1)
            for name, letter in found.sealed_letters.items():
                answer = await client.post(f"{stack.services[name].url}/v1/dead-letters/open", json=letter,
                                           headers=operator)
                found.opened_before[name] = answer.status_code

            await _attune(env, "household", "erase", "--yes")

            async def all_gone() -> dict[str, int] | None:
                codes = {}
                for name in SERVICES:
                    answer = await client.get(f"{stack.services[name].url}/v1/households/{household}/export")
                    codes[name] = answer.status_code
                return codes if all(c in (404, 410) for c in codes.values()) else None

            await eventually(all_gone, timeout=180, interval=0.5)

            # The replay: the very records, and the same with fresh event ids (a duplicate id is simply ignored).
            producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, enable_idempotence=False)
            await producer.start()
            try:
                for record in to_replay:
                    body = json.loads(record.value)
                    body["event_id"] = str(uuid.uuid4())
                    for value in (record.value, json.dumps(body).encode()):
                        await producer.send_and_wait(record.topic, value, key=record.key, headers=list(record.headers))
                        found.replayed += 1
            finally:
                await producer.stop()
            def replayed(topic: Topic, *types: str) -> int:
                return sum(1 for r in to_replay if r.topic == topic.value and json.loads(r.value)["type"] in types)

            # Refused with a reason: every command but EraseHousehold, with a fresh id (the same id is a duplicate).
            commands = replayed(Topic.SCHEDULER_COMMANDS, "scheduler.register_household", "scheduler.upsert_member",
                                "scheduler.schedule_ritual")
            # Dead-lettered as rejected, both copies: by check-ins (the facts it keeps) and by the notifier (members).
            by_checkins = 2 * replayed(Topic.SCHEDULER_EVENTS, "scheduler.household_registered",
                                       "scheduler.member_upserted", "scheduler.ritual_scheduled")
            by_notifier = 2 * replayed(Topic.SCHEDULER_EVENTS, "scheduler.member_upserted")

            async def answered() -> bool:
                scheduler_events = [json.loads(r.value) for r in
                                    await _read_topic(stack.broker.bootstrap, Topic.SCHEDULER_EVENTS.value)]
                found.scheduler_rejections = [e for e in scheduler_events if e["type"] == "scheduler.command_rejected"
                                              and e["household_id"] == str(household)]
                checkins_events = [json.loads(r.value) for r in
                                   await _read_topic(stack.broker.bootstrap, Topic.CHECKINS_EVENTS.value)]
                found.checkins_rejections = [e for e in checkins_events if e["type"] == "checkins.command_rejected"
                                             and e["household_id"] == str(household)]
                found.dead_letters = [json.loads(r.value) for r in
                                      await _read_topic(stack.broker.bootstrap, Topic.DEAD_LETTER.value)]
                refused = [d["consumer"].split("/")[0] for d in found.dead_letters
                           if d["source_topic"] == Topic.SCHEDULER_EVENTS.value]
                return (len(found.scheduler_rejections) >= commands and len(found.checkins_rejections) >= 1
                        and refused.count("checkins") >= by_checkins and refused.count("notifier") >= by_notifier)

            await eventually(answered, timeout=240, interval=2)
            found.exports_after = (await all_gone()) or {}
            for name, letter in found.sealed_letters.items():
                answer = await client.post(f"{stack.services[name].url}/v1/dead-letters/open", json=letter,
                                           headers=operator)
                found.opened_after[name] = (answer.status_code, answer.json().get("detail", ""))
        await asyncio.sleep(2)  # anything a replay would have written, written

        for name, database in zip(SERVICES, stack.databases, strict=True):
            conn = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}")
            try:
                tables = [r["tablename"] for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
                for table in tables:
                    if table.endswith("_dead_letter_keys") and await conn.fetch(
                            f'SELECT scope FROM "{table}" WHERE scope = $1', f"household:{household}"):
                        found.dead_letter_keys_left.append(f"{name}.{table}")
                    rows = await conn.fetch(f'SELECT t::text AS row FROM "{table}" t')
                    hits = sorted({w for r in rows for w in _found(r["row"], secrets)})
                    if hits:
                        found.in_tables[f"{name}.{table}"] = hits
            finally:
                await conn.close()
        for topic in Topic:
            text = "\n".join((r.value or b"").decode("utf-8", "replace")
                             for r in await _read_topic(stack.broker.bootstrap, topic.value))
            if topic is Topic.DEAD_LETTER:
                text += "\n".join(base64.b64decode(d["value_b64"]).decode("utf-8", "replace") for d in found.dead_letters)
            if hits := _found(text, secrets):
                found.in_topics[topic.value] = hits
    finally:
        await stack.stop()
    for name, running in stack.services.items():
        if hits := _found(running.log.read_text(errors="replace"), secrets):
            found.in_logs[name] = hits
    return found


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> Findings:
    # Its own event loop: the scenario starts and stops every process before any test reads its findings.
    workdir = tmp_path_factory.mktemp("erasure")
    found = asyncio.run(_scenario(workdir))
    summary = {"in_tables": found.in_tables, "in_logs": found.in_logs, "in_topics": found.in_topics,
               "replayed": found.replayed, "exports_after": found.exports_after,
               "dead_letters": [{k: d[k] for k in ("reason", "error_kind", "consumer", "source_topic")}
                                | {"value_kept": bool(d["value_b64"])} for d in found.dead_letters]}
    (workdir / "findings.json").write_text(json.dumps(summary, indent=2))
    return found


def test_one_export_gathers_what_every_service_holds(findings: Findings) -> None:
    s, secrets = findings.export["services"], findings.secrets
    assert s["scheduler"]["name"] == secrets["household name"]
    assert {m["display_name"] for m in s["scheduler"]["members"]} == {secrets["member name"], secrets["partner name"]}
    assert [r["title"] for r in s["scheduler"]["rituals"]] == [secrets["ritual title"]]
    # A moment's note is private to its author: the household credential's export says it is withheld (the
    # author reads it with their own member credential).
    assert [(m["note"], m.get("note_withheld")) for m in s["checkins"]["moments"]] == [(None, True)]
    assert secrets["moment note"] not in json.dumps(findings.export)
    assert [a["dream"] for a in s["checkins"]["achievements"]] == [secrets["dream"]]
    names = {m["preferences"]["display_name"] for m in s["notifier"]["members"]}
    assert names == {secrets["member name"], secrets["partner name"]}
    assert sorted(len(m["channels"]) for m in s["notifier"]["members"]) == [0, 1]
    assert secrets["channel URL"] not in json.dumps(findings.export)  # a secret: exported by kind and order only


def test_a_replay_after_erasure_is_refused_with_a_reason_and_brings_nothing_back(findings: Findings) -> None:
    assert findings.replayed > 0
    assert findings.exports_after == {"scheduler": 410, "checkins": 404, "notifier": 410}
    assert findings.scheduler_rejections and all("erased" in e["payload"]["reason"]
                                                 for e in findings.scheduler_rejections)
    assert findings.checkins_rejections and all("erased" in e["payload"]["reason"]
                                                for e in findings.checkins_rejections)
    refused = [d for d in findings.dead_letters if "erased" in d["reason"]]
    assert refused and all(d["error_kind"] == "rejected" and d["value_b64"] == "" for d in refused)
    assert {d["consumer"].split("/")[0] for d in refused} == {"checkins", "notifier"}


def test_after_erasure_no_table_of_any_service_holds_the_household(findings: Findings) -> None:
    assert findings.in_tables == {}


def test_after_erasure_no_log_line_holds_the_household(findings: Findings) -> None:
    assert findings.in_logs == {}


def test_after_erasure_the_dead_letter_topic_holds_nothing_of_the_household(findings: Findings) -> None:
    assert Topic.DEAD_LETTER.value not in findings.in_topics, findings.in_topics


def test_after_erasure_no_service_opens_the_households_dead_letters(findings: Findings) -> None:
    """operator — opens the household's sealed dead letters through each service: before the erasure they open;
    after it every service has deleted the household's key, so they stay sealed for good."""
    assert findings.opened_before == {"scheduler": 200, "checkins": 200, "notifier": 200}
    assert {name: status for name, (status, _) in findings.opened_after.items()} == {
        "scheduler": 410, "checkins": 410, "notifier": 410}
    assert all("its household was erased" in detail for _, detail in findings.opened_after.values())
    assert findings.dead_letter_keys_left == []


def test_after_erasure_no_topic_holds_the_household(findings: Findings) -> None:
    """someone with topic read access — the household's commands and facts stay on their topics until retention,
    but every name, title, dream and note on them is sealed (attune_contracts.sealing): none reads in the clear."""
    assert findings.in_topics == {}


# ---- error text never carries bound parameters ----------------------------------------------------------------


class _Outbox:
    """Stands in for the broker the consumer publishes its dead letters to; records them."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def publish(self, body: bytes, **_: Any) -> None:
        self.published.append(body)


def _engines(pg_url: str) -> dict[str, Any]:
    from attune_checkins.adapters.sql import make_engine as checkins_engine
    from attune_notifier.adapters.sql import make_engine as notifier_engine
    from attune_scheduler.adapters.sql import make_engine as scheduler_engine

    return {"scheduler": scheduler_engine(pg_url), "checkins": checkins_engine(pg_url),
            "notifier": notifier_engine(pg_url)}


# A value refused by the driver (asyncpg quotes it), one refused by PostgreSQL (its message quotes it), and one
# inside a statement that fails for a reason of its own (a bug: logged with its traceback, retried).
_FAILING_INSERTS = {
    "uuid parameter": ("INSERT INTO leak (id, u) VALUES (1, :value)", "rejected"),
    "uuid cast": ("INSERT INTO leak (id, u) VALUES (2, CAST(CAST(:value AS text) AS uuid))", "rejected"),
    "undefined column": ("INSERT INTO leak (id, nosuch) VALUES (3, :value)", "handler_failed"),
}


@pytest.mark.parametrize("service", ["scheduler", "checkins", "notifier"])
@pytest.mark.parametrize("case", list(_FAILING_INSERTS))
async def test_a_failing_insert_leaves_its_value_out_of_the_dead_letter_and_the_logs(
    pg_url: str, service: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import sqlalchemy as sa
    from attune_contracts import make_envelope
    from attune_contracts.messages import DeadLetter, LogMoment, MomentKind
    from attune_runtime.consumer import ConsumerMetrics, ReliableConsumer, RetryPolicy
    from attune_runtime.logs import JsonFormatter
    from attune_runtime.retry import Backoff
    from attune_runtime.testing import KafkaRecord
    from prometheus_client import CollectorRegistry

    secret = f"Zephyrine-{uuid.uuid4().hex[:8]}"
    engine = _engines(pg_url)[service]
    statement, kind = _FAILING_INSERTS[case]
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS leak (id int primary key, u uuid)"))

        async def handler(_envelope: Any) -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text(statement), {"value": secret})

        outbox = _Outbox()
        consumer = ReliableConsumer(outbox, service=service, group_id="g", handler=handler,  # type: ignore[arg-type]
                                    metrics=ConsumerMetrics(CollectorRegistry()),
                                    retry=RetryPolicy(max_attempts=2, backoff=Backoff(base_s=0.01, max_s=0.01)))
        envelope = make_envelope(LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.POSITIVE),
                                 household_id=uuid.uuid4(), producer="test")
        record = KafkaRecord(value=envelope.to_bytes(), offset=0, topic="attune.checkins.commands")
        caplog.set_level(logging.DEBUG)
        await consumer.handle(envelope, record, None, deadline=float("inf"))
    finally:
        await engine.dispose()

    [letter] = [DeadLetter.model_validate_json(body) for body in outbox.published]
    assert letter.error_kind == kind
    assert secret not in letter.reason, letter.reason
    formatter = JsonFormatter(service)
    lines = [formatter.format(r) for r in caplog.records]
    assert any(r.exc_info for r in caplog.records) or kind == "rejected"  # the bug's traceback was logged
    assert any("dead-lettered" in line for line in lines)
    assert not [line for line in lines if secret in line]
