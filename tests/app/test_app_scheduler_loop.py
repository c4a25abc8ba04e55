"""The whole loop with the real scheduler: the app's commands go over the real broker to the scheduler, whose
facts come back to the app's read model and show on the person's pages (PostgreSQL for both)."""

from __future__ import annotations

import asyncio
import html
from uuid import uuid4

import httpx
import pytest
import uvicorn
from attune_app.bootstrap import build
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually, temporary_database
from attune_scheduler.bootstrap import build_app as build_scheduler
from attune_scheduler.config import SchedulerSettings
from prometheus_client import CollectorRegistry

from .conftest import Browser, FakeCheckins, settings_for, start_household

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_the_scheduler_confirms_what_the_app_asked_for(kafka_bootstrap: str, pg_url: str, unique: str) -> None:
    async with temporary_database() as scheduler_db:
        port = free_port()
        scheduler = build_scheduler(SchedulerSettings(
            environment="development", kafka_bootstrap_servers=kafka_bootstrap, http_port=port,
            database_url=scheduler_db, group_id=f"attune-scheduler-{unique}", kafka_session_timeout_ms=6000,
            relay_poll_s=0.1, retry_base_delay_s=0.05, retry_max_delay_s=0.1), registry=CollectorRegistry())
        server = uvicorn.Server(uvicorn.Config(scheduler, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        # One at a time: Alembic's context is process-global, two upgrades interleaved in one process clash.
        async def scheduler_ready() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(scheduler_ready, timeout=90, interval=0.2)
        app = build(settings_for(pg_url, kafka_bootstrap_servers=kafka_bootstrap, kafka_session_timeout_ms=6000)
                    .model_copy(update={"kafka_create_topics": True}),
                    checkins=FakeCheckins(), group_id=f"attune-app-{uuid4().hex[:8]}")
        await app.start()
        ana = Browser(app.http)
        try:
            async def ready() -> bool:
                return bool((await app.readiness.status())["ready"])

            await eventually(ready, timeout=90, interval=0.2)
            assert (await start_household(ana, name="Ana & Ben", you="Ana", zone="Europe/Lisbon")).status_code == 303

            async def confirmed() -> bool:
                text = (await ana.get("/household")).text
                return "Still being set up" not in text and "joining" not in text

            await eventually(confirmed, timeout=60, interval=0.2)

            response = await ana.submit("/rituals", "/rituals", {"template": "date_night", "days": ["FR"],
                                                                 "local_time": "19:30"})
            assert response.status_code == 303

            async def scheduled() -> str | None:
                mine = html.unescape((await ana.get("/rituals")).text).split("Choose a ritual")[0]
                return mine if "Date night" in mine and ">On<" in mine.replace("\n", "") else None

            page = await eventually(scheduled, timeout=60, interval=0.2)
            assert "every Fri at 19:30" in page
        finally:
            await ana.close()
            await app.stop()
            server.should_exit = True
            await serving
