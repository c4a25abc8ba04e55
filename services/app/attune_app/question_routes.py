"""Today's question: the one route that answers it (the question and its answers show on /today, in the
`_question.html` partial). Works without JavaScript: a plain form, then back to /today."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' Annotated aliases (see http.py).
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .ports import Refused, Unavailable
from .questions import answer
from .usecases import Session

MAX_ANSWER = 2000


def add_question_routes(app: FastAPI, service: Any, *, current: Callable[[Request], Awaitable[Session]],
                        checked_form: Callable[[Request], Awaitable[dict[str, Any]]],
                        today_page: Callable[..., Awaitable[Response]]) -> None:
    Me = Annotated[Session, Depends(current)]
    Form = Annotated[dict[str, Any], Depends(checked_form)]

    @app.post("/questions/{occurrence_id}/answer")
    async def answer_question(request: Request, occurrence_id: UUID, me: Me, form: Form) -> Response:
        text = form.get("answer", "")
        if not text:
            return await today_page(request, me, "Your answer was empty: write a few words, then send it.", 422)
        if len(text) > MAX_ANSWER:
            return await today_page(request, me, f"Your answer is {len(text)} characters long; please keep it "
                                                 f"under {MAX_ANSWER}.", 422)
        try:
            found = await answer(service, me, occurrence_id, text)
        except Unavailable as exc:
            return await today_page(request, me, f"Your answer wasn't sent: {exc.what} didn't answer. Nothing was "
                                                 "saved; please try again in a moment.", 503)
        except Refused as exc:
            return await today_page(request, me, f"That wasn't recorded: {exc.reason}", 422)
        if not found:
            raise StarletteHTTPException(404)
        return RedirectResponse("/today", status_code=303)
