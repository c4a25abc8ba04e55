"""Keeps the sender's plugin cache warm with the stored channels, so a burst pays no URL parsing.

At 19:00 every member's first push of the day is due at once; with a cold cache each one first parses its
channel URL into an Apprise plugin (0.3 ms of CPU for a json:// URL on a quiet core, 0.4-0.6 ms a push in
the burst's profile). The warmer parses them beforehand: every stored channel (newest first, up to the cache
size) when it starts or after the cache was emptied (`forget`, after an erasure), then every
PLUGIN_WARM_INTERVAL_S the channels created since the last look (with an overlap, as a channel's row may
commit after a later one's). Parsing runs on the sender's
threads, a chunk at a time, so the event loop stays free; a channel already parsed is not decrypted again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from .adapters.sql import SqlStore

log = logging.getLogger("attune.notifier.warmup")

# How far back each incremental look reaches before the newest channel seen last time.
OVERLAP = timedelta(minutes=2)


class Warmable(Protocol):
    cache_size: int
    generation: int

    async def warm(self, urls: list[str]) -> int: ...


class PluginWarmer:
    def __init__(self, store: SqlStore, sender: Warmable, interval_s: float) -> None:
        self.store, self.sender, self.interval_s = store, sender, interval_s
        self._since: datetime | None = None
        self._generation = -1
        self._known: set[UUID] = set()  # channels parsed since the cache was last emptied (ids only)
        self._task: asyncio.Task[None] | None = None

    async def warm_once(self) -> int:
        """One look at the channels; return how many plugins were added to the cache."""
        if self._generation != self.sender.generation:
            self._since, self._generation = None, self.sender.generation
            self._known.clear()
        since = None if self._since is None else self._since - OVERLAP
        # Channels already parsed are not decrypted again (the overlap reads them back every look).
        urls, newest = await self.store.channel_urls_since(since, self.sender.cache_size, self._known)
        self._known.update(urls)
        added = await self.sender.warm(list(urls.values())[::-1])  # oldest first: the newest stay longest
        if newest is not None and (self._since is None or newest > self._since):
            self._since = newest
        return added

    def start(self) -> None:
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.create_task(self._loop(), name="notifier-plugin-warmer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                added = await self.warm_once()
                if added:
                    log.info("channel plugins parsed ahead of sending: %d", added)
            except Exception as exc:  # noqa: BLE001 - a cold cache is slower, not wrong
                log.warning("warming the channel plugins failed (%s); trying again later", type(exc).__name__)
            await asyncio.sleep(self.interval_s)
