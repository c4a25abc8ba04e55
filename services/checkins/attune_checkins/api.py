"""The check-ins JSON API: what a request may say, and the household endpoints behind a scoped credential.

Every call carries a household or member credential of the household in its path
(attune_contracts.credentials; `attune credentials issue` makes one). A member credential acts as that member
only; private notes are returned to their author alone (a member credential of that member): history and
export show other members' notes, and every note to a household credential, as withheld.
"""

# No `from __future__ import annotations`: FastAPI reads the route closures' annotations (Caller) at runtime.
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from attune_contracts.credentials import CredentialVerifier
from attune_contracts.messages import CheckInSource, CheckInStatus, LogMoment, MomentKind, SubmitCheckIn
from attune_runtime.auth import Authenticator, Principal
from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .service import MAX_NOTE, Outcome, Rejected
from .usecases import CheckinsService, checkin_json


def private_notes(document: Any, viewer: Principal) -> Any:
    """`document` with every note whose author is not the viewer withheld (note None, note_withheld True).
    A note is an item's `note` beside its `member_id`; the same walk serves history and export."""
    if isinstance(document, list):
        return [private_notes(item, viewer) for item in document]
    if not isinstance(document, dict):
        return document
    out = {key: private_notes(value, viewer) for key, value in document.items()}
    if out.get("note") is not None and "member_id" in out:
        author = UUID(str(out["member_id"]))
        if not viewer.may_read_private(author):
            out["note"], out["note_withheld"] = None, True
    return out


# Instants a person can mean; anything else (year 9999 minus an offset overflows when turned into UTC)
# is refused here with a reason rather than failing deeper down.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _instant(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year}")
    return utc


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (U+0000)")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_instant)]
NoteText = Annotated[str, Field(max_length=MAX_NOTE), AfterValidator(_text)]


class CheckInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    occurrence_id: UUID
    member_id: UUID
    status: CheckInStatus
    snoozed_until: Instant | None = None
    closeness: int | None = Field(default=None, ge=1, le=5, description="how close you felt, 1-5")
    note: NoteText | None = None


class MomentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: UUID
    kind: MomentKind
    note: NoteText | None = None
    happened_at: Instant | None = None
    moment_id: UUID | None = Field(default=None, description="send your own id to make retries safe")


def describe(errors: Any) -> str:
    parts = []
    for item in list(errors)[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {item.get('msg')}")
    return "; ".join(parts)


def jsonable(errors: Any) -> list[dict[str, Any]]:
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in list(errors)[:20]]


def add_api_routes(app: FastAPI, service: CheckinsService, verifier: CredentialVerifier) -> Any:
    """The /v1 endpoints, each behind `authorize`; returns that dependency (`Caller`) for the other routes."""
    authenticate = Authenticator(verifier, service.credentials_not_before, service.clock.now)

    async def authorize(
        household_id: Annotated[UUID, Path(description="the household's id")],
        principal: Annotated[Principal, Depends(authenticate)],
    ) -> Principal:
        """The one check of every API endpoint: a household or member credential of the household in the path."""
        return principal.for_household(household_id)

    Caller = Annotated[Principal, Depends(authorize)]

    @app.get("/v1/households/{household_id}/summary", summary="Streaks, this week's tallies, date nights, ratio")
    async def summary(household_id: UUID, caller: Caller) -> dict[str, Any]:
        found = await service.summary(household_id)
        if found is None:
            raise HTTPException(404, "this household is not known to the check-ins service yet")
        return found

    @app.get("/v1/households/{household_id}/checkins", summary="Check-in history, newest first, paged")
    async def history(
        household_id: UUID,
        caller: Caller,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        items, total = await service.history(household_id, page=page, page_size=page_size)
        return {
            "items": private_notes([checkin_json(c) for c in items], caller), "page": page, "page_size": page_size, "total": total,
            "next_page": page + 1 if page * page_size < total else None,
        }

    @app.post("/v1/households/{household_id}/checkins", summary="Record (or change) a member's check-in",
              status_code=201)
    async def submit(household_id: UUID, caller: Caller, body: CheckInRequest) -> JSONResponse:
        caller.acting_as(body.member_id)
        try:
            command = SubmitCheckIn(
                occurrence_id=body.occurrence_id, member_id=body.member_id, status=body.status,
                snoozed_until=body.snoozed_until, closeness=body.closeness, note=body.note,
                source=CheckInSource.API,
            )
        except ValidationError as exc:
            raise HTTPException(422, describe(exc.errors())) from None
        try:
            result = await service.submit(household_id, command)
        except Rejected as exc:
            raise HTTPException(422, exc.reason) from None
        return JSONResponse(
            {"outcome": result.outcome.value, "checkin": private_notes(checkin_json(result.checkin), caller)},
            status_code=201 if result.outcome is Outcome.NEW else 200,
        )

    @app.post("/v1/households/{household_id}/moments", summary="Log a positive or negative moment",
              status_code=201)
    async def moment(household_id: UUID, caller: Caller, body: MomentRequest) -> JSONResponse:
        caller.acting_as(body.member_id)
        moment_id = body.moment_id or uuid4()
        command = LogMoment(moment_id=moment_id, member_id=body.member_id, kind=body.kind, note=body.note,
                            happened_at=body.happened_at)
        try:
            created = await service.log_moment(household_id, command)
        except Rejected as exc:
            raise HTTPException(422, exc.reason) from None
        return JSONResponse({"moment_id": str(moment_id), "created": created}, status_code=201 if created else 200)

    @app.get("/v1/households/{household_id}/export",
             summary="Everything held about the household; private notes only to their author")
    async def export(household_id: UUID, caller: Caller) -> dict[str, Any]:
        found = await service.export(household_id)
        if found is None:
            raise HTTPException(404, "this household is not known to the check-ins service")
        return private_notes(found, caller)

    return Caller
