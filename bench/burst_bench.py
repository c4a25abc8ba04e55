"""The 19:00 burst, end to end: N households x 2 members with rituals due in the same minute, through the
scheduler, Kafka and the notifier on PostgreSQL, to a push gateway that answers slowly and sometimes fails.

    .venv/bin/python bench/burst_bench.py --households 1000 [--schedulers 2] [--notifiers 2]

1. A fresh Tansu broker, two throwaway databases on 127.0.0.1:5432, and the gateway in its own process:
   it answers each POST after a delay drawn from 0.2-1.0 s and fails a share of them with 429/5xx;
   `bench/gateway.py` (the realistic gateway of issue 12), recording every arrival to a JSON-lines file.
   A push counts as arrived when it was answered 200, at the time its request was read.
2. Naive: `asyncio.gather` over `Apprise().async_notify` for the same number of sends (2 per household, or
   `--naive-sends`), against the same gateway, with Apprise's default thread pool (CPUs + 4 threads).
3. The services as separate processes, as docker-compose.yml starts them (`python -m attune_scheduler`,
   `python -m attune_notifier`), `--schedulers` and `--notifiers` instances sharing one database each, each
   notifier with `--notifier-workers` processes (ATTUNE_NOTIFIER_WORKERS). Set-up is not measured and takes
   two bench-only shortcuts (README, "Set-up"): the commands are decided by the scheduler's own rules and
   written in bulk straight into its tables (`seed_commands`), and the channels are written encrypted
   straight into the notifier's table once it has learnt every member from the scheduler's events
   (`seed_channels`). Every ritual is due at the same whole minute, after set-up.
4. From the minute on: wait for a push per member (or `--timeout`), then a quiet spell for late
   duplicates. Figures: pushes per member (exactly once?), lateness of each first arrival after the minute
   (p50/p99/max; the target is the last within 30 s), the most sends in flight at the gateway, and CPU
   (psutil, all threads) per expected push for each service, the broker, the gateway and the PostgreSQL
   backends serving the two databases (`--profile FILE`: py-spy's stacks of the notifiers over that span).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_S = 30.0
CHANNEL_KEY = "YmVuY2gtb25seS1jaGFubmVsLWtleS0wMTIzNDU2Nzg="  # the notifiers' ATTUNE_NOTIFIER_CHANNEL_KEY here


# ---- helpers ----------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


async def bounded(limit: int, coroutines: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coroutine: Any) -> Any:
        async with gate:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


def cpu_s(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)]  # uvicorn's workers are child processes
        except psutil.Error:
            continue
        for member in family:
            try:
                times = member.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    return total


def postgres_cpu_s(databases: list[str]) -> float:
    """CPU of the PostgreSQL backends serving these databases (their process title names the database): the
    queries' own cost, without the server's shared writers (WAL, checkpoints) or other sessions' databases."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["cmdline", "cpu_times"]):
        title = " ".join(process.info["cmdline"] or [])
        if title.startswith("postgres: ") and any(f" {name} " in title for name in databases):
            times = process.info["cpu_times"]
            if times is not None:
                total += times.user + times.system
    return total


