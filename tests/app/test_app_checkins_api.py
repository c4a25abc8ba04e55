"""The app's calls to the REAL check-ins HTTP API (in process): each person's check-in and moment go through with
the member credential the app signs, and the check-ins service records them for that member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from attune_app.adapters.migrate import upgrade as upgrade_app
from attune_app.adapters.upstream import HttpCheckins
from attune_app.bootstrap import build as build_app
from attune_app.handlers import make_handler
from attune_checkins.adapters.migrate import upgrade as upgrade_checkins
from attune_checkins.bootstrap import Checkins
from attune_checkins.bootstrap import build as build_checkins
from attune_checkins.config import Settings as CheckinsSettings
from attune_contracts import make_envelope, parse
from attune_contracts.messages import (
    CheckInRecorded,
    HouseholdKind,
    HouseholdRegistered,
    MemberRole,
    MemberUpserted,
    MomentLogged,
    RitualDue,
)
from attune_contracts.trust import sender_of

from .conftest import Browser, FakeCommands, settings_for, start_household

pytestmark = [pytest.mark.unit]


class Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def send_all(self, records: list[Any]) -> None:
        self.events += [parse(value).payload for _, _, value, _ in records]


@pytest.fixture
async def checkins(tmp_path: Path) -> AsyncIterator[tuple[Checkins, Sink]]:
    sink = Sink()
    parts = build_checkins(CheckinsSettings(environment="development", kafka_create_topics=False,
                                            database_url=f"sqlite+aiosqlite:///{tmp_path}/checkins.db",
                                            http_rate_per_s=1000, http_rate_burst=1000),
                           sink=sink, run_timer=False)
    await upgrade_checkins(parts.store.engine)
    parts.relay.start()
    try:
        yield parts, sink
    finally:
        await parts.relay.stop(drain_timeout=1)
        await parts.store.close()


async def test_check_in_and_moment_reach_the_checkins_service_as_that_member(
        checkins: tuple[Checkins, Sink], tmp_path: Path) -> None:
    from attune_runtime.testing import eventually

    service, sink = checkins
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    api = HttpCheckins("http://checkins.test", settings.issuer(), timeout_s=5, ttl=timedelta(minutes=5),
                       transport=httpx.ASGITransport(app=service.http))
    commands = FakeCommands()
    app = build_app(settings, commands=commands, checkins=api)
    await upgrade_app(app.store.engine)
    ana = Browser(app.http)
    try:
        assert (await start_household(ana, zone="UTC")).status_code == 303
        household_id, member = commands.sent[1]
        now = datetime.now(UTC)
        due = RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement",
                        title="Evening attunement", participants=[member.member_id], scheduled_for=now,
                        local_time=now.isoformat(), time_zone="UTC", sensitive=False, deadline=now + timedelta(hours=12))
        for fact in (HouseholdRegistered(name="Ana & Ben", time_zone="UTC", kind=HouseholdKind.COUPLE),
                     MemberUpserted(member_id=member.member_id, display_name="Ana", role=MemberRole.PARTNER,
                                    time_zone="UTC"), due):
            envelope = make_envelope(fact, household_id=household_id, producer=sender_of(fact))
            await service.service.handle(envelope)
            await make_handler(app.store)(envelope)
        response = await ana.submit("/today", "/checkins", {"occurrence_id": str(due.occurrence_id),
                                                            "status": "done", "closeness": "4", "note": "tea"})
        assert response.status_code == 303, response.text
        assert (await ana.submit("/today", "/moments", {"kind": "positive"})).status_code == 303

        def recorded() -> list[Any]:
            return [e for e in sink.events if isinstance(e, CheckInRecorded | MomentLogged)]

        found = await eventually(lambda: len(recorded()) >= 2, timeout=10) and recorded()
        checkin = next(e for e in found if isinstance(e, CheckInRecorded))
        assert (checkin.member_id, checkin.status.value, checkin.closeness, checkin.has_note) == (
            member.member_id, "done", 4, True)
        assert next(e for e in found if isinstance(e, MomentLogged)).member_id == member.member_id
    finally:
        await ana.close()
        await api.close()
        await app.store.close()
