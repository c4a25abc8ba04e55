"""The chaos run: a population with rituals due in the same minute, faults injected while their reminders
go out and people check in, then a count of what arrived.

1. Set-up (before any fault): households, members and their push channels (json:// to the slow sink),
   through the same doors the CLI uses (commands on Kafka, the notifier's HTTP API); then one ritual per
   household, due at the next whole minute with enough lead (one minute per wave).
2. Chaos, from then until some time after the last wave's minute: every few seconds a random instance
   is kill -9'd and started again a moment later; every ten-odd seconds the broker proxy cuts every
   connection and refuses new ones for a few seconds; once, when the first wave's reminders are
   arriving, PostgreSQL stops abruptly and comes back several seconds later. Every random choice
   comes from a seeded generator, so a run's schedule of faults can be replayed.
3. Meanwhile some members check in, through the check-ins JSON API or the one-tap link in their
   reminder, as soon as both partners have their reminder; a client retries until it is answered.
4. Afterwards, with every instance up: wait until everything expected has arrived and nothing is left
   in flight (or the settle time is up), then a quiet spell that lets late duplicates show, then count:
   each (member, occurrence) at the sink once, each check-in recorded and announced once (and so its
   partner told once), nothing valid on the dead-letter topic, nothing still pending in the notifier.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from attune_contracts import AttunePublisher, ContractError, Topic, parse
from attune_contracts.credentials import CredentialIssuer
from attune_contracts.links import LinkError, LinkSigner
from attune_contracts.messages import DeadLetter, RegisterHousehold, ScheduleRitual, UpsertMember
from attune_scheduler.recurrence import occurrence_id

from .cluster import Cluster
from .sink import Arrival

TEMPLATE = "evening_attunement"
LATE = timedelta(minutes=2)
# A send's outcome is saved a moment after the gateway answers it (the answer reaches Apprise's thread and the event
# loop, the write-behind batches for 5 ms, one UPDATE) -- or, while the database is down, once it is back (outcomes
# wait in memory; the notifier starts no new send meanwhile). So a second copy is excused if a notifier was killed
# after its first copy reached the gateway and at most this long after the gateway answered it; or if the kill fell
# in a database outage (or this long after it) and the first copy was answered at most this long before the outage
# began. Measured from the answer, not the arrival, the window no longer includes the gateway's delay or a stall of
# this test's own event loop (which serves the gateway). A duplicate from a lost round or an expired lease (30 s)
# lies further from any kill.
KILL_WINDOW_SLACK_S = 4.0
# A check-in client keeps trying this long from its first try (every second, as a person tapping again would): the
# one check-ins instance may be killed up to three times in a bounded run, and on a loaded 2-CPU machine each
# restart takes 30-90 s before it serves, plus up to ~35 s to catch up on the occurrences due meanwhile.
CHECKIN_PATIENCE_S = 180.0
ACTIVE = {"pending", "deferred", "failed"}
_LINK = re.compile(r"(https?://\S+/l/(\S+))")


@dataclass(frozen=True)
class Profile:
    name: str
    households_per_wave: int
    waves: int
    kill_every_s: tuple[float, float]
    min_up_s: float  # an instance is killed only after it has been ready this long
    restart_after_s: tuple[float, float]
    cut_every_s: tuple[float, float]
    cut_for_s: tuple[float, float]
    pg_outage_s: float
    lead_s: float  # at least this long between the rituals being scheduled and the first wave's minute
    chaos_after_last_due_s: float
    chaos_extra_s: float  # at most this much longer while the last burst is still coming in
    settle_s: float
    quiet_s: float
    min_kills: int
    seed: int = 11


# CI (`make test`): 200 members due in one minute; about a minute of chaos around it.
BOUNDED = Profile("bounded", households_per_wave=100, waves=1, kill_every_s=(3, 6), min_up_s=4,
                  restart_after_s=(0.5, 2.0),
                  cut_every_s=(10, 18), cut_for_s=(2, 4), pg_outage_s=8, lead_s=15, chaos_after_last_due_s=20,
                  chaos_extra_s=60, settle_s=90, quiet_s=5, min_kills=5)
# `make chaos`: three waves of 240 members in consecutive minutes; four-odd minutes of chaos, 40-odd kills.
# It settles for up to seven minutes, longer than any lease a lost outcome could hide behind.
LONG = Profile("long", households_per_wave=120, waves=3, kill_every_s=(3, 6), min_up_s=4,
               restart_after_s=(0.5, 3.0),
               cut_every_s=(10, 20), cut_for_s=(2, 5), pg_outage_s=10, lead_s=25, chaos_after_last_due_s=60,
               chaos_extra_s=120, settle_s=420, quiet_s=30, min_kills=20)


@dataclass
class Household:
    index: int
    wave: int
    household_id: UUID = field(default_factory=uuid.uuid4)
    members: tuple[UUID, UUID] = field(default_factory=lambda: (uuid.uuid4(), uuid.uuid4()))
    ritual_id: UUID = field(default_factory=uuid.uuid4)
    due: datetime | None = None

    @property
    def checkin_via(self) -> str | None:
        """Two households in five check in: one through the JSON API, one through the one-tap link."""
        return {0: "api", 1: "link"}.get(self.index % 5)

    @property
    def occurrence(self) -> UUID:
        assert self.due is not None
        return occurrence_id(self.ritual_id, self.due)


@dataclass
class Submission:
    household: Household
    member: UUID
    via: str
    accepted: bool = False
    attempts: int = 0
    answers: list[str] = field(default_factory=list)
    deadline: float = 0.0  # monotonic: the client gives up then


class Timeline:
    def __init__(self, path: Path) -> None:
        self.path, self.t0 = path, time.monotonic()
        self.path.write_text("")

    def note(self, what: str) -> None:
        with self.path.open("a") as out:
            out.write(f"{time.monotonic() - self.t0:8.1f}s {datetime.now(UTC):%H:%M:%S} {what}\n")


# ---- what the sink saw ------------------------------------------------------------------------------


@dataclass
class Ledger:
    """The sink's arrivals, sorted: reminders by (member, occurrence), partner news by member, the rest."""

    signer: LinkSigner
    reminders: dict[tuple[UUID, UUID], list[Arrival]] = field(default_factory=lambda: defaultdict(list))
    links: dict[tuple[UUID, UUID], str] = field(default_factory=dict)
    partner_news: dict[UUID, list[Arrival]] = field(default_factory=lambda: defaultdict(list))
    other: list[Arrival] = field(default_factory=list)
    read: int = 0

    def update(self, arrivals: list[Arrival]) -> None:
        for arrival in arrivals[self.read:]:
            self._sort(arrival)
        self.read = len(arrivals)

    def _sort(self, arrival: Arrival) -> None:
        path_member = _member_in(arrival.path)
        message = str(arrival.body.get("message", ""))
        found = _LINK.search(message)
        if found and path_member is not None:
            try:
                claims = self.signer.verify(found.group(2))
            except LinkError:
                self.other.append(arrival)
                return
            if claims.member_id != path_member:
                self.other.append(arrival)
                return
            key = (claims.member_id, claims.occurrence_id)
            self.reminders[key].append(arrival)
            self.links.setdefault(key, found.group(1))
            return
        if path_member is not None and " kept " in str(arrival.body.get("title", "")):
            self.partner_news[path_member].append(arrival)
            return
        self.other.append(arrival)


