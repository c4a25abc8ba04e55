"""The scheduler's HTTP API: the household's export (what the scheduler holds about it), nothing else.

Authenticated as every Attune API is (attune_runtime.auth): the household's own credential.
"""

# No `from __future__ import annotations`: FastAPI reads the local dependency at definition time.
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from attune_contracts.credentials import CredentialVerifier
from attune_runtime.auth import Authenticator, Principal
from attune_runtime.http import HttpLimits, add_guards
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from .adapters.sql import SqlStore


def build_http_app(store: SqlStore, verifier: CredentialVerifier, now: Callable[[], datetime], *,
                   limits: HttpLimits | None = None, registry: CollectorRegistry | None = None) -> FastAPI:
    app = FastAPI(title="Attune scheduler", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/v1/openapi.json")
    # As on every Attune API: 413 and 429 (per credential) before the credential is even read.
    add_guards(app, limits or HttpLimits(), registry=registry or CollectorRegistry(), service="scheduler",
               respond=lambda path, status, message, headers: JSONResponse({"detail": message}, status, headers))
    authenticate = Authenticator(verifier, store.credentials_not_before, now)

    async def household_access(household_id: UUID, principal: Principal = Depends(authenticate)) -> UUID:  # noqa: B008
        """The one check of this API: the household's own credential."""
        principal.household_itself(household_id)
        return household_id

    @app.get("/v1/households/{household_id}/export",
             summary="Everything the scheduler holds about the household: the household, members, rituals, rules")
    async def export(household_id: UUID = Depends(household_access)) -> dict[str, Any]:  # noqa: B008
        found = await store.export(household_id)
        if found is None:
            raise HTTPException(404, "this household is not known to the scheduler")
        if found.get("erased_at"):
            raise HTTPException(410, f"this household was erased on {found['erased_at'][:10]}; nothing is kept")
        return found

    return app
