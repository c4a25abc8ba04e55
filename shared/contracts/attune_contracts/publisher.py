"""A small typed publisher: build the envelope, pick the topic, key by household.

Another team's service needs only this (with the `kafka` extra):

    async with AttunePublisher.connect("kafka:9092", producer="calendar-sync") as publisher:
        await publisher.publish(LogMoment(moment_id=uuid4(), member_id=ana, kind="positive"),
                                household_id=household)

A payload with private text (a note, a name) needs the deployment's field keys to seal it:
`AttunePublisher.connect(..., field_keys=FieldKeys.parse(os.environ["ATTUNE_FIELD_KEYS"]))`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, Self
from uuid import UUID

from .envelope import Envelope, make_envelope
from .registry import spec_of
from .sealing import FieldKeys
from .types import Contract


class SendFn(Protocol):
    def __call__(self, topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> Awaitable[Any]: ...


def headers_for(envelope: Envelope[Any]) -> dict[str, str]:
    """Headers that let a consumer or an operator route without decoding the body."""
    return {
        "event_type": envelope.type,
        "event_version": str(envelope.version),
        "event_id": str(envelope.event_id),
        "correlation_id": envelope.correlation_id,
    }


class Publisher:
    """Publishes registered payloads through any `send` function (FastStream, aiokafka, a test fake)."""

    def __init__(self, send: SendFn, *, producer: str, field_keys: FieldKeys | None = None) -> None:
        self._send = send
        self.producer = producer
        self.field_keys = field_keys  # None: the process's (attune_contracts.sealing.use_field_keys)

    async def publish(
        self,
        payload: Contract,
        *,
        household_id: UUID,
        correlation_id: str | None = None,
        event_id: UUID | None = None,
    ) -> Envelope[Any]:
        envelope = make_envelope(
            payload,
            household_id=household_id,
            producer=self.producer,
            correlation_id=correlation_id,
            event_id=event_id,
        )
        await self.publish_envelope(envelope)
        return envelope

    async def publish_envelope(self, envelope: Envelope[Any]) -> None:
        topic = spec_of(type(envelope.payload)).topic
        await self._send(topic.value, envelope.key, envelope.to_bytes(self.field_keys), headers_for(envelope))


class AttunePublisher(Publisher):
    """A Publisher over its own aiokafka producer (idempotence off: the design does not need it)."""

    def __init__(self, producer_client: Any, *, producer: str, field_keys: FieldKeys | None = None) -> None:
        async def send(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
            await producer_client.send_and_wait(
                topic, value=value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
            )

        super().__init__(send, producer=producer, field_keys=field_keys)
        self._client = producer_client

    @classmethod
    def connect(cls, bootstrap_servers: str, *, producer: str, field_keys: FieldKeys | None = None,
                **kafka_options: Any) -> AttunePublisher:
        from aiokafka import AIOKafkaProducer

        kafka_options.setdefault("enable_idempotence", False)
        return cls(AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **kafka_options), producer=producer,
                   field_keys=field_keys)

    async def __aenter__(self) -> Self:
        await self._client.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.stop()


