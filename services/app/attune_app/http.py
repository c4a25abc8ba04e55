"""The household's pages: server-rendered, plain HTML forms (no JS needed), a CSRF token on every POST.

Sessions: an HttpOnly, SameSite=Lax cookie (Secure outside development) naming a server-side session (only
its hash is stored). CSRF: every form carries an HMAC of the browser's own cookie, checked on every POST.
Another household's ritual or occurrence is answered 404, as if it did not exist.
"""

# No `from __future__ import annotations` here: the routes' Annotated aliases (Me, Form) are local to
# build_http_app, and FastAPI must be able to evaluate them.

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import segno
from attune_contracts.catalog import template as find_template
from attune_runtime.http import HttpLimits, add_guards
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .adapters.aftercare import SqlAfterCare
from .adapters.dreams import SqlDreams
from .adapters.notifier import HttpNotifier
from .aftercare import AfterCare
from .aftercare_http import add_aftercare_routes
from .dreams import Dreams
from .dreams_http import add_dream_routes
from .ports import Refused, Unavailable
from .question_routes import add_question_routes
from .questions import today_questions
from .reach import add_reach_routes
from .service import WEEKDAY_NAMES, WEEKDAYS, catalog_by_step, form_token, form_token_valid, new_token
from .usecases import AppService, Session

