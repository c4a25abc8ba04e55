"""Notification requests from other services, and the outcome of every delivery (owned by the notifier)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from ..registry import message
from ..topics import Topic
from ..types import Contract, Key, PrivateBody, PrivateText, Reason, UtcDatetime

__all__ = [
    "ChannelKind",
    "NotificationDeadLettered",
    "NotificationDropped",
    "NotificationFailed",
    "NotificationRequested",
    "NotificationSent",
    "QuestionAsked",
    "QuestionBank",
    "ShortLinkIssued",
]


class ChannelKind(StrEnum):
    PUSH = "push"
    SMS = "sms"
    EMAIL = "email"


@message("notifications.notification_requested", kind="event", topic=Topic.NOTIFICATION_REQUESTS)
class NotificationRequested(Contract):
    """Another service asks the notifier to reach a member with a message of its own."""

    member_id: UUID
    purpose: Key = Field(description="what the message is for; part of the de-duplication key")
    category: Key = "general"
    title: PrivateText
    body: PrivateBody
    expires_at: UtcDatetime | None = None
    discreet_title: PrivateText | None = None


class NotificationOutcome(Contract):
    notification_id: UUID = Field(description="uuid5 of cause event id, member id and purpose")
    cause_event_id: UUID
    cause_type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    member_id: UUID
    purpose: Key
    channel_kind: ChannelKind | None = None
    attempts: int = Field(ge=0)


@message("notifications.notification_sent", kind="event", topic=Topic.NOTIFICATION_OUTCOMES)
class NotificationSent(NotificationOutcome):
    """A notification reached a channel."""

    delivered_at: UtcDatetime
    latency_seconds: float = Field(ge=0, description="cause event's occurred_at to delivery")


@message("notifications.notification_failed", kind="event", topic=Topic.NOTIFICATION_OUTCOMES)
class NotificationFailed(NotificationOutcome):
    """One delivery attempt failed; another is planned at `next_attempt_at` (on this or the next channel)."""

    error: Reason
    next_attempt_at: UtcDatetime | None = None


@message("notifications.notification_dead_lettered", kind="event", topic=Topic.NOTIFICATION_OUTCOMES)
class NotificationDeadLettered(NotificationOutcome):
    """Every attempt on every channel failed; the notification was given up."""

    reason: Reason


@message("notifications.notification_dropped", kind="event", topic=Topic.NOTIFICATION_OUTCOMES)
class NotificationDropped(NotificationOutcome):
    """A notification was deliberately not sent: stale after quiet hours, already done, over the cap."""

    reason: Key


@message("notifications.short_link_issued", kind="event", topic=Topic.SHORT_LINKS)
class ShortLinkIssued(Contract):
    """The notifier put a short link in an SMS; the check-ins service keeps this to resolve it. Nothing here
    is usable without the code, which only the SMS carries (see attune_runtime.shortlinks)."""

    code_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 of the code (with a fixed prefix), hex")
    sealed_token: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="the one-tap link token, encrypted with a key derived from the code")
    expires_at: UtcDatetime = Field(description="when the token expires; the code with it")


class QuestionBank(StrEnum):
    ADULT = "adult"
    CHILD = "child"


@message("notifications.question_asked", kind="event", topic=Topic.QUESTIONS)
class QuestionAsked(Contract):
    """The day's open-ended question a household's ritual asked at one occurrence (once per occurrence).

    The notifier picks it when the ritual is due; check-ins accepts answers to it and the app shows it. Only the
    catalog key travels (`attune_contracts.catalog.question_by_key`): each reader shows it in its own language."""

    occurrence_id: UUID
    ritual_id: UUID
    template: Key
    bank: QuestionBank
    question_key: Key = Field(description="attune_contracts.catalog.question_key of the question's text")
    depth: Key | None = Field(default=None, description="light, deeper or dreams (the adult bank only)")
    scheduled_for: UtcDatetime
