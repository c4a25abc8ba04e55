"""Every registered message survives the trip through bytes unchanged, with optional fields filled and empty."""

from __future__ import annotations

import enum
import json
import types
import typing
import uuid
from datetime import UTC, date, datetime

import annotated_types
import pytest
from attune_contracts import all_specs, make_envelope, parse
from attune_contracts.sealing import is_sealed, private_fields
from pydantic import BaseModel, ValidationError

pytestmark = [pytest.mark.unit]

# Values for strings whose shape is constrained by a pattern or a validator, by field name.
BY_NAME = {
    "time_zone": "Pacific/Chatham",
    "local_time": "20:30",
    "rrule": "FREQ=WEEKLY;BYDAY=FR",
    "template": "date_night",
    "purpose": "ritual_due",
    "category": "date_night",
    "reason": "stale: a morning reminder at noon",
    "error_kind": "invalid",
    "command_type": "scheduler.schedule_ritual",
    "cause_type": "ritual.due",
    "code_id": "5e" * 32,
    "question_key": "q0b713b573deb0716",
    "depth": "light",
}


def value_for(name: str, annotation: typing.Any, metadata: list[typing.Any], fill_optional: bool) -> typing.Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return value_for(name, base, [*metadata, *extra], fill_optional)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return value_for(name, options[0], metadata, fill_optional)
    if origin is list:
        (item,) = typing.get_args(annotation)
        at_least = next((m.min_length for m in metadata if isinstance(m, annotated_types.MinLen)), 1)
        return [value_for(name, item, [], fill_optional) for _ in range(max(1, at_least))]
    if origin is dict:
        return {}
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return build(annotation, fill_optional)
    if annotation is uuid.UUID:
        return uuid.uuid4()
    if annotation is datetime or "Datetime" in str(annotation):
        return datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    if annotation is date:
        return date(2027, 3, 14)
    if annotation is bool:
        return True
    if annotation in (int, float):
        low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
        low = next((m.gt + 1 for m in metadata if isinstance(m, annotated_types.Gt)), low)
        return annotation(max(1, low or 1)) if low is None or low >= 1 else annotation(1)
    if annotation is str:
        keyed = any(getattr(m, "pattern", None) for m in metadata)
        if keyed and name == "reason":
            return "stale"  # a reason label (Key), not free text
        return BY_NAME.get(name, "Ana & Ben")
    raise AssertionError(f"no example for {name}: {annotation}")


def build(model: type[BaseModel], fill_optional: bool) -> BaseModel:
    values = {}
    for name, field in model.model_fields.items():
        if not field.is_required() and not fill_optional:
            continue
        if name == "version" and field.default is not None:
            continue
        values[name] = value_for(name, field.annotation, list(field.metadata), fill_optional)
    return model(**values)


def example(model: type[BaseModel]) -> list[BaseModel]:
    built = []
    for fill in (True, False):
        try:
            built.append(build(model, fill))
        except ValidationError:
            continue  # e.g. snoozed_until is only allowed with status "snoozed"
    assert built, f"could not build any example of {model.__name__}"
    return built


def without_private(raw: bytes, model: type[BaseModel]) -> dict[str, typing.Any]:
    document = json.loads(raw)
    for path in private_fields(model):
        *parents, leaf = path
        holder = document["payload"]
        for part in parents:
            holder = holder.get(part) or {}
        if holder.get(leaf) is not None:
            assert is_sealed(holder[leaf]), f"{'.'.join(path)} travels in plaintext"
            holder[leaf] = "(sealed)"
    return document


@pytest.mark.parametrize("spec", all_specs(), ids=lambda spec: f"{spec.type}.v{spec.version}")
def test_every_message_round_trips(spec) -> None:
    for payload in example(spec.model):
        envelope = make_envelope(payload, household_id=uuid.uuid4(), producer="test")
        raw = envelope.to_bytes()
        again = parse(raw)
        assert again == envelope
        # Private fields are sealed afresh each time (a new nonce); everything else is byte-stable.
        assert parse(again.to_bytes()) == envelope
        assert without_private(again.to_bytes(), spec.model) == without_private(raw, spec.model)
        assert again.type == spec.type and again.version == spec.version
