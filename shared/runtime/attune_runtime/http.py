"""ASGI guards every HTTP API wears, outermost first: a per-credential rate limit, then a body size limit.

Both answer before the app runs, so before any parsing and before authentication:
- `RateLimit`: a token bucket per caller, keyed by a hash of the Authorization header's credential (or the
  client address when there is none, as on one-tap links); an empty bucket gets 429 with Retry-After and
  a message saying when to try again. The credential itself is never kept, logged or put in a label.
- `BodyLimit`: a body larger than `max_bytes`, by its Content-Length or by what actually arrives (chunked,
  without Content-Length), gets 413 before the app reads any of it.
A service passes `respond` to answer people (HTML) rather than programs (JSON) on some paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter

ASGIApp = Callable[..., Awaitable[None]]
# (path, status, message, extra headers) -> an ASGI response
Responder = Callable[[str, int, str, dict[str, str]], ASGIApp]


def json_responder(path: str, status: int, message: str, headers: dict[str, str]) -> ASGIApp:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                *((k.lower().encode(), v.encode()) for k, v in headers.items())]})
        await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})

    return app


# What is read and thrown away of a refused body before answering, so that a client still sending can read
# the 413 (a server that closes while the client writes makes most clients report a reset, not the answer).
DISCARD_BYTES = 1024 * 1024
DISCARD_S = 1.0


class BodyLimit:
    """Reads at most `max_bytes` of a request body before the app sees it: a larger one (by its
    Content-Length, or by what actually arrives) is answered 413 with a reason, and the app never runs.
    Up to DISCARD_BYTES more of a refused body are read (not kept) first, for DISCARD_S at most."""

    def __init__(self, app: Any, max_bytes: int, respond: Responder = json_responder) -> None:
        self.app, self.max_bytes, self.respond = app, max_bytes, respond

    async def _too_large(self, scope: Any, receive: Any, send: Any, *, discard: bool) -> None:
        if discard:  # let a client still sending finish, so that it reads the answer
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCARD_S):
                    discarded = 0
                    while discarded <= DISCARD_BYTES:
                        message = await receive()
                        if message["type"] != "http.request" or not message.get("more_body", False):
                            break
                        discarded += len(message.get("body", b""))
        message = f"the request body is larger than {self.max_bytes} bytes"
        await self.respond(scope["path"], 413, message, {"Connection": "close"})(scope, receive, send)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if not declared.isdigit():
            await self.respond(scope["path"], 400, "the Content-Length header is not a number", {})(
                scope, receive, send)
            return
        if int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send, discard=int(declared) <= DISCARD_BYTES)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, discard=message.get("more_body", False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class TokenBuckets:
    """`burst` tokens per key, refilled at `rate_per_s`; a request takes one. At most `max_keys` buckets are
    kept (least recently used dropped first: a dropped bucket comes back full, which only forgives)."""

    def __init__(self, rate_per_s: float, burst: int, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate_per_s, burst, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 if the request may go ahead, else the seconds until a token is there."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def caller_key(scope: Any) -> str:
    """Who is asking: a hash of the Authorization credential, or the client address when there is none."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization" and value.strip():
            return "credential:" + hashlib.sha256(value.strip()).hexdigest()[:32]
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


class RateLimit:
    """429 with Retry-After once a caller's bucket is empty; counted in `limited` (no credential in labels)."""

    def __init__(self, app: Any, buckets: TokenBuckets, limited: Callable[[str], None],
                 respond: Responder = json_responder) -> None:
        self.app, self.buckets, self.limited, self.respond = app, buckets, limited, respond

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = caller_key(scope)
        wait = self.buckets.take(key)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        self.limited(key.partition(":")[0])
        seconds = max(1, math.ceil(wait))
        message = (f"too many requests from this {'credential' if key.startswith('credential') else 'address'}; "
                   f"please try again in {seconds} second{'s' if seconds != 1 else ''}")
        await self.respond(scope["path"], 429, message, {"Retry-After": str(seconds)})(scope, receive, send)


def rate_limited_counter(registry: CollectorRegistry, service: str) -> Callable[[str], None]:
    """attune_http_rate_limited_total{service, keyed_by}: keyed_by is 'credential' or 'address', never a value."""
    counter = Counter("attune_http_rate_limited_total", "HTTP requests refused with 429 (rate limit)",
                      ["service", "keyed_by"], registry=registry)
    return lambda keyed_by: counter.labels(service, keyed_by).inc()


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = 64 * 1024
    rate_per_s: float = 5.0
    rate_burst: int = 60

    @classmethod
    def of(cls, settings: Any) -> HttpLimits:
        """From a ServiceSettings: HTTP_MAX_BODY_BYTES, HTTP_RATE_PER_S and HTTP_RATE_BURST."""
        return cls(settings.http_max_body_bytes, settings.http_rate_per_s, settings.http_rate_burst)


def add_guards(app: Any, limits: HttpLimits, *, registry: CollectorRegistry, service: str,
               respond: Responder = json_responder) -> None:
    """Puts both guards in front of a Starlette/FastAPI app (outside its routing, so before any dependency
    authenticates or parses): the rate limit outermost, then the body limit."""
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, respond=respond)
    app.add_middleware(RateLimit, buckets=TokenBuckets(limits.rate_per_s, limits.rate_burst),
                       limited=rate_limited_counter(registry, service), respond=respond)
