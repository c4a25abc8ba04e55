"""The whole service against the real broker (Tansu) and PostgreSQL: commands in, facts and occurrences out."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any, Self

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from attune_contracts import AttunePublisher, Topic, parse
from attune_contracts.messages import DeadLetter, MemberRole, RegisterHousehold, UpsertMember
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually
from attune_scheduler.bootstrap import build_app
from attune_scheduler.config import SchedulerSettings
from attune_scheduler.recurrence import occurrence_id
from prometheus_client import CollectorRegistry

from .clock import FakeClock
from .helpers import schedule

pytestmark = [pytest.mark.integration]


class Collector:
    """Reads the scheduler's output topics (and the dead letters) for one household."""

    def __init__(self, bootstrap: str, household: uuid.UUID) -> None:
        self.household = household
        self.events: list[Any] = []
        self.dead: list[DeadLetter] = []
        self.consumer = AIOKafkaConsumer(
            Topic.SCHEDULER_EVENTS.value, Topic.RITUAL_OCCURRENCES.value, Topic.DEAD_LETTER.value,
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"collector-{uuid.uuid4().hex[:8]}",
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    # The suite shares one broker: other tests' records (hostile JSON among them) are skipped
                    # before decoding, so one of them cannot end this reader.
                    if record.topic == Topic.DEAD_LETTER.value:
                        if record.key == str(self.household).encode():
                            self.dead.append(DeadLetter.model_validate_json(record.value))
                        continue
                    if str(self.household).encode() not in record.value:
                        continue
                    envelope = parse(record.value)
                    if envelope.household_id == self.household:
                        self.events.append(envelope)

    def of(self, type_: str) -> list[Any]:
        if self._task is not None and self._task.done():
            self._task.result()  # the reader stopped: say why instead of waiting out the timeout
        return [e for e in self.events if e.type == type_]


async def test_commands_in_facts_and_occurrences_out(kafka_bootstrap: str, pg_url: str, unique: str) -> None:
    port = free_port()
    settings = SchedulerSettings(
        environment="development", kafka_bootstrap_servers=kafka_bootstrap, http_port=port, database_url=pg_url,
        group_id=f"attune-scheduler-{unique}", kafka_session_timeout_ms=6000, relay_poll_s=0.1,
        metrics_refresh_s=0.2, retry_base_delay_s=0.05, retry_max_delay_s=0.1,
    )
    clock = FakeClock(datetime(2027, 3, 13, 12, 0, tzinfo=UTC))
    app = build_app(settings, clock=clock, registry=CollectorRegistry())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    household, ana, ben, ritual = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.ConnectError:
                    return False

            await eventually(ready, timeout=60, interval=0.1)
            assert (await client.get("/healthz")).json()["status"] == "ok"

            async with Collector(kafka_bootstrap, household) as seen, \
                    AttunePublisher.connect(kafka_bootstrap, producer="attune-cli") as publisher:
                # Contract-invalid: an unknown zone never reaches the handler; it is dead-lettered with the
                # reason, and the sender is answered with a rejection saying the same.
                invalid_id = uuid.uuid4()
                raw = json.dumps({
                    "event_id": str(invalid_id), "type": "scheduler.register_household", "version": 1,
                    "occurred_at": "2027-03-13T12:00:00Z", "producer": "test", "correlation_id": "c1",
                    "household_id": str(household),
                    "payload": {"name": "Ana & Ben", "time_zone": "Mars/Olympus_Mons", "kind": "couple"},
                }).encode()
                folder_id = uuid.uuid4()  # a folder of the zone database, not a zone: an OSError before
                folder = raw.replace(str(invalid_id).encode(), str(folder_id).encode()).replace(
                    b"Mars/Olympus_Mons", b"America")
                producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
                await producer.start()
                try:
                    await producer.send_and_wait(Topic.SCHEDULER_COMMANDS.value, raw, key=str(household).encode())
                    await producer.send_and_wait(Topic.SCHEDULER_COMMANDS.value, folder, key=str(household).encode())
                finally:
                    await producer.stop()

                await publisher.publish(RegisterHousehold(name="Ana & Ben", time_zone="America/New_York"),
                                        household_id=household)
                for person, name in ((ana, "Ana"), (ben, "Ben")):
                    await publisher.publish(UpsertMember(member_id=person, display_name=name,
                                                         role=MemberRole.PARTNER), household_id=household)
                bad = await publisher.publish(
                    schedule(uuid.uuid4(), [ana, ben], rrule="FREQ=SECONDLY"), household_id=household)
                twice = await publisher.publish(
                    schedule(uuid.uuid4(), [ana, ben], rrule="FREQ=DAILY;BYHOUR=1,2,3,4,5,6"), household_id=household)
                # Permanent errors: answered at once, never retried nor dead-lettered as handler_failed.
                nul = await publisher.publish(UpsertMember(member_id=uuid.uuid4(), display_name="Cleo\x00"),
                                              household_id=household)
                far = await publisher.publish(schedule(uuid.uuid4(), [ana, ben], start=date(9999, 12, 31)),
                                              household_id=household)
                issue = await publisher.publish(schedule(
                    uuid.uuid4(), [ana, ben], rrule="FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=999999999", start=date(1, 1, 1),
                    reminder_offsets_minutes=[1, 60, 240, 1440, 10080]), household_id=household)
                good = await publisher.publish(
                    schedule(ritual, [ana, ben], at="02:30", start=date(2027, 3, 13)), household_id=household)
                await publisher.publish_envelope(good)  # redelivered: changes nothing

                await eventually(lambda: seen.of("scheduler.ritual_scheduled") and len(seen.dead) >= 2
                                 and len(seen.of("scheduler.command_rejected")) >= 7, timeout=90)  # a guard, not a target
                rejected = {r.payload.command_event_id: r.payload.reason for r in seen.of("scheduler.command_rejected")}
                assert "display_name contains a NUL character" in rejected[nul.event_id]
                assert "start_date 9999-12-31 is too far from today" in rejected[far.event_id]
                assert "start_date 0001-01-01 is too far from today" in rejected[issue.event_id]
                assert "unknown IANA time zone 'America'" in rejected[folder_id]
                assert {d.error_kind for d in seen.dead} == {"invalid"}
                assert "too frequent" in rejected[bad.event_id]
                assert "at most 4 times a day" in rejected[twice.event_id]
                assert "unknown IANA time zone 'Mars/Olympus_Mons'" in seen.dead[0].reason
                assert "unknown IANA time zone 'Mars/Olympus_Mons'" in rejected[invalid_id]
                answer = next(r for r in seen.of("scheduler.command_rejected") if r.payload.command_event_id == invalid_id)
                assert answer.correlation_id == "c1" and answer.payload.command_type == "scheduler.register_household"
                assert len(seen.of("scheduler.ritual_scheduled")) == 1
                scheduled = seen.of("scheduler.ritual_scheduled")[0]
                assert scheduled.correlation_id == good.correlation_id
                assert scheduled.payload.next_due_at == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)

                clock.set(datetime(2027, 3, 14, 7, 30, tzinfo=UTC))  # the spring-forward morning
                await eventually(lambda: seen.of("ritual.due"), timeout=30)
                await asyncio.sleep(0.5)
                (due,) = seen.of("ritual.due")
                assert due.event_id == due.payload.occurrence_id == occurrence_id(ritual, clock.now())
                assert due.payload.local_time == "2027-03-14T03:30:00-04:00"
                assert due.key == str(household).encode()

            async def metrics_show_it() -> str | None:
                text = (await client.get("/metrics")).text
                ok = ('attune_scheduler_occurrences_fired_total{template="evening_attunement"} 1.0' in text
                      and 'attune_scheduler_active_rituals{template="evening_attunement"}' in text
                      and "attune_scheduler_fire_lag_seconds_count 1.0" in text
                      and "attune_scheduler_outbox_backlog 0.0" in text)
                return text if ok else None

            text = await eventually(metrics_show_it, timeout=20, interval=0.2)
            assert 'attune_scheduler_commands_total{outcome="rejected",type="scheduler.schedule_ritual"} 4.0' in text
            assert 'attune_scheduler_commands_total{outcome="duplicate",type="scheduler.schedule_ritual"} 1.0' in text
            assert (await client.get("/readyz")).status_code == 200  # still serving after bad input
    finally:
        server.should_exit = True
        await serving


