"""The check-ins use cases behind one façade: what Kafka messages, HTTP requests, one-tap links and the timer call.

Every use case runs in one unit of work (ports.UnitOfWork): it loads through the repositories, asks the rules
(service.py), collects the events it decided, and `finish` writes them to the outbox table in the same
transaction before committing. Only after the commit is the relay woken (`on_commit`), which publishes them.
So nothing waits on the broker, and an event is announced only if its change was kept: a failed commit leaves
no row behind. Event ids are derived from their cause (events.py), so a redelivered message or a relay restart
republishes the same ids (consumers dedupe on event id).

The use cases themselves live one idea a module: handlers.py (messages, by type), submissions.py (check-ins),
recount.py (streaks and adherence), moments.py, links.py, reading.py, timer.py, and the member flows dreams.py,
aftercare.py and questions.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from attune_contracts import Envelope
from attune_contracts.links import LinkClaims
from attune_contracts.messages import LogMoment, SubmitCheckIn

from . import aftercare, dreams, handlers, links, moments, questions, reading, submissions, timer
from .events import CausedEvents, outbox_rows
from .links import LinkRefused
from .metrics import Metrics
from .model import CheckIn, Occurrence
from .policy import Policy
from .ports import AlreadyExists, Clock, UnitOfWork, UnitOfWorkFactory
from .question_rules import AnswerOutcome
from .submissions import SubmitResult

PRODUCER = "checkins"
HANDLED_TYPES = handlers.HANDLED_TYPES
checkin_json = reading.checkin_json

__all__ = ["HANDLED_TYPES", "CheckinsService", "LinkRefused", "Policy", "SubmitResult", "checkin_json"]


class CheckinsService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, metrics: Metrics, policy: Policy | None = None, *,
                 on_commit: Callable[[], Awaitable[None]] | None = None, producer: str = PRODUCER) -> None:
        self.uow, self.clock, self.metrics, self.policy = uow, clock, metrics, policy or Policy()
        # Called after each commit that wrote events (the relay's wake-up); a test may publish there and then.
        self.on_commit = on_commit
        self.producer = producer
        self.wake = asyncio.Event()  # set when a new deadline may need the timer earlier

    async def finish(self, uow: UnitOfWork) -> bool:
        """Write the unit's collected events, in order, to its outbox table and commit; True if it wrote any."""
        rows = outbox_rows(uow.collected, now=self.clock.now(), producer=self.producer)
        await uow.outbox.add(rows)
        await uow.commit()
        return bool(rows)

    async def committed(self, staged: bool) -> None:
        if staged and self.on_commit is not None:
            await self.on_commit()

    # Kafka messages (handlers.py)

    async def handle(self, envelope: Envelope[Any]) -> None:
        await handlers.handle(self, envelope)

    async def handle_batch(self, envelopes: list[Envelope[Any]]) -> None:
        await handlers.handle_batch(self, envelopes)

    async def reject_invalid(self, *, event_id: UUID, household_id: UUID, command_type: str, reason: str,
                             member_id: UUID | None, correlation_id: str) -> None:
        await handlers.reject_invalid(self, event_id=event_id, household_id=household_id, command_type=command_type,
                                      reason=reason, member_id=member_id, correlation_id=correlation_id)

    # HTTP

    async def submit(self, household_id: UUID, cmd: SubmitCheckIn) -> SubmitResult:
        """A check-in from the HTTP API. Raises Rejected (nothing recorded) with the reason."""
        for attempt in (1, 2):
            request_id = uuid4()
            # Correlated with the occurrence, so one reminder can be followed from scheduler to check-in.
            caused = CausedEvents(request_id, household_id, str(cmd.occurrence_id))
            try:
                async with self.uow() as uow:
                    result = await submissions.submit(self, uow, caused, household_id, cmd,
                                                      submitted_at=self.clock.now())
                    uow.collect(caused)
                    staged = await self.finish(uow)
                await self.committed(staged)
                return result
            except AlreadyExists:
                if attempt == 2:
                    raise  # the same check-in was being written by another path at the same moment: once more
        raise AssertionError("unreachable")

    async def log_moment(self, household_id: UUID, cmd: LogMoment) -> bool:
        request_id = uuid4()
        caused = CausedEvents(request_id, household_id, str(request_id))
        async with self.uow() as uow:
            created = await moments.log_moment(self, uow, caused, household_id, cmd, self.clock.now())
            uow.collect(caused)
            staged = await self.finish(uow)
        await self.committed(staged)
        return created

    # The member flows over HTTP (dreams.py, aftercare.py, questions.py)

    async def share_dream(self, household_id: UUID, member_id: UUID, text: str, note: str | None,
                          dream_id: UUID) -> bool:
        return await dreams.share(self, household_id, member_id, text, note, dream_id)

    async def support_dream(self, household_id: UUID, dream_id: UUID, member_id: UUID) -> bool:
        return await dreams.support(self, household_id, dream_id, member_id)

    async def reach_dream(self, household_id: UUID, dream_id: UUID, member_id: UUID) -> bool:
        return await dreams.reach(self, household_id, dream_id, member_id)

    async def aftercare_consent(self, household_id: UUID, member_id: UUID, given: bool) -> bool:
        return await aftercare.consent(self, household_id, member_id, given)

    async def start_aftercare(self, household_id: UUID, member_id: UUID, moment_id: UUID) -> bool:
        return await aftercare.start(self, household_id, member_id, moment_id)

    async def question(self, household_id: UUID, occurrence_id: UUID, viewer: UUID | None) -> dict[str, Any]:
        return await questions.view(self, household_id, occurrence_id, viewer)

    async def question_text(self, household_id: UUID, occurrence_id: UUID) -> str | None:
        return await questions.text(self, household_id, occurrence_id)

    async def answer_question(self, household_id: UUID, occurrence_id: UUID, member_id: UUID,
                              text: str) -> tuple[AnswerOutcome, dict[str, Any]]:
        return await questions.answer(self, household_id, occurrence_id, member_id, text)

    # One-tap links (links.py)

    async def link_preview(self, claims: LinkClaims) -> tuple[Occurrence, datetime | None]:
        return await links.link_preview(self, claims)

    async def resolve_short_link(self, code: str) -> str:
        return await links.resolve_short_link(self, code)

    async def link_outcome(self, claims: LinkClaims) -> tuple[Occurrence | None, CheckIn | None]:
        return await links.link_outcome(self, claims)

    async def use_link(self, claims: LinkClaims, closeness: int | None) -> SubmitResult:
        return await links.use_link(self, claims, closeness)

    # Reading (reading.py)

    async def summary(self, household_id: UUID) -> dict[str, Any] | None:
        return await reading.summary(self, household_id)

    async def credentials_not_before(self, household_id: UUID) -> datetime | None:
        async with self.uow() as uow:
            return await uow.households.credentials_not_before(household_id)

    async def history(self, household_id: UUID, *, page: int, page_size: int) -> tuple[list[CheckIn], int]:
        async with self.uow() as uow:
            return await uow.checkins.history(household_id, offset=(page - 1) * page_size, limit=page_size)

    async def export(self, household_id: UUID) -> dict[str, Any] | None:
        return await reading.export(self, household_id)

    # The timer (timer.py)

    async def tick(self) -> float:
        return await timer.tick(self)

    async def run_timer(self, stop: asyncio.Event) -> None:
        await timer.run_timer(self, stop)
