"""attune_runtime.http: the token buckets, the caller key, and the body limit as plain ASGI."""

from __future__ import annotations

from typing import Any

import pytest
from attune_runtime.http import BodyLimit, TokenBuckets, caller_key

pytestmark = [pytest.mark.unit]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back every half second
    assert buckets.take("b") == 0  # another caller has its own bucket
    clock.now = 0.5
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now = 100  # a long pause refills to the burst, not beyond
    assert [buckets.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_the_bucket_table_is_bounded_and_drops_the_least_recently_used() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=1, burst=1, max_keys=2, clock=clock)
    buckets.take("a")
    buckets.take("b")
    buckets.take("a")  # "a" used last: "b" is dropped when "c" comes
    buckets.take("c")
    assert len(buckets) == 2
    assert buckets.take("b") == 0  # came back full (dropping only ever forgives)
    assert buckets.take("c") > 0


def test_the_caller_key_is_a_hash_of_the_credential_or_the_address() -> None:
    with_token = {"headers": [(b"authorization", b"Bearer s3cret-token")], "client": ("10.0.0.7", 5555)}
    key = caller_key(with_token)
    assert key.startswith("credential:") and "s3cret" not in key and "10.0.0.7" not in key
    assert caller_key({"headers": [(b"authorization", b"Bearer other")], "client": ("10.0.0.7", 1)}) != key
    assert caller_key({"headers": [], "client": ("10.0.0.7", 1)}) == "address:10.0.0.7"
    assert caller_key({"headers": [(b"authorization", b"  ")], "client": None}) == "address:unknown"


async def run_limited(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]], max_bytes: int = 10
                      ) -> tuple[list[dict[str, Any]], list[bytes]]:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    queue = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await BodyLimit(app, max_bytes)({"type": "http", "path": "/x", "headers": headers}, receive, send)
    return sent, seen


def body(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_a_chunked_body_over_the_limit_never_reaches_the_app() -> None:
    sent, seen = await run_limited([body(b"x" * 6, True), body(b"x" * 6, True), body(b"x" * 6, False)], [])
    assert sent[0]["status"] == 413 and seen == []
    assert b"larger than 10 bytes" in sent[1]["body"]


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    sent, seen = await run_limited([body(b"12345", True), body(b"678", False)], [(b"content-length", b"8")])
    assert sent[0]["status"] == 200 and seen == [b"12345678"]


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    sent, seen = await run_limited([body(b"x" * 5, False)], [(b"content-length", b"11")])
    assert sent[0]["status"] == 413 and seen == []
    sent, _ = await run_limited([], [(b"content-length", b"12abc")])
    assert sent[0]["status"] == 400
