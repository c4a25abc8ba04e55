"""The authenticated HTTP API: preferences, channels (the only way in for an Apprise URL) and export, for a
member's own credential or its household's; delivery inspection (no message text) for an operator credential."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from typing import Annotated, Any
from uuid import UUID

from attune_contracts.content import known_locale
from attune_contracts.credentials import CredentialVerifier, Scope
from attune_contracts.messages import ChannelKind
from attune_contracts.types import IanaZone
from attune_runtime.auth import Authenticator, Principal
from attune_runtime.http import HttpLimits, add_guards
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .adapters.apprise_sender import MAX_URL_LENGTH, ChannelRejected, validate_channel_url
from .adapters.sql import SqlStore
from .metrics import NotifierMetrics
from .ports import Clock
from .probe import add_probe_routes
from .service import Recipient
from .webpush import SubscriptionRejected, WebPushSubscription

HHMM = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Category = Annotated[str, StringConstraints(pattern=r"^(\*|[a-z][a-z0-9_.\-]{0,63})$")]


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: HHMM
    end: HHMM


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time_zone: IanaZone | None = None
    quiet_hours: QuietHoursIn | None = None
    discreet: bool | None = None
    daily_cap: int | None = Field(default=None, ge=0, le=200)
    categories: dict[Category, list[ChannelKind]] | None = Field(default=None, max_length=50)
    locale: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$")] | None = Field(
        default=None, description="BCP 47 / CLDR locale of the member's messages (de, de-DE, en-US); "
        "null: the default (English, 24-hour clock)")

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str | None) -> str | None:
        if value is not None and known_locale(value) is None:
            raise ValueError("not a locale this service knows (try de, de-DE, en-GB, en-US)")
        return value


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    url: SecretStr = Field(description="an Apprise URL; stored encrypted, never shown again")
    kind: ChannelKind | None = None
    position: int | None = Field(default=None, ge=0, le=100)

    @field_validator("url")
    @classmethod
    def _bounded(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) > MAX_URL_LENGTH:
            raise ValueError(f"the channel URL is longer than {MAX_URL_LENGTH} characters")
        return value


class WebPushKeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class WebPushSubscriptionIn(BaseModel):
    """A browser's `PushSubscription.toJSON()`, as the PWA posts it, and where it goes in the channel order."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    endpoint: str = Field(max_length=1024)
    expirationTime: int | None = None  # the browser's name (PushSubscription.toJSON); unused
    keys: WebPushKeysIn
    position: int | None = Field(default=None, ge=0, le=100)


@dataclass(frozen=True)
class WebPushIntake:
    """What the API needs for web push: the public key browsers subscribe with, and the push service hosts a
    subscription's endpoint may be at (the notifier POSTs there)."""

    public_key: str
    allowed_hosts: list[str]


def preferences_out(r: Recipient) -> dict[str, Any]:
    return {
        "member_id": str(r.member_id), "household_id": str(r.household_id), "display_name": r.display_name,
        "time_zone": r.time_zone, "discreet": r.discreet, "daily_cap": r.daily_cap,
        "quiet_hours": ({"start": r.quiet_hours.start.strftime("%H:%M"), "end": r.quiet_hours.end.strftime("%H:%M")}
                        if r.quiet_hours else None),
        "categories": {k: [kind.value for kind in v] for k, v in r.categories.items()},
        "locale": r.locale,
    }


DELIVERY_STATUSES = ("pending", "deferred", "failed", "sent", "dead", "dropped", "unknown")


def delivery_out(d: Any) -> dict[str, Any]:
    """What a delivery's owner and an operator may see: never its message text (params) or error text."""
    return {
        "notification_id": str(d.notification_id), "purpose": d.purpose, "category": d.category,
        "cause_type": d.cause_type, "status": d.status, "reason": d.reason, "channel_kind": d.channel_kind,
        "attempts": d.total_attempts, "created_at": d.created_at.isoformat(),
        "sent_at": d.sent_at.isoformat() if d.sent_at else None,
    }


