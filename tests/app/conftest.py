"""Fakes and a harness for the web app's tests: the real store (SQLite file, or PostgreSQL), fakes for the
scheduler's command topic and the check-ins API that record what they were given, and a browser-like client
that keeps its cookies and reads each page's CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from attune_app.adapters.migrate import upgrade
from attune_app.bootstrap import App, build
from attune_app.config import Settings
from attune_app.ports import Unavailable
from attune_contracts.types import Contract
from attune_runtime.testing import FakeClock


@dataclass
class FakeCommands:
    sent: list[tuple[UUID, Contract]] = field(default_factory=list)
    down: bool = False

    event_ids: list[UUID] = field(default_factory=list)

    async def send(self, payload: Contract, *, household_id: UUID) -> UUID:
        if self.down:
            raise Unavailable("the scheduler")
        self.sent.append((household_id, payload))
        self.event_ids.append(uuid4())
        return self.event_ids[-1]

    def of(self, kind: type) -> list[Any]:
        return [p for _, p in self.sent if isinstance(p, kind)]


@dataclass
class FakeCheckins:
    posts: list[tuple[UUID, UUID, str, dict[str, Any]]] = field(default_factory=list)
    down: bool = False

    async def post(self, household_id: UUID, member_id: UUID, path: str, body: dict[str, Any]) -> None:
        if self.down:
            raise Unavailable("check-ins")
        self.posts.append((household_id, member_id, path, body))

    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What GET answers, by path (a test sets check-ins' answer); an unknown path answers no answers."""
    gets: list[tuple[UUID, UUID, str]] = field(default_factory=list)

    async def get(self, household_id: UUID, member_id: UUID, path: str) -> dict[str, Any]:
        if self.down:
            raise Unavailable("check-ins")
        self.gets.append((household_id, member_id, path))
        return self.views.get(path, {"answers": []})


CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class Browser:
    """One phone: its own cookies. `submit` fetches the form's page first, as a person would."""

    def __init__(self, http: Any) -> None:
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=http), base_url="http://app.test")

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def csrf(self, page: str) -> str:
        found = CSRF.search((await self.get(page)).text)
        assert found, f"no form token on {page}"
        return found.group(1)

    async def submit(self, page: str, action: str, data: dict[str, Any]) -> httpx.Response:
        return await self.client.post(action, data={"csrf": await self.csrf(page), **data})

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class Harness:
    parts: App
    commands: FakeCommands
    checkins: FakeCheckins
    clock: FakeClock
    browsers: list[Browser] = field(default_factory=list)

    def browser(self) -> Browser:
        browser = Browser(self.parts.http)
        self.browsers.append(browser)
        return browser


def settings_for(database_url: str, **kw: Any) -> Settings:
    return Settings(environment="development", database_url=database_url, kafka_create_topics=False,
                    http_rate_per_s=1000, http_rate_burst=1000, **kw)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = FakeClock(datetime(2026, 6, 3, 17, 0, tzinfo=UTC))
    commands, checkins = FakeCommands(), FakeCheckins()
    parts = build(settings_for(f"sqlite+aiosqlite:///{tmp_path}/app.db"), clock=clock, commands=commands,
                  checkins=checkins)
    await upgrade(parts.store.engine)
    h = Harness(parts, commands, checkins, clock)
    try:
        yield h
    finally:
        for browser in h.browsers:
            await browser.close()
        await parts.store.close()


async def start_household(browser: Browser, *, name: str = "Ana & Ben", you: str = "Ana",
                          zone: str = "Europe/Lisbon", kind: str = "couple") -> httpx.Response:
    return await browser.submit("/", "/start", {"household_name": name, "kind": kind, "your_name": you,
                                                "role": "partner", "time_zone": zone})
