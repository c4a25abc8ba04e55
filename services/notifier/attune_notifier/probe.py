"""'Send me a test': a member asks for a short test message to reach them, through the normal delivery path (their
channel order, quiet hours, retries, fallback and a recorded outcome), and then asks how it went.

Only for oneself: a member credential naming that member (a household or operator credential is refused), and
a rate limit per member on top of the shared guards' per-credential one (a test is a real send; a gateway may
charge for it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from attune_contracts.credentials import Scope
from attune_runtime.auth import Principal
from attune_runtime.http import TokenBuckets
from fastapi import Depends, FastAPI, HTTPException

from .adapters.sql import Delivery, SqlStore
from .service import Intent, Recipient, notification_id

PURPOSE = "test"
CAUSE_TYPE = "notifier.test_requested"
KEPT_FOR = timedelta(minutes=15)
"""A test not sent by then is dropped: its moment has passed."""
TITLE = "Attune: a test"
BODY = "This is the test you asked for. If you can read this, your reminders will reach you here too."

# What the person reads of each status (the app shows these words as they are).
STATUS_WORDS = {
    "pending": "on its way",
    "failed": "on its way (trying again)",
    "deferred": "waiting",
    "sent": "sent",
    "dead": "could not be delivered",
    "dropped": "not sent",
}

REASON_WORDS = {
    "stale": "it could only have reached you after your quiet hours, and a test is for now",
    "quiet_hours": "it's your quiet hours; it goes when they end",
    "daily_cap": "you've had today's share of messages",
    "no_channel": "there is no way to reach you set up yet",
    "channel_broken": "the channel refused it; check its address",
    "attempts_exhausted": "the channel didn't take it after several tries",
    "retrying": "the channel didn't answer; trying again",
    "outcome_unknown": "the channel didn't say whether it arrived; trying again",
}


def probe_intent(member: Recipient, now: datetime) -> Intent:
    cause = uuid.uuid4()
    return Intent(
        notification_id=notification_id(cause, member.member_id, PURPOSE), household_id=member.household_id,
        member_id=member.member_id, cause_event_id=cause, cause_type=CAUSE_TYPE, purpose=PURPOSE, category=PURPOSE,
        template="request", params={"title": TITLE, "body": BODY}, sensitive=False, occurred_at=now,
        not_before=now, expires_at=now + KEPT_FOR)


def outcome_of(d: Delivery) -> dict[str, Any]:
    """How a test went, without its words or the channel's address."""
    return {"notification_id": str(d.notification_id), "status": d.status, "words": STATUS_WORDS.get(d.status, d.status),
            "reason": d.reason, "why": REASON_WORDS.get(d.reason or ""), "channel_kind": d.channel_kind, "attempts": d.total_attempts,
            "sent_at": d.sent_at.isoformat() if d.sent_at else None}


def add_probe_routes(app: FastAPI, store: SqlStore, authenticate: Any, clock: Callable[[], datetime], *,
                     wake: Callable[[], None] | None = None, per_member: TokenBuckets | None = None) -> None:
    buckets = per_member or TokenBuckets(rate_per_s=1 / 20, burst=3)

    async def oneself(member_id: uuid.UUID, principal: Principal = Depends(authenticate)) -> Recipient:  # noqa: B008
        if principal.scope is not Scope.MEMBER:
            raise HTTPException(403, "a test is sent only to the member who asks, with their own member credential")
        principal.acting_as(member_id)
        member = await store.get_member(member_id)
        if member is None:
            raise HTTPException(404, f"unknown member {member_id}")
        principal.for_member(member_id, member.household_id)
        return member

    me = Depends(oneself)

    @app.post("/v1/members/{member_id}/test", status_code=202,
              summary="Send me a test: a short message through the normal delivery path")
    async def send_test(member_id: uuid.UUID, member: Recipient = me) -> dict[str, Any]:
        wait = buckets.take(str(member_id))
        if wait > 0:
            raise HTTPException(429, "a test was sent a moment ago; wait a little before the next",
                                headers={"Retry-After": str(max(1, round(wait)))})
        intent = probe_intent(member, clock())
        await store.insert_intents([intent], clock())
        if wake is not None:
            wake()
        return {"notification_id": str(intent.notification_id), "status": "pending", "words": STATUS_WORDS["pending"]}

    @app.get("/v1/members/{member_id}/test/{test_id}", summary="How a test went")
    async def test_outcome(member_id: uuid.UUID, test_id: uuid.UUID, member: Recipient = me) -> dict[str, Any]:
        found = await store.get_delivery(test_id)
        if found is None or found.member_id != member_id or found.purpose != PURPOSE:
            raise HTTPException(404, "no such test of yours")
        return outcome_of(found)
