"""'We just connected': one's own yes (from /rituals) and the discreet button (on /today). Plain forms, a CSRF
token on every POST; anyone who may not see it (a child, a parent-and-child household) gets 404."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' Annotated aliases (see http.py).

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .aftercare import AfterCare
from .ports import Refused
from .usecases import Session


def add_aftercare_routes(app: FastAPI, aftercare: AfterCare, *,
                         current: Callable[[Request], Awaitable[Session]],
                         checked_form: Callable[[Request], Awaitable[dict[str, Any]]]) -> None:
    Me = Annotated[Session, Depends(current)]
    Form = Annotated[dict[str, Any], Depends(checked_form)]

    async def done(call: Awaitable[bool], back: str) -> Response:
        try:
            found = await call
        except Refused as exc:
            raise StarletteHTTPException(422, f"That wasn't saved: {exc.reason}.") from None
        if not found:
            raise StarletteHTTPException(404)
        return RedirectResponse(back, status_code=303)

    @app.post("/aftercare/consent")
    async def consent(request: Request, me: Me, form: Form) -> Response:
        return await done(aftercare.consent(me, form.get("given") == "yes"), "/rituals")

    @app.post("/aftercare")
    async def start(request: Request, me: Me, form: Form) -> Response:
        return await done(aftercare.start(me), "/today")
