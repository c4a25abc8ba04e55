"""The events by which one part of the scheduler wakes another instead of polling."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

RETRY_AFTER_ERROR_S = 1.0
"""A loop whose pass failed (the database away, say) tries again after this long."""


@dataclass
class Signals:
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """A command changed rituals: the firing loop looks again now."""
    outbox_ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Something was written to the outbox: the relay looks again now."""
    written_ahead: asyncio.Event = field(default_factory=asyncio.Event)
    """Events were written ahead of their instant: the read-ahead looks again now."""
    stopping: bool = False
