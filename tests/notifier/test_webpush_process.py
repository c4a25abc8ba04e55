"""The whole path as it runs: the notifier as its own process in production mode, on the real broker; a member
subscribes over HTTP with their own credential, a RitualReminder arrives on Kafka, and the push reaches the
local push endpoint signed with the configured VAPID key. (How the app's browser test will run it.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from attune_contracts import make_envelope
from attune_contracts.credentials import CredentialIssuer, generate_key_pair
from attune_contracts.messages import MemberRole, MemberUpserted, RitualReminder
from attune_contracts.registry import spec_of
from attune_contracts.trust import sender_of
from attune_notifier.webpush import generate_private_key_text, load_private_key, public_key_text
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually
from support.webpush_sink import WebPushSink, notifier_env, notifier_field_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VAPID_PRIVATE = generate_private_key_text()
VAPID_PUBLIC = public_key_text(load_private_key(VAPID_PRIVATE))
SIGNING, PUBLIC = generate_key_pair("wp1")


def start(env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "attune_notifier"], env=env, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT)


@pytest.fixture
async def notifier(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[tuple[str, WebPushSink, Path]]:
    port = free_port()
    log = tmp_path / "notifier.log"
    with WebPushSink(expected_public_key=VAPID_PUBLIC) as sink:
        env = notifier_env(sink, kafka_bootstrap=kafka_bootstrap, port=port, folder=tmp_path, credential_keys=PUBLIC,
                           vapid_private_key=VAPID_PRIVATE, link_kid="wp1")
        env["ATTUNE_NOTIFIER_LOG_LEVEL"] = "DEBUG"
        process = start(env, tmp_path, log)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient() as client:
                async def ready() -> bool:
                    if process.poll() is not None:
                        raise AssertionError(f"the notifier exited: {log.read_text()[-3000:]}")
                    try:
                        return (await client.get(f"{base}/readyz")).status_code == 200
                    except httpx.HTTPError:
                        return False
                await eventually(ready, timeout=90, interval=0.3)
            yield base, sink, log
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def publish(bootstrap: str, payload: Any, household: uuid.UUID) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        env = make_envelope(payload, household_id=household, producer=sender_of(payload))
        await producer.send_and_wait(spec_of(type(payload)).topic.value, value=env.to_bytes(notifier_field_keys()),
                                     key=str(household).encode())
    finally:
        await producer.stop()


async def test_a_subscribed_phone_gets_the_reminder_from_the_running_notifier(
        notifier: tuple[str, WebPushSink, Path], kafka_bootstrap: str) -> None:
    base, sink, log = notifier
    household, ana = uuid.uuid4(), uuid.uuid4()
    auth = {"Authorization": f"Bearer {CredentialIssuer(SIGNING).member(household, ana)}"}
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/v1/webpush/vapid-public-key")).json() == {"public_key": VAPID_PUBLIC}
        await publish(kafka_bootstrap, MemberUpserted(member_id=ana, display_name="Ana", role=MemberRole.PARTNER,
                                                      time_zone="Europe/London"), household)

        async def known() -> bool:
            return (await client.get(f"/v1/members/{ana}/preferences", headers=auth)).status_code == 200
        await eventually(known, timeout=60, interval=0.3)

        phone = sink.subscribe("ana-phone")
        added = await client.post(f"/v1/members/{ana}/channels/webpush", json=phone.as_json(), headers=auth)
        assert added.status_code == 201, added.text

        at = datetime.now(UTC) + timedelta(minutes=30)
        await publish(kafka_bootstrap, RitualReminder(
            occurrence_id=uuid.uuid4(), ritual_id=uuid.uuid4(), template="date_night", title="Date night",
            participants=[ana], scheduled_for=at, local_time=at.isoformat(), time_zone="Europe/London",
            sensitive=False, reminder_id=uuid.uuid4(), offset_minutes=30, remind_at=datetime.now(UTC)), household)

        async def pushed() -> bool:
            return bool(sink.pushes_for(phone)) or bool(sink.rejected)
        await eventually(pushed, timeout=60, interval=0.3)

    assert sink.rejected == []
    [push] = sink.pushes_for(phone)
    assert push.json["title"] == "Coming up: Date night"
    assert push.json["url"].startswith("https://checkins.example.org/l/")
    logged = log.read_text()
    assert VAPID_PRIVATE not in logged and phone.as_json()["keys"]["auth"] not in logged
