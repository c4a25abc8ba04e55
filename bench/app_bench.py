"""The household's web app: latency of the "today" page across 1,000 households (issue 14: p99 < 100 ms).

    .venv/bin/python bench/app_bench.py --households 1000 --requests 5000 --concurrency 16

1. Starts a fresh Tansu broker and creates a fresh PostgreSQL database (127.0.0.1:5432, trust auth).
2. Seeds each household straight into the app's store (not measured): two members, two rituals, today's
   occurrence of each, one partner's check-in, and a signed-in session for the first member.
3. Starts the real app as its own process (`python -m attune_app`, uvicorn, the same code as production).
4. Warms up, then GETs /today for a random household's session, `--concurrency` requests in flight, and
   reports p50/p95/p99 of each request's wall time as the client saw it, and requests per second, with
   the machine's load average beside them (bench/results/app_today_c<concurrency>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


async def seed(url: str, households: int) -> list[str]:
    from attune_app.adapters.migrate import upgrade
    from attune_app.adapters.sql import SqlStore, make_engine
    from attune_app.service import CheckIn, Occurrence, new_token, token_hash

    store = SqlStore(make_engine(url))
    await upgrade(store.engine)
    now = datetime.now(UTC)
    tokens: list[str] = []

    async def one(i: int) -> None:
        household, ana, ben = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await store.save_household(household, name=f"Household {i}", kind="couple", time_zone="Europe/Lisbon",
                                   now=now, confirmed=True)
        for member, name in ((ana, "Ana"), (ben, "Ben")):
            await store.save_member(member, household, display_name=name, role="partner", confirmed=True)
        for template, title in (("evening_attunement", "Evening attunement"), ("date_night", "Date night")):
            ritual = uuid.uuid4()
            await store.save_ritual(ritual, household, template=template, title=title, participants=[ana, ben],
                                    rrule="FREQ=DAILY", local_time="20:30", sensitive=False, state="active",
                                    next_due_at=None)
            occurrence = Occurrence(uuid.uuid4(), ritual, template, title, (ana, ben), now, now + timedelta(hours=12),
                                    False)
            await store.save_occurrence(occurrence, household)
            await store.save_checkin(CheckIn(occurrence.occurrence_id, ben, "done", 4), household, now)
        token = new_token()
        await store.add_session(token_hash(token), household, ana, now + timedelta(days=1))
        tokens.append(token)

    for start in range(0, households, 10):  # ten at a time (the pool's size)
        await asyncio.gather(*(one(i) for i in range(start, min(start + 10, households))))
    await store.close()
    return tokens


async def measure(base: str, tokens: list[str], requests: int, concurrency: int) -> tuple[list[float], float]:
    timings: list[float] = []
    queue = list(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            token = random.choice(tokens)
            started = time.perf_counter()
            response = await client.get("/today", cookies={"attune_session": token})
            timings.append(time.perf_counter() - started)
            if response.status_code != 200 or "Evening attunement" not in response.text:
                raise SystemExit(f"unexpected answer {response.status_code}")

    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=concurrency)) as client:
        warm = queue[:]
        queue[:] = list(range(min(500, requests)))
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        timings.clear()
        queue[:] = warm
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return timings, elapsed


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    from attune_runtime.tansu import Tansu, free_port
    from attune_runtime.testing import temporary_database

    broker = Tansu().start()
    try:
        async with temporary_database() as url:
            t0 = time.perf_counter()
            tokens = await seed(url, args.households)
            print(f"seeded {args.households} households in {time.perf_counter() - t0:.1f}s", flush=True)
            port = free_port()
            env = {**os.environ, "ATTUNE_APP_ENVIRONMENT": "development", "ATTUNE_APP_DATABASE_URL": url,
                   "ATTUNE_APP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "ATTUNE_APP_HTTP_PORT": str(port),
                   "ATTUNE_APP_LOG_JSON": "false", "ATTUNE_APP_LOG_LEVEL": "WARNING",
                   "ATTUNE_APP_HTTP_RATE_PER_S": "10000", "ATTUNE_APP_HTTP_RATE_BURST": "100000",
                   "ATTUNE_APP_GROUP_ID": f"attune-app-bench-{uuid.uuid4().hex[:6]}"}
            server = subprocess.Popen([sys.executable, "-m", "attune_app"], env=env, cwd=ROOT)
            try:
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient() as probe:
                    for _ in range(600):
                        if server.poll() is not None:
                            raise SystemExit("the app did not start; its output is above")
                        try:
                            if (await probe.get(base + "/healthz", timeout=1)).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.2)
                timings, elapsed = await measure(base, tokens, args.requests, args.concurrency)
            finally:
                server.terminate()
                server.wait(20)
    finally:
        broker.stop()
    load = os.getloadavg()
    result = {
        "households": args.households, "requests": len(timings), "concurrency": args.concurrency,
        "p50_ms": round(pct(timings, 50) * 1000, 1), "p95_ms": round(pct(timings, 95) * 1000, 1),
        "p99_ms": round(pct(timings, 99) * 1000, 1), "mean_ms": round(statistics.mean(timings) * 1000, 1),
        "requests_per_s": round(len(timings) / elapsed, 1), "load_average": [round(x, 2) for x in load],
        "cpus": os.cpu_count(), "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"app_today_c{args.concurrency}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
