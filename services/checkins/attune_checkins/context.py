"""What every use case is handed (CheckinsService in production, the same in tests): its ports and tuning, and
how a unit of work ends. The use-case modules depend on this, not on the façade that calls them."""

from __future__ import annotations

import asyncio
from typing import Protocol

from .metrics import Metrics
from .policy import Policy
from .ports import Clock, UnitOfWork, UnitOfWorkFactory


class Context(Protocol):
    uow: UnitOfWorkFactory
    clock: Clock
    metrics: Metrics
    policy: Policy
    wake: asyncio.Event  # set when a new deadline may need the timer earlier

    async def finish(self, uow: UnitOfWork) -> bool:
        """Write the unit's collected events to its outbox table and commit; True if it wrote any."""
        ...

    async def committed(self, staged: bool) -> None:
        """After the commit: wake the relay if events were written."""
        ...
