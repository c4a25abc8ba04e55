"""Topics are created with the configured replication factor and min.insync.replicas (3 and 2 in production)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from attune_contracts import Topic
from attune_contracts.topics import CATALOG
from attune_runtime import kafka
from attune_runtime.settings import ServiceSettings

pytestmark = [pytest.mark.unit]


class FakeAdmin:
    created: ClassVar[list[Any]] = []

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return [Topic.DEAD_LETTER.value]  # exists already: left as it is

    async def create_topics(self, topics: list[Any]) -> None:
        FakeAdmin.created.extend(topics)


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    FakeAdmin.created = []
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", FakeAdmin)
    return FakeAdmin


async def test_production_topics_have_three_copies_and_need_two_in_sync(admin: type[FakeAdmin]) -> None:
    settings = ServiceSettings(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    created = await kafka.ensure_topics(settings, [Topic.SCHEDULER_COMMANDS, Topic.DEAD_LETTER])
    assert created == [Topic.SCHEDULER_COMMANDS.value]
    (topic,) = admin.created
    assert topic.replication_factor == 3
    assert topic.num_partitions == CATALOG[Topic.SCHEDULER_COMMANDS].partitions
    assert topic.topic_configs["min.insync.replicas"] == "2"
    assert topic.topic_configs["retention.ms"] == str(CATALOG[Topic.SCHEDULER_COMMANDS].retention_ms)


async def test_development_defaults_are_one_copy_and_the_brokers_own_min_insync(admin: type[FakeAdmin]) -> None:
    await kafka.ensure_topics(ServiceSettings(), [Topic.SCHEDULER_COMMANDS])
    (topic,) = admin.created
    assert topic.replication_factor == 1
    assert "min.insync.replicas" not in topic.topic_configs


async def test_more_in_sync_replicas_than_copies_is_refused_before_anything_is_created(
        admin: type[FakeAdmin]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="KAFKA_MIN_INSYNC_REPLICAS"):
        ServiceSettings(kafka_replication_factor=2, kafka_min_insync_replicas=3)
    settings = ServiceSettings().model_copy(update={"kafka_min_insync_replicas": 3})  # past the validator
    with pytest.raises(ValueError, match=r"min\.insync\.replicas 3"):
        await kafka.ensure_topics(settings, [Topic.SCHEDULER_COMMANDS])
    assert admin.created == []
