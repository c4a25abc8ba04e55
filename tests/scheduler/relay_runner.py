"""One scheduler relay alone in its own process, so a test can kill -9 it (test_sharded_relay.py).

    python -m tests.scheduler.relay_runner DB_URL SHARDS OUT_FILE BATCH_DELAY_S

Its "broker" appends each acknowledged row to OUT_FILE as `event_id household_id row_id`, one line each.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.clock import SystemClock
from attune_scheduler.metrics import SchedulerMetrics
from attune_scheduler.model import OutboxRow
from attune_scheduler.scheduler import Scheduler
from prometheus_client import CollectorRegistry


async def main(db_url: str, shards: int, out: TextIO, delay: float) -> None:
    async def sink(rows: Sequence[OutboxRow]) -> None:
        await asyncio.sleep(delay)
        out.write("".join(f"{r.event_id} {r.household_id} {r.id}\n" for r in rows))
        out.flush()

    store = SqlStore.from_url(db_url, relay_shards=shards)
    scheduler = Scheduler(store.unit_of_work, store, store.relay, SystemClock(), sink, SchedulerMetrics(CollectorRegistry()),
                          relay_batch_size=20, relay_poll_s=0.1)
    scheduler.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    url, n, path, batch_delay = sys.argv[1:5]
    with open(path, "a") as out_file:
        asyncio.run(main(url, int(n), out_file, float(batch_delay)))
