"""The outbox: a check-in is committed with its events and answered at once; the relay publishes them after the
commit, in order, once, and keeps trying while the broker is away. Unit tests on SQLite; the broker outage
against a real Tansu; the relay's exclusivity and order with two instances on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from alembic import command
from attune_checkins.adapters.migrate import alembic_config
from attune_checkins.adapters.sql import NoteCipher, SqlStore, make_engine
from attune_checkins.bootstrap import build
from attune_checkins.config import Settings
from attune_checkins.metrics import Metrics
from attune_checkins.relay import OutboxRelay
from attune_checkins.usecases import CheckinsService
from attune_contracts import Topic, make_envelope, parse
from attune_contracts.credentials import development_issuer
from attune_contracts.links import LinkAction
from attune_contracts.messages import (
    CheckInRecorded,
    CheckInSource,
    CheckInStatus,
    HouseholdKind,
    HouseholdRegistered,
    LogMoment,
    MemberRole,
    MemberUpserted,
    MomentKind,
    MomentLogged,
    RitualDue,
    SubmitCheckIn,
)
from attune_contracts.trust import sender_of
from attune_runtime.retry import Backoff
from attune_runtime.tansu import _answers, binary, free_port
from attune_runtime.testing import FakeClock, eventually, temporary_database
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import inspect
from support.inprocess import read_topic

from .conftest import FERNET_KEY, KEYS, FakeSink, Harness, make_harness

# ---- unit: SQLite ---------------------------------------------------------------------------------------


async def _ready(h: Harness) -> RitualDue:
    await h.setup_household()
    due = h.due(uuid4(), datetime(2027, 3, 1, 1, 30, tzinfo=UTC))
    await h.send(due)
    h.clock.set(due.scheduled_for + timedelta(minutes=20))
    h.sink.clear()
    return due


def _submit(due: RitualDue, member: UUID) -> SubmitCheckIn:
    return SubmitCheckIn(occurrence_id=due.occurrence_id, member_id=member, status=CheckInStatus.DONE,
                         source=CheckInSource.API)


def _failing_commits(h: Harness) -> None:
    """Every unit of work fails as it commits, after the use case has done (and staged) everything."""
    start = h.service.uow

    @contextlib.asynccontextmanager
    async def failing() -> AsyncIterator[Any]:
        async with start() as uow:
            async def commit() -> None:
                raise ConnectionResetError("the database went away during the commit")

            uow.commit = commit
            yield uow

    h.service.uow = failing


@pytest.mark.unit
@pytest.mark.parametrize("path", ["http", "kafka"])
async def test_a_commit_that_fails_after_the_events_are_staged_publishes_nothing(harness: Harness,
                                                                                  path: str) -> None:
    h = harness
    due = await _ready(h)
    _failing_commits(h)

    with pytest.raises(ConnectionResetError):
        if path == "http":
            await h.service.submit(h.household, _submit(due, h.ana))
        else:
            await h.check_in(due, h.ana)

    await h.relay.relay_once()
    assert h.sink.published == []  # the partner hears nothing of a check-in that was not kept
    assert await h.count("checkins") == 0 and await h.count("checkins_outbox") == 0


@pytest.mark.unit
async def test_check_ins_are_kept_while_the_broker_is_down_and_a_restarted_relay_sends_each_once(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    due = await _ready(h)
    h.sink.down = True

    first = await h.service.submit(h.household, _submit(due, h.ana))
    await h.service.submit(h.household, _submit(due, h.ben))
    await h.service.log_moment(h.household, LogMoment(moment_id=uuid4(), member_id=h.ana, kind=MomentKind.POSITIVE))

    assert first.checkin.status is CheckInStatus.DONE and await h.count("checkins") == 2
    waiting = await h.count("checkins_outbox")
    assert waiting == 4 and h.sink.published == []  # 2 CheckInRecorded, 1 StreakUpdated, 1 MomentLogged

    # The process dies; a new one (its own store, relay and producer) finds the rows and sends them.
    store = SqlStore(make_engine(f"sqlite+aiosqlite:///{tmp_path}/checkins.db"), NoteCipher([FERNET_KEY]))
    sink = FakeSink()
    relay = OutboxRelay(store, sink, Metrics(CollectorRegistry()), h.clock)
    try:
        assert await relay.relay_once() == 4
        assert await relay.relay_once() == 0
    finally:
        await store.close()
    h.sink.down = False
    assert await h.relay.relay_once() == 0  # nothing is left for the old one to send again

    assert sink.types() == ["CheckInRecorded", "StreakUpdated", "CheckInRecorded", "MomentLogged"]
    assert len(set(sink.event_ids())) == 4
    assert [r.member_id for r in sink.of(CheckInRecorded)] == [h.ana, h.ben]
    assert await h.count("checkins_outbox") == 0


@pytest.mark.unit
async def test_a_relay_that_dies_between_the_ack_and_the_delete_sends_the_same_event_ids_again(
        harness: Harness) -> None:
    h = harness
    due = await _ready(h)
    h.sink.down = True
    await h.service.submit(h.household, _submit(due, h.ana))
    h.sink.down = False
    real_delete = h.store.delete_outbox

    async def crash(ids: Any) -> None:
        raise ConnectionResetError("killed before the delete")

    h.store.delete_outbox = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await h.relay.relay_once()
    first = h.sink.event_ids()
    h.store.delete_outbox = real_delete  # type: ignore[method-assign]

    assert await h.relay.relay_once() == 2
    assert h.sink.event_ids() == first + first  # at least once, with ids consumers dedupe on
    assert await h.count("checkins_outbox") == 0


def _gauge(h: Harness, name: str) -> float:
    return h.registry.get_sample_value(name) or 0.0


@pytest.mark.unit
async def test_the_relay_backs_off_while_the_broker_is_down_and_publishes_when_it_is_back(harness: Harness) -> None:
    h = harness
    due = await _ready(h)
    relay = OutboxRelay(h.store, h.sink, Metrics(CollectorRegistry()), h.clock,
                        backoff=Backoff(base_s=0.01, max_s=0.05), poll_s=0.05)
    relay.metrics = h.service.metrics  # the harness registry, to read the gauges
    relay.metrics.outbox_oldest_age.set_function(relay._oldest_age)
    relay.metrics_interval_s = 0.02
    h.service.on_commit = relay.wake
    h.sink.down = True
    relay.start()
    try:
        await h.service.submit(h.household, _submit(due, h.ana))
        await eventually(lambda: relay.failures >= 3, timeout=10)
        await eventually(lambda: _gauge(h, "attune_checkins_outbox_pending") == 2, timeout=10)
        h.clock.advance(seconds=90)
        assert _gauge(h, "attune_checkins_outbox_oldest_age_seconds") == pytest.approx(90)
        assert _gauge(h, "attune_checkins_outbox_relay_failures_total") >= 3
        assert h.sink.published == []

        h.sink.down = False
        await eventually(lambda: len(h.sink.published) == 2, timeout=10)
        await eventually(lambda: _gauge(h, "attune_checkins_outbox_pending") == 0, timeout=10)
        assert _gauge(h, "attune_checkins_outbox_oldest_age_seconds") == 0
        assert _gauge(h, "attune_checkins_outbox_published_total") == 2
    finally:
        await relay.stop(drain_timeout=1)
    assert h.sink.types() == ["CheckInRecorded", "StreakUpdated"]


async def _alembic(store: SqlStore, action: Callable[..., None], revision: str) -> None:
    def run(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        action(config, revision)

    async with store.engine.begin() as conn:
        await conn.run_sync(run)


async def _tables(store: SqlStore) -> set[str]:
    async with store.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def test_the_outbox_migration_goes_up_and_down(backend: str, tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = (f"sqlite+aiosqlite:///{tmp_path}/migrate.db" if backend == "sqlite"
               else await stack.enter_async_context(temporary_database()))
        store = SqlStore(make_engine(url), NoteCipher([FERNET_KEY]))
        try:
            await _alembic(store, command.upgrade, "0001")
            assert "checkins" in await _tables(store) and "checkins_outbox" not in await _tables(store)
            await _alembic(store, command.upgrade, "head")
            assert "checkins_outbox" in await _tables(store)
            household = uuid4()
            async with store.unit_of_work() as uow:
                await uow.outbox.add([{"event_id": uuid4(), "household_id": household, "topic": "t", "event_type": "e",
                                   "body": "{}", "headers": {"a": "b"}, "created_at": datetime.now(UTC)}])
            [row] = await store.outbox_rows(10)
            assert (row.household_id, row.value, row.headers) == (household, b"{}", {"a": "b"})
            await _alembic(store, command.downgrade, "0001")
            assert "checkins_outbox" not in await _tables(store)
            await _alembic(store, command.upgrade, "head")
            assert await store.outbox_stats() == (0, None)
        finally:
            await store.close()


# ---- integration: the real broker, stopped and started again ------------------------------------------


def _envelope(payload: Any, household: UUID) -> Any:
    return make_envelope(payload, household_id=household, producer=sender_of(payload))


class BrokerLine:
    """A TCP proxy in front of a Tansu that advertises the proxy's address, so every connection a client
    makes goes through it: `cut()` makes the broker unreachable (connections dropped, new ones refused),
    `restore()` brings it back with its topics and data intact."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, self.broker_port = free_port(), free_port()
        self.tmp_path = tmp_path
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        await self.restore()
        await eventually(lambda: asyncio.to_thread(_answers, self.port), timeout=20)  # through the proxy

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.pipes):
            writer.close()
        await self.server.wait_closed()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.cut()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:
            client_w.close()
            return
        self.pipes |= {client_w, broker_w}

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            writer.close()
            self.pipes.discard(writer)

        await asyncio.gather(copy(client_r, broker_w), copy(broker_r, client_w))


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_with_the_broker_down_a_check_in_and_a_tap_are_answered_at_once_and_announced_once_it_is_back(
        backend: str, tmp_path: Path) -> None:
    line = BrokerLine(tmp_path)
    await line.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(line.stop)
        url = (f"sqlite+aiosqlite:///{tmp_path}/outage.db" if backend == "sqlite"
               else await stack.enter_async_context(temporary_database()))
        settings = Settings(environment="development",
            kafka_bootstrap_servers=line.bootstrap, database_url=url, notes_key=SecretStr(FERNET_KEY.decode()),
            link_keys=SecretStr(",".join(f"{k}:{v}" for k, v in KEYS.items())), link_current_kid="k1",
            outbox_max_backoff_s=0.5, outbox_poll_s=0.2,
        )
        parts = build(settings, run_timer=False)
        await parts.prepare()  # migrations, topics
        await parts.start_timer()  # the relay (no consumer needed: the facts are handed to the service)
        stack.push_async_callback(parts.close)
        stack.push_async_callback(parts.stop_timer)

        household, ana, ben, zone = uuid4(), uuid4(), uuid4(), "Europe/Lisbon"
        now = datetime.now(UTC)
        due = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement", title="Evening",
                        participants=[ana, ben], scheduled_for=now - timedelta(minutes=5), local_time="20:30",
                        time_zone=zone, sensitive=False, deadline=now + timedelta(hours=12))
        await parts.service.handle(_envelope(HouseholdRegistered(name="A & B", time_zone=zone,
                                                                 kind=HouseholdKind.COUPLE), household))
        for member in (ana, ben):
            await parts.service.handle(_envelope(MemberUpserted(member_id=member, display_name="x",
                                                                role=MemberRole.PARTNER, time_zone=zone), household))
        await parts.service.handle(_envelope(due, household))
        token = parts.signer.mint(household_id=household, occurrence_id=due.occurrence_id, member_id=ben,
                                  action=LinkAction.DONE, now=now, ttl=timedelta(hours=36))
        headers = {"Authorization": f"Bearer {development_issuer().household(household, now=now)}"}

        await line.cut()  # the relay's producer is connected, and now cannot reach the broker
        transport = httpx.ASGITransport(app=parts.http)
        async with httpx.AsyncClient(transport=transport, base_url="http://checkins") as client:
            async with asyncio.timeout(5):  # it used to wait ~40 s for the producer
                api = await client.post(f"/v1/households/{household}/checkins", headers=headers, json={
                    "occurrence_id": str(due.occurrence_id), "member_id": str(ana), "status": "done"})
                tap = await client.post(f"/l/{token}", content=b"closeness=5",
                                        headers={"content-type": "application/x-www-form-urlencoded"})
        assert api.status_code == 201 and tap.status_code == 200 and "Recorded" in tap.text
        history, total = await parts.service.history(household, page=1, page_size=10)
        assert total == 2 and {c.member_id for c in history} == {ana, ben}
        ids = {c.checkin_id for c in history}
        await asyncio.sleep(2)  # the relay keeps trying meanwhile
        assert (await parts.store.outbox_stats())[0] == 3  # 2 CheckInRecorded, 1 StreakUpdated: still there
        await eventually(lambda: parts.registry.get_sample_value("attune_checkins_outbox_pending") == 3, timeout=10)

        await line.restore()

        def both_announced(found: list[Any]) -> bool:
            return {e.payload.checkin_id for e in found if isinstance(e.payload, CheckInRecorded)} == ids

        await read_topic(line.bootstrap, Topic.CHECKINS_EVENTS, keep=parse, until=both_announced, timeout=90)
        await eventually(_outbox_empty(parts.store), timeout=30)
        await asyncio.sleep(1)  # anything sent twice would be there by now
        found = await read_topic(line.bootstrap, Topic.CHECKINS_EVENTS, keep=parse, until=both_announced, timeout=30)
        recorded = [e for e in found if isinstance(e.payload, CheckInRecorded)]
        assert sorted(e.payload.checkin_id for e in recorded) == sorted(ids)  # exactly once each
        assert len({e.event_id for e in found}) == len(found)


