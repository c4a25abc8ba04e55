"""Deliveries per second from the real broker through the notifier to a local JSON sink, next to a naive
`asyncio.gather` over `Apprise.async_notify`, and event-to-delivery latency at a sustained rate.

    .venv/bin/python bench/notifier_bench.py --notifications 3000 --rate 200 --seconds 20

1. Starts a fresh Tansu broker, a fresh PostgreSQL database and a JSON sink (uvicorn, own process) that
   records when each message arrives; every message body carries the wall time it was produced at.
2. Naive: N x (`Apprise()`, `add(url)`, `await async_notify(...)`), 200 at a time under `asyncio.gather`,
   in this process; rate = N / elapsed.
3. Service: `python -m attune_notifier` (one or more instances, one consumer group, PostgreSQL), members
   and channels set up through MemberUpserted events and the HTTP API (not measured). Burst: N
   NotificationRequested produced at once; rate = N / (last arrival - first produce).
4. Sustained: `--rate` events/s for `--seconds`; latency = arrival at the sink - produce time (p50/p99/max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The service under cProfile (main thread only). uvicorn re-raises SIGTERM after its graceful shutdown,
# which would kill the process before the profile is written; a SystemExit lets cProfile.run dump it.
PROFILED = ("import cProfile, signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
            "from attune_notifier.__main__ import main; cProfile.run('main()', sys.argv[1])")


# ---- the sink (runs in its own process) ---------------------------------------------------------

class Sink:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float]] = []  # (arrived, produced)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = b"{}"
        if scope["method"] == "GET" and scope["path"] == "/stats":
            answer = json.dumps(self.arrivals).encode()
        elif scope["method"] == "DELETE":
            self.arrivals.clear()
        else:
            text = json.loads(body).get("message", "")
            produced = float(text.split("sent=", 1)[1].split()[0]) if "sent=" in text else 0.0
            self.arrivals.append((time.time(), produced))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})


def run_sink(port: int) -> None:
    import uvicorn

    uvicorn.run(Sink(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---- the measurements ---------------------------------------------------------------------------

def _cpu(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> tuple[float, float]:
    """User + system CPU of the service processes so far: all threads, and the main (event loop) thread
    alone; the rest is mostly Apprise's send threads (Linux /proc)."""
    total = loop = 0.0
    for process in processes:
        total += _cpu(Path(f"/proc/{process.pid}/stat"))
        loop += _cpu(Path(f"/proc/{process.pid}/task/{process.pid}/stat"))
    return total, loop


def cpu_ms_per(start: tuple[float, float], processes: list[subprocess.Popen[bytes]], n: int) -> dict[str, float]:
    total, loop = cpu_seconds(processes)
    return {"cpu_ms_per_delivery": round(1000 * (total - start[0]) / max(1, n), 2),
            "event_loop_cpu_ms_per_delivery": round(1000 * (loop - start[1]) / max(1, n), 2)}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sink_stats(client: Any, base: str) -> list[tuple[float, float]]:
    return [tuple(x) for x in (await client.get(f"{base}/stats")).json()]


async def wait_for(client: Any, base: str, count: int, timeout: float) -> list[tuple[float, float]]:
    deadline = time.monotonic() + timeout
    while True:
        stats = await sink_stats(client, base)
        if len(stats) >= count or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.1)


