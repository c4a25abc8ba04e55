"""The delivery loop's reads on PostgreSQL, alone: client-side CPU of `claim_due` + `load_batch` per row.

    .venv/bin/python bench/claim_load_bench.py [--rows 4000] [--step 32] [--label after]

Seeds `--rows` due deliveries for `--rows`/2 members (one push channel each) in a throwaway database on
127.0.0.1:5432, then claims them `--step` at a time (the burst's claim size: DELIVERY_CONCURRENCY / 8) and
loads each claim's members, channels and sends today, as a delivery round does; prints this process's CPU
(`time.process_time`: SQLAlchemy, asyncpg, decrypting, building rows) per row. For an A/B, run the older
store with its packages on PYTHONPATH (bench/README.md, burst3).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from attune_notifier.adapters import tables as t
from attune_notifier.adapters.sql import ChannelCipher, SqlStore, make_engine, migrate
from cryptography.fernet import Fernet


async def main(n: int, step: int, label: str) -> None:
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    name = f"attune_sqlb_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
        await migrate(engine)
        cipher = ChannelCipher(Fernet.generate_key().decode())
        store = SqlStore(engine, cipher)
        now = datetime.now(UTC)
        members = [uuid.uuid4() for _ in range(n // 2)]
        hh = uuid.uuid4()
        async with engine.begin() as conn:
            await conn.execute(t.members.insert(), [
                {"member_id": m, "household_id": hh, "display_name": "A", "role": "partner", "time_zone": "UTC",
                 "discreet": False, "daily_cap": 12, "categories": {}, "updated_at": now} for m in members])
            await conn.execute(t.channels.insert(), [
                {"channel_id": uuid.uuid4(), "member_id": m, "household_id": hh, "kind": "push", "position": 0,
                 "secret": cipher.encrypt(f"json://127.0.0.1:9/{m}"), "created_at": now} for m in members])
            sealed = cipher.seal_params({"title": "x"})
            await conn.execute(t.deliveries.insert(), [
                {"notification_id": uuid.uuid4(), "household_id": hh, "member_id": members[i % len(members)],
                 "cause_event_id": uuid.uuid4(), "cause_type": "RitualDue", "purpose": "ritual_due",
                 "category": "evening_attunement", "template": "evening_attunement", "params": sealed,
                 "sensitive": False, "occurrence_id": uuid.uuid4(), "ritual_id": uuid.uuid4(), "occurred_at": now,
                 "created_at": now, "expires_at": None, "status": "pending", "reason": None, "channel_index": 0,
                 "attempt": 0, "total_attempts": 0, "next_attempt_at": now - timedelta(seconds=1),
                 "claimed_until": None, "channel_kind": None, "last_error": None, "sent_at": None,
                 "unknown_sends": 0} for i in range(n)])
        await store.claim_due(now, 1, timedelta(seconds=30))  # warm-up: connections, prepares
        cpu, wall, rows = time.process_time(), time.perf_counter(), 0
        while True:
            due = await store.claim_due(now, step, timedelta(seconds=30))
            if not due:
                break
            rows += len(due)
            await store.load_batch({d.member_id for d in due}, now - timedelta(hours=27))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{label}: {rows} rows claimed and loaded {step} at a time: {1e6 * cpu / rows:.0f} us CPU a row (client), {1e6 * wall / rows:.0f} us wall a row")
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--step", type=int, default=32)
    parser.add_argument("--label", default="run")
    options = parser.parse_args()
    asyncio.run(main(options.rows, options.step, options.label))
