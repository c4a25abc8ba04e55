"""Reach me: how Attune reaches this person's phone. Web Push from this app (its service worker at the root,
subscribed with the notifier's VAPID public key), an ntfy topic made for them (with a QR code for the ntfy
app), email, quiet hours and discreet mode. Everything goes to the notifier's API with the person's own member
credential; nothing is kept here. Without JS everything but web push works (plain forms)."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' Annotated aliases (see http.py).

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from uuid import UUID

import segno
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .adapters.notifier import WHAT, HttpNotifier
from .ports import Refused, Unavailable
from .service import form_token_valid
from .usecases import AppService, Session

HERE = Path(__file__).resolve().parent
EMAIL = re.compile(r"^[^@\s,;?&/#%\"<>]{1,64}@[A-Za-z0-9.-]{1,200}\.[A-Za-z]{2,63}$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
KIND_WORDS = {"push": "Notifications on a phone", "email": "Email", "sms": "Text message"}
MAX_SUBSCRIPTION_BYTES = 4096


def ntfy_channel(server: str, topic: str) -> tuple[str, str]:
    """The Apprise URL of a topic on an ntfy server, and the address a person subscribes to."""
    parts = urlsplit(server.rstrip("/"))
    scheme = "ntfys" if parts.scheme == "https" else "ntfy"
    return f"{scheme}://{parts.netloc}{parts.path}/{topic}", f"{server.rstrip('/')}/{topic}"


def email_channel(relay: str, address: str) -> str:
    """The relay's Apprise mail URL with the member's address as its recipient."""
    return f"{relay}{'&' if '?' in relay else '?'}to={quote(address, safe='@')}"


SETTLED = ("sent", "dead", "dropped", "deferred", "failed")
"""Outcomes worth showing at once (a failed attempt is retried, but the person learns something now)."""
FINAL = ("sent", "dead", "dropped")


def probe_words(outcome: dict[str, Any]) -> str:
    """What the page says about a test, from the notifier's outcome (status, channel kind, why)."""
    status, why = outcome.get("status"), outcome.get("why")
    how = {"push": " as a notification", "email": " by email", "sms": " by text message"}.get(
        str(outcome.get("channel_kind")), "")
    if status == "sent":
        return f"Sent{how}. If it didn't arrive, check that notifications are allowed for it on your phone."
    if status == "deferred":
        return f"Waiting: {why or 'it will go a little later'}."
    if status == "failed":
        return f"Not yet: {why or 'trying again'}."
    if status in ("dead", "dropped"):
        return f"It couldn't be sent: {why or 'none of your ways to be reached took it'}."
    return "It's on its way; we haven't heard back yet. Check again in a moment."


