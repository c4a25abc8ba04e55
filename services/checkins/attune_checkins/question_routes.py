"""The day's question over HTTP: read it with its answers, answer it. A member credential acts as its member only;
a household credential reads who answered, never what."""

# No `from __future__ import annotations`: FastAPI must see the `caller` dependency itself, not its name.
from typing import Annotated, Any
from uuid import UUID

from attune_contracts.credentials import Scope
from attune_runtime.auth import Principal
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .question_rules import AnswerOutcome, QuestionRefused
from .service import MAX_NOTE
from .usecases import CheckinsService


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: UUID
    text: Annotated[str, Field(min_length=1, max_length=MAX_NOTE)]


def add_question_routes(app: FastAPI, service: CheckinsService, caller: Any) -> None:
    """`caller`: the API's dependency that checks a credential of the household in the path."""

    @app.get("/v1/households/{household_id}/questions/{occurrence_id}",
             summary="An occurrence's question and its answers: a partner's only once you have answered")
    async def question(household_id: UUID, occurrence_id: UUID, caller: caller) -> dict[str, Any]:
        try:
            return await service.question(household_id, occurrence_id, _member(caller))
        except QuestionRefused as exc:
            raise HTTPException(exc.status, exc.reason) from None

    @app.post("/v1/households/{household_id}/questions/{occurrence_id}/answers", status_code=201,
              summary="Answer an occurrence's question as yourself (once; the same words again change nothing)")
    async def answer(household_id: UUID, occurrence_id: UUID, caller: caller, body: AnswerRequest) -> JSONResponse:
        if _member(caller) != body.member_id:
            raise HTTPException(403, "an answer needs the member credential of the member who answers")
        try:
            outcome, view = await service.answer_question(household_id, occurrence_id, body.member_id, body.text)
        except QuestionRefused as exc:
            raise HTTPException(exc.status, exc.reason) from None
        return JSONResponse({"outcome": outcome.value, "question": view},
                            status_code=201 if outcome is AnswerOutcome.NEW else 200)


def _member(caller: Principal) -> UUID | None:
    return caller.member_id if caller.scope is Scope.MEMBER else None
