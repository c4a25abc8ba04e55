"""Talking to the services as any other service would: commands on Kafka, then wait for the resulting fact."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from attune_contracts import AttunePublisher, ContractError, Envelope, Topic, parse
from attune_contracts.sealing import FieldKeys
from attune_contracts.types import Contract

from .config import CliConfig


class CommandRefused(Exception):
    pass


def kafka_options(bootstrap: str) -> dict[str, Any]:
    """How this CLI connects to Kafka at `bootstrap` (SASL settings from the environment or attune.toml)."""
    return CliConfig.load().kafka_options(bootstrap)


def _security(bootstrap: str) -> dict[str, Any]:
    return {k: v for k, v in kafka_options(bootstrap).items() if k != "bootstrap_servers"}


def field_keys(bootstrap: str) -> FieldKeys:
    """The keys that seal the private text of the CLI's commands and open the facts it waits for."""
    return CliConfig.load().field_keyring(bootstrap)


async def end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    """Every partition of `topic` with its current end offset (empty if the topic does not exist)."""
    await consumer._client.force_metadata_update()
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    return await consumer.end_offsets(partitions) if partitions else {}


async def send_and_wait(
    bootstrap: str,
    command: Contract,
    *,
    household_id: uuid.UUID,
    answer_topic: Topic,
    timeout: float = 20.0,  # noqa: ASYNC109 - how long an answer is awaited, not a cancellation scope
) -> Envelope[Any] | None:
    """Publish a command and wait for the first event on `answer_topic` correlated with it.

    Returns None if `timeout` passes (the command may still be processed later). A *CommandRejected
    answer raises CommandRefused with the service's reason.
    """
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = await end_offsets(consumer, answer_topic.value)
        consumer.assign(list(offsets))
        for partition, offset in offsets.items():
            consumer.seek(partition, offset)
        keys = field_keys(bootstrap)
        async with AttunePublisher.connect(bootstrap, producer="attune-cli", field_keys=keys,
                                           **_security(bootstrap)) as publisher:
            sent = await publisher.publish(command, household_id=household_id)
        correlation = sent.correlation_id
        try:
            async with asyncio.timeout(timeout):
                while True:
                    batch = await consumer.getmany(timeout_ms=200)
                    for records in batch.values():
                        for record in records:
                            try:
                                event = parse(record.value, keys)
                            except ContractError:
                                continue
                            if event.correlation_id != correlation:
                                continue
                            if event.type.endswith("command_rejected"):
                                raise CommandRefused(event.payload.reason)
                            return event
        except TimeoutError:
            return None
    finally:
        await consumer.stop()


async def publish(bootstrap: str, payload: Contract, *, household_id: uuid.UUID) -> Envelope[Any]:
    async with AttunePublisher.connect(bootstrap, producer="attune-cli", field_keys=field_keys(bootstrap),
                                       **_security(bootstrap)) as publisher:
        return await publisher.publish(payload, household_id=household_id)
