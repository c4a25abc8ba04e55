"""Structured logs: JSON lines with service, event type, event id and correlation id; readable in `make run`."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from .faults import redact_values

_CONTEXT_FIELDS = ("event_type", "event_id", "correlation_id", "household_id", "occurrence_id", "notification_id")


# The message being handled: every log line written while handling it carries these fields.
_message_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "attune_message", default=MappingProxyType({}))


@contextmanager
def message_context(**fields: Any) -> Iterator[None]:
    token = _message_context.set({**_message_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _message_context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_message_context.get())


def _message(record: logging.LogRecord) -> str:
    """The record's message; one built from an exception loses the values a database error quotes."""
    text = record.getMessage()
    args = record.args if isinstance(record.args, tuple) else (record.args,) if record.args else ()
    return redact_values(text) if any(isinstance(a, BaseException) for a in args) else text


class _Redacting(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        # A traceback shows each wrapped driver error's text, which quotes the refused value (a name, a note).
        return redact_values(super().formatException(ei))


class JsonFormatter(_Redacting):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": _message(record),
        }
        line.update(_message_context.get())
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class HumanFormatter(_Redacting):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service:<9} %(levelname)-7s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if record.args and any(isinstance(a, BaseException) for a in
                               (record.args if isinstance(record.args, tuple) else (record.args,))):
            record.msg, record.args = _message(record), None
        text = super().format(record)
        context = _message_context.get()
        if context.get("event_type"):
            text += f"  [{context['event_type']} {context.get('correlation_id', '')[:8]}]"
        return text


def configure_logging(service: str, *, json_lines: bool = True, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_lines else HumanFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Apprise logs request details at DEBUG/INFO; channel URLs are secrets, so keep it to warnings.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
