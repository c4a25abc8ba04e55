"""Less CPU per push (issue 12): the cached plugin sends on the notifier's own pool, over kept-alive
connections bounded per gateway host, and Apprise's plugin still does the sending."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from apprise.plugins.custom_json import NotifyJSON
from attune_contracts import make_envelope
from attune_contracts.messages import ChannelKind, NotificationRequested
from attune_notifier.adapters.apprise_sender import AppriseSender
from attune_notifier.adapters.keepalive import KEEPALIVE
from attune_notifier.service import Rendered
from attune_runtime.testing import eventually

from .conftest import ANA, HOUSEHOLD, WallClock
from .harness import make_harness

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gateway import Gateway  # bench/ is not a package: found through sys.path above

pytestmark = [pytest.mark.integration]


async def test_sends_go_through_apprises_plugin_on_our_pool_over_one_kept_alive_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twenty pushes one after another to one gateway: each goes through Apprise's JSON plugin's `send`
    (its own payload: version, title, message, type), on the sender's threads, and all twenty travel over
    one connection (before: one new connection per push)."""
    seen: list[tuple[str, str]] = []
    original = NotifyJSON.send

    def spying_send(self: NotifyJSON, body: str, title: str = "", *args: Any, **kwargs: Any) -> bool:
        seen.append((threading.current_thread().name, body))
        return original(self, body, title, *args, **kwargs)

    monkeypatch.setattr(NotifyJSON, "send", spying_send)
    gw = await Gateway(delay_s=(0.0, 0.0)).start()
    sender = AppriseSender(timeout_s=10, max_in_flight=8)
    try:
        for n in range(20):
            result = await sender.send(gw.url("m/ana"), Rendered(ChannelKind.PUSH, "Date night", f"m{n}"))
            assert result.ok, result
        assert [body for _, body in seen] == [f"m{n}" for n in range(20)]
        assert all(name.startswith("attune-send") for name, _ in seen), {name for name, _ in seen}
        assert [a.body["message"] for a in gw.arrivals] == [f"m{n}" for n in range(20)]
        assert {(a.body["title"], a.body["type"]) for a in gw.arrivals} == {("Date night", "info")}
        assert gw.connections == 1
        [(made, idle)] = sender.keepalive.connections().values()
        assert (made, idle) == (1, 1)
    finally:
        sender.close()
        await gw.stop()


async def test_kept_alive_connections_stay_within_the_per_host_bound(pg_url: str) -> None:
    """The running loop, concurrency 16, at most 4 per gateway, 40 pushes to one slow gateway: never more
    than 4 requests open there, never more than 4 connections made to it (each reused ~10 times), and
    every push arrives once."""
    gw = await Gateway(delay_s=(0.1, 0.1), seed=1).start()
    sender = AppriseSender(timeout_s=10, max_in_flight=16, per_host=4)
    h = await make_harness(pg_url, WallClock(), sender=sender, concurrency=16, batch=200,  # type: ignore[arg-type]
                           per_host=4)
    try:
        await h.member(ANA, "Ana", daily_cap=1000)
        await h.channel(ANA, gw.url("m/ana"))
        await h.handler.handle_batch([
            make_envelope(NotificationRequested(member_id=ANA, purpose="test.burst", title="Burst", body=f"n{n}"),
                          household_id=HOUSEHOLD, producer="test", occurred_at=h.clock.now())
            for n in range(40)])
        h.worker.start()
        await eventually(lambda: len(h.publisher.events("notification_sent")) == 40, timeout=60)
        assert sorted(a.body["message"] for a in gw.arrivals) == sorted(f"n{n}" for n in range(40))
        assert 2 <= gw.max_in_flight <= 4, gw.max_in_flight
        assert gw.connections <= 4, gw.connections
        [(made, idle)] = sender.keepalive.connections().values()
        assert made <= 4 and idle <= 4, (made, idle)
    finally:
        await h.worker.stop()
        sender.close()
        await gw.stop()
        await h.close()