def start_profile(pids: list[int], out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording the notifier processes (and their workers) as collapsed stacks, 100 samples/s of the thread
    holding the GIL (threads waiting on a socket are not CPU)."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise SystemExit("--profile needs py-spy in the venv: .venv/bin/python -m pip install py-spy")
    return subprocess.Popen([str(spy), "record", "--pid", str(pids[0]), "--subprocesses", "--gil", "--rate", "100",
                             "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=open(out.with_suffix(".log"), "wb"))


class Gate:
    """The gateway process seen from here: its record file for arrivals, its /stats for the most in flight."""

    def __init__(self, client: Any, port: int, record: Path) -> None:
        self.client, self.port, self.record = client, port, record
        self.offset = 0

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    async def stats(self) -> dict[str, Any]:
        answer = (await self.client.get(f"http://127.0.0.1:{self.port}/stats", timeout=60)).json()
        with self.record.open("rb") as record:
            record.seek(self.offset)
            lines = record.read().splitlines()
        arrivals = []
        for line in lines:
            with contextlib.suppress(ValueError):  # a line half written as we read
                row = json.loads(line)
                arrivals.append((row["path"], row["at"], row["status"]))
        return {"arrivals": arrivals, "max_in_flight": answer["max_in_flight"],
                "connections": answer.get("connections")}

    async def reset(self) -> None:
        """From now on: count arrivals recorded after this point, and the most in flight from now."""
        await self.client.get(f"http://127.0.0.1:{self.port}/stats?reset=1")
        self.offset = self.record.stat().st_size if self.record.exists() else 0


def tally(arrivals: list[Any], wanted: set[str], due: float) -> dict[str, Any]:
    """Pushes per member at the gateway (each member has one occurrence in the run, and the channel's path
    ends with the member id): answered 200 once each, and how late each member's first one came."""
    first: dict[str, float] = {}
    copies: Counter[str] = Counter()
    failed = 0
    for path, at, status in arrivals:
        if status != 200:
            failed += 1
            continue
        member = path.rsplit("/", 1)[1]
        copies[member] += 1
        first[member] = min(first.get(member, at), at)
    lateness = [first[m] - due for m in wanted if m in first]
    return {
        "pushes_expected": len(wanted), "arrived": len(lateness), "lost": len(wanted - set(first)),
        "duplicated": sum(c - 1 for m, c in copies.items() if m in wanted and c > 1),
        "unexpected": sum(c for m, c in copies.items() if m not in wanted),
        "gateway_failures_answered": failed,
        "lateness_p50_s": pct(lateness, 0.5), "lateness_p99_s": pct(lateness, 0.99),
        "lateness_max_s": pct(lateness, 1.0),
        "last_within_30s": bool(lateness) and len(lateness) == len(wanted) and max(lateness) <= TARGET_S,
    }


# ---- the naive gather ---------------------------------------------------------------------------------

async def naive(gate: Gate, sends: int) -> dict[str, Any]:
    from apprise import Apprise

    await gate.reset()
    start = time.time()

    async def one(i: int) -> bool:
        notifier = Apprise()
        notifier.add(gate.url(f"naive/{i}"))
        return bool(await notifier.async_notify(title="Date night", body=f"naive {i}"))

    ok = sum(await asyncio.gather(*(one(i) for i in range(sends))))
    elapsed = time.time() - start
    stats = await gate.stats()
    delivered = [at - start for _, at, status in stats["arrivals"] if status == 200]
    return {"sends": sends, "ok": ok, "requests": len(stats["arrivals"]), "delivered": len(delivered), "seconds": round(elapsed, 1),
            "per_s": round(len(delivered) / elapsed, 1), "max_in_flight": stats["max_in_flight"],
            "lateness_p50_s": pct(delivered, 0.5), "lateness_p99_s": pct(delivered, 0.99),
            "lateness_max_s": pct(delivered, 1.0)}


# ---- the services -------------------------------------------------------------------------------------

class Services:
    def __init__(self, logdir: Path, bootstrap: str, databases: dict[str, str], workers: int = 1,
                 plugin_warm_s: float = 5) -> None:
        self.logdir, self.bootstrap, self.databases, self.workers = logdir, bootstrap, databases, workers
        self.plugin_warm_s = plugin_warm_s
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, service: str) -> None:
        from attune_runtime.tansu import free_port

        p = f"ATTUNE_{service.upper()}_"
        port = free_port()
        env = {**os.environ, f"{p}ENVIRONMENT": "development", f"{p}KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               f"{p}HTTP_HOST": "127.0.0.1",
               f"{p}HTTP_PORT": str(port), f"{p}DATABASE_URL": self.databases[service],
               f"{p}LOG_LEVEL": "WARNING", f"{p}KAFKA_SESSION_TIMEOUT_MS": "6000", "PYTHONUNBUFFERED": "1"}
        if service == "notifier":
            # The plugin warmer looks for new channels every 5 s (30 s by default) so the channels seeded just
            # before the minute are parsed ahead, as channels stored days before a real 19:00 would be.
            env |= {f"{p}DELIVERY_IDLE_POLL_S": "0.25", f"{p}CHANNEL_KEY": CHANNEL_KEY,
                    f"{p}PLUGIN_WARM_INTERVAL_S": str(self.plugin_warm_s),
                    f"{p}WORKERS": str(self.workers)}
        out = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - the process keeps it
        self.processes[name] = subprocess.Popen([sys.executable, "-m", f"attune_{service}"], env=env,
                                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.ports[name] = port

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def pids(self, service: str) -> list[int]:
        return [p.pid for name, p in self.processes.items() if name.startswith(service)]

    async def ready(self, client: Any, name: str, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise SystemExit(f"{name} exited; see {self.logdir / name}.log")
            try:
                if (await client.get(f"{self.url(name)}/readyz", timeout=3)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
        raise SystemExit(f"{name} not ready within {timeout:.0f}s; see {self.logdir / name}.log")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def seed_commands(database: str, commands: list[tuple[uuid.UUID, Any]], views: dict[uuid.UUID, Any],
                        chunk: int = 500) -> None:
    """Bench-only shortcut for set-up (not measured): the commands go straight into the scheduler's tables,
    not through Kafka and its one-at-a-time consumer (~8-17 commands/s on this loaded machine; 10,000
    households are 40,000 commands). Each command is decided by the scheduler's own rules
    (`decisions.decide`, on a view of the household kept here in memory, `views`, as `SqlHouseholds.load`
    would read it back), and written as `handlers.handle_command` writes it — the same household, member and
    ritual rows (`ritual_values`), the same facts in the outbox (`facts_of`), the command's id in
    processed_commands — but in bulk: one statement per table for `chunk` households. The facts
    (MemberUpserted for the notifier, RitualScheduled) leave through the scheduler's relay as usual."""
    import sqlalchemy as sa
    from attune_contracts import make_envelope
    from attune_scheduler.adapters import tables
    from attune_scheduler.adapters.repositories import outbox_values, ritual_values
    from attune_scheduler.adapters.sql import SqlStore
    from attune_scheduler.decisions import decide
    from attune_scheduler.model import HouseholdView
    from attune_scheduler.outgoing import facts_of

    store = SqlStore.from_url(database)
    by_household: dict[uuid.UUID, list[Any]] = {}
    for household, command in commands:
        by_household.setdefault(household, []).append(command)
    groups = list(by_household.items())
    try:
        for i in range(0, len(groups), chunk):
            rows: dict[str, list[dict[str, Any]]] = {"households": [], "members": [], "rituals": [], "outbox": [],
                                                     "processed_commands": []}
            now = datetime.now(UTC)
            for household, its in groups[i:i + chunk]:
                view = views.setdefault(household, HouseholdView(id=household, household=None))
                for command in its:
                    envelope = make_envelope(command, household_id=household, producer="attune-cli")
                    outcome = decide(view, envelope, now)
                    if outcome.rejected:
                        raise SystemExit(f"the scheduler refused a set-up command: {outcome.rejected}")
                    if outcome.household is not None:
                        h = view.household = outcome.household
                        rows["households"].append({"id": h.id, "name": h.name, "time_zone": h.time_zone,
                                                   "kind": h.kind.value, "updated_at": now})
                    for m in outcome.members:
                        view.members[m.member_id] = m
                        rows["members"].append({"household_id": household, "member_id": m.member_id,
                                                "display_name": m.display_name, "role": m.role.value})
                    for r in outcome.rituals:
                        view.rituals[r.id] = r
                        rows["rituals"].append(ritual_values(r, now))
                    rows["outbox"] += [outbox_values(m, now) for m in facts_of(envelope, outcome.facts, now)]
                    rows["processed_commands"].append({"event_id": envelope.event_id, "command_type": envelope.type,
                                                       "outcome": "accepted", "processed_at": now})
            async with store.engine.begin() as conn:
                for name, values in rows.items():
                    if values:
                        await conn.execute(sa.insert(getattr(tables, name)), values)
    finally:
        await store.engine.dispose()


async def seed_channels(database: str, members: list[uuid.UUID], gate: Gate, deadline: float) -> None:
    """Bench-only shortcut for set-up: wait until the notifier has learnt every member (MemberUpserted from
    the scheduler, through Kafka), then write each member's push channel straight into the notifier's table,
    encrypted with the notifier's own ChannelCipher and key, in one statement per 1,000 — instead of 20,000
    calls to its API (~17/s here). The URL is what the API would have stored (it passes
    `validate_channel_url`, checked on the first)."""
    import sqlalchemy as sa
    from attune_notifier.adapters.apprise_sender import validate_channel_url
    from attune_notifier.adapters.sql import ChannelCipher, make_engine
    from attune_notifier.adapters.tables import channels
    from attune_notifier.adapters.tables import members as member_table

    kind = validate_channel_url(gate.url(f"m/{members[0]}")).value
    cipher = ChannelCipher(CHANNEL_KEY)
    engine = make_engine(database)
    try:
        while True:
            async with engine.connect() as conn:
                known = (await conn.execute(sa.select(sa.func.count()).select_from(member_table))).scalar_one()
            if known >= len(members):
                break
            if time.time() > deadline:
                raise SystemExit(f"the notifier learnt only {known} of {len(members)} members")
            await asyncio.sleep(1)
        now = datetime.now(UTC)
        households = await _households_of(engine, member_table, members)
        rows = [{"channel_id": uuid.uuid4(), "member_id": m, "household_id": households[m], "kind": kind,
                 "position": 0, "secret": cipher.encrypt(gate.url(f"m/{m}")), "created_at": now} for m in members]
        async with engine.begin() as conn:
            for i in range(0, len(rows), 1000):
                await conn.execute(sa.insert(channels), rows[i:i + 1000])
    finally:
        await engine.dispose()


async def _households_of(engine: Any, member_table: Any, members: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    import sqlalchemy as sa

    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(member_table.c.member_id, member_table.c.household_id))).all()
    wanted = set(members)
    return {r.member_id: r.household_id for r in rows if r.member_id in wanted}


async def count_scheduled(bootstrap: str, rituals: set[uuid.UUID], deadline: float) -> int:
    """Read the scheduler's events until every ritual has its RitualScheduled (or the deadline)."""
    from aiokafka import AIOKafkaConsumer
    from attune_contracts import ContractError, Topic, parse

    consumer = AIOKafkaConsumer(Topic.SCHEDULER_EVENTS.value, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: set[uuid.UUID] = set()
    try:
        while rituals - seen and time.time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    try:
                        event = parse(record.value)
                    except (ContractError, ValueError):
                        continue
                    if event.type == "scheduler.command_rejected":
                        raise SystemExit(f"the scheduler refused a set-up command: {event.payload.reason}")
                    if event.type == "scheduler.ritual_scheduled":
                        seen.add(event.payload.ritual_id)
    finally:
        await consumer.stop()
    return len(rituals & seen)


async def burst(args: argparse.Namespace, gate: Gate, client: Any, broker: Any, databases: dict[str, str],
                logdir: Path, broker_pid: int, gateway_pid: int, db_names: list[str]) -> dict[str, Any]:
    from attune_contracts.messages import RegisterHousehold, ScheduleRitual, UpsertMember

    services = Services(logdir, broker.bootstrap, databases, workers=args.notifier_workers,
                        plugin_warm_s=args.plugin_warm_s)
    try:
        # The first instance of each service migrates its database and creates the topics alone.
        services.start("scheduler-1", "scheduler")
        services.start("notifier-1", "notifier")
        await asyncio.gather(services.ready(client, "scheduler-1"), services.ready(client, "notifier-1"))
        for i in range(2, args.schedulers + 1):
            services.start(f"scheduler-{i}", "scheduler")
        for i in range(2, args.notifiers + 1):
            services.start(f"notifier-{i}", "notifier")
        await asyncio.gather(*(services.ready(client, name) for name in services.processes))

        households = [(uuid.uuid4(), (uuid.uuid4(), uuid.uuid4()), uuid.uuid4()) for _ in range(args.households)]
        members = [m for _, pair, _ in households for m in pair]
        set_up_start = time.time()
        views: dict[uuid.UUID, Any] = {}
        await seed_commands(databases["scheduler"], [
            cmd for i, (household, pair, _) in enumerate(households) for cmd in (
                (household, RegisterHousehold(name=f"Burst {i}", time_zone="UTC")),
                *((household, UpsertMember(member_id=m, display_name=f"{'AB'[n]}{i}")) for n, m in enumerate(pair)))
        ], views)
        seeded_s = time.time() - set_up_start
        print(f"set-up: {args.households} households and {len(members)} members in the scheduler after "
              f"{seeded_s:.0f}s", flush=True)
        await seed_channels(databases["notifier"], members, gate, deadline=time.time() + 600)
        print(f"set-up: the notifier knew every member and had their channels after {time.time() - set_up_start:.0f}s",
              flush=True)
        # Scheduling directly is quick (see seed_commands); the relay then publishes RitualScheduled within its poll.
        # The rituals are a third of the commands seeded above: give them that long again, and 20 s for the relay.
        lead = args.lead if args.lead is not None else 20 + seeded_s
        due = (datetime.now(UTC) + timedelta(seconds=lead)).replace(second=0, microsecond=0) + timedelta(minutes=1)
        await seed_commands(databases["scheduler"], [(household, ScheduleRitual(
            ritual_id=ritual, template="evening_attunement", participants=list(pair), rrule="FREQ=DAILY",
            local_time=due.strftime("%H:%M"), start_date=due.date(), reminder_offsets_minutes=[],
            catch_up_minutes=60)) for household, pair, ritual in households], views)
        scheduled = await count_scheduled(broker.bootstrap, {r for _, _, r in households}, due.timestamp() - 1)
        set_up_s = time.time() - set_up_start
        print(f"set-up: {args.households} households in {set_up_s:.0f}s, {scheduled} rituals scheduled; "
              f"due {due:%H:%M:%S} UTC (in {due.timestamp() - time.time():.0f}s)", flush=True)
        if scheduled < args.households:
            # A ritual scheduled after its minute is late by the set-up, not by the burst: not a measurement.
            raise SystemExit(f"only {scheduled} of {args.households} rituals were scheduled before the minute: "
                             "give set-up more time with --lead")

        await gate.reset()
        while time.time() < due.timestamp() - 1:
            await asyncio.sleep(min(1.0, due.timestamp() - 1 - time.time()))
        pids = {"scheduler": services.pids("scheduler"), "notifier": services.pids("notifier"),
                "broker": [broker_pid], "gateway": [gateway_pid]}
        profile = start_profile(services.pids("notifier"), Path(args.profile)) if args.profile else None
        cpu_start = {k: cpu_s(v) for k, v in pids.items()} | {"postgres": postgres_cpu_s(db_names)}
        load_at_minute = load_average()
        expected = set(members)
        deadline = due.timestamp() + args.timeout
        while time.time() < deadline:
            stats = await gate.stats()
            delivered = {path.rsplit("/", 1)[1] for path, _, status in stats["arrivals"] if status == 200}
            if len(delivered) >= len(expected):
                break
            await asyncio.sleep(1)
        cpu_end = {k: cpu_s(v) for k, v in pids.items()} | {"postgres": postgres_cpu_s(db_names)}
        if profile is not None:
            profile.send_signal(signal.SIGINT)
            profile.wait(timeout=60)
        await asyncio.sleep(args.quiet)  # late duplicates show up here
        stats = await gate.stats()
    finally:
        services.stop()

    return {
        "households": args.households, "schedulers": args.schedulers, "notifiers": args.notifiers,
        "notifier_workers": args.notifier_workers,
        **tally(stats["arrivals"], {str(m) for m in expected}, due.timestamp()),
        "max_in_flight": stats["max_in_flight"],
        "gateway_connections": stats["connections"],  # fewer than pushes when the notifier keeps them alive
        "cpu_ms_per_push": {k: round(1000 * (cpu_end[k] - cpu_start[k]) / max(1, len(expected)), 2) for k in cpu_end},
        "set_up_s": round(set_up_s, 0), "load_at_minute": load_at_minute,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    from attune_runtime.tansu import Tansu
    from attune_runtime.testing import create_database, drop_database

    results: dict[str, Any] = {"commit": commit(), "cpus": os.cpu_count(), "load_before": load_average(),
                               "gateway_delay_s": [args.delay_min, args.delay_max], "fail_share": args.fail_share}
    logdir = Path(tempfile.mkdtemp(prefix="burst-bench-"))
    results["logs"] = str(logdir)
    broker = Tansu(log_path=logdir / "tansu.log").start()
    databases = {s: await create_database(f"attune_burst_{s}") for s in ("scheduler", "notifier")}
    record = logdir / "gateway.jsonl"
    record.touch()
    gateway = subprocess.Popen([sys.executable, str(HERE / "gateway.py"), "--port", "0",
                                "--delay", f"{args.delay_min}-{args.delay_max}", "--fail-share", str(args.fail_share),
                                "--seed", str(args.seed), "--record", str(record)],
                               stdout=subprocess.PIPE, stderr=open(logdir / "gateway.log", "wb"))  # noqa: SIM115
    try:
        assert gateway.stdout is not None
        listening = gateway.stdout.readline().decode().split()  # "listening <host> <port>"
        if not listening:
            raise SystemExit(f"the gateway did not start; see {logdir / 'gateway.log'}")
        # Shorter than uvicorn's 5 s keep-alive, so a connection is not reused just as the server closes it.
        limits = httpx.Limits(max_connections=64, keepalive_expiry=2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            gate = Gate(client, int(listening[2]), record)
            sends = args.naive_sends if args.naive_sends is not None else 2 * args.households
            if sends:
                results["naive"] = await naive(gate, sends)
                print("naive:", json.dumps(results["naive"]), flush=True)
            results["burst"] = await burst(args, gate, client, broker, databases, logdir, broker.process.pid,
                                           gateway.pid, [url.rsplit("/", 1)[-1] for url in databases.values()])
            print("burst:", json.dumps(results["burst"]), flush=True)
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
        broker.stop()
        for url in databases.values():
            await drop_database(url)
    results["load_after"] = load_average()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--schedulers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--notifiers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--notifier-workers", type=int, default=1,
                        help="ATTUNE_NOTIFIER_WORKERS for each notifier instance (processes per instance)")
    parser.add_argument("--naive-sends", type=int, help="sends for the naive gather (default 2 per household; 0 skips it)")
    parser.add_argument("--plugin-warm-s", type=float, default=5,
                        help="the notifiers' PLUGIN_WARM_INTERVAL_S (0: no warming, each URL parsed at its send)")
    parser.add_argument("--delay-min", type=float, default=0.2)
    parser.add_argument("--delay-max", type=float, default=1.0)
    parser.add_argument("--fail-share", type=float, default=0.01, help="share of sends answered 429/5xx")
    parser.add_argument("--seed", type=int, default=1, help="the gateway's seed (which sends fail)")
    parser.add_argument("--lead", type=float, help="seconds from set-up to the minute, rounded up to a whole minute "
                                                   "(default 20 + the seconds the households took to seed)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds after the minute to wait for every push")
    parser.add_argument("--quiet", type=float, default=5, help="seconds to wait for late duplicates")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the notifiers from the minute to the last push "
                                                          "(collapsed stacks to FILE; py-spy installed in the venv)")
    options = parser.parse_args()
    figures = asyncio.run(main(options))
    print(json.dumps(figures, indent=2))
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))
