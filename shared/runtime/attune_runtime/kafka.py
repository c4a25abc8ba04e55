"""Broker factory, topic creation and the publisher the services use, all on FastStream + aiokafka."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from attune_contracts import CATALOG, Publisher, Topic, TopicSpec
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from prometheus_client import CollectorRegistry

from .settings import ServiceSettings

log = logging.getLogger("attune.kafka")


def _security(settings: ServiceSettings) -> BaseSecurity | None:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if "SSL" in protocol else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[
        settings.kafka_sasl_mechanism or "PLAIN"
    ]
    return kind(username=settings.kafka_sasl_username or "", password=password, ssl_context=context,
                use_ssl=protocol == "SASL_SSL")


def kafka_client_options(settings: ServiceSettings) -> dict[str, Any]:
    """The same connection options for raw aiokafka clients (admin, benchmarks)."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers}
    if settings.kafka_security_protocol != "PLAINTEXT":
        options["security_protocol"] = settings.kafka_security_protocol
        if "SSL" in settings.kafka_security_protocol:
            options["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if "SASL" in settings.kafka_security_protocol:
            options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = (
                settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
            )
    return options


def make_broker(settings: ServiceSettings, *, service: str, registry: CollectorRegistry) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.kafka_client_id or f"attune-{service}",
        security=_security(settings),
        # Tansu (development and tests) has no idempotent producer; the design does not need one.
        enable_idempotence=False,
        acks="all",
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=f"attune-{service}")],
        logger=logging.getLogger(f"attune.{service}.broker"),
        log_level=logging.DEBUG,
    )


def topic_configs(spec: TopicSpec, min_insync_replicas: int = 1) -> dict[str, str]:
    """What a catalog topic is created with: its retention (records carry personal data; see deploy/RUNBOOK.md)
    and how many copies must hold a record before it counts as written (producers use acks=all)."""
    configs = {"retention.ms": str(spec.retention_ms)}
    if min_insync_replicas > 1:  # 1 is every broker's default; the development broker is left its defaults
        configs["min.insync.replicas"] = str(min_insync_replicas)
    return configs


async def ensure_topics(settings: ServiceSettings, topics: list[Topic] | None = None) -> list[str]:
    """Create the catalog's topics that do not exist yet. Safe to run from every instance at once."""
    wanted = [CATALOG[t] for t in (topics or list(Topic))]
    if settings.kafka_min_insync_replicas > settings.kafka_replication_factor:
        # Every acks=all write would be refused (NOT_ENOUGH_REPLICAS): say so before creating anything.
        raise ValueError(f"min.insync.replicas {settings.kafka_min_insync_replicas} is more than the replication "
                         f"factor {settings.kafka_replication_factor}")
    admin = AIOKafkaAdminClient(**kafka_client_options(settings), client_id="attune-topic-init")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(spec.topic.value, num_partitions=settings.kafka_partitions or spec.partitions,
                     replication_factor=settings.kafka_replication_factor,
                     topic_configs=topic_configs(spec, settings.kafka_min_insync_replicas))
            for spec in wanted
            if spec.topic.value not in existing
        ]
        created: list[str] = []
        for new_topic in missing:
            try:
                await admin.create_topics([new_topic])
                created.append(new_topic.name)
            except TopicAlreadyExistsError:
                pass  # another instance won the race
        if created:
            log.info("created topics %s", ", ".join(created))
        return created
    finally:
        await admin.close()


def broker_publisher(broker: KafkaBroker, *, service: str) -> Publisher:
    async def send(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
        await broker.publish(value, topic=topic, key=key, headers=headers)

    return Publisher(send, producer=service)
