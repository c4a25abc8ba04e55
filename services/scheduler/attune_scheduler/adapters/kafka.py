"""Publishing outbox rows with a plain aiokafka producer (batched sends; order kept per partition)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..ports import OutboxRow


class KafkaSink:
    """The producer is created in `start` (aiokafka needs a running event loop), never at construction."""

    def __init__(self, client_options: dict[str, Any], *, client_id: str = "attune-scheduler") -> None:
        self.client_options, self.client_id = client_options, client_id
        self.producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(
            **self.client_options, client_id=self.client_id, enable_idempotence=False, acks="all",
            linger_ms=5, max_batch_size=512 * 1024,
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def __call__(self, rows: Sequence[OutboxRow]) -> None:
        if self.producer is None:
            raise ConnectionError("the Kafka producer is not started")
        pending = []
        for row in rows:
            headers = [(k, v.encode()) for k, v in row.headers.items()]
            pending.append(await self.producer.send(row.topic, value=row.value, key=row.key, headers=headers))
        await asyncio.gather(*pending)
