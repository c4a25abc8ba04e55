"""A realistic push gateway for benchmarks and tests: answers each POST after 0.2–1.0 s, fails a few.

Real push gateways (ntfy, Pushover, FCM, Web Push, SMS and email APIs) answer in hundreds of
milliseconds and now and then refuse with 429 or fail with a 5xx. A sink that answers at once hides
the one thing that matters in a burst: how many sends the notifier keeps in flight. This one:

- answers each POST after a delay drawn uniformly from `--delay LO-HI` seconds (default 0.2-1.0);
- fails a share of POSTs (`--fail-share`, default 0) with 429, 500, 502 or 503, drawn from a seeded
  RNG so a run can be repeated (the notifier's retry policy sends them again); a 429 or 503 carries
  `Retry-After: 1` (`--retry-after`, seconds or an HTTP date; empty for none), as real gateways' do;
- accepts thousands of concurrent connections (listen backlog 16,384; one coroutine per connection,
  HTTP/1.1 keep-alive);
- records each arrival (path, body, wall-clock time, status answered) — in memory when imported, and
  as JSON lines to `--record FILE` when given;
- answers `GET /stats` with arrivals per path, arrivals and failures in all, the current and the most
  requests in flight (a request is in flight from the moment its body is read until its answer is
  written); `GET /stats?reset=1` sets the maximum back to the current figure.

A message counts as arrived when its request has been read, before the answer: a sender that gives up
while waiting has still reached the phone — so a failed (429/5xx) POST is recorded with its status and
is *not* counted as delivered in `delivered()`.

Two ways to use it:

    # in the test's own event loop
    gw = await Gateway(delay_s=(0.2, 1.0), fail_share=0.02, seed=1).start()
    url = gw.url("m/<member>")          # json://127.0.0.1:<port>/m/<member>
    ...; gw.max_in_flight; gw.arrivals; await gw.stop()

    # as its own process (so it does not share the notifier's CPU or GIL)
    python bench/gateway.py --port 8099 --delay 0.2-1.0 --fail-share 0.02 --seed 1 --record /tmp/arrivals.jsonl

When run as a process it prints one line `listening <host> <port>` on stdout once it is accepting, so a
parent can wait for it (and learn the port when `--port 0`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO

FAIL_STATUSES = (429, 500, 502, 503)
_REASONS = {
    200: "OK",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Arrival:
    path: str
    body: dict
    at: float  # wall clock (time.time()) when the request had been read
    status: int = 200
    abandoned: bool = False  # the sender had gone before the answer was written


@dataclass
class Gateway:
    delay_s: tuple[float, float] = (0.2, 1.0)
    fail_share: float = 0.0
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    backlog: int = 16384
    record: IO[str] | None = None  # JSON lines, one per arrival, flushed as they come
    script: list[int] = field(default_factory=list)  # statuses for the first POSTs, in arrival order (tests)
    retry_after: str | None = "1"  # the Retry-After header on a 429 or 503 (None: none)
    keep: bool = True  # keep arrivals in memory (a process run with --record may not need them)
    arrivals: list[Arrival] = field(default_factory=list)
    per_path: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    failures: int = 0
    total: int = 0
    connections: int = 0  # connections accepted: fewer than requests when senders keep them alive
    _server: asyncio.AbstractServer | None = None
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def start(self) -> Gateway:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True, backlog=self.backlog, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str, schema: str = "json") -> str:
        return f"{schema}://{self.host}:{self.port}/{path.lstrip('/')}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def delivered(self) -> list[Arrival]:
        """Arrivals answered 200: the ones the sender was told had gone through."""
        return [a for a in self.arrivals if a.status == 200]

    def stats(self) -> dict:
        return {
            "arrivals": self.total,
            "failures": self.failures,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "connections": self.connections,
            "per_path": dict(self.per_path),
        }

    def reset_max(self) -> None:
        self.max_in_flight = self.in_flight

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:  # keep-alive: several requests may come on one connection
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                path, _, query = target.partition("?")
                if method == "GET" and path == "/stats":
                    if "reset=1" in query:
                        self.reset_max()
                    status, payload = 200, json.dumps(self.stats()).encode()
                elif method == "POST":
                    status = await self._post(path, body, reader, writer)
                    payload = b"{}" if status == 200 else json.dumps({"error": _REASONS[status]}).encode()
                else:
                    status, payload = 404, b"{}"
                extra = f"Retry-After: {self.retry_after}\r\n" if status in (429, 503) and self.retry_after else ""
                writer.write(
                    f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n{extra}"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode("latin-1")
                    + payload
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _post(
        self, path: str, body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> int:
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {"unparsed": body.decode("utf-8", "replace")}
        # Draw both now, in arrival order, so a seeded run fails the same arrivals whatever the timing.
        delay = self._rng.uniform(*self.delay_s)
        failed = self.fail_share > 0 and self._rng.random() < self.fail_share
        status = self._rng.choice(FAIL_STATUSES) if failed else 200
        if self.script:
            status = self.script.pop(0)
            failed = status != 200
        arrival = Arrival(path, parsed if isinstance(parsed, dict) else {"body": parsed}, time.time(), status)
        self.total += 1
        self.failures += failed
        if not failed:
            self.per_path[path] += 1
        if self.keep:
            self.arrivals.append(arrival)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        # The transport keeps reading while we wait: a sender that went away shows up as EOF or reset.
        arrival.abandoned = reader.at_eof() or reader.exception() is not None or writer.is_closing()
        if self.record is not None:
            self.record.write(
                json.dumps(
                    {
                        "path": path,
                        "body": arrival.body,
                        "at": arrival.at,
                        "status": status,
                        "abandoned": arrival.abandoned,
                    }
                )
                + "\n"
            )
            self.record.flush()
        return status


def _delay(text: str) -> tuple[float, float]:
    lo, sep, hi = text.partition("-")
    return (float(lo), float(hi)) if sep else (float(lo), float(lo))


async def _main(args: argparse.Namespace, record: IO[str] | None) -> None:
    gw = await Gateway(
        delay_s=args.delay,
        fail_share=args.fail_share,
        seed=args.seed,
        host=args.host,
        port=args.port,
        record=record,
        keep=False,
        retry_after=args.retry_after or None,
    ).start()
    print(f"listening {gw.host} {gw.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gw.stop()
    print(json.dumps(gw.stats()), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--delay", type=_delay, default=(0.2, 1.0), help="seconds, LO-HI (uniform) or one value"
    )
    parser.add_argument("--fail-share", type=float, default=0.0, help="share of POSTs answered 429/5xx")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", default="1", help="Retry-After on a 429/503 (empty: none)")
    parser.add_argument("--record", default=None, help="append each arrival as a JSON line to this file")
    args = parser.parse_args(argv)
    # Thousands of connections: lift the soft limit on open files as far as the hard one allows.
    with contextlib.suppress(Exception):
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(ImportError):
        import uvloop  # faster when present; plain asyncio otherwise

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with open(args.record, "a", encoding="utf-8") if args.record else contextlib.nullcontext() as record:
        asyncio.run(_main(args, record))


if __name__ == "__main__":
    main()