def _outbox_empty(store: SqlStore) -> Callable[[], Any]:
    async def check() -> bool:
        return (await store.outbox_stats())[0] == 0

    return check


# ---- integration: two instances' relays on PostgreSQL ---------------------------------------------------


class SharedSink:
    """What reaches "the broker" from every instance, in the order it arrived."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def of(self, instance: str) -> Any:
        sink = self

        class One:
            async def send_all(self, records: list[Any]) -> None:
                for _, _, value, _ in records:
                    sink.sent.append((instance, parse(value)))
                    await asyncio.sleep(0)  # interleave with the other instance, were it sending too

        return One()


@pytest.mark.integration
async def test_two_instances_relays_send_each_event_once_in_each_households_order(pg_url: str) -> None:
    clock = FakeClock(datetime.now(UTC))
    shared = SharedSink()
    instances = []
    for name in ("a", "b"):
        store = SqlStore(make_engine(pg_url), NoteCipher([FERNET_KEY]))
        metrics = Metrics(CollectorRegistry())
        relay = OutboxRelay(store, shared.of(name), metrics, clock, batch_size=7, poll_s=0.05)
        service = CheckinsService(store.unit_of_work, clock, metrics, on_commit=relay.wake)
        instances.append((service, relay, store))
    setup = await make_harness(pg_url, clock.now())  # migrates; its own store for the set-up facts
    households = {uuid4(): uuid4() for _ in range(4)}  # household -> member
    for household, member in households.items():
        await setup.service.handle(_envelope(HouseholdRegistered(name="h", time_zone="UTC",
                                                                 kind=HouseholdKind.COUPLE), household))
        await setup.service.handle(_envelope(MemberUpserted(member_id=member, display_name="m",
                                                            role=MemberRole.PARTNER, time_zone="UTC"), household))
    await setup.relay.relay_once()
    shared.sent.clear()
    for _, relay, _ in instances:
        relay.start()
    written: dict[UUID, list[UUID]] = {h: [] for h in households}

    async def writer(household: UUID, member: UUID) -> None:
        for n in range(30):
            moment_id = uuid4()
            service = instances[n % 2][0]  # alternate between the instances
            await service.log_moment(household, LogMoment(moment_id=moment_id, member_id=member,
                                                          kind=MomentKind.POSITIVE))
            written[household].append(moment_id)

    try:
        await asyncio.gather(*(writer(h, m) for h, m in households.items()))
        await eventually(lambda: sum(isinstance(e.payload, MomentLogged) for _, e in shared.sent) >= 120,
                         timeout=30)
        for _, relay, _ in instances:
            await relay.stop(drain_timeout=2)
    finally:
        for _, relay, store in instances:
            await relay.stop(drain_timeout=0)
            await store.close()
        await setup.store.close()

    moments = [e for _, e in shared.sent if isinstance(e.payload, MomentLogged)]
    assert len(moments) == 120 and len({e.event_id for e in moments}) == 120  # each once
    for household in households:
        sent = [e.payload.moment_id for e in moments if e.household_id == household]
        assert sent == written[household]  # in the order they were committed
