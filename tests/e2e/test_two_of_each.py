"""Two instances of every service, as separate processes on PostgreSQL and the real broker: every reminder
once, every check-in recorded and announced once, while one instance of each goes away mid-burst.

Set-up goes through the doors the CLI uses (commands on Kafka, the notifier's HTTP API, alternating between
the two notifiers). Wave A (WAVE_A households) is due at one whole minute, wave B (WAVE_B) at the next. Once
both partners of a household have their reminder, one checks in through the one-tap link (sent to either
check-ins instance, as a load balancer would) and the other with a SubmitCheckIn command on Kafka (split
between the two check-ins consumers by partition).

Each notifier sends only NOTIFIER_CONCURRENCY at a time to a gateway answering in 0.2-0.8 s, so a minute's
pushes take seconds to go out. When a third of wave A's reminders have reached the gateway, scheduler-2 is
kill -9'd (its relay's duplicate window resends the same event ids, which consumers dedupe) and notifier-2
gets SIGTERM, as a scale-in or a rolling update sends it (a notifier kill -9 mid-send has a documented window
in which a person can see a message twice: docs/RELIABILITY.md; the chaos suite counts it). Once checkins-2
has recorded three link check-ins, it is kill -9'd while the others are still coming in, and so is app-2 (the
household web app, whose read model both app instances build from the events in one database). The survivors
finish wave A and serve wave B alone. Then what a household sees in the app: its store holds each household's
occurrence once and each check-in once, as made, and a few households' "Today" pages, read through app-1 after
a sign-in link, show the ritual once with "You kept it" and the partner's "kept it" once each. Deadlines are
generous failure guards only; nothing here is timed.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest
from attune_contracts import AttunePublisher, ContractError, Topic, parse
from attune_contracts.credentials import CredentialIssuer, generate_key_pair
from attune_contracts.links import LinkSigner
from attune_contracts.messages import (
    CheckInStatus,
    RegisterHousehold,
    ScheduleRitual,
    SubmitCheckIn,
    UpsertMember,
)
from attune_runtime.tansu import free_port
from attune_runtime.testing import PG_ADMIN_DSN
from attune_scheduler.recurrence import occurrence_id
from chaos.scenario import Ledger, read_topic
from chaos.sink import SlowSink

from .stack import Running, Stack, compose_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WAVE_A, WAVE_B = 24, 12
NOTIFIER_CONCURRENCY = 4
TEMPLATE = "evening_attunement"
APP_PAGES = 6  # households whose "Today" page is read through the surviving app (a sign-in link each)
ORDER = ("scheduler", "checkins", "notifier", "app")


@dataclass
class Household:
    index: int
    wave: int
    household_id: UUID = field(default_factory=uuid.uuid4)
    members: tuple[UUID, UUID] = field(default_factory=lambda: (uuid.uuid4(), uuid.uuid4()))
    ritual_id: UUID = field(default_factory=uuid.uuid4)
    due: datetime | None = None

    @property
    def occurrence(self) -> UUID:
        assert self.due is not None
        return occurrence_id(self.ritual_id, self.due)


class TwoOfEach(Stack):
    """The e2e stack with two instances of each service: one database per service, shared by its two
    instances, which share its keys too (a notifier reads channels the other stored). The app signs member
    credentials with its own key, whose public half the others verify (as compose's CREDENTIAL_KEYS has it)."""

    database_of: dict[str, str]
    app_env: dict[str, str]

    def env_for(self, name: str, port: int, database: str) -> dict[str, str]:
        env = super().env_for(name, port, database)
        if name == "app":
            env |= {
                "ATTUNE_APP_SIGNING_KEY": self.app_keys[0],
                "ATTUNE_APP_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "ATTUNE_APP_DEAD_LETTER_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "ATTUNE_APP_CHECKINS_URL": self.services["checkins-1"].url,
                "ATTUNE_APP_NOTIFIER_URL": self.services["notifier-1"].url,
            }
        else:
            env[f"ATTUNE_{name.upper()}_CREDENTIAL_KEYS"] += f",{self.app_keys[1]}"
        return env

    async def start(self) -> TwoOfEach:
        self.app_keys = generate_key_pair("e2e-app")
        self.use_its_field_keys()
        self.broker.log_path = self.workdir / "tansu.log"
        self.broker.start()
        self.database_of = {name: await self._database() for name in ORDER}
        envs: dict[str, dict[str, str]] = {}
        for n in (1, 2):
            for service in ORDER:
                name, port = f"{service}-{n}", free_port()
                if service not in envs:  # one environment per service: the same keys for both instances
                    envs[service] = self.env_for(service, port, self.database_of[service])
                env = envs[service] | {f"ATTUNE_{service.upper()}_HTTP_PORT": str(port)}
                if service == "notifier":
                    env["ATTUNE_NOTIFIER_DELIVERY_IDLE_POLL_S"] = "0.25"
                    # A few sends at a time, each 0.2-0.8 s at the gateway: a minute's pushes take seconds to go
                    # out, so "a third have arrived" is a moment with most still to send (at 256 all 48 go at once).
                    env["ATTUNE_NOTIFIER_DELIVERY_CONCURRENCY"] = str(NOTIFIER_CONCURRENCY)
                    env["ATTUNE_NOTIFIER_DELIVERY_BATCH"] = str(NOTIFIER_CONCURRENCY)
                    env["ATTUNE_NOTIFIER_CHECKINS_PUBLIC_URL"] = self.services["checkins-1"].url
                if service == "app":
                    env["ATTUNE_APP_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
                    self.app_env = envs["app"]
                log = self.workdir / f"{name}.log"
                process = subprocess.Popen(compose_command(service), env=env, stdout=open(log, "wb"),  # noqa: SIM115
                                           stderr=subprocess.STDOUT, cwd=self.workdir)
                self.services[name] = Running(name, port, process, log)
            # The first instance of each service migrates its database and creates the topics alone.
            await asyncio.gather(*(self.wait_ready(self.services[f"{s}-{n}"], timeout=180) for s in ORDER))
        return self

    def url(self, name: str) -> str:
        return self.services[name].url

    def alive(self, name: str) -> bool:
        return self.services[name].process.poll() is None


@pytest.fixture
async def stack(tmp_path: Path):
    running = TwoOfEach(tmp_path)
    try:
        yield await running.start()
    finally:
        await running.stop()


@pytest.mark.timeout(1200)
async def test_two_of_each_every_reminder_once_and_every_checkin_once_while_one_of_each_goes(
        stack: TwoOfEach, tmp_path: Path) -> None:
    sink = await SlowSink(delay_s=(0.2, 0.8), seed=17).start()
    run = Run(stack, sink)
    try:
        await run.set_up()
        await run.burst()
        figures = await run.count()
    except BaseException:
        print(stack.logs())
        raise
    finally:
        await run.close()
        await sink.stop()
    print(figures)

    assert figures["went_mid_burst"], figures
    assert figures["lost"] == [] and figures["twice"] == [] and figures["unexpected"] == 0, figures
    assert figures["arrived"] == 2 * (WAVE_A + WAVE_B), figures
    assert figures["wave_a_after_the_kills"] > 0, figures  # the survivors finished what the others had begun
    assert figures["not_recorded"] == [] and figures["recorded_unasked"] == [], figures
    assert figures["announced_not_once"] == [], figures
    assert figures["partner_news_not_once"] == [], figures
    # Both instances of each service did work before one went: the split is real, not one doing it all.
    assert figures["checkins_killed"] and figures["links_answered_by"].get("checkins-2", 0) >= 3, figures
    assert figures["checkins_after_its_kill"] > 0, figures  # checkins-1 took the rest
    assert figures["notifier_2_sent_before_stop"] > 0, figures
    # A graceful stop: uvicorn finished the app's shutdown (it waits for the sends in flight), then left.
    assert figures["notifier_2_shutdown"] and figures["notifier_2_exit"] in (0, -signal.SIGTERM), figures
    # What a household sees in the web app: app-2 had read events before its kill -9, app-1 read the rest; every
    # household's read model has its ritual's occurrence once and each check-in once, as it was made.
    assert figures["app_2_handled_before_kill"] > 0 and figures["app_2_exit"] == -signal.SIGKILL, figures
    assert figures["app_missing_checkins"] == [] and figures["app_wrong_checkins"] == [], figures
    assert figures["app_occurrences_wrong"] == [] and figures["app_checkins_unasked"] == [], figures
    assert figures["app_pages_checked"] == APP_PAGES and figures["app_pages_wrong"] == [], figures


class Run:
    def __init__(self, stack: TwoOfEach, sink: SlowSink) -> None:
        self.stack, self.sink = stack, sink
        kid, secret = stack.link_keys.split(":", 1)
        self.ledger = Ledger(LinkSigner({kid: secret}, kid))
        self.households = [Household(i, 0 if i < WAVE_A else 1) for i in range(WAVE_A + WAVE_B)]
        self.issuer = CredentialIssuer(stack.credential_keys[0])
        self.http = httpx.AsyncClient(timeout=30)
        self.publisher = AttunePublisher.connect(stack.broker.bootstrap, producer="attune-cli", linger_ms=5)
        self.links_answered_by: Counter[str] = Counter()
        self.submitted: dict[tuple[UUID, UUID], str] = {}  # (occurrence, member) -> how
        self.checkin_times: dict[tuple[UUID, UUID], float] = {}
        self.killed_at: float | None = None
        self.checkins_killed_at: float | None = None
        self.went_mid_burst = False
        self.app_2_handled_before_kill = self.app_2_checkins_before_kill = 0
        self._connected = False
        self.expected: dict[tuple[UUID, UUID], Household] = {}
        self._checkin_links = itertools.cycle(("checkins-1", "checkins-2"))

    def auth(self, household: UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.household(household)}"}

    async def set_up(self) -> None:
        await self.publisher.__aenter__()
        self._connected = True
        for h in self.households:
            await self.publisher.publish(RegisterHousehold(name=f"Scale {h.index}", time_zone="UTC"),
                                         household_id=h.household_id)
            for n, member in enumerate(h.members):
                await self.publisher.publish(UpsertMember(member_id=member, display_name=f"{'AB'[n]}{h.index}"),
                                             household_id=h.household_id)
        notifiers = itertools.cycle(("notifier-1", "notifier-2"))
        pairs = [(h, m, next(notifiers)) for h in self.households for m in h.members]
        await bounded(8, [self._member_known(self.stack.url(n), h, m) for h, m, n in pairs])
        await bounded(8, [self._add_channel(self.stack.url(n), h, m) for h, m, n in pairs])
        first = (datetime.now(UTC) + timedelta(seconds=30)).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for h in self.households:
            h.due = first + timedelta(minutes=h.wave)
            await self.publisher.publish(ScheduleRitual(
                ritual_id=h.ritual_id, template=TEMPLATE, participants=list(h.members), rrule="FREQ=DAILY",
                local_time=h.due.strftime("%H:%M"), start_date=h.due.date(), reminder_offsets_minutes=[],
                catch_up_minutes=60), household_id=h.household_id)
        await self._confirm_scheduled(before=first)
        self.expected = {(m, h.occurrence): h for h in self.households for m in h.members}

    async def _member_known(self, notifier: str, h: Household, member: UUID) -> None:
        deadline = time.monotonic() + 180
        while True:
            answer = await self.http.get(f"{notifier}/v1/members/{member}/preferences", headers=self.auth(h.household_id))
            if answer.status_code == 200:
                return
            assert time.monotonic() < deadline, f"the notifier never learnt member {member}: {answer.status_code}"
            await asyncio.sleep(0.5)

    async def _add_channel(self, notifier: str, h: Household, member: UUID) -> None:
        answer = await self.http.post(f"{notifier}/v1/members/{member}/channels", headers=self.auth(h.household_id),
                                      json={"url": self.sink.url(f"m/{member}"), "kind": "push", "position": 0})
        assert answer.status_code == 201, answer.text

    async def _confirm_scheduled(self, before: datetime) -> None:
        wanted = {h.ritual_id: h for h in self.households}
        seen: set[UUID] = set()
        while set(wanted) - seen:
            assert datetime.now(UTC) < before - timedelta(seconds=3), (
                f"{len(set(wanted) - seen)} rituals not scheduled before their minute: set-up too slow here")
            for record in await read_topic(self.stack.broker.bootstrap, Topic.SCHEDULER_EVENTS.value, idle_s=1.0):
                event = parse(record.value)
                assert event.type != "scheduler.command_rejected", event.payload
                if event.type == "scheduler.ritual_scheduled" and event.payload.ritual_id in wanted:
                    assert event.payload.next_due_at == wanted[event.payload.ritual_id].due, event.payload
                    seen.add(event.payload.ritual_id)

    # ---- the burst ------------------------------------------------------------------------------------

    async def burst(self) -> None:
        wave_a = {key for key, h in self.expected.items() if h.wave == 0}
        checkins = await asyncpg.create_pool(self._dsn("checkins"), min_size=1, max_size=4)
        tasks: list[asyncio.Task[None]] = []
        started: set[UUID] = set()
        last_due = max(h.due for h in self.households if h.due)
        deadline = time.monotonic() + (last_due - datetime.now(UTC)).total_seconds() + 420  # a failure guard
        try:
            while True:
                self.ledger.update(self.sink.arrivals)
                arrived = {key for key in self.ledger.reminders if key in self.expected}
                if self.killed_at is None and len(arrived & wave_a) >= len(wave_a) // 3:
                    self._scheduler_and_notifier_go(arrived & wave_a, wave_a)
                if self.checkins_killed_at is None and self.links_answered_by["checkins-2"] >= 3:
                    self._checkins_goes()
                for h in self.households:
                    if h.household_id not in started and all((m, h.occurrence) in arrived for m in h.members):
                        started.add(h.household_id)  # both partners have it: now they check in
                        tasks.append(asyncio.ensure_future(self._link_checkin(h, h.members[0])))
                        tasks.append(asyncio.ensure_future(self._command_checkin(checkins, h, h.members[1])))
                if len(arrived) == len(self.expected) and len(started) == len(self.households) and all(
                        t.done() for t in tasks):
                    break
                assert time.monotonic() < deadline, (
                    f"{len(self.expected) - len(arrived)} reminders missing, "
                    f"{sum(not t.done() for t in tasks)} check-ins pending")
                for task in tasks:
                    if task.done() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                await asyncio.sleep(0.2)
            await asyncio.gather(*tasks)
            # Partners hear of each other's check-in; then a quiet spell lets any late copy show.
            await self._partner_news_settled(deadline)
            await asyncio.sleep(8)
            self.ledger.update(self.sink.arrivals)
        finally:
            for task in tasks:
                task.cancel()
            await checkins.close()

    def _scheduler_and_notifier_go(self, arrived: set, wave_a: set) -> None:
        self.killed_at = time.time()
        self.stack.services["scheduler-2"].process.send_signal(signal.SIGKILL)
        self.stack.services["notifier-2"].process.send_signal(signal.SIGTERM)
        # Mid-burst: some of wave A had arrived, and some had not.
        self.went_mid_burst = 0 < len(arrived) < len(wave_a)

    def _checkins_goes(self) -> None:
        """Once it has recorded a few link check-ins, while the rest are coming in (links and commands)."""
        self.checkins_killed_at = time.time()
        self.stack.services["checkins-2"].process.send_signal(signal.SIGKILL)
        # The app's second instance goes too, while the check-ins it reads are being recorded.
        app_2_log = self.stack.services["app-2"].log.read_text()
        self.app_2_handled_before_kill = app_2_log.count("handled ")
        self.app_2_checkins_before_kill = app_2_log.count("handled checkins.checkin_recorded")
        self.stack.services["app-2"].process.send_signal(signal.SIGKILL)

    async def _link_checkin(self, h: Household, member: UUID) -> None:
        link = self.ledger.links[(member, h.occurrence)]
        path = link.split("/l/", 1)[1]
        deadline = time.monotonic() + 240
        attempts = 0
        while True:
            attempts += 1
            name = next(self._checkin_links)
            if not self.stack.alive(name):
                name = "checkins-1"
            try:
                answer = await self.http.post(f"{self.stack.url(name)}/l/{path}", data={"closeness": "4"})
                # "Already recorded" is right for a retry whose earlier try got through before its instance went.
                if answer.status_code == 200 or (answer.status_code == 409 and attempts > 1):
                    self.links_answered_by[name] += 1
                    self.submitted[(h.occurrence, member)] = f"link via {name}"
                    self.checkin_times[(h.occurrence, member)] = time.time()
                    return
                failure = f"{answer.status_code} {answer.text[:200]}"
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            assert time.monotonic() < deadline, f"link check-in of {member} never accepted: {failure}"
            await asyncio.sleep(1.0)

    async def _command_checkin(self, checkins: asyncpg.Pool, h: Household, member: UUID) -> None:
        # A command for an occurrence the check-ins service has not learnt yet is refused (not due yet, as far
        # as it knows): wait until its RitualDue has been recorded, as a partner service would learn it.
        deadline = time.monotonic() + 240
        while not await checkins.fetchval("SELECT 1 FROM occurrences WHERE occurrence_id = $1", h.occurrence):
            assert time.monotonic() < deadline, f"check-ins never learnt occurrence {h.occurrence}"
            await asyncio.sleep(0.5)
        await self.publisher.publish(SubmitCheckIn(occurrence_id=h.occurrence, member_id=member,
                                                   status=CheckInStatus.DONE, closeness=5),
                                     household_id=h.household_id)
        self.submitted[(h.occurrence, member)] = "command"

    async def _partner_news_settled(self, deadline: float) -> None:
        members = {m for h in self.households for m in h.members}
        while True:
            self.ledger.update(self.sink.arrivals)
            if members <= set(self.ledger.partner_news):
                return
            assert time.monotonic() < deadline, f"{len(members - set(self.ledger.partner_news))} partners never told"
            await asyncio.sleep(0.5)

    # ---- counting -------------------------------------------------------------------------------------

    async def count(self) -> dict:
        counts = {key: len(arrivals) for key, arrivals in self.ledger.reminders.items()}
        assert self.killed_at is not None
        wave_a_after = sum(1 for key, h in self.expected.items() if h.wave == 0 and key in counts
                           and self.ledger.reminders[key][0].at > self.killed_at)
        conn = await asyncpg.connect(self._dsn("checkins"))
        try:
            rows = await conn.fetch("SELECT occurrence_id, member_id, count(*) AS n FROM checkins GROUP BY 1, 2")
        finally:
            await conn.close()
        recorded = {(r["occurrence_id"], r["member_id"]): r["n"] for r in rows}
        announced: dict[tuple[UUID, UUID], set[UUID]] = defaultdict(set)
        ours = {str(h.household_id).encode() for h in self.households}
        for record in await read_topic(self.stack.broker.bootstrap, Topic.CHECKINS_EVENTS.value):
            if record.key not in ours:  # only this test's households, before decoding anything
                continue
            event = parse(record.value)
            if event.type == "checkins.checkin_recorded":
                announced[(event.payload.occurrence_id, event.payload.member_id)].add(event.event_id)
        # Records per message type on every topic, for this test's households (docs/SCALING.md's broker load).
        per_type: Counter[str] = Counter()
        for topic in Topic:
            for record in await read_topic(self.stack.broker.bootstrap, topic.value, idle_s=1.0):
                if record.key in ours:
                    try:
                        event = parse(record.value)
                        per_type[event.type] += 1
                        if event.type == "notifications.notification_dropped":
                            per_type[f"  dropped: {event.payload.reason}"] += 1
                    except (ContractError, ValueError):
                        per_type[f"{topic.value}: not a message"] += 1
        notifier_2 = self.stack.services["notifier-2"]
        notifier_2_log = notifier_2.log.read_text().splitlines()
        # One INFO line per delivery round ("delivery round: 2 rows: 1 pending, 1 sent"); each outcome is at DEBUG.
        sent_by_2 = sum(int(m.group(1)) for line in notifier_2_log if "delivery round" in line
                        for m in re.finditer(r"(\d+) sent", line))
        commands_by = {name: self.stack.services[name].log.read_text().count("handled checkins.submit_checkin")
                       for name in ("checkins-1", "checkins-2")}
        return {
            "went_mid_burst": self.went_mid_burst,
            "arrived": sum(1 for key in self.expected if key in counts),
            "lost": [key for key in self.expected if key not in counts],
            "twice": [key for key, n in counts.items() if key in self.expected and n > 1],
            "unexpected": sum(n for key, n in counts.items() if key not in self.expected),
            "wave_a_after_the_kills": wave_a_after,
            "not_recorded": [key for key in self.submitted if recorded.get(key, 0) != 1],
            "recorded_unasked": [key for key in recorded if key not in self.submitted],
            "announced_not_once": [key for key in self.submitted if len(announced.get(key, ())) != 1],
            "partner_news_not_once": [m for h in self.households for m in h.members
                                      if len(self.ledger.partner_news.get(m, ())) != 1],
            "links_answered_by": dict(self.links_answered_by),
            "submitted_by": Counter(how.split(" via ")[0] for how in self.submitted.values()),
            "notifier_2_sent_before_stop": sent_by_2,
            "notifier_2_exit": notifier_2.process.poll(),
            "notifier_2_shutdown": any("shutdown complete" in line.lower() for line in notifier_2_log),
            "notifier_2_last_lines": [line[:200] for line in notifier_2_log[-3:]],
            "checkins_killed": self.checkins_killed_at is not None,
            "commands_handled_by": commands_by,
            "checkins_after_its_kill": sum(1 for key, how in self.submitted.items() if how.startswith("link")
                                           and self.checkin_times.get(key, 0) > (self.checkins_killed_at or 1e18)),
            "other_messages": len(self.ledger.other),
            "records_per_type": dict(sorted(per_type.items())),
            "app_2_handled_before_kill": self.app_2_handled_before_kill,
            "app_2_exit": self.stack.services["app-2"].process.poll(),
            "app_2_checkins_before_kill": self.app_2_checkins_before_kill,
            # CheckInRecorded handled by the two app instances together (above 72: redelivered after the kill).
            "app_checkins_handled": sum(self.stack.services[name].log.read_text().count(
                "handled checkins.checkin_recorded") for name in ("app-1", "app-2")),
            **await self._app_view(),
        }

    async def _app_view(self) -> dict:
        """The app's read model (its store, shared by both instances), once the survivor has caught up, and the
        "Today" page of a few households through the surviving app, signed in as the link's partner."""
        ours = {h.household_id for h in self.households}
        conn = await asyncpg.connect(self._dsn("app"))
        try:
            deadline = time.monotonic() + 180  # a failure guard: the group rebalances after the kill
            while True:
                checkins = await conn.fetch("SELECT occurrence_id, member_id, household_id, status, closeness "
                                            "FROM checkins")
                mine = [r for r in checkins if r["household_id"] in ours]
                if {(r["occurrence_id"], r["member_id"]) for r in mine} >= set(self.submitted) or (
                        time.monotonic() > deadline):
                    break
                await asyncio.sleep(1.0)
            occurrences = await conn.fetch("SELECT occurrence_id, household_id, ritual_id, scheduled_for "
                                           "FROM occurrences")
        finally:
            await conn.close()
        seen = {(r["occurrence_id"], r["member_id"]): r for r in mine}
        occurrences_of: dict[UUID, list] = defaultdict(list)
        for r in occurrences:
            if r["household_id"] in ours:
                occurrences_of[r["household_id"]].append((r["occurrence_id"], r["ritual_id"], r["scheduled_for"]))
        pages = await bounded(3, [self._today_page(h) for h in self._page_sample()])
        return {
            "app_missing_checkins": [key for key in self.submitted if key not in seen],
            "app_wrong_checkins": [key for key, how in self.submitted.items() if key in seen and (
                seen[key]["status"] != "done" or seen[key]["closeness"] != (5 if how == "command" else 4))],
            "app_checkins_unasked": [key for key in seen if key not in self.submitted],
            "app_occurrences_wrong": [h.index for h in self.households
                                      if occurrences_of[h.household_id] != [(h.occurrence, h.ritual_id, h.due)]],
            "app_pages_checked": len(pages),
            "app_pages_wrong": [page for page in pages if page["wrong"]],
        }

    def _page_sample(self) -> list[Household]:
        wave_a = [h for h in self.households if h.wave == 0]
        wave_b = [h for h in self.households if h.wave == 1]
        return wave_a[: APP_PAGES // 2] + wave_b[: APP_PAGES - APP_PAGES // 2]

    async def _today_page(self, h: Household) -> dict:
        """Signs in as the partner who used the link (the operator's sign-in tool, on the app's settings) and reads
        "Today" from app-1: one item, the ritual, "You kept it" once and the partner's "kept it" once."""
        member = h.members[0]
        tool = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "attune_app.signin", "--household", str(h.household_id), "--member", str(member),
            "--wait", "30", env=self.stack.app_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=self.stack.workdir)
        out, err = await tool.communicate()
        assert tool.returncode == 0, err.decode()[-2000:]
        path = "/join/" + out.decode().strip().rsplit("/join/", 1)[1]
        app = self.stack.url("app-1")
        # The cookies are Secure outside development; this client speaks plain HTTP, so it sends them itself.
        form = await self.http.get(f"{app}{path}")
        assert form.status_code == 200, (form.status_code, form.text[:300])
        browser = "; ".join(c.split(";", 1)[0] for c in form.headers.get_list("set-cookie"))
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text[:500]
        joined = await self.http.post(f"{app}{path}", headers={"Cookie": browser},
                                      data={"csrf": csrf.group(1), "your_name": f"A{h.index}"})
        assert joined.status_code in (302, 303), (joined.status_code, joined.text[:300])
        cookie = "; ".join([browser, *(c.split(";", 1)[0] for c in joined.headers.get_list("set-cookie"))])
        page = await self.http.get(f"{app}/today", headers={"Cookie": cookie})
        items = page.text.count('<li>\n  <strong>')
        kept = re.findall(r'<span class="kept">([^<]*)</span>', page.text)
        partner = f"B{h.index}"
        wrong = not (page.status_code == 200 and items == 1 and kept.count("You kept it") == 1
                     and kept.count(f"{partner} kept it") == 1 and len(kept) == 2)
        return {"household": h.index, "status": page.status_code, "items": items, "kept": kept, "wrong": wrong}

    def _dsn(self, service: str) -> str:
        return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{self.stack.database_of[service]}"

    async def close(self) -> None:
        if self._connected:
            await self.publisher.__aexit__(None, None, None)
        await self.http.aclose()


async def bounded(limit: int, coroutines: list) -> list:
    gate = asyncio.Semaphore(limit)

    async def one(coroutine):  # type: ignore[no-untyped-def]
        async with gate:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))
