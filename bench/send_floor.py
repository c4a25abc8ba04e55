"""The floor under the notifier's CPU per push: what the sending alone costs, send by send, against
bench/gateway.py in its own process (so its CPU is not counted here).

    .venv/bin/python bench/send_floor.py [--sends 2000] [--concurrency 128] [--delay 0.2-1.0] [--ways a,b]

Each way sends `--sends` JSON pushes, `--concurrency` at a time, and reports CPU per send (this process, all
threads: `time.process_time`) and sends/s:
- `apprise_notify_new_connection`: a cached Apprise `json://` plugin's own `notify()` on a thread pool, as
  Apprise sends it (`requests.post`: a new Session and TCP connection per send).
- `apprise_notify_kept_alive`: the same over the notifier's kept-alive sessions (`adapters/keepalive.py`).
- `notifier_sender`: the notifier's `AppriseSender.send` from an event loop (plugin cache, the thread
  hand-off and its timeout, keep-alive, the answer's classification): the above plus our wrapper.
- `requests_session`: `requests.Session.post` of the same body on the same pool, no Apprise: the HTTP part.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_threads(sends: int, concurrency: int, one: Callable[[int], bool]) -> tuple[int, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=concurrency) as pool:
        ok = sum(pool.map(one, range(sends)))
    return ok, time.process_time() - cpu, time.perf_counter() - wall


async def run_async(sends: int, concurrency: int, one: Callable[[int], Any]) -> tuple[int, float, float]:
    gate = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> bool:
        async with gate:
            return bool(await one(i))

    cpu, wall = time.process_time(), time.perf_counter()
    ok = sum(await asyncio.gather(*(bounded(i) for i in range(sends))))
    return ok, time.process_time() - cpu, time.perf_counter() - wall


def figures(ok: int, cpu: float, wall: float, sends: int) -> dict[str, Any]:
    return {"ok": ok, "sends": sends, "cpu_us_per_send": round(1e6 * cpu / sends), "per_s": round(sends / wall, 1)}


def main(args: argparse.Namespace) -> dict[str, Any]:
    import requests
    from apprise import Apprise, AppriseAsset
    from attune_contracts.messages import ChannelKind
    from attune_notifier.adapters.apprise_sender import AppriseSender
    from attune_notifier.adapters.keepalive import KEEPALIVE, KeepAlive, route_requests
    from attune_notifier.service import Rendered

    gateway = subprocess.Popen([sys.executable, str(HERE / "gateway.py"), "--port", "0", "--delay", args.delay],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert gateway.stdout is not None
        port = int(gateway.stdout.readline().decode().split()[2])
        url = f"json://127.0.0.1:{port}/floor/m"
        results: dict[str, Any] = {"load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                                   "sends": args.sends, "concurrency": args.concurrency, "delay": args.delay}
        asset = AppriseAsset(secure_logging=True)
        plugin = Apprise.instantiate(url, asset=asset)
        route_requests()

        def apprise_one(i: int) -> bool:
            return bool(plugin.notify(title="Date night", body=f"floor {i}"))

        ways = set(args.ways.split(",")) if args.ways else None

        def wanted(way: str) -> bool:
            return ways is None or way in ways

        if wanted("apprise_notify_new_connection"):
            run_threads(50, 10, apprise_one)  # warm-up: imports, first connections
            results["apprise_notify_new_connection"] = figures(
                *run_threads(args.sends, args.concurrency, apprise_one), args.sends)

        pool = KeepAlive(per_host=args.concurrency)

        def kept_alive_one(i: int) -> bool:
            token = KEEPALIVE.set(pool)
            try:
                return apprise_one(i)
            finally:
                KEEPALIVE.reset(token)

        if wanted("apprise_notify_kept_alive"):
            run_threads(args.concurrency, args.concurrency, kept_alive_one)
            results["apprise_notify_kept_alive"] = figures(
                *run_threads(args.sends, args.concurrency, kept_alive_one), args.sends)
        pool.close()

        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=args.concurrency))
        body = json.dumps({"version": "1.0", "title": "Date night", "message": "floor", "type": "info"})

        def session_one(i: int) -> bool:
            answer = session.post(f"http://127.0.0.1:{port}/floor/s", data=body,
                                  headers={"Content-Type": "application/json"}, timeout=30)
            return answer.status_code == 200

        if wanted("requests_session"):
            run_threads(args.concurrency, args.concurrency, session_one)
            results["requests_session"] = figures(*run_threads(args.sends, args.concurrency, session_one), args.sends)
        session.close()

        async def ours() -> dict[str, Any]:
            sender = AppriseSender(timeout_s=15, max_in_flight=args.concurrency, cache_size=16)
            message = Rendered(kind=ChannelKind.PUSH, title="Date night", body="floor")

            async def one(i: int) -> bool:
                return (await sender.send(url, message)).ok

            await run_async(args.concurrency, args.concurrency, one)
            try:
                return figures(*await run_async(args.sends, args.concurrency, one), args.sends)
            finally:
                sender.close()

        if wanted("notifier_sender"):
            results["notifier_sender"] = asyncio.run(ours())

        results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        return results
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--delay", default="0.2-1.0", help="the gateway's answer delay, LO-HI seconds")
    parser.add_argument("--ways", help="comma-separated ways to run (default: all)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    options = parser.parse_args()
    out = main(options)
    print(json.dumps(out, indent=2))
    if options.json:
        Path(options.json).write_text(json.dumps(out, indent=2))
