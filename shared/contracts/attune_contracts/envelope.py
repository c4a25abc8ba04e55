"""The one envelope every Attune event and command travels in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID, uuid4

from pydantic import ConfigDict, Field, StringConstraints
from pydantic_core import PydanticSerializationError

from .sealing import FieldKeys, FieldKeysMissing, context_for
from .types import Contract, UtcDatetime

P = TypeVar("P", bound=Contract)

EventType = Annotated[str, StringConstraints(min_length=3, max_length=100, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
Producer = Annotated[str, StringConstraints(min_length=1, max_length=100)]
CorrelationId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Envelope(Contract, Generic[P]):
    """`household_id` is also the Kafka key, so one household's events keep their order."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    event_id: UUID
    type: EventType
    version: int = Field(ge=1, le=1000)
    occurred_at: UtcDatetime
    producer: Producer
    correlation_id: CorrelationId
    household_id: UUID
    payload: P

    def to_bytes(self, field_keys: FieldKeys | None = None) -> bytes:
        """The wire form: private fields sealed for this household (attune_contracts.sealing) with
        `field_keys`, or the process's; FieldKeysMissing when a private field has no keys to seal it."""
        try:
            return self.model_dump_json(context=context_for(self.household_id, field_keys)).encode()
        except PydanticSerializationError as exc:
            if FieldKeysMissing.__name__ in str(exc):  # Pydantic wraps what a serializer raises
                raise FieldKeysMissing(f"{self.type}: a private field cannot be written without field keys "
                                       f"(attune_contracts.sealing.use_field_keys)") from None
            raise

    @property
    def key(self) -> bytes:
        return str(self.household_id).encode()


def new_event_id() -> UUID:
    return uuid4()


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_envelope(
    payload: P,
    *,
    household_id: UUID,
    producer: str,
    correlation_id: str | None = None,
    event_id: UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[P]:
    """Wrap a payload whose class is registered in the catalog (see `registry.message`)."""
    from .registry import spec_of

    spec = spec_of(type(payload))
    eid = event_id or new_event_id()
    return spec.envelope(  # Envelope[type(payload)], made once when the payload's class was registered
        event_id=eid,
        type=spec.type,
        version=spec.version,
        occurred_at=occurred_at or utcnow(),
        producer=producer,
        correlation_id=correlation_id or str(eid),
        household_id=household_id,
        payload=payload,
    )


AnyEnvelope = Envelope[Any]
