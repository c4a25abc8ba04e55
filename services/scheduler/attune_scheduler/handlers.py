"""Thin Kafka entry point: every scheduler command goes to the Scheduler (which decides and records)."""

from __future__ import annotations

from typing import Any

from attune_contracts import Envelope, Topic, all_specs
from attune_runtime.consumer import Handler

from .scheduler import Scheduler

COMMAND_TYPES = frozenset(s.type for s in all_specs() if s.topic is Topic.SCHEDULER_COMMANDS)


def command_handler(scheduler: Scheduler) -> Handler:
    async def handle(envelope: Envelope[Any]) -> None:
        await scheduler.handle(envelope)

    return handle
