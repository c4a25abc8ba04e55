"""The scheduler's one API (the household export): who may read it, and the limits every Attune API has."""

from __future__ import annotations

import uuid

import httpx
from attune_contracts.credentials import development_issuer, verifier_from_setting
from attune_runtime.http import HttpLimits
from attune_scheduler.adapters.sql import SqlStore
from attune_scheduler.http import build_http_app

from .clock import FakeClock
from .helpers import RecordingSink, household_with_partners, make_scheduler


async def test_the_export_takes_the_households_own_credential_and_says_what_else_is_needed(
        store: SqlStore, clock: FakeClock, sink: RecordingSink) -> None:
    household, (ana, _) = await household_with_partners(make_scheduler(store, clock, sink))
    issuer, now = development_issuer(), clock.now()
    app = build_http_app(store, verifier_from_setting(None, development=True, setting="keys"), clock.now,
                         limits=HttpLimits(max_body_bytes=1024, rate_per_s=1000, rate_burst=1000))
    path = f"/v1/households/{household}/export"

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduler") as client:
        missing = await client.get(path)
        assert missing.status_code == 401 and "Authorization" in missing.json()["detail"]
        other = await client.get(path, headers=bearer(issuer.household(uuid.uuid4(), now=now)))
        assert other.status_code == 403 and str(household) in other.json()["detail"]
        member = await client.get(path, headers=bearer(issuer.member(household, ana, now=now)))
        assert member.status_code == 403 and "household credential" in member.json()["detail"]
        operator = await client.get(path, headers=bearer(issuer.operator(now=now)))
        assert operator.status_code == 403
        too_big = await client.request("GET", path, content=b"x" * 4096, headers=bearer(issuer.household(household, now=now)))
        assert too_big.status_code == 413 and too_big.json()["detail"]  # same shape as the API's other errors
        ours = await client.get(path, headers=bearer(issuer.household(household, now=now)))
        assert ours.status_code == 200
        assert {m["display_name"] for m in ours.json()["members"]} == {"Ana", "Ben"}
