"""The scheduler's HTTP API: the household's export (what the scheduler holds about it), nothing else.

The household credential is checked in one dependency (`authorize`), the same check as the check-ins service's.
"""

# No `from __future__ import annotations`: FastAPI reads the local `Household` alias at definition time.
from typing import Annotated, Any
from uuid import UUID

from attune_runtime.credentials import check_household
from fastapi import Depends, FastAPI, Header, HTTPException, Path

from .adapters.sql import SqlStore


def build_http_app(store: SqlStore, token_secret: bytes | None) -> FastAPI:
    app = FastAPI(title="Attune scheduler", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/v1/openapi.json")

    async def authorize(
        household_id: Annotated[UUID, Path(description="the household's id")],
        authorization: Annotated[str | None, Header()] = None,
    ) -> UUID:
        return check_household(token_secret, household_id, authorization,
                               setting="ATTUNE_SCHEDULER_HOUSEHOLD_TOKEN_SECRET")

    Household = Annotated[UUID, Depends(authorize)]

    @app.get("/v1/households/{household_id}/export",
             summary="Everything the scheduler holds about the household: the household, members, rituals, rules")
    async def export(household_id: Household) -> dict[str, Any]:
        found = await store.export(household_id)
        if found is None:
            raise HTTPException(404, "this household is not known to the scheduler")
        if found.get("erased_at"):
            raise HTTPException(410, f"this household was erased on {found['erased_at'][:10]}; nothing is kept")
        return found

    return app
