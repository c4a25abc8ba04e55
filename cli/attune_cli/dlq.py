"""Reading and replaying the dead-letter topic."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from attune_contracts import Topic
from attune_contracts.credentials import CredentialIssuer
from attune_contracts.messages import DeadLetter

from .bus import end_offsets, kafka_options
from .config import CliConfig
from .services import SELF_ISSUED_TTL, ServiceError

OPEN_PATH = "/v1/dead-letters/open"  # attune_runtime.deadletters.OPEN_PATH


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


def operator_credential(config: CliConfig) -> str:
    """ATTUNE_OPERATOR_TOKEN, or an operator credential minted for 15 minutes with ATTUNE_SIGNING_KEY."""
    if config.operator_token:
        return config.operator_token
    if config.signing_key:
        try:
            return CredentialIssuer(config.signing_key).operator(ttl=SELF_ISSUED_TTL)
        except ValueError as exc:
            raise ServiceError(f"ATTUNE_SIGNING_KEY is not usable: {exc}") from None
    raise ServiceError("sealed dead letters open only through their service, with an operator credential: set "
                       "ATTUNE_OPERATOR_TOKEN (whoever holds the signing key makes one with "
                       "`attune credentials issue operator`)")


@dataclass
class Replay:
    replayed: list[str] = field(default_factory=list)
    # ref -> why it was not replayed (its household was erased, it was cut, ...)
    refused: dict[str, str] = field(default_factory=dict)


async def open_sealed(config: CliConfig, letter: DeadLetter, client: httpx.AsyncClient) -> DeadLetter:
    """The letter with its value, headers and reason opened by the service that sealed it (ServiceError: why not)."""
    if letter.sealed is None:
        return letter
    urls = {"scheduler": config.scheduler_url, "checkins": config.checkins_url, "notifier": config.notifier_url,
            "app": config.app_url}
    base = urls.get(letter.sealed.service)
    if base is None:
        raise ServiceError(f"sealed by {letter.sealed.service!r}, a service this CLI does not know")
    response = await client.post(base.rstrip("/") + OPEN_PATH, content=letter.model_dump_json(),
                                 headers={"Authorization": f"Bearer {operator_credential(config)}",
                                          "Content-Type": "application/json"})
    try:
        detail = response.json()
    except ValueError:
        detail = {"detail": response.text[:200]}
    if response.status_code != 200:
        raise ServiceError(f"{letter.sealed.service} answered {response.status_code}: "
                           f"{detail.get('detail') or detail.get('error')}")
    return letter.model_copy(update={"reason": detail["reason"], "headers": detail["headers"],
                                     "value_b64": detail["value_b64"] or "", "sealed": None})


async def replay(bootstrap: str, which: list[str] | None, config: CliConfig | None = None) -> Replay:
    config = config or CliConfig(kafka=bootstrap)
    letters = await read_dead_letters(bootstrap)
    wanted = None if which is None else {w if ":" in w else f"0:{w}" for w in which}
    result = Replay()
    chosen = []
    for ref, letter in letters:
        if wanted is not None and ref not in wanted:
            continue
        if letter.truncated:
            # It holds only the first bytes of its record (or none): replaying them would publish something else.
            result.refused[ref] = "only part of the original was kept (too large, or its household was erased)"
        else:
            chosen.append((ref, letter))
    producer = AIOKafkaProducer(**kafka_options(bootstrap), enable_idempotence=False)
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for ref, letter in chosen:
                try:
                    opened = await open_sealed(config, letter, client)
                except (ServiceError, httpx.HTTPError) as exc:
                    result.refused[ref] = str(exc) or type(exc).__name__
                    continue
                headers = [(k, base64.b64decode(v)) for k, v in opened.headers.items()]
                headers.append(("replayed_from_dlq", ref.encode()))
                await producer.send_and_wait(opened.source_topic, value=opened.value, key=opened.key, headers=headers)
                result.replayed.append(ref)
    finally:
        await producer.stop()
    return result
