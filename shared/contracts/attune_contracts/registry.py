"""Which payload model belongs to which (type, version), and parsing raw bytes against it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import ValidationError

from .envelope import Envelope
from .topics import Topic
from .types import Contract

C = TypeVar("C", bound=type[Contract])

Kind = Literal["command", "event"]


@dataclass(frozen=True)
class MessageSpec:
    type: str
    version: int
    kind: Kind
    topic: Topic
    model: type[Contract]
    envelope: type[Envelope[Any]]
    summary: str

    @property
    def name(self) -> str:
        return self.model.__name__


_BY_KEY: dict[tuple[str, int], MessageSpec] = {}
_BY_MODEL: dict[type[Contract], MessageSpec] = {}


def message(type: str, *, version: int = 1, kind: Kind, topic: Topic) -> Callable[[C], C]:
    """Register a payload model as the body of messages of `type` at `version`."""

    def register(model: C) -> C:
        key = (type, version)
        if key in _BY_KEY:
            raise RuntimeError(f"{type} v{version} is registered twice")
        summary = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else type
        spec = MessageSpec(type, version, kind, topic, model, Envelope[model], summary)  # type: ignore[valid-type]
        _BY_KEY[key] = spec
        _BY_MODEL[model] = spec
        return model

    return register


def spec_of(model: type[Contract]) -> MessageSpec:
    try:
        return _BY_MODEL[model]
    except KeyError:
        raise LookupError(f"{model.__name__} is not a registered message") from None


def all_specs() -> list[MessageSpec]:
    _load_catalog()
    return sorted(_BY_KEY.values(), key=lambda s: (s.topic.value, s.type, s.version))


def lookup(type: str, version: int) -> MessageSpec | None:
    _load_catalog()
    return _BY_KEY.get((type, version))


class ContractError(ValueError):
    """Raw bytes that are not a valid Attune message. `reason` says what is wrong, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(error: ValidationError, limit: int = 5) -> str:
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse(raw: bytes | str) -> Envelope[Any]:
    """Decode and validate one message; raise ContractError with a readable reason otherwise."""
    try:
        head = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise ContractError(f"expected a JSON object (the envelope), got {type(head).__name__}")
    kind, version = head.get("type"), head.get("version")
    if not isinstance(kind, str) or not isinstance(version, int) or isinstance(version, bool):
        raise ContractError("envelope needs a string 'type' and an integer 'version'")
    spec = lookup(kind, version)
    if spec is None:
        known = sorted(v for (t, v) in _BY_KEY if t == kind)
        if known:
            raise ContractError(f"unknown version {version} of {kind!r}; this consumer knows versions {known}")
        raise ContractError(f"unknown message type {kind!r}")
    try:
        return spec.envelope.model_validate_json(raw)
    except ValidationError as exc:
        raise ContractError(f"invalid {kind} v{version}: {_describe(exc)}") from None


@dataclass(frozen=True)
class Head:
    """What can be read from a message that failed validation: enough to answer its sender."""

    type: str
    event_id: UUID
    household_id: UUID
    correlation_id: str
    payload: dict[str, Any]


def peek(raw: bytes | str) -> Head | None:
    """Best-effort envelope fields of an invalid message; None when it does not say who sent what."""
    try:
        head = json.loads(raw)
    except (TypeError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(head, dict) or not isinstance(head.get("type"), str):
        return None
    try:
        event_id, household_id = UUID(str(head["event_id"])), UUID(str(head["household_id"]))
    except (KeyError, ValueError):
        return None
    payload = head.get("payload")
    return Head(head["type"], event_id, household_id, str(head.get("correlation_id") or event_id)[:128],
                payload if isinstance(payload, dict) else {})


def _load_catalog() -> None:
    # Importing the modules runs their @message decorators.
    from . import messages  # noqa: F401
