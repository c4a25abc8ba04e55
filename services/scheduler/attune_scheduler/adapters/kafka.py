"""Publishing outbox rows with a plain aiokafka producer (batched sends; order kept per partition)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..ports import OutboxRow


class KafkaSink:
    def __init__(self, producer: Any) -> None:
        self.producer = producer

    @classmethod
    def create(cls, client_options: dict[str, Any], *, client_id: str = "attune-scheduler") -> KafkaSink:
        from aiokafka import AIOKafkaProducer

        return cls(AIOKafkaProducer(
            **client_options, client_id=client_id, enable_idempotence=False, acks="all",
            linger_ms=5, max_batch_size=512 * 1024,
        ))

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def __call__(self, rows: Sequence[OutboxRow]) -> None:
        pending = []
        for row in rows:
            headers = [(k, v.encode()) for k, v in row.headers.items()]
            pending.append(await self.producer.send(row.topic, value=row.value, key=row.key, headers=headers))
        await asyncio.gather(*pending)
