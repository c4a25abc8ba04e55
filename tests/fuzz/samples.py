"""A valid example of every registered message, as a JSON-ready envelope dict: what the hostile records
are mutated from, so most of them get past the first checks and reach the deeper ones."""

from __future__ import annotations

import enum
import json
import types
import typing
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import annotated_types
from attune_contracts import Topic, all_specs, make_envelope
from attune_contracts.registry import MessageSpec
from attune_contracts.trust import sender_of
from pydantic import BaseModel, ValidationError

# Strings whose shape a pattern or validator constrains, by field name.
BY_NAME = {
    "time_zone": "Europe/Lisbon",
    "local_time": "20:30",
    "rrule": "FREQ=WEEKLY;BYDAY=FR",
    "template": "evening_attunement",
    "purpose": "ritual_due",
    "category": "general",
    "reason": "stale",
    "command_type": "scheduler.schedule_ritual",
    "cause_type": "ritual.due",
    "code_id": "5e" * 32,
    "question_key": "q0b713b573deb0716",
    "depth": "light",
}


def _value(name: str, annotation: Any, metadata: list[Any], now: datetime) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _value(name, base, [*metadata, *extra], now)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _value(name, options[0], metadata, now)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return [_value(name, item, [], now)]
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return build(annotation, now)
    if annotation is uuid.UUID:
        return uuid.uuid4()
    if annotation is datetime or "Datetime" in str(annotation):
        return now
    if annotation is date:
        return now.date()
    if annotation is bool:
        return False
    if annotation in (int, float):
        low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), 1)
        return annotation(max(1, low))
    if annotation is str:
        return BY_NAME.get(name, "Ana & Ben")
    raise AssertionError(f"no example for {name}: {annotation}")


def build(model: type[BaseModel], now: datetime) -> BaseModel:
    values = {name: _value(name, field.annotation, list(field.metadata), now)
              for name, field in model.model_fields.items() if field.is_required()}
    try:
        return model(**values)
    except ValidationError:
        # e.g. UpdateRitual must change something; SubmitCheckIn's snooze rule
        optional = {name: _value(name, field.annotation, list(field.metadata), now)
                    for name, field in model.model_fields.items() if not field.is_required() and name != "version"}
        for name, value in optional.items():
            try:
                return model(**values, **{name: value})
            except ValidationError:
                continue
        raise


def specs_on(topic: Topic) -> list[MessageSpec]:
    return [s for s in all_specs() if s.topic is topic]


def example_envelope(spec: MessageSpec, household: uuid.UUID) -> dict[str, Any]:
    """A valid envelope of `spec` as the JSON values on the wire, private fields sealed (a fresh event id each time)."""
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    envelope = make_envelope(build(spec.model, now), household_id=household, producer=sender_of(spec.type))
    return json.loads(envelope.to_bytes())
