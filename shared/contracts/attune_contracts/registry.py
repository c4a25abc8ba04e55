"""Which payload model belongs to which (type, version), and parsing raw bytes against it."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import ValidationError

from .envelope import Envelope
from .sealing import FieldKeys, FieldKeysMissing, context_for
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
    model: builtins.type[Contract]  # `builtins.`: inside this class, `type` is the field above
    envelope: builtins.type[Envelope[Any]]
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


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _describe(error: ValidationError, limit: int = 5) -> str:
    parts = []
    for item in error.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(_clip(str(p), 60) for p in item["loc"]) or "(message)"
        parts.append(f"{where}: {_clip(item['msg'], 300)}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def _text(raw: object) -> str:
    """The message as text, or ContractError: a record's value may be None (a tombstone) or any bytes."""
    if raw is None:
        raise ContractError("no value: the record is a tombstone (null value), not an Attune message")
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError(f"not JSON: not UTF-8 text ({exc})") from None
    raise ContractError(f"expected bytes or text, got {type(raw).__name__}")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ContractError("not acceptable JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ContractError(f"not JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (sys.get_int_max_str_digits)
        raise ContractError(f"not acceptable JSON: {_clip(str(exc), 200)}") from None


def parse(raw: bytes | str | None, field_keys: FieldKeys | None = None) -> Envelope[Any]:
    """Decode and validate one message; raise ContractError with a readable reason otherwise.

    Whatever `raw` is - None, any bytes, JSON nested 100,000 deep, numbers of 5,000 digits, values a
    validator chokes on - the only exception that leaves is ContractError: a consumer can always tell
    "this message is bad" from "something is wrong with us" (FieldKeysMissing: this process was started
    without field keys). Private fields are opened with `field_keys`, or the process's
    (attune_contracts.sealing); one in plaintext, or sealed for another household or field, is refused.
    """
    text = _text(raw)
    head = _load_json(text)
    if not isinstance(head, dict):
        raise ContractError(f"expected a JSON object (the envelope), got {type(head).__name__}")
    kind, version = head.get("type"), head.get("version")
    if not isinstance(kind, str) or not isinstance(version, int) or isinstance(version, bool):
        raise ContractError("envelope needs a string 'type' and an integer 'version'")
    spec = lookup(kind, version)
    if spec is None:
        known = sorted(v for (t, v) in _BY_KEY if t == kind)
        if known:
            raise ContractError(f"unknown version {_clip(str(version), 20)} of {_clip(kind)!r}; "
                                f"this consumer knows versions {known}")
        raise ContractError(f"unknown message type {_clip(kind)!r}")
    try:
        return spec.envelope.model_validate_json(text, context=context_for(_household(head), field_keys))
    except FieldKeysMissing:
        raise
    except ValidationError as exc:
        raise ContractError(f"invalid {kind} v{version}: {_describe(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. OverflowError from a validator: still the message's fault
        raise ContractError(f"invalid {kind} v{version}: {type(exc).__name__}: {_clip(str(exc), 300)}") from None


def _household(head: dict[str, Any]) -> UUID | None:
    # Whose keys open the private fields; when it is not a household id, the envelope is refused anyway.
    try:
        return UUID(head["household_id"]) if isinstance(head.get("household_id"), str) else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Head:
    """What can be read from a message that failed validation: enough to answer its sender."""

    type: str
    event_id: UUID
    household_id: UUID
    correlation_id: str
    payload: dict[str, Any]


def peek(raw: bytes | str | None) -> Head | None:
    """Best-effort envelope fields of an invalid message; None when it does not say who sent what.

    Never raises, whatever `raw` is (the same hostile inputs as `parse`)."""
    try:
        head = _load_json(_text(raw))
        if not isinstance(head, dict) or not isinstance(head.get("type"), str) or len(head["type"]) > 100:
            return None
        event_id, household_id = UUID(str(head["event_id"])), UUID(str(head["household_id"]))
        payload = head.get("payload")
        correlation = head.get("correlation_id")
        correlation = correlation if isinstance(correlation, str) and correlation else str(event_id)
        return Head(head["type"], event_id, household_id, correlation[:128],
                    payload if isinstance(payload, dict) else {})
    except Exception:  # noqa: BLE001 - best effort by definition: anything odd means "nobody to answer"
        return None


def _load_catalog() -> None:
    # Importing the modules runs their @message decorators.
    from . import messages  # noqa: F401
