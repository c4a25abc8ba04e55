"""The API routes of the app's newer member flows, the dreams board and "we just connected" (member credential;
one acts only as oneself)."""

# No `from __future__ import annotations`: the routes' `caller` dependency is local to add_dream_routes, and FastAPI
# must be able to evaluate it.

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

from attune_contracts.types import Note, ShortText
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .dreams import Unknown
from .service import Rejected
from .usecases import CheckinsService


class DreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: UUID
    dream: ShortText = Field(description="the member's own words; kept sealed at rest, published to the household")
    note: Note | None = Field(default=None, description="private to its author")
    dream_id: UUID | None = Field(default=None, description="send your own id to make retries safe")


class MemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: UUID


def add_dream_routes(app: FastAPI, service: CheckinsService, caller: Any) -> None:
    """`caller` is the API's one dependency that authenticates a credential for the household in the path."""

    @app.post("/v1/households/{household_id}/dreams", summary="Share a dream on the dreams board", status_code=201)
    async def share(household_id: UUID, principal: caller, body: DreamRequest) -> JSONResponse:  # type: ignore[valid-type]
        principal.acting_as(body.member_id)
        dream_id = body.dream_id or uuid4()
        try:
            created = await service.share_dream(household_id, body.member_id, body.dream, body.note, dream_id)
        except Rejected as exc:
            raise HTTPException(422, exc.reason) from None
        return JSONResponse({"dream_id": str(dream_id), "created": created}, status_code=201 if created else 200)

    async def _act(change: Callable[[UUID, UUID, UUID], Awaitable[bool]], household_id: UUID, dream_id: UUID,
                   member_id: UUID) -> JSONResponse:
        try:
            changed = await change(household_id, dream_id, member_id)
        except Unknown:
            raise HTTPException(404, "no such dream in this household") from None
        except Rejected as exc:
            raise HTTPException(422, exc.reason) from None
        return JSONResponse({"dream_id": str(dream_id), "changed": changed}, status_code=201 if changed else 200)

    @app.post("/v1/households/{household_id}/dreams/{dream_id}/support", summary='Say "I support this"',
              status_code=201)
    async def support(household_id: UUID, dream_id: UUID, principal: caller,  # type: ignore[valid-type]
                      body: MemberRequest) -> JSONResponse:
        principal.acting_as(body.member_id)
        return await _act(service.support_dream, household_id, dream_id, body.member_id)

    @app.post("/v1/households/{household_id}/dreams/{dream_id}/reached",
              summary="Its owner reached the dream: an achievement to celebrate", status_code=201)
    async def reached(household_id: UUID, dream_id: UUID, principal: caller,  # type: ignore[valid-type]
                      body: MemberRequest) -> JSONResponse:
        principal.acting_as(body.member_id)
        return await _act(service.reach_dream, household_id, dream_id, body.member_id)


class ConsentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: UUID
    given: bool


class AfterCareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: UUID
    moment_id: UUID | None = Field(default=None, description="send your own id to make retries safe")


def add_aftercare_routes(app: FastAPI, service: CheckinsService, caller: Any) -> None:
    """'We just connected' (step 4): one's own yes, and starting it (both partners must have said yes)."""

    @app.post("/v1/households/{household_id}/aftercare/consent", summary='Say yes (or no) to "we just connected"')
    async def consent(household_id: UUID, principal: caller, body: ConsentRequest) -> JSONResponse:  # type: ignore[valid-type]
        principal.acting_as(body.member_id)
        try:
            changed = await service.aftercare_consent(household_id, body.member_id, body.given)
        except Rejected as exc:
            raise HTTPException(422, exc.reason) from None
        return JSONResponse({"given": body.given, "changed": changed})

    @app.post("/v1/households/{household_id}/aftercare", summary='"We just connected": start the after-care',
              status_code=201)
    async def start(household_id: UUID, principal: caller, body: AfterCareRequest) -> JSONResponse:  # type: ignore[valid-type]
        principal.acting_as(body.member_id)
        moment_id = body.moment_id or uuid4()
        try:
            started = await service.start_aftercare(household_id, body.member_id, moment_id)
        except Rejected as exc:
            raise HTTPException(422, exc.reason) from None
        return JSONResponse({"moment_id": str(moment_id), "started": started}, status_code=201 if started else 200)
