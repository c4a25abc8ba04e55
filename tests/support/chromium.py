"""Real headless Chromium for the browser tests (Debian's chromium and chromium-driver, which `make test` installs)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

PHONE = (390, 844)


def chromium(profile: Path, *, window: tuple[int, int] = PHONE, env: Mapping[str, str] | None = None) -> Any:
    """A new browser with its own profile folder (two profiles are two people), sized like a phone by default;
    `env` is the browser's environment (a time zone, say). The caller quits it."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them from Debian's packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path, env=dict(env) if env is not None else None), options=options)
