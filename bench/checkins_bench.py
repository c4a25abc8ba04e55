"""Check-ins recorded per second by one instance on PostgreSQL from the real broker, next to the
FastStream batch-consume ceiling on the same messages.

    .venv/bin/python bench/checkins_bench.py --checkins 20000

1. Starts a fresh Tansu broker and creates a fresh PostgreSQL database (127.0.0.1:5432, trust auth).
2. Seeds households, members and occurrences straight into the store (not measured).
3. Produces N SubmitCheckIn commands (distinct occurrence/member pairs) to attune.checkins.commands.
4. Ceiling: a FastStream batch subscriber (max_records=1000) that parses every envelope with the contracts
   and does nothing else; rate = N / (last batch - first batch).
5. Service: the real check-ins service (`bootstrap.build(...).start()`, the same consumer, store and
   publisher as production) in a fresh consumer group; rate = N / (last recorded_at - first recorded_at),
   read back from the database, so group-join time is not counted. Also checks that every command was
   recorded exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import SecretStr
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "services" / "checkins"), str(ROOT / "shared" / "runtime")]

from attune_checkins.adapters.migrate import upgrade
from attune_checkins.bootstrap import build
from attune_checkins.config import Settings
from attune_checkins.service import Occurrence, derived_id
from attune_contracts import Topic, make_envelope, parse
from attune_contracts.messages import CheckInStatus, SubmitCheckIn
from attune_runtime.kafka import ensure_topics
from attune_runtime.logs import configure_logging
from attune_runtime.tansu import Tansu
from attune_runtime.testing import create_database, drop_database

FERNET_KEY = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMDAwMDA="


async def seed(parts: Any, households: int, per_household: int, now: datetime) -> list[tuple[uuid.UUID, bytes]]:
    """Households of two members, `per_household` occurrences each; returns (household, command bytes)."""
    commands: list[tuple[uuid.UUID, bytes]] = []
    async with parts.store.unit_of_work() as uow:
        for h in range(households):
            household = derived_id("bench-household", h)
            members = (derived_id("bench-member", h, 0), derived_id("bench-member", h, 1))
            await uow.households.put_household(household, "Europe/Lisbon", now)
            for member in members:
                await uow.households.add_member(household, member)
            ritual = derived_id("bench-ritual", h)
            for o in range(per_household // 2):
                scheduled = now - timedelta(days=o, minutes=30)
                occurrence = Occurrence(derived_id("bench-occ", h, o), household, ritual, "evening_attunement",
                                        "Evening attunement", members, scheduled, now + timedelta(hours=12),
                                        "Europe/Lisbon")
                await uow.occurrences.add_occurrence(occurrence)
                for member in members:
                    command = SubmitCheckIn(occurrence_id=occurrence.occurrence_id, member_id=member,
                                            status=CheckInStatus.DONE, closeness=4, note="bench note")
                    envelope = make_envelope(command, household_id=household, producer="attune-cli")
                    commands.append((household, envelope.to_bytes()))
    return commands


async def seed_history(url: str, households: int, per_household: int, days: int, now: datetime) -> int:
    """`days` earlier daily occurrences per household ritual, before the ones checked in during the run, each
    kept by the first member but every tenth (a break every ten days, as in life): what a streak refresh
    reads back in production. Copied straight into the tables; returns the occurrences written."""
    occurrences, checkins = [], []
    zone = "Europe/Lisbon"
    for h in range(households):
        household, ritual = derived_id("bench-household", h), derived_id("bench-ritual", h)
        members = [str(derived_id("bench-member", h, 0)), str(derived_id("bench-member", h, 1))]
        for d in range(per_household // 2, per_household // 2 + days):
            scheduled = now - timedelta(days=d, minutes=30)
            occurrence = derived_id("bench-history", h, d)
            occurrences.append((occurrence, household, ritual, "evening_attunement", "Evening attunement",
                                json.dumps(members), scheduled, scheduled + timedelta(hours=12),
                                scheduled.astimezone(ZoneInfo(zone)).date(), zone, False,
                                scheduled + timedelta(hours=12), False))
            if d % 10:
                checkins.append((derived_id("bench-history-checkin", h, d), occurrence, uuid.UUID(members[0]),
                                 household, ritual, "evening_attunement", "done", "event",
                                 scheduled + timedelta(minutes=20), scheduled + timedelta(minutes=20), scheduled))
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table("occurrences", records=occurrences, columns=[
            "occurrence_id", "household_id", "ritual_id", "template", "title", "participants", "scheduled_for",
            "deadline", "local_date", "time_zone", "sensitive", "closed_at", "missed"])
        await conn.copy_records_to_table("checkins", records=checkins, columns=[
            "checkin_id", "occurrence_id", "member_id", "household_id", "ritual_id", "template", "status",
            "source", "submitted_at", "recorded_at", "scheduled_for"])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return len(occurrences)


async def produce(bootstrap: str, commands: list[tuple[uuid.UUID, bytes]]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5,
                                max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(Topic.CHECKINS_COMMANDS.value, value=v, key=str(h).encode())
                   for h, v in commands]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(commands) / (time.perf_counter() - started)


async def batch_ceiling(bootstrap: str, total: int) -> float:
    broker = KafkaBroker(bootstrap, enable_idempotence=False, log_level=logging.DEBUG)
    seen, marks = 0, []
    done = asyncio.Event()

    @broker.subscriber(Topic.CHECKINS_COMMANDS.value, group_id=f"bench-ceiling-{uuid.uuid4().hex[:6]}",
                       batch=True, max_records=1000, auto_offset_reset="earliest", session_timeout_ms=6000)
    async def consume(msg: KafkaMessage) -> None:
        nonlocal seen
        records = msg.raw_message
        for record in records:
            parse(record.value)
        seen += len(records)
        marks.append((time.perf_counter(), len(records)))
        if seen >= total:
            done.set()

    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), 120)
    finally:
        await broker.stop()
    # The first batch is the start mark: count what came after it.
    counted = sum(n for _, n in marks[1:])
    return counted / (marks[-1][0] - marks[0][0]) if len(marks) > 1 else float("nan")


async def recorded_events(bootstrap: str) -> tuple[int, int]:
    """(CheckInRecorded events on the events topic, distinct check-in ids among them)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        topic = Topic.CHECKINS_EVENTS.value
        await consumer.topics()  # fetches the metadata
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        count, ids = 0, set()
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    if dict(record.headers).get("event_type") == b"checkins.checkin_recorded":
                        count += 1
                        ids.add(json.loads(record.value)["payload"]["checkin_id"])
        return count, len(ids)
    finally:
        await consumer.stop()


