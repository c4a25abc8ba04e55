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
    """What one send did. `error` is short, human, and never contains the channel URL.

    - ok: the gateway accepted the message.
    - unknown: the send timed out after the request may have left; the message may still arrive.
    - broken: this channel cannot work as stored (its URL no longer loads); retrying it cannot help.
    - gone (with broken): the gateway says the destination no longer exists (a web push subscription answered
      404 or 410): the channel is retired, never tried again.
    - otherwise: a definite failure (refused, connection not made, gateway error); retried per plan:
      soon when `transient` (the gateway answered 429, 408 or a 5xx, or could not be reached), after
      `retry_after_s` when the gateway said so (Retry-After), else on the ordinary backoff.
    """

    ok: bool
    error: str = ""
    unknown: bool = False
    broken: bool = False
    gone: bool = False
    transient: bool = False
    retry_after_s: float | None = None


class Sender(Protocol):
    async def send(self, url: str, message: Rendered) -> SendResult: ...
