"""The check-ins HTTP app: guards and error answers (JSON for programs, pages for people), the JSON API
(api.py) and the one-tap link pages (HTML)."""


import logging
from collections.abc import Callable
from datetime import datetime
from html import escape
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

from attune_contracts import content as words
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
from .dreams_http import add_aftercare_routes, add_dream_routes
from .metrics import Metrics
from .question_routes import add_question_routes
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
            return page(_PAGE["failed"], message, status=exc.status_code, locale=browser_locale(request))
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        # Input validation should have refused it already; never a 500 for a value the database rejects.
        log.warning("request refused by the database: %s", type(exc.orig).__name__)
        message = "a value in this request cannot be stored (out of range or not valid text)"
        if _is_link(request.url.path):
            return page(_PAGE["not_recorded"], _PAGE["unstorable"], status=422, locale=browser_locale(request))
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
            response: Response = page(_PAGE["try_again"], _PAGE["unavailable"], status=503,
                                      locale=browser_locale(request))
        else:
            response = JSONResponse({"error": message}, status_code=503)
        response.headers["Retry-After"] = "5"
        return response

    caller = add_api_routes(app, service, verifier)
    add_dream_routes(app, service, caller)
    add_aftercare_routes(app, service, caller)
    add_question_routes(app, service, caller)

    # ---- one-tap links ----------------------------------------------------------------------------

    async def _verify(token: str, request: Request) -> tuple[LinkClaims, Occurrence, datetime | None] | HTMLResponse:
        if len(token) > MAX_TOKEN:
            metrics.link_failures.labels("malformed").inc()
            return page(_PAGE["unusable"], _PAGE["damaged"], status=400, locale=browser_locale(request))
        try:
            claims = signer.verify(token, now=service.clock.now())
        except LinkError as exc:
            metrics.link_failures.labels(exc.reason).inc()
            if exc.claims is not None:  # expired, but genuinely ours: say what it was for and what is recorded
                occurrence, checkin = await service.link_outcome(exc.claims)
                return outcome_page(_PAGE["expired_title"], str(exc), occurrence, checkin, status=410,
                                    locale=exc.claims.locale)
            return page(_PAGE["unusable"], str(exc), status=410 if exc.reason == "expired" else 400,
                        locale=browser_locale(request))
        try:
            occurrence, used_at = await service.link_preview(claims)
        except LinkRefused as exc:
            metrics.link_failures.labels(exc.reason).inc()
            return page(_PAGE["unusable"], str(exc), status=404, locale=claims.locale)
        return claims, occurrence, used_at

    async def _closed(claims: LinkClaims, occurrence: Occurrence) -> HTMLResponse | None:
        """A link tapped after its ritual's deadline (its links outlive it): what is recorded, in words, rather
        than a form the service would refuse with a timestamp."""
        if service.clock.now() <= occurrence.deadline:
            return None
        metrics.link_failures.labels("closed").inc()
        occurrence, checkin = await service.link_outcome(claims)
        message = words.translator(claims.locale)(_PAGE["closed"]).format(
            when=_local(occurrence.deadline, occurrence, claims.locale) if occurrence else "")
        return outcome_page(_PAGE["closed_title"], message, occurrence, checkin, status=410, locale=claims.locale)

    async def _used(claims: LinkClaims) -> HTMLResponse:
        occurrence, checkin = await service.link_outcome(claims)
        return outcome_page(_PAGE["used_title"], _PAGE["used"], occurrence, checkin, status=409, locale=claims.locale)

    @app.get("/s/{code}", include_in_schema=False)
    async def short_link(code: str, request: Request) -> Response:
        """An SMS's short link: on to the one-tap page of the token it stands for (the page records nothing
        until its button is pressed, so a phone's link preview opening this changes nothing)."""
        if not shortlinks.is_code(code):
            metrics.link_failures.labels("malformed").inc()
            return page(_PAGE["unusable"], _PAGE["incomplete"], status=400, locale=browser_locale(request))
        try:
            token = await service.resolve_short_link(code)
        except LinkRefused as exc:
            metrics.link_failures.labels(exc.reason).inc()
            return page(_PAGE["unusable"], str(exc), status=410 if exc.reason == "expired" else 404,
                        locale=browser_locale(request))
        return Response(status_code=303, headers={
            "Location": f"/l/{quote(token, safe='')}", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
        })

    @app.get("/l/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def link_page(token: str, request: Request) -> HTMLResponse:
        checked = await _verify(token, request)
        if isinstance(checked, HTMLResponse):
            return checked
        claims, occurrence, used_at = checked
        if occurrence.announced:  # tapped before its ritual: what is coming, and when this link will work
            return coming_page(claims, occurrence, service.clock.now(), status=200)
        if used_at is not None:
            metrics.link_failures.labels("replayed").inc()
            return await _used(claims)
        return await _closed(claims, occurrence) or confirm_page(
            token, claims, occurrence, await service.question_text(claims.household_id, occurrence.occurrence_id))

    @app.post("/l/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def link_submit(token: str, request: Request) -> HTMLResponse:
        checked = await _verify(token, request)
        if isinstance(checked, HTMLResponse):
            return checked
        claims, occurrence, _ = checked
        if occurrence.announced:
            metrics.link_failures.labels("not_yet_due").inc()
            return coming_page(claims, occurrence, service.clock.now(), status=409)
        if (closed := await _closed(claims, occurrence)) is not None:
            return closed
        form = parse_qs((await request.body()).decode("utf-8", "replace")[:1000])
        raw = (form.get("closeness") or [""])[0].strip()
        closeness = None
        if raw:
            if raw not in {"1", "2", "3", "4", "5"}:
                metrics.link_failures.labels("bad_rating").inc()
                return page(_PAGE["bad_rating_title"], _PAGE["bad_rating"], status=400, locale=claims.locale)
            closeness = int(raw)
        try:
            result = await service.use_link(claims, closeness)
        except LinkRefused as exc:
            metrics.link_failures.labels(exc.reason).inc()
            return await _used(claims)
        except Rejected as exc:
            metrics.link_failures.labels("rejected").inc()
            return page(_PAGE["not_recorded"], exc.reason, status=422, locale=claims.locale)
        return done_page(claims, occurrence, result.checkin.closeness)

    return app


def _is_link(path: str) -> bool:
    """A one-tap link's path: answered with a page for a person on a phone, not JSON for a program."""
    return path in ("/l", "/s") or path.startswith(("/l/", "/s/"))


def _refusal(path: str, status: int, message: str, headers: dict[str, str]) -> ASGIApp:
    """The guards' answers (413, 429, 400): a page on a one-tap link, JSON for a program."""
    if _is_link(path):  # before the request is read: no token and no headers to learn a language from
        if status == 429:
            response: Response = page(_PAGE["wait"], message[:1].upper() + message[1:] + ".", status=status)
        else:
            response = page(_PAGE["failed"], message + ". " + _PAGE["open_again"], status=status)
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

_PAGE = words.LINK_PAGE


def browser_locale(request: Request) -> str | None:
    """For a page whose link says nothing (damaged, unknown): the first language of the browser's
    Accept-Language that the catalog speaks; None (the default) when none."""
    for part in request.headers.get("accept-language", "")[:200].split(","):
        tag = words.known_locale(part.split(";")[0].strip())
        if tag is not None and tag.split("_")[0] in words.LANGUAGES:
            return tag
    return None


def _html(title: str, body: str, status: int, locale: str | None) -> HTMLResponse:
    """A page in the reader's language: `title` a msgid, `body` already in their words."""
    title = words.translator(locale)(title)
    language = words.normalise_locale(locale).split("_")[0]
    language = language if language in words.LANGUAGES else words.SOURCE_LANGUAGE  # no catalog: English words
    document = (
        f"<!doctype html><html lang=\"{escape(language)}\"><head><meta charset=\"utf-8\">"
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
        "Content-Language": language,
    })


def page(title: str, message: str, *, status: int, locale: str | None = None) -> HTMLResponse:
    """A page of one sentence: a catalog text is translated, any other (a reason from a deeper layer) shown as is."""
    return _html(title, f"<p>{escape(words.translator(locale)(message))}</p>", status, locale)


def _ritual_name(occurrence: Occurrence, tr: Callable[[str], str]) -> str:
    if occurrence.sensitive:
        known = TEMPLATES.get(occurrence.template)
        return tr((known.discreet_title if known and known.discreet_title else None) or words.NEUTRAL_TITLE)
    return tr(occurrence.title)


def _local(instant: datetime, occurrence: Occurrence, locale: str | None) -> str:
    return words.format_moment(instant.astimezone(ZoneInfo(occurrence.time_zone)), locale)


def _heading(occurrence: Occurrence, locale: str | None) -> str:
    """The ritual's name and time, at the top of every page about one occurrence."""
    name = escape(_ritual_name(occurrence, words.translator(locale)))
    return f'<p><strong>{name}</strong></p><p class="when">{escape(_local(occurrence.scheduled_for, occurrence, locale))}</p>'


_CONFIRM = {LinkAction.SKIP: ("skip_title", "confirm_skip"), LinkAction.SNOOZE: ("snooze_title", "confirm_snooze")}


def confirm_page(token: str, claims: LinkClaims, occurrence: Occurrence, question: str | None = None) -> HTMLResponse:
    tr = words.translator(claims.locale)
    action = escape(quote(f"/l/{token}", safe="/"))
    head = _heading(occurrence, claims.locale)
    if question:  # the day's question this occurrence asked: the link's page shows it too
        head += f'<p class="question">{escape(tr(_PAGE["question"]))} <strong>{escape(tr(question))}</strong></p>'
    if claims.action is LinkAction.DONE:
        buttons = "".join(
            f'<button name="closeness" value="{n}" aria-label="{escape(tr(_PAGE["rate_label"]).format(n=n))}">{n}'
            "</button>" for n in range(1, 6)
        )
        body = (
            f"{head}<p>{escape(tr(_PAGE['rate']))}</p>"
            f'<form method="post" action="{action}"><div class="rate">{buttons}</div>'
            f'<button class="plain" name="closeness" value="">{escape(tr(_PAGE["just_done"]))}</button></form>'
        )
        return _html(_PAGE["done_title"], body, 200, claims.locale)
    title, sentence = _CONFIRM[claims.action]
    body = (
        f"{head}<p>{escape(tr(_PAGE[sentence]))}</p>"
        f'<form method="post" action="{action}"><button class="plain">{escape(tr(_PAGE["confirm"]))}</button></form>'
    )
    return _html(_PAGE[title], body, 200, claims.locale)


_STATE = {CheckInStatus.DONE: "state_done", CheckInStatus.SKIPPED: "state_skipped",
          CheckInStatus.SNOOZED: "state_snoozed"}


def _closeness(closeness: int | None, tr: Callable[[str], str]) -> str:
    return " " + tr(_PAGE["closeness"]).format(closeness=closeness) if closeness else ""


def outcome_page(title: str, message: str, occurrence: Occurrence | None, checkin: CheckIn | None, *,
                 status: int, locale: str | None = None) -> HTMLResponse:
    """A link that records nothing more (used, or expired): what it was for and what is recorded now, so the
    person knows whether anything is left to do. Only what the link's own member recorded is shown."""
    tr = words.translator(locale)
    parts = [f"<p>{escape(tr(message))}</p>"]
    if occurrence is not None:
        if checkin is None:
            state = tr(_PAGE["nothing_yet"])
        else:
            state = tr(_PAGE[_STATE[checkin.status]]) + _closeness(checkin.closeness, tr)
        parts.insert(0, f"{_heading(occurrence, locale)}<p>{escape(state)}</p>")
    return _html(title, "".join(parts), status, locale)


_COMING = {LinkAction.DONE: "coming_done", LinkAction.SKIP: "coming_skip", LinkAction.SNOOZE: "coming_snooze"}


def coming_page(claims: LinkClaims, occurrence: Occurrence, now: datetime, *, status: int) -> HTMLResponse:
    """A reminder's link tapped before its ritual: what it is and when, and when this same link will work.
    Nothing is recorded (there is nothing to record yet), and the link is not used up."""
    tr = words.translator(claims.locale)
    prompt = ""
    known = TEMPLATES.get(occurrence.template)
    if known is not None and not occurrence.sensitive:
        prompt = f"<p>{escape(tr(known.short_prompt))}</p>"
    until = _local(claims.expires_at, occurrence, claims.locale)
    if now < occurrence.scheduled_for:
        when = _local(occurrence.scheduled_for, occurrence, claims.locale)
        timing = tr(_PAGE[_COMING[claims.action]]).format(when=when, until=until)
    else:  # its time has come but the service has not opened it yet (a moment's delay)
        timing = tr(_PAGE["opening"]).format(until=until)
    body = f"{_heading(occurrence, claims.locale)}{prompt}<p>{escape(timing)}</p>"
    return _html(_PAGE["coming_title"], body, status, claims.locale)


_RECORDED = {LinkAction.DONE: "recorded_done", LinkAction.SKIP: "recorded_skip", LinkAction.SNOOZE: "recorded_snooze"}


def done_page(claims: LinkClaims, occurrence: Occurrence, closeness: int | None) -> HTMLResponse:
    tr = words.translator(claims.locale)
    name = f"<strong>{escape(_ritual_name(occurrence, tr))}</strong>"
    recorded = escape(tr(_PAGE[_RECORDED[claims.action]])).format(ritual=name) + escape(_closeness(closeness, tr))
    return _html(_PAGE["recorded_title"], f"<p>{recorded}</p><p>{escape(tr(_PAGE['close_page']))}</p>", 200,
                 claims.locale)