class make_profiler:  # used like a function
    """start()/stop() around the service phase, writing PATH when stopped."""

    def __new__(cls, path: str | None) -> Any:
        return super().__new__(cls) if path else None

    def __init__(self, path: str) -> None:
        self.path = path
        if path.endswith(".prof"):
            self.profiler: Any = cProfile.Profile()
        else:
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.0005, async_mode="disabled")

    def start(self) -> None:
        if isinstance(self.profiler, cProfile.Profile):
            self.profiler.enable()
        else:
            self.profiler.start()

    def stop(self) -> None:
        if isinstance(self.profiler, cProfile.Profile):
            self.profiler.disable()
            self.profiler.dump_stats(self.path)
            return
        self.profiler.stop()
        html = self.path.endswith(".html")
        Path(self.path).write_text(self.profiler.output_html() if html else self.profiler.output_text(show_all=False))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkins", type=int, default=20_000)
    parser.add_argument("--per-household", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500, help="the service's batch_max_records")
    parser.add_argument("--profile", metavar="PATH",
                        help="profile the service phase: PATH.prof = cProfile stats; PATH.txt or .html = pyinstrument "
                             "(sampling, less distortion; pip install pyinstrument, not a project dependency)")
    parser.add_argument("--history-days", type=int, default=0,
                        help="also seed this many earlier days of each ritual's history (what streaks read back)")
    parser.add_argument("--service-logs", action="store_true",
                        help="log as `python -m attune_checkins` does (a JSON line at INFO per check-in), to /dev/null")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.service_logs:
        configure_logging("checkins")
        logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115 - once, for the whole run

    database_url = await create_database("attune_bench")
    with Tansu() as tansu:
        settings = Settings(environment="development",
            kafka_bootstrap_servers=tansu.bootstrap,
            database_url=database_url,
            kafka_session_timeout_ms=6000, notes_key=SecretStr(FERNET_KEY), log_json=False,
            batch_max_records=args.batch,
        )
        await ensure_topics(settings)
        parts = build(settings, run_timer=False)
        await upgrade(parts.store.engine)
        now = datetime.now(UTC)
        households = max(1, args.checkins // args.per_household)
        t0 = time.perf_counter()
        commands = await seed(parts, households, args.per_household, now)
        print(f"seeded {households} households, {len(commands)} commands in {time.perf_counter() - t0:.1f}s")
        if args.history_days:
            t0 = time.perf_counter()
            written = await seed_history(database_url.replace("+asyncpg", ""), households,
                                         args.per_household, args.history_days, now)
            print(f"seeded {written} earlier occurrences ({args.history_days} days per ritual, a break every "
                  f"ten) in {time.perf_counter() - t0:.1f}s")
        produce_rate = await produce(tansu.bootstrap, commands)
        total = len(commands)
        del commands  # the service's process should not carry the benchmark's own heap (the collector walks it)
        print(f"produced {total} commands at {produce_rate:,.0f}/s")

        ceiling = await batch_ceiling(tansu.bootstrap, total)
        print(f"FastStream batch-consume ceiling (parse only): {ceiling:,.0f}/s")

        sizes: list[tuple[int, float]] = []
        handle_batch = parts.service.handle_batch

        cpu_marks: list[float] = []

        async def timed(envelopes: list[Any]) -> None:
            started = time.perf_counter()
            cpu_marks.append(time.process_time())
            await handle_batch(envelopes)
            sizes.append((len(envelopes), time.perf_counter() - started))
            cpu_marks.append(time.process_time())

        parts.service.handle_batch = timed  # type: ignore[method-assign]
        profiler = make_profiler(args.profile)
        await parts.start()
        if profiler is not None:
            profiler.start()
        deadline = time.monotonic() + 900
        async with parts.store.engine.connect() as conn:
            while True:
                count = (await conn.execute(text("SELECT count(*) FROM checkins WHERE recorded_at >= :now"),
                                            {"now": now})).scalar_one()
                if count >= total or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            first, last, distinct = (await conn.execute(text(
                "SELECT min(recorded_at), max(recorded_at), count(DISTINCT (occurrence_id, member_id)) FROM checkins"
                " WHERE recorded_at >= :now"
            ), {"now": now})).one()
        if profiler is not None:
            profiler.stop()
        await parts.stop()
        seconds = (last - first).total_seconds()
        rate = count / seconds if seconds > 0 else float("nan")
        print(f"check-ins service: {count} recorded ({distinct} distinct) in {seconds:.1f}s = {rate:,.0f}/s")
        events, distinct_events = await recorded_events(tansu.bootstrap)
        print(f"  {events} CheckInRecorded events published ({distinct_events} distinct check-ins)")
        if sizes:
            busy = sum(d for _, d in sizes)
            print(f"  {len(sizes)} batches, mean {sum(n for n, _ in sizes) / len(sizes):.0f} messages, "
                  f"{busy:.1f}s inside handle_batch ({sum(n for n, _ in sizes) / busy:,.0f}/s while busy)")
            # CPU of this whole process (consumer, parsing, handler, producer) from the first batch's start to
            # the last batch's end: less sensitive to other load on the machine than the wall-clock rate.
            cpu = cpu_marks[-1] - cpu_marks[0]
            print(f"  CPU {cpu:.2f}s = {cpu / sum(n for n, _ in sizes) * 1e6:,.0f} µs per check-in "
                  f"(process time, first batch start to last batch end); load average {os.getloadavg()}")
    await drop_database(database_url)


if __name__ == "__main__":
    asyncio.run(main())
