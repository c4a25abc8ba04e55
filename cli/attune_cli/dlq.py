"""Reading and replaying the dead-letter topic."""

from __future__ import annotations

import base64

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from attune_contracts import Topic
from attune_contracts.messages import DeadLetter

from .bus import end_offsets, kafka_options


async def read_dead_letters(bootstrap: str) -> list[tuple[str, DeadLetter]]:
    """Every dead letter currently on the topic, as ("partition:offset", letter)."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await end_offsets(consumer, Topic.DEAD_LETTER.value)
        partitions = list(ends)
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[tuple[str, DeadLetter]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        found.append((f"{tp.partition}:{record.offset}", DeadLetter.model_validate_json(record.value)))
        return sorted(found, key=lambda item: item[1].failed_at)
    finally:
        await consumer.stop()


async def replay(bootstrap: str, which: list[str] | None) -> list[str]:
    letters = await read_dead_letters(bootstrap)
    wanted = None if which is None else {w if ":" in w else f"0:{w}" for w in which}
    # A truncated letter holds only the first bytes of its record: replaying them would publish something else.
    chosen = [(ref, letter) for ref, letter in letters
              if (wanted is None or ref in wanted) and not letter.truncated]
    producer = AIOKafkaProducer(**kafka_options(bootstrap), enable_idempotence=False)
    await producer.start()
    try:
        for ref, letter in chosen:
            headers = [(k, base64.b64decode(v)) for k, v in letter.headers.items()]
            headers.append(("replayed_from_dlq", ref.encode()))
            await producer.send_and_wait(letter.source_topic, value=letter.value, key=letter.key, headers=headers)
    finally:
        await producer.stop()
    return [ref for ref, _ in chosen]
