"""Another team's service: `pip install attune-contracts[kafka]` alone, then publish a valid event in a few lines."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from attune_contracts import Topic, parse
from attune_runtime.kafka import ensure_topics
from attune_runtime.settings import ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

OTHER_TEAM = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from attune_contracts import AttunePublisher
    from attune_contracts.messages import LogMoment, MomentKind

    async def main():
        async with AttunePublisher.connect(sys.argv[1], producer="calendar-sync") as publisher:
            envelope = await publisher.publish(
                LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.POSITIVE),
                household_id=uuid.UUID(sys.argv[2]),
            )
        print(envelope.event_id)

    asyncio.run(main())
    """
)


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists(), "uv is installed by `make env`"
    return found


async def test_contracts_install_alone_and_publish(kafka_bootstrap: str, tmp_path: Path) -> None:
    venv = tmp_path / "other-team"
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run([uv(), "pip", "install", "-q", f"{ROOT / 'shared' / 'contracts'}[kafka]"], check=True, env=env)
    freeze = subprocess.run([uv(), "pip", "freeze"], check=True, env=env, capture_output=True, text=True).stdout
    assert "attune-contracts" in freeze
    assert "faststream" not in freeze and "sqlalchemy" not in freeze.lower()

    await ensure_topics(ServiceSettings(environment="development", kafka_bootstrap_servers=kafka_bootstrap), [Topic.CHECKINS_COMMANDS])
    household = uuid.uuid4()
    run = subprocess.run([str(venv / "bin" / "python"), "-c", OTHER_TEAM, kafka_bootstrap, str(household)],
                         check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    event_id = run.stdout.strip()

    consumer = AIOKafkaConsumer(Topic.CHECKINS_COMMANDS.value, bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"reader-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                matches = [r for records in batch.values() for r in records if r.key == str(household).encode()]
                if matches:
                    break
    finally:
        await consumer.stop()
    envelope = parse(matches[0].value)
    assert str(envelope.event_id) == event_id
    assert envelope.producer == "calendar-sync" and envelope.type == "checkins.log_moment"
    assert dict(matches[0].headers)["event_type"] == b"checkins.log_moment"
