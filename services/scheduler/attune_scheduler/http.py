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

from .model import HouseholdView
from .ports import Reads


def build_http_app(store: Reads, verifier: CredentialVerifier, now: Callable[[], datetime], *,
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
        view, waiting = await store.household(household_id)
        if view.erased_at is not None:
            raise HTTPException(410, f"this household was erased on {view.erased_at.date().isoformat()}; nothing is kept")
        if view.household is None:
            raise HTTPException(404, "this household is not known to the scheduler")
        return _export(view, waiting)

    return app


def _export(view: HouseholdView, waiting: int) -> dict[str, Any]:
    """What the scheduler holds about a household, as JSON."""
    h = view.household
    assert h is not None  # noqa: S101 - narrows a type; the caller answered 404 otherwise
    return {
        "household_id": str(h.id), "name": h.name, "time_zone": h.time_zone, "kind": h.kind.value,
        "members": [{"member_id": str(m.member_id), "display_name": m.display_name, "role": m.role.value}
                    for m in view.members.values()],
        "rituals": [{
            "ritual_id": str(r.id), "template": r.template, "title": r.title,
            "participants": [str(p) for p in r.participants], "rrule": r.rrule, "local_time": r.local_time,
            "start_date": r.start_date.isoformat(), "time_zone": r.time_zone,
            "reminder_offsets_minutes": list(r.reminder_offsets), "catch_up_minutes": r.catch_up_minutes,
            "sensitive": r.sensitive, "paused": r.paused, "consents": [str(c) for c in r.consents],
            "state": r.state.value, "next_due_at": r.next_due_at.isoformat() if r.next_due_at else None,
        } for r in view.rituals.values()],
        "events_waiting_to_be_published": waiting,
    }
