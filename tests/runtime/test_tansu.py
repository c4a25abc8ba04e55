from __future__ import annotations

import signal
import subprocess
import time

import pytest
from attune_runtime.tansu import _answers, free_port
from attune_runtime.testing import as_in_a_terminal

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_make_broker_launcher_answers_and_stops_its_broker(stop: signal.Signals) -> None:
    port = free_port()
    launcher = subprocess.Popen(as_in_a_terminal("attune_runtime.tansu", "--port", str(port)),
                                stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        assert launcher.stdout.readline().startswith(f"Tansu broker ready on 127.0.0.1:{port}")
        assert _answers(port)
    finally:
        launcher.send_signal(stop)
        assert launcher.wait(45) == 0  # a failure guard: a loaded 2-CPU machine has needed over 15 s
    deadline = time.monotonic() + 5
    while _answers(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _answers(port), "the broker outlived its launcher"