log = logging.getLogger("attune.app")
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "attune_session"
BROWSER_COOKIE = "attune_browser"
SECURITY_HEADERS = {
    # Everything from this origin only; no inline script; the join link's token never leaves in a Referer.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ROLES = (("partner", "Partner"), ("parent", "Parent"), ("child", "Child"))


class SecurityHeaders:
    """Pure ASGI (Starlette's BaseHTTPMiddleware costs a task and a stream per request): adds the headers above
    to every answer that does not set them itself; static files stay cacheable."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.page = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        self.static = [h for h in self.page if h[0] != b"cache-control"]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.static if scope["path"].startswith("/static/") else self.page

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


class NotSignedIn(Exception):
    pass


@dataclass
class HttpOptions:
    form_key: bytes
    secure_cookies: bool
    public_url: str | None
    session_max_age_s: int
    limits: HttpLimits = field(default_factory=HttpLimits)
    ntfy_url: str = "https://ntfy.sh"
    email_relay: str | None = None


def _problem_words(exc: Unavailable) -> str:
    return (f"We couldn't reach {exc.what} just now, so nothing was sent or saved. What you see is the last we "
            f"knew. Please try again in a moment.")


def build_http_app(service: AppService, options: HttpOptions, *, registry: CollectorRegistry | None = None,
                   notifier: HttpNotifier | None = None) -> FastAPI:
    app = FastAPI(title="Attune", docs_url=None, redoc_url=None, openapi_url=None)
    add_guards(app, options.limits, registry=registry or CollectorRegistry(), service="app")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    app.add_middleware(SecurityHeaders)
    aftercare = AfterCare(service, SqlAfterCare(service.store.engine))

    def cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                            secure=options.secure_cookies, path="/")

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        browser = request.cookies.get(BROWSER_COOKIE)
        fresh = not browser or len(browser) > 100
        if fresh:
            browser = new_token()
        response = templates.TemplateResponse(request, name, {
            "csrf": form_token(options.form_key, browser or ""), **context}, status_code=status)
        if fresh:
            cookie(response, BROWSER_COOKIE, browser or "", None)
        return response

    def see(path: str) -> Response:
        return RedirectResponse(path, status_code=303)

    async def current(request: Request) -> Session:
        found = await service.session(request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise NotSignedIn()
        return found

    async def checked_form(request: Request) -> dict[str, Any]:
        form = await request.form()
        if not form_token_valid(options.form_key, request.cookies.get(BROWSER_COOKIE), str(form.get("csrf") or "")):
            raise StarletteHTTPException(403, "This form has expired or didn't come from this app. Go back, reload "
                                              "the page and try again.")
        return {key: form.getlist(key) if key in ("days", "participants") else str(form.get(key) or "").strip()
                for key in form}

    Me = Annotated[Session, Depends(current)]
    Form = Annotated[dict[str, Any], Depends(checked_form)]

    async def page_context(me: Session, household: dict[str, Any] | None = None,
                           members: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if members is None:
            household = await service.store.household(me.household_id)
            members = await service.store.members_of(me.household_id)
        household = household or {}
        me_row = next((m for m in members if m["member_id"] == me.member_id), {})
        return {"household": household, "members": members, "me": me_row,
                "child": me_row.get("role") == "child", "problem": None, "troubles": service.troubled()}

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.method == "GET":
            return see("/")
        return render(request, "message.html", {"title": "Please sign in again",
                                                "text": "This page needs you to be signed in on this phone."}, 401)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        words = {404: "We couldn't find that. It may belong to someone else, or no longer exist."}
        text = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else words.get(
            exc.status_code, "Something went wrong with that request.")
        return render(request, "message.html", {"title": "That didn't work", "text": text}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return render(request, "message.html", {"title": "That didn't work",
                                                "text": "That address or form wasn't complete."}, 422)

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> Response:
        return render(request, "message.html", {"title": "Not sent", "text": _problem_words(exc)}, 503)

    # ---- start together ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        if await service.session(request.cookies.get(SESSION_COOKIE)) is not None:
            return see("/today")
        return render(request, "start.html", {"roles": ROLES, "error": None, "values": {}})

    @app.post("/start")
    async def start(request: Request, form: Form) -> Response:
        try:
            _, token = await service.start_household(
                name=form.get("household_name", ""), kind=form.get("kind", "couple"),
                time_zone=form.get("time_zone", "") or "UTC", your_name=form.get("your_name", ""),
                role=form.get("role", "partner"))
        except (ValidationError, ValueError) as exc:
            return render(request, "start.html", {"roles": ROLES, "values": form,
                                                  "error": _validation_words(exc)}, 422)
        response = see("/household")
        cookie(response, SESSION_COOKIE, token, options.session_max_age_s)
        return response

    @app.get("/household", response_class=HTMLResponse)
    async def household(request: Request, me: Me) -> Response:
        return render(request, "household.html", {**await page_context(me), "roles": ROLES, "invite": None})

    @app.post("/invite", response_class=HTMLResponse)
    async def invite(request: Request, me: Me, form: Form) -> Response:
        try:
            token, expires = await service.invite(me, form.get("role", "partner"))
        except ValueError:
            raise StarletteHTTPException(422, "Choose partner, parent or child.") from None
        base = (options.public_url or str(request.base_url)).rstrip("/")
        link = f"{base}/join/{token}"
        qr = segno.make(link, error="m").svg_inline(scale=4, dark="#1f2a44", light="#ffffff", omitsize=True,
                                                   title="QR code of the join link")
        return render(request, "household.html", {**await page_context(me), "roles": ROLES,
                                                  "invite": {"link": link, "qr": qr, "expires": expires}})

    @app.get("/join/{token}", response_class=HTMLResponse)
    async def join_page(request: Request, token: str) -> Response:
        household_row, refusal, member_name = await service.invitation(token)
        if refusal is not None:
            return render(request, "message.html", {"title": "This link can't be used", "text": refusal}, 410)
        return render(request, "join.html", {"token": token, "household": household_row, "error": None,
                                             "member_name": member_name})

    @app.post("/join/{token}")
    async def join(request: Request, token: str, form: Form) -> Response:
        try:
            outcome = await service.join(token, form.get("your_name", ""))
        except (ValidationError, ValueError) as exc:
            household_row, _, member_name = await service.invitation(token)
            return render(request, "join.html", {"token": token, "household": household_row,
                                                 "error": _validation_words(exc), "member_name": member_name}, 422)
        if isinstance(outcome, str):
            return render(request, "message.html", {"title": "This link can't be used", "text": outcome}, 410)
        _, session_token = outcome
        response = see("/today")
        cookie(response, SESSION_COOKIE, session_token, options.session_max_age_s)
        return response

    @app.post("/signout")
    async def signout(request: Request, form: Form) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await service.end_session(token)
        response = see("/")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ---- rituals ----------------------------------------------------------------------------------

    @app.get("/rituals", response_class=HTMLResponse)
    async def rituals(request: Request, me: Me) -> Response:
        context = await page_context(me)
        return render(request, "rituals.html", {
            **context, "mine": await service.rituals(me), "aftercare": await aftercare.view(me),
            "steps": catalog_by_step(context["household"].get("kind", "couple")),
            "weekdays": [(d, WEEKDAY_NAMES[d]) for d in WEEKDAYS]})

    @app.post("/rituals")
    async def schedule(request: Request, me: Me, form: Form) -> Response:
        try:
            participants = [UUID(p) for p in form.get("participants", [])]
            await service.schedule(me, template_key=form.get("template", ""), days=form.get("days", []),
                                   local_time=form.get("local_time") or None, participants=participants)
        except Refused as exc:
            raise StarletteHTTPException(422, exc.reason) from None
        except (ValidationError, ValueError) as exc:
            raise StarletteHTTPException(422, _validation_words(exc)) from None
        return see("/rituals")

    @app.post("/rituals/{ritual_id}/consent")
    async def consent(request: Request, ritual_id: UUID, me: Me, form: Form) -> Response:
        if not await service.consent(me, ritual_id):
            raise StarletteHTTPException(404)
        return see("/rituals")

    # ---- today ------------------------------------------------------------------------------------

    async def today_page(request: Request, me: Me, problem: str | None = None, status: int = 200) -> Response:
        async with service.store.reading() as conn:  # the page the whole household opens most: one connection
            household, members, items = await service.today(me, conn)
            care = await aftercare.view(me, household, members, conn)
            questions = await today_questions(service, me, household, members, conn)
        context = await page_context(me, household, members)
        return render(request, "today.html", {**context, "items": items, "problem": problem, "aftercare": care,
                                              "questions": questions}, status)

    @app.get("/today", response_class=HTMLResponse)
    async def today(request: Request, me: Me) -> Response:
        return await today_page(request, me)

    @app.post("/checkins")
    async def check_in(request: Request, me: Me, form: Form) -> Response:
        status = form.get("status", "")
        closeness = form.get("closeness") or None
        try:
            occurrence_id = UUID(form.get("occurrence_id", ""))
            if status not in ("done", "skipped", "snoozed"):
                raise ValueError("choose done, skip or snooze")
            rating = int(closeness) if closeness else None
            if rating is not None and not 1 <= rating <= 5:
                raise ValueError("closeness is from 1 to 5")
        except ValueError as exc:
            raise StarletteHTTPException(422, f"That check-in wasn't complete: {exc}.") from None
        try:
            found = await service.check_in(me, occurrence_id, status=status, closeness=rating,
                                           note=form.get("note") or None)
        except Unavailable as exc:
            return await today_page(request, me, _problem_words(exc), 503)
        except Refused as exc:
            return await today_page(request, me, f"That wasn't recorded: {exc.reason}", 422)
        if not found:
            raise StarletteHTTPException(404)
        return see("/today")

    @app.post("/moments")
    async def moment(request: Request, me: Me, form: Form) -> Response:
        kind = form.get("kind", "")
        if kind not in ("positive", "negative"):
            raise StarletteHTTPException(422, "Choose a kind moment or a hard one.")
        if (await page_context(me))["child"]:  # the 5:1 ratio is the grown-ups' (a child's pages don't offer it)
            raise StarletteHTTPException(404)
        try:
            await service.log_moment(me, kind, form.get("note") or None)
        except Unavailable as exc:
            return await today_page(request, me, _problem_words(exc), 503)
        except Refused as exc:
            return await today_page(request, me, f"That wasn't recorded: {exc.reason}", 422)
        return see("/today")

    add_question_routes(app, service, current=current, checked_form=checked_form, today_page=today_page)

    # ---- how we're doing --------------------------------------------------------------------------

    @app.get("/progress", response_class=HTMLResponse)
    async def progress(request: Request, me: Me) -> Response:
        streaks, ratio, summary = await service.progress(me)
        for streak in streaks:
            found = find_template(streak["template"])
            streak["name"] = streak.get("title") or (found.title if found else streak["template"])
        return render(request, "progress.html", {**await page_context(me), "streaks": streaks, "ratio": ratio,
                                                 "summary": summary, "charts": await service.progress_charts(me)})

    @app.get("/manifest.webmanifest")
    async def manifest() -> Response:
        return Response((HERE / "static" / "manifest.webmanifest").read_bytes(),
                        media_type="application/manifest+json")

    add_dream_routes(app, Dreams(service, SqlDreams(service.store.engine)), render=render, current=current,
                     checked_form=checked_form, page_context=page_context, problem_words=_problem_words)
    add_aftercare_routes(app, aftercare, current=current, checked_form=checked_form)
    if notifier is not None:
        add_reach_routes(app, service, notifier, form_key=options.form_key, browser_cookie=BROWSER_COOKIE,
                         render=render, current=current, checked_form=checked_form, page_context=page_context,
                         ntfy_url=options.ntfy_url, email_relay=options.email_relay)
    return app


def _validation_words(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors(include_url=False)[:3]:
            where = ".".join(str(p) for p in error.get("loc", ()))
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"{_FIELD_WORDS.get(where, where)}: {message}" if where else message)
        return "Please check: " + "; ".join(parts)
    return f"Please check: {exc}"


_FIELD_WORDS = {"name": "household name", "time_zone": "time zone", "display_name": "your name",
                "local_time": "time"}
