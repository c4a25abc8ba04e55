"""A push gateway on 127.0.0.1 that records every POST and answers slowly, as real gateways do.

Each member's push channel is `json://127.0.0.1:<port>/m/<member id>`, so the path says who a message was
for; Apprise's JSON body carries the title and the message (with the one-tap link that names the
occurrence). A message counts as arrived when its request has been read, before the answer: a sender
killed while waiting for the answer has still reached the phone. The sink also notes whether the
sender was still there to hear the answer (a figure: sends abandoned by a killed sender). Plain asyncio
streams, in the test's own event loop, so nothing else has to run beside the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field


@dataclass
class Arrival:
    path: str
    body: dict
    at: float  # wall clock (time.time())
    abandoned: bool = False  # the sender had gone before the answer was written
    answered_at: float | None = None  # wall clock: when the answer was written (the sender could know from then)


@dataclass
class SlowSink:
    delay_s: tuple[float, float] = (0.05, 0.5)
    seed: int = 0
    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def start(self) -> SlowSink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path.lstrip('/')}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: several requests may come on one connection
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if method == "POST":
                    try:
                        parsed = json.loads(body)
                    except ValueError:
                        parsed = {"unparsed": body.decode("utf-8", "replace")}
                    arrival = Arrival(path, parsed, time.time())
                    self.arrivals.append(arrival)
                    await asyncio.sleep(self._rng.uniform(*self.delay_s))
                    # The transport keeps reading while we wait: a killed sender's socket shows up as EOF or reset.
                    arrival.abandoned = reader.at_eof() or reader.exception() is not None or writer.is_closing()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                if method == "POST":
                    arrival.answered_at = time.time()
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
