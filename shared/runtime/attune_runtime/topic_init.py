"""Create every catalog topic that is missing, then exit (docker-compose's `topic-init` step).

    python -m attune_runtime.topic_init
"""

from __future__ import annotations

import asyncio
import sys

from pydantic_settings import SettingsConfigDict

from .kafka import ensure_topics
from .settings import ServiceSettings


class TopicInitSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ATTUNE_", extra="ignore", frozen=True)


async def _run(settings: TopicInitSettings, attempts: int = 30) -> None:
    for attempt in range(1, attempts + 1):
        try:
            created = await ensure_topics(settings)
            print(f"topics ready ({len(created)} created)", flush=True)
            return
        except Exception as exc:  # noqa: BLE001 - the broker may still be starting
            print(f"broker {settings.kafka_bootstrap_servers} not ready ({type(exc).__name__}); "
                  f"retry {attempt}/{attempts}", flush=True)
            await asyncio.sleep(2)
    sys.exit(f"could not reach Kafka at {settings.kafka_bootstrap_servers}; check ATTUNE_KAFKA_BOOTSTRAP_SERVERS")


def main() -> None:
    asyncio.run(_run(TopicInitSettings()))


if __name__ == "__main__":
    main()
