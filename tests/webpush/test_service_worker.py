"""The PWA's service worker (services/app/attune_app/static/push/sw.js) run by Node with a fake of its
globals: it shows the notifier's web push payload as sent, and a tap opens the payload's link."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from attune_notifier.adapters.webpush_sender import payload_of
from attune_notifier.service import ChannelKind, render

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "services/app/attune_app/static/push/sw.js"
HARNESS = Path(__file__).with_name("sw_harness.js")
NODE = shutil.which("node")


def run_worker(payload: str) -> dict[str, Any]:
    if NODE is None:
        pytest.skip("node is not installed")
    done = subprocess.run([NODE, str(HARNESS), str(WORKER), payload], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout)


def test_the_worker_shows_the_notifiers_words_and_a_tap_opens_the_check_in() -> None:
    link = "https://checkins.example.org/l/token123"
    message = render("ritual_reminder", {"ritual": "Evening attunement", "when": "20:30", "prompt": "Ask, listen."},
                     ChannelKind.PUSH, neutral=False, link=link)
    seen = run_worker(payload_of(message))
    [shown] = seen["shown"]
    assert shown["title"] == "Coming up: Evening attunement"
    assert shown["options"]["body"] == "Evening attunement is at 20:30. Ask, listen."
    assert seen["opened"] == [link]


def test_a_discreet_push_shows_only_the_neutral_words() -> None:
    message = render("ritual_reminder", {"ritual": "Try something new", "when": "21:00", "prompt": "Be playful."},
                     ChannelKind.PUSH, neutral=True, link=None)
    seen = run_worker(payload_of(message))
    [shown] = seen["shown"]
    assert "something new" not in json.dumps(shown).lower() and "playful" not in json.dumps(shown).lower()
    assert seen["opened"] == ["/"]  # the app itself


def test_a_link_that_is_not_http_is_never_opened() -> None:
    seen = run_worker(json.dumps({"title": "Hi", "body": "x", "url": "javascript:alert(1)"}))
    assert seen["opened"] == ["/"]  # the app itself
