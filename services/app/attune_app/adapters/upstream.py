"""The app's ways out: commands onto the scheduler's topic, and the check-ins API with a member credential."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from attune_contracts import Publisher
from attune_contracts.credentials import CredentialIssuer
from attune_contracts.types import Contract
from faststream.kafka import KafkaBroker

from ..ports import Refused, Unavailable

log = logging.getLogger("attune.app")
PRODUCER = "attune-app"


class BrokerCommands:
    """Publishes at once and says so when the broker did not take it: the page tells the person, nothing is
    queued behind their back."""

    def __init__(self, broker: KafkaBroker, *, timeout_s: float = 5.0) -> None:
        self.broker, self.timeout_s = broker, timeout_s

        async def send(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
            await broker.publish(value, topic=topic, key=key, headers=headers)

        self.publisher = Publisher(send, producer=PRODUCER)

    async def send(self, payload: Contract, *, household_id: UUID) -> UUID:
        import asyncio

        try:
            async with asyncio.timeout(self.timeout_s):
                return (await self.publisher.publish(payload, household_id=household_id)).event_id
        except Exception as exc:  # noqa: BLE001 - the broker is away or refused: nothing was sent, say so
            log.warning("could not send %s: %s", type(payload).__name__, type(exc).__name__)
            raise Unavailable("the scheduler") from None


class HttpCheckins:
    def __init__(self, base_url: str, issuer: CredentialIssuer, *, timeout_s: float, ttl: timedelta,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.issuer, self.ttl = issuer, ttl
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)

    async def post(self, household_id: UUID, member_id: UUID, path: str, body: dict[str, Any]) -> None:
        await self._call("POST", household_id, member_id, path, body)

    async def get(self, household_id: UUID, member_id: UUID, path: str) -> dict[str, Any]:
        found = (await self._call("GET", household_id, member_id, path, None)).json()
        return found if isinstance(found, dict) else {}

    async def _call(self, method: str, household_id: UUID, member_id: UUID, path: str,
                    body: dict[str, Any] | None) -> httpx.Response:
        credential = self.issuer.member(household_id, member_id, ttl=self.ttl)
        try:
            response = await self.client.request(method, f"/v1/households/{household_id}/{path}", json=body,
                                                 headers={"Authorization": f"Bearer {credential}"})
        except httpx.HTTPError as exc:
            log.warning("check-ins API unreachable: %s", type(exc).__name__)
            raise Unavailable("check-ins") from None
        if response.status_code in (400, 404, 409, 422):
            try:
                reason = str(response.json().get("error", ""))[:300]
            except ValueError:
                reason = ""
            raise Refused(reason or "that wasn't accepted")
        if response.status_code >= 300:
            log.warning("check-ins API answered %d", response.status_code)
            raise Unavailable("check-ins")
        return response

    async def close(self) -> None:
        await self.client.aclose()
