"""The dreams board's pages: plain forms (no JS), a CSRF token on every POST, a person acts only as themselves
(a dream that isn't this household's, or isn't theirs to reach, is answered 404)."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' Annotated aliases (see http.py).

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .dreams import Dreams
from .ports import Refused, Unavailable
from .usecases import Session


def add_dream_routes(app: FastAPI, dreams: Dreams, *, render: Callable[..., Response],
                     current: Callable[[Request], Awaitable[Session]],
                     checked_form: Callable[[Request], Awaitable[dict[str, Any]]],
                     page_context: Callable[..., Awaitable[dict[str, Any]]],
                     problem_words: Callable[[Unavailable], str]) -> None:
    Me = Annotated[Session, Depends(current)]
    Form = Annotated[dict[str, Any], Depends(checked_form)]

    async def board_page(request: Request, me: Session, problem: str | None = None, status: int = 200) -> Response:
        context = await page_context(me)
        board, celebrate = await dreams.board(me, child=context["child"])
        return render(request, "dreams.html", {**context, "board": board, "celebrate": celebrate,
                                               "problem": problem}, status)

    @app.get("/dreams")
    async def board(request: Request, me: Me) -> Response:
        return await board_page(request, me)

    async def act(request: Request, me: Session, call: Awaitable[Any]) -> Response:
        try:
            found = await call
        except Unavailable as exc:
            return await board_page(request, me, problem_words(exc), 503)
        except Refused as exc:
            return await board_page(request, me, f"That wasn't saved: {exc.reason}", 422)
        if found is False:
            raise StarletteHTTPException(404)
        return RedirectResponse("/dreams", status_code=303)

    @app.post("/dreams")
    async def share(request: Request, me: Me, form: Form) -> Response:
        return await act(request, me, dreams.share(me, form.get("dream", ""), form.get("note") or None))

    @app.post("/dreams/{dream_id}/support")
    async def support(request: Request, dream_id: UUID, me: Me, form: Form) -> Response:
        child = (await page_context(me))["child"]
        return await act(request, me, dreams.support(me, dream_id, child=child))

    @app.post("/dreams/{dream_id}/reached")
    async def reached(request: Request, dream_id: UUID, me: Me, form: Form) -> Response:
        return await act(request, me, dreams.reach(me, dream_id))
