"""An in-memory unit of work for the check-ins use cases: the ports (attune_checkins.ports) on dictionaries.

A unit works on a copy of the state and swaps it in on commit, so a refused or failed unit leaves nothing
behind, as a rolled-back transaction would. The factory records what each commit kept: the events it
collected (`committed`) and the outbox rows it wrote (`published`), which is what the relay would send.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from attune_checkins.events import CausedEvents
from attune_checkins.model import (
    Achievement,
    Answer,
    CheckIn,
    Dream,
    Household,
    Moment,
    Occurrence,
    Question,
    Slot,
)
from attune_contracts.messages import CheckInStatus, QuestionAsked
from attune_contracts.types import Contract

ANSWERED = (CheckInStatus.DONE, CheckInStatus.SKIPPED)


@dataclass
class State:
    households: dict[UUID, str] = field(default_factory=dict)
    members: dict[UUID, set[UUID]] = field(default_factory=dict)
    erased: dict[UUID, datetime] = field(default_factory=dict)
    revoked: dict[UUID, datetime] = field(default_factory=dict)
    processed: set[UUID] = field(default_factory=set)
    occurrences: dict[UUID, Occurrence] = field(default_factory=dict)
    announced: dict[UUID, Occurrence] = field(default_factory=dict)
    checkins: dict[tuple[UUID, UUID], CheckIn] = field(default_factory=dict)
    rituals: dict[UUID, tuple[UUID, str, str | None]] = field(default_factory=dict)
    streaks: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    milestones: set[tuple[UUID, date, int]] = field(default_factory=set)
    moments: dict[UUID, Moment] = field(default_factory=dict)
    ratio_below: dict[UUID, bool] = field(default_factory=dict)
    achievements: dict[UUID, Achievement] = field(default_factory=dict)
    summaries: set[tuple[UUID, date]] = field(default_factory=set)
    tokens: dict[UUID, datetime] = field(default_factory=dict)
    short_links: dict[str, tuple[UUID, str, datetime]] = field(default_factory=dict)
    dreams: dict[UUID, Dream] = field(default_factory=dict)
    dream_supports: dict[tuple[UUID, UUID], UUID] = field(default_factory=dict)  # (dream, member) -> household
    supported_at: dict[tuple[UUID, UUID], datetime] = field(default_factory=dict)
    consents: dict[tuple[UUID, UUID], datetime] = field(default_factory=dict)  # (household, member) -> given at
    aftercare: dict[UUID, tuple[UUID, UUID, datetime]] = field(default_factory=dict)  # moment -> household, by, at
    questions: dict[UUID, Question] = field(default_factory=dict)
    answers: dict[tuple[UUID, UUID], tuple[UUID, Answer]] = field(default_factory=dict)  # (occurrence, member)
    outbox: list[dict[str, Any]] = field(default_factory=list)


class _Repo:
    def __init__(self, state: State) -> None:
        self.s = state


class FakeHouseholds(_Repo):
    async def household(self, household_id: UUID) -> Household | None:
        zone = self.s.households.get(household_id)
        return None if zone is None else Household(household_id, zone, frozenset(self.s.members.get(household_id, ())))

    async def put_household(self, household_id: UUID, time_zone: str, now: datetime, *, overwrite: bool = True) -> None:
        if overwrite or household_id not in self.s.households:
            self.s.households[household_id] = time_zone

    async def add_member(self, household_id: UUID, member_id: UUID) -> None:
        self.s.members.setdefault(household_id, set()).add(member_id)

    async def members_of(self, household_ids: Any) -> dict[UUID, frozenset[UUID]]:
        return {h: frozenset(self.s.members[h]) for h in household_ids if self.s.members.get(h)}

    async def homes_of(self, member_ids: Any) -> dict[UUID, frozenset[UUID]]:
        wanted = set(member_ids)
        homes: dict[UUID, set[UUID]] = {}
        for household, members in self.s.members.items():
            for member in members & wanted:
                homes.setdefault(member, set()).add(household)
        return {m: frozenset(h) for m, h in homes.items()}

    async def all_households(self) -> list[tuple[UUID, str]]:
        return list(self.s.households.items())

    async def erased_at(self, household_id: UUID) -> datetime | None:
        return self.s.erased.get(household_id)

    async def erased_many(self, household_ids: Any) -> dict[UUID, datetime]:
        return {h: self.s.erased[h] for h in household_ids if h in self.s.erased}

    async def erase(self, household_id: UUID, erased_at: datetime) -> dict[str, int]:
        before = await self.count_household_rows(household_id)
        s = self.s
        s.households.pop(household_id, None)
        s.members.pop(household_id, None)
        s.occurrences = {k: o for k, o in s.occurrences.items() if o.household_id != household_id}
        s.checkins = {k: c for k, c in s.checkins.items() if c.household_id != household_id}
        s.moments = {k: m for k, m in s.moments.items() if m.household_id != household_id}
        s.achievements = {k: a for k, a in s.achievements.items() if a.household_id != household_id}
        s.streaks = {k: r for k, r in s.streaks.items() if r["household_id"] != household_id}
        s.dreams = {k: d for k, d in s.dreams.items() if d.household_id != household_id}
        s.dream_supports = {k: h for k, h in s.dream_supports.items() if h != household_id}
        s.consents = {k: at for k, at in s.consents.items() if k[0] != household_id}
        s.aftercare = {k: a for k, a in s.aftercare.items() if a[0] != household_id}
        s.questions = {k: q for k, q in s.questions.items() if q.household_id != household_id}
        s.answers = {k: a for k, a in s.answers.items() if a[0] != household_id}
        s.erased.setdefault(household_id, erased_at)
        return {"all": before}

    async def count_household_rows(self, household_id: UUID) -> int:
        s = self.s
        return (int(household_id in s.households) + len(s.members.get(household_id, ()))
                + sum(o.household_id == household_id for o in s.occurrences.values())
                + sum(c.household_id == household_id for c in s.checkins.values())
                + sum(m.household_id == household_id for m in s.moments.values())
                + sum(a.household_id == household_id for a in s.achievements.values())
                + sum(d.household_id == household_id for d in s.dreams.values())
                + sum(h == household_id for h in s.dream_supports.values())
                + sum(h == household_id for h, _ in s.consents)
                + sum(a[0] == household_id for a in s.aftercare.values())
                + sum(q.household_id == household_id for q in s.questions.values())
                + sum(h == household_id for h, _ in s.answers.values()))

    async def revoke_credentials(self, household_id: UUID, not_before: datetime) -> None:
        self.s.revoked[household_id] = max(not_before, self.s.revoked.get(household_id, not_before))

    async def credentials_not_before(self, household_id: UUID) -> datetime | None:
        return self.s.revoked.get(household_id)


class FakeProcessedEvents(_Repo):
    async def claim_event(self, event_id: UUID, household_id: UUID | None, now: datetime) -> bool:
        return bool(await self.claim_events([(event_id, household_id)], now))  # type: ignore[list-item]

    async def claim_events(self, events: list[tuple[UUID, UUID]], now: datetime) -> set[UUID]:
        new = {e for e, _ in events} - self.s.processed
        self.s.processed |= new
        return new


class FakeOccurrences(_Repo):
    async def add_occurrence(self, occ: Occurrence) -> bool:
        return self.s.occurrences.setdefault(occ.occurrence_id, occ) is occ

    async def announce(self, occ: Occurrence) -> bool:
        if occ.occurrence_id in self.s.occurrences:
            return False
        return self.s.announced.setdefault(occ.occurrence_id, occ) is occ

    async def announced(self, occurrence_id: UUID) -> Occurrence | None:
        return self.s.announced.get(occurrence_id)

    async def forget_announced(self, occurrence_id: UUID | None = None, *, before: datetime | None = None) -> int:
        gone = [k for k, o in self.s.announced.items()
                if (k == occurrence_id if occurrence_id is not None else o.scheduled_for < before)]  # type: ignore[operator]
        for k in gone:
            del self.s.announced[k]
        return len(gone)

    async def occurrence(self, occurrence_id: UUID) -> Occurrence | None:
        return self.s.occurrences.get(occurrence_id)

    async def occurrences_by_id(self, ids: Any) -> dict[UUID, Occurrence]:
        return {i: self.s.occurrences[i] for i in ids if i in self.s.occurrences}

    async def household_occurrences(self, household_id: UUID, start: date, end: date) -> list[Occurrence]:
        return sorted((o for o in self.s.occurrences.values()
                       if o.household_id == household_id and start <= o.local_date <= end),
                      key=lambda o: o.scheduled_for)

    async def done_by(self, occurrence_ids: Any) -> dict[UUID, frozenset[UUID]]:
        ids, found = set(occurrence_ids), {}  # type: ignore[var-annotated]
        for c in self.s.checkins.values():
            if c.occurrence_id in ids and c.status is CheckInStatus.DONE:
                found.setdefault(c.occurrence_id, set()).add(c.member_id)
        return {k: frozenset(v) for k, v in found.items()}

    def _answered(self, occurrence_id: UUID) -> bool:
        return any(c.occurrence_id == occurrence_id and c.status in ANSWERED for c in self.s.checkins.values())

    async def overdue(self, now: datetime, limit: int = 500) -> list[Occurrence]:
        return sorted((o for o in self.s.occurrences.values() if o.closed_at is None and o.deadline <= now
                       and not self._answered(o.occurrence_id)), key=lambda o: o.deadline)[:limit]

    async def answered_unclaimed(self, now: datetime, limit: int = 500) -> list[UUID]:
        return [o.occurrence_id for o in self.s.occurrences.values()
                if o.closed_at is None and o.deadline <= now and self._answered(o.occurrence_id)][:limit]

    async def close_occurrence(self, occurrence_id: UUID, now: datetime, *, missed: bool) -> bool:
        occ = self.s.occurrences.get(occurrence_id)
        if occ is None or occ.closed_at is not None:
            return False
        self.s.occurrences[occurrence_id] = replace(occ, closed_at=now, missed=missed)
        return True

    async def next_deadline(self) -> datetime | None:
        return min((o.deadline for o in self.s.occurrences.values() if o.closed_at is None), default=None)

    async def occurrence_statuses(self, occurrence_id: UUID) -> list[CheckInStatus]:
        return [c.status for c in self.s.checkins.values() if c.occurrence_id == occurrence_id]


class FakeCheckIns(_Repo):
    async def checkin(self, occurrence_id: UUID, member_id: UUID) -> CheckIn | None:
        return self.s.checkins.get((occurrence_id, member_id))

    async def checkins_for(self, pairs: set[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], CheckIn]:
        return {p: self.s.checkins[p] for p in pairs if p in self.s.checkins}

    async def put_checkin(self, ci: CheckIn, *, replace: bool) -> None:
        self.s.checkins[(ci.occurrence_id, ci.member_id)] = ci

    async def put_checkins(self, new: list[CheckIn], replaced: list[CheckIn]) -> None:
        for ci in [*new, *replaced]:
            await self.put_checkin(ci, replace=ci in replaced)

    async def history(self, household_id: UUID, *, offset: int, limit: int) -> tuple[list[CheckIn], int]:
        mine = sorted((c for c in self.s.checkins.values() if c.household_id == household_id),
                      key=lambda c: (-c.scheduled_for.timestamp(), str(c.checkin_id)))
        return mine[offset:offset + limit], len(mine)


class FakeRituals(_Repo):
    async def put_ritual(self, ritual_id: UUID, household_id: UUID, template: str, rrule: str | None) -> None:
        self.s.rituals[ritual_id] = (household_id, template, rrule)

    async def delete_ritual(self, ritual_id: UUID) -> None:
        self.s.rituals.pop(ritual_id, None)

    async def ritual_rrule(self, ritual_id: UUID) -> str | None:
        return self.s.rituals[ritual_id][2] if ritual_id in self.s.rituals else None

    async def ritual_states(self, ritual_ids: Any) -> tuple[dict[UUID, str | None], dict[UUID, Any]]:
        ids = list(ritual_ids)
        return ({r: self.s.rituals[r][2] for r in ids if r in self.s.rituals},
                {r: (s["length"], s["best"], s["adherence_kept"], s["adherence_expected"])
                 for r in ids if (s := self.s.streaks.get(r))})

    async def ritual_histories(self, ritual_ids: Any, since: date) -> dict[UUID, list[tuple[Slot, bool]]]:
        ids, found = set(ritual_ids), {}  # type: ignore[var-annotated]
        done = {c.occurrence_id for c in self.s.checkins.values() if c.status is CheckInStatus.DONE}
        for o in sorted(self.s.occurrences.values(), key=lambda o: o.scheduled_for):
            if o.ritual_id in ids and o.local_date >= since:
                found.setdefault(o.ritual_id, []).append(
                    (Slot(o.local_date, o.scheduled_for, o.deadline), o.occurrence_id in done))
        return found

    async def first_dates(self, ritual_ids: Any) -> dict[UUID, date]:
        ids, first = set(ritual_ids), {}  # type: ignore[var-annotated]
        for o in self.s.occurrences.values():
            if o.ritual_id in ids:
                first[o.ritual_id] = min(first.get(o.ritual_id, o.local_date), o.local_date)
        return first

    async def put_streaks(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            old = self.s.streaks.get(row["ritual_id"], {})
            self.s.streaks[row["ritual_id"]] = {
                **row, "adherence_kept": row["adherence_kept"] if row["adherence_kept"] is not None
                else old.get("adherence_kept"),
                "adherence_expected": row["adherence_expected"] if row["adherence_expected"] is not None
                else old.get("adherence_expected")}

    async def household_streaks(self, household_id: UUID) -> list[dict[str, Any]]:
        return sorted((dict(s) for s in self.s.streaks.values() if s["household_id"] == household_id),
                      key=lambda s: s["template"])

    async def claim_milestones(self, marks: list[tuple[UUID, UUID, date, int]],
                               now: datetime) -> set[tuple[UUID, date, int]]:
        new = {(r, start, length) for r, _, start, length in marks} - self.s.milestones
        self.s.milestones |= new
        return new


class FakeMoments(_Repo):
    async def add_moment(self, m: Moment) -> bool:
        return self.s.moments.setdefault(m.moment_id, m) is m

    async def moment_counts(self, household_id: UUID, start: datetime, end: datetime) -> tuple[int, int]:
        kinds = [m.kind for m in self.s.moments.values()
                 if m.household_id == household_id and start <= m.happened_at <= end]
        return kinds.count("positive"), kinds.count("negative")

    async def moments(self, household_id: UUID, start: datetime | None = None,
                      end: datetime | None = None) -> list[Moment]:
        return sorted((m for m in self.s.moments.values() if m.household_id == household_id
                       and (start is None or m.happened_at >= start) and (end is None or m.happened_at <= end)),
                      key=lambda m: m.happened_at)

    async def ratio_below(self, household_id: UUID) -> bool:
        return self.s.ratio_below.get(household_id, False)

    async def set_ratio_below(self, household_id: UUID, below: bool) -> None:
        self.s.ratio_below[household_id] = below


class FakeAchievements(_Repo):
    async def add_achievement(self, a: Achievement) -> bool:
        return self.s.achievements.setdefault(a.achievement_id, a) is a

    async def achievements(self, household_id: UUID, since: datetime | None = None) -> list[Achievement]:
        return sorted((a for a in self.s.achievements.values() if a.household_id == household_id
                       and (since is None or a.recorded_at >= since)), key=lambda a: a.recorded_at)


class FakeDreams(_Repo):
    async def add_dream(self, dream: Dream) -> bool:
        return self.s.dreams.setdefault(dream.dream_id, dream) is dream

    async def dream(self, dream_id: UUID, household_id: UUID) -> Dream | None:
        found = self.s.dreams.get(dream_id)
        return found if found is not None and found.household_id == household_id else None

    async def support(self, dream_id: UUID, household_id: UUID, member_id: UUID, now: datetime) -> bool:
        if (dream_id, member_id) in self.s.dream_supports:
            return False
        self.s.dream_supports[(dream_id, member_id)] = household_id
        self.s.supported_at[(dream_id, member_id)] = now
        return True

    async def all(self, household_id: UUID) -> tuple[list[Dream], list[tuple[UUID, UUID, datetime]]]:
        dreams = sorted((d for d in self.s.dreams.values() if d.household_id == household_id),
                        key=lambda d: d.shared_at)
        return dreams, [(d, m, self.s.supported_at[(d, m)]) for (d, m), h in self.s.dream_supports.items()
                        if h == household_id]

    async def reach(self, dream_id: UUID, now: datetime) -> bool:
        found = self.s.dreams.get(dream_id)
        if found is None or found.reached_at is not None:
            return False
        self.s.dreams[dream_id] = replace(found, reached_at=now)
        return True


class FakeAfterCare(_Repo):
    async def consented(self, household_id: UUID) -> set[UUID]:
        return {m for h, m in self.s.consents if h == household_id}

    async def moments(self, household_id: UUID) -> list[tuple[UUID, UUID, datetime]]:
        return sorted(((m, by, at) for m, (h, by, at) in self.s.aftercare.items() if h == household_id),
                      key=lambda started: started[2])

    async def set_consent(self, household_id: UUID, member_id: UUID, given: bool, now: datetime) -> bool:
        key = (household_id, member_id)
        if not given:
            return self.s.consents.pop(key, None) is not None
        if key in self.s.consents:
            return False
        self.s.consents[key] = now
        return True

    async def start(self, moment_id: UUID, household_id: UUID, member_id: UUID, now: datetime) -> bool:
        started = (household_id, member_id, now)
        return self.s.aftercare.setdefault(moment_id, started) is started


class FakeQuestions(_Repo):
    async def put_question(self, household_id: UUID, asked: QuestionAsked) -> None:
        self.s.questions.setdefault(asked.occurrence_id, Question(
            asked.occurrence_id, household_id, asked.ritual_id, asked.template, asked.bank.value, asked.question_key,
            asked.depth, asked.scheduled_for))

    async def question(self, occurrence_id: UUID) -> Question | None:
        return self.s.questions.get(occurrence_id)

    async def answers(self, occurrence_id: UUID) -> dict[UUID, Answer]:
        return {member: a for (occurrence, member), (_, a) in self.s.answers.items() if occurrence == occurrence_id}

    async def add_answer(self, household_id: UUID, occurrence_id: UUID, answer: Answer) -> bool:
        kept = (household_id, answer)
        return self.s.answers.setdefault((occurrence_id, answer.member_id), kept) is kept


class FakeSummaries(_Repo):
    async def summary_sent(self, household_id: UUID, week_start: date) -> bool:
        return (household_id, week_start) in self.s.summaries

    async def claim_summary(self, household_id: UUID, week_start: date, now: datetime) -> bool:
        new = (household_id, week_start) not in self.s.summaries
        self.s.summaries.add((household_id, week_start))
        return new


class FakeLinks(_Repo):
    async def use_token(self, token_id: UUID, household_id: UUID, checkin_id: UUID | None, now: datetime,
                        expires_at: datetime) -> bool:
        return self.s.tokens.setdefault(token_id, now) is now

    async def token_used_at(self, token_id: UUID) -> datetime | None:
        return self.s.tokens.get(token_id)

    async def put_short_link(self, code_id: str, household_id: UUID, sealed_token: str, expires_at: datetime) -> None:
        self.s.short_links.setdefault(code_id, (household_id, sealed_token, expires_at))

    async def short_link(self, code_id: str) -> tuple[UUID, str, datetime] | None:
        return self.s.short_links.get(code_id)

    async def forget_short_links(self, expired_before: datetime) -> int:
        gone = [k for k, (_, _, expires) in self.s.short_links.items() if expires < expired_before]
        for k in gone:
            del self.s.short_links[k]
        return len(gone)


class FakeOutboxTable(_Repo):
    async def add(self, rows: list[dict[str, Any]]) -> None:
        waiting = {r["event_id"] for r in self.s.outbox}
        self.s.outbox += [r for r in rows if r["event_id"] not in waiting]


class FakeUnitOfWork:
    def __init__(self, factory: FakeUnitOfWorkFactory) -> None:
        self.factory = factory
        self.collected: list[CausedEvents] = []
        self._done = False
        s = self.state = copy.deepcopy(factory.state)
        self.households, self.processed = FakeHouseholds(s), FakeProcessedEvents(s)
        self.occurrences, self.checkins, self.rituals = FakeOccurrences(s), FakeCheckIns(s), FakeRituals(s)
        self.moments, self.achievements = FakeMoments(s), FakeAchievements(s)
        self.summaries, self.links, self.outbox = FakeSummaries(s), FakeLinks(s), FakeOutboxTable(s)
        self.dreams, self.aftercare, self.questions = FakeDreams(s), FakeAfterCare(s), FakeQuestions(s)

    async def __aenter__(self) -> Self:
        return self

    def collect(self, *events: CausedEvents) -> None:
        self.collected.extend(events)

    async def commit(self) -> None:
        if self._done:
            return
        self._done = True
        published = len(self.factory.state.outbox)
        self.factory.state = self.state
        self.factory.committed.append([p for bag in self.collected for p in bag.payloads()])
        self.factory.published += self.state.outbox[published:]

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc is None:
            await self.commit()
        else:
            self.factory.rolled_back += 1


class FakeUnitOfWorkFactory:
    """Call it for a unit of work (ports.UnitOfWorkFactory). `committed`: the events of each commit, in order;
    `published`: the outbox rows written, as the relay would send them; `rolled_back`: units left by an error."""

    def __init__(self) -> None:
        self.state = State()
        self.committed: list[list[Contract]] = []
        self.published: list[dict[str, Any]] = []
        self.rolled_back = 0

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)
