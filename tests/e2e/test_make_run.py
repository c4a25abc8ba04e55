"""A newcomer's `make run`: broker, services and inbox come up, /healthz answers on each, the first reminder
lands in the inbox within a minute or so, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from attune_runtime.testing import as_in_a_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def free_block() -> int:
    """A base port with base..base+4 and base-75 free (the inbox, three services, the web app, SMTP)."""
    for _ in range(200):
        base = random.randint(20_100, 29_000)
        try:
            sockets = []
            for port in (base, base + 1, base + 2, base + 3, base + 4, base - 75):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free block of ports")


@pytest.mark.timeout(480)
def test_make_run_brings_everything_up_and_the_first_reminder_arrives(tmp_path: Path) -> None:
    base, kafka = free_block(), free_block() + 50
    env = {**os.environ, "ATTUNE_DEV_BASE_PORT": str(base), "ATTUNE_DEV_KAFKA_PORT": str(kafka)}
    log = tmp_path / "make-run.log"
    process = subprocess.Popen(as_in_a_terminal("attune_cli.devrun"), cwd=tmp_path, env=env,
                               stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115 - the child holds it
    try:
        # Bounded, not a speed target: a loaded 2-CPU machine has needed over 60 s to import and start a service.
        deadline = time.monotonic() + 240
        while "Attune is running" not in log.read_text():
            assert process.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.5)
        for port in (base + 1, base + 2, base + 3, base + 4):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert f"app        http://127.0.0.1:{base + 4}" in log.read_text()
        assert "Start together" in httpx.get(f"http://127.0.0.1:{base + 4}/").text
        # The demo household opens in the app: a one-time sign-in link per partner's phone.
        ana_link = re.search(rf"Ana's phone in the demo household: (http://127\.0\.0\.1:{base + 4}/join/\S+)",
                             log.read_text())
        assert ana_link, log.read_text()[-3000:]
        assert "Continue as Ana" in httpx.get(ana_link.group(1)).text
        assert (tmp_path / "data" / "scheduler.db").exists()

        deadline = time.monotonic() + 120
        while True:
            messages = httpx.get(f"http://127.0.0.1:{base}/api/messages").json()["messages"]
            if {m["to"] for m in messages if m["kind"] == "push"} >= {"ana", "ben"}:
                break
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        push = next(m for m in messages if m["kind"] == "push")
        # The demo's Ben reads German (his locale, a notifier preference), Ana the default English.
        titles = {m["to"]: m["title"] for m in messages if m["kind"] == "push"}
        assert titles["ben"] in {"Abendliches Einstimmen", "Sechs-Sekunden-Begrüßungskuss"}, messages
        assert titles["ana"] in {"Evening attunement", "Six-second kiss hello"}, messages
        assert push["links"] and push["links"][0].startswith(f"http://127.0.0.1:{base + 2}/l/")
        page = httpx.get(push["links"][0])
        assert page.status_code == 200, page.text
        # Ben's links open their pages in German too (his locale travels in the token).
        ben = next(m for m in messages if m["kind"] == "push" and m["to"] == "ben")
        ben_page = httpx.get(ben["links"][0])
        assert ben_page.status_code == 200 and '<html lang="de">' in ben_page.text, ben_page.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, log.read_text()[-3000:]
    assert "==> stopped" in log.read_text()
