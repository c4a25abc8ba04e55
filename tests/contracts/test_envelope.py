"""The envelope and the registry: strict, closed, bounded, with reasons people can read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from attune_contracts import CATALOG, ContractError, Topic, all_specs, make_envelope, parse
from attune_contracts.messages import LogMoment, MomentKind, RegisterHousehold

pytestmark = [pytest.mark.unit]

HOUSEHOLD = uuid.UUID("6f1c1f9e-3a51-4e8e-9f57-1d1fd1a0c001")


def household_bytes(**overrides: object) -> bytes:
    envelope = make_envelope(RegisterHousehold(name="Ana & Ben", time_zone="Europe/London"),
                             household_id=HOUSEHOLD, producer="test")
    doc = json.loads(envelope.to_bytes())
    for path, value in overrides.items():
        target = doc
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return json.dumps(doc).encode()


def reason(raw: bytes) -> str:
    with pytest.raises(ContractError) as caught:
        parse(raw)
    return caught.value.reason


def test_round_trip_keeps_every_field() -> None:
    original = make_envelope(LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.NEGATIVE),
                             household_id=HOUSEHOLD, producer="test", correlation_id="abc")
    assert parse(original.to_bytes()) == original
    assert original.key == str(HOUSEHOLD).encode()


def test_unknown_fields_are_refused_in_envelope_and_payload() -> None:
    assert reason(household_bytes(surprise=1)).endswith("surprise: Extra inputs are not permitted")
    assert "payload.colour: Extra inputs are not permitted" in reason(household_bytes(payload__colour="blue"))


def test_naive_timestamps_are_refused_and_offsets_normalised_to_utc() -> None:
    assert "occurred_at" in reason(household_bytes(occurred_at="2026-11-25T10:00:00"))
    envelope = parse(household_bytes(occurred_at="2026-11-25T10:00:00+05:30"))
    assert envelope.occurred_at == datetime(2026, 11, 25, 4, 30, tzinfo=UTC)
    assert envelope.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "localtime", "/etc/passwd", "../../x", "EST5EDT" * 20])
def test_time_zones_must_be_iana_names(zone: str) -> None:
    assert "payload.time_zone" in reason(household_bytes(payload__time_zone=zone))


def test_real_zones_are_accepted() -> None:
    for zone in ("America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata", "UTC"):
        assert parse(household_bytes(payload__time_zone=zone)).payload.time_zone == zone


def test_strings_are_bounded() -> None:
    assert "payload.name" in reason(household_bytes(payload__name="x" * 101))


def test_no_type_coercion_from_json() -> None:
    assert "version" in reason(household_bytes(version="1"))
    assert "event_id" in reason(household_bytes(event_id=12345))


def test_unknown_type_and_version_say_what_is_known() -> None:
    assert reason(household_bytes(type="scheduler.launch_rocket")) == "unknown message type 'scheduler.launch_rocket'"
    assert "knows versions [1]" in reason(household_bytes(version=2))


def test_non_json_and_non_objects_are_refused() -> None:
    assert reason(b"\xff\xfe").startswith("not JSON")
    assert "JSON object" in reason(b"[1, 2]")


def test_every_message_has_a_catalog_topic_and_a_summary() -> None:
    specs = all_specs()
    assert len(specs) >= 40
    for spec in specs:
        assert spec.topic in CATALOG
        assert spec.summary and spec.summary != spec.type
        assert spec.type.split(".")[0] in {"scheduler", "ritual", "checkins", "notifications"}


def test_commands_live_on_command_topics_and_events_elsewhere() -> None:
    command_topics = {Topic.SCHEDULER_COMMANDS, Topic.CHECKINS_COMMANDS}
    for spec in all_specs():
        assert (spec.kind == "command") == (spec.topic in command_topics), spec.type


def test_envelope_occurred_at_default_is_now_in_utc() -> None:
    envelope = make_envelope(RegisterHousehold(name="A", time_zone="UTC"), household_id=HOUSEHOLD, producer="t")
    assert abs(envelope.occurred_at - datetime.now(UTC)) < timedelta(seconds=5)
    assert envelope.correlation_id == str(envelope.event_id)


def test_peek_reads_who_sent_an_invalid_message_and_nothing_more() -> None:
    from attune_contracts.registry import peek

    raw = household_bytes(payload__time_zone="Mars/Base", correlation_id="c-9")
    head = peek(raw)
    assert head is not None and head.type == "scheduler.register_household"
    assert head.household_id == HOUSEHOLD and head.correlation_id == "c-9"
    assert head.payload["time_zone"] == "Mars/Base"
    assert peek(b"{not json") is None
    assert peek(household_bytes(household_id="nobody")) is None
    assert peek(b'["scheduler.register_household"]') is None
