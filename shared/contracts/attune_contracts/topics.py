"""The topic catalog. Every topic is keyed by household id, so a household's messages keep their order."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    SCHEDULER_COMMANDS = "attune.scheduler.commands"
    SCHEDULER_EVENTS = "attune.scheduler.events"
    RITUAL_OCCURRENCES = "attune.rituals.occurrences"
    CHECKINS_COMMANDS = "attune.checkins.commands"
    CHECKINS_EVENTS = "attune.checkins.events"
    NOTIFICATION_REQUESTS = "attune.notifications.requests"
    NOTIFICATION_OUTCOMES = "attune.notifications.outcomes"
    DEAD_LETTER = "attune.deadletter"


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    partitions: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    description: str
    key: str = "household_id"


ANYONE = "any service (for example the attune CLI)"

CATALOG: dict[Topic, TopicSpec] = {
    spec.topic: spec
    for spec in (
        TopicSpec(
            Topic.SCHEDULER_COMMANDS, 6, (ANYONE,), ("scheduler",),
            "Commands that change households, members, rituals and consent.",
        ),
        TopicSpec(
            Topic.SCHEDULER_EVENTS, 6, ("scheduler",), ("checkins", "notifier"),
            "Facts about households, members and rituals, and rejections of scheduler commands.",
        ),
        TopicSpec(
            Topic.RITUAL_OCCURRENCES, 12, ("scheduler",), ("checkins", "notifier"),
            "One RitualDue per occurrence, one RitualReminder per offset, and occurrences skipped after downtime.",
        ),
        TopicSpec(
            Topic.CHECKINS_COMMANDS, 6, (ANYONE,), ("checkins",),
            "Check-in submissions, moments and achievements sent by other services.",
        ),
        TopicSpec(
            Topic.CHECKINS_EVENTS, 6, ("checkins",), ("notifier",),
            "What people did and what it adds up to: check-ins, streaks, misses, ratio drops, weekly summaries.",
        ),
        TopicSpec(
            Topic.NOTIFICATION_REQUESTS, 6, (ANYONE,), ("notifier",),
            "Generic notification requests from other services.",
        ),
        TopicSpec(
            Topic.NOTIFICATION_OUTCOMES, 6, ("notifier",), (),
            "The outcome of every delivery: sent, failed (will retry), dead-lettered, dropped.",
        ),
        TopicSpec(
            Topic.DEAD_LETTER, 3, ("scheduler", "checkins", "notifier"), ("operators", "attune dlq"),
            "Messages a consumer could not decode, validate or handle, with the reason and the original bytes.",
            key="original key",
        ),
    )
}
