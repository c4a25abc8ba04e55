"""A batch handled in one go still logs one "handled <type>" line per message, with that message's ids and
correlation id, as the one-by-one path does: an operator follows a correlation id across services."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

import pytest
from attune_contracts import make_envelope
from attune_contracts.messages import NotificationRequested
from attune_runtime.batch import BatchConsumer
from attune_runtime.consumer import ConsumerMetrics, ReliableConsumer
from attune_runtime.logs import JsonFormatter
from attune_runtime.testing import KafkaRecord as Record
from prometheus_client import CollectorRegistry

pytestmark = [pytest.mark.unit]


async def test_each_message_of_a_handled_batch_is_logged_with_its_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("notifier"))
    logger = logging.getLogger("attune.consumer")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    handled: list[list[Any]] = []

    async def handle_batch(envelopes: list[Any]) -> None:
        handled.append(envelopes)

    async def one(envelope: Any) -> None:
        raise AssertionError("a batch that succeeds is not handled one by one")

    reliable = ReliableConsumer(None, service="notifier", group_id="g",  # type: ignore[arg-type]
                                handler=one, metrics=ConsumerMetrics(CollectorRegistry()))
    envelopes = [make_envelope(NotificationRequested(member_id=uuid.uuid4(), purpose="test.log", title="t",
                                                     body=f"b{n}"),
                               household_id=uuid.uuid4(), producer="calendar-sync", correlation_id=f"corr-{n}")
                 for n in range(3)]
    try:
        await BatchConsumer(reliable, handle_batch)([Record(e.to_bytes(), n) for n, e in enumerate(envelopes)])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    assert [len(batch) for batch in handled] == [3]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["msg"], line["correlation_id"], line["event_id"]) for line in lines] == [
        (f"handled {e.type}", f"corr-{n}", str(e.event_id)) for n, e in enumerate(envelopes)]
