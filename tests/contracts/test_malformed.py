"""Property: whatever bytes arrive, parsing either yields a valid envelope or a ContractError with a reason."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune_contracts import ContractError, all_specs, make_envelope, parse
from attune_contracts.messages import LogMoment, MomentKind, RegisterHousehold, SubmitCheckIn, CheckInStatus

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
