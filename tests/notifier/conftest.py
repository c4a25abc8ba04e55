"""Real destinations for the notifier's tests: an HTTP sink (json://, ntfy://) and an SMTP server (mailto://)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from attune_contracts import Publisher
from attune_runtime.tansu import free_port


@dataclass
class SinkRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpSink:
    """A tiny ASGI server on 127.0.0.1 that records every request; `fail_next` answers 500 that many times."""

    port: int = 0
    received: list[SinkRequest] = field(default_factory=list)
    refused: list[SinkRequest] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 500  # what `fail_next` answers
    retry_after: str | None = None  # a Retry-After header on those answers

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = SinkRequest(scope["path"], {k.decode(): v.decode() for k, v in scope["headers"]}, body)
        status = 200
        if self.fail_next > 0:
            self.fail_next -= 1
            self.refused.append(request)
            status = self.fail_status
        else:
            self.received.append(request)
        headers = [(b"content-type", b"application/json")]
        if status != 200 and self.retry_after is not None:
            headers.append((b"retry-after", self.retry_after.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
async def http_sink() -> AsyncIterator[HttpSink]:
    sink = HttpSink(port=free_port())
    server = uvicorn.Server(uvicorn.Config(sink, host="127.0.0.1", port=sink.port, log_level="warning",
                                           access_log=False, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sink
    finally:
        server.should_exit = True
        await task


@dataclass
class SlowSink:
    """An HTTP sink that answers every request after `delay_s`, counting how many it holds at once."""

    port: int = 0
    delay_s: float = 0.3
    in_flight: int = 0
    most_in_flight: int = 0
    received: int = 0

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        while (await receive()).get("more_body"):
            pass
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        self.received += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
async def slow_sink() -> AsyncIterator[SlowSink]:
    sink = SlowSink(port=free_port())
    server = uvicorn.Server(uvicorn.Config(sink, host="127.0.0.1", port=sink.port, log_level="warning",
                                           access_log=False, log_config=None, timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sink
    finally:
        server.should_exit = True
        await task


class MailBox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@dataclass
class SmtpSink:
    port: int
    box: MailBox

    def url(self, to: str = "ana@example.org") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=attune@example.org&to={to}&mode=insecure"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSink(port, box)
    finally:
        controller.stop()


@dataclass
class RecordingPublisher(Publisher):
    """A Publisher whose send function records envelopes instead of producing to Kafka."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        async def send(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
            self.sent.append((topic, value))

        super().__init__(send, producer="notifier")

    def events(self, type_suffix: str = "") -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in self.sent if json.loads(v)["type"].endswith(type_suffix)]


class WallClock:
    """For the running delivery loop: its leases and parked rows need time to pass on its own."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


HOUSEHOLD = UUID("11111111-1111-4111-8111-111111111111")
ANA = UUID("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
BEN = UUID("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
