"""The check-ins HTTP app: guards and error answers (JSON for programs, pages for people), the JSON API
(api.py) and the one-tap link pages (HTML)."""


import logging
from datetime import datetime
from html import escape
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from attune_contracts.catalog import TEMPLATES
from attune_contracts.credentials import CredentialVerifier
from attune_contracts.links import LinkAction, LinkClaims, LinkError, LinkSigner
from attune_contracts.messages import CheckInStatus
from attune_runtime import shortlinks
from attune_runtime.http import ASGIApp, HttpLimits, add_guards
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api import add_api_routes, describe, jsonable
from .metrics import Metrics
from .service import CheckIn, Occurrence, Rejected
from .usecases import CheckinsService, LinkRefused

log = logging.getLogger("attune.checkins.http")


MAX_TOKEN = 1000  # a link token is ~200 characters


def build_http_app(service: CheckinsService, signer: LinkSigner, verifier: CredentialVerifier, metrics: Metrics, *,
                   limits: HttpLimits | None = None, registry: CollectorRegistry | None = None) -> FastAPI:
    app = FastAPI(
        title="Attune check-ins",
        version="1.0.0",
        description="Check-ins, moments, streaks and summaries for one household. "
                    "Authenticate with `Authorization: Bearer <household or member credential>`.",
    )
    # No request here needs more than a few KB: a larger body is refused (413) before it is read whole, and
    # each credential (or address, for links) has a rate limit (429); both before parsing and authentication.
    add_guards(app, limits or HttpLimits(), registry=registry or CollectorRegistry(), service="checkins",
               respond=_refusal)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": describe(exc.errors()), "details": jsonable(exc.errors())}, status_code=422)

    # Starlette's class: also the router's own 404 and 405, and FastAPI's "error parsing the body".
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = _http_message(exc)
        if _is_link(request.url.path):  # a person on a phone, not a program: a page
            return page("That didn't work", message, status=exc.status_code)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        # Input validation should have refused it already; never a 500 for a value the database rejects.
        log.warning("request refused by the database: %s", type(exc.orig).__name__)
        message = "a value in this request cannot be stored (out of range or not valid text)"
        if _is_link(request.url.path):
            return page("We couldn't record that", message, status=422)
        return JSONResponse({"error": message}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(SqlPoolTimeout)
    @app.exception_handler(OSError)
    async def unavailable(request: Request, exc: Exception) -> Response:
        # Our database is away (restart, failover): not the request's fault, and nothing was recorded.
        log.warning("request not handled, the database is unavailable: %s", type(exc).__name__)
        message = "check-ins cannot be stored right now (the database is unavailable); nothing was recorded, try again"
        if _is_link(request.url.path):
            response: Response = page("Please try again in a moment", message, status=503)
        else:
            response = JSONResponse({"error": message}, status_code=503)
        response.headers["Retry-After"] = "5"
        return response

    add_api_routes(app, service, verifier)

    # ---- one-tap links ----------------------------------------------------------------------------

    async def _verify(token: str) -> tuple[LinkClaims, Occurrence, datetime | None] | HTMLResponse:
        if len(token) > MAX_TOKEN:
            metrics.link_failures.labels("malformed").inc()
            return page("This link can't be used", "This link is damaged. Open the reminder again and tap "
                        "its button, or check in from the app.", status=400)
        try:
            claims = signer.verify(token, now=service.clock.now())
        except LinkError as exc:
            metrics.link_failures.labels(exc.reason).inc()
            if exc.claims is not None:  # expired, but genuinely ours: say what it was for and what is recorded
                occurrence, checkin = await service.link_outcome(exc.claims)
                return outcome_page("This link has expired", str(exc), occurrence, checkin, status=410)
            return page("This link can't be used", str(exc), status=410 if exc.reason == "expired" else 400)
        try:
            occurrence, used_at = await service.link_preview(claims)
        except LinkRefused as exc:
            metrics.link_failures.labels(exc.reason).inc()
            return page("This link can't be used", str(exc), status=404)
        return claims, occurrence, used_at

    async def _used(claims: LinkClaims) -> HTMLResponse:
        occurrence, checkin = await service.link_outcome(claims)
        return outcome_page("Already recorded", "This link has already been used; your answer was recorded then. "
                            "Thank you!", occurrence, checkin, status=409)

    @app.get("/s/{code}", include_in_schema=False)
    async def short_link(code: str) -> Response:
        """An SMS's short link: on to the one-tap page of the token it stands for (the page records nothing
        until its button is pressed, so a phone's link preview opening this changes nothing)."""
        if not shortlinks.is_code(code):
            metrics.link_failures.labels("malformed").inc()
            return page("This link can't be used", "This link is incomplete. Open it again from the original "
                        "message.", status=400)
        try:
            token = await service.resolve_short_link(code)
        except LinkRefused as exc:
            metrics.link_failures.labels(exc.reason).inc()
            return page("This link can't be used", str(exc), status=410 if exc.reason == "expired" else 404)
        return Response(status_code=303, headers={
            "Location": f"/l/{quote(token, safe='')}", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
        })

    @app.get("/l/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def link_page(token: str) -> HTMLResponse:
        checked = await _verify(token)
        if isinstance(checked, HTMLResponse):
            return checked
        claims, occurrence, used_at = checked
        if occurrence.announced:  # tapped before its ritual: what is coming, and when this link will work
            return coming_page(claims, occurrence, service.clock.now(), status=200)
        if used_at is not None:
            metrics.link_failures.labels("replayed").inc()
            return await _used(claims)
        return confirm_page(token, claims, occurrence)

    @app.post("/l/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def link_submit(token: str, request: Request) -> HTMLResponse:
        checked = await _verify(token)
        if isinstance(checked, HTMLResponse):
            return checked
        claims, occurrence, _ = checked
        if occurrence.announced:
            metrics.link_failures.labels("not_yet_due").inc()
            return coming_page(claims, occurrence, service.clock.now(), status=409)
        form = parse_qs((await request.body()).decode("utf-8", "replace")[:1000])
        raw = (form.get("closeness") or [""])[0].strip()
        closeness = None
        if raw:
            if raw not in {"1", "2", "3", "4", "5"}:
                metrics.link_failures.labels("bad_rating").inc()
                return page("That rating didn't work", "Closeness is a number from 1 to 5.", status=400)
            closeness = int(raw)
        try:
            result = await service.use_link(claims, closeness)
        except LinkRefused as exc:
            metrics.link_failures.labels(exc.reason).inc()
            return await _used(claims)
        except Rejected as exc:
            metrics.link_failures.labels("rejected").inc()
            return page("We couldn't record that", exc.reason, status=422)
        return done_page(claims, occurrence, result.checkin.closeness)

    return app


def _is_link(path: str) -> bool:
    """A one-tap link's path: answered with a page for a person on a phone, not JSON for a program."""
    return path in ("/l", "/s") or path.startswith(("/l/", "/s/"))


def _refusal(path: str, status: int, message: str, headers: dict[str, str]) -> ASGIApp:
    """The guards' answers (413, 429, 400): a page on a one-tap link, JSON for a program."""
    if _is_link(path):
        if status == 429:
            response: Response = page("Please wait a moment", message[:1].upper() + message[1:] + ".", status=status)
        else:
            response = page("That didn't work", message + ". Open the link again from the reminder.", status=status)
        response.headers.update(headers)
        return response
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _http_message(exc: StarletteHTTPException) -> str:
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        return "the request body is not valid JSON (or is nested too deeply, or has a number too long)"
    return str(exc.detail)


# ---- HTML -------------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#fbf7f4;color:#2b2b2b}
main{max-width:28rem;margin:0 auto;padding:1.5rem 1.25rem}
h1{font-size:1.4rem;margin:.5rem 0 1rem}
p{line-height:1.5}
.when{color:#6b6b6b;font-size:.95rem}
form{margin:1.25rem 0}
.rate{display:flex;gap:.5rem;justify-content:space-between}
button{font-size:1.15rem;border:0;border-radius:.75rem;padding:.9rem 0;background:#c8553d;color:#fff;flex:1;
min-height:3rem;cursor:pointer}
button.plain{background:#e7dcd5;color:#2b2b2b;width:100%;margin-top:.75rem}
"""

_ACTION_WORDS = {LinkAction.DONE: "done", LinkAction.SKIP: "skipped this time", LinkAction.SNOOZE: "snoozed for now"}


def _html(title: str, body: str, status: int) -> HTMLResponse:
    document = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex\">"
        f"<title>{escape(title)} · Attune</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers={
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    })


def page(title: str, message: str, *, status: int) -> HTMLResponse:
    return _html(title, f"<p>{escape(message)}</p>", status)


def _ritual_name(occurrence: Occurrence) -> str:
    if occurrence.sensitive:
        known = TEMPLATES.get(occurrence.template)
        return (known.discreet_title if known and known.discreet_title else None) or "A moment for the two of you"
    return occurrence.title


def _when(occurrence: Occurrence) -> str:
    local = occurrence.scheduled_for.astimezone(ZoneInfo(occurrence.time_zone))
    return local.strftime("%A %d %B, %H:%M")


def confirm_page(token: str, claims: LinkClaims, occurrence: Occurrence) -> HTMLResponse:
    action = quote(f"/l/{token}", safe="/")
    name, when = escape(_ritual_name(occurrence)), escape(_when(occurrence))
    if claims.action is LinkAction.DONE:
        buttons = "".join(
            f'<button name="closeness" value="{n}" aria-label="closeness {n} of 5">{n}</button>' for n in range(1, 6)
        )
        body = (
            f'<p><strong>{name}</strong></p><p class="when">{when}</p>'
            "<p>Tap how close you felt, and we'll record it as done:</p>"
            f'<form method="post" action="{escape(action)}"><div class="rate">{buttons}</div>'
            '<button class="plain" name="closeness" value="">Just mark it done</button></form>'
        )
        return _html("Nice one!", body, 200)
    word = escape(_ACTION_WORDS[claims.action])
    body = (
        f'<p><strong>{name}</strong></p><p class="when">{when}</p>'
        f"<p>This will record it as {word}.</p>"
        f'<form method="post" action="{escape(action)}"><button class="plain">Confirm</button></form>'
    )
    return _html("Not this time?" if claims.action is LinkAction.SKIP else "Later, then", body, 200)


_RECORDED_WORDS = {CheckInStatus.DONE: "done", CheckInStatus.SKIPPED: "skipped this time",
                   CheckInStatus.SNOOZED: "snoozed"}


def outcome_page(title: str, message: str, occurrence: Occurrence | None, checkin: CheckIn | None, *,
                 status: int) -> HTMLResponse:
    """A link that records nothing more (used, or expired): what it was for and what is recorded now, so the
    person knows whether anything is left to do. Only what the link's own member recorded is shown."""
    parts = [f"<p>{escape(message)}</p>"]
    if occurrence is not None:
        name, when = escape(_ritual_name(occurrence)), escape(_when(occurrence))
        if checkin is None:
            state = "Nothing is recorded for you yet."
        else:
            rated = f" Closeness: {checkin.closeness} of 5." if checkin.closeness else ""
            state = f"It is recorded as {_RECORDED_WORDS[checkin.status]}.{rated}"
        parts.insert(0, f'<p><strong>{name}</strong></p><p class="when">{when}</p><p>{escape(state)}</p>')
    return _html(title, "".join(parts), status)


_WILL_DO = {LinkAction.DONE: "check in", LinkAction.SKIP: "skip it this time",
            LinkAction.SNOOZE: "ask to be reminded a little later"}


def coming_page(claims: LinkClaims, occurrence: Occurrence, now: datetime, *, status: int) -> HTMLResponse:
    """A reminder's link tapped before its ritual: what it is and when, and when this same link will work.
    Nothing is recorded (there is nothing to record yet), and the link is not used up."""
    name, when = escape(_ritual_name(occurrence)), escape(_when(occurrence))
    prompt = ""
    known = TEMPLATES.get(occurrence.template)
    if known is not None and not occurrence.sensitive:
        prompt = f"<p>{escape(known.short_prompt)}</p>"
    until = claims.expires_at.astimezone(ZoneInfo(occurrence.time_zone)).strftime("%A %d %B, %H:%M")
    if now < occurrence.scheduled_for:
        timing = (f"<p>Keep this message: from {when} this same link lets you {_WILL_DO[claims.action]}. "
                  f"It works until {escape(until)}.</p>")
    else:  # its time has come but the service has not opened it yet (a moment's delay)
        timing = ("<p>It is just opening for check-ins. Please try this link again in a minute or two; "
                  f"it works until {escape(until)}.</p>")
    body = f'<p><strong>{name}</strong></p><p class="when">{when}</p>{prompt}{timing}'
    return _html("Coming up", body, status)


def done_page(claims: LinkClaims, occurrence: Occurrence, closeness: int | None) -> HTMLResponse:
    name = escape(_ritual_name(occurrence))
    rated = f" Closeness: {closeness} of 5." if closeness else ""
    message = f"<p><strong>{name}</strong> is recorded as {escape(_ACTION_WORDS[claims.action])}.{escape(rated)}</p>"
    return _html("Recorded. Thank you!", message + "<p>You can close this page.</p>", 200)
