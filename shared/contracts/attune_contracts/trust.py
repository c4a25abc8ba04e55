"""Kafka as a trust boundary: who may send which message, and the member rules every consumer applies.

Pure (no Kafka): the shared consumer (attune_runtime.consumer) asks `producer_refusal` once per message,
before any handler runs, and dead-letters a refused one as "rejected" with the reason (the service's
rejection event, where it has one, tells the sender). The services' own rules (service.py) use
`foreign_member` / `moved_member` for "a member named in a message belongs to the envelope's household"
and "a member never moves between households".

What this can and cannot prove: `producer` is what the sender wrote in the envelope. The broker's ACLs
(deploy/kafka/acls.txt, generated from the catalog) make sure only the principals in `TopicSpec.producers`
can write a topic at all; this module makes sure a message type only arrives from the principals allowed to
send it, on the topic it belongs to. A principal allowed to write a topic could still write another allowed
principal's name into `producer` on that topic (the CLI and a partner share the command topics), so the
per-type split below is only as strong as the trust between those principals; service principals own
their event topics alone.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any
from uuid import UUID

from .envelope import Envelope
from .registry import all_specs, lookup
from .topics import APP, CATALOG, CLI

__all__ = ["TrustViolation", "foreign_member", "moved_member", "producer_refusal", "sender_of", "senders"]


class TrustViolation(ValueError):
    """A valid message that its sender was not allowed to send. The text is the reason the sender reads;
    consumers treat it as permanent (dead-lettered as "rejected", never retried)."""


# Message types some of a topic's producers may NOT send: only the CLI (a household's own operator) may
# register a household, add or change a member, give or withdraw consent, erase a household or revoke its
# credentials; partner
# services may schedule and change rituals, submit check-ins and ask for notifications.
_ONLY: dict[str, tuple[str, ...]] = {
    "scheduler.register_household": (CLI, APP),
    "scheduler.upsert_member": (CLI, APP),
    "scheduler.give_consent": (CLI, APP),
    "scheduler.withdraw_consent": (CLI,),
    "scheduler.erase_household": (CLI,),
    "scheduler.revoke_household_credentials": (CLI,),
}


# Principals that may send ONLY these types, whatever else their topics carry: the web app creates a household,
# adds the people who join it through an invitation, schedules rituals and records each person's own consent;
# it never changes, pauses, deletes or erases (a person does that through the CLI until the app grows those).
LIMITED: dict[str, frozenset[str]] = {
    APP: frozenset({"scheduler.register_household", "scheduler.upsert_member", "scheduler.schedule_ritual",
                    "scheduler.give_consent"}),
}


def _senders_by_type() -> MappingProxyType[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for spec in all_specs():
        allowed = CATALOG[spec.topic].producers
        narrowed = _ONLY.get(spec.type)
        if narrowed is not None and not set(narrowed) <= set(allowed):
            raise RuntimeError(f"{spec.type}: {narrowed} may not write {spec.topic.value} (topics.CATALOG)")
        table[spec.type] = tuple(p for p in (narrowed or allowed)
                                 if p not in LIMITED or spec.type in LIMITED[p])
    return MappingProxyType(table)


_SENDERS: MappingProxyType[str, tuple[str, ...]] | None = None


def senders(message_type: str) -> tuple[str, ...]:
    """The principals allowed to send `message_type` (empty: a type nobody may send)."""
    global _SENDERS
    if _SENDERS is None:
        _SENDERS = _senders_by_type()
    return _SENDERS.get(message_type, ())


def producer_refusal(envelope: Envelope[Any], topic: str | None = None) -> str | None:
    """Why this message must be refused (a reason for its sender), or None when its producer may send its
    type, on this topic (`topic`: the one it was read from; None skips the topic check)."""
    spec = lookup(envelope.type, envelope.version)
    if spec is None:  # parse() would not have returned it; refuse rather than guess
        return f"unknown message type {envelope.type!r}"
    if topic is not None and topic != spec.topic.value:
        return (f"{envelope.type} belongs on {spec.topic.value}, not on {topic}; "
                f"publish it with attune_contracts.AttunePublisher, which picks the topic")
    allowed = senders(envelope.type)
    if envelope.producer not in allowed:
        return (f"producer {envelope.producer[:100]!r} is not allowed to send {envelope.type} "
                f"(allowed: {', '.join(allowed) or 'nobody'}); see attune_contracts.trust and "
                f"shared/contracts/CATALOG.md")
    return None


def foreign_member(member_id: UUID, household_id: UUID, home: UUID | None) -> str | None:
    """The reason a message of `household_id` may not name `member_id`, whose household is `home` (None:
    not known here yet), or None when it may."""
    if home is not None and home != household_id:
        return f"member {member_id} does not belong to household {household_id}"
    return None


def moved_member(member_id: UUID, household_id: UUID, home: UUID | None) -> str | None:
    """The reason `member_id`, already a member of `home`, may not be added to `household_id`: a member
    never moves between households (add a new member to the other household instead)."""
    if home is not None and home != household_id:
        return (f"member {member_id} already belongs to another household and cannot move to household "
                f"{household_id}; add a new member there instead")
    return None



def sender_of(message: Any) -> str:
    """The first principal allowed to send `message` (a payload, its model or its type): what a tool or a
    test speaking for that principal writes in `producer`."""
    from .registry import spec_of

    message_type = message if isinstance(message, str) else spec_of(
        message if isinstance(message, type) else type(message)).type
    allowed = senders(message_type)
    if not allowed:
        raise LookupError(f"nobody may send {message_type}")
    return allowed[0]
