"""An in-memory unit of work for the scheduler's use cases: the ports (attune_scheduler.ports) on dicts.

`MemoryDatabase` is what is committed; each `FakeUnitOfWork` works on a copy of it and writes the copy back
only on `commit()`, so a use case that fails or returns early leaves nothing behind, as a transaction would.
Every commit is recorded (`commits`: the messages it wrote to the outbox), and so is the outbox itself.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Self

from attune_scheduler.model import Household, HouseholdView, Member, OutboxMessage, Ritual


@dataclass
class MemoryState:
    households: dict[uuid.UUID, Household] = field(default_factory=dict)
    members: dict[uuid.UUID, dict[uuid.UUID, Member]] = field(default_factory=dict)
    rituals: dict[uuid.UUID, Ritual] = field(default_factory=dict)
    outbox: list[OutboxMessage] = field(default_factory=list)
    processed: dict[uuid.UUID, str] = field(default_factory=dict)
    erased: dict[uuid.UUID, datetime] = field(default_factory=dict)
    not_before: dict[uuid.UUID, datetime] = field(default_factory=dict)


class MemoryDatabase:
    def __init__(self) -> None:
        self.state = MemoryState()
        self.commits: list[list[OutboxMessage]] = []
        """One entry per commit: the messages it added to the outbox."""
        self.rollbacks = 0

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


class _Part:
    def __init__(self, state: MemoryState) -> None:
        self.state = state


class FakeHouseholds(_Part):
    async def load(self, household_id: uuid.UUID, named: Iterable[uuid.UUID] = (), *,
                   lock: bool = True) -> HouseholdView:
        s = self.state
        named = set(named)
        view = HouseholdView(id=household_id, household=s.households.get(household_id))
        view.elsewhere = {m: home for home, its in s.members.items() if home != household_id for m in its if m in named}
        if view.household is None:
            view.erased_at = s.erased.get(household_id)
            return view
        view.members = dict(s.members.get(household_id, {}))
        view.rituals = {r.id: replace(r) for r in s.rituals.values() if r.household_id == household_id}
        return view

    async def save(self, household: Household, now: datetime) -> None:
        self.state.households[household.id] = household

    async def save_member(self, household_id: uuid.UUID, member: Member) -> None:
        self.state.members.setdefault(household_id, {})[member.member_id] = member

    async def erase(self, household_id: uuid.UUID, now: datetime) -> None:
        s = self.state
        s.rituals = {i: r for i, r in s.rituals.items() if r.household_id != household_id}
        s.members.pop(household_id, None)
        s.households.pop(household_id, None)
        s.outbox = [m for m in s.outbox if m.household_id != household_id]
        s.erased.setdefault(household_id, now)

    async def revoke_credentials(self, household_id: uuid.UUID, not_before: datetime) -> None:
        current = self.state.not_before.get(household_id)
        self.state.not_before[household_id] = not_before if current is None else max(current, not_before)


class FakeRituals(_Part):
    async def save(self, ritual: Ritual, now: datetime) -> None:
        self.state.rituals[ritual.id] = replace(ritual)

    async def delete(self, ritual_ids: Sequence[uuid.UUID]) -> None:
        for ritual_id in ritual_ids:
            self.state.rituals.pop(ritual_id, None)

    async def claim_due(self, horizon: datetime, limit: int) -> list[Ritual]:
        due = [r for r in self.state.rituals.values() if r.wake_at is not None and r.wake_at <= horizon]
        return [replace(r) for r in sorted(due, key=lambda r: r.wake_at or horizon)[:limit]]

    async def advance(self, rituals: Sequence[Ritual], now: datetime) -> None:
        for ritual in rituals:
            self.state.rituals[ritual.id] = replace(ritual)


class FakeOutbox(_Part):
    async def add(self, messages: Sequence[OutboxMessage], now: datetime) -> None:
        known = {m.event_id for m in self.state.outbox}
        self.state.outbox += [m for m in messages if m.event_id not in known]

    async def drop_ahead(self, ritual_ids: Sequence[uuid.UUID], after: datetime) -> None:
        self.state.outbox = [m for m in self.state.outbox
                             if not (m.ritual_id in set(ritual_ids) and m.publish_at > after)]


class FakeProcessedCommands(_Part):
    async def seen(self, event_id: uuid.UUID) -> bool:
        return event_id in self.state.processed

    async def mark(self, event_id: uuid.UUID, command_type: str, outcome: str, now: datetime) -> None:
        self.state.processed[event_id] = outcome


class FakeUnitOfWork:
    def __init__(self, database: MemoryDatabase) -> None:
        self.database = database
        self.recorded: list[OutboxMessage] = []
        self._committed = False

    async def __aenter__(self) -> Self:
        self._staged = copy.deepcopy(self.database.state)
        self.households, self.rituals = FakeHouseholds(self._staged), FakeRituals(self._staged)
        self.outbox, self.commands = FakeOutbox(self._staged), FakeProcessedCommands(self._staged)
        self.recorded, self._committed = [], False
        return self

    def record(self, messages: Iterable[OutboxMessage]) -> None:
        self.recorded.extend(messages)

    async def commit(self) -> None:
        before = {m.event_id for m in self._staged.outbox}
        await self.outbox.add(self.recorded, datetime.min)
        self.database.state = copy.deepcopy(self._staged)
        self.database.commits.append([m for m in self._staged.outbox if m.event_id not in before])
        self._committed = True

    async def __aexit__(self, *exc: object) -> None:
        if not self._committed:
            self.database.rollbacks += 1
