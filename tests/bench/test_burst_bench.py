"""The burst benchmark's own parts: its gateway (slow, concurrent, failing a share) and its count of what
arrived. The whole run (`make bench BENCH=burst`) waits for a whole minute, too long for `make test`."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from attune_runtime.tansu import free_port

PATH = Path(__file__).resolve().parents[2] / "bench" / "burst_bench.py"
spec = importlib.util.spec_from_file_location("burst_bench", PATH)
assert spec is not None and spec.loader is not None
burst_bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(burst_bench)


@pytest.mark.unit
def test_tally_counts_each_member_once_and_ignores_failed_answers() -> None:
    due = 1000.0
    arrivals = [
        ("/m/a", 1001.0, 429),  # refused: not a delivery
        ("/m/a", 1003.0, 200),
        ("/m/b", 1002.0, 200),
        ("/m/b", 1040.0, 200),  # a second copy
        ("/m/x", 1002.0, 200),  # nobody expected it
    ]
    figures = burst_bench.tally(arrivals, {"a", "b", "c"}, due)
    assert figures["arrived"] == 2 and figures["lost"] == 1
    assert figures["duplicated"] == 1 and figures["unexpected"] == 1
    assert figures["gateway_failures_answered"] == 1
    assert figures["lateness_max_s"] == 3.0  # first copies only
    assert figures["last_within_30s"] is False  # one was lost


@pytest.mark.unit
def test_tally_on_time() -> None:
    figures = burst_bench.tally([("/m/a", 1010.0, 200), ("/m/b", 1029.0, 200)], {"a", "b"}, 1000.0)
    assert figures["last_within_30s"] is True and figures["duplicated"] == 0 and figures["lost"] == 0


def _gateway(fail_share: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(PATH), "--gateway", str(port), "--delay-min", "0.5",
                                "--delay-max", "0.6", "--fail-share", str(fail_share)])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{base}/stats")
            return process, base
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize(("fail_share", "statuses"), [(0.0, {200}), (1.0, {429, 500, 503})])
def test_gateway_holds_concurrent_sends_and_fails_the_share(fail_share: float, statuses: set[int]) -> None:
    process, base = _gateway(fail_share)
    try:
        async def send_all() -> list[int]:
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200), timeout=30) as client:
                answers = await asyncio.gather(*(client.post(f"{base}/m/{i}", json={"title": "t"}) for i in range(150)))
                return [a.status_code for a in answers]

        answered = asyncio.run(send_all())
        stats = httpx.get(f"{base}/stats").json()
        assert set(answered) == statuses
        assert len(stats["arrivals"]) == 150
        assert {status for _, _, status in stats["arrivals"]} == statuses
        # Each send is held 0.5 s: 150 sent at once are all open together unless the gateway serialises them.
        assert stats["max_in_flight"] > 100
    finally:
        process.terminate()
        process.wait(timeout=10)
