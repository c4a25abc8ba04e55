"""The burst benchmark's count of what arrived at the gateway (bench/gateway.py has its own tests). The
whole run (`make bench BENCH=burst`) waits for a whole minute, too long for `make test`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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
