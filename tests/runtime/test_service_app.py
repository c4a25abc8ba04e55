"""One ASGI app per service: health at once, ready only after the group joined, metrics, the service's API."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import uvicorn
from attune_contracts import Topic
from attune_runtime.app import service_app
from attune_runtime.consumer import ConsumerMetrics, Readiness, subscribe
from attune_runtime.kafka import ensure_topics, make_broker
from attune_runtime.settings import ServiceSettings
from attune_runtime.tansu import free_port
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

pytestmark = [pytest.mark.integration]


async def test_health_ready_metrics_and_api(kafka_bootstrap: str, unique: str) -> None:
    port = free_port()
    settings = ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap, http_port=port)
    registry = CollectorRegistry()
    broker = make_broker(settings, service="demo", registry=registry)
    readiness = Readiness()
    handled: list[str] = []

    async def handler(envelope) -> None:
        handled.append(envelope.type)

    subscribe(broker, Topic.SCHEDULER_COMMANDS, service="demo", group_id=f"demo-{unique}", handler=handler,
              metrics=ConsumerMetrics(registry), readiness=readiness, session_timeout_ms=6000)
    api = FastAPI()

    @api.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app = service_app(service="demo", broker=broker, registry=registry, readiness=readiness,
                      on_startup=[lambda: ensure_topics(settings)], http_app=api)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                await asyncio.sleep(0.05)
                try:
                    ready = await client.get("/readyz")
                except httpx.ConnectError:
                    continue
                if ready.status_code == 503:
                    assert ready.json()["ready"] is False
                if ready.status_code == 200:
                    break
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"service": "demo", "ready": True, "waiting_for_groups": [], "failed_checks": [],
                                    "waiting_for": {}, "broker_connected": True}
            assert (await client.get("/healthz")).json() == {"status": "ok", "service": "demo"}
            assert (await client.get("/hello")).json() == {"hello": "world"}
            metrics = (await client.get("/metrics")).text
            assert "faststream_received_messages_total" in metrics
            caught_up = (f'attune_consumer_lag{{group="demo-{unique}",partition="0",service="demo",'
                         'topic="attune.scheduler.commands"} 0.0')
            # Lag is sampled every few seconds once partitions are assigned, and the suite's shared broker may
            # hold other tests' records on the topic: wait for the sample that shows partition 0 caught up.
            for _ in range(300):
                if caught_up in metrics:
                    break
                await asyncio.sleep(0.1)
                metrics = (await client.get("/metrics")).text
            assert caught_up in metrics
            assert (await client.get("/nope")).status_code == 404
    finally:
        server.should_exit = True
        await serving
