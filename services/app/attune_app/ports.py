"""What the app's use cases need from the outside, as small Protocols (tests pass fakes that record)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from attune_contracts.types import Contract


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Commands(Protocol):
    """Sends a command to the scheduler (on its command topic, as producer attune-app)."""

    async def send(self, payload: Contract, *, household_id: UUID) -> UUID:
        """Returns the command's event id (a SchedulerCommandRejected names it)."""
        ...


class CheckinsApi(Protocol):
    """The check-ins service's HTTP API, called with the person's own member credential."""

    async def post(self, household_id: UUID, member_id: UUID, path: str, body: dict[str, Any]) -> None: ...

    async def get(self, household_id: UUID, member_id: UUID, path: str) -> dict[str, Any]: ...


class Unavailable(Exception):
    """Another service (the broker, check-ins) did not take the request: nothing was sent or recorded."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Refused(Exception):
    """Another service refused the request as invalid; `reason` is its words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
