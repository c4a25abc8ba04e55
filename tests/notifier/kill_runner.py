"""One delivery worker alone in its own process, so a test can kill -9 it (test_kill_nine.py).

    python -m tests.notifier.kill_runner DB_URL CHANNEL_KEY CONCURRENCY SEND_TIMEOUT_S LEASE_S
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from attune_contracts import Publisher
from attune_notifier.adapters.apprise_sender import AppriseSender
from attune_notifier.adapters.sql import ChannelCipher, SqlStore, make_engine
from attune_notifier.delivery import DeliveryWorker
from attune_notifier.metrics import NotifierMetrics
from attune_notifier.service import RetryPlan
from prometheus_client import CollectorRegistry


async def main(db_url: str, key: str, concurrency: int, send_timeout_s: float, lease_s: float) -> None:
    async def nowhere(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
        return None

    worker = DeliveryWorker(
        SqlStore(make_engine(db_url), ChannelCipher(key)),
        AppriseSender(timeout_s=send_timeout_s, max_in_flight=concurrency),
        Publisher(nowhere, producer="notifier"), NotifierMetrics(CollectorRegistry()),
        clock=lambda: datetime.now(UTC), concurrency=concurrency, send_timeout_s=send_timeout_s,
        lease=timedelta(seconds=lease_s), idle_poll_s=0.05,
        retry=RetryPlan(unknown_retry_delay=timedelta(seconds=3)),
    )
    worker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    db, channel_key, n, timeout, lease = sys.argv[1:6]
    asyncio.run(main(db, channel_key, int(n), float(timeout), float(lease)))
