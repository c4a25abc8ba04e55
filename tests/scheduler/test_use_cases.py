"""The use cases (handlers.py) through the unit-of-work port: one suite, run in memory (tests/scheduler/fakes.py,
no database), on SQLite and on PostgreSQL through the real repositories. What each scenario asserts is what
was committed: the household's state, the messages in the outbox, the command's processed outcome."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from attune_contracts import Envelope, Topic, all_specs, spec_of
from attune_contracts.messages import (
    EraseHousehold,
    GiveConsent,
    MemberRole,
    PauseRitual,
    RegisterHousehold,
    UpsertMember,
)
from attune_contracts.trust import TrustViolation
from attune_runtime.testing import temporary_database
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.adapters.tables import outbox, processed_commands
from attune_scheduler.decisions import RULES
from attune_scheduler.handlers import COMMAND_TYPES, fire_batch, handle_command
from attune_scheduler.model import HouseholdView
from attune_scheduler.ports import UnitOfWork
from attune_scheduler.recurrence import occurrence_id

from .fakes import FakeHouseholds, MemoryDatabase
from .helpers import command, schedule

NOW = datetime(2027, 3, 13, 12, 0, tzinfo=UTC)
EVENING = datetime(2027, 3, 13, 20, 30, tzinfo=UTC)  # 20:30 in Europe/London (GMT in March)


@dataclass(frozen=True)
class Sent:
    type: str
    event_id: uuid.UUID
    ritual_id: uuid.UUID | None
    publish_at: datetime


@dataclass
class Backend:
    """Where the use cases run, and how a test reads back what they committed."""

    name: str
    unit_of_work: Callable[[], UnitOfWork]
    outbox: Callable[[], Awaitable[list[Sent]]]
    processed: Callable[[uuid.UUID], Awaitable[str | None]]
    household: Callable[[uuid.UUID], Awaitable[HouseholdView]]
    memory: MemoryDatabase | None = None


def _in_memory() -> Backend:
    db = MemoryDatabase()

    async def sent() -> list[Sent]:
        return [Sent(m.event_type, m.event_id, m.ritual_id, m.publish_at) for m in db.state.outbox]

    async def processed(event_id: uuid.UUID) -> str | None:
        return db.state.processed.get(event_id)

    async def household(household_id: uuid.UUID) -> HouseholdView:
        return await FakeHouseholds(db.state).load(household_id, lock=False)

    return Backend("memory", db.unit_of_work, sent, processed, household, memory=db)


def _on_sql(store: SqlStore, name: str) -> Backend:
    async def sent() -> list[Sent]:
        async with store.engine.connect() as conn:
            rows = await conn.execute(sa.select(outbox.c.event_type, outbox.c.event_id, outbox.c.ritual_id,
                                                 outbox.c.publish_at).order_by(outbox.c.id))
            return [Sent(*row) for row in rows]

    async def processed(event_id: uuid.UUID) -> str | None:
        async with store.engine.connect() as conn:
            return (await conn.execute(sa.select(processed_commands.c.outcome).where(
                processed_commands.c.event_id == event_id))).scalar_one_or_none()

    async def household(household_id: uuid.UUID) -> HouseholdView:
        return (await store.household(household_id))[0]

    return Backend(name, store.unit_of_work, sent, processed, household)


@pytest.fixture(params=[
    pytest.param("memory", marks=pytest.mark.unit),
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.integration),
])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield _in_memory()
        return
    async with contextlib.AsyncExitStack() as stack:
        url = (await stack.enter_async_context(temporary_database()) if request.param == "postgres"
               else f"sqlite+aiosqlite:///{tmp_path}/scheduler.db")
        store = SqlStore.from_url(url)
        stack.push_async_callback(store.close)
        await store.migrate()
        yield _on_sql(store, request.param)


async def handle(backend: Backend, envelope: Envelope[Any], now: datetime = NOW) -> Any:
    return await handle_command(backend.unit_of_work(), envelope, now)


async def household_with(backend: Backend) -> tuple[uuid.UUID, list[uuid.UUID]]:
    household, people = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    await handle(backend, command(RegisterHousehold(name="Ana & Ben", time_zone="Europe/London"), household))
    for person, name in zip(people, ["Ana", "Ben"], strict=True):
        await handle(backend, command(UpsertMember(member_id=person, display_name=name, role=MemberRole.PARTNER),
                                      household))
    return household, people


def types(sent: list[Sent]) -> list[str]:
    return [s.type for s in sent]


async def test_each_accepted_command_commits_its_changes_with_its_facts(backend: Backend) -> None:
    household, people = await household_with(backend)
    ritual = uuid.uuid4()
    scheduled = command(schedule(ritual, people), household)

    outcome = await handle(backend, scheduled)

    assert outcome is not None and outcome.rejected is None
    assert types(await backend.outbox()) == ["scheduler.household_registered", "scheduler.member_upserted",
                                             "scheduler.member_upserted", "scheduler.ritual_scheduled"]
    assert await backend.processed(scheduled.event_id) == "accepted"
    view = await backend.household(household)
    assert view.household is not None and view.household.time_zone == "Europe/London"
    assert set(view.members) == set(people)
    assert view.rituals[ritual].next_due_at == EVENING
    if backend.memory is not None:  # the fake recorded one commit per command, each with its facts
        assert [[m.event_type for m in c] for c in backend.memory.commits] == [
            ["scheduler.household_registered"], ["scheduler.member_upserted"], ["scheduler.member_upserted"],
            ["scheduler.ritual_scheduled"]]


async def test_a_redelivered_command_changes_nothing(backend: Backend) -> None:
    household, people = await household_with(backend)
    scheduled = command(schedule(uuid.uuid4(), people), household)
    await handle(backend, scheduled)
    before = await backend.outbox()

    assert await handle(backend, scheduled, NOW + timedelta(minutes=5)) is None
    assert await backend.outbox() == before


async def test_a_refused_command_records_only_its_rejection(backend: Backend) -> None:
    household, people = await household_with(backend)
    ritual = uuid.uuid4()
    refused = command(schedule(ritual, people, template="no_such_template"), household)

    outcome = await handle(backend, refused)

    assert outcome is not None and "unknown ritual template 'no_such_template'" in (outcome.rejected or "")
    assert types(await backend.outbox())[-1] == "scheduler.command_rejected"
    assert await backend.processed(refused.event_id) == "rejected"
    assert ritual not in (await backend.household(household)).rituals


async def test_a_command_refused_on_its_face_is_answered_without_loading_the_household(backend: Backend) -> None:
    unknown = uuid.uuid4()  # never registered: a loaded household would be refused for that instead
    refused = command(RegisterHousehold(name="Ana\x00", time_zone="Europe/London"), unknown)

    outcome = await handle(backend, refused)

    assert outcome is not None and "NUL character" in (outcome.rejected or "")
    assert types(await backend.outbox()) == ["scheduler.command_rejected"]
    assert (await backend.household(unknown)).household is None


async def test_a_command_naming_another_households_member_commits_nothing(backend: Backend) -> None:
    ours, _ = await household_with(backend)
    _, (theirs, _) = await household_with(backend)
    before = await backend.outbox()
    foreign = command(GiveConsent(ritual_id=uuid.uuid4(), member_id=theirs), ours)

    with pytest.raises(TrustViolation):
        await handle(backend, foreign)

    assert await backend.outbox() == before
    assert await backend.processed(foreign.event_id) is None  # left for the consumer to dead-letter
    if backend.memory is not None:
        assert backend.memory.rollbacks == 1


async def test_firing_records_the_occurrence_at_its_instant_and_advances_the_ritual(backend: Backend) -> None:
    household, people = await household_with(backend)
    ritual = uuid.uuid4()
    await handle(backend, command(schedule(ritual, people), household))

    early = await fire_batch(backend.unit_of_work(), NOW, 10)
    ahead = await fire_batch(backend.unit_of_work(), EVENING - timedelta(seconds=30), 10, EVENING)
    again = await fire_batch(backend.unit_of_work(), EVENING - timedelta(seconds=20), 10, EVENING)

    assert (early.claimed, ahead.claimed, again.claimed) == (0, 1, 0)
    due = [s for s in await backend.outbox() if s.type == "ritual.due"]
    assert due == [Sent("ritual.due", occurrence_id(ritual, EVENING), ritual, EVENING)]
    assert (await backend.household(household)).rituals[ritual].next_due_at == EVENING + timedelta(days=1)


async def test_pausing_drops_what_was_written_ahead_for_the_ritual(backend: Backend) -> None:
    household, people = await household_with(backend)
    ritual = uuid.uuid4()
    await handle(backend, command(schedule(ritual, people), household))
    await fire_batch(backend.unit_of_work(), NOW, 10, EVENING)

    await handle(backend, command(PauseRitual(ritual_id=ritual), household))

    sent = await backend.outbox()
    assert [s for s in sent if s.ritual_id == ritual] == []
    assert types(sent)[-1] == "scheduler.ritual_paused"
    assert (await backend.household(household)).rituals[ritual].paused


async def test_erasure_forgets_unsent_messages_and_refuses_what_comes_later(backend: Backend) -> None:
    household, people = await household_with(backend)
    await handle(backend, command(schedule(uuid.uuid4(), people), household))
    await handle(backend, command(EraseHousehold(), household), NOW)

    assert types(await backend.outbox()) == ["scheduler.household_erased"]
    view = await backend.household(household)
    assert view.household is None and view.erased_at == NOW

    late = await handle(backend, command(UpsertMember(member_id=people[0], display_name="Ana"), household))
    again = await handle(backend, command(EraseHousehold(), household), NOW + timedelta(days=1))
    assert late is not None and "was erased on 2027-03-13" in (late.rejected or "")
    assert again is not None and again.rejected is None and again.facts[0].erased_at == NOW
    assert (await backend.household(household)).erased_at == NOW


@pytest.mark.unit
def test_every_command_on_the_topic_has_a_rule() -> None:
    on_topic = {s.type for s in all_specs() if s.topic is Topic.SCHEDULER_COMMANDS}
    assert {spec_of(t).type for t in RULES} == on_topic == COMMAND_TYPES