def add_reach_routes(app: FastAPI, service: AppService, notifier: HttpNotifier, *, form_key: bytes,
                     browser_cookie: str, render: Callable[..., Response],
                     current: Callable[[Request], Awaitable[Session]],
                     checked_form: Callable[[Request], Awaitable[dict[str, Any]]],
                     page_context: Callable[..., Awaitable[dict[str, Any]]],
                     ntfy_url: str, email_relay: str | None, test_wait_s: float = 5.0) -> None:
    Me = Annotated[Session, Depends(current)]
    Form = Annotated[dict[str, Any], Depends(checked_form)]

    async def through(call: Awaitable[Any]) -> Any:
        return await service._through(WHAT, call)  # the pages' "couldn't reach" notice

    @app.get("/sw.js")
    async def service_worker() -> Response:
        # At the root so its scope is the whole app; the header says so explicitly for browsers that ask.
        return Response((HERE / "static" / "push" / "sw.js").read_bytes(), media_type="text/javascript",
                        headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"})

    async def reach_page(request: Request, me: Session, *, problem: str | None = None, status: int = 200,
                         ntfy: dict[str, str] | None = None, test: dict[str, Any] | None = None) -> Response:
        context = await page_context(me)
        vapid_key, channels, preferences = None, None, None
        try:
            channels = await through(notifier.channels(me.household_id, me.member_id))
            preferences = await through(notifier.preferences(me.household_id, me.member_id))
            # Last: no button for a member the notifier doesn't know yet (their subscription would be refused).
            vapid_key = await through(notifier.vapid_public_key())
        except Unavailable as exc:
            problem = problem or (f"We couldn't reach {exc.what} just now, so these settings can't be shown or "
                                  f"changed. Please try again in a moment.")
        except Refused as exc:
            problem = problem or exc.reason
        context["troubles"] = service.troubled()  # as of these calls (one may have just answered again)
        for channel in channels or []:
            channel["words"] = KIND_WORDS.get(channel.get("kind", ""), "A channel")
        quiet = (preferences or {}).get("quiet_hours") or {}
        return render(request, "reach.html", {
            **context, "active": "reach", "problem": problem, "vapid_key": vapid_key, "channels": channels,
            "preferences": preferences, "quiet": quiet, "ntfy": ntfy, "email_ready": bool(email_relay), "test": test,
        }, status)

    async def changed(request: Request, me: Session, call: Awaitable[Any]) -> Response | None:
        """Runs a change; the page again with the words when it didn't work, None when it did."""
        try:
            await through(call)
        except Unavailable as exc:
            return await reach_page(request, me, status=503, problem=(
                f"We couldn't reach {exc.what} just now, so nothing was changed. Please try again in a moment."))
        except Refused as exc:
            return await reach_page(request, me, status=422, problem=f"That wasn't saved: {exc.reason}")
        return None

    @app.get("/reach")
    async def reach(request: Request, me: Me) -> Response:
        return await reach_page(request, me)

    @app.post("/reach/webpush")
    async def webpush(request: Request, me: Me) -> Response:
        """subscribe.js posts the browser's subscription here (JSON, CSRF token in X-CSRF-Token)."""
        if not form_token_valid(form_key, request.cookies.get(browser_cookie), request.headers.get("x-csrf-token", "")):
            return JSONResponse({"error": "This page has expired. Reload it and try again."}, 403)
        raw = await request.body()
        try:
            if len(raw) > MAX_SUBSCRIPTION_BYTES:
                raise ValueError("too large")
            posted = json.loads(raw)
            subscription = {"endpoint": str(posted["endpoint"]), "keys": {
                "p256dh": str(posted["keys"]["p256dh"]), "auth": str(posted["keys"]["auth"])}}
        except (ValueError, KeyError, TypeError, RecursionError):
            return JSONResponse({"error": "That isn't a push subscription."}, 422)
        try:
            channel = await through(notifier.add_webpush(me.household_id, me.member_id, subscription))
        except Unavailable as exc:
            return JSONResponse({"error": f"We couldn't reach {exc.what} just now."}, 503)
        except Refused as exc:
            return JSONResponse({"error": exc.reason}, 422)
        return JSONResponse({"channel_id": channel.get("channel_id")}, 201)

    @app.post("/reach/email")
    async def email(request: Request, me: Me, form: Form) -> Response:
        address = form.get("address", "")
        if not email_relay:
            raise StarletteHTTPException(404)
        if not EMAIL.match(address):
            return await reach_page(request, me, status=422,
                                    problem="Please check the email address: it should look like name@example.com.")
        failed = await changed(request, me, notifier.add_channel(me.household_id, me.member_id,
                                                                 email_channel(email_relay, address), "email"))
        return failed or RedirectResponse("/reach", status_code=303)

    @app.post("/reach/ntfy")
    async def ntfy(request: Request, me: Me, form: Form) -> Response:
        topic = "attune-" + secrets.token_urlsafe(18)
        url, link = ntfy_channel(ntfy_url, topic)
        failed = await changed(request, me, notifier.add_channel(me.household_id, me.member_id, url, "push"))
        if failed:
            return failed
        qr = segno.make(link, error="m").svg_inline(scale=4, dark="#1f2a44", light="#ffffff", omitsize=True,
                                                   title="QR code of your ntfy topic")
        return await reach_page(request, me, ntfy={"link": link, "topic": topic, "qr": qr})

    @app.post("/reach/preferences")
    async def preferences(request: Request, me: Me, form: Form) -> Response:
        start, end = form.get("quiet_start", ""), form.get("quiet_end", "")
        changes: dict[str, Any] = {"discreet": form.get("discreet") == "on"}
        if start or end:
            if not (HHMM.match(start) and HHMM.match(end)) or start == end:
                return await reach_page(request, me, status=422, problem=(
                    "Please give quiet hours as two different times, such as 22:00 and 07:00, or leave both empty."))
            changes["quiet_hours"] = {"start": start, "end": end}
        else:
            changes["quiet_hours"] = None
        failed = await changed(request, me, notifier.set_preferences(me.household_id, me.member_id, changes))
        return failed or RedirectResponse("/reach", status_code=303)

    async def test_page(request: Request, me: Session, test_id: UUID, wait_s: float) -> Response:
        """The page with how the test went, after waiting up to `wait_s` for the notifier to settle it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            try:
                outcome = await through(notifier.test_outcome(me.household_id, me.member_id, test_id))
            except Unavailable as exc:
                return await reach_page(request, me, status=503, problem=(
                    f"We couldn't reach {exc.what} just now to ask how the test went. Please check again in a moment."))
            except Refused:
                raise StarletteHTTPException(404) from None
            if outcome.get("status") in SETTLED or loop.time() >= deadline:
                break
            await asyncio.sleep(0.25)
        return await reach_page(request, me, test={"id": str(test_id), "words": probe_words(outcome),
                                                   "final": outcome.get("status") in FINAL})

    @app.post("/reach/test")
    async def send_test(request: Request, me: Me, form: Form) -> Response:
        try:
            asked = await through(notifier.send_test(me.household_id, me.member_id))
        except Unavailable as exc:
            return await reach_page(request, me, status=503, problem=(
                f"We couldn't reach {exc.what} just now, so no test was sent. Please try again in a moment."))
        except Refused as exc:
            return await reach_page(request, me, status=422, problem=f"No test was sent: {exc.reason}")
        return await test_page(request, me, UUID(asked["notification_id"]), test_wait_s)

    @app.get("/reach/test/{test_id}")
    async def test_again(request: Request, test_id: UUID, me: Me) -> Response:
        return await test_page(request, me, test_id, 0)

    @app.post("/reach/channels/{channel_id}/remove")
    async def remove(request: Request, channel_id: UUID, me: Me, form: Form) -> Response:
        failed = await changed(request, me, notifier.remove_channel(me.household_id, me.member_id, channel_id))
        return failed or RedirectResponse("/reach", status_code=303)
