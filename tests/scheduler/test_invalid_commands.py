"""A command that fails its contract, or that the consumer rejects as permanently wrong, is answered.

The consumer dead-letters it and calls the scheduler's `on_invalid` hook with the reason; the hook publishes a
SchedulerCommandRejected its sender reads. These tests run that path as the consumer does: `parse` the raw
record, then the hook with the ContractError's reason (or with the reason of a PermanentError/DataError).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from attune_contracts import ContractError, Publisher, Topic, parse
from attune_runtime.testing import KafkaRecord
from attune_scheduler.consumer import invalid_command_handler

pytestmark = [pytest.mark.unit]


class Sent:
    """A Publisher's send function that records what it was given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []

    async def __call__(self, topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
        self.messages.append((topic, value, headers))

    def rejections(self) -> list[Any]:
        return [parse(value) for topic, value, _ in self.messages if topic == Topic.SCHEDULER_EVENTS.value]


def register(zone_name: str, *, event_id: uuid.UUID, correlation_id: str = "c-1") -> bytes:
    return json.dumps({
        "event_id": str(event_id), "type": "scheduler.register_household", "version": 1,
        "occurred_at": "2027-03-13T12:00:00Z", "producer": "test", "correlation_id": correlation_id,
        "household_id": str(uuid.uuid4()), "payload": {"name": "Ana & Ben", "time_zone": zone_name},
    }).encode()


@pytest.mark.parametrize(("zone_name", "words"), [
    ("America", "unknown IANA time zone 'America'"),        # a folder of zones: was an OSError, never answered
    ("Etc", "unknown IANA time zone 'Etc'"),
    ("Etc/GMT+99", "unknown IANA time zone 'Etc/GMT+99'"),
    ("Mars/Olympus_Mons", "unknown IANA time zone"),
    ("../../etc/passwd", "is not an IANA time zone name"),
    ("posixrules", "is not an IANA time zone name"),
    ("Europe/" + "x" * 100_000, "at most 64 characters"),
    ("", "at least 1 character"),
])
async def test_a_hostile_time_zone_is_answered_with_a_rejection_saying_why(zone_name: str, words: str) -> None:
    event_id = uuid.uuid4()
    raw = register(zone_name, event_id=event_id)
    with pytest.raises(ContractError) as invalid:
        parse(raw)
    sent = Sent()
    await invalid_command_handler(Publisher(sent, producer="scheduler"))(
        KafkaRecord(value=raw, offset=7, topic=Topic.SCHEDULER_COMMANDS.value), invalid.value.reason)
    (answer,) = sent.rejections()
    assert answer.payload.command_event_id == event_id
    assert answer.payload.command_type == "scheduler.register_household"
    assert words in answer.payload.reason and len(answer.payload.reason) <= 2000
    assert "site-packages" not in answer.payload.reason  # no file paths from the zone database
    assert answer.correlation_id == "c-1"


async def test_a_permanent_error_answer_leaves_a_nul_out_of_its_correlation_id() -> None:
    # What the consumer does with a PermanentError or a DataError (e.g. a NUL the screen did not catch).
    event_id = uuid.uuid4()
    raw = register("Europe/London", event_id=event_id, correlation_id="c-\u0000-2")
    sent = Sent()
    await invalid_command_handler(Publisher(sent, producer="scheduler"))(
        KafkaRecord(value=raw, offset=8, topic=Topic.SCHEDULER_COMMANDS.value),
        "invalid byte sequence for encoding \"UTF8\": 0x00")
    (answer,) = sent.rejections()
    assert answer.correlation_id == "c--2" and "0x00" in answer.payload.reason
    assert answer.event_id == uuid.uuid5(event_id, "rejected")  # the same answer if it comes again