async def test_python_m_attune_scheduler_serves_health_and_metrics(kafka_bootstrap: str, tmp_path: Any) -> None:
    """The exact command compose and the e2e tests run, as a separate process."""
    import os
    import signal
    import sys

    port = free_port()
    env = {**os.environ, "ATTUNE_SCHEDULER_ENVIRONMENT": "development",
           "ATTUNE_SCHEDULER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "ATTUNE_SCHEDULER_HTTP_PORT": str(port),
           "ATTUNE_SCHEDULER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/scheduler.db",
           "ATTUNE_SCHEDULER_GROUP_ID": f"attune-scheduler-{uuid.uuid4().hex[:8]}",
           "ATTUNE_SCHEDULER_KAFKA_SESSION_TIMEOUT_MS": "6000"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "attune_scheduler", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async def ready() -> bool:
                if process.returncode is not None:
                    assert process.stderr is not None
                    tail = (await process.stderr.read()).decode()[-3000:]
                    raise AssertionError(f"scheduler exited with {process.returncode}: {tail}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.ConnectError:
                    return False

            await eventually(ready, timeout=60, interval=0.2)
            assert (await client.get("/healthz")).json() == {"status": "ok", "service": "scheduler"}
            text = (await client.get("/metrics")).text
            assert "attune_scheduler_outbox_backlog" in text and "attune_scheduler_fire_lag_seconds" in text
        assert (tmp_path / "scheduler.db").exists()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
    # uvicorn re-raises the signal after a clean shutdown, so "terminated by SIGTERM" is the orderly exit.
    assert process.returncode in (0, -signal.SIGTERM), (await process.stderr.read()).decode()[-2000:]