async def _cookie_gateway(headers_seen: list[dict[str, str]]) -> asyncio.AbstractServer:
    """Answers every POST 200 with a Set-Cookie, and records each request's headers."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[1:]
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in head if x)}
                await reader.readexactly(int(headers.get("content-length", "0")))
                headers_seen.append(headers)
                writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=person-one; Path=/\r\n"
                             b"Content-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_a_cookie_set_for_one_persons_push_is_never_sent_with_anothers() -> None:
    headers_seen: list[dict[str, str]] = []
    server = await _cookie_gateway(headers_seen)
    port = server.sockets[0].getsockname()[1]
    sender = AppriseSender(timeout_s=10, max_in_flight=4)
    try:
        for who in ("ana", "ben", "ana"):
            result = await sender.send(f"json://127.0.0.1:{port}/m/{who}", Rendered(ChannelKind.PUSH, "T", who))
            assert result.ok, result
        assert len(headers_seen) == 3
        assert all("cookie" not in h for h in headers_seen), headers_seen
    finally:
        sender.close()
        server.close()


async def test_other_code_using_requests_is_passed_straight_through() -> None:
    """Only our sends (KEEPALIVE set) use the kept-alive sessions; anyone else's requests.post makes its own
    connection, as requests always does."""
    AppriseSender(timeout_s=10).close()  # installs the routing
    gw = await Gateway(delay_s=(0.0, 0.0)).start()
    try:
        assert KEEPALIVE.get() is None
        url = f"http://127.0.0.1:{gw.port}/other"
        for _ in range(3):
            answer = await asyncio.to_thread(requests.post, url, json={"message": "x"}, timeout=5)
            assert answer.status_code == 200
        assert gw.connections == 3
    finally:
        await gw.stop()


async def test_the_warmer_parses_stored_channels_before_their_first_send(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stored channel is parsed ahead (then only new ones); a send to a warmed channel parses nothing;
    after the cache is emptied (an erasure) the warmer starts over from what is still stored."""
    from apprise import Apprise
    from attune_notifier.warmup import PluginWarmer

    from .conftest import BEN

    gw = await Gateway(delay_s=(0.0, 0.0)).start()
    sender = AppriseSender(timeout_s=10, max_in_flight=4)
    h = await make_harness(pg_url, WallClock(), sender=sender)  # type: ignore[arg-type]
    warmer = PluginWarmer(h.store, sender, interval_s=0)
    try:
        await h.member(ANA, "Ana")
        await h.member(BEN, "Ben")
        await h.channel(ANA, gw.url("m/ana"))
        await h.channel(ANA, gw.url("m/ana-2"))
        assert await warmer.warm_once() == 2
        assert sorted(sender._plugins) == sorted([gw.url("m/ana"), gw.url("m/ana-2")])
        decrypted: list[bytes] = []
        decrypt = h.store.cipher.decrypt
        monkeypatch.setattr(h.store.cipher, "decrypt", lambda token: decrypted.append(token) or decrypt(token))
        assert await warmer.warm_once() == 0
        assert decrypted == []  # channels already parsed are not decrypted again
        await h.channel(BEN, gw.url("m/ben"))
        assert await warmer.warm_once() == 1
        assert len(decrypted) == 1

        parsed: list[str] = []
        original = Apprise.instantiate

        def counting(url: Any, *args: Any, **kwargs: Any) -> Any:
            parsed.append(url)
            return original(url, *args, **kwargs)

        monkeypatch.setattr(Apprise, "instantiate", staticmethod(counting))
        result = await sender.send(gw.url("m/ben"), Rendered(ChannelKind.PUSH, "T", "warm"))
        assert result.ok and parsed == []
        assert [a.body["message"] for a in gw.arrivals] == ["warm"]

        sender.forget()
        assert await warmer.warm_once() == 3
    finally:
        sender.close()
        await gw.stop()
        await h.close()


async def test_results_of_sends_that_finish_together_come_back_with_one_wake_up_of_the_loop() -> None:
    """Twenty sends finish while the event loop is busy: their results reach their coroutines all the same
    (a raised exception as an exception), with one wake-up of the loop for all of them, not one each."""
    from attune_notifier.adapters.apprise_sender import Handback

    handback, loop = Handback(), asyncio.get_running_loop()
    waiters = [loop.create_future() for _ in range(20)]
    gate = threading.Event()

    def call(n: int) -> Any:
        def send() -> bool:
            gate.wait(5)
            if n == 7:
                raise ValueError("a plugin that raises")
            return n % 2 == 0
        return send

    threads = [threading.Thread(target=handback.run, args=(loop, w, call(n))) for n, w in enumerate(waiters)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:  # the loop is blocked here: every result is queued before it looks again
        t.join(5)
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [r for n, r in enumerate(results) if n != 7] == [n % 2 == 0 for n in range(20) if n != 7]
    assert isinstance(results[7], ValueError)
    assert handback.wakeups == 1


async def test_a_send_given_up_on_leaves_its_late_result_unclaimed() -> None:
    from attune_notifier.adapters.apprise_sender import Handback

    handback, loop = Handback(), asyncio.get_running_loop()
    late, on_time = loop.create_future(), loop.create_future()
    late.cancel()  # its send timed out: the result that comes after is dropped, the others still arrive
    for waiter in (late, on_time):
        threading.Thread(target=handback.run, args=(loop, waiter, lambda: True)).start()
    assert await asyncio.wait_for(on_time, 5) is True
    assert late.cancelled()
