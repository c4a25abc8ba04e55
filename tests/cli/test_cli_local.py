"""The attune CLI's commands that need no running service: catalog, send-test, dlq list and replay."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from attune_cli.main import app
from attune_contracts import Topic
from attune_contracts.catalog import TEMPLATES
from attune_contracts.messages import DeadLetter
from attune_runtime.kafka import ensure_topics
from attune_runtime.settings import ServiceSettings
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.unit
def test_catalog_lists_every_template_as_json() -> None:
    result = runner.invoke(app, ["catalog", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {row["key"] for row in rows} == set(TEMPLATES)
    after = next(row for row in rows if row["key"] == "after_intimacy")
    assert after["rhythm"] == "on demand" and after["sensitive"] is True


class _Sink(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []  # the server makes a handler per request

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.unit
def test_send_test_delivers_to_a_real_http_sink_and_never_prints_the_url() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"json://user:hunter2secret@127.0.0.1:{server.server_port}/push"
        result = runner.invoke(app, ["send-test", url, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["delivered"] is True
        assert _Sink.received[-1]["title"] == "Attune test"
        assert "hunter2secret" not in result.output
    finally:
        server.shutdown()


@pytest.mark.unit
def test_send_test_refuses_an_invalid_url_with_a_hint() -> None:
    result = runner.invoke(app, ["send-test", "nonsense://x"])
    assert result.exit_code == 1
    assert "not a valid Apprise URL" in result.output


@pytest.mark.integration
def test_dlq_list_and_replay(kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTUNE_KAFKA", kafka_bootstrap)
    source = f"cli-dlq-source-{unique}"
    letter = DeadLetter(reason=f"not JSON ({unique})", error_kind="invalid", consumer="test/g", source_topic=source,
                        partition=0, offset=7, key_b64="aGg=", value_b64="e25vdCBqc29u", headers={"h": "dg=="},
                        attempts=1, failed_at=datetime.now(UTC))

    async def put() -> None:
        await ensure_topics(ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap), [Topic.DEAD_LETTER])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
        await producer.start()
        await producer.send_and_wait(Topic.DEAD_LETTER.value, letter.model_dump_json().encode(), key=b"hh")
        await producer.stop()

    asyncio.run(put())
    listed = runner.invoke(app, ["dlq", "list", "--json", "--limit", "1000"])
    assert listed.exit_code == 0, listed.output
    mine = [row for row in json.loads(listed.stdout) if row["source_topic"] == source]
    assert len(mine) == 1 and mine[0]["reason"] == f"not JSON ({unique})"

    replayed = runner.invoke(app, ["dlq", "replay", mine[0]["dlq_ref"], "--json"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["replayed"] == [mine[0]["dlq_ref"]]

    async def read_back() -> list:
        consumer = AIOKafkaConsumer(source, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                    group_id=f"r-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        try:
            async with asyncio.timeout(20):
                while True:
                    batch = await consumer.getmany(timeout_ms=200)
                    records = [r for rs in batch.values() for r in rs]
                    if records:
                        return records
        finally:
            await consumer.stop()

    [record] = asyncio.run(read_back())
    assert record.value == b"{not json" and record.key == b"hh"
    assert dict(record.headers)["h"] == b"v"
    assert dict(record.headers)["replayed_from_dlq"] == mine[0]["dlq_ref"].encode()


@pytest.mark.unit
def test_configuration_reference_is_current() -> None:
    from pathlib import Path

    from attune_cli.configdoc import render

    page = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"
    assert page.read_text() == render(), "run: python -m attune_cli.configdoc"


@pytest.mark.unit
def test_commands_that_need_a_household_say_how_to_make_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ATTUNE_CLI_STATE", str(tmp_path / "none.json"))
    monkeypatch.setattr("attune_cli.config.STATE", tmp_path / "none.json")
    result = runner.invoke(app, ["ritual", "pause", "6f1c1f9e-3a51-4e8e-9f57-1d1fd1a0c001"])
    assert result.exit_code == 1
    assert "no household yet" in result.output and "attune household create" in result.output


@pytest.mark.unit
def test_unknown_template_points_to_the_catalog(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("attune_cli.config.STATE", tmp_path / "none.json")
    result = runner.invoke(app, ["ritual", "add", "moonwalk", "--with", "Ana"])
    assert result.exit_code == 1
    assert "unknown template 'moonwalk'" in result.output and "attune catalog" in result.output


@pytest.mark.unit
def test_member_add_refuses_a_bad_channel_before_storing_anything(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("attune_cli.config.STATE", tmp_path / "none.json")
    result = runner.invoke(app, ["member", "add", "Ana", "--push", "nope://secret-token-123"])
    assert result.exit_code == 1
    assert "push channel #1 is not usable" in result.output and "nothing was stored" in result.output
    assert "secret-token-123" not in result.output
    assert not (tmp_path / "none.json").exists()


@pytest.mark.unit
def test_credentials_keygen_and_issue_each_scope_with_the_signing_key(tmp_path, monkeypatch) -> None:
    from attune_cli.config import remember_household, remember_member
    from attune_contracts.credentials import Scope, verifier_from_setting

    monkeypatch.setattr("attune_cli.config.STATE", tmp_path / "state.json")
    monkeypatch.delenv("ATTUNE_SIGNING_KEY", raising=False)
    household, ana = uuid.uuid4(), uuid.uuid4()
    remember_household(household, "Europe/London")
    remember_member("Ana", ana)
    refused = runner.invoke(app, ["credentials", "issue", "household"])
    assert refused.exit_code == 1 and "ATTUNE_SIGNING_KEY" in refused.output

    keys = json.loads(runner.invoke(app, ["credentials", "keygen", "--kid", "k7", "--json"]).stdout)
    monkeypatch.setenv("ATTUNE_SIGNING_KEY", keys["signing_key"])
    verifier = verifier_from_setting(keys["public_key"], development=False, setting="keys")
    now = datetime.now(UTC)
    issued = {scope: json.loads(runner.invoke(app, ["credentials", "issue", scope, *extra, "--json"]).stdout)
              for scope, extra in [("household", []), ("member", ["--member", "ana", "--days", "30"]),
                                   ("operator", [])]}
    household_claims = verifier.verify(issued["household"]["credential"], now=now)
    assert (household_claims.scope, household_claims.household_id, household_claims.kid) == (
        Scope.HOUSEHOLD, household, "k7")
    member_claims = verifier.verify(issued["member"]["credential"], now=now)
    assert (member_claims.scope, member_claims.member_id) == (Scope.MEMBER, ana)
    assert member_claims.expires_at is not None
    assert verifier.verify(issued["operator"]["credential"], now=now).household_id is None
    wrong = runner.invoke(app, ["credentials", "issue", "household", "--member", "ana"])
    assert wrong.exit_code == 1 and "names no member" in wrong.output


@pytest.mark.unit
def test_status_without_a_household_credential_says_which_one_it_needs(tmp_path, monkeypatch) -> None:
    from attune_cli.config import remember_household

    monkeypatch.setattr("attune_cli.config.STATE", tmp_path / "state.json")
    for variable in ("ATTUNE_SIGNING_KEY", "ATTUNE_HOUSEHOLD_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    remember_household(uuid.uuid4(), "Europe/London")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "household's credential" in result.output and "ATTUNE_HOUSEHOLD_TOKEN" in result.output


@pytest.mark.unit
def test_the_cli_seals_with_the_deployments_field_keys_and_the_development_key_only_on_this_machine() -> None:
    import base64
    import os

    from attune_cli.config import CliConfig

    assert CliConfig(kafka="127.0.0.1:9092").field_keyring().kids == ["dev"]  # make run
    assert CliConfig(kafka="localhost:9092,[::1]:9093").field_keyring().kids == ["dev"]
    with pytest.raises(SystemExit, match="set ATTUNE_FIELD_KEYS"):
        CliConfig(kafka="kafka.attune.example:9092").field_keyring()
    with pytest.raises(SystemExit, match="set ATTUNE_FIELD_KEYS"):
        CliConfig(kafka="127.0.0.1:9092,kafka.attune.example:9092").field_keyring()
    real = f"k1:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"
    assert CliConfig(kafka="kafka.attune.example:9092", field_keys=real).field_keyring().kids == ["k1"]
