"""Private text on Kafka, as someone with topic read access sees it: sealed for one household and one field.

Walks the registry: every private field of every message type is sealed on the wire, opens only for its own
household and field, and a plaintext value in a private field is refused with a reason.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from typing import Any, ClassVar

import pytest
from attune_contracts import ContractError, all_specs, make_envelope, parse
from attune_contracts.messages import (
    LogMoment,
    MomentKind,
    NotificationRequested,
    RecordAchievement,
    RegisterHousehold,
    UpsertMember,
)
from attune_contracts.sealing import (
    DEV_FIELD_KEYS,
    FieldKeys,
    FieldKeysMissing,
    field_keys_in_use,
    is_sealed,
    private_fields,
)
from attune_runtime.settings import ServiceSettings
from contracts.test_round_trip import example
from pydantic import ValidationError

pytestmark = [pytest.mark.unit]

HOUSEHOLD = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
KEYS = FieldKeys.generate("k1")
PRIVATE = [spec for spec in all_specs() if private_fields(spec.model)]


def _at(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = document["payload"]
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def test_the_private_text_of_the_contracts_is_marked_private() -> None:
    marked = {(spec.type, ".".join(path)) for spec in PRIVATE for path in private_fields(spec.model)}
    # The list: names, notes, dreams, moment text, custom ritual titles, a message's own words.
    assert {("scheduler.register_household", "name"), ("scheduler.household_registered", "name"),
            ("scheduler.upsert_member", "display_name"), ("scheduler.member_upserted", "display_name"),
            ("scheduler.schedule_ritual", "title"), ("scheduler.ritual_scheduled", "title"),
            ("ritual.due", "title"), ("checkins.submit_checkin", "note"), ("checkins.log_moment", "note"),
            ("checkins.record_achievement", "dream"), ("checkins.record_achievement", "note"),
            ("checkins.achievement_recorded", "dream"), ("notifications.notification_requested", "title"),
            ("notifications.notification_requested", "body")} <= marked


@pytest.mark.parametrize("spec", PRIVATE, ids=lambda spec: f"{spec.type}.v{spec.version}")
def test_a_topic_reader_without_the_key_sees_only_sealed_values(spec: Any) -> None:
    for payload in example(spec.model):
        envelope = make_envelope(payload, household_id=HOUSEHOLD, producer="test")
        raw = envelope.to_bytes(KEYS)
        document = json.loads(raw)
        for path in private_fields(spec.model):
            plain = _plain(payload, path)
            if plain is None:
                continue
            wire = _at(document, path)
            assert is_sealed(wire), f"{spec.type} {'.'.join(path)} travels as {wire!r}"
            assert plain not in wire
            # Without the key (a reader of the topic), or with another deployment's, nothing opens.
            with pytest.raises(ContractError, match="private field"):
                parse(raw, FieldKeys.generate("k1"))
        assert parse(raw, KEYS) == envelope


def _plain(payload: Any, path: tuple[str, ...]) -> Any:
    value = payload
    for part in path:
        value = getattr(value, part, None)
    return value


def _moment(note: str = "she laughed at my terrible joke") -> Any:
    return make_envelope(LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.POSITIVE,
                                   note=note), household_id=HOUSEHOLD, producer="checkins")


def test_a_sealed_value_replayed_under_another_household_does_not_open() -> None:
    document = json.loads(_moment().to_bytes(KEYS))
    document["household_id"] = str(OTHER)
    with pytest.raises(ContractError, match=r"payload\.note: private field does not open: sealed for another "
                                            r"household or field"):
        parse(json.dumps(document), KEYS)


def test_a_sealed_value_moved_to_another_field_does_not_open() -> None:
    envelope = make_envelope(NotificationRequested(member_id=uuid.uuid4(), purpose="nudge", title="Tonight",
                                                   body="Ana wrote: the beach, again?", discreet_title="Attune"),
                             household_id=HOUSEHOLD, producer="checkins")
    document = json.loads(envelope.to_bytes(KEYS))
    document["payload"]["discreet_title"] = document["payload"]["title"]  # the real title onto the lock screen
    with pytest.raises(ContractError, match=r"payload\.discreet_title: private field does not open"):
        parse(json.dumps(document), KEYS)


def test_plaintext_in_a_private_field_is_refused_with_a_reason() -> None:
    document = json.loads(_moment().to_bytes(KEYS))
    document["payload"]["note"] = "she laughed at my terrible joke"
    with pytest.raises(ContractError) as refused:
        parse(json.dumps(document), KEYS)
    assert refused.value.reason == ("invalid checkins.log_moment v1: payload.note: private field not sealed "
                                    "(plaintext is refused on the wire)")
    assert "terrible joke" not in refused.value.reason


def test_the_bounds_apply_to_the_opened_text() -> None:
    envelope = _moment()
    document = json.loads(envelope.to_bytes(KEYS))
    too_long = KEYS.seal(HOUSEHOLD, "note", "x" * 2001)
    document["payload"]["note"] = too_long
    with pytest.raises(ContractError, match=r"payload\.note: String should have at most 2000 characters"):
        parse(json.dumps(document), KEYS)


def test_a_damaged_or_foreign_shaped_seal_is_refused() -> None:
    document = json.loads(_moment().to_bytes(KEYS))
    sealed = document["payload"]["note"]
    for bad, why in [(sealed[:-6] + "AAAAAA", "does not open"), ("sealed:v1:k1:!!", "form this version"),
                     ("sealed:v1:k9:" + sealed.rsplit(":", 1)[1], "field key 'k9', which this service does not"),
                     ("sealed:v1:k1:" + "A" * 40_000, "too long to be a sealed value")]:
        document["payload"]["note"] = bad
        with pytest.raises(ContractError, match=why):
            parse(json.dumps(document), KEYS)


def test_keys_rotate_the_first_seals_and_every_one_opens() -> None:
    old = FieldKeys.generate("k0")
    raw = _moment().to_bytes(old)
    both = FieldKeys({"k1": base64.urlsafe_b64decode(_encoded(KEYS)), "k0": base64.urlsafe_b64decode(_encoded(old))})
    assert parse(raw, both).payload.note == "she laughed at my terrible joke"
    assert json.loads(_moment().to_bytes(both))["payload"]["note"].startswith("sealed:v1:k1:")
    with pytest.raises(ContractError, match="field key 'k0', which this service does not hold"):
        parse(raw, KEYS)


def _encoded(keys: FieldKeys) -> str:
    (only,) = keys.encoded()
    return only


def test_without_keys_nothing_private_is_written_or_read() -> None:
    raw = _moment().to_bytes(KEYS)
    with field_keys_in_use(None):
        with pytest.raises(FieldKeysMissing):
            _moment().to_bytes()
        with pytest.raises(FieldKeysMissing):
            parse(raw)
        # A message with no private text needs no keys.
        bare = make_envelope(LogMoment(moment_id=uuid.uuid4(), member_id=uuid.uuid4(), kind=MomentKind.NEGATIVE),
                             household_id=HOUSEHOLD, producer="checkins")
        assert parse(bare.to_bytes()) == bare


def test_handlers_see_plain_text_and_in_process_models_stay_plain() -> None:
    sent = [make_envelope(RegisterHousehold(name="  Casa Azul ", time_zone="Europe/Lisbon"), household_id=HOUSEHOLD,
                          producer="attune-cli"),
            make_envelope(UpsertMember(member_id=uuid.uuid4(), display_name="Ana"), household_id=HOUSEHOLD,
                          producer="attune-cli"),
            make_envelope(RecordAchievement(achievement_id=uuid.uuid4(), member_id=uuid.uuid4(), dream="Sail to Madeira",
                                            note="booked the course"), household_id=HOUSEHOLD, producer="app")]
    for envelope in sent:
        raw = envelope.to_bytes(KEYS)
        assert b"Casa Azul" not in raw and b"Ana" not in raw and b"Madeira" not in raw and b"course" not in raw
        assert parse(raw, KEYS) == envelope
    assert sent[0].payload.name == "Casa Azul" and sent[0].model_dump()["payload"]["name"] == "Casa Azul"


class SealingService(ServiceSettings):
    seals_private_fields: ClassVar[bool] = True


def test_field_keys_fail_closed_like_the_link_keys() -> None:
    real = f"k1:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"
    with pytest.raises(ValidationError, match="FIELD_KEYS is missing"):
        SealingService(environment="production")
    for published in (DEV_FIELD_KEYS, f"{real},{DEV_FIELD_KEYS}"):
        with pytest.raises(ValidationError, match="FIELD_KEYS holds the development key") as refused:
            ServiceSettings(environment="production", field_keys=published)
        assert DEV_FIELD_KEYS.partition(":")[2] not in str(refused.value.errors(include_input=False))
    with pytest.raises(ValidationError, match="must be 32 bytes"):
        ServiceSettings(environment="production", field_keys="k1:" + base64.urlsafe_b64encode(b"short").decode())
    assert ServiceSettings(environment="production", field_keys=real).field_keyring().kids == ["k1"]
    assert ServiceSettings(environment="development").field_keyring().kids == ["dev"]
    assert ServiceSettings(environment="production").field_keys is None  # a tool creating topics needs none
    assert "k1:" not in repr(ServiceSettings(environment="production", field_keys=real))
