"""Publishing outbox rows with aiokafka: a relay batch goes out as one producer batch per partition
(`attune_runtime.producer.BatchProducer`), in row order, each household's events on its own partition."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from attune_runtime.producer import BatchProducer

from ..model import OutboxRow


class KafkaSink:
    """The producer is created in `start` (aiokafka needs a running event loop), never at construction.

    Calls keep their order even when they overlap (the relay hands over the next batch while the last is
    acknowledged); a call returns once the broker has acknowledged all of its rows.
    """

    def __init__(self, client_options: dict[str, Any], *, client_id: str = "attune-scheduler") -> None:
        self.producer = BatchProducer(client_options, client_id=client_id)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def prepare(self, rows: Iterable[OutboxRow]) -> None:
        """Work out the rows' partitions ahead of time (the relay calls this for rows it reads ahead)."""
        await self.producer.prepare((row.topic, row.key) for row in rows)

    async def __call__(self, rows: Sequence[OutboxRow]) -> None:
        await self.producer.send_all((row.topic, row.key, row.value, row.headers) for row in rows)
