"""ATTUNE_NOTIFIER_WORKERS: one instance, several delivery processes sharing the deliveries table (issue 12).

`python -m attune_notifier` with two workers, PostgreSQL and the real broker; 240 deliveries due to a gateway
answering in 0.3 s; each process may have 16 sends in flight. More than 16 open at the gateway at once means
both processes deliver; each message arriving exactly once means their claims skip each other's rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from attune_contracts.messages import MemberRole, MemberUpserted
from attune_notifier.adapters.apprise_sender import validate_channel_url
from attune_notifier.adapters.sql import ChannelCipher, SqlStore, make_engine
from attune_notifier.config import DEV_CHANNEL_KEY
from attune_notifier.service import Intent, notification_id
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually
from support.inprocess import wait_ready

from .conftest import ANA, HOUSEHOLD

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gateway import Gateway  # bench/ is not a package: found through sys.path above

pytestmark = [pytest.mark.integration]


def intent(n: int, now: datetime) -> Intent:
    return Intent(notification_id=notification_id("workers", ANA, str(n)), household_id=HOUSEHOLD, member_id=ANA,
                  cause_event_id=UUID(int=n + 1), cause_type="test", purpose="test.workers", category="general",
                  template="request", params={"title": "Burst", "body": f"w{n}"}, sensitive=False,
                  occurred_at=now, not_before=now, expires_at=None)


def start_notifier(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "attune_notifier"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


async def test_two_workers_deliver_from_one_table_each_message_once(kafka_bootstrap: str, pg_url: str,
                                                                    tmp_path: Path) -> None:
    url = pg_url
    gw = await Gateway(delay_s=(0.3, 0.3), seed=1).start()
    port = free_port()
    env = {**os.environ, "ATTUNE_NOTIFIER_WORKERS": "2", "ATTUNE_NOTIFIER_DATABASE_URL": url,
           "ATTUNE_NOTIFIER_HTTP_PORT": str(port), "ATTUNE_NOTIFIER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "ATTUNE_NOTIFIER_CONSUMER_GROUP": f"attune-notifier-{uuid.uuid4().hex[:6]}",
           "ATTUNE_NOTIFIER_DELIVERY_CONCURRENCY": "16", "ATTUNE_NOTIFIER_DELIVERY_PER_HOST_CONCURRENCY": "16",
           "ATTUNE_NOTIFIER_DELIVERY_IDLE_POLL_S": "0.1", "ATTUNE_NOTIFIER_ENVIRONMENT": "development"}
    log = tmp_path / "notifier.log"
    process = start_notifier(env, log)
    engine = make_engine(url)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", timeout=180, interval=0.3)  # under load two workers took 90 s
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(workers) == 2, (children, log.read_text()[-3000:])  # (beside multiprocessing's tracker)

        store = SqlStore(engine, ChannelCipher(DEV_CHANNEL_KEY))
        now = datetime.now(UTC)
        await store.upsert_member(HOUSEHOLD, MemberUpserted(member_id=ANA, display_name="Ana",
                                                            role=MemberRole.PARTNER, time_zone="UTC"), now)
        await store.update_preferences(ANA, {"daily_cap": 1000}, now)
        recipient = await store.get_member(ANA)
        assert recipient is not None
        channel = gw.url("m/ana")
        await store.add_channel(recipient, validate_channel_url(channel), channel, None, now)
        await store.insert_intents([intent(n, now) for n in range(240)], now)

        await eventually(lambda: len(gw.arrivals) >= 240, timeout=90, interval=0.2)
        bodies = sorted(a.body["message"] for a in gw.arrivals)
        assert bodies == sorted(f"w{n}" for n in range(240)), len(bodies)
        assert 16 < gw.max_in_flight <= 32, gw.max_in_flight

        # Both delivered, so no one process counted all 240: /metrics adds the workers up (multiprocess mode),
        # whichever of them answers the scrape.
        async with httpx.AsyncClient() as client:
            async def sent_counted() -> list[float]:
                answers = [(await client.get(f"http://127.0.0.1:{port}/metrics")).text for _ in range(6)]
                return [sample(text, 'attune_notifier_deliveries_total{channel_kind="push",outcome="sent"}')
                        for text in answers]
            await eventually(lambda: _all_equal_to(sent_counted, 240.0), timeout=30, interval=0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
        await engine.dispose()
        await gw.stop()


def sample(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


async def _all_equal_to(read, value: float) -> bool:
    return all(v == value for v in await read())


def test_workers_need_postgresql_and_the_per_host_share_defaults_to_three_quarters() -> None:
    from attune_notifier.config import NotifierSettings
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs PostgreSQL"):
        NotifierSettings(environment="development", workers=2, database_url="sqlite+aiosqlite:///./x.db")
    assert NotifierSettings(environment="development", workers=2, database_url="postgresql+asyncpg://h/db").workers == 2
    assert NotifierSettings(environment="development", delivery_concurrency=256).per_host_concurrency() == 192
    assert NotifierSettings(environment="development", delivery_concurrency=64, delivery_per_host_concurrency=100).per_host_concurrency() == 64
