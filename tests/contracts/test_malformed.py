"""Property: whatever bytes arrive, parsing either yields a valid envelope or a ContractError with a reason."""

from __future__ import annotations

import json
import uuid

import pytest
from attune_contracts import ContractError, all_specs, make_envelope, parse
from attune_contracts.messages import CheckInStatus, LogMoment, MomentKind, RegisterHousehold, SubmitCheckIn
from attune_contracts.registry import peek
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.unit]

BASES = [
    make_envelope(RegisterHousehold(name="Ana & Ben", time_zone="Europe/London"),
                  household_id=uuid.uuid4(), producer="t"),
    make_envelope(LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.POSITIVE),
                  household_id=uuid.uuid4(), producer="t"),
    make_envelope(SubmitCheckIn(occurrence_id=uuid.uuid4(), member_id=uuid.uuid4(), status=CheckInStatus.DONE,
                                closeness=4, note="lovely"), household_id=uuid.uuid4(), producer="t"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
TYPES = [spec.type for spec in all_specs()]


def assert_refused_clearly_or_valid(raw: bytes) -> None:
    try:
        envelope = parse(raw)
    except ContractError as exc:
        assert exc.reason and len(exc.reason) < 3000
    else:
        assert parse(envelope.to_bytes()) == envelope


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300))
def test_random_bytes_never_crash(raw: bytes) -> None:
    assert_refused_clearly_or_valid(raw)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    where=st.sampled_from(["envelope", "payload"]),
    action=st.sampled_from(["drop", "replace", "add"]),
    value=json_values,
    field_index=st.integers(min_value=0, max_value=20),
    new_type=st.sampled_from(TYPES),
)
def test_mutated_envelopes_are_refused_with_a_reason(base, where, action, value, field_index, new_type) -> None:
    doc = json.loads(base.to_bytes())
    target = doc if where == "envelope" else doc["payload"]
    keys = sorted(target)
    key = keys[field_index % len(keys)]
    if action == "drop":
        del target[key]
    elif action == "replace":
        target[key] = value
    else:
        target[f"unexpected_{field_index}"] = value
    if field_index == 0:
        doc["type"] = new_type  # the right envelope around the wrong payload
    raw = json.dumps(doc).encode()
    assert_refused_clearly_or_valid(raw)
    if action == "add" or (action == "drop" and key in {"event_id", "type", "payload", "household_id"}):
        with pytest.raises(ContractError):
            parse(raw)


# Hostile records seen on the running services (issue 11): each used to escape `parse` as something other
# than ContractError, so the consumer nacked and read it again forever.
def _moment_doc() -> dict:
    return json.loads(BASES[1].to_bytes())


def _with(**fields: object) -> bytes:
    doc = _moment_doc()
    doc.update(fields)
    return json.dumps(doc).encode()


HOSTILE = {
    "tombstone": None,
    "deep nesting": b"[" * 100_000,
    "deep nesting in an object": b'{"type": "checkins.log_moment", "version": 1, "payload": ' + b"[" * 100_000,
    "5,000-digit number": b"1" * 5000,
    "5,000-digit version": b'{"type": "checkins.log_moment", "version": ' + b"9" * 5000 + b"}",
    "5,000-digit field": _with(producer=None).replace(b"null", b"7" * 5000),
    "not UTF-8": b'{"type": "\xff\xfe"}',
    "UTF-16 JSON": json.dumps(_moment_doc()).encode("utf-16"),
    "lone surrogate": _with(producer="\ud800"),
    "instant before year 1 in UTC": _with(occurred_at="0001-01-01T00:00:00+01:00"),
    "instant after year 9999 in UTC": _with(occurred_at="9999-12-31T23:00:00-05:00"),
    "huge type name": _with(type="a" * 100_000),
    "wrong type of everything": json.dumps({"type": ["x"], "version": "1", "payload": 3}).encode(),
    "unknown version": _with(version=99),
    "bool version": _with(version=True),
    "text, not bytes": json.dumps(_moment_doc()).replace("positive", "lukewarm"),
}


@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_records_are_refused_with_a_short_reason(raw: object) -> None:
    with pytest.raises(ContractError) as refused:
        parse(raw)  # type: ignore[arg-type]
    assert 0 < len(refused.value.reason) < 1000, refused.value.reason
    assert peek(raw) is None or peek(raw).type == "checkins.log_moment"  # type: ignore[arg-type, union-attr]


def test_reasons_say_what_is_wrong() -> None:
    def reason(raw: object) -> str:
        with pytest.raises(ContractError) as refused:
            parse(raw)  # type: ignore[arg-type]
        return refused.value.reason

    assert "tombstone" in reason(None)
    assert "nested too deeply" in reason(b"[" * 100_000)
    assert "digits" in reason(b"1" * 5000)
    assert "UTF-8" in reason(b"\xff")
    assert "out of range" in reason(_with(occurred_at="0001-01-01T00:00:00+01:00"))
    assert "unknown version 99" in reason(_with(version=99))


def test_peek_reads_who_sent_an_invalid_message_and_never_raises() -> None:
    doc = _moment_doc()
    doc["payload"]["kind"] = "lukewarm"
    head = peek(json.dumps(doc).encode())
    assert head is not None and head.type == "checkins.log_moment" and str(head.household_id) == doc["household_id"]
    for raw in HOSTILE.values():
        peek(raw)  # type: ignore[arg-type]


# Anything JSON can say, nested deeper and numbers longer than Python likes, and arbitrary bytes around it.
hostile_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text()
    | st.integers(min_value=-(10**6000), max_value=10**6000) | st.sampled_from(TYPES),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["type", "version", "payload", "event_id", "x"]) | st.text(max_size=5),
                      children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(value=hostile_json, depth=st.integers(min_value=0, max_value=3000), prefix=st.binary(max_size=8),
       wrap=st.sampled_from(["plain", "nested", "prefixed", "as envelope"]))
def test_any_json_ish_value_is_a_contract_error_or_valid(value: object, depth: int, prefix: bytes, wrap: str) -> None:
    import sys

    try:
        text = json.dumps(value)
    except ValueError:  # Python refuses to print a number that long: write its digits by hand
        text = str(sys.maxsize) * 600
    raw = text.encode("utf-8", "surrogatepass")
    if wrap == "nested":
        raw = b"[" * depth + raw + b"]" * depth
    elif wrap == "prefixed":
        raw = prefix + raw
    elif wrap == "as envelope":
        doc = json.loads(BASES[0].to_bytes())
        raw = json.dumps(doc)[:-1].encode() + b', "payload": ' + raw + b"}"
    assert_refused_clearly_or_valid(raw)