async def naive(url: str, n: int, client: Any, base: str) -> dict[str, float]:
    from apprise import Apprise

    await client.delete(f"{base}/stats")
    ok = 0
    start = time.perf_counter()

    async def one(i: int) -> bool:
        notifier = Apprise()
        notifier.add(url)
        return bool(await notifier.async_notify(title="naive", body=f"n {i}"))

    for first in range(0, n, 200):
        ok += sum(await asyncio.gather(*(one(i) for i in range(first, min(n, first + 200)))))
    elapsed = time.perf_counter() - start
    received = len(await sink_stats(client, base))
    return {"sent": n, "ok": ok, "received": received, "seconds": round(elapsed, 2), "per_s": round(n / elapsed, 1)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import httpx
    from aiokafka import AIOKafkaProducer
    from attune_contracts import Topic, make_envelope
    from attune_contracts.credentials import development_issuer
    from attune_contracts.messages import MemberRole, MemberUpserted, NotificationRequested
    from attune_runtime.tansu import Tansu, free_port
    from attune_runtime.testing import create_database, drop_database

    results: dict[str, Any] = {"notifications": args.notifications, "members": args.members,
                               "instances": args.instances, "cpus": os.cpu_count()}
    logdir = Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    broker = Tansu(log_path=logdir / "tansu.log").start()
    database_url = await create_database("attune_bench")
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(sink_port)])
    sink_base = f"http://127.0.0.1:{sink_port}"
    sink_url = f"json://127.0.0.1:{sink_port}/bench"
    services: list[subprocess.Popen[bytes]] = []
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, linger_ms=5)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(100):
                try:
                    await client.get(f"{sink_base}/stats")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            results["naive"] = await naive(sink_url, args.notifications, client, sink_base)
            print("naive:", results["naive"], flush=True)

            ports = [free_port() for _ in range(args.instances)]
            group = f"attune-notifier-bench-{uuid.uuid4().hex[:6]}"
            for i, port in enumerate(ports):
                env = {**os.environ,
                       "ATTUNE_NOTIFIER_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                       "ATTUNE_NOTIFIER_DATABASE_URL": database_url,
                       "ATTUNE_NOTIFIER_HTTP_PORT": str(port),
                       "ATTUNE_NOTIFIER_CONSUMER_GROUP": group, "ATTUNE_NOTIFIER_LOG_LEVEL": "WARNING",
                       "ATTUNE_NOTIFIER_KAFKA_SESSION_TIMEOUT_MS": "6000",
                       "ATTUNE_NOTIFIER_DELIVERY_IDLE_POLL_S": "0.05", "ATTUNE_NOTIFIER_ENVIRONMENT": "development",
                       "ATTUNE_NOTIFIER_HTTP_RATE_PER_S": "10000", "ATTUNE_NOTIFIER_HTTP_RATE_BURST": "100000"}
                out = open(logdir / f"notifier-{i}.log", "wb")  # noqa: SIM115
                command = ["-m", "attune_notifier"]
                if args.profile:
                    command = ["-c", PROFILED, str(Path(args.profile) / f"notifier-{i}.prof")]
                services.append(subprocess.Popen([sys.executable, *command], env=env,
                                                 stdout=out, stderr=subprocess.STDOUT))
                if i == 0:
                    await ready(client, port)  # the first one migrates and creates topics
            for port in ports:
                await ready(client, port)
            base = f"http://127.0.0.1:{ports[0]}"
            await producer.start()

            households = [uuid.uuid4() for _ in range(args.members)]
            members = [uuid.uuid4() for _ in range(args.members)]
            for household, member in zip(households, members, strict=True):
                env_ = make_envelope(MemberUpserted(member_id=member, display_name="Bench", role=MemberRole.PARTNER,
                                                    time_zone="UTC"), household_id=household, producer="scheduler")
                await producer.send(Topic.SCHEDULER_EVENTS.value, env_.to_bytes(), key=str(household).encode())
            await producer.flush()
            issuer = development_issuer()  # these services run in development
            for household, member in zip(households, members, strict=True):
                auth = {"Authorization": f"Bearer {issuer.member(household, member)}"}
                while (await client.get(f"{base}/v1/members/{member}/preferences", headers=auth)).status_code != 200:
                    await asyncio.sleep(0.05)
                await client.put(f"{base}/v1/members/{member}/preferences", json={"daily_cap": 200}, headers=auth)
                response = await client.post(f"{base}/v1/members/{member}/channels", json={"url": sink_url},
                                             headers=auth)
                assert response.status_code == 201, response.text

            def request(i: int) -> tuple[bytes, bytes]:
                k = i % args.members
                payload = NotificationRequested(member_id=members[k], purpose="bench.load", title="Bench",
                                                body=f"sent={time.time():.6f} n={i}")
                env_ = make_envelope(payload, household_id=households[k], producer="calendar-sync")
                return env_.to_bytes(), str(households[k]).encode()

            # Burst: everything at once.
            await client.delete(f"{sink_base}/stats")
            results["load_before"] = load_average()
            cpu_start = cpu_seconds(services)
            start = time.time()
            for i in range(args.notifications):
                value, key = request(i)
                await producer.send(Topic.NOTIFICATION_REQUESTS.value, value, key=key)
            await producer.flush()
            produced = time.time()
            stats = await wait_for(client, sink_base, args.notifications, timeout=600)
            cpu_burst = cpu_ms_per(cpu_start, services, len(stats))
            last = max(a for a, _ in stats)
            latencies = [a - p for a, p in stats]
            results["service_burst"] = {
                "received": len(stats), "produce_seconds": round(produced - start, 2),
                "seconds": round(last - start, 2), "per_s": round(len(stats) / (last - start), 1),
                "p50_s": round(pct(latencies, 0.5), 3), "p99_s": round(pct(latencies, 0.99), 3),
                **cpu_burst,
            }
            print("service burst:", results["service_burst"], flush=True)

            # Sustained: `rate` per second.
            await asyncio.sleep(1)
            await client.delete(f"{sink_base}/stats")
            total = int(args.rate * args.seconds)
            cpu_start = cpu_seconds(services)
            t0 = time.monotonic()
            for i in range(total):
                delay = t0 + i / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                value, key = request(args.notifications + i)
                await producer.send(Topic.NOTIFICATION_REQUESTS.value, value, key=key)
            await producer.flush()
            stats = await wait_for(client, sink_base, total, timeout=300)
            cpu_sustained = cpu_ms_per(cpu_start, services, len(stats))
            latencies = [a - p for a, p in stats]
            results["service_sustained"] = {
                "rate_per_s": args.rate, "seconds": args.seconds, "sent": total, "received": len(stats),
                "p50_s": round(pct(latencies, 0.5), 3), "p99_s": round(pct(latencies, 0.99), 3),
                "max_s": round(max(latencies), 3) if latencies else None,
                "mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
                **cpu_sustained,
            }
            results["load_after"] = load_average()
            print("service sustained:", results["service_sustained"], flush=True)
    finally:
        await producer.stop()
        for process in services:
            process.send_signal(signal.SIGTERM)
        for process in services:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        sink.terminate()
        sink.wait(timeout=10)
        broker.stop()
        await drop_database(database_url)
    results["ratio_service_to_naive"] = round(results["service_burst"]["per_s"] / results["naive"]["per_s"], 2)
    return results


async def ready(client: Any, port: int) -> None:
    import httpx

    for _ in range(600):
        try:
            if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"notifier on port {port} did not become ready")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--notifications", type=int, default=3000)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--profile", metavar="DIR", help="run each instance under cProfile, writing DIR/notifier-N.prof")
    options = parser.parse_args()
    if options.sink:
        run_sink(options.sink)
    else:
        print(json.dumps(asyncio.run(main(options)), indent=2))
