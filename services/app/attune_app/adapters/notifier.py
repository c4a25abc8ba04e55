"""The notifier's HTTP API, called with the person's own member credential (the app signs it, as for
check-ins): web push subscriptions, channels (email, ntfy), quiet hours and discreet mode. The VAPID public key
needs no credential."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from attune_contracts.credentials import CredentialIssuer

from ..ports import Refused, Unavailable

log = logging.getLogger("attune.app")
WHAT = "notifications"


class NotYetKnown(Refused):
    """The notifier has not heard of this member yet (it learns members from the scheduler's events)."""


class HttpNotifier:
    def __init__(self, base_url: str, issuer: CredentialIssuer, *, timeout_s: float, ttl: timedelta,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.issuer, self.ttl = issuer, ttl
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)

    async def _call(self, method: str, path: str, *, household_id: UUID | None = None,
                    member_id: UUID | None = None, body: Any = None) -> Any:
        headers = {}
        if household_id is not None and member_id is not None:
            credential = self.issuer.member(household_id, member_id, ttl=self.ttl)
            headers["Authorization"] = f"Bearer {credential}"
        try:
            response = await self.client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("notifier API unreachable: %s", type(exc).__name__)
            raise Unavailable(WHAT) from None
        if response.status_code == 404 and member_id is not None and "unknown member" in response.text:
            raise NotYetKnown("Your reminders are still being set up; please try again in a minute.")
        if response.status_code in (400, 404, 409, 422):
            raise Refused(_reason(response))
        if response.status_code == 429:  # the person asked too often (a test): their words, not an outage
            raise Refused(_reason(response))
        if response.status_code >= 300:
            log.warning("notifier API answered %d", response.status_code)
            raise Unavailable(WHAT)
        return response.json() if response.content else None

    async def vapid_public_key(self) -> str | None:
        """None when web push is not set up on the notifier."""
        try:
            found = await self._call("GET", "/v1/webpush/vapid-public-key")
        except Refused:
            return None
        return str(found["public_key"])

    def _member(self, member_id: UUID) -> str:
        return f"/v1/members/{member_id}"

    async def channels(self, household_id: UUID, member_id: UUID) -> list[dict[str, Any]]:
        return list(await self._call("GET", f"{self._member(member_id)}/channels", household_id=household_id,
                                     member_id=member_id))

    async def add_webpush(self, household_id: UUID, member_id: UUID, subscription: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", f"{self._member(member_id)}/channels/webpush", household_id=household_id,
                                     member_id=member_id, body=subscription))

    async def add_channel(self, household_id: UUID, member_id: UUID, url: str, kind: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"{self._member(member_id)}/channels", household_id=household_id,
                                     member_id=member_id, body={"url": url, "kind": kind}))

    async def remove_channel(self, household_id: UUID, member_id: UUID, channel_id: UUID) -> None:
        await self._call("DELETE", f"{self._member(member_id)}/channels/{channel_id}", household_id=household_id,
                         member_id=member_id)

    async def preferences(self, household_id: UUID, member_id: UUID) -> dict[str, Any]:
        return dict(await self._call("GET", f"{self._member(member_id)}/preferences", household_id=household_id,
                                     member_id=member_id))

    async def set_preferences(self, household_id: UUID, member_id: UUID, changes: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("PUT", f"{self._member(member_id)}/preferences", household_id=household_id,
                                     member_id=member_id, body=changes))

    async def send_test(self, household_id: UUID, member_id: UUID) -> dict[str, Any]:
        """Ask for a test message through the normal delivery path; its id and status."""
        return dict(await self._call("POST", f"{self._member(member_id)}/test", household_id=household_id,
                                     member_id=member_id))

    async def test_outcome(self, household_id: UUID, member_id: UUID, test_id: UUID) -> dict[str, Any]:
        return dict(await self._call("GET", f"{self._member(member_id)}/test/{test_id}", household_id=household_id,
                                     member_id=member_id))

    async def close(self) -> None:
        await self.client.aclose()


def _reason(response: httpx.Response) -> str:
    """The notifier's own words (never an echo of what was sent: its 422s carry no input)."""
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        return "that wasn't accepted"
    if isinstance(detail, list):
        detail = "; ".join(str(d.get("msg", "")) for d in detail[:3] if isinstance(d, dict))
    return str(detail)[:300] or "that wasn't accepted"
