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
    SHORT_LINKS = "attune.links.short"
    QUESTIONS = "attune.questions"
    DEAD_LETTER = "attune.deadletter"


DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    partitions: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    description: str
    key: str = "household_id"
    retention_ms: int = 14 * DAY_MS
    """How long the broker keeps a record (retention.ms, set when the topic is created): long enough for a
    consumer that was down over two weekends to catch up, no longer than that (records carry personal data)."""


# The Kafka principals (SASL users, one per service) that may write or read the topics below. A message's
# envelope names its `producer`; attune_contracts.trust says which producer may send which message type,
# deploy/kafka/acls.txt grants exactly these topics to these principals (tests/security check both).
SCHEDULER, CHECKINS, NOTIFIER = "scheduler", "checkins", "notifier"
CLI = "attune-cli"
"""The `attune` command line: household set-up, members, rituals, consent, check-ins, erasure."""
APP = "attune-app"
"""The household's web app (services/app): sends the few scheduler commands a person makes from their phone
(attune_contracts.trust.LIMITED narrows it to those) and reads the facts it shows."""
OPERATOR = "attune-operator"
"""Operations: reads the dead-letter topic and replays a dead letter onto the topic it came from."""
PARTNERS: tuple[str, ...] = ("calendar-sync",)
"""Partner services outside Attune that may send commands and notification requests. Add one here (then
regenerate deploy/kafka/acls.txt and give it a password), never a wildcard."""
REPLAYERS: tuple[str, ...] = (OPERATOR,)
"""May write every topic that has consumers: replaying a dead letter puts its original bytes back on the
topic it came from (`attune dlq replay`). The replayed message keeps its original `producer`."""
CONSUMER_GROUPS: dict[str, str] = {SCHEDULER: "attune-scheduler", CHECKINS: "attune-checkins", NOTIFIER: "attune-notifier",
                                   APP: "attune-app"}
"""The one consumer group each service principal may use (the services' default group ids)."""

CATALOG: dict[Topic, TopicSpec] = {
    spec.topic: spec
    for spec in (
        TopicSpec(
            Topic.SCHEDULER_COMMANDS, 6, (CLI, APP, *PARTNERS), (SCHEDULER,),
            "Commands that change households, members, rituals and consent.",
        ),
        TopicSpec(
            Topic.SCHEDULER_EVENTS, 6, (SCHEDULER,), (CHECKINS, NOTIFIER, CLI, APP),
            "Facts about households, members and rituals, and rejections of scheduler commands.",
        ),
        TopicSpec(
            Topic.RITUAL_OCCURRENCES, 12, (SCHEDULER,), (CHECKINS, NOTIFIER, APP),
            "One RitualDue per occurrence, one RitualReminder per offset, and occurrences skipped after downtime.",
        ),
        TopicSpec(
            Topic.CHECKINS_COMMANDS, 6, (CLI, *PARTNERS), (CHECKINS,),
            "Check-in submissions, moments and achievements sent by other services.",
        ),
        TopicSpec(
            Topic.CHECKINS_EVENTS, 6, (CHECKINS,), (NOTIFIER, APP),
            "What people did and what it adds up to: check-ins, streaks, misses, ratio drops, weekly summaries.",
        ),
        TopicSpec(
            Topic.NOTIFICATION_REQUESTS, 6, PARTNERS, (NOTIFIER,),
            "Generic notification requests from other services.",
        ),
        TopicSpec(
            Topic.NOTIFICATION_OUTCOMES, 6, (NOTIFIER,), (),
            "The outcome of every delivery: sent, failed (will retry), dead-lettered, dropped.",
        ),
        TopicSpec(
            Topic.SHORT_LINKS, 6, (NOTIFIER,), (CHECKINS,),
            "SMS short links: a code's hash and its one-tap token sealed with the code (attune_runtime.shortlinks).",
            retention_ms=9 * DAY_MS,  # a reminder's link lives up to 7 days + 36 hours; no longer than that
        ),
        TopicSpec(
            Topic.QUESTIONS, 6, (NOTIFIER,), (CHECKINS, APP),
            "The day's open-ended question a household was asked (a catalog key, never free text).",
        ),
        TopicSpec(
            Topic.DEAD_LETTER, 3, (SCHEDULER, CHECKINS, NOTIFIER, APP), (OPERATOR,),
            "Messages a consumer could not decode, validate or handle, with the reason and the original bytes.",
            key="original key", retention_ms=7 * DAY_MS,  # shorter: a week to look and replay, then gone
        ),
    )
}
