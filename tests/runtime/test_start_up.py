"""Start-up is all or nothing: a service whose broker does not start exits non-zero instead of serving.

FastStream 0.7.8 told uvicorn "startup complete" after the on_startup hooks but before the broker started;
a broker start that failed then left a zombie (HTTP served, no consumer, never exits). Here the hooks
succeed and the broker is unreachable, so the old code served; a broker that comes up within the retry
window is joined; and /healthz fails once the broker stops under a serving app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import uvicorn
from attune_contracts import Topic
from attune_runtime.app import service_app
from attune_runtime.consumer import ConsumerMetrics, Readiness, subscribe
from attune_runtime.kafka import make_broker
from attune_runtime.settings import ServiceSettings
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually
from prometheus_client import CollectorRegistry

pytestmark = [pytest.mark.integration]


def _demo_app(bootstrap: str, group: str, events: list[str], *, timeout_s: float):
    registry = CollectorRegistry()
    broker = make_broker(ServiceSettings(kafka_bootstrap_servers=bootstrap), service="demo", registry=registry)
    readiness = Readiness()

    async def handler(envelope) -> None:
        pass

    subscribe(broker, Topic.SCHEDULER_COMMANDS, service="demo", group_id=group, handler=handler,
              metrics=ConsumerMetrics(registry), readiness=readiness, session_timeout_ms=6000)
    app = service_app(service="demo", broker=broker, registry=registry, readiness=readiness,
                      on_startup=[lambda: events.append("migrated")],
                      on_shutdown=[lambda: events.append("database closed")],
                      broker_start_timeout_s=timeout_s)
    return app, broker


async def test_broker_unreachable_after_hooks_fails_start_up_instead_of_serving(unique: str) -> None:
    events: list[str] = []
    app, broker = _demo_app(f"127.0.0.1:{free_port()}", f"demo-{unique}", events, timeout_s=2.0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    async def serve() -> int | str | None:
        try:
            await server.serve()
        except SystemExit as exit_:  # uvicorn exits the process when start-up fails
            return exit_.code
        return None

    serving = asyncio.create_task(serve())
    try:
        # The old code reported start-up complete and served for ever; now start-up gives up by itself.
        exit_code = await asyncio.wait_for(asyncio.shield(serving), timeout=45)
    except TimeoutError:
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code
        pytest.fail(f"still serving with no broker (a zombie): /healthz {health}, events {events}")
    finally:
        server.should_exit = True
        await serving
    assert exit_code == 3  # uvicorn's "Application startup failed. Exiting."
    assert not server.started
    assert events == ["migrated", "database closed"]  # the hooks ran, and what they opened was closed
    assert not broker.running


async def test_process_exits_non_zero_when_the_broker_never_starts(tmp_path: Path) -> None:
    (tmp_path / "zombie_demo.py").write_text(textwrap.dedent(f"""
        from prometheus_client import CollectorRegistry
        from attune_runtime.app import service_app
        from attune_runtime.consumer import Readiness
        from attune_runtime.kafka import make_broker
        from attune_runtime.settings import ServiceSettings

        registry = CollectorRegistry()
        broker = make_broker(ServiceSettings(kafka_bootstrap_servers="127.0.0.1:{free_port()}"), service="demo",
                             registry=registry)
        app = service_app(service="demo", broker=broker, registry=registry, readiness=Readiness(),
                          on_startup=[lambda: print("migrated", flush=True)], broker_start_timeout_s=2.0)
    """))
    env = {**os.environ, "PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "uvicorn", "zombie_demo:app", "--port", str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    output = run.stdout + run.stderr
    assert "migrated" in output
    assert run.returncode != 0, output
    assert "Application startup failed" in output
    assert "KAFKA_BOOTSTRAP_SERVERS" in output  # the log says what to check


async def test_broker_that_comes_up_within_the_window_is_joined_and_healthz_fails_when_it_stops(
    kafka_bootstrap: str, unique: str
) -> None:
    bootstrap_port = free_port()
    events: list[str] = []
    app, broker = _demo_app(f"127.0.0.1:{bootstrap_port}", f"demo-{unique}", events, timeout_s=60.0)
    target_host, target_port = kafka_bootstrap.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target_host, int(target_port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    proxy = None
    try:
        await asyncio.sleep(2.0)  # the broker is unreachable for the first attempts
        assert not server.started
        proxy = await asyncio.start_server(forward, "127.0.0.1", bootstrap_port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get("/readyz")).status_code == 200
                return False

            await eventually(ready, timeout=60)
            assert (await client.get("/healthz")).status_code == 200
            await broker.stop()  # the broker dies under a serving app: liveness must say so
            health = await client.get("/healthz")
            assert health.status_code == 503, health.text
    finally:
        server.should_exit = True
        await serving
        if proxy is not None:
            proxy.close()
    assert events == ["migrated", "database closed"]