def build_http_app(store: SqlStore, metrics: NotifierMetrics, *, verifier: CredentialVerifier, clock: Clock,
                   limits: HttpLimits | None = None, registry: CollectorRegistry | None = None,
                   webpush: WebPushIntake | None = None, wake: Callable[[], None] | None = None) -> FastAPI:
    app = FastAPI(title="Attune notifier", version="1", docs_url=None, redoc_url=None, openapi_url="/v1/openapi.json")
    # Before routing, so before the credential check and before any body is parsed: 413 and 429 (per credential).
    add_guards(app, limits or HttpLimits(), registry=registry or CollectorRegistry(), service="notifier",
               respond=lambda path, status, message, headers: JSONResponse({"detail": message}, status, headers))
    authenticate = Authenticator(verifier, store.credentials_not_before, clock)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI echoes the offending input by default; a channel URL must never come back.
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # FastAPI's words when json.loads fails with something other than a syntax error.
            detail = "the request body is not valid JSON (nested too deeply, or not UTF-8)"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    # Depends(...) as defaults, not in Annotated: this module's annotations are strings, and FastAPI resolves
    # them in the module's globals, where these local dependencies are not.
    async def member_access(member_id: UUID, principal: Principal = Depends(authenticate)) -> Recipient:  # noqa: B008
        """The one check of every member endpoint: that member's own credential, or its household's."""
        if principal.scope is Scope.OPERATOR:
            raise HTTPException(403, "this needs the member's own credential or its household's; an operator "
                                     "credential reaches no member's preferences, channels or history")
        principal.acting_as(member_id)  # before the lookup: a member learns nothing about other member ids
        member = await store.get_member(member_id)
        if member is None:
            raise HTTPException(404, f"unknown member {member_id}: the notifier learns members from the "
                                     f"scheduler's MemberUpserted events")
        principal.for_member(member_id, member.household_id)
        return member

    async def operator_access(principal: Principal = Depends(authenticate)) -> Principal:  # noqa: B008
        return principal.operator()

    add_probe_routes(app, store, authenticate, clock, wake=wake)
    member_dependency = Depends(member_access)
    operator_dependency = Depends(operator_access)

    @app.get("/v1/members/{member_id}/preferences")
    async def get_preferences(member_id: UUID, member: Recipient = member_dependency) -> dict[str, Any]:
        return preferences_out(member)

    @app.put("/v1/members/{member_id}/preferences")
    async def put_preferences(member_id: UUID, body: PreferencesIn, member: Recipient = member_dependency) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        given = body.model_fields_set
        if "time_zone" in given and body.time_zone is not None:
            changes["time_zone"] = body.time_zone
        if "quiet_hours" in given:
            q = body.quiet_hours
            changes["quiet_start"] = q.start if q else None
            changes["quiet_end"] = q.end if q else None
            if q and time.fromisoformat(q.start) == time.fromisoformat(q.end):
                raise HTTPException(422, "quiet_hours start and end must differ")
        if "discreet" in given and body.discreet is not None:
            changes["discreet"] = body.discreet
        if "daily_cap" in given and body.daily_cap is not None:
            changes["daily_cap"] = body.daily_cap
        if "locale" in given:
            changes["locale"] = known_locale(body.locale)
        if "categories" in given:
            changes["categories"] = {k: [kind.value for kind in v] for k, v in (body.categories or {}).items()}
        updated = await store.update_preferences(member_id, changes, clock())
        assert updated is not None  # noqa: S101 - narrows a type; member_or_404 found it
        return preferences_out(updated)

    @app.post("/v1/members/{member_id}/channels", status_code=201)
    async def add_channel(member_id: UUID, body: ChannelIn, member: Recipient = member_dependency) -> dict[str, Any]:
        url = body.url.get_secret_value()
        if url.lstrip().lower().startswith(("vapid:", "webpush:")):
            # vapid:// reads key and subscription files (or URLs) named in the URL: never from a member's input.
            metrics.channel_registrations.labels(ChannelKind.PUSH.value, "rejected").inc()
            raise HTTPException(422, "web push is added as a browser subscription: POST it to "
                                     f"/v1/members/{member_id}/channels/webpush")
        try:
            guessed = await asyncio.to_thread(validate_channel_url, url)
        except ChannelRejected as exc:
            metrics.channel_registrations.labels(body.kind.value if body.kind else "unknown", "rejected").inc()
            raise HTTPException(422, f"invalid Apprise URL: {exc}") from None
        kind = body.kind or guessed
        ref = await store.add_channel(member, kind, url, body.position, clock())
        metrics.channel_registrations.labels(kind.value, "registered").inc()
        return {"channel_id": str(ref.channel_id), "kind": ref.kind.value, "position": ref.position}

    @app.get("/v1/webpush/vapid-public-key",
             summary="The VAPID public key a browser subscribes with (applicationServerKey); public, no credential")
    async def vapid_public_key() -> dict[str, Any]:
        if webpush is None:
            raise HTTPException(404, "web push is not set up on this notifier")
        return {"public_key": webpush.public_key}

    @app.post("/v1/members/{member_id}/channels/webpush", status_code=201,
              summary="Add a browser's web push subscription as one of the member's push channels (stored encrypted)")
    async def add_webpush(member_id: UUID, body: WebPushSubscriptionIn,
                          member: Recipient = member_dependency) -> Any:
        if webpush is None:
            raise HTTPException(404, "web push is not set up on this notifier")
        try:
            subscription = WebPushSubscription.checked(body.endpoint, body.keys.p256dh, body.keys.auth,
                                                       allowed_hosts=webpush.allowed_hosts)
        except SubscriptionRejected as exc:
            metrics.channel_registrations.labels(ChannelKind.PUSH.value, "rejected").inc()
            raise HTTPException(422, f"invalid web push subscription: {exc}") from None
        existing = await store.channel_holding(member_id, subscription.to_secret())
        if existing is not None:  # the same browser subscribing again (each tap on the button): one channel
            return JSONResponse({"channel_id": str(existing.channel_id), "kind": existing.kind.value,
                                 "position": existing.position, "webpush": True}, status_code=200)
        ref = await store.add_channel(member, ChannelKind.PUSH, subscription.to_secret(), body.position, clock())
        metrics.channel_registrations.labels(ChannelKind.PUSH.value, "registered").inc()
        return {"channel_id": str(ref.channel_id), "kind": ref.kind.value, "position": ref.position,
                "webpush": True}

    @app.get("/v1/members/{member_id}/channels")
    async def list_channels(member_id: UUID, member: Recipient = member_dependency) -> list[dict[str, Any]]:
        # `retired`: its destination is gone (a web push subscription the push service no longer knows), so it
        # is never used again; the person subscribes afresh and may delete this one.
        return [{"channel_id": str(c.channel_id), "kind": c.kind.value, "position": c.position,
                 "retired": retired_at is not None}
                for c, retired_at in await store.channel_states(member_id)]

    @app.delete("/v1/members/{member_id}/channels/{channel_id}", status_code=204)
    async def delete_channel(member_id: UUID, channel_id: UUID, member: Recipient = member_dependency) -> None:
        if not await store.delete_channel(member_id, channel_id):
            raise HTTPException(404, "no such channel for this member")

    async def member_export(member: Recipient) -> dict[str, Any]:
        history = await store.deliveries_for(member.member_id)
        return {
            "preferences": preferences_out(member),
            "channels": [{"kind": c.kind.value, "position": c.position}
                         for c in await store.list_channels(member.member_id)],
            "deliveries": [delivery_out(d) for d in history],
        }

    @app.get("/v1/members/{member_id}/export")
    async def export(member_id: UUID, member: Recipient = member_dependency) -> dict[str, Any]:
        return await member_export(member)

    async def household_access(household_id: UUID, principal: Principal = Depends(authenticate)) -> UUID:  # noqa: B008
        """The household's own credential (a member credential would read the other members' history)."""
        principal.household_itself(household_id, hint=" (a member exports its own: /v1/members/{member_id}/export)")
        return household_id

    @app.get("/v1/households/{household_id}/export",
             summary="Everything the notifier holds about the household's members (channel URLs are secrets and "
                     "are not exported: each member's channels by kind and order)")
    async def household_export(household_id: UUID = Depends(household_access)) -> dict[str, Any]:  # noqa: B008
        members = await store.household_members(household_id)
        if not members:
            if await store.is_erased(household_id):
                raise HTTPException(410, "this household was erased; the notifier keeps nothing of it")
            raise HTTPException(404, "this household has no members known to the notifier")
        return {"household_id": str(household_id),
                "members": [await member_export(m) for m in members.values()]}

    @app.get("/v1/deliveries", summary="Delivery inspection for operators: outcomes only, no message text")
    async def deliveries(
        _: Principal = operator_dependency,
        status: Annotated[str | None, Query(pattern="^(" + "|".join(DELIVERY_STATUSES) + ")$")] = None,
        household_id: UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        found = await store.recent_deliveries(status=status, household_id=household_id, limit=limit)
        # Ids, outcomes and times: enough to operate, nothing personal (no names, text, channel URLs or errors).
        return {"deliveries": [{**delivery_out(d), "household_id": str(d.household_id), "member_id": str(d.member_id),
                                "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None}
                               for d in found]}

    return app