def _member_in(path: str) -> UUID | None:
    try:
        return UUID(path.rstrip("/").rsplit("/", 1)[-1])
    except ValueError:
        return None


# ---- the run ----------------------------------------------------------------------------------------


class ChaosRun:
    def __init__(self, cluster: Cluster, profile: Profile, workdir: Path) -> None:
        self.cluster, self.profile = cluster, profile
        self.timeline = Timeline(workdir / "chaos-timeline.txt")
        kid, secret = cluster.link_keys.split(":", 1)
        self.ledger = Ledger(LinkSigner({kid: secret}, kid))
        self.households = [Household(i, wave) for wave in range(profile.waves)
                           for i in range(wave * profile.households_per_wave, (wave + 1) * profile.households_per_wave)]
        self.submissions: dict[UUID, Submission] = {}
        self.expected: dict[tuple[UUID, UUID], Household] = {}  # (member, occurrence), once rituals are due
        self._burst_done: float | None = None
        self.not_ready_after_chaos: list[str] = []
        self.unreadable_histories = 0
        self.notifier_kills: list[float] = []  # wall-clock times, to compare with the sink's arrivals
        self.pg_outages: list[tuple[float, float]] = []  # (down, up), wall clock
        self.stall_max_s = 0.0  # the longest this test's own event loop (gateway, broker proxy) was held up
        self._chaos_min_end = self._chaos_cap = 0.0
        self.kills = self.cuts = self.pg_restarts = 0
        self.http = httpx.AsyncClient(timeout=30)
        self.issuer = CredentialIssuer(cluster.credential_keys[0])

    def auth_for(self, member: UUID) -> dict[str, str]:
        """The member's household credential (reaches every member of that household at the notifier)."""
        household = next(h.household_id for h in self.households if member in h.members)
        return {"Authorization": f"Bearer {self.issuer.household(household)}"}

    @property
    def members(self) -> list[tuple[Household, UUID]]:
        return [(h, m) for h in self.households for m in h.members]

    # ---- set-up -------------------------------------------------------------------------------

    async def set_up(self) -> None:
        async with AttunePublisher.connect(self.cluster.bootstrap, producer="attune-cli", linger_ms=5) as publisher:
            await asyncio.gather(*(self._register(publisher, h) for h in self.households))
            notifier = self.cluster.url("notifier")
            await _bounded(16, [self._wait_member_known(notifier, m) for _, m in self.members])
            first = _next_minute(datetime.now(UTC) + timedelta(seconds=self.profile.lead_s))
            for h in self.households:
                h.due = first + timedelta(minutes=h.wave)
            await asyncio.gather(*(publisher.publish(ScheduleRitual(
                ritual_id=h.ritual_id, template=TEMPLATE, participants=list(h.members), rrule="FREQ=DAILY",
                local_time=h.due.strftime("%H:%M"), start_date=h.due.date(), reminder_offsets_minutes=[],
                catch_up_minutes=60), household_id=h.household_id) for h in self.households if h.due))
        await _bounded(16, [self._add_channel(notifier, m) for _, m in self.members])
        await self._confirm_scheduled()
        self.expected = {(m, h.occurrence): h for h, m in self.members}
        self.timeline.note(f"set up {len(self.households)} households, first minute {first:%H:%M} UTC")

    async def _register(self, publisher: AttunePublisher, h: Household) -> None:
        await publisher.publish(RegisterHousehold(name=f"Chaos {h.index}", time_zone="UTC"),
                                household_id=h.household_id)
        for n, member in enumerate(h.members):
            await publisher.publish(UpsertMember(member_id=member, display_name=f"{'AB'[n]}{h.index}"),
                                    household_id=h.household_id)

    async def _wait_member_known(self, notifier: str, member: UUID) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:  # a loaded notifier may drop a connection now and then: ask again
                answer = await self.http.get(f"{notifier}/v1/members/{member}/preferences", headers=self.auth_for(member))
                status: str | int = answer.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status == 200:
                return
            assert time.monotonic() < deadline, f"the notifier never learnt member {member}: {status}"
            await asyncio.sleep(0.5)

    async def _add_channel(self, notifier: str, member: UUID) -> None:
        answer = await self.http.post(f"{notifier}/v1/members/{member}/channels", headers=self.auth_for(member),
                                      json={"url": self.cluster.sink.url(f"m/{member}"), "kind": "push", "position": 0})
        assert answer.status_code == 201, answer.text

    async def _confirm_scheduled(self) -> None:
        wanted = {h.ritual_id: h for h in self.households}
        seen: dict[UUID, Any] = {}
        deadline = time.monotonic() + 90
        while set(wanted) - set(seen):
            assert time.monotonic() < deadline, f"{len(set(wanted) - set(seen))} rituals never scheduled"
            for record in await read_topic(self.cluster.bootstrap, Topic.SCHEDULER_EVENTS.value, idle_s=1.5):
                event = _parse(record.value)
                if event is not None and event.type == "scheduler.ritual_scheduled":
                    seen[event.payload.ritual_id] = event.payload
                if event is not None and event.type == "scheduler.command_rejected":
                    raise AssertionError(f"the scheduler refused a set-up command: {event.payload.reason}")
        for ritual, fact in seen.items():
            if ritual in wanted:
                assert fact.state == "active" and fact.next_due_at == wanted[ritual].due, fact

    # ---- chaos --------------------------------------------------------------------------------

    async def run(self) -> None:
        last_due = max(h.due for h in self.households if h.due)
        first_due = min(h.due for h in self.households if h.due)
        now = time.monotonic()
        self._chaos_min_end = now + (last_due - datetime.now(UTC)).total_seconds() + self.profile.chaos_after_last_due_s
        self._chaos_cap = self._chaos_min_end + self.profile.chaos_extra_s
        self.timeline.note("chaos begins")
        watcher = asyncio.ensure_future(self._watch(self._chaos_cap + self.profile.settle_s))
        stalls = asyncio.ensure_future(self._watch_stalls())
        await asyncio.gather(self._killer(), self._cutter(), self._pg_restart(first_due))
        settle_by = time.monotonic() + self.profile.settle_s
        self.timeline.note(f"chaos ends: {self.kills} kills, {self.cuts} cuts, {self.pg_restarts} PostgreSQL restarts")
        self.not_ready_after_chaos = await self.cluster.all_ready(timeout=180 + 120)
        self.timeline.note(f"every instance ready again, but {self.not_ready_after_chaos}"
                           if self.not_ready_after_chaos else "every instance ready again")
        await self._settle(settle_by)
        await asyncio.sleep(self.profile.quiet_s)
        watcher.cancel()
        stalls.cancel()
        await asyncio.gather(watcher, stalls, return_exceptions=True)
        self.ledger.update(self.cluster.sink.arrivals)
        self.timeline.note("settled")
        self._dump_arrivals()

    def _dump_arrivals(self) -> None:
        """What the sink saw, one JSON line per message, for reading a failed run afterwards."""
        sorted_as: dict[int, dict[str, str]] = {}
        for (member, occurrence), copies in self.ledger.reminders.items():
            sorted_as |= {id(a): {"kind": "reminder", "member": str(member), "occurrence": str(occurrence)}
                          for a in copies}
        for member, copies in self.ledger.partner_news.items():
            sorted_as |= {id(a): {"kind": "partner_news", "member": str(member)} for a in copies}
        with (self.timeline.path.parent / "sink-arrivals.jsonl").open("w") as out:
            for a in self.cluster.sink.arrivals:
                line = {"at": datetime.fromtimestamp(a.at, UTC).isoformat(), "abandoned": a.abandoned,
                        "answered_at": datetime.fromtimestamp(a.answered_at, UTC).isoformat() if a.answered_at else None,
                        "title": a.body.get("title"), **sorted_as.get(id(a), {"kind": "other", "path": a.path})}
                out.write(json.dumps(line) + "\n")

    async def _watch_stalls(self) -> None:
        """Note in the timeline whenever this process's event loop was held up (it serves the gateway and the
        broker proxy: a stall here delays every answer and every Kafka byte)."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.1)
            late = time.monotonic() - before - 0.1
            self.stall_max_s = max(self.stall_max_s, late)
            if late > 1.0:
                self.timeline.note(f"this test's event loop was held up {late:.1f}s")

    def _chaos_over(self) -> bool:
        """Faults go on for a while after the last wave's minute and, on a slow machine, until its burst is
        nearly through (95 % arrived, plus a few seconds), so that they hit the burst, not the quiet after it;
        never past the cap."""
        now = time.monotonic()
        if now >= self._chaos_cap:
            return True
        if now < self._chaos_min_end:
            return False
        self.ledger.update(self.cluster.sink.arrivals)
        arrived = len(self.expected.keys() & self.ledger.reminders.keys())
        if arrived >= 0.95 * len(self.expected) and self._burst_done is None:
            self._burst_done = now
        return self._burst_done is not None and now >= self._burst_done + 5

    def _victim(self, order: list[str]) -> str | None:
        """The first instance in `order` that has been ready for `min_up_s` while the other instances of its
        service are at least running: kills land on instances in the middle of their work, not on ones still
        importing their code (on a loaded machine a start takes 10-20 s), and a service is not held down
        through a whole burst."""
        now = time.monotonic()

        def eligible(name: str) -> bool:
            instance = self.cluster.instances[name]
            return (instance.alive and instance.ready_since is not None
                    and now - instance.ready_since >= self.profile.min_up_s
                    and all(other.alive for other in self.cluster.of(instance.service)))

        return next((name for name in order if eligible(name)), None)

    async def _killer(self) -> None:
        rng = random.Random(f"{self.profile.seed}:kills")
        names = sorted(self.cluster.instances)
        while True:
            await asyncio.sleep(rng.uniform(*self.profile.kill_every_s))
            order, down_for = rng.sample(names, len(names)), rng.uniform(*self.profile.restart_after_s)
            if self._chaos_over():
                return
            victim = self._victim(order)
            if victim is None:
                self.timeline.note("no instance to kill now: none has been ready long enough")
                continue
            instance = self.cluster.instances[victim]
            killed_at = time.time()
            await instance.kill(down_for)
            self.kills += 1
            if instance.service == "notifier":
                self.notifier_kills.append(killed_at)
            self.timeline.note(f"kill -9 {victim} (start #{instance.starts}); back in {down_for:.1f}s")

    async def _cutter(self) -> None:
        rng = random.Random(f"{self.profile.seed}:cuts")
        while True:
            await asyncio.sleep(rng.uniform(*self.profile.cut_every_s))
            length = rng.uniform(*self.profile.cut_for_s)
            if self._chaos_over():
                return
            self.cuts += 1
            self.timeline.note(f"cut the broker connections for {length:.1f}s")
            await self.cluster.proxy.cut(length)
            self.timeline.note("broker reachable again")

    async def _pg_restart(self, first_due: datetime) -> None:
        """Once, mid-burst: when a quarter of the first wave's reminders are in (or, if none come, 90 s
        after its minute)."""
        first_wave = {(m, h.occurrence) for h, m in self.members if h.wave == 0}
        latest = first_due + timedelta(seconds=90)
        while datetime.now(UTC) < latest and not self._chaos_over():
            self.ledger.update(self.cluster.sink.arrivals)
            if len(first_wave & set(self.ledger.reminders)) >= len(first_wave) / 4:
                break
            await asyncio.sleep(0.2)
        arrived = len(first_wave & set(self.ledger.reminders))
        self.timeline.note(f"PostgreSQL stops abruptly ({arrived}/{len(first_wave)} of wave 1 arrived); "
                           f"back in {self.profile.pg_outage_s}s")
        self.pg_restarts += 1
        down = time.time()
        await self.cluster.postgres.restart(self.profile.pg_outage_s)
        self.pg_outages.append((down, time.time()))
        self.timeline.note("PostgreSQL is back")

    # ---- check-ins ----------------------------------------------------------------------------

    async def _watch(self, deadline: float) -> None:
        """Start each chosen household's check-in once both partners have their reminder."""
        tasks = []
        waiting = [h for h in self.households if h.checkin_via]
        try:
            while waiting:
                self.ledger.update(self.cluster.sink.arrivals)
                for h in list(waiting):
                    if all((m, h.occurrence) in self.ledger.reminders for m in h.members):
                        waiting.remove(h)
                        submission = Submission(h, h.members[0], h.checkin_via or "api",
                                                deadline=max(deadline, time.monotonic() + CHECKIN_PATIENCE_S))
                        self.submissions[h.household_id] = submission
                        tasks.append(asyncio.ensure_future(self._check_in(submission)))
                await asyncio.sleep(0.3)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _check_in(self, s: Submission) -> None:
        h = s.household
        checkins = self.cluster.url("checkins")
        token = self.issuer.household(h.household_id)
        link = self.ledger.links[(s.member, h.occurrence)]
        while time.monotonic() < s.deadline:
            s.attempts += 1
            try:
                if s.via == "api":
                    answer = await self.http.post(
                        f"{checkins}/v1/households/{h.household_id}/checkins",
                        headers={"Authorization": f"Bearer {token}"},
                        json={"occurrence_id": str(h.occurrence), "member_id": str(s.member), "status": "done",
                              "closeness": 5})
                    ok = answer.status_code in (200, 201)
                else:
                    answer = await self.http.post(link, data={"closeness": "4"})
                    # "Already recorded" is the right answer to a retry whose earlier try got through (the
                    # history shows afterwards whether it really was recorded, and once).
                    ok = answer.status_code == 200 or (answer.status_code == 409 and s.attempts > 1)
                s.answers.append(str(answer.status_code))
                if ok:
                    s.accepted = True
                    return
            except httpx.HTTPError as exc:
                s.answers.append(type(exc).__name__)
            await asyncio.sleep(1.0)

    # ---- settling and counting ----------------------------------------------------------------

    async def _settle(self, deadline: float) -> None:
        """Until everything expected has arrived and nothing is in flight, or `deadline` (later if a check-in
        client is still trying)."""
        expected = set(self.expected)
        while time.monotonic() < max([deadline, *(s.deadline for s in self.submissions.values() if not s.accepted)]):
            self.ledger.update(self.cluster.sink.arrivals)
            submitted = list(self.submissions.values())
            done = (expected <= set(self.ledger.reminders)
                    and len(submitted) == sum(1 for h in self.households if h.checkin_via)
                    and all(s.accepted for s in submitted)
                    and all(self.ledger.partner_news.get(_partner(s)) for s in submitted))
            if done and not await self.unsettled():
                self.timeline.note("everything expected has arrived and nothing is in flight")
                return
            await asyncio.sleep(5)
        self.timeline.note("settle time is up")

    async def unsettled(self) -> list[dict[str, Any]]:
        """Deliveries of reminders and partner news the notifier still means to send (a duplicate or a late one)."""
        notifier = self.cluster.url("notifier")

        async def of(member: UUID) -> list[dict[str, Any]]:
            try:
                answer = await self.http.get(f"{notifier}/v1/members/{member}/export", headers=self.auth_for(member))
            except httpx.HTTPError as exc:
                return [{"member": str(member), "status": f"export failed: {type(exc).__name__}"}]
            if answer.status_code != 200:
                return [{"member": str(member), "status": f"export HTTP {answer.status_code}"}]
            return [d | {"member": str(member)} for d in answer.json()["deliveries"] if d["status"] in ACTIVE]

        found = await _bounded(16, [of(m) for _, m in self.members])
        return [d for batch in found for d in batch]

    async def figures(self) -> dict[str, Any]:
        expected = self.expected
        counts = {key: len(arrivals) for key, arrivals in self.ledger.reminders.items()}
        lost = [key for key in expected if key not in counts]
        duplicated = sum(c - 1 for key, c in counts.items() if key in expected and c > 1)
        slack = KILL_WINDOW_SLACK_S
        in_window = sum(_resent_after_a_kill(arrivals, self.notifier_kills, slack, self.pg_outages)
                        for key, arrivals in self.ledger.reminders.items() if key in expected)
        unexpected = sum(c for key, c in counts.items() if key not in expected)
        late = [key for key, h in expected.items() if key in counts and h.due is not None
                and datetime.fromtimestamp(self.ledger.reminders[key][0].at, UTC) - h.due > LATE]
        delays = sorted(self.ledger.reminders[key][0].at - h.due.timestamp()
                        for key, h in expected.items() if key in counts and h.due is not None)

        submitted = list(self.submissions.values())
        accepted = [s for s in submitted if s.accepted]
        recorded = await self._recorded(accepted)
        announced = await self._announced()
        partner_expected = {_partner(s) for s in accepted}
        partner_counts = Counter({m: len(a) for m, a in self.ledger.partner_news.items()})
        letters, valid_letters = await self._dead_letters()
        unsettled = await self.unsettled()
        instances = self.cluster.instances.values()
        return {
            "profile": self.profile.name,
            "seed": self.profile.seed,
            "households": len(self.households),
            "reminders": len(expected),
            "arrived": sum(1 for key in expected if key in counts),
            "lost": len(lost),
            "duplicated": duplicated,
            # Of those, second copies of a send that was in flight when a notifier was kill -9'd (the kill fell
            # after the previous copy reached the gateway and at most KILL_WINDOW_SLACK_S after the gateway
            # answered it, or in a database outage): the duplicate windows the design allows. Every other
            # duplicate is a defect.
            "duplicated_in_a_kill_window": in_window,
            "sends_abandoned_by_a_killed_sender": sum(a.abandoned for a in self.cluster.sink.arrivals),
            # Notifier kills that struck while messages were reaching the gateway (one arrived within the window).
            "notifier_kills_mid_burst": sum(1 for kill in self.notifier_kills
                                            if any(a.at <= kill <= _answered(a) + slack for a in self.cluster.sink.arrivals)),
            # How long before a kill the earliest excused copy had reached the gateway, and had been answered: the
            # second is the real width of the window in which a delivered message's outcome is not yet saved.
            "excused_copy_max_lead_s": _max_lead(self.ledger.reminders.values(), self.notifier_kills, slack),
            "excused_copy_max_after_answer_s": _max_lead(self.ledger.reminders.values(), self.notifier_kills, slack,
                                                         from_answer=True),
            "test_loop_stall_max_s": round(self.stall_max_s, 2),
            "unexpected_reminders": unexpected,
            "late_over_2min": len(late),
            "delay_p50_s": round(delays[len(delays) // 2], 1) if delays else None,
            "delay_max_s": round(delays[-1], 1) if delays else None,
            "kills": self.kills,
            "kills_by_instance": {i.name: i.kills for i in instances},
            "exits_on_their_own": sum(i.exits for i in instances),
            # Up without ever becoming ready (e.g. its broker start failed after start-up was reported complete).
            "stuck_instances": {i.name: i.stuck for i in instances if i.stuck},
            "never_ready_again": self.not_ready_after_chaos,
            "cuts": self.cuts,
            "postgres_restarts": self.pg_restarts,
            "checkins_submitted": len(submitted),
            "checkins_accepted": len(accepted),
            "checkins_not_recorded": sum(1 for s in accepted if recorded.get((s.household.occurrence, s.member), 0) == 0),
            "checkins_recorded_twice": sum(1 for c in recorded.values() if c > 1),
            "checkins_unknown_recorded": sum(1 for key in recorded
                                             if key not in {(s.household.occurrence, s.member) for s in accepted}),
            "checkin_histories_unreadable": self.unreadable_histories,
            "checkins_announced_not_once": sum(1 for s in accepted
                                               if len(announced.get((s.household.occurrence, s.member), ())) != 1),
            "partner_news_lost": sum(1 for m in partner_expected if partner_counts[m] == 0),
            "partner_news_duplicated": sum(c - 1 for m, c in partner_counts.items() if m in partner_expected and c > 1),
            "partner_news_duplicated_in_a_kill_window": sum(
                _resent_after_a_kill(a, self.notifier_kills, slack, self.pg_outages)
                for m, a in self.ledger.partner_news.items() if m in partner_expected),
            "partner_news_unexpected": sum(c for m, c in partner_counts.items() if m not in partner_expected),
            "other_messages": len(self.ledger.other),
            "dead_letters": letters,
            "dead_letters_valid": valid_letters,
            "unsettled_deliveries": len(unsettled),
            "lost_sample": [f"member {m} occurrence {o}" for m, o in lost[:5]],
            "checkin_failures": [f"{s.via} {s.household.household_id}: {' '.join(s.answers[-6:])}"
                                 for s in submitted if not s.accepted][:5],
            "unsettled_sample": unsettled[:5],
        }

    async def _recorded(self, accepted: list[Submission]) -> dict[tuple[UUID, UUID], int]:
        """(occurrence, member) -> rows in each household's check-in history that names it."""
        checkins = self.cluster.url("checkins")
        found: Counter[tuple[UUID, UUID]] = Counter()

        async def history(h: Household) -> None:
            token = self.issuer.household(h.household_id)
            try:
                answer = await self.http.get(f"{checkins}/v1/households/{h.household_id}/checkins",
                                             params={"page_size": 200}, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError:
                self.unreadable_histories += 1
                return
            if answer.status_code != 200:
                self.unreadable_histories += 1
                return
            for item in answer.json()["items"]:
                found[(UUID(item["occurrence_id"]), UUID(item["member_id"]))] += 1

        await _bounded(16, [history(h) for h in {s.household.household_id: s.household for s in accepted}.values()])
        return found

    async def _announced(self) -> dict[tuple[UUID, UUID], set[UUID]]:
        """(occurrence, member) -> the distinct CheckInRecorded events that announced it."""
        announced: dict[tuple[UUID, UUID], set[UUID]] = defaultdict(set)
        for record in await read_topic(self.cluster.bootstrap, Topic.CHECKINS_EVENTS.value):
            event = _parse(record.value)
            if event is not None and event.type == "checkins.checkin_recorded":
                announced[(event.payload.occurrence_id, event.payload.member_id)].add(event.event_id)
        return announced

    async def _dead_letters(self) -> tuple[int, int]:
        """How many dead letters, and how many of them hold a message that parses and validates."""
        records = await read_topic(self.cluster.bootstrap, Topic.DEAD_LETTER.value)
        valid = 0
        for record in records:
            try:
                letter = DeadLetter.model_validate_json(record.value)
            except ValueError:
                continue
            if letter.sealed is not None:
                # Its bytes are sealed (crypto-shredding): a message that parsed is the one "rejected" or "handler_failed".
                valid += letter.error_kind != "invalid"
            elif _parse(letter.value) is not None:
                valid += 1
        return len(records), valid

    async def close(self) -> None:
        await self.http.aclose()


def _answered(a: Arrival) -> float:
    return a.answered_at if a.answered_at is not None else a.at


def _resent_after_a_kill(copies: list[Arrival], kills: list[float], slack: float,
                         outages: Sequence[tuple[float, float]] = ()) -> int:
    """Copies after the first whose previous copy was in flight when a notifier was killed: the kill came after
    it reached the gateway and at most `slack` seconds after the gateway answered it (its outcome not saved yet);
    or the kill came while the database was down (or within `slack` of its return) and the copy had been
    answered since `slack` before the outage began (its outcome could not be written meanwhile).

    "Reached the gateway" is when the gateway read the request. While this test's event loop is held up, a
    request sent before the kill is read after it; its sender is gone by the answer (`abandoned`), so an
    abandoned copy read up to `slack` after a kill counts as reached before it."""
    def in_flight(a: Arrival) -> bool:
        answered = _answered(a)

        def reached_by(kill: float) -> bool:
            return a.at <= kill or (a.abandoned and a.at - slack <= kill)

        return any(reached_by(kill) and (kill <= answered + slack
                                         or any(down <= kill <= up + slack and down - slack <= answered
                                                for down, up in outages))
                   for kill in kills)

    ordered = sorted(copies, key=lambda a: a.at)
    return sum(1 for previous in ordered[:-1] if in_flight(previous))


def _max_lead(groups: Any, kills: list[float], slack: float, *, from_answer: bool = False) -> float | None:
    """The longest time from an excused copy's arrival (or its answer) to the kill right after it (outages
    aside)."""
    leads = [kill - (_answered(copy) if from_answer else copy.at)
             for copies in groups for copy in sorted(copies, key=lambda a: a.at)[:-1]
             for kill in kills if copy.at <= kill <= _answered(copy) + slack]
    return round(max(leads), 2) if leads else None


def _partner(s: Submission) -> UUID:
    return next(m for m in s.household.members if m != s.member)


def _parse(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except (ContractError, ValueError, RecursionError):
        return None


def _next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


async def _bounded(limit: int, coroutines: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coroutine: Any) -> Any:
        async with gate:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


async def read_topic(bootstrap: str, topic: str, idle_s: float = 3.0, timeout: float = 120) -> list[Any]:
    """Every record of `topic`, from the beginning until nothing new came for `idle_s` (Tansu's end offsets
    can stop short, so the end is found by waiting, not by arithmetic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        quiet_since = time.monotonic()
        async with asyncio.timeout(timeout):
            while time.monotonic() - quiet_since < idle_s:
                batch = await consumer.getmany(timeout_ms=300)
                for part in batch.values():
                    records.extend(part)
                if any(batch.values()):
                    quiet_since = time.monotonic()
        return records
    finally:
        await consumer.stop()


def render(figures: dict[str, Any]) -> str:
    lines = [f"chaos run ({figures['profile']}, seed {figures['seed']}):"]
    for key, value in figures.items():
        if key not in ("profile", "seed"):
            lines.append(f"  {key.replace('_', ' ')}: {json.dumps(value, default=str)}")
    return "\n".join(lines)
