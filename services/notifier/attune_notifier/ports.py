"""The small interfaces the notifier's core needs from the outside world."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .service import Rendered

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str = ""  # short, human, never containing the channel URL


class Sender(Protocol):
    async def send(self, url: str, message: Rendered) -> SendResult: ...
