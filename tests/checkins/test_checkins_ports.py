"""The use cases through their ports: the same scenarios on the in-memory fakes (no database), on SQLite and on
PostgreSQL through the real repositories. Each asserts what was kept and what was announced (the outbox rows a
commit wrote, which the relay sends), so the fakes and the SQL repositories are held to the same behaviour."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from attune_checkins.adapters.migrate import upgrade
from attune_checkins.adapters.sql import NoteCipher, SqlStore, make_engine
from attune_checkins.metrics import Metrics
from attune_checkins.ports import AlreadyExists
from attune_checkins.service import Rejected
from attune_checkins.usecases import CheckinsService
from attune_contracts import parse
from attune_contracts.messages import (
    CheckInCommandRejected,
    CheckInStatus,
    HouseholdErased,
    LogMoment,
    MomentKind,
    SubmitCheckIn,
)
from attune_runtime.testing import temporary_database
from prometheus_client import CollectorRegistry

from .conftest import FERNET_KEY, FakeClock, FakeSink, Harness
from .fakes import FakeUnitOfWorkFactory


@dataclass
class World:
    h: Harness
    fake: FakeUnitOfWorkFactory | None
    store: SqlStore | None

    async def announced(self) -> list[Any]:
        """Every event the commits so far wrote to the outbox, parsed back, in order."""
        if self.fake is not None:
            bodies = [row["body"].encode() for row in self.fake.published]
        else:
            assert self.store is not None
            bodies = [row.value for row in await self.store.outbox_rows(100_000)]
        return [parse(body).payload for body in bodies]

    async def announced_types(self) -> list[str]:
        return [type(p).__name__ for p in await self.announced()]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(datetime(2027, 3, 1, 12, tzinfo=UTC))
    registry = CollectorRegistry()
    async with contextlib.AsyncExitStack() as stack:
        fake, store = None, None
        if request.param == "memory":
            fake = FakeUnitOfWorkFactory()
            uow = fake
        else:
            url = (f"sqlite+aiosqlite:///{tmp_path}/checkins.db" if request.param == "sqlite"
                   else await stack.enter_async_context(temporary_database()))
            store = SqlStore(make_engine(url), NoteCipher([FERNET_KEY]))
            stack.push_async_callback(store.close)
            await upgrade(store.engine)
            uow = store.unit_of_work
        service = CheckinsService(uow, clock, Metrics(registry))
        h = Harness(service, store, FakeSink(), clock, registry, None)  # type: ignore[arg-type]
        yield World(h, fake, store)


async def ready(world: World) -> Any:
    """A household of two with one evening ritual due in half an hour; returns its RitualDue."""
    h = world.h
    await h.setup_household()
    due = h.due(uuid4(), h.clock.now() + timedelta(minutes=30))
    await h.send(due)
    return due


async def test_a_check_in_is_kept_once_and_announced_with_its_streak(world: World) -> None:
    h = world.h
    due = await ready(world)
    await h.check_in(due, h.ana, closeness=4, note="lovely")
    assert await world.announced_types() == ["CheckInRecorded", "StreakUpdated"]
    await h.check_in(due, h.ana, closeness=4, note="lovely")  # the same answer again, a new message
    assert await world.announced_types() == ["CheckInRecorded", "StreakUpdated"]
    [kept], total = await h.service.history(h.household, page=1, page_size=10)
    assert (total, kept.member_id, kept.status, kept.closeness, kept.note) == (1, h.ana, CheckInStatus.DONE, 4, "lovely")


async def test_a_changed_answer_replaces_the_kept_one(world: World) -> None:
    h = world.h
    due = await ready(world)
    await h.check_in(due, h.ana, CheckInStatus.SKIPPED)
    await h.check_in(due, h.ana, CheckInStatus.DONE, at=due.scheduled_for + timedelta(minutes=40), closeness=5)
    recorded = [p for p in await world.announced() if type(p).__name__ == "CheckInRecorded"]
    assert [p.status for p in recorded] == [CheckInStatus.SKIPPED, CheckInStatus.DONE]
    [kept], _ = await h.service.history(h.household, page=1, page_size=10)
    assert (kept.status, kept.closeness) == (CheckInStatus.DONE, 5)


async def test_a_refused_command_keeps_nothing_and_tells_the_sender_why(world: World) -> None:
    h = world.h
    due = await ready(world)
    await h.send(SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=h.ana, status=CheckInStatus.DONE,
                               closeness=3, note="late"), occurred_at=due.deadline + timedelta(minutes=1))
    [refused] = await world.announced()
    assert isinstance(refused, CheckInCommandRejected) and refused.member_id == h.ana and "deadline" in refused.reason
    assert await h.service.history(h.household, page=1, page_size=10) == ([], 0)


async def test_a_redelivered_message_changes_nothing(world: World) -> None:
    h = world.h
    due = await ready(world)
    envelope = await h.check_in(due, h.ben)
    before = await world.announced_types()
    await h.service.handle(envelope)
    assert await world.announced_types() == before == ["CheckInRecorded", "StreakUpdated"]


async def test_the_ratio_drop_is_announced_once_per_crossing(world: World) -> None:
    h = world.h
    await h.setup_household()
    for kind in [MomentKind.POSITIVE] * 5 + [MomentKind.NEGATIVE] * 3:
        await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=kind))
    types = await world.announced_types()
    assert types.count("MomentLogged") == 8 and types.count("RatioDropped") == 1
    [drop] = [p for p in await world.announced() if type(p).__name__ == "RatioDropped"]
    assert (drop.positive, drop.negative, drop.window_days) == (5, 2, 14)


async def test_an_erased_household_refuses_what_comes_after(world: World) -> None:
    h = world.h
    await ready(world)
    await h.send(HouseholdErased(erased_at=h.clock.now()))
    await h.send(LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind.POSITIVE, note="we laughed"))
    [refused] = await world.announced()
    assert isinstance(refused, CheckInCommandRejected) and "erased" in refused.reason
    assert await h.service.export(h.household) is None


async def test_a_batch_keeps_and_announces_what_one_by_one_would(world: World) -> None:
    h = world.h
    due = await ready(world)
    from attune_contracts import make_envelope
    from attune_contracts.trust import sender_of

    commands = [SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=m, status=CheckInStatus.DONE, closeness=c)
                for m, c in ((h.ana, 4), (h.ben, 5))]
    await h.service.handle_batch([
        make_envelope(c, household_id=h.household, producer=sender_of(c), occurred_at=h.clock.now()) for c in commands])
    assert await world.announced_types() == ["CheckInRecorded", "CheckInRecorded", "StreakUpdated"]
    kept, total = await h.service.history(h.household, page=1, page_size=10)
    assert total == 2 and {(c.member_id, c.closeness) for c in kept} == {(h.ana, 4), (h.ben, 5)}


# ---- what only the fakes can show: the record of each commit, and the rollback of a refused unit --------------

async def on_fakes() -> tuple[FakeUnitOfWorkFactory, CheckinsService, Harness, Any]:
    """The service on the in-memory unit of work, with a household of two and one ritual due."""
    fake = FakeUnitOfWorkFactory()
    clock = FakeClock(datetime(2027, 3, 1, 12, tzinfo=UTC))
    service = CheckinsService(fake, clock, Metrics(CollectorRegistry()))
    h = Harness(service, None, FakeSink(), clock, CollectorRegistry(), None)  # type: ignore[arg-type]
    world = World(h, fake, None)
    return fake, service, h, await ready(world)


async def test_each_commit_records_the_events_it_collected_and_a_refusal_rolls_back() -> None:
    fake, service, h, due = await on_fakes()
    assert fake.committed == [[], [], [], []]  # registered, two members, a ritual due: facts, no events
    result = await service.submit(h.household, SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=h.ana,
                                                             status=CheckInStatus.DONE, closeness=2))
    assert [type(p).__name__ for p in fake.committed[-1]] == ["CheckInRecorded", "StreakUpdated"]
    assert result.checkin.closeness == 2 and fake.rolled_back == 0
    with pytest.raises(Rejected, match="not in this household"):
        await service.submit(h.household, SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=uuid4(),
                                                         status=CheckInStatus.DONE))
    assert fake.rolled_back == 1 and len(fake.committed) == 5
    assert len(fake.state.checkins) == 1 and len(fake.published) == 2


async def test_a_check_in_written_meanwhile_by_another_path_is_already_there_and_the_submit_decides_again() -> None:
    fake, service, h, due = await on_fakes()
    start, attempts = fake.__call__, []

    def racing_unit() -> Any:
        unit = start()
        put = unit.checkins.put_checkin

        async def put_checkin(ci: Any, *, replace: bool) -> None:
            attempts.append(replace)
            if len(attempts) == 1:  # the link path kept the same check-in a moment before this one commits
                raise AlreadyExists("checkins_pkey")
            await put(ci, replace=replace)

        unit.checkins.put_checkin = put_checkin  # type: ignore[method-assign]
        return unit

    service.uow = racing_unit
    result = await service.submit(h.household, SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=h.ana,
                                                             status=CheckInStatus.DONE, closeness=3))
    assert attempts == [False, False] and fake.rolled_back == 1
    assert result.checkin.closeness == 3 and [type(p).__name__ for p in fake.committed[-1]] == [
        "CheckInRecorded", "StreakUpdated"]


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def test_the_sql_unit_of_work_says_already_exists_and_keeps_nothing_of_the_unit(dialect: str,
                                                                                     tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = (f"sqlite+aiosqlite:///{tmp_path}/checkins.db" if dialect == "sqlite"
               else await stack.enter_async_context(temporary_database()))
        store = SqlStore(make_engine(url), NoteCipher([FERNET_KEY]))
        stack.push_async_callback(store.close)
        await upgrade(store.engine)
        clock = FakeClock(datetime(2027, 3, 1, 12, tzinfo=UTC))
        service = CheckinsService(store.unit_of_work, clock, Metrics(CollectorRegistry()))
        world = World(Harness(service, store, FakeSink(), clock, CollectorRegistry(), None), None, store)  # type: ignore[arg-type]
        due = await ready(world)
        h = world.h
        await h.check_in(due, h.ana)
        [kept], _ = await h.service.history(h.household, page=1, page_size=10)
        with pytest.raises(AlreadyExists):
            async with store.unit_of_work() as uow:
                await uow.households.put_household(h.household, "Europe/Lisbon", h.clock.now())
                await uow.checkins.put_checkin(kept, replace=False)  # a second insert of the same check-in
        household = await _household(store, h.household)
        assert household is not None and household.time_zone == h.zone  # the unit's other write was rolled back


async def _household(store: SqlStore, household_id: Any) -> Any:
    async with store.unit_of_work() as uow:
        return await uow.households.household(household_id)


def test_the_fakes_and_the_sql_repositories_offer_every_method_of_the_ports_with_its_parameters() -> None:
    import inspect

    from attune_checkins import ports
    from attune_checkins.adapters import unit_of_work as sql_uow

    from . import fakes

    repositories = {name: proto for name, proto in inspect.get_annotations(ports.UnitOfWork, eval_str=True).items()
                    if isinstance(proto, type) and proto.__module__ == ports.__name__}
    assert len(repositories) == 13
    sql = {"households": "SqlHouseholds", "processed": "SqlProcessedEvents", "occurrences": "SqlOccurrences",
           "checkins": "SqlCheckIns", "rituals": "SqlRituals", "moments": "SqlMoments",
           "achievements": "SqlAchievements", "summaries": "SqlSummaries", "links": "SqlLinks", "outbox": "SqlOutbox",
           "dreams": "SqlDreams", "aftercare": "SqlAfterCare", "questions": "SqlQuestions"}
    for attribute, proto in repositories.items():
        fake = type(getattr(fakes.FakeUnitOfWork(fakes.FakeUnitOfWorkFactory()), attribute))
        real = getattr(sql_uow, sql[attribute])
        for name, method in inspect.getmembers(proto, inspect.isfunction):
            if name.startswith("_"):
                continue
            wanted = list(inspect.signature(method).parameters)
            for impl in (fake, real):
                assert list(inspect.signature(getattr(impl, name)).parameters) == wanted, (impl.__name__, name)


# ---- the member flows (questions, dreams, after-care) through the same ports ------------------------------------

async def test_a_question_is_kept_once_and_each_answer_announced_without_its_words(world: World) -> None:
    from attune_contracts import catalog
    from attune_contracts.messages import QuestionAsked, QuestionBank

    h = world.h
    due = await ready(world)
    first, other = (catalog.question_key(q) for q in catalog.CURIOSITY_QUESTIONS[:2])
    for key in (first, other):  # a second QuestionAsked for the occurrence: the first question stays
        await h.send(QuestionAsked(occurrence_id=due.occurrence_id, ritual_id=due.ritual_id,
                                   template="curiosity_question", bank=QuestionBank.ADULT, question_key=key,
                                   depth="light", scheduled_for=due.scheduled_for))
    assert await h.service.question_text(h.household, due.occurrence_id) == catalog.CURIOSITY_QUESTIONS[0]
    for member, words in ((h.ana, "The walk home"), (h.ben, "Your laugh"), (h.ana, "The walk home")):
        await h.service.answer_question(h.household, due.occurrence_id, member, words)
    answered = [p for p in await world.announced() if type(p).__name__ == "QuestionAnswered"]
    assert [(p.member_id, p.answers) for p in answered] == [(h.ana, 1), (h.ben, 2)]
    seen = await h.service.question(h.household, due.occurrence_id, h.ben)
    assert seen["question_key"] == first
    assert sorted(a["text"] for a in seen["answers"]) == ["The walk home", "Your laugh"]
    by_household = await h.service.question(h.household, due.occurrence_id, None)
    assert all(a["answered"] and a["text"] is None for a in by_household["answers"])


async def test_a_dream_is_shared_supported_and_reached_once(world: World) -> None:
    h = world.h
    await h.setup_household()
    dream_id = uuid4()
    for _ in range(2):  # each call again: a retry, nothing new
        assert await h.service.share_dream(h.household, h.ana, "Walk the Camino", "since 2019", dream_id) is (_ == 0)
        assert await h.service.support_dream(h.household, dream_id, h.ben) is (_ == 0)
        assert await h.service.reach_dream(h.household, dream_id, h.ana) is (_ == 0)
    with pytest.raises(Rejected, match="not by its owner"):
        await h.service.support_dream(h.household, dream_id, h.ana)
    assert await world.announced_types() == ["DreamShared", "DreamSupported", "AchievementRecorded"]
    exported = await h.service.export(h.household)
    assert exported is not None and [a["dream"] for a in exported["achievements"]] == ["Walk the Camino"]


async def test_after_care_starts_for_the_two_who_said_yes_and_is_erased_with_the_household(world: World) -> None:
    h = world.h
    await h.setup_household()
    with pytest.raises(Rejected, match="say yes to this first"):
        await h.service.start_aftercare(h.household, h.ana, uuid4())
    for member in (h.ana, h.ben, h.ben):
        await h.service.aftercare_consent(h.household, member, True)
    moment_id = uuid4()
    assert [await h.service.start_aftercare(h.household, h.ben, moment_id) for _ in range(2)] == [True, False]
    assert await world.announced_types() == ["AfterCareConsentChanged", "AfterCareConsentChanged", "AfterCareStarted"]
    await h.service.share_dream(h.household, h.ana, "A garden", None, uuid4())
    await h.send(HouseholdErased(erased_at=h.clock.now()))
    async with h.service.uow() as uow:
        assert await uow.aftercare.consented(h.household) == set()
        assert await uow.households.count_household_rows(h.household) == 0
